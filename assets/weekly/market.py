"""Weekly market tables from coin_daily and the coin registry: universe, total market cap and its round-number
crossings, sector and size indices, correlation buckets. Each asset wraps one function of ``pipelines.metrics``."""

from __future__ import annotations

import math
from datetime import date, timedelta

import dagster as dg
import polars as pl

from assets.weekly.shape import (
    Check,
    Computed,
    coin_daily_between,
    days_before,
    eligible_coin_ids,
    has_table,
    out_of,
    require_days,
    require_open_close,
    total_market_cap_days,
    total_market_cap_through,
    weekly_table_asset,
)
from pipelines.calendar import WEEK_FROM_DAYS
from pipelines.lake_snapshot import LakeSnapshot
from pipelines.metrics.correlation import weekly_correlation_buckets
from pipelines.metrics.market import (
    ESTIMATED,
    level_crossings,
    market_total_daily,
    weekly_market_total,
    weekly_total_market_cap,
)
from pipelines.metrics.pit import week_window
from pipelines.metrics.sectors import weekly_index_returns
from pipelines.metrics.universe import weekly_universe
from pipelines.schemas import (
    COIN_DAILY,
    COIN_REGISTRY,
    GLOBAL_MARKET_CAP,
    WEEKLY_CORRELATION_BUCKETS,
    WEEKLY_INDEX_RETURNS,
    WEEKLY_MARKET_TOTAL,
    WEEKLY_MCAP_CROSSINGS,
    WEEKLY_TOTAL_MARKET_CAP,
    WEEKLY_UNIVERSE,
)

TOP_N = 100
MIN_UNIVERSE = 50  # fewer eligible coins priced at the open means the pulls are incomplete
MIN_TOTAL_COINS = 50
INDEX_CAP = 0.25
REQUIRED_INDICES = ("core_l1", "top30", "mid_caps", "small_caps")
CORR_WINDOW_DAYS = 30
CORR_LOOKBACK_WEEKS = 4

COIN_DAILY_WEEK = dg.AssetDep(COIN_DAILY.name, partition_mapping=WEEK_FROM_DAYS)


# ---- weekly_universe -----------------------------------------------------------------------------------------
def compute_universe(wh, week: str) -> Computed:
    w = week_window(week)
    require_days(wh, COIN_DAILY.name, [w.open_day], week)
    ids, registry = eligible_coin_ids(wh, w.close_day)
    cd = coin_daily_between(wh, w.open_day, w.close_day)
    df = weekly_universe(cd, ids, week, TOP_N)
    problems = []
    if df.height < MIN_UNIVERSE:
        problems.append(f"only {df.height} eligible coins priced at the open (need {MIN_UNIVERSE})")
    if df["rank"].to_list() != list(range(1, df.height + 1)):
        problems.append("ranks are not 1..N")
    absent = {"bitcoin", "ethereum"} - set(df["coin_id"].to_list())
    if absent:
        problems.append(f"{', '.join(sorted(absent))} not in the universe")
    return Computed(
        df,
        metadata={
            "coins": df.height,
            "eligible_coins": len(ids),
            "registry_pulled_at": str(registry["pulled_at"][0]),
        },
        problems={"universe_coverage": problems},
    )


weekly_universe_asset = weekly_table_asset(
    WEEKLY_UNIVERSE,
    description=(
        f"The top {TOP_N} eligible coins (no stablecoins, wrapped, staked or tokenized assets) by market cap at the "
        "week's open, ranked. pipelines.metrics.universe.weekly_universe over coin_daily and coin_registry."
    ),
    deps=[COIN_DAILY_WEEK, COIN_REGISTRY.name],
    compute=compute_universe,
    checks=[Check("universe_coverage", f"At least {MIN_UNIVERSE} coins, ranks 1..N, BTC and ETH present.")],
)


