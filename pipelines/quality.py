"""Data quality rules over the clean daily lake, shared by the asset checks in ``assets/quality.py``.

Pure functions over a ``Warehouse`` and a list of days: each returns the problems it found (empty = passed).
They read the lake (not Dagster outputs), so the same rules guard the daily run that wrote the days and every
weekly run that reads them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import polars as pl

from pipelines.lake_snapshot import LakeSnapshot
from pipelines.pulls.coingecko import close_instant
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
    present = [d for d in days if wh.has_partition(COIN_DAILY, d.isoformat())]
    frames = wh.read_partitions(COIN_DAILY, [d.isoformat() for d in present])
    return {d: frames[d.isoformat()] for d in present}


def coverage(wh: Warehouse, days: list[date], registry_size: int, estimated: Iterable[date] = ()) -> Outcome:
    """BTC and ETH priced each day, and at least ``MIN_COVERAGE`` of the registry. Days whose market caps are
    estimates (older than CoinGecko's plan reaches, ``pipelines.clean.estimates``) price only the coins Binance lists:
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
            out.problems.append(
                f"{d}: {len(ids)} coins priced, fewer than {need} ({MIN_COVERAGE:.0%} of {registry_size})"
            )
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
        within={COIN_DAILY.name: (min(days), max(days))},
    )
    out.problems = [
        f"{r['date']}: {r['coin_id']} {r['n']} times" for r in dupes.head(20).iter_rows(named=True)
    ]
    return out


def _day_rows(frames: dict[date, pl.DataFrame], columns: list[str]) -> pl.DataFrame:
    """``columns`` of every frame, each row with its ``day`` and its position in its own frame (``row``), in the
    frames' order: a range's days checked in one pass, each problem still named as its day's own check names it."""
    days = list(frames)
    heights = np.array([frames[d].height for d in days], dtype=np.int64)
    # the columns taken by name (``frame[columns]``), not by an expression each (``select``: 4x the time)
    rows = pl.concat([frames[d][columns] for d in days], how="vertical_relaxed")
    starts = np.repeat(np.cumsum(heights) - heights, heights)  # each row's frame's first row
    return rows.with_columns(
        pl.Series("day", days, dtype=pl.Date).gather(np.repeat(np.arange(len(days)), heights)),
        pl.Series("row", np.arange(rows.height, dtype=np.int64) - starts),
    )


def outliers(wh: Warehouse, days: list[date]) -> Outcome:
    """A coin whose market cap is ten times, or a tenth of, its market cap the day before. Every day of the range
    against the day before in one join: a day's pairs are its rows joined by coin to the day before's, in its own
    rows' order."""
    out = Outcome("market_cap_outliers")
    wanted = sorted(set(days) | {d - timedelta(days=1) for d in days})
    frames = _frames(wh, wanted)
    if not frames:
        return out
    rows = _day_rows(frames, ["coin_id", "market_cap_usd"])
    today = rows.filter(pl.col("day").is_in(sorted(set(days)))).rename({"market_cap_usd": "cap"})
    before = rows.select(
        "coin_id",
        (pl.col("day") + timedelta(days=1)).alias("day"),
        pl.col("market_cap_usd").alias("prev"),
        pl.col("row").alias("prev_row"),
    )
    pair = (
        today.join(before, on=["day", "coin_id"])
        .filter((pl.col("cap") > 0) & (pl.col("prev") > 0))
        .sort("day", "row", "prev_row")
    )
    out.checked = pair.height
    bad = pair.with_columns((pl.col("cap") / pl.col("prev")).alias("ratio")).filter(
        (pl.col("ratio") >= OUTLIER_FACTOR) | (pl.col("ratio") <= 1 / OUTLIER_FACTOR)
    )
    out.problems = [
        f"{r['day']}: {r['coin_id']} market cap x{r['ratio']:.3g} in a day" for r in bad.iter_rows(named=True)
    ]
    return out


