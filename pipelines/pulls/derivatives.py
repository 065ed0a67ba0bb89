"""Pull logic behind the non-CoinGecko raw assets: Binance, data.binance.vision, Bybit, OKX and FRED.

Every response is stored exactly as pulled (``Warehouse.store_raw``), beside a ``.meta.json`` holding the
request (URL, endpoint, parameters without secrets), the status, the time and a ``pull`` record: which key
(symbol, coin or series), which UTC days the pull was asked to cover, and how many pages it has. The raw layer
is therefore a complete recording (a paged pull of ``pipelines.pulls.recorded``), and "is this day already
stored?" is answered from it:

    raw/<source>/<endpoint>/<key name>=<key>/pull=<first>_<last>__<fetched>/page-001.<ext>

A pull *covers* day D when D is inside its requested days, it was fetched after D closed (D+1 00:00 UTC) and all
of its pages are on disk (pages are stored only once the whole pull succeeded). A day covered by a stored pull
makes no request unless ``force``; otherwise one pull spans every uncovered day of the range, so a backfill of
many days is one paginated request sequence per symbol.

A pull that fails stores nothing: it is a named gap (``pipelines.gaps``: source, dataset, key, days, status,
reason) in the ``PullReport`` and the gap ledger, and the days are asked again on the next run. An answer
with no rows at all is a gap too (stored nothing). A venue that answers 451/403 trips the per-run circuit
breaker (``gaps.BREAKER``): its remaining keys are not asked and share the one gap.

Kept free of Dagster so it can be called from tests, benchmarks and the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl

from pipelines import gaps as gaps_mod
from pipelines.calendar import utc_midnight
from pipelines.gaps import EMPTY, OUTSIDE_WINDOW, PUBLICATION_LAG, Breaker, Gap
from pipelines.pulls.recorded import close_instant, pull_id, stamp, stored_pulls, uncovered
from pipelines.sources.binance import BinanceFuturesClient, BinanceSpotClient, parse_premium_index
from pipelines.sources.binance_vision import BinanceVisionClient
from pipelines.sources.bybit import BybitClient
from pipelines.sources.fred import SERIES as FRED_SERIES
from pipelines.sources.fred import FredClient
from pipelines.sources.http import Fetched, PayloadError, SourceError
from pipelines.sources.okx import OkxClient, inst_id
from pipelines.warehouse import Warehouse, safe_component

MS = timedelta(milliseconds=1)
# How many perpetuals to follow (the largest eligible coins listed on Binance USDT-M). The environment may lower
# it (the test suite does, to keep runs short); the UI shows it as the assets' `top_n` config default.
# A bad value is reported by pipelines.settings.validate() (one clear error); importing must not fail on it.
_perp_top_n = os.environ.get("CRYPTO_WEEKLY_PERP_TOP_N", "").strip()
PERP_TOP_N = int(_perp_top_n) if _perp_top_n.isdigit() and int(_perp_top_n) >= 1 else 40
BTC_SPOT_SYMBOL = "BTCUSDT"
# Binance /futures/data/* keep 30 days; a day is asked there only when it starts an hour inside that window.
BINANCE_STATS_REST_DAYS = 30
# OKX keeps about 3 months of funding (92 days in the emulator) and 180 days of daily rubik OI: stay inside.
OKX_FUNDING_REACH_DAYS = 90
OKX_OI_REACH_DAYS = 175
# The metrics archive costs two requests per symbol and day (zip + .CHECKSUM); by default it is only read
# for the recent days the REST window cannot reach. Older history is opt-in (``archive_start``).
DEFAULT_ARCHIVE_DAYS = 60
FRED_HISTORY_START = date(2024, 1, 1)
# data.binance.vision publishes a daily file the day after (sometimes later) and a monthly file after the month
# ends: a 404 inside these lags means "not published yet" (asked again on later runs), not "missing upstream".
DAILY_ARCHIVE_LAG_DAYS = 2
MONTHLY_ARCHIVE_LAG_DAYS = 5


def closed_days(days: Iterable[date], now: datetime) -> list[date]:
    return [d for d in days if close_instant(d) <= now]


def first_full_day_after(t: datetime) -> date:
    d = t.astimezone(timezone.utc).date()
    return d if utc_midnight(d) >= t else d + timedelta(days=1)


def rest_stats_first_day(now: datetime) -> date:
    """The first day whose every hour Binance's 30-day /futures/data window still reaches (1 h margin)."""
    return first_full_day_after(now - timedelta(days=BINANCE_STATS_REST_DAYS) + timedelta(hours=1))


