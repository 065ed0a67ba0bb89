"""A local lake table as one Arrow table in the process's memory, each Parquet file parsed again only when it
is another file.

``Warehouse.query`` answers SQL over the lake. A table of daily partitions is hundreds of small files, and DuckDB
opens every one of them again for every query that reads it through a ``read_parquet`` glob (about 0.4 ms a
file: 0.1-0.2 s for a year of ``coin_daily``), while a week's tables, its report and the report's checks query
the same history dozens of times. Here a table is listed at every query (one ``scandir`` and one ``stat`` a
file, about 10 ms for 700 files); when the listing differs from the one kept, the files that are new or were
replaced are read in one DuckDB ``read_parquet`` over their list (the same reader and hive partition column as
the warehouse's views and ``catalog.duckdb``) and joined to the rows kept of the others, in path order, which is
the order the glob reads them in. DuckDB queries that Arrow table in place. The first read of a table in a
process does not come here (``asked_before``) unless the table has segments (below): it goes through the glob
view, which opens only the partitions the query's bounds need.

A file is known by its path and its identity on disk: inode, size, modification and change times in
nanoseconds. ``Warehouse.write_partition`` writes a new file and renames it over the old one, which gives it a
new inode, so a partition rewritten by this or any other process is read again, a file rewritten in place is
known by its size or times, and a removed one drops out at the next listing. Tables leave the process's memory
least recently read first once they pass ``MAX_BYTES`` together.

Closed months are kept on disk as well, so that a table's history costs a process a few files to read and not
one per day (``segments``): the rows of a month's partition files, as read here, in one Arrow IPC file under the
warehouse's ``read_cache/<table>/<YYYY-MM>.arrow``, with the path, identity and sha256 of every file it was built
from in its schema's metadata; a table of weekly partitions (four or five a month) keeps a year's closed months in one
``<YYYY>.arrow`` (``SEGMENT_PERIOD``). A segment stands for its files only while their listing is exactly the one
it records; otherwise (a day rewritten by a backfill, a day added or removed, a month closed, the lake moved) they
are parsed as before and the segment written again. Every month before the newest partition's is in a segment once
its files are parsed; a segment that cannot be read is rebuilt, never trusted. The lake's files stay the only
record: removing ``read_cache/`` loses nothing. Segments are uncompressed, so a read maps them without decoding
(the demo's 49 segments: 13 ms; 0.16 s with LZ4), at about twice the lake's size on disk (47.7 MB beside the
demo's 23 MB lake; 14.9 MB with LZ4).

A few small values derived from a file (its sha256, the raw files its rows name: a report's lineage) are kept the
same way, by path and identity (``file_values``), so consecutive weeks of a range do not hash their shared files
again; a file's sha256 is also taken from its segment's record while the file is the one recorded (``digests``),
so a new process does not hash a history of years of partitions again either.

Only for a lake on the local file system: a lake on object storage is read through DuckDB views over its
filesystem, whose own cache keys objects by their ETag (``pipelines/warehouse.py``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.schemas import Table

LOG = logging.getLogger(__name__)
T = TypeVar("T")

# (inode, size, mtime ns, ctime ns): a different value is a different file at the same path
Identity = tuple[int, int, int, int]
# a file's rows: a table (its own, a segment's, a table kept), the first row in it, the number of rows
Rows = tuple[pa.Table, int, int]

# the tables kept per process, least recently read out first (read_partition's frames: a quarter more)
MAX_BYTES = 512 << 20
# the small values kept per file (``LakeFiles.file_values``: a digest, a list of names), least recently used out first
MAX_FILE_VALUES = 100_000
FILENAME_COLUMN = "__lake_file"  # the column DuckDB names each row's file in, dropped before a file is kept
SEGMENT_SUFFIX = ".arrow"
SEGMENT_FILES = (
    b"crypto_weekly.lake_files"  # schema metadata of a segment: [[path, identity, rows, sha256], ...] as JSON
)


DAY_PARTITIONS = ("date", "week")  # partition columns whose values are days, YYYY-MM-DD
# The characters of a partition value that name its segment: a month of days, a year of weeks.
SEGMENT_PERIOD = {"date": 7, "week": 4}


def partition_type(table: Table) -> str:
    """DuckDB's type of the hive partition column: dates for daily and weekly partitions, text otherwise."""
    return "DATE" if table.partition_by in DAY_PARTITIONS else "VARCHAR"


