"""Partitions, declared once and imported by every asset.

* ``DAILY``: one partition per UTC day from 2025-01-01. Daily partition ``D`` holds the state of the market
  at the *close* of day D, i.e. at D+1 00:00 UTC (CoinGecko's daily point stamped D+1 00:00, Binance's daily
  bar opened at D). The history starts in January so the report can say "first time since April".
* ``WEEKLY``: Monday 00:00 UTC to the next Monday 00:00 UTC, keyed by the Monday, from 2025-03-31. Dagster only
  offers completed windows, so the latest partition is always the last finished week.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone

import dagster as dg

DAILY_START = "2025-01-01"
WEEKLY_START = "2025-03-31"

DAILY = dg.DailyPartitionsDefinition(start_date=DAILY_START, timezone="UTC")
# The tags of a run over a range of partitions (one run for many days or weeks: a backfill).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
WEEKLY = dg.WeeklyPartitionsDefinition(start_date=WEEKLY_START, day_offset=1, timezone="UTC")

# A weekly partition reads the daily partitions of its own week and of the week before
# (the previous week's last close is this week's opening level). allow_nonexistent_upstream_partitions is a
# parameter Dagster 1.13 marks beta; it is used deliberately, so its warning is not printed at every command.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    WEEK_FROM_DAYS = dg.TimeWindowPartitionMapping(
        start_offset=-1, allow_nonexistent_upstream_partitions=True
    )


def parse_day(key: str) -> date:
    return date.fromisoformat(key)


def week_bounds(week_key: str) -> tuple[date, date]:
    """(monday, next_monday) for a weekly partition key; the week is [monday, next_monday)."""
    monday = date.fromisoformat(week_key)
    if monday.weekday() != 0:
        raise ValueError(f"weekly partition key {week_key!r} is not a Monday")
    return monday, monday + timedelta(days=7)


def week_close_days(week_key: str) -> tuple[date, date]:
    """The daily partitions whose closes open and close the week.

    The week opens at Monday 00:00, the close of the Sunday before, and ends at the next Monday 00:00, the
    close of the week's own Sunday.
    """
    monday, next_monday = week_bounds(week_key)
    return monday - timedelta(days=1), next_monday - timedelta(days=1)


def utc_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def latest_complete_week(now: datetime | None = None) -> str:
    """The key of the last weekly partition that has closed by ``now`` (UTC)."""
    now = now or datetime.now(timezone.utc)
    today = now.astimezone(timezone.utc).date()
    this_monday = today - timedelta(days=today.weekday())
    return (this_monday - timedelta(days=7)).isoformat()


def days_between(first: date, last: date) -> list[date]:
    """Every day from first to last, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def weeks_of_run(tags: Mapping[str, str]) -> list[str]:
    """The weekly partitions a run materializes, from its tags: its one partition, or every week of its range
    (a backfill run of many weeks)."""
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not start or not end:
        raise dg.Failure("the run has neither a weekly partition nor a range of them in its tags")
    return WEEKLY.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))
