"""Cross-asset weekly returns on the same Monday-to-Monday window, crypto's rank and worst-week streak."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from pipelines.metrics.pit import as_of, shift_week, week_window
from pipelines.schemas import WEEKLY_CRYPTO_RANK

UST_DURATION = 8.5  # modified duration of a 10-year Treasury near par at a ~4% yield
MAX_STALE_DAYS = 5  # a boundary's level is the last observation dated less than this many days before it
MAX_STREAK_WEEKS = 104  # the worst-week streak is counted back at most this far
MIN_RANKED = 5  # "worst major asset class" needs most of the seven classes to have a return


@dataclass(frozen=True)
class AssetSpec:
    asset: str  # output name
    series: str  # value of the ``series`` column in the input frame
    kind: str = "price"  # 'price': v1/v0-1; 'inverse': v0/v1-1 (USD/JPY -> yen); 'yield': -duration*dy
    major: bool = True  # ranked among the major asset classes


DEFAULT_ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec("crypto", "crypto_total_mcap"),
    AssetSpec("btc", "btc", major=False),
    AssetSpec("eth", "eth", major=False),
    AssetSpec("sp500", "SP500"),
    AssetSpec("nasdaq", "NASDAQCOM"),
    AssetSpec("gold", "gold"),
    AssetSpec("treasuries", "DGS10", "yield"),
    AssetSpec("dollar", "DTWEXBGS"),
    AssetSpec("yen", "DEXJPUS", "inverse"),
)

_ASSET_SCHEMA = {
    "week_start": pl.Date,
    "asset": pl.String,
    "series": pl.String,
    "kind": pl.String,
    "open_date": pl.Date,
    "close_date": pl.Date,
    "open_value": pl.Float64,
    "close_value": pl.Float64,
    "return_pct": pl.Float64,
    "rank": pl.Int32,
    "is_worst": pl.Boolean,
}


def _last_at_or_before(observations: list[tuple[date, float]], day: date, max_stale_days: int):
    """``(date, value)`` of the last of a series' ``observations`` (its non-null values) dated at or before
    ``day`` and less than ``max_stale_days`` days before it, or ``(None, None)``. A series has one value a day;
    a few weeks of them are read in plain Python, cheaper than a frame operation each."""
    oldest = day - timedelta(days=max_stale_days)
    found: tuple[date, float] | None = None
    for d, v in observations:
        if oldest < d <= day and (found is None or d >= found[0]):
            found = (d, v)
    return found or (None, None)


def weekly_cross_asset(
    levels: pl.DataFrame,
    week: str,
    assets: tuple[AssetSpec, ...] = DEFAULT_ASSETS,
    duration: float = UST_DURATION,
    max_stale_days: int = MAX_STALE_DAYS,
) -> pl.DataFrame:
    """``weekly_cross_asset`` rows. ``levels``: ``series, date, value`` where a row dated D is the close of D
    (crypto: the 00:00 UTC close ending D; markets: their local close on D, before D+1 00:00 UTC).

    Each boundary (Monday 00:00 UTC) uses the last non-null observation dated at or before the close day it
    follows (Sunday), so markets closed at the weekend or on a holiday use their last close (Friday, or earlier);
    an observation more than ``max_stale_days`` old is not used and the return is null.
    """
    w = week_window(week)
    lv = as_of(levels, week)
    by_series: dict[str, list[tuple[date, float]]] = {}
    known = lv.filter(pl.col("value").is_not_null())
    for name, d, v in zip(*(known[c].to_list() for c in ("series", "date", "value")), strict=True):
        by_series.setdefault(name, []).append((d, v))
    rows = []
    for a in assets:
        series = by_series.get(a.series, [])
        d0, v0 = _last_at_or_before(series, w.open_day, max_stale_days)
        d1, v1 = _last_at_or_before(series, w.close_day, max_stale_days)
        r = None
        # a return needs a level at the close newer than the open's: a market closed all week has none, so no
        # return (a named gap), never "unchanged", whatever ``max_stale_days`` lets the close reach back to
        if v0 is not None and v1 is not None and d1 > d0:
            if a.kind == "price" and v0 > 0:
                r = (v1 / v0 - 1) * 100
            elif a.kind == "inverse" and v1 > 0:
                r = (v0 / v1 - 1) * 100
            elif a.kind == "yield":
                r = -duration * (v1 - v0)  # yields in percent: -D x dy(%) is a percent price change
        rows.append((w.monday, a.asset, a.series, a.kind, d0, d1, v0, v1, r, None, None))
    out = pl.DataFrame(rows, schema=_ASSET_SCHEMA, orient="row")
    major = {a.asset for a in assets if a.major}
    ranked = out.filter(pl.col("asset").is_in(list(major)) & pl.col("return_pct").is_not_null())
    ranks = ranked.select(
        "asset",
        pl.col("return_pct").rank("min", descending=True).cast(pl.Int32).alias("rank"),
        (pl.col("return_pct") == pl.col("return_pct").min()).alias("is_worst"),
    )
    return out.drop("rank", "is_worst").join(ranks, on="asset", how="left").select(list(_ASSET_SCHEMA))


def weekly_crypto_rank(
    levels: pl.DataFrame,
    week: str,
    assets: tuple[AssetSpec, ...] = DEFAULT_ASSETS,
    crypto: str = "crypto",
    max_weeks: int = MAX_STREAK_WEEKS,
    min_ranked: int = MIN_RANKED,
    **kwargs,
) -> pl.DataFrame:
    """``weekly_crypto_rank`` row: crypto's rank this week and the number of consecutive weeks, ending with this
    one, in which it was the worst major asset class (each earlier week computed point in time). An earlier week
    with fewer than ``min_ranked`` classes ranked (macro series missing) is not known to be one: it ends the
    streak, so "the worst for the Nth consecutive week" never counts a week that was not ranked."""
    w = week_window(week)
    levels = as_of(levels, week)

    def stats(k: int):
        all_ = weekly_cross_asset(levels, k, assets, **kwargs)
        ca = all_.filter(pl.col("asset") == crypto)
        n = all_["rank"].drop_nulls().len()
        return (ca["rank"][0], n, ca["is_worst"][0]) if ca.height else (None, n, None)

    rank, n, worst = stats(week)
    streak = 0
    k = week
    is_w = worst
    while is_w and streak < max_weeks:
        streak += 1
        k = shift_week(k, -1)
        _, ranked, is_w = stats(k)
        is_w = is_w and ranked >= min_ranked
    return pl.DataFrame(
        [(w.monday, rank, n, worst, streak)],
        schema=WEEKLY_CRYPTO_RANK.polars_schema,
        orient="row",
    )
