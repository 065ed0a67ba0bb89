"""``crypto-weekly``: the pipeline without the UI.

    crypto-weekly demo [--week 2025-11-17]       everything a week needs, from the emulator; prints the report
    crypto-weekly report --week 2025-11-17       the same against the configured sources (real APIs by default)
    crypto-weekly backfill --since 2025-03-31    every day as one run, then every week; resumable
    crypto-weekly emulator [--port 8765]         serve the emulator alone, for any client to point at
    crypto-weekly dev [--port 3000]              the Dagster UI, with the emulator behind it
    crypto-weekly status [--json]                weeks reported, gaps, failed checks, last runs, lake size
    crypto-weekly worker --name w1 --dir DIR     a Celery worker for the steps (CRYPTO_WEEKLY_EXECUTOR=celery)
    crypto-weekly demo-distributed [--week ...]  the demo's week on PostgreSQL, Redis, the daemon and 2 workers

Click is used because Dagster already depends on it: no new dependency for a proper CLI.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import click
from dagster._utils.warnings import BetaWarning, PreviewWarning, SupersessionWarning

from pipelines.calendar import WEEKLY_START

# Dagster flags beta parameters we use on purpose (single-run backfills, partition mappings): not for users.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=SupersessionWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"dagster\..*|pipelines\..*")

from pipelines.calendar import latest_complete_week  # noqa: E402
from pipelines.progress import Reporter  # noqa: E402
from pipelines.settings import SettingsError, check_writable, validate  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Weeks computed before the requested one (when not reported yet), so the report's charts have a history.
CONTEXT_WEEKS = 7


# The project's instance configuration: the run queue, the run limits and the pools its concurrency relies on.
INSTANCE_CONFIG = PROJECT_ROOT / ".dagster_home" / "dagster.yaml"
# What a DAGSTER_HOME's dagster.yaml must configure for the project's concurrency guarantees to hold.
REQUIRED_INSTANCE_KEYS = ("run_coordinator", "concurrency")


def _ensure_dagster_home() -> Path:
    """The DAGSTER_HOME to use (``$DAGSTER_HOME``, else the project's ``.dagster_home``). A new one gets a copy of
    the project's ``dagster.yaml`` (never a configuration without the run queue and the pools); an existing one
    that lacks them is used as it is, with one warning line saying what is missing."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        if not INSTANCE_CONFIG.is_file():
            raise click.ClickException(
                f"{INSTANCE_CONFIG} is missing, so {cfg} cannot be written with the run queue and pools; "
                "restore it from the repository or write your own dagster.yaml there"
            )
        shutil.copyfile(INSTANCE_CONFIG, cfg)
    else:
        text = cfg.read_text(errors="replace")
        missing = [k for k in REQUIRED_INSTANCE_KEYS if not re.search(rf"^{k}:", text, flags=re.M)]
        if missing:
            click.echo(
                f"warning: {cfg} does not configure {', '.join(missing)}: runs are not queued or pooled as the "
                f"project expects (see {INSTANCE_CONFIG} and README, Concurrency)",
                err=True,
            )
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _parse_day(value: str, what: str) -> date:
    """``YYYY-MM-DD``; month and day may lack their zero padding (``2025-11-3`` is 2025-11-03)."""
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*", value or "")
    try:
        if not m:
            raise ValueError
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD, e.g. 2025-11-17)", param_hint=what
        ) from None


def _week_option(week: str | None, what: str = "--week") -> str:
    latest = latest_complete_week()
    d = _parse_day(week or latest, what)
    if d.weekday() != 0:
        raise click.BadParameter(f"{d} is a {d:%A}; weeks are keyed by their Monday", param_hint=what)
    week = d.isoformat()
    if week > latest:
        raise click.BadParameter(
            f"week {week} has not finished yet (latest complete week: {latest})", param_hint=what
        )
    if week < WEEKLY_START:
        raise click.BadParameter(f"weekly partitions start on {WEEKLY_START}", param_hint=what)
    return week


