"""data.binance.vision bulk-archive client (zip + ``.CHECKSUM``) and the parsers of its CSVs.

Setting: ``BINANCE_VISION_BASE_URL`` (default ``https://data.binance.vision``).

Every download is verified: the client fetches ``<zip>.CHECKSUM`` (``sha256sum`` format, ``<hex>␠␠<name>``),
checks that it names the same file, and compares the SHA-256 of the zip bytes; a mismatch raises
``ChecksumError`` (files are sometimes replaced upstream: retry later rather than keep a bad copy). A missing
file (404: whole days are missing for some symbols, and recent days are not published yet) returns ``None``.

Archive quirks (``shared/reference/market-apis.md`` section 3): ``fundingRate`` is monthly only and ``metrics``
daily only; ``metrics.create_time`` is text ``YYYY-MM-DD HH:MM:SS`` (UTC), its ratio cells can be blank; klines
CSVs have a header only in newer files (sniffed, not assumed); spot files from 2025 carry µs timestamps
(normalised by digit count: 13 digits ms, 16 digits µs).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Sequence
from datetime import date
from typing import Any

import polars as pl

from pipelines.sources.binance import FUNDING_SCHEMA, KLINE_SCHEMA, UTC_MS
from pipelines.sources.dedupe import PAGE, ConflictingDuplicates, page_numbers, unique_strict
from pipelines.sources.http import PayloadError, SourceClient, SourceError

BASE_URL = "https://data.binance.vision"
METRICS_COLUMNS = (
    "create_time",
    "symbol",
    "sum_open_interest",
    "sum_open_interest_value",
    "count_toptrader_long_short_ratio",
    "sum_toptrader_long_short_ratio",
    "count_long_short_ratio",
    "sum_taker_long_short_vol_ratio",
)
FUNDING_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")
KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
_CHECKSUM = re.compile(r"^([0-9a-f]{64})  (\S+)\s*$")


class ChecksumError(SourceError):
    """The archive file does not match its ``.CHECKSUM``."""


class BinanceVisionClient(SourceClient):
    def __init__(self, base_url: str = BASE_URL, calls_per_minute: float = 0, **http_options: Any):
        super().__init__(base_url, accept=None, calls_per_minute=calls_per_minute, **http_options)

    def fetch_verified(self, path: str) -> bytes | None:
        """The zip at ``path`` (below the base URL), checked against its ``.CHECKSUM``; None when 404."""
        try:
            blob = self.http.get(path, expect_json=False).body
            line = self.http.get(path + ".CHECKSUM", expect_json=False).body.decode("ascii", errors="replace")
        except SourceError as exc:
            if exc.status == 404:
                return None
            raise
        m = _CHECKSUM.match(line.strip("\r\n") + "\n" if line else "")
        name = path.rsplit("/", 1)[1]
        if not m:
            raise PayloadError(
                f"unreadable .CHECKSUM line {line[:90]!r}", endpoint=path + ".CHECKSUM", params={}, status=200
            )
        if m.group(2) != name:
            raise ChecksumError(
                f".CHECKSUM names {m.group(2)!r}, not {name!r}", endpoint=path, params={}, status=200
            )
        actual = hashlib.sha256(blob).hexdigest()
        if actual != m.group(1):
            raise ChecksumError(
                f"sha256 mismatch: file {actual}, .CHECKSUM {m.group(1)}",
                endpoint=path,
                params={},
                status=200,
            )
        return blob

    def metrics_day(self, symbol: str, day: date) -> bytes | None:
        return self.fetch_verified(
            f"/data/futures/um/daily/metrics/{symbol}/{symbol}-metrics-{day.isoformat()}.zip"
        )

    def funding_month(self, symbol: str, year: int, month: int) -> bytes | None:
        return self.fetch_verified(
            f"/data/futures/um/monthly/fundingRate/{symbol}/{symbol}-fundingRate-{year:04d}-{month:02d}.zip"
        )

    def klines_day(self, symbol: str, interval: str, day: date) -> bytes | None:
        return self.fetch_verified(
            f"/data/futures/um/daily/klines/{symbol}/{interval}/{symbol}-{interval}-{day.isoformat()}.zip"
        )


# ---- parsers ------------------------------------------------------------------------------------------------
def _drift(msg: str, what: str) -> PayloadError:
    return PayloadError(msg, endpoint=what, params={}, status=200)


def read_zip_csv(blob: bytes) -> str:
    """The one CSV inside an archive zip, as text."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".csv")]
            if len(names) != 1:
                raise _drift(f"expected one CSV in the zip, found {names}", "zip")
            return zf.read(names[0]).decode("utf-8")
    except zipfile.BadZipFile as exc:
        raise _drift(f"not a zip file ({exc})", "zip") from exc


