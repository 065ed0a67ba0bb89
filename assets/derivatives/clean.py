"""Clean layer, derivatives and BTC hourly: typed Parquet per partition with ``raw_file`` lineage.

Every asset builds all of its partitions in memory first and returns them; ``LakeIOManager`` writes them once
all of them parsed, so a drifted payload (``PayloadError``: data present but wrong) fails the run without touching what is stored.

Missing data is not a failure: a day with no rows, or a venue with no rows for some days (blocked, not
selected, an empty answer), is written as it is (an empty partition, or the other venues' rows) and named in
the metadata and in the WARN check ``coverage_gaps``; the report names the source gaps behind it.
"""

from datetime import date

import dagster as dg
import polars as pl

from assets._clean import COVERAGE_CHECK, build_or_fail, clean_asset
from assets._meta import md_table
from pipelines.calendar import days_between, parse_day
from pipelines.clean import derivatives as cd
from pipelines.resources import WarehouseResource
from pipelines.schemas import BTC_HOURLY, FUNDING_RATES, LONG_SHORT_RATIO, OPEN_INTEREST, PERP_VOLUME_DAILY


def _days(context: dg.AssetExecutionContext) -> list[date]:
    keys = context.partition_key_range
    return days_between(parse_day(keys.start), parse_day(keys.end))


def _span(days: list[date]) -> str:
    return ", ".join(d.isoformat() for d in days[:5]) + (
        f" and {len(days) - 5} more" if len(days) > 5 else ""
    )


def coverage_gaps(frames: dict[date, pl.DataFrame], venues: tuple[str, ...] = ()) -> list[str]:
    """Days without any row, and per venue (``exchange`` column) the days it has no row for; then per symbol of a
    venue, the days that venue has rows but none of that symbol (delisted, an empty answer). Computed on the
    (day, venue, symbol) triples present, in one pass over the frames."""
    out = []
    empty = sorted(d for d, f in frames.items() if f.is_empty())
    if empty:
        out.append(f"no rows at all on {len(empty)} day(s): {_span(empty)}")
    if not venues:
        return out
    seen = pl.concat(
        [
            f.select("exchange", "symbol").unique().with_columns(pl.lit(d, pl.Date).alias("day"))
            for d, f in frames.items()
            if f.height
        ]
        or [pl.DataFrame(schema={"exchange": pl.String, "symbol": pl.String, "day": pl.Date})]
    )
    venue_days = seen.select("exchange", "day").unique()  # the days each venue answered with any row
    by_venue = {
        v: set(part["day"].to_list())
        for (v,), part in venue_days.partition_by("exchange", as_dict=True).items()
    }
    live = {d for d, f in frames.items() if f.height}
    for v in venues:
        lacking = sorted(live - by_venue.get(v, set()))
        if lacking:
            out.append(f"{v}: no rows on {len(lacking)} day(s): {_span(lacking)}")
    # a symbol a venue has on some days but not on others
    expected = seen.select("exchange", "symbol").unique().join(venue_days, on="exchange")
    missing = expected.join(seen, on=["exchange", "symbol", "day"], how="anti")
    for (ex, sym), part in sorted(missing.partition_by(["exchange", "symbol"], as_dict=True).items()):
        lacking = sorted(part["day"].to_list())
        out.append(f"{ex} {sym}: no rows on {len(lacking)} day(s): {_span(lacking)}")
    return out


def _result(
    frames: dict[date, pl.DataFrame], *, venues: tuple[str, ...] = (), **extra
) -> dg.MaterializeResult:
    """The day partitions to write (by ``LakeIOManager``), with the run's coverage metadata and check."""
    empty = [d for d, f in frames.items() if f.is_empty()]
    missing = coverage_gaps(frames, venues)
    per_day = pl.DataFrame(
        {"day": [d.isoformat() for d in sorted(frames)], "rows": [frames[d].height for d in sorted(frames)]}
    )
    return dg.MaterializeResult(
        value={day.isoformat(): frame for day, frame in sorted(frames.items())},
        metadata={
            "days": len(frames),
            "empty_days": len(empty),
            "rows_by_day": dg.MetadataValue.md(md_table(per_day.sort("day", descending=True), 10)),
            "coverage_gaps": dg.MetadataValue.md("\n".join(f"- {m}" for m in missing) or "none"),
            **extra,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=COVERAGE_CHECK,
                passed=not missing,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"missing": "; ".join(missing) or "none"},
            )
        ],
    )


