"""Missing data as named gaps: how a failed pull is classified, the per-run circuit breaker, and the gap ledger.

The rule (docs/reliability.md, "Missing data and gaps"): data that **cannot be had** is a named gap and the week
is still published; data that is present but **wrong** blocks, naming the row. A pull that fails stores nothing
in ``raw/`` (so the next run asks again), and the gap is recorded here:

* ``classify(exc)`` turns a ``SourceError`` into a reason: ``blocked`` (HTTP 451, or 403 from a venue that
  blocks regions), ``not found`` (404/410), ``refused`` (a venue error code, any other 4xx), ``payload refused``
  (a body that changed shape: refused before storage), ``unavailable`` (5xx, timeouts and dropped connections
  that outlasted the retries). Every one of them is a gap: the week must still publish.
* ``Breaker``: the first ``blocked`` (or ``rate limited``: Bybit's 403 "access too frequent") answer from a venue marks the venue blocked for the rest of the run (the
  process), so the other symbols are not asked (no hundreds of refused requests) and the venue is named once.
* The ledger: ``gaps/<dataset>.json`` under the warehouse, a JSON list of ``Gap`` records written atomically.
  A pull run replaces the records of the days it asked about (a day that now succeeded drops out), so the ledger
  always says what is missing now. The report reads it for the week's days (``gaps_for_days``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from pipelines.sources.http import PayloadError, SourceError
from pipelines.warehouse import Warehouse, atomic_write_bytes, safe_component

# Statuses that mean "cannot be had from here", never retried: region blocks and missing resources.
BLOCKED_STATUSES = frozenset({451, 403})
NOT_FOUND_STATUSES = frozenset({404, 410})
VENUE_LABELS = {
    "binance": "Binance",
    "binance_vision": "data.binance.vision",
    "bybit": "Bybit",
    "okx": "OKX",
    "fred": "FRED",
    "coingecko": "CoinGecko",
}

# Reasons, as printed.
BLOCKED = "blocked"
RATE_LIMITED = "rate limited"  # Bybit's IP limit: 403 "access too frequent", lifts after about 10 minutes
NOT_FOUND = "not found"
EMPTY = "empty answer"
REFUSED = "refused"
PAYLOAD = "payload refused"
UNAVAILABLE = "unavailable"
NOT_SELECTED = "not selected"
OUTSIDE_WINDOW = "outside history window"
PUBLICATION_LAG = "not published yet"
# Reasons that stop every further request to the venue for the rest of the run (the circuit breaker).
TRIPS = frozenset({BLOCKED, RATE_LIMITED})


@dataclass(frozen=True)
class Gap:
    """One thing the pipeline could not have: which source, dataset and key, for which days, and why.

    ``days`` are ISO dates (empty for unpartitioned series such as FRED's); ``status`` the HTTP status (None for
    a timeout, an empty answer or a venue left out by configuration); ``reason`` one of the reasons above;
    ``detail`` the error as raised (endpoint, parameters, start of the body)."""

    source: str
    dataset: str
    key: str
    days: tuple[str, ...]
    status: int | None
    reason: str
    detail: str = ""

    def as_dict(self) -> dict:
        return {**asdict(self), "days": list(self.days)}

    @classmethod
    def from_dict(cls, d: dict) -> Gap:
        return cls(
            d["source"],
            d["dataset"],
            d["key"],
            tuple(d.get("days", ())),
            d.get("status"),
            d["reason"],
            d.get("detail", ""),
        )


def classify(exc: SourceError) -> tuple[str, int | None]:
    """(reason, status) of a failed request. Every outcome is a gap; the reason says which kind."""
    status = exc.status
    if isinstance(exc, PayloadError):
        return PAYLOAD, status
    if status == 403 and "too frequent" in (exc.body or "").lower():
        return RATE_LIMITED, status
    if status in BLOCKED_STATUSES:
        return BLOCKED, status
    if status in NOT_FOUND_STATUSES:
        return NOT_FOUND, status
    if status is None or status >= 500 or status in (418, 429):
        return UNAVAILABLE, status
    return REFUSED, status


def reason_text(reason: str, status: int | None) -> str:
    if reason == BLOCKED and status == 451:
        return "blocked from this region (HTTP 451)"
    if reason == BLOCKED:
        return f"blocked (HTTP {status})"
    if reason == RATE_LIMITED:
        return f"rate limited for the rest of the run (HTTP {status} 'access too frequent')"
    if reason == UNAVAILABLE:
        return "unavailable after retries" + (
            f" (HTTP {status})" if status else " (timeouts or dropped connections)"
        )
    return reason + (f" (HTTP {status})" if status else "")


# ---- the circuit breaker ---------------------------------------------------------------------------------------
class Breaker:
    """Venues found blocked during this process (one run). ``trip`` is called on a ``blocked`` answer;
    ``blocked(source)`` then returns the error that tripped it, and pulls of that venue are not made."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self._blocked: dict[str, SourceError] = {}

    def trip(self, source: str, exc: SourceError) -> None:
        with self._lock:
            self._blocked.setdefault(source, exc)

    def blocked(self, source: str) -> SourceError | None:
        with self._lock:
            return self._blocked.get(source)

    def reset(self) -> None:
        with self._lock:
            self._blocked.clear()


