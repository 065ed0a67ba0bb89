"""Bybit's open interest and the Binance bars that price it, pulled every 4 hours over a long range with its last
day hourly (``pipelines.pulls.derivatives.intraday_spans``): the readings the leverage figures use are the hourly
pull's own."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from pipelines.clean.derivatives import build_funding_rates, build_open_interest
from pipelines.emulator.derivatives import build_derivatives
from pipelines.metrics.leverage import daily_funding, daily_series_open_interest
from pipelines.pulls import derivatives as ing
from pipelines.sources.binance import BinanceFuturesClient, BinanceSpotClient
from pipelines.sources.bybit import BybitClient
from pipelines.warehouse import Warehouse

D = date(2025, 11, 10)


def test_a_short_pull_is_hourly_and_a_long_one_4_hourly_but_its_last_day() -> None:
    assert ing.intraday_spans(D, D) == [("1h", D, D)]
    eighth = D + timedelta(days=ing.HOURLY_SPAN_DAYS - 1)
    assert ing.intraday_spans(D, eighth) == [("1h", D, eighth)]
    ninth = eighth + timedelta(days=1)
    assert ing.intraday_spans(D, ninth) == [("4h", D, eighth), ("1h", ninth, ninth)]


def _pulled(emu, wh: Warehouse, symbols: list[str], days: list[date]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bybit's funding and open interest and the Binance bars that price it pulled for ``days``: the clean
    ``open_interest`` and ``funding_rates`` rows of the range."""
    urls = emu.base_urls()
    quick = {"sleep": lambda s: None, "timeout": 5}
    with (
        BybitClient(urls["BYBIT_BASE_URL"], **quick) as bybit,
        BinanceFuturesClient(urls["BINANCE_FAPI_BASE_URL"], **quick) as fapi,
        BinanceSpotClient(urls["BINANCE_SPOT_BASE_URL"], **quick) as spot,
    ):
        for report in (
            ing.pull_bybit(bybit, wh, symbols, days),
            ing.pull_binance_klines(fapi, spot, wh, symbols, days),
        ):
            assert not report.gaps and not report.failed
    oi, unpriced = build_open_interest(wh, days)
    assert unpriced == 0
    funding = build_funding_rates(wh, days)
    return pl.concat(list(oi.values())), pl.concat(list(funding.values()))


def test_a_long_pull_gives_the_funding_weights_and_daily_closes_of_an_hourly_one(emu, tmp_path, monkeypatch):
    """Over 20 days, the 4-hour pulls hold Bybit readings on the 4-hour grid and every hour of the last day,
    each equal to the hourly pull's reading at the same time, and every figure the leverage table builds on them
    (each settlement's open-interest weight, each day's funding mean, each series' close) equals the hourly
    pull's, with a symbol settling every 8 hours and one every 4."""
    bybit_intervals = build_derivatives(emu.seed).intervals["bybit"]
    symbols = build_derivatives(emu.seed).symbols
    four = next(s for s, iv in zip(symbols, bybit_intervals, strict=True) if iv == 4)
    chosen = ["BTCUSDT", four]
    days = [D + timedelta(days=k) for k in range(20)]
    oi, funding = _pulled(emu, Warehouse(tmp_path / "coarse"), chosen, days)
    monkeypatch.setattr(ing, "HOURLY_SPAN_DAYS", 10_000)
    oi_hourly, funding_hourly = _pulled(emu, Warehouse(tmp_path / "hourly"), chosen, days)

    bybit = oi.filter(pl.col("exchange") == "bybit")
    hours = bybit.group_by(pl.col("ts").dt.date().alias("day")).agg(pl.col("ts").dt.hour().unique().sort())
    by_day = dict(zip(hours["day"], hours["ts"].to_list(), strict=True))
    assert by_day[days[-1]] == list(range(24))
    assert all(by_day[d] == [0, 4, 8, 12, 16, 20] for d in days[:-1])
    hourly_bybit = oi_hourly.filter(pl.col("exchange") == "bybit")
    assert hourly_bybit.height == 24 * len(days) * len(chosen)
    key = ["exchange", "symbol", "ts"]
    same = bybit.select(*key, "oi_usd").join(hourly_bybit.select(*key, "oi_usd"), on=key, suffix="_hourly")
    assert same.height == bybit.height and (same["oi_usd"] == same["oi_usd_hourly"]).all()

    # a row's raw file names its pull's wall-clock second, which the two pulls may not share
    assert funding.drop("raw_file").equals(funding_hourly.drop("raw_file"))
    assert set(funding["interval_hours"]) == {4, 8}
    assert daily_funding(funding, oi).equals(daily_funding(funding_hourly, oi_hourly))
    assert daily_funding(funding, oi)["weighting"].unique().to_list() == ["oi"]
    assert daily_series_open_interest(oi).equals(daily_series_open_interest(oi_hourly))


@pytest.mark.parametrize("interval", ["1h", "4h"])
def test_each_bar_prices_the_reading_at_its_close(emu, tmp_path, interval, monkeypatch):
    """A bar's close prices the reading at its end (close time + 1 ms), for 1-hour and 4-hour bars alike: the
    Bybit readings of a long pull are priced with the bar ending at the same instant, never an earlier one."""
    from pipelines.clean.derivatives import perp_closes

    if interval == "1h":
        monkeypatch.setattr(ing, "HOURLY_SPAN_DAYS", 10_000)
    wh = Warehouse(tmp_path)
    days = [D + timedelta(days=k) for k in range(10)]
    _pulled(emu, wh, ["BTCUSDT"], days)
    closes = perp_closes(wh, days[1:])
    step = {"1h": 1, "4h": 4}[interval]
    middle = closes.filter(pl.col("ts").dt.date() == days[3])
    assert middle["ts"].dt.hour().to_list() == list(range(0, 24, step))


def test_a_bar_of_another_length_fails_the_open_interest_named(emu, tmp_path) -> None:
    """A stored bar whose close time is not 1 or 4 hours after its open (a drifted payload) would price Bybit's
    readings at the wrong instant: building open interest fails, naming the symbol and the bar."""
    import json

    from pipelines.sources.http import PayloadError

    wh = Warehouse(tmp_path)
    days = [D + timedelta(days=k) for k in range(10)]
    _pulled(emu, wh, ["BTCUSDT"], days)
    page = sorted((wh.raw_dir / "binance" / "perp_klines_intraday").rglob("page-*[0-9].json"))[0]
    bars = json.loads(page.read_bytes())
    bars[5][6] += 30 * 60 * 1000  # closes half an hour late
    page.write_text(json.dumps(bars))
    with pytest.raises(
        PayloadError, match=r"BTCUSDT bar opening .* closes at .*: not a 1-hour or 4-hour bar"
    ):
        build_open_interest(wh, days)
