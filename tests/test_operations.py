"""Operations: schedules target the right partitions, pools are assigned by rule, freshness checks flag late
data, and two runs writing the same warehouse at once neither fail nor duplicate anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from pipelines.automation.pools import PoolError, check_pools, pool_for
from pipelines.definitions import make_definitions
from pipelines.resources import CoinGeckoResource, WarehouseResource
from pipelines.sqlite_instance import home_instance
from pipelines.warehouse import Warehouse
from tests.conftest import emulator_env

REPO = Path(__file__).resolve().parents[1]
UTC = timezone.utc


def _requests(defs: dg.Definitions, name: str, when: datetime) -> list[dg.RunRequest]:
    schedule = defs.get_schedule_def(name)
    ctx = dg.build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def())
    data = schedule.evaluate_tick(ctx)
    return list(data.run_requests or [])


def test_daily_schedule_targets_yesterday_after_the_close() -> None:
    defs = make_definitions()
    schedule = defs.get_schedule_def("daily_schedule")
    assert schedule.cron_schedule == "45 0 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.job_name == "daily_job"
    (req,) = _requests(defs, "daily_schedule", datetime(2025, 12, 2, 0, 45, tzinfo=UTC))
    assert req.partition_key == "2025-12-01"
    assert req.tags["crypto-weekly/trigger"] == "schedule" and req.tags["crypto-weekly/layer"] == "daily"
    assert req.tags["dagster/max_retries"] == "2"
    (req,) = _requests(defs, "daily_schedule", datetime(2025, 4, 1, 0, 45, tzinfo=UTC))
    assert req.partition_key == "2025-03-31"


def test_weekly_schedule_targets_the_week_that_just_ended() -> None:
    defs = make_definitions()
    schedule = defs.get_schedule_def("weekly_schedule")
    assert schedule.cron_schedule == "30 1 * * 1" and schedule.execution_timezone == "UTC"
    assert schedule.job_name == "weekly_job"
    (req,) = _requests(defs, "weekly_schedule", datetime(2025, 11, 24, 1, 30, tzinfo=UTC))  # a Monday
    assert req.partition_key == "2025-11-17"
    assert req.tags["crypto-weekly/trigger"] == "schedule" and req.tags["crypto-weekly/layer"] == "weekly"
    (req,) = _requests(defs, "weekly_schedule", datetime(2025, 4, 7, 1, 30, tzinfo=UTC))
    assert req.partition_key == "2025-03-31"  # the first week


def test_every_asset_is_in_a_pool_by_the_rule() -> None:
    graph = make_definitions().get_repository_def().asset_graph
    pools = {
        k.to_user_string(): graph.get(k).pools
        for k in graph.get_all_asset_keys()
        if graph.get(k).is_executable
    }
    assert pools["raw_coingecko_markets"] == {"source_coingecko"}
    assert pools["raw_coingecko_market_charts"] == {"source_coingecko"}
    assert pools["raw_binance_funding"] == pools["raw_binance_klines"] == {"source_binance"}
    assert pools["raw_okx_derivatives"] == {"source_okx"}
    assert pools["coin_daily"] == {"asset_coin_daily"}
    assert pools["weekly_leverage"] == {"asset_weekly_leverage"}  # from the weekly table factory
    assert pools["weekly_report"] == {"asset_weekly_report"}
    assert all(len(p) == 1 for p in pools.values()), pools
    assert len(pools) >= 31


def test_an_asset_added_later_without_its_pool_is_refused_by_name() -> None:
    @dg.asset(group_name="raw")
    def raw_new_source(warehouse: WarehouseResource, coingecko: CoinGeckoResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"root": warehouse.root})

    @dg.asset(group_name="clean", pool="mine")
    def clean_thing() -> None:
        return None

    @dg.asset(group_name="clean", pool="asset_clean_ok")
    def clean_ok() -> None:
        return None

    assert pool_for(raw_new_source) == "source_coingecko"
    assert pool_for(clean_thing) == "asset_clean_thing"
    with pytest.raises(PoolError) as err:
        check_pools([raw_new_source, clean_thing, clean_ok])
    text = str(err.value)
    assert "raw_new_source: pool None, expected 'source_coingecko'" in text
    assert "clean_thing: pool 'mine', expected 'asset_clean_thing'" in text
    assert "clean_ok" not in text
    assert check_pools([clean_ok]) == [clean_ok]
    with dg.instance_for_test() as instance:  # a declared pool is a plain public asset: it runs as any other
        assert dg.materialize([clean_ok], instance=instance).success


def _check_job(defs: dg.Definitions, key: str):
    check = dg.AssetCheckKey(dg.AssetKey(key), "freshness_check")
    job = dg.define_asset_job("freshness_only", selection=dg.AssetSelection.checks(check))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("freshness_only"), check


@pytest.mark.parametrize(
    ("key", "partition", "now", "passed"),
    [
        ("coin_daily", "2025-12-01", datetime(2025, 12, 2, 2, 30, tzinfo=UTC), True),  # yesterday stored
        ("coin_daily", "2025-11-30", datetime(2025, 12, 2, 2, 30, tzinfo=UTC), False),  # yesterday late
        ("weekly_report", "2025-11-17", datetime(2025, 11, 24, 3, 30, tzinfo=UTC), True),
        (
            "weekly_report",
            "2025-11-10",
            datetime(2025, 11, 24, 3, 30, tzinfo=UTC),
            False,
        ),  # last week missing
    ],
)
def test_freshness_checks_flag_late_partitions(key: str, partition: str, now: datetime, passed: bool) -> None:
    job, check = _check_job(make_definitions(), key)
    with dg.instance_for_test() as instance:
        with freeze_time(now.replace(hour=0, minute=50)):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))
        with freeze_time(now):
            result = job.execute_in_process(instance=instance, raise_on_error=False)
        evaluations = result.get_asset_check_evaluations()
    assert [e.asset_check_key for e in evaluations] == [check]
    assert evaluations[0].passed is passed
    assert evaluations[0].severity == dg.AssetCheckSeverity.WARN


def test_freshness_sensor_runs_by_default() -> None:
    sensor = make_definitions().get_sensor_def("freshness_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_jobs_leave_freshness_to_the_sensor_and_keep_every_other_check() -> None:
    defs = make_definitions()
    freshness = {c for c in defs.resolve_asset_graph().asset_check_keys if c.name == "freshness_check"}
    assert len(freshness) >= 20  # every clean daily table and every weekly output has one
    for name, groups in (("daily_job", {"raw", "clean"}), ("weekly_job", {"weekly", "report"})):
        graph = defs.resolve_job_def(name).asset_layer.asset_graph
        in_job = set(graph.asset_check_keys)
        assert not in_job & freshness, name
        # every other check of the job's assets runs with them (the claim check, coverage, ranges, quality)
        expected = {
            c
            for c in defs.resolve_asset_graph().asset_check_keys
            if c not in freshness
            and defs.resolve_assets_def(c.asset_key).group_names_by_key.get(c.asset_key) in groups
        }
        assert expected and in_job == expected, name
    assert dg.AssetCheckKey(dg.AssetKey("weekly_report"), "report_claims_match_tables") in set(
        defs.resolve_job_def("weekly_job").asset_layer.asset_graph.asset_check_keys
    )


CONCURRENT_RUN = textwrap.dedent(
    """
    import faulthandler, sys, warnings
    faulthandler.dump_traceback_later(float(sys.argv[3]), exit=True)  # a hang prints every thread's stack
    warnings.simplefilter("ignore")
    import dagster as dg
    from pipelines.runner import RunFailed, run_days
    try:
        run_days(sys.argv[1], sys.argv[2], dg.DagsterInstance.get(), trigger="test")
    except RunFailed as exc:
        sys.exit(f"RESULT False {exc}")
    print("RESULT True")
    """
)


HANG_AFTER_S = 300  # alone the two runs take ~15 s; a run still going after this prints its stacks and exits


@pytest.mark.slow
def test_two_runs_at_once_on_one_warehouse(fresh_emulator, tmp_path: Path) -> None:
    """Two daily runs over the same days start together (as a backfill and the scheduled run would), through the
    runner the command line uses: both succeed, the pools make them take turns (the pool keeper repairing any
    lost wake-up, tests/test_pool_wakeups.py), nothing is pulled twice and the lake has no duplicate rows."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    wh_dir = tmp_path / "warehouse"
    env = {**os.environ, **emulator_env(fresh_emulator, wh_dir), "DAGSTER_HOME": str(home)}
    # Create the instance's storage first: two processes migrating a fresh DAGSTER_HOME at once corrupt it
    # ("more than one head"); the README says to do the same before starting two writers on a new home.
    with home_instance(home):
        pass
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_RUN, "2025-11-20", "2025-11-23", str(HANG_AFTER_S)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=HANG_AFTER_S + 60)[0] for p in procs]
    finally:
        for p in procs:  # a run still waiting (on a pool slot, say) is not left running after the test
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
        assert "Could not set lock" not in out
    wh = Warehouse(wh_dir)
    dups = wh.query("SELECT date, coin_id, count(*) AS n FROM coin_daily GROUP BY ALL HAVING n > 1")
    assert dups.is_empty(), dups
    days = wh.query("SELECT DISTINCT date FROM coin_daily ORDER BY date")["date"].to_list()
    assert [d.isoformat() for d in days] == ["2025-11-20", "2025-11-21", "2025-11-22", "2025-11-23"]
    # one snapshot, one pull per coin: the second run found the first one's responses stored
    snapshots = list((wh.raw_dir / "coingecko" / "markets").glob("snapshot=*"))
    assert len(snapshots) == 1
    per_coin = [
        len([f for f in d.glob("*.json") if not f.name.endswith(".meta.json")])
        for d in (wh.raw_dir / "coingecko" / "market_chart_range").iterdir()
    ]
    assert per_coin and set(per_coin) == {1}
    with home_instance(home) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)


