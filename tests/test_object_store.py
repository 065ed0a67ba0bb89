"""The warehouse on S3-compatible object storage (``WAREHOUSE_DIR=s3://bucket/prefix``), against moto's server
(``pipelines.services.S3Server``, one per module): the lake, raw store, gap ledger, publishing and the reports
server on S3, another worker's writes seen at once, atomic replacement. A whole week of the pipeline on S3, byte for
byte the same lake and report as on a local disk, is ``tests/test_distributed.py`` (its stack's warehouse is on
S3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from pipelines import gaps
from pipelines.schemas import COIN_DAILY, SchemaError
from pipelines.services import S3Server, ServiceUnavailable
from pipelines.settings import SettingsError, check_writable, validate, warehouse_root
from pipelines.warehouse import Warehouse, is_remote
from tests.conftest import REPO
from tests.test_warehouse import rows


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto server for the module, with the AWS variables pointing at it while the module runs."""
    try:
        server = S3Server(tmp_path_factory.mktemp("s3"))
        server.__enter__()
    except ServiceUnavailable as exc:
        pytest.skip(f"no S3 emulator: {exc}")
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in server.env().items():
                mp.setenv(k, v)
            yield server
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def url(s3: S3Server) -> str:
    """A fresh prefix per test: every test starts from an empty warehouse."""
    return s3.url(f"t-{uuid.uuid4().hex[:10]}")


def _objects(s3: S3Server, url: str) -> list[str]:
    wh = Warehouse(url)
    prefix = wh.root.path  # type: ignore[attr-defined]
    return sorted(p[len(prefix) + 1 :] for p in wh.fs.find(prefix))


