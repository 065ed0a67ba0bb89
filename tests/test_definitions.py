"""The code location loads: every asset and check resolves, every resource is bound, the jobs exist."""

from __future__ import annotations

import dagster as dg

from pipelines.calendar import DAILY, WEEKLY, latest_complete_week, week_bounds, week_close_days
from pipelines.definitions import make_definitions
from tests._weekly_world import CLEAN_TABLES


def test_definitions_load_and_resolve() -> None:
    defs = make_definitions()
    repo = defs.get_repository_def()  # raises on an unbound resource or a missing dependency
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {
        "raw_coingecko_markets",
        "coin_registry",
        "raw_coingecko_market_charts",
        "coin_daily",
        "weekly_market_summary",
        "weekly_movers",
        "weekly_report",
    } <= keys
    for name in ("daily_job", "weekly_job"):
        assert defs.resolve_job_def(name) is not None
    assert set(defs.resources) >= {"warehouse", "coingecko"}


def test_lineage_from_report_to_raw_pulls() -> None:
    graph = make_definitions().get_repository_def().asset_graph
    seen, frontier = set(), {dg.AssetKey("weekly_report")}
    while frontier:
        key = frontier.pop()
        seen.add(key.to_user_string())
        frontier |= set(graph.get(key).parent_keys)
    assert {"raw_coingecko_markets", "raw_coingecko_market_charts"} <= seen


def test_every_asset_has_description_group_and_kinds() -> None:
    graph = make_definitions().get_repository_def().asset_graph
    # clean tables the weekly assets read that are defined on another branch appear as external stubs until then
    pending = {t.name for t in CLEAN_TABLES}
    stubs = {k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable}
    assert stubs <= pending
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.to_user_string() in stubs:
            continue
        assert node.description, key
        assert node.group_name in {"raw", "clean", "weekly", "report"}, key
        assert node.kinds, key


def test_partitions_are_monday_weeks_and_utc_days() -> None:
    assert DAILY.get_first_partition_key() == "2025-01-01"
    assert WEEKLY.get_first_partition_key() == "2025-03-31"
    window = WEEKLY.time_window_for_partition_key("2025-11-17")
    assert window.start.isoformat() == "2025-11-17T00:00:00+00:00"
    assert window.end.isoformat() == "2025-11-24T00:00:00+00:00"
    assert [str(d) for d in week_bounds("2025-11-17")] == ["2025-11-17", "2025-11-24"]
    # the week opens at the close of the Sunday before and closes at the close of its own Sunday
    assert [str(d) for d in week_close_days("2025-11-17")] == ["2025-11-16", "2025-11-23"]


def test_latest_complete_week_only_counts_finished_weeks() -> None:
    from datetime import datetime, timezone

    assert latest_complete_week(datetime(2025, 11, 24, 0, 1, tzinfo=timezone.utc)) == "2025-11-17"
    assert latest_complete_week(datetime(2025, 11, 23, 23, 59, tzinfo=timezone.utc)) == "2025-11-10"


def test_table_registry_is_declared_in_one_place() -> None:
    """Which tables DuckDB can see does not depend on what was imported: ``pipelines.schemas`` alone declares them
    all, and every ``Table`` any loaded module holds is the registry's own object."""
    import subprocess
    import sys

    from pipelines.schemas import TABLES, Table

    alone = subprocess.run(
        [sys.executable, "-c", "from pipelines.schemas import TABLES; print(' '.join(sorted(TABLES)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    import pipelines.definitions  # noqa: F401 (every asset module, loaded)

    assert alone == sorted(TABLES)
    held = {
        (mod_name, attr): value
        for mod_name, mod in list(sys.modules.items())
        if mod_name.startswith(("pipelines", "assets"))
        for attr, value in vars(mod).items()
        if isinstance(value, Table)
    }
    assert held, "no module holds a table: the check would be empty"
    assert {where: TABLES.get(t.name) is t for where, t in held.items()} == {where: True for where in held}


def test_a_process_that_loaded_the_code_location_exits_quietly() -> None:
    """The objects frozen out of the garbage collector at the definitions' import are given back at exit: a process
    that loaded the code location and used DuckDB ends without DuckDB's bindings reporting its objects as leaks."""
    import subprocess
    import sys

    code = (
        "import pipelines.definitions, duckdb; con = duckdb.connect(); con.sql('SELECT 1').fetchall(); "
        "print('ran')"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "ran"
    assert "leaked" not in done.stderr, done.stderr[:500]
