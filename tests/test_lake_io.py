"""``LakeIOManager`` (assets/_lake_io.py): the one place a clean or weekly table's partitions are written, with their
metadata. A range run gives each partition its own materialization metadata, merged with what the body added;
a range of weeks with a failed week writes the others and then fails naming it; outside a run the metadata goes
to the output; nothing is ever loaded through it."""

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets._clean import clean_asset
from assets._lake_io import LAKE_IO_MANAGER, LakeIOManager, LakePartitions
from assets.weekly.shape import Computed, weekly_table_asset
from pipelines.calendar import RANGE_END_TAG, RANGE_START_TAG
from pipelines.resources import WarehouseResource
from pipelines.schemas import PERP_VOLUME_DAILY, WEEKLY_VOLUME
from pipelines.warehouse import Warehouse, sha256_file

DAYS = ["2025-11-03", "2025-11-04", "2025-11-05"]


def perp_volume(day: str) -> pl.DataFrame:
    """A perp_volume_daily partition of the day's own rows (one more symbol per day)."""
    n = DAYS.index(day) + 1
    return pl.DataFrame(
        {
            "exchange": ["binance"] * n,
            "symbol": [f"C{i}USDT" for i in range(n)],
            "quote_volume_usd": [1e6 * (i + 1) for i in range(n)],
            "raw_file": [f"raw/{day}.json"] * n,
        }
    )


def materialize_range(asset: dg.AssetsDefinition, keys: list[str], root: Path) -> dg.ExecuteInProcessResult:
    """One run of ``asset`` over ``keys[0]..keys[-1]`` into the warehouse ``root``, through the lake IO manager."""
    warehouse = WarehouseResource(root=str(root))
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [asset],
            resources={"warehouse": warehouse, LAKE_IO_MANAGER: LakeIOManager(warehouse=warehouse)},
            instance=instance,
            tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
            raise_on_error=False,
        )


