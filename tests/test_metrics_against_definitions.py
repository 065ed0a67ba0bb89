"""Two weekly metrics computed with few frame operations give exactly the outcome of their frame-by-frame
definitions (below): the sector indices (every universe coin joined to its close once, each index's members picked
by position) and the cross-asset returns (each series' boundary levels read from its observations in plain Python).
Random inputs: coins without categories, categories with nulls, members without a close or closing before the close
day, market caps of zero; series with gaps, nulls, stale levels, a market closed all week and a series absent."""

from __future__ import annotations

import random
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.metrics import cross_asset, sectors
from pipelines.metrics.pit import as_of, last_on_or_before, week_window
from pipelines.metrics.universe import universe_at

WEEK = "2025-11-17"
CATEGORIES = ["layer-1", "layer-2", "gaming", "depin", "meme-token", "artificial-intelligence", None]


def week_returns_by_definition(coin_daily, categories, eligible_ids, week, specs, cap, universe_size):
    """Each index's members filtered from the universe by rank and category, sorted by rank, cut to the most
    members, then joined to their closes, one index at a time."""
    w = week_window(week)
    cd = as_of(coin_daily, week)
    universe = universe_at(cd, eligible_ids, w.open_day, universe_size)
    closes = last_on_or_before(
        cd.filter(pl.col("price_usd").is_not_null() & (pl.col("date") > w.open_day)), w.close_day, ["coin_id"]
    ).select("coin_id", pl.col("price_usd").alias("price_close"), pl.col("date").alias("close_date"))
    out = {}
    for spec in specs:
        u = universe.filter(pl.col("rank").is_between(spec.rank_from, spec.rank_to))
        if spec.categories is not None:
            tagged = categories.filter(
                pl.col("categories").list.eval(pl.element().is_in(list(spec.categories))).list.any()
            )["coin_id"]
            u = u.filter(pl.col("coin_id").is_in(tagged.implode()))
        u = u.sort("rank")
        u = u.head(spec.max_members) if spec.max_members else u
        m = u.join(closes, on="coin_id", how="left")
        if m.height == 0:
            out[spec.name] = (0, None, None, 0, 0, 0)
            continue
        r, wts = sectors.index_return(
            m["price_usd"].to_numpy(),
            m["price_close"].fill_null(float("nan")).to_numpy(),
            m["market_cap_usd"].to_numpy(),
            cap,
        )
        on_close = m.filter(pl.col("close_date") == w.close_day).height
        dropped = m.filter(pl.col("price_close").is_null()).height
        out[spec.name] = (
            m.height,
            float(wts.max()),
            None if r is None else 100.0 * r,
            on_close,
            m.height - on_close - dropped,
            dropped,
        )
    return out


def random_market(rng: random.Random) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    w = week_window(WEEK)
    coins = [f"coin-{i:03d}" for i in range(rng.randint(0, 90))]
    rows = []
    for c in coins:
        last = w.close_day - timedelta(days=rng.choice([0, 0, 0, 1, 3, 7]))  # some stop trading mid-week
        d = w.open_day - timedelta(days=3)
        while d <= last:
            if rng.random() > 0.1:  # a day missing now and then
                price = None if rng.random() < 0.05 else rng.uniform(0.01, 500)
                cap = rng.choice([0.0, None, rng.uniform(1e5, 1e12), rng.uniform(1e5, 1e12)])
                rows.append((d, c, price, cap))
            d += timedelta(days=1)
    coin_daily = pl.DataFrame(
        rows,
        schema={"date": pl.Date, "coin_id": pl.String, "price_usd": pl.Float64, "market_cap_usd": pl.Float64},
        orient="row",
    )
    cats = []
    for c in coins:
        if rng.random() < 0.1:
            cats.append((c, None))
        else:
            cats.append((c, rng.sample(CATEGORIES, rng.randint(0, 3))))
    categories = pl.DataFrame(
        cats, schema={"coin_id": pl.String, "categories": pl.List(pl.String)}, orient="row"
    )
    eligible = [c for c in coins if rng.random() < 0.9]
    return coin_daily, categories, eligible


@pytest.mark.parametrize("seed", range(40))
def test_sector_indices_equal_their_definition(seed: int) -> None:
    rng = random.Random(seed)
    coin_daily, categories, eligible = random_market(rng)
    specs = sectors.DEFAULT_INDICES + (
        sectors.IndexSpec("two_tags", ("gaming", "depin"), 3, 40, max_members=5),
        sectors.IndexSpec("none_tagged", ("no-such-category",)),
    )
    size = rng.choice([500, 30])
    got = sectors._week_returns(coin_daily, categories, eligible, WEEK, specs, 0.25, size)
    want = week_returns_by_definition(coin_daily, categories, eligible, WEEK, specs, 0.25, size)
    assert got == want  # every count, weight and return, to the bit


def last_at_or_before_by_definition(levels: pl.DataFrame, series: str, day: date, max_stale_days: int):
    """A series' boundary level: its rows filtered from every series' levels, sorted by date, the last one."""
    s = levels.filter(
        (pl.col("series") == series)
        & (pl.col("date") <= day)
        & pl.col("value").is_not_null()
        & (pl.col("date") > day - timedelta(days=max_stale_days))
    ).sort("date")
    return (s["date"][-1], s["value"][-1]) if s.height else (None, None)


@pytest.mark.parametrize("seed", range(40))
def test_cross_asset_levels_equal_their_definition(seed: int) -> None:
    rng = random.Random(seed)
    w = week_window(WEEK)
    rows = []
    for spec in cross_asset.DEFAULT_ASSETS:
        if rng.random() < 0.1:
            continue  # the series is absent
        gap_from = w.open_day + timedelta(days=rng.randint(-8, 8))  # a market closed for a while
        gap_days = rng.choice([0, 0, 3, 9])
        days = list(range(-12, 8))
        rng.shuffle(days)  # levels in any order
        for k in days:
            d = w.open_day + timedelta(days=k)
            if gap_from <= d < gap_from + timedelta(days=gap_days) or rng.random() < 0.15:
                continue
            value = None if rng.random() < 0.1 else rng.uniform(-2, 5000)
            rows.append((spec.series, d, value))
    levels = pl.DataFrame(
        rows, schema={"series": pl.String, "date": pl.Date, "value": pl.Float64}, orient="row"
    )
    stale = rng.choice([1, 3, cross_asset.MAX_STALE_DAYS, 10])
    lv = as_of(levels, WEEK)
    got = cross_asset.weekly_cross_asset(levels, WEEK, max_stale_days=stale)
    for spec, row in zip(cross_asset.DEFAULT_ASSETS, got.iter_rows(named=True), strict=True):
        d0, v0 = last_at_or_before_by_definition(lv, spec.series, w.open_day, stale)
        d1, v1 = last_at_or_before_by_definition(lv, spec.series, w.close_day, stale)
        assert (row["open_date"], row["open_value"], row["close_date"], row["close_value"]) == (
            d0,
            v0,
            d1,
            v1,
        )
    assert np.isfinite(got["return_pct"].drop_nulls().to_numpy()).all()
