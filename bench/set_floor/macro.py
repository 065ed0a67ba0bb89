"""The set-based floor of the cross-asset and macro tables: ``weekly_cross_asset``, ``weekly_crypto_rank``,
``weekly_macro`` and ``weekly_rate_expectations`` for every week of a range in one vectorized pass.

* Levels: the crypto total market cap of every day (each coin's positive market cap, a coin missing for up to
  ``CARRY_DAYS`` days counted at its last reading, only days with a reading), the BTC/ETH/PAX Gold prices of
  ``coin_daily`` and the FRED series of ``macro_observations``, non-null values only.
* ``weekly_cross_asset``: one ``join_asof`` of every (week, asset, boundary day) on the levels gives the last
  level dated less than ``MAX_STALE_DAYS`` days before each boundary; returns, ranks and the worst class follow
  as expressions over ``week_start``.
* ``weekly_crypto_rank``: the same cross-asset frame over the range extended ``MAX_STREAK_WEEKS`` weeks back;
  the worst-week streak is the week itself, when worst, and the run of earlier weeks worst among at least
  ``MIN_RANKED`` ranked classes ending just before it (a cumulative sum over runs).
* ``weekly_macro`` and ``weekly_rate_expectations``: each series (or pair of series on the same day) keyed by
  the day it becomes known (observation date + publication lag), and one ``join_asof`` of the weeks' close days
  (and, for the rate change, the close days a week earlier) on it.

A week the project fails (no ``coin_daily`` partition on its open or close day; a bill rate with no positive
price) or writes empty (too few classes ranked, ``MIN_RANKED``) has no rows here either."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from assets.weekly.macro import COIN_SERIES, CROSS_MACRO_SERIES
from bench.set_floor import Lake
from bench.set_floor.shared import consecutive_weeks, daily_totals
from pipelines.metrics.cross_asset import (
    DEFAULT_ASSETS,
    MAX_STALE_DAYS,
    MAX_STREAK_WEEKS,
    MIN_RANKED,
    UST_DURATION,
)
from pipelines.metrics.macro import (
    BILL_DAYS,
    BILL_SERIES,
    CURVE,
    CUT_BP,
    DEFAULT_METRICS,
    FUNDS_SERIES,
    RATE_LAG_DAYS,
    RATE_MAX_AGE_DAYS,
)
from pipelines.schemas import (
    WEEKLY_CROSS_ASSET,
    WEEKLY_CRYPTO_RANK,
    WEEKLY_MACRO,
    WEEKLY_RATE_EXPECTATIONS,
)

TABLES = ("weekly_cross_asset", "weekly_crypto_rank", "weekly_macro", "weekly_rate_expectations")

MACRO_SCHEMA = {"series_id": pl.String, "date": pl.Date, "value": pl.Float64}
LEVELS_SCHEMA = {"series": pl.String, "date": pl.Date, "value": pl.Float64}


def _macro(lake: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """``series_id, date, value`` of ``macro_observations`` (empty when it is not in the lake)."""
    if "macro_observations" not in lake:
        return pl.DataFrame(schema=MACRO_SCHEMA)
    return lake["macro_observations"].select(list(MACRO_SCHEMA)).cast(MACRO_SCHEMA)  # type: ignore[arg-type]


def _levels(lake: dict[str, pl.DataFrame], macro: pl.DataFrame) -> pl.DataFrame:
    """``series, date, value`` of every cross-asset series (non-null values), sorted by series and date."""
    cd = lake["coin_daily"]
    total = (
        daily_totals(lake)
        .lazy()
        .select(pl.lit("crypto_total_mcap").alias("series"), "date", pl.col("total_mcap_usd").alias("value"))
    )
    coins = (
        cd.lazy()
        .filter(pl.col("coin_id").is_in(list(COIN_SERIES)))
        .select(
            pl.col("coin_id").replace_strict(COIN_SERIES).alias("series"),
            "date",
            pl.col("price_usd").alias("value"),
        )
    )
    fred = (
        macro.lazy()
        .filter(pl.col("series_id").is_in(CROSS_MACRO_SERIES))
        .select(pl.col("series_id").alias("series"), "date", "value")
    )
    return (
        pl.concat([f.cast(LEVELS_SCHEMA) for f in (total, coins, fred)])  # type: ignore[arg-type]
        .filter(pl.col("value").is_not_null())
        .sort("series", "date")
        .collect()
    )


def _cross_asset(levels: pl.DataFrame, weeks: pl.DataFrame) -> pl.DataFrame:
    """``weekly_cross_asset`` rows of every week of ``weeks`` (``week_start, open_day, close_day``), each week's
    assets in ``DEFAULT_ASSETS`` order."""
    assets = pl.DataFrame(
        {
            "idx": list(range(len(DEFAULT_ASSETS))),
            "asset": [a.asset for a in DEFAULT_ASSETS],
            "series": [a.series for a in DEFAULT_ASSETS],
            "kind": [a.kind for a in DEFAULT_ASSETS],
            "major": [a.major for a in DEFAULT_ASSETS],
        }
    )
    grid = weeks.join(assets, how="cross")

    def boundary(day: str, suffix: str) -> pl.DataFrame:
        """The last level dated at or before ``day`` and less than ``MAX_STALE_DAYS`` days before it."""
        found = (
            grid.select("week_start", "idx", "series", pl.col(day).alias("b"))
            .sort("b")
            .join_asof(
                levels.select("series", pl.col("date").alias("d"), pl.col("date").alias("b"), "value").sort(
                    "b"
                ),
                on="b",
                by="series",
                strategy="backward",
                check_sortedness=False,
            )
        )
        fresh = pl.col("d") > pl.col("b") - pl.duration(days=MAX_STALE_DAYS)
        return found.select(
            "week_start",
            "idx",
            pl.when(fresh).then(pl.col("d")).alias(f"{suffix}_date"),
            pl.when(fresh).then(pl.col("value")).alias(f"{suffix}_value"),
        )

    d0, d1, v0, v1 = pl.col("open_date"), pl.col("close_date"), pl.col("open_value"), pl.col("close_value")
    both = v0.is_not_null() & v1.is_not_null()
    kind = pl.col("kind")
    # a NaN level is not positive (polars orders NaN above every number)
    ret = (
        pl.when(both & (d1 > d0) & (kind == "price") & v0.is_not_nan() & (v0 > 0))
        .then((v1 / v0 - 1) * 100)
        .when(both & (d1 > d0) & (kind == "inverse") & v1.is_not_nan() & (v1 > 0))
        .then((v0 / v1 - 1) * 100)
        .when(both & (d1 > d0) & (kind == "yield"))
        .then(-UST_DURATION * (v1 - v0))
        .when(both & (d1 == d0))
        .then(0.0)
    )
    out = (
        grid.join(boundary("open_day", "open"), on=["week_start", "idx"])
        .join(boundary("close_day", "close"), on=["week_start", "idx"])
        .with_columns(ret.alias("return_pct"))
        .sort("week_start", "idx")
    )
    ranked = pl.col("major") & pl.col("return_pct").is_not_null()
    r = pl.when(ranked).then(pl.col("return_pct"))
    return out.with_columns(
        pl.when(ranked).then(r.rank("min", descending=True).over("week_start")).cast(pl.Int32).alias("rank"),
        pl.when(ranked).then(pl.col("return_pct") == r.min().over("week_start")).alias("is_worst"),
    ).select(list(WEEKLY_CROSS_ASSET.polars_schema))


def _open_close_present(coin_daily: pl.DataFrame) -> pl.Expr:
    """Whether ``coin_daily`` has a partition for the week's open day and close day (else the week fails)."""
    days = coin_daily["date"].unique().implode()
    return pl.col("open_day").is_in(days) & pl.col("close_day").is_in(days)


