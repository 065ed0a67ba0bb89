"""WRONG data blocks the week with the row named: the week-level rules of ``pipelines.quality`` on
frames and on the synthetic lake, conflicting duplicates refused at parse time, and the check that never
silently evaluates another set of days. Each test failed before its fix (the rules did not exist, parsers kept the
last duplicate, ``_days_of_run`` swallowed any exception)."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest

from assets import quality as quality_checks
from pipelines import quality
from pipelines.schemas import COIN_DAILY
from pipelines.sources import binance, fred
from pipelines.sources.coingecko import parse_market_chart
from pipelines.sources.dedupe import ConflictingDuplicates
from pipelines.warehouse import Warehouse
from tests._weekly_world import build, write_lake

WEEK = "2025-04-21"
OPEN, CLOSE = date(2025, 4, 20), date(2025, 4, 27)
UPTO = datetime(2025, 4, 29, tzinfo=UTC)


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality_base")
    write_lake(root, build(), UPTO)
    return root


@pytest.fixture
def lake(base_lake, tmp_path) -> Warehouse:
    shutil.copytree(base_lake, tmp_path / "wh")
    return Warehouse(tmp_path / "wh")


def _set(wh: Warehouse, day: date, coin_id: str, column: str, value: float | None) -> None:
    """Rewrites ``column`` of ``coin_id``'s coin_daily row on ``day`` as ``value`` in the lake."""
    df = wh.read_partition(COIN_DAILY, day.isoformat())
    where = pl.col("coin_id") == coin_id
    df = df.with_columns(
        pl.when(where).then(pl.lit(value, pl.Float64)).otherwise(pl.col(column)).alias(column)
    )
    wh.write_partition(COIN_DAILY, day.isoformat(), df)
    wh.refresh_catalog()


def test_clean_week_passes(lake) -> None:
    assert quality.week_problems(lake, WEEK) == []


@pytest.mark.parametrize("value", [0.0, None, -5.0])
@pytest.mark.parametrize("day", [OPEN, CLOSE])
def test_top_coin_market_cap_zero_or_null_blocks_naming_the_row(lake, day, value) -> None:
    _set(lake, day, "alt000", "market_cap_usd", value)
    problems = quality.week_problems(lake, WEEK)
    assert any(f"date={day}, coin_id=alt000" in p and "market_cap_usd" in p for p in problems), problems


def test_non_finite_price_blocks(lake) -> None:
    _set(lake, CLOSE, "alt010", "price_usd", float("inf"))
    problems = quality.week_problems(lake, WEEK)
    assert any("coin_id=alt010" in p and "price_usd = inf" in p for p in problems), problems


def test_rules_on_frames_name_the_row() -> None:
    t = datetime(2025, 4, 21, 8, tzinfo=UTC)
    f = pl.DataFrame(
        {
            "date": [date(2025, 4, 21)] * 3,
            "exchange": ["binance"] * 3,
            "symbol": ["BTCUSDT"] * 3,
            "funding_time": [t, t, datetime(2025, 4, 22, 8, tzinfo=UTC)],
            "funding_rate": [1e-4, 2e-4, 0.02],
            "interval_hours": [8, 8, 8],
            "raw_file": ["a", "b", "c"],
        }
    )
    text = "\n".join(quality.week_violations({"funding_rates": f}))
    assert "conflicting duplicate rows (funding_rate: 0.0001 vs 0.0002)" in text
    assert "2025-04-22 08:00:00+00:00 is not on the partition's day" in text
    assert "funding_rate = 0.02 per 8h" in text
    ident = f.head(2).with_columns(pl.lit(1e-4).alias("funding_rate"), pl.lit("a").alias("raw_file"))
    assert "2 identical rows" in "\n".join(quality.key_duplicates("funding_rates", ident))


def test_conflicting_duplicate_points_are_refused_at_parse_identical_ones_dropped() -> None:
    t = 1745193600000
    same = {"prices": [[t, 1.0], [t, 1.0]], "market_caps": [[t, 10.0]], "total_volumes": [[t, 5.0]]}
    assert parse_market_chart(same).height == 1
    with pytest.raises(ConflictingDuplicates, match=r"ts_ms=1745193600000 \(price: 1.0 vs 2.0\)"):
        parse_market_chart({**same, "prices": [[t, 1.0], [t, 2.0]]})
    page = [{"symbol": "BTCUSDT", "fundingTime": t, "fundingRate": "0.0001", "markPrice": "1"}]
    clash = [{**page[0], "fundingRate": "0.0003"}]
    assert binance.parse_funding_rates([page, page]).height == 1
    with pytest.raises(ConflictingDuplicates, match="funding_rate: 0.0001 vs 0.0003"):
        binance.parse_funding_rates([page, clash])
    csv = "observation_date,SP500\n2025-04-17,5000\n2025-04-17,5100\n"
    with pytest.raises(ConflictingDuplicates, match="5000.0 vs 5100.0"):
        fred.parse_fredgraph_csv(csv)
    assert fred.parse_fredgraph_csv("observation_date,SP500\n2025-04-17,5000\n2025-04-17,5000\n").height == 1


