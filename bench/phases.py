"""Each benchmark phase, run in its own process so peaks of memory do not mix:

    python -m bench.phases <phase> '<json kwargs>'

prints ``BENCH_RESULT {json}`` as its last line (timings in seconds, ``peak_rss_mib`` of this process).
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import time
from contextlib import nullcontext
from datetime import date, timedelta
from typing import Any

T_START = time.perf_counter()

from bench.common import (  # noqa: E402
    Timer,
    daily_range_for,
    emulator,
    peak_rss_mib,
    project_instance,
    temp_env,
    weekly_keys,
)

# Steps measured in the universe figures only (all N coins, not a weekly table).
QUADRATIC_ONLY = {"pairwise_corr, all N coins"}
LOG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# ---- the two ways to run the pipeline -------------------------------------------------------------------------
def make_defs():
    """The project's Definitions, built now from the environment (as the CLI builds them)."""
    from pipelines.definitions import make_definitions

    return make_definitions()


# The backfill and new-week phases run the whole pipeline (every raw, clean and weekly asset, the report and the
# checks); the history phase has a synthetic coin_daily only, so it runs the tables built from it (and the report).
MARKET_WEEKLY = (
    "weekly_market_summary",
    "weekly_movers",
    "weekly_universe",
    "weekly_total_market_cap",
    "weekly_mcap_crossings",
    "weekly_index_returns",
    "weekly_correlation_buckets",
    "weekly_report",
)
DERIVATIVE_PULLS = (
    "raw_binance_funding",
    "raw_binance_futures_stats",
    "raw_binance_klines",
    "raw_bybit_derivatives",
    "raw_okx_derivatives",
)
# Perpetuals followed (the resource default is 40). The pulls phase cuts it, as it cuts the coins.
DEFAULT_PERPS = 40


def perps_config(perps: int | None) -> dict:
    """The derivative pulls' run config following ``perps`` perpetuals (None: their default, none given)."""
    return {"ops": {a: {"config": {"top_n": perps}} for a in DERIVATIVE_PULLS}} if perps is not None else {}


def merge_config(*configs: dict | None) -> dict:
    out: dict = {"ops": {}}
    for c in configs:
        for k, v in (c or {}).items():
            if k == "ops":
                out["ops"].update(v)
            else:
                out[k] = v
    return out


def daily_config(perps: int | None, run_config: dict | None) -> dict:
    """The daily assets' run config, the same for the Dagster run and the floor: ``perps`` perpetuals, then
    ``run_config``."""
    return merge_config(perps_config(perps), run_config)


def raw_pulls(defs) -> list[str]:
    """The assets that make requests (group ``raw``) and the registry the venues' symbols are chosen from."""
    return sorted(
        {s.key.to_user_string() for s in defs.resolve_all_asset_specs() if s.group_name == "raw"}
        | {"coin_registry"}
    )


def dagster_daily(
    defs,
    instance,
    first,
    last,
    run_config: dict | None = None,
    perps: int = DEFAULT_PERPS,
    assets: list[str] | None = None,
    planned_subset: bool = True,
) -> None:
    """``daily_job`` over ``first..last`` as one run, as the project runs it (``pipelines.runner.run_days``): a
    range records one planned event per asset and stores its materializations in batches
    (``range_run_environment``; ``planned_subset=False``: neither, one planned event per asset and day and one write
    per event, Dagster's defaults, for the event-cost phase)."""
    from pipelines.calendar import RANGE_END_TAG, RANGE_START_TAG
    from pipelines.runner import range_run_environment, start_parts_process

    tags = {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}
    with range_run_environment(tags) if planned_subset else nullcontext():
        start_parts_process("daily_job", tags)
        res = defs.resolve_job_def("daily_job").execute_in_process(
            asset_selection=[dg_key(a) for a in assets] if assets else None,
            instance=instance,
            tags=tags,
            run_config=merge_config(LOG, daily_config(perps, run_config)),
            raise_on_error=True,
        )
    assert res.success


