"""The rate change three-month bills price against the effective fed funds rate (``pipelines.metrics.macro``):
the discount-rate conversion, the pairing of the two series, the weekly change point in time, the statuses; and
the emulator's effective rate against the real monthly average (FEDFUNDS) of 2025."""

from __future__ import annotations

import csv
from datetime import date, timedelta

import polars as pl
import pytest

from pipelines.metrics.macro import (
    bill_money_market_yield,
    bill_overnight_rate,
    implied_rate_change,
    weekly_rate_expectations,
)
from pipelines.schemas import WEEKLY_RATE_EXPECTATIONS
from tests._metrics_real import real_file


def frame(rows) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"series_id": pl.String, "date": pl.Date, "value": pl.Float64}, orient="row"
    )


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def funds(first: date, last: date, value: float = 3.87) -> list[tuple]:
    return [("DFF", d, value) for d in _days(first, last)]  # every calendar day, as FRED lists it


# ---- the conversion ------------------------------------------------------------------------------------------
def test_discount_rate_to_money_market_and_overnight_basis() -> None:
    # textbook case: a 91-day bill at a 5% discount costs 1 - 0.05 * 91 / 360 and returns 18 / 355.45 a year
    assert bill_money_market_yield(5.0) == pytest.approx(5.0640033, abs=1e-6)
    for d in (0.05, 3.77, 4.33, 5.25):
        price = 1 - d / 100 * 91 / 360
        mmy, on = bill_money_market_yield(d), bill_overnight_rate(d)
        # the definitions, checked on the price: simple act/360 over 91 days, and daily compounding
        assert price * (1 + mmy / 100 * 91 / 360) == pytest.approx(1.0, abs=1e-14)
        assert price * (1 + on / 100 / 360) ** 91 == pytest.approx(1.0, abs=1e-14)
        assert d < on < mmy  # the discount basis understates the yield; compounding needs a lower daily rate
    # at these levels the discount basis is about 3.7 bp below the money-market yield and compounding takes ~1.8 bp
    assert 3.5 < (bill_money_market_yield(3.77) - 3.77) * 100 < 4.0
    assert 1.5 < (bill_money_market_yield(3.77) - bill_overnight_rate(3.77)) * 100 < 2.1
    assert bill_overnight_rate(-0.05) < 0  # a (rare) negative bill rate converts, it is not refused here
    with pytest.raises(ValueError, match="no positive price"):
        bill_overnight_rate(400.0)  # 400% for 91 days: a price below zero is a wrong value


# ---- the weekly row ------------------------------------------------------------------------------------------
def week_rows() -> list[tuple]:
    return [
        *funds(date(2025, 11, 1), date(2025, 11, 30)),
        ("DTB3", date(2025, 11, 13), 3.74),
        ("DTB3", date(2025, 11, 14), 3.74),
        ("DTB3", date(2025, 11, 20), 3.80),
        ("DTB3", date(2025, 11, 21), 3.77),
        ("DTB3", date(2025, 11, 24), 3.60),  # after the close: not known at the week's close
    ]


def test_spread_in_bp_and_cuts_with_the_weekly_change() -> None:
    out = weekly_rate_expectations(frame(week_rows()), "2025-11-17")
    WEEKLY_RATE_EXPECTATIONS.conform(out)
    r = out.row(0, named=True)
    on = 360 * ((1 / (1 - 0.0377 * 91 / 360)) ** (1 / 91) - 1) * 100  # the bill of Friday 21 November
    on_before = 360 * ((1 / (1 - 0.0374 * 91 / 360)) ** (1 / 91) - 1) * 100  # the bill of Friday 14 November
    assert r["status"] == "ok" and r["observation_date"] == date(2025, 11, 21)
    assert r["bill_discount_pct"] == 3.77 and r["funds_rate_pct"] == 3.87
    assert r["bill_overnight_pct"] == pytest.approx(on, abs=1e-12)
    assert r["implied_change_bp"] == pytest.approx((on - 3.87) * 100, abs=1e-9)
    assert -9 < r["implied_change_bp"] < -8  # 3.77% discount is 3.788% overnight: 8.2 bp under 3.87%
    assert r["cuts_priced"] == pytest.approx(-r["implied_change_bp"] / 25)
    assert r["prev_observation_date"] == date(2025, 11, 14)
    assert r["prev_implied_change_bp"] == pytest.approx((on_before - 3.87) * 100, abs=1e-9)
    assert r["change_bp"] == pytest.approx(r["implied_change_bp"] - r["prev_implied_change_bp"])
    assert r["change_bp"] > 2.5  # fewer cuts priced than a week earlier


