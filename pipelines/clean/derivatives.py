"""Stored Binance / Bybit / OKX / FRED responses -> clean lake tables. Pure functions over raw files; no network.

For each (key, day) the newest stored pull covering the day is read (``pulls.recorded.choose_pulls``);
every row keeps the raw file it was read from (``raw_file``). Parsers raise ``PayloadError`` on drifted
payloads; the builders return frames and write nothing, so a failure never touches stored partitions.
Out-of-order rows are sorted by key; identical duplicate rows are dropped, and conflicting ones (same key,
different values) refuse the pull with the key and both values named (``sources.dedupe``).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import date, datetime, timedelta

import polars as pl

from pipelines.clean import beside, in_order
from pipelines.lake_files import file_identity
from pipelines.pulls import derivatives as ing
from pipelines.pulls.recorded import StoredPull, choose_pulls, stored_pulls
from pipelines.schemas import (
    BTC_HOURLY,
    FUNDING_RATES,
    LONG_SHORT_RATIO,
    OPEN_INTEREST,
    PERP_VOLUME_DAILY,
    Table,
)
from pipelines.sources import binance, bybit, okx
from pipelines.sources.binance_vision import parse_metrics_csvs, read_zip_csv
from pipelines.sources.dedupe import PAGE, ConflictingDuplicates
from pipelines.sources.fred import parse_fredgraph_csv
from pipelines.sources.http import PayloadError
from pipelines.warehouse import Warehouse

PL_UTC_MS = pl.Datetime("ms", "UTC")


def normalize_symbol(symbol: pl.Expr) -> pl.Expr:
    """``BTC-USDT-SWAP`` -> ``BTCUSDT`` (the first two dash-separated parts); ``BTCUSDT`` unchanged."""
    parts = symbol.str.split("-")
    return pl.when(parts.list.len() >= 2).then(parts.list.get(0) + parts.list.get(1)).otherwise(symbol)


def _load(wh: Warehouse, relpath: str) -> object:
    try:
        return json.loads((wh.root / relpath).read_bytes())
    except ValueError as exc:
        raise PayloadError(
            f"stored body is not JSON ({exc})", endpoint=relpath, params={}, status=200
        ) from exc


def _day_col(col: str = "ts") -> pl.Expr:
    return pl.col(col).dt.date().alias("day")


def _reading_columns(exchange: str, *values: str) -> list[pl.Expr | str]:
    """The clean columns of a venue's reading: exchange, symbol, ``ts`` in UTC ms, ``values`` and raw_file."""
    return [pl.lit(exchange).alias("exchange"), "symbol", pl.col("ts").cast(PL_UTC_MS), *values, "raw_file"]


def _priced(readings: pl.DataFrame, prices: pl.DataFrame, within: timedelta) -> pl.DataFrame:
    """Each reading with its symbol's last ``prices`` row at or before its ``ts``, up to ``within`` earlier
    (null price beyond)."""
    return readings.join_asof(
        prices, on="ts", by="symbol", strategy="backward", tolerance=within, check_sortedness=False
    )


def _parsed_pages(wh: Warehouse, pull: StoredPull, parse) -> pl.DataFrame:
    """A pull's pages parsed together, each row with the raw file of its page (``raw_file``); one row per key:
    a row repeated on several pages is kept from the first, conflicting ones refuse the pull, named."""
    if not pull.files:
        return pl.DataFrame()
    try:
        df = parse([_load(wh, rel) for rel in pull.files], page_index=True)
    except ConflictingDuplicates as exc:
        raise ConflictingDuplicates(f"{pull.files[0]} and its pages: {exc}") from exc
    files = dict(enumerate(pull.files))
    return df.with_columns(pl.col(PAGE).replace_strict(files, return_dtype=pl.String).alias("raw_file")).drop(
        PAGE
    )


def _collect(wh: Warehouse, ds: ing.Dataset, days: list[date], build) -> list[pl.DataFrame]:
    out = []
    for pull, pdays in choose_pulls(stored_pulls(wh, ds.source, ds.endpoint, days), days).items():
        df = build(pull)
        if df is None or df.is_empty():
            continue
        out.append(df.filter(pl.col("day").is_in(pdays)))
    return out


