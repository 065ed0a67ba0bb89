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


def test_partitions_read_together_are_each_partition_read_alone(tmp_path: Path, monkeypatch) -> None:
    """A range's partitions read in one call (``read_partitions``) are each what ``read_partition`` reads alone:
    an empty partition, a file whose columns come in another order (read alone, in its own order), and the
    frames kept for the next read while their files are unchanged; a file that is not Parquet raises as it does
    alone."""
    import pyarrow.parquet as pq

    from pipelines import warehouse

    parsed: list[str] = []
    real = warehouse._read_parquets

    def counted(paths: list[str]) -> dict[str, pl.DataFrame]:
        parsed.extend(paths)
        return real(paths)

    monkeypatch.setattr(warehouse, "_read_parquets", counted)
    wh = Warehouse(tmp_path)
    days = ["2025-01-01", "2025-01-02", "2025-01-03"]
    wh.write_partition(COIN_DAILY, days[0], rows(3))
    wh.write_partition(COIN_DAILY, days[1], rows(0))
    wh.write_partition(COIN_DAILY, days[2], rows(5))

    def alone() -> dict[str, pl.DataFrame]:
        return {d: pl.read_parquet(wh.partition_path(COIN_DAILY, d), glob=False) for d in days}

    def same(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> bool:
        return list(got) == list(want) and all(
            got[d].schema == want[d].schema and got[d].equals(want[d]) for d in want
        )

    assert same(wh.read_partitions(COIN_DAILY, days), alone())
    assert same(wh.read_partitions(COIN_DAILY, days[::-1]), {d: alone()[d] for d in days[::-1]})
    assert len(parsed) == 3  # kept: no file read again while it is the same file
    wh.write_partition(COIN_DAILY, days[0], rows(4))  # replaced: read again
    assert same(wh.read_partitions(COIN_DAILY, days), alone()) and len(parsed) == 4
    # a file written with its columns in another order: read alone, as read_partition reads it
    path = wh.partition_path(COIN_DAILY, days[2])
    table = pq.ParquetFile(path).read()  # the file alone (read_table adds its folder's partition column)
    pq.write_table(table.select(table.column_names[::-1]), path)
    wh.write_partition(COIN_DAILY, days[0], rows(2))  # read in the same call as the reordered file
    got = wh.read_partitions(COIN_DAILY, days)
    assert same(got, alone()) and got[days[2]].columns == table.column_names[::-1]
    path.write_bytes(b"not a parquet file")
    with pytest.raises(pl.exceptions.ComputeError) as together:
        wh.read_partitions(COIN_DAILY, days)
    with pytest.raises(pl.exceptions.ComputeError) as one:
        wh.read_partition(COIN_DAILY, days[2])
    assert str(together.value) == str(one.value)


BAD_FRAMES = [
    lambda df: df.drop("price_usd"),
    lambda df: df.with_columns(pl.lit("x").alias("extra")),
    lambda df: df.with_columns(pl.lit(None, pl.Float64).alias("price_usd")),
    lambda df: pl.concat([df, df]),  # duplicate coin ids
    lambda df: df.with_columns(pl.lit("not a number").alias("price_usd")),
]


@pytest.mark.parametrize("bad", BAD_FRAMES)
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


def test_partitions_written_together_are_the_files_written_one_at_a_time(tmp_path: Path) -> None:
    """``write_partitions`` (several at a time) gives each partition the bytes ``write_partition`` gives it, in key
    order; a partition that fails its schema is the error raised, the first in key order, once every other write
    has ended: those are written whole, the failed ones keep their previous file, no temporary file is left."""
    frames = {f"2025-01-{d:02d}": rows(d) for d in range(9, 0, -1)}
    alone = {k: Warehouse(tmp_path / "alone").write_partition(COIN_DAILY, k, f) for k, f in frames.items()}
    wh = Warehouse(tmp_path / "together")
    together = wh.write_partitions(COIN_DAILY, frames)
    assert list(together) == sorted(frames)
    assert {k: w.sha256 for k, w in together.items()} == {k: w.sha256 for k, w in alone.items()}
    assert {k: w.rows for k, w in together.items()} == {k: f.height for k, f in frames.items()}

    bad = {**{k: f.head(1) for k, f in frames.items()}, "2025-01-07": rows().drop("name")}
    bad["2025-01-03"] = rows().with_columns(pl.lit(None, pl.Float64).alias("price_usd"))
    with pytest.raises(SchemaError, match="price_usd"):
        wh.write_partitions(COIN_DAILY, bad)
    for k in frames:
        kept = k in ("2025-01-03", "2025-01-07")
        assert wh.read_partition(COIN_DAILY, k).height == (frames[k].height if kept else 1)
    assert sorted(p.name for p in (tmp_path / "together").rglob("*") if p.is_file() and "tmp" in p.name) == []


def test_frames_checked_together_are_each_frame_conformed_alone() -> None:
    """``conform_many`` gives each partition the Arrow table ``conform`` gives it alone (columns in another order,
    an empty frame, a key repeated in another partition); a frame ``conform`` refuses, or frames whose columns'
    types differ, make it give None, so that each is then checked alone and the partition named."""
    frames = {
        "2025-01-01": rows(3),
        "2025-01-02": rows(0),
        "2025-01-03": rows(2).select(reversed(rows(2).columns)),
    }
    together = COIN_DAILY.conform_many(frames)
    assert together is not None and list(together) == list(frames)
    for key, frame in frames.items():
        alone = COIN_DAILY.conform(frame)
        assert together[key].equals(alone) and together[key].schema == alone.schema
    for bad in BAD_FRAMES:
        with pytest.raises(SchemaError):
            COIN_DAILY.conform(bad(rows()))
        assert COIN_DAILY.conform_many({**frames, "2025-01-05": bad(rows())}) is None
    float32 = rows(1).with_columns(pl.col("price_usd").cast(pl.Float32))
    assert COIN_DAILY.conform(float32).num_rows == 1
    assert COIN_DAILY.conform_many({**frames, "2025-01-05": float32}) is None


def test_a_range_of_good_partitions_is_checked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions that pass are checked together: no partition is conformed alone."""
    alone: list[int] = []
    conform = type(COIN_DAILY).conform
    monkeypatch.setattr(type(COIN_DAILY), "conform", lambda self, df: alone.append(1) or conform(self, df))
    written = Warehouse(tmp_path).write_partitions(
        COIN_DAILY, {f"2025-01-0{d}": rows(d) for d in range(1, 6)}
    )
    assert len(written) == 5 and alone == []


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


def test_the_catalog_makes_only_the_views_that_changed(tmp_path: Path, monkeypatch) -> None:
    """A new table's view is added to the catalog without making the others again (each binds its table's
    files); a table whose files are all gone loses its view; a catalog without its record is made whole."""
    import shutil

    from pipelines.schemas import FUNDING_RATES

    wh = Warehouse(tmp_path)
    wh.write_partition(COIN_DAILY, "2025-01-01", rows(3))
    wh.refresh_catalog()
    funding = pl.DataFrame(
        {
            "exchange": ["binance"],
            "symbol": ["BTCUSDT"],
            "funding_time": [datetime(2025, 1, 1, 8, tzinfo=timezone.utc)],
            "funding_rate": [0.0001],
            "interval_hours": [8],
            "raw_file": ["raw/x.json"],
        }
    )
    wh.write_partition(FUNDING_RATES, "2025-01-01", funding)
    executed: list[str] = []
    connect = duckdb.connect

    def spy(*args, **kwargs):
        con = connect(*args, **kwargs)

        class Recording:
            def execute(self, sql, *a):
                executed.append(sql)
                return con.execute(sql, *a)

            def close(self):
                con.close()

        return Recording()

    monkeypatch.setattr(duckdb, "connect", spy)
    path = wh.refresh_catalog()
    monkeypatch.undo()
    assert [sql.split(" AS ")[0] for sql in executed if sql.startswith("CREATE")] == [
        "CREATE OR REPLACE VIEW funding_rates"
    ]
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM coin_daily").fetchone() == (3,)
    assert con.execute("SELECT count(*) FROM funding_rates").fetchone() == (1,)
    con.close()
    shutil.rmtree(wh.lake_dir / FUNDING_RATES.name)
    wh.refresh_catalog()
    con = duckdb.connect(str(path), read_only=True)
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    con.close()
    assert views == {"coin_daily"}
    (tmp_path / ".catalog.views.json").write_text("[1]")  # a record that is not one: every view made again
    wh.refresh_catalog()
    (tmp_path / ".catalog.views.json").unlink()  # no record of what the catalog holds: every view made again
    wh.write_partition(FUNDING_RATES, "2025-01-01", funding)
    con = duckdb.connect(str(wh.refresh_catalog()), read_only=True)
    assert con.execute("SELECT count(*) FROM funding_rates").fetchone() == (1,)
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


def test_tables_read_from_memory_equal_the_files_and_follow_every_change(tmp_path: Path) -> None:
    """From its second read in a process a table is answered from memory (pipelines/lake_files.py): the same
    rows, columns, types and order as DuckDB's read of the files; only new and replaced files are parsed again;
    a partition replaced by a rename, rewritten in place, removed, or a table emptied is seen at the next query;
    a frame handed out by read_partition is the caller's own."""
    from pipelines.lake_files import LAKE_FILES

    wh = Warehouse(tmp_path)
    for day, n in (("2025-01-01", 3), ("2025-01-02", 2), ("2025-01-03", 4)):
        wh.write_partition(COIN_DAILY, day, rows(n))
    glob = (wh.lake_dir / "coin_daily" / "date=*" / "data.parquet").as_posix()
    sql = "SELECT * FROM coin_daily WHERE date >= ? ORDER BY coin_id, date"
    direct = duckdb.connect().execute(
        f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, hive_types = {{'date': DATE}}) "
        "WHERE date >= ? ORDER BY coin_id, date",
        ["2025-01-02"],
    )
    expected = pl.from_arrow(direct.to_arrow_table())
    first = wh.query(sql, ["2025-01-02"])  # the first read: a view over the files
    before = LAKE_FILES.files_read
    second = wh.query(sql, ["2025-01-02"])  # the whole table parsed once, into memory
    assert LAKE_FILES.files_read - before == 3
    assert first.equals(expected) and second.equals(expected) and second.schema == expected.schema
    unordered = (
        "SELECT coin_id, date FROM coin_daily"  # no ORDER BY: the files' order, as the glob reads them
    )
    assert wh.query(unordered).rows() == [(r[0], r[1]) for r in wh.query(unordered).rows()]
    assert [d.isoformat() for d in wh.query(unordered)["date"].unique(maintain_order=True)] == [
        "2025-01-01",
        "2025-01-02",
        "2025-01-03",
    ]

    count = "SELECT date::VARCHAR AS d, count(*) AS n FROM coin_daily GROUP BY d ORDER BY d"
    before = LAKE_FILES.files_read
    wh.query(count)
    assert LAKE_FILES.files_read == before  # nothing changed: nothing parsed
    wh.write_partition(COIN_DAILY, "2025-01-02", rows(5))  # replaced by a rename
    wh.write_partition(COIN_DAILY, "2025-01-04", rows(1))  # a new partition
    assert wh.query(count).rows() == [
        ("2025-01-01", 3),
        ("2025-01-02", 5),
        ("2025-01-03", 4),
        ("2025-01-04", 1),
    ]
    assert LAKE_FILES.files_read - before == 2  # only the two files that changed
    rows(6).write_parquet(wh.partition_path(COIN_DAILY, "2025-01-03"))  # rewritten in place, same inode
    wh.partition_path(COIN_DAILY, "2025-01-01").unlink()  # removed
    assert wh.query(count).rows() == [("2025-01-02", 5), ("2025-01-03", 6), ("2025-01-04", 1)]

    frame = wh.read_partition(COIN_DAILY, "2025-01-02")
    frame.insert_column(0, pl.Series("extra", [0] * frame.height))  # a caller changing its frame in place
    again = wh.read_partition(COIN_DAILY, "2025-01-02")
    assert again.columns == COIN_DAILY.column_names and again.height == 5
    wh.write_partition(COIN_DAILY, "2025-01-02", rows(2))
    assert wh.read_partition(COIN_DAILY, "2025-01-02").height == 2

    for day in ("2025-01-02", "2025-01-03", "2025-01-04"):
        wh.partition_path(COIN_DAILY, day).unlink()
    with pytest.raises(duckdb.Error, match="coin_daily"):  # no file left: a missing table, not stale rows
        wh.query(count)