def dagster_weeks(defs, instance, weeks: list[str], selection: tuple[str, ...] | None = None) -> None:
    """``weekly_job`` for ``weeks`` (consecutive) as the project runs them: one week alone, many as one run over
    their range (``pipelines.runner.run_weeks``)."""
    from pipelines.calendar import RANGE_END_TAG, RANGE_START_TAG
    from pipelines.runner import range_run_environment

    job = defs.resolve_job_def("weekly_job")
    one = {"partition_key": weeks[0]} if len(weeks) == 1 else {}
    ranged = {} if one else {"tags": {RANGE_START_TAG: weeks[0], RANGE_END_TAG: weeks[-1]}}
    with range_run_environment(ranged.get("tags", {})):
        assert job.execute_in_process(
            asset_selection=[dg_key(a) for a in selection] if selection else None,
            instance=instance,
            run_config=LOG,
            raise_on_error=True,
            **one,
            **ranged,
        ).success


def dg_key(name: str):
    import dagster as dg

    return dg.AssetKey(name)


def floor_daily(
    wh_dir,
    first,
    last,
    top_n: int | None = None,
    timer: Timer | None = None,
    perps: int | None = DEFAULT_PERPS,
    run_config: dict | None = None,
) -> list[str]:
    """The floor of ``daily_job`` over ``first..last`` into the warehouse ``wh_dir``: every asset of the job, in
    dependency order, its body invoked directly (``bench.steps.run_daily``) with the resources of the project's
    Definitions (built now, from the environment) and the assets' run config ``dagster_daily`` gives the job.
    ``top_n``: coins of the registry (None: the resource's, ``COINGECKO_TOP_N``); ``perps``: perpetuals followed
    (None: the assets' default). Returns the steps run."""
    from bench.steps import DailyRange, run_daily
    from pipelines.runner import patched_environ

    env = {"WAREHOUSE_DIR": str(wh_dir)} | ({"COINGECKO_TOP_N": str(top_n)} if top_n is not None else {})
    with patched_environ(env):  # the resources' dg.EnvVar fields are read when each asset is invoked
        defs = make_defs()
        days = DailyRange(first, last, daily_config(perps, run_config))
        return run_daily(defs, days, lambda name: timer.lap(f"floor:{name}") if timer else nullcontext())


# The weekly tables read from coin_daily and the registry only (the history phase's lake has nothing else).
MARKET_MODULES = ("assets.weekly.market", "assets.weekly.summary")


def floor_tables_run(weeks: list[str], root: str, tables: tuple[str, ...]) -> dict[str, int]:
    """Every table of ``tables`` for the consecutive ``weeks`` in one pass over the lake at ``root`` read once
    (``compute_weeks``), each partition written by ``Warehouse.write_partition`` as the lake IO manager writes an
    asset's partitions: ``{week: partitions written}``. Module level, so that a process of ``map_weeks`` runs it."""
    from assets.weekly.shape import Computed
    from assets.weekly.weeks import WEEKLY_COMPUTES, compute_weeks
    from pipelines.schemas import TABLES
    from pipelines.warehouse import Warehouse

    wh = Warehouse(root)
    written = dict.fromkeys(weeks, 0)
    for table, by_week in compute_weeks(wh, weeks, {t: WEEKLY_COMPUTES[t] for t in tables}).items():
        for week, out in by_week.items():
            if not isinstance(out, Computed):
                raise RuntimeError(f"floor: {table} for {week} failed: {out}")
            wh.write_partition(TABLES[table], week, out.df)
            written[week] += 1
    return written


def floor_reports_run(weeks: list[str], root: str) -> dict[str, bool]:
    """Each of ``weeks``' report as its asset builds it (render, claim check, publish), over one read of the lake
    as the report step reads it: ``{week: True}``. Module level, for ``map_weeks``."""
    from assets.report import build_report
    from pipelines.lake_snapshot import reads_for
    from pipelines.warehouse import Warehouse

    with reads_for(Warehouse(root), weeks, snapshot_from=1) as source:
        for week in weeks:
            build_report(source, week)
    return dict.fromkeys(weeks, True)


