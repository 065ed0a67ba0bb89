"""Every table's schema, in one place.

Each lake table is declared here once: its Arrow schema, the column it is partitioned by on disk, and a
description of every column. Writers validate against it (``Table.conform``), the metrics build their frames
with its polars types (``Table.polars_schema``), the DuckDB catalog is built from it, and Dagster's
``dagster/column_schema`` metadata is derived from it, so Parquet, DuckDB, the UI and the docs cannot drift
apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    partition_by: str  # hive partition column, part of the directory name, not of the file
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default=())  # unique per partition

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    @property
    def polars_schema(self) -> dict[str, pl.DataType]:
        """The columns' polars types, in order: what the Arrow types read back as."""
        return dict(pl.from_arrow(self.arrow_schema.empty_table()).schema)  # type: ignore[union-attr]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def conform(self, df: pl.DataFrame) -> pa.Table:
        """Check a frame against the schema and return it as Arrow with exactly the declared types.

        Raises ``SchemaError`` on a missing or extra column, a null in a non-nullable column, a value that does
        not cast, or a duplicate key. Nothing is written when this raises.
        """
        missing = [c for c in self.column_names if c not in df.columns]
        extra = [c for c in df.columns if c not in self.column_names]
        if missing or extra:
            raise SchemaError(f"{self.name}: missing columns {missing}, unexpected columns {extra}")
        df = df.select(self.column_names)
        for col in self.columns:
            if not col.nullable and df[col.name].null_count():
                raise SchemaError(
                    f"{self.name}.{col.name}: {df[col.name].null_count()} nulls in a non-null column"
                )
        if self.key and df.height:
            dupes = df.group_by(list(self.key)).len().filter(pl.col("len") > 1)
            if dupes.height:
                raise SchemaError(
                    f"{self.name}: {dupes.height} duplicate keys on {self.key}, e.g. {dupes.row(0)}"
                )
        try:
            return df.to_arrow().cast(self.arrow_schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SchemaError(f"{self.name}: {exc}") from exc

    def conform_many(self, frames: Mapping[str, pl.DataFrame]) -> dict[str, pa.Table] | None:
        """``conform`` for several partitions' frames in one pass (a range run writes hundreds): each partition's
        Arrow table, the same as ``conform`` gives it alone, a slice of the frames checked and converted together
        (a duplicate key counts within its own partition). None when any frame fails a check or the frames do not
        share their columns' types: then ``conform`` each alone, which names the partition's problem."""
        names = self.column_names
        if not frames or any(sorted(df.columns) != sorted(names) for df in frames.values()):
            return None
        keys = list(frames)
        heights = [frames[k].height for k in keys]
        try:
            # one contiguous frame: its Arrow conversion is one chunk a column, not one a partition (698
            # partitions: 0.01 s against 0.12 s); a frame already in the schema's column order is not re-selected
            together = pl.concat(
                [frames[k] if frames[k].columns == names else frames[k].select(names) for k in keys],
                how="vertical",
                rechunk=True,
            )
        except (pl.exceptions.SchemaError, pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
            return None
        if any(not col.nullable and together[col.name].null_count() for col in self.columns):
            return None
        if self.key and together.height:
            partition = pl.Series(_PARTITION, np.repeat(np.arange(len(keys), dtype=np.uint32), heights))
            if together.select(partition, *self.key).is_duplicated().any():
                return None
        try:
            arrow = together.to_arrow().cast(self.arrow_schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        out, offset = {}, 0
        for key, height in zip(keys, heights, strict=True):
            out[key] = arrow.slice(offset, height)
            offset += height
        return out

    def dagster_column_schema(self) -> dg.TableSchema:
        return dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=c.name,
                    type=str(c.type),
                    description=c.description,
                    constraints=dg.TableColumnConstraints(nullable=c.nullable),
                )
                for c in self.columns
            ]
        )


_PARTITION = "__partition__"  # a partition's position among the frames ``conform_many`` checks together


class SchemaError(ValueError):
    """A frame does not match its table's declared schema."""


UTC_MS = pa.timestamp("ms", tz="UTC")
WEEK_START = Column("week_start", pa.date32(), "Monday 00:00 UTC that opens the week")

