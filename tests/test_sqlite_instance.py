"""The embedded instance's storage (``pipelines/sqlite_instance.py``): Dagster's SQLite files, connections kept."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy

from pipelines import sqlite_instance
from pipelines.settings import PROJECT_ROOT
from pipelines.sqlite_instance import (
    KeptConnectionEventLogStorage,
    KeptConnectionRunStorage,
    KeptConnectionSqliteStorage,
    home_instance,
)


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
def numbers(context) -> dg.MaterializeResult:  # unannotated: Dagster reads the annotation at definition
    return dg.MaterializeResult(metadata={"partition": context.partition_key})


@dg.asset(partitions_def=numbers.partitions_def, deps=[numbers])
def doubled() -> None:
    return None


JOB = dg.Definitions(assets=[numbers, doubled]).resolve_implicit_global_asset_job_def()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding the project's dagster.yaml, as the CLI makes a new one."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    shutil.copy(PROJECT_ROOT / ".dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


@contextmanager
def default_storage_at(home: Path) -> Iterator[dg.DagsterInstance]:
    """Dagster's own SQLite storage on the same files (a dagster.yaml without the ``storage`` key)."""
    plain = home / "plain"
    plain.mkdir(exist_ok=True)
    (plain / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
    with dg.DagsterInstance.from_config(str(plain)) as instance:
        yield instance


@contextmanager
def sqlite_connections_opened() -> Iterator[list[int]]:
    """How many SQLite connections every SQLAlchemy engine opens meanwhile."""
    opened = [0]

    def count(*_: object) -> None:
        opened[0] += 1

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", count)
    try:
        yield opened
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "connect", count)


def run(instance: dg.DagsterInstance, partition: str = "a") -> str:
    result = JOB.execute_in_process(instance=instance, partition_key=partition)
    assert result.success
    return result.run_id


def test_the_projects_home_uses_the_kept_connection_storage(home: Path) -> None:
    with home_instance(home) as instance:
        assert isinstance(instance.event_log_storage, KeptConnectionEventLogStorage)
        assert isinstance(instance.run_storage, KeptConnectionRunStorage)
        assert instance.event_log_storage.supports_global_concurrency_limits  # the pools need it
    # Dagster's own files, where Dagster's default storage puts them
    assert (home / "history" / "runs.db").is_file()
    assert (home / "history" / "runs" / "index.db").is_file()


def test_a_run_opens_a_few_connections_not_a_few_per_event(home: Path) -> None:
    with home_instance(home) as instance:
        run(instance)  # the files made and migrated
        with sqlite_connections_opened() as opened:
            run_id = run(instance, "b")
        events = len(instance.all_logs(run_id))
    assert events > 10
    # the new run's file, a copy of an empty one (not made and migrated again); the index's tables were found by
    # the first run and are not looked for again (``has_table``, which Dagster asks with an engine of its own for
    # every tagged event)
    assert opened[0] <= 1, opened
    with default_storage_at(home) as instance:  # what Dagster's own storage does for the same run
        with sqlite_connections_opened() as opened:
            run(instance, "b")
    assert opened[0] > events


def test_a_run_does_not_inspect_the_asset_keys_table_for_each_event(home: Path, monkeypatch) -> None:
    """Dagster inspects the index's ``asset_keys`` columns for every asset event; the kept-connection storage
    looks once, and again after ``wipe``."""
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    looked: list[str] = []
    inspect = SqlEventLogStorage._has_asset_key_col_on_connection

    def counted(self, conn, column_name: str) -> bool:
        looked.append(column_name)
        return inspect(self, conn, column_name)

    monkeypatch.setattr(SqlEventLogStorage, "_has_asset_key_col_on_connection", counted)
    with home_instance(home) as instance:
        run(instance)
        first = len(looked)
        run_id = run(instance, "b")
        assert instance.get_latest_materialization_event(dg.AssetKey("doubled")).run_id == run_id
        assert 0 < first and len(looked) == first
        instance.wipe()
        run(instance)
        assert len(looked) > first
    with default_storage_at(home) as instance:  # Dagster's own storage: at every asset event
        before = len(looked)
        run(instance, "b")
        assert len(looked) - before >= 2


