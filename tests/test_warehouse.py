"""The warehouse: atomic partition writes, schema validation, raw files never replaced, safe paths."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.schemas import COIN_DAILY, SchemaError
from pipelines.warehouse import Warehouse, safe_component


def rows(n: int = 2) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "coin_id": [f"c{i}" for i in range(n)],
            "symbol": ["a"] * n,
            "name": ["A"] * n,
            "price_usd": [1.0 + i for i in range(n)],
            "market_cap_usd": [10.0] * n,
            "volume_24h_usd": [None] * n,
            "observed_at": [datetime(2025, 1, 2, tzinfo=timezone.utc)] * n,
            "raw_file": ["raw/x.json"] * n,
        }
    )


def test_partition_write_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    first = wh.write_partition(COIN_DAILY, "2025-01-01", rows(3))
    second = wh.write_partition(COIN_DAILY, "2025-01-01", rows(2))
    assert first.path == second.path and first.sha256 != second.sha256
    assert wh.read_partition(COIN_DAILY, "2025-01-01").height == 2
    assert [p.name for p in first.path.parent.iterdir()] == ["data.parquet"]


def test_same_frame_same_bytes(tmp_path: Path) -> None:
    a = Warehouse(tmp_path / "a").write_partition(COIN_DAILY, "2025-01-01", rows())
    b = Warehouse(tmp_path / "b").write_partition(COIN_DAILY, "2025-01-01", rows())
    assert a.sha256 == b.sha256


@pytest.mark.parametrize(
    "bad",
    [
        lambda df: df.drop("price_usd"),
        lambda df: df.with_columns(pl.lit("x").alias("extra")),
        lambda df: df.with_columns(pl.lit(None, pl.Float64).alias("price_usd")),
        lambda df: pl.concat([df, df]),  # duplicate coin ids
        lambda df: df.with_columns(pl.lit("not a number").alias("price_usd")),
    ],
)
def test_schema_violations_write_nothing(tmp_path: Path, bad) -> None:
    wh = Warehouse(tmp_path)
    with pytest.raises(SchemaError):
        wh.write_partition(COIN_DAILY, "2025-01-01", bad(rows()))
    assert not wh.has_partition(COIN_DAILY, "2025-01-01")


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    good = wh.write_partition(COIN_DAILY, "2025-01-01", rows())
    with pytest.raises(SchemaError):
        wh.write_partition(COIN_DAILY, "2025-01-01", rows().drop("name"))
    assert wh.partition_path(COIN_DAILY, "2025-01-01").read_bytes() == good.path.read_bytes()


def test_raw_files_are_never_replaced(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    stored = wh.store_raw(
        "coingecko", "markets", {"snapshot": "s1"}, "page-1", b"[1]", {"url": "u", "params": {}}
    )
    assert stored.path.read_bytes() == b"[1]"
    with pytest.raises(FileExistsError):
        wh.store_raw("coingecko", "markets", {"snapshot": "s1"}, "page-1", b"[2]", {"url": "u", "params": {}})
    assert stored.path.read_bytes() == b"[1]"
    assert Warehouse.raw_meta(stored.path)["sha256"] == stored.sha256


@pytest.mark.parametrize("value", ["../../x", "..", "a/b", "/etc", "", "x\x00", "a\\b", ".hidden"])
def test_unsafe_path_components_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError):
        safe_component(value)
    with pytest.raises(ValueError):
        Warehouse(tmp_path).store_raw("coingecko", "market_chart_range", {"coin": value}, "n", b"{}", {})


def test_query_is_parameterized_and_catalog_is_openable(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    wh.write_partition(COIN_DAILY, "2025-01-01", rows(3))
    hostile = "c0' OR '1'='1"
    assert wh.query("SELECT * FROM coin_daily WHERE coin_id = ?", [hostile]).height == 0
    assert wh.query("SELECT date, count(*) AS n FROM coin_daily GROUP BY date")["n"].to_list() == [3]
    path = wh.refresh_catalog()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM coin_daily").fetchone() == (3,)
    con.close()


def test_views_kept_between_queries_follow_the_lake(tmp_path: Path) -> None:
    """A query reuses its thread's views: a partition written after the view sees its rows, a table whose files
    are all removed is not read from a stale view (its view is made again, and without data the query fails as
    for a table never written), and two warehouses in one thread never read each other's files."""
    import shutil
    import threading

    wh = Warehouse(tmp_path / "a")
    other = Warehouse(tmp_path / "b")
    count = "SELECT count(*) AS n FROM coin_daily"
    wh.write_partition(COIN_DAILY, "2025-01-01", rows(3))
    other.write_partition(COIN_DAILY, "2025-01-01", rows(1))
    assert wh.query(count)["n"].item() == 3 and other.query(count)["n"].item() == 1
    wh.write_partition(COIN_DAILY, "2025-01-02", rows(2))
    assert wh.query(count)["n"].item() == 5
    shutil.rmtree(wh.lake_dir / "coin_daily")
    with pytest.raises(duckdb.Error, match="coin_daily"):
        wh.query(count)
    wh.write_partition(COIN_DAILY, "2025-01-03", rows(4))
    assert wh.query(count)["n"].item() == 4
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(wh.query(count)["n"].item()))
    worker.start()
    worker.join()
    assert seen == [4]
