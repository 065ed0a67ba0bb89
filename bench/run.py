"""``make bench``: run every phase (each in its own process) and write ``bench/RESULTS.md``.

    python -m bench.run                      # the full benchmark (about 22 minutes on 2 cores)
    python -m bench.run --quick --out X.md   # the smallest configuration (the smoke test uses it)

See ``bench/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "RESULTS.md"

FULL = {
    "history": [20, 80, 300],
    # each size's phase run this many times, sizes interleaved (the order reversed every other round): one run's
    # weekly job moves by 10-25% on this shared machine, more than the 1.2x target's margin, so its median is read
    "history_rounds": 5,
    # the full backfill run this many times a mode, the modes alternated (the order reversed every other round):
    # one backfill moves by 5-10% on this machine, as much as the 60 s target's margin; the median run is read
    "backfill_rounds": 3,
    "universe": [250, 1000, 5000],
    "pulls": {"coins": 5, "calls_per_minute": 28, "perps": 2},
    "scaling_weeks": [1, None],  # None = every weekly partition
    "set_floor_at": [None],  # the scaling points the set-based floor runs at too
    "perps": 40,  # perpetuals followed in the backfill phases (the resource's default)
    "history_days": None,  # the backfill pulls what a report run pulls: from 100 days before the first week
    "new_week": True,
    "profile": True,
}
QUICK = {
    "history": [1],
    "history_rounds": 1,
    "backfill_rounds": 1,
    "universe": [250],
    # CoinGecko under its 30/min without pacing; the fresh backfill of the week before the last and the 35 days
    # before it (past Binance's 30-day /futures/data window, so its archive is asked too: every source answers),
    # not of every week since 2025-01-01 (which grew with the wall clock)
    # FRED paced at 120/min (the keyed API's limit) instead of production's gentle 20/min for the keyless CSV:
    # the emulator is the only server asked, and 22 FRED requests at 20/min were most of this configuration's time
    "pulls": {
        "coins": 1,
        "calls_per_minute": 0,
        "perps": 1,
        "weeks": 1,
        "history_days": 35,
        "pacing_overrides": {"FRED": 120},
    },
    "scaling_weeks": [1],
    "set_floor_at": [1],  # so that the smoke test runs the set-based floor's path of the backfill
    "perps": 8,  # as the tests follow (tests/conftest.py): the same code paths, a fifth of the requests
    # the week's days and the open before it (8 days, as the reliability tests run a week) instead of 107: every
    # raw, clean and weekly asset still runs; the 100-day lookbacks are the full benchmark's business
    "history_days": 1,
    "new_week": False,
    "profile": False,
}


def run_phase(name: str, kwargs: dict, inprocess: bool = False) -> dict:
    """One phase in a fresh interpreter (or in this one, for the smoke test); returns its result dict."""
    t0 = time.perf_counter()
    if inprocess:
        from bench import phases

        result = phases.PHASES[name](**kwargs)
        result["peak_rss_mib"] = phases.peak_rss_mib()
        result["process_seconds"] = time.perf_counter() - t0
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.phases", name, json.dumps(kwargs)],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"phase {name} {kwargs} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
            )
        result = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    result["wall_seconds"] = time.perf_counter() - t0
    print(f"  {name} {kwargs}: {result['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
    return result


# ---- machine --------------------------------------------------------------------------------------------------
def machine() -> dict:
    mem = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            k, v = line.split(":", 1)
            if k in ("MemTotal", "MemAvailable"):
                mem[k] = int(v.split()[0]) / 1024 / 1024
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=REPO,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except OSError:
        commit, dirty = "unknown", False
    versions = {}
    for mod in ("dagster", "polars", "duckdb", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = "?"
    return {
        "cpus": os.cpu_count(),
        "mem_total_gib": mem.get("MemTotal"),
        "mem_available_gib": mem.get("MemAvailable"),
        "loadavg": os.getloadavg(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (+ uncommitted changes)" if dirty else ""),
        "python": platform.python_version(),
        "versions": versions,
    }


# ---- formatting -----------------------------------------------------------------------------------------------
def f(x: float | None, nd: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{nd}f}"


def table(head: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


T = TypeVar("T")
K = TypeVar("K")


def upper_median(items: list[T], key: Callable[[T], float] | None = None) -> T:
    """The middle of ``items`` ordered by ``key`` (by themselves when None; the upper one of an even count)."""
    return sorted(items, key=key)[len(items) // 2]


def alternated(rounds: int, configs: list[K], run: Callable[[K], dict]) -> dict[K, list[dict]]:
    """``run(config)`` ``rounds`` times for each of ``configs``, interleaved, the order reversed every other round
    (so that no configuration always runs first on a machine that drifts): each one's results, in round order."""
    out: dict[K, list[dict]] = {c: [] for c in configs}
    for k in range(rounds):
        for c in configs if k % 2 == 0 else list(reversed(configs)):
            out[c].append(run(c))
    return out


