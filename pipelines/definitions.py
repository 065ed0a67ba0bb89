"""The code location: every asset, check, job, schedule, sensor and resource, in one ``Definitions``.

* ``daily_job``: groups ``raw`` and ``clean`` (the registry snapshot, the raw pulls, the clean daily tables).
  Daily-partitioned; those assets have a single-run backfill policy, so any range of days is **one run**.
* ``weekly_job``: groups ``weekly`` and ``report`` (the weekly tables and the report). Weekly-partitioned,
  one run per week (the weekly assets compute one ``context.partition_key`` each).
* resources: the warehouse and the source clients (``pipelines/resources.py``), and ``lake_io_manager``
  (``assets/_lake_io.py``), the IO manager every clean and weekly asset hands its table's partitions to: it writes
  them into the warehouse's lake in the same step, with their metadata; no step loads a value through it.
* schedules (``pipelines/automation/schedules.py``), the weekly catch-up sensor (``pipelines/automation/sensors.py``), freshness checks
  and their sensor (``pipelines/automation/freshness.py``; the jobs leave those checks to the sensor), and concurrency
  pools declared on each asset and checked against one rule, with the sensor that repairs Dagster's lost slot
  wake-ups (``pipelines/automation/pools.py``).

Assets added to those groups by anyone join the jobs, the pools and the freshness checks without edits here.
"""

from __future__ import annotations

import atexit
import gc

import dagster as dg

import assets
from assets._lake_io import LAKE_IO_MANAGER, LakeIOManager
from pipelines.automation.freshness import build_freshness
from pipelines.automation.pools import check_pools, pool_keeper_sensor
from pipelines.automation.schedules import build_schedules
from pipelines.automation.sensors import weekly_catch_up_sensor
from pipelines.automation.tags import LAYER_TAG
from pipelines.resources import build_resources
from pipelines.workers import build_executor

all_assets = check_pools(dg.load_assets_from_package_module(assets))
all_checks = dg.load_asset_checks_from_package_module(assets)
freshness_checks, freshness_sensor = build_freshness(all_assets)

# Freshness checks compare the lake with the wall clock; the freshness sensor evaluates them when they are due.
# Left in the jobs they would run (and, mid-backfill, fail) in every run, for nothing: a backfilled week says
# nothing about whether the latest week is late.
_FRESHNESS = dg.AssetSelection.checks(*freshness_checks)

# Everything a day needs: the registry snapshot, the raw pulls and the clean tables.
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.groups("raw", "clean") - _FRESHNESS,
    description="Pull and clean market data for a day (or, as one run, a range of days).",
    tags={LAYER_TAG: "daily"},
)
# Everything a week needs once its days are in the lake: the weekly tables and the report.
weekly_job = dg.define_asset_job(
    "weekly_job",
    selection=dg.AssetSelection.groups("weekly", "report") - _FRESHNESS,
    description="Compute a week's tables and render its report.",
    tags={LAYER_TAG: "weekly"},
)
schedules = build_schedules(daily_job, weekly_job)


def make_definitions() -> dg.Definitions:
    """Build the Definitions; resources read the environment at this moment (``dg.EnvVar`` where set)."""
    resources: dict[str, dg.ConfigurableResource | dg.ConfigurableIOManager] = {**build_resources()}
    resources[LAKE_IO_MANAGER] = LakeIOManager(warehouse=resources["warehouse"])
    return dg.Definitions(
        assets=all_assets,
        asset_checks=[*all_checks, *freshness_checks],
        jobs=[daily_job, weekly_job],
        schedules=schedules,
        sensors=[freshness_sensor, weekly_catch_up_sensor, pool_keeper_sensor],
        resources=resources,
        # Steps are short and mostly wait on I/O; on two cores a process per step (the multiprocess default)
        # cost more than it saved: a weekly run took 112 s with it (three steps, two checks), see README.
        # CRYPTO_WEEKLY_EXECUTOR=celery sends each step to the Celery workers instead (pipelines/workers.py).
        executor=build_executor(),
    )


defs = make_definitions()

# Everything alive now (the imported modules, the code location's definitions, Dagster's own objects) lives as long
# as the process: moved out of the collector's view so that a full collection walks only what runs create. Given
# back to the collector at exit, so that the interpreter's last collection frees them as it would have (DuckDB's
# bindings report every object of theirs still alive then as a leak).
gc.freeze()
atexit.register(gc.unfreeze)
