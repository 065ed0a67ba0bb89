"""Render a week's report (Markdown and self-contained HTML) from the weekly tables.

Every string that came from an API (coin names, symbols) is escaped: by Jinja's autoescaping in HTML, and by
``md_escape`` in Markdown, so a coin named ``<script>`` is shown, never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jinja2
import polars as pl

from pipelines.narrative.format import abs_pct, direction, pct, usd_compact

TEMPLATES = Path(__file__).parent / "templates"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>&])")


def md_escape(text: str) -> str:
    """Make untrusted text inert in Markdown (and in the HTML a Markdown viewer produces)."""
    text = text.replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _env(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )


@dataclass
class RenderedReport:
    title: str
    headline: str  # the summary paragraph
    markdown: str
    html: str


def headline_title(summary: dict) -> str:
    change = summary["total_mcap_change_pct"]
    verb = {"up": "rises", "down": "falls", "flat": "holds"}[direction(change)]
    return f"Crypto market cap {verb} {abs_pct(change)} to {usd_compact(summary['total_mcap_end_usd'])}"


def summary_paragraph(summary: dict) -> str:
    change = summary["total_mcap_change_pct"]
    move = {"up": "rose", "down": "fell", "flat": "was unchanged"}[direction(change)]
    text = (
        f"Total crypto market capitalisation {move} {abs_pct(change)} over the week, from "
        f"{usd_compact(summary['total_mcap_start_usd'])} to {usd_compact(summary['total_mcap_end_usd'])}."
    )
    parts = []
    if summary["btc_return_pct"] is not None:
        parts.append(f"Bitcoin returned {pct(summary['btc_return_pct'])}")
    if summary["eth_return_pct"] is not None:
        parts.append(f"Ether {pct(summary['eth_return_pct'])}")
    if parts:
        text += " " + " and ".join(parts) + "."
    return text


def render_report(
    summary: pl.DataFrame, movers: pl.DataFrame, gaps: list[str], sources: str
) -> RenderedReport:
    if summary.height != 1:
        raise ValueError(f"expected one summary row, got {summary.height}")
    s = summary.row(0, named=True)
    title = headline_title(s)
    para = summary_paragraph(s)
    week_start: date = s["week_start"]
    market_lines = [
        f"Total market cap: {usd_compact(s['total_mcap_start_usd'])} at the open, "
        f"{usd_compact(s['total_mcap_end_usd'])} at the close ({pct(s['total_mcap_change_pct'])}).",
        f"Bitcoin (BTC): {pct(s['btc_return_pct'])} on the week.",
        f"Ether (ETH): {pct(s['eth_return_pct'])} on the week.",
        f"Coins counted: {s['coins_start']} at the open, {s['coins_end']} at the close.",
    ]

    def rows(kind: str) -> list[dict]:
        out = []
        for r in movers.filter(pl.col("kind") == kind).sort("position").iter_rows(named=True):
            out.append(
                {
                    "name": r["name"],
                    "symbol": r["symbol"].upper(),
                    "name_md": md_escape(r["name"]),
                    "symbol_md": md_escape(r["symbol"].upper()),
                    "ret": pct(r["return_pct"]),
                }
            )
        return out

    context = {
        "title": title,
        "summary": para,
        "date_long": f"{s['week_end']:%B} {s['week_end'].day}, {s['week_end']:%Y}",
        "week_start": week_start.isoformat(),
        "week_end": s["week_end"].isoformat(),
        "market_lines": market_lines,
        "movers": list(zip(rows("gainer"), rows("loser"), strict=False)),
        "gaps": gaps,
        "sources": sources,
    }
    markdown = _env(False).get_template("report.md.j2").render(context)
    html = _env(True).get_template("report.html.j2").render(context)
    return RenderedReport(title=title, headline=para, markdown=markdown, html=html)
