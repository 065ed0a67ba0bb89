"""The embedded Dagster instance's storage: Dagster's SQLite storage, keeping its database connections open.

Dagster's SQLite storage (``DagsterSqliteStorage``, the default of a ``DAGSTER_HOME`` without a ``storage:`` key)
builds a new SQLAlchemy engine for every statement group it runs, with no pool: each event a run writes opens the
run's database file and the index file, compiles its statements again (SQLAlchemy's compiled cache lives on the
engine), commits (syncing the file), and closes them again (closing the last connection to a WAL database
checkpoints it). A weekly run writes about 200 events and opens about 760 connections that way.

``KeptConnectionSqliteStorage`` is the same storage, the same files and the same schema (a home can switch to it
and back), with the engines kept:

* event log: one engine per database file (the index and the run shards), at most ``MAX_RUN_SHARD_ENGINES`` run
  shards kept, least recently used closed first (a webserver reads many runs); used under Dagster's own lock, as
  before, so one connection per file is ever checked out;
* runs: one engine with a pool (threads of the webserver and the daemon each take a connection; any number can,
  none waits for another);
* schedules: Dagster's own (the daemon's ticks, a few statements a minute);
* every connection syncs the write-ahead log at checkpoints, not at each commit (``SQLITE_SYNCHRONOUS``);
* a table of the index file, once found, is not looked for again (``has_table``, asked for every asset event);
* a step's materializations of many partitions, handed over in batches (``DAGSTER_EVENT_BATCH_SIZE``, which the
  project's range runs set: ``pipelines.runner.range_run_environment``), are written in two transactions per
  batch, one statement each, with the asset's row of the index written once (``store_event_batch``); Dagster's
  SQLite storage writes them one at a time;
* a check's planned evaluation of a range run (a row per partition) is serialized once, not once per partition
  (``_store_asset_check_evaluation_planned``);
* a run's new file is a copy of an empty one Dagster made in this process, not made and migrated again (about
  0.1 s a run: Dagster parses its migration scripts to stamp each file); a file already there is Dagster's to
  check, as before.

Every statement group is still its own transaction (``BEGIN`` ... ``COMMIT``), so other processes (the webserver,
the daemon, a CLI run, a second run) see each commit as before: SQLite locks the file, not the connection. A
connection is never used by two threads at once (the event log's lock; the pool's checkout), and an engine made
before ``os.fork`` is never used by the child (engines are dropped when the process id changes). ``wipe`` closes
the engines before Dagster deletes the run files, so no kept connection writes into a deleted file.

Configured in ``.dagster_home/dagster.yaml`` (``storage: custom:``); measured with ``bench.phases new_week``
(``bench/HOTSPOT.md``).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import create_db_conn_string
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import serialize_value
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

# Run shards whose engine stays open in one process (the index shard's always does). A run writes one shard; the
# webserver reads the shards of the runs it shows.
MAX_RUN_SHARD_ENGINES = 8
# The databases are in WAL mode (Dagster sets it): NORMAL syncs the log when it is checkpointed into the database,
# not at every commit. A process that crashes loses nothing; a power cut or an OS crash can lose the last commits
# (the runs' latest events) but never leaves a database corrupt (https://sqlite.org/pragma.html#pragma_synchronous).
# The lake's files are synced by their own writes (pipelines/warehouse.py), and a step whose events were lost is
# run again by the next run, which rewrites the same partitions.
SQLITE_SYNCHRONOUS = "NORMAL"
# An empty run database file as Dagster's ``_initdb`` makes it, made once per process (``_run_file_template``).
_RUN_FILE_TEMPLATE: bytes | None = None
_TEMPLATE_LOCK = threading.Lock()
# Connections the run storage keeps idle; more are opened when more threads need one at once, and closed after.
RUN_STORAGE_IDLE_CONNECTIONS = 4


def _engine(conn_string: str, pool_size: int) -> Engine:
    """A pooled SQLite engine whose connections may be returned by one thread and taken by another (never used by
    two at once), waiting up to Dagster's busy timeout for another process's write lock, and syncing the WAL at
    its checkpoints rather than at every commit (``SQLITE_SYNCHRONOUS``)."""
    engine = create_engine(
        conn_string,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=-1,  # no thread ever waits for a pooled connection
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _synchronous(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")

    return engine


class KeptConnectionEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log with one kept engine per database file (see the module's docstring)."""

    def __init__(self, base_dir: str, inst_data: Any = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables_found: set[str] = set()
        self._asset_key_columns_found: set[str] = set()
        super().__init__(base_dir, inst_data)

    def has_table(self, table_name: str) -> bool:
        """Whether the index file has the table. Dagster asks it for every asset event with tags and every check
        event (a new engine and connection each time); a table once found stays (migrations add tables, never
        drop them, and ``wipe`` forgets what was found), so only an absent table is looked for again."""
        if table_name in self._tables_found:
            return True
        found = super().has_table(table_name)  # its own engine: callers may hold ``_db_lock``
        if found:
            self._tables_found.add(table_name)
        return found

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        """Whether the index's ``asset_keys`` table has the column. Dagster asks it for every asset event, by
        inspecting the table's columns (7% of storing a materialization); a column once found stays, as a table
        does in ``has_table``."""
        if column_name in self._asset_key_columns_found:
            return True
        found = super()._has_asset_key_col_on_connection(conn, column_name)
        if found:
            self._asset_key_columns_found.add(column_name)
        return found

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """One step's materializations (or observations) of many partitions, as Dagster hands them over when
        ``DAGSTER_EVENT_BATCH_SIZE`` is set (``pipelines.runner.EVENT_BATCH_ENV``): the rows ``store_event``
        writes one event at a time, written in two transactions for the batch (the run's file, then the index)
        instead of two per event, and each asset's row of the index (its latest event, serialized again) written
        once, for the batch's last event of that asset: what writing every event in turn leaves there. Dagster's
        SQLite storage has no batch write of its own (its batch is a loop of ``store_event``, which any other
        batch still is). The run's file is written first: when the index's transaction fails, Dagster stores the
        batch's events again one at a time, so the run's log may show them twice, the index (which the assets'
        status is read from) once. Each file gets one statement for the batch's rows (the rows
        ``prepare_insert_event`` inserts, ``_event_to_row``): the run's file an ``executemany``, the index one
        ``INSERT ... RETURNING`` of the rows' ids in their order, not a statement built and compiled per event
        (0.16 ms an event less, about 1.5 s of a full backfill's daily run: ``bench/HOTSPOT.md``)."""
        kinds = {event.dagster_event_type for event in events}
        if (
            len(events) < 2
            or kinds not in ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION})
            or len({event.run_id for event in events}) != 1
        ):
            super().store_event_batch(events)
            return
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            ids = list(
                conn.execute(
                    SqlEventLogStorageTable.insert().returning(
                        SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
                    ),
                    rows,
                ).scalars()
            )
            if len(ids) != len(events) or any(event_id is None for event_id in ids):
                raise DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
            self._store_asset_event_tags(conn, events, ids)
            latest = {
                event.get_dagster_event().asset_key: (event, event_id)
                for event, event_id in zip(events, ids, strict=True)
            }
            for event, event_id in latest.values():
                self._store_asset_event(conn, event, event_id)

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """A check's planned evaluation, one row per partition of the run, as Dagster writes it, with the event
        serialized once for all of them: Dagster serializes it again for each partition (0.3 s for a check of
        a range of 698 days; a daily range run plans ten)."""
        planned = event.get_dagster_event().event_specific_data
        partitions = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        common = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        # one statement executed for every row (the driver's executemany): a statement of all the rows' values
        # is compiled with eight parameters a row
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert(),
                [{**common, "partition": partition} for partition in partitions],
            )

    def _kept_engine(self, shard: str) -> Engine:
        """The shard's engine, made (and the file initialized) on first use; the caller holds ``_db_lock``."""
        if self._engines_pid != os.getpid():  # a forked child: the parent's connections are not ours to use
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = _engine(self.conn_string_for_shard(shard), pool_size=1)
            if shard not in self._initialized_dbs:
                if shard == INDEX_SHARD_NAME or not self._new_run_file_from_template(shard):
                    self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine  # the most recently used last
        run_shards = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for old in run_shards[: max(0, len(run_shards) - MAX_RUN_SHARD_ENGINES)]:
            self._engines.pop(old).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            with self._kept_engine(shard).connect() as conn, conn.begin():
                yield conn

    def _new_run_file_from_template(self, shard: str) -> bool:
        """A run's new database file as a copy of one Dagster made and migrated in this process (the tables and
        the migration stamp are the same for every run's file); False, leaving it to Dagster's ``_initdb`` (which
        checks the stamp of a file that is there), when the file exists or another process made it meanwhile."""
        path = Path(self.path_for_shard(shard))
        if path.exists():
            return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(self._run_file_template())
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)  # never replaces a file: another process's new file wins
        except (
            OSError
        ):  # the file made meanwhile, or a file system without hard links: Dagster's to make or check
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _run_file_template(self) -> bytes:
        """The bytes of an empty run database file made by Dagster's ``_initdb`` (made once per process: Dagster
        checks the migration stamp of each file it opens, parsing its migration scripts, about 0.1 s a file)."""
        global _RUN_FILE_TEMPLATE
        with _TEMPLATE_LOCK:
            if _RUN_FILE_TEMPLATE is None:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "run.db"
                    engine = create_engine(create_db_conn_string(tmp, "run"), poolclass=NullPool)
                    self._initdb(engine)
                    engine.dispose()  # the last connection closed: the write-ahead log checkpointed into the file
                    if Path(f"{path}-wal").exists():
                        raise RuntimeError(f"the run file template kept a write-ahead log: {path}-wal")
                    _RUN_FILE_TEMPLATE = path.read_bytes()
            return _RUN_FILE_TEMPLATE

    def kept_shards(self) -> list[str]:
        """The database files whose engine is open, least recently used first."""
        with self._db_lock:
            return list(self._engines)

    def _close_engines(self) -> None:
        with self._db_lock:
            engines, self._engines = self._engines, OrderedDict()
        for engine in engines.values():
            engine.dispose()

    def wipe(self) -> None:
        self._close_engines()  # before the run files are deleted
        self._tables_found.clear()
        self._asset_key_columns_found.clear()
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()


class KeptConnectionRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage with one pooled engine (see the module's docstring)."""

    def __init__(self, conn_string: str, inst_data: Any = None):
        self._kept: tuple[int, Engine] | None = None  # (the process that made it, the engine)
        self._kept_lock = threading.Lock()
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._kept_lock:
            if self._kept is None or self._kept[0] != os.getpid():
                self._kept = (os.getpid(), _engine(self._conn_string, RUN_STORAGE_IDLE_CONNECTIONS))
            engine = self._kept[1]
        with engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        with self._kept_lock:
            kept, self._kept = self._kept, None
        if kept is not None and kept[0] == os.getpid():
            kept[1].dispose()
        super().dispose()


class KeptConnectionSqliteStorage(DagsterSqliteStorage):
    """``storage: custom:`` for a ``DAGSTER_HOME``: Dagster's SQLite storage in the same files (``base_dir``, as
    ``storage: sqlite:``), its event log and run storage keeping their connections."""

    def __init__(self, base_dir: str, inst_data: Any = None):
        # DagsterSqliteStorage.__init__ with the two storages replaced (not made twice)
        self.base_dir = base_dir
        self._run_storage = KeptConnectionRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptConnectionEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> KeptConnectionSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


@contextmanager
def home_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """The instance of the DAGSTER_HOME ``home``, opened as Dagster's commands open it: with ``DAGSTER_HOME`` set
    (for the block), which the project's dagster.yaml reads for where this storage keeps its files."""
    from pipelines.runner import patched_environ

    with patched_environ({"DAGSTER_HOME": str(home)}), dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance
