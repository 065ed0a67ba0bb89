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
import json
import os
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
    one ``store_event`` per event counts once), summed over threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def wrap(self, obj: Any, method: str, label: str, count: Callable[..., int] = lambda *a, **k: 1) -> None:
        original = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._local, label, False):
                return original(*args, **kwargs)
            setattr(self._local, label, True)
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                setattr(self._local, label, False)
                with self._lock:
                    self.seconds[label] += dt
                    self.calls[label] += 1
                    self.calls[f"{label}:{method}"] += 1
                    self.events[label] += count(*args, **kwargs)

        setattr(obj, method, timed)


def _batch_len(events: Any, *_: Any, **__: Any) -> int:
    return len(events)


def storage_run(
    storage: str,
    first: str,
    last: str,
    now: str,
    batch_size: int = 0,
    pg_db: dict[str, Any] | None = None,
) -> dict:
    """``daily_job`` over ``first..last`` as one run on ``storage`` (``sqlite``, or ``postgres`` with ``pg_db`` the
    ``postgres_db`` settings of dagster.yaml), the emulator's clock at ``now``,
    ``DAGSTER_EVENT_BATCH_SIZE=batch_size`` (0: unset)."""
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
    batch_env = {BATCH_ENV: str(batch_size)} if batch_size else {}
    t = Timer()
    writes = WriteTimer()
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
        writes.wrap(event_storage, "store_event", "storage")
        writes.wrap(event_storage, "store_event_batch", "storage", _batch_len)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        with t.lap("run"):
            run_id = run_days(first, last, instance, defs, trigger="bench", log_level="WARNING")
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
        "store_seconds": writes.seconds["storage"],
        "store_events": writes.events["storage"],
        "store_event_calls": writes.calls["storage:store_event"],
        "store_batch_calls": writes.calls["storage:store_event_batch"],
    }


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
) -> dict:
    """Every mode ``repeats`` times, interleaved (the order reversed on every other round), one process each."""
    from bench.run import run_phase
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
        "loadavg_start": os.getloadavg(),
    }
    t_all = time.perf_counter()
    need_pg = any(all_modes[n][0] == "postgres" for n in names)
    with (
        tempfile.TemporaryDirectory(prefix="crypto-bench-pg-") as tmp,
        patched_environ({PERPS_ENV: str(perps)}),
    ):
        pg = Postgres(tmp).start() if need_pg else None
        try:
            for rep in range(repeats):
                order = names if rep % 2 == 0 else list(reversed(names))
                for name in order:
                    storage, batch = all_modes[name]
                    kwargs: dict[str, Any] = {
                        "storage": storage,
                        "first": first,
                        "last": last,
                        "now": now,
                        "batch_size": batch,
                    }
                    if storage == "postgres":
                        slug = name.replace(", ", "_").replace(" ", "_")
                        kwargs["pg_db"] = create_database(pg, f"bench_{slug}_{rep}")
                    load = os.getloadavg()[0]
                    cpu0 = server_cpu_seconds(pg.proc.pid) if pg and pg.proc else 0.0
                    r = run_phase("instance_storage", kwargs, inprocess)
                    cpu1 = server_cpu_seconds(pg.proc.pid) if pg and pg.proc else 0.0
                    r.update(mode=name, repeat=rep, loadavg_1min=load, pg_server_cpu_seconds=cpu1 - cpu0)
                    out["runs"].append(r)
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


def summary(result: dict) -> dict[str, dict[str, float]]:
    """Per mode, the median over its repeats of each figure."""
    keys = (
        "run_seconds",
        "run_cpu_seconds",
        "handle_seconds",
        "store_seconds",
        "pg_server_cpu_seconds",
        "peak_rss_mib",
        "events",
        "store_events",
        "store_event_calls",
        "store_batch_calls",
    )
    out = {}
    for name in result["modes"]:
        runs = [r for r in result["runs"] if r["mode"] == name]
        if runs:
            out[name] = {k: statistics.median(r[k] for r in runs) for k in keys}
    return out


