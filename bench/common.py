"""Shared by every phase: temporary warehouse + Dagster instance, the emulator, partition discovery, timing."""

from __future__ import annotations

import os
import resource
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Timer:
    laps: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def lap(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.laps[name] = self.laps.get(name, 0.0) + time.perf_counter() - t0


def weekly_keys() -> list[str]:
    """Every weekly partition key that exists now (discovered from ``pipelines.calendar``)."""
    from pipelines.calendar import WEEKLY

    return WEEKLY.get_partition_keys()


def daily_range_for(weeks: list[str], history_days: int | None = None) -> tuple[date, date]:
    """The daily partitions the weekly partitions need: from ``DERIVATIVES_HISTORY_DAYS`` (100) before the first
    week's open (the leverage table looks 90 days back for its open-interest peak; correlation and volatility 30)
    to the last week's close, not before the first daily partition: the range a report run pulls.
    ``history_days`` takes that many days before the open instead (1: the week's open and its days only)."""
    from pipelines.calendar import DAILY_START, week_close_days
    from pipelines.runner import DERIVATIVES_HISTORY_DAYS

    back = DERIVATIVES_HISTORY_DAYS if history_days is None else history_days
    mondays = sorted(date.fromisoformat(w) for w in weeks)
    first = max(date.fromisoformat(DAILY_START), mondays[0] - timedelta(days=back))
    return first, week_close_days(mondays[-1].isoformat())[1]


@contextmanager
def temp_env(**extra: str) -> Iterator[Path]:
    """A temporary WAREHOUSE_DIR (and DAGSTER_HOME) for the duration; environment restored after."""
    from pipelines.runner import patched_environ

    with tempfile.TemporaryDirectory(prefix="crypto-bench-") as tmp:
        root = Path(tmp)
        (root / "dagster_home").mkdir()
        env = {"WAREHOUSE_DIR": str(root / "warehouse"), "DAGSTER_HOME": str(root / "dagster_home"), **extra}
        with patched_environ(env):
            yield root / "warehouse"


@contextmanager
def project_instance() -> Iterator[object]:
    """The Dagster instance the project's commands use (``crypto-weekly``, ``make demo``, ``dagster dev``): the
    project's ``.dagster_home/dagster.yaml`` (its kept-connection SQLite storage, the run queue and the pools) in
    the temporary ``DAGSTER_HOME`` of ``temp_env``."""
    import shutil

    from pipelines.settings import PROJECT_ROOT
    from pipelines.sqlite_instance import home_instance

    home = Path(os.environ["DAGSTER_HOME"])
    shutil.copyfile(PROJECT_ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with home_instance(home) as instance:
        yield instance


@contextmanager
def emulator(
    rate_limits: bool = False,
    calls_per_minute: int = 0,
    now: datetime | None = None,
    out_of_process: bool = True,
) -> Iterator[object]:
    """The market emulator on loopback with every client pointed at it; CoinGecko paced at ``calls_per_minute``;
    its clock ``now`` (default: the wall clock). Served from a child process, out of the measured interpreter,
    unless ``out_of_process`` is False (a phase that counts the emulator's requests needs it in process)."""
    from pipelines.runner import emulated_sources

    with emulated_sources(
        rate_limits=rate_limits,
        coingecko_calls_per_minute=calls_per_minute,
        now=now,
        out_of_process=out_of_process,
    ) as emu:
        yield emu
