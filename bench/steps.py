"""The floor: the pipeline's computations as plain code, without Dagster's run machinery.

* The daily part has no hand-kept list: ``daily_steps`` takes every asset of ``daily_job`` (the job's own
  selection) from the asset graph, each after the assets it depends on, and ``run_daily`` invokes each asset's
  body directly (``dg.build_asset_context`` with the partition range, the asset's config from the run config,
  the resources the Definitions bind): no run, no instance, no event log, no separate asset checks. A direct
  invocation returns the body's value without storing it, so the floor then hands that value to the asset's IO
  manager itself, as a run does after the body (``store_output``: a clean table's partitions go to
  ``LakeIOManager``, which writes the lake). A new daily asset is in the floor as soon as it is in the job.
* The weekly part has no list either: it is taken from the asset graph (``assets.weekly.weeks.WEEKLY_COMPUTES``,
  tested equal to the code location's weekly assets) by ``bench.phases.floor_weeks``.
* ``METRIC_STEPS``: every pure function of ``pipelines.metrics`` on in-memory frames (no I/O), used for the
  universe-growth figures; each step gets a ``MetricInputs``. To measure a new metric function, append it here.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

import dagster as dg
import polars as pl

# ---- daily: every asset of daily_job, invoked directly ----------------------------------------------------------
DAILY_JOB = "daily_job"


def daily_steps(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """Every asset of ``DAILY_JOB`` in ``defs``, in the asset graph's topological order (each after the assets it
    depends on); an asset definition that produces several keys once, and only when the job selects all of them
    (a direct invocation computes every key of its definition)."""
    layer = defs.resolve_job_def(DAILY_JOB).asset_layer
    graph, selected = layer.asset_graph, layer.selected_asset_keys
    steps: list[dg.AssetsDefinition] = []
    for key in graph.toposorted_asset_keys:
        if key not in selected:
            continue
        asset = graph.get(key).assets_def
        if any(asset is s for s in steps):
            continue
        if not asset.keys <= selected:
            part = sorted(k.to_user_string() for k in asset.keys - selected)
            raise ValueError(
                f"{DAILY_JOB} selects part of a multi-asset (not {part}): the floor runs it whole"
            )
        steps.append(asset)
    return steps


def step_name(asset: dg.AssetsDefinition) -> str:
    return ", ".join(sorted(k.to_user_string() for k in asset.keys))


@dataclass(frozen=True)
class DailyRange:
    """What one floor run of the daily job covers: the days (a daily asset's partition range) and the run config
    (``{"ops": {asset: {"config": {...}}}}``, as given to ``daily_job``)."""

    first: date
    last: date
    run_config: dict[str, Any]

    def config_of(self, asset: dg.AssetsDefinition) -> dict[str, Any] | None:
        return self.run_config.get("ops", {}).get(asset.op.name, {}).get("config")


def run_daily_step(asset: dg.AssetsDefinition, days: DailyRange, log_level: int = logging.WARNING) -> None:
    """``asset``'s body as plain code: invoked directly with the partition range (a partitioned asset) and its
    config; the resources are those the Definitions bind to it; its log at ``log_level`` (the benchmark's runs set
    their console logger to WARNING); then its value is stored (``store_output``). A failure (``dg.Failure``, an
    error) is raised."""
    keys = (
        dg.PartitionKeyRange(days.first.isoformat(), days.last.isoformat()) if asset.partitions_def else None
    )
    with dg.build_asset_context(partition_key_range=keys, asset_config=days.config_of(asset)) as context:
        context.log.setLevel(log_level)
        out = asset(context)
        results = list(out) if inspect.isgenerator(out) else [out]  # an asset that yields its results
    for result in results:
        if isinstance(result, dg.MaterializeResult):
            store_output(asset, result, keys)


def store_output(
    asset: dg.AssetsDefinition, result: dg.MaterializeResult, keys: dg.PartitionKeyRange | None
) -> None:
    """What a run does with an asset's value after its body: hand it to the output's IO manager (the one the
    Definitions bind to the asset), with an output context of the asset and the run's partition range. An output
    that declares no value type (Nothing, or Any: a ``MaterializeResult`` without a value) has nothing to store."""
    key = result.asset_key or asset.key
    output = asset.op.output_def_named(asset.get_output_name_for_asset_key(key))
    if output.dagster_type.is_nothing or output.dagster_type.is_any:
        return
    manager_key = asset.get_io_manager_key_for_asset_key(key)
    with dg.build_resources(asset.resource_defs) as resources:
        manager = getattr(resources, manager_key)
        with dg.build_output_context(
            asset_key=key,
            asset_partitions_def=asset.partitions_def,
            asset_partition_key_range=keys,
            dagster_type=output.dagster_type,
        ) as context:
            manager.handle_output(context, result.value)


def run_daily(
    defs: dg.Definitions,
    days: DailyRange,
    lap: Callable[[str], AbstractContextManager[Any]] = lambda _: nullcontext(),
    log_level: int = logging.WARNING,
) -> list[str]:
    """The floor of ``daily_job`` over ``days``: every step of ``daily_steps`` in order, each timed by
    ``lap(name)``. Directly invoked assets share one run id (Dagster's ``EPHEMERAL``); the sources' circuit
    breaker of that run id is reset first, so each call starts closed as a run does; the process that takes the
    clean steps' parts over a long range is started first, as a run starts it. Returns the step names."""
    from pipelines import gaps
    from pipelines.calendar import RANGE_END_TAG, RANGE_START_TAG
    from pipelines.runner import start_parts_process

    steps = daily_steps(defs)
    with dg.build_asset_context() as context:
        gaps.breaker_for_run(context.run_id).reset()
    start_parts_process(
        "daily_job", {RANGE_START_TAG: days.first.isoformat(), RANGE_END_TAG: days.last.isoformat()}
    )
    for asset in steps:
        with lap(step_name(asset)):
            run_daily_step(asset, days, log_level)
    return [step_name(a) for a in steps]


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