@clean_asset(PERP_VOLUME_DAILY, [], "a daily clean table written through the lake IO manager", daily=True)
def perp_volume_daily(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for day in context.partition_keys:
        context.add_asset_metadata({"found": f"{day}: fine"}, partition_key=day)
    return dg.MaterializeResult(
        value={day: perp_volume(day) for day in context.partition_keys}, metadata={"days": 3}
    )


def test_a_range_run_gives_each_partition_its_own_file_and_metadata(tmp_path: Path) -> None:
    result = materialize_range(perp_volume_daily, DAYS, tmp_path)
    assert result.success
    wh = Warehouse(tmp_path)
    events = {e.partition: e.metadata for e in result.asset_materializations_for_node("perp_volume_daily")}
    assert sorted(events) == DAYS
    for day, md in events.items():
        path = wh.partition_path(PERP_VOLUME_DAILY, day)
        assert md["sha256"].value == sha256_file(path), day  # its own file's, not the last day's
        assert md["path"].value == str(path)
        assert md["dagster/row_count"].value == DAYS.index(day) + 1
        assert md["table"].value == "perp_volume_daily" and "C0USDT" in md["preview"].value
        assert "dagster/column_schema" not in md  # the definition's, the same for every partition
        assert md["found"].value == f"{day}: fine"  # the body's per-partition metadata, merged
        assert md["days"].value == 3  # and its metadata for the whole run
        assert wh.read_partition(PERP_VOLUME_DAILY, day).equals(perp_volume(day).sort("symbol"))
    assert len({md["sha256"].value for md in events.values()}) == len(DAYS)
    assert wh.catalog_path.exists()  # the catalog is refreshed
    schema = perp_volume_daily.specs_by_key[dg.AssetKey("perp_volume_daily")].metadata[
        "dagster/column_schema"
    ]
    assert schema == PERP_VOLUME_DAILY.dagster_column_schema()


WEEKS = ["2025-11-03", "2025-11-10", "2025-11-17"]


def weekly_volume_of(_wh: Warehouse, week: str) -> Computed:
    if week == WEEKS[1]:
        raise dg.Failure(f"week {week}: coin_daily has no partition for its close day")
    row = {c: float(WEEKS.index(week)) for c in WEEKLY_VOLUME.column_names if c != "week_start"}
    return Computed(pl.DataFrame([{"week_start": date.fromisoformat(week), **row}]), metadata={"note": week})


weekly_volume = weekly_table_asset(
    WEEKLY_VOLUME, description="a weekly table, one week of which fails", deps=[], compute=weekly_volume_of
)


def test_a_range_of_weeks_writes_the_computed_weeks_then_fails_naming_the_others(tmp_path: Path) -> None:
    result = materialize_range(weekly_volume, WEEKS, tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert f"1 of 3 week(s) failed ({WEEKS[1]}); the other weeks were written" in message, message
    wh = Warehouse(tmp_path)
    assert [wh.has_partition(WEEKLY_VOLUME, w) for w in WEEKS] == [True, False, True]
    assert wh.read_partition(WEEKLY_VOLUME, WEEKS[2])["spot_volume_usd"].to_list() == [2.0]


def test_outside_a_run_the_metadata_goes_to_the_output(tmp_path: Path) -> None:
    """``build_output_context`` (the benchmark floor's way in): one partition's metadata, or for several each
    one's rows, sha256 and path."""
    manager = LakeIOManager(warehouse=WarehouseResource(root=str(tmp_path)))
    wh = Warehouse(tmp_path)
    with dg.build_output_context(asset_key="perp_volume_daily") as context:
        manager.handle_output(context, {DAYS[0]: perp_volume(DAYS[0])})
        md = context.get_logged_metadata()
    assert md["sha256"].value == sha256_file(wh.partition_path(PERP_VOLUME_DAILY, DAYS[0]))
    with dg.build_output_context(asset_key="perp_volume_daily") as context:
        manager.handle_output(context, {d: perp_volume(d) for d in DAYS})
        md = context.get_logged_metadata()
    listed = md["partitions_written"].value
    assert md["dagster/row_count"].value == 6 and sorted(listed) == DAYS
    assert all(listed[d]["sha256"] == sha256_file(wh.partition_path(PERP_VOLUME_DAILY, d)) for d in DAYS)


def test_partitions_outside_the_run_or_left_out_are_refused_before_writing(tmp_path: Path) -> None:
    manager = LakeIOManager(warehouse=WarehouseResource(root=str(tmp_path)))
    run = dg.PartitionKeyRange(DAYS[0], DAYS[1])
    for frames in ({DAYS[0]: perp_volume(DAYS[0])}, {d: perp_volume(d) for d in DAYS}):
        with dg.build_output_context(
            asset_key="perp_volume_daily",
            asset_partitions_def=perp_volume_daily.partitions_def,
            asset_partition_key_range=run,
        ) as context:
            with pytest.raises(dg.Failure, match="outside its run|without naming a failure"):
                manager.handle_output(context, LakePartitions(frames))
    assert not (tmp_path / "lake").exists()
    with dg.build_output_context(asset_key="coin_snapshot_of_nothing") as context:
        with pytest.raises(dg.Failure, match="is not a lake table"):
            manager.handle_output(context, {})


def test_nothing_is_loaded_through_it() -> None:
    manager = LakeIOManager(warehouse=WarehouseResource(root="unused"))
    with pytest.raises(dg.Failure, match="no step loads a value through the lake IO manager"):
        manager.load_input(dg.build_input_context(asset_key=dg.AssetKey("coin_daily")))


def test_a_pipeline_run_hands_values_to_the_lake_io_manager_only_and_loads_none(week_from_november) -> None:
    """The session's daily and weekly runs: every stored output is a lake table's, handled by the lake IO
    manager, and no step loaded an input."""
    from pipelines.schemas import TABLES

    instance = week_from_november.instance
    for run_id in (week_from_november.run.daily_run_id, week_from_november.run.weekly_run_id):
        handled = instance.get_records_for_run(
            run_id=run_id, of_type=dg.DagsterEventType.HANDLED_OUTPUT
        ).records
        loaded = instance.get_records_for_run(run_id=run_id, of_type=dg.DagsterEventType.LOADED_INPUT).records
        assert not loaded
        steps = {r.event_log_entry.step_key for r in handled}
        managers = {r.event_log_entry.dagster_event.event_specific_data.manager_key for r in handled}  # type: ignore[union-attr]
        assert managers == {LAKE_IO_MANAGER} and steps and all(s in TABLES for s in steps), (managers, steps)
