"""Raw layer: API responses stored exactly as pulled, with the request that produced them."""

from datetime import datetime, timedelta, timezone

import dagster as dg
from pydantic import Field

from assets._raw import gap_outputs, raw_asset
from pipelines import gaps as gaps_mod
from pipelines.calendar import days_between, parse_day
from pipelines.clean import estimates
from pipelines.clean.coingecko import latest_registry
from pipelines.pulls.coingecko import (
    CHART_WORKERS,
    GLOBAL_DATASET,
    MARKETS_ENDPOINT,
    SNAPSHOT_COMPLETE,
    SOURCE,
    pull_market_charts,
    pull_registry,
)
from pipelines.pulls.derivatives import closed_days
from pipelines.resources import BinanceResource, CoinGeckoResource, WarehouseResource
from pipelines.schemas import COIN_REGISTRY
from pipelines.warehouse import Warehouse


class PullConfig(dg.Config):
    force: bool = Field(
        default=False, description="pull again even when stored responses already cover the data"
    )


class ChartsConfig(PullConfig):
    workers: int = Field(
        default=CHART_WORKERS,
        ge=1,
        le=32,
        description="coins pulled at once (requests stay paced by the plan's rate limit)",
    )


class RegistryConfig(PullConfig):
    max_age_hours: float = Field(default=20.0, description="reuse a stored snapshot younger than this")


def latest_snapshot(wh: Warehouse) -> str | None:
    base = wh.raw_dir / SOURCE / MARKETS_ENDPOINT
    # Only complete snapshots: a run killed mid-snapshot leaves a directory without the marker.
    snaps = sorted(
        p.name.split("=", 1)[1] for p in base.glob("snapshot=*") if (p / SNAPSHOT_COMPLETE).exists()
    )
    return snaps[-1] if snaps else None


