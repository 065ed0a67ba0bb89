"""A second, independent derivation of the report's headline figures, straight from the CLEAN lake.

The claim check (``claims.py``) re-reads the weekly tables the report printed, so a bug in a metric function in
``pipelines/metrics/`` passes it. This module recomputes the headline figures by another path: DuckDB SQL over the
clean Parquet tables (``coin_daily``, ``coin_registry``, ``funding_rates``, ``open_interest``, ``btc_hourly``) and a
few lines of NumPy, without importing ``pipelines.metrics``. The definitions are METHODOLOGY.md's, re-implemented:

* total market cap change: sum of positive market caps on the close day over the open day (Sunday before);
  the same over the coins priced on both days (like for like, the printed change); and the daily total with a
  coin missing for up to three days counted at its latest reading (the level series of weekly_total_market_cap);
* the market's total at the open and the close (and its change): CoinGecko's /global figure observed at that
  close, else the 100 largest carried market caps of the day divided by the share measured by the nearest
  /global observation made by two days after the week's close, else by the real-data constant;
* BTC and ETH weekly returns: price on the close day over price on the open day;
* sector and size indices: eligible coins (documented category exclusions) ranked by market cap at the open
  (top 500, ties by coin id), members per index, weights capped at 25% (computed by water-filling, not by the
  metric's iteration), member return from the open price to the last price in (open day, close day];
* mean funding: rate x 8 / interval over settlements in (Monday 00:00, next Monday 00:00], each weighted by its own
  series' latest open interest at or before it within one day (DuckDB ASOF JOIN); equal weights without OI;
* BTC 7-day realized volatility: log returns between hourly closes exactly one hour apart, stamped at the bar's
  close, in (end - 7 days, end], sample standard deviation x sqrt(24 x 365), at least 90% of the 168 returns.

``crosscheck(wh, week)`` compares each with the weekly table's value and returns the disagreements; a printed
value with no second derivation (the second path finds the inputs insufficient) is a disagreement too. Tolerance:
``ABS_TOL`` percentage points plus ``REL_TOL`` of the value, far below the printed precision (one decimal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from pipelines.clean.coingecko import snapshot_day
from pipelines.narrative.claims import rows_by_key
from pipelines.schemas import TABLES
from pipelines.warehouse import Warehouse

ABS_TOL = 1e-6  # percentage points (or rate units for funding, see FUNDING_ABS_TOL)
REL_TOL = 1e-9
FUNDING_ABS_TOL = 1e-12  # rate per 8h
CAP = 0.25
# METHODOLOGY.md / docs/reliability.md: a settlement this far from the other venues' median is left out
VENUE_GAP = 0.0005
VENUE_FACTOR = 5.0
# The week's settlements (parameters: date bounds, funding_time bounds, VENUE_GAP, VENUE_FACTOR), less those out
# of line with the other venues at the same instant (quarantined: more than VENUE_GAP and VENUE_FACTOR x |median
# of the other venues| from that median), as the CTE ``f``.
FUNDING_KEPT_CTE = (
    "WITH w AS (SELECT exchange, symbol, funding_time, funding_rate * 8.0 / interval_hours AS r8 FROM funding_rates "
    "  WHERE date BETWEEN ? AND ? AND funding_time > ? AND funding_time <= ?), "
    "odd AS (SELECT a.exchange, a.symbol, a.funding_time FROM w a JOIN w b ON a.symbol = b.symbol "
    "  AND a.funding_time = b.funding_time AND a.exchange <> b.exchange "
    "  GROUP BY a.exchange, a.symbol, a.funding_time, a.r8 "
    "  HAVING abs(a.r8 - median(b.r8)) > ? AND abs(a.r8 - median(b.r8)) > ? * abs(median(b.r8))), "
    "f AS (SELECT * FROM w ANTI JOIN odd USING (exchange, symbol, funding_time))"
)
UNIVERSE = 500
# METHODOLOGY.md, Universe: excluded categories and patterns (restated here on purpose, not imported).
EXCLUDED = set(
    "stablecoins usd-stablecoin eur-stablecoin yield-bearing-stablecoins fiat-backed-stablecoin "
    "crypto-backed-stablecoin algorithmic-stablecoin wrapped-tokens bridged-tokens liquid-staking-tokens "
    "liquid-staked-eth liquid-restaking-tokens tokenized-gold".split()
)
EXCLUDED_PATTERNS = tuple(
    "stablecoin bridged- wrapped- liquid-staking liquid-restaking liquid-staked tokenized-".split()
)
# METHODOLOGY.md, Sector and size indices: (index, category or None, rank from, rank to, max members)
INDICES = (
    ("core_l1", "layer-1", 1, UNIVERSE, 10),
    ("l2", "layer-2", 1, UNIVERSE, None),
    ("gaming", "gaming", 1, UNIVERSE, None),
    ("depin", "depin", 1, UNIVERSE, None),
    ("ai", "artificial-intelligence", 1, UNIVERSE, None),
    ("defi", "decentralized-finance-defi", 1, UNIVERSE, None),
    ("meme", "meme-token", 1, UNIVERSE, None),
    ("top30", None, 1, 30, None),
    ("mid_caps", None, 11, 50, None),
    ("small_caps", None, 51, 100, None),
)


@dataclass(frozen=True)
class Disagreement:
    figure: str
    table_value: float | None
    second_value: float | None
    week: str

    def __str__(self) -> str:
        return (
            f"{self.figure} for week {self.week}: weekly table {self.table_value!r}, "
            f"second derivation {self.second_value!r}"
        )


def _has(wh: Warehouse, table: str) -> bool:
    return table in TABLES and wh.has_files(TABLES[table])


def _days(week: str) -> tuple[date, date, datetime, datetime]:
    monday = date.fromisoformat(week)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    return monday - timedelta(days=1), monday + timedelta(days=6), start, start + timedelta(days=7)


def total_mcap_change_pct(wh: Warehouse, week: str) -> float | None:
    """Sum of positive market caps on the close day over the open day, every coin with a reading that day."""
    open_day, close_day, _, _ = _days(week)
    df = wh.query(
        "SELECT sum(market_cap_usd) FILTER (WHERE date = ?) AS o, sum(market_cap_usd) FILTER (WHERE date = ?) AS c "
        "FROM coin_daily WHERE date IN (?, ?) AND market_cap_usd > 0",
        [open_day, close_day, open_day, close_day],
        within={"coin_daily": (open_day, close_day)},
    )
    o, c = df["o"][0], df["c"][0]
    return None if not o or c is None else (c / o - 1.0) * 100.0


def like_for_like_mcap_change_pct(wh: Warehouse, week: str) -> float | None:
    """The same over the coins with a positive market cap on both the open and the close day."""
    open_day, close_day, _, _ = _days(week)
    df = wh.query(
        "SELECT sum(o.market_cap_usd) AS o, sum(c.market_cap_usd) AS c FROM coin_daily o JOIN coin_daily c "
        "USING (coin_id) WHERE o.date = ? AND c.date = ? AND o.market_cap_usd > 0 AND c.market_cap_usd > 0",
        [open_day, close_day],
        within={"coin_daily": (open_day, close_day)},
    )
    o, c = df["o"][0], df["c"][0]
    return None if not o or c is None else (c / o - 1.0) * 100.0


def carried_total_change_pct(wh: Warehouse, week: str, carry_days: int = 3) -> float | None:
    """The daily total as METHODOLOGY.md defines it for levels: each coin at its latest positive market cap on or
    up to ``carry_days`` days before the day (a short data gap is not a fall), on days that have any reading."""
    open_day, close_day, _, _ = _days(week)
    totals = []
    for day in (open_day, close_day):
        df = wh.query(
            "WITH obs AS (SELECT coin_id, date, max(market_cap_usd) AS m FROM coin_daily "
            "  WHERE market_cap_usd > 0 AND date BETWEEN ? AND ? GROUP BY coin_id, date) "
            "SELECT (SELECT count(*) FROM obs WHERE date = ?) AS n, sum(m) AS total "
            "FROM (SELECT arg_max(m, date) AS m FROM obs GROUP BY coin_id)",
            [day - timedelta(days=carry_days), day, day],
            within={"coin_daily": (day - timedelta(days=carry_days), day)},
        )
        totals.append(df["total"][0] if df["n"][0] else None)
    o, c = totals
    return None if not o or c is None else (c / o - 1.0) * 100.0


# METHODOLOGY.md, "The market's total" (restated here on purpose, not imported from pipelines.metrics).
TOP_N = 100
REAL_SHARE = 0.986
USABLE_DAYS_AFTER_CLOSE = 2


def market_total_on(wh: Warehouse, week: str, day: date, carry_days: int = 3) -> float | None:
    """The market's total at the close of ``day`` as week ``week`` knows it (see the module docstring)."""
    _, _, _, end = _days(week)
    bound = end + timedelta(days=USABLE_DAYS_AFTER_CLOSE)
    close = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    if _has(wh, "global_market_cap"):  # usable: made by the bound, with a positive total and share
        seen = wh.query(
            "SELECT total_market_cap_usd AS v FROM global_market_cap WHERE observed_at <= ? AND top_share > 0 "
            "AND total_market_cap_usd > 0 AND close_day = ? ORDER BY observed_at LIMIT 1",
            [bound, day],
        )
        if seen.height:
            return seen["v"][0]
        near = wh.query(
            "SELECT top_share AS s FROM global_market_cap WHERE observed_at <= ? AND top_share > 0 "
            "AND total_market_cap_usd > 0 "
            "ORDER BY abs(epoch(observed_at) - epoch(CAST(? AS TIMESTAMPTZ))), observed_at LIMIT 1",
            [bound, close],
        )
        share = near["s"][0] if near.height else REAL_SHARE
    else:
        share = REAL_SHARE
    df = wh.query(
        "WITH obs AS (SELECT coin_id, date, max(market_cap_usd) AS m FROM coin_daily "
        "  WHERE market_cap_usd > 0 AND date BETWEEN ? AND ? GROUP BY coin_id, date), "
        "latest AS (SELECT arg_max(m, date) AS m FROM obs GROUP BY coin_id) "
        "SELECT (SELECT count(*) FROM obs WHERE date = ?) AS n, "
        "(SELECT sum(m) FROM (SELECT m FROM latest ORDER BY m DESC LIMIT ?)) AS top",
        [day - timedelta(days=carry_days), day, day, TOP_N],
        within={"coin_daily": (day - timedelta(days=carry_days), day)},
    )
    if not df["n"][0] or df["top"][0] is None:
        return None
    return df["top"][0] / share


