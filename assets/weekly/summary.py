"""Weekly layer: the tables the report speaks from, one lake partition per week."""

import math

import dagster as dg
import polars as pl

from assets.weekly.shape import Check, Computed, registry_as_of, require_open_close, weekly_table_asset
from pipelines.calendar import WEEK_FROM_DAYS, week_bounds, week_close_days
from pipelines.metrics.summary import weekly_market_summary as summarize
from pipelines.metrics.summary import weekly_movers as movers_of
from pipelines.schemas import COIN_DAILY, WEEKLY_MARKET_SUMMARY, WEEKLY_MOVERS
from pipelines.warehouse import Warehouse

MIN_COINS = 50


def week_open_close(wh: Warehouse, week: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The clean daily rows at the week's open and close; a clear failure when either day is not in the lake."""
    w = require_open_close(wh, week)
    open_day, close_day = w.open_day, w.close_day
    return wh.read_partition(COIN_DAILY, open_day.isoformat()), wh.read_partition(
        COIN_DAILY, close_day.isoformat()
    )


def compute_market_summary(wh: Warehouse, week: str) -> Computed:
    start, end = week_bounds(week)
    open_rows, close_rows = week_open_close(wh, week)
    df = summarize(open_rows, close_rows, start, end, week_close_days(week)[1])
    row = df.row(0, named=True)
    problems = []
    if min(row["coins_start"], row["coins_end"]) < MIN_COINS:
        problems.append(f"only {row['coins_start']}/{row['coins_end']} coins priced at open/close")
    if row["btc_return_pct"] is None or row["eth_return_pct"] is None:
        problems.append("BTC or ETH missing at the open or the close")
    if not (row["total_mcap_start_usd"] > 0 and row["total_mcap_end_usd"] > 0):
        problems.append("non-positive total market cap")
    return Computed(
        df,
        metadata={
            "total_mcap_end_usd": row["total_mcap_end_usd"],
            "total_mcap_change_pct": row["total_mcap_change_pct"],
            "total_mcap_change_like_for_like_pct": row["total_mcap_change_like_for_like_pct"],
            "coins_common": row["coins_common"],
        },
        problems={"summary_coverage": problems},
        check_metadata={"summary_coverage": {"coins_start": row["coins_start"]}},
    )


weekly_market_summary_asset = weekly_table_asset(
    WEEKLY_MARKET_SUMMARY,
    description=(
        "Total crypto market cap at the week's open (Monday 00:00 UTC) and close (next Monday 00:00 UTC), its "
        "change, and BTC and ETH weekly returns."
    ),
    deps=[dg.AssetDep(COIN_DAILY.name, partition_mapping=WEEK_FROM_DAYS)],
    compute=compute_market_summary,
    checks=[
        Check(
            "summary_coverage",
            f"At least {MIN_COINS} coins priced at open and close, BTC and ETH present, totals positive.",
        )
    ],
)


def compute_movers(wh: Warehouse, week: str) -> Computed:
    start, _ = week_bounds(week)
    open_rows, close_rows = week_open_close(wh, week)
    # the registry as known at the week's close, as every other weekly table takes it: a later snapshot's
    # categories never change an earlier week's movers
    registry = registry_as_of(wh, week_close_days(week)[1])
    df = movers_of(open_rows, close_rows, registry.select("coin_id", "categories"), start)
    problems = []
    for kind, descending in (("gainer", True), ("loser", False)):
        side = df.filter(pl.col("kind") == kind).sort("position")
        returns = side["return_pct"].to_list()
        if side["position"].to_list() != list(range(1, side.height + 1)) or side.height > 5:
            problems.append(f"{kind}s: positions {side['position'].to_list()} are not 1..n (n <= 5)")
        if any(r is None or not math.isfinite(r) for r in returns):
            problems.append(f"{kind}s: a return that is not a finite number")
        elif returns != sorted(returns, reverse=descending):
            problems.append(f"{kind}s: not ordered by the size of the move")
    return Computed(df, metadata={"movers": df.height}, problems={"movers_ordered": problems})


weekly_movers_asset = weekly_table_asset(
    WEEKLY_MOVERS,
    description="The five best and worst weekly price changes among the 100 largest eligible coins at the open.",
    deps=[dg.AssetDep(COIN_DAILY.name, partition_mapping=WEEK_FROM_DAYS), "coin_registry"],
    compute=compute_movers,
    checks=[
        Check(
            "movers_ordered",
            "At most five gainers and five losers, positions 1..n, finite returns ordered by size.",
        )
    ],
)
