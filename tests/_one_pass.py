"""The weeks computed in one pass (``assets.weekly.weeks.compute_weeks``) against each week computed alone by the
same compute functions on the warehouse: what differs, per table and week. Used by the tests and the benchmark."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from assets.weekly.shape import Computed, outcome
from assets.weekly.weeks import WEEKLY_COMPUTES, Outcome
from pipelines.schemas import TABLES
from pipelines.warehouse import Warehouse, sha256_file


def each_week_alone(
    wh: Warehouse, weeks: list[str], computes: Mapping[str, Callable[..., Computed]] = WEEKLY_COMPUTES
) -> dict[str, dict[str, Outcome]]:
    """``{table: {week: outcome}}`` computed week by week on the warehouse, as each asset computes its partition."""
    out: dict[str, dict[str, Outcome]] = {name: {} for name in computes}
    for week in sorted(weeks):
        for name, compute in computes.items():
            out[name][week] = outcome(compute, wh, week)
    return out


def written_sha256(scratch: Warehouse, table: str, week: str, df) -> str:
    """The sha256 of the Parquet file ``Warehouse.write_partition`` writes for ``df``."""
    return scratch.write_partition(TABLES[table], week, df).sha256


def _describe(outcome: Outcome, scratch: Warehouse, table: str, week: str) -> tuple:
    if isinstance(outcome, Computed):
        return (
            "computed",
            written_sha256(scratch, table, week, outcome.df),
            repr(outcome.metadata),
            repr(outcome.problems),
            repr(outcome.check_metadata),
        )
    return (type(outcome).__name__, str(getattr(outcome, "description", None) or outcome))


def differences(alone: dict[str, dict[str, Outcome]], one_pass: dict[str, dict[str, Outcome]]) -> list[str]:
    """Every (table, week) whose outcomes differ: the written bytes, metadata, problems or failure."""
    diffs = []
    if {t: sorted(w) for t, w in alone.items()} != {t: sorted(w) for t, w in one_pass.items()}:
        return ["the tables or weeks differ"]
    with tempfile.TemporaryDirectory(prefix="one-pass-") as tmp:
        a, b = Warehouse(Path(tmp) / "alone"), Warehouse(Path(tmp) / "one-pass")
        for table, weeks in alone.items():
            for week, outcome in weeks.items():
                x, y = _describe(outcome, a, table, week), _describe(one_pass[table][week], b, table, week)
                if x != y:
                    diffs.append(f"{table}[{week}]: alone {x}, in one pass {y}")
    return diffs


def lake_differences(wh: Warehouse, one_pass: dict[str, dict[str, Outcome]]) -> list[str]:
    """Every (table, week) whose one-pass frame is not byte for byte the partition already in the lake."""
    diffs = []
    with tempfile.TemporaryDirectory(prefix="one-pass-") as tmp:
        scratch = Warehouse(Path(tmp))
        for table, weeks in one_pass.items():
            for week, outcome in weeks.items():
                if not isinstance(outcome, Computed):
                    diffs.append(f"{table}[{week}]: failed in one pass: {outcome}")
                elif not wh.has_partition(TABLES[table], week):
                    diffs.append(f"{table}[{week}]: not in the lake")
                elif written_sha256(scratch, table, week, outcome.df) != sha256_file(
                    wh.partition_path(TABLES[table], week)
                ):
                    diffs.append(f"{table}[{week}]: differs from the lake's partition")
    return diffs


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0