@raw_asset(
    "source_coingecko",
    description=(
        "CoinGecko /coins/markets (top N by market cap) and category membership (/coins/markets?category=), "
        "stored as pulled under raw/coingecko/markets/snapshot=<UTC stamp>/, and /global (the market's total) "
        "pulled right after the top pages, under raw/coingecko/global/snapshot=<same stamp>/. A /global that "
        "fails or whose figure is wrong (zero, negative, NaN, below the listed coins' total) is not stored: a "
        "named gap (WARN check source_gaps). A snapshot younger than max_age_hours is reused; force pulls a new one."
    ),
)
def raw_coingecko_markets(
    context: dg.AssetExecutionContext,
    config: RegistryConfig,
    warehouse: WarehouseResource,
    coingecko: CoinGeckoResource,
) -> dg.MaterializeResult:
    wh = warehouse.get()
    now = coingecko.now()
    snap = latest_snapshot(wh)
    if snap and not config.force:
        age = now - datetime.strptime(snap[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if age < timedelta(hours=config.max_age_hours):
            context.log.info(f"reusing snapshot {snap} ({age} old); no request made")
            meta, checks = gap_outputs([])
            return dg.MaterializeResult(
                metadata={"snapshot": snap, "requests": 0, "reused": True, **meta}, check_results=checks
            )
    with coingecko.client() as client:
        pull = pull_registry(client, wh, top_n=coingecko.top_n, now=now)
    gaps = [pull.global_gap] if pull.global_gap else []
    # the ledger holds the latest /global pull's outcome: a success clears an earlier failure
    gaps_mod.record_gaps(wh, GLOBAL_DATASET, [], gaps, replace_all=True)
    if pull.global_gap:
        context.log.warning(
            f"CoinGecko /global: {pull.global_gap.reason}: {pull.global_gap.detail}; the registry "
            "was stored, the market's total is estimated from an earlier share"
        )
    meta, checks = gap_outputs(gaps)
    return dg.MaterializeResult(
        metadata={
            "snapshot": pull.snapshot,
            "requests": pull.requests,
            "reused": False,
            "coins": pull.coins.height,
            "global_file": pull.global_file or "none",
            "files": dg.MetadataValue.md("\n".join(f"- `{f}`" for f in pull.files[:20])),
            **meta,
        },
        check_results=checks,
    )


@raw_asset(
    "source_coingecko",
    gaps=False,
    daily_deps=[COIN_REGISTRY.name],
    description=(
        "CoinGecko /coins/{id}/market_chart/range for every coin of the registry, one request per coin for the "
        "whole partition range (a backfill of many days is one run). Stored as pulled under "
        "raw/coingecko/market_chart_range/coin=<id>/. Days already covered by a stored pull make no request "
        "unless force is set."
    ),
)
def raw_coingecko_market_charts(
    context: dg.AssetExecutionContext,
    config: ChartsConfig,
    warehouse: WarehouseResource,
    coingecko: CoinGeckoResource,
) -> dg.MaterializeResult:
    wh = warehouse.get()
    keys = context.partition_key_range
    first, last = parse_day(keys.start), parse_day(keys.end)
    registry = latest_registry(wh)
    coin_ids = registry["coin_id"].to_list()

    def progress(n: int, total: int, coin: str) -> None:
        if n % 25 == 0 or n == total:
            context.log.info(f"market charts: {n}/{total} coins ({coin})")

    plan_first = coingecko.plan_first_day()
    with coingecko.client() as client:
        report = pull_market_charts(
            client,
            wh,
            coin_ids,
            first,
            last,
            force=config.force,
            now=coingecko.now(),
            progress=progress,
            plan_first_day=plan_first,
            workers=config.workers,
        )
    if report.beyond_plan:
        context.log.warning(
            f"{len(report.beyond_plan)} day(s) ({report.beyond_plan[0]}..{report.beyond_plan[-1]}) are older than "
            f"the CoinGecko plan reaches (first day {plan_first}): not asked; coin_daily estimates their market caps "
            "from Binance spot closes (raw_binance_spot_daily)"
        )
    if report.failed:
        lines = "\n".join(f"- {c}: {e}" for c, e in sorted(report.failed.items())[:20])
        raise dg.Failure(
            description=(
                f"{len(report.failed)} of {len(coin_ids)} coins could not be pulled for {first}..{last}; the "
                f"{len(report.requested)} pulled were stored and will not be asked for again.\n{lines}"
            ),
            metadata={"failed": len(report.failed), "stored": len(report.requested)},
        )
    return dg.MaterializeResult(
        metadata={
            "days": (last - first).days + 1,
            "requests": len(report.requested),
            "skipped_already_stored": len(report.skipped),
            "coins": len(coin_ids),
            "plan_first_day": str(plan_first) if plan_first else "every day (paid plan)",
            "days_beyond_plan": len(report.beyond_plan),
            "files_sample": dg.MetadataValue.md("\n".join(f"- `{f}`" for f in report.files[:10]) or "_none_"),
        }
    )


class SpotDailyConfig(PullConfig):
    workers: int = Field(default=4, description="symbols pulled concurrently")


@raw_asset(
    "source_binance_coingecko",  # Binance's spot API, and CoinGecko's plan window (no CoinGecko request)
    gaps=False,
    daily_deps=[COIN_REGISTRY.name],
    description=(
        "Binance spot daily bars (/api/v3/klines interval 1d, <SYMBOL>USDT) for the registry coins, only for the "
        "days older than the CoinGecko plan reaches (keyless and Demo: 365 days) plus the plan's first day: "
        "coin_daily estimates those days' market caps from them (pipelines/clean/estimates.py). With a paid plan it asks "
        "nothing. Stored as pulled under raw/binance/spot_klines_1d/symbol=<S>/pull=<days>__<stamp>/."
    ),
)
def raw_binance_spot_daily(
    context: dg.AssetExecutionContext,
    config: SpotDailyConfig,
    warehouse: WarehouseResource,
    coingecko: CoinGeckoResource,
    binance: BinanceResource,
) -> dg.MaterializeResult:
    wh, now = warehouse.get(), coingecko.now()
    keys = context.partition_key_range
    days = closed_days(days_between(parse_day(keys.start), parse_day(keys.end)), now)
    plan_first = coingecko.plan_first_day()
    early = [d for d in days if plan_first is not None and d < plan_first]
    if not early:
        return dg.MaterializeResult(
            metadata={"days_estimated": 0, "requests": 0, "plan_first_day": str(plan_first or "every day")}
        )
    pairs = estimates.estimable(latest_registry(wh))
    symbols = sorted(set(pairs.values()))
    with binance.spot() as client:
        report = estimates.pull_spot_daily(
            client, wh, symbols, [*early, plan_first], force=config.force, workers=config.workers
        )
    if report.failed:  # a pair Binance does not list (or not in that period): the coin is left out, named
        context.log.warning(
            f"{len(report.failed)} of {len(symbols)} Binance spot pairs could not be pulled; their coins have no "
            "estimate: " + "; ".join(f"{k}: {e[:120]}" for k, e in sorted(report.failed.items())[:10])
        )
    return dg.MaterializeResult(
        metadata={
            "plan_first_day": str(plan_first),
            "days_estimated": len(early),
            "symbols": len(symbols),
            "requests": report.requests,
            "pulls": report.pulls,
            "skipped_already_stored": report.skipped,
            "pairs_failed": dg.MetadataValue.md(
                "\n".join(f"- {k}: {e[:200]}" for k, e in sorted(report.failed.items())[:30]) or "_none_"
            ),
        }
    )
