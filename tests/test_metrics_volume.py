from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.metrics.volume import weekly_volume
from pipelines.schemas import WEEKLY_VOLUME
from tests._metrics_real import real_file


def daily(start: date, vols):
    return pl.DataFrame(
        {"date": [start + timedelta(days=i) for i in range(len(vols))], "quote_volume_usd": vols},
        schema={"date": pl.Date, "quote_volume_usd": pl.Float64},
    )


def test_hand_computed():
    start = date(2025, 11, 10)  # previous week Mon..Sun, then this week
    spot = daily(start, [1.0] * 7 + [2.0] * 7 + [100.0])
    perp = daily(start, [3.0] * 7 + [3.0] * 6 + [10.0])
    out = weekly_volume(spot, perp, "2025-11-17")
    WEEKLY_VOLUME.conform(out)
    r = out.row(0, named=True)
    assert r["spot_volume_usd"] == 14.0 and r["spot_volume_prev_usd"] == 7.0 and r["spot_change_pct"] == 100.0
    assert r["perp_volume_usd"] == 28.0 and r["perp_to_spot"] == 2.0 and r["perp_to_spot_prev"] == 3.0


def test_incomplete_week_is_null():
    spot = daily(date(2025, 11, 17), [1.0] * 6)
    r = weekly_volume(spot, spot, "2025-11-17").row(0, named=True)
    assert r["spot_volume_usd"] is None and r["spot_change_pct"] is None and r["perp_to_spot"] is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1e11), min_size=14, max_size=40))
def test_removing_later_data_does_not_change_a_week(vols):
    d = daily(date(2025, 11, 10), vols)
    cut = d.filter(pl.col("date") <= date(2025, 11, 23))
    assert weekly_volume(d, d, "2025-11-17").equals(weekly_volume(cut, cut, "2025-11-17"))


def test_real_btc_spot_volume_week():
    path = real_file("coinmetrics_community/btc_daily_2025-03-01_2025-12-29.csv")
    cm = pl.read_csv(path, try_parse_dates=True)
    spot = cm.select("date", pl.col("spot_volume_reported_usd_1d").cast(pl.Float64).alias("quote_volume_usd"))
    perps = pl.read_parquet(
        real_file("silertrades_gravestone_binance_perps/binance_usdm_perp_klines_1d_2025-01_2026-01.parquet")
    )
    perp = perps.filter(pl.col("symbol") == "BTCUSDT").select(
        "date", pl.col("quote_volume").alias("quote_volume_usd")
    )
    r = weekly_volume(spot, perp, "2025-11-17").row(0, named=True)
    direct = cm.filter(pl.col("date").is_between(date(2025, 11, 17), date(2025, 11, 23)))[
        "spot_volume_reported_usd_1d"
    ]
    assert direct.len() == 7
    assert r["spot_volume_usd"] == pytest.approx(float(direct.sum()))
    assert r["perp_to_spot"] == pytest.approx(r["perp_volume_usd"] / r["spot_volume_usd"])
    assert r["perp_volume_usd"] > 0 and r["spot_change_pct"] is not None