def test_a_process_that_reads_a_table_once_reads_only_the_files_its_query_needs(tmp_path: Path) -> None:
    """The first read of a table in a process goes through a view over its files, so a one-day query reads one
    day's file (DuckDB prunes partitions by path), not the whole table; only a second read loads it whole."""
    import subprocess
    import sys

    wh = Warehouse(tmp_path)
    for i in range(1, 9):
        wh.write_partition(COIN_DAILY, f"2025-01-0{i}", rows(2))
    code = (
        "from pipelines.warehouse import Warehouse; from pipelines.lake_files import LAKE_FILES; "
        f"wh = Warehouse({str(tmp_path)!r}); q = 'SELECT count(*) AS n FROM coin_daily WHERE date = ?'; "
        "a = wh.query(q, ['2025-01-05'])['n'].item(); n1 = LAKE_FILES.files_read; "
        "b = wh.query(q, ['2025-01-06'])['n'].item(); print(a, n1, b, LAKE_FILES.files_read)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2", "0", "2", "8"]


def test_a_file_gone_while_its_table_is_read_is_read_again_once(tmp_path: Path, monkeypatch) -> None:
    """A partition replaced or swept between the listing and the read (DuckDB's IOException) costs one retry
    from a fresh listing, not a failed query; a second failure is raised."""
    import threading

    from pipelines.lake_files import LAKE_FILES

    wh = Warehouse(tmp_path)
    wh.write_partition(COIN_DAILY, "2025-01-01", rows(3))
    count = "SELECT count(*) AS n FROM coin_daily"
    wh.query(count)  # the first read, through the view
    wh.write_partition(COIN_DAILY, "2025-01-02", rows(2))
    real = LAKE_FILES._read
    failures = iter([duckdb.IOException("No files found that match the pattern")])

    def flaky(*args, **kwargs):
        for exc in failures:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(LAKE_FILES, "_read", flaky)
    seen: list[object] = []

    def in_a_new_thread() -> None:  # its connection has no binding yet: nothing to drop, still one retry
        try:
            seen.append(wh.query(count)["n"].item())
        except duckdb.Error as exc:
            seen.append(exc)

    worker = threading.Thread(target=in_a_new_thread)
    worker.start()
    worker.join()
    assert seen == [5]
    wh.write_partition(COIN_DAILY, "2025-01-03", rows(1))
    monkeypatch.setattr(
        LAKE_FILES, "_read", lambda *a, **k: (_ for _ in ()).throw(duckdb.IOException("gone"))
    )
    with pytest.raises(duckdb.IOException, match="gone"):
        wh.query(count)


