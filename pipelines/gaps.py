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
* The ledger: under the warehouse's ``gaps/<dataset>/``, a log of objects, one per write of a dataset's days
  (``run=<sequence>-<first day>..<last day>-<tag>.json``: the days asked and the ``Gap`` records), and one object
  for a dataset replaced whole (``all.json``: unpartitioned series), each written atomically; reading folds the
  log in sequence order and merges the records (those of one key and reason over several days become one).
  A pull run replaces the records of the days it asked about (a day that now succeeded drops out), so the ledger
  always says what is missing now. No writer rewrites an object, so two writers of one dataset cannot lose each
  other's records, on one machine or on object storage (where there is no file lock). The report reads it for
  the week's days (``gaps_for_days``), opening the objects whose days may include them.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pipelines.sources.http import PayloadError, SourceError
from pipelines.warehouse import Warehouse, atomic_write_bytes, safe_component

T = TypeVar("T")

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
        return {
            "source": self.source,
            "dataset": self.dataset,
            "key": self.key,
            "days": list(self.days),
            "status": self.status,
            "reason": self.reason,
            "detail": self.detail,
        }

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
# A log of objects per dataset. Each write of a dataset's days is one new object, ``run=<sequence>-<first day>..
# <last day>-<tag>.json``: the days it asked about and its records. Reading folds a dataset's objects in sequence
# order, each one replacing the records of the days it asked about and adding its records of other days. No
# writer rewrites an object, so two writers of one dataset (two workers pulling two partitions at once, on one
# machine or against object storage, where there is no file lock) cannot lose each other's records; the writer
# of an object removes, after writing it, the older objects whose every day it asked about (nothing they hold is
# read any more). A backfill's pull of hundreds of days writes one object per dataset, not one per day.
UNDATED = "all.json"  # a dataset replaced whole (``replace_all``: unpartitioned series such as FRED's)
_RUN = re.compile(r"^run=(\d{20})-(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})-[0-9a-f]{8}\.json$")
_DAY = re.compile(r"^day=(\d{4}-\d{2}-\d{2})\.json$")  # a day's object of the per-day layout: the oldest
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class _Entry:
    """One object of a dataset's log: its sequence (0 for a day's object of the per-day layout), the first and
    last day its records and asked days touch (from its name, so that a reader of some days opens only the
    objects that can hold them) and where it is."""

    sequence: int
    first: str
    last: str
    path: Path

    def may_touch(self, days: set[str]) -> bool:
        return any(self.first <= d <= self.last for d in days)

    def within(self, days: set[str]) -> bool:
        """Whether every calendar day of its span is in ``days`` (so every day it holds is)."""
        first, last = date.fromisoformat(self.first), date.fromisoformat(self.last)
        return all((first + timedelta(days=i)).isoformat() in days for i in range((last - first).days + 1))


def ledger_dir(wh: Warehouse) -> Path:
    return wh.root / "gaps"


def _dataset_dir(wh: Warehouse, dataset: str) -> Path:
    return ledger_dir(wh) / safe_component(dataset.replace(" ", "_"))


def _legacy_path(wh: Warehouse, dataset: str) -> Path:
    """Where a warehouse written before the per-dataset folders kept the whole ledger of a dataset."""
    return ledger_dir(wh) / f"{safe_component(dataset.replace(' ', '_'))}.json"


_LEDGER_LOCK = threading.Lock()


def _read(path: Path) -> list[Gap]:
    try:
        return _parsed(path, lambda doc: [Gap.from_dict(d) for d in doc])
    except FileNotFoundError:  # removed since it was listed (replaced whole by another writer)
        return []


def _parsed(path: Path, parse: Callable[[Any], T]) -> T:
    """``parse`` of the JSON in ``path``; a file that is not a ledger object (damaged, edited by hand) is one
    clear error naming it and what to do, not a parser's traceback."""
    text = path.read_text()
    try:
        return parse(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"gap ledger object {path} is unreadable ({type(exc).__name__}: {exc}); remove it: the next pull of "
            "its days records their gaps again"
        ) from exc


