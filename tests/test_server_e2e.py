"""The real server: ``crypto-weekly dev`` (``dagster dev``: webserver, daemon and code server, with the reports
folder served over HTTP beside it) in a subprocess, started once for this module, then:

- a partition backfill launched through GraphQL as the UI does, run by the daemon;
- the ``weekly_report`` asset page in headless Chromium, and the report it links to;
- a clean shutdown with nothing left behind (checked when the module's server stops).

The backfill targets, in one request, the registry (unpartitioned), a range of days of the daily assets and two
weeks of the weekly assets: the daemon runs the registry, then the days as one run, then the two weeks as one
run (the single-run backfill policy of the daily and of the weekly assets).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from pipelines.emulator.server import MarketEmulator
from pipelines.runner import PACED_APIS
from pipelines.sqlite_instance import home_instance
from tests.conftest import TEST_NOW

REPO = Path(__file__).resolve().parents[1]
DAYS = ("2025-11-16", "2025-11-30")  # the opens and closes of the two weeks
WEEKS = ("2025-11-17", "2025-11-24")
DAILY_ASSETS = ("raw_coingecko_market_charts", "coin_daily")
WEEKLY_ASSETS = ("weekly_market_summary", "weekly_movers", "weekly_report")
UNPARTITIONED = ("raw_coingecko_markets", "coin_registry")
CHROMIUM = Path("/usr/bin/chromium")
# Screenshots of the browser test, kept by CI as artifacts (gitignored).
ARTIFACTS = REPO / "test-artifacts" / "browser"

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numCancelable error { message } }
    ... on PythonError { message }
  }
}
"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = json.loads(resp.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def _session_pids(sid: int) -> set[int]:
    """Live processes of a session (the server and everything it started), from /proc."""
    pids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            pids.add(int(d.name))
    return pids


def _reset_sigint() -> None:
    # A shell that is not interactive starts background children with SIGINT ignored; dagster dev then
    # ignores the SIGINT/SIGTERM it relies on to stop its children. Restore the default in the child.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class DevServer:
    """A running ``crypto-weekly dev`` and what the module's backfill did on it."""

    port: int
    reports_url: str
    home: Path  # DAGSTER_HOME
    warehouse: Path
    log: Path
    backfill_id: str = ""
    backfill: dict = field(default_factory=dict)  # the backfill's last status answer
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text()[-chars:]


def _wait_until_loaded(proc: subprocess.Popen, server: DevServer) -> None:
    """The webserver answers and the code location is loaded."""
    deadline = time.monotonic() + 240
    while True:
        assert proc.poll() is None, server.log_tail(3000)
        assert time.monotonic() < deadline, "server did not come up in 240 s"
        try:
            entries = _graphql(server.port, LOCATIONS, timeout=5)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                assert all(e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries), (
                    entries
                )
                return
        except (OSError, ValueError):
            pass
        time.sleep(1)