def stablecoin_peg(wh: Warehouse, days: list[date], registry: pl.DataFrame) -> Outcome:
    """USD stablecoins (category ``stablecoins`` and a USD symbol, or a median price near $1) off the peg by > 2%."""
    out = Outcome("stablecoin_peg")
    stables = registry.filter(pl.col("categories").list.contains("stablecoins"))
    frames = _frames(wh, days)
    if not frames or stables.is_empty():
        out.skipped = "no stablecoins or no days"
        return out
    rows = _day_rows(frames, ["coin_id", "symbol", "price_usd"])
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
    """Every row's ``observed_at`` lies in the hour after its day's close. Every day in one pass; a day names its
    first ten stale rows, in its rows' order."""
    out = Outcome("stale_observations")
    frames = _frames(wh, days)
    if not frames:
        return out
    rows = _day_rows(frames, ["coin_id", "observed_at"])
    out.checked = rows.height
    close_ms = pl.DataFrame(
        {"day": list(frames), "lo": [int(close_instant(d).timestamp() * 1000) for d in frames]},
        schema={"day": pl.Date, "lo": pl.Int64},
    )
    ms = pl.col("observed_at").dt.epoch("ms")
    bad = (
        rows.join(close_ms, on="day", how="left", maintain_order="left")
        .filter((ms < pl.col("lo")) | (ms >= pl.col("lo") + STALE_AFTER_MS))
        .group_by("day", maintain_order=True)
        .head(10)
    )
    out.problems = [
        f"{r['day']}: {r['coin_id']} observed at {r['observed_at']}" for r in bad.iter_rows(named=True)
    ]
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
    if not wh.has_files(table):
        out.skipped = "funding_rates has no data in the lake"
        return out
    where = ""
    params: list = []
    if table.partition_by == "date" and days:
        where, params = "WHERE date BETWEEN ? AND ?", [min(days), max(days)]
    rows = wh.query(f"SELECT * FROM funding_rates {where}", params)
    out.checked = rows.height
    bad = rows.filter(pl.col("funding_rate").abs() > FUNDING_LIMIT)
    out.problems = [
        str(
            {
                k: v
                for k, v in r.items()
                if k in ("date", "symbol", "exchange", "funding_rate", "funding_time")
            }
        )
        for r in bad.head(10).iter_rows(named=True)
    ]
    return out


# ---- week-level rules over the clean tables a week reads ------------------------------------------------------
# WRONG data blocks the week, naming the row; MISSING data becomes a named gap line in the report (``week_gaps``).
# All of these are pure functions of frames (``week_frames`` reads them from the lake), so the mutation harness and
# the Dagster check run the same code.

TOP_N_REQUIRED = 100  # coins ranked this high by market cap on any day of the week must have sane values
FUNDING_BLOCK_8H = 0.01  # a settlement above 1% per 8h is treated as corrupt input for the week (blocking)
# Per clean table: the instant column (None: day-dated) and the columns that must be present and positive.
WEEK_TABLES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "coin_daily": (None, ()),  # price / market cap / volume rules apply to the top coins, see ``coin_values``
    "funding_rates": ("funding_time", ()),
    "open_interest": ("ts", ("oi_usd",)),
    "long_short_ratio": ("ts", ("long_account", "short_account")),
    "btc_hourly": ("ts", ("open", "high", "low", "close")),
    "perp_volume_daily": (None, ("quote_volume_usd",)),
}
NON_NULL: dict[str, tuple[str, ...]] = {"funding_rates": ("funding_rate",)}


def _fmt(v: object) -> str:
    return f"{v:.10g}" if isinstance(v, float) else str(v)


def _row_name(table: str, row: dict, keys: tuple[str, ...]) -> str:
    parts = [f"{k}={row[k]}" for k in ("date", *keys) if k in row and row[k] is not None]
    return f"{table}[{', '.join(parts)}]"


def week_days(week: str) -> tuple[date, date]:
    """The daily partitions a week reads for its rules: the day before the open (for day-over-day rules) to
    the next Monday (it holds the 00:00 settlement that belongs to the week)."""
    from pipelines.calendar import week_close_days

    open_day, close_day = week_close_days(week)
    return open_day - timedelta(days=1), close_day + timedelta(days=1)


def week_frames(wh: Warehouse, week: str) -> dict[str, pl.DataFrame]:
    """The clean daily tables' rows for ``week_days(week)`` (a table absent from the lake is left out); macro
    observations of the three weeks up to the close. Read with DuckDB over the Parquet files, so a corrupt file
    (duplicate keys, NaN) is seen as it is. On a range's snapshot of the lake they are read once a week for the
    steps that share the snapshot (the week's input check and its report, ``reads_for(..., keep=True)``): the
    same rows, read from the same files."""
    if isinstance(wh, LakeSnapshot):
        return dict(wh.derived(("week_frames", week), lambda: _read_week_frames(wh, week)))
    return _read_week_frames(wh, week)