def test_closed_months_are_read_from_segments_that_follow_every_change(tmp_path: Path, caplog) -> None:
    """A process reading a table whole keeps every month but the newest as one segment (its files' rows and
    identities); another process reads those months from the segments and parses only the newer files. A day
    rewritten, removed or added in a closed month, or a segment that cannot be read, makes that month's files
    parsed again (and the segment rewritten): the rows are always the files' own."""
    from datetime import date, timedelta

    from pipelines.lake_files import LakeFiles

    wh = Warehouse(tmp_path)
    days = [date(2025, 1, 30) + timedelta(days=k) for k in range(33)]  # January 2, February 28, March 3
    for k, day in enumerate(days):
        wh.write_partition(
            COIN_DAILY, day.isoformat(), rows(1 + k % 3).with_columns(pl.lit(float(k)).alias("price_usd"))
        )
    glob = (wh.lake_dir / "coin_daily" / "date=*" / "data.parquet").as_posix()

    def files_now() -> pl.DataFrame:
        direct = duckdb.connect().execute(
            f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, hive_types = {{'date': DATE}})"
        )
        return pl.from_arrow(direct.to_arrow_table()).sort(["date", "coin_id"])

    def read_in_a_new_process() -> tuple[pl.DataFrame, int]:
        lake_files = LakeFiles()
        data = lake_files.table(wh.lake_dir, COIN_DAILY, duckdb.connect(), wh.read_cache(COIN_DAILY))
        frame = pl.from_arrow(data)
        assert frame["date"].is_sorted()  # the files' order, as the glob reads them
        return frame.sort(["date", "coin_id"]), lake_files.files_read

    frame, parsed = read_in_a_new_process()
    assert parsed == 33 and frame.equals(files_now())
    cache = wh.read_cache(COIN_DAILY)
    assert sorted(p.name for p in cache.iterdir()) == [
        "2025-01.arrow",
        "2025-02.arrow",
    ]  # not the newest month
    frame, parsed = read_in_a_new_process()
    assert parsed == 3 and frame.equals(files_now())  # March's files only

    wh.write_partition(COIN_DAILY, "2025-02-10", rows(5))  # a day of a closed month rewritten
    frame, parsed = read_in_a_new_process()
    assert parsed == 28 + 3 and frame.equals(files_now())
    assert read_in_a_new_process()[1] == 3  # its segment was written again
    wh.partition_path(COIN_DAILY, "2025-01-31").unlink()  # a day removed
    frame, parsed = read_in_a_new_process()
    assert parsed == 1 + 3 and frame.equals(files_now())
    (cache / "2025-02.arrow").write_bytes(b"not an arrow file")  # a damaged segment is never trusted
    with caplog.at_level("WARNING", logger="pipelines.lake_files"):
        frame, parsed = read_in_a_new_process()
    assert parsed == 28 + 3 and frame.equals(files_now())
    assert "2025-02.arrow is unreadable" in caplog.text
    assert read_in_a_new_process()[1] == 3


