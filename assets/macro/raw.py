"""Raw layer, macro: FRED ``fredgraph.csv`` per series, stored as pulled.

One unpartitioned asset: a FRED series is a whole history that is revised in place (and monthly series are
published weeks late), so each refresh stores the full series since ``FRED_HISTORY_START`` as a new snapshot
(one small request per series) rather than per-day partitions. A snapshot younger than ``max_age_hours`` is reused.

A series that cannot be pulled (404, blocked, 5xx after retries, a changed payload) is a named gap: the others
are stored, the series' newest earlier CSV (if any) stays in use, the gap goes to the metadata, the WARN check
``source_gaps`` and the gap ledger, and the run goes on. ``CRYPTO_WEEKLY_VENUES`` without ``fred``: no request,
a "not selected" gap.
"""

from datetime import datetime, timedelta, timezone

import dagster as dg
from pydantic import Field

from assets._raw import gap_outputs, not_selected, raw_asset
from pipelines import gaps as gaps_mod
from pipelines.pulls import derivatives as ing
from pipelines.resources import FredResource, WarehouseResource
from pipelines.sources.fred import SERIES


class FredConfig(dg.Config):
    force: bool = Field(default=False, description="pull a new snapshot even when a recent one is stored")
    max_age_hours: float = Field(default=20.0, description="reuse a stored snapshot younger than this")


@raw_asset(
    "source_fred",
    kind="csv",
    description=(
        "FRED fredgraph.csv (keyless) for " + ", ".join(SERIES) + ", each from "
        f"{ing.FRED_HISTORY_START}, stored as pulled under raw/fred/fredgraph_csv/snapshot=<UTC stamp>/<SERIES>.csv. "
        "A snapshot younger than max_age_hours is reused; force pulls a new one."
    ),
)
def raw_fred_series(
    context: dg.AssetExecutionContext, config: FredConfig, warehouse: WarehouseResource, fred: FredResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    gaps_mod.breaker_for_run(context.run_id)
    now = fred.now()  # the pipeline clock (CRYPTO_WEEKLY_NOW against the emulator), else the wall clock
    if not fred.selected:
        return not_selected(context, wh, ing.FRED_SOURCE, [ing.FRED_DATASET], [])
    snaps = ing.fred_snapshots(wh)
    if snaps and not config.force:
        have = set(ing.latest_fred_files(wh))
        age = now - datetime.strptime(snaps[-1], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if age < timedelta(hours=config.max_age_hours) and have >= set(SERIES):
            context.log.info(f"reusing FRED snapshot {snaps[-1]} ({age} old); no request made")
            meta, checks = gap_outputs([])
            return dg.MaterializeResult(
                metadata={"snapshot": snaps[-1], "requests": 0, "reused": True, **meta}, check_results=checks
            )
    with fred.client() as client:
        report = ing.pull_fred(client, wh, now)
    report.record(wh)
    if report.gaps:
        context.log.warning(
            f"{len(report.gaps)} of {len(SERIES)} FRED series could not be pulled (named gaps; the "
            f"{report.pulls} others were stored): "
            + "; ".join(f"{k}: {e}" for k, e in sorted(report.failed.items()))
        )
    meta, checks = gap_outputs(report.gaps)
    return dg.MaterializeResult(
        check_results=checks,
        metadata={
            "snapshot": ing.stamp(now),
            "requests": report.requests,
            "reused": False,
            "files": dg.MetadataValue.md("\n".join(f"- `{f}`" for f in report.files)),
            **meta,
        },
    )
