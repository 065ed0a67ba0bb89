"""Venue symbols as the clean tables key them: OKX's instrument ids become the Binance-style pair."""

from __future__ import annotations

import polars as pl

from pipelines.clean.derivatives import normalize_symbol


def test_instrument_ids_become_pairs_and_pairs_stay() -> None:
    df = pl.DataFrame({"symbol": ["BTC-USDT-SWAP", "ETH-USDT", "BTCUSDT", "", "X-", None]})
    out = df.select(normalize_symbol(pl.col("symbol")))["symbol"].to_list()
    assert out == ["BTCUSDT", "ETHUSDT", "BTCUSDT", "", "X", None]
