"""The claim check: every figure printed in a report, re-derived from the lake with an independent query.

The renderer records, for each number it prints, a claim: the text printed, the named format, and where the
value lives (table, week partition, column, row key, derivation). This module does not look at the frames the
report was rendered from: it asks DuckDB for each value from the lake (one query per table and week for the
plain values, ``rederive``), formats it with the same named format and compares. The check fails when

* a claim's re-derived text differs from the text the renderer printed (wrong value, wrong row, wrong format),
* a claimed text is not in the Markdown (the text was edited after rendering),
* a number in the Markdown is not covered by any claim (a figure with no source), after masking fixed wording
  that contains digits (``FIXED_TERMS``, e.g. "Layer 2", "7-day") and the API strings as printed.

The lineage list under ``## Sources`` (partition keys and hashes) is not prose and is not scanned.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.narrative.data import table_week
from pipelines.narrative.format import FORMATS
from pipelines.narrative.vocabulary import FIXED_TERMS, SOURCES_HEADING
from pipelines.schemas import TABLES
from pipelines.warehouse import Warehouse

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


@dataclass
class ClaimResult:
    label: str  # the claim's source
    expected_text: str  # what a fresh query says should be printed
    printed_text: str  # what the renderer printed
    found: bool  # the printed text is in the Markdown
    ok: bool  # expected == printed and found
    problem: str = ""


def _sql_type(t: pa.DataType) -> str:
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    return "VARCHAR"


def _where(table_name: str, where: dict[str, Any]) -> tuple[str, list[Any]]:
    table = TABLES[table_name]
    types = {c.name: c.type for c in table.columns}
    sql, params = "", []
    for k, v in sorted(where.items()):
        if k not in types:
            raise ValueError(f"{table_name} has no column {k!r}")
        sql += f' AND "{k}" = CAST(? AS {_sql_type(types[k])})'
        params.append(str(v))
    return sql, params


_ASK = object()  # a key value whose row only the query itself can find (``_key_value``)
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")


def _key_value(t: pa.DataType, text: str) -> Any:
    """The value ``CAST(text AS <type of t>)`` gives, for the key column types a report's claims use and a text
    in the form Python writes such a value (``str(v)``), where Python reads it back exactly as DuckDB casts it: a
    text as itself, an integer's digits, a day's ISO date, a finite float's shortest repr (both read a decimal
    text to the nearest double). ``_ASK`` for any other type or form: that row is found by the query itself."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return text
    if pa.types.is_integer(t) and _INTEGER.fullmatch(text):
        return int(text)
    if pa.types.is_date(t):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return _ASK
        return day if day.isoformat() == text else _ASK
    if pa.types.is_floating(t):
        try:
            value = float(text)
        except ValueError:
            return _ASK
        return value if math.isfinite(value) and repr(value) == text else _ASK
    return _ASK


def row_key(name: str, where: dict[str, Any]) -> tuple | None:
    """The values the columns of ``where`` (sorted by name) must hold for a row of the weekly table ``name`` to
    be found as ``_where``'s ``= CAST(? AS <type>)`` conditions find it, each read from ``str(value)``
    (``_key_value``); None when a column is not the table's or a value is one only the query can find."""
    types = {c.name: c.type for c in TABLES[name].columns}
    if any(k not in types for k in where):
        return None
    key = tuple(_key_value(types[k], str(where[k])) for k in sorted(where))
    return None if any(v is _ASK for v in key) else key


def rows_by_key(
    wh: Warehouse, name: str, week: str, where: dict[str, Any], week_rows: dict[tuple[str, str], Any]
) -> tuple[pl.DataFrame, list[int]]:
    """The week's rows of the weekly table ``name`` and the positions of those whose columns ``where`` hold its
    values (``row_key``: a where it gives None for is the caller's own query), as ``_where``'s conditions find
    them (a null never equals). The rows are read once per table and week (``table_week``), kept in
    ``week_rows`` (a dict the caller keeps for one check) with an index per set of key columns; a read that
    fails raises for every caller, as its own query would."""
    wanted = row_key(name, where)
    if wanted is None:
        raise ValueError(f"{name}: the row {where!r} is found by its own query")
    key = (name, week)
    if key not in week_rows:
        try:
            week_rows[key] = (table_week(wh, name, week), {})
        except Exception as exc:  # each caller of the table-week reports it, as its own query would
            week_rows[key] = exc
    if isinstance(week_rows[key], Exception):
        raise week_rows[key]
    rows, indexes = week_rows[key]
    cols = tuple(sorted(where))
    if cols not in indexes:
        index: dict[tuple, list[int]] = {}
        for i, values in enumerate(rows.select(cols).iter_rows() if cols else ((),) * rows.height):
            index.setdefault(values, []).append(i)
        indexes[cols] = index
    return rows, indexes[cols].get(wanted, [])


