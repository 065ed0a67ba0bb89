"""Faults from the emulator through the whole pipeline (raw pulls to report).

Set-up: a baseline warehouse holds the week of 2025-11-10 (days 2025-11-03..2025-11-16). Each test copies it,
injects one fault, and runs the next week (2025-11-17, days 2025-11-17..2025-11-23). A transient fault must be
retried and give exactly the lake and report of an undisturbed run; a lasting one must fail the run with an error
naming the endpoint and its parameters; a malformed answer must be refused before it is stored; a missing day must
be a visible gap. In every case the files stored before are byte-for-byte untouched.
"""

from __future__ import annotations

import itertools
import shutil
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from pipelines.calendar import week_close_days
from pipelines.emulator.server import Fault, MarketEmulator
from pipelines.runner import RunFailed, run_days, run_week
from tests._reliability import assert_untouched, tree_hashes, week
from tests.conftest import point_env_at, run_instance

WEEK, FIRST = "2025-11-17", "2025-11-17"
CHART_ENDPOINT = "/coins/solana/market_chart/range"


def _env(mp: pytest.MonkeyPatch, emu: MarketEmulator, wh: Path) -> None:
    point_env_at(mp, emu, wh)
    mp.setenv("COINGECKO_MAX_ATTEMPTS", "3")
    mp.setenv("HTTP_MAX_RETRY_WAIT_SECONDS", "0.05")
    mp.setenv("COINGECKO_TIMEOUT_SECONDS", "0.5")
    mp.setenv("COINGECKO_TOP_N", "120")


