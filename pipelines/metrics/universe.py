"""Which coins count: category exclusions and the point-in-time weekly top-N universe."""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines.metrics.pit import as_of, week_window

# CoinGecko category ids whose coins are not independent crypto-asset exposure: they track a fiat currency,
# another coin (wrapped, bridged, staked, restaked) or a real-world asset. Matched exactly, plus the patterns in
# ``_EXCLUDED_PATTERNS`` so that new variants ("eur-stablecoin", "bridged-usdc") are caught too.
EXCLUDED_CATEGORIES: frozenset[str] = frozenset(
    {
        "stablecoins",
        "usd-stablecoin",
        "eur-stablecoin",
        "yield-bearing-stablecoins",
        "fiat-backed-stablecoin",
        "crypto-backed-stablecoin",
        "algorithmic-stablecoin",
        "wrapped-tokens",
        "bridged-tokens",
        "liquid-staking-tokens",
        "liquid-staked-eth",
        "liquid-staked-sol",
        "liquid-restaking-tokens",
        "liquid-staking",
        "restaking",
        "tokenized-gold",
        "tokenized-commodities",
        "tokenized-assets",
        "tokenized-funds",
        "tokenized-treasury-bills-t-bills",
        "tokenized-stock",
        "real-world-assets-rwa-tokenized-funds",
    }
)
_EXCLUDED_PATTERNS: tuple[str, ...] = (
    "stablecoin",
    "bridged-",
    "wrapped-",
    "liquid-staking",
    "liquid-restaking",
    "liquid-staked",
    "tokenized-",
)


def _excluded_category(cat: str) -> bool:
    return cat in EXCLUDED_CATEGORIES or any(p in cat for p in _EXCLUDED_PATTERNS)


def eligible(registry: pl.DataFrame, overrides: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per coin: ``coin_id, eligible, reason``.

    ``registry`` has ``coin_id`` and ``categories`` (list of CoinGecko category ids); a coin listed on several
    rows (several snapshots) is excluded if any row carries an excluded category. ``overrides``
    (``coin_id, include, reason``) wins over the categories, in both directions, and may name coins absent from
    the registry.
    """
    # grouped without exploding: a coin with no category at all (an empty list) is kept, and eligible
    cats = (
        registry.select("coin_id", pl.col("categories").cast(pl.List(pl.String)).fill_null([]))
        .group_by("coin_id")
        .agg(pl.col("categories").list.explode(keep_nulls=False, empty_as_null=False).unique().sort())
    )
    rows = []
    for coin_id, categories in cats.iter_rows():
        hits = [c for c in categories if _excluded_category(c)]
        rows.append((coin_id, not hits, ("excluded category: " + ", ".join(hits)) if hits else "categories"))
    out = pl.DataFrame(
        rows, schema={"coin_id": pl.String, "eligible": pl.Boolean, "reason": pl.String}, orient="row"
    )
    if overrides is not None and overrides.height:
        ov = overrides.select(
            "coin_id",
            pl.col("include").cast(pl.Boolean).alias("eligible"),
            ("override: " + pl.col("reason").fill_null("")).alias("reason"),
        ).unique("coin_id", keep="last")
        out = pl.concat([out.join(ov, on="coin_id", how="anti"), ov])
    return out.sort("coin_id")


def eligible_ids(eligibility: pl.DataFrame) -> list[str]:
    return eligibility.filter(pl.col("eligible"))["coin_id"].to_list()


def universe_at(coin_daily: pl.DataFrame, eligible_ids: list[str] | pl.Series, day: date, top_n: int = 100):
    """The ``top_n`` eligible coins by market cap at the close of ``day``, with ``rank`` (ties broken by id).

    Only rows dated exactly ``day`` are used: a coin without a market cap that day is not ranked, and what
    happens to a coin later cannot change the list (no survivorship bias).
    """
    ids = pl.Series("coin_id", list(eligible_ids), dtype=pl.String)
    return (
        coin_daily.filter(
            (pl.col("date") == day)
            & pl.col("coin_id").is_in(ids.implode())
            & (pl.col("market_cap_usd") > 0)
            & pl.col("price_usd").is_not_null()
        )
        .unique("coin_id", keep="last")
        .sort(["market_cap_usd", "coin_id"], descending=[True, False])
        .head(top_n)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("rank"))
    )


def weekly_universe(
    coin_daily: pl.DataFrame, eligible_ids: list[str] | pl.Series, week: str, top_n: int = 100
):
    """``weekly_universe`` rows for ``week``: top ``top_n`` eligible coins by market cap at the week's open."""
    w = week_window(week)
    top = universe_at(as_of(coin_daily, week), eligible_ids, w.open_day, top_n)
    return top.select(
        pl.lit(w.monday).alias("week_start"),
        "rank",
        "coin_id",
        "symbol",
        "name",
        pl.col("market_cap_usd").alias("market_cap_open_usd"),
        pl.col("price_usd").alias("price_open_usd"),
    )