def coin_return_pct(wh: Warehouse, week: str, coin_id: str) -> float | None:
    open_day, close_day, _, _ = _days(week)
    df = wh.query(
        "SELECT max(price_usd) FILTER (WHERE date = ?) AS o, max(price_usd) FILTER (WHERE date = ?) AS c, "
        "count(*) AS n FROM coin_daily WHERE coin_id = ? AND date IN (?, ?)",
        [open_day, close_day, coin_id, open_day, close_day],
        within={"coin_daily": (open_day, close_day)},
    )
    o, c = df["o"][0], df["c"][0]
    return None if not o or c is None or df["n"][0] != 2 else (c / o - 1.0) * 100.0


def _registry(wh: Warehouse, close_day: date) -> dict[str, list[str]]:
    snaps = wh.partition_values(TABLES["coin_registry"])
    if not snaps:
        return {}
    known = [s for s in snaps if snapshot_day(s) <= close_day]
    snap = known[-1] if known else snaps[0]
    df = wh.query("SELECT coin_id, categories FROM coin_registry WHERE snapshot = ?", [snap])
    return {cid: list(cats or []) for cid, cats in df.iter_rows()}


def _eligible(cats: list[str]) -> bool:
    return not any(c in EXCLUDED or any(p in c for p in EXCLUDED_PATTERNS) for c in cats)


