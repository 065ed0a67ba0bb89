"""The benchmark's daily floor (``bench.steps.daily_steps`` / ``run_daily``) is the daily job's own asset graph,
run as plain code: every asset of ``daily_job`` is a step, each after the assets it reads, and the floor writes the
same lake as the Dagster run of the same days."""

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from bench.steps import DAILY_JOB, DailyRange, daily_steps, run_daily, step_name
from pipelines.calendar import DAILY


def test_every_asset_of_the_daily_job_is_a_floor_step_after_its_upstream_assets() -> None:
    from pipelines.definitions import make_definitions

    defs = make_definitions()
    names = [step_name(a) for a in daily_steps(defs)]
    # what daily_job is defined to hold (pipelines/definitions.py): the code location's groups raw and clean
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    daily = {k for k, s in specs.items() if s.group_name in ("raw", "clean")}
    assert len(names) == len(set(names))
    missing, extra = daily - set(names), set(names) - daily
    assert not missing and not extra, (
        f"daily assets without a floor step: {missing}; steps not daily: {extra}"
    )
    order = {n: i for i, n in enumerate(names)}
    late = [
        (n, d.asset_key.to_user_string())
        for n in names
        for d in specs[n].deps
        if d.asset_key.to_user_string() in order and order[d.asset_key.to_user_string()] > order[n]
    ]
    assert not late, f"steps run before an asset they read: {late}"


class Scale(dg.Config):  # module level, and no postponed annotations here: Dagster resolves the config type
    factor: int = 1


def test_an_asset_added_to_the_daily_job_is_run_in_order_with_its_range_and_config() -> None:
    seen: list[tuple[str, object, int]] = []

    @dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
    def upstream(context: dg.AssetExecutionContext, config: Scale) -> dg.MaterializeResult:
        seen.append(("upstream", context.partition_key_range, config.factor))
        return dg.MaterializeResult()

    @dg.asset(deps=[upstream])
    def downstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        seen.append(("downstream", None, 0))
        return dg.MaterializeResult()

    @dg.asset
    def weekly_only() -> None:
        seen.append(("weekly_only", None, 0))

    defs = dg.Definitions(
        assets=[downstream, weekly_only, upstream],
        jobs=[dg.define_asset_job(DAILY_JOB, selection=["upstream", "downstream"])],
    )
    days = DailyRange(date(2025, 11, 3), date(2025, 11, 9), {"ops": {"upstream": {"config": {"factor": 3}}}})
    assert run_daily(defs, days) == ["upstream", "downstream"]
    assert seen == [
        ("upstream", dg.PartitionKeyRange("2025-11-03", "2025-11-09"), 3),
        ("downstream", None, 0),
    ]


def test_the_floor_writes_the_lake_of_the_dagster_daily_run(
    week_from_november, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's run of week 2025-11-17 (tests/conftest.py: ``daily_job`` over 2025-11-01..2025-11-23 as one
    run, then the week; its lake hashed right after) against the floor over the same days, from the same emulator
    and clock, into another warehouse: the same daily lake files, byte for byte, and the same assets."""
    from bench.phases import floor_daily
    from pipelines.definitions import make_definitions
    from tests._reliability import tree_hashes
    from tests.conftest import point_env_at

    wh = point_env_at(monkeypatch, week_from_november.emulator, tmp_path / "warehouse")
    steps = floor_daily(wh, date(2025, 11, 1), date(2025, 11, 23), perps=None)

    records = week_from_november.instance.get_records_for_run(
        run_id=week_from_november.run.daily_run_id,
        of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
        limit=100_000,
    ).records
    materialized = {r.event_log_entry.asset_materialization.asset_key.to_user_string() for r in records}
    assert sorted(steps) == sorted(materialized)

    weekly = {
        k.to_user_string()
        for k in make_definitions().resolve_job_def("weekly_job").asset_layer.selected_asset_keys
    }
    dagster_lake = {
        k: v
        for k, v in week_from_november.hashes.items()
        if k.startswith("lake/") and k.split("/")[1] not in weekly
    }
    floor_lake = tree_hashes(wh, "lake")
    tables = {k.split("/")[1] for k in floor_lake}
    assert {"coin_daily", "coin_registry", "funding_rates", "open_interest", "macro_observations"} <= tables
    assert len([k for k in floor_lake if k.startswith("lake/coin_daily/")]) == 23
    assert sorted(floor_lake) == sorted(dagster_lake)
    differ = [k for k in floor_lake if floor_lake[k] != dagster_lake[k]]
    assert not differ, differ[:10]
