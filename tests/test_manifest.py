"""The code version in every manifest covers what decides a report: both code packages and the locked
dependencies, so a change to an asset body (assets/) is a new code version too."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from pipelines import manifest


def _version(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(manifest, "PROJECT_ROOT", root)
    return manifest.code_version.__wrapped__()["source_sha256"]


def test_code_version_covers_assets_pipelines_and_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in ("pipelines/a.py", "assets/weekly/b.py", "pipelines/narrative/templates/r.md.j2", "uv.lock"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / "README.md").write_text("docs do not change the numbers\n")
    base = _version(tmp_path, monkeypatch)
    (tmp_path / "README.md").write_text("edited\n")
    assert _version(tmp_path, monkeypatch) == base
    seen = {base}
    for rel in ("assets/weekly/b.py", "pipelines/a.py", "pipelines/narrative/templates/r.md.j2", "uv.lock"):
        (tmp_path / rel).write_text("x = 2\n")
        seen.add(_version(tmp_path, monkeypatch))
    assert len(seen) == 5  # every edit above moved the version


def _coin_rows(raw_files: list[str]):
    """``coin_daily`` rows (``tests.test_warehouse.rows``), one per raw file named."""
    import polars as pl

    from tests.test_warehouse import rows

    return rows(len(raw_files)).with_columns(pl.Series("raw_file", raw_files))


def test_input_hashes_and_raw_files_follow_a_rewritten_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report's lineage names each clean partition with its sha256 and the raw files its rows came from: each
    file is hashed and read once per version of it (consecutive weeks share days), and a partition rewritten
    since (a new file) is hashed and read again."""
    from pipelines.narrative import lineage
    from pipelines.schemas import COIN_DAILY
    from pipelines.warehouse import Warehouse, sha256_file

    wh = Warehouse(tmp_path)
    wh.write_partition(COIN_DAILY, "2025-01-06", _coin_rows(["raw/b.json", "raw/a.json", "raw/a.json"]))
    hashed: list[Path] = []
    monkeypatch.setattr(manifest, "sha256_file", lambda p: (hashed.append(p), sha256_file(p))[1])
    reads: list[str] = []
    real_read = lineage._read_raw_files
    monkeypatch.setattr(lineage, "_read_raw_files", lambda paths: (reads.extend(paths), real_read(paths))[1])

    def entry() -> dict:
        (e,) = [e for e in lineage.clean_inputs(wh, "2025-01-06") if e["table"] == COIN_DAILY.name]
        return e

    first = entry()
    path = wh.partition_path(COIN_DAILY, "2025-01-06")
    assert first["sha256"] == sha256_file(path) and first["raw_files"] == ["raw/a.json", "raw/b.json"]
    # the same file: neither hashed nor read again
    assert entry() == first and (len(hashed), len(reads)) == (1, 1)

    wh.write_partition(COIN_DAILY, "2025-01-06", _coin_rows(["raw/c.json"]))
    second = entry()
    assert second["sha256"] == sha256_file(path) != first["sha256"]
    assert second["raw_files"] == ["raw/c.json"] and (len(hashed), len(reads)) == (2, 2)
    second["raw_files"].append("changed by a caller")  # a caller's list is its own
    assert entry()["raw_files"] == ["raw/c.json"]