def water_fill(mcaps: np.ndarray, cap: float = CAP) -> np.ndarray:
    """Capped market-cap weights by water-filling: the k largest at the cap, the rest pro rata, for the smallest
    k that leaves every uncapped weight at or below the cap; equal weights when ``n x cap < 1``."""
    n = len(mcaps)
    if n == 0:
        return mcaps
    if n * cap < 1:
        return np.full(n, 1.0 / n)
    order = np.argsort(-mcaps, kind="stable")
    m = mcaps[order]
    for k in range(n):
        rest = m[k:]
        w_rest = (1.0 - k * cap) * rest / rest.sum()
        if w_rest.max() <= cap + 1e-12:
            w = np.concatenate([np.full(k, cap), w_rest])
            out = np.empty(n)
            out[order] = w
            return out
    return np.full(n, 1.0 / n)


def index_returns_pct(wh: Warehouse, week: str) -> dict[str, float | None]:
    open_day, close_day, _, _ = _days(week)
    registry = _registry(wh, close_day)
    opens = wh.query(
        "SELECT coin_id, price_usd, market_cap_usd FROM coin_daily WHERE date = ? AND market_cap_usd > 0 "
        "AND price_usd IS NOT NULL ORDER BY market_cap_usd DESC, coin_id",
        [open_day],
        within={"coin_daily": (open_day, open_day)},
    )
    closes = dict(
        wh.query(
            "SELECT coin_id, arg_max(price_usd, date) AS p FROM coin_daily WHERE date > ? AND date <= ? "
            "AND price_usd IS NOT NULL GROUP BY coin_id",
            [open_day, close_day],
            within={"coin_daily": (open_day, close_day)},
        ).iter_rows()
    )
    ranked = [r for r in opens.iter_rows() if r[0] in registry and _eligible(registry[r[0]])][:UNIVERSE]
    out: dict[str, float | None] = {}
    for name, cat, lo, hi, most in INDICES:
        members = [
            (rank, r)
            for rank, r in enumerate(ranked, start=1)
            if lo <= rank <= hi and (cat is None or cat in registry[r[0]])
        ]
        members = members[:most] if most else members
        if not members:
            out[name] = None
            continue
        w = water_fill(np.array([r[2] for _, r in members], dtype=float))
        ret = np.array([closes[r[0]] / r[1] - 1.0 if r[0] in closes else np.nan for _, r in members])
        ok = np.isfinite(ret)
        out[name] = float(np.sum(w[ok] * ret[ok]) / np.sum(w[ok]) * 100.0) if ok.any() else None
    return out


