"""The distributed deployment on one machine: ``make demo-distributed`` and tests/test_distributed.py.

On 127.0.0.1: PostgreSQL (the Dagster instance, ``deploy/dagster.production.yaml``), Redis (the Celery broker),
the S3 server, the market emulator, the Dagster daemon and Celery workers, each worker with its own DAGSTER_HOME
and scratch directory. A week's runs are created in the instance and queued (``instance.submit_run``, as
``dagster job launch`` does); the daemon's QueuedRunCoordinator dequeues them within the run limits, the
DefaultRunLauncher starts each run's process, and the run's Celery executor sends every step to the workers.
This process only waits for the runs in the instance and reads their events.

Everything started here is stopped when the ``Stack`` closes, on success, failure or Ctrl-C (SIGTERM to each
process group, SIGKILL after a grace period, then any descendant left over).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from pipelines import settings, workers
from pipelines.automation.pools import declared_pools, initialize_pool_limits
from pipelines.automation.tags import TRIGGER_TAG
from pipelines.calendar import DAILY_START, week_close_days
from pipelines.runner import (
    DERIVATIVES_HISTORY_DAYS,
    EVENT_BATCH_ENV,
    MARKET_ASSETS,
    PLANNED_SUBSET_ENV,
    RANGE_END_TAG,
    RANGE_START_TAG,
    RunFailed,
    WeekReport,
    _messages,
    _short,
    emulated_sources,
)
from pipelines.services import Postgres, Redis, S3Server
from pipelines.warehouse import warehouse_path

if TYPE_CHECKING:
    from dagster._core.workspace.context import WorkspaceProcessContext

WORKSPACE = settings.PROJECT_ROOT / "workspace.yaml"
LOCATION = "crypto_weekly"
TERMINAL = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _group_alive(group: int) -> bool:
    """Whether a process of process group ``group`` other than a zombie is left."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


