"""Raw and clean assets of the non-CoinGecko sources, through Dagster, against the emulator."""

from __future__ import annotations

import shutil
import time
from datetime import date

import dagster as dg
import polars as pl
import pytest

from bench.phases import DERIVATIVE_PULLS  # the raw assets that follow the top perpetuals (``top_n``)
from pipelines.emulator.server import Fault, MarketEmulator
from pipelines.pulls.derivatives import PERP_TOP_N
from pipelines.runner import RANGE_END_TAG, RANGE_START_TAG, range_run_environment
from pipelines.settings import BASE_URLS
from pipelines.sources.fred import SERIES as FRED_SERIES
from pipelines.warehouse import Warehouse, sha256_file
from tests._weekly_world import CLEAN_TABLES
from tests.conftest import run_instance

RAW = [
    "raw_coingecko_markets",
    "coin_registry",
    "raw_binance_premium_index",
    "raw_binance_funding",
    "raw_binance_futures_stats",
    "raw_binance_klines",
    "raw_bybit_derivatives",
    "raw_okx_derivatives",
    "raw_fred_series",
]
CLEAN = [t.name for t in CLEAN_TABLES]
SOURCES = ("binance_fapi", "binance_spot", "binance_vision", "bybit", "okx", "fred")


def run(
    instance: dg.DagsterInstance, start: str, end: str, keys: list[str], run_config: dict | None = None
) -> dg.ExecuteInProcessResult:
    """``daily_job`` for ``keys`` over ``start..end`` as one run, with the planned events the project's runner
    records for a range (``range_run_environment``)."""
    from pipelines.definitions import make_definitions  # resources read the environment when built

    tags = {RANGE_START_TAG: start, RANGE_END_TAG: end}
    with range_run_environment(tags):
        return (
            make_definitions()
            .resolve_job_def("daily_job")
            .execute_in_process(
                instance=instance,
                tags=tags,
                raise_on_error=False,
                asset_selection=[dg.AssetKey(k) for k in keys],
                run_config=run_config,
            )
        )


def errors(result: dg.ExecuteInProcessResult) -> str:
    return " | ".join(
        str(e.event_specific_data.error.message)
        for e in result.all_events  # type: ignore[union-attr]
        if e.is_failure and getattr(e.event_specific_data, "error", None)
    )


def requests(emu: MarketEmulator) -> dict[str, int]:
    return {api: emu.count(api) for api in SOURCES}


