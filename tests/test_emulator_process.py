"""The emulator served from a child process (``crypto-weekly emulator``), as ``make demo`` and
``make backfill EMULATOR=1`` run it: the same answers as in process, its clock exported, nothing left behind."""

from __future__ import annotations

import os
import subprocess

import httpx
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.emulator.server import MarketEmulator
from pipelines.runner import emulated_sources
from tests.conftest import TEST_NOW

PATHS = (
    ("COINGECKO_BASE_URL", "/coins/markets", {"vs_currency": "usd", "per_page": 50}),
    ("BINANCE_FAPI_BASE_URL", "/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "limit": 20}),
)


def _emulator_children() -> str:
    """This process's emulator children (another xdist worker's emulator process is not ours to count)."""
    return subprocess.run(
        ["pgrep", "-P", str(os.getpid()), "-af", "pipelines.cli emulator"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def test_the_emulator_process_answers_as_the_emulator_in_process_and_stops(emulator: MarketEmulator) -> None:
    with emulated_sources(now=TEST_NOW, out_of_process=True) as child:
        assert child.now == TEST_NOW and child.plan == emulator.plan
        assert set(child.base_urls()) == set(emulator.base_urls())
        for key, path, params in PATHS:
            ours = httpx.get(child.base_urls()[key] + path, params=params)
            theirs = httpx.get(emulator.base_urls()[key] + path, params=params)
            assert ours.status_code == theirs.status_code == 200
            assert ours.content == theirs.content, path
        assert "--port 0" in _emulator_children()  # the check below can see the child
    assert "--port 0" not in _emulator_children()


def test_a_bad_clock_is_one_line() -> None:
    result = CliRunner().invoke(main, ["emulator", "--port", "0", "--now", "yesterday"])
    assert result.exit_code == 2 and "'yesterday' is not an ISO date-time" in result.output
    result = CliRunner().invoke(main, ["emulator", "--port", "0", "--now", "2025-12-02T06:00:00"])
    assert result.exit_code == 2 and "has no time zone" in result.output