@dataclass
class Process:
    """A process of the stack, in its own process group, logging to ``log``."""

    name: str
    proc: subprocess.Popen
    log: Path

    def stop(self, grace: float = 20.0, sig: int = signal.SIGTERM) -> None:
        """``sig`` to the process group; SIGKILL to the group once the leader has exited (or after ``grace``),
        if anything of it is left: a daemon's code server and run processes outlive it otherwise, orphaned."""
        group = self.proc.pid
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            self.proc.poll()
            return
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        settle = time.monotonic() + 5  # the rest of the group may still be exiting on its own
        while time.monotonic() < settle and _group_alive(group):
            time.sleep(0.1)
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def kill(self) -> None:
        """SIGKILL to the whole process group: a worker machine lost mid-step."""
        self.stop(grace=10, sig=signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class DistributedWeek(WeekReport):
    run_ids: list[str]
    seconds: float
    # the same week and clock run in process on SQLite and a local disk: its report.md equals this one's
    identical_to_embedded: bool | None = None
    embedded_seconds: float | None = None


@dataclass
class Stack:
    """The servers, the daemon and the workers; ``run_week`` submits a week's runs and waits for them."""

    workdir: Path
    warehouse: str
    env: dict[str, str]
    instance: dg.DagsterInstance
    postgres: Postgres
    redis: Redis
    daemon: Process | None = None
    workers: dict[str, Process] = field(default_factory=dict)
    # the code location as a client sees it (a code server process, as `dagster job launch` starts one)
    workspace: WorkspaceProcessContext | None = None
    _started: list[Process] = field(default_factory=list)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> Process:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        p = Process(name, proc, log)
        self._started.append(p)
        return p

    def start_daemon(self) -> Process:
        home = workers.prepare_home(self.workdir / "daemon-home")
        env = {**self.env, **workers.home_env(home)}
        cmd = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)]
        self.daemon = self._spawn("daemon", cmd, env, settings.PROJECT_ROOT)
        return self.daemon

    def start_worker(self, name: str) -> Process:
        """A Celery worker with its own DAGSTER_HOME and scratch directory under ``workdir/<name>``."""
        base = self.workdir / name
        with _environ(self.env):
            cmd, env = workers.worker_command(name, base / "home", base / "scratch")
        p = self._spawn(name, cmd, env, base)
        self.workers[name] = p
        return p

    def wait_for_workers(self, timeout: float = 120.0) -> None:
        """Until every started worker answers a ping through the broker."""
        from celery import Celery

        app = Celery("ping", broker=self.env["CRYPTO_WEEKLY_CELERY_BROKER"])
        wanted = set(self.workers)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for name, p in self.workers.items():
                    if p.proc.poll() is not None:
                        raise RuntimeError(f"worker {name} exited with {p.proc.returncode}:\n{p.tail()}")
                replies = app.control.ping(timeout=1.0) or []
                names = {next(iter(r)).split("@", 1)[0] for r in replies}
                if wanted <= names:
                    return
        finally:
            app.close()
        raise RuntimeError(f"workers {sorted(wanted)} did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        for p in reversed(self._started):
            p.stop()

    # -- runs ------------------------------------------------------------------------------------------------

    def submit(self, job: str, tags: dict[str, str], assets: list[str] | None = None) -> str:
        """Create a run of ``job`` in the instance and queue it for the daemon (what ``dagster job launch`` does,
        with an asset selection). Returns its id."""
        from dagster._core.definitions.selector import JobSubsetSelector

        assert self.workspace is not None, "the stack's workspace is not loaded"
        with _environ(self.env):
            workspace = self.workspace.create_request_context()
            location = workspace.get_code_location(LOCATION)
            repo = next(iter(location.get_repositories().values()))
            selector = JobSubsetSelector(
                location_name=LOCATION,
                repository_name=repo.name,
                job_name=job,
                op_selection=None,
                asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
            )
            remote_job = location.get_job(selector)
            run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
            plan = location.get_execution_plan(
                remote_job, run_config, step_keys_to_execute=None, known_state=None, instance=self.instance
            )
            run = self.instance.create_run(
                job_name=job,
                run_id=None,
                run_config=run_config,
                status=None,
                tags={**remote_job.tags, **tags},
                root_run_id=None,
                parent_run_id=None,
                step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
                execution_plan_snapshot=plan.execution_plan_snapshot,
                job_snapshot=remote_job.job_snapshot,
                parent_job_snapshot=remote_job.parent_job_snapshot,
                asset_selection=frozenset(selector.asset_selection) if selector.asset_selection else None,
                asset_check_selection=None,
                resolved_op_selection=remote_job.resolved_op_selection,
                op_selection=None,
                remote_job_origin=remote_job.get_remote_origin(),
                job_code_origin=remote_job.get_python_origin(),
                asset_graph=repo.asset_graph,
            )
            self.instance.submit_run(run.run_id, workspace)
            return run.run_id

    def wait(self, run_id: str, what: str, timeout: float = 1800.0) -> dg.DagsterRun:
        """Poll the run until it ends; a failed or canceled run raises ``RunFailed`` with the steps' own errors."""
        deadline = time.monotonic() + timeout
        run = self._get_run(run_id)
        while run is not None and run.status not in TERMINAL:
            if time.monotonic() > deadline:
                raise RunFailed(f"{what}: still {run.status.value} after {timeout:.0f} s", run_id=run_id)
            if self.daemon is not None and self.daemon.proc.poll() is not None:
                raise RunFailed(
                    f"{what}: the Dagster daemon exited ({self.daemon.proc.returncode}) with the run "
                    f"{run.status.value}:\n{self.daemon.tail()}",
                    run_id=run_id,
                )
            time.sleep(1.0)
            run = self._get_run(run_id)
        assert run is not None, run_id
        if run.status != dg.DagsterRunStatus.SUCCESS:
            errors = [
                _messages(rec.dagster_event.event_specific_data.error)  # type: ignore[union-attr]
                for rec in self.instance.all_logs(run_id)
                if rec.dagster_event is not None
                and rec.dagster_event.is_failure
                and getattr(rec.dagster_event.event_specific_data, "error", None)
            ]
            short = list(dict.fromkeys(_short(e) for e in errors if e))
            err = RunFailed(
                f"{what} {run.status.value.lower()} (run {run_id}): "
                + (" | ".join(short) or "see the run's event log"),
                run_id=run_id,
            )
            err.detail = " | ".join(e for e in errors if e)
            raise err
        return run

    def _get_run(self, run_id: str, outage: float = 60.0) -> dg.DagsterRun | None:
        """The run's record; a database that does not answer (PostgreSQL restarting) is asked again for up to
        ``outage`` seconds before the error is raised."""
        from sqlalchemy.exc import OperationalError

        deadline = time.monotonic() + outage
        while True:
            try:
                return self.instance.get_run_by_id(run_id)
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def run_days(self, first_day: str, last_day: str, assets: list[str] | None = None) -> str:
        run_id = self.submit(
            "daily_job",
            {RANGE_START_TAG: first_day, RANGE_END_TAG: last_day, TRIGGER_TAG: "demo-distributed"},
            assets,
        )
        self.wait(run_id, f"daily pulls {first_day}..{last_day}")
        return run_id

    def run_weekly(self, week: str) -> tuple[Path, str]:
        run_id = self.submit("weekly_job", {"dagster/partition": week, TRIGGER_TAG: "demo-distributed"})
        self.wait(run_id, f"week {week}")
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("weekly_report"), asset_partitions=[week]), limit=1
        ).records
        if not records or records[0].run_id != run_id:
            raise RunFailed(f"week {week}: the run succeeded but did not materialize weekly_report", run_id)
        meta = records[0].asset_materialization.metadata  # type: ignore[union-attr]
        return warehouse_path(meta["markdown_path"].value).parent, run_id  # type: ignore[union-attr]

    def run_week(
        self,
        week: str,
        first_day: str = DAILY_START,
        derivatives_days: int | None = DERIVATIVES_HISTORY_DAYS,
        echo: Callable[[str], None] = lambda _: None,
    ) -> DistributedWeek:
        """What ``runner.run_week`` runs in process, as runs of the instance: the history (CoinGecko from
        ``first_day``, derivatives and macro from ``derivatives_days`` before the close), then the week."""
        t0 = time.monotonic()
        last_day = week_close_days(week)[1].isoformat()
        late = first_day
        if derivatives_days is not None:
            late = max(
                first_day, (date.fromisoformat(last_day) - timedelta(days=derivatives_days)).isoformat()
            )
        run_ids = []
        if late == first_day:
            echo(f"daily pulls {first_day}..{last_day} ...")
            run_ids.append(self.run_days(first_day, last_day))
        else:
            from pipelines.definitions import daily_job, defs

            job_assets = sorted(
                k.to_user_string()
                for k in defs.resolve_job_def(daily_job.name).asset_layer.selected_asset_keys
            )
            echo(f"market history {first_day}..{last_day} ...")
            run_ids.append(self.run_days(first_day, last_day, [a for a in job_assets if a in MARKET_ASSETS]))
            echo(f"derivatives and macro {late}..{last_day} ...")
            run_ids.append(self.run_days(late, last_day, [a for a in job_assets if a not in MARKET_ASSETS]))
        echo(f"week {week}: weekly tables and report ...")
        report_dir, weekly_run = self.run_weekly(week)
        run_ids.append(weekly_run)
        return DistributedWeek(week, report_dir, run_ids, time.monotonic() - t0)

    def step_workers(self, run_id: str) -> dict[str, str]:
        """step key -> the Celery worker (its name) that executed it, from the run's engine events."""
        out = {}
        for rec in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            data = rec.dagster_event.engine_event_data if rec.dagster_event else None
            host = data.metadata.get("Celery worker") if data is not None else None
            if host is not None and rec.step_key:
                out[rec.step_key] = str(host.value).split("@", 1)[0]
        return out


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    from pipelines.runner import patched_environ

    with patched_environ(env):
        yield