@pytest.fixture(scope="module")
def stores(emulator: MarketEmulator, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(baseline warehouse, lake+reports hashes of an undisturbed run of WEEK on top of it)."""
    base = tmp_path_factory.mktemp("baseline") / "warehouse"
    ref = tmp_path_factory.mktemp("reference") / "warehouse"
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, emulator, base)
        week("2025-11-10", "2025-11-03")
        shutil.copytree(base, ref)
        _env(mp, emulator, ref)
        week(WEEK, FIRST)
    return base, tree_hashes(ref, "lake", "reports")


@pytest.fixture
def wh(stores, emulator: MarketEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the baseline warehouse, the environment pointing at it, and its hashes before the run."""
    target = tmp_path / "warehouse"
    shutil.copytree(stores[0], target)
    _env(monkeypatch, emulator, target)
    emulator.clear_faults()
    yield target, tree_hashes(target, "lake", "raw")
    emulator.clear_faults()


def _chart_fault(emu: MarketEmulator, coin: str, kind: str, times: int | None, **options) -> None:
    """A fault of ``kind`` on ``coin``'s CoinGecko chart answers, ``times`` times (None = forever)."""
    emu.inject(Fault(api="coingecko", path=f"/coins/{coin}/market_chart", kind=kind, times=times, **options))


def _chart_requests(emu: MarketEmulator, coin: str = "solana") -> int:
    return emu.count("coingecko", f"/coins/{coin}/market_chart")


def _error_of(msg: str, coin: str) -> str:
    """The line of a run's failure message about ``coin`` (the asset lists each failed coin as ``- coin: error``)."""
    assert f"- {coin}: " in msg, (coin, msg)
    return msg.split(f"- {coin}: ", 1)[1].split("\n- ", 1)[0]


# Several faults go into one run, each on a coin of its own: the charts are pulled one coin after the other, so a
# coin's faulty answers never meet another coin's requests, and each kind is still counted and checked on its own.
# One run instead of one per kind (the runs were the same week on the same copy of the baseline).
TRANSIENT = {
    "429": "solana",
    "418": "ripple",
    "500": "dogecoin",
    "502": "chainlink",
    "503": "cardano",
    "reset": "polkadot",
    "truncated": "sui",
    "invalid_json": "aptos",
    "timeout": "uniswap",
}


def test_transient_faults_are_retried_and_change_nothing(wh, stores, emulator: MarketEmulator) -> None:
    target, before = wh
    times = {kind: 1 if kind == "timeout" else 2 for kind in TRANSIENT}
    for kind, coin in TRANSIENT.items():
        _chart_fault(emulator, coin, kind, times[kind], retry_after=0.05, delay=1.5)
    n0 = {kind: _chart_requests(emulator, coin) for kind, coin in TRANSIENT.items()}
    week(WEEK, FIRST)
    for kind, coin in TRANSIENT.items():  # the faulty answers, then the good one
        assert _chart_requests(emulator, coin) - n0[kind] == times[kind] + 1, kind
    assert_untouched(before, tree_hashes(target, "lake", "raw"))
    assert (
        tree_hashes(target, "lake", "reports") == stores[1]
    )  # exactly the undisturbed run's lake and report


def test_retry_after_is_honoured(wh, emulator: MarketEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the pipeline's resources (``HTTP_MAX_RETRY_WAIT_SECONDS`` above the server's Retry-After): the
    chart pulls of the week's days wait the Retry-After of each 429 before asking again, and the run completes
    (``run_days`` raises otherwise)."""
    monkeypatch.setenv("HTTP_MAX_RETRY_WAIT_SECONDS", "5")
    _chart_fault(emulator, "solana", "429", 2, retry_after=0.6)
    n0 = _chart_requests(emulator)
    with run_instance() as instance:
        run_days(
            FIRST, week_close_days(WEEK)[1].isoformat(), instance, assets=["raw_coingecko_market_charts"]
        )
    at = emulator.times("coingecko", "/coins/solana/market_chart")[n0:]
    assert len(at) == 3  # two 429s, then the answer
    assert [b - a >= 0.6 for a, b in itertools.pairwise(at)] == [True, True], at


LASTING = {
    "503": "solana",
    "429": "ripple",
    "reset": "dogecoin",
    "invalid_json": "chainlink",
    "truncated": "cardano",
    "timeout": "polkadot",
}


def test_lasting_faults_fail_naming_endpoint_and_params(wh, emulator: MarketEmulator) -> None:
    target, before = wh
    for kind, coin in LASTING.items():
        _chart_fault(emulator, coin, kind, None, retry_after=0.01, delay=1.0)
    with pytest.raises(RunFailed) as err:
        week(WEEK, FIRST)
    msg = str(err.value)
    after = tree_hashes(target, "lake", "raw")
    assert_untouched(before, after)
    assert not any(
        k.startswith("lake/coin_daily/date=2025-11-2") for k in after
    )  # nothing cleaned from a hole
    for kind, coin in LASTING.items():
        line = _error_of(msg, coin)
        assert f"/coins/{coin}/market_chart/range" in line and "gave up after 3 attempts" in line, (
            kind,
            line,
        )
        # from = close of 2025-11-17
        assert "'from': 1763424000" in line and "'vs_currency': 'usd'" in line, (kind, line)
        assert not any(f"coin={coin}" in k and k not in before for k in after), kind  # nothing stored for it


def _map_series(body: dict, fn) -> dict:
    return {k: fn(v) if k in ("prices", "market_caps", "total_volumes") else v for k, v in body.items()}


REFUSED_DRIFTS = {
    "numbers_as_strings": (
        lambda b: _map_series(b, lambda s: [[t, str(v)] for t, v in s]),
        "bad point in 'prices'",
    ),
    "missing_field": (lambda b: {k: v for k, v in b.items() if k != "market_caps"}, "'market_caps' missing"),
    "renamed_field": (
        lambda b: {("price" if k == "prices" else k): v for k, v in b.items()},
        "'prices' missing",
    ),
    "object_not_array": (lambda b: _map_series(b, lambda s: [{"t": t, "v": v} for t, v in s]), "bad point"),
    "error_object_200": (lambda b: {"status": {"error_code": 9999, "error_message": "nope"}}, "error body"),
}
DRIFT_COINS = dict(
    zip(sorted(REFUSED_DRIFTS), ["solana", "ripple", "dogecoin", "chainlink", "cardano"], strict=True)
)


def test_schema_drifts_are_refused_before_storage(wh, emulator: MarketEmulator) -> None:
    target, before = wh
    for name, coin in DRIFT_COINS.items():
        _chart_fault(emulator, coin, "drift", None, mutate=REFUSED_DRIFTS[name][0])
    with pytest.raises(RunFailed) as err:
        week(WEEK, FIRST)
    msg = str(err.value)
    after = tree_hashes(target, "lake", "raw")
    assert_untouched(before, after)
    for name, coin in DRIFT_COINS.items():
        line = _error_of(msg, coin)
        expected = REFUSED_DRIFTS[name][1]
        assert (
            expected in line and f"/coins/{coin}/market_chart/range" in line and "'from': 1763424000" in line
        ), (name, line)
        # a refused body is not kept as covering
        assert not any(f"coin={coin}" in k and k not in before for k in after), name
    # once the API is fixed, the same command completes, equal to an undisturbed run
    emulator.clear_faults()
    week(WEEK, FIRST)


def test_extra_fields_duplicates_and_disorder_are_harmless(wh, stores, emulator: MarketEmulator) -> None:
    target, before = wh

    def noisy(body: dict) -> dict:
        out = _map_series(body, lambda s: list(reversed(s + s[::3])))  # out of order, a third of points twice
        return {**out, "extra_field": {"new": True}, "market_cap_rank": 5}

    _chart_fault(emulator, "solana", "drift", None, mutate=noisy)
    _chart_fault(emulator, "bitcoin", "drift", None, mutate=noisy)
    week(WEEK, FIRST)
    assert_untouched(before, tree_hashes(target, "lake", "raw"))
    assert tree_hashes(target, "lake", "reports") == stores[1]


def test_missing_day_is_a_visible_gap_not_a_fill(wh, emulator: MarketEmulator) -> None:
    target, before = wh
    hole = (int(datetime(2025, 11, 21, tzinfo=timezone.utc).timestamp() * 1000),) * 2
    hole = (hole[0], hole[0] + 3_600_000)  # the close of 2025-11-20: every point in [11-21 00:00, 01:00)

    def drop_day(body: dict) -> dict:
        return _map_series(body, lambda s: [p for p in s if not hole[0] <= p[0] < hole[1]])

    _chart_fault(emulator, "solana", "drift", None, mutate=drop_day)
    with run_instance() as instance:
        run_week(WEEK, instance, first_day=FIRST)
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("coin_daily")
        ).asset_materialization.metadata
        assert meta["coin_days_missing"].value == 1
        assert "2025-11-20" in meta["missing_by_day"].value
    from pipelines.warehouse import Warehouse

    lake = Warehouse(target)
    present = lake.query(
        "SELECT date, count(*) AS n FROM coin_daily WHERE coin_id = ? AND date >= DATE '2025-11-17' GROUP BY date",
        ["solana"],
    )
    assert sorted(str(d) for d in present["date"].to_list()) == [
        "2025-11-17",
        "2025-11-18",
        "2025-11-19",
        "2025-11-21",
        "2025-11-22",
        "2025-11-23",
    ]
    assert present["n"].max() == 1
    assert_untouched(before, tree_hashes(target, "lake", "raw"))


def test_markets_drift_fails_naming_the_page_and_keeps_no_snapshot(
    emulator: MarketEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "warehouse"
    _env(monkeypatch, emulator, target)
    emulator.clear_faults()
    rename = lambda rows: [{("coin_id" if k == "id" else k): v for k, v in r.items()} for r in rows]  # noqa: E731
    emulator.inject(Fault(api="coingecko", path="/coins/markets", kind="drift", times=None, mutate=rename))
    try:
        with pytest.raises(RunFailed) as err:
            week(WEEK, FIRST)
    finally:
        emulator.clear_faults()
    msg = str(err.value)
    assert "/coins/markets payload changed shape" in msg and "'page': 1" in msg, msg
    assert not (target / "lake" / "coin_registry").exists()  # no registry built from it
    from assets.coingecko.raw import latest_snapshot
    from pipelines.warehouse import Warehouse

    assert latest_snapshot(Warehouse(target)) is None  # the stored page is evidence, not a usable snapshot
    week(WEEK, "2025-11-16")  # the API is back: the same command completes
