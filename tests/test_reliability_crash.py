"""Crashes: the backfill is SIGKILLed mid-way, then run again; it must end exactly where an uninterrupted run ends.

The runs are real subprocesses (emulator + ``run_week``), killed with SIGKILL at a chosen moment: while raw
market charts are being stored, and while the clean lake is being written. The re-run must complete, leave no
``.tmp-*`` file, no duplicate row, and a lake and report byte-identical to an uninterrupted run's (raw files differ
only by what the killed run had stored already, which the re-run reuses).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.warehouse import Warehouse
from tests._reliability import tree_hashes
from tests.conftest import REPO, TEST_NOW

SCRIPT = """
import os, sys
from datetime import datetime
import dagster as dg
from pipelines.runner import emulated_sources, run_week
with emulated_sources(now=datetime.fromisoformat(sys.argv[1])):
    run = run_week("2025-11-17", dg.DagsterInstance.ephemeral(), first_day="2025-11-10")
print("REPORT", run.markdown)
"""


def _spawn(wh: Path, tmp: Path) -> subprocess.Popen:
    script = tmp / "backfill.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "WAREHOUSE_DIR": str(wh), "COINGECKO_TOP_N": "120", "DAGSTER_DISABLE_TELEMETRY": "1"}
    env.pop("CRYPTO_WEEKLY_NOW", None)
    return subprocess.Popen(
        [sys.executable, str(script), TEST_NOW.isoformat()],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(wh: Path, tmp: Path) -> None:
    proc = _spawn(wh, tmp)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, "the run ended before the kill point: " + proc.stdout.read()[-2000:]
        assert time.monotonic() - t0 < timeout, "kill point never reached"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _charts(wh: Path) -> int:
    return len(list((wh / "raw/coingecko/market_chart_range").glob("coin=*/*.meta.json")))


def _lake_days(wh: Path) -> int:
    return len(list((wh / "lake/coin_daily").glob("date=*/data.parquet")))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The warehouse of one uninterrupted run (read only: a test that changes it works on a copy)."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    _run(tmp / "warehouse", tmp)
    return tmp / "warehouse"


@pytest.fixture(scope="module")
def reference(uninterrupted: Path) -> dict[str, str]:
    return tree_hashes(uninterrupted, "lake", "reports")


def _assert_clean_and_equal(wh: Path, reference: dict[str, str]) -> None:
    leftovers = [p for p in wh.rglob(".tmp-*")]
    assert not leftovers, leftovers
    assert tree_hashes(wh, "lake", "reports") == reference
    dupes = Warehouse(wh).query(
        "SELECT date, coin_id, count(*) AS n FROM coin_daily GROUP BY ALL HAVING n > 1"
    )
    assert dupes.is_empty(), dupes
    # every stored body has its record, and every record its body
    raw = [p for p in (wh / "raw").rglob("*") if p.is_file() and not p.name.startswith(("_", "."))]
    bodies = {p for p in raw if not p.name.endswith(".meta.json")}  # .json, .csv, .zip, ...
    metas = {p for p in raw if p.name.endswith(".meta.json")}
    assert {Warehouse.meta_path(p) for p in bodies} == metas


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(lambda wh: _charts(wh) >= 40, id="mid-raw-pulls"),
        pytest.param(lambda wh: _lake_days(wh) >= 1, id="mid-lake-writes"),
    ],
)
def test_sigkill_then_rerun_equals_an_uninterrupted_run(point, reference, tmp_path: Path) -> None:
    wh = tmp_path / "warehouse"
    proc = _spawn(wh, tmp_path)
    _kill_when(proc, lambda: point(wh))
    killed_at = (_charts(wh), _lake_days(wh))
    _run(wh, tmp_path)
    _assert_clean_and_equal(wh, reference)
    assert killed_at[0] >= 1  # the re-run really started from a half-done warehouse


def test_leftovers_of_a_kill_are_completed_or_swept(uninterrupted: Path, reference, tmp_path: Path) -> None:
    """The states a kill can leave, made on purpose: a body without .meta.json, dead writers' temp files, and a
    registry snapshot stored without its completion marker (in a copy of the uninterrupted run's warehouse)."""
    wh = tmp_path / "warehouse"
    shutil.copytree(uninterrupted, wh)
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead_pid = finished.pid  # a writer that is gone
    coin = wh / "raw/coingecko/market_chart_range/coin=solana"
    body = sorted(p for p in coin.glob("*.json") if not p.name.endswith(".meta.json"))[-1]
    body.with_suffix(".meta.json").unlink()  # killed between the body and its record
    body.write_bytes(body.read_bytes()[:100])  # (and not even the right bytes: it is not stored data)
    (coin / f".tmp-{dead_pid}-abc").write_bytes(b"half a body")
    lake_dir = wh / "lake/coin_daily/date=2025-11-20"
    (lake_dir / f".tmp-{dead_pid}-xyz.parquet").write_bytes(b"PAR1 half")
    snaps = wh / "raw/coingecko/markets"
    marker = next(snaps.glob("snapshot=*/_complete"))
    marker.unlink()  # killed before the snapshot was marked complete
    for p in (wh / "lake").rglob("data.parquet"):
        p.unlink()  # and lost the lake entirely
    (wh / "reports/2025-11-17/report.md").unlink()
    _run(wh, tmp_path)
    assert marker.exists()  # the same snapshot completed in place (same clock, same bytes)
    assert body.with_suffix(".meta.json").exists() and len(body.read_bytes()) > 100  # re-pulled, recorded
    _assert_clean_and_equal(wh, reference)
