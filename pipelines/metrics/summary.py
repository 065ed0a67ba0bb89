"""The week's headline numbers: total market cap at the open and close, BTC and ETH, gainers and losers."""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines.metrics.universe import eligible, eligible_ids

# Coins that are not market risk of their own: excluded from rankings of movers (and, later, the universe).


def _pct(end: float | None, start: float | None) -> float | None:
    if end is None or start is None or start == 0:
        return None
    return (end / start - 1.0) * 100.0


def weekly_market_summary(
    open_rows: pl.DataFrame, close_rows: pl.DataFrame, week_start: date, week_end: date, close_day: date
) -> pl.DataFrame:
    """One row: totals over every coin with a market cap at the open and at the close, the like-for-like change
    over the coins present at both ends (``like_for_like_mcap``; the report prints this one), and BTC / ETH
    returns.

    ``open_rows`` are the clean daily rows of the day whose close opens the week (the Sunday before),
    ``close_rows`` those of the week's last day. Raises ``ValueError`` when either side is empty: a total over
    nothing is not zero, it is missing data.
    """
    if open_rows.is_empty() or close_rows.is_empty():
        raise ValueError(
            f"week {week_start}: no market data at the {'open' if open_rows.is_empty() else 'close'}"
        )
    total_open = open_rows["market_cap_usd"].drop_nulls().sum()
    total_close = close_rows["market_cap_usd"].drop_nulls().sum()
    lfl = like_for_like_mcap(open_rows, close_rows)

    def price(rows: pl.DataFrame, coin: str) -> float | None:
        hit = rows.filter(pl.col("coin_id") == coin)
        return hit["price_usd"][0] if hit.height else None

    return pl.DataFrame(
        {
            "week_start": [week_start],
            "week_end": [week_end],
            "total_mcap_start_usd": [float(total_open)],
            "total_mcap_end_usd": [float(total_close)],
            "total_mcap_change_pct": [_pct(total_close, total_open)],
            "btc_return_pct": [_pct(price(close_rows, "bitcoin"), price(open_rows, "bitcoin"))],
            "eth_return_pct": [_pct(price(close_rows, "ethereum"), price(open_rows, "ethereum"))],
            "coins_start": [open_rows["market_cap_usd"].drop_nulls().len()],
            "coins_end": [close_rows["market_cap_usd"].drop_nulls().len()],
            "last_close_day": [close_day],
            "total_mcap_start_common_usd": [lfl["start"]],
            "total_mcap_end_common_usd": [lfl["end"]],
            "total_mcap_change_like_for_like_pct": [_pct(lfl["end"], lfl["start"])],
            "coins_common": [lfl["coins"]],
        },
        schema_overrides={
            "coins_start": pl.Int32,
            "coins_end": pl.Int32,
            "coins_common": pl.Int32,
            "total_mcap_start_common_usd": pl.Float64,
            "total_mcap_end_common_usd": pl.Float64,
            "total_mcap_change_like_for_like_pct": pl.Float64,
        },
    )


def like_for_like_mcap(open_rows: pl.DataFrame, close_rows: pl.DataFrame) -> dict:
    """Total market cap at the open and the close over the coins with a positive market cap at **both** ends
    (``start``, ``end``, ``coins``): a coin missing on one day (a data gap, a listing, a delisting) changes the
    count, not the change. Sums of sorted values, so the floats do not depend on row order."""

    def side(rows: pl.DataFrame) -> pl.DataFrame:
        return (
            rows.filter(pl.col("market_cap_usd").is_not_null() & (pl.col("market_cap_usd") > 0))
            .unique("coin_id", keep="last")
            .select("coin_id", "market_cap_usd")
        )

    both = side(open_rows).join(side(close_rows), on="coin_id", how="inner", suffix="_close")
    if both.height == 0:
        return {"start": None, "end": None, "coins": 0}
    return {
        "start": float(both["market_cap_usd"].sort().sum()),
        "end": float(both["market_cap_usd_close"].sort().sum()),
        "coins": both.height,
    }


def weekly_movers(
    open_rows: pl.DataFrame,
    close_rows: pl.DataFrame,
    categories: pl.DataFrame,
    week_start: date,
    top_n: int = 100,
    n: int = 5,
) -> pl.DataFrame:
    """The ``n`` best and worst weekly price changes among the ``top_n`` largest eligible coins at the open.

    Eligible: the universe's rule (``universe.eligible``: a coin of the week's registry with no stablecoin,
    wrapped, staked or tokenized category; a coin the registry does not list has no known categories and is not
    ranked), with a positive market cap at the open, so ``rank_start`` is the coin's ``weekly_universe`` rank.
    Ranks are taken at the open, so a coin that crashes out of the top 100 during the week is still ranked. Ties
    are broken by coin id, so the result does not depend on row order.
    """
    ids = eligible_ids(eligible(categories))
    start = (
        open_rows.filter(pl.col("coin_id").is_in(ids) & (pl.col("market_cap_usd") > 0))
        .sort(["market_cap_usd", "coin_id"], descending=[True, False])
        .head(top_n)
        .with_row_index("rank_start", offset=1)
        .select(
            "coin_id", "symbol", "name", pl.col("rank_start").cast(pl.Int32), pl.col("price_usd").alias("p0")
        )
    )
    moves = (
        start.join(close_rows.select("coin_id", pl.col("price_usd").alias("p1")), on="coin_id", how="inner")
        .with_columns(((pl.col("p1") / pl.col("p0") - 1.0) * 100.0).alias("return_pct"))
        .drop("p0", "p1")
    )
    gainers = moves.sort(["return_pct", "coin_id"], descending=[True, False]).head(n)
    losers = moves.sort(["return_pct", "coin_id"], descending=[False, False]).head(n)
    out = []
    for kind, frame in (("gainer", gainers), ("loser", losers)):
        out.append(
            frame.with_row_index("position", offset=1).with_columns(
                pl.lit(week_start).alias("week_start"),
                pl.lit(kind).alias("kind"),
                pl.col("position").cast(pl.Int32),
            )
        )
    return pl.concat(out).select(
        "week_start", "kind", "position", "coin_id", "symbol", "name", "rank_start", "return_pct"
    )
