"""Data quality rules over the clean daily lake, shared by the asset checks in ``assets/checks_quality.py``.

Pure functions over a ``Warehouse`` and a list of days: each returns the problems it found (empty = passed).
They read the lake (not Dagster outputs), so the same rules guard the daily run that wrote the days and every
weekly run that reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from pipelines.ingest import close_instant
from pipelines.schemas import COIN_DAILY, TABLES
from pipelines.warehouse import Warehouse

MUST_HAVE = ("bitcoin", "ethereum")
MIN_COVERAGE = 0.90  # share of the registry's coins priced each day
OUTLIER_FACTOR = 10.0  # a market cap ten times (or a tenth of) the day before
PEG_TOLERANCE = 0.02  # a USD stablecoin more than 2% away from $1
STALE_AFTER_MS = 3_600_000  # a close point must lie in [D+1 00:00, D+1 01:00)
FUNDING_LIMIT = 0.01  # |funding rate| above 1% per interval


@dataclass
class Outcome:
    name: str
    problems: list[str] = field(default_factory=list)
    checked: int = 0  # rows or days looked at
    skipped: str | None = None  # why the rule did not apply

    @property
    def passed(self) -> bool:
        return not self.problems


def _frames(wh: Warehouse, days: Iterable[date]) -> dict[date, pl.DataFrame]:
    return {d: wh.read_partition(COIN_DAILY, d.isoformat()) for d in days if wh.has_partition(COIN_DAILY, d.isoformat())}


def coverage(wh: Warehouse, days: list[date], registry_size: int, estimated: Iterable[date] = ()) -> Outcome:
    """BTC and ETH priced each day, and at least ``MIN_COVERAGE`` of the registry. Days whose market caps are
    estimates (older than CoinGecko's plan reaches, ``pipelines.estimates``) price only the coins Binance lists:
    they need BTC and ETH, and the report names the share estimated instead of the 90% rule blocking them."""
    out = Outcome("coverage", checked=len(days))
    estimated = set(estimated)
    if estimated & set(days):
        out.skipped = f"share of the registry not required on {len(estimated & set(days))} estimated day(s)"
    frames = _frames(wh, days)
    need = int(MIN_COVERAGE * registry_size + 0.999999)
    for d in days:
        f = frames.get(d)
        if f is None:
            out.problems.append(f"{d}: no coin_daily partition")
            continue
        ids = set(f["coin_id"].to_list())
        lacking = [c for c in MUST_HAVE if c not in ids]
        if lacking:
            out.problems.append(f"{d}: {', '.join(lacking)} missing")
        if len(ids) < need and d not in estimated:
            out.problems.append(f"{d}: {len(ids)} coins priced, fewer than {need} ({MIN_COVERAGE:.0%} of {registry_size})")
    return out


def duplicates(wh: Warehouse, days: list[date]) -> Outcome:
    out = Outcome("duplicates", checked=len(days))
    if not days or not any(wh.has_partition(COIN_DAILY, d.isoformat()) for d in days):
        out.skipped = "no partitions"
        return out
    dupes = wh.query(
        "SELECT date, coin_id, count(*) AS n FROM coin_daily WHERE date BETWEEN ? AND ? "
        "GROUP BY date, coin_id HAVING count(*) > 1 ORDER BY date, coin_id",
        [min(days), max(days)],
    )
    out.problems = [f"{r['date']}: {r['coin_id']} {r['n']} times" for r in dupes.head(20).iter_rows(named=True)]
    return out


def outliers(wh: Warehouse, days: list[date]) -> Outcome:
    """A coin whose market cap is ten times, or a tenth of, its market cap the day before."""
    out = Outcome("market_cap_outliers")
    wanted = sorted(set(days) | {d - timedelta(days=1) for d in days})
    frames = _frames(wh, wanted)
    for d in sorted(days):
        today, before = frames.get(d), frames.get(d - timedelta(days=1))
        if today is None or before is None:
            continue
        pair = today.select("coin_id", pl.col("market_cap_usd").alias("cap")).join(
            before.select("coin_id", pl.col("market_cap_usd").alias("prev")), on="coin_id"
        ).filter((pl.col("cap") > 0) & (pl.col("prev") > 0))
        out.checked += pair.height
        bad = pair.with_columns((pl.col("cap") / pl.col("prev")).alias("ratio")).filter(
            (pl.col("ratio") >= OUTLIER_FACTOR) | (pl.col("ratio") <= 1 / OUTLIER_FACTOR)
        )
        out.problems += [f"{d}: {r['coin_id']} market cap x{r['ratio']:.3g} in a day" for r in bad.iter_rows(named=True)]
    return out


def stablecoin_peg(wh: Warehouse, days: list[date], registry: pl.DataFrame) -> Outcome:
    """USD stablecoins (category ``stablecoins`` and a USD symbol, or a median price near $1) off the peg by > 2%."""
    out = Outcome("stablecoin_peg")
    stables = registry.filter(pl.col("categories").list.contains("stablecoins"))
    frames = _frames(wh, days)
    if not frames or stables.is_empty():
        out.skipped = "no stablecoins or no days"
        return out
    rows = pl.concat([f.select("coin_id", "symbol", "price_usd").with_columns(pl.lit(d).alias("day")) for d, f in frames.items()])
    rows = rows.filter(pl.col("coin_id").is_in(stables["coin_id"].to_list()))
    med = rows.group_by("coin_id").agg(pl.col("price_usd").median().alias("median"), pl.col("symbol").first())
    pegged = med.filter(
        pl.col("symbol").str.to_lowercase().str.contains("usd") | pl.col("median").is_between(0.9, 1.1)
    )["coin_id"].to_list()
    checked = rows.filter(pl.col("coin_id").is_in(pegged))
    out.checked = checked.height
    off = checked.filter((pl.col("price_usd") - 1.0).abs() > PEG_TOLERANCE).sort("day", "coin_id")
    out.problems = [f"{r['day']}: {r['coin_id']} at ${r['price_usd']:.4f}" for r in off.iter_rows(named=True)]
    return out


def stale(wh: Warehouse, days: list[date]) -> Outcome:
    """Every row's ``observed_at`` lies in the hour after its day's close."""
    out = Outcome("stale_observations")
    for d, f in _frames(wh, days).items():
        t0 = close_instant(d)
        ms = f["observed_at"].dt.epoch("ms")
        lo = int(t0.timestamp() * 1000)
        bad = f.filter((ms < lo) | (ms >= lo + STALE_AFTER_MS))
        out.checked += f.height
        out.problems += [f"{d}: {r['coin_id']} observed at {r['observed_at']}" for r in bad.head(10).iter_rows(named=True)]
    return out


def funding(wh: Warehouse, days: list[date]) -> Outcome:
    """|funding rate| above 1% per interval, when a ``funding_rates`` table with a ``funding_rate`` column exists."""
    out = Outcome("funding_outliers")
    table = TABLES.get("funding_rates")
    if table is None:
        out.skipped = "no funding_rates table declared"
        return out
    if "funding_rate" not in table.column_names:
        out.skipped = "funding_rates has no funding_rate column"
        return out
    if not any((wh.lake_dir / table.name).glob(f"{table.partition_by}=*/data.parquet")):
        out.skipped = "funding_rates has no data in the lake"
        return out
    where = ""
    params: list = []
    if table.partition_by == "date" and days:
        where, params = "WHERE date BETWEEN ? AND ?", [min(days), max(days)]
    rows = wh.query(f"SELECT * FROM funding_rates {where}", params)  # noqa: S608 (fixed text, values bound)
    out.checked = rows.height
    bad = rows.filter(pl.col("funding_rate").abs() > FUNDING_LIMIT)
    out.problems = [str({k: v for k, v in r.items() if k in ("date", "symbol", "exchange", "funding_rate", "funding_time")})
                    for r in bad.head(10).iter_rows(named=True)]
    return out