# ---- a page to store ---------------------------------------------------------------------------------------
@dataclass
class Page:
    body: bytes
    request: dict[str, Any]  # no secrets
    ext: str = "json"

    @classmethod
    def of(cls, fetched: Fetched, ext: str = "json", **extra: Any) -> Page:
        return cls(fetched.body, {**fetched.request_record(), **extra}, ext)


# ---- pulling ---------------------------------------------------------------------------------------------------
@dataclass
class PullReport:
    requests: int = 0
    pulls: int = 0
    skipped: int = 0  # keys whose days were all covered already
    unreachable_days: int = 0  # days the source's free window cannot reach (not asked)
    failed: dict[str, str] = field(default_factory=dict)  # "<dataset> <key>" -> error
    files: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)  # what could not be had (nothing stored for it)
    asked: dict[str, set[date]] = field(default_factory=dict)  # dataset name -> days this run asked about

    def merge(self, other: PullReport) -> None:
        self.requests += other.requests
        self.pulls += other.pulls
        self.skipped += other.skipped
        self.unreachable_days += other.unreachable_days
        self.failed.update(other.failed)
        self.files.extend(other.files)
        self.gaps.extend(other.gaps)
        for k, v in other.asked.items():
            self.asked.setdefault(k, set()).update(v)

    def outside_window(self, ds: Dataset, days: list[date], detail: str) -> None:
        """``days`` the source's free window cannot reach: not asked (``unreachable_days``), one named gap for
        every key of ``ds``."""
        if not days:
            return
        self.unreachable_days += len(days)
        self.gaps.append(Gap(ds.source, ds.name, "*", day_strings(days), None, OUTSIDE_WINDOW, detail))
        self.asked[ds.name] = set(days)

    def record(self, wh: Warehouse) -> None:
        """Write the gap ledger of every dataset this run asked about (days that now succeeded drop out)."""
        for name, days in sorted(self.asked.items()):
            # an unpartitioned dataset (FRED: no days) is replaced whole
            gaps_mod.record_gaps(
                wh, name, days, [g for g in self.gaps if g.dataset == name], replace_all=not days
            )


class NotPublishedYet(SourceError):
    """A data.binance.vision 404 for a file still inside its publication lag: asked again on later runs."""


def _classify(exc: SourceError) -> tuple[str, int | None]:
    if isinstance(exc, NotPublishedYet):
        return PUBLICATION_LAG, exc.status
    return gaps_mod.classify(exc)


def page_rows(page: Page) -> int | None:
    """How many rows a JSON page holds (a list, Bybit's ``result.list``, OKX's ``data``); None if not known."""
    if page.ext != "json":
        return None
    try:
        body = json.loads(page.body)
    except ValueError:
        return None
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict):
        result = body.get("result")
        if isinstance(result, dict) and isinstance(result.get("list"), list):
            return len(result["list"])
        if isinstance(body.get("data"), list):
            return len(body["data"])
    return None


def is_empty_answer(pages: list[Page]) -> bool:
    """Whether every page holds zero rows (decoded up to the first that holds some: most answers' first)."""
    return bool(pages) and all(page_rows(p) == 0 for p in pages)


def day_strings(days: Iterable[date]) -> tuple[str, ...]:
    return tuple(sorted(d.isoformat() for d in days))


@dataclass(frozen=True)
class Dataset:
    """One recorded endpoint: where it is stored and how a range of days of one key is fetched."""

    name: str
    source: str
    endpoint: str
    key_name: str  # path part: symbol, ccy, ...


