"""The synthetic derivatives model: OI levels through 2025's rally and sell-off, funding regimes, determinism."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from pipelines.emulator.derivatives import N_PERPS, VENUES, build_derivatives
from pipelines.emulator.market import build_market, hour_index

UTC = UTC


def h(*args: int) -> int:
    return hour_index(datetime(*args, tzinfo=UTC))


def test_universe():
    d = build_derivatives()
    m = build_market()
    assert len(d.symbols) == N_PERPS >= 40 and len(set(d.symbols)) == N_PERPS
    assert d.symbols[:2] == ["BTCUSDT", "ETHUSDT"]
    assert all(m.coins[i].kind == "free" for i in d.coin_idx)
    assert {int(x) for x in d.intervals["binance"]} == {1, 4, 8}
    assert set(d.intervals["okx"]) <= {4, 8}


def test_total_open_interest_path():
    d = build_derivatives()
    early_oct = np.mean([d.total_oi(x) for x in range(h(2025, 10, 3), h(2025, 10, 8))])
    late_nov = np.mean([d.total_oi(x) for x in range(h(2025, 11, 24), h(2025, 11, 29))])
    assert 215e9 < early_oct < 245e9
    assert 125e9 < late_nov < 145e9
    before, after = d.total_oi(h(2025, 10, 10, 18)), d.total_oi(h(2025, 10, 11, 6))
    assert after < 0.8 * before  # the 10-11 October liquidation cascade
    shares = [np.nansum(d.oi_usd[v][h(2025, 10, 6)]) / d.total_oi(h(2025, 10, 6)) for v in VENUES]
    assert all(0.2 < s < 0.5 for s in shares)


def test_funding_regimes():
    d = build_derivatives()
    week = slice(h(2025, 11, 17), h(2025, 11, 24))
    for v in VENUES:
        assert d.f8[v][week].mean() < 0
    rally = slice(h(2025, 7, 7), h(2025, 7, 14))
    assert 0.00005 < d.f8["binance"][rally].mean() < 0.0003
    rates = [r for _, r in d.settlements("binance", 0, h(2025, 11, 17), h(2025, 11, 24) - 1)]
    assert len(rates) == 21 and np.mean(rates) < 0


def test_deterministic_per_seed():
    a = build_derivatives()
    build_derivatives.cache_clear()
    b = build_derivatives()
    assert np.array_equal(a.f8["okx"], b.f8["okx"]) and np.array_equal(a.oi_usd["bybit"], b.oi_usd["bybit"])
