"""Raw recordings to clean tables, per source, and the estimates for days beyond a plan's window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pipelines import week_processes
from pipelines.warehouse import Warehouse

T = TypeVar("T")


def beside(wh: Warehouse, days: int, part: Callable[..., T], *args: Any) -> Callable[[], T]:
    """``part(*args)``, a clean builder's part independent of the rest of its work: over a long range of ``days``
    days of a local warehouse, computed by another process while the builder does the rest
    (``week_processes.alongside``); otherwise by the builder, when it asks for it."""
    if wh.remote:  # an object store's filesystem stays in the process that opened it
        return lambda: part(*args)
    return week_processes.alongside(part, *args, days=days)


def in_order(first: Callable[[], list[T]], rest: Callable[[], list[T]]) -> list[T]:
    """``first() + rest()``, with ``rest`` computed while ``first`` (from ``beside``) may be computing elsewhere:
    an error of ``first`` is the one raised when both fail, as computing them in order raises it."""
    try:
        later = rest()
    except BaseException:
        first()
        raise
    return first() + later