def median_run(results: list[dict], keys: list[str]) -> dict:
    """Runs of one phase configuration as one result: each of ``keys``' laps and the peak memory the median of the
    runs' (``upper_median``), the weekly job's laps of every run in ``runs``."""
    out = dict(results[0])
    out["laps"] = {k: upper_median([r["laps"][k] for r in results]) for k in keys}
    out["peak_rss_mib"] = upper_median([r["peak_rss_mib"] for r in results])
    out["runs"] = [r["laps"]["dagster weekly_job"] for r in results]
    return out


def median_backfill(results: list[dict]) -> dict:
    """Backfills of one mode as one result: the run whose time (``backfill_time``) is the median of the runs'
    (``upper_median``), whole, so that its laps add up."""
    return upper_median(results, backfill_time)


def ok(flag: bool) -> str:
    return "**met**" if flag else "**NOT met**"


def backfill_time(r: dict) -> float:
    """What a backfill costs the pipeline: imports + definitions + the runs (the emulator's start excluded)."""
    laps = r["laps"]
    return laps.get("import", 0) + laps.get("defs", 0) + laps["daily"] + laps["weekly"]


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smallest configuration (1 week, 250 coins)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--inprocess", action="store_true", help="run phases in this process (peaks then mix)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    t_all = time.perf_counter()
    m = machine()
    md: list[str] = []
    R = lambda name, **kw: run_phase(name, kw, args.inprocess)  # noqa: E731

    md += [
        "# Benchmark results" + (" (quick configuration)" if args.quick else ""),
        "",
        "Written by `make bench` (`.venv/bin/python -m bench.run`); see `bench/README.md` for what each figure "
        "means. Every phase runs in its own process, so a peak of memory is that phase's alone. The machine is "
        "shared: compare figures as ratios within this file, not across runs.",
        "",
        f"* Machine: {m['cpus']} CPUs (`os.cpu_count()`), {f(m['mem_total_gib'])} GiB memory "
        f"({f(m['mem_available_gib'])} GiB available at start), load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg'])}",
        f"* Date: {m['date']}; commit `{m['commit']}`; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "",
    ]

    # 1. backfill: Dagster vs floor, 1 week vs all weeks --------------------------------------------------------
    print("1. backfill", file=sys.stderr)
    runs = {}
    every: dict[str, list[float]] = {}  # the full backfill's time in each round, by mode
    for weeks in cfg["scaling_weeks"]:
        tried = alternated(
            cfg["backfill_rounds"] if weeks is None else 1,
            ["dagster", "floor", "set_floor"] if weeks in cfg["set_floor_at"] else ["dagster", "floor"],
            lambda mode, weeks=weeks: R(
                "backfill", mode=mode, weeks=weeks, perps=cfg["perps"], history_days=cfg["history_days"]
            ),
        )
        for mode, results in tried.items():
            runs[(mode, weeks)] = median_backfill(results)
            if weeks is None:
                every[mode] = [backfill_time(r) for r in results]
    rows = []
    for (mode, _), r in runs.items():
        rows.append(
            [
                mode,
                r["weeks"],
                r["days"],
                f(r["laps"].get("import")),
                f(r["laps"]["daily"]),
                f(r["laps"]["weekly"]),
                f(backfill_time(r)),
                f(r["process_seconds"]),
                f(r["peak_rss_mib"], 0),
            ]
        )
    md += [
        "## 1. Backfill from the emulator (rate limits off): Dagster against the floors",
        "",
        "The whole pipeline: every raw pull (CoinGecko 250 coins; Binance, Bybit and OKX for the "
        f"{cfg['perps']} perpetuals followed; FRED), every clean table, the 15 weekly tables and the report with its claim check. "
        "`dagster`: the project's `daily_job` as ONE run over the day range (partition-range tags), then "
        "`weekly_job` as ONE run over the weekly range (one pass over the lake per weekly table), each range run with "
        "one planned event per asset and the materializations stored in batches, as `pipelines.runner` runs them (`range_run_environment`), in process, temp warehouse, the project's instance configuration in a temporary `DAGSTER_HOME` (`bench.common.project_instance`: the kept-connection SQLite storage, `pipelines/sqlite_instance.py`, the run queue and the pools). "
        "`floor`: the same computations as plain code (for the days, every asset of `daily_job` in dependency order, its "
        "body invoked directly with the same run config, without a run: `bench/steps.py` `daily_steps`, `run_daily`; for "
        "the weeks `bench/phases.py` `floor_weeks`: every weekly table of a run of weeks in one pass, then each report, "
        "the weeks split between processes as the run's steps split them, `pipelines.week_processes.map_weeks`; so "
        "both modes have the same processes, and the floor is the project's own code. `set_floor`: the set-based floor, "
        "the days as `floor` computes them, then every weekly table for every week in one vectorized pass over the "
        "clean tables read once into memory (`bench/set_floor/`: written for speed, not the project's code, each "
        "table equal to the project's on every week of the emulator's history, `tests/test_every_week.py`), each "
        "week's partition written as the lake IO manager writes it, then the reports as `floor` builds them. The "
        "report's claim check runs once in every mode (under Dagster in the report step, whose results its blocking check "
        "keeps while the files it read are unchanged: `assets/report.py` `results_still_true`); "
        "the data-quality checks on `coin_daily` and the weekly tables' checks run under Dagster only, so their "
        "cost counts as overhead here: the overhead is an upper bound). "
        "*time* = imports + definitions + runs; *process* also counts interpreter start and the emulator's start "
        "(building the synthetic market), the same in both modes.",
        "",
        table(
            ["mode", "weeks", "days", "import s", "daily s", "weekly s", "time s", "process s", "peak MiB"],
            rows,
        ),
        "",
    ]
    full_weeks = max(r["weeks"] for r in runs.values())
    fit = {}
    if len(cfg["scaling_weeks"]) > 1:
        for mode in ("dagster", "floor"):
            r1, rn = runs[(mode, 1)], runs[(mode, None)]
            n = rn["weeks"]
            b = (backfill_time(rn) - backfill_time(r1)) / (n - 1)
            fit[mode] = (backfill_time(r1) - b, b)
        d, fl = fit["dagster"], fit["floor"]
        td, tf = backfill_time(runs[("dagster", None)]), backfill_time(runs[("floor", None)])
        ts = backfill_time(runs[("set_floor", None)])
        md += [
            f"Full backfill ({full_weeks} weeks, {runs[('dagster', None)]['days']} days), the median of "
            f"{len(every['dagster'])} run(s) a mode, the modes alternated (every run: Dagster "
            f"{', '.join(f(x) for x in every['dagster'])} s; floor {', '.join(f(x) for x in every['floor'])} s; "
            f"set-based floor {', '.join(f(x) for x in every['set_floor'])} s; "
            "the table above gives each mode's median run): "
            f"Dagster {f(td)} s, floor {f(tf)} s, overhead {f(td - tf)} s = **{f(td / tf, 2)}x** the floor; "
            f"the set-based floor {f(ts)} s (its weekly part {f(runs[('set_floor', None)]['laps']['weekly'])} s "
            f"against the floor's {f(runs[('floor', None)]['laps']['weekly'])} s): Dagster **{f(td / ts, 2)}x** it. "
            f"Targets: < 60 s {ok(td < 60)}; at most 1.5x the set-based floor {ok(td / ts <= 1.5)}.",
            "",
            "The set-based floor's weekly part, lap by lap: "
            + ", ".join(
                f"{k.removeprefix('set_floor:')} {f(v, 2)} s"
                for k, v in runs[("set_floor", None)]["laps"].items()
                if k.startswith("set_floor:")
            )
            + ".",
            "",
            "Fit time = a + b * weeks through the 1-week and all-weeks points:",
            "",
            table(
                ["mode", "a (fixed) s", "b (per week) s"],
                [
                    ["dagster", f(d[0], 2), f(d[1], 3)],
                    ["floor", f(fl[0], 2), f(fl[1], 3)],
                    ["overhead (dagster - floor)", f(d[0] - fl[0], 2), f(d[1] - fl[1], 3)],
                ],
            ),
            "",
            f"Dagster's overhead is {f(d[0] - fl[0], 2)} s fixed plus {f(d[1] - fl[1], 3)} s per week: over "
            f"{full_weeks} weeks the per-week part adds {f((d[1] - fl[1]) * full_weeks)} s. The per-week part is "
            "what Dagster does per week inside the one weekly run (each week's materialization and metadata events, "
            "the checks over every week); the fixed part is importing Dagster and the code location and the two "
            "runs. The day range and the week range are one run each.",
            "",
        ]
    if cfg["new_week"]:
        nw = {mode: R("new_week", mode=mode) for mode in ("dagster", "floor")}
        dn, fn = nw["dagster"]["compute"], nw["floor"]["compute"]
        md += [
            f"One new week ({nw['dagster']['week']}) after the week before is in place: daily_job for its 7 days "
            "(registry refreshed as it would be a week later, one chart request per coin) + weekly_job:",
            "",
            table(
                ["mode", "daily s", "weekly s", "total s", "peak MiB"],
                [
                    [
                        k,
                        f(v["laps"]["daily"]),
                        f(v["laps"]["weekly"]),
                        f(v["compute"]),
                        f(v["peak_rss_mib"], 0),
                    ]
                    for k, v in nw.items()
                ],
            ),
            "",
            f"Dagster {f(dn)} s against the floor's {f(fn)} s (**{f(dn / fn, 2)}x**, +{f(dn - fn)} s). "
            f"Target < 10 s: {ok(dn < 10)}.",
            "",
        ]

    # 2. history --------------------------------------------------------------------------------------------------
    print("2. history", file=sys.stderr)
    keys = [
        "dagster weekly_job",
        "floor weekly steps",
        "load coin_daily history (DuckDB)",
        "all metric functions, full history",
    ]
    rounds = cfg["history_rounds"]
    by_size = alternated(rounds, list(cfg["history"]), lambda h: R("history", weeks_history=h))
    hist = [median_run(by_size[h], keys) for h in cfg["history"]]
    md += [
        "## 2. One new week against a growing history",
        "",
        "The emulator's market starts on 2025-01-01, so the history is synthetic (`bench/synth.py`): "
        "`coin_daily` partitions for 250 coins going back H weeks before the latest weekly partition (before "
        "2025 for 300 weeks; the walk drawn backwards from the last day, so every size ends with the same week of "
        "the same market), written into the lake of a fresh warehouse with a registry snapshot, with the market "
        "weekly tables of each of those weeks (computed in one pass by their own compute functions, "
        "`bench/phases.py` `write_weekly_history`: the report reads every earlier week of them), and read once by "
        "another process (as the weeks before leave a lake in use: its closed months kept as segments, "
        "`pipelines/lake_files.py`); then the weekly job runs for the last week only. Also timed: loading the whole `coin_daily` history through "
        "DuckDB and running every metric function of `METRIC_STEPS` on it (the weekly assets of the future). "
        f"Each size's phase ran {rounds} time(s), in its own process each time, the sizes interleaved (the order "
        "reversed every other round); each time below is the median of its runs, the weekly job's range of runs "
        "beside it.",
        "",
        table(
            ["history weeks", "days", "rows", "weekly partitions"]
            + [k + " s" for k in keys]
            + ["dagster weekly_job, runs s", "peak MiB"],
            [
                [h["weeks_history"], h["days"], f"{h['rows']:,}", f"{h['weekly_partitions']:,}"]
                + [f(h["laps"][k], 2) for k in keys]
                + [", ".join(f(x, 2) for x in h["runs"]), f(h["peak_rss_mib"], 0)]
                for h in hist
            ],
        ),
        "",
    ]
    if len(hist) > 1:
        lo, hi = hist[0], hist[-1]
        ratios = {k: hi["laps"][k] / lo["laps"][k] for k in keys}
        md += [
            f"Ratio {hi['weeks_history']} weeks / {lo['weeks_history']} weeks: "
            + "; ".join(f"{k} **{f(v, 2)}x**" for k, v in ratios.items())
            + f". Target: the weekly job at most 1.2x: {ok(ratios['dagster weekly_job'] <= 1.2)}.",
            "",
        ]

    # 3. universe -------------------------------------------------------------------------------------------------
    print("3. universe", file=sys.stderr)
    uni = [R("universe", coins=n) for n in cfg["universe"]]
    step_names = list(uni[0]["steps"])
    md += [
        "## 3. Weekly tables against the size of the universe",
        "",
        "Synthetic `coin_daily` frames (`bench/synth.py`, 78 days so every lookback is filled) for N coins; "
        "every metric function of `METRIC_STEPS` in memory, one process per size. `pairwise_corr, all N coins` "
        "correlates every coin with every other (the quadratic step); the weekly correlation table itself uses "
        "the top 100 only.",
        "",
        table(
            ["coins", "rows", "total s", "peak MiB"] + [s + " s" for s in step_names],
            [
                [u["coins"], f"{u['rows']:,}", f(u["total"], 2), f(u["peak_rss_mib"], 0)]
                + [f(u["steps"][s], 3) for s in step_names]
                for u in uni
            ],
        ),
        "",
    ]
    big = uni[-1]
    md.append(
        f"{big['coins']:,} coins: {f(big['total'], 1)} s (target < 30 s: {ok(big['total'] < 30)}), peak "
        f"{f(big['peak_rss_mib'] / 1024, 2)} GiB (target < 4 GiB: {ok(big['peak_rss_mib'] < 4096)})."
    )
    if len(uni) > 1:
        q = "pairwise_corr, all N coins"
        a, b = uni[-2], uni[-1]
        expo = math.log(b["steps"][q] / a["steps"][q]) / math.log(b["coins"] / a["coins"])
        pairs = b["coins"] * (b["coins"] - 1) / 2
        md.append(
            f" `pairwise_corr` grows as N^{f(expo, 2)} from {a['coins']:,} to {b['coins']:,} coins (2 = quadratic "
            f"work) and does {pairs / b['steps'][q] / 1e6:,.1f} M pairs/s at {b['coins']:,} coins: vectorized "
            "(a few `[N x T] @ [T x N]` products in blocks of 1,024 columns, no Python loop over pairs)."
        )
    md.append("")

    # 4. pulls ----------------------------------------------------------------------------------------------------
    print("4. pulls", file=sys.stderr)
    p = R("pulls", **cfg["pulls"])
    apis = p["apis"]
    rows = []
    for label in ("fresh backfill", "one new week"):
        x = p[label]
        per_api = [sum(x["by_api"].get(a, {}).values()) for a in apis]
        statuses: dict[str, int] = {}
        for a in apis:
            for k, v in x["by_api"].get(a, {}).items():
                statuses[k] = statuses.get(k, 0) + v
        rows.append(
            [
                label,
                x["days"],
                *per_api,
                sum(per_api),
                ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
                f(x["seconds"]),
            ]
        )
    n429 = sum(int(st.get("429", 0)) for st in p["total_status"].values())
    fresh = p["fresh backfill"]
    top_pages = 1  # /coins/markets top pages: per_page = min(250, top_n), so one page up to 250 coins
    cat_pages = fresh["markets"] - top_pages
    per_run_250 = top_pages + cat_pages + 250
    cpm = p["calls_per_minute"] or 30
    md += [
        "## 4. Requests to every source, rate limits ON",
        "",
        f"Emulator with `rate_limits=True` (CoinGecko {p['emulator_limit_per_minute']}/min; Binance's request "
        "weight per minute, 2,400 futures / 6,000 spot); every client paced ("
        + ", ".join(f"{k} {v}/min" for k, v in p["pacing"].items())
        + f"); `daily_job` through Dagster with the registry cut to the top {p['coins']} coins and "
        f"{p['perps']} perpetuals, so that the paced run fits in the benchmark's time. The new week forces the "
        "registry, premiumIndex and FRED refreshes (`force`), as week-old snapshots would be refreshed. "
        "Requests and statuses are counted by the emulator (`MarketEmulator.status_counts`), per API:",
        "",
        table(["run", "days", *apis, "requests", "statuses", "seconds"], rows),
        "",
        f"Answered 429: **{n429}** ({ok(n429 == 0)}: none). CoinGecko's count does not depend on the number of "
        "days: one chart request per coin per run, whatever the range, plus the registry snapshot (1 top page + "
        "one page per membership category). The venues' counts grow with days and perpetuals (paginated "
        "histories per symbol; the data.binance.vision archive costs 2 requests per symbol and day for its last "
        "60 days).",
        "",
        f"CoinGecko extrapolated to the default 250 coins (1 top page of 250, {cat_pages} category pages, 250 "
        f"chart requests): **{per_run_250} requests** for a fresh backfill of every week, and {per_run_250} per "
        f"new week when the daily job runs once a week over its 7 days; at {cpm}/min that is "
        f"{f(per_run_250 / cpm, 1)} minutes of pacing each. A daily job run every day instead makes "
        f"{per_run_250} requests per day (its snapshot is older than 20 h, so the registry is pulled again), "
        f"{7 * per_run_250} per week.",
        "",
    ]

    # 5. profile --------------------------------------------------------------------------------------------------
    if cfg["profile"]:
        print("5. profile", file=sys.stderr)
        prof = R("backfill", mode="floor", profile=True)
        md += [
            "## 5. Profile of the full-backfill floor",
            "",
            f"cProfile (main thread only: the emulator's server threads are not in it), floor, "
            f"{prof['weeks']} weeks; sorted by own time. With the profiler on: {f(backfill_time(prof))} s.",
            "",
            "```",
            prof["profile"],
            "```",
            "",
        ]
        hotspot = REPO / "bench" / "HOTSPOT.md"
        if hotspot.exists():
            md += [hotspot.read_text().strip(), ""]

    # Section 6 has its own command (make bench-storage, bench/instance_storage.py): kept as it stands.
    from bench.instance_storage import read_section, splice

    kept = read_section(args.out)
    md.append(f"_Benchmark wall time: {f(time.perf_counter() - t_all, 0)} s._")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md) + "\n")
    if kept:
        splice(args.out, kept)
    print(f"wrote {args.out}", file=sys.stderr)
    return args.out


if __name__ == "__main__":
    main()
