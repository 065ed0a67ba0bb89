"""Missing data as named gaps: classification, the circuit breaker, the ledger, venue selection, archive lag."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipelines import gaps
from pipelines.pulls import derivatives as ing
from pipelines.resources import build_resources
from pipelines.settings import parse_venues
from pipelines.sources.http import PayloadError, SourceError
from pipelines.warehouse import Warehouse

DAYS = [date(2025, 11, 17), date(2025, 11, 18), date(2025, 11, 19)]
DS = ing.BYBIT_FUNDING


def err(status: int | None, cls: type[SourceError] = SourceError) -> SourceError:
    return cls("request refused", endpoint="/x", params={"symbol": "BTCUSDT"}, status=status, body="nope")


@pytest.mark.parametrize(
    ("status", "cls", "reason"),
    [
        (451, SourceError, gaps.BLOCKED),
        (403, SourceError, gaps.BLOCKED),
        (404, SourceError, gaps.NOT_FOUND),
        (410, SourceError, gaps.NOT_FOUND),
        (500, SourceError, gaps.UNAVAILABLE),
        (503, SourceError, gaps.UNAVAILABLE),
        (429, SourceError, gaps.UNAVAILABLE),
        (None, SourceError, gaps.UNAVAILABLE),  # timeouts, dropped connections after the retries
        (200, PayloadError, gaps.PAYLOAD),  # a body that changed shape: refused before storage
        (400, SourceError, gaps.REFUSED),
        (200, SourceError, gaps.REFUSED),  # a venue error code with HTTP 200 (Bybit retCode, OKX code)
    ],
)
def test_classification(status, cls, reason) -> None:
    assert gaps.classify(err(status, cls)) == (reason, status)


def test_bybit_rate_limit_403_is_not_a_region_block() -> None:
    exc = SourceError(
        "request refused",
        endpoint="/v5/market/open-interest",
        params={},
        status=403,
        body="access too frequent",
    )
    assert gaps.classify(exc) == (gaps.RATE_LIMITED, 403) and gaps.RATE_LIMITED in gaps.TRIPS


def test_reason_wording() -> None:
    assert gaps.reason_text(gaps.BLOCKED, 451) == "blocked from this region (HTTP 451)"
    assert gaps.reason_text(gaps.NOT_FOUND, 404) == "not found (HTTP 404)"
    assert "after retries" in gaps.reason_text(gaps.UNAVAILABLE, None)


def _page(body: bytes) -> ing.Page:
    now = datetime(2025, 11, 20, tzinfo=timezone.utc).isoformat()
    return ing.Page(
        body, {"url": "http://x/y", "endpoint": "/y", "params": {}, "status": 200, "fetched_at": now}
    )


def test_circuit_breaker_asks_a_blocked_venue_once(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    calls: list[str] = []

    def fetch(key: str, first: date, last: date) -> list[ing.Page]:
        calls.append(key)
        raise err(451)

    breaker = gaps.Breaker()
    keys = [f"S{i}USDT" for i in range(20)]
    rep = ing.pull_days(wh, DS, keys, DAYS, fetch, force=False, workers=1, breaker=breaker)
    assert calls == ["S0USDT"]  # one refused request, not twenty
    assert len(rep.gaps) == 20 and {g.reason for g in rep.gaps} == {gaps.BLOCKED}
    assert all(g.days == ("2025-11-17", "2025-11-18", "2025-11-19") and g.status == 451 for g in rep.gaps)
    assert rep.pulls == 0 and not (wh.raw_dir / DS.source).exists()  # nothing stored: asked again next run
    assert breaker.blocked(DS.source) is not None and breaker.blocked("okx") is None
    # another dataset of the same venue in the same run is not asked at all
    rep2 = ing.pull_days(wh, ing.BYBIT_OI, keys[:3], DAYS, fetch, force=False, breaker=breaker)
    assert calls == ["S0USDT"] and len(rep2.gaps) == 3
    # named once in the report's wording
    lines = gaps.describe(rep.gaps + rep2.gaps)
    assert lines == [
        "Bybit: blocked from this region (HTTP 451) for funding, open interest "
        "(2025-11-17..2025-11-19); its figures are left out."
    ]


def test_breaker_per_run() -> None:
    a = gaps.breaker_for_run("run-a")
    a.trip("binance", err(451))
    assert gaps.breaker_for_run("run-b").blocked("binance") is None
    assert gaps.breaker_for_run("run-a").blocked("binance") is not None


def test_empty_answer_and_404_are_gaps_and_recovery_clears_the_ledger(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    answers = {"BTCUSDT": b'{"retCode":0,"result":{"list":[]}}', "ETHUSDT": None}

    def fetch(key: str, first: date, last: date) -> list[ing.Page]:
        if answers[key] is None:
            raise err(404)
        return [_page(answers[key])]

    rep = ing.pull_days(wh, DS, ["BTCUSDT", "ETHUSDT"], DAYS, fetch, force=False, breaker=gaps.Breaker())
    rep.record(wh)
    assert {(g.key, g.reason) for g in rep.gaps} == {("BTCUSDT", gaps.EMPTY), ("ETHUSDT", gaps.NOT_FOUND)}
    assert rep.pulls == 0 and not (wh.raw_dir / DS.source).exists()
    assert len(gaps.read_ledger(wh, DS.name)) == 2
    assert [g.days for g in gaps.gaps_for_days(wh, [date(2025, 11, 18)])] == [("2025-11-18",)] * 2
    # the venue answers on the next run: stored, and the ledger no longer names those days
    row = b'{"retCode":0,"result":{"list":[{"symbol":"BTCUSDT","fundingRate":"0.0001","fundingRateTimestamp":"1"}]}}'
    answers.update(BTCUSDT=row, ETHUSDT=row)
    rep = ing.pull_days(wh, DS, ["BTCUSDT", "ETHUSDT"], DAYS, fetch, force=False, breaker=gaps.Breaker())
    rep.record(wh)
    assert rep.pulls == 2 and not rep.gaps and gaps.read_ledger(wh, DS.name) == []


def test_ledger_keeps_days_not_asked_and_fred_is_replaced_whole(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    g = gaps.Gap("okx", "okx funding", "BTCUSDT", ("2025-11-17", "2025-11-18"), None, gaps.EMPTY)
    gaps.record_gaps(wh, "okx funding", [date(2025, 11, 17), date(2025, 11, 18)], [g])
    gaps.record_gaps(wh, "okx funding", [date(2025, 11, 18)], [])  # 11-18 asked again and answered
    assert [x.days for x in gaps.read_ledger(wh, "okx funding")] == [("2025-11-17",)]
    fred = gaps.Gap("fred", ing.FRED_DATASET, "DGS10", (), 404, gaps.NOT_FOUND)
    gaps.record_gaps(wh, ing.FRED_DATASET, [], [fred], replace_all=True)
    assert gaps.gaps_for_days(wh, [date(2025, 1, 1)]) == [fred]  # unpartitioned: named for any week
    gaps.record_gaps(wh, ing.FRED_DATASET, [], [], replace_all=True)
    assert gaps.read_ledger(wh, ing.FRED_DATASET) == []


def test_a_weeks_gaps_read_its_days_only_and_other_weeks_records_do_not_reorder_them(tmp_path: Path) -> None:
    """``gaps_for_days`` gives what the whole ledger restricted to the days gives, in the ledger's order of the
    days asked; records of other days (another week's) neither appear nor move the week's lines; a dataset's
    whole-ledger file of the older layout and the undated records are read too."""
    wh = Warehouse(tmp_path)
    week = [date(2025, 11, 17) + timedelta(days=i) for i in range(7)]

    def gap(key: str, reason: str, *days: date) -> gaps.Gap:
        return gaps.Gap("okx", "okx funding", key, tuple(d.isoformat() for d in days), None, reason)

    gaps.record_gaps(
        wh,
        "okx funding",
        week,
        [gap("BTCUSDT", gaps.EMPTY, week[4]), gap("BTCUSDT", gaps.NOT_FOUND, week[2])],
    )
    before = gaps.gaps_for_days(wh, week)
    assert [(g.reason, g.days) for g in before] == [
        (gaps.NOT_FOUND, ("2025-11-19",)),
        (gaps.EMPTY, ("2025-11-21",)),
    ]
    # the week before gets the same gap as the week's later record: merged in the ledger, where its first day
    # puts it before the other record; the week's lines stay as they were
    earlier = date(2025, 11, 10)
    gaps.record_gaps(wh, "okx funding", [earlier], [gap("BTCUSDT", gaps.EMPTY, earlier)])
    assert [g.reason for g in gaps.read_ledger(wh, "okx funding")] == [gaps.EMPTY, gaps.NOT_FOUND]
    assert gaps.gaps_for_days(wh, week) == before
    whole = [
        gaps.Gap(
            g.source,
            g.dataset,
            g.key,
            tuple(d for d in g.days if d in {x.isoformat() for x in week}),
            g.status,
            g.reason,
            g.detail,
        )
        for g in gaps.read_ledger(wh)
    ]
    assert sorted(gaps.gaps_for_days(wh, week), key=str) == sorted([g for g in whole if g.days], key=str)
    # the undated records and a whole-dataset file of the older layout
    fred = gaps.Gap("fred", ing.FRED_DATASET, "DGS10", (), 404, gaps.NOT_FOUND)
    gaps.record_gaps(wh, ing.FRED_DATASET, [], [fred], replace_all=True)
    legacy = gaps._legacy_path(wh, "bybit funding")
    gaps._write(
        legacy,
        [gaps.Gap("bybit", "bybit funding", "ETHUSDT", ("2025-11-18", "2025-12-25"), 403, gaps.BLOCKED)],
    )
    found = gaps.gaps_for_days(wh, week)
    assert fred in found
    assert [g.days for g in found if g.source == "bybit"] == [("2025-11-18",)]


def _model_ledger(calls: list[tuple[list[str], list[gaps.Gap]]]) -> list[gaps.Gap]:
    """The ledger's meaning, written plainly: each write replaces the records of the days it asked about and
    adds its records of other days."""
    state: dict[str, set[tuple]] = {}
    for asked, recorded in calls:
        for d in asked:
            state[d] = set()
        for g in recorded:
            for d in g.days:
                state.setdefault(d, set()).add((g.source, g.dataset, g.key, g.status, g.reason, g.detail))
    return gaps._merge(
        gaps.Gap(k[0], k[1], k[2], (d,), k[3], k[4], k[5]) for d, ks in state.items() for k in ks
    )


def test_the_ledger_reads_as_its_writes_replace_and_add_days_over_many_writes(tmp_path: Path) -> None:
    """Random writes of one dataset (days asked, records inside and outside them, days asked with no record),
    read back after each write by the whole ledger and by a week's days, equal the plain model of the ledger;
    the objects left are fewer than the writes (an object whose every day a later write asked is removed)."""
    import random

    rng = random.Random(7)
    wh = Warehouse(tmp_path)
    days = [(date(2025, 3, 1) + timedelta(days=i)).isoformat() for i in range(40)]
    calls: list[tuple[list[str], list[gaps.Gap]]] = []
    for _ in range(60):
        start = rng.randrange(len(days))
        asked = days[start : start + rng.choice([1, 2, 7, 20])]
        recorded = [
            gaps.Gap(
                "okx",
                "okx funding",
                key,
                tuple(sorted(rng.sample(days, rng.randint(1, 3)) + asked[:2])),
                None,
                rng.choice([gaps.EMPTY, gaps.NOT_FOUND]),
            )
            for key in rng.sample(["BTC", "ETH", "SOL"], rng.randint(0, 2))
        ]
        gaps.record_gaps(wh, "okx funding", asked, recorded)
        calls.append((asked, recorded))
        assert gaps.read_ledger(wh, "okx funding") == _model_ledger(calls)
        week = [date.fromisoformat(d) for d in days[start : start + 7]]
        want = {d.isoformat() for d in week}
        expected = [
            gaps.Gap(
                g.source,
                g.dataset,
                g.key,
                tuple(d for d in g.days if d in want),
                g.status,
                g.reason,
                g.detail,
            )
            for g in _model_ledger(calls)
        ]
        assert gaps.gaps_for_days(wh, week) == sorted([g for g in expected if g.days], key=gaps._ledger_order)
    assert len(list((tmp_path / "gaps" / "okx_funding").glob("*.json"))) < 60


def test_a_backfills_gaps_are_one_object_per_dataset_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    """Hundreds of days of one gap are one object (not one per day); the same days asked again leave one object,
    and asked again with no gap leave none."""
    wh = Warehouse(tmp_path)
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(500)]
    g = gaps.Gap("okx", "okx funding", "*", tuple(d.isoformat() for d in days), None, gaps.OUTSIDE_WINDOW)
    folder = tmp_path / "gaps" / "okx_funding"
    for _ in range(2):
        gaps.record_gaps(wh, "okx funding", days, [g])
        assert [p.name[:4] for p in folder.iterdir()] == ["run="]
        assert gaps.read_ledger(wh) == [g]
    gaps.record_gaps(wh, "okx funding", days, [])
    assert list(folder.iterdir()) == [] and gaps.read_ledger(wh) == []
    gaps.record_gaps(wh, "okx funding", days[:3], [])  # nothing to say: nothing written
    assert list(folder.iterdir()) == []
    with pytest.raises(ValueError, match=r"days must be ISO dates \(YYYY-MM-DD\), got \['2025/01/01'\]"):
        gaps.record_gaps(wh, "okx funding", ["2025/01/01"], [g])  # named by it, the object would not be read
    assert list(folder.iterdir()) == []


def _okx_gap(*days: date) -> gaps.Gap:
    """One record of OKX's funding for BTCUSDT over ``days``."""
    return gaps.Gap("okx", "okx funding", "BTCUSDT", tuple(d.isoformat() for d in days), None, gaps.EMPTY)


def test_a_write_is_read_as_the_latest_even_when_the_clock_went_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = Warehouse(tmp_path)
    day, next_day = date(2025, 11, 17), date(2025, 11, 18)

    gaps.record_gaps(wh, "okx funding", [day, next_day], [_okx_gap(day, next_day)])
    monkeypatch.setattr(gaps.time, "time_ns", lambda: 1)  # a clock set back since
    gaps.record_gaps(wh, "okx funding", [day], [])  # the first object keeps its other day: both are read
    assert len(list((tmp_path / "gaps" / "okx_funding").iterdir())) == 2
    assert gaps.read_ledger(wh) == [_okx_gap(next_day)]


def test_a_weeks_gaps_open_only_the_objects_that_may_hold_its_days_and_read_the_per_day_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gaps_for_days`` opens the objects whose days (from their names) may include the week's, not the whole
    log; a day's object of the per-day layout is read as older than any write, and a write of its day removes it."""
    wh = Warehouse(tmp_path)
    week = [date(2025, 11, 17) + timedelta(days=i) for i in range(7)]

    folder = tmp_path / "gaps" / "okx_funding"
    folder.mkdir(parents=True)
    per_day = folder / "day=2025-11-18.json"
    gaps._write(per_day, [_okx_gap(week[1])])
    (folder / "day=2025-11-18.json.tmp").write_text("not read")  # another kind of file: left out
    gaps.record_gaps(wh, "okx funding", [date(2025, 10, 1)], [_okx_gap(date(2025, 10, 1))])
    gaps.record_gaps(wh, "okx funding", week[3:5], [_okx_gap(week[3])])
    opened: list[str] = []
    real = gaps._read_entry
    monkeypatch.setattr(gaps, "_read_entry", lambda e: (opened.append(e.path.name), real(e))[1])
    assert gaps.gaps_for_days(wh, week) == [_okx_gap(week[1], week[3])]
    assert len(opened) == 2 and "day=2025-11-18.json" in opened  # not October's object
    gaps.record_gaps(wh, "okx funding", week[:2], [])
    assert not per_day.exists() and gaps.gaps_for_days(wh, week) == [_okx_gap(week[3])]


def test_venue_selection_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_venues("") == ("binance", "bybit", "okx", "fred")
    assert parse_venues(" OKX, bybit ") == ("bybit", "okx")
    with pytest.raises(ValueError, match=r"unknown venue\(s\) kraken; valid: binance, bybit, okx, fred"):
        parse_venues("bybit,kraken")
    monkeypatch.setenv("CRYPTO_WEEKLY_VENUES", "bybit,okx")
    res = build_resources()
    assert (res["binance"].selected, res["bybit"].selected, res["okx"].selected, res["fred"].selected) == (
        False,
        True,
        True,
        False,
    )
    monkeypatch.setenv("CRYPTO_WEEKLY_VENUES", "binanse")
    with pytest.raises(ValueError, match="binanse"):
        build_resources()


class _Vision:
    class http:
        base_url = "http://vision"

        @staticmethod
        def get(path: str, expect_json: bool = False):
            raise SourceError("request refused", endpoint=path, params={}, status=404, body="<Error/>")


def test_archive_404_inside_the_publication_lag_is_asked_again() -> None:
    day = date(2025, 11, 28)
    path = "/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2025-11-28.zip"
    early = datetime(2025, 11, 30, 12, tzinfo=timezone.utc)  # 1.5 days after the day closed
    late = datetime(2025, 12, 1, 0, tzinfo=timezone.utc)  # 2 days after: the lag has passed
    assert not ing.archive_published(early, day=day) and ing.archive_published(late, day=day)
    with pytest.raises(ing.NotPublishedYet) as exc:
        ing.verified_archive_page(_Vision, path, now=early, day=day)
    assert ing._classify(exc.value) == (gaps.PUBLICATION_LAG, 404)
    page = ing.verified_archive_page(_Vision, path, now=late, day=day)  # now recorded as missing upstream
    assert page.request["status"] == 404
    # monthly files: after the month ends plus the lag
    assert not ing.archive_published(datetime(2025, 12, 3, tzinfo=timezone.utc), month=date(2025, 11, 1))
    assert ing.archive_published(datetime(2025, 12, 6, tzinfo=timezone.utc), month=date(2025, 11, 1))


def test_perpetuals_without_binance_list_come_from_the_registry() -> None:
    import polars as pl

    reg = pl.DataFrame(
        {
            "coin_id": ["bitcoin", "tether", "ethereum", "solana"],
            "symbol": ["btc", "usdt", "eth", "sol"],
            "market_cap_rank": [1, 3, 2, 4],
            "categories": [["layer-1"], ["stablecoins"], ["layer-1"], ["layer-1"]],
        }
    )
    with_list = ing.perp_universe(reg, ["BTCUSDT", "SOLUSDT"], 3)
    without = ing.perp_universe(reg, None, 3)
    assert with_list == ["BTCUSDT", "SOLUSDT"]
    assert without == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]  # no stablecoin; each venue answers for itself


