"""Market caps for the days CoinGecko's plan cannot reach, estimated from Binance spot daily closes.

CoinGecko's keyless and Demo plans answer ``/coins/{id}/market_chart/range`` only for the last 365 days (error
10012). A backfill since April 2025 made late in 2026 needs older days, and market caps come from CoinGecko
alone. For a day D before the plan's first day R the pipeline estimates, per coin::

    market_cap(D) ~= binance_close(D) * supply(R)      supply(R) = market_cap(R) / price(R)   (CoinGecko, day R)

that is, today's-window circulating supply carried back at Binance's spot price (``<SYMBOL>USDT`` daily bars,
USDT taken at $1; Binance spot history reaches back years and needs no key). The estimate ignores supply
changes between D and R (unlocks, burns, issuance), so it is documented and measured (METHODOLOGY.md: on real
2025 data) and every report that rests on it says so. Volume is not estimated (one venue's volume is not the
market's): it stays null, a named gap.

A Binance pair is used for a coin only when its close on day R is within ``PAIR_TOLERANCE`` of CoinGecko's
price that day: a ticker can name another asset on Binance (CoinGecko symbols are not unique). Coins with no
usable pair are left out of the estimated days and named.

Kept free of Dagster; the pulls are paged recorded pulls (``pipelines.pulls.recorded``), pulled by
``pipelines.pulls.derivatives.pull_days``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import polars as pl

from pipelines.calendar import utc_midnight
from pipelines.pulls import derivatives as ing
from pipelines.pulls.recorded import choose_pulls, stored_pulls
from pipelines.schemas import COIN_DAILY_ESTIMATES, ESTIMATE_METHOD
from pipelines.sources.binance import BinanceSpotClient, parse_klines
from pipelines.warehouse import Warehouse

# CoinGecko's keyless and Demo plans: history within the past 365 days (the `from` of a range request).
PLAN_HISTORY_DAYS = {"demo": 365, "public": 365}
# Binance close vs CoinGecko price on the reference day: further apart, the ticker is taken to be another asset.
PAIR_TOLERANCE = 0.05
METHOD = ESTIMATE_METHOD

BINANCE_SPOT_1D = ing.Dataset("binance spot klines 1d", "binance", "spot_klines_1d", "symbol")


def plan_first_day(plan: str, now: datetime) -> date | None:
    """The first day whose close CoinGecko's plan still answers (an hour of margin), or None when the plan
    reaches every day (paid plans)."""
    days = PLAN_HISTORY_DAYS.get(plan.lower())
    if days is None:
        return None
    earliest = now - timedelta(days=days) + timedelta(hours=1)
    d = earliest.astimezone(timezone.utc).date() - timedelta(days=1)  # the close of D is D+1 00:00
    return d if utc_midnight(d + timedelta(days=1)) >= earliest else d + timedelta(days=1)


def spot_symbol(symbol: str) -> str | None:
    """``btc`` -> ``BTCUSDT``; None for a ticker that cannot be a Binance pair (or is USDT itself)."""
    sym = f"{symbol.upper()}USDT"
    return sym if re.fullmatch(r"[A-Z0-9]{2,20}USDT", sym) and sym != "USDTUSDT" else None


def estimable(registry: pl.DataFrame) -> dict[str, str]:
    """coin_id -> Binance spot symbol for the registry coins whose ticker can be a pair (first coin wins a
    shared ticker: the registry is in market-cap order)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for coin_id, symbol in (
        registry.sort("market_cap_rank", nulls_last=True).select("coin_id", "symbol").iter_rows()
    ):
        sym = spot_symbol(symbol or "")
        if sym and sym not in taken:
            out[coin_id] = sym
            taken.add(sym)
    return out


def pull_spot_daily(
    client: BinanceSpotClient,
    wh: Warehouse,
    symbols: list[str],
    days: list[date],
    *,
    force: bool = False,
    workers: int = 4,
) -> ing.PullReport:
    """``/api/v3/klines`` interval 1d (1000 bars a page: one request a symbol for years) for ``days``."""
    fetch = ing.klines_fetch(client, "1d")
    return ing.pull_days(wh, BINANCE_SPOT_1D, symbols, days, fetch, force=force, workers=workers)