def section(result: dict, command: str) -> str:
    s = summary(result)
    runs = result["runs"]
    first_run = runs[0]
    md = [
        HEADING,
        "",
        f"`{command}` ({result['seconds'] / 60:.1f} minutes). `daily_job` over {result['days']} days "
        f"({result['first']}..{result['last']}, {first_run['perps']} perpetuals, CoinGecko's default universe) as "
        "ONE run through `pipelines.runner.run_days` (partition-range tags; one planned event per asset, "
        "`DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`), emulator clock "
        f"{result['now']}, rate limits off, a fresh temporary warehouse per run, each run in its own process; "
        f"every mode {result['repeats']} time(s), interleaved (order reversed every other round). `sqlite`: "
        "`dg.instance_for_test()` (Dagster's default storage: a SQLite file per run, and an index file every "
        "asset event is written to a second time). `postgres`: `storage: postgres:` on a local PostgreSQL "
        "(`pipelines.services.Postgres`: loopback TCP, `fsync=off`), a fresh database per run. `batched`: "
        f"`DAGSTER_EVENT_BATCH_SIZE={result['batch_size']}`. Load average (1 min) at start "
        + ", ".join(f"{x:.2f}" for x in result["loadavg_start"])
        + ", at the end "
        + ", ".join(f"{x:.2f}" for x in result["loadavg_end"])
        + ", per run "
        + ", ".join(f"{r['loadavg_1min']:.1f}" for r in runs)
        + " (2 shared cores).",
        "",
        "Medians over the repeats. *run*: wall time of the run; *cpu*: this process's CPU time during it; "
        "*handle_new_event*: time inside `instance.handle_new_event` (every event: storage and run-status "
        "updates); *storage*: inside `store_event`/`store_event_batch` of the event log storage; *pg server cpu*: "
        "the PostgreSQL server's CPU time during the run (it runs beside the run on the same two cores).",
        "",
        _table(
            [
                "mode",
                "run s",
                "cpu s",
                "events",
                "handle_new_event s",
                "storage s",
                "storage ms/event",
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
                    _f(1000 * v["store_seconds"] / max(v["store_events"], 1), 2),
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
            ["mode", "round", "run s", "handle_new_event s", "storage s", "load 1 min"],
            [
                [
                    r["mode"],
                    r["repeat"] + 1,
                    _f(r["run_seconds"]),
                    _f(r["handle_seconds"], 2),
                    _f(r["store_seconds"], 2),
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
                    _f(a["handle_seconds"] / b["handle_seconds"], 2),
                    _f(a["store_seconds"] / b["store_seconds"], 2),
                    _f(a["run_seconds"] - b["run_seconds"], 1),
                ]
            )
    if ratios:
        md += [
            "Ratios of the medians:",
            "",
            _table(["ratio", "run", "handle_new_event", "storage", "run difference s"], ratios),
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
    return "\n".join(md)


def splice(results_md: Path, text: str) -> None:
    """Put ``text`` (a section starting with ``HEADING``) into ``results_md``: in place of the section with that
    heading (up to the next ``## `` heading or the closing wall-time line), else before the closing line."""
    lines = results_md.read_text().splitlines() if results_md.exists() else []
    new = text.rstrip("\n").splitlines()
    if HEADING in lines:
        i = lines.index(HEADING)
        j = next(
            (k for k in range(i + 1, len(lines)) if lines[k].startswith(("## ", "_Benchmark wall time"))),
            len(lines),
        )
        lines[i:j] = new + [""]
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
    ap.add_argument("--json", type=Path, help="also write every run's figures to this file")
    ap.add_argument(
        "--inprocess", action="store_true", help="run every mode in this process (peaks then mix)"
    )
    args = ap.parse_args(argv)
    result = measure(args.days, args.perps, args.repeats, args.batch_size, args.modes, args.inprocess)
    command = shlex.join(
        [".venv/bin/python", "-m", "bench.instance_storage", *(argv if argv is not None else sys.argv[1:])]
    )
    text = section(result, command)
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
