"""Run what a week needs, in process: the daily pulls for its history as one run, then the weekly job.

Used by ``make demo``, the ``crypto-weekly`` command and the end-to-end tests.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.utils import make_new_run_id

from pipelines import settings
from pipelines.automation.pools import pool_keeper
from pipelines.automation.tags import TRIGGER_TAG
from pipelines.calendar import DAILY_START, RANGE_END_TAG, RANGE_START_TAG, WEEKLY, week_close_days
from pipelines.warehouse import Warehouse, warehouse_path
from pipelines.week_processes import start_for_days
from pipelines.workers import executor_name

if TYPE_CHECKING:
    from pipelines.emulator.server import MarketEmulator

# Clients whose pacing is turned off against the (loopback) emulator: every API with a *_CALLS_PER_MINUTE.
PACED_APIS = settings.APIS
# The CoinGecko side of the daily job: a week's report reads its whole history ("first time since April").
MARKET_ASSETS = (
    "raw_coingecko_markets",
    "coin_registry",
    "global_market_cap",
    "raw_coingecko_market_charts",
    "raw_binance_spot_daily",
    "coin_daily",
)
# Derivatives and macro need less: the leverage table looks back 90 days at most for its open-interest peak,
# volatility 30 days. A report run pulls them from this many days before the week's close; a backfill pulls
# its whole range.
DERIVATIVES_HISTORY_DAYS = 100


def demo_clock(week: str, wall: datetime | None = None) -> datetime:
    """The emulator's clock for reporting on ``week``: the Tuesday 06:00 UTC after it closed (or now, if that
    has not come yet), as if the report were run live that week, so the venues' recent-history windows reach it."""
    wall = wall or datetime.now(timezone.utc)
    _, close_day = week_close_days(week)
    tuesday = datetime(close_day.year, close_day.month, close_day.day, 6, tzinfo=timezone.utc) + timedelta(
        days=2
    )
    return min(tuesday, wall)


@dataclass
class WeekReport:
    """Where a week's rendered report is."""

    week: str
    report_dir: Path

    @property
    def markdown(self) -> Path:
        return self.report_dir / "report.md"

    @property
    def html(self) -> Path:
        return self.report_dir / "report.html"


@dataclass
class WeekRun(WeekReport):
    daily_run_id: str
    weekly_run_id: str


@contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Set environment variables for the duration of the block, then restore what was there (or unset them)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def unset_only(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the variables this process's environment already sets: defaults that never override the
    caller's choice (for ``patched_environ``)."""
    return {k: v for k, v in env.items() if k not in os.environ}


class EmulatorProcess:
    """The market emulator served by another process (``crypto-weekly emulator``), so that this interpreter does
    not also answer every request it makes: what ``make demo`` and ``make backfill EMULATOR=1`` use. Its URLs,
    clock and plan are the ones it printed; faults and request counts need the in-process ``MarketEmulator``."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    @property
    def now(self) -> datetime:
        return datetime.fromisoformat(self.env["CRYPTO_WEEKLY_NOW"])

    @property
    def plan(self) -> str:
        return self.env["COINGECKO_API_PLAN"]

    def base_urls(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if k.endswith("_BASE_URL")}


@contextmanager
def emulator_process(
    seed: int,
    now: datetime | None,
    rate_limits: bool,
    profile: str,
    blocked_venue: str,
    start_timeout: float = 300,
) -> Iterator[EmulatorProcess]:
    """``crypto-weekly emulator`` on a free loopback port in a child process, stopped (SIGTERM, then SIGKILL) on
    exit. Waits for its ``export`` lines; if it exits first, raises with what it printed."""
    import queue
    import signal
    import subprocess
    import sys
    import tempfile
    import threading

    cmd = [sys.executable, "-m", "pipelines.cli", "emulator", "--port", "0", "--seed", str(seed)]
    cmd += ["--profile", profile, "--blocked-venue", blocked_venue]
    cmd += ["--rate-limits" if rate_limits else "--no-rate-limits"]
    cmd += ["--now", now.isoformat()] if now is not None else []
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        lines: queue.Queue[str] = queue.Queue()

        def read_lines() -> None:  # a thread: select() on a buffered pipe misses lines already buffered
            for text in proc.stdout:  # type: ignore[union-attr]
                lines.put(text)
            lines.put("")  # the end of its output

        threading.Thread(target=read_lines, daemon=True).start()
        try:
            env: dict[str, str] = {}
            deadline = time.monotonic() + start_timeout
            while "COINGECKO_API_PLAN" not in env:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    line = ""
                if not line:
                    err.seek(0)
                    why = "did not answer in time" if proc.poll() is None else f"exited ({proc.returncode})"
                    raise RuntimeError(f"the emulator process {why}: {err.read().strip()[-2000:]}")
                if line.startswith("export ") and "=" in line:
                    key, value = line[len("export ") :].strip().split("=", 1)
                    env[key] = value
            yield EmulatorProcess(env)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextmanager
def emulated_sources(
    seed: int | None = None,
    now: datetime | None = None,
    rate_limits: bool = False,
    coingecko_calls_per_minute: int = 0,
    profile: str = "default",
    blocked_venue: str = "binance",
    out_of_process: bool = False,
) -> Iterator[MarketEmulator | EmulatorProcess]:
    """Start the market emulator and point every client at it (environment variables) for the duration.

    The pipeline's clock is the emulator's (same seed and clock, same lake and report). Pacing is off, except
    CoinGecko's when ``coingecko_calls_per_minute`` is set (the benchmark's pulls against ``rate_limits``).
    ``profile`` ``real-world`` makes it answer as real users meet the APIs (``pipelines.emulator.profiles``:
    ``blocked_venue`` blocked in the region, a FRED 404, archive publication lags, empty answers...).
    ``out_of_process`` serves it from a child process (``emulator_process``): the same answers, and this
    interpreter is left to the pipeline."""
    from pipelines.emulator.market import DEFAULT_SEED
    from pipelines.emulator.profiles import apply_profile
    from pipelines.emulator.server import MarketEmulator

    seed = seed if seed is not None else DEFAULT_SEED
    if out_of_process:
        serving: AbstractContextManager = emulator_process(seed, now, rate_limits, profile, blocked_venue)
    else:
        serving = MarketEmulator(seed=seed, now=now, rate_limits=rate_limits)
        apply_profile(serving, profile, blocked_venue)  # type: ignore[arg-type]
    with serving as emu:
        env = {
            **emu.base_urls(),
            **{f"{api}_CALLS_PER_MINUTE": "0" for api in PACED_APIS},
            "COINGECKO_CALLS_PER_MINUTE": str(coingecko_calls_per_minute),
            # The plan the emulator enforces (pro: no history window; demo: 365 days, older days estimated).
            "COINGECKO_API_PLAN": emu.plan,
            "CRYPTO_WEEKLY_NOW": emu.now.isoformat(),
        }
        with patched_environ(env):
            yield emu


class RunFailed(RuntimeError):
    """A run that failed; the message is the asset's own error, ``run_id`` finds its event log."""

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id
        self.detail = message  # every error of the run with its causes (the CLI writes it to the log file)


# The console logger's level for runs started here. WARNING for library callers; the CLI lowers the noise to
# CRITICAL unless --verbose (Dagster's step-failure stack traces go to the log file it writes instead).
CONSOLE_LOG_LEVEL = "WARNING"


# Wrapped around each in-process run, given (instance, run_id): the CLI's progress watcher follows the run's
# event log with it. Does nothing by default.
def _no_watch(_instance: dg.DagsterInstance, _run_id: str) -> AbstractContextManager:
    return nullcontext()


RUN_WATCH: Callable[[dg.DagsterInstance, str], AbstractContextManager] = _no_watch


def _messages(error: object) -> str:
    """An error and its causes, innermost last: Dagster wraps an asset's own exception in a step error."""
    parts = []
    while error is not None and len(parts) < 5:
        text = str(getattr(error, "message", "")).strip()
        if text and not text.startswith("dagster._core.errors.DagsterExecutionStepExecutionError"):
            parts.append(text)
        error = getattr(error, "cause", None)
    return " <- ".join(parts)


def _short(chain: str) -> str:
    """The asset's own message from a cause chain: its outermost part, without the ``module.Class:`` prefix."""
    first = chain.split(" <- ", 1)[0]
    return re.sub(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Failure|Failed)\w*: ", "", first)


def _check(result: dg.ExecuteInProcessResult, what: str) -> None:
    if not result.success:
        errors = [
            _messages(e.event_specific_data.error)  # type: ignore[union-attr]
            for e in result.all_events
            if e.is_failure and getattr(e.event_specific_data, "error", None)
        ]
        short = list(dict.fromkeys(_short(e) for e in errors if e))
        err = RunFailed(
            f"{what} failed: " + (" | ".join(short) or "see the run's logs"), run_id=result.run_id
        )
        err.detail = " | ".join(e for e in errors if e)
        raise err


