"""What every clean asset shares: its ``@dg.asset`` settings (``clean_asset``), the WARN check ``coverage_gaps``
and the failure for a stored response that does not have the documented shape (``build_or_fail``).

A clean asset returns its table's partitions (``dg.MaterializeResult(value={key: frame})``); ``LakeIOManager``
(``assets/_lake_io.py``) writes them and attaches each one's metadata."""

from collections.abc import Callable

import dagster as dg

from assets._lake_io import lake_asset_options
from pipelines.calendar import DAILY
from pipelines.schemas import Table
from pipelines.sources.http import PayloadError


def build_or_fail(what: str, fn, *args):
    try:
        return fn(*args)
    except PayloadError as exc:
        raise dg.Failure(
            f"{what}: a stored response does not have the documented shape; nothing was written. {exc}"
        ) from exc


COVERAGE_CHECK = "coverage_gaps"
COVERAGE_CHECK_DESCRIPTION = (
    "Every day (and every venue) has rows (warning only: missing data is a named gap, the days and venues are "
    "listed)."
)


def clean_asset(
    table: Table,
    deps: list[str],
    description: str,
    *,
    duckdb: bool = True,
    daily: bool = False,
    coverage: bool = False,
) -> Callable[[Callable[..., dg.MaterializeResult]], dg.AssetsDefinition]:
    """``@dg.asset`` writing the lake table ``table`` (asset of the same name) through ``LakeIOManager``: group
    ``clean``, concurrency pool ``asset_<table>``, kinds python, parquet and (with ``duckdb``) duckdb, the table's
    column schema as metadata, after ``deps``. ``daily``: daily partitions, a range built in one run; ``coverage``:
    with the WARN check ``coverage_gaps``."""
    options: dict = {}
    if coverage:
        check = dg.AssetCheckSpec(
            COVERAGE_CHECK, asset=table.name, blocking=False, description=COVERAGE_CHECK_DESCRIPTION
        )
        options["check_specs"] = [check]
    if daily:
        options.update(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
    return dg.asset(
        name=table.name,
        pool=f"asset_{table.name}",
        group_name="clean",
        kinds={"python", "parquet", "duckdb"} if duckdb else {"python", "parquet"},
        deps=deps,
        description=description,
        **lake_asset_options(table),
        **options,
    )
