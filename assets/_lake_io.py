"""How a lake table's partitions reach the lake: every clean and weekly asset returns them, and ``LakeIOManager``
writes them.

An asset writing the lake table of its own name returns ``dg.MaterializeResult(value=...)`` with its partitions by
lake partition key, ``{key: frame}`` (or a ``LakePartitions`` when it also writes a table beside its own, or must
fail once the others are written). ``lake_asset_options`` gives the asset the output type and the IO manager key
that say so. ``LakeIOManager.handle_output`` then, in the same step:

* writes the partitions with ``Warehouse.write_partitions``, several at a time (the schema check against
  ``pipelines/schemas.py``, the hive layout ``lake/<table>/<col>=<key>/data.parquet`` and the atomic write stay
  in the warehouse);
* refreshes the DuckDB catalog once;
* attaches each partition's metadata (``table_metadata``: row count, preview, sha256, path; the column schema is
  the asset definition's, from ``lake_asset_options``, as it is the same for every partition). For a
  partitioned asset (daily or weekly), a partition of the run is a partition of the lake, and each gets its own
  metadata, also in a single run over a range (Dagster builds each partition's materialization from the step's
  per-partition asset metadata after ``handle_output``). An unpartitioned asset (``coin_registry``,
  ``global_market_cap``, ``macro_observations``: the lake partitions by snapshot or series) has one
  materialization, which gets the rows written, a preview of the last partition in key order
  and each written partition's rows, sha256 and path; the lake keys are not Dagster partitions;
* raises ``LakePartitions.then_fail`` (a range of weeks some of which failed) once the others are written.

The asset body's own metadata (coverage, check findings) merges with this: per partition through
``context.add_asset_metadata(..., partition_key=...)``, for the whole run through the ``MaterializeResult``.

Nothing ever reads a value back through this IO manager (``load_input`` raises): later steps read the lake itself,
so a step can run on any worker (docs/deploy.md).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

from assets._meta import md_table
from pipelines.resources import WarehouseResource
from pipelines.schemas import TABLES, Table
from pipelines.warehouse import WrittenPartition

LAKE_IO_MANAGER = "lake_io_manager"  # the resource key every lake-table asset's output is handed to


@dataclass(frozen=True)
class LakePartitions:
    """What a lake-table asset hands to ``LakeIOManager``: ``frames``, its table's partitions by lake partition key;
    ``alongside``, partitions of other tables the same step builds (``coin_daily_estimates`` beside
    ``coin_daily``); ``then_fail``, the failure to raise after writing them (the weeks of a range that could not be
    computed are absent from ``frames`` and named in it)."""

    frames: Mapping[str, pl.DataFrame]
    alongside: Mapping[Table, Mapping[str, pl.DataFrame]] = field(default_factory=dict)
    then_fail: dg.Failure | None = None


def _is_partitions(_context: Any, value: Any) -> dg.TypeCheck:
    if isinstance(value, LakePartitions):
        value = value.frames
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(f, pl.DataFrame) for k, f in value.items()
    ):
        return dg.TypeCheck(success=True)
    return dg.TypeCheck(
        success=False,
        description=f"a lake table's output is {{partition key: polars DataFrame}}, got {type(value).__name__}",
    )


LAKE_PARTITIONS = dg.DagsterType(
    _is_partitions,
    name="LakePartitions",
    description="A lake table's partitions by lake partition key, written by LakeIOManager.",
)


def lake_asset_options(table: Table) -> dict[str, Any]:
    """The ``@dg.asset`` arguments of an asset whose value is ``table``'s partitions, with the table's column
    schema as definition metadata: the UI shows it on the asset's page; it is not repeated in each partition's
    materialization (the same schema every time, and it would be most of what Dagster serializes, twice, to store
    each of a full backfill's 13,000 daily materializations)."""
    return {
        "dagster_type": LAKE_PARTITIONS,
        "io_manager_key": LAKE_IO_MANAGER,
        "metadata": {"dagster/column_schema": table.dagster_column_schema()},
    }


def table_metadata(table: Table, df: pl.DataFrame, **extra: Any) -> dict[str, Any]:
    return {
        "dagster/row_count": df.height,
        "table": table.name,
        "preview": dg.MetadataValue.md(md_table(df)),
        **extra,
    }


def written_metadata(written: WrittenPartition) -> dict[str, Any]:
    return {"sha256": written.sha256, "path": dg.MetadataValue.path(str(written.path))}


class LakeIOManager(dg.ConfigurableIOManager):
    """Writes a lake-table asset's partitions into the warehouse's lake, with their metadata; loads nothing."""

    # no postponed annotations in this module: pydantic must see ResourceDependency itself
    warehouse: dg.ResourceDependency[WarehouseResource]

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        out = obj if isinstance(obj, LakePartitions) else LakePartitions(obj)
        table = _table_of(context)
        _check_keys(context, table, out)
        wh = self.warehouse.get()
        written = wh.write_partitions(table, out.frames)
        beside = {other: wh.write_partitions(other, frames) for other, frames in out.alongside.items()}
        if written or any(beside.values()):
            wh.refresh_catalog()
        per_key = {
            key: table_metadata(
                table,
                out.frames[key],
                **written_metadata(w),
                **{
                    f"{other.name}_{k}": v
                    for other, by_key in beside.items()
                    if key in by_key
                    for k, v in written_metadata(by_key[key]).items()
                },
            )
            for key, w in written.items()
        }
        step = _step_context(context)
        if context.has_asset_partitions and step is not None:
            for key, md in per_key.items():
                step.add_asset_metadata(md, asset_key=context.asset_key, partition_key=key)
        else:
            context.add_output_metadata(_one_materialization(table, out.frames, written, per_key))
        if out.then_fail is not None:
            raise out.then_fail

    def load_input(self, context: dg.InputContext) -> Any:
        raise dg.Failure(
            f"{context.asset_key.to_user_string() if context.has_asset_key else context.name}: no step loads a "
            "value through the lake IO manager; read the lake with the warehouse resource (a dependency is a "
            "`deps` entry, not an input)"
        )


def _table_of(context: dg.OutputContext) -> Table:
    name = context.asset_key.path[-1]
    if name not in TABLES:
        raise dg.Failure(f"{context.asset_key.to_user_string()} is not a lake table (pipelines/schemas.py)")
    return TABLES[name]


def _check_keys(context: dg.OutputContext, table: Table, out: LakePartitions) -> None:
    """A partitioned asset writes every partition of its run (all but the failed ones, with ``then_fail``) and no
    other; a table written alongside holds partitions of the same keys."""
    keys = set(out.frames)
    stray = sorted({k for frames in out.alongside.values() for k in frames} - keys)
    if stray:
        raise dg.Failure(f"{table.name}: partitions written alongside without their own: {stray[:5]}")
    if not context.has_asset_partitions:
        return
    run = set(context.asset_partition_keys)
    outside, missing = sorted(keys - run), sorted(run - keys)
    if outside or (missing and out.then_fail is None):
        raise dg.Failure(
            f"{table.name}: the asset returned partitions outside its run ({outside[:5]}) or left some of the "
            f"run's out without naming a failure ({missing[:5]}); nothing was written"
        )


def _step_context(context: dg.OutputContext):
    """The step's execution context inside a run; None for a context built outside one (``build_output_context``,
    the benchmark floor), where the metadata goes to the output instead."""
    try:
        return context.step_context
    except dg.DagsterInvariantViolationError:
        return None


def _one_materialization(
    table: Table,
    frames: Mapping[str, pl.DataFrame],
    written: Mapping[str, WrittenPartition],
    per_key: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """The metadata of one materialization covering ``written``: one partition's own metadata, or for several the
    rows written, a preview of the last in key order and each one's rows, sha256 and path."""
    if len(per_key) == 1:
        return next(iter(per_key.values()))
    if not written:
        return {"dagster/row_count": 0, "table": table.name, "partitions_written": "none"}
    listing = {k: {"rows": w.rows, "sha256": w.sha256, "path": str(w.path)} for k, w in written.items()}
    return table_metadata(
        table,
        frames[max(written)],
        **{
            "dagster/row_count": sum(w.rows for w in written.values()),
            "partitions_written": dg.MetadataValue.json(listing),
        },
    )
