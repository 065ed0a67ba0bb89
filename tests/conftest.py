"""Shared fixtures: a fixed-clock emulator, temporary warehouses, the real-data folder."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import dagster as dg

warnings.filterwarnings("ignore", category=DeprecationWarning)
try:  # Dagster's beta/preview warnings are noise in test output
    from dagster._utils.warnings import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)
except ImportError:  # pragma: no cover
    pass


def _temporary_folder_in_memory() -> str | None:
    """/dev/shm when it is a writable tmpfs with at least 4 GiB free, else None."""
    shm = "/dev/shm"
    try:
        with open("/proc/mounts") as mounts:
            if not any(line.split()[1:3] == [shm, "tmpfs"] for line in mounts):
                return None
        st = os.statvfs(shm)
    except OSError:
        return None
    return shm if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize >= 4 << 30 else None


# The tests' temporary folders (warehouses, Dagster instances, servers' directories) go to memory when the
# machine has a tmpfs: every Dagster event of a run is an SQLite commit and every partition a few small files, and
# on this project's machines the same runs took about two thirds of the time there (a run of 335 days: 115 s on disk, 74 s
# on tmpfs). A TMPDIR set by the caller is kept; subprocesses inherit the choice.
if "TMPDIR" not in os.environ and (_in_memory := _temporary_folder_in_memory()):
    os.environ["TMPDIR"] = _in_memory
    import tempfile

    tempfile.tempdir = None  # gettempdir() reads TMPDIR again

# Follow 8 perpetuals instead of 40 in tests: the same code paths, a fifth of the requests and rows.
os.environ.setdefault("CRYPTO_WEEKLY_PERP_TOP_N", "8")

from pipelines.emulator.server import MarketEmulator  # noqa: E402
from pipelines.runner import PACED_APIS  # noqa: E402

# The emulator's clock in tests: fixed, so every run sees the same market and the same bytes.
TEST_NOW = datetime(2025, 12, 2, 6, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def emulator() -> Iterator[MarketEmulator]:
    with MarketEmulator(now=TEST_NOW) as emu:
        yield emu


# The source-client tests (tests/test_sources_*.py) share one emulator whose clock is 2025-12-01 00:00 UTC.
SOURCES_NOW = datetime(2025, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def _sources_emulator() -> Iterator[MarketEmulator]:
    with MarketEmulator(now=SOURCES_NOW) as emu:
        yield emu


@pytest.fixture
def emu(_sources_emulator: MarketEmulator) -> Iterator[MarketEmulator]:
    """The source tests' emulator; faults a test injected are cleared after it."""
    yield _sources_emulator
    _sources_emulator.clear_faults()


def emulator_client(emu: MarketEmulator, client_class, base_url_key: str, **options) -> Iterator:
    """For a fixture to ``yield from``: an open source client on ``emu``'s ``base_url_key`` URL that never sleeps
    between retries and gives up on a silent emulator after half a second (``options``: the client's other
    arguments); closed after the test."""
    with client_class(emu.base_urls()[base_url_key], sleep=lambda s: None, timeout=0.5, **options) as client:
        yield client


@pytest.fixture
def fresh_emulator() -> Iterator[MarketEmulator]:
    """An emulator of one's own, for tests that inject faults or count requests."""
    with MarketEmulator(now=TEST_NOW) as emu:
        yield emu


@contextmanager
def run_instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance held in memory (``DagsterInstance.ephemeral``), for tests whose in-process runs are read
    back by the same process: a week's runs took a third less time than on ``instance_for_test``'s SQLite files
    (12.8 against 18.4 s, medians of five, each event a commit through a connection of its own). The tests of
    the instance itself (its storage, pools, servers, CLI and several processes) keep SQLite or PostgreSQL."""
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    try:
        yield instance
    finally:
        instance.dispose()


def emulator_env(emu: MarketEmulator, wh: Path) -> dict[str, str]:
    """The environment that points the pipeline at ``emu`` and the warehouse ``wh``: its URLs, its fixed clock
    and plan, no pacing. A run without the clock would take the wall clock, whose plan window (365 days back
    from today) no longer matches the emulator's days."""
    return {
        "WAREHOUSE_DIR": str(wh),
        # no pacing against the loopback emulator
        **{f"{api}_CALLS_PER_MINUTE": "0" for api in PACED_APIS},
        "CRYPTO_WEEKLY_NOW": emu.now.isoformat(),  # the emulator's fixed clock
        "COINGECKO_API_PLAN": emu.plan,  # the plan the emulator enforces
        **emu.base_urls(),
    }


def point_env_at(mp: pytest.MonkeyPatch, emu: MarketEmulator, wh: Path) -> Path:
    """Point the pipeline's resources at ``emu`` and the warehouse ``wh`` (through ``mp``, undone with it)."""
    for k, v in emulator_env(emu, wh).items():
        mp.setenv(k, v)
    return wh


@dataclass
class BuiltWeek:
    run: object  # pipelines.runner.WeekRun
    warehouse: Path
    emulator: MarketEmulator
    instance: object  # dagster.DagsterInstance
    hashes: dict[str, str]  # sha256 of lake/ and reports/ right after the run, before any test touched them


@pytest.fixture(scope="session")
def week_from_november(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltWeek]:
    """Week 2025-11-17 run once from an empty warehouse with its history from 2025-11-01 (run_week, default
    universe, its own emulator, warehouse and Dagster instance), for the tests that read such a run: the
    end-to-end tests of tests/test_pipeline_e2e.py, and the determinism test as one of its two runs. Built once per
    session (per xdist worker) instead of once per test. The environment points at it only while it is built;
    a user that runs more on it points the environment at it again (point_env_at)."""
    from pipelines.runner import run_week
    from tests._reliability import tree_hashes

    with MarketEmulator(now=TEST_NOW) as emu, run_instance() as instance:
        wh = tmp_path_factory.mktemp("week_from_november") / "warehouse"
        with pytest.MonkeyPatch.context() as mp:
            point_env_at(mp, emu, wh)
            run = run_week("2025-11-17", instance, first_day="2025-11-01")
        yield BuiltWeek(run, wh, emu, instance, tree_hashes(wh, "lake", "reports"))


@pytest.fixture
def env_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point the pipeline's resources at an emulator and a temporary warehouse."""

    def apply(emu: MarketEmulator) -> Path:
        return point_env_at(monkeypatch, emu, tmp_path / "warehouse")

    return apply


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def _fresh_host_breakers() -> Iterator[None]:
    """Each test starts with every host's circuit breaker closed (a dead port in one test stays there)."""
    from pipelines.sources.http import HostBreaker

    HostBreaker.reset_all()
    yield
    HostBreaker.reset_all()
