"""Weeks computed in one pass over a lake read once equal each week computed alone, byte for byte (the small
synthetic lake here; every week of the emulator's history in tests/test_every_week.py)."""

from __future__ import annotations

import hashlib
import re
import shutil
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.weekly.shape import Computed
from assets.weekly.weeks import WEEKLY_COMPUTES, compute_weeks
from pipelines.calendar import week_close_days
from pipelines.lake_snapshot import LakeSnapshot
from pipelines.runner import RunFailed, run_weeks
from pipelines.schemas import COIN_DAILY, TABLES
from pipelines.warehouse import Warehouse, named_tables, sha256_file
from tests import _one_pass
from tests._week_pipeline import COMPUTES
from tests._weekly_world import build, write_lake
from tests.conftest import run_instance

UPTO = datetime(2025, 5, 12, tzinfo=UTC)
# the first two weeks lack days of history some tables need (failures), the others compute
WEEKS = ["2025-03-31", "2025-04-07", "2025-04-14", "2025-04-21", "2025-04-28", "2025-05-05"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return write_lake(tmp_path_factory.mktemp("one-pass"), build(), UPTO)


@pytest.fixture(scope="module")
def weekly_lake(lake, tmp_path_factory) -> Warehouse:
    """A copy of the module's lake with the weekly tables of every week of ``WEEKS`` computed (read only)."""
    from tests._week_pipeline import compute_weekly

    root = tmp_path_factory.mktemp("one-pass-weekly") / "wh"
    shutil.copytree(lake.root, root)
    wh = Warehouse(root)
    for week in WEEKS:
        compute_weekly(wh, week)
    return wh


def test_one_pass_computes_every_weekly_table() -> None:
    """The one list of computes covers every weekly asset of the code location, no more, no less."""
    from pipelines.definitions import all_assets

    weekly = {k.to_user_string() for a in all_assets for k in a.keys if a.group_names_by_key[k] == "weekly"}
    assert set(WEEKLY_COMPUTES) == set(COMPUTES) == weekly
    assert all(WEEKLY_COMPUTES[t] is fn for t, (fn, _) in COMPUTES.items())


def test_every_week_in_one_pass_equals_the_week_alone(lake) -> None:
    alone = _one_pass.each_week_alone(lake, WEEKS)
    one_pass = compute_weeks(lake, reversed(WEEKS))
    assert _one_pass.differences(alone, one_pass) == []
    computed = [o for weeks in one_pass.values() for o in weeks.values() if isinstance(o, Computed)]
    failed = [o for weeks in one_pass.values() for o in weeks.values() if not isinstance(o, Computed)]
    assert len(computed) >= 60 and all(isinstance(f, dg.Failure | ValueError) for f in failed)
    # what the every-week test compares: the one-pass frames against the partitions each week wrote alone
    for table, weeks in alone.items():
        for week, outcome in weeks.items():
            if isinstance(outcome, Computed):
                lake.write_partition(TABLES[table], week, outcome.df)
    differing = _one_pass.lake_differences(lake, one_pass)
    assert len(differing) == len(failed) and all("failed in one pass" in d for d in differing)


def test_the_comparison_sees_a_changed_row(lake) -> None:
    one_pass = compute_weeks(lake, WEEKS[-1:])
    alone = _one_pass.each_week_alone(lake, WEEKS[-1:])
    out = one_pass["weekly_volume"][WEEKS[-1]]
    one_pass["weekly_volume"][WEEKS[-1]] = Computed(
        out.df.with_columns(pl.col("spot_volume_usd") * (1 + 1e-15)), out.metadata, out.problems
    )
    diffs = _one_pass.differences(alone, one_pass)
    assert len(diffs) == 1 and diffs[0].startswith(f"weekly_volume[{WEEKS[-1]}]: alone ('computed'"), diffs


def test_the_snapshot_reads_a_table_once_and_answers_as_the_warehouse(lake) -> None:
    snap = LakeSnapshot(lake, written=["weekly_volume"])
    sql = "SELECT * FROM coin_daily WHERE date <= ? ORDER BY date, coin_id"
    for day in ("2025-04-20", "2025-05-11"):
        assert snap.query(sql, [day]).equals(lake.query(sql, [day]))
    assert snap.reads == 1
    with pytest.raises(LookupError, match="weekly_volume"):
        snap.query("SELECT * FROM weekly_volume")
    snap.close()


def test_a_snapshot_loads_the_tables_a_query_names_as_whole_words(lake) -> None:
    """A query names a table by one of its words (every table name is a single word), not by a part of a longer
    word: the estimates beside ``coin_daily`` are not ``coin_daily``, nor is a column that starts like it."""
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in TABLES)
    snap = LakeSnapshot(lake, written=["coin_daily"])
    with pytest.raises(LookupError, match="coin_daily"):
        snap.query("SELECT count(*) FROM coin_daily")
    with pytest.raises(LookupError, match="coin_daily"):
        snap.query("SELECT 1 FROM (SELECT 1) AS x WHERE 'coin_daily'<>''")
    assert snap.query("SELECT 1 AS coin_daily_x").height == 1
    snap.close()
    # the warehouse binds the tables of a query by the same rule (``named_tables``)
    joined = named_tables("SELECT * FROM coin_daily JOIN funding_rates USING (date)")
    assert sorted(t.name for t in joined) == ["coin_daily", "funding_rates"]
    assert named_tables("SELECT 1 AS coin_daily_x, 'coin_dailyish'") == []


