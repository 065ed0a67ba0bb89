"""``crypto-weekly``: the pipeline without the UI.

    crypto-weekly demo [--week 2025-11-17]       everything a week needs, from the emulator; prints the report
    crypto-weekly report --week 2025-11-17       the same against the configured sources (real APIs by default)
    crypto-weekly backfill --since 2025-03-31    every day as one run, then every week; resumable
    crypto-weekly emulator [--port 8765]         serve the emulator alone, for any client to point at
    crypto-weekly dev [--port 3000]              the Dagster UI, with the emulator behind it

Click is used because Dagster already depends on it: no new dependency for a proper CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path

import click
from dagster._utils.warnings import BetaWarning, PreviewWarning, SupersessionWarning

# Dagster flags beta parameters we use on purpose (single-run backfills, partition mappings): not for users.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=SupersessionWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"dagster\..*|pipelines\..*")

from pipelines.partitions import latest_complete_week  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Weeks computed before the requested one (when not reported yet), so the report's charts have a history.
CONTEXT_WEEKS = 7


def _ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _week_option(week: str | None) -> str:
    week = week or latest_complete_week()
    try:
        d = datetime.strptime(week, "%Y-%m-%d").date()
    except ValueError as exc:
        raise click.BadParameter(f"{week!r} is not a date (YYYY-MM-DD)") from exc
    if d.weekday() != 0:
        raise click.BadParameter(f"{week} is a {d:%A}; weeks are keyed by their Monday")
    if week > latest_complete_week():
        raise click.BadParameter(f"week {week} has not finished yet (latest complete week: {latest_complete_week()})")
    if week < "2025-03-31":
        raise click.BadParameter("weekly partitions start on 2025-03-31")
    return week


def _print_result(run) -> None:  # noqa: ANN001
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


@click.group()
def main() -> None:
    """crypto-weekly: the weekly crypto market update, from raw market data to a sourced report."""


PROFILE_OPTION = click.option(
    "--profile", type=click.Choice(["default", "real-world"]), default="default", show_default=True,
    help="real-world: the emulator answers as real users meet the APIs (a venue blocked in the region, a FRED "
         "404, archive publication lags, empty answers, a delisting, a coin's missing day)")
BLOCKED_OPTION = click.option(
    "--blocked-venue", type=click.Choice(["binance", "bybit"]), default="binance", show_default=True,
    help="with --profile real-world: Binance answers 451 (default) or Bybit answers 403")


@main.command()
@click.option("--week", help="Monday of the week (default: the latest complete week)")
@click.option("--seed", type=int, default=None, help="emulator seed")
@PROFILE_OPTION
@BLOCKED_OPTION
def demo(week: str | None, seed: int | None, profile: str, blocked_venue: str) -> None:
    """Run everything a week needs against the local market emulator (no network, no key)."""
    import dagster as dg  # noqa: PLC0415

    from pipelines.runner import RunFailed, demo_clock, emulated_sources, run_week  # noqa: PLC0415

    week = _week_option(week)
    _ensure_dagster_home()
    os.environ.setdefault("WAREHOUSE_DIR", str(PROJECT_ROOT / "warehouse"))
    t0 = time.monotonic()
    # The emulated world stands at the Tuesday after the week, as if the report were written live then.
    with emulated_sources(seed=seed, now=demo_clock(week), profile=profile, blocked_venue=blocked_venue):
        click.echo(f"Emulator up (profile {profile}); materializing the history and the week of {week} ...")
        try:
            run = run_week(week, dg.DagsterInstance.get(), context_weeks=CONTEXT_WEEKS)
        except RunFailed as exc:
            raise click.ClickException(str(exc)) from exc
    _print_result(run)
    click.echo(f"\n(done in {time.monotonic() - t0:.0f} s)")


@main.command()
@click.option("--week", help="Monday of the week (default: the latest complete week)")
@click.option("--emulator", "use_emulator", is_flag=True, help="use the local emulator instead of the real APIs")
@click.option("--first-day", default=None, help="first day of the daily history (default: 2025-01-01)")
def report(week: str | None, use_emulator: bool, first_day: str | None) -> None:
    """Materialize what a week needs and print the report's path."""
    import contextlib  # noqa: PLC0415

    import dagster as dg  # noqa: PLC0415

    from pipelines.runner import RunFailed, emulated_sources, run_week  # noqa: PLC0415

    week = _week_option(week)
    _ensure_dagster_home()
    ctx = emulated_sources() if use_emulator else contextlib.nullcontext()
    with ctx:
        try:
            run = run_week(week, dg.DagsterInstance.get(), context_weeks=CONTEXT_WEEKS,
                           **({"first_day": first_day} if first_day else {}))
        except RunFailed as exc:
            raise click.ClickException(str(exc)) from exc
    _print_result(run)