COIN_DAILY = Table(
    name="coin_daily",
    description=(
        "One row per coin per UTC day: price, market cap and 24h volume at the day's close (the CoinGecko point "
        "stamped the next day at 00:00 UTC)."
    ),
    partition_by="date",
    key=("coin_id",),
    columns=(
        Column("coin_id", pa.string(), "CoinGecko coin id"),
        Column("symbol", pa.string(), "ticker, lower case as CoinGecko gives it (not unique)"),
        Column("name", pa.string(), "display name as the API gave it (untrusted text)"),
        Column("price_usd", pa.float64(), "price in USD at the close"),
        Column(
            "market_cap_usd",
            pa.float64(),
            "market cap in USD at the close; null when the API gave none",
            True,
        ),
        Column("volume_24h_usd", pa.float64(), "rolling 24h volume in USD at the close", True),
        Column("observed_at", UTC_MS, "timestamp of the API point used"),
        Column("raw_file", pa.string(), "the raw response this row was read from, relative to the warehouse"),
    ),
)

COIN_REGISTRY = Table(
    name="coin_registry",
    description="Snapshot of CoinGecko /coins/markets (top N) with each coin's categories, one per pull.",
    partition_by="snapshot",
    key=("coin_id",),
    columns=(
        Column("coin_id", pa.string(), "CoinGecko coin id"),
        Column("symbol", pa.string(), "ticker"),
        Column("name", pa.string(), "display name (untrusted text)"),
        Column("market_cap_rank", pa.int32(), "rank at the time of the snapshot", True),
        Column("market_cap_usd", pa.float64(), "market cap at the time of the snapshot", True),
        Column("categories", pa.list_(pa.string()), "CoinGecko category ids the coin was listed under"),
        Column("pulled_at", UTC_MS, "when the snapshot was pulled"),
    ),
)

GLOBAL_MARKET_CAP = Table(
    name="global_market_cap",
    description=(
        "CoinGecko /global as observed: the market's total market cap, when CoinGecko computed it, and the share "
        "of it held by the top coins of the /coins/markets pages pulled at the same instant. One partition per "
        "registry snapshot that has a /global answer."
    ),
    partition_by="snapshot",
    key=("observed_at",),
    columns=(
        Column("observed_at", UTC_MS, "data.updated_at: when CoinGecko computed the figure"),
        Column("pulled_at", UTC_MS, "when the response was received"),
        Column("total_market_cap_usd", pa.float64(), "data.total_market_cap.usd: the market's total"),
        Column("total_volume_usd", pa.float64(), "data.total_volume.usd", True),
        Column("top_coins", pa.int32(), "coins in top_mcap_usd: the largest listed coins, at most 100"),
        Column(
            "top_mcap_usd",
            pa.float64(),
            "their market caps summed (the /coins/markets pages of the same instant)",
        ),
        Column(
            "top_share",
            pa.float64(),
            "top_mcap_usd / total_market_cap_usd: the share the estimates divide by",
        ),
        Column(
            "close_day",
            pa.date32(),
            "the day whose close this observation is (observed_at within the hour "
            "after D+1 00:00 UTC, the rule for coin closes); null when it was made at another time",
            True,
        ),
        Column("raw_file", pa.string(), "the stored /global response"),
    ),
)

WEEKLY_MARKET_SUMMARY = Table(
    name="weekly_market_summary",
    description="One row per week: total market cap at the week's open and close, BTC and ETH weekly returns.",
    partition_by="week",
    key=("week_start",),
    columns=(
        WEEK_START,
        Column("week_end", pa.date32(), "the next Monday 00:00 UTC that closes it"),
        Column("total_mcap_start_usd", pa.float64(), "sum of market caps at the open"),
        Column("total_mcap_end_usd", pa.float64(), "sum of market caps at the close"),
        Column(
            "total_mcap_change_pct",
            pa.float64(),
            "total_mcap_start_usd to total_mcap_end_usd, percent: moves "
            "with coverage (see total_mcap_change_like_for_like_pct)",
        ),
        Column("btc_return_pct", pa.float64(), "BTC price change over the week, percent", True),
        Column("eth_return_pct", pa.float64(), "ETH price change over the week, percent", True),
        Column("coins_start", pa.int32(), "coins with a market cap at the open"),
        Column("coins_end", pa.int32(), "coins with a market cap at the close"),
        Column("last_close_day", pa.date32(), "the daily partition whose close ends the week"),
        Column(
            "total_mcap_start_common_usd",
            pa.float64(),
            "market cap at the open of the coins present at both ends",
            True,
        ),
        Column(
            "total_mcap_end_common_usd",
            pa.float64(),
            "market cap at the close of the coins present at both ends",
            True,
        ),
        Column(
            "total_mcap_change_like_for_like_pct",
            pa.float64(),
            "weekly change over the coins with a market cap at "
            "both the open and the close, percent (what the report prints)",
            True,
        ),
        Column("coins_common", pa.int32(), "coins with a market cap at both ends", True),
    ),
)

