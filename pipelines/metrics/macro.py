"""Macro facts known by the week's close: latest value and its observation date, never filled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl
import pyarrow as pa

from pipelines.metrics.pit import week_window
from pipelines.schemas import Column, Table, register


@dataclass(frozen=True)
class MacroMetric:
    name: str
    series_id: str
    transform: str = "level"  # 'level' | 'diff' (change vs the previous observation)
    unit: str = ""
    lag_days: int = 1  # used only when the frame has no release_date: observation date + lag = known
    # Daily market series (FRED) are blank on holidays: a blank there is "no trading", not an unpublished
    # release, so blanks are skipped. For releases (payrolls, unemployment) a blank is reported as missing.
    blank_is_holiday: bool = False


MONTHLY_LAG = 38  # a month dated the 1st is published in the first days of the month after next at the latest

DEFAULT_METRICS: tuple[MacroMetric, ...] = (
    MacroMetric("payrolls_change_k", "PAYEMS", "diff", "thousands of jobs", MONTHLY_LAG),
    MacroMetric("unemployment_rate", "UNRATE", "level", "percent", MONTHLY_LAG),
    MacroMetric("ust_2y", "DGS2", "level", "percent", 1, True),
    MacroMetric("ust_10y", "DGS10", "level", "percent", 1, True),
    MacroMetric("japan_10y", "IRLTLT01JPM156N", "level", "percent", MONTHLY_LAG),
    MacroMetric("usd_jpy", "DEXJPUS", "level", "yen per dollar", 1, True),
)
CURVE = ("curve_10y_2y", "DGS10", "DGS2")

WEEKLY_MACRO = register(
    Table(
        name="weekly_macro",
        description="Latest value of each macro series known at the week's close (missing releases stay missing).",
        partition_by="week",
        key=("metric",),
        columns=(
            Column("week_start", pa.date32(), "Monday 00:00 UTC that opens the week"),
            Column("metric", pa.string(), "metric name, e.g. 'payrolls_change_k'"),
            Column("series_id", pa.string(), "source series id(s)"),
            Column("value", pa.float64(), "value; null when the latest known observation is missing", True),
            Column("observation_date", pa.date32(), "date of that observation; null when nothing is known", True),
            Column("status", pa.string(), "'ok', 'missing' (observation exists, value not published) or 'unavailable'"),
            Column("unit", pa.string(), "unit of value"),
        ),
    )
)


def known_macro(macro: pl.DataFrame, cutoff: date, lags: dict[str, int] | None = None) -> pl.DataFrame:
    """Rows of ``macro`` (``series_id, date, value`` and optionally ``release_date``) known at the close of
    ``cutoff``: released on or before it, or, without release dates, with ``date + lag <= cutoff``."""
    if "release_date" in macro.columns:
        return macro.filter(pl.col("release_date") <= cutoff)
    lag = pl.col("series_id").replace_strict(lags or {}, default=1, return_dtype=pl.Int64)
    return macro.filter(pl.col("date") + pl.duration(days=lag) <= cutoff)


def latest_macro(
    macro: pl.DataFrame, cutoff: date, metrics: tuple[MacroMetric, ...] = DEFAULT_METRICS, curve=CURVE
) -> list[tuple]:
    """(metric, series_id, value, observation_date, status, unit) for each metric as known at ``cutoff``."""
    known = known_macro(macro, cutoff, {m.series_id: m.lag_days for m in metrics}).sort(["series_id", "date"])
    rows = []
    for m in metrics:
        s = known.filter(pl.col("series_id") == m.series_id)
        if m.blank_is_holiday:
            s = s.filter(pl.col("value").is_not_null())
        if m.transform == "diff":
            s = s.with_columns(pl.col("value") - pl.col("value").shift())  # null if either side is null
            s = s.slice(1) if s.height else s
        if s.height == 0:
            rows.append((m.name, m.series_id, None, None, "unavailable", m.unit))
            continue
        v, d = s["value"][-1], s["date"][-1]
        rows.append((m.name, m.series_id, v, d, "ok" if v is not None else "missing", m.unit))
    if curve:
        name, long_id, short_id = curve
        daily = known.filter(pl.col("value").is_not_null())  # curve from daily yields: blanks are holidays
        both = (
            daily.filter(pl.col("series_id") == long_id).select("date", pl.col("value").alias("a"))
            .join(daily.filter(pl.col("series_id") == short_id).select("date", pl.col("value").alias("b")), on="date")
            .sort("date")
        )
        if both.height == 0:
            rows.append((name, f"{long_id}-{short_id}", None, None, "unavailable", "percentage points"))
        else:
            last = both.row(-1, named=True)
            v = None if last["a"] is None or last["b"] is None else last["a"] - last["b"]
            rows.append((name, f"{long_id}-{short_id}", v, last["date"], "ok" if v is not None else "missing",
                         "percentage points"))
    return rows


def weekly_macro(macro: pl.DataFrame, week: str, metrics: tuple[MacroMetric, ...] = DEFAULT_METRICS, curve=CURVE):
    """``weekly_macro`` rows: each metric's latest observation known at the week's close day.

    The latest known observation is reported even when its value is null (status 'missing'): an unpublished
    release is never replaced by an older value.
    """
    w = week_window(week)
    rows = [(w.monday, *r) for r in latest_macro(macro, w.close_day, metrics, curve)]
    return pl.DataFrame(
        rows,
        schema={"week_start": pl.Date, "metric": pl.String, "series_id": pl.String, "value": pl.Float64,
                "observation_date": pl.Date, "status": pl.String, "unit": pl.String},
        orient="row",
    )


