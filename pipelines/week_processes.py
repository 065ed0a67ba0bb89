"""A range of weeks split between processes: the weekly tables, the report and the checks of a backfill.

A week's table rows, report (the text, the charts, the claim check, the second derivation and the publication) and
input checks depend on that week and the lake alone, so a range of weeks can be cut into contiguous runs of weeks,
each built by its own process over its own read of the lake, and every week comes out as it does alone (the same
bytes: ``tests/test_weeks_in_one_pass.py``; publication is per week, ``pipelines.narrative.publish``). A run of the
command line executes its steps in one process (``executor=in_process``, see the README), so without this a long
backfill's weekly steps used one core.

The calling process builds the last run itself while the others are built by a pool of processes kept for the
life of the calling process: a backfill's weekly run has about twenty steps that split their weeks, and starting
a process imports the pipeline (about 3 s), so the pool's processes are started by the first such step and serve
the next ones, their reads of the lake kept between steps like the calling process's (``LakeFiles``, and the
range's snapshot: ``reads_for(..., keep=True)`` in ``pipelines/lake_snapshot.py``). The pool is
started again when the environment changed since it was (a process reads its settings from it), and after one of
its processes died.

The same pool takes a part of a daily step's work over a long range of days (``alongside``): a part that does not
depend on the rest of the step (the Binance hourly closes that price Bybit's open interest, Binance's funding
settlements, the first half of coin_daily's charts) is computed by a process of the pool while the step does the rest, as the same function would in the
step; a part the step then does not ask for (no Bybit reading to price)
is left to finish unread, and a step that fails first leaves it to
finish before the pool's next work. ``start_for_days`` starts the pool's process before a long daily run's steps, so that it has imported
the pipeline, while the pulls run, by the time the clean steps hand it their parts.

Processes working at once share the machine's cores: a process of the pool runs polars and DuckDB with its share
of them (``share_of_cores``; polars through POLARS_MAX_THREADS in the environment it is started with, unless the
environment sets it), and the calling process's DuckDB connections opened while it builds its run of weeks too.

``CRYPTO_WEEKLY_WEEK_PROCESSES`` sets how many processes (the calling one included; at most one per week). By
default: the machine's cores, at most 4, and at most one process per ``MIN_WEEKS_PER_PROCESS`` weeks; a range of
days counts its weeks (``1`` keeps a daily step's parts in its own process too).
A daemonic process cannot start children (a Celery prefork worker's step): its weeks are built in it.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pipelines.settings import validate
from pipelines.warehouse import set_duckdb_threads

T = TypeVar("T")

MIN_WEEKS_PER_PROCESS = 8
DEFAULT_MAX_PROCESSES = 4


def processes_for(weeks: int) -> int:
    """How many processes build ``weeks`` weeks (1: the calling process alone)."""
    if multiprocessing.current_process().daemon:
        return 1
    configured = validate().get("CRYPTO_WEEKLY_WEEK_PROCESSES")
    if configured is not None:
        return max(1, min(configured, weeks))
    cores = min(os.cpu_count() or 1, DEFAULT_MAX_PROCESSES)
    return max(1, min(cores, weeks // MIN_WEEKS_PER_PROCESS))


def share_of_cores(processes: int) -> int:
    """The threads (polars', DuckDB's) of each of ``processes`` processes working at once on this machine's
    cores."""
    return max(1, (os.cpu_count() or 1) // processes)


def contiguous(weeks: Sequence[str], parts: int) -> list[list[str]]:
    """``weeks`` (sorted) cut into ``parts`` contiguous runs whose sizes differ by at most one."""
    size, extra = divmod(len(weeks), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(weeks[start:end]))
        start = end
    return [c for c in out if c]


# The pool of the calling process (``_kept_pool``) and what it was started with: (processes, environment, the
# process that started it: a forked child does not share its parent's pool).
_POOL: ProcessPoolExecutor | None = None
_POOL_STARTED_WITH: tuple[int, tuple[tuple[str, str], ...], int] | None = None


def _kept_pool(processes: int) -> ProcessPoolExecutor:
    """The pool of at least ``processes`` processes kept by this process; a new one when the environment changed
    since the pool started (its processes would read stale settings) or when more processes are asked for. A
    pool's processes start as work arrives, so an idle pool costs nothing."""
    global _POOL, _POOL_STARTED_WITH
    environment = tuple(sorted(os.environ.items()))
    if _POOL is not None and _POOL_STARTED_WITH is not None:
        size, started_in, owner = _POOL_STARTED_WITH
        if owner != os.getpid():
            _POOL, _POOL_STARTED_WITH = None, None  # the parent's pool: not this process's to use or stop
        elif started_in == environment and size >= processes:
            return _POOL
        else:
            _forget_pool()
    _POOL = ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=set_duckdb_threads,
        initargs=(share_of_cores(processes + 1),),  # as ``_pool_threads``
    )
    _POOL_STARTED_WITH = (processes, environment, os.getpid())
    return _POOL


