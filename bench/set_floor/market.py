"""The set-based floor of the market tables: ``weekly_universe``, ``weekly_total_market_cap``,
``weekly_market_total`` and ``weekly_mcap_crossings`` for every week of a range in one vectorized pass.

* The tracked coins' daily total (``total_market_cap_daily``) is derived once over the whole history of
  ``coin_daily``: one reading per coin and day (the largest positive), each reading carried to the next
  ``CARRY_DAYS`` days that have no reading of the coin, then one ``group_by`` over the days. A day's total only
  looks backwards, so every week keeps the days up to its close.
* The market's total depends on the week only through the /global observations it may use: those made by two
  days after its close, a prefix of the observations sorted by time. Weeks are grouped by the length of that
  prefix (their "epoch"), and the market's total is derived once per epoch for every day (cross join of the
  epochs and the days): observed where a usable observation closes that day, else the top coins' total divided
  by the share of the usable observation nearest the day's close (the last one at or before it and the first
  one after it, found by ``search_sorted``), else the real-data constant.
* The crossings are found between consecutive days of each epoch's series that fall in one week (the pairs
  joined to the weeks), the levels of each pair generated with ``int_ranges``, and each crossing's "since" day
  is the latest earlier day of its epoch's series on the new side (crossings joined to the series, then ``max``).
* The universe joins the rows of each week's open day to the eligible coins of the registry snapshot the week
  uses (the last one taken on or before its close, else the earliest) and ranks them per week.

A week is computed only when the project computes it: the universe needs ``coin_daily``'s open day, the other
tables its open and close days.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from assets.weekly.market import TOP_N
from bench.set_floor import Lake
from bench.set_floor.shared import daily_totals, eligible_coins, pct, week_days, week_snapshots
from pipelines.metrics.market import (
    CONSTANT,
    ESTIMATED,
    MEASURED,
    OBSERVED,
    REAL_TOP100_SHARE,
    USABLE_AFTER_CLOSE,
)
from pipelines.metrics.pit import week_window
from pipelines.schemas import (
    WEEKLY_MARKET_TOTAL,
    WEEKLY_MCAP_CROSSINGS,
    WEEKLY_TOTAL_MARKET_CAP,
    WEEKLY_UNIVERSE,
)

TABLES = (
    WEEKLY_UNIVERSE.name,
    WEEKLY_TOTAL_MARKET_CAP.name,
    WEEKLY_MARKET_TOTAL.name,
    WEEKLY_MCAP_CROSSINGS.name,
)

CROSSING_STEP = 0.5e12  # level_crossings' default step and base
CROSSING_BASE = 0.0
UTC_MS = pl.Datetime("ms", "UTC")


def _weeks_frame(weeks: list[str], lake_days: pl.Series) -> pl.DataFrame:
    """One row per week: ``week_start, open_day, close_day``, the last instant a usable /global observation may
    have been made (``bound``), and whether ``coin_daily`` has its open day and its close day."""
    days = lake_days.unique().implode()
    bound = (pl.col("close_day") + timedelta(days=1)).cast(UTC_MS) + USABLE_AFTER_CLOSE
    return week_days(week_window(w).monday for w in weeks).with_columns(
        bound.alias("bound"),
        pl.col("open_day").is_in(days).alias("has_open"),
        pl.col("close_day").is_in(days).alias("has_close"),
    )


# ---- weekly_universe ---------------------------------------------------------------------------------------------
def _universe(lake: dict[str, pl.DataFrame], weeks: pl.DataFrame) -> pl.DataFrame:
    """``weekly_universe`` of every week: the top ``TOP_N`` eligible coins priced at the week's open day, ranked
    by market cap (ties by id)."""
    cd, registry = lake["coin_daily"], lake.get("coin_registry")
    if registry is None or registry.is_empty():
        return pl.DataFrame(schema=WEEKLY_UNIVERSE.polars_schema)
    week_snap = week_snapshots(weeks.filter("has_open"), registry)
    members = week_snap.join(eligible_coins(registry), on="snapshot").select("week_start", "coin_id")
    opens = weeks.filter("has_open").select("week_start", pl.col("open_day").alias("date"))
    rows = (
        cd.filter((pl.col("market_cap_usd") > 0) & pl.col("price_usd").is_not_null())
        .join(opens, on="date")
        .join(members, on=["week_start", "coin_id"])
        .unique(["week_start", "coin_id"], keep="last", maintain_order=True)
        .sort(["week_start", "market_cap_usd", "coin_id"], descending=[False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("week_start").alias("rank"))
        .filter(pl.col("rank") <= TOP_N)
    )
    opened = {"market_cap_usd": "market_cap_open_usd", "price_usd": "price_open_usd"}
    return rows.rename(opened).select(WEEKLY_UNIVERSE.column_names)


# ---- the tracked coins' daily total and the market's total -----------------------------------------------------
def _observations(lake: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The /global observations a week may use when made early enough (positive share and total), oldest first
    (equal instants in the lake's order), with ``seconds`` since the epoch and their position ``i``."""
    schema = {
        "observed_at": UTC_MS,
        "total_market_cap_usd": pl.Float64,
        "top_share": pl.Float64,
        "close_day": pl.Date,
    }
    g = lake.get("global_market_cap")
    if g is None:
        g = pl.DataFrame(schema=schema)
    return (
        g.select(
            pl.col("observed_at").dt.convert_time_zone("UTC").dt.cast_time_unit("ms"),
            *list(schema)[1:],
        )
        .filter((pl.col("top_share") > 0) & (pl.col("total_market_cap_usd") > 0))
        .sort("observed_at", maintain_order=True)
        .with_columns(
            (pl.col("observed_at").dt.epoch("ms") / 1000).alias("seconds"),
            pl.int_range(pl.len(), dtype=pl.Int64).alias("i"),
        )
    )


