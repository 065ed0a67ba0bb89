"""The distributed stack (pipelines/stack.py) for one week: PostgreSQL instance, daemon, two Celery workers, the
warehouse on the S3 server.

One stack serves the module: the week's daily run on both workers, with PostgreSQL restarted during it (the run
completes, or fails with a clear message and a re-run completes), then its weekly run during which one worker
is SIGKILLed (the run ends on the other worker, or fails with a clear message and a re-run completes), then the
stack is closed. The lake and report must equal the in-process run of the same week and clock
(``week_from_november``, tests/conftest.py), and no process the stack started may be left.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines import settings, workers
from pipelines.automation.tags import TRIGGER_TAG
from pipelines.runner import RANGE_END_TAG, RANGE_START_TAG, RunFailed
from pipelines.services import ServiceUnavailable
from pipelines.warehouse import Warehouse, warehouse_path
from tests._reliability import tree_hashes
from tests.conftest import TEST_NOW

# The stack fixture (servers, daemon, two workers, a daily and a weekly run with their faults, the lake on S3)
# takes about 300 s alone; on two cores shared with the rest of the suite it passed the default 600 s once.
# The first test using it carries its setup, so the module's limit is 1,500 s.
pytestmark = pytest.mark.timeout(1500)

WEEK = "2025-11-17"
FIRST_DAY = "2025-11-01"
# Redis hands the step of the killed worker to the other one this long after the worker took it, plus at most
# workers.restore_sweep_seconds (10 s). Longer than any step here (the slowest, the daily run's market charts and
# coin_daily on S3, about 20 s alone): a step still running past it would be handed to a second worker.
VISIBILITY_TIMEOUT = 45


def test_production_config_equals_the_embedded_one_but_for_storage() -> None:
    embedded = yaml.safe_load((settings.PROJECT_ROOT / ".dagster_home" / "dagster.yaml").read_text())
    production = yaml.safe_load(workers.PRODUCTION_CONFIG.read_text())
    own = {"storage", "local_artifact_storage", "compute_logs"}
    assert {k: v for k, v in production.items() if k not in own} == {
        k: v for k, v in embedded.items() if k not in own
    }
    assert {"run_coordinator", "concurrency", "run_monitoring", "run_retries"} <= set(production)
    db = production["storage"]["postgres"]["postgres_db"]
    assert {k: v["env"] for k, v in db.items() if isinstance(v, dict)} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }


def test_executor_settings_fail_in_one_line() -> None:
    with pytest.raises(settings.SettingsError, match="CRYPTO_WEEKLY_EXECUTOR='dask' is not valid"):
        settings.validate({"CRYPTO_WEEKLY_EXECUTOR": "dask"})
    with pytest.raises(settings.SettingsError, match="needs CRYPTO_WEEKLY_CELERY_BROKER"):
        settings.validate({"CRYPTO_WEEKLY_EXECUTOR": "celery"})
    with pytest.raises(settings.SettingsError, match="CRYPTO_WEEKLY_CELERY_BROKER='amqp://x' is not valid"):
        settings.validate({"CRYPTO_WEEKLY_EXECUTOR": "celery", "CRYPTO_WEEKLY_CELERY_BROKER": "amqp://x"})
    env = {"CRYPTO_WEEKLY_EXECUTOR": "celery", "CRYPTO_WEEKLY_CELERY_BROKER": "redis://127.0.0.1:1/0"}
    source = workers.celery_config(env)["config_source"]
    assert source["task_acks_late"] and source["task_reject_on_worker_lost"]
    assert source["worker_prefetch_multiplier"] == 1
    assert workers.executor_name({}) == "in_process"


def test_a_lost_workers_step_is_looked_for_within_a_quarter_of_the_timeout() -> None:
    """kombu's Redis transport looks for tasks unacknowledged past the visibility timeout every
    ``unacked_restore_interval`` seconds but scans only every ``unacked_restore_throttle``-th time (10 and 10 by
    default: a lost worker's step waited up to 100 s more); the workers scan at every look, every quarter of the
    timeout, at most every 10 s."""
    from kombu.transport.redis import Channel

    def options(timeout: str | None) -> dict:
        env = {"CRYPTO_WEEKLY_EXECUTOR": "celery", "CRYPTO_WEEKLY_CELERY_BROKER": "redis://127.0.0.1:1/0"}
        if timeout is not None:
            env["CRYPTO_WEEKLY_CELERY_VISIBILITY_TIMEOUT"] = timeout
        return workers.celery_config(env)["config_source"]["broker_transport_options"]

    assert options("20") == {
        "visibility_timeout": 20,
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
    }
    assert options(None)["unacked_restore_interval"] == 10  # the default hour: every 10 s
    assert options("2")["unacked_restore_interval"] == 1
    # the installed kombu reads both options from the transport options (an unknown one would be ignored)
    assert {"unacked_restore_interval", "unacked_restore_throttle"} <= set(Channel.from_transport_options)


def test_kubernetes_executor_is_dagster_k8s_or_one_clear_line() -> None:
    """k8s_job selects dagster-k8s's k8s_job_executor (the optional ``kubernetes`` extra, installed in the image):
    with it installed, that executor; without it, one line naming the extra."""
    env = {"CRYPTO_WEEKLY_EXECUTOR": "k8s_job"}
    assert workers.executor_name(env) == "k8s_job"
    try:
        import dagster_k8s
    except ImportError:
        with pytest.raises(settings.SettingsError, match="needs dagster-k8s.*--extra kubernetes"):
            workers.build_executor(env)
    else:
        assert workers.build_executor(env) is dagster_k8s.k8s_job_executor


def test_values_go_to_the_lake_io_manager_in_their_step_and_no_step_loads_one() -> None:
    """Steps run on different machines: a value stored by Dagster's default IO manager would sit on one worker's
    disk, and an input loaded through an IO manager would have to find it there. Every clean and weekly asset hands
    its table's partitions to the lake IO manager, which writes them into the warehouse in the same step; every
    other asset returns a MaterializeResult without a value; no input is loaded through any IO manager (a
    dependency is a ``deps`` entry, read from the warehouse). ``tests/test_lake_io.py`` holds the same of the
    events of a pipeline run."""
    from assets._lake_io import LAKE_IO_MANAGER, LAKE_PARTITIONS, LakeIOManager
    from pipelines.definitions import defs
    from pipelines.schemas import TABLES

    assert isinstance(defs.resources[LAKE_IO_MANAGER], LakeIOManager)
    lake, other = set(), set()
    for name in ("daily_job", "weekly_job"):
        job = defs.resolve_job_def(name)
        for node in job.graph.node_defs:
            for inp in node.input_defs:
                assert inp.dagster_type.is_nothing, (
                    f"{name}: {node.name} reads {inp.name} through an IO manager"
                )
        graph = job.asset_layer.asset_graph
        for key in job.asset_layer.selected_asset_keys:
            asset = graph.get(key).assets_def
            out = asset.op.output_def_named(asset.get_output_name_for_asset_key(key))
            what = (out.dagster_type.key, out.io_manager_key)
            if key.to_user_string() in TABLES:
                assert what == (LAKE_PARTITIONS.key, LAKE_IO_MANAGER), f"{key.to_user_string()}: {what}"
                lake.add(key.to_user_string())
            else:
                assert out.dagster_type.is_nothing or out.dagster_type.is_any, (
                    f"{key.to_user_string()}: {what}"
                )
                other.add(key.to_user_string())
    assert {"coin_daily", "funding_rates", "macro_observations", "weekly_volume"} <= lake
    assert {"raw_coingecko_markets", "weekly_report"} <= other


@dataclass
class Distributed:
    warehouse: str
    lake: dict[str, str]  # lake file -> sha256, read from the object store before the stack closed
    report: str  # the report's markdown, read from the object store
    daily_workers: dict[str, str]
    weekly_workers: dict[str, str]
    killed_step: str | None
    weekly_outcome: str
    restart_outcome: str
    restarted_mid_run: bool
    seconds: dict[str, float] = field(default_factory=dict)
    leftover: list[int] = field(default_factory=list)
    scratch_used: dict[str, bool] = field(default_factory=dict)
    manifest_mismatches: list[str] = field(default_factory=list)  # manifest inputs whose sha256 is not on S3


@pytest.fixture(scope="module")
def distributed(tmp_path_factory: pytest.TempPathFactory) -> Distributed:
    from pipelines.stack import alive, descendants, stack

    workdir = tmp_path_factory.mktemp("stack")
    t0 = time.monotonic()
    # this process's own children before the stack (a pool of processes an earlier test's range run keeps for
    # the life of this process, pipelines/week_processes.py) are not the stack's to stop
    kept_before = descendants(os.getpid())
    seen: set[int] = set()
    try:
        with stack(
            workdir=workdir,
            now=TEST_NOW,
            # runs are submitted by hand at the emulator's clock: no schedule or sensor on the wall clock joins them
            extra_env={
                "CRYPTO_WEEKLY_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
                "CRYPTO_WEEKLY_AUTOMATION": "stopped",
            },
        ) as st:
            up = time.monotonic() - t0
            seen |= descendants(os.getpid())
            # the daily run: PostgreSQL restarted as soon as one of its steps has started on a worker
            t1 = time.monotonic()
            daily = st.submit(
                "daily_job", {RANGE_START_TAG: FIRST_DAY, RANGE_END_TAG: "2025-11-23", TRIGGER_TAG: "test"}
            )
            deadline = time.monotonic() + 300
            while not st.step_workers(daily) and time.monotonic() < deadline:
                time.sleep(0.2)
            before = st.instance.get_run_by_id(daily)
            mid_run = before is not None and not before.is_finished
            old_pid = st.postgres.proc.pid if st.postgres.proc else None
            st.postgres.restart()
            restarted = st.postgres.proc is not None and st.postgres.proc.pid != old_pid
            try:
                st.wait(daily, "daily pulls")
                restart_outcome = "completed"
            except RunFailed as exc:
                restart_outcome = f"failed: {exc}; re-run"
                assert str(exc).startswith("daily pulls failure"), exc
                daily = st.run_days(FIRST_DAY, "2025-11-23")
            daily_s = time.monotonic() - t1
            seen |= descendants(os.getpid())
            # the weekly run: SIGKILL worker-1 as soon as it executes one of the run's steps
            t2 = time.monotonic()
            weekly = st.submit("weekly_job", {"dagster/partition": WEEK})
            killed = None
            deadline = time.monotonic() + 300
            while killed is None and time.monotonic() < deadline:
                seen |= descendants(os.getpid())
                on_1 = [s for s, w in st.step_workers(weekly).items() if w == "worker-1"]
                run = st.instance.get_run_by_id(weekly)
                if on_1:
                    killed = on_1[0]
                    st.workers["worker-1"].kill()
                elif run is not None and run.is_finished:
                    break
                time.sleep(0.2)
            try:
                st.wait(weekly, f"week {WEEK}")
                outcome = "completed on the other worker"
            except RunFailed as exc:
                outcome = f"failed: {exc}; re-run"
                assert str(exc).startswith(f"week {WEEK} failure"), exc
                report_dir, weekly = st.run_weekly(WEEK)
            weekly_s = time.monotonic() - t2
            seen |= descendants(os.getpid())
            records = st.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("weekly_report"), asset_partitions=[WEEK]),
                limit=1,
            ).records
            report = warehouse_path(records[0].asset_materialization.metadata["markdown_path"].value)  # type: ignore[union-attr]
            # the manifest's paths are warehouse-relative and its hashes those of the objects on S3
            wh = Warehouse(st.warehouse)
            manifest = json.loads((report.parent / "manifest.json").read_text())
            manifest_mismatches = [
                e["path"]
                for e in manifest["inputs"]
                if hashlib.sha256((wh.root / e["path"]).read_bytes()).hexdigest() != e["sha256"]
            ]
            result = Distributed(
                warehouse=st.warehouse,
                lake=tree_hashes(Warehouse(st.warehouse).root, "lake"),
                report=report.read_text(),
                daily_workers=st.step_workers(daily),
                weekly_workers=st.step_workers(weekly),
                killed_step=killed,
                weekly_outcome=outcome,
                restart_outcome=restart_outcome,
                restarted_mid_run=mid_run and restarted,
                seconds={
                    "stack_up": up,
                    "daily_with_postgres_restart": daily_s,
                    "weekly_with_kill": weekly_s,
                },
                scratch_used={n: any((workdir / n / "home" / "storage").rglob("*.out")) for n in st.workers},
                manifest_mismatches=manifest_mismatches,
            )
    except ServiceUnavailable as exc:
        pytest.skip(f"the distributed stack needs a server that is not installed: {exc}")
    result.seconds["total"] = time.monotonic() - t0
    time.sleep(1)
    result.leftover = sorted(p for p in seen - kept_before if alive(p))
    print(
        f"\ndistributed stack: {result.seconds}; weekly run {outcome}, killed during {killed}; "
        f"with PostgreSQL restarted: {restart_outcome}"
    )
    return result


@pytest.mark.slow
def test_steps_ran_on_both_workers(distributed: Distributed) -> None:
    assert set(distributed.daily_workers.values()) == {"worker-1", "worker-2"}, distributed.daily_workers
    assert "coin_daily" in distributed.daily_workers and "weekly_report" in distributed.weekly_workers
    # each worker captured its steps' output under its own DAGSTER_HOME, not the daemon's
    assert all(distributed.scratch_used.values()), distributed.scratch_used


@pytest.mark.slow
def test_killed_worker_loses_nothing(distributed: Distributed) -> None:
    assert distributed.killed_step is not None, "worker-1 executed none of the weekly run's steps"
    # every step of the weekly run ended on the surviving worker (the killed one's included)
    assert distributed.weekly_workers[distributed.killed_step] == "worker-2", distributed.weekly_outcome


@pytest.mark.slow
def test_postgres_restart_mid_run_loses_nothing(distributed: Distributed) -> None:
    """PostgreSQL was restarted (a new server process) while the daily run was executing; the run completed
    or failed with its steps' errors and a re-run completed (the fixture fails otherwise), and the lake equals
    the clean run's (test_lake_and_report_equal_the_in_process_run)."""
    assert distributed.restarted_mid_run
    assert distributed.restart_outcome == "completed" or distributed.restart_outcome.startswith(
        "failed: daily pulls failure"
    ), distributed.restart_outcome


@pytest.mark.slow
def test_lake_and_report_equal_the_in_process_run(distributed: Distributed, week_from_november) -> None:
    """Same emulator clock and history as the in-process run: the same lake files, byte for byte (nothing lost
    or duplicated by the killed worker), and the same report."""
    assert distributed.warehouse.startswith("s3://"), distributed.warehouse
    lake = distributed.lake
    embedded = {k: v for k, v in week_from_november.hashes.items() if k.startswith("lake/")}
    assert sorted(lake) == sorted(embedded)
    differ = [k for k in lake if lake[k] != embedded[k]]
    assert not differ, differ[:10]
    embedded_report = week_from_november.run.markdown.read_text()
    assert distributed.report == embedded_report
    assert distributed.manifest_mismatches == []


@pytest.mark.slow
def test_no_process_left(distributed: Distributed) -> None:
    assert distributed.leftover == [], [
        Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in distributed.leftover
    ]


def test_worker_without_a_broker_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from pipelines.cli import main

    monkeypatch.delenv("CRYPTO_WEEKLY_CELERY_BROKER", raising=False)
    for name in workers.PG_VARIABLES:
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("WAREHOUSE_DIR", str(tmp_path / "wh"))
    result = CliRunner().invoke(main, ["worker", "--name", "w1", "--dir", str(tmp_path / "w1")])
    assert result.exit_code == 2, result.output
    assert "CRYPTO_WEEKLY_CELERY_BROKER" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_interrupted_demo_leaves_no_process(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) while ``crypto-weekly demo-distributed`` runs its first run: exit 130 and none of the
    processes it started (servers, daemon, workers, the run's process) is left."""
    import signal
    import subprocess
    import sys

    from pipelines.services import _postgres_bin_dirs, find_binary
    from pipelines.stack import alive, descendants

    try:
        find_binary("redis-server", "redis-server")
        find_binary("postgres", "postgresql", _postgres_bin_dirs())
        find_binary("moto_server", "moto[server] from PyPI (uv sync)", (str(Path(sys.executable).parent),))
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    err = tmp_path / "stderr"
    env = {**os.environ, "PYTHONPATH": str(settings.PROJECT_ROOT), "WAREHOUSE_DIR": str(tmp_path / "wh")}
    with open(err, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "demo-distributed", "--week", WEEK],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=env,
            cwd=tmp_path,
        )
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while "stack up" not in err.read_text(errors="replace"):
            assert proc.poll() is None, err.read_text()[-3000:]
            assert time.monotonic() < deadline, err.read_text()[-3000:]
            seen |= descendants(proc.pid)
            time.sleep(0.5)
        time.sleep(5)  # the first run is queued and being launched
        seen |= descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Interrupted" in err.read_text()
    # the client's code server logs to the stack's directory, not the terminal
    assert "dagster.code_server" not in err.read_text()
    assert len(seen) >= 5  # PostgreSQL, Redis, the S3 server, the daemon, the workers
    time.sleep(1)
    left = [p for p in seen if alive(p)]
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in left]


def test_worker_without_the_instance_variables_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from pipelines.cli import main

    for name in workers.PG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRYPTO_WEEKLY_CELERY_BROKER", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("WAREHOUSE_DIR", str(tmp_path / "wh"))
    result = CliRunner().invoke(main, ["worker", "--name", "w1", "--dir", str(tmp_path / "w1")])
    assert result.exit_code == 2, result.output
    assert "set DAGSTER_PG_HOST, DAGSTER_PG_PORT" in result.output and "Traceback" not in result.output