def _table(text: str, columns: tuple[str, ...], what: str, header_optional: bool = False) -> list[list[str]]:
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        return []
    first = [c.strip() for c in rows[0]]
    if first[: len(columns)] == list(columns):
        rows = rows[1:]
    elif not header_optional:
        raise _drift(f"unexpected header {first[:4]}", what)
    elif not first[0].isdigit():
        raise _drift(f"unexpected first line {first[:4]}", what)
    for r in rows:
        if len(r) != len(columns):
            raise _drift(f"row has {len(r)} cells, expected {len(columns)}", what)
    return rows


def _float(cell: str, what: str) -> float | None:
    cell = cell.strip()
    if cell == "":
        return None
    try:
        return float(cell)
    except ValueError:
        raise _drift(f"not a number: {cell[:30]!r}", what) from None


def epoch_ms(cell: str, what: str) -> int:
    """13-digit ms or 16-digit µs (spot files from 2025) -> ms."""
    cell = cell.strip()
    if not cell.isdigit():
        raise _drift(f"not an epoch timestamp: {cell[:30]!r}", what)
    v = int(cell)
    return v // 1000 if len(cell) >= 16 else v


METRICS_SCHEMA = {
    "symbol": pl.String,
    "ts": pl.String,
    "oi_base": pl.Float64,
    "oi_usd": pl.Float64,
    "top_account_ratio": pl.Float64,
    "top_position_ratio": pl.Float64,
    "long_short_ratio": pl.Float64,
    "taker_buy_sell_ratio": pl.Float64,
}
# the archive's column -> ours (create_time and symbol first, then the six numbers in METRICS_SCHEMA's order)
_METRICS_NUMBERS = dict(zip(METRICS_COLUMNS[2:], list(METRICS_SCHEMA)[2:], strict=True))


def _metrics_columns(texts: Sequence[str]) -> pl.DataFrame | None:
    """The files read column-wise by polars' CSV reader, in one read, each row with its file's place in ``texts``
    (``PAGE``); None when anything about any of them is not the plain case (no exact header, a ragged row, a cell
    that is not a number), which the row-by-row reader then names."""
    header = ",".join(METRICS_COLUMNS) + "\n"
    bodies, counts = [], []
    for text in texts:
        lines = text.count("\n") + (not text.endswith("\n"))
        if not text.startswith(header):
            return None
        # a ragged row, a quoted comma, a blank line
        if text.count(",") != (len(METRICS_COLUMNS) - 1) * lines:
            return None
        body = text[len(header) :]
        bodies.append(body if body.endswith("\n") or not body else body + "\n")
        counts.append(lines - 1)
    try:  # a cell that is not a number (a space around it included) fails the read; so does no row at all
        df = pl.read_csv(
            io.StringIO("".join(bodies)),
            schema={c: pl.String if i < 2 else pl.Float64 for i, c in enumerate(METRICS_COLUMNS)},
            has_header=False,
        )
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if df.height != sum(counts):
        return None
    return df.select(
        pl.col("symbol"),
        pl.col("create_time").alias("ts"),
        *(pl.col(theirs).alias(ours) for theirs, ours in _METRICS_NUMBERS.items()),
        page_numbers(counts),
    )


def _metrics_rows(text: str) -> pl.DataFrame:
    """The file read row by row, naming the header, row or cell that is not of the documented shape."""
    out = []
    for r in _table(text, METRICS_COLUMNS, "metrics"):
        out.append(
            {
                "symbol": r[1],
                "ts": r[0].strip(),
                **{ours: _float(r[i], "metrics") for i, ours in enumerate(_METRICS_NUMBERS.values(), 2)},
            }
        )
    return pl.DataFrame(out, schema=METRICS_SCHEMA)


def _metrics_typed(df: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """``create_time``'s text as UTC times, each ``key`` once (identical rows dropped, conflicting ones refused),
    sorted by ``key``."""
    try:
        df = df.with_columns(
            pl.col("ts").str.strptime(pl.Datetime("ms"), "%Y-%m-%d %H:%M:%S").dt.replace_time_zone("UTC")
        )
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError) as exc:
        raise _drift(f"create_time is not 'YYYY-MM-DD HH:MM:SS' ({exc})", "metrics") from exc
    return unique_strict(df, key, "Binance archive payload").sort(key)


