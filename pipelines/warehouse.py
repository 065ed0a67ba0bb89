"""The warehouse: raw responses as pulled, a Parquet lake, and a DuckDB catalog over it.

Layout under ``WAREHOUSE_DIR`` (default ``warehouse/``)::

    raw/<source>/<endpoint>/<key parts>/<name>.json        response body, byte for byte as pulled
    raw/<source>/<endpoint>/<key parts>/<name>.meta.json   the request that produced it (no secrets), status, sha256
    lake/<table>/<partition col>=<value>/data.parquet      cleaned and derived tables, one file per partition
    catalog.duckdb                                         views over the lake, for the duckdb CLI or Python
    reports/<week>/                                        rendered reports
    gaps/<dataset>/                                        the gap ledger (``pipelines.gaps``): what could not be had

Writes are atomic (a temporary file in the same directory, fsync, then ``os.replace``), so a crash leaves
either the old file or the new one, never a partial one, and re-materializing a partition replaces it.
Raw files are never overwritten: a new pull is a new file.

The pipeline reads the lake through short-lived in-memory DuckDB connections (``Warehouse.query``), so no
run holds a lock on ``catalog.duckdb``; only ``refresh_catalog`` writes that file, under an exclusive file lock.

The root may also be an S3 URL (``WAREHOUSE_DIR=s3://bucket/prefix``, see ``pipelines.settings`` and
docs/deploy.md): it is then a ``upath.UPath`` over s3fs, the same layout under the prefix. A write is one PUT of
the whole body (``atomic_write_bytes``; a Parquet partition is serialized in memory first), which S3 makes
visible whole or not at all; the filesystem keeps no listing cache, so another worker's write is seen at once;
DuckDB reads the lake through that filesystem registered on its in-memory database (not httpfs); there is no
``catalog.duckdb`` (``refresh_catalog`` returns None).
"""

from __future__ import annotations

import datetime
import fcntl
import functools
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from pipelines.lake_files import LAKE_FILES, partition_names, partition_type
from pipelines.schemas import TABLES, Table

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def is_safe_component(value: object) -> bool:
    return isinstance(value, str) and bool(_SAFE.match(value)) and ".." not in value


def safe_component(value: str) -> str:
    """A value that will become one path component: refuse anything that could escape its directory."""
    if not isinstance(value, str) or not _SAFE.match(value) or ".." in value:
        raise ValueError(f"unsafe path component {value!r}")
    return value


_TMP = re.compile(r"^\.tmp-(\d+)-")
STALE_TMP_SECONDS = 3600.0
WRITE_THREADS = 4  # partitions written at a time by ``Warehouse.write_partitions``


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_WORD = re.compile(r"\w+")  # every table name is a single word (tested)


def named_tables(sql: str) -> list[Table]:
    """The lake's tables ``sql`` names: those whose name is one of its words (a set lookup a table, not a
    search of the text a table)."""
    words = set(_WORD.findall(sql))
    return [table for name, table in TABLES.items() if name in words]


def sweep_temp_files(directory: Path) -> list[Path]:
    """Remove the temporary files a killed writer left in ``directory``.

    Temporary names carry the writer's pid (``.tmp-<pid>-...``): a file whose process is gone can never be
    renamed into place any more. Unnamed ones (older layout) go once they are an hour old. Readers never look at
    ``.tmp-*`` files, so this is tidiness, not correctness.
    """
    removed = []
    if not directory.is_dir():
        return removed
    for p in directory.glob(".tmp-*"):
        m = _TMP.match(p.name)
        try:
            stale = (
                (not _pid_alive(int(m.group(1))))
                if m
                else (time.time() - p.stat().st_mtime > STALE_TMP_SECONDS)
            )
            if stale:
                p.unlink()
                removed.append(p)
        except (FileNotFoundError, ValueError, OverflowError):
            continue
    return removed


SWEEP_EVERY_SECONDS = 60.0
_LAST_SWEEP: dict[tuple[int, str], float] = {}  # (pid, directory) -> when this process last swept it


