"""Weekly derivatives and trading tables: leverage (funding, open interest, long/short), spot and perp volume,
BTC realized volatility. Each asset wraps one function of ``pipelines.metrics`` and reads the clean tables
``funding_rates``, ``open_interest``, ``long_short_ratio``, ``perp_volume_daily``, ``btc_hourly`` and
``coin_daily`` point in time."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from assets.weekly.shape import (
    Check,
    Computed,
    day_range,
    days_before,
    eligible_coin_ids,
    has_table,
    history_through,
    out_of,
    require_table,
    shared_by_range,
    weekly_table_asset,
)
from pipelines import quality
from pipelines.calendar import WEEK_FROM_DAYS
from pipelines.metrics.leverage import (
    daily_funding,
    daily_series_open_interest,
    normalize_funding,
    weekly_leverage,
)
from pipelines.metrics.pit import WeekWindow, ensure_utc, week_window
from pipelines.metrics.volatility import weekly_btc_volatility
from pipelines.metrics.volume import weekly_volume
from pipelines.schemas import COIN_DAILY, COIN_REGISTRY, WEEKLY_BTC_VOLATILITY, WEEKLY_LEVERAGE, WEEKLY_VOLUME

FUNDING_RATES = "funding_rates"
OPEN_INTEREST = "open_interest"
LONG_SHORT_RATIO = "long_short_ratio"
PERP_VOLUME_DAILY = "perp_volume_daily"
BTC_HOURLY = "btc_hourly"

MAX_FUNDING_8H = 0.01  # +-1% per 8h: beyond that a weekly average is a unit or parsing error
MIN_VOLUME_COINS = 50  # a day's spot volume needs at least this many eligible coins with a volume
MAX_RV_PCT = 500.0


def _dep(name: str, weeks: int = 1) -> dg.AssetDep:
    return dg.AssetDep(name, partition_mapping=WEEK_FROM_DAYS if weeks == 1 else days_before(weeks))


# ---- weekly_leverage -------------------------------------------------------------------------------------------
# Readings keyed by (exchange, symbol, instant), whose partition is the instant's day: the column of the instant
# and the read up to a week's end (partitions dated up to next Monday may hold the 00:00 settlement; the instant's
# bound keeps out anything later)
READINGS = {
    FUNDING_RATES: (
        "funding_time",
        f"SELECT date, exchange, symbol, funding_time, funding_rate, interval_hours FROM {FUNDING_RATES} "
        "WHERE date <= ? AND funding_time <= ? ORDER BY funding_time, exchange, symbol",
    ),
    OPEN_INTEREST: (
        "ts",
        f"SELECT date, exchange, symbol, ts, oi_usd FROM {OPEN_INTEREST} WHERE date <= ? AND ts <= ? "
        "ORDER BY ts, exchange, symbol",
    ),
}
END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)


def _readings_through(wh, table: str, w: WeekWindow | None) -> pl.DataFrame:
    """``table``'s readings up to the end of week ``w`` (None: all of them), in time order, without ``date``:
    read for the week alone, or read once over a range of weeks and cut per week (``history_through``)."""
    ts, sql = READINGS[table]

    def read(through: WeekWindow | None) -> pl.DataFrame:
        bounds = [date.max, END_OF_TIME] if through is None else [through.next_monday, through.end]
        return ensure_utc(wh.query(sql, bounds), ts)

    def cut(df: pl.DataFrame, through: WeekWindow | None) -> pl.DataFrame:
        if through is None:
            return df
        return df.filter((pl.col("date") <= through.next_monday) & (pl.col(ts) <= through.end))

    return history_through(wh, table, w, read, keep=cut).drop("date")


def _funding_through(wh, w: WeekWindow | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the settlements up to the end of week ``w`` (None: all), those out of line with the other venues).

    Whether a settlement is out of line depends only on the settlements of the same symbol at the same instant,
    which share its day and so its partition: over the whole history (a range of weeks), the week's are those up
    to its end."""
    funding = _readings_through(wh, FUNDING_RATES, w)
    outliers = history_through(
        wh,
        "funding_venue_outlier_rows",
        w,
        lambda through: quality.funding_venue_outlier_rows(_readings_through(wh, FUNDING_RATES, through)),
        keep=lambda rows, through: (
            rows if through is None else rows.filter(pl.col("funding_time") <= through.end)
        ),
    )
    return funding, outliers