def store_pull(wh: Warehouse, ds: Dataset, key: str, first: date, last: date, pages: list[Page]) -> list[str]:
    fetched = min(datetime.fromisoformat(p.request["fetched_at"]) for p in pages)
    pull = pull_id(first, last, fetched)
    parts = {ds.key_name: key, "pull": pull}
    n = 1
    while wh.raw_path(
        ds.source, ds.endpoint, parts, "page-001", pages[0].ext
    ).exists():  # same second, same key
        n += 1
        parts["pull"] = f"{pull}-{n}"
    files = []
    for i, page in enumerate(pages, start=1):
        record = {
            **page.request,
            "pull": {
                "key": key,
                "first_day": first.isoformat(),
                "last_day": last.isoformat(),
                "page": i,
                "pages": len(pages),
                "ext": page.ext,
            },
        }
        files.append(
            wh.store_raw(ds.source, ds.endpoint, parts, f"page-{i:03d}", page.body, record, page.ext).relpath
        )
    return files


def pull_days(
    wh: Warehouse,
    ds: Dataset,
    keys: list[str],
    days: list[date],
    fetch: Callable[[str, date, date], list[Page]],
    *,
    force: bool,
    workers: int = 4,
    one_pull_per_day: bool = False,
    breaker: Breaker | None = None,
) -> PullReport:
    """Pull every key for the uncovered ``days`` (already restricted to closed, reachable days).

    One pull per key spans its uncovered days (or, with ``one_pull_per_day``, one per day: daily archive
    files). A key that fails, or whose answer has no rows at all, is a gap (``gaps``, also in ``failed``) and
    nothing of it is stored; the others go on. Once the venue has answered 451/403 (``breaker``, default the
    current run's: ``gaps.breaker_for_run``), the remaining keys are not asked: they are gaps with that answer.
    """
    breaker = breaker or gaps_mod.BREAKER
    existing = {} if force else stored_pulls(wh, ds.source, ds.endpoint, days)

    def gap(key: str, exc: SourceError, gdays: list[date]) -> Gap:
        reason, status = _classify(exc)
        return Gap(ds.source, ds.name, key, day_strings(gdays), status, reason, str(exc)[:300])

    def one(key: str) -> PullReport:
        rep = PullReport()
        todo = uncovered(existing.get(key, []), days)
        if not todo:
            rep.skipped += 1
            return rep
        spans = [(d, d) for d in todo] if one_pull_per_day else [(min(todo), max(todo))]
        for first, last in spans:
            left = [d for d in todo if d >= first]
            tripped = breaker.blocked(ds.source)
            if tripped is not None:
                rep.gaps.append(gap(key, tripped, left))
                return rep
            try:
                pages = fetch(key, first, last)
            except SourceError as exc:
                g = gap(key, exc, [d for d in todo if first <= d <= last])
                rep.failed[f"{ds.name} {key}"] = str(exc)
                if g.reason in gaps_mod.TRIPS:
                    breaker.trip(ds.source, exc)
                    g = Gap(g.source, g.dataset, g.key, day_strings(left), g.status, g.reason, g.detail)
                    rep.gaps.append(g)
                    return rep
                rep.gaps.append(g)
                if not one_pull_per_day:
                    return rep
                continue
            rep.requests += sum(int(p.request.get("requests", 1)) for p in pages)
            if is_empty_answer(pages):
                rep.gaps.append(
                    Gap(
                        ds.source,
                        ds.name,
                        key,
                        day_strings([d for d in todo if first <= d <= last]),
                        None,
                        EMPTY,
                        f"{ds.endpoint}: no rows for {first}..{last}",
                    )
                )
                continue
            rep.files += store_pull(wh, ds, key, first, last, pages)
            rep.pulls += 1
        return rep

    total = PullReport(asked={ds.name: set(days)} if days else {})
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for rep in pool.map(one, keys):
            total.merge(rep)
    return total


# ---- the perpetuals followed -----------------------------------------------------------------------------------
PREMIUM = Dataset("binance premiumIndex", "binance", "premium_index", "snapshot")


def latest_premium_index(wh: Warehouse) -> tuple[str, pl.DataFrame] | None:
    base = wh.raw_dir / PREMIUM.source / PREMIUM.endpoint
    files = sorted(
        p for p in base.glob("snapshot=*/premium_index.json") if p.with_suffix(".meta.json").exists()
    )
    if not files:
        return None
    return wh.rel(files[-1]), parse_premium_index(json.loads(files[-1].read_bytes()))


def pull_premium_index(client: BinanceFuturesClient, wh: Warehouse, now: datetime) -> str:
    fetched = client.premium_index()
    return wh.store_raw(
        PREMIUM.source,
        PREMIUM.endpoint,
        {"snapshot": stamp(now)},
        "premium_index",
        fetched.body,
        fetched.request_record(),
    ).relpath