def test_clean_coverage_names_missing_days_venues_and_symbols() -> None:
    import polars as pl

    from assets.derivatives.clean import coverage_gaps

    def rows(*pairs: tuple[str, str]) -> pl.DataFrame:
        return pl.DataFrame({"exchange": [p[0] for p in pairs], "symbol": [p[1] for p in pairs]})

    frames = {
        DAYS[0]: rows(("bybit", "BTCUSDT"), ("bybit", "DOGEUSDT"), ("okx", "BTCUSDT")),
        DAYS[1]: rows(("bybit", "BTCUSDT"), ("okx", "BTCUSDT")),
        DAYS[2]: rows(),
    }
    assert coverage_gaps(frames, ("binance", "bybit", "okx")) == [
        "no rows at all on 1 day(s): 2025-11-19",
        "binance: no rows on 2 day(s): 2025-11-17, 2025-11-18",
        "bybit DOGEUSDT: no rows on 1 day(s): 2025-11-18",
    ]


def test_venue_left_out_materializes_a_not_selected_gap_without_requests(tmp_path: Path) -> None:
    import dagster as dg

    from assets.derivatives.raw import raw_bybit_derivatives
    from assets.macro.raw import raw_fred_series
    from pipelines.resources import BybitResource, FredResource, WarehouseResource

    now = "2025-12-02T06:00:00+00:00"
    nowhere = "http://127.0.0.1:9"  # any request would fail (and be named unavailable, not "not selected")
    resources = {
        "warehouse": WarehouseResource(root=str(tmp_path)),
        "bybit": BybitResource(base_url=nowhere, selected=False, market_now=now),
        "fred": FredResource(base_url=nowhere, selected=False, market_now=now),
    }
    result = dg.materialize(
        [raw_bybit_derivatives, raw_fred_series], resources=resources, partition_key="2025-11-20"
    )
    assert result.success
    evals = result.get_asset_check_evaluations()
    assert {e.asset_key.to_user_string() for e in evals} == {"raw_bybit_derivatives", "raw_fred_series"}
    assert all(not e.passed and e.severity == dg.AssetCheckSeverity.WARN for e in evals)
    ledger = gaps.read_ledger(Warehouse(tmp_path))
    assert {(g.dataset, g.reason) for g in ledger} == {
        ("bybit funding", gaps.NOT_SELECTED),
        ("bybit open interest", gaps.NOT_SELECTED),
        (ing.FRED_DATASET, gaps.NOT_SELECTED),
    }
    assert "Bybit: not selected (CRYPTO_WEEKLY_VENUES) for funding, open interest (2025-11-20)" in " ".join(
        gaps.describe(ledger)
    )