def test_a_process_reads_a_table_with_segments_whole_from_its_first_query(tmp_path: Path) -> None:
    """Once a table's closed months are segments, a new process's first query reads them, not every file
    through a glob: a query of the whole history parses only the newest month's files."""
    import subprocess
    import sys
    from datetime import date, timedelta

    wh = Warehouse(tmp_path)
    for k in range(40):
        wh.write_partition(COIN_DAILY, (date(2025, 1, 1) + timedelta(days=k)).isoformat(), rows(2))
    code = (
        "from pipelines.warehouse import Warehouse; from pipelines.lake_files import LAKE_FILES; "
        f"wh = Warehouse({str(tmp_path)!r}); q = 'SELECT count(*) AS n FROM coin_daily WHERE date <= ?'; "
        "a = wh.query(q, ['2025-03-01'])['n'].item(); b = wh.query(q, ['2025-03-01'])['n'].item(); "
        "print(a, b, LAKE_FILES.files_read)"
    )

    def run() -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert run().split() == ["80", "80", "40"]  # a glob view first, then the whole table: January's segment
    assert run().split() == ["80", "80", "9"]  # from the first query: January's segment and February's 9 days


def test_rel_names_a_path_from_the_root_however_it_is_reached(tmp_path: Path, monkeypatch) -> None:
    real = tmp_path / "real"
    wh = Warehouse(real)
    target = wh.lake_dir / "coin_daily" / "date=2025-01-01" / "data.parquet"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    want = "lake/coin_daily/date=2025-01-01/data.parquet"
    assert wh.rel(target) == want  # made by the warehouse: cut without resolving
    assert (
        wh.rel(wh.lake_dir / "coin_daily" / ".." / "coin_daily" / "date=2025-01-01" / "data.parquet") == want
    )
    (tmp_path / "link").symlink_to(real)  # the root reached through a link
    assert wh.rel(tmp_path / "link" / "lake" / "coin_daily" / "date=2025-01-01" / "data.parquet") == want
    monkeypatch.chdir(real)
    assert wh.rel(Path("lake/coin_daily/date=2025-01-01/data.parquet")) == want  # relative to the cwd
    with pytest.raises(ValueError):
        wh.rel(tmp_path / "elsewhere.parquet")