def _first_day_option(first_day: str | None, week: str) -> str | None:
    """``--first-day``: a date from the daily partitions' start up to the week's Monday."""
    from pipelines.calendar import DAILY_START

    if first_day is None:
        return None
    d = _parse_day(first_day, "--first-day").isoformat()
    if d < DAILY_START:
        raise click.BadParameter(
            f"{d} is before the daily partitions' start, {DAILY_START}", param_hint="--first-day"
        )
    if d > week:
        raise click.BadParameter(f"{d} is after the week's Monday, {week}", param_hint="--first-day")
    return d


def _prepare(check_warehouse: bool = True) -> Path:
    """Before any work: every environment variable checked (``pipelines.settings``), ``WAREHOUSE_DIR`` resolved
    to its one absolute meaning and exported (so the runs and a ``dagster dev`` child agree), the warehouse
    checked writable. A bad setting raises ``SettingsError`` (exit 2, one line)."""
    settings = validate()
    root = settings.warehouse_root
    if check_warehouse:
        check_writable(root)
    os.environ["WAREHOUSE_DIR"] = str(root)
    return root


def _print_result(run) -> None:
    text = run.markdown.read_text()
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    click.echo("")
    click.echo(f"Report for the week of {run.week}:")
    click.echo(f"  Markdown: {run.markdown}")
    click.echo(f"  HTML:     {run.html}")
    click.echo(f"  Manifest: {run.report_dir / 'manifest.json'}")
    click.echo("")
    click.echo(paragraphs[0].lstrip("# "))
    if len(paragraphs) > 2:
        click.echo("")
        click.echo(paragraphs[2])


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["verbose"] = True


VERBOSE_OPTION = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    callback=_set_verbose,
    is_eager=True,
    help="print Dagster's logs and, on failure, the full stack trace",
)


def _log_path(command: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    from pipelines.settings import warehouse_root

    for base in (warehouse_root(), Path(tempfile.gettempdir()) / "crypto-weekly"):
        try:
            (base / "logs").mkdir(parents=True, exist_ok=True)
            path = base / "logs" / f"{command}-{stamp}-{os.getpid()}.log"
            path.touch()
            return path
        except OSError:
            continue
    return Path(os.devnull)


def _write_log(command: str, exc: BaseException) -> Path:
    """The full story of a failure: the traceback and, for a failed run, its Dagster event log."""
    path = _log_path(command)
    lines = [
        f"crypto-weekly {' '.join(sys.argv[1:])}",
        f"failed at {datetime.now(timezone.utc).isoformat()}",
        "",
        "".join(traceback.format_exception(exc)),
    ]
    if getattr(exc, "detail", None):
        lines += ["Every error of the run, with its causes:", exc.detail]  # type: ignore[attr-defined]
    run_id = getattr(exc, "run_id", None)
    if run_id:
        try:
            import dagster as dg

            lines.append(f"\nDagster event log of run {run_id}:")
            for rec in dg.DagsterInstance.get().all_logs(run_id):
                err = getattr(getattr(rec.dagster_event, "event_specific_data", None), "error", None)
                lines.append(
                    f"{datetime.fromtimestamp(rec.timestamp, timezone.utc):%H:%M:%S} {rec.step_key or '-'} "
                    f"{rec.dagster_event_type or ''} {rec.user_message}"
                )
                if err is not None:
                    lines.append(err.to_string())
        except Exception as log_exc:
            lines.append(f"(could not read the run's event log: {log_exc})")
    try:
        path.write_text("\n".join(lines))
    except OSError:
        pass
    return path


def _one_line(exc: BaseException) -> str:
    from pipelines.runner import RunFailed

    if isinstance(exc, RunFailed):
        first, *rest = [line for line in str(exc).splitlines() if line.strip()] or [""]
        if re.search(r"ConnectError|ConnectTimeout|unreachable|Name or service not known", exc.detail):
            from urllib.parse import urlsplit

            from pipelines.settings import BASE_URLS

            named = [
                n
                for n in BASE_URLS
                if os.environ.get(n)
                and urlsplit(os.environ[n]).netloc
                and urlsplit(os.environ[n]).netloc in exc.detail
            ]
            first += (
                f" (fix: check {', '.join(named) if named else 'the *_BASE_URL variables'} and the network)"
            )
        # the asset's details (e.g. which coins failed): a few, indented; all of them are in the log
        shown = [f"\n  {line.strip()[:200]}" for line in rest[:3]]
        more = f"\n  ... {len(rest) - 3} more in the log" if len(rest) > 3 else ""
        return first + "".join(shown) + more
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"{exc.strerror}: another process listens on that port; choose another with --port"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "") + f" ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


