"""Perpetual-futures leverage: OI-weighted funding, negative-funding facts, open interest, long/short."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from pipelines.metrics.pit import as_of, ensure_utc, pct, week_window
from pipelines.schemas import WEEKLY_LEVERAGE

BASELINE_8H = 0.0001  # Binance's neutral level: the interest-rate component, 0.01% per 8h
US = timedelta(microseconds=1)


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


HAS_OI = pl.col("oi_usd").is_not_null() & (pl.col("oi_usd") > 0)  # a reading that can weigh


def _with_oi(funding: pl.DataFrame, open_interest: pl.DataFrame | None, tolerance: timedelta) -> pl.DataFrame:
    """``normalize_funding`` rows with ``oi_usd``: their series' last positive open-interest reading at most
    ``tolerance`` before the settlement (a zero or negative reading is no reading, as in
    ``daily_series_open_interest``), null when there is none."""
    f = normalize_funding(funding).sort("funding_time")
    if open_interest is None or open_interest.height == 0:
        return f.with_columns(oi_usd=pl.lit(None, dtype=pl.Float64))
    oi = (
        ensure_utc(open_interest.select("exchange", "symbol", "ts", "oi_usd"), "ts").filter(HAS_OI).sort("ts")
    )
    return f.join_asof(
        oi,
        left_on="funding_time",
        right_on="ts",
        by=["exchange", "symbol"],
        strategy="backward",
        tolerance=tolerance,
        check_sortedness=False,  # both sides sorted on the key just above
    ).drop("ts")


def funding_weighting() -> list[pl.Expr]:
    """Aggregations of a group of settlements with their ``oi_usd``: ``funding_8h``, the OI-weighted mean of
    ``rate_8h`` over those with a positive OI (rows without one drop out), the equal-weighted mean when none has
    one; ``weighting`` (``oi``, ``mixed`` or ``equal``); ``settlements``, how many."""
    return [
        pl.when(HAS_OI.any())
        .then(
            (pl.col("rate_8h") * pl.col("oi_usd")).filter(HAS_OI).sum()
            / pl.col("oi_usd").filter(HAS_OI).sum()
        )
        .otherwise(pl.col("rate_8h").mean())
        .alias("funding_8h"),
        pl.when(HAS_OI.all())
        .then(pl.lit("oi"))
        .when(HAS_OI.any())
        .then(pl.lit("mixed"))
        .otherwise(pl.lit("equal"))
        .alias("weighting"),
        pl.len().cast(pl.Int32).alias("settlements"),
    ]


def _weighted(df: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """``funding_weighting`` of each group of ``by``."""
    return df.group_by(by).agg(funding_weighting())


def daily_funding(
    funding: pl.DataFrame,
    open_interest: pl.DataFrame | None = None,
    oi_tolerance: timedelta = timedelta(days=1),
) -> pl.DataFrame:
    """``day, funding_8h, funding_annualized, weighting, settlements``: one row per accrual day, all symbols and
    exchanges together, each settlement weighted by its series' latest open interest at or before it."""
    d = _weighted(_with_oi(funding, open_interest, oi_tolerance), ["day"]).sort("day")
    return d.with_columns(funding_annualized=pl.col("funding_8h") * 3 * 365)


