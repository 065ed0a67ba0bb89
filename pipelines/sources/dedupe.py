"""One row per key from a parsed payload: identical duplicates are dropped, conflicting ones raise.

APIs repeat points (overlapping pages, a third of the points duplicated): harmless when the rows are identical.
Two rows with the same key and instant but different values cannot both be right, and keeping the last one would
print a number picked silently, so the payload is refused with the key, the instant and both values named.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

# A parser of paged payloads asked for ``page_index=True`` adds this column: the position in its ``pages`` of the
# page each row was read from (the first such page when pages repeat a row), so that one parse of a pull's pages
# gives each row its raw file. Deduplication ignores it: the same row on two pages is one row, of the first page.
PAGE = "page"
PAGE_SCHEMA = {PAGE: pl.UInt32}


def page_numbers(counts: Sequence[int]) -> pl.Series:
    """The ``PAGE`` column of rows read page after page, ``counts[i]`` rows from page ``i``."""
    return pl.Series(PAGE, [i for i, n in enumerate(counts) for _ in range(n)], dtype=PAGE_SCHEMA[PAGE])


def paged(columns: list[str], page_index: bool) -> list[str]:
    """A parser's output columns, with ``PAGE`` last when it was asked for."""
    return [*columns, PAGE] if page_index else columns


class ConflictingDuplicates(ValueError):
    """Rows share a key but not their values."""


def unique_strict(
    df: pl.DataFrame, keys: list[str] | str, what: str, ignore: tuple[str, ...] = ()
) -> pl.DataFrame:
    """``df`` with identical duplicate rows dropped (first kept, order kept); raises ``ConflictingDuplicates``
    naming ``what``, the key, and the differing values when rows share ``keys`` but differ elsewhere (columns in
    ``ignore``, e.g. the raw file a row came from, are not compared)."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    if df.is_empty():
        return df
    # the common case, every key once: one pass answers it (nulls compare equal here, as in ``unique``)
    repeated = pl.col(keys[0]).is_duplicated() if len(keys) == 1 else pl.struct(keys).is_duplicated()
    if not df.select(repeated.any()).item():
        return df
    values = [c for c in df.columns if c not in keys and c not in ignore]
    deduped = df.unique([*keys, *values], keep="first", maintain_order=True)
    if deduped.height == deduped.select(keys).unique().height:
        return deduped
    clash = deduped.filter(pl.len().over(keys) > 1)
    first = clash.filter(pl.struct(keys) == clash.select(pl.struct(keys)).row(0)[0])
    key_text = ", ".join(f"{k}={first[k][0]}" for k in keys)
    diff = "; ".join(
        f"{c}: {' vs '.join(repr(v) for v in first[c].to_list())}" for c in values if first[c].n_unique() > 1
    )
    n = clash.select(keys).unique().height
    raise ConflictingDuplicates(
        f"{what}: {n} key(s) with conflicting duplicate rows, first {key_text} ({diff})"
    )