class _Cli(click.Group):
    """Errors end as one line (cause and fix) plus where the full log is; exit 2 for usage and configuration
    errors, 1 for failures; a stack trace only with ``-v``."""

    def invoke(self, ctx: click.Context):
        from pipelines import runner

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted; what was stored is kept.", err=True)
            ctx.exit(130)
        except SettingsError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except Exception as exc:
            command = ctx.invoked_subcommand or "crypto-weekly"
            log = _write_log(command, exc)
            if ctx.meta.get("verbose"):
                click.echo("".join(traceback.format_exception(exc)), err=True)
            hint = getattr(exc, "hint", "") or ""
            click.echo(f"Error: {_one_line(exc)}{hint}", err=True)
            click.echo(
                f"Full log: {log}" + ("" if ctx.meta.get("verbose") else " (-v prints the stack trace)"),
                err=True,
            )
            ctx.exit(1)
        finally:
            runner.CONSOLE_LOG_LEVEL = "WARNING"


@click.group(cls=_Cli)
@VERBOSE_OPTION
def main() -> None:
    """crypto-weekly: the weekly crypto market update, from raw market data to a sourced report."""


@contextlib.contextmanager
def _reporting() -> Iterator[Reporter]:
    """Dagster's console logs only with -v (INFO), otherwise critical lines only; progress on stderr (a live line
    on a terminal, plain lines otherwise) fed by the stages and by each run's event log."""
    from pipelines import runner

    verbose = click.get_current_context().find_root().meta.get("verbose", False)
    runner.CONSOLE_LOG_LEVEL = "INFO" if verbose else "CRITICAL"
    with Reporter(verbose=verbose, live=None if not verbose else False) as rep:
        runner.RUN_WATCH = rep.watch
        try:
            yield rep
        finally:
            runner.RUN_WATCH = runner._no_watch


PROFILE_OPTION = click.option(
    "--profile",
    type=click.Choice(["default", "real-world"]),
    default="default",
    show_default=True,
    help="real-world: the emulator answers as real users meet the APIs (a venue blocked in the region, a FRED "
    "404, archive publication lags, empty answers, a delisting, a coin's missing day)",
)
BLOCKED_OPTION = click.option(
    "--blocked-venue",
    type=click.Choice(["binance", "bybit"]),
    default="binance",
    show_default=True,
    help="with --profile real-world: Binance answers 451 (default) or Bybit answers 403",
)


@main.command()
@click.option("--week", help="Monday of the week (default: the latest complete week)")
@click.option("--seed", type=int, default=None, help="emulator seed")
@PROFILE_OPTION
@BLOCKED_OPTION
@VERBOSE_OPTION
def demo(week: str | None, seed: int | None, profile: str, blocked_venue: str) -> None:
    """Run everything a week needs against the local market emulator (no network, no key)."""
    import dagster as dg

    from pipelines.runner import demo_clock, emulated_sources, run_week

    week = _week_option(week)
    _prepare()
    _ensure_dagster_home()
    t0 = time.monotonic()
    # The emulated world stands at the Tuesday after the week, as if the report were written live then.
    with (
        emulated_sources(
            seed=seed, now=demo_clock(week), profile=profile, blocked_venue=blocked_venue, out_of_process=True
        ),
        _reporting() as rep,
    ):
        click.echo(f"Emulator up (profile {profile}); materializing the history and the week of {week} ...")
        run = run_week(week, dg.DagsterInstance.get(), context_weeks=CONTEXT_WEEKS, echo=rep.stage)
    _print_result(run)
    click.echo(f"\n(done in {time.monotonic() - t0:.0f} s)")