def perp_universe(registry: pl.DataFrame, listed: Iterable[str] | None, top_n: int = PERP_TOP_N) -> list[str]:
    """The ``top_n`` largest eligible coins of the CoinGecko registry (no stablecoins, wrapped or staked
    tokens: ``pipelines.metrics.universe.eligible``) that have a Binance USDT-M perpetual ``<SYMBOL>USDT``,
    in market-cap order. ``listed`` None (no Binance list could be had: blocked or not selected): every eligible
    coin qualifies, and each venue's own answer says whether it lists the perpetual (a venue that does not is a
    named gap for that symbol)."""
    from pipelines.metrics.universe import eligible, eligible_ids

    ok = set(eligible_ids(eligible(registry)))
    listed = set(listed) if listed is not None else None
    out: list[str] = []
    for coin_id, symbol in (
        registry.sort("market_cap_rank", nulls_last=True).select("coin_id", "symbol").iter_rows()
    ):
        sym = f"{symbol.upper()}USDT"
        if (
            coin_id in ok
            and (listed is None or sym in listed)
            and sym not in out
            and re.fullmatch(r"[A-Z0-9]{2,20}USDT", sym)
        ):
            out.append(sym)
        if len(out) == top_n:
            break
    return out


def base_of(symbol: str) -> str:
    return symbol[:-4] if symbol.endswith("USDT") else symbol


# ---- datasets ------------------------------------------------------------------------------------------------
BINANCE_FUNDING = Dataset("binance funding", "binance", "funding_rate", "symbol")
BINANCE_OI = Dataset("binance openInterestHist", "binance", "open_interest_hist", "symbol")
BINANCE_LS = Dataset(
    "binance globalLongShortAccountRatio", "binance", "global_long_short_account_ratio", "symbol"
)
BINANCE_METRICS = Dataset("binance metrics archive", "binance_vision", "metrics", "symbol")
BINANCE_SPOT_1H = Dataset("binance spot klines 1h", "binance", "spot_klines_1h", "symbol")
BINANCE_PERP_1D = Dataset("binance perp klines 1d", "binance", "perp_klines_1d", "symbol")
BINANCE_PERP_INTRADAY = Dataset("binance perp klines intraday", "binance", "perp_klines_intraday", "symbol")
BYBIT_FUNDING = Dataset("bybit funding", "bybit", "funding_history", "symbol")
BYBIT_OI = Dataset("bybit open interest", "bybit", "open_interest", "symbol")
OKX_FUNDING = Dataset("okx funding", "okx", "funding_rate_history", "symbol")
OKX_OI = Dataset("okx open interest", "okx", "open_interest_volume", "symbol")


# A pull of up to this many days asks hourly readings (192 at most: one Bybit page of 200).
HOURLY_SPAN_DAYS = 8


def intraday_spans(first: date, last: date) -> list[tuple[str, date, date]]:
    """The ``(interval, first, last)`` requests of a pull of Bybit's open interest, or of the Binance bars that
    price it: hourly for a pull of up to ``HOURLY_SPAN_DAYS`` days; a longer one every 4 hours up to the day before
    its last, and hourly for its last day. A reading is used at the funding settlements (every 8 or 4 hours, on
    the 4-hour grid) and at each day's close (the next day's 00:00 reading, or, while the next day is not pulled,
    the day's last); the 4-hour grid holds every one of them, and the last day's hourly readings keep its last
    reading at 23:00. A backfill of 698 days asks 22 Bybit pages a symbol instead of 84."""
    if (last - first).days + 1 <= HOURLY_SPAN_DAYS:
        return [("1h", first, last)]
    return [("4h", first, last - timedelta(days=1)), ("1h", last, last)]


