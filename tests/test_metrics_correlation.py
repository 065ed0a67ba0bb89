import time
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipelines.metrics.correlation import log_return_matrix, pairwise_corr, weekly_correlation_buckets
from pipelines.schemas import WEEKLY_CORRELATION_BUCKETS


def test_matches_numpy_corrcoef_on_complete_data():
    rng = np.random.default_rng(1)
    r = rng.normal(size=(30, 12)) @ rng.normal(size=(12, 12))
    assert pairwise_corr(r, min_overlap=20) == pytest.approx(np.corrcoef(r, rowvar=False), abs=1e-10)


def test_pairwise_complete_with_gaps_and_min_overlap():
    rng = np.random.default_rng(2)
    r = rng.normal(size=(30, 4))
    r[:5, 0] = np.nan
    r[:15, 3] = np.nan  # only 15 days: below min_overlap=20
    c = pairwise_corr(r, min_overlap=20, block=3)
    both = np.isfinite(r[:, 0]) & np.isfinite(r[:, 1])
    assert c[0, 1] == pytest.approx(np.corrcoef(r[both, 0], r[both, 1])[0, 1], abs=1e-10)
    assert np.isnan(c[3]).all() and np.isnan(c[:, 3]).all()
    r[:, 2] = 0.01  # constant: undefined correlation
    assert np.isnan(pairwise_corr(r)[2]).all()


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(3, 40), st.integers(1, 8)),
        elements=st.one_of(st.floats(-0.5, 0.5), st.just(np.nan)),
    )
)
def test_symmetric_unit_diagonal_bounded(r):
    c = pairwise_corr(r, min_overlap=2, block=3)
    assert np.array_equal(np.isnan(c), np.isnan(c.T))
    assert np.allclose(c, c.T, equal_nan=True)
    fin = c[np.isfinite(c)]
    assert ((fin >= -1) & (fin <= 1)).all()
    d = np.diag(c)
    assert ((d == 1) | np.isnan(d)).all()


def test_scales_to_5000_coins():
    rng = np.random.default_rng(3)
    r = rng.normal(size=(30, 5000))
    r[rng.random(r.shape) < 0.05] = np.nan
    t = time.perf_counter()
    c = pairwise_corr(r, min_overlap=20)
    assert time.perf_counter() - t < 60
    assert c.shape == (5000, 5000)
    j = 4321
    both = np.isfinite(r[:, 7]) & np.isfinite(r[:, j])
    assert c[7, j] == pytest.approx(np.corrcoef(r[both, 7], r[both, j])[0, 1], abs=1e-9)


def _panel(n_coins: int, days: int, end: date, seed: int = 0, decouple_from: date | None = None):
    """Coins 0..9 follow a common factor; later coins are noise. Market caps fall with the index."""
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 0.03, days)
    rows = []
    start = end - timedelta(days=days - 1)
    logp = np.zeros(n_coins)
    for t in range(days):
        d = start + timedelta(days=t)
        for i in range(n_coins):
            beta = 1.0 if i < 10 else 0.3
            if decouple_from and d >= decouple_from and i >= 10:
                beta = 0.0
            logp[i] += beta * f[t] + rng.normal(0, 0.005 if i < 10 else 0.03)
            cid = "bitcoin" if i == 0 else f"c{i:03d}"
            rows.append(
                {
                    "date": d,
                    "coin_id": cid,
                    "price_usd": float(np.exp(logp[i])),
                    "market_cap_usd": float(1e12 / (i + 1) * np.exp(logp[i])),
                    "symbol": cid,
                    "name": cid,
                }
            )
    return pl.DataFrame(rows)


def test_log_return_matrix_day_gap_gives_nan():
    cd = pl.DataFrame(
        {
            "date": [date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 4)],
            "coin_id": ["a"] * 3,
            "price_usd": [1.0, 2.0, 4.0],
        }
    )
    r = log_return_matrix(cd, ["a", "zz"], date(2025, 1, 4), window_days=3)
    assert r[0, 0] == pytest.approx(np.log(2)) and np.isnan(r[1:, 0]).all() and np.isnan(r[:, 1]).all()


def test_buckets_on_factor_panel_and_point_in_time():
    end = date(2025, 11, 23)
    cd = _panel(60, 80, end + timedelta(days=10), decouple_from=date(2025, 11, 10))
    ids = cd["coin_id"].unique().to_list()
    buckets = (("1-10", 1, 10), ("11-50", 11, 50), ("51-100", 51, 100))
    out = weekly_correlation_buckets(cd, ids, "2025-11-17", buckets=buckets, window_days=14, min_overlap=10)
    WEEKLY_CORRELATION_BUCKETS.conform(out)
    got = {r["bucket"]: r for r in out.iter_rows(named=True)}
    assert got["1-10"]["coins"] == 10 and got["11-50"]["coins"] == 40 and got["51-100"]["coins"] == 10
    assert got["1-10"]["avg_pairwise_corr"] > 0.8 > got["11-50"]["avg_pairwise_corr"]
    assert got["11-50"]["avg_corr_to_btc"] < 0.3
    assert got["11-50"]["decoupling"] is True and got["1-10"]["decoupling"] is False
    # equal-weight return of the top bucket, recomputed directly
    o = cd.filter(pl.col("date") == date(2025, 11, 16)).sort("market_cap_usd", descending=True).head(10)
    c = cd.filter(pl.col("date") == end).join(
        o.select("coin_id", pl.col("price_usd").alias("p0")), on="coin_id"
    )
    assert got["1-10"]["ew_return_pct"] == pytest.approx(100 * (c["price_usd"] / c["p0"] - 1).mean())
    cut = cd.filter(pl.col("date") <= end)
    again = weekly_correlation_buckets(
        cut, ids, "2025-11-17", buckets=buckets, window_days=14, min_overlap=10
    )
    assert out.equals(again)