def test_dead_writers_temp_files_are_swept_once_a_minute_not_at_every_write(tmp_path: Path) -> None:
    import os
    import subprocess

    from pipelines import warehouse as w

    gone = subprocess.Popen(["true"])
    gone.wait()  # a writer killed mid-write left its temporary file; its pid is free now
    first, second = tmp_path / f".tmp-{gone.pid}-a", tmp_path / f".tmp-{gone.pid}-b"
    first.write_bytes(b"half")
    w.atomic_write_bytes(tmp_path / "one.json", b"{}")
    assert not first.exists()  # the first write of this process into the directory swept it
    second.write_bytes(b"half")
    w.atomic_write_bytes(tmp_path / "two.json", b"{}")
    assert second.exists()  # within the minute: no second listing of the directory
    w._LAST_SWEEP[(os.getpid(), str(tmp_path))] -= w.SWEEP_EVERY_SECONDS  # a minute later
    w.atomic_write_bytes(tmp_path / "three.json", b"{}")
    assert not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json", "three.json", "two.json"]


def test_a_query_within_a_span_of_days_reads_only_those_partitions(tmp_path: Path) -> None:
    """A query given the span of days it reads (``within``) lists and checks only the partitions of that span's
    months, takes their rows from those kept when each file is the one kept, and otherwise reads the months'
    files or segments: its rows are always the files' own, equal to the query over the whole table, and a day
    rewritten in the span is seen at the next query. A span with no partition binds the table with no row."""
    from datetime import date, timedelta

    from pipelines.lake_files import LakeFiles

    wh = Warehouse(tmp_path)
    days = [date(2025, 1, 20) + timedelta(days=k) for k in range(80)]  # January 12, Feb 28, March 31, April 9
    for k, day in enumerate(days):
        wh.write_partition(
            COIN_DAILY, day.isoformat(), rows(1 + k % 3).with_columns(pl.lit(float(k)).alias("price_usd"))
        )
    glob = (wh.lake_dir / "coin_daily" / "date=*" / "data.parquet").as_posix()

    def files_between(first: str, last: str) -> pl.DataFrame:
        direct = duckdb.connect().execute(
            f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, hive_types = {{'date': DATE}}) "
            "WHERE date BETWEEN ? AND ?",
            [first, last],
        )
        return pl.from_arrow(direct.to_arrow_table()).sort(["date", "coin_id"])

    lake_files = LakeFiles()
    con = duckdb.connect()

    def read(first: str, last: str) -> pl.DataFrame:
        data = lake_files.table(wh.lake_dir, COIN_DAILY, con, wh.read_cache(COIN_DAILY), (first, last))
        frame = pl.from_arrow(data)
        assert frame["date"].is_sorted()  # the files' order, as the glob reads them
        return frame.sort(["date", "coin_id"])

    assert read("2025-02-10", "2025-02-20").equals(files_between("2025-02-10", "2025-02-20"))
    assert lake_files.files_read == 28  # February's files, nothing else
    assert read("2025-02-12", "2025-02-14").equals(files_between("2025-02-12", "2025-02-14"))
    assert lake_files.files_read == 28  # from the rows kept
    wh.write_partition(COIN_DAILY, "2025-02-13", rows(5))  # a day of the span rewritten
    assert read("2025-02-12", "2025-02-14").equals(files_between("2025-02-12", "2025-02-14"))
    assert lake_files.files_read == 29
    rows(6).write_parquet(wh.partition_path(COIN_DAILY, "2025-03-05"))  # rewritten in place, outside the span
    assert read("2025-02-27", "2025-03-06").equals(files_between("2025-02-27", "2025-03-06"))
    assert lake_files.files_read == 29 + 31  # March's files (February's are kept)
    assert read("2025-02-01", "2025-02-03").equals(files_between("2025-02-01", "2025-02-03"))
    assert lake_files.files_read == 29 + 31  # kept with March's, not parsed again
    for day in range(10, 16):
        wh.partition_path(COIN_DAILY, f"2025-03-{day}").unlink()
    assert read("2025-03-10", "2025-03-15").height == 0  # no day in the span: no row, the table still bound
    whole = pl.from_arrow(lake_files.table(wh.lake_dir, COIN_DAILY, con, wh.read_cache(COIN_DAILY)))
    assert whole.sort(["date", "coin_id"]).equals(files_between("2025-01-01", "2025-12-31"))

    fresh = (
        LakeFiles()
    )  # another process: the closed months' segments serve a span, the newest month is parsed
    data = fresh.table(wh.lake_dir, COIN_DAILY, con, wh.read_cache(COIN_DAILY), ("2025-02-01", "2025-02-28"))
    assert fresh.files_read == 0 and pl.from_arrow(data).sort(["date", "coin_id"]).equals(
        files_between("2025-02-01", "2025-02-28")
    )
    fresh.table(wh.lake_dir, COIN_DAILY, con, wh.read_cache(COIN_DAILY), ("2025-04-02", "2025-04-03"))
    assert fresh.files_read == 9

    sql = "SELECT * FROM coin_daily WHERE date BETWEEN ? AND ? ORDER BY date, coin_id"
    for first, last in (
        ("2025-01-25", "2025-02-02"),
        ("2025-04-08", "2025-04-30"),
        ("2025-06-01", "2025-06-07"),
    ):
        span = {COIN_DAILY.name: (date.fromisoformat(first), date.fromisoformat(last))}
        within = wh.query(sql, [first, last], within=span)
        assert within.equals(wh.query(sql, [first, last])) and within.equals(files_between(first, last))


