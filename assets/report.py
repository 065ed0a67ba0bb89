"""Report layer: the rendered weekly update, its manifest, and the blocking claim check."""


import json

import dagster as dg
import polars as pl

from assets._meta import md_table
from pipelines.manifest import code_version, input_entry
from pipelines.narrative.claims import summary_claims
from pipelines.narrative.render import render_report
from pipelines.partitions import WEEKLY, week_close_days
from pipelines.resources import WarehouseResource
from pipelines.schemas import COIN_DAILY, WEEKLY_MARKET_SUMMARY, WEEKLY_MOVERS
from pipelines.warehouse import atomic_write_bytes

SOURCES = "CoinGecko (market caps, prices, volumes, categories)"


@dg.asset(
    group_name="report",
    kinds={"python", "markdown", "html"},
    partitions_def=WEEKLY,
    deps=["weekly_market_summary", "weekly_movers"],
    description=(
        "The weekly market update as Markdown and self-contained HTML under reports/<week>/, with manifest.json "
        "listing every input partition (with sha256) and the code version."
    ),
)
def weekly_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    week = context.partition_key
    summary = wh.read_partition(WEEKLY_MARKET_SUMMARY, week)
    movers = wh.read_partition(WEEKLY_MOVERS, week)
    open_day, close_day = week_close_days(week)
    gaps = []
    if summary["coins_start"][0] != summary["coins_end"][0]:
        gaps.append(
            f"{summary['coins_start'][0]} coins were priced at the open and {summary['coins_end'][0]} at the close."
        )
    rendered = render_report(summary, movers, gaps, SOURCES)
    # Fail closed: a figure that does not match a fresh query of the lake is never published.
    wrong = [c for c in summary_claims(wh, week, rendered.markdown) if not c.found]
    if wrong:
        raise dg.Failure(
            f"report for {week} not published: {len(wrong)} figure(s) disagree with the tables: "
            + "; ".join(f"{c.label} should read {c.expected_text}" for c in wrong)
        )
    out_dir = wh.reports_dir / week
    manifest = {
        "week": week,
        "title": rendered.title,
        "inputs": [
            input_entry(wh, WEEKLY_MARKET_SUMMARY, week),
            input_entry(wh, WEEKLY_MOVERS, week),
            input_entry(wh, COIN_DAILY, open_day.isoformat()),
            input_entry(wh, COIN_DAILY, close_day.isoformat()),
        ],
        "code": code_version(),
    }
    atomic_write_bytes(out_dir / "report.md", rendered.markdown.encode())
    atomic_write_bytes(out_dir / "report.html", rendered.html.encode())
    atomic_write_bytes(out_dir / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
    html_path = out_dir / "report.html"
    return dg.MaterializeResult(
        metadata={
            "title": rendered.title,
            "headline": rendered.headline,
            "report": dg.MetadataValue.md(rendered.markdown),
            "html": dg.MetadataValue.url(html_path.as_uri()),
            "html_path": dg.MetadataValue.path(str(html_path)),
            "markdown_path": dg.MetadataValue.path(str(out_dir / "report.md")),
            "manifest": dg.MetadataValue.json(manifest),
        }
    )


@dg.asset_check(asset=weekly_report, blocking=True, description="Every figure in the text equals a fresh query of the lake.")
def report_claims_match_tables(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get()
    week = context.run.tags["dagster/partition"]
    markdown = (wh.reports_dir / week / "report.md").read_text()
    claims = summary_claims(wh, week, markdown)
    bad = [c for c in claims if not c.found]
    table = pl.DataFrame(
        {"claim": [c.label for c in claims], "expected": [c.expected_text for c in claims], "in_text": [c.found for c in claims]}
    )
    return dg.AssetCheckResult(
        passed=not bad and bool(claims),
        metadata={"claims": len(claims), "mismatches": len(bad), "detail": dg.MetadataValue.md(md_table(table, 30))},
    )
