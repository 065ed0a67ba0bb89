"""The weekly metric assets through Dagster on a synthetic lake: a backfill of consecutive weeks that is point in
time (recomputing a week after later data lands gives the same bytes), values equal to direct computations from
the lake, clear failures for missing inputs, nulls for missing optional inputs, and blocking checks that fire."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

import assets.weekly.derivatives as derivatives
import assets.weekly.macro as macro
import assets.weekly.market as market
import assets.weekly.summary as summary
from assets._lake_io import LAKE_IO_MANAGER, LakeIOManager
from pipelines.resources import WarehouseResource
from pipelines.schemas import TABLES
from pipelines.warehouse import Warehouse, sha256_file
from tests._weekly_world import build, write_lake
from tests.conftest import run_instance

ASSETS = [
    getattr(mod, n)
    for mod in (market, derivatives, macro, summary)
    for n in sorted(dir(mod))
    if n.endswith("_asset") and isinstance(getattr(mod, n), dg.AssetsDefinition)
]  # every weekly table has one shape, so every one is held point in time below
TABLE_NAMES = sorted(a.key.to_user_string() for a in ASSETS)
WEEKS = ["2025-04-14", "2025-04-21"]
EARLY = datetime(2025, 4, 28, tzinfo=UTC)  # the lake as it stood at the close of week 2025-04-21
LATE = datetime(2025, 5, 12, tzinfo=UTC)  # two more weeks landed, plus a new registry snapshot


def run(root: Path, week: str, instance, selection=None) -> dg.ExecuteInProcessResult:
    warehouse = WarehouseResource(root=str(root))
    return dg.materialize(
        selection or ASSETS,
        partition_key=week,
        resources={"warehouse": warehouse, LAKE_IO_MANAGER: LakeIOManager(warehouse=warehouse)},
        instance=instance,
        raise_on_error=False,
    )


def hashes(wh: Warehouse, week: str) -> dict[str, str]:
    return {t: sha256_file(wh.partition_path(TABLES[t], week)) for t in TABLE_NAMES}


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        f"{e.asset_key.to_user_string()}.{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]


@pytest.fixture(scope="module")
def world() -> dict[str, pl.DataFrame]:
    return build()


@pytest.fixture(scope="module")
def backfill(world, tmp_path_factory):
    """Weeks 2025-04-14 and 2025-04-21 from the early lake; then the lake grows and everything is recomputed."""
    root = tmp_path_factory.mktemp("weekly")
    wh = write_lake(root, world, EARLY)
    with run_instance() as instance:
        early = {}
        for week in WEEKS:
            result = run(root, week, instance)
            assert result.success, week
            assert failed_checks(result) == [], week
            early[week] = hashes(wh, week)
        frames = {t: wh.query(f"SELECT * FROM {t} ORDER BY ALL") for t in TABLE_NAMES}
        write_lake(root, world, LATE)
        late_result = {week: run(root, week, instance) for week in [*reversed(WEEKS), "2025-04-28"]}
        yield wh, early, late_result, frames, instance


def test_backfill_is_point_in_time(backfill) -> None:
    wh, early, late_result, _, _ = backfill
    for week in WEEKS:
        assert late_result[week].success
        assert hashes(wh, week) == early[week], week
    # the next week exists now, passes its checks, and differs from the weeks before
    assert late_result["2025-04-28"].success and failed_checks(late_result["2025-04-28"]) == []
    assert hashes(wh, "2025-04-28") != early["2025-04-21"]
    weeks = wh.query("SELECT DISTINCT week FROM weekly_leverage ORDER BY week")["week"].to_list()
    assert weeks == [date(2025, 4, 14), date(2025, 4, 21), date(2025, 4, 28)]


def test_a_week_computed_before_its_data_landed_changes_when_it_does(world, tmp_path: Path) -> None:
    """The point-in-time test above can fail: a lake cut a day early gives a different week."""
    write_lake(tmp_path, world, datetime(2025, 4, 27, tzinfo=UTC))
    with run_instance() as instance:
        run(tmp_path, "2025-04-21", instance, [derivatives.weekly_leverage_asset])  # the last day missing
        before = sha256_file(Warehouse(tmp_path).partition_path(TABLES["weekly_leverage"], "2025-04-21"))
        write_lake(tmp_path, world, EARLY)
        assert run(tmp_path, "2025-04-21", instance, [derivatives.weekly_leverage_asset]).success
    after = sha256_file(Warehouse(tmp_path).partition_path(TABLES["weekly_leverage"], "2025-04-21"))
    assert before != after


def test_values_equal_direct_computations_from_the_lake(backfill) -> None:
    wh, _, _, frames, _ = backfill
    week = date(2025, 4, 21)
    totals = wh.query(
        "SELECT date, sum(market_cap_usd) AS t FROM coin_daily WHERE date IN (DATE '2025-04-20', DATE '2025-04-27') "
        "GROUP BY date ORDER BY date"
    )["t"].to_list()
    tm = frames["weekly_total_market_cap"].filter(pl.col("week") == week).row(0, named=True)
    assert tm["mcap_open_usd"] == pytest.approx(totals[0], rel=1e-12)
    assert tm["mcap_close_usd"] == pytest.approx(totals[1], rel=1e-12)

    # spot volume: eligible coins only (tether and pax-gold excluded), Monday..Sunday
    spot = wh.query(
        "SELECT sum(volume_24h_usd) AS v FROM coin_daily WHERE date BETWEEN DATE '2025-04-21' AND DATE '2025-04-27' "
        "AND coin_id NOT IN ('tether', 'pax-gold')"
    )["v"][0]
    perp = wh.query(
        "SELECT sum(quote_volume_usd) AS v FROM perp_volume_daily WHERE date BETWEEN DATE '2025-04-21' AND DATE '2025-04-27'"
    )["v"][0]
    vol = frames["weekly_volume"].filter(pl.col("week") == week).row(0, named=True)
    assert vol["spot_volume_usd"] == pytest.approx(spot, rel=1e-12)
    assert vol["perp_to_spot"] == pytest.approx(perp / spot, rel=1e-12)

    # S&P 500: Friday close to Friday close (Good Friday 2025-04-18 is blank, so the open is Thursday's)
    sp = dict(
        wh.query(
            "SELECT date, value FROM macro_observations WHERE series_id = 'SP500' "
            "AND date IN (DATE '2025-04-17', DATE '2025-04-25')"
        ).iter_rows()
    )
    ca = (
        frames["weekly_cross_asset"]
        .filter((pl.col("week") == week) & (pl.col("asset") == "sp500"))
        .row(0, named=True)
    )
    assert ca["open_date"] == date(2025, 4, 17)
    assert ca["return_pct"] == pytest.approx(
        (sp[date(2025, 4, 25)] / sp[date(2025, 4, 17)] - 1) * 100, rel=1e-12
    )

    # 7-day hourly RV: numpy std of the 168 hourly log returns ending next Monday 00:00
    close = wh.query(
        "SELECT close FROM btc_hourly WHERE ts >= TIMESTAMPTZ '2025-04-20 23:00:00+00' "
        "AND ts < TIMESTAMPTZ '2025-04-27 23:00:00+00' + INTERVAL 1 HOUR ORDER BY ts"
    )["close"].to_numpy()
    assert close.size == 169
    rv = frames["weekly_btc_volatility"].filter(pl.col("week") == week)["rv7_hourly_pct"][0]
    assert rv == pytest.approx(np.std(np.diff(np.log(close)), ddof=1) * math.sqrt(24 * 365) * 100, rel=1e-9)

    uni = frames["weekly_universe"].filter(pl.col("week") == week).sort("rank")
    assert uni.height == 100 and uni["coin_id"][0] == "bitcoin"
    assert not {"tether", "pax-gold"} & set(uni["coin_id"].to_list())


def test_metadata_shows_schema_rows_preview_and_checks(backfill) -> None:
    *_, instance = backfill
    for name in TABLE_NAMES:
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        meta = event.asset_materialization.metadata
        assert meta["dagster/row_count"].value >= 0, name
        spec = next(a.specs_by_key[dg.AssetKey(name)] for a in ASSETS if dg.AssetKey(name) in a.keys)
        assert spec.metadata["dagster/column_schema"] == TABLES[name].dagster_column_schema(), name
        assert "preview" in meta and any(k.startswith("check_") for k in meta), name


def test_a_missing_required_table_fails_naming_it(world, tmp_path: Path) -> None:
    write_lake(tmp_path, world, EARLY, skip=("funding_rates", "btc_hourly", "macro_observations"))
    with run_instance() as instance:
        result = run(tmp_path, "2025-04-21", instance)
    assert not result.success
    errors = {e.step_key: e.event_specific_data.error.message for e in result.all_events if e.is_step_failure}
    assert set(errors) == {
        "weekly_leverage",
        "weekly_btc_volatility",
        "weekly_cross_asset",
        "weekly_crypto_rank",
        "weekly_macro",
        "weekly_rate_expectations",
    }
    assert "'funding_rates' is not in the lake" in errors["weekly_leverage"]
    assert "'btc_hourly' is not in the lake" in errors["weekly_btc_volatility"]
    assert "'macro_observations' is not in the lake" in errors["weekly_macro"]
    assert "'macro_observations' is not in the lake" in errors["weekly_rate_expectations"]
    assert not Warehouse(tmp_path).has_partition(TABLES["weekly_leverage"], "2025-04-21")


def test_missing_optional_long_short_gives_nulls_and_says_so(world, tmp_path: Path) -> None:
    write_lake(tmp_path, world, EARLY, skip=("long_short_ratio",))
    with run_instance() as instance:
        result = run(tmp_path, "2025-04-21", instance, [derivatives.weekly_leverage_asset])
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("weekly_leverage")
        ).asset_materialization.metadata
    assert result.success
    assert failed_checks(result) == ["weekly_leverage.leverage_optional_inputs"]
    row = Warehouse(tmp_path).read_partition(TABLES["weekly_leverage"], "2025-04-21").row(0, named=True)
    assert row["long_short_ratio_mean"] is None and row["funding_8h_mean"] is not None
    assert "long_short_ratio" in meta["missing_inputs"].value


def test_blocking_checks_fire_on_wrong_units_and_gaps(world, tmp_path: Path) -> None:
    # funding stored in percent instead of a fraction, one perp-volume day missing
    write_lake(
        tmp_path,
        world,
        EARLY,
        transform={
            "funding_rates": lambda f: f.with_columns(pl.col("funding_rate") * 100),
            "perp_volume_daily": lambda f: f.filter(pl.col("date") != date(2025, 4, 23)),
        },
    )
    with run_instance() as instance:
        result = run(
            tmp_path,
            "2025-04-21",
            instance,
            [derivatives.weekly_leverage_asset, derivatives.weekly_volume_asset],
        )
    assert set(failed_checks(result)) == {"weekly_leverage.leverage_ranges", "weekly_volume.volume_coverage"}
    vol = Warehouse(tmp_path).read_partition(TABLES["weekly_volume"], "2025-04-21").row(0, named=True)
    assert vol["perp_volume_usd"] is None and vol["spot_volume_usd"] is not None


def test_the_registry_of_a_week_is_the_last_snapshot_taken_by_its_close(tmp_path) -> None:
    """Snapshot names are YYYYMMDDTHHMMSSZ stamps: compared as dates, not as ISO strings (which always fell back
    to the earliest snapshot)."""
    from assets.weekly.shape import registry_as_of
    from pipelines.schemas import COIN_REGISTRY
    from pipelines.warehouse import Warehouse

    wh = Warehouse(tmp_path)
    for snap, cat in (
        ("20251101T060000Z", "old"),
        ("20251120T060000Z", "new"),
        ("20251201T060000Z", "later"),
    ):
        wh.write_partition(
            COIN_REGISTRY,
            snap,
            pl.DataFrame(
                {
                    "coin_id": ["x"],
                    "symbol": ["x"],
                    "name": ["X"],
                    "market_cap_rank": [1],
                    "market_cap_usd": [1.0],
                    "categories": [[cat]],
                    "pulled_at": [datetime(2025, 11, 1, tzinfo=UTC)],
                },
                schema_overrides={"market_cap_rank": pl.Int32, "pulled_at": pl.Datetime("ms", "UTC")},
            ),
        )
    assert registry_as_of(wh, date(2025, 11, 23))["categories"].to_list() == [["new"]]
    assert registry_as_of(wh, date(2025, 11, 20))["categories"].to_list() == [["new"]]
    assert registry_as_of(wh, date(2025, 10, 1))["categories"].to_list() == [
        ["old"]
    ]  # before any: the earliest


def test_movers_take_the_registry_known_at_the_weeks_close(world, tmp_path: Path) -> None:
    """A later registry snapshot that reclassifies the week's top gainer (say, as a stablecoin) must not change the
    week's movers: the registry is taken as known at the close, as for every other weekly table."""
    week = "2025-04-21"
    wh = write_lake(tmp_path, world, EARLY)
    before = summary.compute_movers(wh, week).df
    top = before.filter((pl.col("kind") == "gainer") & (pl.col("position") == 1))["coin_id"][0]

    def reclassify(registry: pl.DataFrame) -> pl.DataFrame:
        late = registry["snapshot"] == registry["snapshot"].max()
        return registry.with_columns(
            categories=pl.when(late & (pl.col("coin_id") == top))
            .then(pl.lit(["usd-stablecoin"]))
            .otherwise(pl.col("categories"))
        )

    write_lake(tmp_path, world, LATE, transform={"coin_registry": reclassify})
    assert summary.compute_movers(wh, week).df.equals(before)
    # the same snapshot does reach a week that closes after it: the check above can fail
    late_week = "2025-05-05"
    if summary.compute_movers(wh, late_week).df["coin_id"].is_in([top]).any():
        raise AssertionError(f"{top} reclassified as a stablecoin is still a mover of {late_week}")
