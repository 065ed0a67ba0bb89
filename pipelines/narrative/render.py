"""Render a week's report (Markdown and self-contained HTML) from the weekly tables, shaped like the desk's
model report: headline, dateline, summary, Macro Update, market internal structure, correlations and
volatility, Sector Performance, top movers, Our View, Data gaps, Sources.

Every number is a ``Num`` (see ``pieces.py``): printed through a named format, wrapped in HTML in a
``<span data-source="table/week=...#column">``, and listed in ``claims`` for the claim check. Every string that
came from an API is a ``Txt``: escaped by Jinja's autoescaping in HTML, and by ``md_escape`` in Markdown.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import json
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import polars as pl

from pipelines.calendar import days_between, week_close_days
from pipelines.narrative import charts as charts_mod
from pipelines.narrative.data import WeekData
from pipelines.narrative.facts import (
    Fact,
    coin_label,
    derive_facts,
    num,
    our_view,
)
from pipelines.narrative.pieces import Num, Phrase, Txt, join, md_escape
from pipelines.narrative.rate_expectations import rate_expectations
from pipelines.narrative.vocabulary import ASSET_LABELS, FIXED_TERMS, INDEX_LABELS, SOURCES_HEADING

__all__ = ["md_escape", "render_week", "RenderedReport", "FIXED_TERMS", "SOURCES_HEADING"]

TEMPLATES = Path(__file__).parent / "templates"
SUMMARY_FACTS = 4
NOT_IN_LEDE = ("worst_sector", "best_sector", "top_gainer", "top_loser", "mcap_total_basis")

MACRO: tuple[tuple[str, str, str, str], ...] = (
    # metric, label, value format, observation-date format
    ("payrolls_change_k", "Non-farm payrolls (change)", "thousands", "month_year"),
    ("unemployment_rate", "Unemployment rate", "level_pct", "month_year"),
    ("ust_2y", "US 2Y Treasury yield", "rate2", "long_date"),
    ("ust_10y", "US 10Y Treasury yield", "rate2", "long_date"),
    ("curve_10y_2y", "Curve (10Y-2Y)", "pp2", "long_date"),
    ("japan_10y", "Japan 10Y yield", "rate2", "month_year"),
    ("usd_jpy", "USD/JPY", "fixed2", "long_date"),
)
STRUCTURE_KEYS = ("funding", "oi_", "spot_", "perp_to_spot", "leverage_skew")
CORR_VOL_KEYS = ("corr_", "small_caps_decoupling", "btc_rv")


def _window(wd: WeekData, s: dict) -> Phrase:
    """The windows as they are: crypto from the Sunday close before the week to its own Sunday close (00:00
    UTC Monday); the other asset classes between their own closes, listed with each return."""
    t = wd.one("weekly_total_market_cap")
    if t is not None:
        tm = "weekly_total_market_cap"
        return Phrase(
            "Crypto figures run from the {a} daily close to the {b} daily close (Sunday to Sunday, 00:00 UTC); other asset "
            "classes run between their own last closes on or before those days (Friday to Friday for equities, FX and Treasuries).",
            {
                "a": num(tm, wd.week, "open_day", t["open_day"], "long_date"),
                "b": num(tm, wd.week, "close_day", t["close_day"], "long_date"),
            },
        )
    return Phrase(
        "Week of {a} to {b}, Monday 00:00 UTC to Monday 00:00 UTC.",
        {
            "a": num("weekly_market_summary", wd.week, "week_start", s["week_start"], "iso_date"),
            "b": num("weekly_market_summary", wd.week, "week_end", s["week_end"], "iso_date"),
        },
    )


@dataclass
class RenderedReport:
    title: str
    headline: str  # the summary paragraph (Markdown)
    markdown: str
    html: str
    facts: list[Fact]
    claims: list[dict[str, Any]]
    predicates: list[dict[str, Any]]  # the judgments of every printed sentence (predicates.check_predicates)
    texts: list[str]  # API strings as printed in the Markdown
    gaps: list[str]
    charts: dict[str, tuple[str, str]] = field(default_factory=dict)
    sources_sha256: str = ""  # sha256 of the full Sources list (table, partition, partition sha256)

    def markdown_with_inline_charts(self) -> str:
        """The Markdown with each chart as a data-URI image (for the Dagster UI, which has no files)."""
        md = self.markdown
        for name, (caption, svg) in self.charts.items():
            uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
            md = md.replace(f"![{caption}](charts/{name}.svg)", f"![{caption}]({uri})")
        return md


@functools.cache
def _env(autoescape: bool) -> jinja2.Environment:
    """One environment a process for each escaping: it keeps its compiled templates (a compile is about 25 ms) and
    compiles a template again when its file changed (``auto_reload``)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["codes"] = codes
    return env