def spot_daily_closes(wh: Warehouse, symbols: list[str], days: list[date]) -> pl.DataFrame:
    """Per symbol and day: the daily bar's close, from the newest stored pull covering it.

    Columns: ``spot_symbol``, ``day``, ``close``, ``observed_at`` (the bar's end, D+1 00:00 UTC), ``spot_raw_file``.
    """
    pulls = stored_pulls(wh, BINANCE_SPOT_1D.source, BINANCE_SPOT_1D.endpoint, days)
    wanted = {s: pulls[s] for s in symbols if s in pulls}
    frames = []
    for pull, pdays in choose_pulls(wanted, days).items():
        bars = parse_klines([json.loads((wh.root / f).read_bytes()) for f in pull.files], "/api/v3/klines")
        frames.append(
            bars.with_columns(pl.col("open_time").dt.date().alias("day"))
            .filter(pl.col("day").is_in(pdays))
            .select(
                pl.lit(pull.key).alias("spot_symbol"),
                "day",
                "close",
                (pl.col("day").cast(pl.Datetime("ms", "UTC")) + pl.duration(days=1)).alias("observed_at"),
                pl.lit(pull.files[0]).alias("spot_raw_file"),
            )
        )
    schema = {
        "spot_symbol": pl.String,
        "day": pl.Date,
        "close": pl.Float64,
        "observed_at": pl.Datetime("ms", "UTC"),
        "spot_raw_file": pl.String,
    }
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


@dataclass
class Estimate:
    rows: dict[date, pl.DataFrame]  # coin_daily frames per day
    provenance: dict[date, pl.DataFrame]  # coin_daily_estimates frames per day
    left_out: dict[str, str] = field(default_factory=dict)  # coin_id -> why it has no estimate


def estimate_coin_daily(
    reference: pl.DataFrame,
    reference_day: date,
    pairs: dict[str, str],
    closes: pl.DataFrame,
    days: list[date],
) -> Estimate:
    """coin_daily rows for ``days`` (all before ``reference_day``) from Binance spot closes (pure).

    ``reference``: CoinGecko coin_daily rows of ``reference_day`` (coin_id, symbol, name, price_usd,
    market_cap_usd). ``pairs``: coin_id -> spot symbol. ``closes``: ``spot_daily_closes`` for the days and the
    reference day. A coin is estimated only when CoinGecko gave it a positive price and market cap on the
    reference day and its Binance close that day lies within ``PAIR_TOLERANCE`` of that price.
    """
    left_out: dict[str, str] = {}
    ref_close = {
        s: c for s, d, c in closes.select("spot_symbol", "day", "close").iter_rows() if d == reference_day
    }
    usable = []
    for coin_id, symbol, name, price, cap in reference.select(
        "coin_id", "symbol", "name", "price_usd", "market_cap_usd"
    ).iter_rows():
        sym = pairs.get(coin_id)
        if sym is None:
            left_out[coin_id] = "its ticker cannot be a Binance USDT pair"
        elif not price or not cap or price <= 0 or cap <= 0:
            left_out[coin_id] = f"no CoinGecko price and market cap on {reference_day}"
        elif sym not in ref_close:
            left_out[coin_id] = f"Binance has no {sym} close on {reference_day}"
        elif abs(ref_close[sym] / price - 1) > PAIR_TOLERANCE:
            left_out[coin_id] = (
                f"Binance {sym} closed at {ref_close[sym]:.6g} on {reference_day} against CoinGecko's {price:.6g}: "
                "another asset under the same ticker"
            )
        else:
            usable.append((coin_id, symbol, name, sym, cap / price))
    coins = pl.DataFrame(
        usable,
        schema={
            "coin_id": pl.String,
            "symbol": pl.String,
            "name": pl.String,
            "spot_symbol": pl.String,
            "reference_supply": pl.Float64,
        },
        orient="row",
    )
    joined = coins.join(closes.filter(pl.col("day").is_in(days)), on="spot_symbol", how="inner")
    rows: dict[date, pl.DataFrame] = {}
    provenance: dict[date, pl.DataFrame] = {}
    for d in days:
        day = joined.filter(pl.col("day") == d).sort("coin_id")
        rows[d] = day.select(
            "coin_id",
            "symbol",
            "name",
            pl.col("close").alias("price_usd"),
            (pl.col("close") * pl.col("reference_supply")).alias("market_cap_usd"),
            pl.lit(None, pl.Float64).alias("volume_24h_usd"),
            "observed_at",
            pl.col("spot_raw_file").alias("raw_file"),
        )
        provenance[d] = day.select(
            "coin_id",
            pl.lit(METHOD).alias("method"),
            "spot_symbol",
            pl.lit(reference_day).alias("reference_day"),
            "reference_supply",
            "spot_raw_file",
        )
    return Estimate(rows=rows, provenance=provenance, left_out=left_out)


def estimated_days(wh: Warehouse, days: list[date]) -> dict[date, int]:
    """Of ``days``, those whose coin_daily rows are estimates, with how many coins were estimated."""
    out = {}
    for d in days:
        if wh.has_partition(COIN_DAILY_ESTIMATES, d.isoformat()):
            out[d] = wh.read_partition(COIN_DAILY_ESTIMATES, d.isoformat()).height
    return out
