"""The market's total (METHODOLOGY.md, "The market's total"): CoinGecko's /global pulled with each registry
snapshot, wrong figures refused before storage (a named gap) or, if in the lake, blocking; the daily estimate from
the top 100's share (observed days, the nearest observation, the real-data constant, point in time); crossings
judged on it; the second derivation agreeing with it; the emulator's /global above its listed coins."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines import quality
from pipelines.clean.coingecko import global_snapshots, parse_global_snapshot
from pipelines.emulator.market import build_market, hour_index
from pipelines.emulator.server import Fault, MarketEmulator
from pipelines.gaps import NOT_FOUND, PAYLOAD, UNAVAILABLE
from pipelines.metrics.market import (
    CONSTANT,
    ESTIMATED,
    MEASURED,
    OBSERVED,
    REAL_TOP100_SHARE,
    level_crossings,
    market_total_daily,
    total_market_cap_daily,
    weekly_total_market_cap,
)
from pipelines.narrative.crosscheck import market_total_on
from pipelines.pulls.coingecko import GLOBAL_ENDPOINT, pull_registry
from pipelines.schemas import COIN_DAILY, GLOBAL_MARKET_CAP
from pipelines.sources.coingecko import CoinGeckoClient
from pipelines.warehouse import Warehouse

WEEK = "2025-11-17"  # opens on the close of 2025-11-16, closes on the close of 2025-11-23
OPEN, CLOSE = date(2025, 11, 16), date(2025, 11, 23)


def close_of(day: date, minutes: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, minutes=minutes)


def daily(tops: dict[date, float]) -> pl.DataFrame:
    """A total_market_cap_daily frame whose tracked total is the top 100's sum plus 1%."""
    days = sorted(tops)
    return pl.DataFrame(
        {
            "date": days,
            "total_mcap_usd": [tops[d] * 1.01 for d in days],
            "coins": [150] * len(days),
            "coins_carried": [0] * len(days),
            "top_mcap_usd": [tops[d] for d in days],
            "top_coins": [100] * len(days),
        },
        schema_overrides={"coins": pl.Int32, "coins_carried": pl.Int32, "top_coins": pl.Int32},
    )


def observations(rows: list[tuple[datetime, float, float]]) -> pl.DataFrame:
    """global_market_cap rows from (observed_at, total, top 100's sum); close_day as the cleaning sets it."""
    out = []
    for at, total, top in rows:
        day = at.date() - timedelta(days=1) if at.hour == 0 else None
        out.append(
            {
                "observed_at": at,
                "total_market_cap_usd": total,
                "top_coins": 100,
                "top_mcap_usd": top,
                "top_share": top / total,
                "close_day": day,
            }
        )
    return pl.DataFrame(
        out,
        schema={
            "observed_at": pl.Datetime("ms", "UTC"),
            "total_market_cap_usd": pl.Float64,
            "top_coins": pl.Int32,
            "top_mcap_usd": pl.Float64,
            "top_share": pl.Float64,
            "close_day": pl.Date,
        },
    )


WEEK_DAYS = [OPEN + timedelta(days=i) for i in range(8)]


def test_without_observations_the_real_data_constant_is_used_and_labelled() -> None:
    d = daily({day: 3.0e12 for day in WEEK_DAYS})
    m = market_total_daily(d, observations([]), WEEK)
    assert m["basis"].unique().to_list() == [ESTIMATED] and m["share_source"].unique().to_list() == [CONSTANT]
    assert m["market_total_usd"][0] == pytest.approx(3.0e12 / REAL_TOP100_SHARE)
    assert m["share_observed_at"].null_count() == m.height


