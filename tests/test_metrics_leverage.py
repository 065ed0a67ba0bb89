import csv
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines.metrics.leverage import daily_funding, funding_coverage, normalize_funding, weekly_leverage
from pipelines.schemas import WEEKLY_LEVERAGE
from tests._leverage_frames import funding_frame
from tests._metrics_real import real_file

UTC = UTC
START = datetime(2025, 11, 1, tzinfo=UTC)


def settlements(symbol, rates, interval=8, exchange="x", start=START):
    return pl.DataFrame(
        {
            "exchange": exchange,
            "symbol": symbol,
            "funding_time": [start + timedelta(hours=interval * (i + 1)) for i in range(len(rates))],
            "funding_rate": rates,
            "interval_hours": interval,
        }
    )


def test_normalization_and_accrual_day():
    f = normalize_funding(settlements("A", [0.0001, 0.0002], interval=4))
    assert f["rate_8h"].to_list() == pytest.approx([0.0002, 0.0004])
    assert f["rate_annualized"].to_list() == pytest.approx([0.0002 * 1095, 0.0004 * 1095])
    # settlements at 04:00 and 08:00 of Nov 1 accrue on Nov 1; one at Nov 2 00:00 would also belong to Nov 1
    late = normalize_funding(settlements("A", [0.0], interval=24))
    assert late["day"].to_list() == [date(2025, 11, 1)]


def test_oi_weighting_hand_computed():
    f = pl.concat([settlements("A", [0.0003] * 3), settlements("B", [-0.0001] * 3)])
    oi = pl.DataFrame({"exchange": "x", "symbol": ["A", "B"], "ts": [START, START], "oi_usd": [1e9, 3e9]})
    d = daily_funding(f, oi, oi_tolerance=timedelta(days=2))
    assert d["funding_8h"][0] == pytest.approx((0.0003 * 1 - 0.0001 * 3) / 4)
    assert d["weighting"][0] == "oi"
    assert daily_funding(f)["funding_8h"][0] == pytest.approx(0.0001)  # no OI: equal weights
    assert daily_funding(f)["weighting"][0] == "equal"


def test_negative_facts_oi_and_skew():
    # Nov 1..30, one settlement per day (24h): negative 3..5 Nov, positive otherwise, negative 18, 20, 21, 22
    rates = [0.0001] * 30
    for d in (3, 4, 5, 18, 20, 21, 22):
        rates[d - 1] = -0.0002
    f = settlements("BTC", rates, interval=24, start=START - timedelta(hours=24) + timedelta(hours=0))
    # settlement i at Nov 1 + i days 00:00 -> accrues on Nov i (i = 1..30) shifted: first settles Nov 1 00:00
    f = f.with_columns(pl.col("funding_time") + timedelta(days=1))
    oi = pl.DataFrame(
        {
            "exchange": "x",
            "symbol": "BTC",
            "ts": [datetime(2025, 10, d, 12, tzinfo=UTC) for d in (5, 6)]
            + [datetime(2025, 11, d, 12, tzinfo=UTC) for d in (16, 23, 24)],
            "oi_usd": [230e9, 200e9, 150e9, 135e9, 1.0],
        }
    )
    ls = pl.DataFrame(
        {
            "exchange": "x",
            "symbol": "BTC",
            "ts": [
                datetime(2025, 11, 16, 12, tzinfo=UTC),
                datetime(2025, 11, 20, tzinfo=UTC),
                datetime(2025, 11, 22, tzinfo=UTC),
            ],
            "long_account": [0.9, 0.4, 0.5],
            "short_account": [0.1, 0.6, 0.5],
        }
    )
    out = weekly_leverage(f, oi, ls, "2025-11-17", oi_tolerance=timedelta(days=10))
    WEEKLY_LEVERAGE.conform(out)
    row = out.row(0, named=True)
    assert row["negative_days"] == 4
    assert row["first_negative_day"] == date(2025, 11, 18)
    assert row["first_negative_since"] == date(2025, 11, 5)
    assert row["longest_negative_run_days"] == 3
    assert row["longest_negative_run_since"] == date(2025, 11, 5)
    # settlements for Nov 17..22 see the OI reading of Nov 16 12:00 (150bn), the Nov 24 00:00 one (accrual
    # Nov 23) sees Nov 23 12:00 (135bn); 24h rates are /3 per 8h
    num = 150 * (0.0001 - 0.0002 + 0.0001 - 3 * 0.0002) + 135 * 0.0001
    assert row["funding_8h_mean"] == pytest.approx(num / (6 * 150 + 135) / 3)
    assert row["funding_weighting"] == "oi"
    assert row["leverage_skew"] == "short"
    assert row["oi_open_usd"] == 150e9 and row["oi_close_usd"] == 135e9
    assert row["oi_ref_day"] == date(2025, 10, 5) and row["oi_vs_ref_pct"] == pytest.approx(-100 * 95 / 230)
    assert row["long_short_ratio_mean"] == pytest.approx((0.4 / 0.6 + 1.0) / 2)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-0.001, 0.001), min_size=90, max_size=120))
