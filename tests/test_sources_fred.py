"""FRED CSV client and parser against the emulator; the synthetic macro model; reference samples."""

from __future__ import annotations

import re
from datetime import date, timedelta

import polars as pl
import pytest

from pipelines.emulator.macro import build_macro
from pipelines.emulator.server import Fault
from pipelines.sources import fred
from pipelines.sources.http import PayloadError, SourceError
from tests.conftest import SOURCES_NOW, emulator_client

NOW = SOURCES_NOW  # the shared emulator's clock (tests/conftest.py, fixture `emu`)


@pytest.fixture
def client(emu):
    yield from emulator_client(emu, fred.FredClient, "FRED_BASE_URL", calls_per_minute=0)


def test_daily_series_business_days_and_holidays(client):
    f = client.series_csv("SP500", date(2025, 1, 1), date(2025, 12, 31))
    assert f.body.startswith(b"observation_date,SP500\n")
    df = fred.parse_fredgraph_csv(f.body)
    assert df.schema == {"series_id": pl.String, "date": pl.Date, "value": pl.Float64}
    assert (df["date"].dt.weekday() <= 5).all()  # no weekends
    assert df.filter(pl.col("date") == date(2025, 7, 4))["value"][0] is None  # Independence Day: "."
    assert df.filter(pl.col("date") == date(2025, 4, 18))["value"][0] is None  # Good Friday (stocks)
    assert df["date"].max() == date(2025, 11, 28)  # published by 1 Dec
    v = df.drop_nulls()
    first, last = v["value"][0], v["value"][-1]
    april_low = v.filter(pl.col("date").dt.month() == 4)["value"].min()
    assert 5600 < first < 6300 and 6400 < last < 7100 and april_low < 0.9 * first


def test_rates_fx_and_bond_holidays(client):
    df = fred.parse_fredgraph_csv(client.series_csv("DGS10", date(2025, 1, 1), date(2025, 11, 30)).body)
    v = df.drop_nulls("value")["value"]
    assert 3.8 < v.min() and v.max() < 4.8
    assert df.filter(pl.col("date") == date(2025, 10, 13))["value"][0] is None  # Columbus Day (bonds)
    two = fred.parse_fredgraph_csv(client.series_csv("DGS2", date(2025, 1, 1), date(2025, 11, 30)).body)
    spread = df.join(two, on="date").drop_nulls(["value", "value_right"])
    assert ((spread["value"] - spread["value_right"]).mean()) > 0
    jpy = fred.parse_fredgraph_csv(client.series_csv("DEXJPUS", date(2025, 1, 1), date(2025, 11, 30)).body)
    assert 130 < jpy.drop_nulls()["value"].mean() < 165


def test_monthly_series_and_the_shutdown_gap(client):
    un = fred.parse_fredgraph_csv(client.series_csv("UNRATE", date(2025, 1, 1)).body)
    assert (un["date"].dt.day() == 1).all()
    assert date(2025, 10, 1) not in un["date"].to_list()  # not published as of 1 Dec 2025
    assert un["date"].max() == date(2025, 9, 1)
    pay = fred.parse_fredgraph_csv(client.series_csv("PAYEMS", date(2024, 1, 1)).body)
    assert 150_000 < pay["value"].min() and pay["value"].max() < 170_000  # thousands of persons
    jgb = fred.parse_fredgraph_csv(client.series_csv("IRLTLT01JPM156N").body)
    assert jgb["date"].max() <= date(2025, 9, 1) and 0.5 < jgb["value"].mean() < 2.5


def test_macro_model_marks_october_unrate_missing():
    obs = {o.day: o for o in build_macro().series["UNRATE"]}
    assert obs[date(2025, 10, 1)].value is None and obs[date(2025, 11, 1)].value is not None
    assert build_macro().series["SP500"][100].value == build_macro(20250101).series["SP500"][100].value


def test_unknown_and_discontinued_series(client):
    with pytest.raises(SourceError) as err:
        client.series_csv("GOLDAMGBD228NLBM")
    assert err.value.status == 404


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "truncated"])
def test_transient_faults_are_retried(client, emu, kind):
    emu.inject(Fault(api="fred", path="fredgraph", kind=kind, times=1, retry_after=0, delay=1.0))
    f = client.series_csv("DTWEXBGS", date(2025, 11, 3), date(2025, 11, 7))
    assert f.attempts == 2 and fred.parse_fredgraph_csv(f.body).height == 5


def test_html_instead_of_csv_is_payload_error(client, emu):
    emu.inject(Fault(api="fred", path="fredgraph", kind="invalid_json"))
    f = client.series_csv("DGS2", date(2025, 11, 3), date(2025, 11, 7))
    with pytest.raises(PayloadError, match="not a FRED CSV"):
        fred.parse_fredgraph_csv(f.body)


