"""The benchmark's synthetic market: a longer history only adds older days."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from bench import synth


def test_two_histories_ending_on_one_day_hold_the_same_rows_on_the_days_both_have() -> None:
    """The history phase compares one new week behind 20 and behind 300 weeks of history: it must be the same
    week of the same market (the same prices, caps and missing days), or the comparison measures two markets."""
    last = date(2026, 11, 29)
    short = synth.coin_daily(30, last - timedelta(days=20), last)
    long = synth.coin_daily(30, last - timedelta(days=400), last)
    assert short.height > 0 and long.height > short.height
    assert long.filter(pl.col("date") >= short["date"].min()).equals(short)
    caps = short.filter(pl.col("date") == last).sort("market_cap_usd", descending=True)["market_cap_usd"]
    assert abs(caps[0] / 1e12 - 1) < 1e-12  # the newest day's caps are fixed: 1e12 / rank^1.2