def codes(items: Sequence[str]) -> markupsafe.Markup:
    """``<code>item</code> `` for each of ``items``, escaped: what a template's loop over them prints, made in one
    escape of all of them (a report's sources name about 10,000 raw files: a loop escaping each would be most of
    the HTML's render). The items are joined by a NUL, which escaping leaves as it is, and each NUL then becomes
    the markup between two items; items that hold a NUL themselves (no file name does) are escaped one by one."""
    if not items:
        return markupsafe.Markup("")
    joined = "\x00".join(items)
    if joined.count("\x00") != len(items) - 1:
        return markupsafe.Markup("".join(f"<code>{markupsafe.escape(item)}</code> " for item in items))
    escaped = str(markupsafe.escape(joined))
    return markupsafe.Markup("<code>" + escaped.replace("\x00", "</code> <code>") + "</code> ")


def _collect(phrases: list[Phrase]) -> tuple[list[Num], list[Txt]]:
    nums: list[Num] = []
    txts: list[Txt] = []

    def walk(p: Phrase) -> None:
        # only what the template prints: a part without its placeholder is not in the text, so it is no claim
        used = {name for _, name, _, _ in string.Formatter().parse(p.template) if name}
        for k, v in p.parts.items():
            if k not in used:
                continue
            if isinstance(v, Num):
                nums.append(v)
            elif isinstance(v, Txt):
                txts.append(v)
            elif isinstance(v, Phrase):
                walk(v)

    for p in phrases:
        walk(p)
    return nums, txts


def _macro(wd: WeekData, gaps: list[str]) -> list[Phrase]:
    rows = wd.rows("weekly_macro")
    if rows is None:
        return []
    by = {r["metric"]: r for r in rows.iter_rows(named=True)}
    h = wd.hist("weekly_macro")
    prev_week = h.filter(pl.col("week_start") < wd.week_date)["week_start"].max() if h.height else None
    prev_by = (
        {r["metric"]: r for r in h.filter(pl.col("week_start") == prev_week).iter_rows(named=True)}
        if prev_week
        else {}
    )
    out = []
    for metric, label, vfmt, dfmt in MACRO:
        r = by.get(metric)
        where = {"metric": metric}
        if r is None or r["status"] == "unavailable" or r["observation_date"] is None:
            out.append(Phrase(label + ": no data available."))
            gaps.append(f"Macro: {label} is not available.")
            continue
        d = num("weekly_macro", wd.week, "observation_date", r["observation_date"], dfmt, where)
        if r["status"] == "missing" or r["value"] is None:
            out.append(
                Phrase(
                    label
                    + ": the {d} observation is missing (not published); no earlier value is substituted.",
                    {"d": d},
                )
            )
            gaps.append(f"Macro: {label} for the latest period is missing.")
            continue
        parts = {"v": num("weekly_macro", wd.week, "value", r["value"], vfmt, where), "d": d}
        prev = prev_by.get(metric)
        if (
            prev is not None
            and prev["value"] is not None
            and prev["observation_date"] is not None
            and prev["observation_date"] != r["observation_date"]
        ):
            # the level with its change: the previous report's observation, from that week's partition
            pw = prev["week_start"].isoformat()
            parts["p"] = Num(prev["value"], vfmt, "weekly_macro", pw, "value", (("metric", metric),))
            parts["pd"] = Num(
                prev["observation_date"], dfmt, "weekly_macro", pw, "observation_date", (("metric", metric),)
            )
            out.append(Phrase(label + ": {v} ({d}), against {p} ({pd}) in the previous report.", parts))
        else:
            out.append(Phrase(label + ": {v} ({d}).", parts))
    return out