def test_an_observation_at_a_close_is_that_day_and_the_nearest_share_estimates_the_others() -> None:
    d = daily({day: 3.0e12 - 0.01e12 * i for i, day in enumerate(WEEK_DAYS)})
    obs = observations(
        [
            (
                close_of(date(2025, 11, 19), 40),
                3.1e12,
                3.05e12,
            ),  # 00:40 after the 19th's close: the 19th, observed
            (
                close_of(date(2025, 11, 23), 30 * 60),
                2.9e12,
                2.87e12,
            ),  # Monday 06:00 after the week: a share only
        ]
    )
    m = {r["date"]: r for r in market_total_daily(d, obs, WEEK).iter_rows(named=True)}
    assert m[date(2025, 11, 19)]["basis"] == OBSERVED and m[date(2025, 11, 19)]["market_total_usd"] == 3.1e12
    near_first, near_last = 3.05e12 / 3.1e12, 2.87e12 / 2.9e12
    # the 20th's close is 24.7 h from the first observation and 3 days from the second
    assert m[date(2025, 11, 20)]["share"] == pytest.approx(near_first)
    assert m[date(2025, 11, 20)]["market_total_usd"] == pytest.approx(
        m[date(2025, 11, 20)]["top_mcap_usd"] / near_first
    )
    assert (
        m[date(2025, 11, 23)]["share"] == pytest.approx(near_last)
        and m[date(2025, 11, 23)]["basis"] == ESTIMATED
    )
    assert m[OPEN]["share_source"] == MEASURED and m[OPEN]["share"] == pytest.approx(near_first)
    # equally far from two observations: the earlier one
    tie = observations(
        [
            (close_of(date(2025, 11, 20), -12 * 60), 3.0e12, 2.9e12),
            (close_of(date(2025, 11, 20), 12 * 60), 3.0e12, 2.95e12),
        ]
    )
    row = market_total_daily(d, tie, WEEK).filter(pl.col("date") == date(2025, 11, 20)).row(0, named=True)
    assert row["share"] == pytest.approx(2.9e12 / 3.0e12)


def test_observations_after_the_publication_window_never_change_the_week() -> None:
    d = daily({day: 3.0e12 for day in [*WEEK_DAYS, CLOSE + timedelta(days=5)]})
    inside = (close_of(CLOSE, 47 * 60), 3.05e12, 3.0e12)  # Tuesday 23:00: within two days of the close
    later = (close_of(CLOSE, 49 * 60), 3.5e12, 3.0e12)  # Wednesday 01:00: too late for this week
    before = market_total_daily(d, observations([inside]), WEEK)
    after = market_total_daily(d, observations([inside, later]), WEEK)
    assert before.equals(after) and before["share"][0] == pytest.approx(3.0 / 3.05)
    assert market_total_daily(d, observations([later]), WEEK)["share_source"].unique().to_list() == [CONSTANT]
    assert before["date"].max() == CLOSE  # nothing after the close


def test_weekly_row_carries_the_market_total_basis_and_share() -> None:
    d = daily({day: 3.0e12 for day in WEEK_DAYS})
    obs = observations([(close_of(CLOSE, 20), 3.06e12, 3.0e12)])
    row = weekly_total_market_cap(d, WEEK, market_total_daily(d, obs, WEEK)).row(0, named=True)
    assert row["basis_close"] == OBSERVED and row["market_total_close_usd"] == 3.06e12
    assert row["basis_open"] == ESTIMATED and row["market_total_open_usd"] == pytest.approx(3.06e12)
    assert row["share_source_open"] == MEASURED and row["top_coins_open"] == 100
    assert row["market_total_change_pct"] == pytest.approx(0.0, abs=1e-9)


def test_crossings_are_judged_on_the_market_total_not_the_top_coins() -> None:
    # the top 100 stay below $3T all week; the market's total (share 0.985) rises through it on the 20th
    tops = {day: 2.90e12 + (0.06e12 if day >= date(2025, 11, 20) else 0.0) for day in WEEK_DAYS}
    d = daily(tops)
    m = market_total_daily(d, observations([(close_of(CLOSE, 6 * 60), 2.96e12 / 0.985, 2.96e12)]), WEEK)
    assert level_crossings(d, WEEK, col="top_mcap_usd").is_empty()
    got = level_crossings(m, WEEK, col="market_total_usd")
    assert got.select("level_usd", "direction", "crossed_on").rows() == [(3e12, "up", date(2025, 11, 20))]