def test_partition_values_and_has_files_read_folder_names_only(tmp_path: Path) -> None:
    """A table's partition values come from its folders' names (sorted); it has files once one partition has its
    file, whatever the folders without one."""
    wh = Warehouse(tmp_path)
    assert wh.partition_values(COIN_DAILY) == [] and not wh.has_files(COIN_DAILY)
    (wh.lake_dir / "coin_daily" / "date=2025-01-05").mkdir(parents=True)  # a partition being written
    (wh.lake_dir / "coin_daily" / "notes").mkdir()  # not a partition
    assert not wh.has_files(COIN_DAILY)
    for day in ("2025-01-03", "2025-01-01"):
        wh.write_partition(COIN_DAILY, day, rows())
    assert wh.has_files(COIN_DAILY)
    assert wh.partition_values(COIN_DAILY) == ["2025-01-01", "2025-01-03", "2025-01-05"]


def test_a_weekly_table_keeps_a_years_closed_months_in_one_segment(tmp_path: Path) -> None:
    """A table of weekly partitions (four or five a month) keeps each year's closed months in one segment, not one a
    month: another process reads them from two segments and parses only the newest month's weeks; a week of a
    closed month rewritten makes its year's files parsed again, and the rows are always the files' own."""
    from datetime import date, timedelta

    import pyarrow as pa

    from pipelines.lake_files import LakeFiles
    from pipelines.schemas import Column, Table

    weekly = Table("weekly_test", "a weekly table", "week", (Column("value", pa.float64(), "a value"),))
    wh = Warehouse(tmp_path)
    weeks = [date(2024, 12, 2) + timedelta(days=7 * k) for k in range(20)]  # Dec 2024 .. April 2025
    for k, week in enumerate(weeks):
        wh.write_partition(weekly, week.isoformat(), pl.DataFrame({"value": [float(k)]}))

    def read_in_a_new_process() -> tuple[list[float], int]:
        lake_files = LakeFiles()
        data = lake_files.table(wh.lake_dir, weekly, duckdb.connect(), wh.read_cache(weekly))
        return pl.from_arrow(data)["value"].to_list(), lake_files.files_read

    values, parsed = read_in_a_new_process()
    assert values == [float(k) for k in range(20)] and parsed == 20
    assert sorted(p.name for p in wh.read_cache(weekly).iterdir()) == ["2024.arrow", "2025.arrow"]
    newest = sum(1 for w in weeks if w.month == weeks[-1].month and w.year == weeks[-1].year)
    assert read_in_a_new_process() == ([float(k) for k in range(20)], newest)
    wh.write_partition(weekly, "2025-01-06", pl.DataFrame({"value": [99.0]}))
    values, parsed = read_in_a_new_process()
    in_2025_closed = sum(1 for w in weeks if w.year == 2025 and w.month < weeks[-1].month)
    assert parsed == in_2025_closed + newest and values[weeks.index(date(2025, 1, 6))] == 99.0