def _split(frames: list[pl.DataFrame], table: Table, days: list[date]) -> dict[date, pl.DataFrame]:
    """Each day's rows of ``table``, sorted by its key, a key's first row kept (an empty frame for a day without
    rows)."""
    cols = ["day", *table.column_names]
    frames = [f.select(cols) for f in frames if f.height]
    empty = (
        pl.from_arrow(table.arrow_schema.empty_table())
        .with_columns(pl.lit(None, pl.Date).alias("day"))
        .select(cols)
    )
    allrows = pl.concat(frames, how="vertical_relaxed") if frames else empty
    allrows = allrows.unique(["day", *table.key], keep="first", maintain_order=True)
    # sorted once, then cut by day keeping that order: a day's keys are distinct (above), so each day comes out as
    # sorting it alone gives, without a sort a day
    parts = {
        k[0]: v
        for k, v in allrows.sort(list(table.key))
        .partition_by("day", as_dict=True, maintain_order=True, include_key=False)
        .items()
    }
    return {d: parts.get(d, empty.drop("day")) for d in days}


# ---- funding ----------------------------------------------------------------------------------------------------
def _funding_frame(wh: Warehouse, pull: StoredPull, parse, exchange: str) -> pl.DataFrame:
    # interval inference needs every page together: one parse gives it and each row's page
    values = _parsed_pages(wh, pull, parse)
    if values.is_empty():
        return values
    return values.select(
        _day_col("funding_time"),
        pl.lit(exchange).alias("exchange"),
        normalize_symbol(pl.col("symbol")).alias("symbol"),
        pl.col("funding_time").cast(PL_UTC_MS),
        "funding_rate",
        pl.col("interval_hours").cast(pl.Int32),
        "raw_file",
    )


def _venue_funding(
    wh: Warehouse, days: list[date], ds: ing.Dataset, parse, exchange: str
) -> list[pl.DataFrame]:
    return _collect(wh, ds, days, lambda p: _funding_frame(wh, p, parse, exchange))


def build_funding_rates(wh: Warehouse, days: list[date]) -> dict[date, pl.DataFrame]:
    # Binance's settlements parsed beside the other venues' on a long range; the frames in venue order, and a
    # failing Binance pull the error raised, as parsing the venues in order would raise it
    binance_frames = beside(
        wh, len(days), _venue_funding, wh, days, ing.BINANCE_FUNDING, binance.parse_funding_rates, "binance"
    )
    others = [
        (ing.BYBIT_FUNDING, bybit.parse_funding_history, "bybit"),
        (ing.OKX_FUNDING, okx.parse_funding_history, "okx"),
    ]
    frames = in_order(
        binance_frames, lambda: [f for venue in others for f in _venue_funding(wh, days, *venue)]
    )
    return _split(frames, FUNDING_RATES, days)


# ---- Binance stats (REST and archive) ---------------------------------------------------------------------------
def _metrics_frames(wh: Warehouse, days: list[date]) -> list[pl.DataFrame]:
    """The archive's metrics readings on the hour for ``days``, each with its file (``raw_file``): every chosen
    daily file parsed together (``parse_metrics_csvs``), each file's rows kept for the days it was chosen for, as
    ``_collect`` keeps a pull's; a file recorded missing upstream (404) has no rows. ``open_interest`` and
    ``long_short_ratio`` both read them: the last range's frames are kept in the process (``_METRICS_KEPT``) for
    the same files, as they are now, chosen for the same days."""
    chosen = [
        (pull, pdays)
        for pull, pdays in choose_pulls(
            stored_pulls(wh, ing.BINANCE_METRICS.source, ing.BINANCE_METRICS.endpoint, days), days
        ).items()
        if pull.statuses[0] != 404
    ]
    if not chosen:
        return []
    key = None
    if not wh.remote:
        key = (
            str(wh.root),
            tuple(
                (pull.files[0], file_identity(os.stat(wh.root / pull.files[0])), tuple(pd))
                for pull, pd in chosen
            ),
        )
        with _METRICS_LOCK:
            if _METRICS_KEPT is not None and _METRICS_KEPT[0] == key:
                return list(_METRICS_KEPT[1])
    frames = _metrics_read(wh, chosen)
    if key is not None:
        _keep_metrics(key, frames)
    return list(frames)


