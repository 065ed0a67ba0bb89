"""Metadata shared by every asset: row counts, column schemas and a Markdown preview."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl

from pipelines.schemas import Table


def md_table(df: pl.DataFrame, limit: int = 10) -> str:
    """A small Markdown table of the first rows (pipes and newlines in values neutralised)."""
    if df.is_empty():
        return "_no rows_"
    head = df.head(limit)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v).replace("|", "\\|").replace("\n", " ")[:60]

    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in head.iter_rows()]
    if df.height > limit:
        lines.append(f"\n_{df.height - limit} more rows_")
    return "\n".join(lines)


def table_metadata(table: Table, df: pl.DataFrame, **extra: Any) -> dict[str, Any]:
    return {
        "dagster/row_count": df.height,
        "dagster/column_schema": table.dagster_column_schema(),
        "table": table.name,
        "preview": dg.MetadataValue.md(md_table(df)),
        **extra,
    }