def _read_week_frames(wh: Warehouse, week: str) -> dict[str, pl.DataFrame]:
    first, last = week_days(week)
    out: dict[str, pl.DataFrame] = {}
    for name in WEEK_TABLES:
        table = TABLES.get(name)
        if table is None or not wh.has_files(table):
            continue
        out[name] = wh.query(
            f'SELECT * FROM "{table.name}" WHERE date BETWEEN ? AND ?',
            [first, last],
            within={table.name: (first, last)},  # only those days' files: the same cost over years of history
        )
    table = TABLES.get("global_market_cap")
    if table is not None and wh.has_files(table):
        # every observation the week may use (made by two days after its close: metrics.market.USABLE_AFTER_CLOSE)
        out["global_market_cap"] = wh.query(
            f'SELECT * FROM "{table.name}" WHERE observed_at <= ? ORDER BY observed_at',
            [datetime.combine(last + timedelta(days=2), time(), UTC)],
        )
    table = TABLES.get("macro_observations")
    if table is not None and wh.has_files(table):
        out["macro_observations"] = wh.query(
            f'SELECT series_id, date, value FROM "{table.name}" WHERE date BETWEEN ? AND ?',
            [first - timedelta(days=14), last],
        )
    return out


def key_duplicates(table: str, df: pl.DataFrame) -> list[str]:
    """Rows sharing a key (and partition day): CONFLICTING ones (different values) name both values; identical
    ones are named too, since a sum over the lake would count them twice."""
    t = TABLES.get(table)
    if t is None or not t.key or df.is_empty():
        return []
    keys = [k for k in ("date", *t.key) if k in df.columns]
    values = [c for c in df.columns if c not in keys and c != "raw_file"]
    dup = df.filter(pl.len().over(keys) > 1)
    out = []
    for _, g in dup.group_by(keys, maintain_order=True):
        rows = g.select(values).unique(maintain_order=True)
        name = _row_name(table, g.row(0, named=True), t.key)
        if rows.height > 1:
            diff = [c for c in values if g[c].n_unique() > 1]
            shown = "; ".join(f"{c}: {' vs '.join(_fmt(v) for v in g[c].to_list())}" for c in diff)
            out.append(f"{name}: conflicting duplicate rows ({shown})")
        else:
            out.append(f"{name}: {g.height} identical rows (would be counted {g.height} times)")
    return out


def non_finite(table: str, df: pl.DataFrame) -> list[str]:
    """NaN or infinite numbers in any float column."""
    t = TABLES.get(table)
    keys = ("series_id",) if table == "macro_observations" else t.key if t else ()
    out = []
    for c, dtype in df.schema.items():
        if dtype not in (pl.Float64, pl.Float32):
            continue
        bad = df.filter(pl.col(c).is_nan() | pl.col(c).is_infinite())
        out += [f"{_row_name(table, r, keys)}: {c} = {r[c]}" for r in bad.head(10).iter_rows(named=True)]
    return out


def required_values(table: str, df: pl.DataFrame) -> list[str]:
    """Null or non-positive values where a value is required (``WEEK_TABLES``, ``NON_NULL``)."""
    t = TABLES.get(table)
    keys = t.key if t else ()
    out = []
    for c in WEEK_TABLES.get(table, (None, ()))[1]:
        if c in df.columns:
            bad = df.filter(pl.col(c).is_null() | (pl.col(c) <= 0))
            out += [
                f"{_row_name(table, r, keys)}: {c} = {r[c]} (must be positive)"
                for r in bad.head(10).iter_rows(named=True)
            ]
    for c in NON_NULL.get(table, ()):
        if c in df.columns:
            bad = df.filter(pl.col(c).is_null())
            out += [f"{_row_name(table, r, keys)}: {c} is null" for r in bad.head(10).iter_rows(named=True)]
    return out


def instants(table: str, df: pl.DataFrame) -> list[str]:
    """A timestamp outside its partition's UTC day (shifted), or an hourly bar not on the hour."""
    col = WEEK_TABLES.get(table, (None, ()))[0]
    if col is None or col not in df.columns or "date" not in df.columns or df.is_empty():
        return []
    keys = TABLES[table].key
    ts = pl.col(col).dt.convert_time_zone("UTC") if df.schema[col].time_zone else pl.col(col)
    bad = df.filter(ts.dt.date() != pl.col("date"))
    out = [
        f"{_row_name(table, r, keys)}: {col} {r[col]} is not on the partition's day"
        for r in bad.head(10).iter_rows(named=True)
    ]
    if table == "btc_hourly":
        off = df.filter((ts.dt.minute() != 0) | (ts.dt.second() != 0))
        out += [
            f"{_row_name(table, r, keys)}: bar {r[col]} is not on the hour"
            for r in off.head(10).iter_rows(named=True)
        ]
    return out