def weekly_cross_asset(ca: pl.DataFrame, weeks: pl.DataFrame) -> pl.DataFrame:
    """``weekly_cross_asset`` of ``weeks`` from the cross-asset rows ``ca``; a week with fewer than
    ``MIN_RANKED`` classes ranked while crypto, BTC and ETH all have a return is written empty."""
    df = ca.join(weeks.select("week_start"), on="week_start", how="semi", maintain_order="left")
    ranked = pl.col("rank").is_not_null().sum().over("week_start")
    uncovered = (pl.col("asset").is_in(["crypto", "btc", "eth"]) & pl.col("return_pct").is_null()).any()
    return df.filter((ranked >= MIN_RANKED) | uncovered.over("week_start"))


def weekly_crypto_rank(ca: pl.DataFrame, weeks: pl.DataFrame) -> pl.DataFrame:
    """``weekly_crypto_rank`` of ``weeks`` from the cross-asset rows ``ca`` of every week from
    ``MAX_STREAK_WEEKS`` weeks before them: crypto's rank, the classes ranked, whether it was worst and the run
    of worst weeks ending with the week (at most ``MAX_STREAK_WEEKS``; an earlier week counts when worst among at
    least ``MIN_RANKED`` classes ranked); a week with fewer than ``MIN_RANKED``
    classes ranked and crypto ranked is written empty."""
    crypto = pl.col("asset") == "crypto"
    per_week = (
        ca.group_by("week_start")
        .agg(
            pl.col("rank").filter(crypto).first().alias("crypto_rank"),
            pl.col("rank").is_not_null().sum().cast(pl.Int32).alias("assets_ranked"),
            pl.col("is_worst").filter(crypto).first().alias("is_worst"),
        )
        .sort("week_start")
    )
    # the week itself when worst, then the run of earlier weeks worst among at least MIN_RANKED classes (a week
    # with fewer is not known to be one and ends the run)
    worst = pl.col("is_worst").fill_null(False)
    known = worst & (pl.col("assets_ranked") >= MIN_RANKED)
    run = known.cast(pl.Int32).cum_sum().over((~known).cum_sum())
    streak = (
        pl.when(worst).then(run.shift(1).fill_null(0) + 1).otherwise(0).clip(upper_bound=MAX_STREAK_WEEKS)
    )
    keep = (pl.col("assets_ranked") >= MIN_RANKED) | pl.col("crypto_rank").is_null()
    return (
        per_week.with_columns(streak.cast(pl.Int32).alias("worst_streak_weeks"))
        .join(weeks.select("week_start"), on="week_start", how="semi", maintain_order="left")
        .filter(keep)
        .select(list(WEEKLY_CRYPTO_RANK.polars_schema))
    )


