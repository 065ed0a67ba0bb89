"""The real-world emulator profile, and one week published through it with Binance blocked in the region."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import dagster as dg
import pytest

from pipelines import gaps as gaps_mod
from pipelines.emulator.profiles import (
    BINANCE_451_BODY,
    EMPTY_OKX_INST,
    MISSING_FRED_SERIES,
    apply_profile,
)
from pipelines.emulator.server import MarketEmulator
from pipelines.runner import run_week
from pipelines.warehouse import Warehouse
from tests.conftest import TEST_NOW, run_instance

WEEK = "2025-11-17"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_profile_answers_as_real_users_meet_the_apis() -> None:
    with MarketEmulator(now=TEST_NOW) as emu:
        apply_profile(emu, "real-world")
        urls = emu.base_urls()
        status, body = _get(urls["BINANCE_FAPI_BASE_URL"] + "/fapi/v1/premiumIndex")
        assert status == 451 and body == BINANCE_451_BODY
        assert "restricted location" in json.loads(body)["msg"]
        assert _get(urls["BINANCE_SPOT_BASE_URL"] + "/api/v3/klines?symbol=BTCUSDT&interval=1h")[0] == 451
        assert _get(urls["FRED_BASE_URL"] + f"/graph/fredgraph.csv?id={MISSING_FRED_SERIES}")[0] == 404
        assert _get(urls["FRED_BASE_URL"] + "/graph/fredgraph.csv?id=DGS10")[0] == 200
        status, body = _get(
            urls["OKX_BASE_URL"] + f"/api/v5/public/funding-rate-history?instId={EMPTY_OKX_INST}"
        )
        assert status == 200 and json.loads(body)["data"] == []
        # daily archive files two days late: the day before the clock's is not published yet
        day = "2025-11-30"
        path = f"/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-{day}.zip"
        assert _get(urls["BINANCE_VISION_BASE_URL"] + path)[0] == 404
    with MarketEmulator(now=TEST_NOW) as emu:
        apply_profile(emu, "real-world", blocked_venue="bybit")
        status, body = _get(emu.base_urls()["BYBIT_BASE_URL"] + "/v5/market/funding/history?category=linear")
        assert status == 403 and b"CloudFront" in body
        assert _get(emu.base_urls()["BINANCE_FAPI_BASE_URL"] + "/fapi/v1/premiumIndex")[0] == 200
    with pytest.raises(ValueError, match="unknown emulator profile"):
        apply_profile(MarketEmulator(now=TEST_NOW), "mars")


def test_week_is_published_with_binance_blocked_and_the_gaps_named(env_for, monkeypatch) -> None:
    with MarketEmulator(now=TEST_NOW) as emu:
        apply_profile(emu, "real-world", blocked_venue="binance")
        wh = Warehouse(env_for(emu))
        monkeypatch.setenv("BINANCE_MAX_ATTEMPTS", "2")
        with run_instance() as instance:
            run = run_week(WEEK, instance, first_day="2025-11-01", derivatives_days=20)
            records = instance.get_records_for_run(
                run.daily_run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ).records
            evals = [r.event_log_entry.dagster_event.event_specific_data for r in records]
            checks = {(ev.asset_key.to_user_string(), ev.check_name): ev.passed for ev in evals}
        text = run.markdown.read_text()
        section = text.split("## Data gaps", 1)[1].split("## Sources", 1)[0]
        # the blocked venue is named once, with the datasets it would have given
        blocked = [
            line for line in section.splitlines() if "Binance: blocked from this region (HTTP 451)" in line
        ]
        assert len(blocked) == 1, section
        assert (
            "for funding, " in blocked[0]
            and "perp klines intraday" in blocked[0]
            and "premiumIndex" in blocked[0]
        )
        assert f"FRED series: not found (HTTP 404) for {MISSING_FRED_SERIES}." in section, section
        # the other FRED series are there: the Macro Update prints the rate path bills price, its judgment checked
        assert "Rate expectations: three-month Treasury bills priced" in text.split("## Macro Update", 1)[1]
        assert "Funding this week covers Bybit, OKX only." in section, section
        # Bybit OI priced with CoinGecko's daily close when Binance gives no price
        assert "Open interest this week covers Bybit, OKX only." in section, section
        assert "OKX funding: empty answer for XRPUSDT (2025-11-17..2025-11-23)." in section, section
        assert "weekly_btc_volatility: no rows for the week (its inputs are missing)" in section, section
        assert "Bybit DOGEUSDT: no funding settlements on 2025-11-20..2025-11-23" in section, section
        # the figures come from the other venues
        ex = wh.query(
            "SELECT DISTINCT exchange FROM funding_rates WHERE date >= DATE '2025-11-17' ORDER BY 1"
        )
        assert ex["exchange"].to_list() == ["bybit", "okx"]
        # the circuit breaker: Binance was asked a handful of times, not once per symbol and endpoint
        assert emu.count("binance_fapi") + emu.count("binance_spot") <= 12
        # the gaps are WARN checks, visible in the UI; the ledger holds them for the report
        assert checks[("raw_binance_funding", "source_gaps")] is False
        assert checks[("raw_fred_series", "source_gaps")] is False
        assert any(g.reason == gaps_mod.BLOCKED and g.status == 451 for g in gaps_mod.read_ledger(wh))
        # nothing stored for what failed: the next run asks again
        assert not (wh.raw_dir / "binance" / "funding_rate").exists()
        assert not list((wh.raw_dir / "fred").rglob(f"{MISSING_FRED_SERIES}.csv"))