def funding_implausible(df: pl.DataFrame) -> list[str]:
    """A settlement beyond 1% per 8h (normalised by its interval): corrupt for this pipeline's majors."""
    if df.is_empty() or "funding_rate" not in df.columns:
        return []
    rate8 = pl.col("funding_rate") * 8 / pl.col("interval_hours").cast(pl.Float64)
    bad = df.filter(rate8.abs() > FUNDING_BLOCK_8H)
    return [
        f"{_row_name('funding_rates', r, FUNDING_KEY)}: funding_rate = {_fmt(r['funding_rate'])} "
        f"per {r['interval_hours']}h, beyond {FUNDING_BLOCK_8H:.0%} per 8h"
        for r in bad.head(10).iter_rows(named=True)
    ]


FUNDING_KEY = ("exchange", "symbol", "funding_time")
FUNDING_VENUE_GAP = 0.0005  # 0.05% per 8h away from the other venues at the same settlement ...
FUNDING_VENUE_FACTOR = 5.0  # ... and five times the other venues' own size


def funding_venue_outlier_rows(df: pl.DataFrame) -> pl.DataFrame:
    """Settlements out of line with the other venues' settlements of the same symbol at the same instant:
    ``exchange, symbol, funding_time, r8, others_r8`` (per 8h), where a settlement is out of line when it lies more
    than ``FUNDING_VENUE_GAP`` and ``FUNDING_VENUE_FACTOR`` x |median of the other venues| away from that median.
    Arbitrage keeps venues' funding close and a market-wide event moves them together; a rate off by a factor on
    one venue (x100 of a near-zero rate stays under the 1% limit but flipped a day's sign in the report) does not.
    With two venues only the one further from zero can be out of line. It cannot tell a unit error from a real
    squeeze on one venue, so such a settlement is QUARANTINED, not blocking: left out of the funding figures and
    named under Data gaps (``week_gaps``). (A per-series spike rule was rejected: real SOLUSDT funding on
    2025-10-11 was -0.30% per 8h, 100x its median.)"""
    schema = {
        "exchange": pl.String,
        "symbol": pl.String,
        "funding_time": pl.Datetime("ms", "UTC"),
        "r8": pl.Float64,
        "others_r8": pl.Float64,
    }
    if df.is_empty() or "funding_rate" not in df.columns:
        return pl.DataFrame(schema=schema)
    f = df.select(
        "exchange",
        "symbol",
        "funding_time",
        (pl.col("funding_rate") * 8 / pl.col("interval_hours").cast(pl.Float64)).alias("r8"),
    )
    others = (
        f.join(f, on=["symbol", "funding_time"], suffix="_o")
        .filter(pl.col("exchange") != pl.col("exchange_o"))
        .group_by("exchange", "symbol", "funding_time")
        .agg(pl.col("r8").first(), pl.col("r8_o").median().alias("others_r8"))
    )
    gap = (pl.col("r8") - pl.col("others_r8")).abs()
    return (
        others.filter((gap > FUNDING_VENUE_GAP) & (gap > FUNDING_VENUE_FACTOR * pl.col("others_r8").abs()))
        .select(list(schema))
        .sort("funding_time", "symbol", "exchange")
    )


def funding_venue_outliers(df: pl.DataFrame, rows: pl.DataFrame | None = None) -> list[str]:
    """``funding_venue_outlier_rows`` as named lines (for metadata and Data gaps); ``rows``: those rows when the
    caller has them already."""
    rows = funding_venue_outlier_rows(df) if rows is None else rows
    return [
        f"funding_rates[exchange={r['exchange']}, symbol={r['symbol']}, funding_time={r['funding_time']}]: "
        f"{_fmt(r['r8'])} per 8h against {_fmt(r['others_r8'])} on the other venues"
        for r in rows.head(10).iter_rows(named=True)
    ]