def test_the_top_100_is_summed_from_carried_market_caps() -> None:
    rows = [(day, f"c{i}", 1e9 * (200 - i)) for day in (OPEN, OPEN + timedelta(days=1)) for i in range(150)]
    cd = pl.DataFrame(
        rows, schema={"date": pl.Date, "coin_id": pl.String, "market_cap_usd": pl.Float64}, orient="row"
    )
    cd = cd.filter(
        ~((pl.col("date") == OPEN + timedelta(days=1)) & (pl.col("coin_id") == "c0"))
    )  # c0 missing a day
    t = total_market_cap_daily(cd)
    expected = sum(1e9 * (200 - i) for i in range(100))
    assert t["top_mcap_usd"].to_list() == [pytest.approx(expected)] * 2  # c0 counts at its last reading
    assert t["top_coins"].to_list() == [100, 100]


def test_wrong_global_rows_in_the_lake_block_naming_the_row() -> None:
    base = {
        "snapshot": "20251125T060000Z",
        "observed_at": close_of(date(2025, 11, 24), 6 * 60),
        "top_coins": 100,
    }
    good = {**base, "total_market_cap_usd": 3.0e12, "top_mcap_usd": 2.96e12, "top_share": 2.96 / 3.0}
    assert quality.global_values(pl.DataFrame([good])) == []
    for total, share, what in (
        (0.0, math.inf, "total_market_cap_usd = 0.0"),
        (-1e12, -2.96, "total_market_cap_usd = -1"),
        (math.nan, math.nan, "total_market_cap_usd = nan"),
        (2.5e12, 2.96 / 2.5, "below the top 100"),
    ):
        bad = quality.global_values(
            pl.DataFrame([{**good, "total_market_cap_usd": total, "top_share": share}])
        )
        assert bad and all(p.startswith("global_market_cap[snapshot=20251125T060000Z") for p in bad), total
        assert any(what in p for p in bad), (what, bad)


# ---- the pull, against the emulator ---------------------------------------------------------------------------
@pytest.fixture
def cg(fresh_emulator: MarketEmulator):
    with CoinGeckoClient(
        fresh_emulator.base_urls()["COINGECKO_BASE_URL"],
        calls_per_minute=0,
        sleep=lambda _: None,
        timeout=2,
        max_attempts=2,
    ) as client:
        yield client


def _global_files(wh: Warehouse) -> list[str]:
    return sorted(p.name for p in (wh.raw_dir / "coingecko" / GLOBAL_ENDPOINT).rglob("*.json"))


def test_global_is_stored_with_the_snapshot_and_measures_the_top_share(cg, fresh_emulator, tmp_path) -> None:
    wh = Warehouse(tmp_path)
    pull = pull_registry(cg, wh, top_n=150, now=fresh_emulator.now)
    assert pull.global_gap is None and pull.global_file and global_snapshots(wh) == [pull.snapshot]
    row = parse_global_snapshot(wh, pull.snapshot).row(0, named=True)
    assert GLOBAL_MARKET_CAP.conform(parse_global_snapshot(wh, pull.snapshot)).num_rows == 1
    m = build_market()
    h = hour_index(fresh_emulator.now)
    assert row["total_market_cap_usd"] == pytest.approx(m.global_mcap[h])
    assert row["top_mcap_usd"] < row["total_market_cap_usd"] and 0.983 < row["top_share"] < 0.989
    assert row["observed_at"] == fresh_emulator.now and row["close_day"] is None  # Tuesday 06:00: not a close


def _global_total(usd: float) -> Fault:
    """Every /global answer with ``total_market_cap.usd`` replaced by ``usd``."""

    def with_total(body: dict) -> dict:
        return {**body, "data": {**body["data"], "total_market_cap": {"usd": usd}}}

    return Fault(api="coingecko", path="^/global", kind="drift", times=None, mutate=with_total)