def _leverage_history(wh) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """``daily_funding`` and ``daily_series_open_interest`` over the whole history, as ``compute_leverage`` derives
    them for one week from its own frames (the weeks of a range share them)."""
    funding, outliers = _funding_through(wh, None)
    funding = quality.without_funding_outliers(funding, outliers)
    oi = _readings_through(wh, OPEN_INTEREST, None) if has_table(wh, OPEN_INTEREST) else None
    oi = oi if oi is not None and oi.height else None
    return daily_funding(funding, oi), None if oi is None else daily_series_open_interest(oi)


def compute_leverage(wh, week: str) -> Computed:
    w = week_window(week)
    require_table(wh, FUNDING_RATES, week)
    # settlements out of line with the other venues are left out and named under Data gaps (pipelines/quality.py)
    funding, outliers = _funding_through(wh, w)
    quarantined = quality.funding_venue_outliers(funding, outliers)
    funding = quality.without_funding_outliers(funding, outliers)
    in_week = (
        normalize_funding(funding).filter(pl.col("funding_time") > w.start) if funding.height else funding
    )
    if in_week.height == 0:
        # no venue gave funding (every one blocked, not selected or empty): missing, named, not a block
        gap = f"{FUNDING_RATES} has no settlement in ({w.start}, {w.end}] (a source gap): no leverage figures"
        return Computed(
            pl.from_arrow(WEEKLY_LEVERAGE.arrow_schema.empty_table()),
            metadata={"gap": gap},
            problems={"leverage_optional_inputs": [gap]},
        )
    missing_inputs = []
    oi = ls = None
    if has_table(wh, OPEN_INTEREST):
        oi = _readings_through(wh, OPEN_INTEREST, w)
    if oi is None or oi.filter(pl.col("ts") > w.start).height == 0:
        missing_inputs.append(f"{OPEN_INTEREST} (no readings in the week: OI and OI weights are null/equal)")
        oi = oi if oi is not None and oi.height else None
    if has_table(wh, LONG_SHORT_RATIO):
        ls = wh.query(
            f"SELECT exchange, symbol, ts, long_account, short_account FROM {LONG_SHORT_RATIO} "
            "WHERE date >= ? AND date <= ? AND ts <= ? ORDER BY ts, exchange, symbol",
            [w.open_day, w.next_monday, w.end],
        )
        ls = ensure_utc(ls, "ts")
    if ls is None or ls.filter(pl.col("ts") > w.start).height == 0:
        missing_inputs.append(f"{LONG_SHORT_RATIO} (no readings in the week: long_short_ratio_mean is null)")
        ls = None
    history = shared_by_range(wh, "leverage_history", lambda: _leverage_history(wh))
    daily, series_oi = history if history is not None else (None, None)
    df = weekly_leverage(funding, oi, ls, week, daily=daily, series_oi=series_oi if oi is not None else None)
    row = df.row(0, named=True)
    ranges = out_of(df["funding_8h_mean"], -MAX_FUNDING_8H, MAX_FUNDING_8H, "funding_8h_mean")
    for col in ("oi_open_usd", "oi_close_usd", "oi_open_common_usd", "oi_close_common_usd", "oi_ref_usd"):
        ranges += out_of(df[col], 0, math.inf, col, closed="none")
    ranges += out_of(df["long_short_ratio_mean"], 0, 100, "long_short_ratio_mean", closed="none")
    days_covered = set(in_week["day"].to_list())
    absent = [d.isoformat() for d in day_range(w.monday, w.close_day) if d not in days_covered]
    extreme = in_week.filter(pl.col("rate_8h").abs() > MAX_FUNDING_8H).height
    return Computed(
        df,
        metadata={
            "settlements": in_week.height,
            "funding_weighting": row["funding_weighting"],
            "funding_oi_share": row["funding_oi_share"],
            "oi_coverage_changed": row["coverage_changed"],
            "oi_missing_at_open": row["oi_missing_at_open"] or "none",
            "oi_missing_at_close": row["oi_missing_at_close"] or "none",
            "settlements_beyond_1pct_8h": extreme,
            "settlements_quarantined": len(quarantined),
            "quarantined": "; ".join(quarantined) or "none",
            "missing_inputs": "; ".join(missing_inputs) or "none",
        },
        problems={
            "leverage_ranges": ranges,
            "funding_coverage": [f"no settlement accruing to {', '.join(absent)}"] if absent else [],
            "leverage_optional_inputs": missing_inputs,
        },
        check_metadata={"leverage_ranges": {"settlements_beyond_1pct_8h": extreme}},
    )


