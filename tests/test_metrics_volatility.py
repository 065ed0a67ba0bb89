import csv
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.metrics.volatility import weekly_btc_volatility
from pipelines.schemas import WEEKLY_BTC_VOLATILITY
from tests._metrics_real import real_file

T0 = datetime(2025, 10, 1, tzinfo=UTC)


def hourly(closes):
    return pl.DataFrame({"ts": [T0 + timedelta(hours=i) for i in range(len(closes))], "close": closes})


def test_alternating_returns_hand_computed():
    # log returns alternate +a, -a: sample std = a * sqrt(n/(n-1)) with n = 168 in the week's window
    a = 0.01
    n_hours = 24 * 70
    closes = np.exp(np.cumsum([0.0] + [a if i % 2 == 0 else -a for i in range(n_hours - 1)]))
    out = weekly_btc_volatility(hourly(closes.tolist()), "2025-11-17")
    WEEKLY_BTC_VOLATILITY.conform(out)
    expected = a * math.sqrt(168 / 167) * math.sqrt(24 * 365) * 100
    assert out["rv7_hourly_pct"][0] == pytest.approx(expected)
    assert out["rv7_change_pts"][0] == pytest.approx(0.0, abs=1e-9)
    # daily closes (23:00 bars) alternate between two levels or stay put: zero or constant |r|
    assert out["rv7_daily_pct"][0] is not None


def test_missing_hours_are_not_bridged_and_too_few_give_null():
    closes = np.exp(np.linspace(0, 1, 24 * 60)).tolist()
    df = hourly(closes).with_row_index().filter(pl.col("index") % 2 == 0).drop("index")  # every other hour
    out = weekly_btc_volatility(df, "2025-11-17")
    assert out["rv7_hourly_pct"][0] is None


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400))
def test_removing_later_data_does_not_change_a_week(seed, extra_hours):
    rng = np.random.default_rng(seed)
    end = datetime(2025, 11, 24, tzinfo=UTC)
    n = int((end - T0).total_seconds() // 3600) + extra_hours
    df = hourly(np.exp(np.cumsum(rng.normal(0, 0.01, n))).tolist())
    cut = df.filter(pl.col("ts") < end)
    assert weekly_btc_volatility(df, "2025-11-17").equals(weekly_btc_volatility(cut, "2025-11-17"))


def test_real_binance_btc_rv7_against_independent_numpy():
    path = real_file("datascientest_binance_btcusdt_1h/binance_spot_BTCUSDT_1h_2025-01_2026-01.csv")
    rows = list(csv.DictReader(open(path)))
    ts = [datetime.fromisoformat(r["timestamp"]) for r in rows]
    close = np.array([float(r["close"]) for r in rows])
    start, end = datetime(2025, 11, 17, tzinfo=UTC), datetime(2025, 11, 24, tzinfo=UTC)
    # bars opening from start-1h to end-1h: 169 closes, 168 returns inside the week
    sel = np.array([start - timedelta(hours=1) <= t <= end - timedelta(hours=1) for t in ts])
    r = np.diff(np.log(close[sel]))
    assert r.size == 168
    expected = np.std(r, ddof=1) * np.sqrt(24 * 365) * 100
    df = pl.read_csv(path, try_parse_dates=True).rename({"timestamp": "ts"})
    out = weekly_btc_volatility(df, "2025-11-17")
    assert out["rv7_hourly_pct"][0] == pytest.approx(expected, rel=1e-9)
    # daily version from the 23:00 bars' closes (= 00:00 closes), independent too
    daily_close = close[[t.hour == 23 and start - timedelta(days=8) < t < end for t in ts]]
    rd = np.diff(np.log(daily_close))[-7:]
    assert out["rv7_daily_pct"][0] == pytest.approx(np.std(rd, ddof=1) * np.sqrt(365) * 100, rel=1e-9)
    # sanity: the report of 2025-11-24 says BTC 7-day RV "near 50". Daily-return RV and the 30-day hourly RV are
    # in 40-60; the 7-day hourly RV is higher (the 21 Nov intraday swings weigh more in hourly returns).
    assert 40 <= out["rv7_daily_pct"][0] <= 60
    assert 40 <= out["rv30_hourly_pct"][0] <= 60
    assert 40 <= out["rv7_hourly_pct"][0] <= 80
    assert out["rv7_hourly_pct"][0] > out["rv7_hourly_prev_pct"][0]  # "volatility continues to rise"
    assert out["rv7_highest_since"][0] < date(2025, 11, 1)
