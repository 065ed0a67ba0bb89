"""Lineage of a report: the weekly partitions its claims come from, the clean daily partitions behind the
week, and the raw pulls behind those (each clean row names its raw file in ``raw_file``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipelines.calendar import days_between, week_close_days
from pipelines.lake_files import LAKE_FILES
from pipelines.manifest import code_version, input_entry
from pipelines.narrative.data import BY_NAME
from pipelines.schemas import TABLES, Table
from pipelines.warehouse import Warehouse


def clean_inputs(wh: Warehouse, week: str) -> list[dict[str, Any]]:
    """Every clean daily partition the week's tables read (the week and the week before, as WEEK_FROM_DAYS
    maps them), with the distinct raw files its rows were read from."""
    open_day, close_day = week_close_days(week)
    days = days_between(open_day - timedelta(days=6), close_day)
    out = []
    for table in sorted(TABLES.values(), key=lambda t: t.name):
        if table.partition_by != "date" or "raw_file" not in table.column_names:
            continue
        for d in days:
            key = d.isoformat()
            if wh.has_partition(table, key):
                entry = input_entry(wh, table, key)
                entry["raw_files"] = _raw_files(wh, table, key)
                out.append(entry)
    return out


def _raw_files(wh: Warehouse, table: Table, partition: str) -> list[str]:
    """The distinct raw files a clean partition's rows were read from, sorted (of a local file: read once per
    version of the file in this process, as consecutive weeks share half their days)."""
    path = wh.partition_path(table, partition)

    def read() -> list[str]:
        raw = wh.read_parquet(path, columns=["raw_file"])["raw_file"]
        return sorted(set(raw.drop_nulls().to_list()))

    return list(read() if wh.remote else LAKE_FILES.file_value(str(path), "raw_files", read))


def weekly_inputs(wh: Warehouse, read: dict[str, list[str]]) -> list[dict[str, Any]]:
    out = []
    for name in sorted(read):
        for key in read[name]:
            out.append(input_entry(wh, BY_NAME[name], key))
    return out


def sources_for(wh: Warehouse, week: str, clean: list[dict[str, Any]]):
    """The Sources list of the report: every weekly partition a claim names, then the clean partitions."""

    def build(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        used = sorted({(c["table"], c["partition"]) for c in claims})
        entries = [input_entry(wh, BY_NAME[t], p) for t, p in used if wh.has_partition(BY_NAME[t], p)]
        for e in entries:
            e["partition"] = f"week={e['partition']}"
            e["raw_files"] = []
        for c in clean:
            entries.append({**c, "partition": f"date={c['partition']}"})
        return entries

    return build


def manifest(
    week: str,
    title: str,
    weekly: list[dict],
    clean: list[dict],
    facts: list[dict],
    claims: list[dict],
    charts: list[str],
    gaps: list[str],
) -> dict[str, Any]:
    return {
        "week": week,
        "title": title,
        "code": code_version(),
        "inputs": weekly + clean,
        "weekly_inputs_derived_from": [f"{c['table']}/date={c['partition']}" for c in clean],
        "facts": facts,
        "claims": claims,
        "charts": charts,
        "data_gaps": gaps,
    }