VENUES = ("binance", "bybit", "okx")


@clean_asset(
    FUNDING_RATES,
    ["raw_binance_funding", "raw_bybit_derivatives", "raw_okx_derivatives"],
    "Funding settlements of Binance, Bybit and OKX perpetuals; lake/funding_rates/date=<settlement day>/.",
    daily=True,
    coverage=True,
)
def funding_rates(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    frames = build_or_fail("funding_rates", cd.build_funding_rates, wh, _days(context))
    by_ex = pl.concat(frames.values()).group_by("exchange").len().sort("exchange")
    return _result(frames, venues=VENUES, by_exchange=dg.MetadataValue.md(md_table(by_ex)))


@clean_asset(
    OPEN_INTEREST,
    [
        "raw_binance_futures_stats",
        "raw_bybit_derivatives",
        "raw_okx_derivatives",
        "raw_binance_klines",
        "coin_daily",
    ],
    (
        "Perpetual open interest in USD (Binance hourly, Bybit hourly priced with Binance perp closes, or with "
        "CoinGecko's daily close for a symbol Binance gives no price for, OKX daily); "
        "lake/open_interest/date=<day of reading>/. Days before the Binance archive start hold Bybit/OKX only."
    ),
    daily=True,
    coverage=True,
)
def open_interest(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    days = _days(context)
    stats: dict = {}
    frames, unpriced = build_or_fail("open_interest", cd.build_open_interest, wh, days, stats)
    totals = pl.DataFrame({"day": [d.isoformat() for d in sorted(frames)]}).head(0)
    last = frames[max(frames)]
    if last.height:
        totals = (
            last.group_by("exchange")
            .agg(pl.col("oi_usd").filter(pl.col("ts") == pl.col("ts").max()).sum().alias("oi_usd_last"))
            .sort("exchange")
        )
    return _result(
        frames,
        venues=VENUES,
        bybit_unpriced_dropped=unpriced,
        bybit_priced_with_coingecko=stats.get("bybit_priced_with_coingecko", 0),
        binance_archive_missing=len(cd.binance_archive_missing(wh, days)),
        last_day_by_exchange=dg.MetadataValue.md(md_table(totals)),
    )


@clean_asset(
    LONG_SHORT_RATIO,
    ["raw_binance_futures_stats"],
    "Binance global long/short account ratio, hourly; lake/long_short_ratio/date=<day of reading>/. "
    "Days before the Binance metrics archive start are written empty.",
    daily=True,
    coverage=True,
)
def long_short_ratio(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    days = _days(context)
    frames = build_or_fail("long_short_ratio", cd.build_long_short, wh, days)
    # Binance is the only source: days older than the archive policy reaches are legitimately empty.
    return _result(frames, binance_archive_missing=len(cd.binance_archive_missing(wh, days)))


@clean_asset(
    BTC_HOURLY,
    ["raw_binance_klines"],
    "Binance spot BTCUSDT hourly bars; lake/btc_hourly/date=<day of the bar open>/.",
    daily=True,
    coverage=True,
)
def btc_hourly(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    frames = build_or_fail("btc_hourly", cd.build_btc_hourly, wh, _days(context))
    short = {d.isoformat(): f.height for d, f in frames.items() if 0 < f.height < 24}
    return _result(frames, days_with_missing_hours=len(short))


@clean_asset(
    PERP_VOLUME_DAILY,
    ["raw_binance_klines"],
    "Binance USDT-M perpetual daily quote volume; lake/perp_volume_daily/date=<day>/.",
    daily=True,
    coverage=True,
)
def perp_volume_daily(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    frames = build_or_fail("perp_volume_daily", cd.build_perp_volume, wh, _days(context))
    return _result(frames)