def _run_backfill(server: DevServer) -> None:
    """One backfill, as the UI launches it (registry, days, weeks), followed until the daemon is done."""
    day_range = {"range": {"start": DAYS[0], "end": DAYS[1]}}
    week_range = {"range": {"start": WEEKS[0], "end": WEEKS[1]}}
    by_asset = (
        [{"assetKey": {"path": [k]}, "partitions": None} for k in UNPARTITIONED]
        + [{"assetKey": {"path": [k]}, "partitions": day_range} for k in DAILY_ASSETS]
        + [{"assetKey": {"path": [k]}, "partitions": week_range} for k in WEEKLY_ASSETS]
    )
    params = {
        "partitionsByAssets": by_asset,
        "title": "server e2e",
        "tags": [{"key": "crypto-weekly/trigger", "value": "test"}],
    }
    launched = _graphql(server.port, LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    server.backfill_id = launched["backfillId"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 600:
        server.backfill = _graphql(server.port, STATUS, {"id": server.backfill_id})[
            "partitionBackfillOrError"
        ]
        if server.backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        time.sleep(3)
    server.timings["backfill"] = time.monotonic() - t0


def _stop(proc: subprocess.Popen) -> set[int]:
    """SIGTERM to crypto-weekly dev, which passes it on to dagster dev (webserver, daemon, code server) and
    closes the report server; returns the processes of its session still alive after 90 + 30 s (then killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 30
    while _session_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _session_pids(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    return left


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """``crypto-weekly dev`` on free 127.0.0.1 ports, against an emulator, with the module's backfill run; one
    per module (per xdist worker), stopped at the end with the check that nothing is left running."""
    tmp = tmp_path_factory.mktemp("dev_server")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(
        REPO / ".dagster_home" / "dagster.yaml", home / "dagster.yaml"
    )  # the project's queue and pools
    port = _free_port()
    reports_port = _free_port()
    while reports_port == port:
        reports_port = _free_port()
    server = DevServer(
        port=port,
        reports_url=f"http://127.0.0.1:{reports_port}",
        home=home,
        warehouse=tmp / "warehouse",
        log=tmp / "crypto_weekly_dev.log",
    )
    with MarketEmulator(now=TEST_NOW) as emu:
        env = {
            **os.environ,
            **emu.base_urls(),
            **{
                f"{api}_CALLS_PER_MINUTE": "0" for api in PACED_APIS
            },  # no pacing against the loopback emulator
            "COINGECKO_API_PLAN": emu.plan,  # the plan the emulator enforces (no 365-day window)
            "WAREHOUSE_DIR": str(server.warehouse),
            "DAGSTER_HOME": str(home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
        # crypto-weekly dev (pipelines.cli): --real keeps the sources the environment names (here this test's
        # emulator, whose clock is fixed) instead of starting an emulator of its own.
        cmd = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "dev",
            "--real",
            "--port",
            str(port),
            "--reports-port",
            str(reports_port),
        ]
        with server.log.open("w") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_reset_sigint,
            )
        t0 = time.monotonic()
        try:
            _wait_until_loaded(proc, server)
            server.timings["server_up"] = time.monotonic() - t0
            _run_backfill(server)
            yield server
        finally:
            t1 = time.monotonic()
            left = _stop(proc)
            server.timings["shutdown"] = time.monotonic() - t1
            print("crypto-weekly dev timings (s):", {k: round(v, 1) for k, v in server.timings.items()})
    assert proc.returncode is not None, "crypto-weekly dev did not exit on SIGTERM"
    assert not left, f"processes left behind after shutdown: {sorted(left)}\n{server.log_tail()}"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_backfill_through_dagster_dev(dev_server: DevServer) -> None:
    assert dev_server.backfill.get("status") == "COMPLETED_SUCCESS", (
        dev_server.backfill,
        dev_server.log_tail(),
    )

    # every targeted partition is materialized, by the runs the daemon launched
    with home_instance(dev_server.home) as instance:
        for key in DAILY_ASSETS:
            got = instance.get_materialized_partitions(dg.AssetKey(key))
            expected = {f"2025-11-{d:02d}" for d in range(16, 31)}
            assert expected <= got, (key, sorted(expected - got))
        for key in WEEKLY_ASSETS:
            assert set(WEEKS) <= instance.get_materialized_partitions(dg.AssetKey(key)), key
        for key in UNPARTITIONED:
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": dev_server.backfill_id}))
        runs = [r.dagster_run for r in records]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        for rec in reversed(records):
            what = ",".join(sorted(k.to_user_string() for k in rec.dagster_run.asset_selection or ()))
            print(
                f"run {what}: queued {rec.start_time - rec.create_timestamp.timestamp():.0f} s, "
                f"ran {rec.end_time - rec.start_time:.0f} s"
            )
        daily_runs = [
            r for r in runs if "coin_daily" in {k.to_user_string() for k in r.asset_selection or ()}
        ]
        assert len(daily_runs) == 1  # fifteen days, one run
        weekly_runs = [
            r for r in runs if "weekly_report" in {k.to_user_string() for k in r.asset_selection or ()}
        ]
        assert len(weekly_runs) == 1  # two weeks, one run
    for week in WEEKS:
        assert (dev_server.warehouse / "reports" / week / "report.md").read_text().startswith("# ")
        assert (dev_server.warehouse / "reports" / week / "manifest.json").exists()


def _latest_report_materialization(server: DevServer, week: str) -> dg.EventLogRecord:
    with home_instance(server.home) as instance:
        got = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("weekly_report"), asset_partitions=[week]), limit=1
        ).records
    assert got, f"no materialization of weekly_report for {week}"
    return got[0]


def _browse_weekly_report(server: DevServer, week: str, artifacts: Path) -> tuple[Path, Path]:
    """Headless Chromium (Playwright driving /usr/bin/chromium) on the weekly_report page of ``week`` in the
    Dagster UI, then on the report through the link in its metadata. Asserts what a person would check and that
    neither page logs an error; returns the two screenshots (a third, ``*-failure.png``, on a failure)."""
    from playwright.sync_api import ConsoleMessage, expect, sync_playwright

    report_dir = server.warehouse / "reports" / week
    title = json.loads((report_dir / "manifest.json").read_text())["title"]
    assert title and (report_dir / "report.md").read_text().splitlines()[0] == f"# {title}"
    record = _latest_report_materialization(server, week)
    served = record.asset_materialization.metadata["served"].url
    assert served == f"{server.reports_url}/{week}/report.html"

    artifacts.mkdir(parents=True, exist_ok=True)
    asset_png, report_png = artifacts / "weekly_report-asset-page.png", artifacts / "weekly_report-html.png"
    failure_png = artifacts / "weekly_report-failure.png"
    for png in (asset_png, report_png, failure_png):
        png.unlink(missing_ok=True)  # no screenshot of an earlier run passes for this one's
    errors: list[str] = []
    expect.set_options(
        timeout=60_000
    )  # the UI's first render, on a 2-core machine running the other tests too
    # Dagster's "Join the Dagster community" dialog opens once per DAGSTER_HOME when the UI is served from
    # 127.0.0.1 or localhost (GraphQL shouldShowNux); the test's home is new, so a person meets it and skips it.
    nux = _graphql(server.port, "{ shouldShowNux }")["shouldShowNux"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(f"console error at {message.location['url']}: {message.text}")

        context.on("console", on_console)
        context.on("weberror", lambda e: errors.append(f"uncaught exception: {e.error}"))
        page = context.new_page()
        try:
            page.goto(f"{server.url}/assets/weekly_report?view=partitions&partition={week}")
            if nux:
                dialog = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
                dialog.get_by_role("button", name="Skip").click()
                expect(dialog).to_be_hidden()

            def row(key: str):
                return page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))

            # the week's partition shown as materialized, by the run that wrote it, with the report's metadata
            detail = (
                page.locator("div")
                .filter(has=page.get_by_title(week, exact=True))
                .filter(has=page.get_by_text("Materialized", exact=True))
                .last
            )
            expect(detail).to_be_visible()
            expect(page.locator(f'a[href^="/runs/{record.run_id}"]')).to_be_visible()
            expect(row("title")).to_contain_text(title)
            link = row("served").get_by_role("link", name=served, exact=True)
            expect(link).to_have_attribute("href", served)
            page.screenshot(path=asset_png)

            with context.expect_page() as opened:
                link.click()  # target=_blank: the report opens in a new tab
            report = opened.value
            report.wait_for_load_state()
            expect(report).to_have_url(served)
            expect(report).to_have_title(title)
            expect(report.get_by_role("heading", level=1)).to_have_text(title)
            expect(report.get_by_role("heading", level=1)).to_be_visible()
            report.screenshot(path=report_png)  # the top of the report: its headline and first chart
        except Exception as exc:
            for p in context.pages:
                p.screenshot(path=failure_png if p is page else artifacts / "weekly_report-failure-tab.png")
            exc.add_note(f"screenshots in {artifacts}; console errors so far: {errors}")
            raise
        finally:
            browser.close()
    if nux:
        assert _graphql(server.port, "{ shouldShowNux }")["shouldShowNux"] is False  # Skip was recorded
    assert errors == [], f"{errors} (screenshots in {artifacts})"
    return asset_png, report_png


@pytest.mark.slow
@pytest.mark.timeout(900)  # the module's server and backfill are built first when this test runs alone
def test_weekly_report_in_headless_chromium(request: pytest.FixtureRequest) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not installed at {CHROMIUM} (apt-get install -y chromium)")
    server: DevServer = request.getfixturevalue("dev_server")  # after the skip: no server for a skipped test
    assert server.backfill.get("status") == "COMPLETED_SUCCESS", (server.backfill, server.log_tail())
    t0 = time.monotonic()
    shots = _browse_weekly_report(server, WEEKS[-1], ARTIFACTS)
    print(f"browser checks: {time.monotonic() - t0:.1f} s; screenshots: {', '.join(map(str, shots))}")