def weekly_macro(macro: pl.DataFrame, weeks: pl.DataFrame) -> pl.DataFrame:
    """``weekly_macro`` of ``weeks``: each metric's latest observation known at the close day (observation date
    + lag), the diff metrics' change against the observation before, and the 10Y-2Y curve of the latest day both
    yields are known; each week's metrics in ``DEFAULT_METRICS`` order, the curve last."""
    parts = []
    for i, m in enumerate(DEFAULT_METRICS):
        s = macro.filter(pl.col("series_id") == m.series_id).sort("date")
        if m.blank_is_holiday:
            s = s.filter(pl.col("value").is_not_null())
        if m.transform == "diff":
            s = s.with_columns(pl.col("value").diff()).slice(1)
        parts.append(
            s.select(
                pl.lit(i).alias("idx"),
                pl.lit(m.name).alias("metric"),
                pl.lit(m.series_id).alias("series_id"),
                "value",
                pl.col("date").alias("observation_date"),
                (pl.col("date") + pl.duration(days=m.lag_days)).alias("known"),
                pl.lit(m.unit).alias("unit"),
            )
        )
    name, long_id, short_id = CURVE
    lags = {m.series_id: m.lag_days for m in DEFAULT_METRICS}
    daily = macro.filter(pl.col("value").is_not_null())
    a = daily.filter(pl.col("series_id") == long_id).select("date", pl.col("value").alias("a"))
    b = daily.filter(pl.col("series_id") == short_id).select("date", pl.col("value").alias("b"))
    parts.append(
        a.join(b, on="date").select(
            pl.lit(len(DEFAULT_METRICS)).alias("idx"),
            pl.lit(name).alias("metric"),
            pl.lit(f"{long_id}-{short_id}").alias("series_id"),
            (pl.col("a") - pl.col("b")).alias("value"),
            pl.col("date").alias("observation_date"),
            (pl.col("date") + pl.duration(days=max(lags[long_id], lags[short_id]))).alias("known"),
            pl.lit("percentage points").alias("unit"),
        )
    )
    metrics = pl.DataFrame(
        {
            "idx": list(range(len(DEFAULT_METRICS) + 1)),
            "metric": [m.name for m in DEFAULT_METRICS] + [name],
            "series_id": [m.series_id for m in DEFAULT_METRICS] + [f"{long_id}-{short_id}"],
            "unit": [m.unit for m in DEFAULT_METRICS] + ["percentage points"],
        }
    )
    known = pl.concat(parts).cast({"idx": pl.Int64, "known": pl.Date}).sort("known")
    grid = weeks.select("week_start", pl.col("close_day").alias("known")).join(
        metrics.cast({"idx": pl.Int64}), how="cross"
    )
    found = grid.sort("known").join_asof(
        known.select("idx", "known", "value", "observation_date", pl.col("known").alias("k")),
        on="known",
        by="idx",
        strategy="backward",
        check_sortedness=False,
    )
    status = (
        pl.when(pl.col("k").is_null())
        .then(pl.lit("unavailable"))
        .when(pl.col("value").is_null())
        .then(pl.lit("missing"))
        .otherwise(pl.lit("ok"))
    )
    return (
        found.with_columns(status.alias("status"))
        .sort("week_start", "idx")
        .select(list(WEEKLY_MACRO.polars_schema))
    )