def _span(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00, last+1 00:00 - 1 ms]: every instant of the days, both ends inclusive."""
    return utc_midnight(first), utc_midnight(last + timedelta(days=1)) - MS


def pull_binance_funding(
    client: BinanceFuturesClient,
    wh: Warehouse,
    symbols: list[str],
    days: list[date],
    *,
    force: bool = False,
    workers: int = 4,
) -> PullReport:
    """``/fapi/v1/fundingRate`` over REST for every day: it reaches the whole history at up to 1000 rows a page
    (one or two requests per symbol for a year of 8-hour settlements), much cheaper than the monthly archive."""

    def fetch(sym: str, first: date, last: date) -> list[Page]:
        return [Page.of(f) for f in client.funding_rate_pages(sym, *_span(first, last))]

    return pull_days(wh, BINANCE_FUNDING, symbols, days, fetch, force=force, workers=workers)


def archive_published(now: datetime, day: date | None = None, month: date | None = None) -> bool:
    """Whether data.binance.vision should have published the daily file of ``day`` (its close plus
    ``DAILY_ARCHIVE_LAG_DAYS``) or the monthly file of ``month`` (any day of it: the month's end plus
    ``MONTHLY_ARCHIVE_LAG_DAYS``) by ``now``."""
    if day is not None:
        return now >= close_instant(day) + timedelta(days=DAILY_ARCHIVE_LAG_DAYS)
    assert month is not None
    nxt = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return now >= utc_midnight(nxt) + timedelta(days=MONTHLY_ARCHIVE_LAG_DAYS)


def verified_archive_page(
    vision: BinanceVisionClient,
    path: str,
    now: datetime | None = None,
    day: date | None = None,
    month: date | None = None,
) -> Page:
    """A data.binance.vision zip and its ``.CHECKSUM``, verified. A 404 once the file's publication lag has
    passed (``archive_published``) is recorded as such (missing upstream) so that it is not asked again; a 404
    inside the lag raises ``NotPublishedYet`` (nothing stored: asked again on later runs). Raises
    ``SourceError`` on a mismatch or any other failure."""
    try:
        blob = vision.http.get(path, expect_json=False)
    except SourceError as exc:
        if exc.status == 404:
            now = now or datetime.now(timezone.utc)
            if (day or month) and not archive_published(now, day=day, month=month):
                raise NotPublishedYet(
                    "not published yet (inside the archive's publication lag)",
                    endpoint=path,
                    params={},
                    status=404,
                    body=exc.body,
                ) from exc
            return Page(
                exc.body.encode(),
                {
                    "url": f"{vision.http.base_url}{path}",
                    "endpoint": path,
                    "params": {},
                    "status": 404,
                    "fetched_at": now.isoformat(),
                    "attempts": 1,
                },
                "xml",
            )
        raise
    check = vision.http.get(path + ".CHECKSUM", expect_json=False)
    line = check.body.decode("ascii", errors="replace").strip()
    m = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
    name = path.rsplit("/", 1)[1]
    if not m or m.group(2) != name:
        raise PayloadError(
            f"unreadable .CHECKSUM {line[:90]!r}", endpoint=path + ".CHECKSUM", params={}, status=200
        )
    actual = hashlib.sha256(blob.body).hexdigest()
    if actual != m.group(1):
        raise SourceError(
            f"sha256 mismatch: file {actual}, .CHECKSUM {m.group(1)}", endpoint=path, params={}, status=200
        )
    return Page.of(blob, "zip", checksum=line, checksum_url=check.url, requests=2)


def pull_binance_stats(
    fapi: BinanceFuturesClient,
    vision: BinanceVisionClient,
    wh: Warehouse,
    symbols: list[str],
    days: list[date],
    now: datetime,
    *,
    archive_start: date | None,
    force: bool = False,
    workers: int = 4,
) -> PullReport:
    """Open interest and global long/short account ratio, hourly.

    Days inside Binance's 30-day ``/futures/data`` window: REST ``openInterestHist`` and
    ``globalLongShortAccountRatio`` (period 1h, 500 rows a page: two requests each per symbol for 30 days).
    Older days: the daily ``metrics`` archive (5-minute rows, both series in one file), verified against its
    ``.CHECKSUM``, for days from ``archive_start`` on; days before it are not asked (``unreachable_days``).
    """
    rest_first = rest_stats_first_day(now)
    rest_days = [d for d in days if d >= rest_first]
    archive_days = [d for d in days if d < rest_first and (archive_start is None or d >= archive_start)]
    report = PullReport()
    report.outside_window(
        BINANCE_OI,
        [d for d in days if d not in rest_days and d not in archive_days],
        f"before the REST window ({rest_first}) and the archive start ({archive_start})",
    )

    def oi(sym: str, first: date, last: date) -> list[Page]:
        lo, hi = _span(first, last)
        return [Page.of(f) for f in fapi.open_interest_hist_pages(sym, "1h", lo, min(hi, now))]

    def ls(sym: str, first: date, last: date) -> list[Page]:
        lo, hi = _span(first, last)
        return [Page.of(f) for f in fapi.long_short_ratio_pages(sym, "1h", lo, min(hi, now))]

    def metrics(sym: str, first: date, last: date) -> list[Page]:
        path = f"/data/futures/um/daily/metrics/{sym}/{sym}-metrics-{first.isoformat()}.zip"
        return [verified_archive_page(vision, path, now=now, day=first)]

    if rest_days:
        report.merge(pull_days(wh, BINANCE_OI, symbols, rest_days, oi, force=force, workers=workers))
        report.merge(pull_days(wh, BINANCE_LS, symbols, rest_days, ls, force=force, workers=workers))
    if archive_days:
        report.merge(
            pull_days(
                wh,
                BINANCE_METRICS,
                symbols,
                archive_days,
                metrics,
                force=force,
                workers=workers,
                one_pull_per_day=True,
            )
        )
        # days an earlier run left outside the window, now read from the archive, leave the OI ledger
        report.asked.setdefault(BINANCE_OI.name, set()).update(archive_days)
    return report


def klines_fetch(
    client: BinanceFuturesClient | BinanceSpotClient,
    interval: str | None = None,
    spans: Callable[[date, date], list[tuple[str, date, date]]] | None = None,
) -> Callable[[str, date, date], list[Page]]:
    """A ``pull_days`` fetch of a symbol's ``interval`` bars (``/klines``) for its days: open times from ``first``
    00:00 to ``last``+1 00:00; or, given ``spans`` instead, the ``(interval, first, last)`` requests it gives for
    the pull's days (``intraday_spans``)."""
    if (interval is None) == (spans is None):
        raise ValueError("klines_fetch: give an interval or spans")

    def fetch(sym: str, first: date, last: date) -> list[Page]:
        out = []
        for iv, lo_day, hi_day in spans(first, last) if spans else [(interval, first, last)]:
            lo, hi = _span(lo_day, hi_day)
            out += [Page.of(f) for f in client.klines_pages(sym, iv, lo, hi + MS)]
        return out

    return fetch


