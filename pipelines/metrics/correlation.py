"""Rolling correlation of daily log returns, rank buckets, decoupling from BTC."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from pipelines.metrics.pit import as_of, shift_week, week_window
from pipelines.metrics.universe import universe_at
from pipelines.schemas import WEEKLY_CORRELATION_BUCKETS

DEFAULT_BUCKETS: tuple[tuple[str, int, int], ...] = (("1-10", 1, 10), ("11-50", 11, 50), ("51-100", 51, 100))


def log_return_matrix(coin_daily: pl.DataFrame, coin_ids: list[str], end_day: date, window_days: int = 30):
    """Dense ``[window_days x coins]`` daily log returns for the days ending ``end_day`` (NaN where missing).

    The return of day D is ``ln(p_D / p_{D-1})`` and exists only when both closes exist: a missing day makes
    two NaNs rather than one return spanning two days.
    """
    first = end_day - timedelta(days=window_days)
    days = pl.date_range(first, end_day, eager=True).alias("date")
    prices = (
        coin_daily.filter(
            pl.col("date").is_between(first, end_day)
            & pl.col("coin_id").is_in(pl.Series(coin_ids).implode())
            & (pl.col("price_usd") > 0)
        )
        .unique(["date", "coin_id"], keep="last")
        .pivot(on="coin_id", index="date", values="price_usd")
    )
    grid = days.to_frame().join(prices, on="date", how="left").sort("date")
    present = [c for c in dict.fromkeys(coin_ids) if c in grid.columns and c != "date"]
    # every coin's column converted at once (a column per coin was 100 small conversions a window)
    values = grid.select(pl.col(present).cast(pl.Float64).fill_null(float("nan"))).to_numpy()
    at = {cid: k for k, cid in enumerate(present)}
    p = np.full((len(days), len(coin_ids)), np.nan)
    for j, cid in enumerate(coin_ids):
        if cid in at:
            p[:, j] = values[:, at[cid]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diff(np.log(p), axis=0)


def pairwise_corr(r: np.ndarray, min_overlap: int = 20, block: int = 1024) -> np.ndarray:
    """Pearson correlation of the columns of ``r`` ([T x N], NaN = missing), pairwise-complete.

    Each pair uses the days both have (sums built with matrix products on the 0/1 mask, so the cost is a few
    ``[N x T] @ [T x N]`` products, done in column blocks of ``block`` to bound memory). A pair with fewer than
    ``min_overlap`` common days, or with zero variance on them, is NaN. The result is symmetric, clipped to
    [-1, 1], with 1 on the diagonal for every column that has ``min_overlap`` days and non-zero variance.
    """
    m = np.isfinite(r).astype(np.float64)
    x = np.where(m > 0, r, 0.0)
    x2 = x * x
    n_cols = r.shape[1]
    out = np.empty((n_cols, n_cols))
    for s in range(0, n_cols, block):
        e = min(s + block, n_cols)
        xs, ms, x2s = x[:, s:e], m[:, s:e], x2[:, s:e]
        n = ms.T @ m
        sx, sy = xs.T @ m, ms.T @ x
        sxx, syy, sxy = x2s.T @ m, ms.T @ x2, xs.T @ x
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = sxy - sx * sy / n
            vx = sxx - sx * sx / n
            vy = syy - sy * sy / n
            c = cov / np.sqrt(vx * vy)
        tiny = 1e-14 * np.maximum(sxx, 1e-300)
        c[(n < min_overlap) | (vx <= tiny) | (vy <= 1e-14 * np.maximum(syy, 1e-300))] = np.nan
        out[s:e] = c
    out = np.clip((out + out.T) / 2.0, -1.0, 1.0)
    d = np.diag(out).copy()
    np.fill_diagonal(out, np.where(np.isfinite(d), 1.0, np.nan))
    return out


def _bucket_stats(coin_daily, eligible_ids, week, buckets, window_days, min_overlap, btc_id):
    w = week_window(week)
    cd = as_of(coin_daily, week)
    top = max(b[2] for b in buckets)
    uni = universe_at(cd, eligible_ids, w.open_day, top)
    ids = uni["coin_id"].to_list()
    if btc_id not in ids:
        ids_all = ids + [btc_id]
    else:
        ids_all = ids
    corr = pairwise_corr(log_return_matrix(cd, ids_all, w.close_day, window_days), min_overlap)
    btc = ids_all.index(btc_id)
    close = (
        cd.filter(
            pl.col("date").is_between(w.open_day + timedelta(days=1), w.close_day)
            & pl.col("price_usd").is_not_null()
        )
        .sort("date")
        .group_by("coin_id")
        .last()
        .select("coin_id", pl.col("price_usd").alias("p1"))
    )
    rets = uni.join(close, on="coin_id", how="left").with_columns(
        (pl.col("p1") / pl.col("price_usd") - 1).alias("r")
    )
    out = {}
    for name, lo, hi in buckets:
        idx = [i for i, rk in enumerate(uni["rank"].to_list()) if lo <= rk <= hi]
        sub = corr[np.ix_(idx, idx)]
        iu = np.triu_indices(len(idx), k=1)
        pairs = sub[iu]
        pairs = pairs[np.isfinite(pairs)]
        to_btc = np.array([corr[i, btc] for i in idx if i != btc])
        to_btc = to_btc[np.isfinite(to_btc)]
        r = rets.filter(pl.col("rank").is_between(lo, hi))["r"].drop_nulls()
        out[name] = (
            len(idx),
            float(pairs.mean()) if pairs.size else None,
            float(to_btc.mean()) if to_btc.size else None,
            float(r.mean()) * 100 if r.len() else None,
        )
    return out


def weekly_correlation_buckets(
    coin_daily: pl.DataFrame,
    eligible_ids: list[str],
    week: str,
    window_days: int = 30,
    min_overlap: int = 20,
    buckets: tuple[tuple[str, int, int], ...] = DEFAULT_BUCKETS,
    btc_id: str = "bitcoin",
    lookback_weeks: int = 4,
    decoupling_threshold: float = 0.10,
    once: Callable[[Hashable, Callable[[], Any]], Any] | None = None,
) -> pl.DataFrame:
    """``weekly_correlation_buckets`` rows for ``week``.

    Buckets are ranks at the week's open among eligible coins (``universe_at``); correlations use the
    ``window_days`` daily log returns ending at the week's close day. Changes compare with the mean of the
    previous ``lookback_weeks`` weeks (each computed point in time, with its own membership); ``decoupling`` is
    true when the bucket's average correlation to BTC fell by at least ``decoupling_threshold``.

    ``once(key, build)``: ``build()`` once per key over one set of rows (``LakeSnapshot.derived``), so that a range
    of weeks computes each week's bucket stats once rather than as its own week and again as each of the next
    ``lookback_weeks`` weeks' past (five times). A week's stats read only its rows from ``window_days`` before its
    close to its close, so two frames of the same rows that both hold that span give the same stats; a frame that
    does not hold it computes them itself.
    """
    w = week_window(week)
    first_day = coin_daily["date"].min() if once is not None and coin_daily.height else None

    def stats(wk: str) -> dict:
        def build() -> dict:
            return _bucket_stats(coin_daily, eligible_ids, wk, buckets, window_days, min_overlap, btc_id)

        # first_day is None without ``once`` (nothing shared) and for an empty frame
        if first_day is None or first_day > week_window(wk).close_day - timedelta(days=window_days):
            return build()
        key = ("correlation_bucket_stats", wk, tuple(eligible_ids), buckets, window_days, min_overlap, btc_id)
        return once(key, build)  # type: ignore[misc]  # not None: first_day is set only with once

    now = stats(week)
    past = [stats(shift_week(week, -k)) for k in range(1, lookback_weeks + 1)]

    def change(name: str, pos: int) -> float | None:
        vals = [p[name][pos] for p in past if p[name][pos] is not None]
        cur = now[name][pos]
        return None if cur is None or not vals else cur - float(np.mean(vals))

    rows = []
    for name, _, _ in buckets:
        n, apc, btc, ew = now[name]
        d_btc = change(name, 2)
        rows.append(
            (
                w.monday,
                name,
                n,
                apc,
                btc,
                ew,
                change(name, 1),
                d_btc,
                None if d_btc is None else d_btc <= -decoupling_threshold,
            )
        )
    return pl.DataFrame(
        rows,
        schema=WEEKLY_CORRELATION_BUCKETS.polars_schema,
        orient="row",
    )
