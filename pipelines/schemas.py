"""Every table's schema, in one place.

Each lake table is declared here once: its Arrow schema, the column it is partitioned by on disk, and a
description of every column. Writers validate against it (``Table.conform``), the DuckDB catalog is built from
it, and Dagster's ``dagster/column_schema`` metadata is derived from it, so Parquet, DuckDB, the UI and the
docs cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
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


class SchemaError(ValueError):
    """A frame does not match its table's declared schema."""


UTC_MS = pa.timestamp("ms", tz="UTC")

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
        Column("week_start", pa.date32(), "Monday 00:00 UTC that opens the week"),
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

TABLES: dict[str, Table] = {
    t.name: t for t in (COIN_DAILY, COIN_REGISTRY, GLOBAL_MARKET_CAP, WEEKLY_MARKET_SUMMARY, WEEKLY_MOVERS)
}


def register(table: Table) -> Table:
    """Add a table declared in another module (one schema per table, still one registry)."""
    if table.name in TABLES and TABLES[table.name] is not table:
        raise ValueError(f"table {table.name!r} declared twice")
    TABLES[table.name] = table
    return table