WEEKLY_MOVERS = Table(
    name="weekly_movers",
    description="Top gainers and losers of the week among the 100 largest eligible coins at the week's open.",
    partition_by="week",
    key=("kind", "position"),
    columns=(
        Column("week_start", pa.date32(), "Monday that opens the week"),
        Column("kind", pa.string(), "'gainer' or 'loser'"),
        Column("position", pa.int32(), "1 = largest move"),
        Column("coin_id", pa.string(), "CoinGecko coin id"),
        Column("symbol", pa.string(), "ticker"),
        Column("name", pa.string(), "display name (untrusted text)"),
        Column("rank_start", pa.int32(), "market-cap rank at the open"),
        Column("return_pct", pa.float64(), "price change over the week, percent"),
    ),
)


# ---- clean derivative and macro tables ------------------------------------------------------------------------
EXCHANGE = Column("exchange", pa.string(), "binance | bybit | okx")
SYMBOL = Column("symbol", pa.string(), "perpetual, normalized to <BASE>USDT (OKX BTC-USDT-SWAP -> BTCUSDT)")
RAW_FILE = Column(
    "raw_file", pa.string(), "the raw response this row was read from, relative to the warehouse"
)
ESTIMATE_METHOD = "binance_spot_close_x_reference_supply"

# computed by pipelines/metrics/correlation.py
WEEKLY_CORRELATION_BUCKETS = Table(
    name="weekly_correlation_buckets",
    description="Average correlation of daily log returns inside market-cap rank buckets and to BTC.",
    partition_by="week",
    key=("bucket",),
    columns=(
        WEEK_START,
        Column("bucket", pa.string(), "rank bucket at the week's open, e.g. '1-10'"),
        Column("coins", pa.int32(), "bucket members (ranked at the open)"),
        Column(
            "avg_pairwise_corr",
            pa.float64(),
            "mean correlation over member pairs with enough overlap",
            True,
        ),
        Column("avg_corr_to_btc", pa.float64(), "mean correlation of members (BTC excluded) to BTC", True),
        Column("ew_return_pct", pa.float64(), "equal-weight return of members over the week, percent", True),
        Column(
            "avg_pairwise_corr_change", pa.float64(), "minus the mean of the previous weeks' values", True
        ),
        Column("avg_corr_to_btc_change", pa.float64(), "minus the mean of the previous weeks' values", True),
        Column("decoupling", pa.bool_(), "avg_corr_to_btc fell by at least the threshold", True),
    ),
)

# computed by pipelines/metrics/cross_asset.py
WEEKLY_CROSS_ASSET = Table(
    name="weekly_cross_asset",
    description="Weekly returns of crypto and other asset classes over the same Monday-to-Monday window.",
    partition_by="week",
    key=("asset",),
    columns=(
        WEEK_START,
        Column("asset", pa.string(), "asset name"),
        Column("series", pa.string(), "input series used"),
        Column(
            "kind",
            pa.string(),
            "'price', 'inverse' (return of the quote currency) or 'yield' (price proxy)",
        ),
        Column("open_date", pa.date32(), "date of the last observation at or before the week's open", True),
        Column("close_date", pa.date32(), "date of the last observation at or before the week's close", True),
        Column("open_value", pa.float64(), "level at open_date", True),
        Column("close_value", pa.float64(), "level at close_date", True),
        Column("return_pct", pa.float64(), "weekly return, percent (yield: -duration x change)", True),
        Column(
            "rank",
            pa.int32(),
            "1 = best among major asset classes; null for non-major or no return",
            True,
        ),
        Column("is_worst", pa.bool_(), "worst of the ranked major asset classes", True),
    ),
)

# computed by pipelines/metrics/cross_asset.py
WEEKLY_CRYPTO_RANK = Table(
    name="weekly_crypto_rank",
    description="Crypto's rank among major asset classes and how many consecutive weeks it has been worst.",
    partition_by="week",
    key=("week_start",),
    columns=(
        WEEK_START,
        Column("crypto_rank", pa.int32(), "rank of crypto, 1 = best", True),
        Column("assets_ranked", pa.int32(), "major asset classes with a return this week"),
        Column("is_worst", pa.bool_(), "crypto was the worst", True),
        Column("worst_streak_weeks", pa.int32(), "consecutive weeks up to this one with crypto worst"),
    ),
)

