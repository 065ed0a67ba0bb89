"""``crypto-weekly status``: what a desk checks on Monday morning, read from the warehouse and the instance.

Which weeks are reported (``reports/<week>/``), which of them carry data gaps (the manifest's ``data_gaps``) or
failed checks (the latest evaluation of each check, from the Dagster instance), the last runs and how they
ended, and the lake's size per table. Reads only: nothing is started or written.
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.automation.tags import TRIGGER_TAG


def _reports(root: Path) -> list[dict[str, Any]]:
    out = []
    reports = root / "reports"
    for d in sorted(p for p in reports.iterdir() if p.is_dir()) if reports.is_dir() else []:
        entry: dict[str, Any] = {
            "week": d.name,
            "complete": all((d / n).exists() for n in ("report.md", "report.html", "manifest.json")),
        }
        try:
            man = json.loads((d / "manifest.json").read_text())
            entry["title"] = man.get("title", "")
            entry["data_gaps"] = list(man.get("data_gaps") or [])
        except (OSError, ValueError):
            entry["title"], entry["data_gaps"] = "", []
        out.append(entry)
    return out


def _failed_checks(instance: dg.DagsterInstance, limit: int = 5000) -> list[dict[str, Any]]:
    """The latest evaluation of each (asset, check, partition); those that did not pass."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION),
            limit=limit,
            ascending=False,
        )
    latest: dict[tuple, dict[str, Any]] = {}
    run_partition: dict[str, str | None] = {}
    for rec in records:
        entry = rec.event_log_entry
        ev = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        partition = getattr(ev, "partition", None)
        if partition is None and entry.run_id:
            if entry.run_id not in run_partition:
                run = instance.get_run_by_id(entry.run_id)
                tags = run.tags if run else {}
                rng = (
                    f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
                    if "dagster/asset_partition_range_start" in tags
                    else None
                )
                run_partition[entry.run_id] = tags.get("dagster/partition") or rng
            partition = run_partition[entry.run_id]
        key = (ev.asset_key.to_user_string(), ev.check_name, partition)
        if key in latest:
            continue  # newest first: an older evaluation is superseded
        latest[key] = {
            "asset": key[0],
            "check": key[1],
            "partition": partition,
            "passed": bool(ev.passed),
            "severity": getattr(ev.severity, "value", str(ev.severity)),
            "run_id": entry.run_id,
            "at": datetime.fromtimestamp(entry.timestamp, timezone.utc).isoformat(timespec="seconds"),
        }
    return [c for c in latest.values() if not c["passed"]]


def _run_error(instance: dg.DagsterInstance, run_id: str) -> str:
    """A failed run's first step error, as the asset raised it (not Dagster's wrapper)."""
    from pipelines.runner import _messages, _short

    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        err = getattr(rec.dagster_event.event_specific_data, "error", None)  # type: ignore[union-attr]
        if err is not None:
            return f"{rec.step_key}: {_short(_messages(err))}"[:300]
    return "see the run's logs in the UI"


def _runs(instance: dg.DagsterInstance, limit: int) -> list[dict[str, Any]]:
    out = []
    for rec in instance.get_run_records(limit=limit):
        run = rec.dagster_run
        tags = run.tags
        part = tags.get("dagster/partition") or (
            f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
            if "dagster/asset_partition_range_start" in tags
            else ""
        )
        start, end = rec.start_time, rec.end_time
        error = _run_error(instance, run.run_id) if run.status == dg.DagsterRunStatus.FAILURE else None
        out.append(
            {
                "run_id": run.run_id,
                "job": run.job_name,
                "partition": part,
                "status": run.status.value,
                "trigger": tags.get(TRIGGER_TAG, ""),
                "started": datetime.fromtimestamp(start, timezone.utc).isoformat(timespec="seconds")
                if start
                else None,
                "seconds": round(end - start, 1) if start and end else None,
                "error": error,
            }
        )
    return out


def _lake(root: Path) -> list[dict[str, Any]]:
    lake = root / "lake"
    out = []
    for table in sorted(p for p in lake.iterdir() if p.is_dir()) if lake.is_dir() else []:
        files = [f for f in table.rglob("*") if f.is_file() and not f.name.startswith(".")]
        out.append(
            {
                "table": table.name,
                "partitions": sum(1 for p in table.iterdir() if p.is_dir() and "=" in p.name),
                "files": len(files),
                "bytes": sum(f.stat().st_size for f in files),
            }
        )
    return out


def collect(root: Path, instance: dg.DagsterInstance, runs: int = 10) -> dict[str, Any]:
    reports = _reports(root)
    failed = _failed_checks(instance)
    by_week: dict[str, list[str]] = {}
    for c in failed:
        by_week.setdefault(c["partition"] or "", []).append(f"{c['asset']}:{c['check']}")
    for r in reports:
        r["failed_checks"] = sorted(by_week.get(r["week"], []))
    return {
        "warehouse": str(root),
        "reports": reports,
        "failed_checks": failed,
        "runs": _runs(instance, runs),
        "lake": _lake(root),
    }


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def render(st: dict[str, Any]) -> str:
    lines = [f"Warehouse: {st['warehouse']}", ""]
    reports = st["reports"]
    lines.append(
        f"Weeks reported: {len(reports)}"
        + (
            f" ({reports[0]['week']} .. {reports[-1]['week']})"
            if reports
            else " (none yet: crypto-weekly report)"
        )
    )
    for r in reports[-8:]:
        flags = []
        if not r["complete"]:
            flags.append("INCOMPLETE")
        if r["data_gaps"]:
            flags.append(f"{len(r['data_gaps'])} data gap(s)")
        if r["failed_checks"]:
            flags.append(f"failed checks: {', '.join(r['failed_checks'])}")
        lines.append(f"  {r['week']}  {'; '.join(flags) or 'ok'}")
    other = [c for c in st["failed_checks"] if c["partition"] not in {r["week"] for r in reports}]
    if other:
        lines += ["", f"Checks not passing outside the reported weeks (daily runs): {len(other)}"]
        lines += [
            f"  {c['partition'] or '-'}  {c['asset']}:{c['check']} ({c['severity']}, {c['at']})"
            for c in other[:10]
        ]
    lines += ["", "Last runs:"]
    lines += [
        f"  {r['started'] or '-':25} {r['status']:9} {r['job']:11} {r['partition']:23} "
        f"{'' if r['seconds'] is None else str(r['seconds']) + ' s'}  {r['run_id'][:8]}"
        + (f"\n      {r['error']}" if r.get("error") else "")
        for r in st["runs"]
    ]
    if not st["runs"]:
        lines.append("  none")
    lines += ["", "Lake:"]
    lines += [
        f"  {t['table']:32} {t['partitions']:5} partitions {t['files']:6} files {_size(t['bytes']):>10}"
        for t in st["lake"]
    ]
    if not st["lake"]:
        lines.append("  empty")
    return "\n".join(lines)
