"""The event log's cost in the daily backfill, on SQLite and on Postgres instance storage, in one invocation:

    python -m bench.instance_storage                       # 60 days, 8 perpetuals, every mode twice, interleaved
    python -m bench.instance_storage --results bench/RESULTS.md   # and put the section into RESULTS.md

Every mode runs the same ``daily_job`` over the same days as ONE run, the way the project runs a range
(``pipelines.runner.run_days``: partition-range tags, ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS``), from
the emulator with rate limits off and the same clock, into a fresh temporary warehouse, each in its own process
(``python -m bench.phases instance_storage``):

* ``sqlite``: ``dg.instance_for_test()``, Dagster's default storage (a SQLite file per run and an index file);
* ``postgres``: ``storage: postgres:`` on a PostgreSQL started here (``pipelines.services.Postgres``), a fresh
  database per run;
* ``... batched``: the same with ``DAGSTER_EVENT_BATCH_SIZE`` set. In Dagster 1.13 it buffers only the events
  emitted with batch metadata (the run's planned events, and the materializations of one output that covers
  several partitions) and hands a full buffer to ``EventLogStorage.store_event_batch``. Only Postgres implements
  that as one multi-row ``INSERT`` and one asset-index update, and only for a batch of materializations (or of
  observations) alone; SQLite and any mixed batch fall back to one ``store_event`` per event.

Per run: wall time of the run, CPU time of this process during it, the events the run wrote by type (read back
from the instance), the time inside the event-log writes (``instance.handle_new_event``: storage plus run-status
updates; and the storage calls alone), peak memory of the process, and for Postgres the CPU time its server
spent (the postmaster and the backends it reaped: one per connection, as dagster-postgres connects per write).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HEADING = "## 6. The event log on SQLite and on Postgres (daily backfill as one run)"
# What the figures say, written by hand for the measurement it names; appended to the section.
READING = REPO / "bench" / "EVENT_LOG.md"
BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"
PERPS_ENV = "CRYPTO_WEEKLY_PERP_TOP_N"


# Mode name -> (instance storage, DAGSTER_EVENT_BATCH_SIZE or 0). The batched size is set per invocation.
def modes(batch_size: int) -> dict[str, tuple[str, int]]:
    return {
        "sqlite": ("sqlite", 0),
        "postgres": ("postgres", 0),
        "postgres, batched": ("postgres", batch_size),
        "sqlite, batched": ("sqlite", batch_size),
    }


# ---- in the phase's process ------------------------------------------------------------------------------------
class WriteTimer:
    """Time spent inside wrapped methods, outermost call only per label and thread (a batch that falls back to
    one ``store_event`` per event counts once), summed over threads: wall time, and the calling thread's CPU time
    (``time.thread_time``: what the machine's load does not inflate). ``profile``: a cProfile of the calls only."""

    def __init__(self, profile: bool = False) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.profile = cProfile.Profile() if profile else None
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        # per label, the seconds and calls by what ``kind`` says a call carried (an event type, a batch's types)
        self.by_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))

    def wrap(
        self,
        obj: Any,
        method: str,
        label: str,
        count: Callable[..., int] = lambda *a, **k: 1,
        kind: Callable[..., str] | None = None,
    ) -> None:
        original = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._local, label, False):
                return original(*args, **kwargs)
            setattr(self._local, label, True)
            profiling = self.profile is not None and label == "storage"
            if profiling:
                self.profile.enable()
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                dt, dc = time.perf_counter() - t0, time.thread_time() - c0
                if profiling:
                    self.profile.disable()
                setattr(self._local, label, False)
                with self._lock:
                    self.seconds[label] += dt
                    self.cpu_seconds[label] += dc
                    self.calls[label] += 1
                    self.calls[f"{label}:{method}"] += 1
                    self.events[label] += count(*args, **kwargs)
                    if kind is not None:
                        slot = self.by_kind[label][kind(*args, **kwargs)]
                        slot[0] += dt
                        slot[1] += 1

        setattr(obj, method, timed)