def mean_funding_8h(wh: Warehouse, week: str) -> float | None:
    _, _, start, end = _days(week)
    if not _has(wh, "funding_rates"):
        return None
    bounds = [start.date(), end.date(), start, end]
    params = [*bounds, VENUE_GAP, VENUE_FACTOR]
    if _has(wh, "open_interest"):
        # a rate is weighted by the latest positive reading at most a day before it: every rate is after the
        # open, so no reading from before the day before the open weighs anything (the join reads the week, not
        # the history)
        first = start - timedelta(days=1)
        df = wh.query(
            f"{FUNDING_KEPT_CTE} SELECT f.r8, CASE WHEN f.funding_time - o.ts <= INTERVAL 1 DAY THEN o.oi_usd END AS oi "
            "FROM f ASOF LEFT JOIN (SELECT exchange, symbol, ts, oi_usd FROM open_interest "
            "  WHERE date >= ? AND ts >= ? AND ts <= ? AND oi_usd > 0) o "
            "ON f.exchange = o.exchange AND f.symbol = o.symbol AND f.funding_time >= o.ts",
            [*params, first.date(), first, end],
            # the partitions of the rates and readings kept (a reading's partition is its UTC day)
            within={"funding_rates": (start.date(), end.date()), "open_interest": (first.date(), end.date())},
        )
    else:
        df = wh.query(
            f"{FUNDING_KEPT_CTE} SELECT r8, NULL::DOUBLE AS oi FROM f",
            params,
            within={"funding_rates": (start.date(), end.date())},
        )
    if df.height == 0:
        return None
    r8, oi = df["r8"].to_numpy(), df["oi"].fill_null(0.0).to_numpy()
    has = oi > 0
    return float(np.sum(r8[has] * oi[has]) / np.sum(oi[has])) if has.any() else float(np.mean(r8))