# ---- weekly_total_market_cap, weekly_market_total and weekly_mcap_crossings --------------------------------------
def _total_daily(wh, week: str) -> pl.DataFrame:
    """``total_market_cap_daily`` for the week's days, open to close."""
    w = require_open_close(wh, week)
    return total_market_cap_days(wh, w.open_day, w.close_day)


OBSERVATION_COLUMNS = "observed_at, total_market_cap_usd, top_coins, top_mcap_usd, top_share, close_day"


def global_observations(wh) -> pl.DataFrame:
    """Every /global observation in the lake (``global_market_cap``); ``market_total_daily`` keeps those the week
    may use. Empty (with the columns) when none was ever stored."""
    if has_table(wh, GLOBAL_MARKET_CAP.name):
        return wh.query(
            "SELECT observed_at, total_market_cap_usd, top_coins, top_mcap_usd, top_share, close_day "
            "FROM global_market_cap ORDER BY observed_at"
        )
    empty = pl.from_arrow(GLOBAL_MARKET_CAP.arrow_schema.empty_table())
    return empty.select(OBSERVATION_COLUMNS.split(", "))  # type: ignore[union-attr]


def _market_daily(wh, week: str, daily: pl.DataFrame | None = None) -> pl.DataFrame:
    """``market_total_daily`` for the days of ``daily`` (default: the week's)."""
    daily = _total_daily(wh, week) if daily is None else daily
    return market_total_daily(daily, global_observations(wh), week)


def market_total_problems(rows: list[dict]) -> list[str]:
    """A day of the market's total that is wrong: missing or not positive, below the top coins it was estimated
    from (share above 1), or a share outside (0, 1]."""
    out = []
    for r in rows:
        v, top, share = r.get("market_total_usd"), r.get("top_mcap_usd"), r.get("share")
        if v is None or not v > 0 or not math.isfinite(v):
            out.append(f"{r['date']}: market total {v} missing or not positive")
        elif top is not None and v < top * (1 - 1e-12):
            out.append(f"{r['date']}: market total {v:.6g} below the top {r['top_coins']} coins' {top:.6g}")
        if share is None or not 0 < share <= 1:
            out.append(f"{r['date']}: share {share} outside (0, 1]")
    return out


def compute_total_market_cap(wh, week: str) -> Computed:
    w = week_window(week)
    daily = _total_daily(wh, week)
    market = _market_daily(wh, week, daily)
    df = weekly_total_market_cap(daily, week, market)
    row = df.row(0, named=True)
    problems = []
    coins = dict(
        daily.filter(pl.col("date").is_in([w.open_day, w.close_day])).select("date", "coins").iter_rows()
    )
    for label, d in (("open", w.open_day), ("close", w.close_day)):
        if coins.get(d, 0) < MIN_TOTAL_COINS:
            problems.append(f"only {coins.get(d, 0)} coins with a market cap at the {label} ({d})")
    if not (row["mcap_open_usd"] or 0) > 0 or not (row["mcap_close_usd"] or 0) > 0:
        problems.append("total market cap missing or not positive at the open or the close")
    elif not row["mcap_low_usd"] <= min(row["mcap_open_usd"], row["mcap_close_usd"]) <= row["mcap_high_usd"]:
        problems.append("low/high do not bracket the open and close")
    days = daily.filter(pl.col("date").is_between(w.open_day, w.close_day)).height
    ends = market.filter(pl.col("date").is_in([w.open_day, w.close_day])).to_dicts()
    market_problems = market_total_problems(ends)
    if len(ends) < 2:
        market_problems.append("the market's total is missing at the open or the close")
    return Computed(
        df,
        metadata={
            "days_in_week": days,
            "coins_open": coins.get(w.open_day, 0),
            "coins_close": coins.get(w.close_day, 0),
            "market_total_basis": f"{row['basis_open']} at the open, {row['basis_close']} at the close",
            "share_close": row["share_close"],
            "share_source_close": row["share_source_close"],
        },
        problems={"total_market_cap_coverage": problems, "market_total_consistent": market_problems},
    )


