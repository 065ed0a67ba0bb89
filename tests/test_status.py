"""``crypto-weekly status`` on a small warehouse and instance built by hand (no pipeline run)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from pipelines.cli import main


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wh = tmp_path / "wh"
    for week, gaps in (("2025-11-17", ["Bybit was blocked in the region"]), ("2025-11-24", [])):
        d = wh / "reports" / week
        d.mkdir(parents=True)
        (d / "report.md").write_text("# x")
        (d / "report.html").write_text("<p>x</p>")
        (d / "manifest.json").write_text(
            json.dumps({"week": week, "title": f"Week of {week}", "data_gaps": gaps})
        )
    for day in ("2025-11-17", "2025-11-18"):
        part = wh / "lake" / "coin_daily" / f"date={day}"
        part.mkdir(parents=True)
        (part / "data.parquet").write_bytes(b"x" * 1000)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("WAREHOUSE_DIR", str(wh))
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    @dg.asset
    def tiny() -> int:
        return 1

    @dg.asset
    def boom() -> int:
        raise ValueError("CoinGecko /coins/markets listed no coins")

    with dg.DagsterInstance.get() as instance:
        assert not dg.materialize([boom], instance=instance, raise_on_error=False).success
        assert dg.materialize([tiny], instance=instance, tags={"crypto-weekly/trigger": "test"}).success
        for asset, check, passed, week in (
            ("weekly_leverage", "funding_sane", False, "2025-11-24"),
            ("weekly_market", "caps_positive", True, "2025-11-17"),
        ):
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey(asset), check_name=check, passed=passed, partition=week
                )
            )
    return wh


def test_status_text(desk: Path) -> None:
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Weeks reported: 2 (2025-11-17 .. 2025-11-24)" in out
    assert "2025-11-17  1 data gap(s)" in out
    assert "2025-11-24  failed checks: weekly_leverage:funding_sane" in out
    assert "SUCCESS" in out and "__ephemeral_asset_job__" in out
    assert "FAILURE" in out and "boom: CoinGecko /coins/markets listed no coins" in out
    assert "coin_daily" in out and "2 partitions" in out and "2 files" in out


def test_status_json(desk: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.stdout)  # stdout is JSON alone; warnings go to stderr
    assert "does not configure run_coordinator" in result.stderr  # the test home has no run queue
    weeks = {r["week"]: r for r in st["reports"]}
    assert weeks["2025-11-17"]["data_gaps"] == ["Bybit was blocked in the region"]
    assert weeks["2025-11-24"]["failed_checks"] == ["weekly_leverage:funding_sane"]
    assert weeks["2025-11-17"]["failed_checks"] == []
    assert st["lake"] == [{"table": "coin_daily", "partitions": 2, "files": 2, "bytes": 2000}]
    assert st["runs"][0]["status"] == "SUCCESS" and st["runs"][0]["trigger"] == "test"
    assert st["runs"][1]["status"] == "FAILURE" and "listed no coins" in st["runs"][1]["error"]


def test_status_on_an_empty_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    assert "none yet" in result.output and "empty" in result.output
