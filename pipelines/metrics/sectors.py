"""Capped market-cap-weighted sector and size indices, rebalanced every Monday 00:00 UTC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.metrics.pit import as_of, last_on_or_before, shift_week, week_window
from pipelines.metrics.universe import universe_at
from pipelines.schemas import WEEKLY_INDEX_RETURNS


@dataclass(frozen=True)
class IndexSpec:
    """An index: eligible coins carrying any of ``categories`` (None: any coin), ranked by market cap at the
    open among eligible coins; keep universe ranks ``rank_from..rank_to`` and then at most ``max_members``."""

    name: str
    categories: tuple[str, ...] | None = None
    rank_from: int = 1
    rank_to: int = 500
    max_members: int | None = None


DEFAULT_INDICES: tuple[IndexSpec, ...] = (
    IndexSpec("core_l1", ("layer-1",), max_members=10),
    IndexSpec("l2", ("layer-2",)),
    IndexSpec("gaming", ("gaming",)),
    IndexSpec("depin", ("depin",)),
    IndexSpec("ai", ("artificial-intelligence",)),
    IndexSpec("defi", ("decentralized-finance-defi",)),
    IndexSpec("meme", ("meme-token",)),
    IndexSpec("top30", None, 1, 30),
    IndexSpec("mid_caps", None, 11, 50),
    IndexSpec("small_caps", None, 51, 100),
)


def capped_weights(mcaps: np.ndarray, cap: float = 0.25, max_iter: int = 100) -> np.ndarray:
    """Market-cap weights with no weight above ``cap``; the excess is redistributed pro rata to the uncapped.

    Iterates until no weight exceeds the cap (at most n rounds: each round caps at least one more member). When
    the cap is infeasible (``n * cap < 1``) the result is equal weights, the closest feasible allocation.
    Non-positive or NaN market caps get weight 0.
    """
    m = np.where(np.isfinite(mcaps) & (mcaps > 0), mcaps, 0.0).astype(float)
    n = int((m > 0).sum())
    if n == 0:
        return m
    if n * cap < 1.0:
        return np.where(m > 0, 1.0 / n, 0.0)
    w = m / m.sum()
    capped = np.zeros(m.shape, dtype=bool)
    for _ in range(max_iter):
        over = (w > cap + 1e-12) & ~capped
        if not over.any():
            break
        capped |= over
        free = ~capped & (m > 0)
        rest = 1.0 - cap * capped.sum()
        w = np.where(capped, cap, 0.0)
        w[free] = rest * m[free] / m[free].sum()
    return w


def index_return(price_open: np.ndarray, price_close: np.ndarray, mcap_open: np.ndarray, cap: float = 0.25):
    """(return as a fraction, weights): capped weights at the open times each member's simple return."""
    w = capped_weights(mcap_open, cap)
    r = price_close / price_open - 1.0
    ok = np.isfinite(r) & (w > 0)
    if not ok.any():
        return None, w
    return float(np.sum(w[ok] * r[ok]) / np.sum(w[ok])), w


def _tagged(categories: pl.DataFrame, specs: tuple[IndexSpec, ...]) -> dict[str, set[str]]:
    """For each spec with categories, the coins carrying any of them (one pass over the registry's lists)."""
    with_cats = [s for s in specs if s.categories is not None]
    if not with_cats:
        return {}
    flags = categories.select(
        "coin_id",
        *(
            pl.col("categories")
            .list.eval(pl.element().is_in(list(s.categories)))
            .list.any()
            .fill_null(False)
            .alias(f"tagged_{i}")
            for i, s in enumerate(with_cats)
        ),
    )
    ids = flags["coin_id"].to_list()
    return {
        s.name: {c for c, hit in zip(ids, flags[f"tagged_{i}"].to_list(), strict=True) if hit}
        for i, s in enumerate(with_cats)
    }