def pull_binance_klines(
    fapi: BinanceFuturesClient,
    spot: BinanceSpotClient,
    wh: Warehouse,
    symbols: list[str],
    days: list[date],
    *,
    force: bool = False,
    workers: int = 4,
) -> PullReport:
    """Spot BTCUSDT 1h bars (``/api/v3/klines``, 1000 a page), and per perpetual the USDT-M daily bars (perp
    volume; one request a symbol for up to 1500 days) and intraday bars (prices that turn Bybit's base-coin open
    interest into USD, at the intervals of ``intraday_spans``; 1500 a page)."""

    spot_1h, perp_1d = klines_fetch(spot, "1h"), klines_fetch(fapi, "1d")
    perp_intraday = klines_fetch(fapi, spans=intraday_spans)
    report = pull_days(wh, BINANCE_SPOT_1H, [BTC_SPOT_SYMBOL], days, spot_1h, force=force, workers=1)
    report.merge(pull_days(wh, BINANCE_PERP_1D, symbols, days, perp_1d, force=force, workers=workers))
    report.merge(
        pull_days(wh, BINANCE_PERP_INTRADAY, symbols, days, perp_intraday, force=force, workers=workers)
    )
    return report


def pull_bybit(
    client: BybitClient,
    wh: Warehouse,
    symbols: list[str],
    days: list[date],
    *,
    force: bool = False,
    workers: int = 4,
) -> PullReport:
    """Bybit linear funding history (200 a page, paged backward) and open interest at the intervals of
    ``intraday_spans`` (cursor pages of 200)."""

    def funding(sym: str, first: date, last: date) -> list[Page]:
        return [Page.of(f) for f in client.funding_history_pages(sym, *_span(first, last))]

    def oi(sym: str, first: date, last: date) -> list[Page]:
        return [
            Page.of(f)
            for iv, lo, hi in intraday_spans(first, last)
            for f in client.open_interest_pages(sym, iv, *_span(lo, hi))
        ]

    report = pull_days(wh, BYBIT_FUNDING, symbols, days, funding, force=force, workers=workers)
    report.merge(pull_days(wh, BYBIT_OI, symbols, days, oi, force=force, workers=workers))
    return report