def test_a_snapshot_lists_a_tables_partitions_once(lake, monkeypatch) -> None:
    """A range of reports asks every week for each weekly table's partitions: a snapshot lists a table once, as
    the warehouse lists it, and a table being written each time."""
    listed: list[str] = []
    real = Warehouse.partitions_with_files

    def counted(self, table):
        listed.append(table.name)
        return real(self, table)

    monkeypatch.setattr(Warehouse, "partitions_with_files", counted)
    snap = LakeSnapshot(lake, written=["weekly_volume"])
    expected = real(lake, COIN_DAILY)
    assert expected and snap.partitions_with_files(COIN_DAILY) == expected
    snap.partitions_with_files(
        COIN_DAILY
    ).clear()  # a copy: the snapshot's listing is not the caller's to change
    assert snap.partitions_with_files(COIN_DAILY) == expected
    assert listed == ["coin_daily"]
    snap.partitions_with_files(TABLES["weekly_volume"])
    snap.partitions_with_files(TABLES["weekly_volume"])
    assert listed == ["coin_daily", "weekly_volume", "weekly_volume"]
    snap.close()


def test_a_snapshot_of_one_week_reads_only_the_days_its_queries_name(lake) -> None:
    """A report's snapshot (one week) answers a query that names its days from those days' rows, without copying
    the table, with the warehouse's answer; a span with no day in the lake, or a query without a span, copies the
    table whole; a snapshot of many weeks copies it at its first query whatever the query names."""
    sql = "SELECT * FROM coin_daily WHERE date BETWEEN ? AND ? ORDER BY date, coin_id"
    spans = [
        (date(2025, 4, 6), date(2025, 4, 13)),
        (date(2025, 3, 1), date(2025, 3, 3)),
        (date(2026, 1, 1),) * 2,
    ]
    one = LakeSnapshot(lake, read_spans=True)
    for first, last in spans[:2]:
        got = one.query(sql, [first, last], within={"coin_daily": (first, last)})
        assert got.equals(lake.query(sql, [first, last])) and got.height > 0
    assert one.reads == 0  # no table copied
    first, last = spans[2]  # no partition in the span's months: the table whole, no row
    assert one.query(sql, [first, last], within={"coin_daily": (first, last)}).height == 0 and one.reads == 1
    # a span's rows were that query's alone: the thread's next query sees the whole table
    whole = "SELECT count(*) AS n FROM coin_daily"
    assert one.query(whole)["n"][0] == lake.query(whole)["n"][0] > got.height
    one.close()
    many = LakeSnapshot(lake)
    first, last = spans[0]
    assert many.query(sql, [first, last], within={"coin_daily": (first, last)}).equals(
        lake.query(sql, [first, last])
    )
    assert many.reads == 1
    many.close()


