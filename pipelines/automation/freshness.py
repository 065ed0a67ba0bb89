"""Late data, visible in the UI: freshness checks on the daily clean tables and on the weekly outputs.

* every daily-partitioned asset of the ``clean`` group must have **yesterday's** partition by **02:00 UTC**
  (the schedule starts at 00:45; an hour and a quarter of slack);
* every weekly-partitioned asset of the ``weekly`` and ``report`` groups must have **last week's** partition by
  **Monday 03:00 UTC** (the schedule starts at 01:30).

A missing partition past its deadline makes the check fail (severity WARN) on the asset's page and in the
asset graph. ``freshness_sensor`` (running by default under the daemon) evaluates the checks when they are due,
so nobody has to remember to. The checks are derived from the assets' groups and partitions, so assets added
to those groups later are covered too.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from pipelines.automation.tags import TRIGGER_TAG
from pipelines.calendar import DAILY, WEEKLY
from pipelines.settings import automation_running

DAILY_DEADLINE_CRON = "0 2 * * *"  # yesterday's partition by 02:00 UTC
WEEKLY_DEADLINE_CRON = "0 3 * * 1"  # last week's partition by Monday 03:00 UTC


def _keys(
    assets: Sequence[object], groups: set[str], partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetKey]:
    keys = []
    for a in assets:
        if not isinstance(a, dg.AssetsDefinition) or not a.is_executable:
            continue
        if a.partitions_def != partitions_def:
            continue
        keys += [k for k in a.keys if a.group_names_by_key.get(k) in groups]
    return sorted(keys, key=lambda k: k.to_user_string())


def build_freshness(assets: Sequence[object]) -> tuple[list[dg.AssetChecksDefinition], dg.SensorDefinition]:
    checks = [
        *dg.build_time_partition_freshness_checks(
            assets=_keys(assets, {"clean"}, DAILY), deadline_cron=DAILY_DEADLINE_CRON, timezone="UTC"
        ),
        *dg.build_time_partition_freshness_checks(
            assets=_keys(assets, {"weekly", "report"}, WEEKLY),
            deadline_cron=WEEKLY_DEADLINE_CRON,
            timezone="UTC",
        ),
    ]
    sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=checks,
        name="freshness_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING
        if automation_running()
        else dg.DefaultSensorStatus.STOPPED,
        tags={TRIGGER_TAG: "freshness_sensor"},
    )
    return checks, sensor
