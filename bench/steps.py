"""The floor: the pipeline's computations called as plain functions, without Dagster, through registries.

To benchmark a new daily asset, append one ``(name, callable)`` step to the matching list:

* ``DAILY_STEPS``: what ``daily_job`` does for a range of days (raw pulls, then clean tables); each step gets a
  ``DailyCtx``.
* The weekly part has no list here: it is taken from the asset graph (``assets.weekly.weeks.WEEKLY_COMPUTES``,
  tested equal to the code location's weekly assets) by ``bench.phases.floor_weeks``.
* ``METRIC_STEPS``: every pure function of ``pipelines.metrics`` on in-memory frames (no I/O), used for the
  universe-growth figures; each step gets a ``MetricInputs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import Any

import polars as pl

from pipelines.schemas import MACRO_OBSERVATIONS
from pipelines.warehouse import Warehouse


# ---- daily ----------------------------------------------------------------------------------------------------
@dataclass
class DailyCtx:
    wh: Warehouse
    first: date
    last: date
    client_factory: Callable[[], Any]  # -> a CoinGeckoClient (context manager)
    top_n: int = 250
    perps: int = 40
    state: dict[str, Any] = field(default_factory=dict)


def step_raw_markets(ctx: DailyCtx) -> None:
    from pipelines.pulls.coingecko import pull_registry

    with ctx.client_factory() as client:
        ctx.state["snapshot"] = pull_registry(client, ctx.wh, top_n=ctx.top_n).snapshot


def step_coin_registry(ctx: DailyCtx) -> None:
    from pipelines.clean.coingecko import parse_registry_snapshot
    from pipelines.schemas import COIN_REGISTRY

    snap = ctx.state["snapshot"]
    ctx.wh.write_partition(COIN_REGISTRY, snap, parse_registry_snapshot(ctx.wh, snap))
    ctx.wh.refresh_catalog()


def step_global_market_cap(ctx: DailyCtx) -> None:
    """The stored /global answers of the registry snapshots, as the ``global_market_cap`` asset writes them."""
    from pipelines.clean.coingecko import global_snapshots, parse_global_snapshot
    from pipelines.schemas import GLOBAL_MARKET_CAP

    for snap in global_snapshots(ctx.wh):
        if not ctx.wh.has_partition(GLOBAL_MARKET_CAP, snap):
            ctx.wh.write_partition(GLOBAL_MARKET_CAP, snap, parse_global_snapshot(ctx.wh, snap))
    ctx.wh.refresh_catalog()


def step_raw_market_charts(ctx: DailyCtx) -> None:
    from pipelines.clean.coingecko import latest_registry
    from pipelines.pulls.coingecko import pull_market_charts

    ids = latest_registry(ctx.wh)["coin_id"].to_list()
    with ctx.client_factory() as client:
        report = pull_market_charts(client, ctx.wh, ids, ctx.first, ctx.last)
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} coins failed")


def step_coin_daily(ctx: DailyCtx) -> None:
    from pipelines.calendar import days_between
    from pipelines.clean.coingecko import build_coin_daily, latest_registry
    from pipelines.schemas import COIN_DAILY

    frames, _ = build_coin_daily(ctx.wh, latest_registry(ctx.wh), days_between(ctx.first, ctx.last))
    for day, frame in frames.items():
        ctx.wh.write_partition(COIN_DAILY, day.isoformat(), frame)
    ctx.wh.refresh_catalog()


# ---- daily: derivatives, BTC hourly, macro (the same pull and build functions the assets call) -----------------
def _res(name: str):
    from pipelines.resources import build_resources

    # outside a run, a resource's dg.EnvVar fields are resolved by process_config_and_initialize
    return build_resources()[name].process_config_and_initialize()


def _perp_symbols(ctx: DailyCtx) -> list[str]:
    from assets.derivatives.raw import perp_symbols

    if "symbols" not in ctx.state:
        ctx.state["symbols"] = perp_symbols(ctx.wh, ctx.perps)
    return ctx.state["symbols"]


def _closed_days(ctx: DailyCtx, now: datetime) -> list[date]:
    from pipelines.calendar import days_between
    from pipelines.pulls import derivatives as ing

    return ing.closed_days(days_between(ctx.first, ctx.last), now)


def _ok(what: str, report: Any) -> None:
    if report.failed:
        raise RuntimeError(f"{what}: {len(report.failed)} pull(s) failed: {sorted(report.failed)[:5]}")


def step_premium_index(ctx: DailyCtx) -> None:
    from pipelines.pulls import derivatives as ing

    binance = _res("binance")
    with binance.futures() as client:
        ing.pull_premium_index(client, ctx.wh, binance.now())


def step_raw_binance_funding(ctx: DailyCtx) -> None:
    from pipelines.pulls import derivatives as ing

    binance = _res("binance")
    with binance.futures() as client:
        _ok(
            "funding",
            ing.pull_binance_funding(client, ctx.wh, _perp_symbols(ctx), _closed_days(ctx, binance.now())),
        )


def step_raw_binance_stats(ctx: DailyCtx) -> None:
    from pipelines.pulls import derivatives as ing

    binance = _res("binance")
    now = binance.now()
    start = (now - timedelta(days=ing.DEFAULT_ARCHIVE_DAYS)).date()
    with binance.futures() as fapi, binance.vision() as vision:
        _ok(
            "stats",
            ing.pull_binance_stats(
                fapi, vision, ctx.wh, _perp_symbols(ctx), _closed_days(ctx, now), now, archive_start=start
            ),
        )


def step_raw_binance_klines(ctx: DailyCtx) -> None:
    from pipelines.pulls import derivatives as ing

    binance = _res("binance")
    with binance.futures() as fapi, binance.spot() as spot:
        _ok(
            "klines",
            ing.pull_binance_klines(fapi, spot, ctx.wh, _perp_symbols(ctx), _closed_days(ctx, binance.now())),
        )


def step_raw_bybit(ctx: DailyCtx) -> None:
    from pipelines.pulls import derivatives as ing

    bybit = _res("bybit")
    with bybit.client() as client:
        _ok("bybit", ing.pull_bybit(client, ctx.wh, _perp_symbols(ctx), _closed_days(ctx, bybit.now())))


def step_raw_okx(ctx: DailyCtx) -> None:
    from pipelines.pulls import derivatives as ing

    okx = _res("okx")
    now = okx.now()
    with okx.client() as client:
        _ok("okx", ing.pull_okx(client, ctx.wh, _perp_symbols(ctx), _closed_days(ctx, now), now))


def step_raw_fred(ctx: DailyCtx) -> None:
    from pipelines.pulls import derivatives as ing

    fred = _res("fred")
    with fred.client() as client:
        _ok("fred", ing.pull_fred(client, ctx.wh, fred.now()))


def _clean_step(build: str, table: str, with_count: bool = False) -> Callable[[DailyCtx], Any]:
    """A clean daily table built by the function its asset calls (``build(wh, days)``), then written per day."""

    def step(ctx: DailyCtx) -> None:
        from pipelines.calendar import days_between
        from pipelines.clean import derivatives as cd

        out = getattr(cd, build)(ctx.wh, days_between(ctx.first, ctx.last))
        frames = out[0] if with_count else out
        for day, frame in sorted(frames.items()):
            ctx.wh.write_partition(getattr(cd, table), day.isoformat(), frame)
        ctx.wh.refresh_catalog()

    return step


def step_macro_observations(ctx: DailyCtx) -> None:
    from pipelines.clean import derivatives as cd

    for sid, frame in cd.build_macro(ctx.wh).items():
        ctx.wh.write_partition(MACRO_OBSERVATIONS, sid, frame)
    ctx.wh.refresh_catalog()


MARKET_DAILY_STEPS: list[tuple[str, Callable[[DailyCtx], Any]]] = [
    ("raw_coingecko_markets", step_raw_markets),
    ("coin_registry", step_coin_registry),
    ("global_market_cap", step_global_market_cap),
    ("raw_coingecko_market_charts", step_raw_market_charts),
    ("coin_daily", step_coin_daily),
]
DAILY_STEPS: list[tuple[str, Callable[[DailyCtx], Any]]] = [
    *MARKET_DAILY_STEPS,
    ("raw_binance_premium_index", step_premium_index),
    ("raw_binance_funding", step_raw_binance_funding),
    ("raw_binance_futures_stats", step_raw_binance_stats),
    ("raw_binance_klines", step_raw_binance_klines),
    ("raw_bybit_derivatives", step_raw_bybit),
    ("raw_okx_derivatives", step_raw_okx),
    ("raw_fred_series", step_raw_fred),
    ("funding_rates", _clean_step("build_funding_rates", "FUNDING_RATES")),
    ("open_interest", _clean_step("build_open_interest", "OPEN_INTEREST", with_count=True)),
    ("long_short_ratio", _clean_step("build_long_short", "LONG_SHORT_RATIO")),
    ("btc_hourly", _clean_step("build_btc_hourly", "BTC_HOURLY")),
    ("perp_volume_daily", _clean_step("build_perp_volume", "PERP_VOLUME_DAILY")),
    ("macro_observations", step_macro_observations),
]


# ---- pure metrics on in-memory frames -------------------------------------------------------------------------
@dataclass
class MetricInputs:
    coin_daily: pl.DataFrame  # lake schema with the hive column: date, coin_id, symbol, name, price_usd, ...
    registry: pl.DataFrame  # coin_id, categories
    week: str

    @cached_property
    def window(self):
        from pipelines.metrics.pit import week_window

        return week_window(self.week)

    @cached_property
    def eligible_ids(self) -> list[str]:
        from pipelines.metrics.universe import eligible, eligible_ids

        return eligible_ids(eligible(self.registry))

    def day(self, d: date) -> pl.DataFrame:
        return self.coin_daily.filter(pl.col("date") == d).drop("date")


def m_summary(x: MetricInputs):
    from pipelines.metrics.summary import weekly_market_summary

    w = x.window
    return weekly_market_summary(x.day(w.open_day), x.day(w.close_day), w.monday, w.next_monday, w.close_day)


def m_movers(x: MetricInputs):
    from pipelines.metrics.summary import weekly_movers

    return weekly_movers(x.day(x.window.open_day), x.day(x.window.close_day), x.registry, x.window.monday)


def m_universe(x: MetricInputs):
    from pipelines.metrics.universe import weekly_universe

    return weekly_universe(x.coin_daily, x.eligible_ids, x.week)


def m_market(x: MetricInputs):
    from pipelines.metrics.market import level_crossings, total_market_cap_daily, weekly_total_market_cap

    total = total_market_cap_daily(x.coin_daily)
    return weekly_total_market_cap(total, x.week), level_crossings(total, x.week)


def m_correlation_buckets(x: MetricInputs):
    from pipelines.metrics.correlation import weekly_correlation_buckets

    return weekly_correlation_buckets(x.coin_daily, x.eligible_ids, x.week)


def m_correlation_all_coins(x: MetricInputs):
    """``pairwise_corr`` over every coin of the frame: the quadratic step, [30 days x N] -> [N x N]."""
    from pipelines.metrics.correlation import log_return_matrix, pairwise_corr

    ids = x.coin_daily["coin_id"].unique().sort().to_list()
    return pairwise_corr(log_return_matrix(x.coin_daily, ids, x.window.close_day))


def m_sectors(x: MetricInputs):
    from pipelines.metrics.sectors import weekly_index_returns

    return weekly_index_returns(x.coin_daily, x.registry, x.eligible_ids, x.week)


METRIC_STEPS: list[tuple[str, Callable[[MetricInputs], Any]]] = [
    ("weekly_market_summary", m_summary),
    ("weekly_movers", m_movers),
    ("weekly_universe (eligible + top 100)", m_universe),
    ("weekly_total_market_cap + level_crossings", m_market),
    ("weekly_correlation_buckets (top 100, 5 weeks)", m_correlation_buckets),
    ("pairwise_corr, all N coins", m_correlation_all_coins),
    ("weekly_index_returns (10 indices, 2 weeks)", m_sectors),
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
