"""Perpetual-futures leverage: OI-weighted funding, negative-funding facts, open interest, long/short."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pyarrow as pa

from pipelines.metrics.pit import as_of, ensure_utc, pct, week_window
from pipelines.schemas import Column, Table, register

BASELINE_8H = 0.0001  # Binance's neutral level: the interest-rate component, 0.01% per 8h
US = timedelta(microseconds=1)

WEEKLY_LEVERAGE = register(
    Table(
        name="weekly_leverage",
        description="Funding (OI-weighted), negative-funding facts, total perp open interest and long/short ratio.",
        partition_by="week",
        key=("week_start",),
        columns=(
            Column("week_start", pa.date32(), "Monday 00:00 UTC that opens the week"),
            Column("funding_8h_mean", pa.float64(), "mean funding per 8h (fraction) over the week's settlements", True),
            Column("funding_annualized_mean", pa.float64(), "funding_8h_mean x 3 x 365", True),
            Column("funding_weighting", pa.string(), "'oi' (open-interest weighted), 'equal' or 'mixed'", True),
            Column("negative_days", pa.int32(), "days of the week whose daily funding was negative"),
            Column("first_negative_day", pa.date32(), "first day of the week funding turned negative (the day before was not)", True),
            Column("first_negative_since", pa.date32(), "last negative day before first_negative_day", True),
            Column("longest_negative_run_days", pa.int32(), "longest run of negative days ending in the week"),
            Column("longest_negative_run_since", pa.date32(), "end of the last earlier run at least as long", True),
            Column("oi_open_usd", pa.float64(), "total perp open interest at the open", True),
            Column("oi_close_usd", pa.float64(), "total perp open interest at the close", True),
            Column("oi_change_pct", pa.float64(), "weekly change of total open interest, percent", True),
            Column("oi_ref_day", pa.date32(), "reference day (given, or the peak of the lookback)", True),
            Column("oi_ref_usd", pa.float64(), "total open interest at the reference day's close", True),
            Column("oi_vs_ref_pct", pa.float64(), "oi_close_usd versus oi_ref_usd, percent", True),
            Column("long_short_ratio_mean", pa.float64(), "mean of long_account / short_account readings", True),
            Column("leverage_skew", pa.string(), "'short' (funding < 0), 'long' (> baseline) or 'neutral'", True),
        ),
    )
)


def normalize_funding(funding: pl.DataFrame) -> pl.DataFrame:
    """Add ``rate_8h`` (rate x 8 / interval_hours), ``rate_annualized`` (rate_8h x 3 x 365) and ``day``.

    A settlement at ``t`` pays for the interval ending at ``t``; ``day`` is the UTC day that interval ends in
    (a 00:00 settlement belongs to the previous day, like a daily close).
    """
    f = ensure_utc(funding, "funding_time")
    return f.with_columns(
        rate_8h=pl.col("funding_rate") * 8.0 / pl.col("interval_hours"),
    ).with_columns(
        rate_annualized=pl.col("rate_8h") * 3 * 365,
        day=(pl.col("funding_time") - US).dt.date(),
    )


def _with_oi(funding: pl.DataFrame, open_interest: pl.DataFrame | None, tolerance: timedelta) -> pl.DataFrame:
    f = normalize_funding(funding).sort("funding_time")
    if open_interest is None or open_interest.height == 0:
        return f.with_columns(oi_usd=pl.lit(None, dtype=pl.Float64))
    oi = ensure_utc(open_interest.select("exchange", "symbol", "ts", "oi_usd"), "ts").sort("ts")
    return f.join_asof(
        oi, left_on="funding_time", right_on="ts", by=["exchange", "symbol"], strategy="backward",
        tolerance=tolerance, check_sortedness=False,  # both sides sorted on the key just above
    ).drop("ts")


def _weighted(df: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """OI-weighted mean of rate_8h where any row of the group has OI (rows without OI drop out); else equal."""
    has = pl.col("oi_usd").is_not_null() & (pl.col("oi_usd") > 0)
    return df.group_by(by).agg(
        pl.when(has.any())
        .then((pl.col("rate_8h") * pl.col("oi_usd")).filter(has).sum() / pl.col("oi_usd").filter(has).sum())
        .otherwise(pl.col("rate_8h").mean())
        .alias("funding_8h"),
        pl.when(has.all()).then(pl.lit("oi")).when(has.any()).then(pl.lit("mixed")).otherwise(pl.lit("equal"))
        .alias("weighting"),
        pl.len().cast(pl.Int32).alias("settlements"),
    )


def daily_funding(
    funding: pl.DataFrame, open_interest: pl.DataFrame | None = None, oi_tolerance: timedelta = timedelta(days=1)
) -> pl.DataFrame:
    """``day, funding_8h, funding_annualized, weighting, settlements``: one row per accrual day, all symbols and
    exchanges together, each settlement weighted by its series' latest open interest at or before it."""
    d = _weighted(_with_oi(funding, open_interest, oi_tolerance), ["day"]).sort("day")
    return d.with_columns(funding_annualized=pl.col("funding_8h") * 3 * 365)