def _batch_len(events: Any, *_: Any, **__: Any) -> int:
    return len(events)


def _event_kind(event: Any, *_: Any, **__: Any) -> str:
    return event.dagster_event_type.value if event.dagster_event_type else "LOG"


def _batch_kind(events: Any, *_: Any, **__: Any) -> str:
    return "batch: " + " + ".join(sorted({_event_kind(e) for e in events}))


def storage_run(
    storage: str,
    first: str,
    last: str,
    now: str,
    batch_size: int = 0,
    pg_db: dict[str, Any] | None = None,
    assets: list[str] | None = None,
    profile: bool = False,
) -> dict:
    """``daily_job`` over ``first..last`` as one run on ``storage`` (``sqlite``, or ``postgres`` with ``pg_db`` the
    ``postgres_db`` settings of dagster.yaml), the emulator's clock at ``now``,
    ``DAGSTER_EVENT_BATCH_SIZE=batch_size`` (0: one write per event); ``assets``: some of the job's assets only (the test); ``profile``: a cProfile of the storage calls
    (the top functions by cumulative time, in ``storage_profile``)."""
    import resource

    import dagster as dg

    from bench.common import Timer, emulator, temp_env
    from pipelines.pulls.derivatives import PERP_TOP_N
    from pipelines.runner import patched_environ, run_days

    if storage not in ("sqlite", "postgres"):
        raise ValueError(f"storage must be sqlite or postgres, not {storage!r}")
    if storage == "postgres" and not pg_db:
        raise ValueError("postgres storage needs pg_db")
    overrides = {"storage": {"postgres": {"postgres_db": pg_db}}} if storage == "postgres" else None
    os.environ.pop(BATCH_ENV, None)
    # 0 is set too: the project's range runs batch by default (pipelines.runner.range_run_environment)
    batch_env = {BATCH_ENV: str(batch_size)}
    t = Timer()
    writes = WriteTimer(profile)
    with (
        temp_env(),
        emulator(now=datetime.fromisoformat(now)),
        patched_environ(batch_env),
        dg.instance_for_test(overrides=overrides) as instance,
    ):
        from pipelines.definitions import make_definitions

        defs = make_definitions()
        event_storage = instance.event_log_storage
        writes.wrap(instance, "handle_new_event", "handle_new_event")
        writes.wrap(event_storage, "store_event", "storage", kind=_event_kind)
        writes.wrap(event_storage, "store_event_batch", "storage", _batch_len, _batch_kind)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        with t.lap("run"):
            run_id = run_days(
                first, last, instance, defs, trigger="bench", log_level="WARNING", assets=assets
            )
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        records = instance.get_records_for_run(run_id=run_id, limit=10_000_000).records
        by_type = Counter(
            (r.event_log_entry.dagster_event_type.value if r.event_log_entry.dagster_event_type else "LOG")
            for r in records
        )
        storage_class = type(event_storage).__name__
    return {
        "storage": storage,
        "storage_class": storage_class,
        "batch_size": batch_size,
        "first": first,
        "last": last,
        "days": (date.fromisoformat(last) - date.fromisoformat(first)).days + 1,
        "perps": PERP_TOP_N,
        "run_seconds": t.laps["run"],
        "run_cpu_seconds": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "events": len(records),
        "by_type": dict(by_type.most_common()),
        "handle_seconds": writes.seconds["handle_new_event"],
        "handle_calls": writes.calls["handle_new_event"],
        "handle_cpu_seconds": writes.cpu_seconds["handle_new_event"],
        "store_seconds": writes.seconds["storage"],
        "store_cpu_seconds": writes.cpu_seconds["storage"],
        "store_events": writes.events["storage"],
        "store_event_calls": writes.calls["storage:store_event"],
        "store_batch_calls": writes.calls["storage:store_event_batch"],
        "store_by_kind": {k: {"seconds": v[0], "calls": v[1]} for k, v in writes.by_kind["storage"].items()},
        "storage_profile": profile_text(writes.profile) if writes.profile else None,
    }