def test_reference_sample_and_old_header():
    df = fred.parse_fredgraph_csv("observation_date,DGS10\n2024-01-02,3.95\n2024-01-03,3.91\n2024-01-04,.\n")
    assert df["value"].to_list() == [3.95, 3.91, None] and df["date"][0] == date(2024, 1, 2)
    old = fred.parse_fredgraph_csv("DATE,DGS10\n2024-01-02,3.95\n2024-01-03,\n2024-01-04,NaN\n")
    assert old["value"].to_list() == [3.95, None, None]
    two = fred.parse_fredgraph_csv("observation_date,DGS2,DGS10\n2024-01-02,4.33,3.95\n")
    assert two.height == 2 and set(two["series_id"]) == {"DGS2", "DGS10"}
    with pytest.raises(PayloadError):
        fred.parse_fredgraph_csv("observation_date,DGS10\n2024-01-02,n/a\n")


def test_gold_proxy_from_paxg_chart():
    from pipelines.sources.coingecko import parse_market_chart

    body = {
        "prices": [[1704067241331, 2061.5], [1704150000000, 2065.0], [1704153600000, 2070.25]],
        "market_caps": [],
        "total_volumes": [],
    }
    g = fred.gold_proxy_daily(parse_market_chart(body))
    assert g["series_id"].to_list() == ["GOLD_PAXG", "GOLD_PAXG"] and g["value"].to_list() == [
        2065.0,
        2070.25,
    ]  # last price of each UTC day


def test_bill_and_funds_rate_in_freds_exact_format(client):
    """DTB3: weekdays, two decimals, bond holidays as "."; DFF: every calendar day, no blank, a weekend repeating
    Friday; both as published by the clock (the next business day); raw bytes as FRED writes them."""
    body = client.series_csv("DTB3", date(2025, 10, 1), date(2025, 12, 31)).body.decode()
    lines = body.splitlines()
    assert lines[0] == "observation_date,DTB3" and body.endswith("\n")
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2},(\d\.\d{2}|\.)", line) for line in lines[1:]), lines[:5]
    assert (
        "2025-10-13,." in lines and "2025-11-11,." in lines and "2025-11-27,." in lines
    )  # Columbus, Veterans, Thanksgiving
    bill = fred.parse_fredgraph_csv(body)
    assert (bill["date"].dt.weekday() <= 5).all() and bill["date"].max() == date(2025, 11, 28)
    funds = fred.parse_fredgraph_csv(client.series_csv("DFF", date(2025, 1, 1), date(2025, 12, 31)).body)
    days = funds["date"].to_list()
    assert days == [date(2025, 1, 1) + timedelta(days=i) for i in range(len(days))]  # every calendar day
    assert (
        days[-1] == date(2025, 11, 30) and funds["value"].null_count() == 0
    )  # the weekend is published Monday
    level = dict(funds.select("date", "value").iter_rows())
    assert level[date(2025, 11, 22)] == level[date(2025, 11, 23)] == level[date(2025, 11, 21)]
    assert {level[d] for d in days if d < date(2025, 9, 18)} <= {4.33, 4.34}  # until the September cut
    assert {level[d] for d in days if date(2025, 9, 18) <= d <= date(2025, 9, 29)} == {4.08}
    assert {level[d] for d in days if date(2025, 10, 30) <= d} <= {3.87, 3.88}  # after the October cut
    with pytest.raises(SourceError) as err:
        client.series_csv("DGS3MO")  # not served: the report uses DTB3
    assert err.value.status == 404


def test_bills_price_the_cuts_ahead_of_each_decision():
    """In the emulator's model the bill (on the funds rate's overnight basis) sits well below the funds rate in the
    weeks before each 2025 cut and close to it just after, and December's pricing dips in late November."""
    from pipelines.metrics.macro import bill_overnight_rate

    macro = build_macro()
    bill = {o.day: o.value for o in macro.series["DTB3"]}
    funds = {o.day: o.value for o in macro.series["DFF"]}

    def implied(d: date) -> float:
        return (bill_overnight_rate(bill[d]) - funds[d]) * 100

    for before, after in (
        (date(2025, 9, 12), date(2025, 9, 19)),
        (date(2025, 10, 24), date(2025, 10, 31)),
        (date(2025, 12, 5), date(2025, 12, 12)),
    ):
        assert implied(before) < -15 and implied(after) > implied(before) + 10, (
            before,
            implied(before),
            implied(after),
        )
    assert implied(date(2025, 11, 21)) > implied(date(2025, 11, 14)) > implied(date(2025, 11, 7)) - 5
    assert implied(date(2025, 11, 28)) < implied(date(2025, 11, 21)) - 5  # priced again after the dip
