"""FRED keyless CSV client (``fredgraph.csv``) and its parser.

Setting: ``FRED_BASE_URL`` (default ``https://fred.stlouisfed.org``). No key; no published rate limit, so the
client paces itself gently (default 20 calls a minute).

Series used by the report (units as FRED gives them): ``SP500`` and ``NASDAQCOM`` (index points, daily
close), ``DGS2`` and ``DGS10`` (percent), ``DEXJPUS`` (yen per USD), ``DTWEXBGS`` (broad dollar index),
``PAYEMS`` (monthly, SA, **thousands of persons**, a level: take the difference for the monthly change),
``UNRATE`` (monthly, percent; 2025-10 is missing because of the shutdown), ``IRLTLT01JPM156N`` (monthly Japan
10-year yield, percent), ``DTB3`` (3-month Treasury bill, secondary market, percent **on a discount basis**,
business days, holidays ``.``) and ``DFF`` (effective federal funds rate, percent, act/360, **every calendar
day**: weekends and holidays repeat the business day before). Monthly rows are dated the 1st of the month they
describe. ``DTB3`` against ``DFF`` gives the rate change bills price (``pipelines.metrics.macro``).

Gold: FRED no longer carries LBMA gold (``GOLDAMGBD228NLBM`` was removed), and no other daily USD gold series
was verified there. The gold proxy is **PAX Gold (``pax-gold``) from CoinGecko**: one token is redeemable for
one fine troy ounce, so its USD price tracks spot gold within a fraction of a percent. ``gold_proxy_daily``
turns a parsed CoinGecko chart into a daily series in this module's shape (series id ``GOLD_PAXG``).

Parser quirks: the date column is ``observation_date`` (``DATE`` before late 2024; both accepted); missing
values are ``.``, blank or ``NaN`` and become null, never 0.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from typing import Any

import polars as pl

from pipelines.sources.dedupe import unique_strict
from pipelines.sources.http import Fetched, PayloadError, SourceClient

BASE_URL = "https://fred.stlouisfed.org"
SERIES = (
    "SP500",
    "NASDAQCOM",
    "DGS2",
    "DGS10",
    "DEXJPUS",
    "DTWEXBGS",
    "PAYEMS",
    "UNRATE",
    "IRLTLT01JPM156N",
    "DTB3",
    "DFF",
)
GOLD_PROXY_ID = "GOLD_PAXG"
MISSING = {".", "", "NaN", "nan", "NA"}
SCHEMA = {"series_id": pl.String, "date": pl.Date, "value": pl.Float64}


class FredClient(SourceClient):
    def __init__(self, base_url: str = BASE_URL, calls_per_minute: float = 20, **http_options: Any):
        super().__init__(base_url, accept="text/csv", calls_per_minute=calls_per_minute, **http_options)

    def series_csv(self, series_id: str, start: date | None = None, end: date | None = None) -> Fetched:
        params: dict[str, Any] = {"id": series_id}
        if start:
            params["cosd"] = start.isoformat()
        if end:
            params["coed"] = end.isoformat()
        return self.http.get("/graph/fredgraph.csv", params, expect_json=False)


def parse_fredgraph_csv(text: str | bytes, endpoint: str = "/graph/fredgraph.csv") -> pl.DataFrame:
    """A ``fredgraph.csv`` body -> long frame ``series_id``, ``date`` (Date), ``value`` (Float64, null if missing).

    Several value columns (several ids) give several series. Raises ``PayloadError`` when the body is not a
    FRED CSV (an HTML page, a cut body, a non-date first column, a non-numeric value).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() not in ("observation_date", "date"):
        raise PayloadError(
            f"not a FRED CSV: first line {text[:60]!r}", endpoint=endpoint, params={}, status=200
        )
    ids = [h.strip() for h in rows[0][1:]]
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(ids) + 1:
            raise PayloadError(f"line {n} has {len(row)} cells", endpoint=endpoint, params={}, status=200)
        try:
            day = date.fromisoformat(row[0].strip())
        except ValueError:
            raise PayloadError(
                f"line {n}: bad date {row[0][:20]!r}", endpoint=endpoint, params={}, status=200
            ) from None
        for sid, cell in zip(ids, row[1:], strict=True):
            cell = cell.strip()
            if cell in MISSING:
                value = None
            else:
                try:
                    value = float(cell)
                except ValueError:
                    raise PayloadError(
                        f"line {n}: bad value {cell[:20]!r}", endpoint=endpoint, params={}, status=200
                    ) from None
                if not math.isfinite(value):
                    raise PayloadError(
                        f"line {n}: {sid} on {day} is {cell[:20]!r}, not a finite number",
                        endpoint=endpoint,
                        params={},
                        status=200,
                    )
            out.append({"series_id": sid, "date": day, "value": value})
    return unique_strict(pl.DataFrame(out, schema=SCHEMA), ["series_id", "date"], "FRED payload").sort(
        "series_id", "date"
    )


def gold_proxy_daily(chart: pl.DataFrame) -> pl.DataFrame:
    """A parsed CoinGecko ``pax-gold`` chart (``pipelines.sources.coingecko.parse_market_chart``: ``ts``,
    ``price``) -> ``series_id`` = ``GOLD_PAXG``, ``date``, ``value`` = last USD price of each UTC day."""
    return (
        chart.drop_nulls("price")
        .sort("ts")
        .group_by(pl.col("ts").dt.date().alias("date"))
        .agg(pl.col("price").last().alias("value"))
        .select(pl.lit(GOLD_PROXY_ID).alias("series_id"), "date", "value")
        .cast(SCHEMA)
        .sort("date")
    )
