"""The set-based floor of the weekly tables built on coin_daily and the coin registry's categories:
``weekly_index_returns``, ``weekly_correlation_buckets``, ``weekly_market_summary`` and ``weekly_movers``.

Every week of the range is computed at once. Each week takes the registry snapshot of its close (the last taken
on or before it, else the earliest); the eligibility and the index tags are derived once per snapshot. The
ranking of eligible coins at each week's open is one sort of the open days' rows over ``(week, snapshot)``; the
capped index weights are the closed form of the project's capping loop (the smallest number of top members
capped that leaves every other weight under the cap), evaluated with window expressions over each
``(week, snapshot, index)``. The correlations of all the weeks are one stack of ``[30 days x 101 coins]`` daily
log-return matrices, the pairwise-complete sums taken with batched matrix products; the changes against the
previous weeks are joins on the week shifted back. Totals and movers are group-bys and sorts over the open and
close days of every week.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from assets.weekly.market import CORR_LOOKBACK_WEEKS, CORR_WINDOW_DAYS, INDEX_CAP
from bench.set_floor import Lake
from bench.set_floor.shared import registry_flags, week_days, week_snapshots
from pipelines.metrics.correlation import DEFAULT_BUCKETS
from pipelines.metrics.sectors import DEFAULT_INDICES
from pipelines.schemas import WEEKLY_CORRELATION_BUCKETS

TABLES = ("weekly_index_returns", "weekly_correlation_buckets", "weekly_market_summary", "weekly_movers")

# the project's function defaults the weekly assets use (restated: they have no name of their own)
INDEX_UNIVERSE = 500  # sectors.weekly_index_returns' universe_size
CORR_TOP = max(b[2] for b in DEFAULT_BUCKETS)  # the correlation universe: ranks 1..100
CORR_MIN_OVERLAP = 20  # correlation.pairwise_corr's min_overlap
DECOUPLING_THRESHOLD = 0.10  # correlation.weekly_correlation_buckets' decoupling_threshold
BTC = "bitcoin"
MOVERS_TOP = 100  # summary.weekly_movers' top_n
MOVERS_N = 5  # summary.weekly_movers' n

KEY = ["k", "snapshot"]  # a week evaluated (its Monday) with the registry snapshot it is evaluated under


def _week_frame(cd: pl.DataFrame, weeks: list[str], registry: pl.DataFrame) -> pl.DataFrame:
    """The weeks that can be computed (coin_daily has rows on their open and close days): ``week_start``,
    ``open_day``, ``close_day`` and the registry ``snapshot`` of the close (``week_snapshots``)."""
    days = cd.select(pl.col("date").unique())
    wk = (
        week_days(date.fromisoformat(w) for w in weeks)
        .join(days, left_on="open_day", right_on="date", how="semi")
        .join(days, left_on="close_day", right_on="date", how="semi")
    )
    return wk.join(week_snapshots(wk, registry), on="week_start", how="left").sort("week_start")


# each sector index's categories (the size indices have none: they take every eligible coin)
INDEX_TAGS = {s.name: s.categories for s in DEFAULT_INDICES if s.categories is not None}


def _universe(cd: pl.DataFrame, pairs: pl.DataFrame, flags: pl.DataFrame, top: int) -> pl.DataFrame:
    """The top ``top`` eligible coins by market cap at the open of each ``(k, snapshot)`` of ``pairs`` (rows of
    the Sunday before ``k`` with a positive market cap and a price; ties by coin id), with ``rank``, sorted by
    ``k, snapshot, rank``."""
    rows = cd.filter((pl.col("market_cap_usd") > 0) & pl.col("price_usd").is_not_null()).select(
        "date", "coin_id", "price_usd", "market_cap_usd"
    )
    return (
        pairs.with_columns(date=pl.col("k") - pl.duration(days=1))
        .join(rows, on="date")
        .join(flags.filter(pl.col("eligible")).drop("eligible"), on=["snapshot", "coin_id"])
        .sort([*KEY, "market_cap_usd", "coin_id"], descending=[False, False, True, False])
        .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over(KEY))
        .filter(pl.col("rank") <= top)
        .drop("date")
    )


def _closes(cd: pl.DataFrame) -> pl.DataFrame:
    """Each coin's close of each week ``k``: its last price (not null) dated in the week's days, Monday to
    Sunday (after the open day, up to the close day), and that day (``close_date``)."""
    return (
        cd.filter(pl.col("price_usd").is_not_null())
        .sort("date")
        .group_by(pl.col("date").dt.truncate("1w").alias("k"), "coin_id")
        .agg(pl.col("price_usd").last().alias("price_close"), pl.col("date").last().alias("close_date"))
    )


def _index_stats(uni: pl.DataFrame, closes: pl.DataFrame) -> pl.DataFrame:
    """Each index's figures for every ``(k, snapshot)`` of ``uni``: constituents, largest capped weight, return
    in percent and the members priced on the close day, carried from earlier in the week, or dropped."""
    u = uni.join(closes, on=["k", "coin_id"], how="left", maintain_order="left")  # still in rank order
    parts = []
    for i, spec in enumerate(DEFAULT_INDICES):
        m = u.filter(pl.col("rank").is_between(spec.rank_from, spec.rank_to))
        if spec.categories is not None:
            m = m.filter(pl.col(f"tag_{spec.name}"))
        if spec.max_members:
            m = m.filter(pl.int_range(pl.len()).over(KEY) < spec.max_members)
        parts.append(
            m.select(*KEY, "rank", "price_usd", "market_cap_usd", "price_close", "close_date").with_columns(
                spec_i=pl.lit(i, pl.Int32)
            )
        )
    g = [*KEY, "spec_i"]
    cap = INDEX_CAP
    mc = pl.col("market_cap_usd")
    # the rows are in rank order within each index: market cap descending
    pos = pl.int_range(pl.len()).over(g)
    n = pl.len().over(g)
    # tail: the market cap of this member and every smaller one; capping the members above a position leaves
    # that member's weight (1 - pos * cap) * m / tail, and the capping loop stops at the first position where it
    # is within the cap
    m = (
        pl.concat(parts)
        .with_columns(pos=pos, n=n, tail=mc.cum_sum(reverse=True).over(g))
        .with_columns(
            fits=(1.0 - pl.col("pos") * cap) * mc / pl.col("tail") <= cap + 1e-12,
        )
        .with_columns(kcap=pl.when("fits").then("pos").otherwise("n").min().over(g))
        .with_columns(free_sum=mc.filter(pl.col("pos") >= pl.col("kcap")).sum().over(g))
        .with_columns(
            w=pl.when(pl.col("n") * cap < 1.0)
            .then(1.0 / pl.col("n"))
            .when(pl.col("pos") < pl.col("kcap"))
            .then(pl.lit(cap))
            .when(pl.col("kcap") == 0)
            .then(mc / pl.col("free_sum"))
            .otherwise((1.0 - cap * pl.col("kcap")) * mc / pl.col("free_sum")),
            r=pl.col("price_close") / pl.col("price_usd") - 1.0,
            on_close=pl.col("close_date") == pl.col("k") + pl.duration(days=6),
        )
        .with_columns(ok=pl.col("r").is_finite().fill_null(False) & (pl.col("w") > 0))
    )
    ok = pl.col("ok")
    return (
        m.group_by(g)
        .agg(
            constituents=pl.len().cast(pl.Int32),
            max_weight=pl.col("w").max(),
            return_pct=pl.when(ok.any()).then(
                100.0 * ((pl.col("w") * pl.col("r")).filter(ok).sum() / pl.col("w").filter(ok).sum())
            ),
            members_close=pl.col("on_close").fill_null(False).sum().cast(pl.Int32),
            members_dropped=pl.col("price_close").is_null().sum().cast(pl.Int32),
        )
        .with_columns(
            members_carried=pl.col("constituents") - pl.col("members_close") - pl.col("members_dropped")
        )
    )


def _index_returns(wk: pl.DataFrame, uni: pl.DataFrame, closes: pl.DataFrame) -> pl.DataFrame:
    """``weekly_index_returns``: every index of every week, this week's figures and the week before's return
    (both under the registry of this week's close), an index without members with zero counts."""
    stats = _index_stats(uni, closes)
    specs = pl.DataFrame(
        {"spec_i": range(len(DEFAULT_INDICES)), "index": [s.name for s in DEFAULT_INDICES]},
        schema={"spec_i": pl.Int32, "index": pl.String},
    )
    grid = wk.select("week_start", "snapshot").join(specs, how="cross")
    prev = stats.select(
        (pl.col("k") + pl.duration(days=7)).alias("week_start"),
        "snapshot",
        "spec_i",
        pl.col("return_pct").alias("prev_return_pct"),
    )
    counts = ["constituents", "members_close", "members_carried", "members_dropped"]
    return (
        grid.join(stats.rename({"k": "week_start"}), on=["week_start", "snapshot", "spec_i"], how="left")
        .join(prev, on=["week_start", "snapshot", "spec_i"], how="left")
        .with_columns(pl.col(counts).fill_null(0))
        .sort("week_start", "spec_i")
        .select(
            "week_start", "index", *counts[:1], "max_weight", "return_pct", "prev_return_pct", *counts[1:]
        )
    )


def _batched_corr(r: np.ndarray) -> np.ndarray:
    """Pairwise-complete Pearson correlations of the columns of each ``[T x N]`` matrix of ``r`` (``[G x T x
    N]``, NaN = missing): the sums over the days both columns have as batched matrix products; a pair with
    fewer than the minimum overlap or no variance is NaN; symmetric, clipped to [-1, 1], 1 on the diagonal of
    every column with a correlation."""
    m = np.isfinite(r).astype(np.float64)
    x = np.where(m > 0, r, 0.0)
    x2 = x * x
    mt, xt, x2t = m.transpose(0, 2, 1), x.transpose(0, 2, 1), x2.transpose(0, 2, 1)
    n = mt @ m
    sx, sy = xt @ m, mt @ x
    sxx, syy, sxy = x2t @ m, mt @ x2, xt @ x
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        c = cov / np.sqrt(vx * vy)
    bad = (
        (n < CORR_MIN_OVERLAP)
        | (vx <= 1e-14 * np.maximum(sxx, 1e-300))
        | (vy <= 1e-14 * np.maximum(syy, 1e-300))
    )
    c[bad] = np.nan
    c = np.clip((c + c.transpose(0, 2, 1)) / 2.0, -1.0, 1.0)
    idx = np.arange(c.shape[1])
    d = c[:, idx, idx]
    c[:, idx, idx] = np.where(np.isfinite(d), 1.0, np.nan)
    return c


def _bucket_stats(cd: pl.DataFrame, pairs: pl.DataFrame, uni: pl.DataFrame, closes: pl.DataFrame):
    """Each rank bucket's members, mean pairwise correlation, mean correlation to BTC and equal-weight return
    for every ``(k, snapshot)`` of ``pairs``: the 30 daily log returns ending at each week's close day of its
    top 100 coins at the open (slots 0..99 by rank) and of BTC (slot 100) stacked into one array."""
    pairs = pairs.sort(KEY).with_row_index("g")
    top = uni.filter(pl.col("rank") <= CORR_TOP).join(pairs, on=KEY)
    slots = pl.concat(
        [
            top.select("g", "k", (pl.col("rank") - 1).alias("j"), "coin_id"),
            pairs.select("g", "k", pl.lit(CORR_TOP, pl.Int32).alias("j"), pl.lit(BTC).alias("coin_id")),
        ],
        how="vertical_relaxed",
    )
    # daily log returns: ln p(d) - ln p(d-1), both closes positive
    px = cd.filter(pl.col("price_usd") > 0).select("coin_id", "date", "price_usd")
    px = px.with_columns(lp=pl.Series(np.log(px["price_usd"].to_numpy())))
    ret = px.join(
        px.select("coin_id", (pl.col("date") + pl.duration(days=1)).alias("date"), pl.col("lp").alias("lp0")),
        on=["coin_id", "date"],
    ).select("coin_id", "date", (pl.col("lp") - pl.col("lp0")).alias("r"))
    t = pl.DataFrame({"t": range(CORR_WINDOW_DAYS)}, schema={"t": pl.Int32})
    cells = (
        slots.join(t, how="cross")
        .with_columns(
            date=pl.col("k") + pl.duration(days=6 - CORR_WINDOW_DAYS + 1) + pl.duration(days=pl.col("t"))
        )
        .join(ret, on=["coin_id", "date"])
    )
    big = np.full((pairs.height, CORR_WINDOW_DAYS, CORR_TOP + 1), np.nan)
    big[cells["g"].to_numpy(), cells["t"].to_numpy(), cells["j"].to_numpy()] = cells["r"].to_numpy()
    corr = _batched_corr(big)

    n_uni = top.group_by("g").len().join(pairs.select("g"), on="g", how="right").sort("g")
    n_uni = n_uni["len"].fill_null(0).to_numpy()
    is_btc = np.zeros((pairs.height, CORR_TOP), dtype=bool)
    hit = top.filter(pl.col("coin_id") == BTC)
    is_btc[hit["g"].to_numpy(), (hit["rank"] - 1).to_numpy()] = True
    slot = np.arange(CORR_TOP)
    out = []
    for name, lo, hi in DEFAULT_BUCKETS:
        member = slot[None, lo - 1 : hi] < n_uni[:, None]  # [G x bucket]
        block = corr[:, lo - 1 : hi, lo - 1 : hi]
        upper = np.triu(np.ones((hi - lo + 1, hi - lo + 1), dtype=bool), k=1)
        ok = upper[None] & member[:, :, None] & member[:, None, :] & np.isfinite(block)
        pair_n = ok.sum(axis=(1, 2))
        pair_sum = np.where(ok, block, 0.0).sum(axis=(1, 2))
        to_btc = corr[:, lo - 1 : hi, CORR_TOP]
        bok = member & ~is_btc[:, lo - 1 : hi] & np.isfinite(to_btc)
        btc_n = bok.sum(axis=1)
        btc_sum = np.where(bok, to_btc, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(
                pl.DataFrame(
                    {
                        "g": np.arange(pairs.height, dtype=np.uint32),
                        "bucket": name,
                        "coins": member.sum(axis=1).astype(np.int32),
                        "apc": np.where(pair_n > 0, pair_sum / pair_n, np.nan),
                        "btc": np.where(btc_n > 0, btc_sum / btc_n, np.nan),
                    }
                ).with_columns(pl.col("apc", "btc").fill_nan(None))
            )
    # equal-weight return: members' simple returns open to their last close of the week
    ew = (
        top.join(closes, on=["k", "coin_id"], how="left")
        .with_columns(
            r=pl.col("price_close") / pl.col("price_usd") - 1,
            bucket=pl.coalesce(
                pl.when(pl.col("rank").is_between(lo, hi)).then(pl.lit(name))
                for name, lo, hi in DEFAULT_BUCKETS
            ),
        )
        .group_by("g", "bucket")
        .agg(ew=pl.when(pl.col("r").count() > 0).then(pl.col("r").mean() * 100))
    )
    return (
        pl.concat(out)
        .join(ew, on=["g", "bucket"], how="left")
        .join(pairs, on="g")
        .select(*KEY, "bucket", "coins", "apc", "btc", "ew")
    )


def _correlation_buckets(wk: pl.DataFrame, stats: pl.DataFrame) -> pl.DataFrame:
    """``weekly_correlation_buckets``: each week's bucket figures and their change against the mean of the
    previous weeks' (each week's own members, under this week's registry); decoupling when the correlation to
    BTC fell by the threshold."""
    order = pl.DataFrame({"bucket": [b[0] for b in DEFAULT_BUCKETS], "b_i": range(len(DEFAULT_BUCKETS))})
    now = wk.select("week_start", "snapshot").join(
        stats.rename({"k": "week_start"}), on=["week_start", "snapshot"]
    )
    lags = pl.DataFrame({"lag": range(1, CORR_LOOKBACK_WEEKS + 1)})
    past = (
        wk.select("week_start", "snapshot")
        .join(lags, how="cross")
        .with_columns(k=pl.col("week_start") - pl.duration(weeks=pl.col("lag")))
        .join(stats, on=KEY)
        .group_by("week_start", "bucket")
        .agg(pl.col("apc").mean().alias("apc_past"), pl.col("btc").mean().alias("btc_past"))
    )
    return (
        now.join(past, on=["week_start", "bucket"], how="left")
        .join(order, on="bucket")
        .with_columns(
            avg_pairwise_corr_change=pl.col("apc") - pl.col("apc_past"),
            avg_corr_to_btc_change=pl.col("btc") - pl.col("btc_past"),
        )
        .with_columns(decoupling=pl.col("avg_corr_to_btc_change") <= -DECOUPLING_THRESHOLD)
        .sort("week_start", "b_i")
        .rename({"apc": "avg_pairwise_corr", "btc": "avg_corr_to_btc", "ew": "ew_return_pct"})
        .select(WEEKLY_CORRELATION_BUCKETS.column_names)
    )


def _pct(end: pl.Expr, start: pl.Expr) -> pl.Expr:
    """Percent change from ``start`` to ``end``; null when either is null or ``start`` is zero (the rule of
    ``pipelines.metrics.summary``, not ``shared.pct``'s)."""
    return pl.when(start != 0).then((end / start - 1.0) * 100.0)


def _market_summary(cd: pl.DataFrame, wk: pl.DataFrame) -> pl.DataFrame:
    """``weekly_market_summary``: totals and counts of the market caps on each week's open and close days, BTC
    and ETH price changes, and the like-for-like totals over the coins with a positive market cap at both."""
    mc = pl.col("market_cap_usd")
    daily = cd.group_by("date").agg(
        total=mc.sum().cast(pl.Float64),
        coins=mc.count().cast(pl.Int32),
        btc=pl.col("price_usd").filter(pl.col("coin_id") == BTC).first(),
        eth=pl.col("price_usd").filter(pl.col("coin_id") == "ethereum").first(),
    )
    pos = cd.filter(mc.is_not_null() & (mc > 0)).select("date", "coin_id", "market_cap_usd")
    common = (
        wk.select("week_start", "open_day", "close_day")
        .join(pos, left_on="open_day", right_on="date")
        .join(pos, left_on=["close_day", "coin_id"], right_on=["date", "coin_id"], suffix="_close")
        .group_by("week_start")
        .agg(
            start_common=mc.sort().sum(),
            end_common=pl.col("market_cap_usd_close").sort().sum(),
            coins_common=pl.len().cast(pl.Int32),
        )
    )
    return (
        wk.join(daily, left_on="open_day", right_on="date")
        .join(daily, left_on="close_day", right_on="date", suffix="_end")
        .join(common, on="week_start", how="left")
        .sort("week_start")
        .select(
            "week_start",
            (pl.col("week_start") + pl.duration(days=7)).alias("week_end"),
            pl.col("total").alias("total_mcap_start_usd"),
            pl.col("total_end").alias("total_mcap_end_usd"),
            _pct(pl.col("total_end"), pl.col("total")).alias("total_mcap_change_pct"),
            _pct(pl.col("btc_end"), pl.col("btc")).alias("btc_return_pct"),
            _pct(pl.col("eth_end"), pl.col("eth")).alias("eth_return_pct"),
            pl.col("coins").alias("coins_start"),
            pl.col("coins_end"),
            pl.col("close_day").alias("last_close_day"),
            pl.col("start_common").alias("total_mcap_start_common_usd"),
            pl.col("end_common").alias("total_mcap_end_common_usd"),
            _pct(pl.col("end_common"), pl.col("start_common")).alias("total_mcap_change_like_for_like_pct"),
            pl.col("coins_common").fill_null(0),
        )
    )


def _movers(cd: pl.DataFrame, wk: pl.DataFrame, flags: pl.DataFrame) -> pl.DataFrame:
    """``weekly_movers``: among the 100 largest coins by market cap on each week's open day (the coins the week's
    registry lists as eligible), the five best and five worst price changes to the close day."""
    members = flags.filter(pl.col("eligible")).select("snapshot", "coin_id")
    start = (
        wk.select("week_start", "open_day", "close_day", "snapshot")
        .join(
            cd.filter(pl.col("market_cap_usd") > 0).select(
                "date", "coin_id", "symbol", "name", "market_cap_usd", pl.col("price_usd").alias("p0")
            ),
            left_on="open_day",
            right_on="date",
        )
        .join(members, on=["snapshot", "coin_id"])
        .sort(["week_start", "market_cap_usd", "coin_id"], descending=[False, True, False])
        .with_columns(rank_start=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("week_start"))
        .filter(pl.col("rank_start") <= MOVERS_TOP)
    )
    moves = start.join(
        cd.select("date", "coin_id", pl.col("price_usd").alias("p1")),
        left_on=["close_day", "coin_id"],
        right_on=["date", "coin_id"],
    ).select(
        "week_start",
        "coin_id",
        "symbol",
        "name",
        "rank_start",
        ((pl.col("p1") / pl.col("p0") - 1.0) * 100.0).alias("return_pct"),
    )
    sides = []
    for kind, descending in (("gainer", True), ("loser", False)):
        sides.append(
            moves.sort(["week_start", "return_pct", "coin_id"], descending=[False, descending, False])
            .with_columns(position=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("week_start"))
            .filter(pl.col("position") <= MOVERS_N)
            .with_columns(kind=pl.lit(kind))
        )
    return (
        pl.concat(sides)
        .sort("week_start", "kind", "position")
        .select("week_start", "kind", "position", "coin_id", "symbol", "name", "rank_start", "return_pct")
    )


def compute(lake: Lake, weeks: list[str]) -> dict[str, pl.DataFrame]:
    """The four tables for every week of ``weeks`` that has coin_daily rows on its open and close days."""
    cd = lake["coin_daily"]
    registry = lake["coin_registry"]
    wk = _week_frame(cd, weeks, registry)
    flags = registry_flags(registry, INDEX_TAGS)
    # every (week evaluated, snapshot) pair: the week and the one before for the indices, the week and the
    # lookback weeks for the correlations, each under the registry of the week's close
    lags = pl.DataFrame({"lag": range(max(CORR_LOOKBACK_WEEKS, 1) + 1)})
    evals = (
        wk.select("week_start", "snapshot")
        .join(lags, how="cross")
        .with_columns(k=pl.col("week_start") - pl.duration(weeks=pl.col("lag")))
    )
    index_pairs = evals.filter(pl.col("lag") <= 1).select(KEY).unique()
    corr_pairs = evals.select(KEY).unique()
    uni = _universe(cd, corr_pairs, flags, INDEX_UNIVERSE)
    closes = _closes(cd)
    return {
        "weekly_index_returns": _index_returns(wk, uni.join(index_pairs, on=KEY, how="semi"), closes),
        "weekly_correlation_buckets": _correlation_buckets(wk, _bucket_stats(cd, corr_pairs, uni, closes)),
        "weekly_market_summary": _market_summary(cd, wk),
        "weekly_movers": _movers(cd, wk, flags),
    }