@dataclass(frozen=True)
class _Kept:
    """A table as last read: its listing, where each file's rows are in ``data``, and the rows."""

    listing: tuple[tuple[str, Identity], ...]
    rows_of: dict[str, tuple[Identity, int, int]]  # path -> (identity, first row, number of rows)
    data: pa.Table


class LakeFiles:
    """The process's lake tables as last read (one instance per process: ``LAKE_FILES``)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._tables: OrderedDict[str, _Kept] = OrderedDict()
        self._asked: set[str] = set()
        self._bytes = 0
        self._frames: OrderedDict[str, tuple[Identity, pl.DataFrame]] = OrderedDict()
        self._frame_bytes = 0
        self._values: OrderedDict[tuple[str, str], tuple[Identity, object]] = OrderedDict()
        self.files_read = 0  # files parsed by this process (a file read again counts again)

    def _here(self) -> None:
        """A forked child starts empty, with a lock of its own (the parent's may have been held at the fork)."""
        if self._pid != os.getpid():
            self._start()

    def asked_before(self, root: Path, table: Table) -> bool:
        """Whether this process has read ``table`` of the lake ``root`` before; the first call says no and
        remembers it. A process that reads a table once (a step of its own, a command) reads only the files its
        query needs through a glob view, as DuckDB prunes partitions by their path; the second read of a table
        reads it whole, and later reads only what changed."""
        self._here()
        key = str(root / table.name)
        with self._lock:
            if key in self._asked:
                return True
            self._asked.add(key)
            return False

    def table(
        self,
        root: Path,
        table: Table,
        con: duckdb.DuckDBPyConnection,
        segments: Path | None = None,
        within: tuple[str, str] | None = None,
    ) -> pa.Table | None:
        """Every partition file of ``table`` under the lake ``root`` as one Arrow table with the partition column
        last; None when the table has no partition file. Only the files that are new or were replaced since the
        table was last read are parsed (by ``con``); the others are the rows kept from then, or from a month's
        segment under ``segments`` (the table's folder of the read cache; None: no segment read or written).

        ``within`` (the first and last partition values, of a table partitioned by day or week) gives only the
        rows of the partitions in that span: only their files are listed and checked, and the rows come from those
        kept when every one of them is kept as it is now (a slice, no copy); otherwise the files of the span's
        whole months are read as above (so that their segments serve) and kept with the rows kept of other
        months (each checked against the listing whenever it is used). None when no partition is in the span's
        months: the caller reads the table whole, which binds it with no row in the span. A week reads a few
        weeks of a history of years this way, in time that does not grow with the history."""
        self._here()
        base = root / table.name
        prefix = f"{table.partition_by}="
        names = partition_names(base, prefix)
        period = SEGMENT_PERIOD.get(table.partition_by, 7)
        span = (
            _whole_periods(within, period)
            if within is not None and table.partition_by in DAY_PARTITIONS
            else None
        )
        listing = tuple(_listing(base, sorted(_names_within(names, prefix, span) if span else names)))
        if not listing:
            return None
        key = str(base)
        with self._lock:
            kept = self._tables.get(key)
            if kept is not None:
                rows = kept.data if kept.listing == listing else None
                if span is not None:
                    rows = _rows_within(kept, listing, prefix, within)  # type: ignore[arg-type]
                if rows is not None:
                    self._tables.move_to_end(key)
                    return rows
        newest = max(names)[len(prefix) : len(prefix) + 7]  # the listing has a file: ``names`` has a name
        keep = listing
        if span is not None and kept is not None:  # the span's files joined to the rows kept of other months
            keep = tuple(
                sorted(
                    [
                        f
                        for f in kept.listing
                        if not span[0] <= f[0].rsplit("/", 2)[-2][len(prefix) :] <= span[1]
                    ]
                    + list(listing)
                )
            )
        data, rows_of = self._build(table, keep, kept, con, segments, prefix, newest, period)
        built = _Kept(keep, rows_of, data)
        with self._lock:
            old = self._tables.pop(key, None)
            self._bytes -= old.data.nbytes if old is not None else 0
            self._tables[key] = built
            self._bytes += data.nbytes
            while self._bytes > self.max_bytes and len(self._tables) > 1:
                self._bytes -= self._tables.popitem(last=False)[1].data.nbytes
        if span is None:
            return data
        return _rows_within(built, listing, prefix, within)  # type: ignore[arg-type]

    def _build(
        self,
        table: Table,
        listing: tuple[tuple[str, Identity], ...],
        kept: _Kept | None,
        con: duckdb.DuckDBPyConnection,
        segments: Path | None,
        prefix: str,
        newest: str,
        period: int,
    ) -> tuple[pa.Table, dict[str, tuple[Identity, int, int]]]:
        """The rows of ``listing``'s files in path order, and where each file's rows are: from ``kept`` where a
        file is the one kept, from the segments of the months before ``newest`` (the table's newest month, still
        written day by day), else parsed; a segment is written for every such month whose files were parsed."""
        parts: dict[str, Rows] = {}
        for path, identity in listing:
            where = kept.rows_of.get(path) if kept is not None else None
            if where is not None and where[0] == identity:
                parts[path] = (kept.data, where[1], where[2])  # type: ignore[union-attr]
        missing = [path for path, _ in listing if path not in parts]
        months = _months(listing, prefix, newest, period) if segments is not None else {}
        if missing and months:
            parts.update(_from_segments(segments, months, set(missing)))  # type: ignore[arg-type]
            missing = [path for path, _ in listing if path not in parts]
        if missing:
            parts.update(self._read(table, missing, con))
        try:
            data = _joined([parts[path] for path, _ in listing])
        except pa.ArrowInvalid:
            # Files whose Arrow types differ (a column all nulls, a file not written by the lake): read them
            # all in one statement, which casts every file to the first one's types as the glob view does.
            parts = self._read(table, [path for path, _ in listing], con)
            data = _joined([parts[path] for path, _ in listing])
            months = {}  # rows cast to other files' types are no month's own: no segment from them
        if missing and months:
            _write_segments(segments, months, parts, set(missing))  # type: ignore[arg-type]
        rows_of, first = {}, 0
        for path, identity in listing:
            rows_of[path] = (identity, first, parts[path][2])
            first += parts[path][2]
        return data, rows_of

    def frame(self, path: str, read: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        """One partition file as ``read()`` gives it, read again only when the file at ``path`` is another one
        (``Warehouse.read_partition``: a week's report reads the partitions of its tables' history, and the next
        week's the same ones). The caller gets its own frame (a clone: the columns are shared, not copied)."""
        return self.frames([path], lambda _: {path: read()})[path]

    def frames(
        self, paths: list[str], read: Callable[[list[str]], dict[str, pl.DataFrame]]
    ) -> dict[str, pl.DataFrame]:
        """``frame`` of each of ``paths``: the files not kept as they are now read together by ``read`` (path ->
        frame), in one call (a range's quality rules read hundreds of days' partitions, a call a file costing
        five times one call for all). Each caller gets its own frames (clones: the columns are shared)."""
        self._here()
        # a missing file raises FileNotFoundError, as reading it would
        identities = {path: file_identity(os.stat(path)) for path in paths}
        out: dict[str, pl.DataFrame] = {}
        with self._lock:
            for path in paths:
                hit = self._frames.get(path)
                if hit is not None and hit[0] == identities[path]:
                    self._frames.move_to_end(path)
                    out[path] = hit[1].clone()
        missing = [path for path in paths if path not in out]
        if missing:
            read_now = read(missing)
            with self._lock:
                for path in missing:
                    df = read_now[path]
                    old = self._frames.pop(path, None)
                    self._frame_bytes -= old[1].estimated_size() if old is not None else 0
                    self._frames[path] = (identities[path], df)
                    self._frame_bytes += df.estimated_size()
                    out[path] = df.clone()
                while self._frame_bytes > self.max_bytes // 4 and len(self._frames) > 1:
                    self._frame_bytes -= self._frames.popitem(last=False)[1][1].estimated_size()
        return {path: out[path] for path in paths}

    def file_values(
        self,
        paths: list[str],
        kind: str,
        compute: Callable[[list[str]], dict[str, T]],
        identities: dict[str, Identity] | None = None,
    ) -> dict[str, T]:
        """Small values derived from the files at ``paths`` (``kind`` names them: their sha256, the raw files their
        rows name), each computed again only when its file is another one: those not kept for the file as it is
        now computed together, ``compute(missing)`` giving each missing path's value (one read of many files costs
        far less than a read of each). A week's report names the partitions it was built from with their hashes
        and raw files (``pipelines.narrative.lineage``); consecutive weeks share half their days and the whole
        history of their weekly tables, so without this every week of a range reads those files again, a cost
        that grows with the history. ``identities``: each path's ``file_identity``, as the caller just took it."""
        self._here()
        if identities is None:
            # a missing file raises FileNotFoundError, as reading it would
            identities = {path: file_identity(os.stat(path)) for path in paths}
        out: dict[str, T] = {}
        with self._lock:
            for path, identity in identities.items():
                hit = self._values.get((path, kind))
                if hit is not None and hit[0] == identity:
                    self._values.move_to_end((path, kind))
                    out[path] = hit[1]  # type: ignore[assignment]
        missing = [path for path in paths if path not in out]
        if missing:
            computed = compute(missing)
            with self._lock:
                for path in missing:
                    out[path] = computed[path]
                    self._values[(path, kind)] = (identities[path], computed[path])
                    self._values.move_to_end((path, kind))
                while len(self._values) > MAX_FILE_VALUES:
                    self._values.popitem(last=False)
        return out

    def digests(
        self,
        table: Table,
        paths: list[str],
        segments: Path | None,
        hash_file: Callable[[str], str],
        known: dict[str, Identity] | None = None,
    ) -> dict[str, str]:
        """The sha256 of each partition file of ``table`` at ``paths``: as kept in this process for the file as it
        is now (``file_values``), else as its closed month's segment under ``segments`` recorded it while the file
        is still the one the segment was built from, else ``hash_file(path)``. A week's report names every
        partition it read with its hash, a history of years of weekly tables among them: a new process finds
        those hashes in a few segments instead of reading every file again.

        ``known``: the identities a reader of the lake already took of files, by path (a ``LakeSnapshot``'s,
        for a range of reports over one read of the lake); a file in it is not stat'ed again, and each file
        stat'ed here is added to it, so a range of reports stats each file of its history once, not once a
        week."""

        # one stat a file not known, for both the values kept and the segments' records (a missing file raises
        # FileNotFoundError, as reading it would)
        known = {} if known is None else known
        identities = {}
        for path in paths:
            identity = known.get(path)
            if identity is None:
                identity = known[path] = file_identity(os.stat(path))
            identities[path] = identity

        def compute(missing: list[str]) -> dict[str, str]:
            now = {path: identities[path] for path in missing}
            out = _segment_digests(segments, table, now) if segments is not None else {}
            for path in missing:
                if path not in out:
                    out[path] = hash_file(path)
            return out

        return self.file_values(paths, "sha256", compute, identities)

    def _read(self, table: Table, paths: list[str], con: duckdb.DuckDBPyConnection) -> dict[str, Rows]:
        """``paths`` read in one statement, and where each file's rows are in what it read (a file of no rows:
        none)."""
        ptype = partition_type(table)  # the same reading as the warehouse's views (Warehouse._view_sql)
        sql = (
            f"SELECT * FROM read_parquet(?, hive_partitioning = true, hive_types = "
            f"{{'{table.partition_by}': {ptype}}}, filename = '{FILENAME_COLUMN}')"
        )
        # a relation's Arrow: the DB-API result's would copy the rows once more
        result = con.sql(sql, params=[paths]).to_arrow_table()
        self.files_read += len(paths)
        names = result.column(FILENAME_COLUMN).combine_chunks()
        rows = result.drop_columns([FILENAME_COLUMN])
        out: dict[str, Rows] = {path: (rows, 0, 0) for path in paths}
        if rows.num_rows:
            runs = pc.run_end_encode(names)
            ends = runs.run_ends.to_pylist()
            values = runs.values.to_pylist()
            if len(set(values)) != len(values):  # rows of one file not together: each file's rows in order
                for path in set(values):
                    own = rows.filter(pc.equal(names, path))
                    out[path] = (own, 0, own.num_rows)
            else:
                start = 0
                for value, end in zip(values, ends, strict=True):
                    out[value] = (rows, start, end - start)
                    start = end
        # DuckDB names each file as it was given: anything else is a fault here, not in the data
        unexpected = set(out) - set(paths)
        if unexpected:
            raise RuntimeError(f"read_parquet named files it was not given: {sorted(unexpected)[:3]}")
        return out


def file_identity(st: os.stat_result) -> Identity:
    """What tells a file from its replacement or an in-place rewrite: inode, size, mtime and ctime in ns."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def lake_state(lake: Path) -> tuple[str, ...]:
    """The identity of everything under a local lake that a reader could see change, in path order: each table
    folder and each entry in it that is not a partition folder (another writer's temp file), and each partition
    folder's ``data.parquet``, the only file of a partition anything reads. A partition rewritten is a new inode
    renamed over the old one, an edit in place a new size or time, a partition added or removed another entry
    of its table's folder and another file listed; the partition folder itself needs no stat (its identity
    changes with every temp file written into it, which no reader opens). One stat a partition, not a listing
    of every folder: a few hundredths of a second for thousands of partitions, which a week's report step
    takes before it reads the lake, and its blocking check once more. An entry gone between the listing and its
    stat (another writer's temp file renamed into place) is left out.

    Each entry is one string, its path then its identity after a NUL (``state_paths`` gives the paths back): a
    string is no object the garbage collector tracks, while a tuple an entry, thousands of them kept until the
    check, set off a full collection of the whole process in the check of a long history."""
    out: list[str] = []

    def add(path: str, follow_symlinks: bool = False) -> bool:
        try:
            st = os.stat(path, follow_symlinks=follow_symlinks)
        except FileNotFoundError:
            return False
        out.append(f"{path}\0{file_identity(st)}")
        return True

    def entries(folder: str) -> list[os.DirEntry]:
        try:
            return list(os.scandir(folder))
        except FileNotFoundError:  # removed since it was listed
            return []

    for table in entries(os.fspath(lake)):
        if add(table.path) and table.is_dir(follow_symlinks=False):
            for entry in entries(table.path):
                if entry.is_dir(follow_symlinks=False):
                    add(f"{entry.path}/data.parquet", follow_symlinks=True)
                else:
                    add(entry.path)
    return tuple(sorted(out))


def state_paths(state: tuple[str, ...]) -> list[str]:
    """The paths of a ``lake_state``, in its order."""
    return [entry.partition("\0")[0] for entry in state]


# ---- a closed month's files as one segment on disk ---------------------------------------------------------------
Month = tuple[tuple[str, Identity], ...]  # the (path, identity) of a segment's files, in path order


def _months(
    listing: tuple[tuple[str, Identity], ...], prefix: str, newest: str, period: int = 7
) -> dict[str, Month]:
    """The listing by segment (the first ``period`` characters of its partition value: ``YYYY-MM`` of
    ``date=YYYY-MM-DD``, or ``YYYY``), of the files of months before ``newest``, the table's newest month (still
    written day by day, so in no segment). Empty for a table whose partition values are not dates."""
    by_period: dict[str, list[tuple[str, Identity]]] = {}
    for path, identity in listing:
        value = path.rsplit("/", 2)[-2][len(prefix) :]
        if not _is_day(value):
            return {}
        if value[:7] < newest:
            by_period.setdefault(value[:period], []).append((path, identity))
    return {key: tuple(files) for key, files in by_period.items()}


def _is_day(value: str) -> bool:
    return len(value) == 10 and value[4] == value[7] == "-" and value[:4].isdigit() and value[5:7].isdigit()


# A segment's record of its files: each one's path, identity, rows and sha256.
Recorded = list[tuple[str, Identity, int, str | None]]


def _segment_files(schema: pa.Schema) -> Recorded:
    """A segment's record of its files: each one's path, identity, rows and sha256 (None in a segment written
    before hashes were recorded). Raises on a record that is missing or malformed."""
    meta = (schema.metadata or {})[SEGMENT_FILES]
    out = []
    for path, identity, rows, *digest in json.loads(meta):
        sha = digest[0] if digest else None
        if not isinstance(sha, str | None):
            raise TypeError(f"a recorded sha256 of {type(sha).__name__}")
        out.append((path, tuple(identity), rows, sha))
    return out  # type: ignore[return-value]


# Each segment's record of its files as last read in this process, by its path: (the segment's identity before
# that read, the record). A report reads a segment's rows, then the digests of the same files from its record:
# kept here, the record is decoded once a process while the segment is the same file.
_RECORDS: dict[str, tuple[Identity, Recorded]] = {}
MAX_RECORDS = 4096


def _remember(segment: str, identity: Identity, recorded: Recorded) -> None:
    _RECORDS.pop(segment, None)
    _RECORDS[segment] = (identity, recorded)
    while len(_RECORDS) > MAX_RECORDS:
        del _RECORDS[next(iter(_RECORDS))]


def _segment_record(segment: str) -> Recorded:
    """The record of the segment at ``segment`` as kept (``_RECORDS``) while the segment is the same file, else
    read from its schema (its rows are not read). Raises FileNotFoundError for a missing segment, and as
    ``_segment_files`` for an unreadable one."""
    identity = file_identity(os.stat(segment))  # before the read: a segment replaced after it is read again
    hit = _RECORDS.get(segment)
    if hit is not None and hit[0] == identity:
        return hit[1]
    with pa.memory_map(segment) as source:
        recorded = _segment_files(pa.ipc.open_file(source).schema)
    _remember(segment, identity, recorded)
    return recorded


def _segment_digests(folder: Path, table: Table, paths: dict[str, Identity]) -> dict[str, str]:
    """The sha256 of each of ``paths`` (partition files of ``table``, each with its identity now) as its period's
    segment under ``folder`` recorded it, for a file that is still the one the segment was built from (its
    identity now is the recorded one); a file of a segment that is missing, unreadable or of another version of
    the file is left out. Only the segments' schemas are read, not their rows."""
    period = SEGMENT_PERIOD.get(table.partition_by)
    if period is None:
        return {}
    prefix = f"{table.partition_by}="
    by_segment: dict[str, list[str]] = {}
    for path in paths:
        value = path.rsplit("/", 2)[-2][len(prefix) :]
        if _is_day(value):
            by_segment.setdefault(value[:period], []).append(path)
    out: dict[str, str] = {}
    for key, wanted in by_segment.items():
        segment = folder / f"{key}{SEGMENT_SUFFIX}"
        try:
            recorded = {
                path: (identity, sha) for path, identity, _, sha in _segment_record(os.fspath(segment))
            }
        except FileNotFoundError:
            continue
        except (OSError, pa.ArrowException, KeyError, ValueError, TypeError) as exc:
            LOG.warning("read cache: %s is unreadable (%s); its files are hashed instead", segment, exc)
            continue
        for path in wanted:
            hit = recorded.get(path)
            if hit is not None and hit[1] is not None and paths[path] == hit[0]:
                out[path] = hit[1]
    return out


def _from_segments(folder: Path, months: dict[str, Month], wanted: set[str]) -> dict[str, Rows]:
    """The rows of each ``wanted`` file whose month has a segment recording exactly that month's files now (in the
    segment's table). A segment that is missing or of other files gives nothing, and one that cannot be read is
    logged: its files are parsed instead, and the segment written again."""
    out: dict[str, Rows] = {}
    for month, files in months.items():
        if not any(path in wanted for path, _ in files):
            continue
        path = folder / f"{month}{SEGMENT_SUFFIX}"
        try:
            identity = file_identity(os.stat(path))  # before the read, as ``_segment_record``
            with pa.memory_map(os.fspath(path)) as source:
                data = pa.ipc.open_file(source).read_all()
            recorded = _segment_files(data.schema)
            if sum(rows for _, _, rows, _ in recorded) != data.num_rows:
                raise ValueError(f"{data.num_rows} rows, its record says otherwise")
            _remember(os.fspath(path), identity, recorded)
        except FileNotFoundError:
            continue
        except (OSError, pa.ArrowException, KeyError, ValueError, TypeError) as exc:
            LOG.warning("read cache: %s is unreadable (%s); its month's files are read instead", path, exc)
            continue
        if [(p, identity) for p, identity, _, _ in recorded] != list(files):
            continue  # built from other files: a day rewritten, added or removed since
        data = data.replace_schema_metadata(None)
        first = 0
        for p, _, rows, _ in recorded:
            if p in wanted:
                out[p] = (data, first, rows)
            first += rows
    return out


def _joined(parts: list[Rows]) -> pa.Table:
    """The rows of ``parts`` in their order as one table, each run of parts that follow one another in one table
    (a segment's files, the files kept from the last read) taken as one slice of it: a history of years of
    weekly files joined from a few segments is a few slices, not one a file."""
    runs: list[Rows] = []
    for rows, first, n in parts:
        if runs and runs[-1][0] is rows and runs[-1][1] + runs[-1][2] == first:
            runs[-1] = (rows, runs[-1][1], runs[-1][2] + n)
        else:
            runs.append((rows, first, n))
    return pa.concat_tables([rows.slice(first, n) for rows, first, n in runs]).combine_chunks()


def _write_segments(folder: Path, months: dict[str, Month], parts: dict[str, Rows], parsed: set[str]) -> None:
    """A segment for every month with a file just parsed, from the rows read, when none of its files changed
    since they were listed (else it is left for the next read). Written whole by the warehouse's atomic write
    (a reader sees a whole segment or none); a segment that cannot be written is logged and costs its month's
    parsing next time, nothing else (the lake is the record)."""
    from pipelines.warehouse import atomic_write_bytes, sha256_file  # the warehouse imports this module

    for month, files in months.items():
        if not any(path in parsed for path, _ in files):
            continue
        target = folder / f"{month}{SEGMENT_SUFFIX}"
        try:
            # hashed before the files' identities are checked: a digest recorded is the listed file's
            digests = [sha256_file(Path(path)) for path, _ in files]
            if any(file_identity(os.stat(path)) != identity for path, identity in files):
                continue  # rewritten while it was read: its rows may be the older file's
            data = _joined([parts[path] for path, _ in files])
            recorded = [
                [path, list(identity), parts[path][2], digest]
                for (path, identity), digest in zip(files, digests, strict=True)
            ]
            data = data.replace_schema_metadata({SEGMENT_FILES: json.dumps(recorded).encode()})
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, data.schema) as writer:
                writer.write_table(data)
            atomic_write_bytes(target, sink.getvalue().to_pybytes())
        except FileNotFoundError:
            continue  # a file of the month removed while it was read: the next read builds it
        except (OSError, pa.ArrowException) as exc:
            LOG.warning("read cache: could not write %s (%s); the lake's files are read instead", target, exc)


# A folder's partition names as last listed, by (folder, prefix): (the folder's identity then, the names).
_NAMES: dict[tuple[str, str], tuple[Identity, tuple[str, ...]]] = {}
# A listing is kept only when its folder last changed this long before it was taken (below).
SETTLED_NS = 2_000_000_000


def partition_names(base: Path, prefix: str) -> list[str]:
    """The names of the partition folders (``<prefix><value>``) under ``base``, in no order: one stat of the
    folder, and a listing only when the folder is another one than at its last listing in this process (a
    partition added, removed or renamed changes its folder's times). A week's report lists a table of years of
    days a few dozen times (every query bound to a span of it), and the listing grew with the history.

    A listing is kept only when the folder's last change is ``SETTLED_NS`` older than the listing: a file
    system's times can be coarser than the time between two changes (a clock tick of a few milliseconds), so a
    folder changed within the tick of its listing could keep its times across a change the listing missed, while
    any change after a settled folder is listed is stamped later than its last one."""
    folder = os.fspath(base)
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return []
    identity, key = file_identity(st), (folder, prefix)
    hit = _NAMES.get(key)
    if hit is not None and hit[0] == identity:
        return list(hit[1])
    try:
        names = tuple(e.name for e in os.scandir(folder) if e.name.startswith(prefix))
    except FileNotFoundError:
        return []
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > SETTLED_NS:
        _NAMES[key] = (identity, names)
    return list(names)


def _whole_periods(within: tuple[str, str], period: int) -> tuple[str, str]:
    """``within`` widened to whole segments (months: ``2025-03-14..2025-05-02`` -> ``2025-03-00..2025-05-99``;
    years: ``2025-00-00..2025-99-99``; bounds no day equals): the files a segment stands for are read together."""
    return within[0][:period] + "-00-00"[: 10 - period], within[1][:period] + "-99-99"[: 10 - period]


def _names_within(names: list[str], prefix: str, span: tuple[str, str]) -> list[str]:
    return [name for name in names if span[0] <= name[len(prefix) :] <= span[1]]


def _rows_within(
    kept: _Kept, listing: tuple[tuple[str, Identity], ...], prefix: str, within: tuple[str, str]
) -> pa.Table | None:
    """The kept rows of ``listing``'s files whose partition value is within ``within``, as one slice of the kept
    table, when every one of those files is kept as it is listed and their rows are together; else None."""
    first = end = None
    for path, identity in listing:
        if not within[0] <= path.rsplit("/", 2)[-2][len(prefix) :] <= within[1]:
            continue
        where = kept.rows_of.get(path)
        if where is None or where[0] != identity or (end is not None and where[1] != end):
            return None
        first = where[1] if first is None else first
        end = where[1] + where[2]
    if first is None or end is None:
        return kept.data.slice(0, 0)
    return kept.data.slice(first, end - first)


def table_listing(root: Path, table: Table) -> tuple[tuple[str, Identity], ...]:
    """(path, identity) of every partition file of ``table`` under the lake ``root``, in path order: what
    ``LakeFiles.table`` lists before it reads the table whole."""
    base = root / table.name
    return tuple(_listing(base, sorted(partition_names(base, f"{table.partition_by}="))))


def _listing(base: Path, names: list[str]) -> list[tuple[str, Identity]]:
    """(path, identity) of each ``<name>/data.parquet`` under ``base``, in the order of ``names``."""
    listed = []
    folder = os.fspath(base)
    for name in names:
        path = f"{folder}/{name}/data.parquet"
        try:
            st = os.stat(path)
        except FileNotFoundError:  # a partition directory without its file yet, or one being swept
            continue
        listed.append((path, file_identity(st)))
    return listed


LAKE_FILES = LakeFiles()