@pytest.mark.parametrize(
    "fault, reason",
    [
        (
            Fault(
                api="coingecko",
                path="^/global",
                kind="respond",
                status=404,
                body=b'{"error":"not found"}',
                times=None,
            ),
            NOT_FOUND,
        ),
        (Fault(api="coingecko", path="^/global", kind="503", times=None), UNAVAILABLE),
        (_global_total(0), PAYLOAD),
        (_global_total(-3e12), PAYLOAD),
        (_global_total(float("nan")), PAYLOAD),
        (_global_total(1e12), PAYLOAD),  # below the listed coins' own total
        (
            Fault(api="coingecko", path="^/global", kind="drift", times=None, mutate=lambda b: {"data": {}}),
            PAYLOAD,
        ),
    ],
)
def test_a_failed_or_wrong_global_is_a_gap_and_the_registry_is_still_stored(
    cg, fresh_emulator, tmp_path, fault, reason
) -> None:
    wh = Warehouse(tmp_path)
    fresh_emulator.inject(fault)
    pull = pull_registry(cg, wh, top_n=120, now=fresh_emulator.now)
    assert pull.global_gap is not None and pull.global_gap.reason == reason and pull.global_file is None
    assert pull.global_gap.dataset == "coingecko global" and pull.global_gap.key == "/global"
    assert _global_files(wh) == [] and global_snapshots(wh) == []  # nothing stored: the next pull asks again
    assert (
        pull.coins.height == 120
        and (wh.raw_dir / "coingecko" / "markets" / f"snapshot={pull.snapshot}" / "_complete").exists()
    )


# ---- the second derivation -------------------------------------------------------------------------------------
def test_second_derivation_reproduces_the_market_total(tmp_path) -> None:
    wh = Warehouse(tmp_path)
    rng = np.random.default_rng(7)
    caps = rng.lognormal(21, 2, 130)
    for i, day in enumerate(WEEK_DAYS):
        rows = [
            {
                "coin_id": f"c{k:03d}",
                "symbol": "x",
                "name": "x",
                "price_usd": 1.0,
                "market_cap_usd": float(caps[k] * (1 + 0.01 * i)),
                "volume_24h_usd": 1.0,
                "observed_at": close_of(day),
                "raw_file": "raw/x.json",
            }
            for k in range(130)
            if not (day == date(2025, 11, 20) and k == 0)
        ]  # a one-day gap of the largest
        wh.write_partition(COIN_DAILY, day.isoformat(), pl.DataFrame(rows))
    obs = observations(
        [(close_of(date(2025, 11, 18), 30), 9e11, 8.8e11), (close_of(CLOSE, 30 * 60), 9.5e11, 9.3e11)]
    )
    for k, r in enumerate(obs.iter_rows(named=True)):
        wh.write_partition(
            GLOBAL_MARKET_CAP,
            f"2025112{k}T000000Z",
            pl.DataFrame(
                [{**r, "pulled_at": r["observed_at"], "total_volume_usd": None, "raw_file": "raw/g.json"}]
            ).select(GLOBAL_MARKET_CAP.column_names),
        )
    wh.refresh_catalog()
    cd = wh.query("SELECT date, coin_id, market_cap_usd FROM coin_daily")
    metric = {
        r["date"]: r["market_total_usd"]
        for r in market_total_daily(total_market_cap_daily(cd), obs, WEEK).iter_rows(named=True)
    }
    for day in (OPEN, date(2025, 11, 18), date(2025, 11, 20), CLOSE):
        assert market_total_on(wh, WEEK, day) == pytest.approx(metric[day], rel=1e-12), day


def test_emulated_global_counts_an_unlisted_tail() -> None:
    m = build_market()
    for h in range(0, m.mcap.shape[0], 24 * 29):
        listed = np.nansum(m.mcap[h])
        assert 0.984 < listed / m.global_mcap[h] < 0.990  # less than the whole market, like a real top-N list


