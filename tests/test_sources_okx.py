"""OKX v5 client and parsers against the emulator, and the reference doc's literal samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import polars as pl
import pytest

from pipelines.emulator.server import Fault
from pipelines.sources import okx as ok
from pipelines.sources.http import PayloadError, SourceError
from tests.conftest import SOURCES_NOW, emulator_client

NOW = SOURCES_NOW  # the shared emulator's clock (tests/conftest.py, fixture `emu`)


@pytest.fixture
def okx(emu):
    yield from emulator_client(emu, ok.OkxClient, "OKX_BASE_URL")


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
    assert df.filter(pl.col("funding_time") == df["funding_time"].max())["funding_rate"][0] == float(
        r["realizedRate"]
    )


def test_okx_paging_with_after(okx, emu):
    base = emu.base_urls()["OKX_BASE_URL"]
    r = httpx.get(
        base + "/api/v5/public/funding-rate-history", params={"instId": "ETH-USDT-SWAP", "limit": 10}
    ).json()
    older = httpx.get(
        base + "/api/v5/public/funding-rate-history",
        params={"instId": "ETH-USDT-SWAP", "limit": 10, "after": r["data"][-1]["fundingTime"]},
    ).json()
    assert (
        int(older["data"][0]["fundingTime"]) < int(r["data"][-1]["fundingTime"]) and len(older["data"]) == 10
    )
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
    emu.inject(
        Fault(
            api="okx",
            path="funding",
            kind="drift",
            mutate=lambda b: {**b, "data": [{"instId": "BTC-USDT-SWAP"}]},
        )
    )
    with pytest.raises(PayloadError, match="fundingTime"):
        list(okx.funding_history_pages("BTC-USDT-SWAP", NOW - timedelta(days=1), NOW))
    body = {
        "code": "0",
        "msg": "",
        "data": [{"instId": "BTC-USDT-SWAP", "fundingTime": "1703059200000", "realizedRate": 1e-4}],
    }
    with pytest.raises(PayloadError):
        ok.parse_funding_history([body])


def test_okx_reference_samples():
    f = {
        "code": "0",
        "msg": "",
        "data": [
            {
                "formulaType": "noRate",
                "fundingRate": "0.0000746604960499",
                "fundingTime": "1703059200000",
                "instId": "BTC-USD-SWAP",
                "instType": "SWAP",
                "method": "next_period",
                "realizedRate": "0.0000746572360545",
            }
        ],
    }
    df = ok.parse_funding_history([f])
    assert df["funding_rate"][0] == 0.0000746572360545 and df["base"][0] == "BTC"
    assert df["funding_time"][0] == datetime(2023, 12, 20, 8, tzinfo=UTC)
    oi = {"code": "0", "msg": "", "data": [["1630502400000", "1713028741.6898", "39800873.554"]]}
    d = ok.parse_open_interest_volume(oi, "BTC")
    assert d["oi_usd"][0] == 1713028741.6898 and d["ts"][0] == datetime(2021, 9, 1, 13, 20, tzinfo=UTC)
    with pytest.raises(PayloadError):
        ok.parse_open_interest_volume({"code": "0", "msg": "", "data": [[1630502400000, 1.0, 2.0]]}, "BTC")