def test_a_kept_snapshot_serves_the_next_step_only_while_every_file_it_read_is_unchanged(
    lake, tmp_path
) -> None:
    """A range's next step over the same weeks uses the snapshot its process kept, reading nothing again, while
    every file the snapshot read is the one it read; a partition rewritten, a partition added to a table it
    listed, a partition file it read replaced, another range, a step that failed or ``keep=False`` each give a
    snapshot read from the lake as it is then, which answers as the warehouse does."""
    from pipelines import lake_snapshot
    from pipelines.lake_snapshot import reads_for
    from pipelines.schemas import COIN_REGISTRY

    root = tmp_path / "wh"
    shutil.copytree(lake.root, root)
    wh = Warehouse(root)
    weeks = WEEKS[-2:]
    total = "SELECT sum(market_cap_usd) AS m FROM coin_daily WHERE date <= ?"
    day = "2025-05-11"
    snapshot = lake_snapshot.LakeSnapshot  # the class, to tell a new snapshot from the kept one

    def reads(snap):
        assert isinstance(snap, snapshot)
        registry = wh.partition_values(COIN_REGISTRY)[-1]
        return (
            snap.query(total, [day])["m"][0],
            snap.read_partition(COIN_REGISTRY, registry).height,
            snap.partitions_with_files(TABLES["funding_rates"]),
        )

    try:
        with reads_for(wh, weeks, keep=True) as first:
            seen = reads(first)
            assert first.reads == 2
        with reads_for(wh, weeks, keep=True) as again:
            assert again is first and reads(again) == seen and again.reads == 0  # nothing read twice

        # a coin_daily partition rewritten: the next step reads the table again and sees the new rows
        part = wh.read_partition(COIN_DAILY, day)
        wh.write_partition(COIN_DAILY, day, part.with_columns(pl.col("market_cap_usd") * 2))
        with reads_for(wh, weeks, keep=True) as after:
            assert after is not first and after.reads == 0
            assert after.query(total, [day])["m"][0] == wh.query(total, [day])["m"][0] != seen[0]
            reads(after)

        # the registry partition it read replaced by another file
        registry = wh.partition_values(COIN_REGISTRY)[-1]
        rows = wh.read_partition(COIN_REGISTRY, registry)
        wh.write_partition(COIN_REGISTRY, registry, rows.head(rows.height - 1))
        with reads_for(wh, weeks, keep=True) as replaced:
            assert replaced is not after
            assert reads(replaced)[1] == rows.height - 1

        # a partition added to a table it listed
        funding = TABLES["funding_rates"]
        last = wh.partitions_with_files(funding)[-1]
        added = (date.fromisoformat(last) + timedelta(days=1)).isoformat()
        wh.write_partition(funding, added, wh.read_partition(funding, last))
        with reads_for(wh, weeks, keep=True) as listed:
            assert listed is not replaced and added in reads(listed)[2]

        # another range of weeks, a failed step, keep=False: never the kept snapshot
        with reads_for(wh, WEEKS[-3:], keep=True) as other:
            assert other is not listed
        with (
            pytest.raises(RuntimeError, match="step failed"),
            reads_for(wh, WEEKS[-3:], keep=True) as failing,
        ):
            assert failing is other
            raise RuntimeError("step failed")
        with reads_for(wh, WEEKS[-3:], keep=True) as fresh:
            assert fresh is not other
        with reads_for(wh, WEEKS[-3:]) as unkept:
            assert unkept is not fresh  # keep=False: a snapshot of its own, closed after the step
        with pytest.raises(duckdb.ConnectionException, match="closed"):
            unkept.query(total, [day])
        with reads_for(wh, WEEKS[-3:], keep=True) as still:
            assert still is fresh
    finally:
        lake_snapshot._close_kept()


def test_a_weeks_input_frames_are_read_once_for_its_check_and_its_report(lake, monkeypatch) -> None:
    """The week's input check and its report, steps that share a range's kept snapshot, read the week's clean
    frames once, and get the frames the warehouse reads for the week alone."""
    from pipelines import lake_snapshot, quality

    reads: list[str] = []
    real = quality._read_week_frames

    def counted(wh, week):
        reads.append(week)
        return real(wh, week)

    monkeypatch.setattr(quality, "_read_week_frames", counted)
    weeks, week = WEEKS[-2:], WEEKS[-1]
    alone = quality.week_frames(lake, week)
    try:
        with lake_snapshot.reads_for(lake, weeks, keep=True) as check:
            quality.week_problems(check, week)
        with lake_snapshot.reads_for(lake, weeks, keep=True) as report:
            assert report is check
            frames = quality.week_frames(report, week)
    finally:
        lake_snapshot._close_kept()
    assert reads == [week, week]  # the week alone on the warehouse, then once on the snapshot
    assert frames.keys() == alone.keys() and all(frames[t].equals(alone[t]) for t in alone)