def test_same_files_read_by_dagsters_own_storage_and_back(home: Path) -> None:
    """A home can switch to the kept-connection storage and back: both read what the other wrote, and a kept
    connection sees what another instance (another process) committed after it was opened."""
    with home_instance(home) as kept:
        first = run(kept)
        with default_storage_at(home) as plain:
            assert plain.get_run_by_id(first) is not None
            assert len(plain.all_logs(first)) == len(kept.all_logs(first))
            second = run(plain, "b")
        assert kept.get_run_by_id(second).is_success
        latest = kept.get_latest_materialization_event(dg.AssetKey("numbers"))
        assert latest is not None and latest.run_id == second
        assert latest.asset_materialization.partition == "b"
        assert len(kept.all_logs(second)) > 10


def test_run_shard_engines_are_bounded_and_the_index_kept(home: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_instance, "MAX_RUN_SHARD_ENGINES", 2)
    with home_instance(home) as instance:
        run_ids = [run(instance, p) for p in ("a", "b", "a", "b")]
        kept = instance.event_log_storage.kept_shards()
        assert "index" in kept
        assert [s for s in kept if s != "index"] == run_ids[-2:]
        assert len(instance.all_logs(run_ids[0])) > 10  # a closed shard opens again when read
        assert instance.event_log_storage.kept_shards()[-1] == run_ids[0]


def test_wipe_closes_the_engines_before_deleting_the_run_files(home: Path) -> None:
    with home_instance(home) as instance:
        old = run(instance)
        instance.event_log_storage.wipe()
        assert instance.event_log_storage.kept_shards() == ["index"]  # the wipe of the index opened it again
        assert not (home / "history" / "runs" / f"{old}.db").exists()
        new = run(instance, "b")
        assert len(instance.all_logs(new)) > 10
        assert instance.get_latest_materialization_event(dg.AssetKey("numbers")).run_id == new


def test_connections_sync_at_checkpoints_in_wal_mode(home: Path) -> None:
    with home_instance(home) as instance:
        run_id = run(instance)
        with instance.event_log_storage.run_connection(run_id) as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        with instance.run_storage.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1


def test_a_forked_child_does_not_use_the_parents_connections(home: Path, monkeypatch) -> None:
    with home_instance(home) as instance:
        run(instance)
        storage = instance.event_log_storage
        before = dict(storage._engines)
        parent_pid = sqlite_instance.os.getpid()
        monkeypatch.setattr(sqlite_instance.os, "getpid", lambda: parent_pid + 1)
        with storage.index_connection():
            pass
        assert storage._engines["index"] is not before["index"]
        run_engine = instance.run_storage._kept[1]
        with instance.run_storage.connect():
            pass
        assert instance.run_storage._kept[1] is not run_engine


