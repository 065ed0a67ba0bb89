"""Mutation harness: one week's clean inputs corrupted one way at a time, then the week's quality rules,
weekly tables (the assets' compute functions and blocking checks), report rendering, claim check and second
derivation are run on the pure functions and the lake (no Dagster run). Every outcome must be one of

* ``unchanged``: the printed report (without its Data gaps and Sources sections) is byte-identical and no new gap;
* ``gap``: a new line under Data gaps names the mutated coin / symbol / venue / series (the report may change);
* ``blocked``: publication is blocked and a blocking message names the mutated row.

Never a changed printed number without a named gap. The lake is built once; each case edits partition files in
place (written as raw Parquet, as a corrupted file would be) and restores them afterwards. The outcome table is
compared with docs/reliability.md ("Mutation harness"); ``UPDATE_MUTATION_DOC=1`` rewrites it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

import tests._week_pipeline as pipe
from pipelines.schemas import TABLES
from pipelines.warehouse import Warehouse
from tests._weekly_world import WEEK, write_week_lake

OPEN, MID, CLOSE = date(2025, 4, 20), date(2025, 4, 23), date(2025, 4, 27)
DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
BEGIN, END = "<!-- mutation-table:begin -->", "<!-- mutation-table:end -->"


class Lake:
    """Edits of lake partitions that are undone after the case."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self.saved: dict[Path, bytes | None] = {}

    def path(self, table: str, part: date | str) -> Path:
        return self.wh.partition_path(TABLES[table], str(part))

    def read(self, table: str, part: date | str) -> pl.DataFrame:
        return pl.read_parquet(self.path(table, part))

    def write(self, table: str, part: date | str, df: pl.DataFrame) -> None:
        p = self.path(table, part)
        if p not in self.saved:
            self.saved[p] = p.read_bytes() if p.exists() else None
        df.write_parquet(p)  # no schema conformance: a file rewritten wrongly is exactly the point

    def edit(self, table: str, part: date | str, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
        self.write(table, part, fn(self.read(table, part)))

    def restore(self) -> None:
        for p, data in self.saved.items():
            if data is None:
                p.unlink(missing_ok=True)
            else:
                p.write_bytes(data)
        self.saved.clear()
        self.wh.refresh_catalog()


def _set(col: str, value, where: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda df: df.with_columns(
        pl.when(where).then(pl.lit(value, df.schema[col])).otherwise(pl.col(col)).alias(col)
    )


def _scale(col: str, k: float, where: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda df: df.with_columns(pl.when(where).then(pl.col(col) * k).otherwise(pl.col(col)).alias(col))


def _drop(where: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda df: df.filter(~where)


def _dup(where: pl.Expr, change: dict | None = None) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def f(df: pl.DataFrame) -> pl.DataFrame:
        extra = df.filter(where)
        if change:
            extra = extra.with_columns(**{k: pl.lit(v, df.schema[k]) for k, v in change.items()})
        return pl.concat([df, extra])

    return f


coin = pl.col("coin_id")
sym = pl.col("symbol")
ex = pl.col("exchange")


def _shift(col: str, delta: timedelta, where: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda df: df.with_columns(
        pl.when(where).then(pl.col(col) + delta).otherwise(pl.col(col)).alias(col)
    )


def _macro(series: str, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Lake], None]:
    return lambda lake: lake.edit("macro_observations", series, fn)


def _each_day(table: str, days: list[date], fn) -> Callable[[Lake], None]:
    def apply(lake: Lake) -> None:
        for d in days:
            lake.edit(table, d, fn)

    return apply


def _max_funding(lake: Lake) -> None:
    df = lake.read("funding_rates", MID)
    top = df.sort(pl.col("funding_rate").abs(), descending=True).row(0, named=True)
    lake.edit(
        "funding_rates",
        MID,
        _scale(
            "funding_rate",
            100.0,
            (ex == top["exchange"])
            & (sym == top["symbol"])
            & (pl.col("funding_time") == top["funding_time"]),
        ),
    )


def _min_funding(lake: Lake) -> None:
    """x100 on the settlement nearest zero: it stays far under 1% per 8h but can flip a day's sign."""
    df = lake.read("funding_rates", MID)
    low = df.sort(pl.col("funding_rate").abs()).row(0, named=True)
    where = (ex == low["exchange"]) & (sym == low["symbol"]) & (pl.col("funding_time") == low["funding_time"])
    lake.edit("funding_rates", MID, _scale("funding_rate", 100.0, where))


def _stale_close(lake: Lake) -> None:
    """The close day's row of alt001 replaced by the day before's (a stale point, re-dated)."""
    prev = lake.read("coin_daily", CLOSE - timedelta(days=1)).filter(coin == "alt001")
    lake.edit("coin_daily", CLOSE, lambda df: pl.concat([df.filter(coin != "alt001"), prev]))


WEEK_DAYS = [OPEN + timedelta(days=i) for i in range(1, 8)]


@dataclass(frozen=True)
class Case:
    name: str
    entity: str  # what a gap line or a blocking message must name
    apply: Callable[[Lake], None]


def edit(table: str, part, fn) -> Callable[[Lake], None]:
    return lambda lake: lake.edit(table, part, fn)


def coin_missing(name: str, coin_id: str, day: date) -> Case:
    """A case whose coin has no coin_daily row on ``day``."""
    return Case(name, coin_id, edit("coin_daily", day, _drop(coin == coin_id)))


def coin_value(name: str, coin_id: str, day: date, change, col: str, value) -> Case:
    """A case that changes one coin's ``col`` in coin_daily on ``day``: ``change`` is ``_set``, ``_scale`` or
    ``_shift`` with ``value``."""
    return Case(name, coin_id, edit("coin_daily", day, change(col, value, coin == coin_id)))


CASES = [
    # coin_daily: missing
    coin_missing("top coin dropped on the close day", "alt000", CLOSE),
    coin_missing("top coin dropped on the open day", "alt000", OPEN),
    coin_missing("sector member (gaming) dropped on the close day", "alt002", CLOSE),
    coin_missing("small coin dropped mid-week", "alt090", MID),
    coin_missing("bitcoin dropped on the close day", "bitcoin", CLOSE),
    coin_missing("price NaN (parsed as missing) -> row dropped", "alt005", CLOSE),
    # coin_daily: wrong
    coin_value("market cap 0 on the close day", "alt000", CLOSE, _set, "market_cap_usd", 0.0),
    coin_value("market cap null on the close day", "alt000", CLOSE, _set, "market_cap_usd", None),
    coin_value("market cap 0 on the open day", "alt001", OPEN, _set, "market_cap_usd", 0.0),
    coin_value("market cap x10 mid-week", "alt003", MID, _scale, "market_cap_usd", 10.0),
    coin_value("market cap x10 on the close day", "alt003", CLOSE, _scale, "market_cap_usd", 10.0),
    coin_value("price x10 on the close day", "alt008", CLOSE, _scale, "price_usd", 10.0),
    coin_value("market cap negative on the open day", "alt004", OPEN, _scale, "market_cap_usd", -1.0),
    coin_value("price NaN on the close day", "alt005", CLOSE, _set, "price_usd", float("nan")),
    coin_value("price inf mid-week", "bitcoin", MID, _set, "price_usd", float("inf")),
    coin_value("price 0 on the close day", "ethereum", CLOSE, _set, "price_usd", 0.0),
    coin_value("volume 0 for a top coin", "alt006", MID, _set, "volume_24h_usd", 0.0),
    coin_value(
        "volume null for a top coin (missing, as on estimated days)",
        "alt006",
        MID,
        _set,
        "volume_24h_usd",
        None,
    ),
    Case(
        "conflicting duplicate day (two closes, two prices)",
        "alt000",
        edit("coin_daily", CLOSE, _dup(coin == "alt000", {"price_usd": 123.0})),
    ),
    Case("identical duplicate row", "alt000", edit("coin_daily", MID, _dup(coin == "alt000"))),
    coin_value("observed_at shifted by a day", "alt007", MID, _shift, "observed_at", timedelta(days=1)),
    Case("stale close (the day before's point re-dated)", "alt001", _stale_close),
    Case("rows out of order in a partition", "-", edit("coin_daily", CLOSE, lambda df: df.reverse())),
    coin_value("stablecoin depeg (tether at $0.95)", "tether", MID, _set, "price_usd", 0.95),
    # funding
    Case(
        "a missing funding day (binance BTCUSDT)",
        "binance BTCUSDT",
        edit("funding_rates", MID, _drop((ex == "binance") & (sym == "BTCUSDT"))),
    ),
    Case(
        "funding venue missing entirely (bybit)",
        "bybit",
        _each_day("funding_rates", [*WEEK_DAYS, CLOSE + timedelta(days=1)], _drop(ex == "bybit")),
    ),
    Case("funding rate x100 (largest settlement of the day)", "funding_rate", _max_funding),
    Case("funding rate x100 (settlement nearest zero)", "BTCUSDT", _min_funding),
    Case(
        "funding rate null",
        "ETHUSDT",
        edit("funding_rates", MID, _set("funding_rate", None, (ex == "binance") & (sym == "ETHUSDT"))),
    ),
    Case(
        "funding settlement shifted by a day",
        "SOLUSDT",
        edit(
            "funding_rates",
            MID,
            _shift("funding_time", timedelta(days=1), (ex == "bybit") & (sym == "SOLUSDT")),
        ),
    ),
    Case(
        "conflicting duplicate funding settlement",
        "BTCUSDT",
        edit("funding_rates", MID, _dup((ex == "bybit") & (sym == "BTCUSDT"), {"funding_rate": 0.0009})),
    ),
    Case("funding rows out of order", "-", edit("funding_rates", MID, lambda df: df.reverse())),
    # open interest / long-short
    Case(
        "OI symbol missing at the close (bybit SOLUSDT)",
        "bybit SOLUSDT",
        edit("open_interest", CLOSE, _drop((ex == "bybit") & (sym == "SOLUSDT"))),
    ),
    Case(
        "OI venue missing entirely (binance)",
        "binance",
        _each_day("open_interest", WEEK_DAYS, _drop(ex == "binance")),
    ),
    Case(
        "OI zero",
        "ETHUSDT",
        edit("open_interest", MID, _set("oi_usd", 0.0, (ex == "binance") & (sym == "ETHUSDT"))),
    ),
    Case(
        "long/short NaN",
        "BTCUSDT",
        edit(
            "long_short_ratio",
            MID,
            _set("long_account", float("nan"), (ex == "binance") & (sym == "BTCUSDT")),
        ),
    ),
    # BTC hourly
    Case(
        "BTC hourly bars missing (5 on one day)",
        "BTC hourly",
        edit("btc_hourly", MID, lambda df: df.sort("ts").filter(~pl.int_range(pl.len()).is_between(6, 10))),
    ),
    Case(
        "BTC hourly close NaN",
        "close",
        edit(
            "btc_hourly",
            MID,
            lambda df: df.with_columns(
                pl.when(pl.int_range(pl.len()) == 7)
                .then(float("nan"))
                .otherwise(pl.col("close"))
                .alias("close")
            ),
        ),
    ),
    Case(
        "BTC hourly bar shifted by 30 minutes",
        "ts",
        edit(
            "btc_hourly",
            MID,
            lambda df: df.with_columns(
                pl.when(pl.int_range(pl.len()) == 7)
                .then(pl.col("ts") + timedelta(minutes=30))
                .otherwise(pl.col("ts"))
                .alias("ts")
            ),
        ),
    ),
    # MISSING, yet blocked: the 7-day RV falls under 90% coverage and the blocking volatility_coverage check fires
    Case(
        "BTC hourly bars missing for a whole day",
        "BTC hourly bars",
        edit("btc_hourly", MID, lambda df: df.head(0)),
    ),
    # perp volume
    Case(
        "perp volume missing day (binance ETHUSDT)",
        "binance ETHUSDT",
        edit("perp_volume_daily", MID, _drop((ex == "binance") & (sym == "ETHUSDT"))),
    ),
    Case(
        "perp volume 0",
        "ETHUSDT",
        edit("perp_volume_daily", MID, _set("quote_volume_usd", 0.0, (ex == "bybit") & (sym == "ETHUSDT"))),
    ),
    # FRED
    Case(
        "FRED blank ('.') on the week's Friday (SP500)",
        "SP500",
        _macro("SP500", _set("value", None, pl.col("date") == date(2025, 4, 25))),
    ),
    Case(
        "FRED missing day: the week's Friday (DGS10)",
        "DGS10",
        _macro("DGS10", _drop(pl.col("date") == date(2025, 4, 25))),
    ),
    Case(
        "FRED value non-finite (DEXJPUS)",
        "DEXJPUS",
        _macro("DEXJPUS", _set("value", float("inf"), pl.col("date") == date(2025, 4, 24))),
    ),
]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    root = tmp_path_factory.mktemp("mutations")
    wh = write_week_lake(root)
    base = pipe.run_week(wh, WEEK)
    assert base.blocked == [], base.blocked
    return Lake(wh), base


def outcome(lake: Lake, base: pipe.WeekRun, case: Case) -> tuple[str, str]:
    try:
        case.apply(lake)
        lake.wh.refresh_catalog()
        run = pipe.run_week(lake.wh, WEEK)
    finally:
        lake.restore()
    if run.blocked:
        named = [b for b in run.blocked if case.entity in b]
        return ("blocked" if named else "blocked-unnamed"), (named or run.blocked)[0]
    new_gaps = [g for g in run.gaps if g not in base.gaps]
    if new_gaps:
        named = [g for g in new_gaps if case.entity in g]
        return ("gap" if named else "gap-unnamed"), (named or new_gaps)[0]
    if run.body == base.body and run.markdown.split("## Sources")[0] == base.markdown.split("## Sources")[0]:
        return "unchanged", ""
    return "SILENTLY CHANGED", _first_diff(base.body, run.body)


def _first_diff(a: str, b: str) -> str:
    for x, y in zip(a.splitlines(), b.splitlines(), strict=False):
        if x != y:
            return f"{x!r} -> {y!r}"
    return "length differs"


def _table(rows: list[tuple[str, str, str]]) -> str:
    def cell(s: str) -> str:
        s = s.replace("|", "\\|").replace("\n", " ")
        return s if len(s) <= 230 else s[:227] + "..."

    lines = ["| # | mutation | outcome | message |", "|---|---|---|---|"]
    lines += [f"| {i} | {cell(m)} | {o} | {cell(msg)} |" for i, (m, o, msg) in enumerate(rows, start=1)]
    return "\n".join(lines)


def test_every_mutation_is_unchanged_named_gap_or_blocked(harness) -> None:
    lake, base = harness
    assert len(CASES) >= 30
    t0 = time.perf_counter()
    rows = [(c.name, *outcome(lake, base, c)) for c in CASES]
    elapsed = time.perf_counter() - t0
    counts = {k: sum(1 for r in rows if r[1] == k) for k in sorted({r[1] for r in rows})}
    summary = ", ".join(f"{k}: {v}" for k, v in counts.items())
    table = f"{len(rows)} cases ({summary}).\n\n{_table(rows)}"
    print(f"\n{table}\n({elapsed:.1f} s)")
    bad = [r for r in rows if r[1] not in ("unchanged", "gap", "blocked")]
    assert bad == [], "\n".join(f"{m}: {o}: {msg}" for m, o, msg in bad)
    doc = DOC.read_text()
    assert BEGIN in doc and END in doc, "docs/reliability.md has no mutation table markers"
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    fresh = f"{head}{BEGIN}\n{table}\n{END}{tail}"
    if os.environ.get("UPDATE_MUTATION_DOC"):
        DOC.write_text(fresh)
        doc = fresh
    assert doc == fresh, "docs/reliability.md mutation table is stale: rerun with UPDATE_MUTATION_DOC=1"