def test_a_report_reads_each_weekly_tables_history_in_one_read_as_partition_by_partition(
    weekly_lake, tmp_path
) -> None:
    """``load_week``'s history of a weekly table (one query of the table; on a snapshot of many weeks, the table
    read once and cut at each week) is the partitions up to the week read one by one and joined: the same rows,
    order and types; a partition folder without its file is not read."""
    from pipelines.narrative.data import ALL_TABLES, empty, history_rows, partitions_up_to

    shutil.copytree(weekly_lake.root, tmp_path / "wh")
    wh = Warehouse(tmp_path / "wh")
    (wh.lake_dir / "weekly_volume" / "week=2025-03-24").mkdir()  # a partition being written: no file yet
    snapshot = LakeSnapshot(wh)  # a range of reports: each table read once, each week its partitions up to it
    compared = 0
    for week in WEEKS[2:]:
        for table in ALL_TABLES:
            keys = partitions_up_to(wh, table, week)
            assert keys == sorted(
                p.parent.name.split("=", 1)[1]
                for p in (wh.lake_dir / table.name).glob("week=*/data.parquet")
                if p.parent.name.split("=", 1)[1] <= week
            )
            if not keys:
                continue
            joined = pl.concat([wh.read_partition(table, k) for k in keys], how="vertical_relaxed")
            for rows in (history_rows(wh, table, week), history_rows(snapshot, table, week)):
                assert rows.schema == joined.schema and rows.equals(joined), (table.name, week)
                assert rows.schema == empty(table).schema
            compared += 1
    assert compared >= 40
    snapshot.close()


def test_a_snapshot_gives_each_weekly_table_week_the_rows_of_its_own_query(weekly_lake) -> None:
    """``data.table_week`` on a snapshot (each weekly table read once, whole, and split by week) gives every table
    and week the rows, order and types of the week's own query on the warehouse, and a week without rows an empty
    frame of the same columns; the table's history for a report (``history_rows``) comes from the same read: one
    query a table for both."""
    from pipelines.narrative.data import history_rows, table_week

    wh = weekly_lake
    snapshot = LakeSnapshot(wh)
    queries: list[str] = []
    query = snapshot.query
    snapshot.query = lambda sql, *a, **k: queries.append(sql) or query(sql, *a, **k)  # type: ignore[method-assign]
    weekly = [t for t in TABLES.values() if t.partition_by == "week" and wh.has_files(t)]
    assert len(weekly) >= 10
    compared = 0
    for table in weekly:
        for week in [*WEEKS, "2024-01-01"]:
            own, split = table_week(wh, table.name, week), table_week(snapshot, table.name, week)
            assert split.schema == own.schema and split.equals(own), (table.name, week)
            compared += own.height > 0
            assert history_rows(snapshot, table, week).equals(history_rows(wh, table, week)), (
                table.name,
                week,
            )
    assert compared >= 40
    assert snapshot.reads == len(weekly) and len(queries) == len(weekly)
    snapshot.close()


# ---- through Dagster: a range of weeks as one run of weekly_job -------------------------------------------------


def _dagster_lake(lake, tmp_path, name: str, monkeypatch: pytest.MonkeyPatch):
    """A copy of the module's lake as the warehouse of the runs that follow (the pipeline's clock after UPTO)."""
    root = tmp_path / name
    shutil.copytree(lake.root, root)
    monkeypatch.setenv("WAREHOUSE_DIR", str(root))
    monkeypatch.setenv("CRYPTO_WEEKLY_NOW", (UPTO + timedelta(days=1, hours=6)).isoformat())
    return Warehouse(root)


def _written(wh: Warehouse, weeks: list[str]) -> dict[str, str]:
    """sha256 of every weekly partition and every report.md of ``weeks``."""
    out = {}
    for name, table in TABLES.items():
        if table.partition_by == "week":
            for week in weeks:
                if wh.has_partition(table, week):
                    out[f"{name}/{week}"] = sha256_file(wh.partition_path(table, week))
    for week in weeks:
        out[f"report/{week}"] = hashlib.sha256((wh.reports_dir / week / "report.md").read_bytes()).hexdigest()
    return out


