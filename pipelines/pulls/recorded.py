"""The recorded pull: one model of a stored raw pull for every source, read from the layouts on disk.

A *pull* is one request (or one paginated request sequence) for one key (a coin, a symbol, a currency) over a run
of UTC days, stored exactly as answered (``Warehouse.store_raw``). Whatever its layout, a stored pull is read into
a ``StoredPull``: its key, the first and last day it was asked for, when it was fetched, its files in page order
and their HTTP statuses. A pull *covers* day D when D is one of its days and it was fetched once D had closed
(``close_instant(D)``, D+1 00:00 UTC). For each (key, day) the newest covering pull is the one read
(``choose_pulls``), and a day some stored pull covers is not asked again (``uncovered``).

Two layouts are read; neither is ever rewritten:

* paged pulls (Binance, data.binance.vision, Bybit, OKX), one directory a pull, whose every page's
  ``.meta.json`` holds a ``pull`` record (key, first_day, last_day, page, pages, ext)::

      raw/<source>/<endpoint>/<key name>=<key>/pull=<first>_<last>__<fetched>/page-001.<ext>

  Only complete pulls are read (every page on disk: a store killed half-way is not a recording of the pull).
* range pulls (CoinGecko ``market_chart/range``), one file a pull, the requested instants in the request's
  ``from``/``to`` parameters (Unix seconds)::

      raw/<source>/<endpoint>/<key name>=<key>/<from>_<to>__<fetched>.json

  Its days are those whose close instant lies within [from, to] (``days_closing_within``).

Kept free of Dagster so it can be called from tests, benchmarks and the CLI.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pipelines.calendar import utc_midnight
from pipelines.warehouse import Warehouse, safe_component


@functools.lru_cache(maxsize=8192)
def close_instant(day: date) -> datetime:
    """The instant ``day`` closes, whose point is its close: the next midnight, UTC. Kept for the days last asked
    (``choose_pulls`` asks it for every coin and day of a range: 175,000 times in a backfill's ``coin_daily``)."""
    return utc_midnight(day + timedelta(days=1))


def days_closing_within(start: datetime, end: datetime) -> tuple[date, date]:
    """The first and last day whose close instant lies within [``start``, ``end``] (first > last: none does)."""
    # close_instant(d) is midnight d+1: the first close is the first midnight at or after ``start``, the last
    # the last midnight at or before ``end``
    first_close = utc_midnight(start.astimezone(timezone.utc).date())
    if first_close < start:
        first_close += timedelta(days=1)
    last_close = utc_midnight(end.astimezone(timezone.utc).date())
    return first_close.date() - timedelta(days=1), last_close.date() - timedelta(days=1)


@dataclass(frozen=True)
class StoredPull:
    key: str
    first: date
    last: date
    fetched_at: datetime
    files: tuple[str, ...]  # relpaths in page order
    statuses: tuple[int, ...]

    def covers(self, day: date) -> bool:
        """Whether the pull asked for ``day`` and was fetched once it had closed."""
        return self.first <= day <= self.last and self.fetched_at >= close_instant(day)


def _oldest_first(pulls: list[StoredPull]) -> list[StoredPull]:
    return sorted(pulls, key=lambda p: (p.fetched_at, p.files))


def choose_pulls(pulls: dict[str, list[StoredPull]], days: Iterable[date]) -> dict[StoredPull, list[date]]:
    """For each (key, day): the newest stored pull covering it. Returns pull -> its chosen days (in ``days``
    order); a day no pull of a key covers is in none.

    Each pull, newest first, takes the asked days of its span that no newer pull took (a key of a pull a day,
    as the daily archive is, costs a pull's own days, not a scan of every pull for every day)."""
    days = list(days)
    asked = sorted(set(days))
    chosen: dict[StoredPull, list[date]] = {}
    for key_pulls in pulls.values():
        best: dict[date, StoredPull] = {}
        for p in reversed(_oldest_first(key_pulls)):
            for d in asked[bisect.bisect_left(asked, p.first) : bisect.bisect_right(asked, p.last)]:
                if d not in best and p.covers(d):
                    best[d] = p
        for d in days:
            if d in best:
                chosen.setdefault(best[d], []).append(d)
    return chosen


def uncovered(pulls: Iterable[StoredPull], days: Iterable[date]) -> list[date]:
    """The ``days`` (in order) that none of ``pulls`` covers: what a pull still has to ask for."""
    pulls = list(pulls)
    return [d for d in days if not any(p.covers(d) for p in pulls)]


def stamp(t: datetime) -> str:
    """An instant as recordings are named by it: ``YYYYMMDDTHHMMSSZ``, UTC."""
    return t.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def pull_id(first: date, last: date, fetched: datetime) -> str:
    """The name of a paged pull's directory after ``pull=``: ``<first>_<last>__<fetched>`` (``_named_span`` reads
    it back)."""
    return f"{first:%Y%m%d}_{last:%Y%m%d}__{stamp(fetched)}"


_PULL_DIR = re.compile(r"pull=(\d{8})_(\d{8})__")


def _named_span(pull_dir: str) -> tuple[date, date] | None:
    """The first and last day a paged pull's directory is named by (``pull_id``); None for a name of another
    shape."""
    m = _PULL_DIR.match(pull_dir)
    if m is None:
        return None
    try:
        return datetime.strptime(m[1], "%Y%m%d").date(), datetime.strptime(m[2], "%Y%m%d").date()
    except ValueError:
        return None


def stored_pulls(
    wh: Warehouse, source: str, endpoint: str, days: Iterable[date] | None = None
) -> dict[str, list[StoredPull]]:
    """Every complete stored paged pull of an endpoint, by key, oldest first.

    With ``days``, only the pulls whose days meet ``min(days)..max(days)`` (the only ones that can cover one of
    them): a pull whose directory name spans other days is passed over without reading its pages' records, so a
    daily run reads the records of the pulls near its days, not of every pull since the first. A directory of
    another name is read, and the days in its pages' records decide."""
    base = wh.raw_dir / safe_component(source) / safe_component(endpoint)
    window = None
    if days is not None:
        days = list(days)
        if not days:
            return {}
        window = (min(days), max(days))
    groups: dict[Path, list[tuple[int, dict, Path]]] = {}
    for pull_dir in base.glob("*=*/pull=*"):
        span = _named_span(pull_dir.name) if window is not None else None
        if span is not None and (span[1] < window[0] or span[0] > window[1]):  # type: ignore[index]
            continue
        for meta_path in pull_dir.glob("*.meta.json"):
            meta = json.loads(meta_path.read_text())
            pull = meta.get("pull")
            if not isinstance(pull, dict):
                continue
            body = meta_path.with_name(meta_path.name[: -len(".meta.json")] + "." + pull["ext"])
            if body.exists():
                groups.setdefault(pull_dir, []).append((int(pull["page"]), meta, body))
    out: dict[str, list[StoredPull]] = {}
    for pages in groups.values():
        pages.sort(key=lambda p: p[0])
        pull = pages[0][1]["pull"]
        if len(pages) != int(pull["pages"]):  # an interrupted store: not a recording of the whole pull
            continue
        out.setdefault(pull["key"], []).append(
            StoredPull(
                key=pull["key"],
                first=date.fromisoformat(pull["first_day"]),
                last=date.fromisoformat(pull["last_day"]),
                fetched_at=min(datetime.fromisoformat(m["fetched_at"]) for _, m, _ in pages),
                files=tuple(wh.rel(b) for _, _, b in pages),
                statuses=tuple(int(m.get("status", 0)) for _, m, _ in pages),
            )
        )
    return {key: _oldest_first(pulls) for key, pulls in out.items()}


def stored_range_pulls(
    wh: Warehouse, source: str, endpoint: str, key_name: str, key: str
) -> list[StoredPull]:
    """Every stored range pull of one key, oldest first (only bodies whose ``.meta.json`` exists)."""
    base = (
        wh.raw_dir / safe_component(source) / safe_component(endpoint) / f"{key_name}={safe_component(key)}"
    )
    out = []
    for path in sorted(base.glob("*.json")):
        if path.name.endswith(".meta.json") or not path.with_suffix(".meta.json").exists():
            continue
        meta = wh.raw_meta(path)
        params = meta["params"]
        first, last = days_closing_within(
            datetime.fromtimestamp(int(params["from"]), timezone.utc),
            datetime.fromtimestamp(int(params["to"]), timezone.utc),
        )
        out.append(
            StoredPull(
                key=key,
                first=first,
                last=last,
                fetched_at=datetime.fromisoformat(meta["fetched_at"]),
                files=(wh.rel(path),),
                statuses=(int(meta.get("status", 0)),),
            )
        )
    return _oldest_first(out)