def _run_config(log_level: str | None) -> dict:
    """Console logs at ``log_level`` (``CONSOLE_LOG_LEVEL`` by default: a user sees the result, not every step)."""
    return {"loggers": {"console": {"config": {"log_level": log_level or CONSOLE_LOG_LEVEL}}}}


def _defs(defs: dg.Definitions | None) -> dg.Definitions:
    from pipelines.definitions import make_definitions

    return defs or make_definitions()


PLANNED_SUBSET_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
# Dagster hands a step's materializations of many partitions to the event log as batches of this many
# (``pipelines.sqlite_instance.KeptConnectionEventLogStorage.store_event_batch``; Postgres has its own batch write)
EVENT_BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = "100"


def range_run_environment(tags: dict[str, str]) -> AbstractContextManager[dict[str, str]]:
    """The environment a run with ``tags`` starts in: over a range of partitions (range tags whose ends differ),
    one "planned" event per asset for the run (``PLANNED_SUBSET_ENV``) and each step's materializations of the
    range's partitions stored in batches (``EVENT_BATCH_ENV``), each unless the caller's environment already sets
    it; otherwise nothing changed."""
    ranged = RANGE_START_TAG in tags and tags[RANGE_START_TAG] != tags.get(RANGE_END_TAG)
    levers = {PLANNED_SUBSET_ENV: "1", EVENT_BATCH_ENV: EVENT_BATCH_SIZE} if ranged else {}
    return patched_environ(unset_only(levers))


# the modules of the clean builders' parts (``pipelines.clean.beside``)
PARTS_MODULES = ("pipelines.clean.coingecko", "pipelines.clean.derivatives")


def start_parts_process(job: str, tags: dict[str, str]) -> None:
    """Before a ``daily_job`` run over a long range of days, in the run's environment: the process that takes its
    clean steps' independent parts started now, so that it has imported the pipeline while the pulls ran
    (``pipelines.week_processes.start_for_days``; nothing for a short range)."""
    if executor_name() != "in_process":  # the steps run on workers, each its own process
        return
    if job == "daily_job" and RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        first, last = (date.fromisoformat(tags[t]) for t in (RANGE_START_TAG, RANGE_END_TAG))
        start_for_days((last - first).days + 1, PARTS_MODULES)