def _merge(records: Iterable[Gap]) -> list[Gap]:
    """Records that differ only in their days, as one record with the days of all (sorted)."""
    days: dict[tuple, set[str]] = {}
    undated: set[tuple] = set()
    for g in records:
        k = (g.source, g.dataset, g.key, g.status, g.reason, g.detail)
        days.setdefault(k, set()).update(g.days)
        if not g.days:
            undated.add(k)
    out = [Gap(k[0], k[1], k[2], tuple(sorted(v)), k[3], k[4], k[5]) for k, v in days.items() if v]
    out += [Gap(k[0], k[1], k[2], (), k[3], k[4], k[5]) for k in undated]
    return sorted(out, key=_ledger_order)


def _dataset_files(wh: Warehouse, dataset: str) -> list[Path]:
    base = _dataset_dir(wh, dataset)
    return sorted(base.glob("*.json")) if base.is_dir() else []


def _entries(folder: Path) -> list[_Entry]:
    """A dataset folder's log, in sequence order (files of another kind left out)."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if m := _RUN.match(path.name):
            out.append(_Entry(int(m.group(1)), m.group(2), m.group(3), path))
        elif m := _DAY.match(path.name):
            out.append(_Entry(0, m.group(1), m.group(1), path))
    return sorted(out, key=lambda e: (e.sequence, e.path.name))


def _read_entry(entry: _Entry) -> tuple[list[str], list[Gap]]:
    """The days an object asked about and its records."""
    if entry.sequence == 0:  # a day's object of the per-day layout: that day asked, a list of records
        return [entry.first], _read(entry.path)
    try:
        return _parsed(
            entry.path, lambda doc: (list(doc["asked"]), [Gap.from_dict(d) for d in doc["records"]])
        )
    except FileNotFoundError:  # removed since it was listed: a newer object asked about all its days
        return [], []


def _fold(entries: list[_Entry], want: set[str] | None = None) -> list[Gap]:
    """The records a dataset's log holds now, one a day (of the days ``want`` only, when given; ``_merge`` joins
    their days): its objects in sequence order, each replacing the records of the days it asked about and adding
    its records of other days."""
    by_day: dict[str, list[Gap]] = {}
    for entry in entries:
        asked, records = _read_entry(entry)
        for d in asked:
            if want is None or d in want:
                by_day[d] = []
        for g in records:
            for d in g.days:
                if want is None or d in want:
                    by_day.setdefault(d, []).append(
                        Gap(g.source, g.dataset, g.key, (d,), g.status, g.reason, g.detail)
                    )
    return [g for records in by_day.values() for g in records]


def _records(wh: Warehouse, dataset: str | None, want: set[str] | None = None) -> list[Gap]:
    """The records of ``dataset``'s ledger (every dataset's when None), not yet merged: a whole-dataset file of
    the older layout, the undated object and the log folded (only the objects whose days may include ``want``,
    when given). The ledger's folder exists."""
    if dataset:
        legacy, folders = [_legacy_path(wh, dataset)], [_dataset_dir(wh, dataset)]
    else:
        base = ledger_dir(wh)
        legacy, folders = sorted(base.glob("*.json")), sorted(p for p in base.iterdir() if p.is_dir())
    records = [g for p in legacy for g in _read(p)]
    for folder in folders:
        entries = [e for e in _entries(folder) if want is None or e.may_touch(want)]
        records += _read(folder / UNDATED) + _fold(entries, want)
    return records


def read_ledger(wh: Warehouse, dataset: str | None = None) -> list[Gap]:
    """The ledger of ``dataset`` (every dataset when None): its log folded, its undated records and a
    whole-dataset file of the older layout, merged."""
    return _merge(_records(wh, dataset)) if ledger_dir(wh).exists() else []


