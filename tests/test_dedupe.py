"""``unique_strict``: one row per key; identical repeats dropped (first kept, order kept), conflicting ones refused
with the key and both values named. Keys seen once come back as given."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.sources.dedupe import ConflictingDuplicates, unique_strict


def test_rows_with_every_key_once_come_back_unchanged() -> None:
    df = pl.DataFrame({"k": [3, 1, 2], "j": ["a", "a", "b"], "v": [1.0, None, 2.0]})
    assert unique_strict(df, "k", "t").equals(df)
    assert unique_strict(df, ["j", "k"], "t").equals(df)


def test_identical_repeats_are_dropped_keeping_the_first_in_order() -> None:
    df = pl.DataFrame({"k": [2, 1, 2, 3, 1], "v": [5.0, 4.0, 5.0, 6.0, 4.0], "raw_file": list("abcde")})
    out = unique_strict(df, "k", "t", ignore=("raw_file",))
    assert out.to_dict(as_series=False) == {"k": [2, 1, 3], "v": [5.0, 4.0, 6.0], "raw_file": ["a", "b", "d"]}


@pytest.mark.parametrize(
    ("df", "keys", "named"),
    [
        (pl.DataFrame({"k": [1, 2, 1], "v": [1.0, 2.0, 1.5]}), "k", "k=1 (v: 1.0 vs 1.5)"),
        (
            pl.DataFrame({"k": [None, None], "v": [1.0, 2.0]}),
            "k",
            "k=None (v: 1.0 vs 2.0)",
        ),  # nulls are one key
        (
            pl.DataFrame({"s": ["A", "B", "A"], "t": [1, 1, 1], "v": [1.0, 1.0, 2.0]}),
            ["s", "t"],
            "s=A, t=1 (v: 1.0 vs 2.0)",
        ),
    ],
)
def test_conflicting_repeats_are_refused_naming_the_key_and_values(df, keys, named) -> None:
    with pytest.raises(
        ConflictingDuplicates, match=r"what: 1 key\(s\) with conflicting duplicate rows, first "
    ):
        unique_strict(df, keys, "what")
    with pytest.raises(ConflictingDuplicates) as err:
        unique_strict(df, keys, "what")
    assert named in str(err.value)
