"""``coin_daily`` from stored market charts: every chart chosen is parsed in one pass, each (coin, day) takes its
close from the newest pull covering it, and a chart that cannot be cleaned is named by its raw file."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from pipelines.clean import coingecko as clean_coingecko
from pipelines.clean.coingecko import build_coin_daily, closes
from pipelines.pulls.coingecko import CHART_ENDPOINT, SOURCE
from pipelines.schemas import COIN_DAILY
from pipelines.sources.coingecko import parse_market_chart
from pipelines.sources.http import PayloadError
from pipelines.warehouse import Warehouse

DAY = 86_400_000


def _ms(d: date, minutes: int = 0) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000) + minutes * 60_000


def _store(wh: Warehouse, coin: str, first: date, last: date, fetched: datetime, body: object) -> str:
    # epoch seconds, from the first day's close to an hour past the last's
    params = {"from": _ms(first + timedelta(days=1)) // 1000, "to": _ms(last + timedelta(days=1), 60) // 1000}
    raw = wh.store_raw(
        SOURCE,
        CHART_ENDPOINT,
        {"coin": coin},
        fetched.strftime("%Y%m%dT%H%M%SZ"),
        json.dumps(body).encode(),
        {"params": params, "fetched_at": fetched.isoformat(), "status": 200},
    )
    return raw.relpath


def _chart(days: list[date], price: float, minutes: int = 0) -> dict:
    # a close just after each midnight closing the day before, and a live point mid-day that is never a close
    pts = [(_ms(d + timedelta(days=1), minutes), price + i) for i, d in enumerate(days)]
    pts.append((_ms(days[-1] + timedelta(days=1), 13 * 60), 999.0))
    return {
        "prices": [[t, p] for t, p in pts],
        "market_caps": [[t, p * 1e9] for t, p in pts],
        "total_volumes": [[t, p * 1e6] for t, p in pts],
    }


@pytest.mark.parametrize("per_parse", [1, 2, 50])  # each chart alone, a pass split across coins, all in one
def test_each_coin_and_day_takes_the_close_of_the_newest_pull_covering_it(
    tmp_path, monkeypatch, per_parse
) -> None:
    monkeypatch.setattr(clean_coingecko, "CHARTS_PER_PARSE", per_parse)
    wh = Warehouse(tmp_path)
    d1, d2, d3 = date(2025, 4, 21), date(2025, 4, 22), date(2025, 4, 23)
    registry = pl.DataFrame(
        {"coin_id": ["bitcoin", "ethereum", "newcoin"], "symbol": ["btc", "eth", "new"]}
    ).with_columns(name=pl.col("coin_id").str.to_titlecase())
    late = datetime(2025, 4, 25, 2, tzinfo=UTC)
    old_btc = _store(wh, "bitcoin", d1, d3, datetime(2025, 4, 24, 2, tzinfo=UTC), _chart([d1, d2, d3], 100.0))
    new_btc = _store(wh, "bitcoin", d2, d3, late, _chart([d2, d3], 200.0, minutes=5))
    eth = _store(wh, "ethereum", d1, d3, late, _chart([d1, d3], 10.0))  # no close for d2: a gap, not filled
    frames, missing = build_coin_daily(wh, registry, [d1, d2, d3])
    got = {d: f.select("coin_id", "price_usd", "raw_file").rows() for d, f in frames.items()}
    assert got[d1] == [("bitcoin", 100.0, old_btc), ("ethereum", 10.0, eth)]
    assert got[d2] == [("bitcoin", 200.0, new_btc)]
    assert got[d3] == [("bitcoin", 201.0, new_btc), ("ethereum", 11.0, eth)]
    assert missing == {d1: ["newcoin"], d2: ["ethereum", "newcoin"], d3: ["newcoin"]}
    # the same rows as each chart cleaned alone
    alone = closes(parse_market_chart(json.loads((tmp_path / new_btc).read_bytes())))
    assert alone.filter(pl.col("day") == d3)["market_cap"].item() == frames[d3]["market_cap_usd"][0]
    assert frames[d3]["observed_at"][0] == datetime(2025, 4, 24, 0, 5, tzinfo=UTC)
    assert frames[d3].columns == COIN_DAILY.column_names  # the table's columns, its partition column aside


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"prices": [[1, 2, 3]], "market_caps": [], "total_volumes": []}, "bad point in 'prices'"),
        ("not json", "not JSON"),
        ({"prices": [[DAY, 1.0], [DAY, 2.0]], "market_caps": [], "total_volumes": []}, r"price: 1.0 vs 2.0"),
    ],
)
def test_a_chart_that_cannot_be_cleaned_is_named_by_its_raw_file(tmp_path, bad, named) -> None:
    wh = Warehouse(tmp_path)
    d1 = date(2025, 4, 21)
    registry = pl.DataFrame(
        {"coin_id": ["bitcoin", "ethereum"], "symbol": ["btc", "eth"], "name": ["B", "E"]}
    )
    fetched = datetime(2025, 4, 23, tzinfo=UTC)
    _store(wh, "bitcoin", d1, d1, fetched, _chart([d1], 1.0))
    rel = _store(wh, "ethereum", d1, d1, fetched, _chart([d1], 1.0))
    (tmp_path / rel).write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(
        PayloadError, match=f"stored response {rel} cannot be cleaned .*({named}|Expecting value)"
    ):
        build_coin_daily(wh, registry, [d1])