@pytest.mark.slow
def test_a_range_of_weeks_is_one_run_and_a_failed_week_is_named_and_alone(
    lake, tmp_path, monkeypatch
) -> None:
    """weekly_job over a range of weeks is one run that writes, for each week, the partitions and report a run
    of that week alone writes, with that week's own metadata. A range with a week that cannot be computed (its
    close day is missing from coin_daily) fails naming that week only; ``backfill`` then runs the weeks one by
    one, so the others are published and each week has its own status."""
    import pipelines.runner as runner

    weeks = WEEKS[3:6]
    good, broken = weeks[:-1], weeks[-1]  # the last: no earlier week reads its days
    ranged = _dagster_lake(lake, tmp_path, "ranged", monkeypatch)
    # the range's reports and claim check built by two processes, a week each (pipelines/week_processes.py)
    monkeypatch.setenv("CRYPTO_WEEKLY_WEEK_PROCESSES", "2")
    with run_instance() as instance:
        run_weeks(good[0], good[-1], instance)
        assert len(instance.get_runs()) == 1
        reports = instance.fetch_materializations(dg.AssetKey("weekly_report"), limit=10).records
        titles = {r.partition_key: r.asset_materialization.metadata["title"].value for r in reports}
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("weekly_report"), "report_claims_match_tables"), limit=5
        )
    assert sorted(titles) == good and len(set(titles.values())) == len(good), titles  # each week's own
    # one evaluation over the run's weeks (Dagster also records a planned entry per week of the range)
    assert [c.status.value for c in checks if c.partition is None] == ["SUCCEEDED"]

    monkeypatch.delenv("CRYPTO_WEEKLY_WEEK_PROCESSES")
    alone = _dagster_lake(lake, tmp_path, "alone", monkeypatch)
    alone.partition_path(COIN_DAILY, week_close_days(broken)[1].isoformat()).unlink()
    monkeypatch.setattr(runner, "run_days", lambda *a, **k: "daily-run")  # the lake already holds the days
    with run_instance() as instance:
        with pytest.raises(RunFailed) as err:
            run_weeks(weeks[0], weeks[-1], instance)
        assert f"1 of 3 week(s) failed ({broken})" in str(err.value), err.value
        result = runner.backfill(weeks[0], weeks[-1], instance, first_day=weeks[0], echo=lambda _: None)
        published = {
            r.partition_key
            for r in instance.fetch_materializations(dg.AssetKey("weekly_report"), limit=10).records
        }
    assert list(result.weeks_failed) == [broken] and result.weeks_run == good
    assert published == set(good) and not (alone.reports_dir / broken).exists()
    # the weeks run one by one wrote the bytes the range wrote
    expected = _written(alone, good)
    assert _written(ranged, good) == expected and len(expected) > len(good) * 10


def test_a_long_worst_week_streak_reads_a_window_and_counts_as_the_whole_history(tmp_path) -> None:
    """Crypto worst every week of the world (its market caps fall 3% a day): each week alone reads the levels of
    a window of weeks before it, doubled while the streak reaches the window's start, and gets the streak, rank
    and row the whole history gives; a range in one pass gets the same. The first window alone falls short of
    the longest streaks, so the doubling is what makes them whole."""
    from assets.weekly import macro
    from pipelines.metrics.cross_asset import weekly_crypto_rank
    from tests._weekly_world import FIRST_DAY, falling_lake

    weeks = [(FIRST_DAY + timedelta(days=7 * i)).isoformat() for i in range(1, 15)]  # the first has no open
    # no S&P 500 close on the Thursday and Friday before the 6th week: its open is Wednesday's, four days before
    # the Sunday it is taken for, the oldest a level may be (a window a day shorter would leave it out)
    sunday = date.fromisoformat(weeks[5]) - timedelta(days=1)
    holiday = [sunday - timedelta(days=3), sunday - timedelta(days=2)]

    def closed(df: pl.DataFrame) -> pl.DataFrame:
        return df.filter(~((pl.col("series_id") == "SP500") & pl.col("date").is_in(holiday)))

    wh = falling_lake(tmp_path, closed)
    whole = {
        w: weekly_crypto_rank(macro.cross_asset_levels(wh, w, FIRST_DAY - timedelta(days=30)), w)
        for w in weeks
    }
    assert [whole[w]["worst_streak_weeks"].item() for w in weeks] == list(range(1, 15))
    for w in weeks:
        assert macro.compute_crypto_rank(wh, w).df.equals(whole[w]), w
    one_pass = compute_weeks(wh, weeks, {"weekly_crypto_rank": macro.compute_crypto_rank})[
        "weekly_crypto_rank"
    ]
    assert all(one_pass[w].df.equals(whole[w]) for w in weeks)  # type: ignore[union-attr]
    last, first = weeks[-1], macro.STREAK_FIRST_WEEKS
    short = weekly_crypto_rank(
        macro.cross_asset_levels(wh, last, macro.levels_since(date.fromisoformat(last), first)), last
    )
    assert short["worst_streak_weeks"].item() == first + 1 < 14  # cut by the first window's start
    # the cross-asset table of a week alone reads its own window and gives the whole history's rows
    for w in weeks:
        full = macro.weekly_cross_asset(macro.cross_asset_levels(wh, w, FIRST_DAY - timedelta(days=30)), w)
        assert macro.compute_cross_asset(wh, w).df.equals(full), w
    sp500 = macro.weekly_cross_asset(macro.cross_asset_levels(wh, weeks[5], FIRST_DAY), weeks[5]).filter(
        pl.col("asset") == "sp500"
    )
    assert sp500["open_date"].item() == sunday - timedelta(days=4) and sp500["return_pct"].item() is not None