@contextmanager
def _client_workspace(
    instance: dg.DagsterInstance, env: dict[str, str], log: Path
) -> Iterator[WorkspaceProcessContext]:
    """The workspace runs are submitted through; its code server's output goes to ``log``, not the terminal."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with open(log, "ab") as out, _environ(env):
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        for fd in saved:  # the code server process inherits these descriptors as its stdout and stderr
            os.dup2(out.fileno(), fd)
        try:
            ctx = WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)]))
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
    with ctx:
        yield ctx


def object_store_warehouse(_workdir: Path, s3: S3Server) -> str:
    """The warehouse on the stack's S3 server (``s3://crypto-weekly/warehouse``): lake, raw recordings, reports
    and gap ledger are objects every process reaches over the S3 API, as on separate machines."""
    return s3.url("warehouse")


def local_warehouse(workdir: Path, _s3: S3Server) -> str:
    """The warehouse in a directory of this machine (only processes on one machine can share it)."""
    return str(workdir / "warehouse")


@contextmanager
def stack(
    workdir: Path | None = None,
    worker_names: tuple[str, ...] = ("worker-1", "worker-2"),
    now: datetime | None = None,
    warehouse: Callable[[Path, S3Server], str] = object_store_warehouse,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Start everything on 127.0.0.1 under ``workdir`` (a temporary directory by default, removed after) and stop
    it all on the way out. ``now`` is the emulator's clock; ``warehouse`` the lake's URL, given the S3 server."""
    before = descendants(os.getpid())
    with ExitStack() as es:
        if workdir is None:
            workdir = Path(es.enter_context(tempfile.TemporaryDirectory(prefix="crypto-weekly-stack-")))
        workdir.mkdir(parents=True, exist_ok=True)
        pg = es.enter_context(Postgres(workdir / "postgres"))
        redis = es.enter_context(Redis(workdir / "redis"))
        s3 = es.enter_context(S3Server(workdir / "s3"))
        es.enter_context(emulated_sources(now=now))  # the clients' variables now point at it
        lake = warehouse(workdir, s3)
        env = {
            **os.environ,
            **pg.env(),
            **s3.env(),
            "WAREHOUSE_DIR": lake,
            "CRYPTO_WEEKLY_EXECUTOR": "celery",
            "CRYPTO_WEEKLY_CELERY_BROKER": redis.url,
            PLANNED_SUBSET_ENV: "1",
            # On Postgres, a range run's per-day materializations go in one multi-row insert per asset instead of
            # one connection each (bench/RESULTS.md section 6: event writes 6.2x faster, the run 0.73x the time).
            EVENT_BATCH_ENV: "100",
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(settings.PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
            **(extra_env or {}),
        }
        settings.validate(env)
        home = workers.prepare_home(workdir / "client-home")
        env_client = {**env, **workers.home_env(home)}
        es.enter_context(_environ(env_client))
        instance = es.enter_context(dg.DagsterInstance.get())
        # every pool's limit row before the daemon and the runs meet it (pools.initialize_pool_limits)
        from pipelines.definitions import all_assets

        initialize_pool_limits(instance, declared_pools(all_assets))
        st = Stack(workdir=workdir, warehouse=lake, env=env, instance=instance, postgres=pg, redis=redis)
        es.callback(_reap, os.getpid(), st, before, (s3,))
        st.workspace = es.enter_context(_client_workspace(instance, env, workdir / "client.log"))
        st.start_daemon()
        for name in worker_names:
            st.start_worker(name)
        st.wait_for_workers()
        yield st


def _reap(pid: int, st: Stack, before: set[int], servers: tuple[S3Server, ...]) -> None:
    """Stop the daemon and workers, then SIGKILL every process this stack left below this process (a run's
    process, a code server and what they spawned): all but those that were there before the stack started and
    the servers (PostgreSQL, Redis, S3), which their own context managers stop next."""
    st.stop()
    keep = set(before)
    for server in (st.postgres, st.redis, *servers):
        if server.proc is not None:
            keep |= {server.proc.pid} | descendants(server.proc.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = {p for p in descendants(pid) - keep if alive(p)}
        if not left:
            return
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"processes {sorted(left)} survived SIGKILL")


def main(week: str, echo: Callable[[str], None] = print, compare: bool = True) -> DistributedWeek:
    """``make demo-distributed``: the week of ``make demo`` (same clock and history) through the stack; with
    ``compare``, also in process, to show the two reports are the same bytes."""
    from pipelines.runner import demo_clock

    t0 = time.monotonic()
    with stack(now=demo_clock(week)) as st:
        echo(
            f"stack up in {time.monotonic() - t0:.0f} s: PostgreSQL :{st.postgres.port}, Redis :{st.redis.port}, "
            f"daemon, workers {', '.join(st.workers)}; warehouse {st.warehouse}"
        )
        result = st.run_week(week, echo=echo)
        used = {w for r in result.run_ids for w in st.step_workers(r).values()}
        echo(json.dumps({"week_seconds": round(result.seconds, 1), "workers_used": sorted(used)}))
        # the stack's temporary directory goes with it: keep the report
        keep = Path(tempfile.gettempdir()) / "crypto-weekly-distributed" / week
        keep.mkdir(parents=True, exist_ok=True)
        for f in result.report_dir.iterdir():
            if f.is_file():
                (keep / f.name).write_bytes(f.read_bytes())
        result.report_dir = keep
        if compare:
            echo("the same week in process (SQLite, local disk, same clock), to compare the reports ...")
            t1 = time.monotonic()
            embedded = embedded_week(week, st.workdir / "embedded")
            result.embedded_seconds = time.monotonic() - t1
            result.identical_to_embedded = embedded.read_bytes() == result.markdown.read_bytes()
    return result


def embedded_week(week: str, workdir: Path) -> Path:
    """The week's report.md computed the embedded way, against the emulator already running: in process
    (``runner.run_week``, no context weeks, like the stack), an ephemeral SQLite instance, a local warehouse."""
    from pipelines.runner import patched_environ, run_week

    env = {"WAREHOUSE_DIR": str(workdir / "warehouse"), "CRYPTO_WEEKLY_EXECUTOR": "in_process"}
    with patched_environ(env), dg.DagsterInstance.ephemeral() as instance:
        return run_week(week, instance).markdown