class _NeverAsked:
    """A client no request may reach: any call is a test failure."""

    def __getattr__(self, name: str):
        raise AssertionError(f"{name} asked for a day outside the venue's window")


def test_days_outside_a_venue_window_are_not_asked_and_are_one_named_gap_per_dataset(tmp_path: Path) -> None:
    now = datetime(2025, 12, 2, 6, tzinfo=timezone.utc)
    old = [
        date(2025, 5, 1),
        date(2025, 5, 2),
    ]  # older than OKX keeps (90 / 175 days) and the Binance REST window
    wh = Warehouse(tmp_path)
    okx = ing.pull_okx(_NeverAsked(), wh, ["BTCUSDT"], old, now)
    assert (okx.requests, okx.unreachable_days) == (0, 4)
    assert [(g.dataset, g.key, g.days, g.reason) for g in okx.gaps] == [
        (ds.name, "*", ("2025-05-01", "2025-05-02"), gaps.OUTSIDE_WINDOW)
        for ds in (ing.OKX_FUNDING, ing.OKX_OI)
    ]
    assert okx.gaps[1].detail == "OKX keeps this history from 2025-06-11 on"
    assert okx.asked == {ing.OKX_FUNDING.name: set(old), ing.OKX_OI.name: set(old)}
    stats = ing.pull_binance_stats(
        _NeverAsked(), _NeverAsked(), wh, ["BTCUSDT"], old, now, archive_start=date(2025, 6, 1)
    )
    assert (stats.requests, stats.unreachable_days, stats.asked) == (0, 2, {ing.BINANCE_OI.name: set(old)})
    (gap,) = stats.gaps
    assert (gap.dataset, gap.reason) == (ing.BINANCE_OI.name, gaps.OUTSIDE_WINDOW)
    assert gap.detail == "before the REST window (2025-11-03) and the archive start (2025-06-01)"