def btc_rv7_pct(wh: Warehouse, week: str) -> float | None:
    _, _, _, end = _days(week)
    if not _has(wh, "btc_hourly"):
        return None
    df = wh.query(
        "WITH b AS (SELECT DISTINCT ts, close FROM btc_hourly WHERE date BETWEEN ? AND ? AND ts + INTERVAL 1 HOUR <= ?), "
        "r AS (SELECT ts + INTERVAL 1 HOUR AS stamp, ln(close / lag(close) OVER (ORDER BY ts)) AS lr, "
        "ts - lag(ts) OVER (ORDER BY ts) AS step FROM b) "
        "SELECT stddev_samp(lr) AS sd, count(*) AS n FROM r "
        "WHERE step = INTERVAL 1 HOUR AND stamp > ? AND stamp <= ?",
        [(end - timedelta(days=9)).date(), end.date(), end, end - timedelta(days=7), end],
        within={"btc_hourly": ((end - timedelta(days=9)).date(), end.date())},
    )
    sd, n = df["sd"][0], df["n"][0]
    if sd is None or n < 2 or n < 0.9 * 7 * 24:
        return None
    return float(sd * math.sqrt(24 * 365) * 100.0)


# METHODOLOGY.md, Cross-asset returns: the major classes, their series and how a return is taken.
MAJORS = (
    ("crypto", "price"),
    ("SP500", "price"),
    ("NASDAQCOM", "price"),
    ("gold", "price"),
    ("DGS10", "yield"),
    ("DTWEXBGS", "price"),
    ("DEXJPUS", "inverse"),
)
UST_D = 8.5
MAX_STALE_DAYS = 5
MAX_STREAK = 104
MIN_RANKED = 5  # an earlier week counts only when at least this many of the seven classes have a return
# A week's return takes each series' last level within MAX_STALE_DAYS of the open (the Sunday before the
# Monday), and crypto's level on a day counts a coin's reading from up to CRYPTO_CARRY_DAYS before it.
CRYPTO_CARRY_DAYS = 3
STREAK_LOOKBACK_DAYS = 1 + MAX_STALE_DAYS + CRYPTO_CARRY_DAYS


def worst_streak_weeks(wh: Warehouse, week: str) -> int | None:
    """Consecutive weeks, ending with ``week``, in which crypto (total market cap) had the lowest weekly return
    of the seven major classes; each week from levels dated up to its own close, an earlier week counted only
    when at least ``MIN_RANKED`` classes have a return. None when crypto has no return this week.

    The levels are read for a window of weeks before ``week`` (8, doubled while the streak reaches the window's
    first week, up to ``MAX_STREAK``), not the whole history: a week's return needs levels from
    ``STREAK_LOOKBACK_DAYS`` before its Monday, so every week the window covers gets the return the whole
    history gives it (``tests/test_crosscheck.py``)."""
    if not _has(wh, "macro_observations"):
        return None
    weeks = 8
    while True:
        streak, reached_start = _worst_streak_within(wh, date.fromisoformat(week), weeks)
        if not reached_start or weeks >= MAX_STREAK:
            return streak
        weeks = min(weeks * 2, MAX_STREAK)