def without_funding_outliers(df: pl.DataFrame, rows: pl.DataFrame | None = None) -> pl.DataFrame:
    """``df`` less its out-of-line settlements (``funding_venue_outlier_rows``, or ``rows`` when given)."""
    bad = funding_venue_outlier_rows(df) if rows is None else rows
    return (
        df.join(
            bad.select("exchange", "symbol", "funding_time"),
            on=["exchange", "symbol", "funding_time"],
            how="anti",
        )
        if bad.height
        else df
    )


def top_coins(coin_daily: pl.DataFrame, top_n: int = TOP_N_REQUIRED) -> list[str]:
    """Coins ranked in the top ``top_n`` by market cap on any day present (ties by coin id)."""
    if coin_daily.is_empty():
        return []
    ranked = coin_daily.filter(pl.col("market_cap_usd") > 0).with_columns(
        pl.col("market_cap_usd").rank("ordinal", descending=True).over("date").alias("_rank")
    )
    return sorted(set(ranked.filter(pl.col("_rank") <= top_n)["coin_id"].to_list()))


def coin_values(coin_daily: pl.DataFrame, top_n: int = TOP_N_REQUIRED) -> list[str]:
    """A top coin (``top_coins``) with a null or non-positive price or market cap, or a zero or negative volume,
    on any day present. A null volume is missing, not wrong: days whose market caps are estimates
    (``pipelines.clean.estimates``) carry none, and the volume table names the days it lacks."""
    top = top_coins(coin_daily, top_n)
    rows = coin_daily.filter(pl.col("coin_id").is_in(top))
    out = []
    for c in ("price_usd", "market_cap_usd", "volume_24h_usd"):
        wrong = pl.col(c) <= 0 if c == "volume_24h_usd" else pl.col(c).is_null() | (pl.col(c) <= 0)
        bad = rows.filter(wrong).sort("date", "coin_id")
        out += [
            f"coin_daily[date={r['date']}, coin_id={r['coin_id']}]: {c} = {r[c]} for a top-{top_n} coin"
            for r in bad.head(10).iter_rows(named=True)
        ]
    return out


SUPPLY_JUMP = 3.0  # implied supply (market cap / price) of a top coin moving threefold in a day


def supply_jumps(coin_daily: pl.DataFrame, top_n: int = TOP_N_REQUIRED) -> list[str]:
    """A top coin whose implied supply (market cap / price) changes ``SUPPLY_JUMP``-fold from one day to the
    next: the market cap or the price is off by a factor (x10 on a day the price fell would pass the 10x
    market-cap rule)."""
    top = top_coins(coin_daily, top_n)
    df = (
        coin_daily.filter(
            pl.col("coin_id").is_in(top) & (pl.col("market_cap_usd") > 0) & (pl.col("price_usd") > 0)
        )
        .select(
            "date",
            "coin_id",
            "price_usd",
            "market_cap_usd",
            (pl.col("market_cap_usd") / pl.col("price_usd")).alias("s"),
        )
        .sort("coin_id", "date")
        .with_columns(
            pl.col("s").shift(1).over("coin_id").alias("s0"),
            pl.col("date").shift(1).over("coin_id").alias("d0"),
        )
        .filter((pl.col("date") - pl.col("d0")) == pl.duration(days=1))
        .with_columns((pl.col("s") / pl.col("s0")).alias("k"))
        .filter((pl.col("k") >= SUPPLY_JUMP) | (pl.col("k") <= 1 / SUPPLY_JUMP))
    )
    return [
        f"coin_daily[date={r['date']}, coin_id={r['coin_id']}]: market cap / price moved x{r['k']:.3g} in a day "
        f"(market_cap_usd = {_fmt(r['market_cap_usd'])}, price_usd = {_fmt(r['price_usd'])})"
        for r in df.head(10).iter_rows(named=True)
    ]


def global_values(df: pl.DataFrame) -> list[str]:
    """A /global observation (``global_market_cap``) that is wrong: a total or share that is not a finite
    positive number, a total below the top coins' own market cap (share above 1), or a top sum that is not
    positive. The pull refuses such answers before storage; a row that reaches the lake anyway (an older
    recording, a file edited by hand) blocks every week that may use it, naming the row."""
    out = []
    for r in df.iter_rows(named=True):
        name = f"global_market_cap[snapshot={r.get('snapshot', '?')}, observed_at={r['observed_at']}]"
        total, top, share = r["total_market_cap_usd"], r["top_mcap_usd"], r["top_share"]
        for col, v in (("total_market_cap_usd", total), ("top_mcap_usd", top), ("top_share", share)):
            if v is None or not math.isfinite(v) or v <= 0:
                out.append(f"{name}: {col} = {v} (must be a positive number)")
        if (
            total is not None
            and top is not None
            and math.isfinite(total)
            and math.isfinite(top)
            and 0 < total < top
        ):
            out.append(
                f"{name}: total_market_cap_usd = {_fmt(total)} below the top {r['top_coins']} coins' "
                f"{_fmt(top)}"
            )
    return out