def test_a_range_of_weeks_computes_each_weeks_stats_once_with_the_same_rows():
    """With ``once`` (a range over one snapshot), each week's bucket stats are built once, not as its own week
    and again as each of the next four weeks' past; every week's rows are those it gets alone, from a frame
    holding only its own span; a frame that does not hold a week's window computes it itself."""
    from pipelines.metrics import correlation

    cd = _panel(60, 150, date(2025, 12, 28), seed=3, decouple_from=date(2025, 11, 10))
    ids = cd["coin_id"].unique().to_list()
    weeks = [f"2025-{m}" for m in ("11-03", "11-10", "11-17", "11-24", "12-01", "12-08", "12-15", "12-22")]
    kw = {"window_days": 14, "min_overlap": 10, "lookback_weeks": 4}
    store: dict = {}
    builds: list = []

    def once(key, build):
        if key not in store:
            builds.append(key[1])
            store[key] = build()
        return store[key]

    for week in weeks:
        # the frame a week gets alone: its lookback and window, up to its close
        close = correlation.week_window(week).close_day
        alone = cd.filter(pl.col("date").is_between(close - timedelta(days=7 * 4 + 14 + 1), close))
        ranged = weekly_correlation_buckets(cd, ids, week, once=once, **kw)
        assert ranged.equals(weekly_correlation_buckets(alone, ids, week, **kw)), week
    assert len(builds) == len(set(builds)) == len(weeks) + 4
    # another membership is another key: nothing shared across different eligible coins
    weekly_correlation_buckets(cd, ids[:-1], weeks[-1], once=once, **kw)
    assert len(builds) == len(weeks) + 4 + 5
    # a frame starting after a past week's window start: that week computed from it, not taken from the store
    short = cd.filter(pl.col("date") >= date(2025, 12, 10))
    before = len(store)
    weekly_correlation_buckets(short, ids, weeks[-1], once=once, **kw)
    assert len(store) == before


def test_real_binance_perps_correlation_and_bucket_return():
    from tests._metrics_real import real_file

    path = real_file(
        "silertrades_gravestone_binance_perps/binance_usdm_perp_klines_1d_2025-01_2026-01.parquet"
    )
    perps = pl.read_parquet(path)
    syms = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT", "ADAUSDT", "LINKUSDT"]
    px = perps.filter(pl.col("symbol").is_in(syms))
    # rank by quote volume over the 30 days before the open as a market-cap stand-in (no caps in this file)
    size = (
        px.filter(pl.col("date").is_between(date(2025, 10, 17), date(2025, 11, 16)))
        .group_by("symbol")
        .agg(pl.col("quote_volume").sum())
    )
    cd = px.join(size.rename({"quote_volume": "market_cap_usd"}), on="symbol").select(
        "date", pl.col("symbol").alias("coin_id"), pl.col("close").alias("price_usd"), "market_cap_usd"
    )
    end = date(2025, 11, 23)
    r = log_return_matrix(cd, syms, end, window_days=30)
    assert np.isfinite(r).all()
    # independent: closes as a plain numpy array from the file, one column per symbol
    wide = (
        px.filter(pl.col("date").is_between(end - timedelta(days=30), end))
        .pivot(on="symbol", index="date", values="close")
        .sort("date")
    )
    lr = np.diff(np.log(wide.select(syms).to_numpy()), axis=0)
    assert pairwise_corr(r) == pytest.approx(np.corrcoef(lr, rowvar=False), abs=1e-10)
    c = pairwise_corr(r)
    assert c[0, 1] > 0.7  # BTC and ETH move together over a month

    out = weekly_correlation_buckets(
        cd, syms, "2025-11-17", buckets=(("1-4", 1, 4), ("5-8", 5, 8)), btc_id="BTCUSDT", lookback_weeks=2
    )
    top = size.sort("quote_volume", descending=True).head(4)["symbol"].to_list()
    p0 = px.filter((pl.col("date") == date(2025, 11, 16)) & pl.col("symbol").is_in(top)).sort("symbol")[
        "close"
    ]
    p1 = px.filter((pl.col("date") == end) & pl.col("symbol").is_in(top)).sort("symbol")["close"]
    row = out.filter(pl.col("bucket") == "1-4").row(0, named=True)
    assert row["ew_return_pct"] == pytest.approx(100 * float((p1 / p0 - 1).mean()))
    assert row["ew_return_pct"] < 0  # the sell-off week