def _mkstemp(directory: Path, suffix: str = "") -> tuple[int, str]:
    # A sweep lists the whole directory: once a minute per directory and process, not at every write (a daily run
    # writes hundreds of files into one directory, and listing it each time grew with the directory).
    key, now = (os.getpid(), str(directory)), time.monotonic()
    if now - _LAST_SWEEP.get(key, -SWEEP_EVERY_SECONDS) >= SWEEP_EVERY_SECONDS:
        _LAST_SWEEP[key] = now
        sweep_temp_files(directory)
    return tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=suffix, dir=directory)


def is_remote(path: object) -> bool:
    """Whether ``path`` is on object storage (a ``UPath`` of a protocol other than the local file system)."""
    return isinstance(path, UPath) and path.protocol not in ("", "file", "local")


def remove_tree(path: Path) -> None:
    """Remove a directory and everything under it (on object storage: every object under the prefix); nothing
    when absent."""
    if is_remote(path):
        if path.fs.find(path.path):
            path.fs.rm(path.path, recursive=True)
        return
    shutil.rmtree(path, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes | pa.Buffer) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old bytes or the new ones, never a part.

    Locally: a temporary file in the same directory, fsync, ``os.replace``. On object storage: one PUT of the
    whole body (s3fs ``pipe_file``), which S3 makes visible whole or not at all; a failed PUT leaves the old
    object as it was."""
    if is_remote(path):
        path.fs.pipe_file(path.path, bytes(data))  # fsspec takes bytes (an Arrow buffer is copied once)
        return
    os.makedirs(path.parent, exist_ok=True)
    fd, tmp = _mkstemp(path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_FILE = "__lake_file"  # the column ``_read_parquets`` names each row's file in


def _read_parquets(paths: list[str]) -> dict[str, pl.DataFrame]:
    """Each local Parquet file of ``paths`` as ``pl.read_parquet`` reads it alone, the files read in one call;
    files that one call cannot read together each read alone, so that a broken file raises its own error: files
    whose columns come in another order (one call would give every file the first one's order), whose columns or
    types differ (polars refuses them), or that are not Parquet."""
    try:
        same_columns = len({tuple(pq.read_schema(path).names) for path in paths}) == 1
        rows = (
            pl.read_parquet(paths, glob=False, hive_partitioning=False, include_file_paths=_FILE)
            if same_columns
            else None
        )
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError):
        rows = None
    if rows is None:
        return {path: pl.read_parquet(path, glob=False) for path in paths}
    parts = rows.partition_by(_FILE, as_dict=True, include_key=False)
    empty = rows.clear().drop(_FILE)  # a file of no rows: its columns, as every file has them
    return {path: parts.get((path,), empty) for path in paths}


def sha256_bytes(data: bytes | pa.Buffer) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    if is_remote(path):
        return sha256_bytes(path.read_bytes())
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class StoredRaw:
    path: Path  # absolute
    relpath: str  # relative to the warehouse root, used for lineage
    sha256: str
    bytes: int


@dataclass(frozen=True)
class WrittenPartition:
    table: str
    partition: str
    path: Path
    rows: int
    bytes: int
    sha256: str


_MEMORY_DB: tuple[int, duckdb.DuckDBPyConnection] | None = None
_MEMORY_DB_LOCK = threading.Lock()
# An object-store warehouse's in-memory databases: (pid, filesystem token) -> a database with that filesystem
# registered. DuckDB registers one filesystem per protocol and database, so each filesystem has its own database.
_REMOTE_DBS: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_REMOTE_READERS: dict[tuple[int, str], Any] = {}  # the filesystem registered on each of those databases
_SESSIONS = threading.local()  # per thread: its pid, and warehouse root -> (connection, tables with a view)
# DuckDB warns that Arrow from an executed statement copies the rows; binding the statement as a relation
# (con.sql) instead binds the views' Parquet globs twice, which costs more than the copy. Filtered once here:
# warnings.catch_warnings() around each query would change the process's filters from every thread.
warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)


# DuckDB's threads for the connections this process opens from now on (None: DuckDB's default, one per core). A
# process that computes weeks while others do on the same cores opens its connections with its share of them
# (``pipelines.week_processes``): on two cores, two processes of two DuckDB threads each made a backfill's weekly
# run about 10% slower than one thread each (bench/HOTSPOT.md).
_DUCKDB_THREADS: int | None = None


def set_duckdb_threads(threads: int | None) -> int | None:
    """DuckDB's threads for the connections this process opens from now on (None: DuckDB's default); returns the
    setting it replaces. A connection keeps the setting it was opened with, the process's own database
    (``_memory_db``, opened at the process's first warehouse query) too."""
    global _DUCKDB_THREADS
    previous, _DUCKDB_THREADS = _DUCKDB_THREADS, threads
    return previous


def _duckdb_memory() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB database with this process's thread setting."""
    return duckdb.connect(":memory:", config={} if _DUCKDB_THREADS is None else {"threads": _DUCKDB_THREADS})


def _memory_db(fs: Any = None) -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB database (re-created in a forked child), which holds no file or data;
    for an object-store warehouse (``fs``, its fsspec filesystem), one per filesystem, with it registered."""
    global _MEMORY_DB
    with _MEMORY_DB_LOCK:
        if fs is not None:
            key = (os.getpid(), str(fs._fs_token))
            if key not in _REMOTE_DBS:
                con = _duckdb_memory()
                reader = _duckdb_filesystem(fs)
                con.register_filesystem(reader)
                _REMOTE_DBS[key] = con
                _REMOTE_READERS[key] = reader
            return _REMOTE_DBS[key]
        if _MEMORY_DB is None or _MEMORY_DB[0] != os.getpid():
            _MEMORY_DB = (os.getpid(), _duckdb_memory())
        return _MEMORY_DB[1]


# s3fs keeps a cache of directory listings per filesystem by default, so ``exists()`` after a listing would be
# answered from the cache and another worker's later write would stay invisible: the warehouse turns it off.
S3_OPTIONS: dict[str, Any] = {"use_listings_cache": False}


@functools.cache  # one class, so that fsspec's instance cache and DuckDB's registrations see one filesystem
def _s3_filesystem_class() -> tuple[type, type]:
    import s3fs  # only an object-store warehouse needs it

    class WarehouseS3FileSystem(s3fs.S3FileSystem):
        """s3fs with two changes for the warehouse's access pattern (many small objects, no listing cache).

        * A bounded-depth ``find`` (what ``glob`` runs: ``lake/<table>/date=*/data.parquet``) is one flat listing
          of the prefix, filtered by depth, instead of one listing per folder (``date=...``) walked: the lake
          of a year is hundreds of folders, and every query globs its tables.
        * A file opened for reading (DuckDB's reads through the registered filesystem) is fetched whole in one GET
          and served from memory, instead of a HEAD and several ranged GETs: partitions are kilobytes to a few
          megabytes, and one GET is also one version of the object, never parts of two.
        """

        async def _find(self, path, maxdepth=None, withdirs=None, detail=False, prefix="", **kwargs):
            if not maxdepth:
                return await super()._find(
                    path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, prefix=prefix, **kwargs
                )
            base = self._strip_protocol(path).rstrip("/")
            found = await super()._find(base, withdirs=withdirs, detail=True, prefix=prefix, **kwargs)
            keep = {
                name: info
                for name, info in found.items()
                if name == base or name[len(base) + 1 :].count("/") < maxdepth
            }
            return keep if detail else sorted(keep)

        def _open(self, path, mode="rb", **kwargs):
            if mode != "rb":
                return super()._open(path, mode=mode, **kwargs)
            return io.BytesIO(self.cat_file(path))

    class DuckDBS3FileSystem(WarehouseS3FileSystem):
        """The filesystem DuckDB reads the lake through: each object version fetched once per process.

        DuckDB opens a Parquet file and asks its size and modification time several times per query (binding the
        view, reading the footer, scanning). Every query lists its tables first (``Warehouse.connect`` creates
        each view from a glob: one LIST, which gives each object's ETag). An object is fetched whole in one GET
        the first time a query touches it and kept in memory under (path, ETag of the latest listing), up to
        ``MAX_CACHED_BYTES`` (least recently used first out). Its open and its size questions are answered from
        those bytes, so they are always one version; a later query whose listing gives the same ETag makes no
        GET, and a rewritten object has another ETag at the next listing and is fetched again. An object no
        listing has named (no ETag known) is fetched at each question."""

        MAX_CACHED_BYTES = 256 << 20

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._lock = threading.Lock()
            self._listed_etags: dict[str, str] = {}  # path -> ETag at this process's latest listing of it
            self._by_etag: OrderedDict[tuple[str, str], bytes] = OrderedDict()
            self._cached_bytes = 0
            self.gets = 0  # objects fetched (the tests count them)

        async def _find(self, path, maxdepth=None, withdirs=None, detail=False, prefix="", **kwargs):
            found = await super()._find(
                path, maxdepth=maxdepth, withdirs=withdirs, detail=True, prefix=prefix, **kwargs
            )
            with self._lock:
                for name, info in found.items():
                    etag = str(info.get("ETag") or "").strip('"')
                    if info.get("type") == "file" and etag:
                        self._listed_etags[name] = etag
            return found if detail else sorted(found)

        def _object(self, name: str) -> bytes:
            with self._lock:
                key = (name, self._listed_etags.get(name, ""))
                data = self._by_etag.get(key) if key[1] else None
                if data is not None:
                    self._by_etag.move_to_end(key)
                    return data
            data = self.cat_file(name)
            with self._lock:
                self.gets += 1
                if key[1] and len(data) <= self.MAX_CACHED_BYTES // 4:
                    old = self._by_etag.pop(key, None)
                    self._cached_bytes -= len(old) if old is not None else 0
                    self._by_etag[key] = data
                    self._cached_bytes += len(data)
                    while self._cached_bytes > self.MAX_CACHED_BYTES:
                        self._cached_bytes -= len(self._by_etag.popitem(last=False)[1])
            return data

        def info(self, path, **kwargs):
            name = self._strip_protocol(path)
            if not name.endswith(".parquet"):
                return super().info(path, **kwargs)
            data = self._object(name)
            # DuckDB also asks the modification time (``modified``), to reuse what it cached of a file: the
            # time of this question, so that nothing DuckDB read earlier is ever taken for these bytes
            now = datetime.datetime.now(datetime.timezone.utc)
            return {"name": name, "size": len(data), "type": "file", "LastModified": now}

        def size(self, path):
            return self.info(path)["size"]

        def _open(self, path, mode="rb", **kwargs):
            name = self._strip_protocol(path)
            if mode == "rb" and name.endswith(".parquet"):
                return io.BytesIO(self._object(name))
            return super()._open(path, mode=mode, **kwargs)

    return WarehouseS3FileSystem, DuckDBS3FileSystem


def _duckdb_filesystem(fs: Any) -> Any:
    """The filesystem DuckDB reads ``fs``'s objects through (same endpoint and options; see the class)."""
    return _s3_filesystem_class()[1](**fs.storage_options)


def object_store_root(url: str) -> UPath:
    """The ``UPath`` of an ``s3://bucket/prefix`` warehouse. Endpoint, region and credentials come from the
    standard AWS variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_DEFAULT_REGION``), read by botocore; the filesystem instance is shared within a process (fsspec's
    instance cache, cleared in a forked child), which is safe because it caches no listing. The endpoint is
    passed explicitly so that a process that changes ``AWS_ENDPOINT_URL`` gets a filesystem for the new one
    instead of the cached one (the credentials stay out of the options, which are the cache key)."""
    options = dict(S3_OPTIONS)
    if os.environ.get("AWS_ENDPOINT_URL"):
        options["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    root = UPath(url.rstrip("/"), **options)
    # every path derived from the root shares its filesystem (upath copies it to children)
    root._fs_cached = _s3_filesystem_class()[0](**options)  # type: ignore[attr-defined]
    return root


def warehouse_path(location: str | os.PathLike[str]) -> Path:
    """A path as the warehouse records it (metadata, messages): a local path, or an ``s3://`` URL."""
    if isinstance(location, str) and "://" in location:
        return object_store_root(location)
    return Path(location)


class Warehouse:
    def __init__(self, root: str | os.PathLike[str]):
        if isinstance(root, str) and "://" in root:
            root = object_store_root(root)
        self.remote = is_remote(root)
        self.root: Path = root if self.remote else Path(root).resolve()  # type: ignore[assignment]

    @property
    def fs(self) -> Any:
        """The fsspec filesystem of an object-store warehouse (None for a local one)."""
        return self.root.fs if self.remote else None  # type: ignore[attr-defined]

    def duckdb_connect(self) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB database that can read this warehouse's lake (its filesystem registered when
        the lake is on object storage)."""
        con = _duckdb_memory()
        if self.remote:
            con.register_filesystem(_duckdb_filesystem(self.fs))
        return con

    # ---- layout -------------------------------------------------------------------------------------------
    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @functools.cached_property
    def lake_dir(self) -> Path:
        return self.root / "lake"  # joined once: a report names thousands of partition paths under it

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    def read_cache(self, table: Table) -> Path | None:
        """The folder of ``table``'s closed months kept as segments (``pipelines/lake_files.py``): a cache of the
        lake's own files, checked against them at every read; None on object storage (no segments there)."""
        return None if self.remote else self.root / "read_cache" / table.name

    def lake_table(
        self, table: Table, con: duckdb.DuckDBPyConnection, within: tuple[str, str] | None = None
    ) -> Any:
        """``table`` whole as one Arrow table, as the glob view reads it (a local lake only), from the rows this
        process keeps, the closed months' segments and the files new since (``LAKE_FILES``); None when it has no
        partition. ``within``: only the partitions from its first to its last value (``LakeFiles.table``)."""
        return LAKE_FILES.table(self.lake_dir, table, con, self.read_cache(table), within)

    def rel(self, path: Path) -> str:
        """``path`` relative to the root, for lineage. A path the warehouse made (the root joined with names, no
        ``..``) is cut lexically: a report names about 1,300 input files, and resolving each one stats every
        folder above it. Any other path (relative, ``..``, or reaching the root through a link) is resolved
        first."""
        if self.remote:
            return path.relative_to(self.root).as_posix()
        if path.is_absolute() and ".." not in path.parts:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path.resolve().relative_to(self.root).as_posix()

    def location(self, path: Path) -> str:
        """Where ``path`` is, for metadata and messages: the local path, or the ``s3://`` URL."""
        return path.as_posix() if self.remote else str(path)

    # ---- raw ----------------------------------------------------------------------------------------------
    def raw_path(
        self, source: str, endpoint: str, parts: Mapping[str, str], name: str, ext: str = "json"
    ) -> Path:
        """``ext`` is the body's own format (``json``, ``zip``, ``csv``, ...); the record is always ``.meta.json``."""
        if not re.fullmatch(r"[a-z0-9]{1,8}", ext) or ext == "meta":
            raise ValueError(f"unsafe raw file extension {ext!r}")
        p = self.raw_dir / safe_component(source) / safe_component(endpoint)
        for k, v in parts.items():
            p = p / f"{safe_component(k)}={safe_component(v)}"
        return p / f"{safe_component(name)}.{ext}"

    def store_raw(
        self,
        source: str,
        endpoint: str,
        parts: Mapping[str, str],
        name: str,
        body: bytes,
        request: Mapping[str, Any],
        ext: str = "json",
    ) -> StoredRaw:
        """Keep a response body exactly as pulled, beside a record of the request that produced it.

        A raw file is never replaced: storing different bytes under a name that is stored already is an error,
        so stored data can only be added to. Storing the very same bytes again (a re-run with a frozen clock)
        changes nothing and returns the stored file. A body without its ``.meta.json`` is an interrupted store
        (killed between the two writes); it was never "stored" (every reader ignores it) and is written again.
        """
        path = self.raw_path(source, endpoint, parts, name, ext)
        meta_path = self.meta_path(path)
        digest = sha256_bytes(body)
        if path.exists() and meta_path.exists():
            if sha256_file(path) == digest:
                return StoredRaw(path=path, relpath=self.rel(path), sha256=digest, bytes=len(body))
            raise FileExistsError(
                f"raw response {self.rel(path)} already stored; raw files are never replaced"
            )
        meta = {**request, "sha256": digest, "bytes": len(body)}
        # The body goes first: a .meta.json only exists for a body that is completely on disk.
        atomic_write_bytes(path, body)
        atomic_write_bytes(meta_path, json.dumps(meta, sort_keys=True, indent=1).encode())
        return StoredRaw(path=path, relpath=self.rel(path), sha256=digest, bytes=len(body))

    def raw_files(self, source: str, endpoint: str) -> Iterator[Path]:
        """Every stored response body (with its .meta.json present) for an endpoint."""
        base = self.raw_dir / safe_component(source) / safe_component(endpoint)
        if not base.exists():
            return
        for path in sorted(base.rglob("*.json")):
            if path.name.endswith(".meta.json"):
                continue
            if self.meta_path(path).exists():
                yield path

    @staticmethod
    def meta_path(path: Path) -> Path:
        """The request record beside a raw body (``x.json`` or ``x.zip`` -> ``x.meta.json``)."""
        return path.with_suffix(".meta.json")

    @staticmethod
    def raw_meta(path: Path) -> dict[str, Any]:
        return json.loads(Warehouse.meta_path(path).read_text())

    # ---- lake ---------------------------------------------------------------------------------------------
    def partition_path(self, table: Table, partition: str) -> Path:
        return (
            self.lake_dir / table.name / f"{table.partition_by}={safe_component(partition)}" / "data.parquet"
        )

    def write_partition(self, table: Table, partition: str, df: pl.DataFrame) -> WrittenPartition:
        """Validate a frame against its schema and replace one partition's Parquet file atomically."""
        return self._write_conformed(table, partition, table.conform(df))

    def _write_conformed(self, table: Table, partition: str, arrow: pa.Table) -> WrittenPartition:
        """Replace one partition's Parquet file atomically with ``arrow``, already conformed to ``table``: the file
        encoded into an Arrow buffer (outside the interpreter lock), then written as one whole (locally a
        temporary file, fsync and rename; on object storage one PUT, the old object kept until it succeeds), its
        digest taken from the bytes written, not read back."""
        sink = pa.BufferOutputStream()
        pq.write_table(arrow, sink, compression="zstd", write_statistics=True)
        data = sink.getvalue()
        path = self.partition_path(table, partition)
        atomic_write_bytes(path, data)
        return WrittenPartition(
            table=table.name,
            partition=partition,
            path=path,
            rows=arrow.num_rows,
            bytes=data.size,
            sha256=sha256_bytes(data),
        )

    def write_partitions(
        self, table: Table, frames: Mapping[str, pl.DataFrame]
    ) -> dict[str, WrittenPartition]:
        """``write_partition`` for each of ``frames``, in key order, up to ``WRITE_THREADS`` at a time: a write is
        mostly Parquet encoding, the sync and the digest, which run outside the interpreter lock, so a range run's
        hundreds of small partitions overlap (1.4x on 300 days of ``open_interest``, ``bench/HOTSPOT.md``). Every
        write has ended when this returns or raises; the first failure in key order is raised, after the others
        were written (each is atomic on its own, as when written one at a time)."""
        keys = sorted(frames)
        if len(keys) < 2:
            return {key: self.write_partition(table, key, frames[key]) for key in keys}
        # the frames checked and converted together when they all pass (``Table.conform_many``), else each alone
        conformed = table.conform_many({key: frames[key] for key in keys})
        with ThreadPoolExecutor(min(WRITE_THREADS, len(keys)), thread_name_prefix="lake-write") as pool:
            futures = [
                pool.submit(self._write_conformed, table, key, conformed[key])
                if conformed is not None
                else pool.submit(self.write_partition, table, key, frames[key])
                for key in keys
            ]
        return {key: f.result() for key, f in zip(keys, futures, strict=True)}

    def partition_values(self, table: Table) -> list[str]:
        """The partition values ``table`` has a folder for, sorted, from one listing of its folder (no file is
        opened or stat'ed: a partition whose file is still being written is listed). What a derivation back
        through a history of years can stop at without reading it."""
        prefix = f"{table.partition_by}="
        folder = self.lake_dir / table.name
        if self.remote:
            names = sorted(p.name for p in folder.glob(f"{prefix}*"))
        else:
            names = sorted(partition_names(folder, prefix))
        return [name[len(prefix) :] for name in names]

    def partitions_with_files(self, table: Table) -> list[str]:
        """The partition values of ``table`` whose folder has its file, sorted (one listing and one stat a
        partition of a local lake)."""
        if self.remote:
            found = (self.lake_dir / table.name).glob(f"{table.partition_by}=*/data.parquet")
            return sorted(p.parent.name.split("=", 1)[1] for p in found)
        folder = f"{self.lake_dir}/{table.name}/{table.partition_by}="
        return [
            value for value in self.partition_values(table) if os.path.isfile(f"{folder}{value}/data.parquet")
        ]

    def has_partition(self, table: Table, partition: str) -> bool:
        return self.partition_path(table, partition).exists()

    def read_partition(self, table: Table, partition: str) -> pl.DataFrame:
        """One partition of the lake (a local file is parsed again only when it was replaced: ``LAKE_FILES``)."""
        path = self.partition_path(table, partition)
        if self.remote:
            return self.read_parquet(path)
        return LAKE_FILES.frame(str(path), lambda: self.read_parquet(path))

    def read_partitions(self, table: Table, partitions: list[str]) -> dict[str, pl.DataFrame]:
        """``read_partition`` of each of ``partitions``, the local files not kept read in one call."""
        if self.remote:
            return {p: self.read_partition(table, p) for p in partitions}
        paths = {p: str(self.partition_path(table, p)) for p in partitions}
        frames = LAKE_FILES.frames(list(paths.values()), _read_parquets)
        return {p: frames[path] for p, path in paths.items()}

    def read_parquet(self, path: Path, columns: list[str] | None = None) -> pl.DataFrame:
        """One Parquet file of the lake as a polars frame (on object storage: its bytes read in one GET)."""
        if self.remote:
            return pl.read_parquet(io.BytesIO(path.read_bytes()), columns=columns)
        return pl.read_parquet(path, columns=columns, glob=False)  # a path, never a pattern

    def has_files(self, table: Table) -> bool:
        """Whether ``table`` has a partition file: a local folder is listed only up to its first partition that
        has one (a table of years of days is thousands of folders, and every write asks this of every table)."""
        prefix = f"{table.partition_by}="
        folder = self.lake_dir / table.name
        if self.remote:
            return any(folder.glob(f"{prefix}*/data.parquet"))
        try:
            with os.scandir(folder) as entries:
                return any(
                    e.name.startswith(prefix) and os.path.isfile(f"{e.path}/data.parquet") for e in entries
                )
        except FileNotFoundError:
            return False

    def _view_sql(self, table: Table) -> str | None:
        if not self.has_files(table):
            return None
        glob = (
            (self.lake_dir / table.name / f"{table.partition_by}=*" / "data.parquet")
            .as_posix()
            .replace("'", "''")
        )
        ptype = partition_type(table)
        return (
            f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM read_parquet("
            f"'{glob}', hive_partitioning = true, hive_types = {{'{table.partition_by}': {ptype}}})"
        )

    def _session(self) -> tuple[duckdb.DuckDBPyConnection, dict[str, Any]]:
        """This thread's connection to the process's in-memory database for this warehouse, and what each table
        it can read is bound to (``"glob"``: a view over its files; else the Arrow table registered). One
        connection per process, warehouse and thread (a DuckDB connection is not shared between threads), kept
        for the life of the thread."""
        sessions = getattr(_SESSIONS, "by_root", None)
        if sessions is None or _SESSIONS.pid != os.getpid():  # a forked child opens its own
            sessions = _SESSIONS.by_root = {}
            _SESSIONS.pid = os.getpid()
        key = str(self.root)
        if key not in sessions:
            # its own connection to a shared in-memory database: milliseconds, not the ~0.1 s of a new database
            sessions[key] = (_memory_db(self.fs).cursor(), {})
        return sessions[key]

    def _bind(
        self,
        con: duckdb.DuckDBPyConnection,
        bound: dict[str, Any],
        table: Table,
        within: tuple[str, str] | None = None,
    ) -> None:
        """Make ``table`` readable by name on ``con`` as the lake has it now (nothing when it has no partition:
        a query naming it then fails as a missing table). A local table read before by this process, or whose
        closed months are kept as segments, is its Arrow table in memory (``pipelines/lake_files.py``: only new
        and replaced files are parsed), or only the rows of its partitions ``within`` a span of values when the
        query gives one; otherwise a temporary view over its files' glob, which every query binds again, so
        later partitions are read, and which opens only the partitions the query's bounds need."""
        name = table.name
        if not self.remote and (
            LAKE_FILES.asked_before(self.lake_dir, table) or self.read_cache(table).is_dir()  # type: ignore[union-attr]
        ):
            arrow = self.lake_table(table, con, within) if within is not None else None
            if arrow is None:
                arrow = self.lake_table(table, con)
            if arrow is not None and bound.get(name) is arrow:  # the lake's files are the ones registered
                return
            if bound.pop(name, None) is not None:
                con.execute(f"DROP VIEW IF EXISTS {name}")
            if arrow is not None:
                con.register(name, arrow)
                bound[name] = arrow
            return
        if name in bound:
            return
        sql = self._view_sql(table)
        if sql:
            con.execute(sql.replace("CREATE OR REPLACE VIEW", "CREATE OR REPLACE TEMP VIEW", 1))
            bound[name] = "glob"

    def query(
        self,
        sql: str,
        params: list[Any] | dict[str, Any] | None = None,
        within: Mapping[str, tuple[datetime.date, datetime.date]] | None = None,
    ) -> pl.DataFrame:
        """Run a parameterized query over the lake and return a polars frame.

        Each table the query names is bound first (``_bind``). When a table no longer binds (its files were
        removed or rewritten with other columns while a view or the query read them), every binding of this
        thread is dropped and made again from the lake as it is now, and the query runs once more.

        ``within`` maps a table partitioned by day or week to the first and last partition the query can read
        (its own ``WHERE`` bounds on that column, which it must have): only those partitions' files are listed
        and bound, so that a query of a few days costs the same over a history of years. The query's filter
        still decides the rows; a span narrower than the query's bounds would lose rows, so it is given only
        where the same values build both (``assets.weekly.shape.coin_daily_between``)."""
        named = named_tables(sql)
        spans = {
            name: (first.isoformat(), last.isoformat()) for name, (first, last) in (within or {}).items()
        }
        con, bound = self._session()
        for attempt in (1, 2):
            try:
                for table in named:
                    self._bind(con, bound, table, spans.get(table.name))
                # a relation's Arrow, not the DB-API result's (DuckDB copies the rows once more for that)
                return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())  # type: ignore[return-value]
            except (duckdb.IOException, duckdb.BinderException):
                if attempt == 2:
                    raise
                for name in bound:
                    con.execute(f"DROP VIEW IF EXISTS {name}")
                bound.clear()
        raise AssertionError("unreachable")

    def refresh_catalog(self) -> Path | None:
        """(Re)create ``catalog.duckdb`` with a view per lake table, under an exclusive lock.

        Opening the file read-write is the only DuckDB write the pipeline does; the lock makes concurrent
        runs take turns instead of failing with DuckDB's "Could not set lock on file". A view reads its
        table's files through a glob, so a new partition needs no refresh: only the views that were added,
        changed or removed since the set recorded beside it (``.catalog.views.json``) are made or dropped.

        A warehouse on object storage has no catalog (returns None): its views would read ``s3://`` globs, which
        the duckdb CLI can only follow through the httpfs extension, and a DuckDB file cannot be opened on S3
        anyway. The pipeline reads that lake through ``query``; see docs/deploy.md for reading it by hand.
        """
        if self.remote:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        views = {table.name: [self._view_sql(table), table.description] for table in TABLES.values()}
        views = {k: v for k, v in views.items() if v[0]}
        stamp = self.root / ".catalog.views.json"
        with open(self.root / ".catalog.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            made: dict[str, Any] = {}
            try:
                if self.catalog_path.exists():
                    made = json.loads(stamp.read_text())
            except (OSError, ValueError):  # no or unreadable stamp: every view made again below
                made = {}
            if not isinstance(made, dict):
                made = {}
            if made == views:
                return self.catalog_path
            con = duckdb.connect(str(self.catalog_path))
            try:
                # only the views that changed: binding a view globs its table's files (thousands for a long
                # history), and a backfill's first partition of each new table changes the set of views
                for name in (made.keys() - views.keys()) & TABLES.keys():  # a table whose files are all gone
                    con.execute(f"DROP VIEW IF EXISTS {name}")
                for name, (sql, description) in views.items():
                    if made.get(name) == [sql, description]:
                        continue
                    con.execute(sql)
                    comment = description.replace("'", "''")
                    con.execute(f"COMMENT ON VIEW {name} IS '{comment}'")
            finally:
                con.close()
            atomic_write_bytes(stamp, json.dumps(views, sort_keys=True).encode())
        return self.catalog_path