def mean_funding(
    funding: pl.DataFrame, open_interest: pl.DataFrame | None, start: datetime, end: datetime,
    oi_tolerance: timedelta = timedelta(days=1),
) -> tuple[float | None, str | None]:
    """(OI-weighted mean rate per 8h, weighting) over settlements with ``start < funding_time <= end``."""
    f = _with_oi(funding, open_interest, oi_tolerance).filter(
        (pl.col("funding_time") > start) & (pl.col("funding_time") <= end)
    )
    if f.height == 0:
        return None, None
    row = _weighted(f.with_columns(g=pl.lit(0)), ["g"]).row(0, named=True)
    return row["funding_8h"], row["weighting"]


def _runs(daily: pl.DataFrame) -> pl.DataFrame:
    """Runs of consecutive days with the same sign: ``start, end, days, negative``; a missing day breaks runs."""
    d = daily.sort("day").with_columns(neg=pl.col("funding_8h") < 0)
    brk = (pl.col("neg") != pl.col("neg").shift()) | ((pl.col("day") - pl.col("day").shift()).dt.total_days() != 1)
    return (
        d.with_columns(run=brk.fill_null(True).cum_sum())
        .group_by("run")
        .agg(pl.col("day").min().alias("start"), pl.col("day").max().alias("end"), pl.len().alias("days"),
             pl.col("neg").first().alias("negative"))
        .sort("start")
    )


def negative_funding_facts(daily: pl.DataFrame, first_day: date, last_day: date) -> dict:
    """Negative-funding facts for the days ``first_day..last_day`` from ``daily_funding`` rows up to last_day."""
    d = daily.filter((pl.col("day") <= last_day) & pl.col("funding_8h").is_not_null()).sort("day")
    inside = d.filter(pl.col("day") >= first_day)
    neg_days = inside.filter(pl.col("funding_8h") < 0)["day"]
    # "turned negative": a negative day whose previous day in the series was not negative (a sign flip)
    flips = d.with_columns(pl.col("funding_8h").shift(1).alias("prev")).filter(
        (pl.col("day") >= first_day) & (pl.col("funding_8h") < 0) & (pl.col("prev").is_null() | (pl.col("prev") >= 0))
    )["day"]
    first_neg = flips.min() if flips.len() else None
    since = None
    if first_neg is not None:
        before = d.filter((pl.col("day") < first_neg) & (pl.col("funding_8h") < 0))["day"]
        since = before.max() if before.len() else None
    runs = _runs(d).filter(pl.col("negative"))
    in_week = runs.filter(pl.col("end") >= first_day).sort(["days", "end"], descending=[True, False])
    longest, run_since = 0, None
    if in_week.height:
        longest, start = in_week["days"][0], in_week["start"][0]
        prior = runs.filter((pl.col("end") < start) & (pl.col("days") >= longest))["end"]
        run_since = prior.max() if prior.len() else None
    return {
        "negative_days": neg_days.len(), "first_negative_day": first_neg, "first_negative_since": since,
        "longest_negative_run_days": int(longest), "longest_negative_run_since": run_since,
    }