def profile_text(prof: cProfile.Profile, n: int = 30) -> str:
    """The top ``n`` functions by cumulative time, paths shortened to the package."""
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(n)
    text = out.getvalue()
    text = text[text.find("   ncalls") :] if "   ncalls" in text else text
    return "\n".join(
        line.split("site-packages/", 1)[0].rsplit(" ", 1)[0] + " " + line.split("site-packages/", 1)[1]
        if "site-packages/" in line
        else line
        for line in text.rstrip().splitlines()
    )


# ---- the driver --------------------------------------------------------------------------------------------------
def server_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children it has reaped (utime, stime, cutime, cstime of /proc/PID/stat):
    for the postmaster, its own work and every backend that has exited."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def create_database(pg: Any, name: str) -> dict[str, Any]:
    """A fresh database on the ``Postgres`` service; returns its ``postgres_db`` settings for dagster.yaml. The
    scheme names the driver installed (psycopg2): SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3."""
    from psycopg2 import sql

    con = pg._connect("postgres")
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        con.close()
    return {
        "username": pg.user,
        "password": "",
        "hostname": "127.0.0.1",
        "port": pg.port,
        "db_name": name,
        "scheme": "postgresql+psycopg2",
    }


def day_range(days: int) -> tuple[str, str, str]:
    """The last ``days`` days through the latest weekly partition's close, and the emulator clock for that week
    (``runner.demo_clock``: the Tuesday after it, as a report run would see it)."""
    from bench.common import daily_range_for, weekly_keys
    from pipelines.runner import demo_clock

    week = weekly_keys()[-1]
    last = daily_range_for([week])[1]
    first = last - timedelta(days=days - 1)
    return first.isoformat(), last.isoformat(), demo_clock(week).isoformat()


def measure(
    days: int = 60,
    perps: int = 8,
    repeats: int = 2,
    batch_size: int = 100,
    mode_names: list[str] | None = None,
    inprocess: bool = False,
    assets: list[str] | None = None,
    profile: bool = False,
) -> dict:
    """Every mode ``repeats`` times, interleaved (the order reversed on every other round), one process each
    (``inprocess``: in this one; ``assets``: some of the daily job's assets only). ``profile``: then one more run
    of each mode with its storage calls profiled (not in the timings)."""
    from bench.run import machine, run_phase
    from pipelines.runner import patched_environ
    from pipelines.services import Postgres

    all_modes = modes(batch_size)
    names = mode_names or list(all_modes)
    first, last, now = day_range(days)
    out: dict[str, Any] = {
        "days": days,
        "first": first,
        "last": last,
        "now": now,
        "perps": perps,
        "repeats": repeats,
        "batch_size": batch_size,
        "modes": names,
        "runs": [],
        "profiles": {},
        "machine": machine(),
    }
    t_all = time.perf_counter()
    need_pg = any(all_modes[n][0] == "postgres" for n in names)
    with (
        tempfile.TemporaryDirectory(prefix="crypto-bench-pg-") as tmp,
        patched_environ({PERPS_ENV: str(perps)}),
    ):
        pg = Postgres(tmp).start() if need_pg else None

        def one(name: str, tag: str, profiled: bool = False) -> dict:
            storage, batch = all_modes[name]
            kwargs: dict[str, Any] = {"storage": storage, "first": first, "last": last, "now": now}
            kwargs.update({"batch_size": batch} if batch else {})
            kwargs.update({"assets": assets} if assets else {})
            kwargs.update({"profile": True} if profiled else {})
            if storage == "postgres":
                slug = name.replace(", ", "_").replace(" ", "_")
                kwargs["pg_db"] = create_database(pg, f"bench_{slug}_{tag}")
            load = os.getloadavg()[0]
            cpu0 = server_cpu_seconds(pg.proc.pid) if pg and pg.proc else 0.0
            r = run_phase("instance_storage", kwargs, inprocess)
            cpu1 = server_cpu_seconds(pg.proc.pid) if pg and pg.proc else 0.0
            r.update(mode=name, loadavg_1min=load, pg_server_cpu_seconds=cpu1 - cpu0)
            return r

        try:
            for rep in range(repeats):
                for name in names if rep % 2 == 0 else list(reversed(names)):
                    out["runs"].append({**one(name, str(rep)), "repeat": rep})
            if profile:
                for name in names:
                    out["profiles"][name] = one(name, "profiled", profiled=True)["storage_profile"]
        finally:
            if pg is not None:
                pg.stop()
    out["loadavg_end"] = os.getloadavg()
    out["seconds"] = time.perf_counter() - t_all
    return out


