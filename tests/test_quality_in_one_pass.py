"""The coin_daily rules that look at every row of a range (``outliers``, ``stale``) check all its days in one
pass: each gives exactly the outcome of its day-by-day definition (below), problems in the same order, on days
with coins in any order and some missing the day before, caps of zero or none, a day missing, days asked out of order, and
more than ten stale rows in a day."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from pipelines import quality
from pipelines.pulls.coingecko import close_instant
from pipelines.schemas import COIN_DAILY
from pipelines.warehouse import Warehouse


def outliers_day_by_day(wh: Warehouse, days: list[date]) -> quality.Outcome:
    """The rule's definition: each day's rows joined by coin to the day before's."""
    out = quality.Outcome("market_cap_outliers")
    frames = quality._frames(wh, sorted(set(days) | {d - timedelta(days=1) for d in days}))
    for d in sorted(days):
        today, before = frames.get(d), frames.get(d - timedelta(days=1))
        if today is None or before is None:
            continue
        pair = (
            today.select("coin_id", pl.col("market_cap_usd").alias("cap"))
            .join(
                before.select("coin_id", pl.col("market_cap_usd").alias("prev")),
                on="coin_id",
                maintain_order="left_right",
            )
            .filter((pl.col("cap") > 0) & (pl.col("prev") > 0))
        )
        out.checked += pair.height
        bad = pair.with_columns((pl.col("cap") / pl.col("prev")).alias("ratio")).filter(
            (pl.col("ratio") >= quality.OUTLIER_FACTOR) | (pl.col("ratio") <= 1 / quality.OUTLIER_FACTOR)
        )
        out.problems += [
            f"{d}: {r['coin_id']} market cap x{r['ratio']:.3g} in a day" for r in bad.iter_rows(named=True)
        ]
    return out


def stale_day_by_day(wh: Warehouse, days: list[date]) -> quality.Outcome:
    """The rule's definition: each day's first ten rows observed outside the hour after its close."""
    out = quality.Outcome("stale_observations")
    for d, f in quality._frames(wh, days).items():
        lo = int(close_instant(d).timestamp() * 1000)
        ms = f["observed_at"].dt.epoch("ms")
        bad = f.filter((ms < lo) | (ms >= lo + quality.STALE_AFTER_MS))
        out.checked += f.height
        out.problems += [
            f"{d}: {r['coin_id']} observed at {r['observed_at']}" for r in bad.head(10).iter_rows(named=True)
        ]
    return out


def _day(rng: random.Random, d: date) -> pl.DataFrame:
    coins = rng.sample([f"c{i}" for i in range(40)], 30)  # a different set each day, in no order
    close = close_instant(d)
    observed = [
        close + timedelta(minutes=rng.choice([5, 30, 59, -1, 61, 300])) if rng.random() < 0.8 else close
        for _ in coins
    ]
    caps = [rng.choice([None, 0.0, 1.0, 5.0, 50.0, 0.05, 12.0, 1e9]) for _ in coins]
    return pl.DataFrame(
        {
            "coin_id": coins,
            "symbol": ["a"] * len(coins),
            "name": ["A"] * len(coins),
            "price_usd": [1.0] * len(coins),
            "market_cap_usd": caps,
            "volume_24h_usd": [None] * len(coins),
            "observed_at": observed,
            "raw_file": ["raw/x.json"] * len(coins),
        },
        schema_overrides={"observed_at": pl.Datetime("us", "UTC")},
    )


def test_outliers_and_stale_rows_in_one_pass_are_the_day_by_day_rules(tmp_path: Path) -> None:
    rng = random.Random(7)
    wh = Warehouse(tmp_path)
    first = date(2025, 3, 1)
    for k in range(14):
        if k != 6:  # a day missing: neither it nor the day after is paired
            wh.write_partition(
                COIN_DAILY, (first + timedelta(days=k)).isoformat(), _day(rng, first + timedelta(days=k))
            )
    asks = [
        [first + timedelta(days=k) for k in range(14)],
        [first + timedelta(days=k) for k in (9, 2, 7, 3, 13, 20)],  # out of order, one past the lake
        [first + timedelta(days=6)],
        [first - timedelta(days=3)],  # no day in the lake
    ]
    for days in asks:
        one_pass, reference = quality.outliers(wh, days), outliers_day_by_day(wh, days)
        assert (one_pass.problems, one_pass.checked) == (reference.problems, reference.checked)
        one_pass, reference = quality.stale(wh, days), stale_day_by_day(wh, days)
        assert (one_pass.problems, one_pass.checked) == (reference.problems, reference.checked)
    whole = quality.outliers(wh, asks[0])
    assert whole.problems and whole.checked > 100  # the data exercises the rule
    per_day: dict[str, int] = {}
    for problem in quality.stale(wh, asks[0]).problems:
        per_day[problem[:10]] = per_day.get(problem[:10], 0) + 1
    assert max(per_day.values()) == 10  # days with more than ten stale rows name their first ten