def _pool_threads() -> int:
    """The threads of each process of the kept pool: its share of the cores beside the calling process."""
    assert _POOL_STARTED_WITH is not None
    return share_of_cores(_POOL_STARTED_WITH[0] + 1)


_SUBMIT_LOCK = threading.Lock()


def _submit(processes: int, fn: Callable[..., T], *args: Any) -> Future:
    """``fn(*args)`` submitted to the kept pool of at least ``processes`` processes. A process the submission
    starts gets POLARS_MAX_THREADS at its share of the cores (``share_of_cores``, unless the environment sets it):
    polars reads it once, when imported, so it is set in the environment the process is started with, for the
    time of the submission only (Python's spawn passes no environment of its own). On two cores, polars' default
    of a thread per core in both processes made a backfill's weekly run about 8% slower (bench/HOTSPOT.md)."""
    with _SUBMIT_LOCK:
        pool = _kept_pool(processes)
        if "POLARS_MAX_THREADS" in os.environ:
            return pool.submit(fn, *args)
        # the pool's size, as its processes' DuckDB threads (``_kept_pool``): the kept pool may be larger than asked
        os.environ["POLARS_MAX_THREADS"] = str(_pool_threads())
        try:
            return pool.submit(fn, *args)
        finally:
            del os.environ["POLARS_MAX_THREADS"]


def _forget_pool() -> None:
    global _POOL, _POOL_STARTED_WITH
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
    _POOL, _POOL_STARTED_WITH = None, None


def map_weeks(build: Callable[..., Mapping[str, T]], weeks: Sequence[str], *args: Any) -> dict[str, T]:
    """``build(run_of_weeks, *args)`` (a ``{week: result}``) over ``weeks``, in ``processes_for`` processes, each
    given a contiguous run of weeks: the calling process builds the last run while the kept pool builds the
    others; the results merged. ``build`` and ``args`` must pickle (a module-level function, strings); an error in
    any process is raised here, once every run has ended."""
    weeks = sorted(weeks)
    n = processes_for(len(weeks))
    if n <= 1:
        return dict(build(weeks, *args))
    runs = contiguous(weeks, n)
    futures: list[Future] = [_submit(len(runs) - 1, build, run, *args) for run in runs[:-1]]
    threads = set_duckdb_threads(share_of_cores(len(runs)))  # this process's share while the pool works too
    try:
        last = build(runs[-1], *args)
    finally:
        set_duckdb_threads(threads)
        wait(futures)  # never leave a run building behind an error here
    out: dict[str, T] = {}
    for run, future in zip(runs, futures, strict=False):
        try:
            out.update(future.result())
        except BrokenProcessPool as exc:
            _forget_pool()  # the next step starts a new pool
            raise BrokenProcessPool(
                f"the process computing weeks {run[0]}..{run[-1]} died (killed, or out of memory); run the step "
                "again, or with CRYPTO_WEEKLY_WEEK_PROCESSES=1 to compute every week in the step's own process"
            ) from exc
    out.update(last)  # in the order of the weeks
    return out


def _splits_days(days: int) -> bool:
    """Whether a range of ``days`` days is long enough for a part of a daily step in another process: as long as
    the weeks ``map_weeks`` would split between two processes (the pool's process costs about 3 s to start)."""
    return processes_for(days // 7) > 1


def _import(modules: Sequence[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def start_for_days(days: int, modules: Sequence[str] = ()) -> None:
    """Start the kept pool's process for a daily run over ``days`` days that will hand it parts (``alongside``),
    and have it import ``modules`` (those the parts come from), so that it is ready by then; nothing for a
    shorter range."""
    if _splits_days(days):
        _submit(1, _import, tuple(modules))


def alongside(part: Callable[..., T], *args: Any, days: int) -> Callable[[], T]:
    """``part(*args)``, a step's part independent of the rest of its work, started in the kept pool's process
    while the caller goes on when the step's range of ``days`` days is long enough (``_splits_days``); returns
    the function that waits for it and gives its result (or raises its error). Otherwise that function computes
    ``part(*args)`` itself, in the calling process, when called. ``part`` and ``args`` must pickle (a
    module-level function)."""
    if not _splits_days(days):
        return lambda: part(*args)
    future = _submit(1, part, *args)

    def result() -> T:
        try:
            return future.result()
        except BrokenProcessPool as exc:
            _forget_pool()  # the next step starts a new pool
            raise BrokenProcessPool(
                f"the process computing {getattr(part, '__name__', 'a part of the step')} died (killed, or out of "
                "memory); run the step again, or with CRYPTO_WEEKLY_WEEK_PROCESSES=1 to compute it in the step's "
                "own process"
            ) from exc

    return result
