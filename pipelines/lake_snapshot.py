"""The lake read once: the read side of a ``Warehouse`` over tables held in memory, for computing many weeks in
one pass.

``Warehouse.query`` lists a table's Parquet files and checks them at every query, so that it sees the partitions
written meanwhile; many weeks read at once need no such check. A ``LakeSnapshot`` reads each table the first time
a query names it, whole, into a table of its own in-memory DuckDB database (a local lake through
``Warehouse.lake_table``: the rows the process already keeps and the closed months' segments; on object storage by
the same ``read_parquet`` expression as the warehouse's view: the columns, their types and the hive partition
column are the same either way), and answers every later query from memory; ``read_partition`` reads each partition file once, and
``partitions_with_files`` lists a table's partitions once. Everything else (paths, partition files,
raw recordings, reports) is the warehouse's. The SQL is the caller's own, with its own
point-in-time bounds (``date <= ?``, ``ts <= ?``), so a query returns here exactly the rows, in the same order,
that it returns from the warehouse.

A snapshot is the lake as it was when each table was first read: it refuses the tables named ``written`` (the ones
the caller is writing while it reads, whose later partitions the snapshot would not see) instead of answering
from a stale copy. File-system questions (``lake_dir``, ``root``, ``has_partition``) go to the warehouse.

A snapshot of one week (``read_spans``: a week's report and its checks) answers a query that names the partitions
it reads (``within``, as ``Warehouse.query`` takes it) from those partitions' rows alone, as the lake has them at
that query, for a table it has not copied whole: its queries of ``coin_daily`` read a few days or weeks each, and
copying years of history for them would cost more than all of them. A snapshot of many weeks copies each table
once. The report step takes the lake's state before it reads, and its blocking check compares the lake with it,
so a partition that changed during the read or since is seen either way (the check then checks the lake again).

A range's steps read the same lake one after another (each weekly table, the week's input check, the reports and
their claim check: about twenty steps a backfill), so a process keeps its snapshot of a range for its next step
over the same weeks (``reads_for(..., keep=True)``): the tables copied, the partitions read and the frames derived
from them (``derived``) are used again when every file the snapshot read is still the file it read (the same
identity, ``pipelines.lake_files.file_identity``: a partition rewritten, added or removed is seen), and the
snapshot is read again from the lake otherwise. A step that uses a kept snapshot sees what a new one would see.
Only a local lake's snapshot of a range of weeks is kept (one a process, taken by one step at a time); its
tables' copy stays in memory until the process reads another range or ends.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import Any, TypeVar

import duckdb
import polars as pl

from pipelines.lake_files import Identity, file_identity, table_listing
from pipelines.schemas import TABLES, Table
from pipelines.warehouse import Warehouse, named_tables

T = TypeVar("T")


class LakeSnapshot:
    def __init__(self, warehouse: Warehouse, written: Iterable[str] = (), read_spans: bool = False):
        self.warehouse = warehouse
        self.written = frozenset(written)
        self.read_spans = read_spans and not warehouse.remote  # a lake on object storage: each table copied
        self._db = warehouse.duckdb_connect()  # with the lake's filesystem registered when it is on S3
        self._loaded: set[str] = set()
        self._partitions: dict[tuple[str, str], pl.DataFrame] = {}
        self._with_files: dict[str, list[str]] = {}
        # each partition file's identity as this snapshot's reports first named it (``LakeFiles.digests``)
        self.identities: dict[str, Identity] = {}
        self._lock = threading.Lock()
        # each thread's cursor of ``_db``, opened at its first query and kept until ``close`` (a cursor costs about
        # 0.3 ms to open and close, a query on a table in memory 1-3 ms)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._derived: dict[Hashable, Any] = {}
        self._derived_lock = threading.RLock()  # a derivation may derive another: re-entrant
        self.reads = 0  # Parquet reads done: one per table loaded and one per partition file read
        # what each read saw of a local lake, taken before it read (``unchanged``): each table copied whole, its
        # files; each partition read, its file's identity (None: no file)
        self._listings: dict[str, tuple[tuple[str, Identity], ...]] = {}
        self._partition_files: dict[tuple[str, str], Identity | None] = {}

    # ---- what the warehouse answers from the file system ------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        """Everything but the reads below is the warehouse's own (paths, ``has_partition``, raw files, reports,
        writes): only table reads are answered from memory."""
        return getattr(self.warehouse, name)

    # ---- reads, each file once ------------------------------------------------------------------------------
    def _refuse_written(self, name: str) -> None:
        if name in self.written:
            raise LookupError(
                f"{name} is being written while this snapshot of the lake is read: read it from the warehouse"
            )

    def partitions_with_files(self, table: Table) -> list[str]:
        """The warehouse's ``partitions_with_files``, listed once a snapshot for a table it reads: a range of
        reports lists each weekly table's partitions once, not once a week (one stat a partition each time, a
        cost that grew as the weeks times the history). A table named ``written`` is listed again each time."""
        if table.name in self.written:
            return self.warehouse.partitions_with_files(table)
        with self._lock:
            if table.name not in self._with_files:
                self._with_files[table.name] = self.warehouse.partitions_with_files(table)
            return list(self._with_files[table.name])

    def read_partition(self, table: Table, partition: str) -> pl.DataFrame:
        self._refuse_written(table.name)
        key = (table.name, partition)
        with self._lock:
            if key not in self._partitions:
                if not self.warehouse.remote:
                    self._partition_files[key] = _identity(self.warehouse.partition_path(table, partition))
                self._partitions[key] = self.warehouse.read_partition(table, partition)
                self.reads += 1
            return self._partitions[key]

    def read_partitions(self, table: Table, partitions: list[str]) -> dict[str, pl.DataFrame]:
        """``read_partition`` of each: the snapshot's own reads (kept, refused when ``written``, recorded for
        ``unchanged``), not the warehouse's batch read that ``__getattr__`` would hand the call to."""
        return {p: self.read_partition(table, p) for p in partitions}

    def _load(self, table: Table) -> None:
        """Copy ``table`` whole into memory (nothing when it has no partition: a query naming it then fails as
        it does on the warehouse, where it has no view)."""
        if self.warehouse.remote:
            sql = self.warehouse._view_sql(table)
            if sql is not None:
                self._db.execute(sql.replace("CREATE OR REPLACE VIEW", "CREATE TABLE", 1))
                self.reads += 1
        else:  # the rows this process already keeps, the closed months' segments and the newer files
            self._listings[table.name] = table_listing(self.warehouse.lake_dir, table)
            arrow = self.warehouse.lake_table(table, self._db)
            if arrow is not None:
                self._db.register("lake_snapshot_load", arrow)
                try:
                    self._db.execute(f"CREATE TABLE {table.name} AS SELECT * FROM lake_snapshot_load")
                finally:
                    self._db.unregister("lake_snapshot_load")
                self.reads += 1
        self._loaded.add(table.name)

    def query(
        self,
        sql: str,
        params: list[Any] | dict[str, Any] | None = None,
        within: Mapping[str, tuple[date, date]] | None = None,
    ) -> pl.DataFrame:
        """``Warehouse.query`` over the tables in memory; with ``read_spans``, a table named in ``within`` and not
        copied whole is bound to the rows of the partitions in its span only."""
        named = [table.name for table in named_tables(sql)]
        spans = {}
        with self._lock:
            for name in named:
                self._refuse_written(name)
                if name in self._loaded:
                    continue
                if self.read_spans and within is not None and name in within:
                    spans[name] = within[name]
                else:
                    self._load(TABLES[name])
            con = getattr(self._local, "cursor", None)
            if con is None:
                con = self._local.cursor = self._db.cursor()
                self._cursors.append(con)
        registered = []
        try:
            for name, (first, last) in spans.items():
                rows = self.warehouse.lake_table(TABLES[name], con, (first.isoformat(), last.isoformat()))
                # no partition in the span's months: the table whole, as the warehouse binds it
                if rows is None:
                    with self._lock:
                        if name not in self._loaded:
                            self._load(TABLES[name])
                else:
                    con.register(name, rows)
                    registered.append(name)
            return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())  # type: ignore[return-value]
        finally:
            for name in registered:  # a span's rows are this query's alone
                con.unregister(name)

    def derived(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` once per snapshot: a frame derived from whole tables that the weeks of a range share
        (``assets.weekly.shape.history_through``). Its reads go through ``query``, so it refuses the tables being
        written as any read does."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = build()
            return self._derived[key]

    def unchanged(self) -> bool:
        """Whether every file this snapshot read (each table copied, each partition read, each table's list of
        partitions) is still the one it read: then every answer it gives is the lake's as it is now."""
        lake = self.warehouse.lake_dir
        return (
            all(table_listing(lake, TABLES[name]) == seen for name, seen in self._listings.items())
            and all(
                _identity(self.warehouse.partition_path(TABLES[name], partition)) == seen
                for (name, partition), seen in self._partition_files.items()
            )
            and all(
                self.warehouse.partitions_with_files(TABLES[name]) == listed
                for name, listed in self._with_files.items()
            )
        )

    def _use_again(self, warehouse: Warehouse, written: Iterable[str]) -> None:
        """This snapshot for another step: its warehouse and the tables it writes; its reports' identities of
        files taken again (``identities`` assumes the lake does not change within one step's use)."""
        self.warehouse = warehouse
        self.written = frozenset(written)
        self.identities.clear()
        self.reads = 0

    def close(self) -> None:
        self._derived.clear()
        for con in self._cursors:
            con.close()
        self._cursors.clear()
        self._db.close()


def _identity(path: Any) -> Identity | None:
    try:
        return file_identity(os.stat(path))
    except FileNotFoundError:
        return None


# the snapshot this process keeps for its next step over the same range: (pid, root, weeks), snapshot
_kept: tuple[tuple[int, str, tuple[str, ...]], LakeSnapshot] | None = None
_kept_lock = threading.Lock()


def _take_kept(key: tuple[int, str, tuple[str, ...]]) -> LakeSnapshot | None:
    """The kept snapshot when it is of ``key`` and still the lake's (``unchanged``); any other is closed. Taken
    out of the slot, so that no two steps use it at once."""
    global _kept
    with _kept_lock:
        kept, _kept = _kept, None
    if kept is None:
        return None
    # a forked child: the parent's DuckDB connection is not ours to use or close
    if kept[0][0] != os.getpid():
        return None
    if kept[0] == key and kept[1].unchanged():
        return kept[1]
    kept[1].close()
    return None


def _put_kept(key: tuple[int, str, tuple[str, ...]], snapshot: LakeSnapshot) -> None:
    global _kept
    with _kept_lock:
        old, _kept = _kept, (key, snapshot)
    if old is not None and old[0][0] == os.getpid():
        old[1].close()


@atexit.register
def _close_kept() -> None:
    global _kept
    with _kept_lock:
        old, _kept = _kept, None
    if old is not None and old[0][0] == os.getpid():
        old[1].close()


@contextmanager
def reads_for(
    warehouse: Warehouse,
    weeks: list[str],
    written: Iterable[str] = (),
    snapshot_from: int = 2,
    keep: bool = False,
) -> Iterator[Warehouse | LakeSnapshot]:
    """What a step computing ``weeks`` reads from: the warehouse for fewer than ``snapshot_from`` weeks, else one
    snapshot (closed on exit), so the range reads the lake once. A weekly table's week makes a few queries (a
    view per query is cheaper than reading whole tables); a report and its claim check make a few hundred, and
    read the lake once even for one week (``snapshot_from=1``), but for one week the queries that name their
    partitions read only those (``read_spans``).

    ``keep``: a snapshot of a range of weeks of a local lake is kept on exit for this process's next
    ``reads_for`` of the same weeks, which uses it again while every file it read is unchanged (a step reads
    nothing twice that it read before), and is closed when the step fails or another range is read."""
    if len(weeks) < snapshot_from:
        yield warehouse
        return
    keepable = keep and len(weeks) > 1 and not warehouse.remote
    key = (os.getpid(), str(warehouse.root), tuple(weeks))
    snapshot = _take_kept(key) if keepable else None
    if snapshot is None:
        snapshot = LakeSnapshot(warehouse, written=written, read_spans=len(weeks) == 1)
    else:
        snapshot._use_again(warehouse, written)
    try:
        yield snapshot
    except BaseException:
        snapshot.close()
        raise
    if keepable:
        _put_kept(key, snapshot)
    else:
        snapshot.close()
