"""Derivatives venues (Binance, Bybit, OKX): raw pulls and clean daily tables."""
