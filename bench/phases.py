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
from datetime import timedelta
from typing import Any

T_START = time.perf_counter()

from bench.common import (  # noqa: E402
    RANGE_END_TAG,
    RANGE_START_TAG,
    Timer,
    daily_range_for,
    emulator,
    peak_rss_mib,
    temp_env,
    weekly_keys,
)

# Steps measured in the universe figures only (all N coins, not a weekly table).
QUADRATIC_ONLY = {"pairwise_corr, all N coins"}
LOG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# ---- the two ways to run the pipeline -------------------------------------------------------------------------
def make_defs(coingecko_overrides: dict[str, Any] | None = None):
    """The project's Definitions (built now, from the environment); optionally another CoinGecko resource."""
    import dagster as dg  # noqa: PLC0415

    from pipelines.definitions import make_definitions  # noqa: PLC0415

    defs = make_definitions()
    if not coingecko_overrides:
        return defs
    from pipelines.resources import CoinGeckoResource  # noqa: PLC0415

    resources = dict(defs.resources or {})
    resources["coingecko"] = CoinGeckoResource(base_url=os.environ["COINGECKO_BASE_URL"], **coingecko_overrides)
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
                          schedules=defs.schedules, sensors=defs.sensors, resources=resources)


# The benchmark compares like with like: the CoinGecko path (raw pulls, clean daily rows, the weekly tables built
# from them, and the report, which lists the derivatives and macro tables as data gaps) with and without Dagster.
# The derivatives and macro pulls are measured by tests/test_assets_sources.py's 2025 backfill instead.
from pipelines.runner import MARKET_ASSETS  # noqa: E402

MARKET_WEEKLY = (
    "weekly_market_summary", "weekly_movers", "weekly_universe", "weekly_total_market_cap", "weekly_mcap_crossings",
    "weekly_index_returns", "weekly_correlation_buckets", "weekly_report",
)


def dagster_daily(defs, instance, first, last, run_config: dict | None = None) -> None:
    res = defs.resolve_job_def("daily_job").execute_in_process(
        asset_selection=[dg_key(a) for a in MARKET_ASSETS],
        instance=instance, tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        run_config={**LOG, **(run_config or {})}, raise_on_error=True,
    )
    assert res.success


def dagster_weeks(defs, instance, weeks: list[str]) -> None:
    job = defs.resolve_job_def("weekly_job")
    for week in weeks:
        assert job.execute_in_process(
            asset_selection=[dg_key(a) for a in MARKET_WEEKLY],
            instance=instance, partition_key=week, run_config=LOG, raise_on_error=True,
        ).success


def dg_key(name: str):
    import dagster as dg  # noqa: PLC0415

    return dg.AssetKey(name)


def floor_daily(wh_dir, first, last, top_n: int = 250, timer: Timer | None = None) -> None:
    from bench.steps import DAILY_STEPS, DailyCtx  # noqa: PLC0415
    from pipelines.sources.coingecko import CoinGeckoClient  # noqa: PLC0415
    from pipelines.warehouse import Warehouse  # noqa: PLC0415

    def client():
        return CoinGeckoClient(base_url=os.environ["COINGECKO_BASE_URL"],
                               calls_per_minute=float(os.environ.get("COINGECKO_CALLS_PER_MINUTE", "0")))

    ctx = DailyCtx(Warehouse(wh_dir), first, last, client, top_n=top_n)
    for name, step in DAILY_STEPS:
        if timer:
            with timer.lap(f"floor:{name}"):
                step(ctx)
        else:
            step(ctx)


def floor_weeks(wh_dir, weeks: list[str], timer: Timer | None = None) -> None:
    from bench.steps import WEEKLY_STEPS, WeekCtx  # noqa: PLC0415
    from pipelines.warehouse import Warehouse  # noqa: PLC0415

    wh = Warehouse(wh_dir)
    for week in weeks:
        ctx = WeekCtx(wh, week)
        for name, step in WEEKLY_STEPS:
            if timer:
                with timer.lap(f"floor:{name}"):
                    step(ctx)
            else:
                step(ctx)


