"""The data quality checks fire on bad data injected through the emulator (end to end) or written into the lake."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import quality
from pipelines.emulator.server import Fault, MarketEmulator
from pipelines.runner import RunFailed, run_week
from pipelines.schemas import COIN_DAILY, TABLES, Column, Table
from pipelines.warehouse import Warehouse
from tests.conftest import point_env_at, run_instance

WEEK = "2025-11-17"
CLOSE_20 = int(datetime(2025, 11, 21, tzinfo=timezone.utc).timestamp() * 1000)  # the close of 2025-11-20


def _in_close_hour(t: int) -> bool:
    return CLOSE_20 <= t < CLOSE_20 + 3_600_000


def _edit(series: str, fn):
    def mutate(body: dict) -> dict:
        return {**body, series: [[t, fn(v)] if _in_close_hour(t) else [t, v] for t, v in body[series]]}

    return mutate


def _drop_close(body: dict) -> dict:
    return {
        k: [p for p in v if not _in_close_hour(p[0])] if isinstance(v, list) else v for k, v in body.items()
    }


def _drift(emulator: MarketEmulator, path: str, mutate) -> None:
    """Every CoinGecko answer whose path matches ``path`` (a regex) is passed through ``mutate`` from now on."""
    emulator.inject(Fault(api="coingecko", path=path, kind="drift", times=None, mutate=mutate))


@pytest.fixture
def env(emulator: MarketEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    wh = tmp_path / "warehouse"
    point_env_at(monkeypatch, emulator, wh)
    monkeypatch.setenv("COINGECKO_TOP_N", "120")
    emulator.clear_faults()
    yield wh
    emulator.clear_faults()


def _evaluations(instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    out = {}
    for rec in instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ):
        ev = rec.event_log_entry.dagster_event.event_specific_data
        out.setdefault(ev.check_name, ev)  # newest first
    return out


def _run_expecting_failure(wh: Path, check: str, needle: str) -> None:
    with run_instance() as instance:
        with pytest.raises(RunFailed):
            run_week(WEEK, instance, first_day="2025-11-16")
        ev = _evaluations(instance)[check]
        assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
        assert needle in ev.metadata["detail"].value, ev.metadata["detail"].value
    assert not (wh / "reports" / WEEK).exists()  # nothing published from the bad days


def test_tenfold_market_cap_jump_blocks(env: Path, emulator: MarketEmulator) -> None:
    _drift(emulator, "/coins/solana/market_chart", _edit("market_caps", lambda v: v * 10))
    _run_expecting_failure(env, "market_cap_outliers", "2025-11-20: solana market cap x10")


def test_bitcoin_missing_on_a_day_blocks(env: Path, emulator: MarketEmulator) -> None:
    _drift(emulator, "/coins/bitcoin/market_chart", _drop_close)
    _run_expecting_failure(env, "coverage", "2025-11-20: bitcoin missing")


def test_coverage_below_ninety_percent_blocks(env: Path, emulator: MarketEmulator) -> None:
    # every coin whose id starts with a letter from c to m loses the close of 2025-11-20 (about a third)
    _drift(emulator, "^/coins/[c-m][^/]*/market_chart", _drop_close)
    _run_expecting_failure(env, "coverage", "fewer than 108 (90% of 120)")


def test_stablecoin_off_peg_warns_without_blocking(env: Path, emulator: MarketEmulator) -> None:
    _drift(emulator, "/coins/tether/market_chart", _edit("prices", lambda v: v * 0.95))
    with run_instance() as instance:
        run = run_week(WEEK, instance, first_day="2025-11-16")
        ev = _evaluations(instance)["stablecoin_peg"]
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.WARN
    assert "2025-11-20: tether at $0.9" in ev.metadata["detail"].value
    assert run.markdown.exists()


def test_weekly_guard_blocks_a_report_from_a_bad_lake(env: Path) -> None:
    with run_instance() as instance:
        run = run_week(WEEK, instance, first_day="2025-11-16")
    wh = Warehouse(env)
    before = run.markdown.read_bytes()
    day = wh.read_partition(COIN_DAILY, "2025-11-20").filter(pl.col("coin_id") != "ethereum")
    wh.write_partition(COIN_DAILY, "2025-11-20", day)  # the lake went bad after the daily run
    run.markdown.unlink()
    from pipelines.definitions import make_definitions

    with run_instance() as instance:
        result = (
            make_definitions()
            .resolve_job_def("weekly_job")
            .execute_in_process(instance=instance, partition_key=WEEK, raise_on_error=False)
        )
        assert not result.success
        ev = _evaluations(instance)["week_inputs_quality"]
    assert not ev.passed and "2025-11-20: ethereum missing" in ev.metadata["detail"].value
    assert not run.markdown.exists() and before


def _lake_with(tmp_path: Path, rows_by_day: dict[date, pl.DataFrame]) -> Warehouse:
    wh = Warehouse(tmp_path / "wh")
    for d, f in rows_by_day.items():
        wh.write_partition(COIN_DAILY, d.isoformat(), f)
    return wh


def _rows(d: date, coins: list[str], minutes: int = 3) -> pl.DataFrame:
    t = datetime(d.year, d.month, d.day, tzinfo=timezone.utc) + timedelta(days=1, minutes=minutes)
    return pl.DataFrame(
        {
            "coin_id": coins,
            "symbol": coins,
            "name": coins,
            "price_usd": [1.0] * len(coins),
            "market_cap_usd": [1e9] * len(coins),
            "volume_24h_usd": [1e6] * len(coins),
            "observed_at": [t] * len(coins),
            "raw_file": ["raw/x.json"] * len(coins),
        }
    ).with_columns(pl.col("observed_at").dt.cast_time_unit("ms"))


def test_stale_observation_and_duplicates_in_the_lake(tmp_path: Path) -> None:
    d = date(2025, 11, 20)
    wh = _lake_with(
        tmp_path, {d: _rows(d, ["bitcoin", "ethereum"]), d + timedelta(days=1): _rows(d, ["bitcoin"], 0)}
    )
    assert quality.stale(wh, [d]).passed
    stale = quality.stale(wh, [d + timedelta(days=1)])  # observed at the close of the day before: a day stale
    assert not stale.passed and "bitcoin" in stale.problems[0]
    assert quality.duplicates(wh, [d]).passed
    path = wh.partition_path(COIN_DAILY, d.isoformat())
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)  # a writer that bypassed the schema
    dupes = quality.duplicates(wh, [d])
    assert dupes.problems == ["2025-11-20: bitcoin 2 times"]


def test_funding_outliers_only_when_the_table_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = date(2025, 11, 20)
    wh = _lake_with(tmp_path, {d: _rows(d, ["bitcoin"])})
    monkeypatch.delitem(TABLES, "funding_rates", raising=False)
    assert quality.funding(wh, [d]).skipped == "no funding_rates table declared"
    table = Table(
        "funding_rates",
        "test",
        "date",
        (
            Column("exchange", pa.string(), ""),
            Column("symbol", pa.string(), ""),
            Column("funding_rate", pa.float64(), ""),
        ),
    )
    monkeypatch.setitem(TABLES, "funding_rates", table)
    assert quality.funding(wh, [d]).skipped == "funding_rates has no data in the lake"
    wh.write_partition(
        table,
        d.isoformat(),
        pl.DataFrame(
            {
                "exchange": ["binance", "okx"],
                "symbol": ["BTCUSDT", "BTC-USDT-SWAP"],
                "funding_rate": [0.0001, 0.05],
            }
        ),
    )
    out = quality.funding(wh, [d])
    assert out.checked == 2 and len(out.problems) == 1 and "0.05" in out.problems[0]
