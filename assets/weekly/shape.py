"""Shared plumbing for the weekly metric assets: point-in-time reads of the lake, clear failures, and a
factory that turns (table, compute function, checks) into a thin weekly asset with metadata and checks, whose
partitions ``LakeIOManager`` (``assets/_lake_io.py``) writes.

Every read goes through ``Warehouse.query`` with parameterized ``date <= ?`` (and, for timestamped tables,
``ts <= ?``) bounds, so an asset never sees data from after its week's close.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import dagster as dg
import polars as pl

from assets._lake_io import LakePartitions, lake_asset_options
from pipelines.calendar import WEEKLY
from pipelines.clean.coingecko import registry_snapshots, snapshot_day
from pipelines.lake_snapshot import LakeSnapshot, reads_for
from pipelines.metrics.market import CARRY_DAYS, total_market_cap_daily
from pipelines.metrics.pit import WeekWindow, week_window
from pipelines.metrics.universe import eligible, eligible_ids
from pipelines.resources import WarehouseResource
from pipelines.schemas import COIN_DAILY, COIN_REGISTRY, TABLES
from pipelines.warehouse import Warehouse
from pipelines.week_processes import map_weeks

KINDS = {"python", "parquet", "duckdb"}
T = TypeVar("T")


def days_before(weeks: int) -> dg.TimeWindowPartitionMapping:
    """Lineage of a weekly partition on the daily partitions of its own week and the ``weeks`` weeks before
    (``WEEK_FROM_DAYS`` is ``days_before(1)``)."""
    return dg.TimeWindowPartitionMapping(start_offset=-weeks, allow_nonexistent_upstream_partitions=True)


def require_table(wh: Warehouse, name: str, week: str) -> None:
    """A clear failure when a clean table the week needs is not declared or has no partition in the lake."""
    table = TABLES.get(name)
    if table is None or not wh.has_files(table):
        raise dg.Failure(
            f"week {week}: the clean table {name!r} is not in the lake (lake/{name}/ has no partition); "
            f"materialize {name} for the week's days first"
        )


def has_table(wh: Warehouse, name: str) -> bool:
    table = TABLES.get(name)
    return table is not None and wh.has_files(table)


def require_days(wh: Warehouse, name: str, days: Sequence[date], week: str) -> None:
    """A clear failure naming every missing daily partition of ``name`` among ``days``."""
    require_table(wh, name, week)
    table = TABLES[name]
    missing = [d.isoformat() for d in days if not wh.has_partition(table, d.isoformat())]
    if missing:
        raise dg.Failure(
            f"week {week}: {name} has no partition for {', '.join(missing)}; materialize those days first"
        )


def registry_as_of(wh: Warehouse, day: date) -> pl.DataFrame:
    """The coin registry snapshot to take categories from for a week closing on ``day``: the last snapshot taken
    on or before that day, else (a backfill of weeks before the first snapshot) the earliest one. Later snapshots
    never change an earlier week. Categories are not point in time beyond that (see METHODOLOGY.md)."""
    snaps = registry_snapshots(wh)
    if not snaps:
        raise dg.Failure(f"no {COIN_REGISTRY.name} snapshot in the lake yet: materialize coin_registry first")
    known = [s for s in snaps if snapshot_day(s) <= day]
    return wh.read_partition(COIN_REGISTRY, known[-1] if known else snaps[0])


def eligible_coin_ids(wh: Warehouse, day: date) -> tuple[list[str], pl.DataFrame]:
    """(eligible coin ids, registry used) as of the week's close day."""
    registry = registry_as_of(wh, day)
    return eligible_ids(eligible(registry)), registry


def coin_daily_between(wh: Warehouse, first: date | None, last: date, columns: str = "*") -> pl.DataFrame:
    """coin_daily rows dated ``first..last`` (``first`` None: all history), sorted by date and coin."""
    sql = f"SELECT {columns} FROM {COIN_DAILY.name} WHERE date <= ?"
    params: list[Any] = [last]
    within = None
    if first is not None:
        sql += " AND date >= ?"
        params.append(first)
        # only those days' partitions are read: a week's few days cost the same over a history of years
        within = {COIN_DAILY.name: (first, last)}
    return wh.query(sql + " ORDER BY date, coin_id", params, within=within)