def _cross_asset(wd: WeekData) -> list[Phrase]:
    rows = wd.rows("weekly_cross_asset")
    if rows is None:
        return []
    out = []
    rows = rows.sort(["rank", "asset"], nulls_last=True)
    for r in rows.iter_rows(named=True):
        label = ASSET_LABELS.get(r["asset"], None)
        name = Phrase(label) if label else Phrase("{a}", {"a": Txt(r["asset"])})
        where = {"asset": r["asset"]}
        if r["return_pct"] is None:
            out.append(Phrase("{n}: no return this week (stale or missing prices).", {"n": name}))
        else:
            p = {
                "n": name,
                "r": num("weekly_cross_asset", wd.week, "return_pct", r["return_pct"], "pct", where),
            }
            if r.get("open_date") is not None and r.get("close_date") is not None:
                p["a"] = num("weekly_cross_asset", wd.week, "open_date", r["open_date"], "day_month", where)
                p["b"] = num("weekly_cross_asset", wd.week, "close_date", r["close_date"], "day_month", where)
                out.append(Phrase("{n}: {r} ({a} to {b} close)", p))
            else:
                out.append(Phrase("{n}: {r}", p))
    return out


def _sectors(wd: WeekData) -> list[Phrase]:
    rows = wd.rows("weekly_index_returns")
    if rows is None:
        return []
    out = []
    for r in rows.sort(["return_pct", "index"], nulls_last=True).iter_rows(named=True):
        label = INDEX_LABELS.get(r["index"])
        name = Phrase(label) if label else Phrase("{a}", {"a": Txt(r["index"])})
        where = {"index": r["index"]}
        if r["return_pct"] is None:
            out.append(Phrase("{n}: no return (no priced members).", {"n": name}))
            continue
        p = {
            "n": name,
            "r": num("weekly_index_returns", wd.week, "return_pct", r["return_pct"], "updown_pct", where),
            "k": num("weekly_index_returns", wd.week, "constituents", r["constituents"], "int", where),
        }
        short = r.get("members_close") is not None and r["members_close"] < r["constituents"]
        if short:  # members without a price on the close day: say how many were priced there (coverage)
            p["c"] = num("weekly_index_returns", wd.week, "members_close", r["members_close"], "int", where)
        out.append(
            Phrase(
                "{n} {r} ({k} members, {c} priced on the close day)" if short else "{n} {r} ({k} members)", p
            )
        )
    return out


def _buckets(wd: WeekData) -> list[Phrase]:
    rows = wd.rows("weekly_correlation_buckets")
    if rows is None:
        return []
    out = []
    for r in sorted(
        rows.iter_rows(named=True),
        key=lambda r: int(r["bucket"].split("-")[0]) if r["bucket"].split("-")[0].isdigit() else 10**9,
    ):
        where = {"bucket": r["bucket"]}
        parts: list[Phrase] = []
        for col, label, f in (
            ("avg_pairwise_corr", "average pairwise correlation", "corr"),
            ("avg_corr_to_btc", "correlation to BTC", "corr"),
            ("ew_return_pct", "equal-weight return", "pct"),
        ):
            if r[col] is not None:
                parts.append(
                    Phrase(
                        label + " {v}",
                        {"v": num("weekly_correlation_buckets", wd.week, col, r[col], f, where)},
                    )
                )
        b = r["bucket"]
        name = (
            Phrase("Ranks " + b) if b in ("1-10", "11-50", "51-100") else Phrase("Ranks {b}", {"b": Txt(b)})
        )
        if parts:
            out.append(Phrase("{n}: {p}", {"n": name, "p": join(parts, ", ", ", ")}))
        else:
            out.append(Phrase("{n}: not enough data.", {"n": name}))
    return out


