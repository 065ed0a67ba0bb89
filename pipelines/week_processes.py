"""A range of weeks split between processes: the weekly report of a backfill and its claim check.

A week's report (the text, the charts, the claim check, the second derivation and the publication) depends on
that week and the lake alone, so a range of weeks can be cut into contiguous runs of weeks, each built by its own
process over its own read of the lake, and every week comes out as it does alone (the same bytes: publication is
per week, ``pipelines.narrative.publish``). A run of the command line executes its steps in one process
(``executor=in_process``, see the README), so without this the report of a long backfill used one core.

``CRYPTO_WEEKLY_WEEK_PROCESSES`` sets how many processes (at most one per week). By default: the machine's cores,
at most 4, and at most one process per ``MIN_WEEKS_PER_PROCESS`` weeks (starting a process imports the pipeline,
about 3 s).
A daemonic process cannot start children (a Celery prefork worker's step): its weeks are built in it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from pipelines.settings import validate

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


def contiguous(weeks: Sequence[str], parts: int) -> list[list[str]]:
    """``weeks`` (sorted) cut into ``parts`` contiguous runs whose sizes differ by at most one."""
    size, extra = divmod(len(weeks), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(weeks[start:end]))
        start = end
    return [c for c in out if c]


def map_weeks(build: Callable[..., Mapping[str, T]], weeks: Sequence[str], *args: Any) -> dict[str, T]:
    """``build(run_of_weeks, *args)`` (a ``{week: result}``) over ``weeks``, in ``processes_for`` processes, each
    given a contiguous run of weeks; the results merged. ``build`` and ``args`` must pickle (a module-level
    function, resources, strings); an error in a process is raised here."""
    weeks = sorted(weeks)
    n = processes_for(len(weeks))
    if n <= 1:
        return dict(build(weeks, *args))
    out: dict[str, T] = {}
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result in [pool.submit(build, run, *args) for run in contiguous(weeks, n)]:
            out.update(result.result())
    return out
