"""When the jobs run by themselves (the daemon evaluates these; ``dagster dev`` starts it).

* ``daily_schedule``: every day at 00:45 UTC, ``daily_job`` for **yesterday's** partition. CoinGecko's daily
  point for day D is stamped D+1 00:00 and lands around 00:35, so at 00:45 yesterday's close is there.
* ``weekly_schedule``: every Monday at 01:30 UTC, ``weekly_job`` for the week that **just ended** (the Monday
  seven days earlier): its last close (Sunday's) came in with the 00:45 daily run.

A failed scheduled run is retried twice from the failed step (``RETRIES``). Both come from
``build_schedule_from_partitioned_job``, which targets the latest *complete* partition at the
scheduled time, and both start running (``DefaultScheduleStatus.RUNNING``) as soon as the daemon is up, unless
``CRYPTO_WEEKLY_AUTOMATION=stopped`` (``pipelines.settings.automation_running``).
"""

from __future__ import annotations

import dagster as dg

from pipelines.automation.tags import LAYER_TAG, TRIGGER_TAG
from pipelines.settings import automation_running

# Retried twice by the daemon (run_retries in dagster.yaml), from the failed step.
RETRIES = {"dagster/max_retries": "2", "dagster/retry_strategy": "FROM_FAILURE"}


def _schedule(job, layer: str, description: str, **cron) -> dg.ScheduleDefinition:
    """``<layer>_schedule``: ``job``'s latest complete partition at the time ``cron`` names (hour, minute and
    day-of-week arguments of ``build_schedule_from_partitioned_job``), tagged, retried and running."""
    return dg.build_schedule_from_partitioned_job(
        job,
        name=f"{layer}_schedule",
        description=description,
        tags={TRIGGER_TAG: "schedule", LAYER_TAG: layer, **RETRIES},
        default_status=dg.DefaultScheduleStatus.RUNNING
        if automation_running()
        else dg.DefaultScheduleStatus.STOPPED,
        **cron,
    )


def build_schedules(daily_job, weekly_job) -> list:
    daily = _schedule(
        daily_job,
        "daily",
        "Yesterday's raw pulls and clean tables, each day at 00:45 UTC (after CoinGecko's ~00:35 close).",
        hour_of_day=0,
        minute_of_hour=45,
    )
    weekly = _schedule(
        weekly_job,
        "weekly",
        "The week that just ended (tables and report), each Monday at 01:30 UTC.",
        day_of_week=1,
        hour_of_day=1,
        minute_of_hour=30,
    )
    return [daily, weekly]
