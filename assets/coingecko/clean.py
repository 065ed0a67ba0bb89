"""Clean layer: typed, validated Parquet in the lake, one file per partition (written by ``LakeIOManager``)."""

import dagster as dg
import polars as pl

from assets._clean import clean_asset
from assets._lake_io import LakePartitions
from assets._meta import md_table
from assets.coingecko.raw import latest_snapshot
from pipelines.calendar import days_between, parse_day
from pipelines.clean import estimates
from pipelines.clean.coingecko import (
    build_coin_daily,
    global_snapshots,
    latest_registry,
    parse_global_snapshot,
    parse_registry_snapshot,
)
from pipelines.resources import CoinGeckoResource, WarehouseResource
from pipelines.schemas import COIN_DAILY, COIN_DAILY_ESTIMATES, COIN_REGISTRY, GLOBAL_MARKET_CAP
from pipelines.warehouse import is_safe_component


@clean_asset(
    COIN_REGISTRY,
    ["raw_coingecko_markets"],
    (
        "The coins the pipeline follows (CoinGecko top N at the latest snapshot) with their CoinGecko categories. "
        "One lake partition per snapshot; older snapshots are kept."
    ),
    duckdb=False,
)
def coin_registry(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    snap = latest_snapshot(wh)
    if snap is None:
        raise dg.Failure("no raw /coins/markets snapshot stored: materialize raw_coingecko_markets first")
    df = parse_registry_snapshot(wh, snap)
    # A coin id becomes a directory name under raw/: one that could escape it is dropped here, visibly.
    rejected = sorted(c for c in df["coin_id"].to_list() if not is_safe_component(c))
    if rejected:
        context.log.warning(
            f"snapshot {snap}: dropped {len(rejected)} coin id(s) unsafe as path components: {rejected[:10]}"
        )
        df = df.filter(~pl.col("coin_id").is_in(rejected))
    by_cat = (
        df.explode("categories")
        .drop_nulls("categories")
        .group_by("categories")
        .len()
        .sort("len", descending=True)
    )
    return dg.MaterializeResult(
        value={snap: df},
        metadata={
            "snapshot": snap,
            "rejected_coin_ids": dg.MetadataValue.json(rejected),
            "categories": dg.MetadataValue.md(md_table(by_cat, 20)),
        },
    )


@clean_asset(
    GLOBAL_MARKET_CAP,
    ["raw_coingecko_markets"],
    (
        "CoinGecko /global as observed (the market's total market cap, when CoinGecko computed it) beside the "
        "share of it held by the largest listed coins of the same instant. One lake partition per registry "
        "snapshot with a /global answer; a partition already in the lake is not rewritten. The weekly market "
        "total divides the top coins' market cap by this share (METHODOLOGY.md, 'The market's total')."
    ),
    duckdb=False,
)
def global_market_cap(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    snaps = global_snapshots(wh)
    new = {s: parse_global_snapshot(wh, s) for s in snaps if not wh.has_partition(GLOBAL_MARKET_CAP, s)}
    if not snaps:
        context.log.warning(
            "no /global observation stored yet: the market's total is estimated with the share "
            "measured on real listings (METHODOLOGY.md)"
        )
    return dg.MaterializeResult(
        value=new,
        metadata={
            "observations": len(snaps),
            "written": len(new),
            "latest_snapshot": snaps[-1] if snaps else "none",
        },
    )


@clean_asset(
    COIN_DAILY,
    ["raw_coingecko_market_charts", "raw_binance_spot_daily", COIN_REGISTRY.name],
    (
        "Per coin and UTC day: price, market cap and 24h volume at the day's close (the CoinGecko point of the "
        "next midnight), from the newest stored pull covering that day. Days older than the CoinGecko plan reaches "
        "are estimated (Binance spot close x the coin's supply on the plan's first day, volume null) and listed in "
        "coin_daily_estimates. Lake: lake/coin_daily/date=<day>/."
    ),
    daily=True,
)
def coin_daily(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, coingecko: CoinGeckoResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    keys = context.partition_key_range
    days = days_between(parse_day(keys.start), parse_day(keys.end))
    try:
        registry = latest_registry(wh)
    except LookupError as exc:
        raise dg.Failure(str(exc)) from exc
    plan_first = coingecko.plan_first_day()
    early = [d for d in days if plan_first is not None and d < plan_first]
    frames, missing = build_coin_daily(wh, registry, [d for d in days if d not in early])
    left_out: dict[str, str] = {}
    provenance: dict[str, pl.DataFrame] = {}  # coin_daily_estimates, written beside the estimated days
    if early:  # older than CoinGecko's plan reaches: estimated from Binance spot closes (pipelines/clean/estimates.py)
        reference, _ = build_coin_daily(wh, registry, [plan_first])
        pairs = estimates.estimable(registry)
        closes = estimates.spot_daily_closes(wh, sorted(set(pairs.values())), [*early, plan_first])
        est = estimates.estimate_coin_daily(reference[plan_first], plan_first, pairs, closes, early)
        left_out = est.left_out
        every = set(registry["coin_id"].to_list())
        for d in early:
            frames[d] = est.rows[d]
            missing[d] = sorted(every - set(est.rows[d]["coin_id"].to_list()))
            provenance[d.isoformat()] = est.provenance[d]
        frames = dict(sorted(frames.items()))
    empty = [d for d, f in frames.items() if f.is_empty()]
    if empty:
        hint = (
            f" Days before {plan_first} are older than the CoinGecko plan reaches and are estimated from "
            "raw_binance_spot_daily: materialize it for those days too."
            if early
            else ""
        )
        raise dg.Failure(
            f"{len(empty)} day(s) have no data at all (first: {empty[0]}): the raw pulls do not cover them. "
            "Materialize raw_coingecko_market_charts for those days." + hint
        )
    last = frames[days[-1]]
    gap_days = {d.isoformat(): len(m) for d, m in missing.items() if m}
    return dg.MaterializeResult(
        value=LakePartitions(
            {day.isoformat(): frame for day, frame in frames.items()},
            alongside={COIN_DAILY_ESTIMATES: provenance},
        ),
        metadata={
            "largest_on_last_day": dg.MetadataValue.md(
                md_table(last.sort("market_cap_usd", descending=True, nulls_last=True))
            ),
            "days": len(days),
            "coins_in_registry": registry.height,
            "coin_days_missing": sum(gap_days.values()),
            "days_estimated": len(early),
            "estimate_left_out": dg.MetadataValue.md(
                "\n".join(f"- `{c}`: {why}" for c, why in sorted(left_out.items())[:40]) or "_none_"
            ),
            "missing_by_day": dg.MetadataValue.md(
                md_table(pl.DataFrame({"day": list(gap_days), "coins": list(gap_days.values())}), 15)
                if gap_days
                else "_none_"
            ),
        },
    )