def _market_by_epoch(daily: pl.DataFrame, obs: pl.DataFrame, epochs: pl.DataFrame) -> pl.DataFrame:
    """``market_total_daily`` for each epoch (``e``: the number of observations usable) and every day up to the
    last close of its weeks (``last_day``): ``e, date, tracked_mcap_usd, top_mcap_usd, top_coins,
    market_total_usd, basis, share, share_source, share_observed_at``."""
    n = obs.height
    secs = obs["seconds"]
    days = daily.filter(pl.col("top_mcap_usd") > 0).with_columns(
        ((pl.col("date") + timedelta(days=1)).cast(UTC_MS).dt.epoch("ms") / 1000).alias("t")
    )
    # p: how many observations were made at or before the day's close
    days = days.with_columns(pl.Series("p", secs.search_sorted(days["t"], side="right"), dtype=pl.Int64))
    # the observation closing each day: the earliest with that close_day, used when the epoch reaches it
    closing = (
        obs.filter(pl.col("close_day").is_not_null())
        .group_by("close_day", maintain_order=True)
        .first()
        .select(
            pl.col("close_day").alias("date"),
            pl.col("i").alias("obs_i"),
            pl.col("total_market_cap_usd").alias("obs_total"),
            pl.col("top_share").alias("obs_share"),
            pl.col("observed_at").alias("obs_at"),
        )
    )
    # first_of[i]: the first observation made at the same instant as observation i (argmin takes the first)
    first_of = (
        pl.Series(secs.search_sorted(secs, side="left"), dtype=pl.Int64)
        if n
        else pl.Series([], dtype=pl.Int64)
    )
    grid = (
        epochs.join(days.join(closing, on="date", how="left"), how="cross")
        .filter(pl.col("date") <= pl.col("last_day"))
        .with_columns(
            before=pl.min_horizontal("p", "e") - 1,
            after=pl.when(pl.col("p") < pl.col("e")).then("p"),
        )
    )
    if n:
        before = pl.when(pl.col("before") >= 0).then(pl.col("before"))
        grid = grid.with_columns(
            before=pl.lit(first_of).gather(before),
            t_before=pl.lit(secs).gather(before),
            t_after=pl.lit(secs).gather(pl.col("after")),
        )
        # the nearer of the two; a tie goes to the earlier
        later = pl.col("t_before").is_null() | (
            (pl.col("t_after") - pl.col("t")).abs() < (pl.col("t_before") - pl.col("t")).abs()
        )
        near = pl.when(pl.col("after").is_not_null() & later).then("after").otherwise("before")
        grid = grid.with_columns(
            near_share=pl.lit(obs["top_share"]).gather(near),
            near_at=pl.lit(obs["observed_at"]).gather(near),
        )
    else:
        grid = grid.with_columns(near_share=pl.lit(None, pl.Float64), near_at=pl.lit(None, UTC_MS))
    observed = pl.col("obs_i").is_not_null() & (pl.col("obs_i") < pl.col("e"))
    measured = pl.col("near_share").is_not_null()
    share = pl.when(observed).then("obs_share").when(measured).then("near_share").otherwise(REAL_TOP100_SHARE)
    return grid.select(
        "e",
        "date",
        pl.col("total_mcap_usd").alias("tracked_mcap_usd"),
        "top_mcap_usd",
        "top_coins",
        pl.when(observed)
        .then("obs_total")
        .otherwise(pl.col("top_mcap_usd") / share)
        .alias("market_total_usd"),
        pl.when(observed).then(pl.lit(OBSERVED)).otherwise(pl.lit(ESTIMATED)).alias("basis"),
        share.alias("share"),
        pl.when(observed | measured).then(pl.lit(MEASURED)).otherwise(pl.lit(CONSTANT)).alias("share_source"),
        pl.when(observed).then("obs_at").otherwise("near_at").cast(UTC_MS).alias("share_observed_at"),
    )