def rederive(
    wh: Warehouse, claim: dict[str, Any], week_rows: dict[tuple[str, str], Any] | None = None
) -> Any:
    """The claim's value, from a fresh DuckDB query of the lake.

    ``week_rows`` (a dict the caller keeps for one check): a ``value`` claim whose row key ``row_key`` reads
    (text, integers, days, floats in the form Python writes them) is read from one query of its table's week
    (``SELECT *``, the same columns and types as the single-column query), made once per table and week, then
    the row picked by its key; a report prints about 130 figures from about 15 table-weeks. Everything else
    (the history claims, a key in another form) is its own query."""
    name, col, kind, week = claim["table"], claim["column"], claim["kind"], claim["partition"]
    if name not in TABLES or col not in TABLES[name].column_names or TABLES[name].partition_by != "week":
        raise ValueError(f"unknown weekly table or column {name}.{col}")
    where = claim.get("where") or {}
    w_sql, w_params = _where(name, where)
    if kind == "value" and week_rows is not None and row_key(name, where) is not None:
        rows, hits = rows_by_key(wh, name, str(week), where, week_rows)
        if len(hits) != 1:
            raise ValueError(f"{len(hits)} rows")
        return rows[col][hits[0]]
    if kind == "value":
        df = wh.query(
            f'SELECT "{col}" AS v FROM "{name}" WHERE week = CAST(? AS DATE){w_sql}', [week, *w_params]
        )
        if df.height != 1:
            raise ValueError(f"{df.height} rows")
        return df["v"][0]
    if kind == "count":
        return wh.query(
            f'SELECT count(*) AS v FROM "{name}" WHERE week = CAST(? AS DATE){w_sql}', [week, *w_params]
        )["v"][0]
    if kind in ("last_le", "last_ge"):
        op = "<=" if kind == "last_le" else ">="
        df = wh.query(
            f'SELECT max(week) AS v FROM "{name}" WHERE week < CAST(? AS DATE) AND "{col}" {op} '
            f'(SELECT "{col}" FROM "{name}" WHERE week = CAST(? AS DATE){w_sql})',
            [week, week, *w_params],
        )
        return df["v"][0]
    if kind in ("hist_max", "hist_max_week"):
        # the highest value of the column over the weeks up to the report's (and the latest week holding it)
        df = wh.query(
            f'SELECT week, "{col}" AS v FROM "{name}" WHERE week <= CAST(? AS DATE){w_sql} AND "{col}" IS NOT NULL '
            "ORDER BY v DESC, week DESC LIMIT 1",
            [week, *w_params],
        )
        if df.height != 1:
            raise ValueError("no history")
        return df["v"][0] if kind == "hist_max" else df["week"][0]
    if kind == "neg_streak":
        df = wh.query(
            f'SELECT week, "{col}" AS v FROM "{name}" WHERE week <= CAST(? AS DATE) ORDER BY week DESC',
            [week],
        )
        n, expect = 0, date.fromisoformat(week)
        for w, v in df.iter_rows():
            if w != expect or v is None or not v < 0:
                break
            n, expect = n + 1, expect - timedelta(days=7)
        return n
    raise ValueError(f"unknown claim kind {kind!r}")


def _mask_pattern(text: str) -> re.Pattern[str]:
    """``text`` where it stands as a whole figure: not preceded by a word character, a point or a comma when it
    starts with one, not followed by a word character when it ends with one. The literal comes first, and the
    condition on the character before it is a look-behind over that character and the literal, so that the
    engine searches for the literal (a pattern starting with a look-behind is tried at every position of the
    text, for each of a report's 150-odd masks)."""
    literal = re.escape(text)
    head = rf"(?<![\w.,]{literal})" if text[:1].isalnum() else ""
    tail = r"(?![\w])" if text[-1:].isalnum() else ""
    return re.compile(literal + head + tail)


def uncovered_numbers(markdown: str, claims: list[dict[str, Any]], texts: list[str]) -> list[str]:
    """Numbers in the prose that no claim, API string or fixed term accounts for."""
    body = markdown.split("\n" + SOURCES_HEADING + "\n", 1)[0]
    body = re.sub(r"!\[[^\]]*\]\(charts/[a-z_]+\.svg\)", " ", body)  # chart embeds
    masks = sorted({c["text"] for c in claims} | set(texts) | set(FIXED_TERMS), key=len, reverse=True)
    for m in masks:
        if m:
            body = _mask_pattern(m).sub(" \u00a7 ", body)
    return _NUMBER.findall(body)


def check_claims(
    wh: Warehouse, week: str, markdown: str, claims: list[dict[str, Any]], texts: list[str]
) -> list[ClaimResult]:
    out: list[ClaimResult] = []
    week_rows: dict[tuple[str, str], Any] = {}  # one query per table-week for the value claims (rederive)
    for c in claims:
        found = _mask_pattern(c["text"]).search(markdown) is not None
        try:
            if c["partition"] > week:
                raise ValueError("claim from a later week than the report")
            expected = FORMATS[c["format"]](rederive(wh, c, week_rows))
            ok, problem = expected == c["text"] and found, ""
            if expected != c["text"]:
                problem = "value differs"
            elif not found:
                problem = "not in the text"
        except Exception as exc:
            expected, ok, problem = "", False, f"cannot re-derive: {exc}"
        out.append(ClaimResult(c["source"], expected, c["text"], found, ok, problem))
    for token in uncovered_numbers(markdown, claims, texts):
        out.append(ClaimResult("(no claim)", "", token, True, False, "number in the text without a claim"))
    if not claims:
        out.append(ClaimResult("(no claims)", "", "", False, False, "the report has no claims"))
    return out
