"""Raw layer, derivatives and BTC hourly: Binance, data.binance.vision, Bybit and OKX responses as pulled.

Every daily asset here pulls a whole partition range in one run (``BackfillPolicy.single_run()``), one
paginated request sequence per symbol for the days not stored yet. What cannot be had (a venue blocked in this
region, a 404, an empty answer, a 5xx or timeout that outlasted the retries, a body that changed shape, a venue
left out by ``CRYPTO_WEEKLY_VENUES``) is a named gap: the asset materializes what it has, lists the gaps in its
metadata and in the WARN check ``source_gaps``, records them in the gap ledger (``pipelines.gaps``) for the
report, and the run goes on. Nothing is stored for a gap, so the next run asks again.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import dagster as dg
from pydantic import Field

from assets._raw import gap_outputs, not_selected, raw_asset
from pipelines import gaps as gaps_mod
from pipelines.calendar import days_between, parse_day
from pipelines.clean.coingecko import latest_registry
from pipelines.pulls import derivatives as ing
from pipelines.resources import BinanceResource, BybitResource, OkxResource, WarehouseResource
from pipelines.schemas import COIN_REGISTRY
from pipelines.sources.http import SourceError
from pipelines.warehouse import Warehouse


class DerivPullConfig(dg.Config):
    force: bool = Field(
        default=False, description="pull again even when stored responses already cover the days"
    )
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


@raw_asset(
    "source_binance",
    (
        "Binance USDT-M /fapi/v1/premiumIndex (every listed perpetual, one request), stored as pulled under "
        "raw/binance/premium_index/snapshot=<UTC stamp>/. It lists the perpetuals that exist; the symbols followed "
        "are the largest eligible registry coins among them. A snapshot younger than max_age_hours is reused."
    ),
)
def raw_binance_premium_index(
    context: dg.AssetExecutionContext,
    config: PremiumConfig,
    warehouse: WarehouseResource,
    binance: BinanceResource,
) -> dg.MaterializeResult:
    wh = warehouse.get()
    gaps_mod.breaker_for_run(context.run_id)
    now = binance.now()  # the pipeline clock (CRYPTO_WEEKLY_NOW against the emulator), else the wall clock
    if not binance.selected:
        return not_selected(context, wh, ing.PREMIUM.source, [ing.PREMIUM.name], [])
    latest = ing.latest_premium_index(wh)
    if latest and not config.force:
        snap = latest[0].split("snapshot=", 1)[1].split("/", 1)[0]
        age = now - datetime.strptime(snap, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if age < timedelta(hours=config.max_age_hours):
            context.log.info(f"reusing premiumIndex snapshot {snap} ({age} old); no request made")
            gaps_mod.record_gaps(wh, ing.PREMIUM.name, [], [], replace_all=True)
            meta, checks = gap_outputs([])
            return dg.MaterializeResult(
                metadata={
                    "file": latest[0],
                    "requests": 0,
                    "reused": True,
                    "perpetuals": latest[1].height,
                    **meta,
                },
                check_results=checks,
            )
    try:
        tripped = gaps_mod.BREAKER.blocked(ing.PREMIUM.source)
        if tripped is not None:
            raise tripped
        with binance.futures() as client:
            rel = ing.pull_premium_index(client, wh, now)
    except SourceError as exc:
        reason, status = gaps_mod.classify(exc)
        if reason in gaps_mod.TRIPS:
            gaps_mod.BREAKER.trip(ing.PREMIUM.source, exc)
        gap = gaps_mod.Gap(ing.PREMIUM.source, ing.PREMIUM.name, "*", (), status, reason, str(exc)[:300])
        gaps_mod.record_gaps(wh, ing.PREMIUM.name, [], [gap], replace_all=True)
        context.log.warning(
            f"premiumIndex could not be pulled ({reason}): the followed perpetuals come from the "
            f"last stored snapshot or the registry. {exc}"
        )
        meta, checks = gap_outputs([gap])
        return dg.MaterializeResult(
            metadata={"requests": 0 if tripped else 1, "reused": False, **meta}, check_results=checks
        )
    gaps_mod.record_gaps(wh, ing.PREMIUM.name, [], [], replace_all=True)
    listed = ing.latest_premium_index(wh)
    meta, checks = gap_outputs([])
    return dg.MaterializeResult(
        metadata={
            "file": rel,
            "requests": 1,
            "reused": False,
            "perpetuals": listed[1].height if listed else 0,
            **meta,
        },
        check_results=checks,
    )


def perp_symbols(wh: Warehouse, top_n: int) -> list[str]:
    """The perpetuals followed: the largest eligible registry coins listed in the latest stored premiumIndex
    snapshot; with no snapshot at all (Binance blocked or not selected), the largest eligible registry coins as
    ``<SYMBOL>USDT``, which Bybit and OKX answer for or name as a gap. No single venue decides alone."""
    try:
        registry = latest_registry(wh)
    except LookupError as exc:
        raise dg.Failure(str(exc)) from exc
    listed = ing.latest_premium_index(wh)
    symbols = ing.perp_universe(registry, listed[1]["symbol"].to_list() if listed else None, top_n)
    if not symbols:
        raise dg.Failure(
            "no eligible registry coin has a USDT perpetual: check the registry and premiumIndex"
        )
    return symbols


@dataclass(frozen=True)
class _DailyPull:
    """What a daily pull asks for: the closed days of its partition range and the followed perpetuals."""

    wh: Warehouse
    now: datetime
    days: list[date]
    symbols: list[str]


def _start(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    venue: BinanceResource | BybitResource | OkxResource,
    source: str,
    datasets: list[str],
    top_n: int,
) -> _DailyPull | dg.MaterializeResult:
    """The start of every daily pull of ``venue``: the run's breaker, the closed days of the partition range and
    the followed perpetuals; or, for a venue left out by CRYPTO_WEEKLY_VENUES, the "not selected" result."""
    wh, now = warehouse.get(), venue.now()
    gaps_mod.breaker_for_run(context.run_id)
    keys = context.partition_key_range
    days = ing.closed_days(days_between(parse_day(keys.start), parse_day(keys.end)), now)
    if not venue.selected:
        return not_selected(context, wh, source, datasets, days)
    return _DailyPull(wh, now, days, perp_symbols(wh, top_n))


def _finish(
    context: dg.AssetExecutionContext, run: _DailyPull, what: str, report: ing.PullReport, **extra
) -> dg.MaterializeResult:
    wh, days, symbols = run.wh, run.days, run.symbols
    report.record(wh)
    if report.gaps:
        context.log.warning(
            f"{what}: {len(report.gaps)} gap(s), nothing stored for them (asked again next run): "
            + "; ".join(gaps_mod.describe(report.gaps))
        )
    context.log.info(
        f"{what}: {report.requests} requests, {report.pulls} pulls, {report.skipped} already stored"
    )
    meta, checks = gap_outputs(report.gaps)
    return dg.MaterializeResult(
        check_results=checks,
        metadata={
            "days": len(days),
            "symbols": len(symbols),
            "requests": report.requests,
            "pulls": report.pulls,
            "skipped_already_stored": report.skipped,
            "unreachable_days": report.unreachable_days,
            "files_sample": dg.MetadataValue.md("\n".join(f"- `{f}`" for f in report.files[:10]) or "_none_"),
            **meta,
            **extra,
        },
    )


# The daily pulls follow the perpetuals of the registry and the latest premiumIndex snapshot.
_PERP_DEPS = [COIN_REGISTRY.name, "raw_binance_premium_index"]


@raw_asset(
    "source_binance",
    daily_deps=_PERP_DEPS,
    description=(
        "Binance USDT-M funding settlements (/fapi/v1/fundingRate, REST for the whole history: 1000 rows a page) for "
        "the followed perpetuals. Stored as pulled under raw/binance/funding_rate/symbol=<S>/pull=<days>__<stamp>/."
    ),
)
def raw_binance_funding(
    context: dg.AssetExecutionContext,
    config: DerivPullConfig,
    warehouse: WarehouseResource,
    binance: BinanceResource,
) -> dg.MaterializeResult:
    run = _start(context, warehouse, binance, "binance", [ing.BINANCE_FUNDING.name], config.top_n)
    if isinstance(run, dg.MaterializeResult):
        return run
    with binance.futures() as client:
        report = ing.pull_binance_funding(
            client, run.wh, run.symbols, run.days, force=config.force, workers=config.workers
        )
    return _finish(context, run, "Binance funding", report)


@raw_asset(
    "source_binance",
    daily_deps=_PERP_DEPS,
    description=(
        "Binance USDT-M open interest and global long/short account ratio, hourly: REST openInterestHist and "
        "globalLongShortAccountRatio for the last 30 days (their limit), the daily data.binance.vision metrics "
        "archive (zip verified against .CHECKSUM; 404 = missing upstream, recorded) for older days from "
        "archive_start. Days before archive_start are not asked."
    ),
)
def raw_binance_futures_stats(
    context: dg.AssetExecutionContext,
    config: StatsPullConfig,
    warehouse: WarehouseResource,
    binance: BinanceResource,
) -> dg.MaterializeResult:
    datasets = [ing.BINANCE_OI.name, ing.BINANCE_LS.name, ing.BINANCE_METRICS.name]
    run = _start(context, warehouse, binance, "binance", datasets, config.top_n)
    if isinstance(run, dg.MaterializeResult):
        return run
    start = (
        date.fromisoformat(config.archive_start)
        if config.archive_start
        else (run.now - timedelta(days=ing.DEFAULT_ARCHIVE_DAYS)).date()
    )
    with binance.futures() as fapi, binance.vision() as vision:
        report = ing.pull_binance_stats(
            fapi,
            vision,
            run.wh,
            run.symbols,
            run.days,
            run.now,
            archive_start=start,
            force=config.force,
            workers=config.workers,
        )
    return _finish(
        context,
        run,
        "Binance OI / long-short",
        report,
        archive_start=start.isoformat(),
        rest_first_day=ing.rest_stats_first_day(run.now).isoformat(),
    )


@raw_asset(
    "source_binance",
    daily_deps=_PERP_DEPS,
    description=(
        "Binance klines: spot BTCUSDT 1h (/api/v3/klines) and, per followed perpetual, USDT-M 1d bars (perp volume) "
        "and 4h/1h bars (prices for Bybit OI in USD, at the intervals of intraday_spans) from /fapi/v1/klines. "
        "Stored as pulled under "
        "raw/binance/{spot_klines_1h,perp_klines_1d,perp_klines_intraday}/."
    ),
)
def raw_binance_klines(
    context: dg.AssetExecutionContext,
    config: DerivPullConfig,
    warehouse: WarehouseResource,
    binance: BinanceResource,
) -> dg.MaterializeResult:
    datasets = [ing.BINANCE_SPOT_1H.name, ing.BINANCE_PERP_1D.name, ing.BINANCE_PERP_INTRADAY.name]
    run = _start(context, warehouse, binance, "binance", datasets, config.top_n)
    if isinstance(run, dg.MaterializeResult):
        return run
    with binance.futures() as fapi, binance.spot() as spot:
        report = ing.pull_binance_klines(
            fapi, spot, run.wh, run.symbols, run.days, force=config.force, workers=config.workers
        )
    return _finish(context, run, "Binance klines", report)


@raw_asset(
    "source_bybit",
    daily_deps=_PERP_DEPS,
    description=(
        "Bybit linear perpetuals: funding history (/v5/market/funding/history) and open interest in base coin "
        "(/v5/market/open-interest, 4h/1h: intraday_spans), for the followed symbols; whole history reachable."
    ),
)
def raw_bybit_derivatives(
    context: dg.AssetExecutionContext,
    config: DerivPullConfig,
    warehouse: WarehouseResource,
    bybit: BybitResource,
) -> dg.MaterializeResult:
    run = _start(
        context, warehouse, bybit, "bybit", [ing.BYBIT_FUNDING.name, ing.BYBIT_OI.name], config.top_n
    )
    if isinstance(run, dg.MaterializeResult):
        return run
    with bybit.client() as client:
        report = ing.pull_bybit(
            client, run.wh, run.symbols, run.days, force=config.force, workers=config.workers
        )
    return _finish(context, run, "Bybit", report)


@raw_asset(
    "source_okx",
    daily_deps=_PERP_DEPS,
    description=(
        "OKX USDT swaps: funding history (realizedRate; OKX keeps about 3 months, older days are not asked) and "
        "the rubik daily open interest per coin in USD (180 days kept), for the followed symbols."
    ),
)
def raw_okx_derivatives(
    context: dg.AssetExecutionContext, config: DerivPullConfig, warehouse: WarehouseResource, okx: OkxResource
) -> dg.MaterializeResult:
    run = _start(context, warehouse, okx, "okx", [ing.OKX_FUNDING.name, ing.OKX_OI.name], config.top_n)
    if isinstance(run, dg.MaterializeResult):
        return run
    with okx.client() as client:
        report = ing.pull_okx(
            client, run.wh, run.symbols, run.days, run.now, force=config.force, workers=config.workers
        )
    return _finish(context, run, "OKX", report)
