"""Macro facts known by the week's close: latest value and its observation date, never filled; and the change in
the overnight rate that three-month Treasury bills price against the effective fed funds rate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from pipelines.metrics.pit import week_window
from pipelines.schemas import WEEKLY_MACRO, WEEKLY_RATE_EXPECTATIONS


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


def known_macro(macro: pl.DataFrame, cutoff: date, lags: dict[str, int] | None = None) -> pl.DataFrame:
    """Rows of ``macro`` (``series_id, date, value`` and optionally ``release_date``) known at the close of
    ``cutoff``: released on or before it, or, without release dates, with ``date + lag <= cutoff``."""
    if "release_date" in macro.columns:
        return macro.filter(pl.col("release_date") <= cutoff)
    lag = pl.col("series_id").replace_strict(lags or {}, default=1, return_dtype=pl.Int64)
    return macro.filter(pl.col("date") + pl.duration(days=lag) <= cutoff)


def same_day_values(macro: pl.DataFrame, first: tuple[str, str], second: tuple[str, str]) -> pl.DataFrame:
    """``date`` and two series' values on the dates both have an observation, oldest first. ``first`` and
    ``second`` are (series_id, name of its value column)."""

    def values(series_id: str, name: str) -> pl.DataFrame:
        return macro.filter(pl.col("series_id") == series_id).select("date", pl.col("value").alias(name))

    return values(*first).join(values(*second), on="date").sort("date")


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
        both = same_day_values(daily, (long_id, "a"), (short_id, "b"))
        if both.height == 0:
            rows.append((name, f"{long_id}-{short_id}", None, None, "unavailable", "percentage points"))
        else:
            last = both.row(-1, named=True)
            v = None if last["a"] is None or last["b"] is None else last["a"] - last["b"]
            rows.append(
                (
                    name,
                    f"{long_id}-{short_id}",
                    v,
                    last["date"],
                    "ok" if v is not None else "missing",
                    "percentage points",
                )
            )
    return rows


def weekly_macro(
    macro: pl.DataFrame, week: str, metrics: tuple[MacroMetric, ...] = DEFAULT_METRICS, curve=CURVE
):
    """``weekly_macro`` rows: each metric's latest observation known at the week's close day.

    The latest known observation is reported even when its value is null (status 'missing'): an unpublished
    release is never replaced by an older value.
    """
    w = week_window(week)
    rows = [(w.monday, *r) for r in latest_macro(macro, w.close_day, metrics, curve)]
    return pl.DataFrame(
        rows,
        schema=WEEKLY_MACRO.polars_schema,
        orient="row",
    )


# ---- rate expectations: three-month bills against the effective fed funds rate ---------------------------------
BILL_SERIES = "DTB3"  # 3-month Treasury bill, secondary market, percent on a discount basis (H.15)
FUNDS_SERIES = "DFF"  # effective federal funds rate, percent, act/360, every calendar day
BILL_DAYS = 91  # days to maturity of a new 3-month (13-week) bill
CUT_BP = 25.0  # one cut, in basis points
RATE_MAX_AGE_DAYS = 6  # the compared observation must be dated within the week: on or after close day - 6
RATE_LAG_DAYS = (
    1  # both series: an observation dated D is known at the close of D + 1 (as the daily series above)
)


def bill_money_market_yield(discount_pct: float, days: int = BILL_DAYS) -> float:
    """A bill's discount rate -> its simple act/360 yield on the price paid, percent: ``360 d / (360 - d t)``.

    The discount rate is quoted on the face value, the funds rate on the money lent: a bill at discount ``d``
    costs ``1 - d t / 360`` and returns ``d t / 360`` on it. Raises ``ValueError`` when the price is not positive
    (no bill trades there: a wrong value)."""
    d = discount_pct / 100
    price = 1 - d * days / 360
    if not price > 0 or not math.isfinite(price):
        raise ValueError(f"a {days}-day bill at a discount rate of {discount_pct}% has no positive price")
    return d * 360 / (360 - d * days) * 100


def bill_overnight_rate(discount_pct: float, days: int = BILL_DAYS) -> float:
    """A bill's discount rate -> the overnight act/360 rate that, compounded daily over ``days``, earns the bill's
    return, percent. This is the effective fed funds rate's basis: the funds rate is an overnight act/360 rate,
    and lending overnight for ``days`` days compounds it."""
    growth = 1 + bill_money_market_yield(discount_pct, days) / 100 * days / 360
    return (growth ** (1 / days) - 1) * 360 * 100


def implied_rate_change(
    macro: pl.DataFrame,
    cutoff: date,
    max_age_days: int = RATE_MAX_AGE_DAYS,
    bill: str = BILL_SERIES,
    funds: str = FUNDS_SERIES,
) -> dict:
    """The bill against the funds rate as known at the close of ``cutoff``: the latest date with both a bill rate
    and a funds rate (blanks are holidays and skipped), both values, the bill's overnight equivalent and the
    change it prices (``implied_change_bp``) and ``cuts_priced``. ``status`` is 'unavailable' when either series
    has no known value, 'stale' when the latest pair is dated before ``cutoff - max_age_days``, else 'ok'."""
    known = known_macro(macro, cutoff, {bill: RATE_LAG_DAYS, funds: RATE_LAG_DAYS}).filter(
        pl.col("value").is_not_null()
    )
    pair = same_day_values(known, (bill, "bill"), (funds, "funds"))
    out: dict = {
        "observation_date": None,
        "bill_discount_pct": None,
        "bill_overnight_pct": None,
        "funds_rate_pct": None,
        "implied_change_bp": None,
        "cuts_priced": None,
        "status": "unavailable",
    }
    if pair.height == 0:
        return out
    day, d, f = pair.row(-1)
    try:
        overnight = bill_overnight_rate(d)
    except ValueError as exc:  # a wrong value (NaN, beyond any price): the week is blocked, naming the row
        raise ValueError(f"macro_observations[series_id={bill}, date={day}]: {exc}") from exc
    change = (overnight - f) * 100
    out.update(
        observation_date=day,
        bill_discount_pct=d,
        bill_overnight_pct=overnight,
        funds_rate_pct=f,
        implied_change_bp=change,
        cuts_priced=-change / CUT_BP,
        status="stale" if (cutoff - day).days > max_age_days else "ok",
    )
    return out


def weekly_rate_expectations(macro: pl.DataFrame, week: str) -> pl.DataFrame:
    """One ``weekly_rate_expectations`` row of ``BILL_SERIES`` against ``FUNDS_SERIES``: ``implied_rate_change``
    at the week's close day and, for the weekly change, at the close day of the week before (each from what was
    known then)."""
    w = week_window(week)
    now = implied_rate_change(macro, w.close_day)
    before = implied_rate_change(macro, w.close_day - timedelta(days=7))
    prev = before["implied_change_bp"] if before["status"] == "ok" else None
    ok = now["status"] == "ok" and prev is not None
    row = {
        "week_start": w.monday,
        "bill_series": BILL_SERIES,
        "funds_series": FUNDS_SERIES,
        **now,
        "prev_observation_date": before["observation_date"] if prev is not None else None,
        "prev_implied_change_bp": prev,
        "change_bp": now["implied_change_bp"] - prev if ok else None,
    }
    return pl.DataFrame([row], schema=WEEKLY_RATE_EXPECTATIONS.polars_schema)