def test_read_parquet_reads_a_path_holding_a_patterns_characters_as_that_file(tmp_path: Path) -> None:
    """``read_parquet`` reads the file at its path as it is, never as a glob pattern (``*`` in the warehouse's
    folder would otherwise also read another warehouse's partition beside it)."""
    own, beside = Warehouse(tmp_path / "lake*"), Warehouse(tmp_path / "lake-other")
    own.write_partition(COIN_DAILY, "2025-01-02", rows(2))
    beside.write_partition(COIN_DAILY, "2025-01-02", rows(3))
    path = own.partition_path(COIN_DAILY, "2025-01-02")
    assert own.read_parquet(path).height == 2


def test_files_rows_are_joined_in_order_with_each_run_of_one_table_as_one_slice() -> None:
    """``lake_files._joined``: the rows of files taken from a segment or from the rows kept are joined in the
    listing's order; files that follow one another in one table are one slice of it, and files of one table that
    do not follow one another (a file in between replaced, or out of order) are not joined across the gap."""
    import pyarrow as pa

    from pipelines.lake_files import _joined

    a = pa.table({"x": list(range(10))})
    b = pa.table({"x": [100, 101]})
    parts = [(a, 0, 3), (a, 3, 2), (b, 0, 2), (a, 5, 1), (a, 8, 2), (a, 6, 2)]
    want = [x for rows, first, n in parts for x in rows.column("x").to_pylist()[first : first + n]]
    got = _joined(parts)
    assert got.column("x").to_pylist() == want == [0, 1, 2, 3, 4, 100, 101, 5, 8, 9, 6, 7]
    assert got.column("x").num_chunks == 1


