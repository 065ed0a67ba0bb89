"""The code location: every asset, check, job, schedule and resource, in one ``Definitions``."""

from __future__ import annotations

import dagster as dg

import assets
from pipelines.resources import build_resources

all_assets = dg.load_assets_from_package_module(assets)
all_checks = dg.load_asset_checks_from_package_module(assets)

# Everything a day needs: the registry snapshot, the raw pulls and the clean tables.
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.groups("raw", "clean"),
    description="Pull and clean market data for a day (or, as one run, a range of days).",
    tags={"crypto-weekly/layer": "daily"},
)
# Everything a week needs once its days are in the lake: the weekly tables and the report.
weekly_job = dg.define_asset_job(
    "weekly_job",
    selection=dg.AssetSelection.groups("weekly", "report"),
    description="Compute a week's tables and render its report.",
    tags={"crypto-weekly/layer": "weekly"},
)



def make_definitions() -> dg.Definitions:
    """Build the Definitions; resources read the environment at this moment (``dg.EnvVar`` where set)."""
    return dg.Definitions(
        assets=all_assets,
        asset_checks=all_checks,
        jobs=[daily_job, weekly_job],
        resources=build_resources(),
    )


defs = make_definitions()