# computed by pipelines/metrics/leverage.py
WEEKLY_LEVERAGE = Table(
    name="weekly_leverage",
    description="Funding (OI-weighted), negative-funding facts, total perp open interest and long/short ratio.",
    partition_by="week",
    key=("week_start",),
    columns=(
        WEEK_START,
        Column(
            "funding_8h_mean",
            pa.float64(),
            "mean funding per 8h (fraction) over the week's settlements",
            True,
        ),
        Column("funding_annualized_mean", pa.float64(), "funding_8h_mean x 3 x 365", True),
        Column(
            "funding_weighting",
            pa.string(),
            "'oi' (every settlement had its OI), 'mixed' (OI-weighted over "
            "the settlements with OI, the others left out) or 'equal' (no settlement had OI)",
            True,
        ),
        Column("funding_settlements", pa.int32(), "settlements in the week", True),
        Column(
            "funding_oi_share",
            pa.float64(),
            "share of the week's settlements that had an OI reading (0..1)",
            True,
        ),
        Column(
            "funding_venues_without_oi",
            pa.string(),
            "venues with settlements lacking OI, comma-separated",
            True,
        ),
        Column("negative_days", pa.int32(), "days of the week whose daily funding was negative"),
        Column(
            "first_negative_day",
            pa.date32(),
            "first day of the week funding turned negative (the day before was not)",
            True,
        ),
        Column("first_negative_since", pa.date32(), "last negative day before first_negative_day", True),
        Column("longest_negative_run_days", pa.int32(), "longest run of negative days ending in the week"),
        Column(
            "longest_negative_run_since",
            pa.date32(),
            "end of the last earlier run at least as long",
            True,
        ),
        Column(
            "oi_open_usd",
            pa.float64(),
            "total perp open interest at the open (every series with a reading)",
            True,
        ),
        Column(
            "oi_close_usd",
            pa.float64(),
            "total perp open interest at the close (every series with a reading)",
            True,
        ),
        Column(
            "oi_change_pct",
            pa.float64(),
            "oi_open_usd to oi_close_usd, percent: moves with coverage, not "
            "the market move (see oi_change_like_for_like_pct)",
            True,
        ),
        Column(
            "oi_open_common_usd",
            pa.float64(),
            "open interest at the open of the series present at both ends",
            True,
        ),
        Column(
            "oi_close_common_usd",
            pa.float64(),
            "open interest at the close of the series present at both ends",
            True,
        ),
        Column(
            "oi_change_like_for_like_pct",
            pa.float64(),
            "weekly change over the (venue, symbol) series present at both the open and the close, percent",
            True,
        ),
        Column("oi_series_open", pa.int32(), "(venue, symbol) series with a reading at the open", True),
        Column("oi_series_close", pa.int32(), "(venue, symbol) series with a reading at the close", True),
        Column("oi_series_common", pa.int32(), "series with a reading at both ends", True),
        Column("oi_venues_open", pa.string(), "venues with a reading at the open, comma-separated", True),
        Column("oi_venues_close", pa.string(), "venues with a reading at the close, comma-separated", True),
        Column(
            "oi_venues_common",
            pa.string(),
            "venues with a series present at both ends, comma-separated",
            True,
        ),
        Column(
            "oi_missing_at_open",
            pa.string(),
            "venue:symbol present at the close, missing at the open",
            True,
        ),
        Column(
            "oi_missing_at_close",
            pa.string(),
            "venue:symbol present at the open, missing at the close",
            True,
        ),
        Column("coverage_changed", pa.bool_(), "the series at the open and the close differ", True),
        Column(
            "oi_ref_day",
            pa.date32(),
            "reference day (given, or the peak of the lookback, see ESTIMATE_METHODOLOGY)",
            True,
        ),
        Column(
            "oi_ref_usd",
            pa.float64(),
            "open interest at the reference day's close over the series present "
            "on the reference day and at the week's close",
            True,
        ),
        Column(
            "oi_ref_close_usd",
            pa.float64(),
            "open interest at the week's close over the same series",
            True,
        ),
        Column(
            "oi_ref_missing",
            pa.string(),
            "venue:symbol at the week's close with no reading on the reference "
            "day (left out of the comparison)",
            True,
        ),
        Column(
            "oi_vs_ref_pct",
            pa.float64(),
            "oi_ref_close_usd versus oi_ref_usd (like for like), percent",
            True,
        ),
        Column("long_short_ratio_mean", pa.float64(), "mean of long_account / short_account readings", True),
        Column("leverage_skew", pa.string(), "'short' (funding < 0), 'long' (> baseline) or 'neutral'", True),
    ),
)