def default_top_n() -> int:
    from pipelines.resources import CoinGeckoResource  # noqa: PLC0415

    return int(CoinGeckoResource.model_fields["top_n"].default)


# ---- phases ---------------------------------------------------------------------------------------------------
def backfill(mode: str, weeks: int | None = None, profile: bool = False) -> dict:
    """Backfill the last ``weeks`` weekly partitions (None: all) and the days they read, from the emulator."""
    t = Timer()
    with t.lap("import"):
        import dagster as dg  # noqa: PLC0415, F401

        import pipelines.definitions  # noqa: PLC0415, F401
    keys = weekly_keys()
    keys = keys if weeks is None else keys[-weeks:]
    first, last = daily_range_for(keys)
    prof = cProfile.Profile() if profile else None
    with temp_env() as wh_dir, emulator():
        if mode == "dagster":
            with t.lap("defs"):
                defs = make_defs()
            with dg.instance_for_test() as instance:
                if prof:
                    prof.enable()
                with t.lap("daily"):
                    dagster_daily(defs, instance, first, last)
                with t.lap("weekly"):
                    dagster_weeks(defs, instance, keys)
        else:
            if prof:
                prof.enable()
            with t.lap("daily"):
                floor_daily(wh_dir, first, last, default_top_n(), t)
            with t.lap("weekly"):
                floor_weeks(wh_dir, keys, t)
        if prof:
            prof.disable()
    out: dict[str, Any] = {"mode": mode, "weeks": len(keys), "days": (last - first).days + 1,
                           "first_week": keys[0], "last_week": keys[-1], "laps": t.laps,
                           "compute": t.laps["daily"] + t.laps["weekly"]}
    if prof:
        out["profile"] = profile_text(prof)
    return out


def profile_text(prof: cProfile.Profile, n: int = 18) -> str:
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.sort_stats("tottime").print_stats(n)
    text = s.getvalue()
    return text[text.find("   ncalls"):].rstrip() if "   ncalls" in text else text


def new_week(mode: str) -> dict:
    """Steady state: the week before is in place; pull, clean and report one new week (the latest)."""
    t = Timer()
    import dagster as dg  # noqa: PLC0415

    keys = weekly_keys()
    prev, new = keys[-2], keys[-1]
    p_first, p_last = daily_range_for([prev])
    n_first, n_last = p_last + timedelta(days=1), daily_range_for([new])[1]
    force_registry = {"ops": {"raw_coingecko_markets": {"config": {"force": True}}}}  # a week later it is stale
    with temp_env() as wh_dir, emulator():
        if mode == "dagster":
            defs = make_defs()
            with dg.instance_for_test() as instance:
                dagster_daily(defs, instance, p_first, p_last)
                dagster_weeks(defs, instance, [prev])
                with t.lap("daily"):
                    dagster_daily(defs, instance, n_first, n_last, force_registry)
                with t.lap("weekly"):
                    dagster_weeks(defs, instance, [new])
        else:
            floor_daily(wh_dir, p_first, p_last, default_top_n())
            floor_weeks(wh_dir, [prev])
            with t.lap("daily"):
                floor_daily(wh_dir, n_first, n_last, default_top_n())
            with t.lap("weekly"):
                floor_weeks(wh_dir, [new])
    return {"mode": mode, "week": new, "laps": t.laps, "compute": t.laps["daily"] + t.laps["weekly"]}


