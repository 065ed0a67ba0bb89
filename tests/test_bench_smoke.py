"""The benchmark's smallest configuration still runs end to end and writes its report (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

# Deselected from `make test` (pyproject: -m "not bench"): since the derivatives and weekly assets were merged,
# the quick configuration trips coin_daily's blocking coverage check and the benchmark needs rework (issue 8).
# Run it with `pytest -m bench`.
pytestmark = [pytest.mark.slow, pytest.mark.bench]


def test_bench_quick_configuration_writes_results(tmp_path: Path) -> None:
    from bench.run import main

    out = main(["--quick", "--inprocess", "--out", str(tmp_path / "RESULTS.md")])
    text = out.read_text()
    for heading in ("## 1. Backfill", "## 2. One new week", "## 3. Weekly tables", "## 4. Requests"):
        assert heading in text
    assert "Answered 429: **0**" in text
    assert "| dagster | 1 |" in text and "| floor | 1 |" in text