# computed by pipelines/metrics/macro.py
WEEKLY_MACRO = Table(
    name="weekly_macro",
    description="Latest value of each macro series known at the week's close (missing releases stay missing).",
    partition_by="week",
    key=("metric",),
    columns=(
        WEEK_START,
        Column("metric", pa.string(), "metric name, e.g. 'payrolls_change_k'"),
        Column("series_id", pa.string(), "source series id(s)"),
        Column("value", pa.float64(), "value; null when the latest known observation is missing", True),
        Column("observation_date", pa.date32(), "date of that observation; null when nothing is known", True),
        Column(
            "status",
            pa.string(),
            "'ok', 'missing' (observation exists, value not published) or 'unavailable'",
        ),
        Column("unit", pa.string(), "unit of value"),
    ),
)

# computed by pipelines/metrics/macro.py
WEEKLY_RATE_EXPECTATIONS = Table(
    name="weekly_rate_expectations",
    description=(
        "The change in the overnight rate that three-month Treasury bills price over their life: the bill's "
        "discount rate (DTB3) turned into the overnight act/360 rate that compounds daily to the bill's return, "
        "minus the effective fed funds rate (DFF) of the same day; as known at the week's close and at the "
        "close of the week before."
    ),
    partition_by="week",
    key=("week_start",),
    columns=(
        WEEK_START,
        Column("bill_series", pa.string(), "FRED id of the bill rate (DTB3)"),
        Column("funds_series", pa.string(), "FRED id of the effective fed funds rate (DFF)"),
        Column(
            "observation_date",
            pa.date32(),
            "latest date known at the close with both a bill rate and a funds rate; null when there is none",
            True,
        ),
        Column("bill_discount_pct", pa.float64(), "bill rate as published, percent, discount basis", True),
        Column(
            "bill_overnight_pct",
            pa.float64(),
            "the bill's return over its 91 days as an overnight act/360 "
            "rate compounded daily, percent (the funds rate's basis)",
            True,
        ),
        Column("funds_rate_pct", pa.float64(), "effective fed funds rate on observation_date, percent", True),
        Column(
            "implied_change_bp",
            pa.float64(),
            "bill_overnight_pct - funds_rate_pct, basis points: the "
            "change in the average overnight rate over the bill's life that the bill prices",
            True,
        ),
        Column(
            "cuts_priced",
            pa.float64(),
            "-implied_change_bp / 25: cuts of 25 bp priced (negative: rises)",
            True,
        ),
        Column(
            "status",
            pa.string(),
            "'ok'; 'stale' (the latest pair is dated before the week) or "
            "'unavailable' (a series has no known value)",
        ),
        Column(
            "prev_observation_date",
            pa.date32(),
            "the same as known at the close of the week before",
            True,
        ),
        Column(
            "prev_implied_change_bp",
            pa.float64(),
            "implied_change_bp as known at the close of the week "
            "before (null unless that week's status is 'ok')",
            True,
        ),
        Column("change_bp", pa.float64(), "implied_change_bp - prev_implied_change_bp, basis points", True),
    ),
)

# computed by pipelines/metrics/market.py
WEEKLY_TOTAL_MARKET_CAP = Table(
    name="weekly_total_market_cap",
    description="Total crypto market cap (sum over every coin in coin_daily, short data gaps carried) at the "
    "week's open and close.",
    partition_by="week",
    key=("week_start",),
    columns=(
        WEEK_START,
        Column("open_day", pa.date32(), "daily partition whose close opens the week"),
        Column("close_day", pa.date32(), "daily partition whose close ends the week"),
        Column("mcap_open_usd", pa.float64(), "total market cap at the open", True),
        Column("mcap_close_usd", pa.float64(), "total market cap at the close", True),
        Column("change_pct", pa.float64(), "weekly change, percent", True),
        Column("mcap_low_usd", pa.float64(), "lowest daily close within open..close", True),
        Column("mcap_high_usd", pa.float64(), "highest daily close within open..close", True),
        Column("coins_open", pa.int32(), "coins with a market cap reading at the open", True),
        Column("coins_close", pa.int32(), "coins with a market cap reading at the close", True),
        Column(
            "coins_carried_open",
            pa.int32(),
            "coins counted at their last reading (data gap) at the open",
            True,
        ),
        Column(
            "coins_carried_close",
            pa.int32(),
            "coins counted at their last reading (data gap) at the close",
            True,
        ),
        Column(
            "market_total_open_usd",
            pa.float64(),
            "the market's total at the open (weekly_market_total)",
            True,
        ),
        Column("market_total_close_usd", pa.float64(), "the market's total at the close", True),
        Column(
            "market_total_change_pct",
            pa.float64(),
            "market_total_open_usd to market_total_close_usd, percent",
            True,
        ),
        Column("market_total_low_usd", pa.float64(), "lowest daily market total within open..close", True),
        Column("market_total_high_usd", pa.float64(), "highest daily market total within open..close", True),
        Column(
            "basis_open",
            pa.string(),
            "'observed' (CoinGecko's global figure at the close) or 'estimated'",
            True,
        ),
        Column("basis_close", pa.string(), "the same at the close", True),
        Column(
            "share_open",
            pa.float64(),
            "the top coins' share of the total used (or observed) at the open",
            True,
        ),
        Column("share_close", pa.float64(), "the same at the close", True),
        Column(
            "share_source_open",
            pa.string(),
            "'measured' (a /global observation) or 'real-data constant'",
            True,
        ),
        Column("share_source_close", pa.string(), "the same at the close", True),
        Column(
            "share_observed_at_open",
            UTC_MS,
            "when the share used at the open was measured (null: constant)",
            True,
        ),
        Column("share_observed_at_close", UTC_MS, "the same at the close", True),
        Column("top_coins_open", pa.int32(), "coins in the top sum divided by the share at the open", True),
        Column("top_coins_close", pa.int32(), "the same at the close", True),
    ),
)