weekly_leverage_asset = weekly_table_asset(
    WEEKLY_LEVERAGE,
    description=(
        "OI-weighted funding (per 8h and annualized), negative-funding facts ('first time since', longest run), "
        "total perp open interest at open and close against its 90-day peak, long/short ratio and the skew. "
        "pipelines.metrics.leverage.weekly_leverage over funding_rates (required), open_interest and "
        "long_short_ratio (optional: nulls when absent). Reads funding and OI history up to the week's close."
    ),
    deps=[_dep(FUNDING_RATES), _dep(OPEN_INTEREST, 14), _dep(LONG_SHORT_RATIO)],
    compute=compute_leverage,
    checks=[
        Check(
            "leverage_ranges",
            "Mean funding within +-1% per 8h; open interest positive; long/short in (0, 100).",
        ),
        Check(
            "funding_coverage", "Settlements accrue to every day of the week (the daily series has no gap)."
        ),
        Check(
            "leverage_optional_inputs",
            "Open interest and long/short readings exist for the week.",
            blocking=False,
        ),
    ],
)


# ---- weekly_volume ---------------------------------------------------------------------------------------------
def _daily_sums(rows: pl.DataFrame, key: str, days: list, complete) -> tuple[pl.DataFrame, list[str]]:
    """``date, quote_volume_usd`` from rows (``date``, ``key``, ``v``): exact sums (``math.fsum``, independent of
    row order) for the days ``complete(frame_of_day)`` accepts; other days are left out (reported)."""
    out, dropped = [], []
    parts = {k[0]: v for k, v in rows.partition_by("date", as_dict=True).items()} if rows.height else {}
    for d in days:
        part = parts.get(d)
        if part is None or not complete(part):
            dropped.append(d.isoformat())
            continue
        out.append((d, math.fsum(part["v"].to_list())))
    return pl.DataFrame(out, schema={"date": pl.Date, "quote_volume_usd": pl.Float64}, orient="row"), dropped


def compute_volume(wh, week: str) -> Computed:
    w = week_window(week)
    require_table(wh, PERP_VOLUME_DAILY, week)
    require_table(wh, COIN_DAILY.name, week)
    first = w.monday - timedelta(days=7)
    days = day_range(first, w.close_day)
    ids, _ = eligible_coin_ids(wh, w.close_day)
    spot_rows = wh.query(
        f"SELECT date, coin_id, volume_24h_usd AS v FROM {COIN_DAILY.name} "
        "WHERE date >= ? AND date <= ? AND volume_24h_usd IS NOT NULL ORDER BY date, coin_id",
        [first, w.close_day],
    ).filter(pl.col("coin_id").is_in(ids))
    spot, spot_dropped = _daily_sums(spot_rows, "coin_id", days, lambda p: p.height >= MIN_VOLUME_COINS)
    perp_rows = wh.query(
        f"SELECT date, exchange, symbol, quote_volume_usd AS v FROM {PERP_VOLUME_DAILY} "
        "WHERE date >= ? AND date <= ? AND quote_volume_usd IS NOT NULL ORDER BY date, exchange, symbol",
        [first, w.close_day],
    )
    exchanges = set(perp_rows["exchange"].to_list())
    perp, perp_dropped = _daily_sums(
        perp_rows, "exchange", days, lambda p: set(p["exchange"].to_list()) == exchanges
    )
    df = weekly_volume(spot, perp, week)
    row = df.row(0, named=True)
    # no venue has perp volume at all (Binance blocked or not selected): a source gap, named, not a block
    checked = ("spot_volume_usd", "perp_volume_usd") if exchanges else ("spot_volume_usd",)
    coverage = [f"{c} is null (a day is missing)" for c in checked if row[c] is None]
    ranges = []
    for c in ("spot_volume_usd", "spot_volume_prev_usd", "perp_volume_usd", "perp_volume_prev_usd"):
        ranges += out_of(df[c], 0, math.inf, c, closed="none")
    ranges += out_of(df["perp_to_spot"], 0, 100, "perp_to_spot", closed="none")
    return Computed(
        df,
        metadata={
            "spot_days_left_out": ", ".join(spot_dropped) or "none",
            "perp_days_left_out": ", ".join(perp_dropped) or "none",
            "perp_exchanges": ", ".join(sorted(exchanges)) or "none",
            "spot_coins": len(ids),
        },
        problems={"volume_coverage": coverage, "volume_range": ranges},
    )