def week_violations(frames: dict[str, pl.DataFrame]) -> list[str]:
    """Every WRONG-data violation in a week's clean frames (see ``week_frames``), each naming its row."""
    out: list[str] = []
    for table, df in frames.items():
        if table == "global_market_cap":
            out += global_values(df)
            continue
        out += key_duplicates(table, df) if table != "macro_observations" else key_duplicates_macro(df)
        out += non_finite(table, df)
        out += required_values(table, df)
        out += instants(table, df)
    if "coin_daily" in frames:
        out += coin_values(frames["coin_daily"])
        out += supply_jumps(frames["coin_daily"])
    if "funding_rates" in frames:
        out += funding_implausible(frames["funding_rates"])
    return out


def key_duplicates_macro(df: pl.DataFrame) -> list[str]:
    if df.is_empty():
        return []
    dup = df.filter(pl.len().over("series_id", "date") > 1)
    return [
        f"macro_observations[series_id={k[0]}, date={k[1]}]: {g.height} rows "
        f"(value: {' vs '.join(_fmt(v) for v in g['value'].to_list())})"
        for k, g in dup.group_by("series_id", "date", maintain_order=True)
    ]


def _day_span(days: tuple[date, ...]) -> str:
    """``2025-11-20``, ``2025-11-20..2025-11-23`` (consecutive) or ``2025-11-20, 2025-11-22``."""
    if len(days) > 1 and all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False)):
        return f"{days[0]}..{days[-1]}"
    return ", ".join(d.isoformat() for d in days)


