"""Lineage of a report: the weekly partitions its claims come from, the clean daily partitions behind the
week, and the raw pulls behind those (each clean row names its raw file in ``raw_file``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from pipelines.calendar import days_between, week_close_days
from pipelines.lake_files import LAKE_FILES
from pipelines.manifest import code_version, input_entries, input_entry
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
        keys = [d.isoformat() for d in days if wh.has_partition(table, d.isoformat())]
        raw_files = _raw_files(wh, table, keys)
        for entry in input_entries(wh, table, keys):
            entry["raw_files"] = raw_files[entry["partition"]]
            out.append(entry)
    return out


def _raw_files(wh: Warehouse, table: Table, partitions: list[str]) -> dict[str, list[str]]:
    """The distinct raw files each clean partition's rows were read from, sorted. Local files are read once per
    version of the file in this process (consecutive weeks share half their days), those not kept in one scan."""
    paths = {key: wh.partition_path(table, key) for key in partitions}
    if wh.remote:
        return {
            key: _distinct(wh.read_parquet(path, columns=["raw_file"])["raw_file"])
            for key, path in paths.items()
        }
    values = LAKE_FILES.file_values([str(p) for p in paths.values()], "raw_files", _read_raw_files)
    return {key: list(values[str(path)]) for key, path in paths.items()}


def _read_raw_files(paths: list[str]) -> dict[str, list[str]]:
    """Each file's distinct raw files, sorted: every file's ``raw_file`` column read in one scan (files whose
    column types differ, which one scan cannot read together, each read alone)."""
    try:
        rows = (
            pl.scan_parquet(paths, hive_partitioning=False, glob=False, include_file_paths=_FILE)
            .select(_FILE, "raw_file")
            .drop_nulls("raw_file")
            .unique()
            .group_by(_FILE)
            .agg(pl.col("raw_file").sort())
            .collect()
        )
    except (pl.exceptions.SchemaError, pl.exceptions.ColumnNotFoundError):
        return {
            path: _distinct(pl.read_parquet(path, columns=["raw_file"], glob=False)["raw_file"])
            for path in paths
        }
    out: dict[str, list[str]] = {path: [] for path in paths}
    out.update(dict(rows.iter_rows()))
    return out


def _distinct(raw: pl.Series) -> list[str]:
    return sorted(set(raw.drop_nulls().to_list()))


_FILE = "__lineage_file"


def weekly_inputs(wh: Warehouse, read: dict[str, list[str]]) -> list[dict[str, Any]]:
    out = []
    for name in sorted(read):
        out.extend(input_entries(wh, BY_NAME[name], read[name]))
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
