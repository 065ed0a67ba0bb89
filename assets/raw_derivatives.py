"""Raw layer, derivatives and BTC hourly: Binance, data.binance.vision, Bybit and OKX responses as pulled.

Every daily asset here pulls a whole partition range in one run (``BackfillPolicy.single_run()``), one
paginated request sequence per symbol for the days not stored yet. A symbol that cannot be pulled is listed in
a ``dg.Failure`` after the others were stored (they are not asked again on the retry).
"""

from datetime import date, datetime, timedelta, timezone

import dagster as dg
from pydantic import Field

from pipelines import ingest_derivatives as ing
from pipelines.cleaning import latest_registry
from pipelines.partitions import DAILY, days_between, parse_day
from pipelines.resources import BinanceResource, BybitResource, OkxResource, WarehouseResource
from pipelines.schemas import COIN_REGISTRY
from pipelines.warehouse import Warehouse


class DerivPullConfig(dg.Config):
    force: bool = Field(default=False, description="pull again even when stored responses already cover the days")
    top_n: int = Field(default=ing.PERP_TOP_N, description="how many perpetuals to follow")
    workers: int = Field(default=4, description="symbols pulled concurrently")


class StatsPullConfig(DerivPullConfig):
    archive_start: str = Field(
        default="",
        description=(
            "first day read from the data.binance.vision metrics archive (YYYY-MM-DD); empty = "
            f"{ing.DEFAULT_ARCHIVE_DAYS} days before now. The archive costs 2 requests per symbol and day."
        ),
    )


class PremiumConfig(dg.Config):
    force: bool = Field(default=False)
    max_age_hours: float = Field(default=20.0, description="reuse a stored snapshot younger than this")