def test_storage_config_reads_base_dir_from_the_environment(home: Path) -> None:
    """The project's dagster.yaml names DAGSTER_HOME, so a home copied elsewhere uses its own files."""
    with home_instance(home) as instance:
        ref = instance.get_ref().storage_data
        assert (ref.module_name, ref.class_name) == (
            "pipelines.sqlite_instance",
            KeptConnectionSqliteStorage.__name__,
        )
        run(instance)
    with sqlite3.connect(home / "history" / "runs.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def _schema(path: Path) -> tuple[list, list, str]:
    with sqlite3.connect(path) as db:
        return (
            db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall(),
            db.execute("SELECT version_num FROM alembic_version").fetchall(),
            db.execute("PRAGMA journal_mode").fetchone()[0],
        )


def test_a_new_run_file_is_dagsters_empty_file_copied(home: Path, monkeypatch) -> None:
    """A run's new file is a copy of one Dagster's ``_initdb`` made (the same tables, indexes and migration stamp,
    WAL), made once per process; a run file already there is not replaced, and is Dagster's to check."""
    made: list[str] = []
    real_initdb = KeptConnectionEventLogStorage._initdb
    monkeypatch.setattr(
        KeptConnectionEventLogStorage,
        "_initdb",
        lambda self, engine, **kw: made.append(str(engine.url)) or real_initdb(self, engine, **kw),
    )
    with home_instance(home) as instance:
        first, second = run(instance), run(instance, "b")
    runs = home / "history" / "runs"
    # the index, and the template once at most (another test of this process may have made it)
    assert len(made) <= 2 and not any(first in url or second in url for url in made), made
    with default_storage_at(home) as plain:
        plain_run = run(plain)  # Dagster's own storage makes its file with ``_initdb``
    assert _schema(runs / f"{first}.db") == _schema(runs / f"{plain_run}.db")
    assert _schema(runs / f"{first}.db")[2] == "wal" and _schema(runs / f"{first}.db")[1]
    storage = KeptConnectionEventLogStorage(str(runs))
    before = (runs / f"{plain_run}.db").read_bytes()
    assert not storage._new_run_file_from_template(plain_run)
    assert (runs / f"{plain_run}.db").read_bytes() == before
    assert not list(runs.glob(".*.tmp"))


def test_without_hard_links_dagster_makes_the_run_file(home: Path, monkeypatch) -> None:
    def no_links(*_: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(sqlite_instance.os, "link", no_links)
    with home_instance(home) as instance:
        run_id = run(instance)
        assert len(instance.all_logs(run_id)) > 10
    assert not list((home / "history" / "runs").glob(".*.tmp"))


DAYS = dg.DailyPartitionsDefinition(start_date="2025-11-01", end_date="2025-11-06")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def day_rows(context) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[day_rows])
def day_totals() -> None:
    return None


RANGE_JOB = dg.Definitions(assets=[day_rows, day_totals]).resolve_implicit_global_asset_job_def()


def _range_run(instance: dg.DagsterInstance) -> dict:
    """The job over the five days as one run; what the run's log and the index then hold of its
    materializations."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    tags = {ASSET_PARTITION_RANGE_START_TAG: "2025-11-01", ASSET_PARTITION_RANGE_END_TAG: "2025-11-05"}
    result = RANGE_JOB.execute_in_process(instance=instance, tags=tags)
    assert result.success
    out: dict = {}
    for key in (day_rows.key, day_totals.key):
        logged = [
            (e.dagster_event.partition, e.dagster_event.step_materialization_data.materialization.metadata)
            for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if e.dagster_event.asset_key == key
        ]
        records = instance.fetch_materializations(key, limit=100, ascending=True).records
        latest = instance.get_latest_materialization_event(key)
        out[key.to_user_string()] = (
            logged,
            [(r.partition_key, r.run_id == result.run_id) for r in records],
            sorted(instance.get_materialized_partitions(key)),
            (latest.dagster_event.partition, latest.run_id == result.run_id),
            # no code version given: Dagster's is the run's id
            instance.get_latest_materialization_code_versions([key]) == {key: result.run_id},
        )
    return out


def test_a_ranges_materializations_stored_in_batches_record_what_one_at_a_time_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``DAGSTER_EVENT_BATCH_SIZE`` (set for range runs by ``pipelines.runner.range_run_environment``), a
    step's per-day materializations reach the storage in batches: the run's log, every partition's record in the
    index, the materialized partitions and each asset's latest event are the same as storing each event alone,
    and each batch of several events updates its asset's row once (Dagster's SQLite storage has no batch write:
    once per event)."""
    from pipelines.runner import EVENT_BATCH_ENV

    updates: list[str] = []
    store = KeptConnectionEventLogStorage._store_asset_event

    def counted(self, conn, event, event_id) -> None:
        if event.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            updates.append(event.dagster_event.partition)
        store(self, conn, event, event_id)

    monkeypatch.setattr(KeptConnectionEventLogStorage, "_store_asset_event", counted)
    seen = {}
    for batch in (None, "2"):
        home = tmp_path / f"batch-{batch}"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
        if batch is None:
            monkeypatch.delenv(EVENT_BATCH_ENV, raising=False)
        else:
            monkeypatch.setenv(EVENT_BATCH_ENV, batch)
        updates.clear()
        with home_instance(home) as instance:
            seen[batch] = _range_run(instance)
        seen[batch, "updates"] = list(updates)
    assert seen[None] == seen["2"]
    days = ["2025-11-01", "2025-11-02", "2025-11-03", "2025-11-04", "2025-11-05"]
    assert [p for p, _ in seen[None]["day_rows"][0]] == days
    assert seen[None]["day_rows"][1] == [(d, True) for d in days]
    assert seen[None, "updates"] == days * 2  # one at a time: the asset's row written at every event
    # batches of 2, 2 and 1 per asset: the row written for the last event of each
    assert seen["2", "updates"] == ["2025-11-02", "2025-11-04", "2025-11-05"] * 2


@dg.asset(
    partitions_def=DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("rows_ok", asset="checked_days")],
)
def checked_days(context) -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])


