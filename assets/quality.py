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
from dagster._check import CheckError

from assets._meta import md_table
from pipelines import quality
from pipelines.calendar import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    days_between,
    parse_day,
    week_close_days,
    weeks_of_run,
)
from pipelines.clean import estimates
from pipelines.clean.coingecko import latest_registry
from pipelines.lake_snapshot import reads_for
from pipelines.resources import WarehouseResource
from pipelines.schemas import COIN_DAILY
from pipelines.warehouse import Warehouse
from pipelines.week_processes import map_weeks

_RULES = {
    "coverage": (
        dg.AssetCheckSeverity.ERROR,
        "BTC and ETH present each day, and at least 90% of the registry's coins.",
    ),
    "duplicates": (dg.AssetCheckSeverity.ERROR, "At most one row per (date, coin_id) across the lake."),
    "market_cap_outliers": (
        dg.AssetCheckSeverity.ERROR,
        "No coin's market cap moves tenfold (up or down) in a day.",
    ),
    "stale_observations": (
        dg.AssetCheckSeverity.ERROR,
        "Every observed_at lies in the hour after the day's close.",
    ),
    "stablecoin_peg": (dg.AssetCheckSeverity.WARN, "USD stablecoins within 2% of $1."),
    "funding_outliers": (
        dg.AssetCheckSeverity.WARN,
        "|funding rate| at most 1% per interval (when the table exists).",
    ),
}


def _days_of_run(context: dg.AssetCheckExecutionContext) -> list[date]:
    """The days the run materialized: from its range tags (or single partition tag), cross-checked against the
    context's partition range when the step exposes one. Any disagreement, or an unexpected error reading the
    context, fails the check: it never silently evaluates another set of days."""
    tags = context.run.tags
    from_tags: list[date] | None = None
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        from_tags = days_between(parse_day(tags[RANGE_START_TAG]), parse_day(tags[RANGE_END_TAG]))
    elif "dagster/partition" in tags:
        from_tags = [parse_day(tags["dagster/partition"])]
    from_context: list[date] | None = None
    if context.has_partition_key_range:
        try:
            r = context.partition_key_range
        except (dg.DagsterInvariantViolationError, CheckError):
            r = None  # an unpartitioned check step does not expose the range: the run's tags above define it
        if r is not None:
            from_context = days_between(parse_day(r.start), parse_day(r.end))
    if from_tags is not None and from_context is not None and from_tags != from_context:
        raise dg.Failure(
            f"the run's tags say {from_tags[0]}..{from_tags[-1]} but the step's range is "
            f"{from_context[0]}..{from_context[-1]}: refusing to guess which days to check"
        )
    days = from_context or from_tags
    if not days:
        raise dg.Failure("cannot tell which coin_daily partitions this run materialized")
    return days


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
    import polars as pl

    severity = _RULES[outcome.name][0]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=severity,
        description=None
        if outcome.passed
        else f"{len(outcome.problems)} problem(s), first: {outcome.problems[0]}",
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


def week_problems_of(weeks: list[str], root: str) -> dict[str, list[str]]:
    """``quality.week_problems`` of each of ``weeks``, over one read of the lake at ``root``."""
    with reads_for(Warehouse(root), weeks, keep=True) as source:
        return {week: quality.week_problems(source, week) for week in weeks}  # type: ignore[arg-type]


@dg.asset_check(
    asset="weekly_market_summary",
    blocking=True,
    description="The coin_daily days this week reads pass the blocking quality rules (coverage, duplicates, "
    "outliers, staleness); otherwise the report is not rendered.",
)
def week_inputs_quality(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    weeks = weeks_of_run(context.run.tags)
    open_day, close_day = week_close_days(weeks[0])[0], week_close_days(weeks[-1])[1]
    # coverage, duplicates, outliers, staleness of coin_daily, then the week-level value rules over every clean
    # table the week reads (duplicates, non-finite, non-positive/null required values, shifted timestamps,
    # implausible funding), each problem naming its row (and its week, in a run of many weeks).
    # (a range of weeks reads the lake once per process; a long one is split between processes,
    # pipelines/week_processes.py)
    by_week = map_weeks(week_problems_of, weeks, warehouse.root)
    problems = [p if len(weeks) == 1 else f"{week}: {p}" for week in weeks for p in by_week[week]]
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if not problems else f"{len(problems)} problem(s), first: {problems[0]}",
        metadata={
            "days": f"{open_day}..{close_day}",
            "rules": ", ".join((*BLOCKING, "week_values")),
            "problems": len(problems),
            "detail": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:30]) or "_none_"),
        },
    )