def daily_open_interest(open_interest: pl.DataFrame) -> pl.DataFrame:
    """``date, oi_usd, series``: per close day D, the sum over (exchange, symbol) of each series' last reading
    in (D 00:00, D+1 00:00] (a reading at D+1 00:00 is the close of D). The sum does not depend on row order."""
    oi = ensure_utc(open_interest, "ts").with_columns(date=(pl.col("ts") - US).dt.date())
    return (
        oi.sort("ts").group_by(["exchange", "symbol", "date"]).agg(pl.col("oi_usd").last())
        # summing the sorted values makes the float total independent of the order the groups come out in
        .group_by("date").agg(pl.col("oi_usd").sort().sum(), pl.len().cast(pl.Int32).alias("series"))
        .sort("date")
    )


def _oi_on(daily_oi: pl.DataFrame, day: date) -> float | None:
    hit = daily_oi.filter(pl.col("date") == day)
    return hit["oi_usd"][0] if hit.height else None


def weekly_leverage(
    funding: pl.DataFrame,
    open_interest: pl.DataFrame | None,
    long_short: pl.DataFrame | None,
    week: str,
    reference_day: date | None = None,
    peak_lookback_days: int = 90,
    oi_tolerance: timedelta = timedelta(days=1),
) -> pl.DataFrame:
    """``weekly_leverage`` row. Without ``reference_day`` the reference is the highest daily total open interest
    in the ``peak_lookback_days`` before the week's open ("down from the early-October peak")."""
    w = week_window(week)
    f = as_of(ensure_utc(funding, "funding_time"), week, "funding_time")
    oi = None if open_interest is None else as_of(ensure_utc(open_interest, "ts"), week, "ts")
    mean8, weighting = mean_funding(f, oi, w.start, w.end, oi_tolerance)
    facts = negative_funding_facts(daily_funding(f, oi, oi_tolerance), w.monday, w.close_day)
    oi_open = oi_close = ref_usd = None
    ref_day = reference_day
    if oi is not None and oi.height:
        doi = daily_open_interest(oi)
        oi_open, oi_close = _oi_on(doi, w.open_day), _oi_on(doi, w.close_day)
        if ref_day is None:
            look = doi.filter(pl.col("date").is_between(w.open_day - timedelta(days=peak_lookback_days), w.open_day))
            if look.height:
                top = look.sort(["oi_usd", "date"], descending=[True, False]).row(0, named=True)
                ref_day = top["date"]
        ref_usd = _oi_on(doi, ref_day) if ref_day is not None else None
    ls_mean = None
    if long_short is not None and long_short.height:
        ls = as_of(ensure_utc(long_short, "ts"), week, "ts").filter(
            (pl.col("ts") > w.start) & (pl.col("short_account") > 0)
        )
        if ls.height:
            ls_mean = float((ls["long_account"] / ls["short_account"]).mean())
    skew = None
    if mean8 is not None:
        skew = "short" if mean8 < 0 else ("long" if mean8 > BASELINE_8H else "neutral")
    row = {
        "week_start": w.monday, "funding_8h_mean": mean8,
        "funding_annualized_mean": None if mean8 is None else mean8 * 3 * 365, "funding_weighting": weighting,
        **facts,
        "oi_open_usd": oi_open, "oi_close_usd": oi_close, "oi_change_pct": pct(oi_open, oi_close),
        "oi_ref_day": ref_day, "oi_ref_usd": ref_usd, "oi_vs_ref_pct": pct(ref_usd, oi_close),
        "long_short_ratio_mean": ls_mean, "leverage_skew": skew,
    }
    schema = {c.name: pl.from_arrow(pa.array([], type=c.type)).dtype for c in WEEKLY_LEVERAGE.columns}
    return pl.DataFrame([row], schema=schema)
