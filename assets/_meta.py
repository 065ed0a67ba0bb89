"""A Markdown preview of a frame, for asset metadata (a lake table's own metadata is ``assets/_lake_io.py``'s)."""

from __future__ import annotations

from typing import Any

import polars as pl


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