def funding_coverage(
    funding: pl.DataFrame,
    open_interest: pl.DataFrame | None,
    start: datetime,
    end: datetime,
    oi_tolerance: timedelta = timedelta(days=1),
) -> dict:
    """The week's mean funding with its weighting named as it was, over settlements ``start < t <= end``.

    ``funding_8h_mean`` is OI-weighted over the settlements that have an OI reading (within ``oi_tolerance``
    before them); settlements without one are left out of it (when none has one: the equal-weighted mean).
    ``funding_weighting`` is 'oi' only when every settlement had its OI, 'mixed' when some did, 'equal' when none
    did; ``funding_oi_share`` is the share of settlements the OI-weighted mean covers and
    ``funding_venues_without_oi`` the venues whose settlements lacked OI.
    """
    # each settlement takes the OI reading at or before it, so the window's settlements are cut first; a reading
    # more than ``oi_tolerance`` before the window's start weighs none of them (a week's history of readings
    # would otherwise be sorted and joined for every week of a range)
    window = ensure_utc(funding, "funding_time").filter(
        (pl.col("funding_time") > start) & (pl.col("funding_time") <= end)
    )
    if open_interest is not None:
        open_interest = ensure_utc(open_interest, "ts").filter(pl.col("ts") >= start - oi_tolerance)
    f = _with_oi(window, open_interest, oi_tolerance)
    if f.height == 0:
        return {
            "funding_8h_mean": None,
            "funding_weighting": None,
            "funding_settlements": 0,
            "funding_oi_share": None,
            "funding_venues_without_oi": None,
        }
    row = _weighted(f.with_columns(g=pl.lit(0)), ["g"]).row(0, named=True)
    with_oi = f.filter(HAS_OI).height
    without = sorted(set(f.filter(~HAS_OI)["exchange"].to_list()))
    return {
        "funding_8h_mean": row["funding_8h"],
        "funding_weighting": row["weighting"],
        "funding_settlements": f.height,
        "funding_oi_share": with_oi / f.height,
        "funding_venues_without_oi": ", ".join(without) or None,
    }


def _runs(daily: pl.DataFrame) -> pl.DataFrame:
    """Runs of consecutive days with the same sign: ``start, end, days, negative``; a missing day breaks runs."""
    d = daily.sort("day").with_columns(neg=pl.col("funding_8h") < 0)
    brk = (pl.col("neg") != pl.col("neg").shift()) | (
        (pl.col("day") - pl.col("day").shift()).dt.total_days() != 1
    )
    return (
        d.with_columns(run=brk.fill_null(True).cum_sum())
        .group_by("run")
        .agg(
            pl.col("day").min().alias("start"),
            pl.col("day").max().alias("end"),
            pl.len().alias("days"),
            pl.col("neg").first().alias("negative"),
        )
        .sort("start")
    )


def negative_funding_facts(daily: pl.DataFrame, first_day: date, last_day: date) -> dict:
    """Negative-funding facts for the days ``first_day..last_day`` from ``daily_funding`` rows up to last_day."""
    d = daily.filter((pl.col("day") <= last_day) & pl.col("funding_8h").is_not_null()).sort("day")
    inside = d.filter(pl.col("day") >= first_day)
    neg_days = inside.filter(pl.col("funding_8h") < 0)["day"]
    # "turned negative": a negative day whose day before was not negative (a sign flip), or the first day of the
    # series; after a missing day the sign of the day before is not known, so it is no flip
    day_before = (pl.col("day") - pl.col("day").shift(1)).dt.total_days() == 1
    flips = d.with_columns(pl.col("funding_8h").shift(1).alias("prev")).filter(
        (pl.col("day") >= first_day)
        & (pl.col("funding_8h") < 0)
        & (pl.col("prev").is_null() | ((pl.col("prev") >= 0) & day_before))
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
        "negative_days": neg_days.len(),
        "first_negative_day": first_neg,
        "first_negative_since": since,
        "longest_negative_run_days": int(longest),
        "longest_negative_run_since": run_since,
    }


def daily_open_interest(open_interest: pl.DataFrame) -> pl.DataFrame:
    """``date, oi_usd, series``: per close day D, the sum over (exchange, symbol) of each series' last reading
    in (D 00:00, D+1 00:00] (a reading at D+1 00:00 is the close of D). The sum does not depend on row order."""
    oi = ensure_utc(open_interest, "ts").with_columns(date=(pl.col("ts") - US).dt.date())
    return (
        oi.sort("ts")
        .group_by(["exchange", "symbol", "date"])
        .agg(pl.col("oi_usd").last())
        # summing the sorted values makes the float total independent of the order the groups come out in
        .group_by("date")
        .agg(pl.col("oi_usd").sort().sum(), pl.len().cast(pl.Int32).alias("series"))
        .sort("date")
    )


