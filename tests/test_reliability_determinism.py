"""Determinism: two full runs (same emulator seed and clock, two emulators, two warehouses) give the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.emulator.market import DEFAULT_SEED
from pipelines.runner import emulated_sources
from tests._reliability import tree_hashes, week
from tests.conftest import TEST_NOW

WEEK = "2025-11-17"


def _full_run(wh: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("WAREHOUSE_DIR", str(wh))
    with emulated_sources(
        seed=DEFAULT_SEED, now=TEST_NOW
    ):  # its own emulator; the pipeline's clock is its clock
        week(WEEK, "2025-11-01")
    return tree_hashes(wh, "lake", "reports")


def test_two_runs_give_byte_identical_lake_and_reports(
    week_from_november, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run a is the session's run of the week (tests/conftest.py: its own emulator, warehouse and instance; hashed
    right after it ran); run b is made here the same way, from an empty warehouse in another directory."""
    monkeypatch.delenv("CRYPTO_WEEKLY_NOW", raising=False)
    a = week_from_november.hashes
    b = _full_run(tmp_path / "b" / "warehouse", monkeypatch)
    assert len([k for k in a if k.startswith("lake/coin_daily/")]) == 23  # 2025-11-01..2025-11-23
    assert {
        f"reports/{WEEK}/report.md",
        f"reports/{WEEK}/report.html",
        f"reports/{WEEK}/manifest.json",
    } <= set(a)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    assert not differ, differ
    for wh in (week_from_november.warehouse, tmp_path / "b" / "warehouse"):
        manifest = (wh / "reports" / WEEK / "manifest.json").read_text()
        assert str(wh.parent) not in manifest  # only paths relative to the warehouse
        assert all(not Path(i["path"]).is_absolute() for i in json.loads(manifest)["inputs"])
