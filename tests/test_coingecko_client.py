"""The CoinGecko client against the emulator: paging, parsing, faults, retries, secrets."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl
import pytest

from pipelines.emulator.server import Fault, MarketEmulator
from pipelines.sources.coingecko import (
    CoinGeckoClient,
    market_chart_errors,
    parse_market_chart,
    parse_markets,
)
from pipelines.sources.dedupe import ConflictingDuplicates
from pipelines.sources.http import HistoryLimitError, PayloadError, SourceError


def client_for(emu: MarketEmulator, waits: list[float] | None = None, **kw) -> CoinGeckoClient:
    sleeps = waits if waits is not None else []
    return CoinGeckoClient(
        emu.base_urls()["COINGECKO_BASE_URL"],
        calls_per_minute=0,
        sleep=sleeps.append,
        timeout=kw.pop("timeout", 5),
        **kw,
    )


def test_markets_pages_until_a_short_page(emulator: MarketEmulator) -> None:
    with client_for(emulator) as cg:
        pages = list(cg.markets_pages(top_n=250))
    assert len(pages) == 1 and len(pages[0].json()) == 189  # all 189 emulated coins, one page of up to 250
    with client_for(emulator) as cg:
        pages = list(cg.markets_pages(top_n=120, category=None))
    df = parse_markets([p.json() for p in pages])
    assert df.height >= 120 and df["market_cap_rank"][0] == 1


def test_market_chart_parses_to_typed_utc_frame(emulator: MarketEmulator) -> None:
    with client_for(emulator) as cg:
        fetched = cg.market_chart_range(
            "bitcoin", datetime(2025, 3, 1, tzinfo=timezone.utc), datetime(2025, 9, 1, tzinfo=timezone.utc)
        )
    df = parse_market_chart(fetched.json())
    assert df.schema == {
        "ts": pl.Datetime("ms", "UTC"),
        "price": pl.Float64,
        "market_cap": pl.Float64,
        "total_volume": pl.Float64,
    }
    assert df.height == 185 and df["ts"][0] == datetime(2025, 3, 1, tzinfo=timezone.utc)
    assert fetched.params == {"vs_currency": "usd", "from": 1740787200, "to": 1756684800}  # seconds in


def test_reference_sample_parses() -> None:
    sample = {
        "prices": [[1704067241331, 42261.0406175669], [1704070847420, 42493.2764087546]],
        "market_caps": [[1704067241331, 827596236151.196], [1704070847420, 831531023621.411]],
        "total_volumes": [[1704067241331, 14305769170.9498], [1704070847420, 14130205376.1709]],
    }
    df = parse_market_chart(sample)
    assert df["ts"][0] == datetime(2024, 1, 1, 0, 0, 41, 331000, tzinfo=timezone.utc)
    assert df["market_cap"][1] == pytest.approx(831531023621.411)


@pytest.mark.parametrize(
    "drifted",
    [
        {"prices": [[1, 2.0]], "market_caps": [[1, 2.0]]},  # a series missing
        {"prices": [["1", "2.0"]], "market_caps": [], "total_volumes": []},  # numbers as strings
        {"prices": [[1, 2.0, 3.0]], "market_caps": [], "total_volumes": []},  # extra field in a point
        [],  # not an object
    ],
)
def test_drifted_payloads_raise_payload_error(drifted) -> None:
    with pytest.raises(PayloadError):
        parse_market_chart(drifted)


def test_charts_checked_together_name_each_bad_one_as_alone() -> None:
    """The pull checks fetched charts in one parse; the errors are each chart's own, in its position."""
    good = {"prices": [[1, 2.0], [2, 3.0]], "market_caps": [[1, 5.0]], "total_volumes": []}
    conflicting = {"prices": [[1, 2.0], [1, 2.5]], "market_caps": [], "total_volumes": []}  # a point twice
    missing = {"prices": [[1, 2.0]], "market_caps": [[1, 2.0]]}
    charts = [
        (good, "/coins/a"),
        (conflicting, "/coins/b"),
        (good, "/coins/c"),
        ([], "/coins/d"),
        (missing, "/e"),
    ]
    errors = market_chart_errors(charts)
    assert [e is None for e in errors] == [True, False, True, False, False]
    for (body, endpoint), error in zip(charts, errors, strict=True):
        if error is None:
            parse_market_chart(body, endpoint=endpoint)
            continue
        with pytest.raises((PayloadError, ValueError)) as alone:
            parse_market_chart(body, endpoint=endpoint)
        assert type(error) is type(alone.value) and str(error) == str(alone.value)
    assert isinstance(errors[1], ConflictingDuplicates) and "ts_ms=1" in str(errors[1])
    assert isinstance(errors[3], PayloadError) and "/coins/d" in str(errors[3])
    assert market_chart_errors([(good, "/coins/a")] * 3) == [None] * 3
    assert market_chart_errors([]) == []


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "truncated", "invalid_json", "reset"])
def test_transient_faults_are_retried(fresh_emulator: MarketEmulator, kind: str) -> None:
    fresh_emulator.inject(Fault(api="coingecko", path="/coins/markets", kind=kind, times=2, retry_after=7))
    waits: list[float] = []
    with client_for(fresh_emulator, waits) as cg:
        pages = list(cg.markets_pages(top_n=50))
    assert len(pages[0].json()) == 50
    assert pages[0].attempts == 3
    assert len(waits) == 2
    if kind == "429":
        assert waits == [7.0, 7.0]  # Retry-After honoured