@pytest.fixture
def catch_up(monkeypatch: pytest.MonkeyPatch):
    import pipelines.automation.sensors as sensors

    def evaluate(instance: dg.DagsterInstance, now: datetime):
        monkeypatch.setattr(sensors, "_now", lambda: now)
        return sensors.weekly_catch_up_sensor(dg.build_sensor_context(instance=instance))

    return evaluate


def test_catch_up_sensor_waits_for_late_days_then_runs_the_week_once(catch_up) -> None:
    monday = datetime(2025, 11, 24, 2, 10, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        early = catch_up(instance, datetime(2025, 11, 24, 1, 40, tzinfo=UTC))
        assert isinstance(early, dg.SkipReason) and "schedule runs it first" in early.skip_message

        instance.report_runless_asset_event(dg.AssetMaterialization("coin_daily", partition="2025-11-16"))
        late = catch_up(instance, monday)
        assert isinstance(late, dg.SkipReason)
        assert late.skip_message == "week 2025-11-17: inputs late: coin_daily has no partition 2025-11-23"

        instance.report_runless_asset_event(dg.AssetMaterialization("coin_daily", partition="2025-11-23"))
        request = catch_up(instance, monday)
        assert isinstance(request, dg.RunRequest) and request.partition_key == "2025-11-17"
        assert request.tags["crypto-weekly/trigger"] == "catch_up_sensor"
        assert catch_up(instance, monday).run_key == request.run_key  # the same inputs: the same key, one run

        instance.report_runless_asset_event(dg.AssetMaterialization("weekly_report", partition="2025-11-17"))
        done = catch_up(instance, monday)
        assert isinstance(done, dg.SkipReason) and done.skip_message == "week 2025-11-17 is reported"


def test_a_range_of_days_plans_once_per_asset_and_keeps_each_days_status() -> None:
    """``run_days`` over several days turns on Dagster's planned-event subset for that run only: one planned
    event per asset instead of one per asset and day, every day still recorded as materialized, and the
    environment left as it was."""
    import os

    from pipelines.calendar import DAILY
    from pipelines.runner import PLANNED_SUBSET_ENV, run_days

    @dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
    def day_count(context) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})

    defs = dg.Definitions(assets=[day_count], jobs=[dg.define_asset_job("daily_job", [day_count])])
    assert PLANNED_SUBSET_ENV not in os.environ
    with dg.instance_for_test() as instance:
        run_id = run_days("2025-11-01", "2025-11-05", instance, defs=defs)
        planned = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
        done = instance.get_materialized_partitions(dg.AssetKey("day_count"))
    assert PLANNED_SUBSET_ENV not in os.environ
    assert len(planned) == 1
    assert done == {f"2025-11-0{d}" for d in range(1, 6)}