def _oi_on(daily_oi: pl.DataFrame, day: date) -> float | None:
    hit = daily_oi.filter(pl.col("date") == day)
    return hit["oi_usd"][0] if hit.height else None


def daily_series_open_interest(open_interest: pl.DataFrame) -> pl.DataFrame:
    """``exchange, symbol, date, oi_usd``: each series' last positive reading in (D 00:00, D+1 00:00]."""
    oi = ensure_utc(open_interest, "ts").filter(pl.col("oi_usd").is_not_null() & (pl.col("oi_usd") > 0))
    return (
        oi.with_columns(date=(pl.col("ts") - US).dt.date())
        .sort("ts")
        .group_by(["exchange", "symbol", "date"])
        .agg(pl.col("oi_usd").last())
        .sort(["date", "exchange", "symbol"])
    )


def _series_on(series_oi: pl.DataFrame, day: date) -> pl.DataFrame:
    return series_oi.filter(pl.col("date") == day).select("exchange", "symbol", "oi_usd")


def _sum(values: pl.Series) -> float | None:
    # summed sorted, so the float total does not depend on row order
    return float(values.sort().sum()) if values.len() else None


def _names(df: pl.DataFrame) -> list[str]:
    return sorted(f"{e}:{s}" for e, s in df.select("exchange", "symbol").iter_rows())


def _venues(df: pl.DataFrame) -> str | None:
    return ", ".join(sorted(set(df["exchange"].to_list()))) or None


def compare_open_interest(series_oi: pl.DataFrame, day_a: date, day_b: date) -> dict:
    """Like-for-like comparison of open interest between the closes of ``day_a`` and ``day_b``.

    ``series_oi`` is ``daily_series_open_interest``. The totals at each end sum every series with a reading that
    day; the change compares only the (venue, symbol) series present on both days, so a venue that joins, drops
    out or misses a day's reading changes the coverage columns, not the change.
    """
    a, b = _series_on(series_oi, day_a), _series_on(series_oi, day_b)
    common = a.join(b, on=["exchange", "symbol"], how="inner", suffix="_b")
    ca, cb = _sum(common["oi_usd"]), _sum(common["oi_usd_b"])
    only_a = a.join(b, on=["exchange", "symbol"], how="anti")
    only_b = b.join(a, on=["exchange", "symbol"], how="anti")
    return {
        "total_a": _sum(a["oi_usd"]),
        "total_b": _sum(b["oi_usd"]),
        "common_a": ca,
        "common_b": cb,
        "change_pct": pct(ca, cb),
        "series_a": a.height,
        "series_b": b.height,
        "series_common": common.height,
        "venues_a": _venues(a),
        "venues_b": _venues(b),
        "venues_common": _venues(common),
        "missing_at_a": ", ".join(_names(only_b)) or None,
        "missing_at_b": ", ".join(_names(only_a)) or None,
        "changed": bool(only_a.height or only_b.height),
    }


def reference_peak_day(series_oi: pl.DataFrame, close_day: date, first: date, last: date) -> date | None:
    """The reference peak for ``close_day``: among the days ``first..last``, those that have a reading for the
    most of the close day's series; of those, the day whose total over the series it shares with the close is
    highest (ties: the earliest). A day is never chosen for a venue the close does not have."""
    close = _series_on(series_oi, close_day).select("exchange", "symbol")
    if close.height == 0:
        return None
    look = series_oi.filter(pl.col("date").is_between(first, last)).join(close, on=["exchange", "symbol"])
    if look.height == 0:
        return None
    per_day = look.group_by("date").agg(pl.len().alias("n"), pl.col("oi_usd").sort().sum().alias("total"))
    return per_day.sort(["n", "total", "date"], descending=[True, True, False])["date"][0]