# computed by pipelines/metrics/market.py
WEEKLY_MARKET_TOTAL = Table(
    name="weekly_market_total",
    description="The market's total market cap on each day of the week (the close of the Sunday before to the "
    "week's own Sunday): CoinGecko's global figure where it was observed at the close, else the top 100 coins' "
    "market cap divided by their measured share of it (ESTIMATE_METHODOLOGY.md, 'The market's total').",
    partition_by="week",
    key=("date",),
    columns=(
        WEEK_START,
        Column("date", pa.date32(), "the day whose close this is"),
        Column("tracked_mcap_usd", pa.float64(), "the tracked coins' total (coin_daily, short gaps carried)"),
        Column("top_mcap_usd", pa.float64(), "the top_coins largest of them summed"),
        Column("top_coins", pa.int32(), "how many: 100, or every tracked coin when fewer"),
        Column("market_total_usd", pa.float64(), "the market's total: observed, or top_mcap_usd / share"),
        Column("basis", pa.string(), "'observed' or 'estimated'"),
        Column("share", pa.float64(), "the share divided by (estimated) or observed that day (observed)"),
        Column("share_source", pa.string(), "'measured' (global_market_cap) or 'real-data constant'"),
        Column(
            "share_observed_at", UTC_MS, "the observation the share comes from (null: the constant)", True
        ),
    ),
)

# computed by pipelines/metrics/market.py
WEEKLY_MCAP_CROSSINGS = Table(
    name="weekly_mcap_crossings",
    description="Round-number levels of the total market cap crossed (daily closes) during the week.",
    partition_by="week",
    key=("level_usd", "crossed_on"),
    columns=(
        WEEK_START,
        Column("level_usd", pa.float64(), "the round level crossed, e.g. 3e12"),
        Column(
            "direction",
            pa.string(),
            "'down' (closed below, was at or above) or 'up' (closed at or above)",
        ),
        Column("crossed_on", pa.date32(), "first daily close on the new side"),
        Column(
            "last_other_side_day",
            pa.date32(),
            "last close before crossed_on already on the new side ('first time since'); null: never in history",
            True,
        ),
    ),
)

# computed by pipelines/metrics/sectors.py
WEEKLY_INDEX_RETURNS = Table(
    name="weekly_index_returns",
    description="Capped market-cap-weighted sector/size index returns, Monday 00:00 to Monday 00:00 UTC.",
    partition_by="week",
    key=("index",),
    columns=(
        WEEK_START,
        Column("index", pa.string(), "index name (see ESTIMATE_METHODOLOGY.md)"),
        Column("constituents", pa.int32(), "members at the Monday rebalance"),
        Column("max_weight", pa.float64(), "largest weight after capping", True),
        Column("return_pct", pa.float64(), "weighted return over the week, percent", True),
        Column("prev_return_pct", pa.float64(), "the same index's return the week before, percent", True),
        Column("members_close", pa.int32(), "members with a price on the close day", True),
        Column("members_carried", pa.int32(), "members priced at their last price earlier in the week", True),
        Column(
            "members_dropped",
            pa.int32(),
            "members with no price after the open (left out, weights renormalised)",
            True,
        ),
    ),
)