def _ctx(tags: dict, has_range: bool, rng=None, exc: Exception | None = None):
    class C:
        run = SimpleNamespace(tags=tags)
        has_partition_key_range = has_range

        @property
        def partition_key_range(self):
            if exc is not None:
                raise exc
            return rng

    return C()


def test_days_of_run_never_silently_checks_other_days() -> None:
    tags = {quality_checks.RANGE_START_TAG: "2025-04-20", quality_checks.RANGE_END_TAG: "2025-04-22"}
    days = [date(2025, 4, 20), date(2025, 4, 21), date(2025, 4, 22)]
    assert (
        quality_checks._days_of_run(_ctx(tags, True, dg.PartitionKeyRange("2025-04-20", "2025-04-22")))
        == days
    )
    # an unexpected error used to be swallowed, then the tags were used: now it propagates
    with pytest.raises(RuntimeError):
        quality_checks._days_of_run(_ctx(tags, True, exc=RuntimeError("boom")))
    # the step's range and the run's tags disagree: refuse instead of checking one of them
    with pytest.raises(dg.Failure, match="refusing to guess"):
        quality_checks._days_of_run(_ctx(tags, True, dg.PartitionKeyRange("2025-04-23", "2025-04-24")))
    # the documented case (unpartitioned step): the run's tags define the range
    assert quality_checks._days_of_run(_ctx(tags, True, exc=dg.DagsterInvariantViolationError("x"))) == days


def test_old_blocking_rules_passed_a_zero_market_cap_the_new_rule_names_it(lake) -> None:
    """The review finding: a top coin's market cap 0 on the close day left every rule green."""
    _set(lake, CLOSE, "alt000", "market_cap_usd", 0.0)
    days = [OPEN + timedelta(days=i) for i in range(8)]
    old = [
        quality.coverage(lake, days, 120),
        quality.duplicates(lake, days),
        quality.outliers(lake, days),
        quality.stale(lake, days),
    ]
    assert all(o.passed for o in old)
    assert any("coin_id=alt000" in p for p in quality.week_problems(lake, WEEK))


def test_rules_raise_no_false_alarm_on_real_2025_data() -> None:
    """Real Binance funding (BTC, ETH 2025-03..12), Binance BTCUSDT hourly bars and Coin Metrics BTC daily caps:
    no implausible funding, no bar off the hour, no threefold supply jump, no NaN."""
    from tests._metrics_real import real_file

    for sym in ("BTCUSDT", "ETHUSDT"):
        f = pl.read_csv(
            real_file(f"millbo01_ipf_data_binance_funding/binance_usdm_{sym}_funding_8h_2025-03_2025-12.csv")
        )
        f = f.select(
            pl.lit("binance").alias("exchange"),
            "symbol",
            pl.col("funding_time_utc")
            .str.to_datetime("%Y-%m-%d %H:%M", time_zone="UTC")
            .alias("funding_time"),
            "funding_rate",
            pl.col("funding_interval_h").alias("interval_hours"),
        )
        f = f.with_columns(pl.col("funding_time").dt.date().alias("date"))
        assert quality.funding_implausible(f) == [] and quality.non_finite("funding_rates", f) == []
        assert quality.key_duplicates("funding_rates", f) == [] and quality.instants("funding_rates", f) == []
    h = pl.read_csv(real_file("datascientest_binance_btcusdt_1h/binance_spot_BTCUSDT_1h_2025-01_2026-01.csv"))
    h = h.select(
        pl.col("timestamp").str.to_datetime(time_zone="UTC").alias("ts"),
        pl.col("open", "high", "low", "close", "volume", "quote_volume"),
    ).with_columns(pl.col("ts").dt.date().alias("date"))
    assert quality.instants("btc_hourly", h) == [] and quality.required_values("btc_hourly", h) == []
    c = pl.read_csv(
        real_file("coinmetrics_community/btc_daily_2025-03-01_2025-12-29.csv"), try_parse_dates=True
    )
    c = c.select(
        "date",
        pl.lit("bitcoin").alias("coin_id"),
        "price_usd",
        "market_cap_usd",
        pl.col("spot_volume_reported_usd_1d").alias("volume_24h_usd"),
    )
    assert quality.supply_jumps(c) == [] and quality.coin_values(c) == []