def test_the_raw_files_of_many_partitions_are_read_in_one_scan_as_each_alone(tmp_path: Path) -> None:
    """The partitions a week names that are not kept are read together, each with the distinct raw files its
    own read gives, sorted (none for a partition of no named file; a path holding a glob pattern's characters is
    that file, not a pattern); files whose column types differ, which one scan cannot read together, are each read
    alone."""
    import polars as pl

    from pipelines.narrative import lineage

    def alone(path: Path) -> list[str]:
        return sorted(
            set(pl.read_parquet(path, columns=["raw_file"], glob=False)["raw_file"].drop_nulls().to_list())
        )

    files = {
        "a": pl.DataFrame({"raw_file": ["raw/b.json", "raw/a.json", None, "raw/b.json"], "x": [1, 2, 3, 4]}),
        "b": pl.DataFrame({"raw_file": [None, None]}, schema={"raw_file": pl.String}),
        "c": pl.DataFrame({"raw_file": ["raw/c.json"], "x": [5]}),
    }
    paths = []
    for name, df in files.items():
        folder = tmp_path / ("date=*" if name == "a" else "plain")  # a pattern's characters are a name's
        folder.mkdir(exist_ok=True)
        df.write_parquet(folder / f"{name}.parquet")
        paths.append(str(folder / f"{name}.parquet"))
    (tmp_path / "date=other").mkdir()  # what the first path would also name as a pattern
    pl.DataFrame({"raw_file": ["raw/other.json"]}).write_parquet(tmp_path / "date=other" / "a.parquet")
    expected = {p: alone(Path(p)) for p in paths}
    assert expected[paths[0]] == ["raw/a.json", "raw/b.json"] and expected[paths[1]] == []
    scans: list[int] = []
    real_scan = pl.scan_parquet
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pl, "scan_parquet", lambda ps, **kw: (scans.append(len(ps)), real_scan(ps, **kw))[1])
        assert lineage._read_raw_files(paths) == expected
        assert scans == [3]
        pl.DataFrame({"raw_file": [7]}).write_parquet(tmp_path / "d.parquet")  # another column type
        mixed = [*paths, str(tmp_path / "d.parquet")]
        assert lineage._read_raw_files(mixed) == {**expected, mixed[-1]: [7]}


def _weekly_lake_with_segments(tmp_path: Path, first: date, weeks: int):
    """A weekly table of ``weeks`` one-row partitions from ``first``, read once so that its closed months have
    their segments: (the table, the warehouse, the weeks, their files' paths)."""
    import duckdb
    import polars as pl
    import pyarrow as pa

    from pipelines.lake_files import LakeFiles
    from pipelines.schemas import Column, Table
    from pipelines.warehouse import Warehouse

    weekly = Table("weekly_test", "a weekly table", "week", (Column("value", pa.float64(), "a value"),))
    wh = Warehouse(tmp_path)
    keys = [(first + timedelta(days=7 * k)).isoformat() for k in range(weeks)]
    for k, week in enumerate(keys):
        wh.write_partition(weekly, week, pl.DataFrame({"value": [float(k)]}))
    LakeFiles().table(wh.lake_dir, weekly, duckdb.connect(), wh.read_cache(weekly))  # writes the segments
    return weekly, wh, keys, [str(wh.partition_path(weekly, week)) for week in keys]