def test_a_weeks_venue_lines_name_a_missing_table_and_fail_on_an_unreadable_one(tmp_path: Path) -> None:
    """With a venue's gap in the week, the report's gap lines say which venues the week's funding and open
    interest come from: no venue when the table has no partition at all; a partition that cannot be read fails
    the report instead of being printed as "no venue"."""
    import duckdb

    from assets.report import source_gap_lines

    wh = Warehouse(tmp_path)
    week = [date(2025, 11, 17) + timedelta(days=i) for i in range(7)]
    gaps.record_gaps(
        wh,
        "okx funding",
        week,
        [gaps.Gap("okx", "okx funding", "BTCUSDT", ("2025-11-18",), None, gaps.EMPTY)],
    )
    lines = source_gap_lines(wh, "2025-11-17")
    assert "Funding: no venue has data this week." in lines
    assert "Open interest: no venue has data this week." in lines
    broken = tmp_path / "lake" / "funding_rates" / "date=2025-11-18" / "data.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a parquet file")
    with pytest.raises(duckdb.Error, match="funding_rates/date=2025-11-18/data.parquet"):  # names the file
        source_gap_lines(wh, "2025-11-17")


def test_a_perpetual_without_settlements_on_some_days_its_venue_has_is_named() -> None:
    """A symbol missing days its venue settled on is named with the days it lacks (one day, or the first..last),
    venues and symbols in order; a venue whose every symbol has its every day, or no funding at all, names none."""
    import polars as pl

    from assets.report import _symbol_holes

    days = [date(2025, 11, 17) + timedelta(days=i) for i in range(7)]
    rows = (
        [("binance", "BTCUSDT", d) for d in days]
        + [("binance", "ETHUSDT", d) for d in days[:4]]
        + [("bybit", "DOGEUSDT", d) for d in days if d != days[2]]
        + [("bybit", "BTCUSDT", d) for d in days for _ in range(3)]  # several settlements a day
        + [("okx", "XRPUSDT", days[0])]  # the venue's only day: nothing lacking
    )
    funding = pl.DataFrame(rows, schema=["exchange", "symbol", "date"], orient="row")
    assert _symbol_holes(funding.reverse(), days) == [
        "Binance ETHUSDT: no funding settlements on 2025-11-21..2025-11-23 (delisted or no answer); the "
        "venue's other perpetuals are kept.",
        "Bybit DOGEUSDT: no funding settlements on 2025-11-19 (delisted or no answer); the venue's other "
        "perpetuals are kept.",
    ]
    assert _symbol_holes(None, days) == [] and _symbol_holes(funding.clear(), days) == []


def test_a_damaged_ledger_object_is_one_clear_error_naming_it(tmp_path: Path) -> None:
    """A ledger object that is not one (truncated, edited by hand) stops the read with a message naming the file
    and what to do, for the log's objects and for the per-day and undated ones alike."""
    wh = Warehouse(tmp_path)
    day = date(2025, 11, 17)
    g = gaps.Gap("okx", "okx funding", "BTCUSDT", (day.isoformat(),), None, gaps.EMPTY)
    gaps.record_gaps(wh, "okx funding", [day], [g])
    (obj,) = (tmp_path / "gaps" / "okx_funding").iterdir()
    for damaged in ('{"asked": ["2025-11-17"]', '{"asked": []}', "[1, 2]"):
        obj.write_text(damaged)
        with pytest.raises(ValueError, match=rf"gap ledger object {obj} is unreadable .*; remove it"):
            gaps.gaps_for_days(wh, [day])
    obj.unlink()
    (obj.parent / "day=2025-11-17.json").write_text("[{}]")
    with pytest.raises(ValueError, match=r"day=2025-11-17.json is unreadable \(KeyError"):
        gaps.read_ledger(wh)