def test_timeout_is_retried(fresh_emulator: MarketEmulator) -> None:
    fresh_emulator.inject(Fault(api="coingecko", path="/ping", kind="timeout", times=1, delay=1.5))
    with client_for(fresh_emulator, timeout=0.5) as cg:
        fetched = cg.http.get("/ping")
    assert fetched.attempts == 2 and fetched.json()["gecko_says"]


def test_gives_up_with_a_clear_error(fresh_emulator: MarketEmulator) -> None:
    fresh_emulator.inject(Fault(api="coingecko", path="/coins/markets", kind="503", times=None))
    with client_for(fresh_emulator, max_attempts=3) as cg, pytest.raises(SourceError) as err:
        list(cg.markets_pages(top_n=10))
    msg = str(err.value)
    assert (
        "gave up after 3 attempts" in msg
        and "/coins/markets" in msg
        and "status=503" in msg
        and "per_page" in msg
    )


def test_client_errors_are_not_retried(fresh_emulator: MarketEmulator) -> None:
    with client_for(fresh_emulator) as cg, pytest.raises(SourceError) as err:
        cg.market_chart_range(
            "no-such-coin",
            datetime(2025, 5, 1, tzinfo=timezone.utc),
            datetime(2025, 5, 2, tzinfo=timezone.utc),
        )
    assert err.value.status == 404
    assert fresh_emulator.count("coingecko", "no-such-coin") == 1


def test_history_window_is_a_clear_non_retried_error() -> None:
    with (
        MarketEmulator(now=datetime(2026, 6, 1, tzinfo=timezone.utc), plan="demo") as emu,
        client_for(emu) as cg,
    ):
        with pytest.raises(HistoryLimitError) as err:
            cg.market_chart_range(
                "bitcoin",
                datetime(2025, 1, 2, tzinfo=timezone.utc),
                datetime(2025, 6, 1, tzinfo=timezone.utc),
            )
        assert "365 days" in str(err.value) and "COINGECKO_API_KEY" in str(err.value)
        assert emu.count("coingecko", "market_chart") == 1


def test_api_key_goes_in_the_header_and_nowhere_else(fresh_emulator: MarketEmulator) -> None:
    secret = "CG-sEcReT0123456789"
    seen: list[str | None] = []
    original = fresh_emulator._dispatch

    def spy(api, req, fault):
        seen.append(req.headers.get("x-cg-demo-api-key"))
        return original(api, req, fault)

    fresh_emulator._dispatch = spy  # type: ignore[method-assign]
    with client_for(fresh_emulator, api_key=secret) as cg:
        fetched = cg.http.get("/ping")
    assert seen == [secret]
    assert secret not in json.dumps(fetched.request_record())
    assert secret not in fetched.url