def parse_metrics_csv(text: str) -> pl.DataFrame:
    """A daily ``metrics`` CSV -> symbol, ts (UTC, from the text ``create_time``), ``oi_base`` (coins),
    ``oi_usd`` (USDT), ``top_account_ratio``, ``top_position_ratio``, ``long_short_ratio`` (global accounts,
    long/short), ``taker_buy_sell_ratio``; blank cells are null.

    Read column-wise (about 290 rows a file, tens of thousands of files in a backfill); a file that is not the
    plain case is read row by row, which names the header, row or cell at fault (``PayloadError``)."""
    df = _metrics_columns([text])
    return _metrics_typed(_metrics_rows(text) if df is None else df.drop(PAGE), ["symbol", "ts"])


def parse_metrics_csvs(texts: Sequence[str]) -> pl.DataFrame:
    """Daily ``metrics`` CSVs parsed together: each file's ``parse_metrics_csv`` rows, one file after another, with
    ``PAGE`` (the file's place in ``texts``) last. A backfill reads a file per perpetual and day (1,200 for 40
    perpetuals since 2025), and the per-file cost of the CSV reader, the time parse and the key check was most of
    reading them: here their rows are read, parsed and checked once (keys unique within each file, as each file
    alone is checked). When a file is not the plain case, its times do not parse or a key repeats within it,
    every file is parsed alone, which names the fault."""
    df = _metrics_columns(texts)
    if df is not None:
        try:
            return _metrics_typed(df, [PAGE, "symbol", "ts"])
        except (PayloadError, ConflictingDuplicates):
            pass  # named below, in the file's own terms
    frames = [
        parse_metrics_csv(t).with_columns(pl.lit(i, pl.UInt32).alias(PAGE)) for i, t in enumerate(texts)
    ]
    if frames:
        return pl.concat(frames)
    return pl.DataFrame(schema={**METRICS_SCHEMA, "ts": pl.Datetime("ms", "UTC"), PAGE: pl.UInt32})


def parse_funding_csv(text: str, symbol: str) -> pl.DataFrame:
    """A monthly ``fundingRate`` CSV -> the same frame as ``binance.parse_funding_rates`` (venue ``binance``),
    with ``interval_hours`` from the file's own column; ``funding_time`` floored to the hour."""
    out = []
    for r in _table(text, FUNDING_COLUMNS, "fundingRate"):
        t = epoch_ms(r[0], "fundingRate")
        hours = r[1].strip()
        if not hours.isdigit():
            raise _drift(f"funding_interval_hours {hours!r}", "fundingRate")
        out.append(
            {
                "venue": "binance",
                "symbol": symbol,
                "base": symbol[:-4] if symbol.endswith("USDT") else symbol,
                "funding_time": t - t % 3_600_000,
                "funding_rate": _float(r[2], "fundingRate"),
                "interval_hours": int(hours),
                "mark_price": None,
            }
        )
    df = pl.DataFrame(out, schema={**FUNDING_SCHEMA, "funding_time": pl.Int64})
    return unique_strict(
        df.with_columns(pl.col("funding_time").cast(UTC_MS)),
        "funding_time",
        "Binance archive " + "funding_time",
    ).sort("funding_time")


def parse_klines_csv(text: str) -> pl.DataFrame:
    """A klines CSV (header or not) -> the frame of ``binance.parse_klines`` (times normalised to ms, UTC)."""
    out = []
    for r in _table(text, KLINE_COLUMNS, "klines", header_optional=True):
        out.append(
            (
                epoch_ms(r[0], "klines"),
                *(_float(r[k], "klines") for k in range(1, 6)),
                epoch_ms(r[6], "klines"),
                _float(r[7], "klines"),
                int(r[8]),
                _float(r[9], "klines"),
                _float(r[10], "klines"),
            )
        )
    schema = {**KLINE_SCHEMA, "open_time": pl.Int64, "close_time": pl.Int64}
    df = pl.DataFrame(out, schema=schema, orient="row").with_columns(
        pl.col("open_time", "close_time").cast(UTC_MS)
    )
    return unique_strict(df, "open_time", "Binance archive " + "open_time").sort("open_time")