def test_a_new_process_takes_the_hashes_of_closed_months_from_their_segments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A report names every partition it read with its sha256, a history of years of weekly tables among them. A
    closed month's segment records each file's hash beside its identity, so another process hashes only the
    files no segment records as they are now: the newest month's, a file rewritten since, the files of a segment
    that cannot be read or that records no hashes. Every hash is the file's own."""
    import json

    import polars as pl
    import pyarrow as pa

    from pipelines.lake_files import SEGMENT_FILES, LakeFiles
    from pipelines.warehouse import sha256_file

    weekly, wh, weeks, paths = _weekly_lake_with_segments(tmp_path, date(2024, 12, 2), 20)  # to April 2025
    newest = [p for p, w in zip(paths, weeks, strict=True) if w[:7] == weeks[-1][:7]]

    def digests_in_a_new_process() -> tuple[dict[str, str], list[str]]:
        hashed: list[str] = []
        got = LakeFiles().digests(
            weekly, paths, wh.read_cache(weekly), lambda p: (hashed.append(p), sha256_file(Path(p)))[1]
        )
        assert got == {p: sha256_file(Path(p)) for p in paths}
        return got, hashed

    assert digests_in_a_new_process()[1] == newest  # the closed months' hashes from two segments

    wh.write_partition(weekly, "2025-01-06", pl.DataFrame({"value": [99.0]}))  # a closed week rewritten
    rewritten = str(wh.partition_path(weekly, "2025-01-06"))
    assert digests_in_a_new_process()[1] == [rewritten, *newest]

    segment = wh.read_cache(weekly) / "2024.arrow"
    with pa.memory_map(str(segment)) as source:
        data = pa.ipc.open_file(source).read_all()
    recorded = json.loads(data.schema.metadata[SEGMENT_FILES])
    no_hashes = data.replace_schema_metadata({SEGMENT_FILES: json.dumps([e[:3] for e in recorded]).encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, no_hashes.schema) as writer:
        writer.write_table(no_hashes)
    segment.write_bytes(sink.getvalue().to_pybytes())  # a segment that records no hashes
    in_2024 = [p for p, w in zip(paths, weeks, strict=True) if w < "2025"]
    assert digests_in_a_new_process()[1] == [*in_2024, rewritten, *newest]

    segment.write_bytes(b"not an arrow file")  # a damaged segment is never trusted
    with caplog.at_level("WARNING", logger="pipelines.lake_files"):
        assert digests_in_a_new_process()[1] == [*in_2024, rewritten, *newest]
    assert "2024.arrow is unreadable" in caplog.text


def test_a_segments_record_is_decoded_once_while_the_segment_is_the_same_file(tmp_path: Path) -> None:
    """A report reads a closed month's rows from its segment, then the hashes of the same files: the segment's
    record of its files is decoded once a process while the segment is the file that was read, and again once it
    is another (rewritten, or written again in place)."""

    import os

    import duckdb
    import pyarrow as pa

    from pipelines import lake_files
    from pipelines.lake_files import LakeFiles
    from pipelines.warehouse import sha256_file

    weekly, wh, weeks, paths = _weekly_lake_with_segments(tmp_path, date(2024, 11, 4), 12)  # to January 2025
    closed = [p for p, w in zip(paths, weeks, strict=True) if w < "2025"]
    decoded: list[int] = []
    real = lake_files._segment_files

    def counted(schema: pa.Schema) -> lake_files.Recorded:
        decoded.append(1)
        return real(schema)

    def hashes_after_a_read() -> list[str]:
        files = LakeFiles()  # as a new report: the rows first, then the hashes
        files.table(wh.lake_dir, weekly, duckdb.connect(), wh.read_cache(weekly))
        hashed: list[str] = []
        got = files.digests(
            weekly, paths, wh.read_cache(weekly), lambda p: (hashed.append(p), sha256_file(Path(p)))[1]
        )
        assert got == {p: sha256_file(Path(p)) for p in paths}
        return hashed

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lake_files, "_segment_files", counted)
        assert hashes_after_a_read() == paths[len(closed) :]  # the closed weeks' hashes from the segment
        assert decoded == [1]  # read with the rows; the hashes from the record kept
        segment = wh.read_cache(weekly) / "2024.arrow"
        body, before = segment.read_bytes(), segment.stat().st_mtime_ns
        segment.write_bytes(body)  # the same bytes, written again in place: another file for all anyone knows
        # its time unlike the last on any file system (some stamp in clock ticks that two writes can share)
        os.utime(segment, ns=(before - 1_000_000_000, before - 1_000_000_000))
        decoded.clear()
        assert hashes_after_a_read() == paths[len(closed) :]
        assert decoded == [1]


def test_a_range_of_reports_stats_each_file_of_its_history_once(tmp_path: Path) -> None:
    """A range of reports over one snapshot of the lake names each week's history with its hashes: each file is
    stat'ed once for all the weeks (the identity the snapshot first took), not once a week; a report on the
    warehouse itself stats every file it names each time. Every hash is the file's own."""
    import os

    from pipelines.lake_snapshot import LakeSnapshot
    from pipelines.manifest import input_entries
    from pipelines.warehouse import sha256_file

    weekly, wh, weeks, paths = _weekly_lake_with_segments(tmp_path, date(2024, 12, 2), 20)
    stated: list[str] = []
    real = os.stat

    def counted(path, *args, **kwargs):
        if str(path).endswith("/data.parquet"):
            stated.append(str(path))
        return real(path, *args, **kwargs)

    def named_twice(reader) -> int:
        stated.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "stat", counted)
            for upto in (12, 20):  # two weeks of a range: the second's history holds the first's
                entries = input_entries(reader, weekly, weeks[:upto])
                assert [e["sha256"] for e in entries] == [sha256_file(Path(p)) for p in paths[:upto]]
        return len(stated)

    snapshot = LakeSnapshot(wh)
    assert named_twice(snapshot) == 20
    assert named_twice(snapshot) == 0  # every file already named by this snapshot
    snapshot.close()
    assert named_twice(wh) == 32