def test_the_range_run_environment_is_set_for_a_range_only_and_never_over_the_callers_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``range_run_environment``, which the runner, the bench and the tests' range runs share: one planned event
    per asset and materializations stored in batches, set inside the block for range tags whose ends differ, not
    for one day or a partition key, not over a value the caller set."""
    import os

    from pipelines.runner import (
        EVENT_BATCH_ENV,
        PLANNED_SUBSET_ENV,
        RANGE_END_TAG,
        RANGE_START_TAG,
        range_run_environment,
    )

    levers = (PLANNED_SUBSET_ENV, EVENT_BATCH_ENV)
    for var in levers:
        monkeypatch.delenv(var, raising=False)
    cases = {
        "range": ({RANGE_START_TAG: "2025-11-01", RANGE_END_TAG: "2025-11-05"}, ("1", "100")),
        "one day": ({RANGE_START_TAG: "2025-11-01", RANGE_END_TAG: "2025-11-01"}, (None, None)),
        "no range": ({"dagster/partition": "2025-11-01"}, (None, None)),
    }
    for name, (tags, inside) in cases.items():
        with range_run_environment(tags):
            assert tuple(os.environ.get(v) for v in levers) == inside, name
        assert not any(v in os.environ for v in levers), name
    monkeypatch.setenv(PLANNED_SUBSET_ENV, "0")
    monkeypatch.setenv(EVENT_BATCH_ENV, "0")
    with range_run_environment(cases["range"][0]):
        assert tuple(os.environ[v] for v in levers) == ("0", "0")
    assert tuple(os.environ[v] for v in levers) == ("0", "0")
    assert os.environ[PLANNED_SUBSET_ENV] == "0"