def floor_weeks(wh_dir, weeks: list[str], timer: Timer | None = None, market_only: bool = False) -> None:
    """The floor of ``weekly_job``: every weekly table for ``weeks`` (``compute_weeks``: the weekly assets' own
    compute functions, taken from the asset graph, a run of weeks in one pass over the lake read once by its
    process), each partition written as the lake IO manager writes it, then each week's report as its asset builds
    it. Both split the weeks between processes as the Dagster run's steps do (``pipelines.week_processes.map_weeks``: contiguous runs of
    weeks, one per process, the calling process building the last), so the floor has the same cores as the run
    and no Dagster: every table of a run of weeks in one process, one pass, with no step between tables."""
    from assets.weekly.weeks import WEEKLY_COMPUTES
    from pipelines.warehouse import Warehouse
    from pipelines.week_processes import map_weeks

    tables = tuple(t for t, f in WEEKLY_COMPUTES.items() if not market_only or f.__module__ in MARKET_MODULES)

    def lap(name: str):
        return timer.lap(f"floor:{name}") if timer else nullcontext()

    with lap("weekly tables"):
        map_weeks(floor_tables_run, weeks, str(wh_dir), tables)
        Warehouse(wh_dir).refresh_catalog()
    with lap("weekly_report"):
        map_weeks(floor_reports_run, weeks, str(wh_dir))


def set_floor_weeks(wh_dir, weeks: list[str], timer: Timer | None = None) -> None:
    """The set-based floor of ``weekly_job``: the clean tables read once into memory, every weekly table for every
    week of ``weeks`` in one vectorized pass (``bench.set_floor``: written for speed, not the project's code; each
    table checked equal to the project's, ``tests/test_set_floor.py``), each week's partition written as the lake
    IO manager writes it, then each week's report as ``floor_weeks`` builds it (the project's code: no set-based
    report is written)."""
    from bench.set_floor import by_week, compute_all, read_lake
    from pipelines.schemas import TABLES
    from pipelines.warehouse import Warehouse
    from pipelines.week_processes import map_weeks

    def lap(name: str):
        return timer.lap(f"set_floor:{name}") if timer else nullcontext()

    wh = Warehouse(wh_dir)
    with lap("read the clean tables"):
        lake = read_lake(wh_dir)
    with lap("weekly tables"):
        tables = compute_all(lake, weeks)
    with lap("write the weekly tables"):
        for name, frame in tables.items():
            wh.write_partitions(TABLES[name], by_week(frame, weeks))
        wh.refresh_catalog()
    with lap("weekly_report"):
        map_weeks(floor_reports_run, weeks, str(wh_dir))


# ---- phases ---------------------------------------------------------------------------------------------------
def backfill(
    mode: str,
    weeks: int | None = None,
    profile: bool = False,
    perps: int = DEFAULT_PERPS,
    history_days: int | None = None,
) -> dict:
    """Backfill the last ``weeks`` weekly partitions (None: all) and the days they read, from the emulator, following
    ``perps`` perpetuals (``history_days``: see ``daily_range_for``)."""
    t = Timer()
    with t.lap("import"):
        import dagster  # noqa: F401 (its import is timed)

        import pipelines.definitions  # noqa: F401
    keys = weekly_keys()
    keys = keys if weeks is None else keys[-weeks:]
    first, last = daily_range_for(keys, history_days)
    prof = cProfile.Profile() if profile else None
    with temp_env() as wh_dir, emulator():
        if mode == "dagster":
            with t.lap("defs"):
                defs = make_defs()
            with project_instance() as instance:
                if prof:
                    prof.enable()
                with t.lap("daily"):
                    dagster_daily(defs, instance, first, last, perps=perps)
                with t.lap("weekly"):
                    dagster_weeks(defs, instance, keys)
        else:
            if prof:
                prof.enable()
            with t.lap("daily"):
                floor_daily(wh_dir, first, last, timer=t, perps=perps)
            with t.lap("weekly"):
                if mode == "set_floor":
                    set_floor_weeks(wh_dir, keys, t)
                else:
                    floor_weeks(wh_dir, keys, t)
        if prof:
            prof.disable()
    out: dict[str, Any] = {
        "mode": mode,
        "weeks": len(keys),
        "days": (last - first).days + 1,
        "perps": perps,
        "first_week": keys[0],
        "last_week": keys[-1],
        "laps": t.laps,
        "compute": t.laps["daily"] + t.laps["weekly"],
    }
    if prof:
        out["profile"] = profile_text(prof)
    return out