def history(weeks_history: int, coins: int = 250) -> dict:
    """One new week with ``weeks_history`` weeks of synthetic ``coin_daily`` history already in the lake."""
    import dagster as dg  # noqa: PLC0415

    from bench import synth  # noqa: PLC0415
    from bench.steps import METRIC_STEPS, MetricInputs  # noqa: PLC0415
    from pipelines.warehouse import Warehouse  # noqa: PLC0415

    t = Timer()
    week = weekly_keys()[-1]
    first, last = daily_range_for([week])
    first = first - timedelta(days=7 * weeks_history)
    with temp_env() as wh_dir:
        wh = Warehouse(wh_dir)
        with t.lap("setup (untimed)"):
            rows = synth.write_lake_history(wh, coins, first, last)
        defs = make_defs()
        with dg.instance_for_test() as instance:
            with t.lap("dagster weekly_job"):
                dagster_weeks(defs, instance, [week])
        with t.lap("floor weekly steps"):
            floor_weeks(wh_dir, [week])
        with t.lap("load coin_daily history (DuckDB)"):
            cd = wh.query("SELECT * FROM coin_daily")
            reg = wh.query("SELECT coin_id, categories FROM coin_registry")
        x = MetricInputs(cd, reg, week)
        with t.lap("all metric functions, full history"):
            for name, step in METRIC_STEPS:
                if name not in QUADRATIC_ONLY:
                    step(x)
    return {"weeks_history": weeks_history, "days": (last - first).days + 1, "rows": rows, "laps": t.laps}


def universe(coins: int) -> dict:
    """Every metric function on a synthetic ``coin_daily`` of ``coins`` coins (enough days for every lookback)."""
    from bench import synth  # noqa: PLC0415
    from bench.steps import METRIC_STEPS, MetricInputs  # noqa: PLC0415

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
    return {"coins": coins, "rows": cd.height, "steps": steps, "total": sum(steps.values()),
            "rss_before_mib": base}


def pulls(coins: int = 8, calls_per_minute: int = 28) -> dict:
    """Requests to CoinGecko with the emulator's rate limits ON: a fresh backfill, then one new week."""
    import dagster as dg  # noqa: PLC0415

    keys = weekly_keys()
    b_first, b_last = daily_range_for(keys[:-1])
    n_first, n_last = b_last + timedelta(days=1), daily_range_for(keys[-1:])[1]
    force_registry = {"ops": {"raw_coingecko_markets": {"config": {"force": True}}}}
    out: dict[str, Any] = {"coins": coins, "calls_per_minute": calls_per_minute}
    with temp_env(), emulator(rate_limits=True, calls_per_minute=calls_per_minute) as emu:
        out["emulator_limit_per_minute"] = emu.coingecko_calls_per_minute
        defs = make_defs({"top_n": coins, "calls_per_minute": calls_per_minute})
        with dg.instance_for_test() as instance:
            for label, first, last, cfg in (("fresh backfill", b_first, b_last, None),
                                            ("one new week", n_first, n_last, force_registry)):
                before = {k: emu.count("coingecko", rx) for k, rx in (("markets", "/coins/markets$"),
                                                                     ("market_chart", "market_chart"))}
                before_status = emu.status_counts("coingecko")
                t0 = time.perf_counter()
                dagster_daily(defs, instance, first, last, cfg)
                after_status = emu.status_counts("coingecko")
                out[label] = {
                    "days": (last - first).days + 1,
                    "seconds": time.perf_counter() - t0,
                    "markets": emu.count("coingecko", "/coins/markets$") - before["markets"],
                    "market_chart": emu.count("coingecko", "market_chart") - before["market_chart"],
                    "status": {str(k): v - before_status.get(k, 0) for k, v in after_status.items()},
                }
        out["total_status"] = {str(k): v for k, v in emu.status_counts("coingecko").items()}
    return out


PHASES = {"backfill": backfill, "new_week": new_week, "history": history, "universe": universe, "pulls": pulls}


def main() -> None:
    name, kwargs = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    result = PHASES[name](**kwargs)
    result["process_seconds"] = time.perf_counter() - T_START
    result["peak_rss_mib"] = peak_rss_mib()
    print("BENCH_RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