def _week_days(weeks: pl.DataFrame) -> pl.DataFrame:
    """``week_start, e, date``: every day of every week, its open day to its close day."""
    return weeks.select("week_start", "e", pl.date_ranges("open_day", "close_day").alias("date")).explode(
        "date"
    )


def _total_market_cap(weeks: pl.DataFrame, daily: pl.DataFrame, market: pl.DataFrame) -> pl.DataFrame:
    """``weekly_total_market_cap`` of every week: the tracked total and the market's total at the open and the
    close, their changes, and their lows and highs over the week's days."""
    w = weeks.select("week_start", "open_day", "close_day", "e")
    days = _week_days(weeks)
    tracked = (
        days.join(daily, on="date")
        .group_by("week_start")
        .agg(
            pl.col("total_mcap_usd").min().alias("mcap_low_usd"),
            pl.col("total_mcap_usd").max().alias("mcap_high_usd"),
        )
    )
    mk = days.join(market, on=["e", "date"])
    mk_range = mk.group_by("week_start").agg(
        pl.col("market_total_usd").min().alias("market_total_low_usd"),
        pl.col("market_total_usd").max().alias("market_total_high_usd"),
    )
    ends = []
    for end in ("open", "close"):
        day = pl.col(f"{end}_day")
        t = daily.select(
            pl.col("date").alias(f"{end}_day"),
            pl.col("total_mcap_usd").alias(f"mcap_{end}_usd"),
            pl.col("coins").alias(f"coins_{end}"),
            pl.col("coins_carried").alias(f"coins_carried_{end}"),
        )
        m = mk.join(w.select("week_start", day.alias("date")), on=["week_start", "date"]).select(
            "week_start",
            pl.col("market_total_usd").alias(f"market_total_{end}_usd"),
            pl.col("basis").alias(f"basis_{end}"),
            pl.col("share").alias(f"share_{end}"),
            pl.col("share_source").alias(f"share_source_{end}"),
            pl.col("share_observed_at").alias(f"share_observed_at_{end}"),
            pl.col("top_coins").alias(f"top_coins_{end}"),
        )
        ends.append((t, f"{end}_day", m))
    out = w
    for t, key, m in ends:
        out = out.join(t, on=key, how="left").join(m, on="week_start", how="left")
    out = out.join(tracked, on="week_start", how="left").join(mk_range, on="week_start", how="left")
    out = out.with_columns(
        pct(pl.col("mcap_open_usd"), pl.col("mcap_close_usd")).alias("change_pct"),
        pct(pl.col("market_total_open_usd"), pl.col("market_total_close_usd")).alias(
            "market_total_change_pct"
        ),
    )
    return out.sort("week_start").select(WEEKLY_TOTAL_MARKET_CAP.column_names)