def profile_text(prof: cProfile.Profile, n: int = 18) -> str:
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.sort_stats("tottime").print_stats(n)
    text = s.getvalue()
    return text[text.find("   ncalls") :].rstrip() if "   ncalls" in text else text


def new_week(mode: str) -> dict:
    """Steady state: the week before is in place; pull, clean and report one new week (the latest)."""
    t = Timer()

    keys = weekly_keys()
    prev, new = keys[-2], keys[-1]
    p_first, p_last = daily_range_for([prev])
    n_first, n_last = p_last + timedelta(days=1), daily_range_for([new])[1]
    force_registry = {
        "ops": {"raw_coingecko_markets": {"config": {"force": True}}}
    }  # a week later it is stale
    with temp_env() as wh_dir, emulator():
        if mode == "dagster":
            defs = make_defs()
            with project_instance() as instance:
                dagster_daily(defs, instance, p_first, p_last)
                dagster_weeks(defs, instance, [prev])
                with t.lap("daily"):
                    dagster_daily(defs, instance, n_first, n_last, force_registry)
                with t.lap("weekly"):
                    dagster_weeks(defs, instance, [new])
        else:
            floor_daily(wh_dir, p_first, p_last)
            floor_weeks(wh_dir, [prev])
            with t.lap("daily"):
                floor_daily(wh_dir, n_first, n_last, run_config=force_registry)
            with t.lap("weekly"):
                floor_weeks(wh_dir, [new])
    return {"mode": mode, "week": new, "laps": t.laps, "compute": t.laps["daily"] + t.laps["weekly"]}


