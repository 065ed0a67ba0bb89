"""A week's inputs for the narrative: this week's rows of every weekly table, and their history up to the week.

Nothing after the week is read (point in time). A table whose partition for the week is missing is ``None`` in
``current``: the report then says so under "Data gaps" instead of failing, except for the required summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from pipelines.calendar import days_between, week_close_days
from pipelines.clean import estimates
from pipelines.lake_snapshot import LakeSnapshot
from pipelines.schemas import (
    WEEKLY_BTC_VOLATILITY,
    WEEKLY_CORRELATION_BUCKETS,
    WEEKLY_CROSS_ASSET,
    WEEKLY_CRYPTO_RANK,
    WEEKLY_INDEX_RETURNS,
    WEEKLY_LEVERAGE,
    WEEKLY_MACRO,
    WEEKLY_MARKET_SUMMARY,
    WEEKLY_MCAP_CROSSINGS,
    WEEKLY_MOVERS,
    WEEKLY_RATE_EXPECTATIONS,
    WEEKLY_TOTAL_MARKET_CAP,
    WEEKLY_UNIVERSE,
    WEEKLY_VOLUME,
    Table,
)
from pipelines.warehouse import Warehouse

REQUIRED: tuple[Table, ...] = (WEEKLY_MARKET_SUMMARY,)
OPTIONAL: tuple[Table, ...] = (
    WEEKLY_MOVERS,
    WEEKLY_TOTAL_MARKET_CAP,
    WEEKLY_MCAP_CROSSINGS,
    WEEKLY_CROSS_ASSET,
    WEEKLY_CRYPTO_RANK,
    WEEKLY_INDEX_RETURNS,
    WEEKLY_CORRELATION_BUCKETS,
    WEEKLY_LEVERAGE,
    WEEKLY_VOLUME,
    WEEKLY_BTC_VOLATILITY,
    WEEKLY_MACRO,
    WEEKLY_RATE_EXPECTATIONS,
    WEEKLY_UNIVERSE,
)
ALL_TABLES: tuple[Table, ...] = REQUIRED + OPTIONAL
BY_NAME: dict[str, Table] = {t.name: t for t in ALL_TABLES}
MAY_BE_EMPTY = frozenset({"weekly_mcap_crossings"})
HISTORY_WEEKS = 10_000  # every earlier week: "since" facts and the claim check see the same history


@dataclass
class WeekData:
    week: str
    current: dict[str, pl.DataFrame | None]
    history: dict[str, pl.DataFrame]  # rows with week_start <= week, every partition read
    # days of the week (open..close) whose coin_daily market caps are estimates -> coins estimated
    estimated_days: dict[date, int] = field(default_factory=dict)

    @property
    def week_date(self) -> date:
        return date.fromisoformat(self.week)

    def rows(self, table: str) -> pl.DataFrame | None:
        return self.current.get(table)

    def one(self, table: str) -> dict | None:
        df = self.current.get(table)
        return df.row(0, named=True) if df is not None and df.height else None

    def hist(self, table: str) -> pl.DataFrame:
        return self.history.get(table, empty(BY_NAME[table]))

    def missing(self) -> list[str]:
        return [t.name for t in ALL_TABLES if self.current.get(t.name) is None]


def empty(table: Table) -> pl.DataFrame:
    return pl.from_arrow(table.arrow_schema.empty_table())  # type: ignore[return-value]


def from_frames(week: str, frames: dict[str, pl.DataFrame]) -> WeekData:
    """Build from frames holding any number of weeks (``week_start``); later weeks are cut off."""
    wd = date.fromisoformat(week)
    current: dict[str, pl.DataFrame | None] = {}
    history: dict[str, pl.DataFrame] = {}
    for t in ALL_TABLES:
        df = frames.get(t.name)
        if df is None:
            current[t.name] = None
            continue
        h = df.filter(pl.col("week_start") <= wd).sort("week_start", maintain_order=True)
        history[t.name] = h
        this = h.filter(pl.col("week_start") == wd)
        # A week with no crossing is an empty partition, not a missing one.
        current[t.name] = this if this.height or t.name in MAY_BE_EMPTY else None
    return WeekData(week, current, history)


def partitions_up_to(wh: Warehouse, table: Table, week: str, limit: int = HISTORY_WEEKS) -> list[str]:
    """The last ``limit`` partitions of ``table`` up to ``week`` that have their file, oldest first."""
    return [key for key in wh.partitions_with_files(table) if key <= week][-limit:]


def history_rows(wh: Warehouse, table: Table, week: str) -> pl.DataFrame:
    """Every row of the weekly ``table``'s partitions up to ``week``, in the order of its partitions and of each
    file's rows, typed as its schema: one read of the table, not one a partition, which grows with every week of
    the history (fifteen tables of years of weeks). On a snapshot of many weeks (a range of reports) the table is
    read once and each week keeps its partitions up to it (a filter keeps the order)."""
    if isinstance(wh, LakeSnapshot) and not wh.read_spans:
        return _whole(wh, table).filter(pl.col("week") <= date.fromisoformat(week)).drop("week")
    return _rows_up_to(wh, table, week).drop("week")


def table_week(wh: Warehouse, name: str, week: str) -> pl.DataFrame:
    """The rows of the weekly table ``name`` for ``week``, as ``SELECT * ... WHERE week = CAST(? AS DATE)`` gives
    them (the claim check's and the second derivation's reads, ``claims.rows_by_key``). On a snapshot of the
    lake the week's rows are filtered from the one read of the table that ``history_rows`` also types
    (``_read_whole``): the same rows in the same order (a filter keeps the read's order), an empty frame of its
    columns for a week without rows. A filter, not a split of the table by week kept for the snapshot: one report
    asks for one week of a table whose every week is read, and splitting years of weeks cost more than the week's
    filter."""
    if not isinstance(wh, LakeSnapshot):
        return wh.query(f'SELECT * FROM "{name}" WHERE week = CAST(? AS DATE)', [week])
    return _read_whole(wh, name).filter(pl.col("week") == date.fromisoformat(week))


def _read_whole(wh: LakeSnapshot, name: str) -> pl.DataFrame:
    """``SELECT *`` of the weekly table ``name`` with its partition (``week``), as DuckDB types it, read once per
    snapshot: ``history_rows`` casts it to the table's schema, ``table_week`` filters its week."""
    return wh.derived(("weekly table read", name), lambda: wh.query(f'SELECT * FROM "{name}"'))


def _whole(wh: LakeSnapshot, table: Table) -> pl.DataFrame:
    """The table's rows with their partition (``week``), typed as its schema, once per snapshot."""
    return wh.derived(("history_rows", table.name), lambda: _typed(_read_whole(wh, table.name), table))


def _rows_up_to(wh: Warehouse, table: Table, week: str) -> pl.DataFrame:
    """The table's rows with their partition (``week``), up to ``week``, typed as its schema."""
    return _typed(wh.query(f'SELECT * FROM "{table.name}" WHERE week <= CAST(? AS DATE)', [week]), table)


def _typed(df: pl.DataFrame, table: Table) -> pl.DataFrame:
    return df.cast(dict(empty(table).schema))  # type: ignore[arg-type]


def load_week(wh: Warehouse, week: str) -> tuple[WeekData, dict[str, list[str]]]:
    """Read the week and its history from the lake; also return the partitions read, per table."""
    current: dict[str, pl.DataFrame | None] = {}
    history: dict[str, pl.DataFrame] = {}
    read: dict[str, list[str]] = {}
    for t in ALL_TABLES:
        keys = partitions_up_to(wh, t, week)
        read[t.name] = keys
        history[t.name] = history_rows(wh, t, week) if keys else empty(t)
        current[t.name] = wh.read_partition(t, week) if week in keys else None
    open_day, close_day = week_close_days(week)
    estimated = estimates.estimated_days(wh, days_between(open_day, close_day))
    return WeekData(week, current, history, estimated), read
