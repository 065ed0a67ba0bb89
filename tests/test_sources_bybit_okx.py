"""Bybit v5 and OKX v5 clients and parsers against the emulator, and the reference doc's literal samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import polars as pl
import pytest

from pipelines.emulator.server import Fault, MarketEmulator
from pipelines.sources import bybit as by
from pipelines.sources import okx as ok
from pipelines.sources.http import PayloadError, SourceError

NOW = datetime(2025, 12, 1, tzinfo=UTC)
UTC = UTC


@pytest.fixture(scope="module")
def emu():
    with MarketEmulator(now=NOW) as e:
        yield e


@pytest.fixture(autouse=True)
def _clean(emu):
    yield
    emu.clear_faults()


@pytest.fixture
def bybit(emu):
    with by.BybitClient(emu.base_urls()["BYBIT_BASE_URL"], sleep=lambda s: None, timeout=0.5) as c:
        yield c


@pytest.fixture
def okx(emu):
    with ok.OkxClient(emu.base_urls()["OKX_BASE_URL"], sleep=lambda s: None, timeout=0.5) as c:
        yield c


# ---- Bybit ----------------------------------------------------------------------------------------------------
def test_bybit_funding_pages_backward_newest_first(bybit):
    pages = list(bybit.funding_history_pages("ETHUSDT", datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 11, 30, 16, tzinfo=UTC)))
    lists = [p.json()["result"]["list"] for p in pages]
    assert [len(x) for x in lists[:2]] == [200, 200]
    first = [int(r["fundingRateTimestamp"]) for r in lists[0]]
    assert first == sorted(first, reverse=True)  # newest first on the wire
    assert int(lists[1][0]["fundingRateTimestamp"]) < first[-1]  # next page is older
    df = by.parse_funding_history([p.json() for p in pages])
    assert df.height == 183 * 3 and df["funding_time"].is_sorted()
    assert df["funding_time"].min() == datetime(2025, 6, 1, tzinfo=UTC)
    assert df.schema["funding_rate"] == pl.Float64 and set(df["interval_hours"]) == {8}


def test_bybit_start_only_is_an_error(emu, bybit):
    base = emu.base_urls()["BYBIT_BASE_URL"]
    r = httpx.get(base + "/v5/market/funding/history", params={"category": "linear", "symbol": "BTCUSDT", "startTime": 1750000000000})
    assert r.status_code == 200 and r.json()["retCode"] == 10001
    r = httpx.get(base + "/v5/market/funding/history", params={"category": "linear", "symbol": "BTCUSDT", "limit": 500})
    assert r.json()["retCode"] == 10001
    with pytest.raises(SourceError, match="retCode 10001"):
        bybit._get("/v5/market/funding/history", {"category": "linear", "symbol": "BTCUSDT", "startTime": 1})


def test_bybit_open_interest_cursor(bybit, emu):
    before = emu.count("bybit", "open-interest")
    pages = list(bybit.open_interest_pages("BTCUSDT", "1h", NOW - timedelta(days=30), NOW))
    assert emu.count("bybit", "open-interest") - before == len(pages) == 4
    assert pages[-1].json()["result"]["nextPageCursor"] == "" and pages[0].json()["result"]["nextPageCursor"]
    df = by.parse_open_interest([p.json() for p in pages])
    assert df.height == 30 * 24 + 1 and df["oi_usd"].null_count() == df.height
    prices = pl.DataFrame({"base": ["BTC"], "ts": [NOW - timedelta(days=31)], "price": [90_000.0]},
                          schema={"base": pl.String, "ts": pl.Datetime("ms", "UTC"), "price": pl.Float64})
    usd = by.attach_usd(df, prices)
    assert usd["oi_usd"].to_list() == pytest.approx((df["oi_base"] * 90_000).to_list())
    default = httpx.get(emu.base_urls()["BYBIT_BASE_URL"] + "/v5/market/open-interest",
                        params={"category": "linear", "symbol": "BTCUSDT", "intervalTime": "5min"}).json()
    assert len(default["result"]["list"]) == 50


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "truncated", "invalid_json"])
def test_bybit_faults_retried(bybit, emu, kind):
    emu.inject(Fault(api="bybit", path="funding", kind=kind, times=1, retry_after=0, delay=1.0))
    pages = list(bybit.funding_history_pages("BTCUSDT", NOW - timedelta(days=1), NOW))
    assert pages[0].attempts == 2 and by.parse_funding_history([p.json() for p in pages]).height == 4  # both ends inclusive


def test_bybit_drift(bybit, emu):
    def mutate(body):
        for r in body["result"]["list"]:
            r["fundingRate"] = float(r["fundingRate"])  # numbers no longer strings
        return body

    emu.inject(Fault(api="bybit", path="funding", kind="drift", mutate=mutate))
    pages = list(bybit.funding_history_pages("BTCUSDT", NOW - timedelta(days=1), NOW))
    with pytest.raises(PayloadError):
        by.parse_funding_history([p.json() for p in pages])


def test_bybit_reference_samples():
    f = {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": [
        {"symbol": "BTCUSDT", "fundingRate": "0.0001", "fundingRateTimestamp": "1672041600000"}]},
         "retExtInfo": {}, "time": 1672051897447}
    df = by.parse_funding_history([f])
    assert df["funding_time"][0] == datetime(2022, 12, 26, 8, tzinfo=UTC) and df["funding_rate"][0] == 0.0001
    oi = {"retCode": 0, "retMsg": "OK", "result": {"symbol": "ETHUSDT", "category": "linear", "list": [
        {"openInterest": "411496.22000000", "timestamp": "1677832800000"},
        {"openInterest": "411484.61000000", "timestamp": "1677832500000"}], "nextPageCursor": "lastid%3D44487872"},
          "retExtInfo": {}, "time": 1677832955976}
    d = by.parse_open_interest([oi])
    assert d["oi_base"].to_list() == [411484.61, 411496.22] and d["ts"].is_sorted()  # re-ordered ascending


# ---- OKX ------------------------------------------------------------------------------------------------------
def test_okx_funding_three_month_wall(okx, emu):
    pages = list(okx.funding_history_pages("BTC-USDT-SWAP", datetime(2025, 1, 1, tzinfo=UTC), NOW))
    assert pages[-1].json()["data"] == []  # nothing beyond ~3 months
    data = pages[0].json()["data"]
    ts = [int(r["fundingTime"]) for r in data]
    assert ts == sorted(ts, reverse=True) and len(data) <= 400
    df = ok.parse_funding_history([p.json() for p in pages])
    assert df["funding_time"].min() >= NOW - timedelta(days=93)
    assert df.height == 92 * 3 + 1 and df["funding_time"].is_sorted()
    r = data[0]
    assert df.filter(pl.col("funding_time") == df["funding_time"].max())["funding_rate"][0] == float(r["realizedRate"])


def test_okx_paging_with_after(okx, emu):
    base = emu.base_urls()["OKX_BASE_URL"]
    r = httpx.get(base + "/api/v5/public/funding-rate-history", params={"instId": "ETH-USDT-SWAP", "limit": 10}).json()
    older = httpx.get(base + "/api/v5/public/funding-rate-history",
                      params={"instId": "ETH-USDT-SWAP", "limit": 10, "after": r["data"][-1]["fundingTime"]}).json()
    assert int(older["data"][0]["fundingTime"]) < int(r["data"][-1]["fundingTime"]) and len(older["data"]) == 10
    bad = httpx.get(base + "/api/v5/public/funding-rate-history", params={"instId": "NOPE-USDT-SWAP"}).json()
    assert bad["code"] == "51001"
    with pytest.raises(SourceError, match="51001"):
        list(okx.funding_history_pages("NOPE-USDT-SWAP", NOW - timedelta(days=1), NOW))


def test_okx_rubik_reach_and_units(okx):
    for period, reach in (("5m", 2), ("1H", 30), ("1D", 180)):
        body = okx.open_interest_volume("BTC", period, datetime(2025, 1, 1, tzinfo=UTC), NOW).json()
        df = ok.parse_open_interest_volume(body, "BTC")
        assert df["ts"].min() >= NOW - timedelta(days=reach) and df["ts"].max() == NOW
        assert (df["oi_usd"] > 1e9).all()
        assert all(isinstance(x, str) for x in body["data"][0])


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "truncated", "invalid_json"])
def test_okx_faults_retried(okx, emu, kind):
    emu.inject(Fault(api="okx", path="open-interest-volume", kind=kind, times=1, retry_after=0, delay=1.0))
    f = okx.open_interest_volume("ETH", "1H", NOW - timedelta(days=1), NOW)
    assert f.attempts == 2 and ok.parse_open_interest_volume(f.json(), "ETH").height == 25


def test_okx_drift(okx, emu):
    emu.inject(Fault(api="okx", path="funding", kind="drift", mutate=lambda b: {**b, "data": [{"instId": "BTC-USDT-SWAP"}]}))
    with pytest.raises(PayloadError, match="fundingTime"):
        list(okx.funding_history_pages("BTC-USDT-SWAP", NOW - timedelta(days=1), NOW))
    body = {"code": "0", "msg": "", "data": [{"instId": "BTC-USDT-SWAP", "fundingTime": "1703059200000", "realizedRate": 1e-4}]}
    with pytest.raises(PayloadError):
        ok.parse_funding_history([body])


def test_okx_reference_samples():
    f = {"code": "0", "msg": "", "data": [{"formulaType": "noRate", "fundingRate": "0.0000746604960499",
         "fundingTime": "1703059200000", "instId": "BTC-USD-SWAP", "instType": "SWAP", "method": "next_period",
         "realizedRate": "0.0000746572360545"}]}
    df = ok.parse_funding_history([f])
    assert df["funding_rate"][0] == 0.0000746572360545 and df["base"][0] == "BTC"
    assert df["funding_time"][0] == datetime(2023, 12, 20, 8, tzinfo=UTC)
    oi = {"code": "0", "msg": "", "data": [["1630502400000", "1713028741.6898", "39800873.554"]]}
    d = ok.parse_open_interest_volume(oi, "BTC")
    assert d["oi_usd"][0] == 1713028741.6898 and d["ts"][0] == datetime(2021, 9, 1, 13, 20, tzinfo=UTC)
    with pytest.raises(PayloadError):
        ok.parse_open_interest_volume({"code": "0", "msg": "", "data": [[1630502400000, 1.0, 2.0]]}, "BTC")