def read_once_elsewhere(wh_dir) -> None:
    """Every lake table read whole once by another process, as the weeks before leave a lake that is in use: its
    closed months kept as segments (``pipelines/lake_files.py``), and nothing in this process's memory."""
    import subprocess

    code = (
        "import duckdb; from pipelines.schemas import TABLES; from pipelines.warehouse import Warehouse; "
        f"wh = Warehouse({str(wh_dir)!r}); con = duckdb.connect(); "
        "[wh.lake_table(t, con) for t in TABLES.values()]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def history(weeks_history: int, coins: int = 250) -> dict:
    """One new week with ``weeks_history`` weeks of synthetic ``coin_daily`` history already in the lake (read
    once before by another process, as the weeks before it would have)."""

    from bench import synth
    from bench.steps import METRIC_STEPS, MetricInputs
    from pipelines.warehouse import Warehouse

    t = Timer()
    week = weekly_keys()[-1]
    first, last = daily_range_for([week])
    first = first - timedelta(days=7 * weeks_history)
    with temp_env() as wh_dir:
        wh = Warehouse(wh_dir)
        with t.lap("setup (untimed)"):
            rows = synth.write_lake_history(wh, coins, first, last)
            weekly = write_weekly_history(wh, week, weeks_history)
            read_once_elsewhere(wh_dir)
            os.sync()  # the setup's writes on disk before the timed part, not flushed during it
        defs = make_defs()
        with project_instance() as instance:
            with t.lap("dagster weekly_job"):
                dagster_weeks(defs, instance, [week], MARKET_WEEKLY)
        with t.lap("floor weekly steps"):
            floor_weeks(wh_dir, [week], market_only=True)
        with t.lap("load coin_daily history (DuckDB)"):
            cd = wh.query("SELECT * FROM coin_daily")
            reg = wh.query("SELECT coin_id, categories FROM coin_registry")
        x = MetricInputs(cd, reg, week)
        with t.lap("all metric functions, full history"):
            for name, step in METRIC_STEPS:
                if name not in QUADRATIC_ONLY:
                    step(x)
    return {
        "weeks_history": weeks_history,
        "days": (last - first).days + 1,
        "rows": rows,
        "weekly_partitions": weekly,
        "laps": t.laps,
    }


def write_weekly_history(wh, week: str, weeks: int) -> int:
    """The market weekly tables of the ``weeks`` weeks before ``week``, as those weeks' runs would have left them
    (computed in one pass by their own compute functions; a week whose history is too short for a table is left
    without it, as its run would fail it): a report reads every earlier week of them. The partitions written."""
    from assets.weekly.shape import Computed
    from assets.weekly.weeks import WEEKLY_COMPUTES, compute_weeks
    from pipelines.schemas import TABLES

    monday = date.fromisoformat(week)
    earlier = [(monday - timedelta(days=7 * k)).isoformat() for k in range(1, weeks + 1)]
    computes = {t: f for t, f in WEEKLY_COMPUTES.items() if f.__module__ in MARKET_MODULES}
    written = 0
    for table, by_week in compute_weeks(wh, earlier, computes).items():
        frames = {w: out.df for w, out in by_week.items() if isinstance(out, Computed)}
        wh.write_partitions(TABLES[table], frames)
        written += len(frames)
    wh.refresh_catalog()
    return written


def universe(coins: int) -> dict:
    """Every metric function on a synthetic ``coin_daily`` of ``coins`` coins (enough days for every lookback)."""
    from bench import synth
    from bench.steps import METRIC_STEPS, MetricInputs

    t = Timer()
    week = weekly_keys()[-1]
    last = daily_range_for([week])[1]
    first = last - timedelta(days=7 * 5 + 31 + 7)
    with t.lap("synthesize (untimed)"):
        cd = synth.coin_daily(coins, first, last)
        reg = synth.registry(coins).select("coin_id", "categories")
    base = peak_rss_mib()
    x = MetricInputs(cd, reg, week)
    steps = {}
    for name, step in METRIC_STEPS:
        t0 = time.perf_counter()
        step(x)
        steps[name] = time.perf_counter() - t0
    return {
        "coins": coins,
        "rows": cd.height,
        "steps": steps,
        "total": sum(steps.values()),
        "rss_before_mib": base,
    }


APIS = ("coingecko", "binance_fapi", "binance_spot", "binance_vision", "bybit", "okx", "fred")


def pulls(
    coins: int = 8,
    calls_per_minute: int = 28,
    perps: int = 2,
    weeks: int | None = None,
    history_days: int | None = None,
    pacing_overrides: dict[str, int] | None = None,
) -> dict:
    """Requests to every source with the emulator's rate limits ON (CoinGecko 30/min, Binance's weight per
    minute) and every client paced as in production (but for ``pacing_overrides``, calls per minute by API): a
    fresh backfill (of every week before the last, or of the ``weeks`` before it; ``history_days``: see
    ``daily_range_for``), then one new week, through daily_job."""
    import dagster as dg

    from pipelines.resources import DEFAULT_CALLS_PER_MINUTE
    from pipelines.runner import patched_environ

    # every venue paced as in production; CoinGecko at ``calls_per_minute`` (the emulator's limit is 30/min)
    pacing = {k: v for k, v in DEFAULT_CALLS_PER_MINUTE.items() if k != "COINGECKO"} | (
        pacing_overrides or {}
    )

    keys = weekly_keys()
    b_first, b_last = daily_range_for(keys[:-1] if weeks is None else keys[-1 - weeks : -1], history_days)
    n_first, n_last = b_last + timedelta(days=1), daily_range_for(keys[-1:])[1]
    # a week later the registry, the premiumIndex and the FRED snapshots are stale: refreshed
    refresh = {
        "ops": {
            a: {"config": {"force": True}}
            for a in ("raw_coingecko_markets", "raw_binance_premium_index", "raw_fred_series")
        }
    }
    out: dict[str, Any] = {"coins": coins, "perps": perps, "calls_per_minute": calls_per_minute}
    with (
        temp_env(),
        emulator(rate_limits=True, calls_per_minute=calls_per_minute, out_of_process=False) as emu,
        # the CoinGecko universe and pacing too: the resources read a set variable when a run starts
        patched_environ(
            {f"{api}_CALLS_PER_MINUTE": str(n) for api, n in pacing.items()}
            | {"COINGECKO_TOP_N": str(coins), "COINGECKO_CALLS_PER_MINUTE": str(calls_per_minute)}
        ),
    ):
        apis = [a for a in APIS if a in emu.api_names] + [a for a in emu.api_names if a not in APIS]
        out["apis"] = apis
        out["emulator_limit_per_minute"] = emu.coingecko_calls_per_minute
        out["pacing"] = {"COINGECKO": calls_per_minute, **pacing}
        defs = make_defs()
        with dg.instance_for_test() as instance:
            for label, first, last, cfg in (
                ("fresh backfill", b_first, b_last, None),
                ("one new week", n_first, n_last, refresh),
            ):
                before = {a: emu.status_counts(a) for a in apis}
                before_cg = {
                    k: emu.count("coingecko", rx)
                    for k, rx in (("markets", "/coins/markets$"), ("market_chart", "market_chart"))
                }
                t0 = time.perf_counter()
                # the raw pulls only: the clean tables' coverage checks (rightly) fail on a universe of 5 coins
                dagster_daily(defs, instance, first, last, cfg, perps=perps, assets=raw_pulls(defs))
                after = {a: emu.status_counts(a) for a in apis}
                out[label] = {
                    "days": (last - first).days + 1,
                    "seconds": time.perf_counter() - t0,
                    "markets": emu.count("coingecko", "/coins/markets$") - before_cg["markets"],
                    "market_chart": emu.count("coingecko", "market_chart") - before_cg["market_chart"],
                    "by_api": {
                        a: {
                            str(k): v - before[a].get(k, 0)
                            for k, v in after[a].items()
                            if v - before[a].get(k, 0)
                        }
                        for a in apis
                    },
                }
        out["total_status"] = {a: {str(k): v for k, v in emu.status_counts(a).items()} for a in apis}
    return out


def daily_events(days: int = 60, perps: int = 8, subset_planned: bool = False) -> dict:
    """The daily job over ``days`` days as one run (single-run backfill) on a SQLite instance: its wall time and the
    events it writes, with Dagster's ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`` on or off. On: one planned
    event per asset for the run instead of one per asset and day (Dagster's note: a failed run then does not mark
    its partitions failed)."""

    import dagster as dg

    keys = weekly_keys()
    first, last = daily_range_for(keys[-1:], None)
    first = last - timedelta(days=days - 1)
    t = Timer()
    os.environ.pop("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", None)
    if subset_planned:
        os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "1"
    with temp_env(), emulator():
        defs = make_defs()
        with dg.instance_for_test() as instance:
            with t.lap("daily"):
                dagster_daily(defs, instance, first, last, perps=perps, planned_subset=subset_planned)
            records = instance.get_records_for_run(
                run_id=instance.get_runs()[0].run_id, limit=1_000_000
            ).records
            kinds: dict[str, int] = {}
            for r in records:
                k = r.event_log_entry.dagster_event_type
                kinds[str(k.value if k else "log")] = kinds.get(str(k.value if k else "log"), 0) + 1
    return {
        "days": days,
        "perps": perps,
        "subset_planned": subset_planned,
        "laps": t.laps,
        "events": len(records),
        "planned_events": kinds.get("ASSET_MATERIALIZATION_PLANNED", 0),
        "materializations": kinds.get("ASSET_MATERIALIZATION", 0),
    }


def instance_storage(**kwargs: Any) -> dict:
    """The daily backfill as one run on SQLite or Postgres instance storage (``bench/instance_storage.py``)."""
    from bench.instance_storage import storage_run

    return storage_run(**kwargs)


PHASES = {
    "backfill": backfill,
    "new_week": new_week,
    "history": history,
    "universe": universe,
    "pulls": pulls,
    "daily_events": daily_events,
    "instance_storage": instance_storage,
}


def main() -> None:
    name, kwargs = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    result = PHASES[name](**kwargs)
    result["process_seconds"] = time.perf_counter() - T_START
    result["peak_rss_mib"] = peak_rss_mib()
    print("BENCH_RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
