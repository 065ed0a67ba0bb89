"""The set-based floor of the weekly tables: each table computed for every week of a range in one vectorized pass
over the clean tables read once into memory, written for speed and not by the project's code, so that the
benchmark measures the pipeline against the fastest plain computation of the same tables
(``bench/README.md``, "the set-based floor").

Each module of this package computes some of the weekly tables: ``TABLES``, the names it computes, and
``compute(lake, weeks)``, which returns ``{table: frame}``, one frame per table holding every week's rows, with
the table's columns (``pipelines.schemas``) and each week's rows in the order the project writes them. ``check``
compares them with the tables the project wrote for the same lake, week by week (``python -m bench.set_floor.check
WAREHOUSE``)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.schemas import TABLES

# The modules of the floor, each computing some of the weekly tables.
MODULES = (
    "bench.set_floor.market",
    "bench.set_floor.sectors",
    "bench.set_floor.derivatives",
    "bench.set_floor.macro",
)

# The clean tables the weekly tables read (every table of the lake partitioned by day, snapshot or series).
CLEAN_TABLES = (
    "coin_daily",
    "coin_registry",
    "global_market_cap",
    "funding_rates",
    "open_interest",
    "long_short_ratio",
    "perp_volume_daily",
    "btc_hourly",
    "macro_observations",
)

REL_TOLERANCE = 1e-9  # a float of the floor equals the project's within this (sums in another order)


class Lake(dict):
    """The clean tables in memory, ``{name: frame}``, and what the floor's modules derive from them alike, made
    once (``derived``)."""

    def __init__(self, tables: dict[str, pl.DataFrame]) -> None:
        super().__init__(tables)
        self._derived: dict[str, Any] = {}

    def derived(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]


def read_lake(warehouse: str | Path) -> Lake:
    """Every clean table of the lake under ``warehouse`` (its ``lake/`` folder) read whole into memory, each with
    its hive partition column (``date`` a Date, ``snapshot`` and ``series`` strings). A table with no partition
    is absent from the result."""
    lake = Path(warehouse) / "lake"
    out: dict[str, pl.DataFrame] = {}
    for name in CLEAN_TABLES:
        if not any((lake / name).glob("*/*.parquet")):
            continue
        by = TABLES[name].partition_by
        out[name] = pl.read_parquet(
            str(lake / name / "*" / "*.parquet"),
            hive_partitioning=True,
            hive_schema={by: pl.Date if by == "date" else pl.String},
        )
    return Lake(out)


def modules(tables: Iterable[str] | None = None) -> list:
    """The floor's modules (those computing one of ``tables``, when given)."""
    wanted = None if tables is None else set(tables)
    found = [importlib.import_module(m) for m in MODULES]
    return [m for m in found if wanted is None or wanted & set(m.TABLES)]


def compute_all(lake: Lake, weeks: list[str], tables: Iterable[str] | None = None) -> dict:
    """Every weekly table (or those of ``tables``) for ``weeks``: ``{table: frame of all the weeks}``."""
    wanted = None if tables is None else set(tables)
    out: dict[str, pl.DataFrame] = {}
    for module in modules(wanted):
        for name, frame in module.compute(lake, weeks).items():
            if wanted is None or name in wanted:
                out[name] = frame
    return out


def by_week(frame: pl.DataFrame, weeks: list[str]) -> dict[str, pl.DataFrame]:
    """A table's frame of every week split into one frame per week (``week_start``), in the frame's row order;
    a week without a row gets an empty frame."""
    parts = {
        d.isoformat(): f
        for (d,), f in frame.partition_by("week_start", as_dict=True, maintain_order=True).items()
    }
    return {w: parts.get(w, frame.clear()) for w in weeks}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def differences(table: str, got: pl.DataFrame, want: pl.DataFrame, week: str, limit: int = 5) -> list[str]:
    """How the floor's rows of ``table`` for ``week`` differ from the project's: columns and their types, the
    number of rows, then value by value in row order (floats within ``REL_TOLERANCE``). Empty when equal."""
    if got.schema != want.schema:
        return [f"{table} {week}: columns {dict(got.schema)} != the project's {dict(want.schema)}"]
    if got.height != want.height:
        return [f"{table} {week}: {got.height} rows != the project's {want.height}"]
    out = []
    for i, (g, w) in enumerate(zip(got.iter_rows(named=True), want.iter_rows(named=True), strict=True)):
        bad = [c for c in want.columns if not _same(g[c], w[c])]
        if bad:
            out.append(
                f"{table} {week} row {i}: " + ", ".join(f"{c}={g[c]!r} (project {w[c]!r})" for c in bad)
            )
            if len(out) >= limit:
                break
    return out


def table_differences(warehouse: str | Path, table: str, frame: pl.DataFrame, weeks: list[str]) -> list[str]:
    """How the floor's ``frame`` of ``table`` differs from the partitions the project wrote in the lake under
    ``warehouse``, week by week (``differences``, each week's rows conformed to the table's schema first), and any
    week the floor has rows for that the project did not write. Empty when equal."""
    split = by_week(frame, weeks)
    written = project_weeks(warehouse, table)
    out: list[str] = []
    for week in written:
        out += differences(
            table,
            conformed(table, split.get(week, frame.clear())),
            project_week(warehouse, table, week),
            week,
        )
    extra = [w for w, f in split.items() if f.height and w not in written]
    if extra:
        out.append(f"{table}: rows for weeks the project did not write: {', '.join(extra[:5])}")
    return out


def project_weeks(warehouse: str | Path, table: str) -> list[str]:
    """The weeks the project wrote ``table`` for in the lake under ``warehouse``."""
    return sorted(p.name.split("=", 1)[1] for p in (Path(warehouse) / "lake" / table).glob("week=*"))


def project_week(warehouse: str | Path, table: str, week: str) -> pl.DataFrame:
    """The partition the project wrote of ``table`` for ``week`` (empty, with the columns, when none)."""
    path = Path(warehouse) / "lake" / table / f"week={week}" / "data.parquet"
    return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=TABLES[table].polars_schema)


def conformed(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with exactly the table's declared columns and types (``Table.conform``: what the lake stores)."""
    return pl.from_arrow(TABLES[table].conform(frame))  # type: ignore[return-value]
