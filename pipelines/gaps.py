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
* The ledger: under the warehouse's ``gaps/<dataset>/``, one JSON list of ``Gap`` records per day
  (``day=<date>.json``) and one for a dataset replaced whole (``all.json``: unpartitioned series), each written
  atomically; reading merges them (the records of one key and reason over several days become one record).
  A pull run replaces the records of the days it asked about (a day that now succeeded drops out), so the ledger
  always says what is missing now. Two writers of different days never write the same object, so they cannot
  lose each other's records, on one machine or on object storage (where there is no file lock). The report
  reads it for the week's days (``gaps_for_days``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from pipelines.sources.http import PayloadError, SourceError
from pipelines.warehouse import Warehouse, atomic_write_bytes, is_remote, safe_component

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
# One object per (dataset, day): a writer replaces only the days it asked about, each in its own object, so
# writers of different days (two workers pulling two partitions of the same dataset at once, on one machine or
# against object storage, where there is no lock) never read-modify-write the same object. Readers merge.
UNDATED = "all.json"  # a dataset replaced whole (``replace_all``: unpartitioned series such as FRED's)


def ledger_dir(wh: Warehouse) -> Path:
    return wh.root / "gaps"


def _dataset_dir(wh: Warehouse, dataset: str) -> Path:
    return ledger_dir(wh) / safe_component(dataset.replace(" ", "_"))


def _legacy_path(wh: Warehouse, dataset: str) -> Path:
    """Where a warehouse written before the per-day layout kept the whole ledger of a dataset."""
    return ledger_dir(wh) / f"{safe_component(dataset.replace(' ', '_'))}.json"


def _day_name(day: str) -> str:
    """The name of a dataset's object for ``day``."""
    return f"day={safe_component(day)}.json"


def _day_path(wh: Warehouse, dataset: str, day: str) -> Path:
    return _dataset_dir(wh, dataset) / _day_name(day)


_LEDGER_LOCK = threading.Lock()


def _read(path: Path) -> list[Gap]:
    try:
        return [Gap.from_dict(d) for d in json.loads(path.read_text())]
    except FileNotFoundError:  # removed since it was listed (replaced whole by another writer)
        return []


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


def read_ledger(wh: Warehouse, dataset: str | None = None) -> list[Gap]:
    """The ledger of ``dataset`` (every dataset when None): the records of its objects, merged."""
    base = ledger_dir(wh)
    if not base.exists():
        return []
    paths = [_legacy_path(wh, dataset), *_dataset_files(wh, dataset)] if dataset else _ledger_files(base)
    out: list[Gap] = []
    for p in paths:
        if p.exists():
            out += _read(p)
    return _merge(out)


def _ledger_files(base: Path, names: set[str] | None = None) -> list[Path]:
    """Every dataset's whole-ledger file of the older layout, then the datasets' objects (those named ``names``
    only, when given)."""
    older = sorted(base.glob("*.json"))
    if names is None or is_remote(base):
        objects = sorted(base.glob("*/*.json"))
        return older + (objects if names is None else [p for p in objects if p.name in names])
    # a local ledger: a stat for each name in each dataset's folder, not a listing of its years of days
    folders = sorted(p for p in base.iterdir() if p.is_dir())
    return older + [
        folder / name for folder in folders for name in sorted(names) if (folder / name).is_file()
    ]


def record_gaps(
    wh: Warehouse,
    dataset: str,
    asked_days: Iterable[date | str],
    gaps: Iterable[Gap],
    replace_all: bool = False,
) -> list[Gap]:
    """Write ``dataset``'s ledger: its records for days not in ``asked_days`` stay, the days asked now are
    replaced by ``gaps`` (``replace_all``: the whole ledger is, for unpartitioned series). Each object is
    written atomically; returns the dataset's ledger as it now reads."""
    asked = {d.isoformat() if isinstance(d, date) else d for d in asked_days}
    gaps = list(gaps)
    with _LEDGER_LOCK:
        legacy = _legacy_path(wh, dataset)
        if legacy.exists():  # fold a whole-dataset file of the older layout into the per-day objects
            old = _read(legacy)
            if not replace_all:
                _write_days(wh, dataset, old, set(), keep_existing=True)
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
                _write(path, [*(_read(path) if path.exists() else []), *undated])
            _write_days(wh, dataset, [g for g in gaps if g.days], asked, keep_existing=False)
        return read_ledger(wh, dataset)


def _write(path: Path, records: Iterable[Gap]) -> None:
    records = sorted(records, key=lambda g: (g.source, g.dataset, g.key, g.days))
    atomic_write_bytes(path, json.dumps([g.as_dict() for g in records], indent=1, sort_keys=True).encode())


def _write_days(wh: Warehouse, dataset: str, gaps: list[Gap], asked: set[str], keep_existing: bool) -> None:
    """File ``gaps`` under each of their days; a day in ``asked`` is replaced (an empty one removed), any other
    day touched keeps its existing records (``keep_existing`` keeps them for every day)."""
    by_day: dict[str, list[Gap]] = {d: [] for d in asked}
    for g in gaps:
        for d in g.days:
            by_day.setdefault(d, []).append(
                Gap(g.source, g.dataset, g.key, (d,), g.status, g.reason, g.detail)
            )
    existing = {p.name for p in _dataset_files(wh, dataset)}  # one listing, not a lookup per day asked
    for day, records in sorted(by_day.items()):
        path = _day_path(wh, dataset, day)
        if path.name in existing and (keep_existing or day not in asked):
            records = [*_read(path), *records]
        if records:
            _write(path, _merge(records))
        elif path.name in existing:
            path.unlink(missing_ok=True)


def gaps_for_days(wh: Warehouse, days: Iterable[date]) -> list[Gap]:
    """Every ledger record touching ``days`` (restricted to them), and the unpartitioned ones (FRED), sorted as
    the ledger sorts its records but by the days returned, so records of other days never move them. Reads the
    objects of those days only (and the undated and whole-dataset ones), not the whole ledger."""
    want = {d.isoformat() for d in days}
    base = ledger_dir(wh)
    if not base.exists():
        return []
    paths = _ledger_files(base, {UNDATED} | {_day_name(d) for d in want})
    out = []
    for g in _merge(r for p in paths for r in _read(p)):
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
