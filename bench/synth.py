"""Synthetic inputs for sizes and histories the emulator does not have: ``coin_daily`` frames and a registry.

Prices follow independent-ish log random walks around a common market factor (so correlations are not all
zero), market caps are price x a fixed supply with a heavy-tailed size distribution, a few coins miss days.
Coin 0 is ``bitcoin`` and coin 1 ``ethereum`` (the summary needs both). Deterministic for a given seed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl

from pipelines.pulls.coingecko import MEMBERSHIP_CATEGORIES


def coin_ids(n: int) -> list[str]:
    return ["bitcoin", "ethereum"] + [f"coin-{i:05d}" for i in range(2, n)]


def registry(n: int, seed: int = 7) -> pl.DataFrame:
    """coin_registry rows (lake schema): every coin with 0-2 categories drawn from the membership list."""
    rng = np.random.default_rng(seed)
    cats = list(MEMBERSHIP_CATEGORIES)
    ids = coin_ids(n)
    picks = [sorted({cats[j] for j in rng.integers(0, len(cats), rng.integers(0, 3))}) for _ in ids]
    picks[0], picks[1] = ["layer-1"], ["layer-1"]
    return pl.DataFrame(
        {
            "coin_id": ids,
            "symbol": [c[:4] for c in ids],
            "name": [c.title() for c in ids],
            "market_cap_rank": np.arange(1, n + 1, dtype=np.int32),
            "market_cap_usd": 1e12 / np.arange(1, n + 1) ** 1.2,
            "categories": picks,
            "pulled_at": [datetime(2026, 1, 1, tzinfo=timezone.utc)] * n,
        },
        schema_overrides={"categories": pl.List(pl.String), "pulled_at": pl.Datetime("ms", "UTC")},
    )


def coin_daily(n: int, first: date, last: date, seed: int = 11) -> pl.DataFrame:
    """Long ``coin_daily`` frame (lake schema plus the ``date`` hive column) for ``n`` coins, ``first..last``.

    Anchored at ``last``: each part of the walk (the market factor, each coin's own moves, the missing days) has
    its own generator and is drawn backwards from ``last``, so two frames ending on the same day hold the same
    rows on the days both have, whatever their first day: a longer history only adds older days. So the history
    phase's new week, behind 20 or behind 300 weeks of history, is the same week of the same market, and only
    the history differs (a walk drawn forwards from the first day made it another market at each size: at 300
    weeks it crossed about 70 round levels of the total, at 20 weeks none)."""

    def drawn(part: int) -> np.random.Generator:
        return np.random.default_rng([seed, part])

    def walked_back(steps: np.ndarray) -> np.ndarray:
        """Levels of days ``last, last - 1, ...`` (row k is day ``last - k``) relative to ``last``'s."""
        return -np.concatenate([np.zeros((1, *steps.shape[1:])), steps[:-1].cumsum(axis=0)])

    days = (last - first).days + 1
    market = walked_back(drawn(1).normal(0, 0.03, days))
    idio = walked_back(drawn(2).normal(0, 0.05, (days, n)))
    beta = drawn(3).uniform(0.5, 1.5, n)
    log_p = np.log(drawn(4).uniform(0.01, 100, n)) + market[:, None] * beta + idio
    price = np.exp(log_p)[::-1]  # in date order from here
    supply = 1e12 / np.arange(1, n + 1) ** 1.2 / price[-1]  # the caps of ``last`` fixed, whatever the history
    mcap = price * supply
    missing = (drawn(5).random((days, n)) < 0.002)[::-1]
    missing[:, :2] = False
    ids = np.array(coin_ids(n))
    d_idx, c_idx = np.nonzero(~missing)
    dates = np.array([first + timedelta(days=int(i)) for i in range(days)], dtype="datetime64[D]")
    observed = (dates[d_idx] + np.timedelta64(1, "D")).astype("datetime64[ms]")
    return pl.DataFrame(
        {
            "date": dates[d_idx],
            "coin_id": ids[c_idx],
            "symbol": np.char.upper(np.char.ljust(ids[c_idx], 4))[:],
            "name": ids[c_idx],
            "price_usd": price[d_idx, c_idx],
            "market_cap_usd": mcap[d_idx, c_idx],
            "volume_24h_usd": mcap[d_idx, c_idx] * 0.05,
            "observed_at": observed,
            "raw_file": "synthetic",
        }
    ).with_columns(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").str.slice(0, 4).str.to_lowercase(),
        pl.col("observed_at").dt.replace_time_zone("UTC").dt.cast_time_unit("ms"),
    )


def write_lake_history(wh, n: int, first: date, last: date) -> int:
    """Write ``coin_daily`` partitions ``first..last`` and one registry snapshot into a warehouse's lake."""
    from pipelines.schemas import COIN_DAILY, COIN_REGISTRY

    df = coin_daily(n, first, last)
    for (d,), part in df.partition_by("date", as_dict=True).items():
        wh.write_partition(COIN_DAILY, d.isoformat(), part.drop("date"))
    wh.write_partition(COIN_REGISTRY, "20260101T000000Z", registry(n))
    wh.refresh_catalog()
    return df.height