def test_a_week_alone_reads_only_its_days_and_the_carry_before_them(tmp_path) -> None:
    """One week's totals read coin_daily from CARRY_DAYS before its open only; they equal the totals derived from
    the whole history (a coin missing across the open still counts at its last reading before the open)."""
    from assets.weekly.shape import total_market_cap_days
    from pipelines.metrics.market import CARRY_DAYS

    rng = np.random.default_rng(7)
    first_day, days = date(2025, 10, 1), 60
    wh = Warehouse(tmp_path)
    frames = []
    for k in range(days):
        day = first_day + timedelta(days=k)
        present = [i for i in range(40) if rng.random() > 0.25]  # gaps of every length, across every open
        frame = pl.DataFrame(
            {
                "coin_id": [f"c{i}" for i in present],
                "symbol": [f"s{i}" for i in present],
                "name": [f"C{i}" for i in present],
                "price_usd": [1.0 + i for i in present],
                "market_cap_usd": [1e9 * (50 - i) * (1 + 0.01 * k) for i in present],
                "volume_24h_usd": [None] * len(present),
                "observed_at": [close_of(day, -5)] * len(present),
                "raw_file": ["raw/x.json"] * len(present),
            }
        )
        wh.write_partition(COIN_DAILY, day.isoformat(), frame)
        frames.append(frame.select(pl.lit(day).alias("date"), "coin_id", "market_cap_usd"))
    whole = total_market_cap_daily(pl.concat(frames))
    assert whole["coins_carried"].sum() > 0
    for start in (first_day + timedelta(days=CARRY_DAYS + 1), first_day + timedelta(days=30)):
        end = start + timedelta(days=7)
        got = total_market_cap_days(wh, start, end)
        expected = whole.filter(pl.col("date").is_between(start, end))
        assert got.equals(expected), (start, got, expected)
        assert got["coins_carried"].sum() > 0  # carried readings from before the open are in


def test_a_week_alone_finds_each_since_day_as_far_back_as_the_history_goes(tmp_path) -> None:
    """A week alone derives the market's total back only as far as its crossings need: a "since" day 190 days
    before the crossing (beyond the first spans) and a level never reached before (no "since" day: the whole
    history searched) are what the whole history gives, as a range of weeks (one snapshot) computes them."""
    from assets.weekly.market import SINCE_FIRST_SPAN, compute_crossings
    from pipelines.lake_snapshot import LakeSnapshot

    week = "2025-07-21"  # opens on the close of 2025-07-20, closes on the close of 2025-07-27
    crossing = date(2025, 7, 23)
    start = date(2025, 1, 1)
    wh = Warehouse(tmp_path)
    day = start
    while day <= date(2025, 7, 27):
        total = 3.2e12 if day < date(2025, 1, 11) else 2.6e12 if day < crossing else 3.6e12
        caps = [total * 0.5, total * 0.3, total * 0.2]  # the market total: their sum / REAL_TOP100_SHARE
        wh.write_partition(
            COIN_DAILY,
            day.isoformat(),
            pl.DataFrame(
                {
                    "coin_id": ["a", "b", "c"],
                    "symbol": ["a", "b", "c"],
                    "name": ["A", "B", "C"],
                    "price_usd": [1.0, 1.0, 1.0],
                    "market_cap_usd": caps,
                    "volume_24h_usd": [None, None, None],
                    "observed_at": [close_of(day, -5)] * 3,
                    "raw_file": ["raw/x.json"] * 3,
                }
            ),
        )
        day += timedelta(days=1)
    assert crossing - date(2025, 1, 10) > 2 * SINCE_FIRST_SPAN  # the span doubled twice at least
    alone = compute_crossings(wh, week)
    snapshot = LakeSnapshot(wh)
    try:
        whole = compute_crossings(snapshot, week)
    finally:
        snapshot.close()
    since = dict(zip(alone.df["level_usd"].to_list(), alone.df["last_other_side_day"].to_list(), strict=True))
    assert since == {3.0e12: date(2025, 1, 10), 3.5e12: None}
    assert alone.df.equals(whole.df) and alone.metadata == whole.metadata and alone.problems == whole.problems
    assert alone.metadata["history_from"] == "2025-01-01" and alone.metadata["history_days"] == 208
