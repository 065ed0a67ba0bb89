from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.metrics.sectors import IndexSpec, capped_weights, index_return, weekly_index_returns
from pipelines.schemas import WEEKLY_INDEX_RETURNS

mcaps = st.lists(st.floats(1e3, 1e12, allow_nan=False), min_size=1, max_size=60)


def test_capped_weights_hand_computed():
    w = capped_weights(np.array([70.0, 20.0, 10.0, 0.0]), cap=0.5)
    # 70% -> 50%, 20% excess split 2:1 over the rest
    assert w == pytest.approx([0.5, 0.5 * 2 / 3, 0.5 / 3, 0.0])
    # cascading: after capping the first, the second rises above the cap too
    w = capped_weights(np.array([60.0, 30.0, 5.0, 5.0]), cap=0.4)
    assert w == pytest.approx([0.4, 0.4, 0.1, 0.1])
    assert capped_weights(np.array([5.0, 1.0]), cap=0.25) == pytest.approx([0.5, 0.5])  # infeasible: equal


@settings(max_examples=200, deadline=None)
@given(mcaps, st.floats(0.02, 1.0))
def test_cap_never_exceeded_when_feasible(m, cap):
    w = capped_weights(np.array(m), cap)
    assert w.sum() == pytest.approx(1.0)
    assert (w >= 0).all()
    if len(m) * cap >= 1:
        assert w.max() <= cap + 1e-9
        # uncapped members keep market-cap proportions
        free = w < cap - 1e-9
        if free.sum() >= 2:
            ratio = w[free] / np.array(m)[free]
            assert ratio == pytest.approx(np.full(free.sum(), ratio[0]), rel=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.floats(1e-6, 1e6), st.floats(1e-6, 1e6), st.floats(1.0, 1e12), st.floats(0.01, 1.0))
def test_index_of_one_constituent_equals_constituent(p0, p1, m, cap):
    r, w = index_return(np.array([p0]), np.array([p1]), np.array([m]), cap)
    assert r == pytest.approx(p1 / p0 - 1)
    assert w.tolist() == [1.0]


def _daily(prices: dict[str, list[float]], mcap0: dict[str, float], start: date) -> pl.DataFrame:
    rows = []
    for cid, ps in prices.items():
        for i, p in enumerate(ps):
            if p is None:
                continue
            rows.append(
                {
                    "date": start + timedelta(days=i),
                    "coin_id": cid,
                    "symbol": cid,
                    "name": cid,
                    "price_usd": p,
                    "market_cap_usd": mcap0[cid] * p / ps[0],
                    "volume_24h_usd": 0.0,
                }
            )
    return pl.DataFrame(rows)


def test_weekly_index_returns_hand_computed_and_point_in_time():
    start = date(
        2025, 11, 9
    )  # prior week's open day; this week's open day is index 7 (11-16), close 14 (11-23)
    n = 22
    prices = {
        "l2a": [1.0] * 7 + [1.0] * 7 + [0.8] + [0.5] * (n - 15),
        "l2b": [1.0] * 7 + [1.0] * 7 + [1.1] + [3.0] * (n - 15),
        "meme": [1.0] * 7 + [1.0] * 3 + [2.0] + [None] * (n - 11),  # vanishes mid-week at 2.0
    }
    mc = {"l2a": 300.0, "l2b": 100.0, "meme": 50.0}
    cd = _daily(prices, mc, start)
    cats = pl.DataFrame(
        {"coin_id": ["l2a", "l2b", "meme"], "categories": [["layer-2"], ["layer-2"], ["meme-token"]]}
    )
    specs = (IndexSpec("l2", ("layer-2",)), IndexSpec("meme", ("meme-token",)), IndexSpec("top2", None, 1, 2))
    out = weekly_index_returns(cd, cats, ["l2a", "l2b", "meme"], "2025-11-17", specs, cap=0.6)
    WEEKLY_INDEX_RETURNS.conform(out)
    got = {r["index"]: r for r in out.iter_rows(named=True)}
    # l2: weights 0.75/0.25 capped to 0.6/0.4; returns -20% and +10%
    assert got["l2"]["return_pct"] == pytest.approx(100 * (0.6 * -0.2 + 0.4 * 0.1))
    assert got["l2"]["max_weight"] == pytest.approx(0.6)
    assert got["meme"]["return_pct"] == pytest.approx(100.0)  # last price of the week counts
    assert got["top2"]["constituents"] == 2
    assert got["l2"]["prev_return_pct"] == pytest.approx(0.0)
    cut = cd.filter(pl.col("date") <= date(2025, 11, 23))
    assert out.equals(weekly_index_returns(cut, cats, ["l2a", "l2b", "meme"], "2025-11-17", specs, cap=0.6))


def test_real_perps_single_constituent_index_and_capped_pair():
    from tests._metrics_real import real_file

    perps = pl.read_parquet(
        real_file("silertrades_gravestone_binance_perps/binance_usdm_perp_klines_1d_2025-01_2026-01.parquet")
    )
    px = perps.filter(pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"]))
    mc = {"BTCUSDT": 1.8e12, "ETHUSDT": 0.37e12}  # rough caps at the open; only the weight split matters
    cd = px.select(
        "date",
        pl.col("symbol").alias("coin_id"),
        pl.col("close").alias("price_usd"),
        (
            pl.col("close") * pl.col("symbol").replace_strict(mc) / pl.col("close").first().over("symbol")
        ).alias("market_cap_usd"),
    )
    cats = pl.DataFrame({"coin_id": ["BTCUSDT", "ETHUSDT"], "categories": [["layer-1"], ["layer-1", "x"]]})
    specs = (IndexSpec("btc_only", None, 1, 1), IndexSpec("pair", ("layer-1",)))
    out = {
        r["index"]: r
        for r in weekly_index_returns(
            cd, cats, ["BTCUSDT", "ETHUSDT"], "2025-11-17", specs, cap=0.6
        ).iter_rows(named=True)
    }

    def close(sym, d):
        return px.filter((pl.col("symbol") == sym) & (pl.col("date") == d))["close"][0]

    rb = close("BTCUSDT", date(2025, 11, 23)) / close("BTCUSDT", date(2025, 11, 16)) - 1
    re = close("ETHUSDT", date(2025, 11, 23)) / close("ETHUSDT", date(2025, 11, 16)) - 1
    assert out["btc_only"]["return_pct"] == pytest.approx(100 * rb)
    assert out["pair"]["max_weight"] == pytest.approx(0.6)  # BTC's ~80% share capped at 60%
    assert out["pair"]["return_pct"] == pytest.approx(100 * (0.6 * rb + 0.4 * re))