def test_removing_later_data_does_not_change_a_week(rates):
    f = settlements("A", rates, start=datetime(2025, 11, 2, tzinfo=UTC))
    cut = f.filter(pl.col("funding_time") <= datetime(2025, 11, 24, tzinfo=UTC))
    assert weekly_leverage(f, None, None, "2025-11-17").equals(weekly_leverage(cut, None, None, "2025-11-17"))


def _real_funding(symbol: str) -> pl.DataFrame:
    name = {"BTCUSDT": "binance_usdm_BTCUSDT_funding_8h_2025-03_2025-12.csv"}[symbol]
    path = real_file(f"millbo01_ipf_data_binance_funding/{name}")
    d = pl.read_csv(path, try_parse_dates=True)
    return d.select(
        pl.lit("binance").alias("exchange"),
        "symbol",
        pl.col("funding_time_utc").alias("funding_time"),
        "funding_rate",
        pl.col("funding_interval_h").alias("interval_hours"),
    )


def test_real_btc_funding_week_vs_october_and_direct_mean():
    f = _real_funding("BTCUSDT")
    path = real_file("millbo01_ipf_data_binance_funding/binance_usdm_BTCUSDT_funding_8h_2025-03_2025-12.csv")
    raw = list(csv.DictReader(open(path)))

    def direct(lo: datetime, hi: datetime) -> float:
        vals = [
            float(r["funding_rate"]) * 8 / float(r["funding_interval_h"])
            for r in raw
            if lo < datetime.fromisoformat(r["funding_time_utc"]).replace(tzinfo=UTC) <= hi
        ]
        return sum(vals) / len(vals)

    wk_lo, wk_hi = datetime(2025, 11, 17, tzinfo=UTC), datetime(2025, 11, 24, tzinfo=UTC)
    row = weekly_leverage(f, None, None, "2025-11-17").row(0, named=True)
    assert row["funding_8h_mean"] == pytest.approx(direct(wk_lo, wk_hi), rel=1e-12)
    oct_lo, oct_hi = datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC)
    october = funding_coverage(f, None, oct_lo, oct_hi)
    assert october["funding_weighting"] == "equal"
    assert october["funding_8h_mean"] == pytest.approx(direct(oct_lo, oct_hi), rel=1e-12)
    # The week is below the pre-crash early-October level and below the week before. (It is NOT below the
    # whole-October mean: the 10-11 Oct liquidation cascade pulled October's funding down.)
    early_oct = funding_coverage(f, None, oct_lo, datetime(2025, 10, 11, tzinfo=UTC))["funding_8h_mean"]
    assert early_oct == pytest.approx(direct(oct_lo, datetime(2025, 10, 11, tzinfo=UTC)), rel=1e-12)
    assert row["funding_8h_mean"] < early_oct
    prev = weekly_leverage(f, None, None, "2025-11-10").row(0, named=True)
    assert row["funding_8h_mean"] < prev["funding_8h_mean"]
    # "funding rates have turned negative for the first time since" late October
    assert row["first_negative_day"] is not None
    assert date(2025, 10, 1) <= row["first_negative_since"] <= date(2025, 11, 1)


def test_daily_open_interest_is_independent_of_row_order():
    """Float sums over many series must not depend on the order rows (or hash groups) arrive in: the weekly table
    is recomputed after later data lands and must give the same bytes."""
    import numpy as np

    from pipelines.metrics.leverage import daily_open_interest

    rng = np.random.default_rng(3)
    n = 3000
    oi = pl.DataFrame(
        {
            "exchange": rng.choice(["binance", "bybit", "okx"], n),
            "symbol": [f"S{i}" for i in rng.integers(0, 400, n)],
            "ts": [START + timedelta(minutes=int(m)) for m in rng.integers(1, 3 * 1440, n)],
            "oi_usd": rng.lognormal(18, 2, n),
        }
    )
    first = daily_open_interest(oi)
    for seed in range(8):
        again = daily_open_interest(oi.sample(fraction=1.0, shuffle=True, seed=seed))
        assert again["oi_usd"].to_list() == first["oi_usd"].to_list()


def test_turned_negative_only_on_a_sign_flip() -> None:
    from pipelines.metrics.leverage import negative_funding_facts

    days = [date(2025, 11, 10) + timedelta(days=i) for i in range(12)]
    # negative Nov 12-13, positive 14-15, negative from Nov 16 (the Sunday before the week) on
    rates = [1, 1, -1, -1, 1, 1, -1, -1, -1, 1, -1, -1]
    daily = pl.DataFrame({"day": days, "funding_8h": [r * 1e-5 for r in rates]})
    week = negative_funding_facts(daily, date(2025, 11, 17), date(2025, 11, 23))
    # Nov 17 continues a run that began Nov 16: not a flip. Nov 20 is the week's first flip.
    assert week["first_negative_day"] == date(2025, 11, 20)
    assert week["first_negative_since"] == date(2025, 11, 18)
    still = negative_funding_facts(
        daily.filter(pl.col("day") <= date(2025, 11, 18)), date(2025, 11, 17), date(2025, 11, 18)
    )
    assert still["first_negative_day"] is None and still["negative_days"] == 2


