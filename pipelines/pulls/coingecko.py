"""Pull logic behind the raw assets: which requests to make, where the responses go, what is already stored.

Kept out of the asset bodies so it can be called without Dagster (tests, benchmarks, the CLI).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import polars as pl

from pipelines import gaps as gaps_mod
from pipelines.metrics.sectors import DEFAULT_INDICES
from pipelines.pulls.recorded import StoredPull, close_instant, stamp, stored_range_pulls, uncovered
from pipelines.sources.coingecko import CoinGeckoClient, market_chart_errors, parse_global, parse_markets
from pipelines.sources.http import Fetched, PayloadError, SourceError
from pipelines.warehouse import (
    Warehouse,
    atomic_write_bytes,
    is_safe_component,
    safe_component,
    sha256_bytes,
    sha256_file,
)

SOURCE = "coingecko"
# Coins whose charts are pulled at once. Requests stay paced by the plan's rate limit whatever the number; with a
# fast plan (or the emulator) a request's wait overlaps the other coins' parsing and writing.
CHART_WORKERS = 4
# Fetched charts checked in one parse before they are stored (``market_chart_errors``): the per-chart cost of a
# parse paid once a batch. A run interrupted between fetching and storing a batch asks for those coins again.
CHARTS_PER_CHECK = 25
CHART_ENDPOINT = "market_chart_range"
MARKETS_ENDPOINT = "markets"
# /global, pulled with each /coins/markets snapshot and stored under the same snapshot stamp, so the top coins'
# share of the market's total is measured at one instant (METHODOLOGY.md, "The market's total").
GLOBAL_ENDPOINT = "global"
GLOBAL_DATASET = "coingecko global"
GLOBAL_FILE = "global"
# The coins whose share of the total is measured (the largest by market cap, stablecoins included, as /global).
SHARE_TOP_N = 100
# A /global total more than this many times the listed coins' own total is off by a factor (a unit error): the
# real top 100 hold about 98.6% of it.
MAX_TOTAL_TO_LISTED = 2.0
# Written last in a /coins/markets snapshot directory: only a snapshot with it is complete (a run killed between
# the top pages and the category pages must not leave a registry without categories).
SNAPSHOT_COMPLETE = "_complete"
# Categories pulled for membership: every category a sector index is made of (``metrics.sectors``), then the
# largest of those the universe excludes (``metrics.universe``; its name patterns catch the variants).
MEMBERSHIP_CATEGORIES = (
    *dict.fromkeys(c for spec in DEFAULT_INDICES for c in spec.categories or ()),
    "stablecoins",
    "wrapped-tokens",
    "liquid-staking-tokens",
    "liquid-restaking-tokens",
    "tokenized-gold",
)


def _store(wh: Warehouse, endpoint: str, parts: dict[str, str], name: str, fetched: Fetched) -> str:
    return wh.store_raw(SOURCE, endpoint, parts, name, fetched.body, fetched.request_record()).relpath


def _parsed_markets(fetched: Fetched) -> pl.DataFrame:
    """Parse one /coins/markets page; a drifted payload raises a ``PayloadError`` naming the request."""
    try:
        return parse_markets([fetched.json()])
    except PayloadError as exc:
        raise fetched.error(
            f"/coins/markets payload changed shape ({str(exc).split(':', 1)[0]})", body=fetched.text
        ) from exc


@dataclass
class RegistryPull:
    snapshot: str
    files: list[str]
    coins: pl.DataFrame  # coin_id, symbol, name, market_cap_rank, market_cap_usd, categories
    requests: int
    global_file: str | None = None  # the stored /global response of the same instant
    global_gap: gaps_mod.Gap | None = None  # why there is none: the pull failed or its figure was refused


def global_problems(total: float, listed_usd: float) -> list[str]:
    """What is wrong with a ``/global`` total next to the listed coins' total of the same instant (empty: it is
    plausible): not a finite number, zero or negative, below what the listed coins alone add up to, or more than
    ``MAX_TOTAL_TO_LISTED`` times it (off by a factor)."""
    if not math.isfinite(total):
        return [f"total_market_cap.usd = {total} is not a finite number"]
    if total <= 0:
        return [f"total_market_cap.usd = {total:.10g} is not positive"]
    if total < listed_usd:
        return [f"total_market_cap.usd = {total:.10g} is below the listed coins' own total {listed_usd:.10g}"]
    if total > MAX_TOTAL_TO_LISTED * listed_usd:
        return [
            f"total_market_cap.usd = {total:.10g} is more than {MAX_TOTAL_TO_LISTED:g}x the listed coins' "
            f"total {listed_usd:.10g} (off by a factor)"
        ]
    return []


def fetch_global(client: CoinGeckoClient, coins: pl.DataFrame) -> tuple[Fetched | None, gaps_mod.Gap | None]:
    """``/global`` checked against the listed coins (``coins``, the /coins/markets pages of the same instant).

    A failed request (404, 451, 5xx or timeouts after the retries, an error body) and a refused answer (a changed
    shape, or a figure ``global_problems`` rejects: zero, negative, NaN, below the listed coins' total) give a
    named gap and nothing to store: wrong figures are refused before storage, so the lake never holds them."""
    try:
        fetched = client.global_market()
    except SourceError as exc:
        reason, status = gaps_mod.classify(exc)
        return None, gaps_mod.Gap(SOURCE, GLOBAL_DATASET, "/global", (), status, reason, str(exc)[:300])
    try:
        parsed = parse_global(fetched.json())
        listed = float(coins["market_cap_usd"].drop_nulls().sum())
        wrong = global_problems(parsed["total_market_cap_usd"], listed)
        if wrong:
            raise fetched.error("; ".join(wrong))
    except (ValueError, PayloadError) as exc:  # ValueError: not JSON
        detail = f"refused before storage: {exc}"
        return None, gaps_mod.Gap(
            SOURCE, GLOBAL_DATASET, "/global", (), fetched.status, gaps_mod.PAYLOAD, detail[:300]
        )
    return fetched, None


def pull_registry(
    client: CoinGeckoClient, wh: Warehouse, top_n: int, now: datetime | None = None
) -> RegistryPull:
    """Top ``top_n`` coins by market cap and their category membership, stored as one snapshot, with ``/global``
    pulled right after the top pages and stored under the same stamp (``raw/coingecko/global/snapshot=...``).
    A ``/global`` that fails or is refused is a gap (``global_gap``); the registry is stored regardless.

    Every page is fetched and checked before anything is stored, so a drifted or failing page leaves no snapshot
    behind; the pages are then stored and the directory marked complete (``_complete``) last, so a run killed
    while storing leaves a snapshot no reader uses (and a re-run with the same clock completes it).
    """
    if top_n < 1:  # an empty "complete" snapshot would be reused for hours (COINGECKO_TOP_N is checked too)
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    now = now or datetime.now(timezone.utc)
    fetched_pages: list[tuple[str, Fetched]] = []
    pages = []
    for i, fetched in enumerate(client.markets_pages(top_n=top_n), start=1):
        _parsed_markets(fetched)  # drift fails here, naming the page, before anything is stored
        fetched_pages.append((f"top-page-{i}", fetched))
        pages.append(fetched.json())
    coins = parse_markets(pages).head(top_n)
    if coins.is_empty():
        raise ValueError("CoinGecko /coins/markets listed no coins: no registry snapshot stored")
    global_fetched, global_gap = fetch_global(client, coins)  # right after the top pages: the same instant
    members: dict[str, list[str]] = {}
    for cat in MEMBERSHIP_CATEGORIES:
        for i, fetched in enumerate(client.markets_pages(top_n=1000, category=cat), start=1):
            for row in _parsed_markets(fetched).iter_rows(named=True):
                members.setdefault(row["coin_id"], []).append(cat)
            fetched_pages.append((f"category-{cat}-page-{i}", fetched))
    snap = _free_snapshot(wh, stamp(now), fetched_pages)
    files = [
        _store(wh, MARKETS_ENDPOINT, {"snapshot": snap}, name, fetched) for name, fetched in fetched_pages
    ]
    # stored before the snapshot is marked complete: a complete snapshot's /global (if any) is always there
    global_file = (
        _store(wh, GLOBAL_ENDPOINT, {"snapshot": snap}, GLOBAL_FILE, global_fetched)
        if global_fetched
        else None
    )
    base = wh.raw_dir / SOURCE / MARKETS_ENDPOINT / f"snapshot={safe_component(snap)}"
    atomic_write_bytes(base / SNAPSHOT_COMPLETE, json.dumps({"files": files}, indent=1).encode())
    coins = coins.with_columns(
        pl.col("coin_id")
        .map_elements(lambda c: sorted(members.get(c, [])), return_dtype=pl.List(pl.String))
        .alias("categories")
    )
    return RegistryPull(
        snapshot=snap,
        files=files,
        coins=coins,
        requests=len(files) + 1,  # and the /global request, answered or not
        global_file=global_file,
        global_gap=global_gap,
    )


def _free_snapshot(wh: Warehouse, snap: str, fetched_pages: list[tuple[str, Fetched]]) -> str:
    """``snap``, unless a directory of that name holds other bytes under one of our names (then ``snap-02``...).

    Same name and same bytes is the re-run of an interrupted store (frozen clock): it is completed in place.
    """
    for n in range(1, 100):
        name = snap if n == 1 else f"{snap}-{n:02d}"
        base = wh.raw_dir / SOURCE / MARKETS_ENDPOINT / f"snapshot={name}"
        if (base / SNAPSHOT_COMPLETE).exists():
            continue
        clash = False
        for page, fetched in fetched_pages:
            path = base / f"{page}.json"
            if (
                path.exists()
                and path.with_suffix(".meta.json").exists()
                and sha256_file(path) != sha256_bytes(fetched.body)
            ):
                clash = True
                break
        if not clash:
            return name
    raise FileExistsError(f"no free snapshot name for {snap}")


def stored_chart_pulls(wh: Warehouse, coin_id: str) -> list[StoredPull]:
    """Every stored market-chart pull of one coin (a range pull: ``pipelines.pulls.recorded``), oldest first."""
    return stored_range_pulls(wh, SOURCE, CHART_ENDPOINT, "coin", coin_id)


@dataclass
class ChartPullReport:
    requested: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    beyond_plan: list[date] = field(default_factory=list)  # days the plan's history window does not reach


def pull_market_charts(
    client: CoinGeckoClient,
    wh: Warehouse,
    coin_ids: list[str],
    first_day: date,
    last_day: date,
    *,
    force: bool = False,
    now: datetime | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    plan_first_day: date | None = None,
    workers: int = CHART_WORKERS,
) -> ChartPullReport:
    """One ``market_chart/range`` request per coin covering the closes of ``first_day..last_day``, ``workers``
    coins at a time.

    A coin whose stored pulls already cover every day of the range makes no request unless ``force``. A coin
    that fails after the HTTP layer's retries is recorded in ``failed`` and the others go on; the caller decides
    whether a partial pull is an error (the assets make it one, listing the coins).

    ``plan_first_day`` is the first day the plan's history window reaches (``pipelines.clean.estimates``): days before
    it are not asked (``beyond_plan``), and when the range has such days the request also covers
    ``plan_first_day`` itself, the reference day their estimates carry the supply back from.
    """
    now = now or datetime.now(timezone.utc)
    report = ChartPullReport()
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    days = [d for d in days if close_instant(d) <= now]
    if plan_first_day is not None:
        report.beyond_plan = [d for d in days if d < plan_first_day]
        days = [d for d in days if d >= plan_first_day]
        if report.beyond_plan and close_instant(plan_first_day) <= now:
            days = sorted({*days, plan_first_day})
    start = close_instant(days[0] if days else first_day)
    end = close_instant(days[-1] if days else last_day) + timedelta(
        hours=2
    )  # hourly points land minutes late

    def one(coin_id: str) -> Fetched | tuple[str, str]:
        """The response, or what happened instead and why: ("failed", why) or ("skipped", "")."""
        if not is_safe_component(coin_id):  # it would become a directory name: never request or store it
            return "failed", f"unsafe coin id {coin_id!r}: not requested (it cannot be a path component)"
        if not force and not uncovered(stored_chart_pulls(wh, coin_id), days):
            return "skipped", ""
        try:
            return client.market_chart_range(coin_id, start, min(end, now))
        except SourceError as exc:
            return "failed", str(exc)

    unique = list(dict.fromkeys(coin_ids))
    outcomes: dict[str, tuple[str, str]] = {}

    def told(coin_id: str, outcome: tuple[str, str]) -> None:
        outcomes[coin_id] = outcome
        if progress:
            progress(len(outcomes), len(unique), coin_id)

    def check_and_store(batch: list[tuple[str, Fetched]]) -> None:
        """Schema drift: keep nothing that cannot be cleaned (it would count as covering its days)."""
        errors = market_chart_errors([(f.json(), f.endpoint) for _, f in batch])
        for (coin_id, fetched), exc in zip(batch, errors, strict=True):
            if exc is not None:
                why = (
                    f"payload changed shape, not stored ({str(exc).split(':', 1)[0]})"
                    if isinstance(exc, PayloadError)
                    else f"payload not stored: {exc}"  # a point given twice with two values
                )
                told(coin_id, ("failed", str(fetched.error(why, body=fetched.text))))
                continue
            name = f"{stamp(start)}_{stamp(min(end, now))}__{stamp(fetched.fetched_at)}"
            told(coin_id, ("stored", _store(wh, CHART_ENDPOINT, {"coin": coin_id}, name, fetched)))

    # Coins in parallel (each its own directory): a request's wait overlaps the others' and the checking and
    # writing of those fetched, and the client's pacing (``HostLimiter``) still holds every request to the plan's
    # rate. Responses are checked ``CHARTS_PER_CHECK`` at a time, then stored. Progress is told as coins are
    # done; the report lists coins in the order asked. A coin named twice is pulled once (its second mention is
    # skipped: the first pull covers its days).
    fetched_batch: list[tuple[str, Fetched]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(one, coin_id): coin_id for coin_id in unique}
        try:
            for future in as_completed(futures):
                coin_id = futures[future]
                result = future.result()
                if not isinstance(result, Fetched):
                    told(coin_id, result)
                    continue
                fetched_batch.append((coin_id, result))
                if len(fetched_batch) >= CHARTS_PER_CHECK:
                    check_and_store(fetched_batch)
                    fetched_batch = []
            check_and_store(fetched_batch)
        except BaseException:  # an unexpected error, or an interrupt: the coins not started are not asked
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    seen: set[str] = set()
    for coin_id in coin_ids:
        outcome, detail = outcomes[coin_id] if coin_id not in seen else ("skipped", "")
        seen.add(coin_id)
        if outcome == "failed":
            report.failed[coin_id] = detail
        elif outcome == "skipped":
            report.skipped.append(coin_id)
        else:
            report.files.append(detail)
            report.requested.append(coin_id)
    return report
