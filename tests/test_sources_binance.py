"""Binance fapi/spot clients and parsers against the emulator, and the reference doc's literal samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.emulator.server import Fault
from pipelines.sources import binance as bn
from pipelines.sources.http import HistoryLimitError, PayloadError, SourceError
from tests.conftest import SOURCES_NOW, emulator_client

NOW = SOURCES_NOW  # the shared emulator's clock (tests/conftest.py, fixture `emu`)


@pytest.fixture
def fut(emu):
    yield from emulator_client(emu, bn.BinanceFuturesClient, "BINANCE_FAPI_BASE_URL")


def test_funding_pagination_covers_window_in_order(fut, emu):
    before = emu.count("binance_fapi", "fundingRate")
    pages = list(
        fut.funding_rate_pages(
            "BTCUSDT", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 11, 30, 16, tzinfo=UTC)
        )
    )
    # one request per page, and one more for each retry (a page the loaded machine answered after the tests'
    # 0.5 s timeout is asked again)
    assert emu.count("binance_fapi", "fundingRate") - before == sum(p.attempts for p in pages)
    assert len(pages) >= 2
    assert len(pages[0].json()) == 1000  # capped page
    df = bn.parse_funding_rates([p.json() for p in pages])
    assert df.height == 334 * 3  # 8h settlements, both ends inclusive
    assert df["funding_time"].is_sorted() and df["funding_time"].n_unique() == df.height
    assert df.schema["funding_time"] == pl.Datetime("ms", "UTC") and df.schema["funding_rate"] == pl.Float64
    assert (df["funding_time"].dt.minute() == 0).all() and (df["funding_time"].dt.millisecond() == 0).all()
    assert set(df["interval_hours"].to_list()) == {8}
    assert df["funding_rate"].abs().max() < 0.01


def test_limit_is_clamped(emu):
    import httpx

    r = httpx.get(
        emu.base_urls()["BINANCE_FAPI_BASE_URL"] + "/fapi/v1/fundingRate",
        params={"symbol": "ETHUSDT", "startTime": 0, "limit": 5000},
    )
    assert r.status_code == 200 and len(r.json()) == 1000
    assert isinstance(r.json()[0]["fundingRate"], str) and isinstance(r.json()[0]["fundingTime"], int)
    assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 1


def test_short_interval_symbols_infer_interval(fut, emu):
    from pipelines.emulator.derivatives import build_derivatives

    d = build_derivatives(emu.seed)
    sym = next(s for j, s in enumerate(d.symbols) if d.intervals["binance"][j] == 4)
    pages = fut.funding_rate_pages(sym, datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 11, 2, tzinfo=UTC))
    df = bn.parse_funding_rates([p.json() for p in pages])
    assert df.height == 7 and set(df["interval_hours"]) == {4}


def test_open_interest_history_wall_and_windows(fut):
    with pytest.raises(HistoryLimitError, match="30 days"):
        list(fut.open_interest_hist_pages("BTCUSDT", "1h", NOW - timedelta(days=40), NOW))
    pages = list(
        fut.open_interest_hist_pages("BTCUSDT", "5m", NOW - timedelta(days=3), NOW - timedelta(hours=1))
    )
    assert all(len(p.json()) <= 500 for p in pages) and len(pages) == 2
    df = bn.parse_open_interest_hist([p.json() for p in pages])
    assert df.height == 3 * 288 - 12 + 1
    assert (df["ts"].diff().drop_nulls() == timedelta(minutes=5)).all()
    assert (df["oi_usd"] > 1e9).all() and (df["oi_usd"] / df["oi_base"]).is_between(50_000, 200_000).all()


def test_long_short_ratio(fut):
    pages = list(fut.long_short_ratio_pages("SOLUSDT", "1h", NOW - timedelta(days=2), NOW))
    df = bn.parse_long_short_ratio([p.json() for p in pages])
    assert df.height == 49
    assert ((df["long_account"] + df["short_account"] - 1).abs() < 1e-3).all()
    assert ((df["long_short_ratio"] - df["long_account"] / df["short_account"]).abs() < 1e-3).all()


def test_premium_index_array_and_object(fut):
    all_ = bn.parse_premium_index(fut.premium_index().json())
    assert all_.height >= 40 and all_["symbol"].n_unique() == all_.height
    one = bn.parse_premium_index(fut.premium_index("BTCUSDT").json())
    assert one.height == 1 and one["next_funding_time"][0] > one["time"][0]


def test_klines_futures_and_spot(fut, emu):
    pages = list(
        fut.klines_pages("BTCUSDT", "1h", datetime(2025, 9, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC))
    )
    assert [len(p.json()) for p in pages][0] == 1500
    df = bn.parse_klines([p.json() for p in pages])
    assert df.height == 91 * 24 and df["open_time"].is_sorted()
    assert (df["high"] >= df[["open", "close"]].max_horizontal()).all()
    with bn.BinanceSpotClient(emu.base_urls()["BINANCE_SPOT_BASE_URL"], sleep=lambda s: None) as spot:
        sp = list(
            spot.klines_pages(
                "BTCUSDT", "1h", datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
            )
        )
    assert len(sp[0].json()) == 720 and max(len(p.json()) for p in sp) <= 1000
    sdf = bn.parse_klines([p.json() for p in sp], "/api/v3/klines")
    assert sdf.height == 720 and (sdf["quote_volume"] > 0).all()


def test_bad_symbol_is_not_retried(fut, emu):
    before = emu.count("binance_fapi", "fundingRate")
    with pytest.raises(SourceError, match="-1121"):
        list(fut.funding_rate_pages("NOPEUSDT", NOW - timedelta(days=1), NOW))
    assert emu.count("binance_fapi", "fundingRate") - before == 1


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "truncated", "invalid_json"])
def test_transient_faults_are_retried(fut, emu, kind):
    emu.inject(Fault(api="binance_fapi", path="fundingRate", kind=kind, times=1, retry_after=0, delay=1.0))
    pages = list(fut.funding_rate_pages("BTCUSDT", NOW - timedelta(days=2), NOW))
    assert pages[0].attempts == 2
    assert bn.parse_funding_rates([p.json() for p in pages]).height == 6  # 29 Nov 00:00 .. 30 Nov 16:00


def test_persistent_429_gives_up(fut, emu):
    emu.inject(Fault(api="binance_fapi", path="premiumIndex", kind="429", times=None, retry_after=0))
    with pytest.raises(SourceError, match="gave up after 5"):
        fut.premium_index("BTCUSDT")


def test_drift_raises_payload_error(fut, emu):
    def mutate(rows):
        for r in rows:
            r["fundingRate"] = None
        return rows

    emu.inject(Fault(api="binance_fapi", path="fundingRate", kind="drift", mutate=mutate))
    pages = list(fut.funding_rate_pages("BTCUSDT", NOW - timedelta(days=1), NOW))
    with pytest.raises(PayloadError, match="fundingRate"):
        bn.parse_funding_rates([p.json() for p in pages])


def test_weight_pacer_slows_near_limit():
    slept: list[float] = []
    pacer = bn.WeightPacer(2400, sleep=slept.append, clock=lambda: 30.0)  # 30 s left in the minute

    class F:
        headers = {"x-mbx-used-weight-1m": "100"}

    pacer.observe(F())
    assert slept == []
    F.headers = {"x-mbx-used-weight-1m": "2100"}  # 87.5%: part of the rest of the minute
    pacer.observe(F())
    assert 0 < slept[-1] < 30
    F.headers = {"x-mbx-used-weight-1m": "2390"}
    pacer.observe(F())
    assert slept[-1] == pytest.approx(30.0)


def test_client_reads_weight_header(fut):
    fut.premium_index("BTCUSDT")
    first = fut.pacer.used
    fut.premium_index()
    assert fut.pacer.used >= first + 10  # the all-symbol call weighs 10


# ---- literal samples from the reference sheet ---------------------------------------------------------------
def test_reference_funding_sample():
    body = [
        {
            "symbol": "BTCUSDT",
            "fundingRate": "0.00010000",
            "fundingTime": 1704067200000,
            "markPrice": "42288.58000000",
        },
        {
            "symbol": "BTCUSDT",
            "fundingRate": "-0.00002311",
            "fundingTime": 1704096000000,
            "markPrice": "42501.10000000",
        },
    ]
    df = bn.parse_funding_rates([body])
    assert df["funding_time"].to_list() == [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, 8, tzinfo=UTC),
    ]
    assert df["funding_rate"].to_list() == [0.0001, -0.00002311]
    assert df["interval_hours"].to_list() == [8, 8] and df["mark_price"][1] == 42501.1


def test_reference_oi_and_ratio_samples():
    oi = [
        {
            "symbol": "BTCUSDT",
            "sumOpenInterest": "109115.83500000",
            "sumOpenInterestValue": "8785524572.89207600",
            "CMCCirculatingSupply": "20086328.00000000",
            "timestamp": 1789912200000,
        }
    ]
    df = bn.parse_open_interest_hist([oi])
    assert df["oi_usd"][0] == pytest.approx(8785524572.892076) and df["oi_base"][0] == 109115.835
    assert df["ts"][0] == datetime.fromtimestamp(1789912200, UTC)
    string_ts = [{**oi[0], "timestamp": "1789912200000"}]
    assert bn.parse_open_interest_hist([string_ts])["ts"][0] == df["ts"][0]
    ls = [
        {
            "symbol": "BTCUSDT",
            "longShortRatio": "1.9559",
            "longAccount": "0.6617",
            "shortAccount": "0.3382",
            "timestamp": 1583139900000,
        }
    ]
    assert bn.parse_long_short_ratio([ls])["long_account"][0] == 0.6617


def test_reference_kline_and_premium_samples():
    row = [
        1499040000000,
        "0.01634790",
        "0.80000000",
        "0.01575800",
        "0.01577100",
        "148976.11427815",
        1499644799999,
        "2434.19055334",
        308,
        "1756.87402397",
        "28.46694368",
        "0",
    ]
    df = bn.parse_klines([[row]])
    assert df["trades"][0] == 308 and df["quote_volume"][0] == pytest.approx(2434.19055334)
    assert df["open_time"][0] == datetime(2017, 7, 3, tzinfo=UTC)
    prem = {
        "symbol": "BTCUSDT",
        "markPrice": "11793.63104562",
        "indexPrice": "11781.80495970",
        "estimatedSettlePrice": "11781.16138815",
        "lastFundingRate": "0.00038246",
        "interestRate": "0.00010000",
        "nextFundingTime": 1597392000000,
        "time": 1597370495002,
    }
    p = bn.parse_premium_index(prem)
    assert p["last_funding_rate"][0] == 0.00038246 and p["next_funding_time"][0] == datetime(
        2020, 8, 14, 8, tzinfo=UTC
    )


def test_klines_parsed_by_column_equal_the_row_by_row_checks(monkeypatch) -> None:
    """Well-formed pages are converted a column at a time; the result is the row-by-row path's, and a page that
    is not well formed takes the row-by-row path, which names the problem (or accepts JSON numbers)."""
    row = [
        1499040000000,
        "0.0163",
        "0.8",
        "0.0157",
        "0.01577100",
        "1.5e3",
        1499043599999,
        "24.1",
        308,
        "17",
        "28",
        "0",
    ]
    pages = [[row, [row[0] + 3_600_000, *row[1:6], row[6] + 3_600_000, *row[7:]]], [row]]  # a repeated bar
    fast = bn.parse_klines(pages)
    monkeypatch.setattr(bn, "_klines_columns", lambda pages: None)
    assert fast.equals(bn.parse_klines(pages)) and fast.height == 2
    monkeypatch.undo()
    assert bn._klines_columns([[[*row[:8], True, *row[9:]]]]) is None  # a boolean count
    numbers = bn.parse_klines([[[row[0], 0.0163, *row[2:]]]])  # a JSON number where a string is documented
    assert numbers["open"][0] == 0.0163
    for bad, named in (
        (["x", *row[1:]], "open_time"),
        ([row[0], "abc", *row[2:]], r"kline\[1\]: not a decimal"),
        (row[:9], "bad kline"),
    ):
        with pytest.raises(PayloadError, match=named):
            bn.parse_klines([[bad]])