def _execute(
    job: str,
    what: str,
    instance: dg.DagsterInstance,
    defs: dg.Definitions | None,
    tags: dict[str, str],
    log_level: str | None,
    partition_key: str | None = None,
    assets: list[str] | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of ``job`` under the run watcher; raises ``RunFailed`` (``what`` failed: the assets' own
    messages) when it fails. A run over a range of partitions records one "planned" event per asset for the run
    instead of one per asset and partition (measured on 60 days: 1,140 -> 19 planned events, 2,066 -> 945 events,
    the run 2.4x faster; bench/phases.py daily_events); the cost, per Dagster, is that a failed range run does not
    mark its partitions failed in the UI, which the callers report themselves. Its steps' materializations of the
    range's partitions are stored in batches (``range_run_environment``): every one is still recorded, the UI's
    per-day status included."""
    run_id = make_new_run_id()
    with RUN_WATCH(instance, run_id), range_run_environment(tags), pool_keeper(instance):
        start_parts_process(job, tags)
        result = (
            _defs(defs)
            .resolve_job_def(job)
            .execute_in_process(
                instance=instance,
                run_id=run_id,
                partition_key=partition_key,
                asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
                tags=tags,
                raise_on_error=False,
                run_config=_run_config(log_level),
            )
        )
    _check(result, what)
    return result


def run_days(
    first_day: str,
    last_day: str,
    instance: dg.DagsterInstance,
    defs: dg.Definitions | None = None,
    trigger: str = "runner",
    log_level: str | None = None,
    assets: list[str] | None = None,
) -> str:
    """``daily_job`` over ``first_day..last_day`` as **one** run (the daily assets' single-run backfill policy);
    raw pulls skip what is stored, so a re-run after a failure only asks for what is missing. ``assets`` limits
    the run to some of the job's assets. Returns the run id."""
    tags = {RANGE_START_TAG: first_day, RANGE_END_TAG: last_day, TRIGGER_TAG: trigger}
    daily = _execute(
        "daily_job", f"daily pulls {first_day}..{last_day}", instance, defs, tags, log_level, assets=assets
    )
    return daily.run_id


def run_weekly(
    week: str,
    instance: dg.DagsterInstance,
    defs: dg.Definitions | None = None,
    trigger: str = "runner",
    log_level: str | None = None,
) -> tuple[Path, str]:
    """``weekly_job`` for one week (its days must be in the lake). Returns (report directory, run id)."""
    weekly = _execute(
        "weekly_job", f"week {week}", instance, defs, {TRIGGER_TAG: trigger}, log_level, partition_key=week
    )
    mats = [
        m for m in weekly.get_asset_materialization_events() if m.asset_key == dg.AssetKey("weekly_report")
    ]
    if not mats:
        raise RunFailed(f"week {week}: the run succeeded but did not materialize weekly_report")
    # a local path, or the s3:// URL of a warehouse on object storage
    report_dir = warehouse_path(mats[-1].materialization.metadata["markdown_path"].value).parent  # type: ignore[union-attr]
    return report_dir, weekly.run_id


def run_weeks(
    first_week: str,
    last_week: str,
    instance: dg.DagsterInstance,
    defs: dg.Definitions | None = None,
    trigger: str = "runner",
    log_level: str | None = None,
) -> str:
    """``weekly_job`` over the weeks ``first_week..last_week`` as **one** run (the weekly assets' single-run
    backfill policy): each weekly table reads the lake once and computes every week from memory, and the report
    publishes each week whose checks pass. Returns the run id; raises ``RunFailed`` naming the failed weeks."""
    if first_week == last_week:
        return run_weekly(first_week, instance, defs, trigger, log_level)[1]
    tags = {RANGE_START_TAG: first_week, RANGE_END_TAG: last_week, TRIGGER_TAG: trigger}
    weekly = _execute("weekly_job", f"weeks {first_week}..{last_week}", instance, defs, tags, log_level)
    return weekly.run_id


def contiguous(weeks: list[str]) -> list[list[str]]:
    """``weeks`` (weekly partition keys) split into runs of consecutive weeks: each is one partition range."""
    keys = WEEKLY.get_partition_keys()
    index = {k: i for i, k in enumerate(keys)}
    chunks: list[list[str]] = []
    for week in sorted(weeks, key=index.__getitem__):
        if chunks and index[week] == index[chunks[-1][-1]] + 1:
            chunks[-1].append(week)
        else:
            chunks.append([week])
    return chunks


def run_history(
    first_day: str,
    last_day: str,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    derivatives_days: int | None = DERIVATIVES_HISTORY_DAYS,
    trigger: str = "runner",
    echo: Callable[[str], None] = lambda _: None,
) -> str:
    """The daily job for what a report needs: CoinGecko history from ``first_day``; derivatives and macro from
    ``derivatives_days`` before ``last_day`` (all of it when None). One run per range; returns the last run id."""
    job_assets = sorted(
        k.to_user_string() for k in defs.resolve_job_def("daily_job").asset_layer.selected_asset_keys
    )
    late = first_day
    if derivatives_days is not None:
        late = max(first_day, (date.fromisoformat(last_day) - timedelta(days=derivatives_days)).isoformat())
    if late == first_day:
        echo(f"daily pulls {first_day}..{last_day} (stored pulls are skipped) ...")
        return run_days(first_day, last_day, instance, defs, trigger=trigger)
    echo(f"step 1/2: market history {first_day}..{last_day} (stored pulls are skipped) ...")
    run_days(
        first_day,
        last_day,
        instance,
        defs,
        trigger=trigger,
        assets=[a for a in job_assets if a in MARKET_ASSETS],
    )
    echo(f"step 2/2: derivatives and macro {late}..{last_day} ...")
    return run_days(
        late,
        last_day,
        instance,
        defs,
        trigger=trigger,
        assets=[a for a in job_assets if a not in MARKET_ASSETS],
    )


def run_week(
    week: str,
    instance: dg.DagsterInstance,
    first_day: str = DAILY_START,
    derivatives_days: int | None = DERIVATIVES_HISTORY_DAYS,
    context_weeks: int = 0,
    echo: Callable[[str], None] = lambda _: None,
) -> WeekRun:
    """Materialize everything ``week`` needs: the daily history up to the week's last day, then the week.

    ``context_weeks`` also computes that many earlier weeks first (those not reported yet), so the report's
    charts over time have points before this one."""
    defs = _defs(None)
    _, close_day = week_close_days(week)
    t0 = time.monotonic()
    daily_run_id = run_history(first_day, close_day.isoformat(), instance, defs, derivatives_days, echo=echo)
    echo(f"daily pulls done in {time.monotonic() - t0:.0f} s")
    earlier = [k for k in WEEKLY.get_partition_keys() if k < week][-context_weeks:] if context_weeks else []
    todo = [
        p for p in earlier if week_close_days(p)[0].isoformat() >= first_day and not reported(p, instance)
    ]
    for chunk in contiguous(todo):
        echo(f"context weeks {chunk[0]}..{chunk[-1]} ({len(chunk)}) as one run ...")
        run_weeks(chunk[0], chunk[-1], instance, defs)
    echo(f"week {week}: weekly tables and report ...")
    report_dir, weekly_run_id = run_weekly(week, instance, defs)
    return WeekRun(week=week, report_dir=report_dir, daily_run_id=daily_run_id, weekly_run_id=weekly_run_id)


def weeks_between(since: str, until: str) -> list[str]:
    """Every weekly partition key from ``since`` to ``until`` (Mondays, both included)."""
    return [k for k in WEEKLY.get_partition_keys() if since <= k <= until]


def reported(week: str, instance: dg.DagsterInstance, warehouse_root: str | Path | None = None) -> bool:
    """Whether ``week``'s report is materialized in the instance and its files are in *this* warehouse
    (``warehouse_root``, default ``settings.warehouse_root()``): a report recorded in another warehouse (another
    ``WAREHOUSE_DIR``, another directory) does not count, whatever the current directory."""
    key = dg.AssetKey("weekly_report")
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[week]), limit=1
    ).records
    if not records:
        return False
    meta = records[0].asset_materialization.metadata  # type: ignore[union-attr]
    if "markdown_path" not in meta:
        return False
    report_dir = Warehouse(warehouse_root or settings.warehouse_root()).reports_dir / week
    return all((report_dir / name).exists() for name in ("report.md", "report.html", "manifest.json"))