def _metrics_read(wh: Warehouse, chosen: list[tuple[StoredPull, list[date]]]) -> list[pl.DataFrame]:
    df = parse_metrics_csvs([read_zip_csv((wh.root / pull.files[0]).read_bytes()) for pull, _ in chosen])
    kept = pl.DataFrame(
        {
            PAGE: [i for i, (_, pdays) in enumerate(chosen) for _ in pdays],
            "day": [d for _, ds in chosen for d in ds],
        },
        schema={PAGE: pl.UInt32, "day": pl.Date},
    )
    files = {i: pull.files[0] for i, (pull, _) in enumerate(chosen)}
    df = (
        df.filter(pl.col("ts").dt.minute() == 0)
        .with_columns(_day_col())
        .join(kept, on=[PAGE, "day"], how="semi", maintain_order="left")
    )
    return [
        df.with_columns(pl.col(PAGE).replace_strict(files, return_dtype=pl.String).alias("raw_file")).drop(
            PAGE
        )
    ]


# The metrics frames of the last range read in this process, with what they were read from: (the warehouse, and
# each chosen file with its identity and days); raw recordings are never replaced, the identity checks it anyway.
_METRICS_KEPT: tuple[tuple, list[pl.DataFrame]] | None = None
_METRICS_LOCK = threading.Lock()


def _keep_metrics(key: tuple, frames: list[pl.DataFrame]) -> None:
    global _METRICS_KEPT
    with _METRICS_LOCK:
        _METRICS_KEPT = (key, list(frames))


def binance_archive_missing(wh: Warehouse, days: list[date]) -> list[str]:
    """``SYMBOL day`` for every archive day recorded as missing upstream (404)."""
    chosen = choose_pulls(
        stored_pulls(wh, ing.BINANCE_METRICS.source, ing.BINANCE_METRICS.endpoint, days), days
    )
    return sorted(f"{p.key} {p.first}" for p in chosen if p.statuses[0] == 404)


def build_open_interest(
    wh: Warehouse, days: list[date], stats: dict | None = None
) -> tuple[dict[date, pl.DataFrame], int]:
    """Frames per day, and how many Bybit readings had no price (dropped, counted).

    Bybit's base-coin readings are priced with the Binance perpetual's last bar close within 2 hours; a symbol with
    no Binance price at all in the span (Binance blocked or not selected) is priced with CoinGecko's daily close
    of the coin instead (``coin_daily``, the last close within 26 hours; counted in ``stats`` as
    ``bybit_priced_with_coingecko``)."""
    # the Binance closes that price Bybit's readings, started now beside the venues' parsing on a long range
    prices_of = beside(wh, len(days), perp_closes, wh, days)
    frames: list[pl.DataFrame] = []
    out_cols = _reading_columns("binance", "oi_usd")
    frames += [
        f.select("day", *out_cols)
        for f in _collect(
            wh,
            ing.BINANCE_OI,
            days,
            lambda p: (
                _parsed_pages(wh, p, binance.parse_open_interest_hist).with_columns(_day_col())
                if p.files
                else None
            ),
        )
    ]
    frames += [f.drop_nulls("oi_usd").select("day", *out_cols) for f in _metrics_frames(wh, days)]
    # Bybit: base-coin OI x the Binance perpetual's price at the reading (close of the bar ending there)
    bybit_frames = _collect(
        wh,
        ing.BYBIT_OI,
        days,
        lambda p: _parsed_pages(wh, p, bybit.parse_open_interest).with_columns(_day_col()),
    )
    unpriced = 0
    if bybit_frames:
        oi = pl.concat(bybit_frames).sort("ts")
        prices = prices_of()
        joined = _priced(oi, prices, timedelta(hours=2))
        no_binance = sorted(set(oi["symbol"].unique().to_list()) - set(prices["symbol"].unique().to_list()))
        if no_binance:
            fallback = coingecko_prices(wh, days).filter(pl.col("symbol").is_in(no_binance))
            rest = joined.filter(~pl.col("symbol").is_in(no_binance))
            filled = _priced(oi.filter(pl.col("symbol").is_in(no_binance)), fallback, timedelta(hours=26))
            joined = pl.concat([rest, filled], how="vertical_relaxed")
            if stats is not None:
                stats["bybit_priced_with_coingecko"] = filled["price"].drop_nulls().len()
        unpriced = joined["price"].null_count()
        frames.append(
            joined.drop_nulls("price")
            .with_columns((pl.col("oi_base") * pl.col("price")).alias("oi_usd"))
            .select("day", *_reading_columns("bybit", "oi_usd"))
        )
    for f in _collect(wh, ing.OKX_OI, days, lambda p: _okx_oi_frame(wh, p)):
        frames.append(f)
    return _split(frames, OPEN_INTEREST, days), unpriced