# computed by pipelines/metrics/universe.py
WEEKLY_UNIVERSE = Table(
    name="weekly_universe",
    description="The top N eligible coins by market cap at the week's open (close of the Sunday before), ranked.",
    partition_by="week",
    key=("coin_id",),
    columns=(
        WEEK_START,
        Column("rank", pa.int32(), "market-cap rank among eligible coins at the open, 1 = largest"),
        Column("coin_id", pa.string(), "CoinGecko coin id"),
        Column("symbol", pa.string(), "ticker"),
        Column("name", pa.string(), "display name (untrusted text)"),
        Column("market_cap_open_usd", pa.float64(), "market cap at the open"),
        Column("price_open_usd", pa.float64(), "price at the open"),
    ),
)

# computed by pipelines/metrics/volatility.py
WEEKLY_BTC_VOLATILITY = Table(
    name="weekly_btc_volatility",
    description="BTC realized volatility (annualized, percent) at the week's close and a week earlier.",
    partition_by="week",
    key=("week_start",),
    columns=(
        WEEK_START,
        Column("rv7_hourly_pct", pa.float64(), "7-day RV from 168 hourly log returns, x sqrt(24*365)", True),
        Column("rv7_hourly_prev_pct", pa.float64(), "the same at the week's open", True),
        Column("rv7_change_pts", pa.float64(), "rv7_hourly_pct minus rv7_hourly_prev_pct", True),
        Column("rv30_hourly_pct", pa.float64(), "30-day RV from hourly log returns", True),
        Column("rv7_daily_pct", pa.float64(), "7-day RV from daily log returns, x sqrt(365)", True),
        Column("rv30_daily_pct", pa.float64(), "30-day RV from daily log returns", True),
        Column(
            "rv7_highest_since",
            pa.date32(),
            "last earlier daily close with rv7_hourly >= this week's",
            True,
        ),
    ),
)

# computed by pipelines/metrics/volume.py
WEEKLY_VOLUME = Table(
    name="weekly_volume",
    description="Spot and perp quote volume summed over the week's seven UTC days, and perp/spot.",
    partition_by="week",
    key=("week_start",),
    columns=(
        WEEK_START,
        Column(
            "spot_volume_usd",
            pa.float64(),
            "spot volume Monday..Sunday; null unless all 7 days exist",
            True,
        ),
        Column("spot_volume_prev_usd", pa.float64(), "the same for the week before", True),
        Column("spot_change_pct", pa.float64(), "weekly change of spot volume, percent", True),
        Column(
            "perp_volume_usd",
            pa.float64(),
            "perp volume Monday..Sunday; null unless all 7 days exist",
            True,
        ),
        Column("perp_volume_prev_usd", pa.float64(), "the same for the week before", True),
        Column("perp_change_pct", pa.float64(), "weekly change of perp volume, percent", True),
        Column("perp_to_spot", pa.float64(), "perp_volume_usd / spot_volume_usd", True),
        Column("perp_to_spot_prev", pa.float64(), "the same for the week before", True),
    ),
)

# computed by pipelines/clean/derivatives.py
FUNDING_RATES = Table(
    name="funding_rates",
    description="Perpetual funding settlements (Binance USDT-M, Bybit linear, OKX USDT swaps), one row per "
    "settlement; partition = UTC day of the settlement.",
    partition_by="date",
    key=("exchange", "symbol", "funding_time"),
    columns=(
        EXCHANGE,
        SYMBOL,
        Column("funding_time", UTC_MS, "settlement time, UTC (floored to the hour)"),
        Column(
            "funding_rate",
            pa.float64(),
            "fraction of notional paid per interval (0.0001 = 0.01%); OKX realizedRate",
        ),
        Column(
            "interval_hours",
            pa.int32(),
            "funding interval in hours (8, 4, 1...), from the venue or the gaps",
        ),
        RAW_FILE,
    ),
)

# computed by pipelines/clean/derivatives.py
OPEN_INTEREST = Table(
    name="open_interest",
    description="Perpetual open interest in USD: Binance hourly (REST 30 days, metrics archive before), Bybit "
    "hourly (base coin x Binance perp hourly close), OKX daily (rubik, all of the coin's contracts). "
    "Partition = UTC day of the reading.",
    partition_by="date",
    key=("exchange", "symbol", "ts"),
    columns=(
        EXCHANGE,
        SYMBOL,
        Column("ts", UTC_MS, "reading time, UTC (hourly; OKX daily at 00:00)"),
        Column("oi_usd", pa.float64(), "open interest, USD notional (both sides counted once)"),
        RAW_FILE,
    ),
)