weekly_total_market_cap_asset = weekly_table_asset(
    WEEKLY_TOTAL_MARKET_CAP,
    description=(
        "Total crypto market cap at the week's open and close, its change and the week's low and high daily close: "
        "the tracked coins' total (every coin in coin_daily, stablecoins included) and the market's total "
        "(CoinGecko's global figure, observed or estimated, with its basis and share; weekly_market_total). "
        "pipelines.metrics.market.weekly_total_market_cap."
    ),
    deps=[COIN_DAILY_WEEK, GLOBAL_MARKET_CAP.name],
    compute=compute_total_market_cap,
    checks=[
        Check(
            "total_market_cap_coverage",
            f"At least {MIN_TOTAL_COINS} coins at open and close, positive totals, low <= open/close <= high.",
        ),
        Check(
            "market_total_consistent",
            "The market's total at the open and close is positive, at least the "
            "top coins it is estimated from, with a share in (0, 1].",
        ),
    ],
)


def compute_market_total(wh, week: str) -> Computed:
    w = week_window(week)
    market = _market_daily(wh, week)
    df = weekly_market_total(market, week)
    problems = market_total_problems(df.to_dicts())
    have = set(df["date"].to_list())
    problems += [f"{d}: no market total" for d in (w.open_day, w.close_day) if d not in have]
    estimated = df.filter(pl.col("basis") == ESTIMATED)
    return Computed(
        df,
        metadata={
            "observed_days": df.height - estimated.height,
            "estimated_days": estimated.height,
            "share_sources": ", ".join(sorted(set(df["share_source"].to_list()))) or "none",
        },
        problems={"market_total_consistent": problems},
    )


weekly_market_total_asset = weekly_table_asset(
    WEEKLY_MARKET_TOTAL,
    description=(
        "The market's total market cap on each day of the week: CoinGecko's global figure where it was observed at "
        "the close, else the top 100 coins' market cap divided by their share of it, measured by the nearest /global "
        "observation made by two days after the week's close (or the share measured on real listings), labelled "
        "observed or estimated with the share used. pipelines.metrics.market.market_total_daily."
    ),
    deps=[COIN_DAILY_WEEK, GLOBAL_MARKET_CAP.name],
    compute=compute_market_total,
    checks=[
        Check(
            "market_total_consistent",
            "Every day's market total is positive, at least the top coins it is "
            "estimated from, with a share in (0, 1]; the open and the close are present.",
        )
    ],
)


# How far back a week alone first derives the market's total for its crossings' "since" days; doubled until every
# crossing has its day or the span reaches the start of coin_daily.
SINCE_FIRST_SPAN = timedelta(weeks=8)


def _crossings_through_history(wh, week: str, w, history_from) -> pl.DataFrame:
    """``level_crossings`` of the market's total for ``week``, with each "since" day as the whole history up to
    the close gives it. The last close on the new side before a crossing is the latest one, so a week alone
    derives the daily totals back ``SINCE_FIRST_SPAN`` first and, while a crossing has no such day in what it
    derived, the days before them back twice as far (a day's total reads only its own rows and the
    ``CARRY_DAYS`` before them, so each day is the whole history's, and no day is derived twice) down to
    ``history_from``, the first day of ``coin_daily`` (none before it has a total or carries one); a range of
    weeks has the whole history derived once."""
    observations = global_observations(wh)
    if isinstance(wh, LakeSnapshot):
        whole = total_market_cap_through(wh, w.close_day)
        return level_crossings(market_total_daily(whole, observations, week), week, col="market_total_usd")
    history_from = history_from or w.open_day  # no day listed before the open: nothing earlier to derive
    span, upper, derived = SINCE_FIRST_SPAN, w.close_day, []
    while True:
        start = max(w.open_day - span, history_from)
        derived.insert(0, total_market_cap_days(wh, start, upper))  # the older days only: each day its own
        daily = market_total_daily(pl.concat(derived), observations, week)
        df = level_crossings(daily, week, col="market_total_usd")
        if start <= history_from or df["last_other_side_day"].null_count() == 0:
            return df
        span, upper = span * 2, start - timedelta(days=1)


