"""A range of weeks split between processes (pipelines/week_processes.py): contiguous runs, how many processes,
results merged, a process's error raised, the pool kept between steps; a daily step's part beside it."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from pipelines.settings import SettingsError
from pipelines.sources.http import PayloadError
from pipelines.week_processes import (
    MIN_WEEKS_PER_PROCESS,
    alongside,
    contiguous,
    map_weeks,
    processes_for,
    start_for_days,
)

WEEKS = [f"2025-{m:02d}-{d:02d}" for m in (4, 5, 6, 7) for d in (7, 14, 21, 28)]


def pid_per_week(weeks: list[str], fail: str | None = None) -> dict[str, int]:
    if fail in weeks:
        raise ValueError(f"week {fail} cannot be built")
    return {w: os.getpid() for w in weeks}


def test_runs_are_contiguous_balanced_and_cover_every_week() -> None:
    runs = contiguous(WEEKS, 3)
    assert [w for r in runs for w in r] == WEEKS and sorted(map(len, runs)) == [5, 5, 6]
    assert contiguous(WEEKS[:2], 4) == [[WEEKS[0]], [WEEKS[1]]]


def test_how_many_processes(monkeypatch) -> None:
    monkeypatch.delenv("CRYPTO_WEEKLY_WEEK_PROCESSES", raising=False)
    assert processes_for(MIN_WEEKS_PER_PROCESS - 1) == 1  # a short range stays in the step's process
    assert processes_for(100) == min(os.cpu_count() or 1, 4)
    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "3")
    assert processes_for(2) == 2 and processes_for(100) == 3
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)  # a Celery prefork child
    assert processes_for(100) == 1
    monkeypatch.undo()
    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "0")
    with pytest.raises(SettingsError, match="CRYPTO_WEEKLY_WEEK_PROCESSES='0'"):
        processes_for(100)


def exit_in_the_pool(weeks: list[str], caller: int) -> dict[str, int]:
    if os.getpid() != caller:
        os._exit(3)  # a process of the pool dies (killed, out of memory)
    return {w: caller for w in weeks}


def test_weeks_built_in_processes_are_merged_and_an_error_is_raised(monkeypatch) -> None:
    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "2")
    out = map_weeks(pid_per_week, list(reversed(WEEKS)))
    assert list(out) == WEEKS and len(set(out.values())) == 2
    # the calling process builds the last run while the pool builds the first
    assert {out[w] for w in WEEKS[8:]} == {os.getpid()} and os.getpid() not in {out[w] for w in WEEKS[:8]}
    for failing in (WEEKS[-1], WEEKS[0]):  # in the calling process's run, in the pool's
        with pytest.raises(ValueError, match=f"week {failing} cannot be built"):
            map_weeks(pid_per_week, WEEKS, failing)
    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "1")
    assert set(map_weeks(pid_per_week, WEEKS).values()) == {os.getpid()}


def test_the_pool_is_kept_and_started_again_when_the_environment_changes_or_a_process_died(
    monkeypatch,
) -> None:
    """A backfill's weekly steps share the pool's processes (each would otherwise import the pipeline again);
    processes started before a change of the environment would read stale settings, and a dead one is replaced."""
    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "2")
    first = map_weeks(pid_per_week, WEEKS)[WEEKS[0]]
    assert map_weeks(pid_per_week, WEEKS)[WEEKS[0]] == first  # the next step: the same process
    monkeypatch.setenv("CRYPTO_WEEKLY_VENUES", "binance")
    second = map_weeks(pid_per_week, WEEKS)[WEEKS[0]]
    assert second not in (first, os.getpid())
    with pytest.raises(BrokenProcessPool, match=f"weeks {WEEKS[0]}..{WEEKS[7]} died .*WEEK_PROCESSES=1"):
        map_weeks(exit_in_the_pool, WEEKS, os.getpid())
    third = map_weeks(pid_per_week, WEEKS)[WEEKS[0]]
    assert third not in (first, second, os.getpid())


def pid_or_payload_error(calls: list[int] | None = None) -> int:
    if calls is not None:
        calls.append(1)
        raise PayloadError("no such field", endpoint="/fapi/v1/klines", params={"apiKey": "k"}, status=200)
    return os.getpid()


def test_a_daily_steps_part_runs_beside_it_over_a_long_range_and_in_it_otherwise(monkeypatch) -> None:
    """``alongside``: over a long range of days the part is computed by the pool's process (started ahead by
    ``start_for_days``), its error raised in the step with its fields (a ``PayloadError`` names the response);
    over a short range, or with one process configured, the step computes it itself, only when asked."""
    long_range, short_range = 7 * MIN_WEEKS_PER_PROCESS * 2, 7  # a backfill, a new week
    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "2")
    start_for_days(long_range)
    beside = alongside(pid_or_payload_error, days=long_range)()
    assert beside != os.getpid()
    assert map_weeks(pid_per_week, WEEKS)[WEEKS[0]] == beside  # the same kept process
    failing = alongside(pid_or_payload_error, [], days=long_range)
    with pytest.raises(PayloadError, match="no such field: GET /fapi/v1/klines") as raised:
        failing()
    assert raised.value.endpoint == "/fapi/v1/klines" and raised.value.params == {"apiKey": "***"}
    calls: list[int] = []
    later = alongside(pid_or_payload_error, calls, days=short_range)
    assert calls == []  # not computed until asked
    with pytest.raises(PayloadError):
        later()
    assert calls == [1]
    assert alongside(pid_or_payload_error, days=short_range)() == os.getpid()
    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "1")
    assert alongside(pid_or_payload_error, days=long_range)() == os.getpid()


def threads_per_week(weeks: list[str]) -> dict[str, tuple[int, int, int]]:
    """Each week: the process, polars' threads and the threads of a DuckDB connection the process opens."""
    import polars as pl

    from pipelines.warehouse import Warehouse

    con = Warehouse("/nonexistent-warehouse").duckdb_connect()
    duck = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    con.close()
    return {w: (os.getpid(), pl.thread_pool_size(), duck) for w in weeks}


def test_processes_working_at_once_share_the_cores(monkeypatch) -> None:
    """Weeks built in two processes at once: the pool's process runs polars and opens DuckDB connections with its
    share of the cores, and so does the calling process's DuckDB while the pool works, its own setting restored
    after; the environment the pool's process was started with is not left in the caller's."""
    from pipelines.warehouse import Warehouse
    from pipelines.week_processes import share_of_cores

    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "2")
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    share = share_of_cores(2)
    out = map_weeks(threads_per_week, WEEKS)
    pool = {v for v in out.values() if v[0] != os.getpid()}
    caller = {v for v in out.values() if v[0] == os.getpid()}
    assert len(pool) == 1 and next(iter(pool))[1:] == (share, share)
    assert len(caller) == 1 and next(iter(caller))[2] == share
    assert "POLARS_MAX_THREADS" not in os.environ
    con = Warehouse("/nonexistent-warehouse").duckdb_connect()
    assert int(con.execute("SELECT current_setting('threads')").fetchone()[0]) == (os.cpu_count() or 1)
    con.close()
