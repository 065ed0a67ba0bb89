"""The benchmark's smallest configuration still runs end to end and writes its report (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

# About 90 seconds on two cores: the whole pipeline for one week (8 days, 8 perpetuals), three times (Dagster,
# the floor, the set-based floor), and the paced pulls (42 days, 1 coin, 1 perpetual; FRED at 120/min).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_bench_quick_configuration_writes_results(tmp_path: Path) -> None:
    from bench.run import main

    out = main(["--quick", "--inprocess", "--out", str(tmp_path / "RESULTS.md")])
    text = out.read_text()
    for heading in (
        "## 1. Backfill",
        "## 2. One new week",
        "## 3. Weekly tables",
        "## 4. Requests to every source",
    ):
        assert heading in text
    assert "Answered 429: **0**" in text
    assert "| dagster | 1 |" in text and "| floor | 1 |" in text and "| set_floor | 1 |" in text
    # the pulls table has a column per API the emulator serves, each with requests in the fresh backfill
    header = next(line for line in text.splitlines() if line.startswith("| run | days |"))
    for api in ("coingecko", "binance_fapi", "binance_spot", "bybit", "okx", "fred"):
        assert f" {api} |" in header
    fresh = next(line for line in text.splitlines() if line.startswith("| fresh backfill |"))
    cells = [c.strip() for c in fresh.strip("|").split("|")]
    assert all(int(c) > 0 for c in cells[2:9]), fresh
