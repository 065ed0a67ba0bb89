"""Every weekly table for a range of weeks in one pass: the lake read once (``pipelines.lake_snapshot``), then
each week computed from memory by the assets' own compute functions, unchanged.

A week computed here is what its asset computes alone: the same compute function runs the same SQL, with the
week's own point-in-time bounds, over the same rows (held in memory instead of re-read from Parquet for every
query). No compute reads a weekly table (history such as earlier crossings or the crypto rank's worst-week streak
is recomputed from the clean tables), and the snapshot refuses to answer for the tables being computed, so a
compute that started reading one would fail loudly here rather than see a stale copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from assets.weekly import derivatives, macro, market, summary
from assets.weekly.shape import Computed, Outcome, outcome
from pipelines.lake_snapshot import reads_for
from pipelines.warehouse import Warehouse

# weekly table -> the compute function its asset runs
WEEKLY_COMPUTES: dict[str, Callable[..., Computed]] = {
    "weekly_market_summary": summary.compute_market_summary,
    "weekly_movers": summary.compute_movers,
    "weekly_universe": market.compute_universe,
    "weekly_total_market_cap": market.compute_total_market_cap,
    "weekly_market_total": market.compute_market_total,
    "weekly_mcap_crossings": market.compute_crossings,
    "weekly_index_returns": market.compute_index_returns,
    "weekly_correlation_buckets": market.compute_correlation,
    "weekly_leverage": derivatives.compute_leverage,
    "weekly_volume": derivatives.compute_volume,
    "weekly_btc_volatility": derivatives.compute_volatility,
    "weekly_cross_asset": macro.compute_cross_asset,
    "weekly_crypto_rank": macro.compute_crypto_rank,
    "weekly_macro": macro.compute_macro,
    "weekly_rate_expectations": macro.compute_rate_expectations,
}


def compute_weeks(
    wh: Warehouse,
    weeks: Iterable[str],
    computes: Mapping[str, Callable[..., Computed]] = WEEKLY_COMPUTES,
) -> dict[str, dict[str, Outcome]]:
    """``{table: {week: outcome}}`` for every table of ``computes`` and every week of ``weeks`` (oldest first):
    the ``Computed`` its compute function returns for that week alone, or the failure it raises. Read as the
    weekly assets read (``reads_for``): a range on one snapshot of the lake, one week from the warehouse."""
    weeks = sorted(set(weeks))
    out: dict[str, dict[str, Outcome]] = {name: {} for name in computes}
    with reads_for(wh, weeks, written=computes) as source:
        for week in weeks:
            for name, compute in computes.items():
                out[name][week] = outcome(compute, source, week)
    return out
