"""Point-in-time helpers shared by the metric modules.

Conventions (from ``pipelines.calendar``):

* a week ``W`` (its Monday) runs from ``W`` 00:00 UTC to ``W+7`` 00:00 UTC;
* a day-dated row ``D`` in a daily table holds the state at the close of ``D`` (``D+1`` 00:00 UTC), so the week
  opens on the close of the Sunday before (``open_day``) and closes on the close of its own Sunday (``close_day``);
* a timestamped row is known at its timestamp plus the length of the period it describes (``period``: 1 hour
  for an hourly bar labelled by its open, zero for an instantaneous reading such as a funding settlement or an
  open-interest snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from pipelines.calendar import utc_midnight, week_bounds, week_close_days


@dataclass(frozen=True)
class WeekWindow:
    week: str  # the partition key, the Monday
    monday: date
    next_monday: date
    open_day: date  # daily partition whose close opens the week (Sunday before)
    close_day: date  # daily partition whose close ends the week (the week's Sunday)

    @property
    def start(self) -> datetime:
        return utc_midnight(self.monday)

    @property
    def end(self) -> datetime:
        return utc_midnight(self.next_monday)


def week_window(week: str | date) -> WeekWindow:
    key = week.isoformat() if isinstance(week, date) else week
    monday, next_monday = week_bounds(key)
    open_day, close_day = week_close_days(key)
    return WeekWindow(key, monday, next_monday, open_day, close_day)


def shift_week(week: str | date, weeks: int) -> str:
    """The partition key ``weeks`` weeks after (negative: before) ``week``."""
    return (week_window(week).monday + timedelta(days=7 * weeks)).isoformat()


def ensure_utc(df: pl.DataFrame, col: str) -> pl.DataFrame:
    """Cast a datetime column to ``Datetime(us, UTC)``; a naive column is taken to be UTC already."""
    dtype = df.schema[col]
    if not isinstance(dtype, pl.Datetime):
        raise TypeError(f"column {col!r} is {dtype}, expected a datetime")
    expr = pl.col(col).dt.cast_time_unit("us")
    expr = expr.dt.replace_time_zone("UTC") if dtype.time_zone is None else expr.dt.convert_time_zone("UTC")
    return df.with_columns(expr)


def known_by(df: pl.DataFrame, cutoff: date | datetime, col: str = "date", period: timedelta = timedelta(0)):
    """Rows known at ``cutoff``.

    For a ``Date`` column, ``cutoff`` is a close day and rows dated on or before it are kept. For a ``Datetime``
    column, ``cutoff`` is an instant (a ``date`` means its 00:00 UTC) and rows with ``col + period <= cutoff``
    are kept.
    """
    dtype = df.schema[col]
    if isinstance(dtype, pl.Datetime):
        if not isinstance(cutoff, datetime):
            cutoff = utc_midnight(cutoff)
        df = ensure_utc(df, col)
        return df.filter((pl.col(col) + period) <= pl.lit(cutoff).dt.cast_time_unit("us"))
    if dtype == pl.Date:
        if isinstance(cutoff, datetime):
            raise TypeError("a Date column needs a close day, not an instant")
        return df.filter(pl.col(col) <= cutoff)
    raise TypeError(f"column {col!r} is {dtype}, expected Date or Datetime")


def as_of(df: pl.DataFrame, week: str | date, col: str = "date", period: timedelta = timedelta(0)):
    """Rows known by the close of ``week``: every weekly function starts by cutting its inputs with this."""
    w = week_window(week)
    return known_by(df, w.close_day if df.schema[col] == pl.Date else w.end, col, period)


def last_on_or_before(df: pl.DataFrame, day: date, by: list[str], col: str = "date") -> pl.DataFrame:
    """For each group in ``by``, the last row dated on or before ``day``."""
    return df.filter(pl.col(col) <= day).sort(col).group_by(by, maintain_order=True).last()


def pct(a: float | None, b: float | None) -> float | None:
    """Percent change from ``a`` to ``b``; None when either is missing or ``a`` is not positive."""
    if a is None or b is None or a <= 0:
        return None
    return (b / a - 1.0) * 100.0