def _worst_streak_within(wh: Warehouse, monday: date, weeks: int) -> tuple[int | None, bool]:
    """``worst_streak_weeks`` from the levels of the ``weeks`` weeks before ``monday`` and its own week, and
    whether the streak needed a week before them (the answer is then only a lower bound)."""
    close_day = monday + timedelta(days=6)
    # the earliest week whose return the window gives exactly
    first_exact = monday - timedelta(days=7 * weeks)
    since = first_exact - timedelta(days=STREAK_LOOKBACK_DAYS)
    lv = wh.query(
        # crypto: the daily total with a coin missing up to three days counted at its latest reading
        "WITH obs AS (SELECT coin_id, date, max(market_cap_usd) AS m FROM coin_daily "
        "  WHERE market_cap_usd > 0 AND date >= ? AND date <= ? GROUP BY coin_id, date), "
        "pick AS (SELECT d.date, o.coin_id, arg_max(o.m, o.date) AS m FROM (SELECT DISTINCT date FROM obs) d "
        "  JOIN obs o ON o.date BETWEEN d.date - ? AND d.date GROUP BY d.date, o.coin_id) "
        "SELECT 'crypto' AS s, date, sum(m) AS v FROM pick GROUP BY date "
        "UNION ALL SELECT 'gold' AS s, date, price_usd AS v FROM coin_daily "
        "WHERE coin_id = 'pax-gold' AND price_usd IS NOT NULL AND date >= ? AND date <= ? "
        "UNION ALL SELECT series_id AS s, date, value AS v FROM macro_observations "
        "WHERE value IS NOT NULL AND date >= ? AND date <= ? AND list_contains(?, series_id)",
        [
            since,
            close_day,
            CRYPTO_CARRY_DAYS,
            since,
            close_day,
            since,
            close_day,
            [m for m, _ in MAJORS if m not in ("crypto", "gold")],
        ],
        within={"coin_daily": (since, close_day)},
    )
    series: dict[str, list[tuple[date, float]]] = {}
    for s_, d, v in lv.sort("s", "date").iter_rows():
        series.setdefault(s_, []).append((d, v))

    def last(s_: str, day: date) -> tuple[date, float] | None:
        pts = [p for p in series.get(s_, []) if p[0] <= day]
        return pts[-1] if pts and (day - pts[-1][0]).days <= MAX_STALE_DAYS else None

    def returns(w: date) -> dict[str, float]:
        o, c = w - timedelta(days=1), w + timedelta(days=6)
        out = {}
        for s_, kind in MAJORS:
            a, b = last(s_, o), last(s_, c)
            if a is None or b is None:
                continue
            if kind == "price" and a[1] > 0:
                out[s_] = (b[1] / a[1] - 1) * 100
            elif kind == "inverse" and b[1] > 0:
                out[s_] = (a[1] / b[1] - 1) * 100
            elif kind == "yield":
                out[s_] = -UST_D * (b[1] - a[1])
        return out

    w = monday
    if "crypto" not in returns(w):
        return None, False
    n = 0
    while n < MAX_STREAK:
        if w < first_exact:
            return n, True
        r = returns(w)
        if "crypto" not in r or r["crypto"] > min(r.values()) or (w < monday and len(r) < MIN_RANKED):
            break
        n, w = n + 1, w - timedelta(days=7)
    return n, False


# The extra conditions a figure puts on its table's week, answered from the week's rows (``_table_value``).
INDEX_WHERE = 'AND "index" = ?'


def _table_value(
    wh: Warehouse,
    table: str,
    column: str,
    week: str,
    where: str = "",
    params: list | None = None,
    week_rows: dict[tuple[str, str], Any] | None = None,
):
    """The weekly table's value of a figure: (value, True) for exactly one row, else (None, whether any row).
    With ``week_rows`` (a dict the caller keeps for one week), a figure with no extra condition or only
    ``INDEX_WHERE`` picks its row from the table's rows of the week, read once for all its figures as the claim
    check reads them (``claims.rows_by_key``), as the query with that condition would; any other condition
    is its own query."""
    if not _has(wh, table):
        return None, False
    if table not in TABLES or column not in TABLES[table].column_names:  # identifiers from the registry only
        raise ValueError(f"unknown table or column {table}.{column}")
    name, col = TABLES[table].name, column
    if week_rows is not None and where in ("", INDEX_WHERE):
        # the index asked, as the query binds it (a figure without one fails, as the query would)
        key = {"index": (params or [])[0]} if where else {}
        rows, hits = rows_by_key(wh, name, week, key, week_rows)
        return (rows[col][hits[0]], True) if len(hits) == 1 else (None, bool(hits))
    df = wh.query(
        f'SELECT "{col}" AS v FROM "{name}" WHERE week = CAST(? AS DATE) {where}', [week, *(params or [])]
    )
    return (df["v"][0], True) if df.height == 1 else (None, df.height > 0)