def _crossings(weeks: pl.DataFrame, market: pl.DataFrame) -> pl.DataFrame:
    """``weekly_mcap_crossings`` of every week: the levels crossed between consecutive days of the week in its
    epoch's series of the market's total, with the last earlier day already on the new side."""
    series = market.select("e", "date", pl.col("market_total_usd").alias("v")).sort("e", "date")
    pairs = (
        series.with_columns(
            pl.col("date").shift(1).over("e").alias("prev_date"),
            pl.col("v").shift(1).over("e").alias("x0"),
            pl.col("date")
            .dt.truncate("1w")
            .alias("week_start"),  # the week whose days (Monday..Sunday) hold it
        )
        .join(weeks.select("week_start", "open_day", "e"), on=["week_start", "e"])
        .filter(pl.col("prev_date") >= pl.col("open_day"))
    )
    lo, hi = pl.min_horizontal("x0", "v"), pl.max_horizontal("x0", "v")
    level = pl.lit(CROSSING_BASE) + pl.col("k").cast(pl.Float64) * CROSSING_STEP
    found = (
        pairs.with_columns(
            pl.int_ranges(
                ((lo - CROSSING_BASE) / CROSSING_STEP).floor().cast(pl.Int64),
                ((hi - CROSSING_BASE) / CROSSING_STEP).floor().cast(pl.Int64) + 2,
            ).alias("k")
        )
        .explode("k")
        .with_columns(level.alias("level_usd"))
        .with_columns(
            pl.when((pl.col("x0") >= pl.col("level_usd")) & (pl.col("level_usd") > pl.col("v")))
            .then(pl.lit("down"))
            .when((pl.col("x0") < pl.col("level_usd")) & (pl.col("level_usd") <= pl.col("v")))
            .then(pl.lit("up"))
            .alias("direction")
        )
        .filter(pl.col("direction").is_not_null())
        .select("week_start", "e", "level_usd", "direction", pl.col("date").alias("crossed_on"))
    )
    # the "since" day: the latest day of the epoch's series before the crossing already on the new side
    side = (
        pl.when(pl.col("direction") == "down")
        .then(pl.col("v") < pl.col("level_usd"))
        .otherwise(pl.col("v") >= pl.col("level_usd"))
    )
    keys = ["week_start", "level_usd", "crossed_on"]
    since = (
        found.join(series, on="e")
        .filter((pl.col("date") < pl.col("crossed_on")) & side)
        .group_by(keys)
        .agg(pl.col("date").max().alias("last_other_side_day"))
    )
    return (
        found.join(since, on=keys, how="left")
        .sort("week_start", "crossed_on", "level_usd")
        .select(WEEKLY_MCAP_CROSSINGS.column_names)
    )


def compute(lake: Lake, weeks: list[str]) -> dict[str, pl.DataFrame]:
    """The four market tables for ``weeks`` from the clean tables in memory."""
    cd = lake["coin_daily"]
    wk = _weeks_frame(weeks, cd["date"])
    out = {WEEKLY_UNIVERSE.name: _universe(lake, wk)}

    obs = _observations(lake)
    # a week's epoch: how many observations were made by its bound (the prefix it may use)
    both = wk.filter(pl.col("has_open") & pl.col("has_close"))
    both = both.with_columns(
        pl.Series("e", obs["observed_at"].search_sorted(both["bound"], side="right"), dtype=pl.Int64)
    )
    epochs = both.group_by("e").agg(pl.col("close_day").max().alias("last_day"))
    last = both["close_day"].max()  # no day after the last close is needed
    daily = daily_totals(lake)
    daily = daily if last is None else daily.filter(pl.col("date") <= last)
    market = _market_by_epoch(daily, obs, epochs)

    out[WEEKLY_TOTAL_MARKET_CAP.name] = _total_market_cap(both, daily, market)
    out[WEEKLY_MARKET_TOTAL.name] = (
        _week_days(both)
        .join(market, on=["e", "date"])
        .sort("week_start", "date")
        .select(WEEKLY_MARKET_TOTAL.column_names)
    )
    out[WEEKLY_MCAP_CROSSINGS.name] = _crossings(both, market)
    return out