def history_through(
    wh: Warehouse,
    key: str,
    last: Any,
    build: Callable[[Any], pl.DataFrame],
    keep: Callable[[pl.DataFrame, Any], pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """``build(last)``: a frame over the whole history up to ``last`` (a day, or a bound ``keep`` understands)
    whose rows up to any bound never depend on later rows: a backwards-only derivation, such as
    ``total_market_cap_daily``, or a sorted read. On the warehouse (one week) it is built for ``last``. On a
    snapshot (a range of weeks) it is built once for all of the snapshot's history (``build(None)``) and each
    week keeps its rows through ``last`` (``keep``; by default the rows whose ``date`` is on or before it): the
    same rows, in the same order, as building it for that week alone. ``tests/test_weeks_in_one_pass.py`` and the
    every-week test compare every week's bytes both ways."""
    if isinstance(wh, LakeSnapshot):
        whole = wh.derived(key, lambda: build(None))
        if keep is not None:
            return keep(whole, last)
        return whole if last is None else whole.filter(pl.col("date") <= last)
    return build(last)


def shared_by_range(wh: Warehouse, key: str, build: Callable[[], T]) -> T | None:
    """``build()`` once for a range of weeks (on a snapshot: a derivation over the whole history its weeks
    share); None for a week alone, which derives it from its own frames."""
    return wh.derived(key, build) if isinstance(wh, LakeSnapshot) else None


def total_market_cap_through(wh: Warehouse, last: date) -> pl.DataFrame:
    """``total_market_cap_daily`` over every coin of ``coin_daily`` dated through ``last`` (it only carries
    readings forward, so a day's total never depends on later rows)."""
    return history_through(
        wh,
        "total_market_cap_daily",
        last,
        lambda through: total_market_cap_daily(
            coin_daily_between(wh, None, through or date.max, "date, coin_id, market_cap_usd")
        ),
    )


def total_market_cap_days(wh: Warehouse, first: date, last: date) -> pl.DataFrame:
    """``total_market_cap_daily`` for the days ``first..last``. A day's total reads the rows of that day and of the
    ``CARRY_DAYS`` before it only (a coin's last reading is carried that far), so one week reads those days of
    ``coin_daily``, not its history; a range of weeks keeps the days of the whole history it already derived
    (``total_market_cap_through``). The same rows either way (``tests/test_weeks_in_one_pass.py``)."""
    if isinstance(wh, LakeSnapshot):
        daily = total_market_cap_through(wh, last)
    else:
        rows = coin_daily_between(
            wh, first - timedelta(days=CARRY_DAYS), last, "date, coin_id, market_cap_usd"
        )
        daily = total_market_cap_daily(rows)
    return daily.filter(pl.col("date").is_between(first, last))


def require_open_close(wh: Warehouse, week: str) -> WeekWindow:
    w = week_window(week)
    require_days(wh, COIN_DAILY.name, [w.open_day, w.close_day], week)
    return w


@dataclass
class Computed:
    """What an asset body computed: the frame to write, extra metadata, and the problems found per check
    (an empty list means the check passed)."""

    df: pl.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    check_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    blocking: bool = True


# What a compute raises for a week it cannot compute (a clean table or day missing, a frame that does not conform):
# that week's failure; anything else stops the step.
WEEK_FAILURES = (dg.Failure, ValueError)
Outcome = Computed | dg.Failure | ValueError  # a week computed, or the failure it raised

# Weekly tables: what a step computing a range of weeks never reads from its snapshot of the lake (another step
# of the run may be writing them); no weekly compute reads one.
WEEKLY_TABLE_NAMES = frozenset(name for name, t in TABLES.items() if t.partition_by == "week")


def weeks_failed(what: str, failed: dict[str, BaseException], weeks: Sequence[str]) -> dg.Failure:
    """The failure of a step that computed a range of weeks and could not compute some of them: names each one.
    Raised once the other weeks are written (``LakePartitions.then_fail``). Dagster records a single-run range as one outcome (dagster-io/dagster#17836), so the step fails as a whole
    although its other weeks were written; ``crypto-weekly backfill`` then runs the range week by week, so each
    week gets its own status in the UI."""
    lines = [
        f"- {w}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
        for w, e in sorted(failed.items())
    ]
    return dg.Failure(
        description=(
            f"{what}: {len(failed)} of {len(weeks)} week(s) failed ({', '.join(sorted(failed))}); the other "
            "weeks were written. Run the failed weeks alone to see each one's failure in full.\n"
            + "\n".join(lines[:30])
        ),
        metadata={"weeks_failed": ", ".join(sorted(failed)), "weeks": len(weeks)},
    )


def compute_run(
    weeks: list[str], compute: Callable[[Warehouse, str], Computed], root: str
) -> dict[str, Outcome]:
    """Each of ``weeks`` computed by ``compute`` over one read of the lake at ``root`` (``reads_for``, whose
    snapshot of a range the process keeps for the range's next step): its ``Computed``, or the failure the week
    raised (``WEEK_FAILURES``). A weekly asset's step runs it, or a process
    of ``map_weeks`` for a run of a long range's weeks (``compute`` a module-level function, so that it pickles)."""
    out: dict[str, Outcome] = {}
    with reads_for(Warehouse(root), weeks, written=WEEKLY_TABLE_NAMES, keep=True) as source:
        for week in weeks:
            out[week] = outcome(compute, source, week)
    return out


def outcome(compute: Callable[[Warehouse, str], Computed], source: Warehouse, week: str) -> Outcome:
    """What ``compute`` gives for ``week`` read from ``source``: its ``Computed``, or the failure it raised for
    that week (``WEEK_FAILURES``; any other exception is a fault of the code and propagates)."""
    try:
        return compute(source, week)
    except WEEK_FAILURES as exc:
        return exc


def weekly_table_asset(
    table,
    *,
    description: str,
    deps: Sequence[dg.AssetDep | str],
    compute: Callable[[Warehouse, str], Computed],
    checks: Sequence[Check] = (),
) -> dg.AssetsDefinition:
    """A weekly-partitioned asset writing ``table`` from ``compute(wh, week)``, for one week or, in one run, a
    range of weeks (a backfill): then the lake is read once per process (``compute_run``; a long range's runs of
    weeks are computed by several processes, ``pipelines.week_processes``) and each week is computed from memory
    by the same function, with the same bytes as alone (``tests/test_weeks_in_one_pass.py``). The asset
    returns the weeks' frames and ``LakeIOManager`` writes them; each week's metadata is its own partition's (the
    compute's metadata and check findings from here, the written file's from the IO manager), and each check's
    result names the weeks with problems. A week of a range that cannot be computed is not written, and the step
    fails naming it once the others are (``weeks_failed``)."""
    specs = [
        dg.AssetCheckSpec(
            c.name,
            asset=table.name,
            blocking=c.blocking,
            description=c.description,
        )
        for c in checks
    ]

    @dg.asset(
        name=table.name,
        pool=f"asset_{table.name}",
        group_name="weekly",
        kinds=KINDS,
        partitions_def=WEEKLY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=list(deps),
        description=description,
        check_specs=specs,
        **lake_asset_options(table),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        weeks = sorted(context.partition_keys)
        ranged = len(weeks) > 1
        problems: dict[str, list[str]] = {c.name: [] for c in checks}
        check_md: dict[str, dict[str, Any]] = {c.name: {} for c in checks}
        failed: dict[str, BaseException] = {}
        frames: dict[str, pl.DataFrame] = {}
        # a long range: runs of weeks computed in parallel processes (pipelines/week_processes.py)
        outcomes = map_weeks(compute_run, weeks, compute, warehouse.root)
        for week in weeks:
            out = outcomes[week]
            if isinstance(out, BaseException):
                if not ranged:
                    raise out
                failed[week] = out
                continue
            frames[week] = out.df
            for c in checks:
                found = out.problems.get(c.name, [])
                problems[c.name] += [f"{week}: {p}" for p in found] if ranged else found
                check_md[c.name] = out.check_metadata.get(c.name, {}) if not ranged else {}
            checks_md = {
                f"check_{c.name}": "; ".join(out.problems.get(c.name, [])) or "passed" for c in checks
            }
            context.add_asset_metadata({**out.metadata, **checks_md}, partition_key=week)
        results = [
            dg.AssetCheckResult(
                check_name=c.name,
                passed=not problems[c.name],
                severity=dg.AssetCheckSeverity.ERROR if c.blocking else dg.AssetCheckSeverity.WARN,
                metadata={
                    "problems": "; ".join(problems[c.name]) or "none",
                    **({"weeks": f"{weeks[0]}..{weeks[-1]} ({len(weeks)})"} if ranged else {}),
                    **check_md[c.name],
                },
            )
            for c in checks
        ]
        return dg.MaterializeResult(
            value=LakePartitions(
                frames, then_fail=weeks_failed(table.name, failed, weeks) if failed else None
            ),
            check_results=results,
        )

    return _asset


def out_of(values: pl.Series, lo: float, hi: float, label: str, closed: str = "both") -> list[str]:
    """A problem per value of ``values`` (nulls ignored) outside [lo, hi] (``closed='none'``: (lo, hi))."""
    v = values.drop_nulls()
    bad = v.filter(~v.is_between(lo, hi, closed=closed))  # type: ignore[arg-type]
    return [
        f"{label} {x:.6g} outside {'[' if closed == 'both' else '('}{lo}, {hi}{']' if closed == 'both' else ')'}"
        for x in bad.to_list()
    ]


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