def _agrees(a: float | None, b: float | None, abs_tol: float) -> bool:
    if a is None:  # nothing printed from the table
        return True
    if b is None or not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= abs_tol + REL_TOL * max(abs(a), abs(b))


Figure = tuple[str, str, str, str, list, float | None, float]


def figures(wh: Warehouse, week: str) -> list[Figure]:
    """(figure, table, column, extra where, params, second value, tolerance) for every cross-checked figure.

    A figure is left out when its clean source table is absent from the lake altogether (a lake holding only
    weekly tables, as in the narrative tests); when the table exists but lacks the week's rows, the second value
    is None and a printed value then disagrees."""
    out: list[Figure] = []
    if _has(wh, "coin_daily"):
        total = total_mcap_change_pct(wh, week)
        out += [
            (
                "total market cap change %",
                "weekly_market_summary",
                "total_mcap_change_pct",
                "",
                [],
                total,
                ABS_TOL,
            ),
            (
                "total market cap change %, like for like",
                "weekly_market_summary",
                "total_mcap_change_like_for_like_pct",
                "",
                [],
                like_for_like_mcap_change_pct(wh, week),
                ABS_TOL,
            ),
            (
                "total market cap change % (weekly_total_market_cap)",
                "weekly_total_market_cap",
                "change_pct",
                "",
                [],
                carried_total_change_pct(wh, week),
                ABS_TOL,
            ),
        ]
        open_day, close_day, _, _ = _days(week)
        m_open, m_close = market_total_on(wh, week, open_day), market_total_on(wh, week, close_day)
        m_change = None if not m_open or m_close is None else (m_close / m_open - 1.0) * 100.0
        for label, col, value in (
            ("the market's total at the open", "market_total_open_usd", m_open),
            ("the market's total at the close", "market_total_close_usd", m_close),
            ("the market's total change %", "market_total_change_pct", m_change),
        ):
            out.append((label, "weekly_total_market_cap", col, "", [], value, ABS_TOL))
        for coin, label, col in (("bitcoin", "BTC", "btc_return_pct"), ("ethereum", "ETH", "eth_return_pct")):
            out.append(
                (
                    f"{label} weekly return %",
                    "weekly_market_summary",
                    col,
                    "",
                    [],
                    coin_return_pct(wh, week, coin),
                    ABS_TOL,
                )
            )
        if _has(wh, "weekly_index_returns") and _has(wh, "coin_registry"):
            for name, value in index_returns_pct(wh, week).items():
                out.append(
                    (
                        f"{name} index return %",
                        "weekly_index_returns",
                        "return_pct",
                        INDEX_WHERE,
                        [name],
                        value,
                        ABS_TOL,
                    )
                )
        if _has(wh, "weekly_crypto_rank"):
            out.append(
                (
                    "crypto worst-asset streak (weeks)",
                    "weekly_crypto_rank",
                    "worst_streak_weeks",
                    "",
                    [],
                    worst_streak_weeks(wh, week),
                    0.0,
                )
            )
    if _has(wh, "weekly_leverage") and _has(wh, "funding_rates"):
        out.append(
            (
                "mean funding per 8h",
                "weekly_leverage",
                "funding_8h_mean",
                "",
                [],
                mean_funding_8h(wh, week),
                FUNDING_ABS_TOL,
            )
        )
    if _has(wh, "weekly_btc_volatility") and _has(wh, "btc_hourly"):
        out.append(
            (
                "BTC 7-day realized volatility %",
                "weekly_btc_volatility",
                "rv7_hourly_pct",
                "",
                [],
                btc_rv7_pct(wh, week),
                ABS_TOL,
            )
        )
    return out


def crosscheck(wh: Warehouse, week: str) -> list[Disagreement]:
    """Every headline figure whose weekly-table value disagrees with the second derivation (empty: all agree)."""
    bad = []
    week_rows: dict[tuple[str, str], Any] = {}  # each table's rows of the week, read once for all its figures
    for figure, table, column, where, params, second, tol in figures(wh, week):
        value, present = _table_value(wh, table, column, week, where, params, week_rows)
        if present and not _agrees(value, second, tol):
            bad.append(Disagreement(figure, value, second, week))
    return bad