def test_pacing_spaces_calls() -> None:
    from pipelines.sources.http import HostLimiter

    slept: list[float] = []
    lim = HostLimiter(calls_per_minute=30, sleep=slept.append)
    for _ in range(3):
        lim.wait()
    # the clock does not move while "sleeping", so each call waits one more interval (2 s at 30 calls/min)
    assert len(slept) == 2 and 1.9 < slept[0] <= 2.0 and 3.9 < slept[1] <= 4.0


def test_charts_are_pulled_coins_at_once_and_reported_in_the_order_asked(fresh_emulator, tmp_path) -> None:
    """``pull_market_charts`` asks several coins at once; progress is told as each finishes, the report lists the
    coins in the order asked, a coin named twice is asked once, and a failed or unsafe coin is named."""
    from datetime import date

    from pipelines.pulls.coingecko import pull_market_charts
    from pipelines.warehouse import Warehouse

    # ethereum, asked first, answers last; solana fails
    fresh_emulator.inject(Fault(api="coingecko", path="/coins/ethereum/", kind="timeout", delay=1.5, times=1))
    fresh_emulator.inject(Fault(api="coingecko", path="/coins/solana/", kind="500", times=None))
    coins = ["ethereum", "bitcoin", "solana", "bitcoin", "cardano", "bad/id"]
    told: list[tuple[int, int, str]] = []
    with client_for(fresh_emulator, max_attempts=1) as cg:
        report = pull_market_charts(
            cg,
            Warehouse(tmp_path),
            coins,
            date(2025, 11, 1),
            date(2025, 11, 7),
            now=datetime(2025, 12, 1, tzinfo=timezone.utc),
            progress=lambda n, total, coin: told.append((n, total, coin)),
            workers=4,
        )
    assert report.requested == ["ethereum", "bitcoin", "cardano"]
    assert [f.split("/")[3] for f in report.files] == ["coin=ethereum", "coin=bitcoin", "coin=cardano"]
    assert report.skipped == ["bitcoin"]  # its second mention
    assert sorted(report.failed) == ["bad/id", "solana"] and "unsafe coin id" in report.failed["bad/id"]
    assert [n for n, _, _ in told] == [1, 2, 3, 4, 5] and {t for _, t, _ in told} == {5}
    assert told[-1][2] == "ethereum"  # told when it finished, after the others
    assert fresh_emulator.count("coingecko", "/coins/bitcoin/") == 1


def test_a_chart_giving_a_point_twice_with_two_values_is_refused_by_the_pull_naming_its_coin(
    fresh_emulator, tmp_path
) -> None:
    from datetime import date

    from pipelines.pulls.coingecko import pull_market_charts
    from pipelines.warehouse import Warehouse

    def twice(body: dict) -> dict:
        first = body["prices"][0]
        return {**body, "prices": [*body["prices"], [first[0], first[1] * 2]]}

    fresh_emulator.inject(
        Fault(api="coingecko", path="/coins/solana/", kind="drift", times=None, mutate=twice)
    )
    fresh_emulator.inject(
        Fault(api="coingecko", path="/coins/cardano/", kind="drift", times=None, mutate=list)
    )
    wh = Warehouse(tmp_path)
    with client_for(fresh_emulator, max_attempts=1) as cg:
        report = pull_market_charts(
            cg,
            wh,
            ["bitcoin", "solana", "ethereum", "cardano"],
            date(2025, 11, 1),
            date(2025, 11, 7),
            now=datetime(2025, 12, 1, tzinfo=timezone.utc),
        )
    assert sorted(report.failed) == ["cardano", "solana"]
    assert "payload not stored" in report.failed["solana"] and "conflicting" in report.failed["solana"]
    assert "/coins/solana/market_chart/range" in report.failed["solana"]
    assert "payload changed shape, not stored" in report.failed["cardano"]
    assert sorted(report.requested) == ["bitcoin", "ethereum"]
    stored = {p.parent.name for p in wh.raw_files("coingecko", "market_chart_range")}
    assert stored == {"coin=bitcoin", "coin=ethereum"}