def pull_okx(
    client: OkxClient,
    wh: Warehouse,
    symbols: list[str],
    days: list[date],
    now: datetime,
    *,
    force: bool = False,
    workers: int = 4,
) -> PullReport:
    """OKX swap funding history (``realizedRate``; about 3 months kept) and the rubik daily open interest of each
    coin (USD, all of the coin's OKX futures and swaps; 180 days kept). Older days are not asked."""
    f_first = first_full_day_after(now - timedelta(days=OKX_FUNDING_REACH_DAYS))
    o_first = first_full_day_after(now - timedelta(days=OKX_OI_REACH_DAYS))
    f_days, o_days = [d for d in days if d >= f_first], [d for d in days if d >= o_first]
    report = PullReport()
    for ds, reach, first_day in ((OKX_FUNDING, f_days, f_first), (OKX_OI, o_days, o_first)):
        report.outside_window(
            ds, [d for d in days if d not in reach], f"OKX keeps this history from {first_day} on"
        )

    def funding(sym: str, first: date, last: date) -> list[Page]:
        return [Page.of(f) for f in client.funding_history_pages(inst_id(base_of(sym)), *_span(first, last))]

    def oi(sym: str, first: date, last: date) -> list[Page]:
        return [Page.of(client.open_interest_volume(base_of(sym), "1D", *_span(first, last)))]

    if f_days:
        report.merge(pull_days(wh, OKX_FUNDING, symbols, f_days, funding, force=force, workers=workers))
    if o_days:
        report.merge(pull_days(wh, OKX_OI, symbols, o_days, oi, force=force, workers=workers))
    return report


# ---- FRED ------------------------------------------------------------------------------------------------------
FRED_SOURCE, FRED_ENDPOINT = "fred", "fredgraph_csv"
FRED_DATASET = "fred series"


def fred_snapshots(wh: Warehouse) -> list[str]:
    base = wh.raw_dir / FRED_SOURCE / FRED_ENDPOINT
    return sorted(p.name.split("=", 1)[1] for p in base.glob("snapshot=*") if any(p.glob("*.meta.json")))


def pull_fred(
    client: FredClient,
    wh: Warehouse,
    now: datetime,
    series: Iterable[str] = FRED_SERIES,
    start: date = FRED_HISTORY_START,
) -> PullReport:
    """One ``fredgraph.csv`` request per series from ``start``, stored under one snapshot stamp. A series that
    cannot be pulled is a gap (nothing stored; the newest earlier CSV of it, if any, stays in use)."""
    report = PullReport(asked={FRED_DATASET: set()})
    snap = stamp(now)
    for sid in series:
        tripped = gaps_mod.BREAKER.blocked(FRED_SOURCE)
        try:
            if tripped is not None:
                raise tripped
            fetched = client.series_csv(sid, start=start)
        except SourceError as exc:
            report.failed[f"fred {sid}"] = str(exc)
            reason, status = _classify(exc)
            if reason in gaps_mod.TRIPS:
                gaps_mod.BREAKER.trip(FRED_SOURCE, exc)
            report.gaps.append(Gap(FRED_SOURCE, FRED_DATASET, sid, (), status, reason, str(exc)[:300]))
            continue
        report.requests += 1
        report.files.append(
            wh.store_raw(
                FRED_SOURCE,
                FRED_ENDPOINT,
                {"snapshot": snap},
                safe_component(sid),
                fetched.body,
                fetched.request_record(),
                "csv",
            ).relpath
        )
    report.pulls = len(report.files)
    return report


def latest_fred_files(wh: Warehouse) -> dict[str, Path]:
    """Per series, the newest stored CSV across snapshots."""
    out: dict[str, Path] = {}
    base = wh.raw_dir / FRED_SOURCE / FRED_ENDPOINT
    for snap in fred_snapshots(wh):
        for path in sorted((base / f"snapshot={snap}").glob("*.csv")):
            if path.with_suffix(".meta.json").exists():
                out[path.stem] = path
    return out
