"""Clean layer, macro: FRED observations of the report's macro series, one Parquet partition per series (written
by ``LakeIOManager``; the asset is not partitioned, its one materialization lists the series' partitions).

A series without a stored CSV (FRED unreachable, a 404, not selected) is not a failure: it is named in the WARN
check ``coverage_gaps`` and the report's Data gaps section."""

import dagster as dg
import polars as pl

from assets._clean import COVERAGE_CHECK, build_or_fail, clean_asset
from assets._meta import md_table
from pipelines.clean import derivatives as cd
from pipelines.resources import WarehouseResource
from pipelines.schemas import MACRO_OBSERVATIONS
from pipelines.sources.fred import SERIES as FRED_SERIES


@clean_asset(
    MACRO_OBSERVATIONS,
    ["raw_fred_series"],
    "FRED observations of the report's macro series, from the newest stored CSV of each; "
    "lake/macro_observations/series=<id>/. FRED '.'/blank stay null.",
    coverage=True,
)
def macro_observations(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    frames = build_or_fail("macro_observations", cd.build_macro, wh)
    absent = [sid for sid in FRED_SERIES if sid not in frames]
    check = dg.AssetCheckResult(
        check_name=COVERAGE_CHECK,
        passed=not absent,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"series_without_csv": ", ".join(absent) or "none"},
    )
    if not frames:
        context.log.warning("no FRED CSV stored (FRED unreachable or not selected): nothing written")
        return dg.MaterializeResult(
            value={}, metadata={"series_without_csv": ", ".join(absent)}, check_results=[check]
        )
    summary = pl.DataFrame(
        [
            {"series": sid, "rows": f.height, "nulls": f["value"].null_count(), "last": str(f["date"].max())}
            for sid, f in frames.items()
        ]
    )
    return dg.MaterializeResult(
        value=frames,
        metadata={
            "series": dg.MetadataValue.md(md_table(summary, 20)),
            "series_without_csv": ", ".join(absent) or "none",
        },
        check_results=[check],
    )