@dg.asset(
    pool="source_binance",
    group_name="raw",
    kinds={"python", "json"},
    description=(
        "Binance USDT-M /fapi/v1/premiumIndex (every listed perpetual, one request), stored as pulled under "
        "raw/binance/premium_index/snapshot=<UTC stamp>/. It lists the perpetuals that exist; the symbols followed "
        "are the largest eligible registry coins among them. A snapshot younger than max_age_hours is reused."
    ),
)
def raw_binance_premium_index(
    context: dg.AssetExecutionContext, config: PremiumConfig, warehouse: WarehouseResource, binance: BinanceResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    now = binance.now()  # the pipeline clock (CRYPTO_WEEKLY_NOW against the emulator), else the wall clock
    latest = ing.latest_premium_index(wh)
    if latest and not config.force:
        snap = latest[0].split("snapshot=", 1)[1].split("/", 1)[0]
        age = now - datetime.strptime(snap, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if age < timedelta(hours=config.max_age_hours):
            context.log.info(f"reusing premiumIndex snapshot {snap} ({age} old); no request made")
            return dg.MaterializeResult(metadata={"file": latest[0], "requests": 0, "reused": True,
                                                  "perpetuals": latest[1].height})
    with binance.futures() as client:
        rel = ing.pull_premium_index(client, wh, now)
    listed = ing.latest_premium_index(wh)
    return dg.MaterializeResult(metadata={"file": rel, "requests": 1, "reused": False,
                                          "perpetuals": listed[1].height if listed else 0})


def perp_symbols(wh: Warehouse, top_n: int) -> list[str]:
    """The perpetuals followed: the largest eligible registry coins listed in the latest premiumIndex snapshot."""
    try:
        registry = latest_registry(wh)
    except LookupError as exc:
        raise dg.Failure(str(exc)) from exc
    listed = ing.latest_premium_index(wh)
    if listed is None:
        raise dg.Failure("no Binance premiumIndex snapshot stored: materialize raw_binance_premium_index first")
    symbols = ing.perp_universe(registry, listed[1]["symbol"].to_list(), top_n)
    if not symbols:
        raise dg.Failure("no registry coin has a Binance USDT-M perpetual: check the registry and premiumIndex")
    return symbols


def _days(context: dg.AssetExecutionContext, now: datetime) -> list[date]:
    keys = context.partition_key_range
    return ing.closed_days(days_between(parse_day(keys.start), parse_day(keys.end)), now)


def _finish(context: dg.AssetExecutionContext, what: str, report: ing.PullReport, days: list[date],
            symbols: list[str], **extra) -> dg.MaterializeResult:
    span = f"{days[0]}..{days[-1]}" if days else "no closed day"
    if report.failed:
        lines = "\n".join(f"- {k}: {e}" for k, e in sorted(report.failed.items())[:20])
        raise dg.Failure(
            description=(
                f"{what}: {len(report.failed)} pull(s) failed for {span}; the {report.pulls} that succeeded were "
                f"stored and will not be asked for again.\n{lines}"
            ),
            metadata={"failed": len(report.failed), "stored_pulls": report.pulls, "requests": report.requests},
        )
    context.log.info(f"{what}: {report.requests} requests, {report.pulls} pulls, {report.skipped} already stored")
    return dg.MaterializeResult(metadata={
        "days": len(days),
        "symbols": len(symbols),
        "requests": report.requests,
        "pulls": report.pulls,
        "skipped_already_stored": report.skipped,
        "unreachable_days": report.unreachable_days,
        "files_sample": dg.MetadataValue.md("\n".join(f"- `{f}`" for f in report.files[:10]) or "_none_"),
        **extra,
    })


_DAILY = dict(
    group_name="raw",
    kinds={"python", "json"},
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[COIN_REGISTRY.name, "raw_binance_premium_index"],
)


@dg.asset(
    pool="source_binance",
    **_DAILY,
    description=(
        "Binance USDT-M funding settlements (/fapi/v1/fundingRate, REST for the whole history: 1000 rows a page) for "
        "the followed perpetuals. Stored as pulled under raw/binance/funding_rate/symbol=<S>/pull=<days>__<stamp>/."
    ),
)
def raw_binance_funding(context: dg.AssetExecutionContext, config: DerivPullConfig, warehouse: WarehouseResource,
                        binance: BinanceResource) -> dg.MaterializeResult:
    wh, now = warehouse.get(), binance.now()
    symbols, days = perp_symbols(wh, config.top_n), _days(context, now)
    with binance.futures() as client:
        report = ing.pull_binance_funding(client, wh, symbols, days, force=config.force, workers=config.workers)
    return _finish(context, "Binance funding", report, days, symbols)


@dg.asset(
    pool="source_binance",
    **_DAILY,
    description=(
        "Binance USDT-M open interest and global long/short account ratio, hourly: REST openInterestHist and "
        "globalLongShortAccountRatio for the last 30 days (their limit), the daily data.binance.vision metrics "
        "archive (zip verified against .CHECKSUM; 404 = missing upstream, recorded) for older days from "
        "archive_start. Days before archive_start are not asked."
    ),
)
def raw_binance_futures_stats(context: dg.AssetExecutionContext, config: StatsPullConfig,
                              warehouse: WarehouseResource, binance: BinanceResource) -> dg.MaterializeResult:
    wh, now = warehouse.get(), binance.now()
    symbols, days = perp_symbols(wh, config.top_n), _days(context, now)
    start = (date.fromisoformat(config.archive_start) if config.archive_start
             else (now - timedelta(days=ing.DEFAULT_ARCHIVE_DAYS)).date())
    with binance.futures() as fapi, binance.vision() as vision:
        report = ing.pull_binance_stats(fapi, vision, wh, symbols, days, now, archive_start=start,
                                        force=config.force, workers=config.workers)
    return _finish(context, "Binance OI / long-short", report, days, symbols, archive_start=start.isoformat(),
                   rest_first_day=ing.rest_stats_first_day(now).isoformat())


@dg.asset(
    pool="source_binance",
    **_DAILY,
    description=(
        "Binance klines: spot BTCUSDT 1h (/api/v3/klines) and, per followed perpetual, USDT-M 1d bars (perp volume) "
        "and 1h bars (prices for Bybit OI in USD) from /fapi/v1/klines. Stored as pulled under "
        "raw/binance/{spot_klines_1h,perp_klines_1d,perp_klines_1h}/."
    ),
)
def raw_binance_klines(context: dg.AssetExecutionContext, config: DerivPullConfig, warehouse: WarehouseResource,
                       binance: BinanceResource) -> dg.MaterializeResult:
    wh, now = warehouse.get(), binance.now()
    symbols, days = perp_symbols(wh, config.top_n), _days(context, now)
    with binance.futures() as fapi, binance.spot() as spot:
        report = ing.pull_binance_klines(fapi, spot, wh, symbols, days, force=config.force, workers=config.workers)
    return _finish(context, "Binance klines", report, days, symbols)


@dg.asset(
    pool="source_bybit",
    **_DAILY,
    description=(
        "Bybit linear perpetuals: funding history (/v5/market/funding/history) and hourly open interest in base coin "
        "(/v5/market/open-interest), for the followed symbols; whole history reachable."
    ),
)
def raw_bybit_derivatives(context: dg.AssetExecutionContext, config: DerivPullConfig, warehouse: WarehouseResource,
                          bybit: BybitResource) -> dg.MaterializeResult:
    wh, now = warehouse.get(), bybit.now()
    symbols, days = perp_symbols(wh, config.top_n), _days(context, now)
    with bybit.client() as client:
        report = ing.pull_bybit(client, wh, symbols, days, force=config.force, workers=config.workers)
    return _finish(context, "Bybit", report, days, symbols)


@dg.asset(
    pool="source_okx",
    **_DAILY,
    description=(
        "OKX USDT swaps: funding history (realizedRate; OKX keeps about 3 months, older days are not asked) and "
        "the rubik daily open interest per coin in USD (180 days kept), for the followed symbols."
    ),
)
def raw_okx_derivatives(context: dg.AssetExecutionContext, config: DerivPullConfig, warehouse: WarehouseResource,
                        okx: OkxResource) -> dg.MaterializeResult:
    wh, now = warehouse.get(), okx.now()
    symbols, days = perp_symbols(wh, config.top_n), _days(context, now)
    with okx.client() as client:
        report = ing.pull_okx(client, wh, symbols, days, now, force=config.force, workers=config.workers)
    return _finish(context, "OKX", report, days, symbols)