def _worker(s3: S3Server, code: str) -> None:
    """Run ``code`` in another process (another worker: its own filesystem, nothing shared in memory)."""
    env = {**s3.env(), "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, check=True, cwd=REPO, timeout=120)


# ---- settings ---------------------------------------------------------------------------------------------------
def test_url_is_validated_in_one_clear_message() -> None:
    ok = validate({"WAREHOUSE_DIR": "s3://crypto-weekly/lake/prod/"})
    assert str(ok.warehouse_root) == "s3://crypto-weekly/lake/prod" and is_remote(ok.warehouse_root)
    for value, says in [
        ("gs://bucket/prefix", "gs:// is not supported: expected a directory path or s3://bucket/prefix"),
        ("s3://Bad_Bucket/x", "'Bad_Bucket' is not a bucket name"),
        ("s3:///prefix", "'' is not a bucket name"),
        ("s3://bucket/a/../b", "prefix part '..' is not a plain name"),
        ("s3://bucket/a//b", "prefix part '' is not a plain name"),
        ("s3://key:secret@bucket/p", "no credentials, port, query or fragment"),
    ]:
        with pytest.raises(SettingsError) as err:
            validate({"WAREHOUSE_DIR": value})
        assert str(err.value).startswith("WAREHOUSE_DIR=") and says in str(err.value), str(err.value)
        assert "secret" not in str(err.value) or value.startswith("s3://key:")
        with pytest.raises(SettingsError):
            warehouse_root({"WAREHOUSE_DIR": value})
    # a local path is what it was: absolute, a pathlib path
    local = warehouse_root({"WAREHOUSE_DIR": "rel/wh"})
    assert type(local) is type(Path("/")) and local.is_absolute()


def test_unreachable_bucket_is_one_message_without_the_secret(s3: S3Server, url: str) -> None:
    root = warehouse_root({"WAREHOUSE_DIR": url})
    assert check_writable(root) == root and _objects(s3, url) == []  # the probe is gone
    with pytest.raises(SettingsError) as err:
        check_writable(warehouse_root({"WAREHOUSE_DIR": "s3://no-such-bucket-here/p"}))
    assert "is not writable" in str(err.value) and "AWS_ENDPOINT_URL" in str(err.value)
    assert s3.secret_key not in str(err.value)


# ---- the lake ---------------------------------------------------------------------------------------------------
def test_partitions_round_trip_and_query_over_hive_partitions(s3: S3Server, url: str, tmp_path: Path) -> None:
    wh = Warehouse(url)
    assert wh.remote and str(wh.root) == url
    a = wh.write_partition(COIN_DAILY, "2025-01-01", rows(3))
    wh.write_partition(COIN_DAILY, "2025-01-02", rows(2))
    assert str(a.path) == f"{url}/lake/coin_daily/date=2025-01-01/data.parquet"
    local = Warehouse(tmp_path).write_partition(COIN_DAILY, "2025-01-01", rows(3))
    assert (a.sha256, a.bytes, a.rows) == (local.sha256, local.bytes, 3)  # the same bytes as on disk
    assert wh.read_partition(COIN_DAILY, "2025-01-01").equals(
        Warehouse(tmp_path).read_partition(COIN_DAILY, "2025-01-01")
    )
    got = wh.query(
        "SELECT date, count(*) AS n, sum(price_usd) AS p FROM coin_daily WHERE date >= ? GROUP BY date ORDER BY date",
        [date(2025, 1, 1)],
    )
    assert got.to_dicts() == [
        {"date": date(2025, 1, 1), "n": 3, "p": 6.0},
        {"date": date(2025, 1, 2), "n": 2, "p": 3.0},
    ]
    assert wh.rel(a.path) == "lake/coin_daily/date=2025-01-01/data.parquet"
    assert wh.refresh_catalog() is None  # no catalog file on object storage (docs/deploy.md)
    assert _objects(s3, url) == [
        "lake/coin_daily/date=2025-01-01/data.parquet",
        "lake/coin_daily/date=2025-01-02/data.parquet",
    ]


def test_raw_store_is_never_replaced_and_body_goes_before_its_record(s3: S3Server, url: str) -> None:
    wh = Warehouse(url)
    request = {"url": "https://x/api", "params": {"a": "1"}, "fetched_at": "2025-01-01T00:00:00+00:00"}
    stored = wh.store_raw("src", "ep", {"day": "2025-01-01"}, "page-1", b'{"v":1}', request)
    assert (
        stored.relpath == "raw/src/ep/day=2025-01-01/page-1.json" and stored.path.read_bytes() == b'{"v":1}'
    )
    assert wh.raw_meta(stored.path)["sha256"] == stored.sha256
    assert list(wh.raw_files("src", "ep")) == [stored.path]
    assert wh.store_raw("src", "ep", {"day": "2025-01-01"}, "page-1", b'{"v":1}', request) == stored
    with pytest.raises(FileExistsError, match="raw files are never replaced"):
        wh.store_raw("src", "ep", {"day": "2025-01-01"}, "page-1", b'{"v":2}', request)
    assert stored.path.read_bytes() == b'{"v":1}'
    # a body whose record never came (killed between the two PUTs) is not stored: not listed, written again
    orphan = wh.raw_path("src", "ep", {"day": "2025-01-02"}, "page-1")
    orphan.write_bytes(b"partial story")
    assert list(wh.raw_files("src", "ep")) == [stored.path]
    again = wh.store_raw("src", "ep", {"day": "2025-01-02"}, "page-1", b'{"v":3}', request)
    assert again.path.read_bytes() == b'{"v":3}' and len(list(wh.raw_files("src", "ep"))) == 2


def test_a_failed_replace_leaves_the_old_object(s3: S3Server, url: str, monkeypatch) -> None:
    wh = Warehouse(url)
    first = wh.write_partition(COIN_DAILY, "2025-01-01", rows(3))
    before = first.path.read_bytes()
    with pytest.raises(SchemaError):  # the frame is refused before anything is sent
        wh.write_partition(COIN_DAILY, "2025-01-01", rows(2).drop("price_usd"))

    def refused(path, data, **kw):  # the PUT fails (refused, connection lost): S3 keeps the old object
        raise PermissionError(f"PUT {path} refused")

    monkeypatch.setattr(wh.fs, "pipe_file", refused)
    with pytest.raises(PermissionError):
        wh.write_partition(COIN_DAILY, "2025-01-01", rows(2))
    monkeypatch.undo()
    assert first.path.read_bytes() == before and wh.read_partition(COIN_DAILY, "2025-01-01").height == 3
    assert _objects(s3, url) == ["lake/coin_daily/date=2025-01-01/data.parquet"]  # no temporary object
    wh.write_partition(COIN_DAILY, "2025-01-01", rows(2))  # a successful replace: the new object, whole
    assert wh.read_partition(COIN_DAILY, "2025-01-01").height == 2


def test_queries_fetch_only_objects_changed_since_the_last_query(s3: S3Server, url: str) -> None:
    """DuckDB's reader keeps fetched objects under their ETag: a second query over unchanged partitions makes no
    GET, a partition rewritten by another worker is fetched again and its new rows are read."""
    from pipelines import warehouse as warehouse_module

    wh = Warehouse(url)
    for day, n in (("2025-01-01", 1), ("2025-01-02", 2), ("2025-01-03", 3)):
        wh.write_partition(COIN_DAILY, day, rows(n))
    total = "SELECT count(*) AS n FROM coin_daily"
    assert wh.query(total)["n"].item() == 6
    reader = warehouse_module._REMOTE_READERS[(os.getpid(), str(wh.fs._fs_token))]  # this warehouse's reader
    before = reader.gets
    assert wh.query(total)["n"].item() == 6
    assert reader.gets == before  # nothing changed: no object fetched
    _worker(
        s3,
        f"""
        from pipelines.schemas import COIN_DAILY
        from pipelines.warehouse import Warehouse
        from tests.test_warehouse import rows
        Warehouse({url!r}).write_partition(COIN_DAILY, "2025-01-02", rows(5))
        """,
    )
    assert wh.query(total)["n"].item() == 9  # the rewritten partition's rows, read at once
    assert reader.gets == before + 1  # that object alone fetched
    assert wh.query("SELECT count(*) AS n FROM coin_daily WHERE date = '2025-01-02'")["n"].item() == 5
    assert reader.gets == before + 1


def test_another_workers_writes_are_seen_at_once(s3: S3Server, url: str) -> None:
    """Two workers on one prefix: what one writes, the other sees on its next look, although it listed the
    same folders before (s3fs would answer from its listing cache, which the warehouse turns off)."""
    import s3fs

    def look(root: Path) -> tuple[list[str], bool]:
        table = root / "lake" / "coin_daily"
        return sorted(p.name for p in table.iterdir()), (table / "date=2025-01-02").exists()

    def look_fs(fs: s3fs.S3FileSystem) -> tuple[list[str], bool]:
        table = url.removeprefix("s3://") + "/lake/coin_daily"
        return sorted(p.rsplit("/", 1)[1] for p in fs.ls(table)), fs.exists(table + "/date=2025-01-02")

    a = Warehouse(url)
    b = Warehouse(url)
    a.write_partition(COIN_DAILY, "2025-01-01", rows(1))
    cached = s3fs.S3FileSystem(skip_instance_cache=True)  # s3fs as it comes: with a listing cache
    for root in (a.root, b.root):
        assert look(root) == (["date=2025-01-01"], False)
    assert look_fs(a.fs) == look_fs(cached) == (["date=2025-01-01"], False)
    for reader in (a, b):
        assert reader.query("SELECT count(*) AS n FROM coin_daily")["n"].item() == 1
    _worker(
        s3,
        f"""
        from pipelines.schemas import COIN_DAILY
        from pipelines.warehouse import Warehouse
        from tests.test_warehouse import rows
        Warehouse({url!r}).write_partition(COIN_DAILY, "2025-01-02", rows(2))
        """,
    )
    b.write_partition(COIN_DAILY, "2025-01-03", rows(3))  # and the other warehouse object of this process
    for reader in (a, b):
        now = (["date=2025-01-01", "date=2025-01-02", "date=2025-01-03"], True)
        assert look(reader.root) == look_fs(reader.fs) == now
        assert reader.has_partition(COIN_DAILY, "2025-01-02")
        assert reader.query("SELECT count(*) AS n FROM coin_daily")["n"].item() == 6
    # the control: a filesystem with s3fs's default listing cache still answers from its stale listing
    assert look_fs(cached) == (["date=2025-01-01"], False)


def test_gap_ledger_under_concurrent_writers(s3: S3Server, url: str) -> None:
    """Two worker processes record gaps of one dataset, each for its own days, at the same time: none is lost."""
    days = {name: [date(2025, m, d).isoformat() for d in range(1, 9)] for name, m in (("a", 3), ("b", 4))}
    script = f"""
        import sys
        from pipelines import gaps
        from pipelines.warehouse import Warehouse
        wh, name = Warehouse({url!r}), sys.argv[1]
        for day in {days!r}[name]:
            g = gaps.Gap("okx", "okx funding", "BTC-" + name, (day,), 500, gaps.UNAVAILABLE)
            gaps.record_gaps(wh, "okx funding", [day], [g])
        """
    env = {**s3.env(), "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), name], env=env, cwd=REPO)
        for name in days
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    wh = Warehouse(url)
    ledger = gaps.read_ledger(wh, "okx funding")
    assert {g.key: g.days for g in ledger} == {f"BTC-{n}": tuple(d) for n, d in days.items()}
    # a later run asks three of a's days again and gets them: only those drop out
    gaps.record_gaps(wh, "okx funding", days["a"][:3], [])
    assert {g.key: g.days for g in gaps.read_ledger(wh)} == {
        "BTC-a": tuple(days["a"][3:]),
        "BTC-b": tuple(days["b"]),
    }
    fred = gaps.Gap("fred", "fred series", "DGS10", (), 404, gaps.NOT_FOUND)
    gaps.record_gaps(wh, "fred series", [], [fred], replace_all=True)
    assert gaps.gaps_for_days(wh, [date(2030, 1, 1)]) == [fred]


def test_publish_versions_on_object_storage(s3: S3Server, url: str) -> None:
    from pipelines.narrative.publish import publish

    wh = Warehouse(url)
    week_dir = wh.reports_dir / "2025-11-17"
    one = {"report.md": b"# One\n", "report.html": b"<p>1</p>", "charts/x.svg": b"<svg/>"}
    p1 = publish(week_dir, "2025-11-17", one)
    assert (p1.version, p1.new) == (1, True) and str(p1.directory) == f"{url}/reports/2025-11-17/versions/1"
    assert publish(week_dir, "2025-11-17", one).new is False  # same bytes: no new version
    # a publish killed before its marker leaves an incomplete version 2: swept, its number reused
    (week_dir / "versions" / "2" / "report.md").write_bytes(b"half")
    p2 = publish(week_dir, "2025-11-17", {**one, "report.md": b"# Two\n"})
    assert (p2.version, p2.new) == (2, True)
    assert (week_dir / "report.md").read_bytes() == b"# Two\n"
    assert "-# One\n+# Two" in (week_dir / "CHANGES.md").read_text()
    assert (week_dir / "charts" / "x.svg").read_bytes() == b"<svg/>"
    assert sorted(p.name for p in (week_dir / "versions").iterdir()) == ["1", "2"]


def test_reports_server_status_and_snapshot_read_object_storage(s3: S3Server, url: str) -> None:
    from pipelines.lake_snapshot import LakeSnapshot
    from pipelines.report_server import ReportServer
    from pipelines.status import _lake, _reports

    wh = Warehouse(url)
    week = wh.reports_dir / "2025-11-17"
    for name, data in {
        "report.md": b"# T\n",
        "report.html": b"<p>the week</p>",
        "manifest.json": json.dumps({"title": "A title", "data_gaps": ["x"]}).encode(),
    }.items():
        (week / name).write_bytes(data)
    wh.write_partition(COIN_DAILY, "2025-01-01", rows(2))
    with ReportServer(wh.reports_dir) as srv:
        index = urllib.request.urlopen(srv.url + "/").read().decode()
        assert "A title" in index and 'href="/2025-11-17/report.html"' in index
        with urllib.request.urlopen(srv.url + "/2025-11-17/report.html") as r:
            assert r.read() == b"<p>the week</p>" and r.headers["Content-Type"].startswith("text/html")
        for bad in ("/2025-11-17/../../x", "/2025-11-17/missing.html", "/2025-11-17/", "/%2e%2e/x"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(srv.url + bad)
            assert err.value.code == 404, bad
    assert _reports(wh.root) == [
        {"week": "2025-11-17", "complete": True, "title": "A title", "data_gaps": ["x"]}
    ]
    [lake] = _lake(wh.root)
    assert (lake["table"], lake["partitions"], lake["files"]) == ("coin_daily", 1, 1) and lake["bytes"] > 0
    snap = LakeSnapshot(wh)
    assert snap.query("SELECT count(*) AS n FROM coin_daily")["n"].item() == 2
    snap.close()


# ---- one week of the pipeline on S3 -----------------------------------------------------------------------------


def test_a_report_on_object_storage_is_checked_again_by_its_blocking_check(s3: S3Server, url: str) -> None:
    """The blocking check keeps the report step's results only for a warehouse on this machine's file system,
    whose files it can compare; on object storage it checks the published report again."""
    import assets.report as rep
    from tests._narrative_frames import WEEK, frames, write_weeks

    wh = write_weeks(Warehouse(url), frames())
    week = WEEK.isoformat()
    published, (_, state, verified) = rep.publish_weeks([week], (url, ""))[week]
    assert published and state is None and verified
    rep._VERIFIED[(str(wh.root), week)] = (state, verified)
    assert rep.results_still_true(wh, [week]) == {}
    assert rep.week_claim_results(wh, week) == verified  # what the check then finds, from the objects
