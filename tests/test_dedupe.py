"""``unique_strict``: one row per key; identical repeats dropped (first kept, order kept), conflicting ones refused
with the key and both values named. Keys seen once come back as given. A pull's pages parsed together: each row
keeps the page (and raw file) it was first read from."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from pipelines.clean.derivatives import _parsed_pages
from pipelines.pulls.recorded import StoredPull
from pipelines.sources import binance, bybit, okx
from pipelines.sources.dedupe import PAGE, ConflictingDuplicates, unique_strict
from pipelines.warehouse import Warehouse


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


# ---- one parse of a pull's pages: each row keeps the page it was read from -------------------------------------
H = 3_600_000
T0 = 1_745_193_600_000  # 2025-04-21 00:00 UTC


def _kline(t: int, close: str) -> list:
    return [t, "1.0", "2.0", "0.5", close, "10.0", t + H - 1, "15.0", 7, "4.0", "6.0", "0"]


PAGED_PARSERS = {
    # parser: (one page from (instant, value) pairs)
    "binance funding": (
        binance.parse_funding_rates,
        lambda pts: [
            {"symbol": "BTCUSDT", "fundingTime": t, "fundingRate": v, "markPrice": "1"} for t, v in pts
        ],
    ),
    "binance open interest": (
        binance.parse_open_interest_hist,
        lambda pts: [
            {"symbol": "BTCUSDT", "sumOpenInterest": v, "sumOpenInterestValue": v, "timestamp": t}
            for t, v in pts
        ],
    ),
    "binance long/short": (
        binance.parse_long_short_ratio,
        lambda pts: [
            {
                "symbol": "BTCUSDT",
                "longShortRatio": "1.5",
                "longAccount": v,
                "shortAccount": "0.4",
                "timestamp": t,
            }
            for t, v in pts
        ],
    ),
    "binance klines": (binance.parse_klines, lambda pts: [_kline(t, v) for t, v in pts]),
    # a JSON number where a string is documented: the row-by-row path
    "binance klines, checked row by row": (
        binance.parse_klines,
        lambda pts: [[*_kline(t, v)[:1], 1.0, *_kline(t, v)[2:]] for t, v in pts],
    ),
    "bybit funding": (
        bybit.parse_funding_history,
        lambda pts: {
            "retCode": 0,
            "result": {
                "list": [
                    {"symbol": "BTCUSDT", "fundingRate": v, "fundingRateTimestamp": str(t)} for t, v in pts
                ]
            },
        },
    ),
    "bybit open interest": (
        bybit.parse_open_interest,
        lambda pts: {
            "retCode": 0,
            "result": {
                "symbol": "BTCUSDT",
                "list": [{"openInterest": v, "timestamp": str(t)} for t, v in pts],
            },
        },
    ),
    "okx funding": (
        okx.parse_funding_history,
        lambda pts: {
            "code": "0",
            "data": [{"instId": "BTC-USDT-SWAP", "fundingTime": str(t), "realizedRate": v} for t, v in pts],
        },
    ),
}


@pytest.mark.parametrize("name", list(PAGED_PARSERS))
def test_a_parsers_page_index_names_the_first_page_holding_each_row(name) -> None:
    parse, page = PAGED_PARSERS[name]
    # the second page repeats the first's last row and comes back out of order; the third is empty
    pages = [
        page([(T0, "0.1"), (T0 + 8 * H, "0.2")]),
        page([(T0 + 24 * H, "0.3"), (T0 + 8 * H, "0.2")]),
        page([]),
    ]
    indexed = parse(pages, page_index=True)
    assert indexed.columns[-1] == PAGE and indexed[PAGE].to_list() == [0, 0, 1]
    assert indexed.drop(PAGE).equals(parse(pages))
    # each page parsed alone, numbered by its position: the first page holding a row is the one named
    alone = pl.concat(
        parse([p], page_index=True).with_columns(pl.lit(i, pl.UInt32).alias(PAGE))
        for i, p in enumerate(pages)
    ).drop("interval_hours", strict=False)  # inferred from the neighbouring settlements, so from all pages
    values = [c for c in alone.columns if c != PAGE]
    first = alone.unique(values, keep="first", maintain_order=True)
    assert indexed.drop("interval_hours", strict=False).sort(values).equals(first.sort(values))
    with pytest.raises(ConflictingDuplicates, match="0.2 vs 0.9"):
        parse([pages[0], page([(T0 + 8 * H, "0.9")])], page_index=True)


def test_a_pulls_rows_keep_the_raw_file_of_their_page_and_a_clash_names_the_pull(tmp_path) -> None:
    parse, page = PAGED_PARSERS["bybit open interest"]
    wh = Warehouse(tmp_path)
    files = ("raw/bybit/open_interest/p/page-0.json", "raw/bybit/open_interest/p/page-1.json")
    bodies = [page([(T0, "1"), (T0 + H, "2")]), page([(T0 + H, "2"), (T0 + 2 * H, "3")])]
    for rel, body in zip(files, bodies, strict=True):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(body))
    pull = StoredPull(
        "BTCUSDT", date(2025, 4, 21), date(2025, 4, 21), datetime(2025, 4, 22, tzinfo=UTC), files, (200, 200)
    )
    rows = _parsed_pages(wh, pull, parse)
    assert rows["oi_base"].to_list() == [1.0, 2.0, 3.0]
    assert rows["raw_file"].to_list() == [files[0], files[0], files[1]]
    assert PAGE not in rows.columns
    (tmp_path / files[1]).write_text(json.dumps(page([(T0 + H, "2.5")])))
    with pytest.raises(
        ConflictingDuplicates, match=f"^{files[0]} and its pages: Bybit payload: .*2.0 vs 2.5"
    ):
        _parsed_pages(wh, pull, parse)
