"""The real server: ``dagster dev`` (webserver, daemon, code server) in a subprocess, a partition backfill
launched through GraphQL as the UI does, run by the daemon, then a clean shutdown with nothing left behind.

The backfill targets, in one request, the registry (unpartitioned), a range of days of the daily assets and two
weeks of the weekly assets: the daemon runs the registry, then the days as one run (single-run backfill
policy), then one run per week.
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
from pathlib import Path

import dagster as dg
import pytest

from pipelines.emulator.server import MarketEmulator
from pipelines.runner import PACED_APIS

REPO = Path(__file__).resolve().parents[1]
DAYS = ("2025-11-16", "2025-11-30")  # the opens and closes of the two weeks
WEEKS = ("2025-11-17", "2025-11-24")
DAILY_ASSETS = ("raw_coingecko_market_charts", "coin_daily")
WEEKLY_ASSETS = ("weekly_market_summary", "weekly_movers", "weekly_report")
UNPARTITIONED = ("raw_coingecko_markets", "coin_registry")

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


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_backfill_through_dagster_dev(fresh_emulator: MarketEmulator, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")  # the project's queue and pools
    wh = tmp_path / "warehouse"
    port = _free_port()
    env = {
        **os.environ,
        **fresh_emulator.base_urls(),
        **{f"{api}_CALLS_PER_MINUTE": "0" for api in PACED_APIS},  # no pacing against the loopback emulator
        "COINGECKO_API_PLAN": fresh_emulator.plan,  # the plan the emulator enforces (no 365-day window)
        "WAREHOUSE_DIR": str(wh),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    log = (tmp_path / "dagster_dev.log").open("w")
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_reset_sigint,
    )
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        # 1. the webserver answers and the code location is loaded
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not come up in 240 s"
            try:
                entries = _graphql(port, LOCATIONS, timeout=5)["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    assert all(e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries), entries
                    break
            except (OSError, ValueError):
                pass
            time.sleep(1)
        timings["server_up"] = time.monotonic() - t0

        # 2. one backfill, as the UI launches it: registry, days, weeks
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
        launched = _graphql(port, LAUNCH, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        # 3. the daemon runs it to the end
        t1 = time.monotonic()
        status = None
        while time.monotonic() - t1 < 600:
            got = _graphql(port, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
            status = got["status"]
            if status not in ("REQUESTED", "CANCELING", "FAILING"):
                break
            time.sleep(3)
        timings["backfill"] = time.monotonic() - t1
        assert status == "COMPLETED_SUCCESS", (got, (tmp_path / "dagster_dev.log").read_text()[-4000:])
    finally:
        # 4. clean shutdown: SIGTERM to dagster dev, which stops the webserver, daemon and code server
        t2 = time.monotonic()
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
        timings["shutdown"] = time.monotonic() - t2
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
    assert proc.returncode is not None, "dagster dev did not exit on SIGTERM"
    assert not left, f"processes left behind after shutdown: {sorted(left)}"

    # 5. every targeted partition is materialized, by the runs the daemon launched
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in DAILY_ASSETS:
            got = instance.get_materialized_partitions(dg.AssetKey(key))
            expected = {f"2025-11-{d:02d}" for d in range(16, 31)}
            assert expected <= got, (key, sorted(expected - got))
        for key in WEEKLY_ASSETS:
            assert set(WEEKS) <= instance.get_materialized_partitions(dg.AssetKey(key)), key
        for key in UNPARTITIONED:
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None, key
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        runs = [r.dagster_run for r in records]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        for rec in reversed(records):
            what = ",".join(sorted(k.to_user_string() for k in rec.dagster_run.asset_selection or ()))
            print(f"run {what}: queued {rec.start_time - rec.create_timestamp.timestamp():.0f} s, "
                  f"ran {rec.end_time - rec.start_time:.0f} s")
        daily_runs = [r for r in runs if "coin_daily" in {k.to_user_string() for k in r.asset_selection or ()}]
        assert len(daily_runs) == 1  # fifteen days, one run
    for week in WEEKS:
        assert (wh / "reports" / week / "report.md").read_text().startswith("# ")
        assert (wh / "reports" / week / "manifest.json").exists()
