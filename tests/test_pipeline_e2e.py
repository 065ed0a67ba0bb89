"""One week through Dagster, raw pulls to report, into a temporary warehouse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pytest

from pipelines.emulator.server import MarketEmulator
from pipelines.narrative.format import fmt, pct, usd_compact
from pipelines.runner import run_week
from pipelines.warehouse import Warehouse
from tests.conftest import run_instance

WEEK = "2025-11-17"


@pytest.fixture(scope="module")
def week_run(week_from_november):
    """The week run once for the session (tests/conftest.py): the tests below only read what it left, except
    test_stored_days_are_not_pulled_again, which runs the same week again on top (last, and leaving the same
    bytes)."""
    from tests.conftest import point_env_at

    built = week_from_november
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, built.emulator, built.warehouse)
        yield built.run, Warehouse(built.warehouse), built.emulator, built.instance


def test_report_numbers_equal_a_direct_query_of_the_lake(week_run) -> None:
    run, wh, _, _ = week_run
    text = run.markdown.read_text()
    # independent of the weekly tables: straight from the clean daily lake
    totals = wh.query(
        """
        SELECT date, sum(market_cap_usd) AS total,
               max(price_usd) FILTER (WHERE coin_id = 'bitcoin') AS btc
        FROM coin_daily WHERE date IN (DATE '2025-11-16', DATE '2025-11-23') GROUP BY date ORDER BY date
        """
    )
    (open_total, close_total), (btc0, btc1) = totals["total"].to_list(), totals["btc"].to_list()
    assert fmt("updown_pct", (close_total / open_total - 1) * 100) in text  # the move: the coins tracked
    assert pct((btc1 / btc0 - 1) * 100) in text
    # the levels: the market's total. The only /global observation (the run's clock, 2025-12-02) came more than
    # two days after the week closed, so both ends are the top 100 over the share measured on real listings
    top = wh.query(
        "SELECT date, sum(market_cap_usd) AS top FROM (SELECT date, market_cap_usd, row_number() OVER "
        "(PARTITION BY date ORDER BY market_cap_usd DESC) AS r FROM coin_daily WHERE market_cap_usd > 0 AND date IN "
        "(DATE '2025-11-16', DATE '2025-11-23')) WHERE r <= 100 GROUP BY date ORDER BY date"
    )["top"].to_list()
    market_open, market_close = (v / 0.986 for v in top)
    assert f"from about {usd_compact(market_open)} to about {usd_compact(market_close)}" in text
    assert "divided by 98.6%, their share of the global figure measured on real market listings" in text
    assert close_total < market_close < 3e12 < open_total < market_open  # the emulated November sell-off
    # the headline says what the data says: the total crossed below $3T during the week
    assert "Below $3T" in run.markdown.read_text().splitlines()[0]


def test_outputs_manifest_html_and_catalog(week_run) -> None:
    run, wh, _, _ = week_run
    manifest = json.loads((run.report_dir / "manifest.json").read_text())
    tables = {i["table"] for i in manifest["inputs"]}
    # the summary, movers and the clean days behind them, among every weekly and clean table the report read
    assert {"weekly_market_summary", "weekly_movers", "coin_daily"} <= tables
    for entry in manifest["inputs"]:
        from pipelines.warehouse import sha256_file

        assert sha256_file(wh.root / entry["path"]) == entry["sha256"]
    assert manifest["code"]["source_sha256"]
    html = run.html.read_text()
    # self-contained: nothing loaded from elsewhere (inline SVG's xmlns is a name, not a fetch)
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert (wh.root / "catalog.duckdb").exists()
    # every clean row points back at the raw response it came from
    raw = wh.query("SELECT DISTINCT raw_file FROM coin_daily WHERE date = DATE '2025-11-23'")[
        "raw_file"
    ].to_list()
    assert raw and all(
        (wh.root / r).exists() and (wh.root / r).with_suffix(".meta.json").exists() for r in raw
    )


def test_materializations_carry_metadata_and_checks_pass(week_run) -> None:
    run, _, _, instance = week_run
    for key in ("coin_daily", "weekly_market_summary", "weekly_movers", "weekly_report"):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None, key
        meta = event.asset_materialization.metadata
        assert meta, key
    summary = instance.get_latest_materialization_event(
        dg.AssetKey("weekly_market_summary")
    ).asset_materialization
    assert summary.metadata["dagster/row_count"].value == 1
    report = instance.get_latest_materialization_event(dg.AssetKey("weekly_report")).asset_materialization
    assert report.metadata["report"].value.startswith("# Crypto ")
    assert report.metadata["report"].value.splitlines()[0] == run.markdown.read_text().splitlines()[0]
    checks = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("weekly_report"), "report_claims_match_tables"), limit=1
    )
    assert checks and checks[0].status.value == "SUCCEEDED"


def test_stored_days_are_not_pulled_again(week_run, monkeypatch: pytest.MonkeyPatch) -> None:
    import assets.report as rep

    run, wh, emu, instance = week_run
    before = emu.count("coingecko", "market_chart")
    files = sorted(p.name for p in wh.raw_dir.rglob("*.json"))
    checked_again = []
    real = rep.week_claim_results
    monkeypatch.setattr(rep, "week_claim_results", lambda *a: checked_again.append(a) or real(*a))
    again = run_week(WEEK, instance, first_day="2025-11-01")
    # the report step checked every claim before publishing; its blocking check kept those results (same files)
    assert checked_again == []
    check = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("weekly_report"), "report_claims_match_tables"), limit=1
    )[0]
    evaluation = check.event.dagster_event.event_specific_data
    assert check.status.value == "SUCCEEDED" and evaluation.metadata["claims"].value > 10
    assert emu.count("coingecko", "market_chart") == before  # nothing asked again
    assert sorted(p.name for p in wh.raw_dir.rglob("*.json")) == files
    assert again.markdown.read_text() == run.markdown.read_text()


def test_a_day_that_cannot_be_pulled_fails_clearly_and_keeps_the_rest(
    fresh_emulator: MarketEmulator, env_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.emulator.server import Fault
    from pipelines.runner import RunFailed

    wh_dir = env_for(fresh_emulator)
    monkeypatch.setenv("COINGECKO_MAX_ATTEMPTS", "2")
    fresh_emulator.inject(Fault(api="coingecko", path="/coins/ethereum/market_chart", kind="500", times=None))
    with run_instance() as instance, pytest.raises(RunFailed) as err:
        run_week(WEEK, instance, first_day="2025-11-10")
    assert "ethereum" in str(err.value) and "could not be pulled" in str(err.value)
    stored = {p.name for p in (Path(wh_dir) / "raw/coingecko/market_chart_range").iterdir()}
    assert "coin=bitcoin" in stored and "coin=ethereum" not in stored