def test_a_tables_partition_names_are_listed_again_only_when_its_folder_changed(
    tmp_path: Path, monkeypatch
) -> None:
    """``lake_files.partition_names``: a folder whose listing is kept is not listed again until it changes (a
    partition added or removed), and a listing taken while its folder had just changed is not kept (its times may
    not show a change in the same clock tick)."""
    import os

    import pipelines.lake_files as lf

    base = tmp_path / "t"
    (base / "date=2025-01-01").mkdir(parents=True)
    (base / ".tmp-1-x").mkdir()
    listed: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(lf.os, "scandir", lambda path: listed.append(os.fspath(path)) or scandir(path))

    def names() -> list[str]:
        return sorted(lf.partition_names(base, "date="))

    stamps = iter(range(1, 100))

    def stamped() -> None:
        """The folder's times after a change made unlike any before it on any file system (ext4 stamps in ns,
        others in clock ticks of milliseconds: changes microseconds apart could share one); in the past, so the
        listing taken next is settled and kept."""
        ns = os.stat(base).st_mtime_ns - next(stamps) * 1_000_000_000
        os.utime(base, ns=(ns, ns))

    monkeypatch.setattr(lf, "SETTLED_NS", 0)  # every listing settled
    assert names() == ["date=2025-01-01"] and len(listed) == 1
    assert names() == ["date=2025-01-01"] and len(listed) == 1  # kept: one stat, no listing
    (base / "date=2025-01-02").mkdir()
    stamped()
    assert names() == ["date=2025-01-01", "date=2025-01-02"] and len(listed) == 2
    assert names() == ["date=2025-01-01", "date=2025-01-02"] and len(listed) == 2  # the new listing kept
    (base / "date=2025-01-01").rmdir()
    stamped()
    assert names() == ["date=2025-01-02"] and len(listed) == 3
    assert lf.partition_names(tmp_path / "absent", "date=") == []

    monkeypatch.setattr(lf, "SETTLED_NS", 1 << 62)  # no listing settled: listed every time
    (base / "date=2025-01-03").mkdir()
    assert names() == ["date=2025-01-02", "date=2025-01-03"] and len(listed) == 4
    assert names() == ["date=2025-01-02", "date=2025-01-03"] and len(listed) == 5
