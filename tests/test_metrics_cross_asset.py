from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.metrics.cross_asset import AssetSpec, weekly_cross_asset, weekly_crypto_rank
from pipelines.schemas import WEEKLY_CROSS_ASSET, WEEKLY_CRYPTO_RANK
from tests._metrics_real import real_file

ASSETS = (
    AssetSpec("crypto", "crypto"),
    AssetSpec("spx", "SPX"),
    AssetSpec("ust", "DGS10", "yield"),
    AssetSpec("yen", "USDJPY", "inverse"),
    AssetSpec("btc", "btc", major=False),
)


def lv(rows):
    return pl.DataFrame(
        rows, schema={"series": pl.String, "date": pl.Date, "value": pl.Float64}, orient="row"
    )


def test_alignment_weekend_holiday_and_transforms():
    rows = [
        ("crypto", date(2025, 11, 16), 100.0),
        ("crypto", date(2025, 11, 23), 90.0),
        ("crypto", date(2025, 11, 24), 1.0),  # after the close
        ("SPX", date(2025, 11, 14), 50.0),
        ("SPX", date(2025, 11, 20), 51.0),  # Friday 21 is a "holiday"
        ("SPX", date(2025, 11, 21), None),
        ("DGS10", date(2025, 11, 14), 4.00),
        ("DGS10", date(2025, 11, 21), 4.10),
        ("USDJPY", date(2025, 11, 14), 150.0),
        ("USDJPY", date(2025, 11, 21), 156.0),
        ("btc", date(2025, 11, 16), 10.0),
        ("btc", date(2025, 11, 23), 5.0),
    ]
    out = weekly_cross_asset(lv(rows), "2025-11-17", ASSETS, duration=8.5)
    WEEKLY_CROSS_ASSET.conform(out)
    got = {r["asset"]: r for r in out.iter_rows(named=True)}
    assert got["crypto"]["return_pct"] == pytest.approx(-10.0)
    assert got["spx"]["open_date"] == date(2025, 11, 14) and got["spx"]["close_date"] == date(2025, 11, 20)
    assert got["spx"]["return_pct"] == pytest.approx(2.0)
    assert got["ust"]["return_pct"] == pytest.approx(-8.5 * 0.10)
    assert got["yen"]["return_pct"] == pytest.approx((150 / 156 - 1) * 100)
    assert got["btc"]["rank"] is None  # not a major asset class: BTC is part of crypto
    assert [got[a]["rank"] for a in ("spx", "ust", "yen", "crypto")] == [1, 2, 3, 4]
    assert got["crypto"]["is_worst"] is True


def test_stale_observation_gives_null():
    rows = [("SPX", date(2025, 11, 3), 50.0), ("SPX", date(2025, 11, 21), 51.0)]
    got = (
        weekly_cross_asset(lv(rows), "2025-11-17", ASSETS).filter(pl.col("asset") == "spx").row(0, named=True)
    )
    assert got["open_date"] is None and got["return_pct"] is None


def test_a_market_closed_all_week_has_no_return_even_when_its_open_level_is_in_reach_at_the_close():
    """With a staleness window over a week, the close reaches back to the open's own level: the same observation
    at both ends is no return (a gap), not an unchanged market."""
    rows = [("SPX", date(2025, 11, 14), 50.0)]
    got = (
        weekly_cross_asset(lv(rows), "2025-11-17", ASSETS, max_stale_days=10)
        .filter(pl.col("asset") == "spx")
        .row(0, named=True)
    )
    assert got["open_date"] == got["close_date"] == date(2025, 11, 14)
    assert got["return_pct"] is None


def _weekly_path(crypto_moves, spx_moves):
    rows = []
    c = s = 100.0
    start = date(2025, 10, 5)  # a Sunday: the open day of week 2025-10-06
    rows += [("crypto", start, c), ("SPX", start - timedelta(days=2), s)]
    for k, (mc, ms) in enumerate(zip(crypto_moves, spx_moves, strict=True)):
        c *= 1 + mc
        s *= 1 + ms
        sunday = start + timedelta(days=7 * (k + 1))
        rows += [("crypto", sunday, c), ("SPX", sunday - timedelta(days=2), s)]
    return lv(rows)


def test_worst_streak_hand_computed():
    assets = ASSETS[:2]
    levels = _weekly_path([0.01, -0.05, -0.02, -0.03, 0.04], [0.0, 0.01, 0.0, -0.01, 0.0])
    weeks = ["2025-10-06", "2025-10-13", "2025-10-20", "2025-10-27", "2025-11-03"]
    streaks = [weekly_crypto_rank(levels, w, assets, min_ranked=2)["worst_streak_weeks"][0] for w in weeks]
    assert streaks == [0, 1, 2, 3, 0]
    WEEKLY_CRYPTO_RANK.conform(weekly_crypto_rank(levels, weeks[3], assets))


