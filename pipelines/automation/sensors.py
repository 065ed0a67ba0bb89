"""``weekly_catch_up_sensor``: the week that just ended gets its report even when its days came in late.

The Monday 01:30 schedule runs the week once. If Sunday's close was not in the lake by then (a slow or failed
00:45 daily run, a late CoinGecko point), that run fails on the missing day. From Monday 02:00 UTC this sensor
checks, every 10 minutes, the latest complete week:

* report materialized -> skip ("reported");
* a run for the week queued or in progress -> skip;
* its open or close day missing from ``coin_daily`` -> skip with the reason ("inputs late: ..."), visible in the
  sensor's tick history (and the freshness checks fail on the asset pages);
* otherwise -> request ``weekly_job`` for the week. The run key includes the close day's materialization, so a
  new daily materialization allows another try, and the same one never launches twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from pipelines.automation.tags import LAYER_TAG, TRIGGER_TAG
from pipelines.calendar import latest_complete_week, utc_midnight, week_bounds, week_close_days
from pipelines.settings import automation_running

CATCH_UP_FROM = timedelta(hours=2)  # after the Monday 01:30 schedule has had its chance
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _latest_storage_id(instance: dg.DagsterInstance, key: str, partition: str) -> int | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1
    ).records
    return records[0].storage_id if records else None


@dg.sensor(
    name="weekly_catch_up_sensor",
    job_name="weekly_job",
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING if automation_running() else dg.DefaultSensorStatus.STOPPED,
    description="Runs the week that just ended once its days are in the lake, if the Monday schedule could not.",
)
def weekly_catch_up_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    now = _now()
    week = latest_complete_week(now)
    _, week_end = week_bounds(week)
    if now < utc_midnight(week_end) + CATCH_UP_FROM:
        return dg.SkipReason(f"week {week}: the Monday schedule runs it first; catching up from 02:00 UTC")
    instance = context.instance
    if _latest_storage_id(instance, "weekly_report", week) is not None:
        return dg.SkipReason(f"week {week} is reported")
    in_flight = instance.get_runs(
        dg.RunsFilter(job_name="weekly_job", tags={"dagster/partition": week}, statuses=IN_FLIGHT), limit=1
    )
    if in_flight:
        return dg.SkipReason(
            f"week {week}: run {in_flight[0].run_id[:8]} is {in_flight[0].status.value.lower()}"
        )
    ids = {
        d.isoformat(): _latest_storage_id(instance, "coin_daily", d.isoformat())
        for d in week_close_days(week)
    }
    missing = [d for d, i in ids.items() if i is None]
    if missing:
        return dg.SkipReason(f"week {week}: inputs late: coin_daily has no partition {', '.join(missing)}")
    return dg.RunRequest(
        partition_key=week,
        run_key=f"{week}:{max(i for i in ids.values() if i is not None)}",
        tags={TRIGGER_TAG: "catch_up_sensor", LAYER_TAG: "weekly"},
    )