def _members(ranks: np.ndarray, coin_ids: list[str], tagged: set[str] | None, spec: IndexSpec) -> np.ndarray:
    """Positions (in rank order) of ``spec``'s members among the universe's rows: ranks ``rank_from..rank_to``,
    carrying one of its categories (``tagged``; None: any coin), then at most ``max_members``."""
    keep = (ranks >= spec.rank_from) & (ranks <= spec.rank_to)
    if tagged is not None:
        keep &= np.fromiter((c in tagged for c in coin_ids), dtype=bool, count=len(coin_ids))
    idx = np.flatnonzero(keep)
    return idx[: spec.max_members] if spec.max_members else idx


def _week_returns(coin_daily, categories, eligible_ids, week, specs, cap, universe_size):
    w = week_window(week)
    cd = as_of(coin_daily, week)
    universe = universe_at(cd, eligible_ids, w.open_day, universe_size).sort("rank")
    # close price: the close day's, or the last one before it if the coin stopped trading mid-week
    closes = last_on_or_before(
        cd.filter(pl.col("price_usd").is_not_null() & (pl.col("date") > w.open_day)), w.close_day, ["coin_id"]
    ).select("coin_id", pl.col("price_usd").alias("price_close"), pl.col("date").alias("close_date"))
    # every universe coin with its close, in rank order; each index's members are rows of it
    u = universe.join(closes, on="coin_id", how="left", maintain_order="left")
    ranks = u["rank"].to_numpy()
    coin_ids = u["coin_id"].to_list()
    price_open = u["price_usd"].to_numpy()
    price_close = u["price_close"].fill_null(float("nan")).to_numpy()
    mcap_open = u["market_cap_usd"].to_numpy()
    on_close_day = (u["close_date"] == w.close_day).fill_null(False).to_numpy()
    no_close = u["price_close"].is_null().to_numpy()
    tagged = _tagged(categories, specs)
    out = {}
    for spec in specs:
        idx = _members(ranks, coin_ids, tagged.get(spec.name), spec)
        n = len(idx)
        if n == 0:
            out[spec.name] = (0, None, None, 0, 0, 0)
            continue
        r, wts = index_return(price_open[idx], price_close[idx], mcap_open[idx], cap)
        on_close = int(on_close_day[idx].sum())
        dropped = int(no_close[idx].sum())
        out[spec.name] = (
            n,
            float(wts.max()),
            None if r is None else 100.0 * r,
            on_close,
            n - on_close - dropped,
            dropped,
        )
    return out


def weekly_index_returns(
    coin_daily: pl.DataFrame,
    categories: pl.DataFrame,
    eligible_ids: list[str],
    week: str,
    specs: tuple[IndexSpec, ...] = DEFAULT_INDICES,
    cap: float = 0.25,
    universe_size: int = 500,
) -> pl.DataFrame:
    """``weekly_index_returns`` rows: each index's return for ``week`` and for the week before.

    Membership and weights are fixed at the Monday 00:00 open from market caps at the close of the Sunday before
    (point in time). A member with no price at the close day keeps its last price of the week (a coin that
    vanishes counts with its last observed move, not dropped); one with no price at all after the open is left
    out and the weights renormalised. ``members_close`` / ``members_carried`` / ``members_dropped`` count them, so
    the members compared at both ends are always visible.
    """
    w = week_window(week)
    now = _week_returns(coin_daily, categories, eligible_ids, week, specs, cap, universe_size)
    prev = _week_returns(
        coin_daily, categories, eligible_ids, shift_week(week, -1), specs, cap, universe_size
    )
    return pl.DataFrame(
        [
            (
                w.monday,
                s.name,
                now[s.name][0],
                now[s.name][1],
                now[s.name][2],
                prev[s.name][2],
                *now[s.name][3:],
            )
            for s in specs
        ],
        schema=WEEKLY_INDEX_RETURNS.polars_schema,
        orient="row",
    )
