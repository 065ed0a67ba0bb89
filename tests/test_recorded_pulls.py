"""The one recorded-pull model (pipelines/pulls/recorded.py): CoinGecko market-chart recordings, stored one file
a pull with the requested instants in ``from``/``to``, read into ``StoredPull`` and chosen like the paged pulls.

The rule the chart recordings were always read by, restated here as the reference: a pull covers day D when
``from <= close(D) <= to`` and it was fetched at or after ``close(D)`` (close(D) = D+1 00:00 UTC)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.pulls.coingecko import CHART_ENDPOINT, SOURCE, stored_chart_pulls
from pipelines.pulls.recorded import StoredPull, choose_pulls, close_instant, days_closing_within, uncovered
from pipelines.warehouse import Warehouse

UTC = timezone.utc
DAY = date(2025, 11, 20)
CLOSE = close_instant(DAY)  # 2025-11-21 00:00 UTC
SECOND = timedelta(seconds=1)


def reference_covers(start: datetime, end: datetime, fetched_at: datetime, day: date) -> bool:
    t = close_instant(day)
    return start <= t <= end and fetched_at >= t


def store_chart(
    wh: Warehouse, coin: str, start: datetime, end: datetime, fetched_at: datetime, as_text: bool = False
) -> str:
    """A market-chart recording as ``pull_market_charts`` stores it (``as_text``: from/to as strings)."""
    frm, to = int(start.timestamp()), int(end.timestamp())
    record = {
        "url": f"http://127.0.0.1/coins/{coin}/market_chart/range",
        "endpoint": f"/coins/{coin}/market_chart/range",
        "params": {
            "vs_currency": "usd",
            "from": str(frm) if as_text else frm,
            "to": str(to) if as_text else to,
        },
        "status": 200,
        "fetched_at": fetched_at.isoformat(),
        "attempts": 1,
    }
    name = f"{start:%Y%m%dT%H%M%SZ}_{end:%Y%m%dT%H%M%SZ}__{fetched_at:%Y%m%dT%H%M%SZ}"
    body = json.dumps({"prices": [], "market_caps": [], "total_volumes": []}).encode()
    return wh.store_raw(SOURCE, CHART_ENDPOINT, {"coin": coin}, name, body, record).relpath


# (from, to, fetched_at): the edges of the old rule
EDGES = {
    "to exactly the close, fetched at it": (CLOSE - timedelta(days=3), CLOSE, CLOSE),
    "to one second before the close": (CLOSE - timedelta(days=3), CLOSE - SECOND, CLOSE + timedelta(hours=5)),
    "to two hours after the close, fetched later": (
        CLOSE - timedelta(days=1),
        CLOSE + timedelta(hours=2),
        CLOSE + timedelta(hours=2),
    ),
    "fetched one second before the close": (
        CLOSE - timedelta(days=3),
        CLOSE + timedelta(hours=2),
        CLOSE - SECOND,
    ),
    "from exactly the close": (CLOSE, CLOSE + timedelta(days=2), CLOSE + timedelta(days=3)),
    "from one second after the close": (CLOSE + SECOND, CLOSE + timedelta(days=2), CLOSE + timedelta(days=3)),
    "from and to inside one day (no close)": (
        CLOSE + SECOND,
        CLOSE + timedelta(hours=23),
        CLOSE + timedelta(days=1),
    ),
    "from == to == the close": (CLOSE, CLOSE, CLOSE),
    "from after to": (CLOSE + timedelta(days=2), CLOSE, CLOSE + timedelta(days=3)),
    "not on a second boundary of UTC midnight": (
        datetime(2025, 11, 18, 13, 7, 11, tzinfo=UTC),
        datetime(2025, 11, 23, 0, 59, 59, tzinfo=UTC),
        datetime(2025, 11, 22, 17, 0, tzinfo=UTC),
    ),
}


@pytest.mark.parametrize("as_text", [False, True], ids=["int params", "text params"])
@pytest.mark.parametrize("case", list(EDGES))
def test_a_chart_recording_covers_exactly_the_days_the_old_rule_did(
    tmp_path, case: str, as_text: bool
) -> None:
    start, end, fetched_at = EDGES[case]
    wh = Warehouse(tmp_path)
    rel = store_chart(wh, "bitcoin", start, end, fetched_at, as_text)
    (pull,) = stored_chart_pulls(wh, "bitcoin")
    assert (pull.key, pull.files, pull.fetched_at, pull.statuses) == ("bitcoin", (rel,), fetched_at, (200,))
    for day in (DAY + timedelta(days=i) for i in range(-5, 6)):
        assert pull.covers(day) == reference_covers(start, end, fetched_at, day), (case, day)


def test_days_closing_within_at_the_edges() -> None:
    assert days_closing_within(CLOSE, CLOSE) == (DAY, DAY)
    assert days_closing_within(CLOSE - SECOND, CLOSE + SECOND) == (DAY, DAY)
    assert days_closing_within(CLOSE + SECOND, CLOSE + timedelta(days=1) - SECOND) == (
        DAY + timedelta(days=1),
        DAY,
    )  # no close inside: first > last
    assert days_closing_within(CLOSE - timedelta(days=2) + SECOND, CLOSE - SECOND) == (
        DAY - timedelta(days=1),
        DAY - timedelta(days=1),
    )


def test_the_newest_covering_recording_is_chosen_and_an_early_one_covers_nothing_after_its_fetch(
    tmp_path,
) -> None:
    wh = Warehouse(tmp_path)
    d0, d1, d2, d3, d4 = (DAY + timedelta(days=i) for i in range(-1, 4))
    later = timedelta(hours=2)
    old = store_chart(wh, "bitcoin", close_instant(d0), close_instant(d3) + later, close_instant(d3) + later)
    # newer, asked for d2..d4 but fetched one second before d4 closed: it covers d2 and d3, not d4
    early = store_chart(wh, "bitcoin", close_instant(d2), close_instant(d4), close_instant(d4) - SECOND)
    # newest, from one second before the close of d1 to exactly that close: it covers d1 alone
    edge = store_chart(wh, "bitcoin", close_instant(d1) - SECOND, close_instant(d1), close_instant(d4))
    pulls = stored_chart_pulls(wh, "bitcoin")
    assert [p.files[0] for p in pulls] == [old, early, edge]  # oldest first
    assert [(p.first, p.last) for p in pulls] == [(d0, d3), (d2, d4), (d1, d1)]
    days = [d0, d1, d2, d3, d4]
    chosen = {p.files[0]: pdays for p, pdays in choose_pulls({"bitcoin": pulls}, days).items()}
    assert chosen == {old: [d0], edge: [d1], early: [d2, d3]}  # d4: no pull covers it
    assert uncovered(pulls, days) == [d4]
    assert uncovered([p for p in pulls if p.files[0] == early], days) == [d0, d1, d4]


def test_a_body_without_its_record_is_not_a_pull(tmp_path) -> None:
    wh = Warehouse(tmp_path)
    rel = store_chart(wh, "bitcoin", CLOSE, CLOSE, CLOSE)
    wh.meta_path(wh.root / rel).unlink()  # an interrupted store: the body was written, the record never
    assert stored_chart_pulls(wh, "bitcoin") == []


def test_choice_does_not_depend_on_the_order_pulls_are_given_in() -> None:
    def pull(fetched_day: int, name: str) -> StoredPull:
        fetched = datetime(2025, 11, fetched_day, tzinfo=UTC)
        return StoredPull("BTCUSDT", date(2025, 11, 1), date(2025, 11, 10), fetched, (name,), (200,))

    a, b = pull(12, "a"), pull(15, "b")
    days = [date(2025, 11, 9), date(2025, 11, 10)]
    assert choose_pulls({"BTCUSDT": [a, b]}, days) == choose_pulls({"BTCUSDT": [b, a]}, days) == {b: days}


def test_paged_pulls_asked_for_days_read_only_the_pulls_near_them(tmp_path) -> None:
    """``stored_pulls`` with days: the same pulls as without, less those that cannot cover any of the days, and
    a pull named for other days is passed over without its records being read (a corrupt one does not stop it)."""
    from pipelines.pulls.derivatives import Dataset, Page, store_pull
    from pipelines.pulls.recorded import stored_pulls

    wh = Warehouse(tmp_path)
    ds = Dataset("funding", "binance", "funding_rate", "symbol")

    def store(first: date, last: date, pages: int = 1) -> list[str]:
        fetched = close_instant(last).isoformat()
        return store_pull(
            wh, ds, "BTCUSDT", first, last, [Page(b"[]", {"fetched_at": fetched}) for _ in range(pages)]
        )

    store(date(2025, 1, 1), date(2025, 3, 31), pages=2)  # long before
    store(date(2025, 6, 1), date(2025, 6, 7))  # meets the window at its first day
    store(date(2025, 6, 8), date(2025, 6, 8))  # inside
    late = store(date(2025, 6, 15), date(2025, 6, 20))  # after
    days = [date(2025, 6, 7), date(2025, 6, 8), date(2025, 6, 9)]

    every = stored_pulls(wh, "binance", "funding_rate")["BTCUSDT"]
    near = stored_pulls(wh, "binance", "funding_rate", days)["BTCUSDT"]
    assert [(p.first, p.last) for p in every] == [
        (date(2025, 1, 1), date(2025, 3, 31)),
        (date(2025, 6, 1), date(2025, 6, 7)),
        (date(2025, 6, 8), date(2025, 6, 8)),
        (date(2025, 6, 15), date(2025, 6, 20)),
    ]
    assert near == every[1:3]
    assert choose_pulls({"BTCUSDT": near}, days) == choose_pulls({"BTCUSDT": every}, days)
    assert stored_pulls(wh, "binance", "funding_rate", []) == {}

    (wh.root / late[0]).with_suffix(".meta.json").write_text("{not json")
    assert stored_pulls(wh, "binance", "funding_rate", days)["BTCUSDT"] == near
    with pytest.raises(json.JSONDecodeError):
        stored_pulls(wh, "binance", "funding_rate")


def test_an_empty_answer_is_every_page_without_rows_and_a_page_with_rows_ends_the_decoding(
    monkeypatch,
) -> None:
    """``is_empty_answer``: pages of zero rows in every known shape are empty; any page with rows (or of an
    unknown shape) is not, and the pages after the first with rows are not decoded (a pull of thousands of
    pages is decoded by its client already)."""
    from pipelines.pulls import derivatives as d

    def page(body: object) -> d.Page:
        return d.Page(json.dumps(body).encode(), {})

    empty = [page([]), page({"result": {"list": []}}), page({"data": []})]
    assert d.is_empty_answer(empty)
    assert not d.is_empty_answer([])
    assert not d.is_empty_answer([*empty, page({"unknown": 1})])
    decoded: list[bytes] = []
    loads = json.loads

    def counted(body, *args, **kwargs):
        decoded.append(body)
        return loads(body, *args, **kwargs)

    monkeypatch.setattr(d.json, "loads", counted)
    assert not d.is_empty_answer([page([]), page([[1]]), *empty * 100])
    assert len(decoded) == 2


def _newest_covering(pulls: dict[str, list[StoredPull]], days: list[date]) -> dict[StoredPull, list[date]]:
    """``choose_pulls`` by its definition: for each key and day, the first pull, newest first, covering it."""
    chosen: dict[StoredPull, list[date]] = {}
    for key_pulls in pulls.values():
        newest_first = sorted(key_pulls, key=lambda p: (p.fetched_at, p.files))[::-1]
        for d in days:
            best = next((p for p in newest_first if p.covers(d)), None)
            if best is not None:
                chosen.setdefault(best, []).append(d)
    return chosen


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BTCUSDT", "ETHUSDT"]),
            st.integers(0, 20),
            st.integers(0, 6),
            st.integers(-2, 30),
            st.integers(0, 23),
        ),
        max_size=12,
    ),
    st.lists(st.integers(-2, 25), max_size=15),
)
def test_the_chosen_pulls_are_the_newest_covering_each_day_in_days_order(specs, asked) -> None:
    """Every key's days, repeats and days outside every pull included, go to the pull the definition gives, in
    the days' order (pulls fetched the same instant told apart by their files, as the definition does)."""
    start = date(2025, 6, 1)
    pulls: dict[str, list[StoredPull]] = {}
    for i, (key, first, span, fetched_day, hour) in enumerate(specs):
        fetched = datetime(2025, 6, 1, hour, tzinfo=UTC) + timedelta(days=fetched_day)
        first_day = start + timedelta(days=first)
        pull = StoredPull(key, first_day, first_day + timedelta(days=span), fetched, (f"p{i}",), (200,))
        pulls.setdefault(key, []).append(pull)
    days = [start + timedelta(days=k) for k in asked]
    got = choose_pulls(pulls, days)
    assert got == _newest_covering(pulls, days) and list(got) == list(_newest_covering(pulls, days))