def _okx_oi_frame(wh: Warehouse, pull: StoredPull) -> pl.DataFrame:
    rel = pull.files[0]
    df = okx.parse_open_interest_volume(_load(wh, rel), ing.base_of(pull.key))
    return df.select(
        _day_col(),
        pl.lit("okx").alias("exchange"),
        pl.lit(pull.key).alias("symbol"),
        pl.col("ts").cast(PL_UTC_MS),
        "oi_usd",
        pl.lit(rel).alias("raw_file"),
    )


def coingecko_prices(wh: Warehouse, days: list[date]) -> pl.DataFrame:
    """``symbol, ts, price``: CoinGecko's daily close per coin as ``<SYMBOL>USDT`` at the point's time
    (``coin_daily.observed_at``), the largest coin of a shared ticker winning; empty without coin_daily."""
    schema = {"symbol": pl.String, "ts": PL_UTC_MS, "price": pl.Float64}
    try:
        df = wh.query(
            "SELECT upper(symbol) || 'USDT' AS symbol, observed_at AS ts, price_usd AS price, market_cap_usd "
            "FROM coin_daily WHERE date >= ? AND date <= ? ORDER BY ts",
            [min(days) - timedelta(days=2), max(days)],
        )
    except Exception:
        return pl.DataFrame(schema=schema)
    if df.is_empty():
        return pl.DataFrame(schema=schema)
    df = df.sort(["symbol", "ts", "market_cap_usd"], descending=[False, False, True], nulls_last=True)
    return (
        df.unique(["symbol", "ts"], keep="first", maintain_order=True)
        .select(pl.col("symbol"), pl.col("ts").cast(PL_UTC_MS), pl.col("price"))
        .sort("ts")
    )


def perp_closes(wh: Warehouse, days: list[date]) -> pl.DataFrame:
    """``symbol, ts, price``: each Binance perpetual's bar closes, stamped at the bar's close (its close time +
    1 ms: the hour or the 4 hours after its open, as ``intraday_spans`` asked them), and the first bar's open,
    read from the stored intraday klines pulls covering ``days`` and the day before."""
    span = sorted({d for day in days for d in (day - timedelta(days=1), day)})
    frames = [
        f
        for f in _collect(
            wh,
            ing.BINANCE_PERP_INTRADAY,
            span,
            lambda p: _intraday_bars(wh, p).with_columns(
                _day_col("open_time"), pl.lit(p.key).alias("symbol")
            ),
        )
    ]
    schema = {"symbol": pl.String, "ts": PL_UTC_MS, "price": pl.Float64}
    if not frames:
        return pl.DataFrame(schema=schema)
    bars = pl.concat(frames)
    closes = bars.select(
        "symbol",
        (pl.col("close_time") + pl.duration(milliseconds=1)).cast(PL_UTC_MS).alias("ts"),
        pl.col("close").alias("price"),
    )
    opens = bars.select(
        "symbol", pl.col("open_time").cast(PL_UTC_MS).alias("ts"), pl.col("open").alias("price")
    )
    # a bar's close is the price at its end; the first bar's open prices the first reading
    return pl.concat([closes, opens]).unique(["symbol", "ts"], keep="first", maintain_order=True).sort("ts")


# the bars ``intraday_spans`` asks, by their length (close time + 1 ms - open time) in milliseconds
INTRADAY_BAR_MS = (3_600_000, 14_400_000)


