"""Weekly layer: the tables the report speaks from, one lake partition per week."""

import dagster as dg
import polars as pl

from assets._meta import table_metadata
from assets.weekly.shape import require_open_close
from pipelines.calendar import WEEK_FROM_DAYS, WEEKLY, week_bounds, week_close_days
from pipelines.clean.coingecko import latest_registry
from pipelines.metrics.summary import weekly_market_summary as summarize
from pipelines.metrics.summary import weekly_movers as movers_of
from pipelines.resources import WarehouseResource
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


@dg.asset(
    pool="asset_weekly_market_summary",
    group_name="weekly",
    kinds={"python", "parquet"},
    partitions_def=WEEKLY,
    deps=[dg.AssetDep(COIN_DAILY.name, partition_mapping=WEEK_FROM_DAYS)],
    description=(
        "Total crypto market cap at the week's open (Monday 00:00 UTC) and close (next Monday 00:00 UTC), its "
        "change, and BTC and ETH weekly returns."
    ),
    metadata={"dagster/column_schema": WEEKLY_MARKET_SUMMARY.dagster_column_schema()},
    check_specs=[
        dg.AssetCheckSpec(
            "summary_coverage",
            asset="weekly_market_summary",
            blocking=True,
            description=f"At least {MIN_COINS} coins priced at open and close, BTC and ETH present, totals positive.",
        )
    ],
)
def weekly_market_summary(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    week = context.partition_key
    start, end = week_bounds(week)
    open_rows, close_rows = week_open_close(wh, week)
    df = summarize(open_rows, close_rows, start, end, week_close_days(week)[1])
    wh.write_partition(WEEKLY_MARKET_SUMMARY, week, df)
    wh.refresh_catalog()
    row = df.row(0, named=True)
    problems = []
    if min(row["coins_start"], row["coins_end"]) < MIN_COINS:
        problems.append(f"only {row['coins_start']}/{row['coins_end']} coins priced at open/close")
    if row["btc_return_pct"] is None or row["eth_return_pct"] is None:
        problems.append("BTC or ETH missing at the open or the close")
    if not (row["total_mcap_start_usd"] > 0 and row["total_mcap_end_usd"] > 0):
        problems.append("non-positive total market cap")
    return dg.MaterializeResult(
        metadata=table_metadata(
            WEEKLY_MARKET_SUMMARY,
            df,
            total_mcap_end_usd=row["total_mcap_end_usd"],
            total_mcap_change_pct=row["total_mcap_change_pct"],
            total_mcap_change_like_for_like_pct=row["total_mcap_change_like_for_like_pct"],
            coins_common=row["coins_common"],
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="summary_coverage",
                passed=not problems,
                metadata={"problems": "; ".join(problems) or "none", "coins_start": row["coins_start"]},
            )
        ],
    )


@dg.asset(
    pool="asset_weekly_movers",
    group_name="weekly",
    kinds={"python", "parquet"},
    partitions_def=WEEKLY,
    deps=[dg.AssetDep(COIN_DAILY.name, partition_mapping=WEEK_FROM_DAYS), "coin_registry"],
    description="The five best and worst weekly price changes among the 100 largest eligible coins at the open.",
    metadata={"dagster/column_schema": WEEKLY_MOVERS.dagster_column_schema()},
)
def weekly_movers(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    week = context.partition_key
    start, _ = week_bounds(week)
    open_rows, close_rows = week_open_close(wh, week)
    df = movers_of(open_rows, close_rows, latest_registry(wh).select("coin_id", "categories"), start)
    wh.write_partition(WEEKLY_MOVERS, week, df)
    wh.refresh_catalog()
    return dg.MaterializeResult(metadata=table_metadata(WEEKLY_MOVERS, df))
