"""What every raw pull asset shares: its ``@dg.asset`` settings (``raw_asset``) and its named gaps (the WARN check
``source_gaps``, its metadata, and the "not selected" answer for a venue left out by ``CRYPTO_WEEKLY_VENUES``)."""

from collections.abc import Callable
from datetime import date

import dagster as dg
import polars as pl

from assets._meta import md_table
from pipelines import gaps as gaps_mod
from pipelines.calendar import DAILY
from pipelines.pulls import derivatives as ing
from pipelines.warehouse import Warehouse

GAP_CHECK = "source_gaps"
GAP_CHECK_DESCRIPTION = (
    "Everything asked for was pulled (warning only: what could not be had is a named gap: source, dataset, key, "
    "days, status, reason)."
)


def gap_table(gaps: list[gaps_mod.Gap], limit: int = 30) -> dg.MetadataValue:
    if not gaps:
        return dg.MetadataValue.md("_none_")
    df = pl.DataFrame(
        [
            {
                "source": g.source,
                "dataset": g.dataset,
                "key": g.key,
                "days": (f"{g.days[0]}..{g.days[-1]} ({len(g.days)})" if g.days else "-"),
                "status": str(g.status or "-"),
                "reason": g.reason,
            }
            for g in gaps
        ]
    )
    return dg.MetadataValue.md(md_table(df, limit))


def gap_outputs(gaps: list[gaps_mod.Gap]) -> tuple[dict, list[dg.AssetCheckResult]]:
    """Metadata entries and the WARN check result naming ``gaps``."""
    lines = gaps_mod.describe(gaps)
    meta = {
        "gaps": len(gaps),
        "gap_summary": dg.MetadataValue.md("\n".join(f"- {x}" for x in lines) or "none"),
        "gap_detail": gap_table(gaps),
    }
    check = dg.AssetCheckResult(
        check_name=GAP_CHECK,
        passed=not gaps,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"gaps": len(gaps), "summary": "; ".join(lines) or "none"},
    )
    return meta, [check]


def not_selected(
    context: dg.AssetExecutionContext, wh: Warehouse, source: str, datasets: list[str], days: list[date]
) -> dg.MaterializeResult:
    """The venue is left out by CRYPTO_WEEKLY_VENUES: no request; a "not selected" gap per dataset."""
    gaps = [
        gaps_mod.Gap(
            source,
            name,
            "*",
            ing.day_strings(days),
            None,
            gaps_mod.NOT_SELECTED,
            "left out by CRYPTO_WEEKLY_VENUES",
        )
        for name in datasets
    ]
    for g in gaps:
        gaps_mod.record_gaps(wh, g.dataset, days, [g], replace_all=not days)
    context.log.warning(f"{source}: not selected (CRYPTO_WEEKLY_VENUES); no request made")
    meta, checks = gap_outputs(gaps)
    return dg.MaterializeResult(metadata={"requests": 0, "selected": False, **meta}, check_results=checks)


def raw_asset(
    pool: str,
    description: str,
    *,
    kind: str = "json",
    gaps: bool = True,
    daily_deps: list[str] | None = None,
) -> Callable[[Callable[..., dg.MaterializeResult]], dg.AssetsDefinition]:
    """``@dg.asset`` for a raw pull named after its function: group ``raw``, kinds ``python`` and ``kind`` (the
    stored format), concurrency pool ``pool``. ``gaps``: with the WARN check ``source_gaps``. ``daily_deps``:
    daily partitions, a partition range pulled in one run (``BackfillPolicy.single_run()``), after those assets;
    None: unpartitioned."""

    def decorate(fn: Callable[..., dg.MaterializeResult]) -> dg.AssetsDefinition:
        options: dict = {}
        if gaps:
            check = dg.AssetCheckSpec(
                GAP_CHECK, asset=fn.__name__, blocking=False, description=GAP_CHECK_DESCRIPTION
            )
            options["check_specs"] = [check]
        if daily_deps is not None:
            options.update(
                partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run(), deps=daily_deps
            )
        return dg.asset(
            pool=pool, group_name="raw", kinds={"python", kind}, description=description, **options
        )(fn)

    return decorate
