"""Bybit v5 client (linear perpetuals) and the parsers of its payloads.

Setting: ``BYBIT_BASE_URL`` (default ``https://api.bybit.com``). No key is needed.

Quirks handled (``shared/reference/market-apis.md`` section 4.1):

* errors arrive as a non-zero ``retCode`` (often with HTTP 200): ``SourceError`` with the code and message;
* rows come **newest first**; numbers and ms timestamps are strings;
* funding history: sending only ``startTime`` is an error, so the client always sends both ends and pages
  backward with ``endTime = oldest fundingRateTimestamp - 1`` (≤200 rows a page);
* open interest: cursor pagination through ``nextPageCursor`` (``""`` at the end), ≤200 rows a page;
  ``openInterest`` is in the **base coin** for linear contracts: ``attach_usd`` converts with a price frame;
* the IP limit (600 requests / 5 s) answers HTTP 403 "access too frequent": not retried here (the doc says wait
  10 minutes or more), it surfaces as ``SourceError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import polars as pl

from pipelines.sources.binance import OI_SCHEMA, UTC_MS, ms, settlements
from pipelines.sources.dedupe import PAGE, PAGE_SCHEMA, page_numbers, paged, unique_strict
from pipelines.sources.http import Fetched, PayloadError, SourceClient, SourceError

BASE_URL = "https://api.bybit.com"
PAGE_LIMIT = 200


class BybitClient(SourceClient):
    def _get(self, endpoint: str, params: dict[str, Any]) -> tuple[Fetched, dict]:
        fetched = self.http.get(endpoint, params)
        body = fetched.json()
        if not isinstance(body, dict) or "retCode" not in body:
            raise fetched.error("not a Bybit v5 envelope", body=fetched.text)
        if body["retCode"] != 0:
            raise fetched.error(
                f"Bybit retCode {body['retCode']} ({body.get('retMsg')})", SourceError, body=fetched.text
            )
        result = body.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("list"), list):
            raise fetched.error("result.list missing")
        return fetched, result

    def funding_history_pages(self, symbol: str, start: datetime, end: datetime) -> Iterator[Fetched]:
        """Settlements in [start, end], newest page first."""
        lo, hi = ms(start), ms(end)
        while hi >= lo:
            params = {
                "category": "linear",
                "symbol": symbol,
                "startTime": lo,
                "endTime": hi,
                "limit": PAGE_LIMIT,
            }
            fetched, result = self._get("/v5/market/funding/history", params)
            yield fetched
            rows = result["list"]
            if not rows:
                return
            oldest = fetched.oldest_ms(rows, "fundingRateTimestamp")
            if oldest > hi:
                raise fetched.error("page not older than endTime")
            hi = oldest - 1

    def open_interest_pages(
        self, symbol: str, interval: str, start: datetime, end: datetime
    ) -> Iterator[Fetched]:
        """``intervalTime`` one of 5min,15min,30min,1h,4h,1d; pages follow ``nextPageCursor``."""
        cursor = ""
        while True:
            params: dict[str, Any] = {
                "category": "linear",
                "symbol": symbol,
                "intervalTime": interval,
                "startTime": ms(start),
                "endTime": ms(end),
                "limit": PAGE_LIMIT,
            }
            if cursor:
                params["cursor"] = cursor
            fetched, result = self._get("/v5/market/open-interest", params)
            yield fetched
            nxt = result.get("nextPageCursor", "")
            if not isinstance(nxt, str):
                raise fetched.error("nextPageCursor not a string")
            if not nxt or not result["list"] or nxt == cursor:
                return
            cursor = nxt


def _drift(msg: str, endpoint: str) -> PayloadError:
    return PayloadError(msg, endpoint=endpoint, params={}, status=200)


def _list(body: Any, endpoint: str, keys: tuple[str, ...]) -> list[dict]:
    if not isinstance(body, dict) or body.get("retCode") != 0:
        raise _drift("not a successful Bybit envelope", endpoint)
    rows = body.get("result", {}).get("list") if isinstance(body.get("result"), dict) else None
    if not isinstance(rows, list):
        raise _drift("result.list missing", endpoint)
    for r in rows:
        if not isinstance(r, dict) or any(not isinstance(r.get(k), str) for k in keys):
            raise _drift(f"row lacks string fields {keys}: {str(r)[:100]}", endpoint)
    return rows


def _f(v: str, endpoint: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise _drift(f"not a decimal: {v[:40]!r}", endpoint) from None


def _i(v: str, endpoint: str) -> int:
    if not v.isdigit():
        raise _drift(f"not an epoch-ms string: {v[:40]!r}", endpoint)
    return int(v)


def parse_funding_history(
    bodies: list[Any], endpoint: str = "/v5/market/funding/history", *, page_index: bool = False
) -> pl.DataFrame:
    """Envelopes -> venue, symbol, base, funding_time (UTC), funding_rate (fraction per interval),
    interval_hours (inferred), mark_price (null: Bybit does not send it), ascending. ``page_index``: see
    ``dedupe.PAGE``."""
    out = []
    for i, body in enumerate(bodies):
        for r in _list(body, endpoint, ("symbol", "fundingRate", "fundingRateTimestamp")):
            t = _i(r["fundingRateTimestamp"], endpoint)
            sym = r["symbol"]
            out.append(
                (sym, sym[:-4] if sym.endswith("USDT") else sym, t, _f(r["fundingRate"], endpoint), None, i)
            )
    return settlements("bybit", out, "Bybit payload", page_index)


def parse_open_interest(
    bodies: list[Any], endpoint: str = "/v5/market/open-interest", *, page_index: bool = False
) -> pl.DataFrame:
    """Envelopes -> venue, symbol, base, ts (UTC), ``oi_base`` (coins, both sides), ``oi_usd`` null until
    ``attach_usd``; ascending. ``page_index``: see ``dedupe.PAGE``."""
    df = _open_interest_columns(bodies)
    if df is None:
        df = _open_interest_rows(bodies, endpoint)
    df = df.with_columns(pl.col("ts").cast(UTC_MS))
    df = unique_strict(df, ["symbol", "ts"], "Bybit payload", ignore=(PAGE,)).sort("symbol", "ts")
    return df.select(paged(list(OI_SCHEMA), page_index))


_OI_COLUMNS = {**OI_SCHEMA, "ts": pl.Int64} | PAGE_SCHEMA


def _open_interest_columns(bodies: list[Any]) -> pl.DataFrame | None:
    """The readings converted a column at a time when every envelope and row has the documented shape (a
    successful envelope with a string symbol, rows of an epoch-ms string ``timestamp`` and a decimal string
    ``openInterest``); None otherwise, and ``_open_interest_rows`` then checks row by row, naming the first problem.
    A backfill parses about 170,000 readings (4-hourly) and a week's run hourly ones: one Python dict per row was
    most of building ``open_interest``."""
    symbols, counts, stamps, amounts = [], [], [], []
    for body in bodies:
        result = body.get("result") if isinstance(body, dict) and body.get("retCode") == 0 else None
        if not isinstance(result, dict):
            return None
        rows, symbol = result.get("list"), result.get("symbol")
        if not isinstance(rows, list) or not isinstance(symbol, str) or not set(map(type, rows)) <= {dict}:
            return None
        try:
            stamps += [r["timestamp"] for r in rows]
            amounts += [r["openInterest"] for r in rows]
        except KeyError:
            return None
        symbols.append(symbol)
        counts.append(len(rows))
    if not set(map(type, stamps)) <= {str} or not set(map(type, amounts)) <= {str}:
        return None
    ts = pl.Series("ts", stamps, dtype=pl.String)
    if not ts.str.contains(r"^[0-9]+$").all():
        return None
    try:
        columns = {
            "ts": ts.cast(pl.Int64, strict=True),
            "oi_base": pl.Series("oi_base", amounts, dtype=pl.String).cast(pl.Float64, strict=True),
        }
    except pl.exceptions.InvalidOperationError:
        return None
    page = page_numbers(counts)
    sym = pl.col("symbol")
    return (
        pl.DataFrame(
            [
                pl.Series("symbol", symbols, dtype=pl.String).gather(page),
                columns["ts"],
                columns["oi_base"],
                page,
            ]
        )
        .select(
            pl.lit("bybit").alias("venue"),
            sym,
            pl.when(sym.str.ends_with("USDT")).then(sym.str.head(-4)).otherwise(sym).alias("base"),
            "ts",
            "oi_base",
            pl.lit(None).alias("oi_usd"),
            PAGE,
        )
        .select(pl.col(name).cast(dtype) for name, dtype in _OI_COLUMNS.items())
    )


def _open_interest_rows(bodies: list[Any], endpoint: str) -> pl.DataFrame:
    out = []
    for i, body in enumerate(bodies):
        rows = _list(body, endpoint, ("openInterest", "timestamp"))
        sym = body["result"].get("symbol")
        if not isinstance(sym, str):
            raise _drift("result.symbol missing", endpoint)
        for r in rows:
            out.append(
                {
                    "venue": "bybit",
                    "symbol": sym,
                    "base": sym[:-4] if sym.endswith("USDT") else sym,
                    "ts": _i(r["timestamp"], endpoint),
                    "oi_base": _f(r["openInterest"], endpoint),
                    "oi_usd": None,
                    PAGE: i,
                }
            )
    return pl.DataFrame(out, schema=_OI_COLUMNS)


def attach_usd(oi: pl.DataFrame, prices: pl.DataFrame) -> pl.DataFrame:
    """Fill ``oi_usd = oi_base × price`` using ``prices`` (columns ``base``, ``ts`` UTC, ``price`` USD), taking
    the latest price at or before each OI timestamp (e.g. hourly closes from Binance klines)."""
    joined = oi.sort("base", "ts").join_asof(
        prices.select("base", "ts", "price").sort("base", "ts"),
        on="ts",
        by="base",
        strategy="backward",
        check_sortedness=False,
    )
    return (
        joined.with_columns((pl.col("oi_base") * pl.col("price")).alias("oi_usd"))
        .select(list(OI_SCHEMA))
        .sort("symbol", "ts")
    )
