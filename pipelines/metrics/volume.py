"""Weekly spot and perpetual-futures volume and the perp-to-spot ratio."""

from __future__ import annotations

import polars as pl

from pipelines.metrics.pit import as_of, pct, shift_week, week_window
from pipelines.schemas import WEEKLY_VOLUME


def week_volume(daily: pl.DataFrame, week: str, min_days: int = 7) -> float | None:
    """Sum of ``quote_volume_usd`` over the UTC days Monday..Sunday of ``week`` (a row dated D is the volume
    traded during D); None when fewer than ``min_days`` distinct days have a value."""
    w = week_window(week)
    d = (
        as_of(daily, week)
        .filter(pl.col("date").is_between(w.monday, w.close_day) & pl.col("quote_volume_usd").is_not_null())
        .unique("date", keep="last")
        .sort("date")
    )
    return float(d["quote_volume_usd"].sum()) if d.height >= min_days else None


def weekly_volume(spot_daily: pl.DataFrame, perp_daily: pl.DataFrame, week: str, min_days: int = 7):
    """``weekly_volume`` row for ``week`` (and the week before, for the changes)."""
    w = week_window(week)
    prev = shift_week(week, -1)
    s1, s0 = week_volume(spot_daily, week, min_days), week_volume(spot_daily, prev, min_days)
    p1, p0 = week_volume(perp_daily, week, min_days), week_volume(perp_daily, prev, min_days)

    def ratio(a, b):
        return None if a is None or not b else a / b

    return pl.DataFrame(
        [(w.monday, s1, s0, pct(s0, s1), p1, p0, pct(p0, p1), ratio(p1, s1), ratio(p0, s0))],
        schema=WEEKLY_VOLUME.polars_schema,
        orient="row",
    )