def lake_hashes(wh: Warehouse) -> dict[str, str]:
    return {wh.rel(p): sha256_file(p) for p in sorted(wh.lake_dir.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def four_days_built(tmp_path_factory: pytest.TempPathFactory):
    """The four days pulled and cleaned once for the module (its own emulator); each test gets a copy."""
    from tests.conftest import TEST_NOW, point_env_at, run_instance

    with MarketEmulator(now=TEST_NOW) as emu, pytest.MonkeyPatch.context() as mp:
        wh_dir = point_env_at(mp, emu, tmp_path_factory.mktemp("four_days") / "warehouse")
        with run_instance() as instance:
            result = run(instance, "2025-11-20", "2025-11-23", RAW + CLEAN)
            assert result.success, errors(result)
        yield wh_dir, emu


@pytest.fixture
def four_days(four_days_built, env_for, tmp_path):
    """A copy of the four days' warehouse, the environment pointing at it and at the module's emulator (faults
    cleared before and after), and an instance of the test's own."""
    built, emu = four_days_built
    wh_dir = env_for(emu)
    shutil.copytree(built, wh_dir)
    emu.clear_faults()
    with run_instance() as instance:
        yield Warehouse(wh_dir), emu, instance
    emu.clear_faults()


def test_tables_rows_and_units(four_days) -> None:
    wh, _, _ = four_days
    f = wh.query("SELECT * FROM funding_rates")
    assert set(f["exchange"].unique()) == {"binance", "bybit", "okx"}
    assert (
        f["symbol"].n_unique() == PERP_TOP_N and f["symbol"].str.contains("-").sum() == 0
    )  # OKX ids normalized
    assert f["funding_rate"].abs().max() < 0.01  # fractions per interval, not percent
    assert set(f["interval_hours"].unique()) <= {1, 2, 4, 8}
    assert (f["funding_time"].dt.date() == f["date"]).all()  # partition = settlement day
    oi = wh.query(
        "SELECT exchange, ts, sum(oi_usd) AS oi FROM open_interest WHERE ts = TIMESTAMPTZ '2025-11-23 00:00:00+00' "
        "GROUP BY ALL"
    )
    total = oi["oi"].sum()
    assert 5e10 < total < 5e11, total  # tens of billions of USD across the three venues
    assert set(oi["exchange"]) == {"binance", "bybit", "okx"}
    per_day = wh.query("SELECT date, exchange, count(*) AS n FROM open_interest GROUP BY ALL")
    assert per_day.filter(pl.col("exchange") == "binance")["n"].to_list() == [PERP_TOP_N * 24] * 4
    ls = wh.query("SELECT * FROM long_short_ratio")
    assert (
        ls.height == 4 * 24 * PERP_TOP_N
        and ((ls["long_account"] + ls["short_account"] - 1).abs() < 1e-3).all()
    )
    assert ls["long_account"].is_between(0, 1).all()
    btc = wh.query("SELECT * FROM btc_hourly ORDER BY ts")
    assert btc.height == 96 and 3e4 < btc["close"].median() < 2e5 and (btc["high"] >= btc["low"]).all()
    vol = wh.query("SELECT * FROM perp_volume_daily")
    assert vol.height == 4 * PERP_TOP_N and vol["quote_volume_usd"].min() > 0
    macro = wh.query("SELECT * FROM macro_observations")
    assert set(macro["series_id"].to_list()) == set(FRED_SERIES)  # every series the client pulls
    dgs10 = macro.filter(pl.col("series_id") == "DGS10")
    assert (
        dgs10["value"].null_count() > 0 and (dgs10["value"].drop_nulls() > 0).all()
    )  # holidays null, never 0
    unrate = macro.filter((pl.col("series_id") == "UNRATE") & (pl.col("date") == pl.date(2025, 10, 1)))
    assert unrate.height in (0, 1) and (unrate.height == 0 or unrate["value"][0] is None)
    # lineage: every row names a stored raw response with its request record
    for table in ("funding_rates", "open_interest", "long_short_ratio", "btc_hourly", "perp_volume_daily"):
        files = wh.query(f"SELECT DISTINCT raw_file FROM {table}")["raw_file"].to_list()
        assert files and all(
            (wh.root / r).exists() and (wh.root / r).with_suffix(".meta.json").exists() for r in files
        )


def test_rerun_makes_no_request_and_rewrites_the_same_rows(four_days) -> None:
    wh, emu, instance = four_days
    before, raw_before = requests(emu), sorted(p.name for p in wh.raw_dir.rglob("*"))
    frames = {t: wh.query(f"SELECT * FROM {t} ORDER BY ALL") for t in ("funding_rates", "open_interest")}
    again = run(instance, "2025-11-20", "2025-11-23", RAW + CLEAN)
    assert again.success, errors(again)
    assert requests(emu) == before
    assert sorted(p.name for p in wh.raw_dir.rglob("*")) == raw_before
    for t, df in frames.items():
        assert wh.query(f"SELECT * FROM {t} ORDER BY ALL").equals(df)
    # a new day asks only for that day (one pull per symbol and endpoint)
    oi_before = emu.count("bybit", "open-interest")
    assert run(instance, "2025-11-24", "2025-11-24", RAW).success
    assert emu.count("bybit", "open-interest") - oi_before == PERP_TOP_N


def test_lasting_5xx_is_a_named_gap_and_the_run_goes_on(four_days, monkeypatch) -> None:
    from pipelines import gaps

    wh, emu, instance = four_days
    hashes = lake_hashes(wh)
    monkeypatch.setenv("BYBIT_MAX_ATTEMPTS", "1")
    emu.inject(Fault(api="bybit", path="/v5/market/open-interest", kind="500", times=None))
    result = run(instance, "2025-11-24", "2025-11-25", RAW + CLEAN)
    assert result.success, errors(result)  # missing data is a gap, not a failure
    ledger = [g for g in gaps.read_ledger(wh) if g.dataset == "bybit open interest"]
    assert {g.key for g in ledger} == set(
        wh.query("SELECT DISTINCT symbol FROM funding_rates")["symbol"].to_list()
    )
    assert all(
        g.reason == gaps.UNAVAILABLE and g.status == 500 and g.days == ("2025-11-24", "2025-11-25")
        for g in ledger
    )
    check = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.asset_key == dg.AssetKey("raw_bybit_derivatives")
    ]
    assert check and not check[0].passed and check[0].severity == dg.AssetCheckSeverity.WARN
    # the funding pulls of the same run were stored; nothing of the failed OI pulls (asked again next run)
    assert list((wh.raw_dir / "bybit/funding_history/symbol=BTCUSDT").glob("pull=20251124_20251125__*"))
    assert not list((wh.raw_dir / "bybit/open_interest/symbol=BTCUSDT").glob("pull=20251124_20251125__*"))
    assert {k: v for k, v in lake_hashes(wh).items() if k in hashes} == hashes
    # the API recovers: the next run asks again, stores, and the gap leaves the ledger
    emu.clear_faults()
    assert run(instance, "2025-11-24", "2025-11-25", RAW).success
    assert list((wh.raw_dir / "bybit/open_interest/symbol=BTCUSDT").glob("pull=20251124_20251125__*"))
    assert not [g for g in gaps.read_ledger(wh) if g.dataset == "bybit open interest"]


def test_drifted_payload_fails_clean_without_touching_partitions(four_days) -> None:
    wh, emu, instance = four_days
    hashes = lake_hashes(wh)

    def drift(body):
        for row in body["data"]:
            row["realizedRate"] = "n/a"
        return body

    emu.inject(Fault(api="okx", path="/funding-rate-history", kind="drift", times=None, mutate=drift))
    result = run(instance, "2025-11-20", "2025-11-25", RAW + ["funding_rates"])
    assert not result.success
    assert "documented shape" in errors(result) and "not a decimal" in errors(result)
    assert lake_hashes(wh) == hashes


def test_replay_from_recorded_raw_without_network(four_days, tmp_path, monkeypatch) -> None:
    wh, _, _ = four_days
    copy = tmp_path / "replay"
    shutil.copytree(wh.raw_dir, copy / "raw")
    monkeypatch.setenv("WAREHOUSE_DIR", str(copy))
    for var in BASE_URLS:
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    with run_instance() as instance:
        result = run(instance, "2025-11-20", "2025-11-23", ["coin_registry", *CLEAN])
        assert result.success, errors(result)
    replay = Warehouse(copy)
    for table in CLEAN:
        a = wh.query(f"SELECT * EXCLUDE (raw_file) FROM {table} ORDER BY ALL")
        b = replay.query(f"SELECT * EXCLUDE (raw_file) FROM {table} ORDER BY ALL")
        assert a.height and a.equals(b), table


def test_archive_days_are_verified_and_used(fresh_emulator: MarketEmulator, env_for) -> None:
    """Days older than Binance's 30-day REST window come from the metrics archive (zip + .CHECKSUM)."""
    wh = Warehouse(env_for(fresh_emulator))
    with run_instance() as instance:
        result = run(instance, "2025-10-20", "2025-10-21", RAW + ["open_interest", "long_short_ratio"])
        assert result.success, errors(result)
    zips = list((wh.raw_dir / "binance_vision/metrics").rglob("*.zip"))
    missing = list((wh.raw_dir / "binance_vision/metrics").rglob("*.xml"))  # 404: missing upstream, recorded
    assert fresh_emulator.count("binance_vision", r"\.zip$") == len(zips) + len(missing) == 2 * PERP_TOP_N
    assert fresh_emulator.count("binance_vision", r"\.CHECKSUM$") == len(zips)  # every zip was verified
    assert fresh_emulator.count("binance_fapi", "openInterestHist") == 0
    ls = wh.query("SELECT * FROM long_short_ratio")
    assert (
        ls["raw_file"].str.starts_with("raw/binance_vision/metrics/").all()
        and ls.height > 0.9 * 2 * 24 * PERP_TOP_N
    )


@pytest.mark.slow
def test_half_year_backfill_lands_every_table(fresh_emulator: MarketEmulator, env_for) -> None:
    first, last = "2025-06-01", "2025-12-01"
    days = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    wh = Warehouse(env_for(fresh_emulator))
    with run_instance() as instance:
        t0 = time.monotonic()
        # half a year of days as one run (past Binance's 30-day REST window into its archive, and the venues'
        # history windows), two perpetuals instead of the tests' eight: every day is pulled, cleaned and landed
        # by the same code whatever the number of symbols
        two_perps = {"ops": {k: {"config": {"top_n": 2}} for k in DERIVATIVE_PULLS}}
        result = run(instance, first, last, RAW + CLEAN, two_perps)
        took = time.monotonic() - t0
    assert result.success, errors(result)
    print(f"backfill {first}..{last}: {took:.1f} s, requests {requests(fresh_emulator)}")
    for table in ("funding_rates", "open_interest", "long_short_ratio", "btc_hourly", "perp_volume_daily"):
        assert len(list((wh.lake_dir / table).glob("date=*/data.parquet"))) == days, table
        if table != "long_short_ratio":  # Binance only: empty before the metrics archive start
            assert wh.query(f"SELECT count(DISTINCT date) AS n FROM {table}")["n"][0] == days, table
    assert wh.query("SELECT count(*) AS n FROM btc_hourly")["n"][0] == days * 24
    assert set(wh.query("SELECT DISTINCT series_id FROM macro_observations")["series_id"].to_list()) == set(
        FRED_SERIES
    )