def test_funding_off_by_a_factor_on_one_venue_is_left_out_and_named_a_market_wide_move_is_not() -> None:
    t = datetime(2025, 4, 23, tzinfo=UTC)

    def frame(*rates: float) -> pl.DataFrame:
        venues = ["binance", "bybit", "okx"][: len(rates)]
        return pl.DataFrame(
            {
                "exchange": venues,
                "symbol": ["BTCUSDT"] * len(rates),
                "funding_time": [t] * len(rates),
                "funding_rate": list(rates),
                "interval_hours": [8] * len(rates),
            }
        )

    x100 = frame(-1.7e-5, -5.4e-4)  # x100 of a near-zero rate on bybit
    assert quality.funding_venue_outliers(x100) == [
        "funding_rates[exchange=bybit, symbol=BTCUSDT, funding_time=2025-04-23 00:00:00+00:00]: "
        "-0.00054 per 8h against -1.7e-05 on the other venues"
    ]
    kept = quality.without_funding_outliers(x100)
    assert kept["exchange"].to_list() == ["binance"]  # only the out-of-line venue is left out
    assert quality.week_violations({"funding_rates": x100.with_columns(pl.lit(t.date()).alias("date"))}) == []
    # with three venues, the one far from the others' median; a unit error in the small direction is harmless
    assert quality.funding_venue_outlier_rows(frame(1e-4, 1.1e-4, 1e-2))["exchange"].to_list() == ["okx"]
    assert quality.funding_venue_outlier_rows(frame(1e-4, 1.1e-4, 1e-6)).is_empty()
    assert quality.funding_venue_outliers(frame(-0.003, -0.002)) == []  # a crash moves every venue
    assert quality.funding_venue_outliers(frame(1e-4, 1.2e-4)) == []


def test_a_series_missing_for_the_rest_of_the_week_is_one_gap_line() -> None:
    from datetime import date, timedelta

    days = [date(2025, 11, 17) + timedelta(days=i) for i in range(7)]
    rows = [("bybit", "BTCUSDT", d) for d in days] + [("bybit", "DOGEUSDT", d) for d in days[:3]]
    df = pl.DataFrame(
        rows, schema={"exchange": pl.String, "symbol": pl.String, "date": pl.Date}, orient="row"
    )
    lines = [
        g for g in quality.week_gaps({"funding_rates": df}, "2025-11-17") if g.startswith("funding_rates")
    ]
    assert lines == ["funding_rates: nothing on 2025-11-20..2025-11-23 for bybit DOGEUSDT (not filled)."]


def test_a_weeks_missing_closes_volumes_and_macro_days_are_named_per_day() -> None:
    """A coin priced in the week but absent on a day, coins priced without a 24h volume (named, or "any coin" when
    the whole day has none), and a daily FRED series missing or blank on a weekday: each a gap line of its day."""
    days = [date(2025, 11, 16) + timedelta(days=i) for i in range(8)]  # the day before the open to the close
    rows = []
    for d in days:
        for coin in ("bitcoin", "ethereum", "solana"):
            if coin == "solana" and d == days[3]:
                continue  # solana has no close on the week's third day
            volume = None if d == days[5] or (coin == "ethereum" and d == days[2]) else 1e9
            rows.append((d, coin, 1e11, volume))
    cd = pl.DataFrame(
        rows,
        schema={
            "date": pl.Date,
            "coin_id": pl.String,
            "market_cap_usd": pl.Float64,
            "volume_24h_usd": pl.Float64,
        },
        orient="row",
    )
    fred_days = [
        date(2025, 11, 3) + timedelta(days=i)
        for i in range(21)
        if (date(2025, 11, 3) + timedelta(days=i)).weekday() < 5
    ]
    macro = pl.DataFrame(
        [("DGS10", d, None if d == date(2025, 11, 19) else 4.1) for d in fred_days if d != date(2025, 11, 20)]
        + [("VIXCLS", d, 17.0) for d in fred_days],
        schema={"series_id": pl.String, "date": pl.Date, "value": pl.Float64},
        orient="row",
    ).reverse()  # the frame's order is not the lines' order
    lines = quality.week_gaps({"coin_daily": cd.reverse(), "macro_observations": macro}, "2025-11-17")
    assert lines == [
        "Prices: no close on 2025-11-19 for solana (not filled; totals and indices use the coins priced).",
        "Volume: no 24h volume on 2025-11-18 for ethereum (not filled; spot volume leaves them out).",
        "Volume: no 24h volume on 2025-11-21 for any coin (not filled; spot volume leaves them out).",
        "Macro: DGS10 has no observation for 2025-11-20 (the return uses the last earlier close).",
        "Macro: DGS10 is blank on 2025-11-19 (holiday or unpublished; the last earlier close is used).",
    ]