weekly_volume_asset = weekly_table_asset(
    WEEKLY_VOLUME,
    description=(
        "Spot volume (sum of CoinGecko 24h volumes at each day's close over eligible coins) and perp volume "
        "(perp_volume_daily, all exchanges) over the week's seven UTC days, against the week before, and "
        "perp/spot. pipelines.metrics.volume.weekly_volume."
    ),
    deps=[
        dg.AssetDep(COIN_DAILY.name, partition_mapping=WEEK_FROM_DAYS),
        COIN_REGISTRY.name,
        _dep(PERP_VOLUME_DAILY),
    ],
    compute=compute_volume,
    checks=[
        Check("volume_coverage", "Spot and perp volumes exist for all seven days of the week."),
        Check("volume_range", "Volumes positive; perp/spot in (0, 100)."),
    ],
)


# ---- weekly_btc_volatility -------------------------------------------------------------------------------------
def compute_volatility(wh, week: str) -> Computed:
    w = week_window(week)
    require_table(wh, BTC_HOURLY, week)
    # a bar labelled by its open is known an hour later: only bars that closed by the week's end
    bars = wh.query(
        f"SELECT ts, close FROM {BTC_HOURLY} WHERE date <= ? AND ts <= ? ORDER BY ts",
        [w.close_day, w.end - timedelta(hours=1)],
    )
    bars = ensure_utc(bars, "ts")
    in_week = bars.filter(pl.col("ts") >= w.start).height if bars.height else 0
    if in_week == 0:
        # missing, not wrong (the venue was blocked, not selected or answered nothing): an empty partition, the
        # report names the gap; a warning, not a block
        gap = f"{BTC_HOURLY} has no bar in [{w.start}, {w.end}) (a source gap): no volatility this week"
        return Computed(
            pl.from_arrow(WEEKLY_BTC_VOLATILITY.arrow_schema.empty_table()),
            metadata={"bars_in_week": 0, "bars_read": bars.height, "gap": gap},
            problems={"volatility_30d_coverage": [gap]},
        )
    df = weekly_btc_volatility(bars, week)
    cols = ["rv7_hourly_pct", "rv7_hourly_prev_pct", "rv30_hourly_pct", "rv7_daily_pct", "rv30_daily_pct"]
    ranges = [p for c in cols for p in out_of(df[c], 0, MAX_RV_PCT, c, closed="none")]
    coverage = [f"{c} is null (not enough bars)" for c in ("rv7_hourly_pct",) if df[c][0] is None]
    coverage_30d = [
        f"{c} is null (under 30 days of bars)"
        for c in ("rv30_hourly_pct", "rv30_daily_pct")
        if df[c][0] is None
    ]
    return Computed(
        df,
        metadata={"bars_in_week": in_week, "bars_read": bars.height, "history_from": str(bars["ts"].min())},
        problems={
            "volatility_range": ranges,
            "volatility_coverage": coverage,
            "volatility_30d_coverage": coverage_30d,
        },
    )


weekly_btc_volatility_asset = weekly_table_asset(
    WEEKLY_BTC_VOLATILITY,
    description=(
        "BTC realized volatility, annualized percent: 7- and 30-day from hourly and daily log returns, the 7-day "
        "value a week earlier, and the last earlier close with a 7-day value at least as high. "
        "pipelines.metrics.volatility.weekly_btc_volatility over btc_hourly (whole history to the week's close)."
    ),
    deps=[_dep(BTC_HOURLY, 5)],
    compute=compute_volatility,
    checks=[
        Check("volatility_range", f"Every volatility in (0, {MAX_RV_PCT:.0f}%)."),
        # missing bars are a gap (the report leaves the figure out and names the hours), not a block
        Check("volatility_coverage", "The 7-day hourly volatility the report quotes exists.", blocking=False),
        # a short history (a fresh install, a narrow backfill) lacks the 30-day window: said, not blocking
        Check("volatility_30d_coverage", "30-day volatility exists (warning only).", blocking=False),
    ],
)
