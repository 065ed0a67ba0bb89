"""A function called every few seconds by a background thread while a block runs.

Used by the pool keeper of an in-process run (``pipelines.automation.pools.pool_keeper``) and by the progress
display's follower of a run's event log (``pipelines.progress.Reporter.watch``). The function handles its own
errors: one that escapes it ends the thread, and is printed by Python's thread hook.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def every(
    seconds: float, tick: Callable[[], None], name: str, join_timeout: float | None = None
) -> Iterator[None]:
    """``tick()`` every ``seconds`` in a daemon thread named ``name`` while the block runs (first after
    ``seconds``, none after the block); on leaving, waits for a tick under way (at most ``join_timeout``)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            tick()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(join_timeout)