def weekly_leverage(
    funding: pl.DataFrame,
    open_interest: pl.DataFrame | None,
    long_short: pl.DataFrame | None,
    week: str,
    reference_day: date | None = None,
    peak_lookback_days: int = 90,
    oi_tolerance: timedelta = timedelta(days=1),
    daily: pl.DataFrame | None = None,
    series_oi: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``weekly_leverage`` row. Open interest is compared like for like (``compare_open_interest``): the change and
    the distance from the reference peak use only the (venue, symbol) series present at both ends. Without
    ``reference_day`` the reference is ``reference_peak_day`` over the week's open day and the
    ``peak_lookback_days`` before it ("down from the early-October peak").

    ``daily`` (``daily_funding``) and ``series_oi`` (``daily_series_open_interest``) of the same inputs over a
    longer history may be given, to share them between the weeks of a range: a day's row depends only on that
    day and the readings before it, so the week's rows are theirs through its close day."""
    w = week_window(week)
    f = as_of(ensure_utc(funding, "funding_time"), week, "funding_time")
    oi = None if open_interest is None else as_of(ensure_utc(open_interest, "ts"), week, "ts")
    fc = funding_coverage(f, oi, w.start, w.end, oi_tolerance)
    mean8 = fc["funding_8h_mean"]
    daily = (
        daily_funding(f, oi, oi_tolerance) if daily is None else daily.filter(pl.col("day") <= w.close_day)
    )
    facts = negative_funding_facts(daily, w.monday, w.close_day)
    wk = {
        "total_a": None,
        "total_b": None,
        "common_a": None,
        "common_b": None,
        "change_pct": None,
        "series_a": None,
        "series_b": None,
        "series_common": None,
        "venues_a": None,
        "venues_b": None,
        "venues_common": None,
        "missing_at_a": None,
        "missing_at_b": None,
        "changed": None,
    }
    ref = {"common_a": None, "common_b": None, "missing_at_a": None, "change_pct": None}
    ref_day = reference_day
    if oi is not None and oi.height:
        soi = (
            daily_series_open_interest(oi)
            if series_oi is None
            else series_oi.filter(pl.col("date") <= w.close_day)
        )
        wk = compare_open_interest(soi, w.open_day, w.close_day)
        if ref_day is None:
            ref_day = reference_peak_day(
                soi, w.close_day, w.open_day - timedelta(days=peak_lookback_days), w.open_day
            )
        if ref_day is not None:
            ref = compare_open_interest(soi, ref_day, w.close_day)
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
        "week_start": w.monday,
        "funding_8h_mean": mean8,
        "funding_annualized_mean": None if mean8 is None else mean8 * 3 * 365,
        "funding_weighting": fc["funding_weighting"],
        "funding_settlements": fc["funding_settlements"],
        "funding_oi_share": fc["funding_oi_share"],
        "funding_venues_without_oi": fc["funding_venues_without_oi"],
        **facts,
        "oi_open_usd": wk["total_a"],
        "oi_close_usd": wk["total_b"],
        "oi_change_pct": pct(wk["total_a"], wk["total_b"]),
        "oi_open_common_usd": wk["common_a"],
        "oi_close_common_usd": wk["common_b"],
        "oi_change_like_for_like_pct": wk["change_pct"],
        "oi_series_open": wk["series_a"],
        "oi_series_close": wk["series_b"],
        "oi_series_common": wk["series_common"],
        "oi_venues_open": wk["venues_a"],
        "oi_venues_close": wk["venues_b"],
        "oi_venues_common": wk["venues_common"],
        "oi_missing_at_open": wk["missing_at_a"],
        "oi_missing_at_close": wk["missing_at_b"],
        "coverage_changed": wk["changed"],
        "oi_ref_day": ref_day if ref["common_a"] is not None else None,
        "oi_ref_usd": ref["common_a"],
        "oi_ref_close_usd": ref["common_b"],
        "oi_ref_missing": ref["missing_at_a"],
        "oi_vs_ref_pct": ref["change_pct"],
        "long_short_ratio_mean": ls_mean,
        "leverage_skew": skew,
    }
    return pl.DataFrame([row], schema=WEEKLY_LEVERAGE.polars_schema)