def test_a_negative_day_after_a_missing_day_is_not_a_flip() -> None:
    """Nov 19 has no daily funding (no venue settled it): Nov 20 is negative after a positive Nov 18, but whether
    funding turned negative on Nov 19 or Nov 20 is not known, so no day of the week is said to be the flip; Nov
    22 after a positive Nov 21 is."""
    from pipelines.metrics.leverage import negative_funding_facts

    days = [date(2025, 11, 16) + timedelta(days=i) for i in range(8)]
    rates = [1, 1, 1, None, -1, 1, -1, -1]  # Nov 16..23, Nov 19 missing
    daily = pl.DataFrame({"day": days, "funding_8h": [r * 1e-5 if r else None for r in rates]}).drop_nulls()
    week = negative_funding_facts(daily, date(2025, 11, 17), date(2025, 11, 23))
    assert week["first_negative_day"] == date(2025, 11, 22)
    assert week["first_negative_since"] == date(2025, 11, 20)
    early = negative_funding_facts(daily, date(2025, 11, 17), date(2025, 11, 21))
    assert early["first_negative_day"] is None and early["negative_days"] == 1


def test_a_zero_open_interest_reading_is_no_reading() -> None:
    """A venue's glitch reports zero open interest an hour before a settlement: the settlement weighs with the
    last positive reading before it (five hours earlier, within the day's tolerance), as the daily series of open
    interest does, instead of counting as a settlement without open interest."""
    from pipelines.metrics.leverage import funding_coverage

    t0 = datetime(2025, 10, 1, tzinfo=UTC)
    oi = pl.DataFrame(
        {
            "exchange": ["binance", "binance", "binance"],
            "symbol": ["BTCUSDT", "BTCUSDT", "ETHUSDT"],
            "ts": [t0 + timedelta(hours=3), t0 + timedelta(hours=7), t0 + timedelta(hours=7)],
            "oi_usd": [2e9, 0.0, 1e9],
        }
    )
    f = funding_frame(
        [
            ("binance", "BTCUSDT", t0 + timedelta(hours=8), 3e-4, 8),
            ("binance", "ETHUSDT", t0 + timedelta(hours=8), -3e-4, 8),
        ]
    )
    got = funding_coverage(f, oi, t0, t0 + timedelta(days=1))
    assert got["funding_weighting"] == "oi" and got["funding_venues_without_oi"] is None
    assert got["funding_8h_mean"] == pytest.approx((3e-4 * 2e9 - 3e-4 * 1e9) / 3e9)


HOURS = st.integers(24 * 2, 24 * 8)  # around the window's start (day 5) and its tolerance (a day)
SYMBOLS = st.sampled_from(["BTCUSDT", "ETHUSDT"])


@settings(max_examples=60, deadline=None)
@given(
    readings=st.lists(st.tuples(SYMBOLS, HOURS), max_size=40),
    settlements=st.lists(st.tuples(SYMBOLS, HOURS), max_size=20),
)
@example(readings=[("BTCUSDT", 100)], settlements=[("BTCUSDT", 121)])  # a reading 21 h before: it weighs
def test_funding_coverage_reads_only_the_readings_that_can_weigh_the_window(readings, settlements) -> None:
    """The window's settlements weighted by the readings from ``oi_tolerance`` before its start on are weighted as
    by the whole history of readings (a settlement is after the start, so an earlier reading is too old for it)."""
    from pipelines.metrics import leverage

    t0 = datetime(2025, 10, 1, tzinfo=UTC)
    start, end, tol = t0 + timedelta(days=5), t0 + timedelta(days=12), timedelta(days=1)
    oi = pl.DataFrame(
        [("binance", s, t0 + timedelta(hours=h), 1e9 + h) for s, h in {(s, h) for s, h in readings}],
        schema={
            "exchange": pl.String,
            "symbol": pl.String,
            "ts": pl.Datetime("ms", "UTC"),
            "oi_usd": pl.Float64,
        },
        orient="row",
    )
    f = funding_frame(
        [("binance", s, t0 + timedelta(hours=h), 1e-4 * (h % 7 - 3), 8) for s, h in set(settlements)]
    )
    got = funding_coverage(f, oi, start, end, tol)
    window = f.filter((pl.col("funding_time") > start) & (pl.col("funding_time") <= end))
    if window.height == 0:
        assert got["funding_settlements"] == 0
        return
    whole = leverage._with_oi(window, oi, tol)  # every reading of the history
    row = leverage._weighted(whole.with_columns(g=pl.lit(0)), ["g"]).row(0, named=True)
    assert (got["funding_8h_mean"], got["funding_weighting"]) == (row["funding_8h"], row["weighting"])
    assert got["funding_oi_share"] == whole["oi_usd"].is_not_null().sum() / whole.height