def record_gaps(
    wh: Warehouse,
    dataset: str,
    asked_days: Iterable[date | str],
    gaps: Iterable[Gap],
    replace_all: bool = False,
) -> None:
    """Write ``dataset``'s ledger: its records for days not in ``asked_days`` stay, the days asked now are
    replaced by ``gaps`` (``replace_all``: the whole ledger is, for unpartitioned series). Each object is
    written atomically."""
    asked = {d.isoformat() if isinstance(d, date) else d for d in asked_days}
    gaps = list(gaps)
    with _LEDGER_LOCK:
        legacy = _legacy_path(wh, dataset)
        if legacy.exists():  # fold a whole-dataset file of the older layout into the log
            old = _read(legacy)
            if not replace_all:
                _append(wh, dataset, set(), [g for g in old if g.days])
            legacy.unlink()
        if replace_all:
            for p in _dataset_files(wh, dataset):
                if p.name != UNDATED:
                    p.unlink()
            path = _dataset_dir(wh, dataset) / UNDATED
            if gaps or path.exists():
                _write(path, gaps)
        else:
            undated = [g for g in gaps if not g.days]
            if undated:  # no day to file them under: added to the whole-dataset object
                path = _dataset_dir(wh, dataset) / UNDATED
                _write(path, [*_read(path), *undated])
            _append(wh, dataset, asked, [g for g in gaps if g.days])


def _sorted_records(records: Iterable[Gap]) -> list[Gap]:
    return sorted(records, key=lambda g: (g.source, g.dataset, g.key, g.days))


def _write(path: Path, records: Iterable[Gap]) -> None:
    data = [g.as_dict() for g in _sorted_records(records)]
    atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def _append(wh: Warehouse, dataset: str, asked: set[str], gaps: list[Gap]) -> None:
    """A new object of ``dataset``'s log: the days ``asked`` replaced by ``gaps`` (their records of other days
    added). Nothing is written when there is nothing to say (no record, and no older object may hold an asked
    day). Once it is written, the older objects whose every day was asked are removed, and so is the new one if
    it holds no record and no older object it replaces is left."""
    touched = asked | {d for g in gaps for d in g.days}
    not_days = sorted(d for d in touched if not _ISO_DAY.fullmatch(d))
    if not_days:  # an object named by them would not be read back: refused, not lost
        raise ValueError(
            f"gap ledger of {dataset!r}: days must be ISO dates (YYYY-MM-DD), got {not_days[:3]}"
        )
    folder = _dataset_dir(wh, dataset)
    entries = _entries(folder)
    older = [e for e in entries if e.may_touch(asked)]
    if not gaps and not older:  # (with no record and no older object, nothing was touched either)
        return
    # after every object listed, whatever the clock says (a later write must be read as later)
    sequence = max([time.time_ns(), *(e.sequence + 1 for e in entries)])
    path = folder / f"run={sequence:020d}-{min(touched)}..{max(touched)}-{secrets.token_hex(4)}.json"
    doc = {"asked": sorted(asked), "records": [g.as_dict() for g in _sorted_records(gaps)]}
    atomic_write_bytes(path, json.dumps(doc, indent=1, sort_keys=True).encode())
    replaced = [e for e in older if e.within(asked)]
    for e in replaced:
        e.path.unlink(missing_ok=True)
    if not gaps and len(replaced) == len(older):
        path.unlink(missing_ok=True)


def gaps_for_days(wh: Warehouse, days: Iterable[date]) -> list[Gap]:
    """Every ledger record touching ``days`` (restricted to them), and the unpartitioned ones (FRED), sorted as
    the ledger sorts its records but by the days returned, so records of other days never move them. Opens only
    the objects whose days may include them (and the undated and whole-dataset ones), not the whole ledger."""
    want = {d.isoformat() for d in days}
    if not ledger_dir(wh).exists():
        return []
    out = []
    for g in _merge(_records(wh, None, want)):
        if not g.days:
            out.append(g)
            continue
        hit = tuple(d for d in g.days if d in want)
        if hit:
            out.append(Gap(g.source, g.dataset, g.key, hit, g.status, g.reason, g.detail))
    return sorted(out, key=_ledger_order)


def _ledger_order(g: Gap) -> tuple:
    return (g.source, g.dataset, g.key, g.days, g.status or 0, g.reason, g.detail)


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
