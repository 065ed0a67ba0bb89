"""Progress on long commands: which step runs, coins and weeks done of N.

On a terminal, one live line (rich: spinner, the step, a bar when there is a count, elapsed time) on stderr;
otherwise (a pipe, a log file, CI) plain time-stamped lines. Quiet by default: stage lines and counts only; with
``verbose`` every Dagster step start too. The count inside a run comes from the run's own event log (the raw
assets log ``market charts: n/N coins``), read by a watcher thread while the run executes in process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pipelines.ticker import every

COUNT = re.compile(r"^(?P<what>[\w ]+?): (?P<n>\d+)/(?P<total>\d+)\b")


class Reporter:
    def __init__(self, verbose: bool = False, console: Console | None = None, live: bool | None = None):
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.verbose = verbose
        self._progress: Progress | None = None
        self._task: Any = None
        self._stage = ""

    def __enter__(self) -> Reporter:
        if self.live:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def line(self, message: str) -> None:
        """A line that stays (a stage started or ended, a week done)."""
        if self._progress is not None:
            self._progress.console.print(
                f"[{datetime.now():%H:%M:%S}] {message}", markup=False, highlight=False
            )
        else:
            self.console.print(
                f"[{datetime.now():%H:%M:%S}] {message}", markup=False, highlight=False, soft_wrap=True
            )

    def stage(self, message: str) -> None:
        self._stage = message.rstrip(" .")
        self.line(message)
        if self._progress is not None:
            self._progress.update(self._task, description=self._stage, completed=0, total=None)

    def detail(self, step: str, count: tuple[str, int, int] | None = None) -> None:
        """Inside a run: the step now running and, when the step logs one, its count."""
        if self._progress is not None:
            desc = f"{self._stage}: {step}" + (f" ({count[0]})" if count else "")
            self._progress.update(
                self._task, description=desc, **({"completed": count[1], "total": count[2]} if count else {})
            )
        elif count:
            self.line(f"  {step}: {count[0]} {count[1]}/{count[2]}")
        elif self.verbose:
            self.line(f"  {step} ...")

    @contextmanager
    def watch(self, instance: Any, run_id: str, interval: float = 1.0) -> Iterator[None]:
        """While the block runs (a run executing in process), follow ``run_id``'s event log."""
        from dagster import DagsterEventType

        cursor, unread = None, False

        def follow() -> None:
            nonlocal cursor, unread
            try:
                conn = instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
            except Exception as exc:  # the run goes on; the display waits for the next read
                if not unread:  # said once a run: the events are the run's, the display only follows them
                    self.line(
                        f"progress: the run's events cannot be read ({type(exc).__name__}: {exc}); retrying"
                    )
                unread = True
                return
            cursor = conn.cursor
            for rec in conn.records:
                entry = rec.event_log_entry
                ev = entry.dagster_event
                if ev is not None and ev.event_type == DagsterEventType.STEP_START:
                    self.detail(entry.step_key or "")
                elif ev is None and entry.user_message:
                    m = COUNT.match(entry.user_message)
                    if m:
                        self.detail(entry.step_key or "", (m["what"], int(m["n"]), int(m["total"])))

        with every(interval, follow, "progress", join_timeout=5):
            yield