# ---- the section -------------------------------------------------------------------------------------------------
def _f(x: float, nd: int = 1) -> str:
    return f"{x:,.{nd}f}"


def _table(head: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


FIGURES = (
    "run_seconds",
    "run_cpu_seconds",
    "handle_seconds",
    "store_seconds",
    "store_cpu_seconds",
    "pg_server_cpu_seconds",
    "peak_rss_mib",
    "events",
    "store_events",
    "store_event_calls",
    "store_batch_calls",
)


def summary(result: dict) -> dict[str, dict[str, float]]:
    """Per mode, the median over its repeats of each figure."""
    out = {}
    for name in result["modes"]:
        runs = [r for r in result["runs"] if r["mode"] == name]
        if runs:
            out[name] = {k: statistics.median(r[k] for r in runs) for k in FIGURES}
    return out


def kinds_summary(result: dict) -> dict[str, dict[str, tuple[float, float]]]:
    """Per mode and kind of storage call (event type, or a batch's types): the median seconds and calls."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for name in result["modes"]:
        runs = [r for r in result["runs"] if r["mode"] == name]
        kinds = {k for r in runs for k in r["store_by_kind"]}
        out[name] = {
            k: (
                statistics.median(r["store_by_kind"].get(k, {}).get("seconds", 0.0) for r in runs),
                statistics.median(r["store_by_kind"].get(k, {}).get("calls", 0) for r in runs),
            )
            for k in kinds
        }
    return out


def section(result: dict, command: str) -> str:
    s = summary(result)
    runs = result["runs"]
    first_run = runs[0]
    m = result["machine"]
    md = [
        HEADING,
        "",
        f"`{command}` ({result['seconds'] / 60:.1f} minutes), run on {m['date']}, commit `{m['commit']}`, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if k == "dagster")
        + f", dagster-postgres, {m['cpus']} CPUs shared with other jobs. `daily_job` over {result['days']} days "
        f"({result['first']}..{result['last']}, {first_run['perps']} perpetuals, CoinGecko's default universe) as "
        "ONE run through `pipelines.runner.run_days` (partition-range tags; one planned event per asset, "
        "`DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`), emulator clock "
        f"{result['now']}, rate limits off, a fresh temporary warehouse per run, each run in its own process; "
        f"every mode {result['repeats']} time(s), interleaved (order reversed every other round). `sqlite`: "
        "`dg.instance_for_test()` (Dagster's default storage: a SQLite file per run, and an index file every "
        "asset event is written to a second time). `postgres`: `storage: postgres:` on a local PostgreSQL "
        "(`pipelines.services.Postgres`: loopback TCP, `fsync=off`), a fresh database per run. `batched`: "
        f"`DAGSTER_EVENT_BATCH_SIZE={result['batch_size']}`. Load average at start "
        + ", ".join(f"{x:.2f}" for x in m["loadavg"])
        + ", at the end "
        + ", ".join(f"{x:.2f}" for x in result["loadavg_end"])
        + "; 1-minute load at the start of each run: "
        + ", ".join(f"{r['loadavg_1min']:.1f}" for r in runs)
        + ".",
        "",
        "Medians over the repeats. *run*: wall time of the run; *cpu*: this process's CPU time during it; "
        "*handle_new_event*: wall time inside `instance.handle_new_event` (every event: storage and run-status "
        "updates); *storage*: wall time inside `store_event`/`store_event_batch` of the event log storage, and "
        "*storage cpu* the calling thread's CPU time in them (what the machine's load inflates least); *pg server "
        "cpu*: the PostgreSQL server's CPU time during the run (its postmaster and the backends it reaped; it runs "
        "beside the run on the same two cores).",
        "",
        _table(
            [
                "mode",
                "run s",
                "cpu s",
                "events",
                "handle_new_event s",
                "storage s",
                "storage cpu s",
                "storage ms/event (cpu)",
                "storage calls (single + batch)",
                "pg server cpu s",
                "peak MiB",
            ],
            [
                [
                    name,
                    _f(v["run_seconds"]),
                    _f(v["run_cpu_seconds"]),
                    f"{v['events']:,.0f}",
                    _f(v["handle_seconds"], 2),
                    _f(v["store_seconds"], 2),
                    _f(v["store_cpu_seconds"], 2),
                    f"{1000 * v['store_seconds'] / max(v['store_events'], 1):.1f} "
                    f"({1000 * v['store_cpu_seconds'] / max(v['store_events'], 1):.1f})",
                    f"{v['store_event_calls']:,.0f} + {v['store_batch_calls']:,.0f}",
                    _f(v["pg_server_cpu_seconds"], 1) if name.startswith("postgres") else "-",
                    _f(v["peak_rss_mib"], 0),
                ]
                for name, v in s.items()
            ],
        ),
        "",
        "Every run:",
        "",
        _table(
            ["mode", "round", "run s", "handle_new_event s", "storage s", "storage cpu s", "load 1 min"],
            [
                [
                    r["mode"],
                    r["repeat"] + 1,
                    _f(r["run_seconds"]),
                    _f(r["handle_seconds"], 2),
                    _f(r["store_seconds"], 2),
                    _f(r["store_cpu_seconds"], 2),
                    _f(r["loadavg_1min"]),
                ]
                for r in runs
            ],
        ),
        "",
    ]
    ratios = []
    for num, den in (
        ("postgres", "sqlite"),
        ("postgres, batched", "postgres"),
        ("sqlite, batched", "sqlite"),
        ("postgres, batched", "sqlite"),
    ):
        if num in s and den in s:
            a, b = s[num], s[den]
            ratios.append(
                [
                    f"{num} / {den}",
                    _f(a["run_seconds"] / b["run_seconds"], 2),
                    _f(a["run_cpu_seconds"] / b["run_cpu_seconds"], 2),
                    _f(a["handle_seconds"] / b["handle_seconds"], 2),
                    _f(a["store_seconds"] / b["store_seconds"], 2),
                    _f(a["store_cpu_seconds"] / b["store_cpu_seconds"], 2),
                    _f(a["run_seconds"] - b["run_seconds"], 1),
                ]
            )
    if ratios:
        md += [
            "Ratios of the medians:",
            "",
            _table(
                ["ratio", "run", "run cpu", "handle_new_event", "storage", "storage cpu", "run difference s"],
                ratios,
            ),
            "",
        ]
    ks = kinds_summary(result)
    order = sorted(
        {k for v in ks.values() for k in v}, key=lambda k: -max(v.get(k, (0, 0))[0] for v in ks.values())
    )
    md += [
        "Where the storage time goes: wall seconds in the storage calls by what they carried (an event type, or "
        "a batch and its types), medians, with the calls in brackets:",
        "",
        _table(
            ["storage call", *ks],
            [
                [k]
                + [f"{_f(v[k][0], 2)} ({v[k][1]:,.0f})" if k in v and v[k][1] else "-" for v in ks.values()]
                for k in order
            ],
        ),
        "",
    ]
    counts = {(r["mode"], r["repeat"]): r["by_type"] for r in runs}
    same = len({tuple(sorted(c.items())) for c in counts.values()}) == 1
    top = sorted(first_run["by_type"].items(), key=lambda kv: -kv[1])
    md += [
        f"Events the run wrote, by type (read back from the instance, first run): "
        f"{'the same counts in every run of every mode' if same else 'counts DIFFER between runs: see below'}.",
        "",
        _table(
            ["event type", "events"], [[k, f"{v:,}"] for k, v in top] + [["all", f"{first_run['events']:,}"]]
        ),
        "",
    ]
    if not same:
        md += [
            _table(
                ["mode", "round", "events", "by type"],
                [
                    [m, rep + 1, sum(c.values()), ", ".join(f"{k} {v}" for k, v in c.items())]
                    for (m, rep), c in counts.items()
                ],
            ),
            "",
        ]
    for name, text in result.get("profiles", {}).items():
        if text:
            md += [
                f"cProfile of the storage calls only, `{name}` (one more run, not in the timings; top functions by "
                "cumulative time):",
                "",
                "```",
                "\n".join(text.splitlines()[:24]),
                "```",
                "",
            ]
    if READING.exists():
        md += [READING.read_text().strip(), ""]
    return "\n".join(md)


def _section_span(lines: list[str]) -> tuple[int, int] | None:
    """Where the section is in ``lines``: from ``HEADING`` to the next ``## `` heading or the closing wall-time
    line (``None``: not there)."""
    if HEADING not in lines:
        return None
    i = lines.index(HEADING)
    j = next(
        (k for k in range(i + 1, len(lines)) if lines[k].startswith(("## ", "_Benchmark wall time"))),
        len(lines),
    )
    return i, j


def read_section(results_md: Path) -> str | None:
    """The section as it stands in ``results_md`` (``make bench`` keeps it when it rewrites the file)."""
    lines = results_md.read_text().splitlines() if results_md.exists() else []
    span = _section_span(lines)
    return "\n".join(lines[span[0] : span[1]]).rstrip() + "\n" if span else None


def splice(results_md: Path, text: str) -> None:
    """Put ``text`` (a section starting with ``HEADING``) into ``results_md``: in place of the section with that
    heading, else before the closing wall-time line."""
    lines = results_md.read_text().splitlines() if results_md.exists() else []
    new = text.rstrip("\n").splitlines()
    span = _section_span(lines)
    if span:
        lines[span[0] : span[1]] = new + [""]
    else:
        j = next((k for k, ln in enumerate(lines) if ln.startswith("_Benchmark wall time")), len(lines))
        lines[j:j] = new + [""]
    results_md.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--perps", type=int, default=8, help="perpetuals followed (the tests' 8; production 40)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--batch-size", type=int, default=100, help="DAGSTER_EVENT_BATCH_SIZE of the batched modes"
    )
    ap.add_argument("--modes", nargs="+", choices=list(modes(1)), help="default: all")
    ap.add_argument("--results", type=Path, help="put the section into this RESULTS.md (else print it)")
    ap.add_argument("--profile", action="store_true", help="then one profiled run of each mode")
    ap.add_argument("--json", type=Path, help="also write every run's figures to this file")
    ap.add_argument(
        "--inprocess", action="store_true", help="run every mode in this process (peaks then mix)"
    )
    ap.add_argument("--render", type=Path, help="measure nothing: write the section from a --json file")
    args = ap.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
    else:
        result = measure(
            args.days,
            args.perps,
            args.repeats,
            args.batch_size,
            args.modes,
            args.inprocess,
            profile=args.profile,
        )
        result["command"] = shlex.join(
            [
                ".venv/bin/python",
                "-m",
                "bench.instance_storage",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        )
    text = section(result, result["command"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    if args.results:
        splice(args.results, text)
        print(f"wrote {HEADING!r} into {args.results}", file=sys.stderr)
    else:
        print(text)
    return result


if __name__ == "__main__":
    main()
