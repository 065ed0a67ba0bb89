"""A change of coverage is never a move of the market: open interest and funding (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from pipelines.metrics.leverage import weekly_leverage
from pipelines.schemas import WEEKLY_LEVERAGE
from tests._leverage_frames import funding_frame, oi_rows

WEEK = "2026-11-23"  # open: close of Sun 22 Nov; close: close of Sun 29 Nov


def funding_rows(venues: list[str], first: date, days: int, rate: float = 0.0001) -> pl.DataFrame:
    rows = []
    for ex in venues:
        t = datetime(first.year, first.month, first.day, tzinfo=UTC)
        for k in range(1, 3 * days + 1):
            rows.append((ex, "BTCUSDT", t + timedelta(hours=8 * k), rate, 8))
    return funding_frame(rows)


DAYS = [date(2026, 10, 1) + timedelta(days=i) for i in range(60)]  # up to 29 Nov
OPEN, CLOSE = date(2026, 11, 22), date(2026, 11, 29)


def row(oi: pl.DataFrame, funding: pl.DataFrame | None = None) -> dict:
    f = funding if funding is not None else funding_rows(["bybit"], date(2026, 11, 1), 29)
    out = weekly_leverage(f, oi, None, WEEK, oi_tolerance=timedelta(days=2))
    WEEKLY_LEVERAGE.conform(out)
    return out.row(0, named=True)


def test_a_venue_missing_at_the_close_is_not_a_fall() -> None:
    # Binance 60bn and Bybit 40bn rise 2.1% over the week; OKX (25bn) has no reading on the close day.
    base = {d: 1.0 for d in DAYS}
    lv = {
        ("binance", "BTCUSDT"): {d: 60e9 * v for d, v in base.items()},
        ("bybit", "BTCUSDT"): {d: 40e9 * v for d, v in base.items()},
        ("okx", "BTC-USDT-SWAP"): {d: 25e9 for d in DAYS if d != CLOSE},
    }
    lv[("binance", "BTCUSDT")][CLOSE] = 60e9 * 1.021
    lv[("bybit", "BTCUSDT")][CLOSE] = 40e9 * 1.021
    r = row(oi_rows(lv))
    assert r["oi_open_usd"] == pytest.approx(125e9) and r["oi_close_usd"] == pytest.approx(102.1e9)
    assert r["oi_change_pct"] == pytest.approx(-18.32)  # totals: the coverage artifact, kept for the record
    assert r["oi_change_like_for_like_pct"] == pytest.approx(2.1)
    assert (r["oi_series_open"], r["oi_series_close"], r["oi_series_common"]) == (3, 2, 2)
    assert r["oi_venues_open"] == "binance, bybit, okx" and r["oi_venues_close"] == "binance, bybit"
    assert r["oi_venues_common"] == "binance, bybit"
    assert r["oi_missing_at_close"] == "okx:BTC-USDT-SWAP" and r["oi_missing_at_open"] is None
    assert r["coverage_changed"] is True
    # the reference peak compares the same series: no -18% "deleveraging" from OKX's missing reading
    assert r["oi_ref_usd"] == pytest.approx(100e9) and r["oi_ref_close_usd"] == pytest.approx(102.1e9)
    assert r["oi_vs_ref_pct"] == pytest.approx(2.1) and r["oi_ref_missing"] is None


def test_a_venue_joining_mid_history_is_not_a_rise() -> None:
    # OKX starts reporting in the middle of the week: +72% on totals, +1% like for like.
    join = date(2026, 11, 25)
    lv = {
        ("binance", "BTCUSDT"): {d: 60e9 for d in DAYS},
        ("bybit", "BTCUSDT"): {d: 40e9 for d in DAYS},
        ("okx", "BTC-USDT-SWAP"): {d: 72e9 for d in DAYS if d >= join},
    }
    lv[("binance", "BTCUSDT")][CLOSE] = 60.6e9
    lv[("bybit", "BTCUSDT")][CLOSE] = 40.4e9
    r = row(oi_rows(lv))
    assert r["oi_change_pct"] == pytest.approx((173e9 / 100e9 - 1) * 100)
    assert r["oi_change_like_for_like_pct"] == pytest.approx(1.0)
    assert r["oi_missing_at_open"] == "okx:BTC-USDT-SWAP" and r["oi_missing_at_close"] is None
    assert r["coverage_changed"] is True
    # OKX has no reading on any lookback day: the peak compares Binance and Bybit, and says OKX is left out
    assert r["oi_ref_missing"] == "okx:BTC-USDT-SWAP"
    assert r["oi_ref_usd"] == pytest.approx(100e9) and r["oi_vs_ref_pct"] == pytest.approx(1.0)


def test_the_peak_prefers_days_covering_the_close_series() -> None:
    # A higher total on a day without Bybit is not the peak: the peak is chosen among days with every close series.
    lv = {
        ("binance", "BTCUSDT"): {d: 60e9 for d in DAYS},
        ("bybit", "BTCUSDT"): {d: 40e9 for d in DAYS if d != date(2026, 10, 10)},
    }
    lv[("binance", "BTCUSDT")][date(2026, 10, 10)] = 115e9  # 115 alone > 110 together
    lv[("binance", "BTCUSDT")][date(2026, 10, 20)] = 70e9  # the real peak: 110 over both series
    r = row(oi_rows(lv))
    assert r["oi_ref_day"] == date(2026, 10, 20) and r["oi_ref_usd"] == pytest.approx(110e9)
    assert r["coverage_changed"] is False and r["oi_change_like_for_like_pct"] == pytest.approx(0.0)


def test_funding_names_its_weighting_and_coverage() -> None:
    # Binance settlements have no OI reading: the OI-weighted mean covers Bybit's settlements only.
    lv = {("bybit", "BTCUSDT"): {d: 40e9 for d in DAYS}}
    f = pl.concat(
        [
            funding_rows(["bybit"], date(2026, 11, 1), 29, 0.0002),
            funding_rows(["binance"], date(2026, 11, 1), 29, -0.0004),
        ]
    )
    r = row(oi_rows(lv), f)
    assert r["funding_weighting"] == "mixed"
    assert r["funding_8h_mean"] == pytest.approx(0.0002)  # OI-weighted over the settlements that have OI
    assert r["funding_settlements"] == 42 and r["funding_oi_share"] == pytest.approx(0.5)
    assert r["funding_venues_without_oi"] == "binance"
    lv[("binance", "BTCUSDT")] = {d: 10e9 for d in DAYS}
    full = row(oi_rows(lv), f)
    assert full["funding_weighting"] == "oi" and full["funding_oi_share"] == 1.0
    assert full["funding_venues_without_oi"] is None