# computed by pipelines/clean/derivatives.py
LONG_SHORT_RATIO = Table(
    name="long_short_ratio",
    description="Binance global long/short account ratio, hourly (REST 30 days, metrics archive before).",
    partition_by="date",
    key=("exchange", "symbol", "ts"),
    columns=(
        EXCHANGE,
        SYMBOL,
        Column("ts", UTC_MS, "reading time, UTC"),
        Column("long_account", pa.float64(), "share of accounts net long, 0..1"),
        Column("short_account", pa.float64(), "share of accounts net short, 0..1"),
        RAW_FILE,
    ),
)

# computed by pipelines/clean/derivatives.py
BTC_HOURLY = Table(
    name="btc_hourly",
    description="Binance spot BTCUSDT hourly bars; partition = UTC day of the bar's open.",
    partition_by="date",
    key=("ts",),
    columns=(
        Column("ts", UTC_MS, "bar open, UTC"),
        Column("open", pa.float64(), "USDT"),
        Column("high", pa.float64(), "USDT"),
        Column("low", pa.float64(), "USDT"),
        Column("close", pa.float64(), "USDT"),
        Column("volume", pa.float64(), "base volume, BTC"),
        Column("quote_volume", pa.float64(), "quote volume, USDT"),
        RAW_FILE,
    ),
)

# computed by pipelines/clean/derivatives.py
PERP_VOLUME_DAILY = Table(
    name="perp_volume_daily",
    description="Binance USDT-M perpetual volume of the UTC day (daily kline quote volume, USDT taken as USD).",
    partition_by="date",
    key=("exchange", "symbol"),
    columns=(
        EXCHANGE,
        SYMBOL,
        Column("quote_volume_usd", pa.float64(), "quote volume of the day, USD(T)"),
        RAW_FILE,
    ),
)

# computed by pipelines/clean/derivatives.py
MACRO_OBSERVATIONS = Table(
    name="macro_observations",
    description="FRED observations (fredgraph.csv) of the report's macro series; partition = series id.",
    partition_by="series",
    key=("date",),
    columns=(
        Column("series_id", pa.string(), "FRED series id"),
        Column("date", pa.date32(), "observation date (monthly series: the 1st of the month)"),
        Column(
            "value",
            pa.float64(),
            "value in the series' units; null where FRED has '.' or blank, never 0",
            True,
        ),
        Column("pulled_at", UTC_MS, "when the raw CSV was pulled"),
        RAW_FILE,
    ),
)

# computed by pipelines/clean/estimates.py
COIN_DAILY_ESTIMATES = Table(
    name="coin_daily_estimates",
    description=(
        "Which coin_daily rows are estimates, and how: one row per coin and day whose market cap was estimated "
        "from a Binance spot close and the coin's supply on a reference day CoinGecko's plan reaches."
    ),
    partition_by="date",
    key=("coin_id",),
    columns=(
        Column("coin_id", pa.string(), "CoinGecko coin id"),
        Column("method", pa.string(), f"how the row was estimated ('{ESTIMATE_METHOD}')"),
        Column("spot_symbol", pa.string(), "the Binance spot pair whose daily close priced the coin"),
        Column(
            "reference_day",
            pa.date32(),
            "the first day CoinGecko's plan reaches; its supply is carried back",
        ),
        Column("reference_supply", pa.float64(), "market_cap / price on the reference day (CoinGecko)"),
        Column("spot_raw_file", pa.string(), "the stored Binance response of the close"),
    ),
)


# Every table of the lake, declared above; nothing is added at import time elsewhere.
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        COIN_DAILY,
        COIN_REGISTRY,
        GLOBAL_MARKET_CAP,
        WEEKLY_MARKET_SUMMARY,
        WEEKLY_MOVERS,
        WEEKLY_CORRELATION_BUCKETS,
        WEEKLY_CROSS_ASSET,
        WEEKLY_CRYPTO_RANK,
        WEEKLY_LEVERAGE,
        WEEKLY_MACRO,
        WEEKLY_RATE_EXPECTATIONS,
        WEEKLY_TOTAL_MARKET_CAP,
        WEEKLY_MARKET_TOTAL,
        WEEKLY_MCAP_CROSSINGS,
        WEEKLY_INDEX_RETURNS,
        WEEKLY_UNIVERSE,
        WEEKLY_BTC_VOLATILITY,
        WEEKLY_VOLUME,
        FUNDING_RATES,
        OPEN_INTEREST,
        LONG_SHORT_RATIO,
        BTC_HOURLY,
        PERP_VOLUME_DAILY,
        MACRO_OBSERVATIONS,
        COIN_DAILY_ESTIMATES,
    )
}