def compute_crossings(wh, week: str) -> Computed:
    w = require_open_close(wh, week)
    # the days the "since" days are judged over: coin_daily's days to the close, from its folders' names (a
    # day with no market cap has no total, so the derivation may start at any day before the first that has)
    days = [day for day in map(date.fromisoformat, wh.partition_values(COIN_DAILY)) if day <= w.close_day]
    history = {"first": days[0] if days else None, "days": len(days)}
    df = _crossings_through_history(wh, week, w, history["first"])
    problems = []
    for r in df.iter_rows(named=True):
        if not w.open_day < r["crossed_on"] <= w.close_day:
            problems.append(f"crossing of {r['level_usd']:.3g} on {r['crossed_on']} outside the week")
        if r["last_other_side_day"] is not None and r["last_other_side_day"] >= r["crossed_on"]:
            problems.append(f"'since' day {r['last_other_side_day']} not before the crossing")
    return Computed(
        df,
        metadata={
            "crossings": df.height,
            "history_from": str(history["first"]),
            "history_days": history["days"],
        },
        problems={"crossings_consistent": problems},
    )


weekly_mcap_crossings_asset = weekly_table_asset(
    WEEKLY_MCAP_CROSSINGS,
    description=(
        "Round levels ($0.5T steps) of the market's total (CoinGecko's global figure, observed or estimated as in "
        "weekly_market_total) crossed between daily closes during the week, with the last earlier close already on "
        "the new side ('first time since April'). Reads coin_daily's history up to the week's close, as far back as "
        "those days need (the whole history when a level was never on that side), and the /global observations "
        "the week may use. pipelines.metrics.market.level_crossings."
    ),
    deps=[COIN_DAILY_WEEK, GLOBAL_MARKET_CAP.name],
    compute=compute_crossings,
    checks=[Check("crossings_consistent", "Crossings fall inside the week; 'since' days precede them.")],
)


# ---- weekly_index_returns --------------------------------------------------------------------------------------
def compute_index_returns(wh, week: str) -> Computed:
    w = require_open_close(wh, week)
    # the previous week's return is context: without its open in the lake it is null, not a failure
    ids, registry = eligible_coin_ids(wh, w.close_day)
    cd = coin_daily_between(wh, w.open_day - timedelta(days=7), w.close_day)
    df = weekly_index_returns(cd, registry.select("coin_id", "categories"), ids, week, cap=INDEX_CAP)
    capped, coverage, empty = [], [], []
    for r in df.iter_rows(named=True):
        n, mw = r["constituents"], r["max_weight"]
        if n == 0:
            empty.append(r["index"])
            continue
        limit = INDEX_CAP if n * INDEX_CAP >= 1 else 1.0 / n
        if mw is None or mw > limit + 1e-9:
            capped.append(f"{r['index']}: max weight {mw} above {limit:.4g}")
        if r["return_pct"] is not None and r["return_pct"] <= -100:
            capped.append(f"{r['index']}: return {r['return_pct']:.4g}% not above -100%")
    for name in REQUIRED_INDICES:
        hit = df.filter(pl.col("index") == name)
        if hit.height == 0 or hit["return_pct"][0] is None:
            coverage.append(f"{name} has no return")
    return Computed(
        df,
        metadata={"empty_indices": ", ".join(empty) or "none"},
        problems={
            "index_weights_capped": capped,
            "index_coverage": coverage,
            "sector_members": [f"{e} has no members" for e in empty],
        },
    )