def _overnight(discount: pl.Expr) -> pl.Expr:
    """A bill's discount rate (percent) as the overnight act/360 rate compounding daily to its return over
    ``BILL_DAYS`` days (percent)."""
    d = discount / 100
    money_market = d * 360 / (360 - d * BILL_DAYS) * 100
    growth = 1 + money_market / 100 * BILL_DAYS / 360
    return (growth.pow(1 / BILL_DAYS) - 1) * 360 * 100


def weekly_rate_expectations(macro: pl.DataFrame, weeks: pl.DataFrame) -> pl.DataFrame:
    """``weekly_rate_expectations`` of ``weeks``: the latest day known at the close day (and at the close day a
    week before) with both a bill rate and a funds rate, the change the bill prices and its weekly change. A
    week whose bill rate of either day has no positive price (the project raises) has no row."""
    known = macro.filter(pl.col("value").is_not_null())
    bill = known.filter(pl.col("series_id") == BILL_SERIES).select("date", pl.col("value").alias("d"))
    funds = known.filter(pl.col("series_id") == FUNDS_SERIES).select("date", pl.col("value").alias("f"))
    price = 1 - pl.col("d") / 100 * BILL_DAYS / 360
    pairs = (
        bill.join(funds, on="date")
        .with_columns(
            (pl.col("date") + pl.duration(days=RATE_LAG_DAYS)).alias("cut"),
            ((price > 0) & price.is_finite()).alias("priced"),
            _overnight(pl.col("d")).alias("o"),
        )
        .sort("cut")
    )

    def at(cutoff: pl.Expr, p: str) -> pl.DataFrame:
        """The pair known at ``cutoff`` for every week, its columns prefixed with ``p``."""
        found = (
            weeks.select("week_start", cutoff.alias("cut"))
            .sort("cut")
            .join_asof(pairs.select("cut", "date", "d", "f", "o", "priced"), on="cut")
        )
        change = (pl.col("o") - pl.col("f")) * 100
        status = (
            pl.when(pl.col("date").is_null())
            .then(pl.lit("unavailable"))
            .when((pl.col("cut") - pl.col("date")).dt.total_days() > RATE_MAX_AGE_DAYS)
            .then(pl.lit("stale"))
            .otherwise(pl.lit("ok"))
        )
        return found.select(
            "week_start",
            pl.col("date").alias(f"{p}observation_date"),
            pl.col("d").alias(f"{p}bill_discount_pct"),
            pl.col("o").alias(f"{p}bill_overnight_pct"),
            pl.col("f").alias(f"{p}funds_rate_pct"),
            change.alias(f"{p}implied_change_bp"),
            (-change / CUT_BP).alias(f"{p}cuts_priced"),
            status.alias(f"{p}status"),
            pl.col("priced").fill_null(True).alias(f"{p}priced"),
        )

    now = at(pl.col("close_day"), "")
    before = at(pl.col("close_day") - pl.duration(days=7), "prev_")
    prev_ok = pl.col("prev_status") == "ok"
    prev = pl.when(prev_ok).then(pl.col("prev_implied_change_bp"))
    return (
        now.join(before, on="week_start")
        .filter(pl.col("priced") & pl.col("prev_priced"))
        .sort("week_start")
        .with_columns(
            pl.lit(BILL_SERIES).alias("bill_series"),
            pl.lit(FUNDS_SERIES).alias("funds_series"),
            pl.when(prev_ok).then(pl.col("prev_observation_date")).alias("prev_observation_date"),
            prev.alias("prev_implied_change_bp"),
            pl.when(pl.col("status") == "ok").then(pl.col("implied_change_bp") - prev).alias("change_bp"),
        )
        .select(list(WEEKLY_RATE_EXPECTATIONS.polars_schema))
    )


def compute(lake: Lake, weeks: list[str]) -> dict[str, pl.DataFrame]:
    """The four tables for ``weeks`` (consecutive Monday keys) from the clean tables in ``lake``."""
    first = date.fromisoformat(weeks[0])
    frame = consecutive_weeks(first, len(weeks))
    macro = _macro(lake)
    # the cross-asset rows of the weeks and of the MAX_STREAK_WEEKS weeks before them (worst-week streaks)
    wider = consecutive_weeks(first - timedelta(days=7 * MAX_STREAK_WEEKS), len(weeks) + MAX_STREAK_WEEKS)
    ca = _cross_asset(_levels(lake, macro), wider)
    # a week whose open or close day has no coin_daily partition fails in the project: no rows
    coin_weeks = frame.filter(_open_close_present(lake["coin_daily"]))
    return {
        "weekly_cross_asset": weekly_cross_asset(ca, coin_weeks),
        "weekly_crypto_rank": weekly_crypto_rank(ca, coin_weeks),
        "weekly_macro": weekly_macro(macro, frame),
        "weekly_rate_expectations": weekly_rate_expectations(macro, frame),
    }
