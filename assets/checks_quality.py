"""Data quality checks: the rules of ``pipelines.quality`` as Dagster asset checks.

* ``coin_daily_quality`` (one multi-check on ``coin_daily``, run right after it in the daily job) evaluates the
  days the run just materialized. The checks are not partitioned: with the single-run backfill policy one run
  materializes a whole range, and Dagster 1.13 records a partitioned check's result only for single-partition
  steps, so the range is read from the run (``context.partition_key_range``, else the run's range tags) and the
  result's metadata lists the days. ERROR results are blocking: the run fails and ``run_week`` stops before the
  weekly job.
* ``week_inputs_quality`` on ``weekly_market_summary`` applies the blocking rules again to the days a week reads
  (the open day to the close day, from the lake), so a weekly run started on its own (UI, schedule) cannot
  publish from days that failed: the check blocks ``weekly_report``.

Stablecoin peg and funding outliers are WARN: a real depeg or a funding spike is news, not bad data.
"""


from collections.abc import Iterator
from datetime import date

import dagster as dg

from assets._meta import md_table
from pipelines import estimates, quality
from pipelines.cleaning import latest_registry
from pipelines.partitions import days_between, parse_day, week_close_days
from pipelines.resources import WarehouseResource
from pipelines.schemas import COIN_DAILY

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

_RULES = {
    "coverage": (dg.AssetCheckSeverity.ERROR, "BTC and ETH present each day, and at least 90% of the registry's coins."),
    "duplicates": (dg.AssetCheckSeverity.ERROR, "At most one row per (date, coin_id) across the lake."),
    "market_cap_outliers": (dg.AssetCheckSeverity.ERROR, "No coin's market cap moves tenfold (up or down) in a day."),
    "stale_observations": (dg.AssetCheckSeverity.ERROR, "Every observed_at lies in the hour after the day's close."),
    "stablecoin_peg": (dg.AssetCheckSeverity.WARN, "USD stablecoins within 2% of $1."),
    "funding_outliers": (dg.AssetCheckSeverity.WARN, "|funding rate| at most 1% per interval (when the table exists)."),
}


def _days_of_run(context: dg.AssetCheckExecutionContext) -> list[date]:
    try:
        if context.has_partition_key_range:
            r = context.partition_key_range
            return days_between(parse_day(r.start), parse_day(r.end))
    except Exception:  # noqa: BLE001 (an unpartitioned check step may not expose the run's range)
        pass
    tags = context.run.tags
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return days_between(parse_day(tags[RANGE_START_TAG]), parse_day(tags[RANGE_END_TAG]))
    if "dagster/partition" in tags:
        return [parse_day(tags["dagster/partition"])]
    raise dg.Failure("cannot tell which coin_daily partitions this run materialized")


def _evaluate(wh, days: list[date], names: tuple[str, ...]) -> list[quality.Outcome]:
    registry = latest_registry(wh)
    found = {
        "coverage": lambda: quality.coverage(wh, days, registry.height, estimates.estimated_days(wh, days)),
        "duplicates": lambda: quality.duplicates(wh, days),
        "market_cap_outliers": lambda: quality.outliers(wh, days),
        "stale_observations": lambda: quality.stale(wh, days),
        "stablecoin_peg": lambda: quality.stablecoin_peg(wh, days, registry),
        "funding_outliers": lambda: quality.funding(wh, days),
    }
    return [found[n]() for n in names]


def _result(outcome: quality.Outcome, days: list[date], asset: str) -> dg.AssetCheckResult:
    import polars as pl  # noqa: PLC0415

    severity = _RULES[outcome.name][0]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=severity,
        description=None if outcome.passed else f"{len(outcome.problems)} problem(s), first: {outcome.problems[0]}",
        metadata={
            "days": f"{min(days)}..{max(days)}" if days else "none",
            "checked": outcome.checked,
            "problems": len(outcome.problems),
            "skipped": outcome.skipped or "no",
            "detail": dg.MetadataValue.md(md_table(pl.DataFrame({"problem": outcome.problems}), 30)),
        },
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset=COIN_DAILY.name, blocking=True, description=desc)
        for name, (_, desc) in _RULES.items()
    ],
    description="Quality of the coin_daily partitions this run materialized.",
)
def coin_daily_quality(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult]:
    wh = warehouse.get()
    days = _days_of_run(context)
    for outcome in _evaluate(wh, days, tuple(_RULES)):
        yield _result(outcome, days, COIN_DAILY.name)


BLOCKING = tuple(n for n, (sev, _) in _RULES.items() if sev == dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset="weekly_market_summary",
    blocking=True,
    description="The coin_daily days this week reads pass the blocking quality rules (coverage, duplicates, "
    "outliers, staleness); otherwise the report is not rendered.",
)
def week_inputs_quality(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get()
    open_day, close_day = week_close_days(context.run.tags["dagster/partition"])
    days = days_between(open_day, close_day)
    outcomes = _evaluate(wh, days, BLOCKING)
    problems = [f"{o.name}: {p}" for o in outcomes for p in o.problems]
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if not problems else f"{len(problems)} problem(s), first: {problems[0]}",
        metadata={
            "days": f"{open_day}..{close_day}",
            "rules": ", ".join(BLOCKING),
            "problems": len(problems),
            "detail": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:30]) or "_none_"),
        },
    )