weekly_index_returns_asset = weekly_table_asset(
    WEEKLY_INDEX_RETURNS,
    description=(
        f"Sector and size indices (core L1, L2, gaming, DePIN, AI, DeFi, meme, top 30, mid and small caps), "
        f"market-cap weighted and capped at {INDEX_CAP:.0%}, rebalanced at Monday 00:00 UTC; this week and the week "
        "before. pipelines.metrics.sectors.weekly_index_returns over coin_daily and coin_registry categories."
    ),
    deps=[COIN_DAILY_WEEK, COIN_REGISTRY.name],
    compute=compute_index_returns,
    checks=[
        Check(
            "index_weights_capped",
            f"No weight above {INDEX_CAP:.0%} (1/n when n x cap < 1); returns above -100%.",
        ),
        Check("index_coverage", f"{', '.join(REQUIRED_INDICES)} have a return."),
        Check("sector_members", "Every sector index has members this week.", blocking=False),
    ],
)


# ---- weekly_correlation_buckets --------------------------------------------------------------------------------
def compute_correlation(wh, week: str) -> Computed:
    w = require_open_close(wh, week)
    ids, _ = eligible_coin_ids(wh, w.close_day)
    first = w.close_day - timedelta(days=7 * CORR_LOOKBACK_WEEKS + CORR_WINDOW_DAYS + 1)
    cd = coin_daily_between(wh, first, w.close_day, "date, coin_id, symbol, name, price_usd, market_cap_usd")
    df = weekly_correlation_buckets(
        cd,
        ids,
        week,
        window_days=CORR_WINDOW_DAYS,
        lookback_weeks=CORR_LOOKBACK_WEEKS,
        once=wh.derived if isinstance(wh, LakeSnapshot) else None,  # a range: each week's stats once
    )
    ranges = (
        out_of(df["avg_pairwise_corr"], -1, 1, "avg_pairwise_corr")
        + out_of(df["avg_corr_to_btc"], -1, 1, "avg_corr_to_btc")
        + out_of(df["ew_return_pct"], -100, 1e6, "ew_return_pct", closed="none")
    )
    members = [f"bucket {r['bucket']} has no coins" for r in df.iter_rows(named=True) if r["coins"] == 0]
    # Too little history for the window (a fresh or narrow backfill) leaves correlations null: the report says
    # so under Data gaps; a warning here, not a block.
    coverage = [
        f"bucket {r['bucket']}: avg_pairwise_corr {r['avg_pairwise_corr']}, avg_corr_to_btc {r['avg_corr_to_btc']}"
        for r in df.iter_rows(named=True)
        if r["coins"] and (r["avg_pairwise_corr"] is None or r["avg_corr_to_btc"] is None)
    ]
    return Computed(
        df,
        metadata={"history_from": str(cd["date"].min()), "window_days": CORR_WINDOW_DAYS},
        problems={
            "correlation_range": ranges,
            "correlation_members": members,
            "correlation_coverage": coverage,
        },
    )


weekly_correlation_buckets_asset = weekly_table_asset(
    WEEKLY_CORRELATION_BUCKETS,
    description=(
        f"Mean pairwise and to-BTC correlation of {CORR_WINDOW_DAYS}-day daily log returns in rank buckets 1-10, "
        f"11-50 and 51-100 at the open, the buckets' equal-weight returns, and the change against the previous "
        f"{CORR_LOOKBACK_WEEKS} weeks. pipelines.metrics.correlation.weekly_correlation_buckets."
    ),
    deps=[
        dg.AssetDep(COIN_DAILY.name, partition_mapping=days_before(CORR_LOOKBACK_WEEKS + 5)),
        COIN_REGISTRY.name,
    ],
    compute=compute_correlation,
    checks=[
        Check("correlation_range", "Correlations in [-1, 1]; bucket returns above -100%."),
        Check("correlation_members", "Every rank bucket has members."),
        Check(
            "correlation_coverage",
            "Every bucket has a pairwise correlation and a correlation to BTC (warning: "
            "needs the window's history).",
            blocking=False,
        ),
    ],
)