@main.command()
@click.option("--since", default="2025-03-31", show_default=True, help="first week (a Monday)")
@click.option("--until", "until", default=None, help="last week (a Monday; default: the latest complete week)")
@click.option("--first-day", default=None,
              help="first day of the daily range (default: the daily partitions' start, 2025-01-01, so lookbacks "
                   "have their history)")
@click.option("--redo", is_flag=True, help="recompute weeks whose report is already materialized")
@click.option("--emulator", "use_emulator", is_flag=True, help="use the local emulator instead of the real APIs")
def backfill(since: str, until: str | None, first_day: str | None, redo: bool, use_emulator: bool) -> None:
    """Materialize every day and every week from --since to --until: the days as one run, then week by week.

    Re-running the same command resumes: stored raw pulls are not requested again and weeks already reported
    are skipped (--redo recomputes them, to the same bytes).
    """
    import contextlib  # noqa: PLC0415

    import dagster as dg  # noqa: PLC0415

    from pipelines.partitions import DAILY_START  # noqa: PLC0415
    from pipelines.runner import RunFailed, emulated_sources  # noqa: PLC0415
    from pipelines.runner import backfill as run_backfill  # noqa: PLC0415

    since = _week_option(since)
    until = _week_option(until)
    if until < since:
        raise click.BadParameter(f"--until {until} is before --since {since}")
    first = first_day or DAILY_START
    try:
        datetime.strptime(first, "%Y-%m-%d")
    except ValueError as exc:
        raise click.BadParameter(f"--first-day {first!r} is not a date (YYYY-MM-DD)") from exc
    _ensure_dagster_home()
    t0 = time.monotonic()
    ctx = emulated_sources() if use_emulator else contextlib.nullcontext()
    with ctx:
        click.echo(f"Backfill of the weeks {since}..{until} ({'emulator' if use_emulator else 'configured sources'})")
        try:
            result = run_backfill(since, until, dg.DagsterInstance.get(), first_day=first, redo=redo, echo=click.echo)
        except RunFailed as exc:
            raise click.ClickException(
                f"{exc}\nWhat was stored is kept; run the same command again to resume from there."
            ) from exc
    click.echo(
        f"Backfill done in {time.monotonic() - t0:.0f} s: {len(result.weeks_run)} week(s) computed, "
        f"{len(result.weeks_skipped)} already reported."
    )


@main.command()
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="bind address (loopback by default)")
@click.option("--seed", type=int, default=None)
@click.option("--plan", type=click.Choice(["pro", "demo"]), default="pro", show_default=True,
              help="CoinGecko plan to emulate: demo enforces the 365-day history window")
@click.option("--rate-limits/--no-rate-limits", default=False, help="answer 429 past the APIs' limits")
@PROFILE_OPTION
@BLOCKED_OPTION
def emulator(port: int, host: str, seed: int | None, plan: str, rate_limits: bool, profile: str,
             blocked_venue: str) -> None:
    """Serve the market emulator until interrupted; prints the environment to point clients at it."""
    from pipelines.emulator.market import DEFAULT_SEED  # noqa: PLC0415
    from pipelines.emulator.profiles import apply_profile  # noqa: PLC0415
    from pipelines.emulator.server import MarketEmulator  # noqa: PLC0415

    emu = MarketEmulator(seed=seed if seed is not None else DEFAULT_SEED, host=host, port=port, plan=plan,
                         rate_limits=rate_limits)
    apply_profile(emu, profile, blocked_venue)
    emu.start()
    for k, v in emu.base_urls().items():
        click.echo(f"export {k}={v}")
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
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--emulator/--real", "use_emulator", default=True, show_default=True,
              help="point the sources at the local emulator (default) or the real APIs")
def dev(port: int, use_emulator: bool) -> None:
    """Start the Dagster UI (webserver and daemon) on 127.0.0.1 with a persistent DAGSTER_HOME."""
    import contextlib  # noqa: PLC0415

    from pipelines.runner import emulated_sources  # noqa: PLC0415

    home = _ensure_dagster_home()
    os.environ.setdefault("WAREHOUSE_DIR", str(PROJECT_ROOT / "warehouse"))
    ctx = emulated_sources() if use_emulator else contextlib.nullcontext()
    with ctx:
        click.echo(f"DAGSTER_HOME={home}; UI on http://127.0.0.1:{port}")
        cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
               "-h", "127.0.0.1", "-p", str(port)]
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)



if __name__ == "__main__":
    main()