def _movers(wd: WeekData) -> list[dict[str, Phrase]]:
    rows = wd.rows("weekly_movers")
    if rows is None:
        return []

    def side(kind: str) -> list[Phrase]:
        out = []
        for r in rows.filter(pl.col("kind") == kind).sort("position").iter_rows(named=True):
            where = {"kind": kind, "position": str(r["position"])}
            out.append(
                Phrase(
                    "{c} {r}",
                    {
                        "c": coin_label(r["name"], r["symbol"]),
                        "r": num("weekly_movers", wd.week, "return_pct", r["return_pct"], "pct", where),
                    },
                )
            )
        return out

    return [{"g": g, "l": lo} for g, lo in zip(side("gainer"), side("loser"), strict=False)]


def estimate_gaps(wd: WeekData) -> list[str]:
    """The Data gaps line for a week whose market caps rest on estimates (``pipelines.clean.estimates``). Worded
    without figures: the days and coin counts are in the manifest and coin_daily_estimates, not claims."""
    if not wd.estimated_days:
        return []
    open_day, close_day = week_close_days(wd.week)
    # Estimated days are those before the plan's first day: every day of the week, or its first days.
    which = (
        "every day of the week"
        if len(wd.estimated_days) == len(days_between(open_day, close_day))
        else "the week's first days (its opening day included)"
    )
    return [
        f"Market caps and prices of {which} are estimates: those days are older than the CoinGecko plan's history "
        "window, so each coin's Binance spot close is multiplied by its circulating supply on the first day the plan "
        "reaches. Every market-cap figure of the week (totals, sectors, buckets, movers) rests on them; coins without "
        "a Binance pair are left out, and trading volume is not estimated."
    ]