# The current run's breaker. A Dagster run executes its steps in one process (in_process_executor), so a venue
# that answered 451 in one asset is not asked again by the next ones of the same run; each raw asset calls
# ``breaker_for_run(run_id)`` first, so a new run (or a test) starts with every venue unblocked.
BREAKER = Breaker()
_BY_RUN: dict[str, Breaker] = {}


def breaker_for_run(run_id: str) -> Breaker:
    global BREAKER
    with Breaker._lock:
        if len(_BY_RUN) > 64:  # old runs of a long-lived process
            _BY_RUN.clear()
        BREAKER = _BY_RUN.setdefault(run_id, Breaker())
    return BREAKER


def reset_breaker() -> None:
    BREAKER.reset()


# ---- the ledger ----------------------------------------------------------------------------------------------
def ledger_dir(wh: Warehouse) -> Path:
    return wh.root / "gaps"


def _ledger_path(wh: Warehouse, dataset: str) -> Path:
    return ledger_dir(wh) / f"{safe_component(dataset.replace(' ', '_'))}.json"


_LEDGER_LOCK = threading.Lock()


def read_ledger(wh: Warehouse, dataset: str | None = None) -> list[Gap]:
    base = ledger_dir(wh)
    if not base.exists():
        return []
    paths = [_ledger_path(wh, dataset)] if dataset else sorted(base.glob("*.json"))
    out: list[Gap] = []
    for p in paths:
        if p.exists():
            out += [Gap.from_dict(d) for d in json.loads(p.read_text())]
    return out


def record_gaps(
    wh: Warehouse,
    dataset: str,
    asked_days: Iterable[date | str],
    gaps: Iterable[Gap],
    replace_all: bool = False,
) -> list[Gap]:
    """Write ``dataset``'s ledger: its records for days not in ``asked_days`` stay, the days asked now are
    replaced by ``gaps`` (``replace_all``: the whole ledger is, for unpartitioned series). Atomic."""
    asked = {d.isoformat() if isinstance(d, date) else d for d in asked_days}
    with _LEDGER_LOCK:
        kept: list[Gap] = []
        if not replace_all:
            for g in read_ledger(wh, dataset):
                left = tuple(d for d in g.days if d not in asked)
                if left:
                    kept.append(Gap(g.source, g.dataset, g.key, left, g.status, g.reason, g.detail))
        records = sorted([*kept, *gaps], key=lambda g: (g.source, g.dataset, g.key, g.days))
        path = _ledger_path(wh, dataset)
        if not records and not path.exists():
            return records
        atomic_write_bytes(
            path, json.dumps([g.as_dict() for g in records], indent=1, sort_keys=True).encode()
        )
        return records


def gaps_for_days(wh: Warehouse, days: Iterable[date]) -> list[Gap]:
    """Every ledger record touching ``days`` (restricted to them), and the unpartitioned ones (FRED)."""
    want = {d.isoformat() for d in days}
    out = []
    for g in read_ledger(wh):
        if not g.days:
            out.append(g)
            continue
        hit = tuple(d for d in g.days if d in want)
        if hit:
            out.append(Gap(g.source, g.dataset, g.key, hit, g.status, g.reason, g.detail))
    return out


def _span(days: list[str]) -> str:
    if not days:
        return ""
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"


def _keys(keys: list[str], limit: int = 6) -> str:
    keys = sorted(set(keys))
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _label(source: str, dataset: str) -> str:
    """``binance funding`` under Binance -> ``funding`` (the venue is named already)."""
    word = source.split("_")[0] + " "
    return dataset[len(word) :] if dataset.lower().startswith(word) else dataset


def describe(gaps: Iterable[Gap]) -> list[str]:
    """Report lines: one per venue and reason (a blocked venue is named once with its datasets), naming the
    keys and days."""
    groups: dict[tuple[str, str, int | None], list[Gap]] = {}
    for g in gaps:
        groups.setdefault((g.source, g.reason, g.status), []).append(g)
    lines = []
    for (source, reason, status), gs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)
    ):
        venue = VENUE_LABELS.get(source, source)
        datasets = sorted({_label(source, g.dataset) for g in gs})
        days = sorted({d for g in gs for d in g.days})
        when = f" ({_span(days)})" if days else ""
        if reason in (BLOCKED, RATE_LIMITED, NOT_SELECTED):
            what = (
                "not selected (CRYPTO_WEEKLY_VENUES)"
                if reason == NOT_SELECTED
                else reason_text(reason, status)
            )
            lines.append(f"{venue}: {what} for {', '.join(datasets)}{when}; its figures are left out.")
            continue
        keys = [g.key for g in gs if g.key != "*"]
        lines.append(
            f"{venue} {', '.join(datasets)}: {reason_text(reason, status)} for "
            f"{_keys(keys) or 'every key'}{when}."
        )
    return lines


__all__ = [
    "Gap",
    "Breaker",
    "BREAKER",
    "classify",
    "describe",
    "gaps_for_days",
    "read_ledger",
    "record_gaps",
    "reset_breaker",
    "reason_text",
    "breaker_for_run",
]