@dataclass
class BackfillResult:
    daily_run_id: str
    weeks_run: list[str]
    weeks_skipped: list[str]
    weeks_failed: dict[str, str] = field(default_factory=dict)  # week -> why it was not published


def backfill(
    since: str,
    until: str,
    instance: dg.DagsterInstance,
    first_day: str = DAILY_START,
    redo: bool = False,
    echo: Callable[[str], None] = print,
) -> BackfillResult:
    """Every day ``first_day``..the close of ``until`` as one run, then the weeks ``since``..``until`` as one run
    per range of consecutive weeks still to do.

    When a range's run fails, its weeks are run again one by one, so that each week gets its own status in the
    Dagster UI (a single-run range is recorded as one outcome, dagster-io/dagster#17836) and the weeks that can be
    published are; a week that still fails is named in ``weeks_failed`` and the others go on.

    Resumable: stored raw pulls are not asked for again, and a week whose report is already materialized is
    skipped unless ``redo``. Idempotent: the same inputs give the same lake and report bytes.
    """
    defs = _defs(None)
    weeks = weeks_between(since, until)
    if not weeks:
        raise ValueError(f"no weekly partition between {since} and {until}")
    first_day = min(first_day, week_close_days(weeks[0])[0].isoformat())
    last_day = week_close_days(weeks[-1])[1].isoformat()
    t0 = time.monotonic()
    echo(f"daily: {first_day}..{last_day} as one run (stored pulls are skipped) ...")
    daily_run_id = run_days(first_day, last_day, instance, defs, trigger="cli-backfill")
    echo(f"daily: done in {time.monotonic() - t0:.0f} s (run {daily_run_id[:8]})")
    skipped = [] if redo else [w for w in weeks if reported(w, instance)]
    if skipped:
        echo(
            f"{len(skipped)} week(s) already reported, skipped ({skipped[0]}..{skipped[-1]}); --redo recomputes them"
        )
    result = BackfillResult(daily_run_id=daily_run_id, weeks_run=[], weeks_skipped=skipped)
    for chunk in contiguous([w for w in weeks if w not in skipped]):
        t1 = time.monotonic()
        echo(f"weeks {chunk[0]}..{chunk[-1]} ({len(chunk)}) as one run ...")
        try:
            run_weeks(chunk[0], chunk[-1], instance, defs, trigger="cli-backfill")
        except RunFailed as exc:
            echo(f"weeks {chunk[0]}..{chunk[-1]}: {exc}; running them one by one")
            for week in chunk:
                try:
                    run_weekly(week, instance, defs, trigger="cli-backfill")
                except RunFailed as week_exc:
                    result.weeks_failed[week] = str(week_exc)
                    echo(f"week {week}: not published: {week_exc}")
                else:
                    result.weeks_run.append(week)
            continue
        result.weeks_run += chunk
        echo(f"weeks {chunk[0]}..{chunk[-1]}: reported in {time.monotonic() - t1:.1f} s")
    return result
