"""Weekly cross-asset and macro tables: returns of crypto against equities, gold, Treasuries, the dollar and the
yen over the same Monday-to-Monday window, crypto's rank and worst-week streak, the macro facts known at the
week's close, and the rate change three-month bills price against the fed funds rate. Each asset wraps one
function of ``pipelines.metrics``."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import polars as pl

from assets.weekly.shape import (
    Check,
    Computed,
    coin_daily_between,
    has_table,
    history_through,
    out_of,
    require_open_close,
    require_table,
    total_market_cap_days,
    weekly_table_asset,
)
from pipelines import gaps as gaps_mod
from pipelines.calendar import WEEK_FROM_DAYS
from pipelines.metrics.cross_asset import (
    DEFAULT_ASSETS,
    MAX_STALE_DAYS,
    MAX_STREAK_WEEKS,
    MIN_RANKED,
    weekly_cross_asset,
    weekly_crypto_rank,
)
from pipelines.metrics.macro import (
    BILL_SERIES,
    DEFAULT_METRICS,
    FUNDS_SERIES,
    weekly_macro,
    weekly_rate_expectations,
)
from pipelines.metrics.pit import week_window
from pipelines.schemas import (
    COIN_DAILY,
    WEEKLY_CROSS_ASSET,
    WEEKLY_CRYPTO_RANK,
    WEEKLY_MACRO,
    WEEKLY_RATE_EXPECTATIONS,
)

MACRO_OBSERVATIONS = "macro_observations"
# coin_daily prices used as cross-asset series: BTC, ETH and PAX Gold as the gold proxy (FRED has no gold price)
COIN_SERIES = {"bitcoin": "btc", "ethereum": "eth", "pax-gold": "gold"}
CROSS_MACRO_SERIES = sorted({a.series for a in DEFAULT_ASSETS} - {"crypto_total_mcap", *COIN_SERIES.values()})
MACRO_RANGES = {
    "payrolls_change_k": (-25_000, 25_000),
    "unemployment_rate": (0, 30),
    "ust_2y": (-5, 25),
    "ust_10y": (-5, 25),
    "japan_10y": (-5, 25),
    "usd_jpy": (50, 400),
    "curve_10y_2y": (-10, 10),
}

COIN_DAILY_WEEK = dg.AssetDep(COIN_DAILY.name, partition_mapping=WEEK_FROM_DAYS)


def macro_in_lake(wh, week: str) -> bool:
    """Whether ``macro_observations`` is in the lake. Absent because FRED is a recorded source gap (blocked, not
    selected, every series failed): False, the week goes on without it. Absent otherwise (never materialized):
    the clear failure of ``require_table``."""
    if has_table(wh, MACRO_OBSERVATIONS):
        return True
    if any(g.source == "fred" for g in gaps_mod.read_ledger(wh)):
        return False
    require_table(wh, MACRO_OBSERVATIONS, week)
    return True


def levels_since(monday: date, weeks_before: int = 0) -> date:
    """The first day of levels the returns of the week starting ``monday`` and of the ``weeks_before`` weeks
    before it read: each return opens on the last level dated less than ``MAX_STALE_DAYS`` days before the
    Sunday that ends the week before (``weekly_cross_asset``)."""
    return monday - timedelta(days=7 * weeks_before + MAX_STALE_DAYS)


def cross_asset_levels(wh, week: str, since: date) -> pl.DataFrame:
    """``series, date, value``: crypto total market cap, BTC/ETH/PAXG prices from coin_daily and the FRED
    series from macro_observations, every row dated ``since`` to the week's close day. A week alone reads those
    days (the total market cap of a day reads only its own and the ``CARRY_DAYS`` before it); a range of weeks
    cuts them from the history it derived once: the same rows, in the same order."""
    w = require_open_close(wh, week)
    total = total_market_cap_days(wh, since, w.close_day).select(
        pl.lit("crypto_total_mcap").alias("series"), "date", pl.col("total_mcap_usd").alias("value")
    )
    coins = (
        history_through(
            wh,
            "cross_asset_coin_prices",
            w.close_day,
            lambda last: coin_daily_between(
                wh, None if last is None else since, last or date.max, "date, coin_id, price_usd"
            ).filter(pl.col("coin_id").is_in(list(COIN_SERIES))),
        )
        .filter(pl.col("date") >= since)
        .select(
            pl.col("coin_id").replace_strict(COIN_SERIES).alias("series"),
            "date",
            pl.col("price_usd").alias("value"),
        )
    )
    schema = {"series": pl.String, "date": pl.Date, "value": pl.Float64}
    # FRED missing altogether (blocked, not selected: no macro_observations in the lake): the crypto side only
    macro = (
        wh.query(
            f"SELECT series_id AS series, date, value FROM {MACRO_OBSERVATIONS} "
            "WHERE list_contains(?, series_id) AND date >= ? AND date <= ? ORDER BY series_id, date",
            [CROSS_MACRO_SERIES, since, w.close_day],
        )
        if macro_in_lake(wh, week)
        else pl.DataFrame(schema=schema)
    )
    return pl.concat([f.cast(schema) for f in (total, coins, macro)]).sort(["series", "date"])  # type: ignore[arg-type]


def compute_cross_asset(wh, week: str) -> Computed:
    df = weekly_cross_asset(cross_asset_levels(wh, week, levels_since(week_window(week).monday)), week)
    no_return = df.filter(pl.col("return_pct").is_null())["asset"].to_list()
    ranked = df["rank"].drop_nulls().len()
    coverage = [f"{a} has no return" for a in ("crypto", "btc", "eth") if a in no_return]
    ranges = out_of(df["return_pct"], -100, 1000, "return_pct", closed="none")
    meta = {"assets_ranked": ranked, "assets_without_return": ", ".join(no_return) or "none"}
    if ranked < MIN_RANKED and not coverage:
        # missing inputs (FRED series that could not be had), not wrong data: no ranking this week, named
        gap = f"only {ranked} major asset classes have a return (need {MIN_RANKED}): not ranked this week"
        return Computed(
            df.head(0),
            metadata={**meta, "gap": gap},
            problems={"cross_asset_inputs": [gap], "cross_asset_range": ranges},
        )
    if ranked < MIN_RANKED:
        coverage.append(f"only {ranked} major asset classes have a return (need {MIN_RANKED})")
    return Computed(
        df, metadata=meta, problems={"cross_asset_coverage": coverage, "cross_asset_range": ranges}
    )


weekly_cross_asset_asset = weekly_table_asset(
    WEEKLY_CROSS_ASSET,
    description=(
        "Weekly returns, Monday 00:00 to Monday 00:00 UTC, of crypto (total market cap), BTC, ETH, gold (PAX Gold), "
        "S&P 500, Nasdaq, 10Y Treasuries (price proxy), the dollar (DTWEXBGS) and the yen (DEXJPUS inverted), "
        "ranked among the major classes. pipelines.metrics.cross_asset.weekly_cross_asset over coin_daily and "
        "macro_observations."
    ),
    deps=[COIN_DAILY_WEEK, MACRO_OBSERVATIONS],
    compute=compute_cross_asset,
    checks=[
        Check(
            "cross_asset_coverage",
            f"Crypto, BTC and ETH have a return; at least {MIN_RANKED} classes ranked.",
        ),
        Check("cross_asset_range", "Every return in (-100%, 1000%)."),
        Check(
            "cross_asset_inputs",
            f"At least {MIN_RANKED} classes have a return (warning: when macro series are "
            "missing the week is not ranked and the report says so).",
            blocking=False,
        ),
    ],
)


# The weeks before a week whose levels its worst-week streak reads first; doubled while the streak reaches them.
STREAK_FIRST_WEEKS = 8


def crypto_rank_in_window(wh, week: str) -> pl.DataFrame:
    """``weekly_crypto_rank`` from the levels of a window of weeks before ``week``, not its whole history: the
    ``STREAK_FIRST_WEEKS`` weeks before it first, twice as many while the streak reaches the window's first week,
    up to ``MAX_STREAK_WEEKS``. Every week the window covers gets the return the whole history gives it
    (``levels_since``), so a streak that ends on a week inside it (at most as long as the window) is the whole
    history's; a longer one may have been cut by the window's start and is counted again over a wider one
    (``tests/test_weeks_in_one_pass.py`` compares each week with the whole history's answer)."""
    monday = week_window(week).monday
    weeks = STREAK_FIRST_WEEKS
    while True:
        df = weekly_crypto_rank(cross_asset_levels(wh, week, levels_since(monday, weeks)), week)
        if df["worst_streak_weeks"][0] <= weeks or weeks >= MAX_STREAK_WEEKS:
            return df
        weeks = min(2 * weeks, MAX_STREAK_WEEKS)


def compute_crypto_rank(wh, week: str) -> Computed:
    df = crypto_rank_in_window(wh, week)
    r = df.row(0, named=True)
    if r["assets_ranked"] < MIN_RANKED and r["crypto_rank"] is not None:
        gap = f"only {r['assets_ranked']} classes ranked (need {MIN_RANKED}): missing inputs, crypto is not ranked"
        return Computed(df.head(0), metadata={"gap": gap}, problems={"crypto_rank_inputs": [gap]})
    problems = []
    if r["crypto_rank"] is None:
        problems.append("crypto has no rank this week")
    elif not 1 <= r["crypto_rank"] <= r["assets_ranked"]:
        problems.append(f"rank {r['crypto_rank']} outside 1..{r['assets_ranked']}")
    if r["assets_ranked"] < MIN_RANKED:
        problems.append(f"only {r['assets_ranked']} classes ranked (need {MIN_RANKED})")
    if bool(r["is_worst"]) != (r["worst_streak_weeks"] >= 1):
        problems.append("worst-week streak disagrees with is_worst")
    return Computed(df, problems={"crypto_rank_consistent": problems})


weekly_crypto_rank_asset = weekly_table_asset(
    WEEKLY_CRYPTO_RANK,
    description=(
        "Crypto's rank among the major asset classes this week and the number of consecutive weeks, ending with "
        "this one, in which it was the worst (each earlier week recomputed point in time). "
        "pipelines.metrics.cross_asset.weekly_crypto_rank over coin_daily and macro_observations."
    ),
    deps=[COIN_DAILY_WEEK, MACRO_OBSERVATIONS],
    compute=compute_crypto_rank,
    checks=[
        Check(
            "crypto_rank_consistent",
            f"Crypto ranked within 1..N, N >= {MIN_RANKED}, streak >= 1 exactly when crypto is worst.",
        ),
        Check(
            "crypto_rank_inputs",
            f"At least {MIN_RANKED} classes ranked (warning: with macro series missing "
            "crypto is not ranked and the report says so).",
            blocking=False,
        ),
    ],
)


def compute_macro(wh, week: str) -> Computed:
    w = week_window(week)
    series = sorted({m.series_id for m in DEFAULT_METRICS})
    # FRED missing altogether: every metric is reported missing (a warning), the week still publishes
    macro = (
        wh.query(
            f"SELECT series_id, date, value FROM {MACRO_OBSERVATIONS} WHERE list_contains(?, series_id) AND date <= ? "
            "ORDER BY series_id, date",
            [series, w.close_day],
        )
        if macro_in_lake(wh, week)
        else pl.DataFrame(schema={"series_id": pl.String, "date": pl.Date, "value": pl.Float64})
    )
    df = weekly_macro(macro, week)
    ranges = []
    for metric, value in df.select("metric", "value").iter_rows():
        lo, hi = MACRO_RANGES.get(metric, (-1e12, 1e12))
        if value is not None and not lo <= value <= hi:
            ranges.append(f"{metric} = {value} outside [{lo}, {hi}]")
    gaps = [f"{m}: {s}" for m, s in df.select("metric", "status").iter_rows() if s != "ok"]
    return Computed(
        df,
        metadata={"statuses": ", ".join(f"{m}={s}" for m, s in df.select("metric", "status").iter_rows())},
        problems={"macro_values_plausible": ranges, "macro_availability": gaps},
    )


weekly_macro_asset = weekly_table_asset(
    WEEKLY_MACRO,
    description=(
        "Payrolls change, unemployment, 2Y and 10Y yields, the 10Y-2Y curve, Japan 10Y and USD/JPY as known at the "
        "week's close (observation date + publication lag); unpublished releases stay missing. "
        "pipelines.metrics.macro.weekly_macro over macro_observations."
    ),
    deps=[MACRO_OBSERVATIONS],
    compute=compute_macro,
    checks=[
        Check("macro_values_plausible", "Each value within a plausible range for its unit."),
        Check(
            "macro_availability",
            "Every metric has a published value (missing/unavailable listed).",
            blocking=False,
        ),
    ],
)


# Sanity bounds of wrong data (a unit slip, a corrupt file), not of what is likely: bills have traded a little below
# zero, the funds rate has been near 20%, and bills have sat 2 points under the funds rate in a flight to safety.
RATE_RANGES = {
    "bill_discount_pct": (-1.0, 25.0),
    "funds_rate_pct": (-1.0, 25.0),
    "prev_implied_change_bp": (-500.0, 500.0),
    "implied_change_bp": (-500.0, 500.0),
}


def compute_rate_expectations(wh, week: str) -> Computed:
    w = week_window(week)
    # FRED missing altogether: the row says 'unavailable' (a warning), the week still publishes without the sentence
    macro = (
        wh.query(
            f"SELECT series_id, date, value FROM {MACRO_OBSERVATIONS} WHERE list_contains(?, series_id) AND date <= ? "
            "ORDER BY series_id, date",
            [[BILL_SERIES, FUNDS_SERIES], w.close_day],
        )
        if macro_in_lake(wh, week)
        else pl.DataFrame(schema={"series_id": pl.String, "date": pl.Date, "value": pl.Float64})
    )
    df = weekly_rate_expectations(macro, week)
    r = df.row(0, named=True)
    ranges = []
    for col, (lo, hi) in RATE_RANGES.items():
        v = r[col]
        if v is not None and not lo <= v <= hi:  # NaN fails too
            day = r["prev_observation_date" if col.startswith("prev_") else "observation_date"]
            ranges.append(
                f"weekly_rate_expectations[week={week}]: {col} = {v} (observations of {day}) outside [{lo}, {hi}]"
            )
    availability = (
        []
        if r["status"] == "ok"
        else [
            f"{BILL_SERIES} against {FUNDS_SERIES}: {r['status']}"
            + (f" (latest pair dated {r['observation_date']})" if r["observation_date"] else "")
        ]
    )
    if r["status"] == "ok" and r["prev_implied_change_bp"] is None:
        availability.append("no value as known at the close of the week before: no weekly change")
    return Computed(
        df,
        metadata={"status": r["status"], "observation_date": str(r["observation_date"])},
        problems={"rate_values_plausible": ranges, "rate_availability": availability},
    )


weekly_rate_expectations_asset = weekly_table_asset(
    WEEKLY_RATE_EXPECTATIONS,
    description=(
        "The change in the overnight rate three-month Treasury bills price: DTB3 (discount basis) as the overnight "
        "act/360 rate compounding daily to the bill's 91-day return, minus DFF on the same day, in bp and in cuts "
        "of 25 bp, at the week's close and the close before. pipelines.metrics.macro.weekly_rate_expectations over "
        "macro_observations."
    ),
    deps=[MACRO_OBSERVATIONS],
    compute=compute_rate_expectations,
    checks=[
        Check(
            "rate_values_plausible",
            "Bill rate and funds rate within [-1%, 25%], the priced change within "
            "±500 bp (wrong data, named; NaN fails).",
        ),
        Check(
            "rate_availability",
            "Both series known within the week, and a week before (warning: otherwise the "
            "report leaves the sentence out and names the gap).",
            blocking=False,
        ),
    ],
)
