from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.metrics.macro import weekly_macro
from pipelines.schemas import WEEKLY_MACRO
from tests._metrics_real import real_file


def frame(rows):
    return pl.DataFrame(
        rows, schema={"series_id": pl.String, "date": pl.Date, "value": pl.Float64}, orient="row"
    )


def by_metric(out):
    return {r["metric"]: r for r in out.iter_rows(named=True)}


def test_hand_case_lags_diff_curve_and_holiday_blanks():
    m = frame(
        [
            ("PAYEMS", date(2025, 8, 1), 100.0),
            ("PAYEMS", date(2025, 9, 1), 150.0),
            ("PAYEMS", date(2025, 10, 1), 120.0),
            ("UNRATE", date(2025, 9, 1), 4.4),
            ("UNRATE", date(2025, 10, 1), None),
            ("DGS10", date(2025, 11, 20), 4.1),
            ("DGS10", date(2025, 11, 21), None),
            ("DGS2", date(2025, 11, 20), 3.6),
            ("DGS2", date(2025, 11, 21), 3.5),
            ("DGS10", date(2025, 11, 24), 9.9),  # after the close: not known
        ]
    )
    out = weekly_macro(m, "2025-11-17")
    WEEKLY_MACRO.conform(out)
    got = by_metric(out)
    # Oct 1 + 38 days = Nov 8 <= close day Nov 23: October is known
    assert got["payrolls_change_k"]["value"] == pytest.approx(-30.0)
    assert got["unemployment_rate"]["status"] == "missing" and got["unemployment_rate"]["value"] is None
    assert got["unemployment_rate"]["observation_date"] == date(2025, 10, 1)
    assert got["ust_10y"]["value"] == 4.1 and got["ust_10y"]["observation_date"] == date(2025, 11, 20)
    assert got["curve_10y_2y"]["value"] == pytest.approx(0.5)
    assert got["usd_jpy"]["status"] == "unavailable"


def test_release_dates_take_precedence():
    m = frame(
        [
            ("PAYEMS", date(2025, 8, 1), 159474.0),
            ("PAYEMS", date(2025, 9, 1), 159593.0),
            ("PAYEMS", date(2025, 10, 1), 159488.0),
        ]
    )
    m = m.with_columns(release_date=pl.Series([date(2025, 9, 5), date(2025, 11, 20), date(2025, 12, 16)]))
    got = by_metric(weekly_macro(m, "2025-11-17"))
    assert got["payrolls_change_k"]["value"] == pytest.approx(119.0)
    assert got["payrolls_change_k"]["observation_date"] == date(2025, 9, 1)
    assert by_metric(weekly_macro(m, "2025-11-10"))["payrolls_change_k"]["value"] is None  # only August known


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(3.0, 5.0), min_size=40, max_size=80))
def test_removing_later_data_does_not_change_a_week(vals):
    days = [date.fromordinal(date(2025, 10, 20).toordinal() + i) for i in range(len(vals))]
    m = frame(
        [("DGS10", d, v) for d, v in zip(days, vals, strict=True)]
        + [("DGS2", d, v - 0.5) for d, v in zip(days, vals, strict=True)]
    )
    cut = m.filter(pl.col("date") <= date(2025, 11, 23))
    assert weekly_macro(m, "2025-11-17").equals(weekly_macro(cut, "2025-11-17"))


def test_real_fred_unrate_october_2025_is_missing():
    path = real_file("sivamsapingali_fred_macro/fred_macro_lowfreq_2024-2025.csv")
    m = pl.read_csv(path, try_parse_dates=True, schema_overrides={"value": pl.Float64})
    oct_row = m.filter((pl.col("series_id") == "UNRATE") & (pl.col("date") == date(2025, 10, 1)))
    assert oct_row.height == 1 and oct_row["value"][0] is None
    got = by_metric(weekly_macro(m, "2025-11-17"))
    assert got["unemployment_rate"]["status"] == "missing"
    assert got["unemployment_rate"]["value"] is None  # not filled with September's 4.4
    assert got["unemployment_rate"]["observation_date"] == date(2025, 10, 1)
    # payrolls change is the PAYEMS difference: October 159,488k - September 159,593k
    assert got["payrolls_change_k"]["value"] == pytest.approx(159488 - 159593)
    # once November is known, the latest is available again
    later = by_metric(weekly_macro(m, "2025-12-08"))
    assert later["unemployment_rate"]["status"] == "ok" and later["unemployment_rate"]["value"] == 4.6