def _intraday_bars(wh: Warehouse, pull: StoredPull) -> pl.DataFrame:
    """A pull's bars; a bar that is not 1 or 4 hours long fails, named: its close prices the reading at its end,
    so a drifted close time would price readings at the wrong instant."""
    bars = _parsed_pages(wh, pull, binance.parse_klines)
    length = (pl.col("close_time") - pl.col("open_time")).dt.total_milliseconds() + 1
    bad = bars.filter(~length.is_in(INTRADAY_BAR_MS))
    if bad.height:
        row = bad.row(0, named=True)
        raise PayloadError(
            f"{pull.key} bar opening {row['open_time']} closes at {row['close_time']}: not a 1-hour or 4-hour bar",
            endpoint=pull.files[0],
            params={},
            status=200,
        )
    return bars


def build_long_short(wh: Warehouse, days: list[date]) -> dict[date, pl.DataFrame]:
    cols = _reading_columns("binance", "long_account", "short_account")
    frames = [
        f.select("day", *cols)
        for f in _collect(
            wh,
            ing.BINANCE_LS,
            days,
            lambda p: _parsed_pages(wh, p, binance.parse_long_short_ratio).with_columns(_day_col()),
        )
    ]
    for f in _metrics_frames(wh, days):
        # the archive's count_long_short_ratio is long/short of accounts: long = r / (1 + r)
        f = f.drop_nulls("long_short_ratio").with_columns(
            (pl.col("long_short_ratio") / (1 + pl.col("long_short_ratio"))).alias("long_account"),
            (1 / (1 + pl.col("long_short_ratio"))).alias("short_account"),
        )
        frames.append(f.select("day", *cols))
    return _split(frames, LONG_SHORT_RATIO, days)


# ---- klines -------------------------------------------------------------------------------------------------------
def _klines_frame(wh: Warehouse, pull: StoredPull) -> pl.DataFrame:
    df = _parsed_pages(wh, pull, binance.parse_klines)
    if df.is_empty():
        return df
    # only bars that had closed when pulled (a live API returns the running bar too)
    done = df.filter(pl.col("close_time") < pull.fetched_at)
    return done.with_columns(_day_col("open_time"), pl.lit(pull.key).alias("symbol"))


def build_btc_hourly(wh: Warehouse, days: list[date]) -> dict[date, pl.DataFrame]:
    frames = [
        f.select(
            "day",
            pl.col("open_time").cast(PL_UTC_MS).alias("ts"),
            pl.col("open", "high", "low", "close", "volume", "quote_volume"),
            "raw_file",
        )
        for f in _collect(wh, ing.BINANCE_SPOT_1H, days, lambda p: _klines_frame(wh, p))
    ]
    return _split(frames, BTC_HOURLY, days)


def build_perp_volume(wh: Warehouse, days: list[date]) -> dict[date, pl.DataFrame]:
    frames = [
        f.select(
            "day",
            pl.lit("binance").alias("exchange"),
            "symbol",
            pl.col("quote_volume").alias("quote_volume_usd"),
            "raw_file",
        )
        for f in _collect(wh, ing.BINANCE_PERP_1D, days, lambda p: _klines_frame(wh, p))
    ]
    return _split(frames, PERP_VOLUME_DAILY, days)


# ---- FRED -----------------------------------------------------------------------------------------------------------
def build_macro(wh: Warehouse) -> dict[str, pl.DataFrame]:
    """Per series, the newest stored CSV -> ``macro_observations`` rows (missing values stay null)."""
    out = {}
    for sid, path in sorted(ing.latest_fred_files(wh).items()):
        df = parse_fredgraph_csv(path.read_bytes())
        ids = set(df["series_id"].unique().to_list())
        if ids - {sid}:
            raise PayloadError(
                f"{wh.rel(path)} holds series {sorted(ids)}, expected {sid}",
                endpoint=wh.rel(path),
                params={},
                status=200,
            )
        pulled = datetime.fromisoformat(wh.raw_meta(path)["fetched_at"])
        out[sid] = df.select(
            "series_id",
            "date",
            "value",
            pl.lit(pulled).cast(PL_UTC_MS).alias("pulled_at"),
            pl.lit(wh.rel(path)).alias("raw_file"),
        ).sort("date")
    return out
