"""Open-interest and funding frames for the leverage tests, in the clean tables' column types."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl


def oi_rows(levels: dict[tuple[str, str], dict[date, float]]) -> pl.DataFrame:
    """One reading per (venue, symbol) at 12:00 of each listed day."""
    rows = [
        (ex, sym, datetime(d.year, d.month, d.day, 12, tzinfo=UTC), v)
        for (ex, sym), by_day in levels.items()
        for d, v in by_day.items()
    ]
    schema = {
        "exchange": pl.String,
        "symbol": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "oi_usd": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def funding_frame(rows: list[tuple[str, str, datetime, float, int]]) -> pl.DataFrame:
    """(exchange, symbol, funding_time, funding_rate, interval_hours) tuples as a funding_rates frame."""
    schema = {
        "exchange": pl.String,
        "symbol": pl.String,
        "funding_time": pl.Datetime("us", "UTC"),
        "funding_rate": pl.Float64,
        "interval_hours": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
