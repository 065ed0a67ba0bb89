"""Bybit v5 client and parsers against the emulator, and the reference doc's literal samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import polars as pl
import pytest

from pipelines.emulator.server import Fault
from pipelines.sources import bybit as by
from pipelines.sources.http import PayloadError, SourceError
from tests.conftest import SOURCES_NOW, emulator_client

NOW = SOURCES_NOW  # the shared emulator's clock (tests/conftest.py, fixture `emu`)


@pytest.fixture
def bybit(emu):
    yield from emulator_client(emu, by.BybitClient, "BYBIT_BASE_URL")


# ---- Bybit ----------------------------------------------------------------------------------------------------
def test_bybit_funding_pages_backward_newest_first(bybit):
    pages = list(
        bybit.funding_history_pages(
            "ETHUSDT", datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 11, 30, 16, tzinfo=UTC)
        )
    )
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
    r = httpx.get(
        base + "/v5/market/funding/history",
        params={"category": "linear", "symbol": "BTCUSDT", "startTime": 1750000000000},
    )
    assert r.status_code == 200 and r.json()["retCode"] == 10001
    r = httpx.get(
        base + "/v5/market/funding/history", params={"category": "linear", "symbol": "BTCUSDT", "limit": 500}
    )
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
    prices = pl.DataFrame(
        {"base": ["BTC"], "ts": [NOW - timedelta(days=31)], "price": [90_000.0]},
        schema={"base": pl.String, "ts": pl.Datetime("ms", "UTC"), "price": pl.Float64},
    )
    usd = by.attach_usd(df, prices)
    assert usd["oi_usd"].to_list() == pytest.approx((df["oi_base"] * 90_000).to_list())
    default = httpx.get(
        emu.base_urls()["BYBIT_BASE_URL"] + "/v5/market/open-interest",
        params={"category": "linear", "symbol": "BTCUSDT", "intervalTime": "5min"},
    ).json()
    assert len(default["result"]["list"]) == 50


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "truncated", "invalid_json"])
def test_bybit_faults_retried(bybit, emu, kind):
    emu.inject(Fault(api="bybit", path="funding", kind=kind, times=1, retry_after=0, delay=1.0))
    pages = list(bybit.funding_history_pages("BTCUSDT", NOW - timedelta(days=1), NOW))
    assert (
        pages[0].attempts == 2 and by.parse_funding_history([p.json() for p in pages]).height == 4
    )  # both ends inclusive


def test_bybit_drift(bybit, emu):
    def mutate(body):
        for r in body["result"]["list"]:
            r["fundingRate"] = float(r["fundingRate"])  # numbers no longer strings
        return body

    emu.inject(Fault(api="bybit", path="funding", kind="drift", mutate=mutate))
    pages = list(bybit.funding_history_pages("BTCUSDT", NOW - timedelta(days=1), NOW))
    with pytest.raises(PayloadError):
        by.parse_funding_history([p.json() for p in pages])


def test_bybit_page_without_settlement_times_named(bybit, emu):
    """Paging backwards needs each page's oldest settlement: a page whose rows lack their time is one error
    naming the field, not a page skipped or a loop that never ends."""

    def mutate(body):
        body["result"]["list"] = [{"symbol": "BTCUSDT", "fundingRate": "0.0001"}]
        return body

    emu.inject(Fault(api="bybit", path="funding", kind="drift", mutate=mutate))
    with pytest.raises(PayloadError, match="bad fundingRateTimestamp"):
        list(bybit.funding_history_pages("BTCUSDT", NOW - timedelta(days=1), NOW))


def test_bybit_open_interest_read_column_wise_equal_the_row_reader(bybit, monkeypatch):
    """The column-wise reader gives the row-by-row reader's frame, pages and all (two symbols, several pages each);
    a page that is not of the documented shape still fails naming what is wrong."""
    pages = [
        p.json()
        for sym in ("BTCUSDT", "ETHUSDT")
        for p in bybit.open_interest_pages(sym, "1h", NOW - timedelta(days=30), NOW)
    ]
    assert len(pages) > 4 and by._open_interest_columns(pages) is not None
    column_wise = by.parse_open_interest(pages, page_index=True)
    with monkeypatch.context() as m:
        m.setattr(by, "_open_interest_columns", lambda bodies: None)
        assert column_wise.equals(by.parse_open_interest(pages, page_index=True), null_equal=True)
    assert column_wise["base"].unique().sort().to_list() == ["BTC", "ETH"]
    for field, value, error in (
        ("openInterest", "12x", "not a decimal: '12x'"),
        ("openInterest", 12.5, "row lacks string fields"),
        ("timestamp", "-1677832800000", "not an epoch-ms string"),
    ):
        bad = json.loads(json.dumps(pages))
        bad[1]["result"]["list"][3][field] = value
        assert by._open_interest_columns(bad) is None
        with pytest.raises(PayloadError, match=error):
            by.parse_open_interest(bad)
    bad = json.loads(json.dumps(pages))
    del bad[0]["result"]["symbol"]
    with pytest.raises(PayloadError, match="result.symbol missing"):
        by.parse_open_interest(bad)


def test_bybit_reference_samples():
    f = {
        "retCode": 0,
        "retMsg": "OK",
        "result": {
            "category": "linear",
            "list": [{"symbol": "BTCUSDT", "fundingRate": "0.0001", "fundingRateTimestamp": "1672041600000"}],
        },
        "retExtInfo": {},
        "time": 1672051897447,
    }
    df = by.parse_funding_history([f])
    assert df["funding_time"][0] == datetime(2022, 12, 26, 8, tzinfo=UTC) and df["funding_rate"][0] == 0.0001
    oi = {
        "retCode": 0,
        "retMsg": "OK",
        "result": {
            "symbol": "ETHUSDT",
            "category": "linear",
            "list": [
                {"openInterest": "411496.22000000", "timestamp": "1677832800000"},
                {"openInterest": "411484.61000000", "timestamp": "1677832500000"},
            ],
            "nextPageCursor": "lastid%3D44487872",
        },
        "retExtInfo": {},
        "time": 1677832955976,
    }
    d = by.parse_open_interest([oi])
    assert d["oi_base"].to_list() == [411484.61, 411496.22] and d["ts"].is_sorted()  # re-ordered ascending
