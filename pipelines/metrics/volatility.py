"""BTC realized volatility: 7-day and 30-day, from hourly and from daily log returns."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from pipelines.calendar import utc_midnight
from pipelines.metrics.pit import as_of, ensure_utc, week_window
from pipelines.schemas import WEEKLY_BTC_VOLATILITY

HOURS_PER_YEAR = 24 * 365
DAYS_PER_YEAR = 365


def hourly_log_returns(btc_hourly: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(bar close instants as int64 µs since epoch UTC, log returns). ``btc_hourly`` is ``ts`` (bar open) and
    ``close``. A return exists only between bars exactly one hour apart; a return is stamped at the close of
    its later bar (``ts + 1h``)."""
    h = ensure_utc(btc_hourly.select("ts", "close"), "ts").unique("ts", keep="last").sort("ts")
    t = h["ts"].dt.epoch("us").to_numpy()
    c = h["close"].cast(pl.Float64).to_numpy()
    ok = np.diff(t) == 3_600_000_000
    r = np.diff(np.log(c))
    return t[1:][ok] + 3_600_000_000, r[ok]


def rolling_rv(
    stamps: np.ndarray,
    r: np.ndarray,
    ends: np.ndarray,
    window: np.int64,
    per_year: float,
    min_frac: float = 0.9,
    step: np.int64 | None = None,
) -> np.ndarray:
    """Annualized realized vol (percent) at each instant of ``ends``: sample standard deviation (ddof=1) of
    the returns stamped in ``(end - window, end]``, times ``sqrt(per_year)``. NaN when fewer than
    ``min_frac`` of the expected ``window / step`` returns are present. Vectorized with cumulative sums."""
    s1 = np.concatenate([[0.0], np.cumsum(r)])
    s2 = np.concatenate([[0.0], np.cumsum(r * r)])
    hi = np.searchsorted(stamps, ends, side="right")
    lo = np.searchsorted(stamps, ends - window, side="right")
    n = hi - lo
    a, b = s1[hi] - s1[lo], s2[hi] - s2[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (b - a * a / n) / (n - 1)
    expected = window / step if step else 0
    vol = np.sqrt(np.maximum(var, 0.0) * per_year) * 100.0
    return np.where((n >= 2) & (n >= min_frac * expected), vol, np.nan)


def _us(d: date | datetime) -> np.int64:
    dt = d if isinstance(d, datetime) else utc_midnight(d)
    return np.int64(int(dt.timestamp()) * 1_000_000)


def daily_log_returns(btc_daily: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(close instants in µs, log returns) from ``date, close`` daily closes (row D = close at D+1 00:00)."""
    d = btc_daily.select("date", "close").unique("date", keep="last").sort("date")
    days = d["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    c = d["close"].cast(pl.Float64).to_numpy()
    ok = np.diff(days) == 1
    stamps = (days[1:] + 1) * 86_400 * 1_000_000
    return stamps[ok].astype(np.int64), np.diff(np.log(c))[ok]


def weekly_btc_volatility(btc_hourly: pl.DataFrame, week: str, btc_daily: pl.DataFrame | None = None):
    """``weekly_btc_volatility`` row for ``week``. ``btc_daily`` (``date, close``) defaults to the hourly bars'
    closes at each 00:00 UTC boundary. ``rv7_highest_since`` compares with the 7-day hourly RV at every earlier
    daily close in the data (vectorized)."""
    w = week_window(week)
    hourly = as_of(ensure_utc(btc_hourly, "ts"), week, "ts", timedelta(hours=1))
    t, r = hourly_log_returns(hourly)
    if btc_daily is None:
        btc_daily = hourly.filter(pl.col("ts").dt.hour() == 23).select(
            pl.col("ts").dt.date().alias("date"), "close"
        )
    daily = as_of(btc_daily, week)
    td, rd = daily_log_returns(daily)
    hour, day = np.int64(3_600_000_000), np.int64(86_400_000_000)
    end, start = _us(w.end), _us(w.start)
    ends = np.array([end, start])
    rv7 = rolling_rv(t, r, ends, 7 * day, HOURS_PER_YEAR, step=hour)
    rv30 = rolling_rv(t, r, ends[:1], 30 * day, HOURS_PER_YEAR, step=hour)[0]
    rv7d = rolling_rv(td, rd, ends[:1], 7 * day, DAYS_PER_YEAR, step=day)[0]
    rv30d = rolling_rv(td, rd, ends[:1], 30 * day, DAYS_PER_YEAR, step=day)[0]
    since = None
    if t.size and np.isfinite(rv7[0]):
        first = (t[0] // day + 1) * day
        boundaries = np.arange(first, end, day, dtype=np.int64)
        hist = rolling_rv(t, r, boundaries, 7 * day, HOURS_PER_YEAR, step=hour)
        higher = np.flatnonzero(hist >= rv7[0])
        if higher.size:
            since = date(1970, 1, 1) + timedelta(days=int(boundaries[higher[-1]] // day) - 1)

    def f(x: float) -> float | None:
        return None if x is None or not math.isfinite(x) else float(x)

    return pl.DataFrame(
        [(w.monday, f(rv7[0]), f(rv7[1]), f(rv7[0] - rv7[1]), f(rv30), f(rv7d), f(rv30d), since)],
        schema=WEEKLY_BTC_VOLATILITY.polars_schema,
        orient="row",
    )