def test_a_week_with_too_few_classes_ranked_ends_the_streak():
    """Crypto falls every week and the S&P 500 does not, but the S&P's Friday close of 2025-10-17 is missing: the
    weeks of 2025-10-13 and 2025-10-20 rank crypto alone, so neither is known to be one where crypto was the worst
    major class, and no streak counts across them ("the worst for the Nth consecutive week" stays true)."""
    assets = ASSETS[:2]
    levels = _weekly_path([-0.01, -0.05, -0.02, -0.03, -0.04], [0.0] * 5).filter(
        ~((pl.col("series") == "SPX") & (pl.col("date") == date(2025, 10, 17)))
    )
    weeks = ["2025-10-06", "2025-10-13", "2025-10-20", "2025-10-27", "2025-11-03"]
    rows = [weekly_crypto_rank(levels, w, assets, min_ranked=2).row(0, named=True) for w in weeks]
    assert [r["assets_ranked"] for r in rows] == [2, 1, 1, 2, 2]
    assert [r["worst_streak_weeks"] for r in rows] == [1, 2, 1, 1, 2]
    # counting every week crypto was the worst of those ranked would have said 1, 2, 3, 4, 5
    assert [weekly_crypto_rank(levels, w, assets, min_ranked=1)["worst_streak_weeks"][0] for w in weeks] == [
        1,
        2,
        3,
        4,
        5,
    ]


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(-0.3, 0.3), min_size=8, max_size=8),
    st.lists(st.floats(-0.1, 0.1), min_size=8, max_size=8),
)
def test_removing_later_data_does_not_change_a_week(cm, sm):
    levels = _weekly_path(cm, sm)
    week = "2025-11-03"
    cut = levels.filter(pl.col("date") <= date(2025, 11, 9))
    assert weekly_cross_asset(levels, week, ASSETS).equals(weekly_cross_asset(cut, week, ASSETS))
    two = {"assets": ASSETS[:2], "min_ranked": 2}
    assert weekly_crypto_rank(levels, week, **two).equals(weekly_crypto_rank(cut, week, **two))


def test_real_week_2025_11_17():
    fred_path = real_file("sivamsapingali_fred_macro/fred_daily_2024-12_2025-12.csv")
    perps_path = real_file(
        "silertrades_gravestone_binance_perps/binance_usdm_perp_klines_1d_2025-01_2026-01.parquet"
    )
    cm_path = real_file("coinmetrics_community/btc_daily_2025-03-01_2025-12-29.csv")
    fred = pl.read_csv(fred_path, try_parse_dates=True, schema_overrides={"value": pl.Float64})
    perps = pl.read_parquet(perps_path)
    cm = pl.read_csv(cm_path, try_parse_dates=True)
    levels = pl.concat(
        [
            fred.rename({"series_id": "series"}),
            perps.filter(pl.col("symbol").is_in(["BTCUSDT", "PAXGUSDT"])).select(
                pl.col("symbol").replace({"BTCUSDT": "btc", "PAXGUSDT": "gold"}).alias("series"),
                "date",
                pl.col("close").alias("value"),
            ),
            cm.select(
                pl.lit("btc_cm").alias("series"), "date", pl.col("price_usd").cast(pl.Float64).alias("value")
            ),
        ]
    )
    assets = (
        AssetSpec("crypto", "btc_cm"),
        AssetSpec("sp500", "SP500"),
        AssetSpec("gold", "gold"),
        AssetSpec("treasuries", "DGS10", "yield"),
        AssetSpec("dollar", "DTWEXBGS"),
        AssetSpec("btc_perp", "btc", major=False),
    )
    out = {r["asset"]: r for r in weekly_cross_asset(levels, "2025-11-17", assets).iter_rows(named=True)}

    def fred_on(series, d):
        return fred.filter((pl.col("series_id") == series) & (pl.col("date") == d))["value"][0]

    # Monday 00:00 boundaries fall on weekends for US markets: Friday closes are used
    assert out["sp500"]["open_date"] == date(2025, 11, 14) and out["sp500"]["close_date"] == date(
        2025, 11, 21
    )
    assert out["sp500"]["return_pct"] == pytest.approx(
        (fred_on("SP500", date(2025, 11, 21)) / fred_on("SP500", date(2025, 11, 14)) - 1) * 100
    )
    dy = fred_on("DGS10", date(2025, 11, 21)) - fred_on("DGS10", date(2025, 11, 14))
    assert out["treasuries"]["return_pct"] == pytest.approx(-8.5 * dy)
    # Binance perp close (bar of day D closes at D+1 00:00) and Coin Metrics close agree on the week within 0.5 pt
    assert out["btc_perp"]["return_pct"] == pytest.approx(out["crypto"]["return_pct"], abs=0.5)
    assert out["crypto"]["return_pct"] < -5  # the report's sell-off week
    assert out["crypto"]["is_worst"] is True
