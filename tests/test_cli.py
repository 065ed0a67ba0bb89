"""The command line against the emulator: backfill (failure, resume, skip, redo) and report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.emulator.server import Fault, MarketEmulator

REPO = Path(__file__).resolve().parents[1]
WEEKS = ("2025-11-17", "2025-11-24")


@pytest.fixture
def cli_env(fresh_emulator: MarketEmulator, env_for, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    wh = env_for(fresh_emulator)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(
        REPO / ".dagster_home" / "dagster.yaml", home / "dagster.yaml"
    )  # the project's pools and queue
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("COINGECKO_MAX_ATTEMPTS", "2")
    return wh, fresh_emulator


def _reports(wh: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(wh)): p.read_bytes() for p in sorted((wh / "reports").rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_backfill_fails_clearly_resumes_skips_and_redoes_to_the_same_bytes(cli_env) -> None:
    wh, emu = cli_env
    runner = CliRunner()
    args = ["backfill", "--since", WEEKS[0], "--until", WEEKS[1], "--first-day", "2025-11-12"]

    emu.inject(Fault(api="coingecko", path="/coins/ethereum/market_chart", kind="500", times=None))
    failed = runner.invoke(main, args)
    assert failed.exit_code == 1, failed.output
    assert "could not be pulled" in failed.output and "ethereum" in failed.output
    assert "run the same command again to resume" in failed.output
    assert not (wh / "reports").exists()

    emu.clear_faults()
    before = emu.count("coingecko", "market_chart")
    resumed = runner.invoke(main, args)
    assert resumed.exit_code == 0, resumed.output
    assert emu.count("coingecko", "market_chart") - before == 1  # only the coin that failed is asked again
    assert f"weeks {WEEKS[0]}..{WEEKS[1]} (2) as one run" in resumed.output  # consecutive weeks: one run
    assert "2 week(s) computed" in resumed.output
    first = _reports(wh)
    assert {f"reports/{w}/report.md" for w in WEEKS} <= set(first)

    again = runner.invoke(main, args)
    assert again.exit_code == 0, again.output
    assert (
        "2 week(s) already reported, skipped" in again.output
        and "as one run ..." not in again.output.split("daily: done")[1]
    )
    assert emu.count("coingecko", "market_chart") - before == 1  # nothing pulled again

    redo = runner.invoke(main, [*args, "--redo"])
    assert redo.exit_code == 0, redo.output
    assert "2 week(s) computed" in redo.output
    assert _reports(wh) == first  # idempotent: the same bytes


def test_backfill_refuses_bad_weeks(cli_env) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["backfill", "--since", "2025-11-18"])
    assert result.exit_code == 2 and "weeks are keyed by their Monday" in result.output
    result = runner.invoke(main, ["backfill", "--since", "2025-11-24", "--until", "2025-11-17"])
    assert result.exit_code == 2 and "is before --since" in result.output


@pytest.mark.slow
def test_report_prints_the_report_path(cli_env) -> None:
    wh, _ = cli_env
    result = CliRunner().invoke(main, ["report", "--week", WEEKS[0], "--first-day", "2025-11-12"])
    assert result.exit_code == 0, result.output
    md = wh / "reports" / WEEKS[0] / "report.md"
    assert f"Markdown: {md}" in result.output and md.exists()