CHECKED_JOB = dg.Definitions(assets=[checked_days]).resolve_implicit_global_asset_job_def()


def _planned_check_rows(home: Path, instance_at) -> list[tuple]:
    """A range run of the checked asset on the storage ``instance_at(home)`` gives; the index's rows for the
    check, without their ids, times and run id, the stored event decoded."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from dagster._serdes import deserialize_value

    tags = {ASSET_PARTITION_RANGE_START_TAG: "2025-11-01", ASSET_PARTITION_RANGE_END_TAG: "2025-11-05"}
    with instance_at(home) as instance:
        assert CHECKED_JOB.execute_in_process(instance=instance, tags=tags).success
    with sqlite3.connect(home / "history" / "runs" / "index.db") as db:
        rows = db.execute(
            "SELECT asset_key, check_name, partition, execution_status, evaluation_event "
            "FROM asset_check_executions ORDER BY id"
        ).fetchall()
    out = []
    for key, name, partition, status, event in rows:
        entry = deserialize_value(event)
        planned = entry.dagster_event.event_specific_data
        out.append((key, name, partition, status, entry.dagster_event.event_type_value, planned.check_name))
    return out


def test_a_checks_planned_evaluations_of_a_range_are_the_rows_dagster_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A range run's planned check evaluations: one row per partition, each with the planned event, as Dagster's
    own storage writes them; the event serialized once for all the partitions, not once each."""
    serialized: list[str] = []
    serialize = sqlite_instance.serialize_value

    def counted(value, *args, **kwargs):
        serialized.append(type(value).__name__)
        return serialize(value, *args, **kwargs)

    monkeypatch.setattr(sqlite_instance, "serialize_value", counted)
    kept_home, plain_home = tmp_path / "kept", tmp_path / "plain-home"
    for h in (kept_home, plain_home):
        h.mkdir()
    shutil.copy(PROJECT_ROOT / ".dagster_home" / "dagster.yaml", kept_home / "dagster.yaml")
    kept = _planned_check_rows(kept_home, home_instance)
    plain = _planned_check_rows(plain_home, default_storage_at)
    assert kept == plain
    planned = [r[2] for r in kept if r[4] == "ASSET_CHECK_EVALUATION_PLANNED"]
    assert planned == ["2025-11-01", "2025-11-02", "2025-11-03", "2025-11-04", "2025-11-05"]
    assert serialized == ["EventLogEntry"]  # once for the five partitions