@main.command()
@click.option("--week", help="Monday of the week (default: the latest complete week)")
@click.option(
    "--emulator", "use_emulator", is_flag=True, help="use the local emulator instead of the real APIs"
)
@click.option("--first-day", default=None, help="first day of the daily history (default: 2025-01-01)")
@VERBOSE_OPTION
def report(week: str | None, use_emulator: bool, first_day: str | None) -> None:
    """Materialize what a week needs and print the report's path."""

    import dagster as dg

    from pipelines.runner import emulated_sources, run_week

    week = _week_option(week)
    first_day = _first_day_option(first_day, week)
    _prepare()
    _ensure_dagster_home()
    ctx = emulated_sources(out_of_process=True) if use_emulator else contextlib.nullcontext()
    with ctx, _reporting() as rep:
        rep.line(f"report for the week of {week} ({'emulator' if use_emulator else 'configured sources'})")
        run = run_week(
            week,
            dg.DagsterInstance.get(),
            context_weeks=CONTEXT_WEEKS,
            echo=rep.stage,
            **({"first_day": first_day} if first_day else {}),
        )
    _print_result(run)


@main.command()
@click.option("--since", default=WEEKLY_START, show_default=True, help="first week (a Monday)")
@click.option(
    "--until", "until", default=None, help="last week (a Monday; default: the latest complete week)"
)
@click.option(
    "--first-day",
    default=None,
    help="first day of the daily range (default: the daily partitions' start, 2025-01-01, so lookbacks "
    "have their history)",
)
@click.option("--redo", is_flag=True, help="recompute weeks whose report is already materialized")
@click.option(
    "--emulator", "use_emulator", is_flag=True, help="use the local emulator instead of the real APIs"
)
@VERBOSE_OPTION
def backfill(since: str, until: str | None, first_day: str | None, redo: bool, use_emulator: bool) -> None:
    """Materialize every day and every week from --since to --until: the days as one run, then the weeks as one.

    Re-running the same command resumes: stored raw pulls are not requested again and weeks already reported
    are skipped (--redo recomputes them, to the same bytes).
    """

    import dagster as dg

    from pipelines.calendar import DAILY_START
    from pipelines.runner import RunFailed, emulated_sources
    from pipelines.runner import backfill as run_backfill

    since = _week_option(since, "--since")
    until = _week_option(until, "--until")
    if until < since:
        raise click.BadParameter(f"--until {until} is before --since {since}")
    first = _first_day_option(first_day, until) or DAILY_START
    _prepare()
    _ensure_dagster_home()
    t0 = time.monotonic()
    ctx = emulated_sources(out_of_process=True) if use_emulator else contextlib.nullcontext()
    with ctx, _reporting() as rep:
        click.echo(
            f"Backfill of the weeks {since}..{until} ({'emulator' if use_emulator else 'configured sources'})"
        )
        try:
            result = run_backfill(
                since, until, dg.DagsterInstance.get(), first_day=first, redo=redo, echo=rep.stage
            )
        except RunFailed as exc:
            exc.hint = "\nWhat was stored is kept; run the same command again to resume from there."  # type: ignore[attr-defined]
            raise
    click.echo(
        f"Backfill done in {time.monotonic() - t0:.0f} s: {len(result.weeks_run)} week(s) computed, "
        f"{len(result.weeks_skipped)} already reported, {len(result.weeks_failed)} not published."
    )
    if result.weeks_failed:
        for week, why in sorted(result.weeks_failed.items()):
            click.echo(f"  {week}: {why}", err=True)
        raise click.ClickException(
            f"{len(result.weeks_failed)} week(s) not published ({', '.join(sorted(result.weeks_failed))}); the "
            "other weeks are. Fix what each names and run the same command again: it resumes with those weeks."
        )