def test_the_pair_is_the_latest_day_with_both_and_holidays_are_skipped() -> None:
    rows = [*funds(date(2025, 11, 1), date(2025, 11, 20)), ("DFF", date(2025, 11, 21), None)]
    rows += [
        ("DTB3", date(2025, 11, 14), 3.74),
        ("DTB3", date(2025, 11, 20), 3.80),
        ("DTB3", date(2025, 11, 21), 3.77),
    ]
    r = weekly_rate_expectations(frame(rows), "2025-11-17").row(0, named=True)
    assert (
        r["observation_date"] == date(2025, 11, 20) and r["bill_discount_pct"] == 3.80
    )  # no funds rate on the 21st
    holiday = [
        *funds(date(2025, 11, 1), date(2025, 11, 30)),
        ("DTB3", date(2025, 11, 14), 3.74),
        ("DTB3", date(2025, 11, 20), 3.80),
        ("DTB3", date(2025, 11, 21), None),
    ]  # "." on FRED
    r = weekly_rate_expectations(frame(holiday), "2025-11-17").row(0, named=True)
    assert r["observation_date"] == date(2025, 11, 20) and r["status"] == "ok"


def test_a_missing_series_is_unavailable_and_an_old_pair_is_stale() -> None:
    no_bill = weekly_rate_expectations(frame(funds(date(2025, 11, 1), date(2025, 11, 30))), "2025-11-17")
    r = no_bill.row(0, named=True)
    WEEKLY_RATE_EXPECTATIONS.conform(no_bill)
    assert r["status"] == "unavailable" and r["implied_change_bp"] is None and r["change_bp"] is None
    assert (
        weekly_rate_expectations(frame([("DTB3", date(2025, 11, 21), 3.77)]), "2025-11-17")["status"][0]
        == "unavailable"
    )
    # the bill stopped on 14 November: the week's close sees a pair nine days old
    old = [*funds(date(2025, 11, 1), date(2025, 11, 30)), ("DTB3", date(2025, 11, 14), 3.74)]
    r = weekly_rate_expectations(frame(old), "2025-11-17").row(0, named=True)
    assert r["status"] == "stale" and r["observation_date"] == date(2025, 11, 14) and r["change_bp"] is None
    # the week before had no bill yet: the level is there, the weekly change is not
    first = [*funds(date(2025, 11, 1), date(2025, 11, 30)), ("DTB3", date(2025, 11, 21), 3.77)]
    r = weekly_rate_expectations(frame(first), "2025-11-17").row(0, named=True)
    assert r["status"] == "ok" and r["prev_implied_change_bp"] is None and r["change_bp"] is None


def test_point_in_time_later_rows_change_nothing() -> None:
    rows = week_rows()
    later = [*rows, *funds(date(2025, 12, 1), date(2025, 12, 31), 3.64), ("DTB3", date(2025, 12, 1), 3.60)]
    a = weekly_rate_expectations(frame(rows), "2025-11-17")
    b = weekly_rate_expectations(frame(later), "2025-11-17")
    assert a.equals(b)
    cut = [r for r in rows if r[1] <= date(2025, 11, 21)]
    assert weekly_rate_expectations(frame(cut), "2025-11-17").equals(a)
    # an observation dated D is known at the close of D + 1 (published the next business day): on Friday's close
    # the latest known pair is Thursday's
    assert implied_rate_change(frame(rows), date(2025, 11, 21))["observation_date"] == date(2025, 11, 20)
    assert implied_rate_change(frame(rows), date(2025, 11, 22))["observation_date"] == date(2025, 11, 21)


# ---- real data -----------------------------------------------------------------------------------------------
def test_emulator_effective_rate_matches_the_real_monthly_averages() -> None:
    """The shared real data set has no daily DTB3 or DFF (so no real-data test of the spread); it has FEDFUNDS, the
    monthly average of the daily effective rate. The emulator's DFF, invented from the policy path, must average
    to it within 2 bp in every month of 2024-2025 it covers (the calibration the report's rate sentence rests on)."""
    from pipelines.emulator.macro import build_macro

    path = real_file("sivamsapingali_fred_macro/fred_macro_lowfreq_2024-2025.csv")
    with path.open() as fh:
        real = {
            date.fromisoformat(r["date"]): float(r["value"])
            for r in csv.DictReader(fh)
            if r["series_id"] == "FEDFUNDS" and r["value"]
        }
    assert len(real) >= 23, sorted(real)
    dff = pl.DataFrame(
        [(o.day, o.value) for o in build_macro().series["DFF"]], schema=["date", "value"], orient="row"
    )
    monthly = dict(dff.group_by(pl.col("date").dt.truncate("1mo")).agg(pl.col("value").mean()).iter_rows())
    worst = max(abs(monthly[m] - v) for m, v in real.items())
    assert worst < 0.02, {m: (round(monthly[m], 3), v) for m, v in sorted(real.items())}