def week_gaps(frames: dict[str, pl.DataFrame], week: str, limit: int = 8) -> list[str]:
    """MISSING data in a week's clean frames, as named gap lines for the report (never filled):

    * a coin priced on some day the week reads (the day before the open to the close) but absent on a day from
      the open to the close; a coin priced on a day without a 24h volume;
    * a (venue, symbol) with funding settlements, OI readings or perp volume in the week but none on some day;
      a venue present at the open but absent afterwards;
    * a funding settlement out of line with the other venues (``funding_venue_outlier_rows``: left out);
    * BTC hourly bars missing in the week;
    * a weekday with no row, or a blank value, in a daily FRED series (the returns then use an earlier close).
    """
    from pipelines.calendar import week_close_days

    open_day, close_day = week_close_days(week)
    week_days_ = [open_day + timedelta(days=i) for i in range((close_day - open_day).days + 1)]
    out: list[str] = []

    def listed(items: list[str]) -> str:
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return ", ".join(items[:limit]) + more

    cd = frames.get("coin_daily")
    if cd is not None and not cd.is_empty():
        # coins priced with a market cap on some day the week reads (the day before the open to the close)
        seen = set(cd.filter(pl.col("market_cap_usd") > 0)["coin_id"].to_list())
        # each day's coins, and those without a volume, in the frame's order (one grouping, not a filter a day)
        on_day = dict(cd.group_by("date").agg("coin_id").iter_rows())
        novol_on = dict(
            cd.filter(pl.col("volume_24h_usd").is_null()).group_by("date").agg("coin_id").iter_rows()
        )
        for d in week_days_:
            gone = sorted(seen - set(on_day.get(d, ())))
            if gone:
                out.append(
                    f"Prices: no close on {d} for {listed(gone)} (not filled; totals and indices use the coins priced)."
                )
        # a coin priced but without a 24h volume (estimated days have none): spot volume leaves it out
        for d in week_days_:
            novol = sorted(novol_on.get(d, ()))
            if novol:
                who = "any coin" if len(novol) == len(on_day[d]) else listed(novol)
                out.append(
                    f"Volume: no 24h volume on {d} for {who} (not filled; spot volume leaves them out)."
                )
    for table in ("funding_rates", "open_interest", "perp_volume_daily"):
        df = frames.get(table)
        if df is None or df.is_empty():
            continue
        days = week_days_[1:]  # Monday..Sunday partitions
        inweek = df.filter(pl.col("date").is_in(days))
        # each day's series, one row a (day, series) rather than one a reading
        seen = inweek.select("date", "exchange", "symbol").unique()
        series = sorted({(e, s_) for _, e, s_ in seen.iter_rows()})
        present: dict[date, set[tuple[str, str]]] = {d: set() for d in days}
        for d, e, s_ in seen.iter_rows():
            present[d].add((e, s_))
        # one line per set of missing days (a delisting is one line for the rest of the week, not one per day)
        by_days: dict[tuple[date, ...], list[str]] = {}
        for e, s_ in series:
            lost = tuple(d for d in days if (e, s_) not in present[d])
            if lost:
                by_days.setdefault(lost, []).append(f"{e} {s_}")
        for lost, names in sorted(by_days.items()):
            out.append(f"{table}: nothing on {_day_span(lost)} for {listed(names)} (not filled).")
        venues_before = set(df.filter(pl.col("date") < days[0])["exchange"].to_list())
        for v in sorted(venues_before - set(inweek["exchange"].to_list())):
            out.append(
                f"{table}: no {v} data in the week (it had data before; figures cover the other venues)."
            )
    funding = frames.get("funding_rates")
    if funding is not None and not funding.is_empty():
        for line in funding_venue_outliers(funding.filter(pl.col("date").is_in(week_days_[1:]))):
            out.append(
                f"Funding: {line}: out of line with the other venues, left out of the funding figures."
            )
    hourly = frames.get("btc_hourly")
    if hourly is not None:
        from pipelines.calendar import utc_midnight

        start = utc_midnight(close_day + timedelta(days=1)) - timedelta(days=7)
        expected = [start + timedelta(hours=h) for h in range(7 * 24)]
        have = {t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC) for t in hourly["ts"].to_list()}
        lost = [t for t in expected if t not in have]
        if lost:
            out.append(
                f"BTC hourly bars: {len(lost)} missing in the week, first {lost[0]:%Y-%m-%d %H:00} UTC (not filled)."
            )
    macro = frames.get("macro_observations")
    if macro is not None and not macro.is_empty():
        first_weekday = open_day - timedelta(days=2)  # the Friday before: the open boundary of market returns
        wanted = [first_weekday + timedelta(days=i) for i in range((close_day - first_weekday).days + 1)]
        wanted = [d for d in wanted if d.weekday() < 5]
        by_series = macro.partition_by("series_id", as_dict=True)  # each series' rows in the frame's order
        for (sid,), s in sorted(by_series.items()):
            dates = s["date"].to_list()
            if len(dates) < 5 or not _is_daily(dates):
                continue
            present = dict(s.select("date", "value").iter_rows())
            lost = [d.isoformat() for d in wanted if d not in present]
            blank = [d.isoformat() for d in wanted if d in present and present[d] is None]
            if lost:
                out.append(
                    f"Macro: {sid} has no observation for {listed(lost)} (the return uses the last earlier close)."
                )
            if blank:
                out.append(
                    f"Macro: {sid} is blank on {listed(blank)} (holiday or unpublished; the last earlier close is used)."
                )
    return out


def _is_daily(dates: list[date]) -> bool:
    ds = sorted(set(dates))
    steps = [(b - a).days for a, b in zip(ds, ds[1:], strict=False)]
    return bool(steps) and sorted(steps)[len(steps) // 2] <= 3


def week_problems(wh: Warehouse, week: str) -> list[str]:
    """Every blocking problem of the inputs a week reads: the coin_daily rules (coverage, duplicates, outliers,
    staleness) over open..close day, then ``week_violations`` over every clean table of the week. Each names
    its rule and row. Used by the ``week_inputs_quality`` check and by the mutation harness."""
    from pipelines.calendar import days_between, week_close_days
    from pipelines.clean.coingecko import latest_registry

    open_day, close_day = week_close_days(week)
    days = days_between(open_day, close_day)
    registry = latest_registry(wh)
    # duplicates of coin_daily are covered by ``week_violations`` (which also names both values when they conflict)
    outcomes = [coverage(wh, days, registry.height), outliers(wh, days), stale(wh, days)]
    problems = [f"{o.name}: {p}" for o in outcomes for p in o.problems]
    return problems + [f"week_values: {p}" for p in week_violations(week_frames(wh, week))]