def render_week(
    wd: WeekData,
    sources: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    input_gaps: Sequence[str] = (),
    draw_charts: bool = True,
) -> RenderedReport:
    """Render one week. ``sources(claims)`` returns the input partitions (table, partition, sha256, raw files)
    for the list at the end; the numbers' own sources are in their spans and in ``claims``. ``input_gaps`` are
    lines naming what the week's inputs lack: what the sources could not give (the gap ledger,
    ``pipelines.gaps``) and missing clean inputs (``quality.week_gaps``). They go under Data gaps as written
    (their dates and statuses are wording, not figures). ``draw_charts`` False: the same report with each
    chart's SVG left empty (``charts.render_charts``), for checks of the text only; not for publication."""
    s = wd.one("weekly_market_summary")
    if s is None:
        raise ValueError(f"week {wd.week}: weekly_market_summary is required and has no row")
    facts, gaps = derive_facts(wd)
    missing = [f"{name}: no partition for week={wd.week}; its section is left out." for name in wd.missing()]
    gaps = missing + gaps
    gaps += estimate_gaps(wd)
    gaps += list(input_gaps)
    # Headlines by the size of the news (a fact's weight, else its priority): the week's largest move wins over
    # a trivial "since".
    ranked = sorted(
        (f for f in facts if f.headline is not None),
        key=lambda f: (-(f.weight if f.weight is not None else f.priority), f.key),
    )
    heads = [f.headline for f in ranked][:2]
    title = join(heads, ", ", ", ") if heads else Phrase("Weekly Crypto Market Update")
    dateline = Phrase(
        "Market Update – {d}",
        {"d": num("weekly_market_summary", wd.week, "week_end", s["week_end"], "long_date")},
    )
    window = _window(wd, s)
    # The lede: the market's move first (the week's news), then the highest-priority facts.
    first = [f for f in facts if f.key == "mcap_change"]
    lede = (
        first
        + [f for f in facts if f.key not in NOT_IN_LEDE and f.key != "mcap_change"][
            : SUMMARY_FACTS - len(first)
        ]
    )
    summary = [f.sentence for f in lede]
    in_lede = {f.key for f in lede}  # a sentence is printed once: the lede's facts are not repeated below
    macro_facts = rate_expectations(wd, gaps)  # printed in the Macro Update only, never in the lede
    macro = _macro(wd, gaps) + [f.sentence for f in macro_facts]
    structure_all = [f for f in facts if f.key.startswith(STRUCTURE_KEYS)]
    corr_all = [f for f in facts if f.key.startswith(CORR_VOL_KEYS)]
    market_all = [f for f in facts if f.key.startswith(("mcap_", "crypto_", "btc_price"))]
    structure = [f.sentence for f in structure_all if f.key not in in_lede]
    corr_vol = [f.sentence for f in corr_all if f.key not in in_lede]
    market = [f.sentence for f in market_all if f.key not in in_lede]
    sectors = _sectors(wd)
    sector_facts = [
        f.sentence for f in facts if f.key in ("worst_sector", "best_sector") and f.key not in in_lede
    ]
    buckets = _buckets(wd)
    cross = _cross_asset(wd)
    movers = _movers(wd)
    view_facts = our_view(facts, wd)
    view = [f.sentence for f in view_facts]
    charts = charts_mod.render_charts(wd, draw=draw_charts)
    everything = [
        title,
        dateline,
        window,
        *summary,
        *macro,
        *structure,
        *corr_vol,
        *market,
        *sectors,
        *sector_facts,
        *buckets,
        *cross,
        *view,
    ]
    everything += [p for row in movers for p in row.values()]
    nums, txts = _collect(everything)
    claims = list({c["source"] + "|" + c["format"]: c for c in (n.claim() for n in nums)}.values())
    printed = {id(p) for p in everything}
    predicates = [
        pr.as_dict(f.sentence.md())
        for f in [*facts, *view_facts, *macro_facts]
        if id(f.sentence) in printed or (f.headline is not None and any(h is f.headline for h in heads))
        for pr in f.predicates
    ]
    src = sources(claims) if sources else []
    # The Markdown carries a compact appendix (tables and partition counts, and the hash of the full list); the
    # full lineage (every partition with its sha256 and raw files) is in the manifest and the HTML version.
    appendix = sorted(collections.Counter((e["table"], e["partition"].split("=", 1)[0]) for e in src).items())
    src_hash = hashlib.sha256(
        json.dumps([[e["table"], e["partition"], e.get("sha256", "")] for e in src], sort_keys=True).encode()
    ).hexdigest()
    context = {
        "title": title,
        "dateline": dateline,
        "window": window,
        "summary": summary,
        "macro": macro,
        "market": market,
        "cross": cross,
        "structure": structure,
        "has_structure": bool(structure_all),
        "has_corr_vol": bool(corr_all),
        "corr_vol": corr_vol,
        "buckets": buckets,
        "sectors": sectors,
        "sector_facts": sector_facts,
        "movers": movers,
        "view": view,
        "gaps": gaps,
        "charts": charts,
        "sources": src,
        "appendix": appendix,
        "sources_sha256": src_hash,
        "sources_heading": SOURCES_HEADING,
    }
    markdown = _env(False).get_template("report.md.j2").render(context)
    html = _env(True).get_template("report.html.j2").render(context)
    return RenderedReport(
        title=title.md(),
        headline=" ".join(p.md() for p in summary),
        markdown=markdown,
        html=html,
        facts=[*facts, *macro_facts],
        claims=claims,
        predicates=predicates,
        texts=sorted(
            {t.md() for t in txts} | set(input_gaps) | set(missing)
        ),  # gap lines name days, not figures
        gaps=gaps,
        charts=charts,
        sources_sha256=src_hash,
    )
