"""Weeks computed in one pass over a lake read once equal each week computed alone, byte for byte (the small
synthetic lake here; every week of the emulator's history in tests/test_every_week.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest

from assets.weekly.shape import Computed
from assets.weekly.weeks import WEEKLY_COMPUTES, compute_weeks
from pipelines.lake_snapshot import LakeSnapshot
from pipelines.schemas import TABLES
from tests import _one_pass
from tests._week_pipeline import COMPUTES
from tests._weekly_world import build, write_lake

UPTO = datetime(2025, 5, 12, tzinfo=UTC)
# the first two weeks lack days of history some tables need (failures), the others compute
WEEKS = ["2025-03-31", "2025-04-07", "2025-04-14", "2025-04-21", "2025-04-28", "2025-05-05"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return write_lake(tmp_path_factory.mktemp("one-pass"), build(), UPTO)


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