@main.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port"
)
@click.option("--host", default="127.0.0.1", show_default=True, help="bind address (loopback by default)")
@click.option("--seed", type=int, default=None)
@click.option(
    "--now",
    "now_text",
    default=None,
    metavar="ISO",
    help="the emulator's fixed clock (e.g. 2025-12-02T06:00:00+00:00; default: the wall clock at start)",
)
@click.option(
    "--plan",
    type=click.Choice(["pro", "demo"]),
    default="pro",
    show_default=True,
    help="CoinGecko plan to emulate: demo enforces the 365-day history window",
)
@click.option("--rate-limits/--no-rate-limits", default=False, help="answer 429 past the APIs' limits")
@PROFILE_OPTION
@BLOCKED_OPTION
@VERBOSE_OPTION
def emulator(
    port: int,
    host: str,
    seed: int | None,
    now_text: str | None,
    plan: str,
    rate_limits: bool,
    profile: str,
    blocked_venue: str,
) -> None:
    """Serve the market emulator until interrupted; prints the environment to point clients at it (its URLs,
    its plan and its clock), one ``export`` line each, flushed once it answers."""
    from pipelines.emulator.market import DEFAULT_SEED
    from pipelines.emulator.profiles import apply_profile
    from pipelines.emulator.server import MarketEmulator

    validate()
    now = None
    if now_text is not None:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            raise click.BadParameter(f"{now_text!r} is not an ISO date-time", param_hint="--now") from None
        if now.tzinfo is None:
            raise click.BadParameter(f"{now_text!r} has no time zone (add +00:00)", param_hint="--now")
    emu = MarketEmulator(
        seed=seed if seed is not None else DEFAULT_SEED,
        host=host,
        port=port,
        now=now,
        plan=plan,
        rate_limits=rate_limits,
    )
    apply_profile(emu, profile, blocked_venue)
    emu.start()
    for k, v in emu.base_urls().items():
        click.echo(f"export {k}={v}")
    click.echo(f"export CRYPTO_WEEKLY_NOW={emu.now.isoformat()}")  # the pipeline's clock: the emulator's
    click.echo(f"export COINGECKO_API_PLAN={plan}")  # the history window the emulator enforces
    sys.stdout.flush()
    click.echo(f"# emulator clock: {emu.now.isoformat()}; profile {profile}; Ctrl-C to stop", err=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
@click.option(
    "--runs", type=click.IntRange(0, 1000), default=10, show_default=True, help="how many recent runs"
)
@VERBOSE_OPTION
def status(as_json: bool, runs: int) -> None:
    """What a desk checks on Monday morning: weeks reported, their gaps and failed checks, the last runs, the
    lake's size per table. Reads only."""
    import json

    import dagster as dg

    from pipelines.status import collect, render

    root = _prepare(check_warehouse=False)
    _ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        st = collect(root, instance, runs=runs)
    click.echo(json.dumps(st, indent=1) if as_json else render(st))


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option(
    "--emulator/--real",
    "use_emulator",
    default=True,
    show_default=True,
    help="point the sources at the local emulator (default) or the real APIs",
)
@click.option(
    "--reports-port",
    type=click.IntRange(1, 65535),
    default=3001,
    show_default=True,
    help="where the reports folder is served (an index of every week, each report's HTML)",
)
@VERBOSE_OPTION
def dev(port: int, use_emulator: bool, reports_port: int) -> None:
    """Start the Dagster UI (webserver and daemon) on 127.0.0.1 with a persistent DAGSTER_HOME, and serve the
    reports folder beside it (linked from the weekly_report asset's metadata)."""
    from pipelines.report_server import ReportServer
    from pipelines.runner import (
        EVENT_BATCH_ENV,
        EVENT_BATCH_SIZE,
        emulated_sources,
        patched_environ,
        unset_only,
    )

    root = _prepare()
    home = _ensure_dagster_home()
    ctx = emulated_sources(out_of_process=True) if use_emulator else contextlib.nullcontext()
    # the runs the UI, the schedules and the sensors launch store a range's materializations in batches, as the
    # command line's range runs do (``pipelines.runner.range_run_environment``), unless the caller chose otherwise
    batches = unset_only({EVENT_BATCH_ENV: EVENT_BATCH_SIZE})
    with (
        ctx,
        ReportServer(root / "reports", reports_port) as reports,
        patched_environ({"CRYPTO_WEEKLY_REPORTS_URL": reports.url, **batches}),
    ):
        click.echo(f"DAGSTER_HOME={home}; UI on http://127.0.0.1:{port}; reports on {reports.url}/")
        cmd = [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
        proc = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
        )
        # SIGTERM (a service manager, `kill`, a test) is passed on to dagster dev, which stops the webserver,
        # daemon and code server; this process then waits for it and closes the report server and the emulator.
        signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        try:
            proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


@main.command()
@click.option("--name", required=True, help="the worker's name (Celery node name NAME@host)")
@click.option(
    "--dir",
    "base",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="the worker's own directory: DIR/home is its DAGSTER_HOME (the production instance config), "
    "DIR/scratch its TMPDIR",
)
@click.option("--loglevel", default="INFO", show_default=True)
@VERBOSE_OPTION
def worker(name: str, base: Path, loglevel: str) -> None:
    """Start a Celery worker that executes the runs' steps (what `dagster-celery worker start -A
    dagster_celery.app -y` runs), one step at a time. Needs CRYPTO_WEEKLY_CELERY_BROKER, the DAGSTER_PG_*
    variables and the same source and WAREHOUSE_DIR settings as the daemon (docs/deploy.md)."""
    from pipelines import workers

    _prepare()
    base = base.resolve()
    cmd, env = workers.worker_command(name, base / "home", base / "scratch", loglevel=loglevel)
    created = workers.initialize_pools(env)
    click.echo(
        f"worker {name}: DAGSTER_HOME={base / 'home'} TMPDIR={base / 'scratch'}"
        + (f"; created the limits of {len(created)} pools in the instance" if created else ""),
        err=True,
    )
    os.execve(cmd[0], cmd, env)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@main.command("demo-distributed")
@click.option("--week", help="Monday of the week (default: the latest complete week)")
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="also run the week in process and check that both reports are the same bytes",
)
@VERBOSE_OPTION
def demo_distributed(week: str | None, compare: bool) -> None:
    """The demo's week (same emulator clock and history) through the distributed deployment on 127.0.0.1:
    PostgreSQL, Redis, the S3 server, the emulator, the Dagster daemon and two Celery workers; everything is
    stopped at the end, also on failure or Ctrl-C."""
    from pipelines import stack

    week = _week_option(week)
    validate()
    # SIGTERM ends like Ctrl-C: the stack's exits stop every process it started
    signal.signal(signal.SIGTERM, _interrupt)
    t0 = time.monotonic()
    result = stack.main(week, echo=lambda m: click.echo(m, err=True), compare=compare)
    click.echo("")
    click.echo(
        f"Report for the week of {result.week} (distributed run, {result.seconds:.0f} s for the week):"
    )
    click.echo(f"  Markdown: {result.markdown}")
    click.echo(f"  HTML:     {result.html}")
    if result.identical_to_embedded is not None:
        click.echo(
            "  The same week run in process (SQLite, local disk, same emulator clock) wrote "
            + (
                "the same report.md, byte for byte."
                if result.identical_to_embedded
                else "a DIFFERENT report.md."
            )
        )
    click.echo(f"\n(done in {time.monotonic() - t0:.0f} s; every process of the stack stopped)")
    if result.identical_to_embedded is False:
        raise click.ClickException("the distributed report differs from the embedded one for the same clock")


if __name__ == "__main__":
    main()
