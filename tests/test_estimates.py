"""Market caps older than CoinGecko's plan reaches: estimated from Binance spot closes (pipelines/clean/estimates.py)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl
import pytest

from pipelines.clean import estimates
from pipelines.emulator.server import MarketEmulator
from pipelines.runner import MARKET_ASSETS, run_days
from pipelines.schemas import COIN_DAILY, COIN_DAILY_ESTIMATES
from pipelines.warehouse import Warehouse
from tests._metrics_real import real_file
from tests.conftest import point_env_at, run_instance

NOW = datetime(2026, 12, 1, 6, tzinfo=timezone.utc)


def test_plan_first_day_is_the_first_close_inside_365_days() -> None:
    # 365 days before 2026-12-01 06:00 is 2025-12-01 06:00 (+1 h margin): the close of 11-30 (12-01 00:00) is
    # outside, the close of 12-01 (12-02 00:00) inside.
    assert estimates.plan_first_day("demo", NOW) == date(2025, 12, 1)
    assert estimates.plan_first_day("public", NOW) == date(2025, 12, 1)
    assert estimates.plan_first_day("pro", NOW) is None
    assert estimates.plan_first_day("demo", datetime(2026, 12, 1, 23, 30, tzinfo=timezone.utc)) == date(
        2025, 12, 2
    )


def test_spot_symbols_are_pairs_and_a_shared_ticker_goes_to_the_larger_coin() -> None:
    registry = pl.DataFrame(
        {
            "coin_id": ["bitcoin", "tether", "fake-btc", "odd"],
            "symbol": ["btc", "usdt", "btc", "a b"],
            "market_cap_rank": [1, 3, 40, 50],
        }
    )
    assert estimates.estimable(registry) == {"bitcoin": "BTCUSDT"}


def _reference() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "coin_id": ["bitcoin", "ethereum", "impostor", "nocap"],
            "symbol": ["btc", "eth", "imp", "nc"],
            "name": ["Bitcoin", "Ethereum", "Impostor", "No cap"],
            "price_usd": [100.0, 10.0, 1.0, 5.0],
            "market_cap_usd": [2000.0, 500.0, 50.0, None],
        }
    )


def _closes(rows: list[tuple[str, date, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "spot_symbol": [r[0] for r in rows],
            "day": [r[1] for r in rows],
            "close": [r[2] for r in rows],
            "observed_at": [datetime(r[1].year, r[1].month, r[1].day, tzinfo=timezone.utc) for r in rows],
            "spot_raw_file": ["raw/x.json"] * len(rows),
        },
        schema_overrides={"observed_at": pl.Datetime("ms", "UTC")},
    )


def test_estimate_carries_the_reference_supply_back_and_names_what_it_leaves_out() -> None:
    ref, d = date(2025, 12, 1), date(2025, 11, 20)
    pairs = {"bitcoin": "BTCUSDT", "ethereum": "ETHUSDT", "impostor": "IMPUSDT", "nocap": "NCUSDT"}
    closes = _closes(
        [
            ("BTCUSDT", ref, 101.0),
            ("BTCUSDT", d, 80.0),
            ("ETHUSDT", ref, 10.2),  # no close on d: absent that day, never filled
            ("IMPUSDT", ref, 3.0),
            ("IMPUSDT", d, 3.0),  # 3x CoinGecko's price: another asset
            ("NCUSDT", ref, 5.0),
            ("NCUSDT", d, 5.0),
        ]
    )
    est = estimates.estimate_coin_daily(_reference(), ref, pairs, closes, [d])
    rows = est.rows[d]
    assert rows["coin_id"].to_list() == ["bitcoin"]
    assert rows["market_cap_usd"].to_list() == [pytest.approx(80.0 * 2000.0 / 100.0)]  # close x supply(ref)
    assert rows["price_usd"].to_list() == [80.0] and rows["volume_24h_usd"].to_list() == [None]
    COIN_DAILY.conform(rows)  # the same schema as CoinGecko's rows
    COIN_DAILY_ESTIMATES.conform(est.provenance[d])
    assert est.provenance[d].row(0, named=True)["reference_supply"] == pytest.approx(20.0)
    assert "another asset" in est.left_out["impostor"] and "closed at 3" in est.left_out["impostor"]
    assert "no CoinGecko price and market cap" in est.left_out["nocap"]
    assert "ethereum" not in est.left_out  # it has a pair; only the day's close is missing


def test_estimate_error_on_real_2025_market_caps() -> None:
    """The method on real data: CoinMarketCap's monthly top-200 snapshots of 2025, supply carried back from
    2025-10-01 at each month's price, against the published market caps (figures in METHODOLOGY.md)."""
    df = pl.read_csv(
        real_file("smoothbrainquant_trading_for_new_dads/coinmarketcap_monthly_snapshots_top200_2025.csv")
    )
    ref = df.filter((pl.col("snapshot_date") == 20251001) & (pl.col("Rank") <= 100)).select(
        "Symbol", (pl.col("Market Cap") / pl.col("Price")).alias("supply")
    )
    level, change = {}, {}
    snaps = sorted(df["snapshot_date"].unique().to_list())
    frames = {s: df.filter(pl.col("snapshot_date") == s).join(ref, on="Symbol") for s in snaps}
    for s, f in frames.items():
        level[s] = (f["Price"] * f["supply"]).sum() / f["Market Cap"].sum() - 1
    for a, b in zip(snaps, snaps[1:], strict=False):
        common = set(frames[a]["Symbol"]) & set(frames[b]["Symbol"])
        fa, fb = (frames[x].filter(pl.col("Symbol").is_in(common)) for x in (a, b))
        actual = fb["Market Cap"].sum() / fa["Market Cap"].sum() - 1
        est = (fb["Price"] * fb["supply"]).sum() / (fa["Price"] * fa["supply"]).sum() - 1
        change[b] = est - actual
    # Level: the supply grew, so carrying today's back overstates older caps, by about 0.4% a month of distance.
    assert 0 < level[20250101] < 0.05 and 0 < level[20250901] < 0.006
    # A month's change is off by under a point (about a tenth of a point a week): a weekly change is usable.
    assert max(abs(v) for v in change.values()) < 0.01


def _estimated_lake(plan: str, wh_dir, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    with MarketEmulator(now=NOW, plan=plan) as emu:
        point_env_at(monkeypatch, emu, wh_dir)
        monkeypatch.setenv("COINGECKO_TOP_N", "30")
        with run_instance() as instance:
            run_days("2025-11-20", "2025-11-23", instance, assets=list(MARKET_ASSETS))
        return Warehouse(wh_dir)


def test_a_demo_plan_backfill_older_than_365_days_is_estimated_and_close_to_the_paid_answer(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Demo-plan user a year later backfills November 2025: CoinGecko refuses those days (10012), so they are
    estimated from Binance spot; the same days pulled with a paid plan are the truth to compare with."""
    demo = _estimated_lake("demo", tmp_path / "demo", monkeypatch)
    paid = _estimated_lake("pro", tmp_path / "paid", monkeypatch)
    for day in ("2025-11-20", "2025-11-23"):
        est, truth = demo.read_partition(COIN_DAILY, day), paid.read_partition(COIN_DAILY, day)
        prov = demo.read_partition(COIN_DAILY_ESTIMATES, day)
        assert set(prov["coin_id"]) == set(est["coin_id"]) and prov["reference_day"].unique().to_list() == [
            date(2025, 12, 1)
        ]
        assert est["volume_24h_usd"].null_count() == est.height  # volume is not estimated
        assert not paid.has_partition(COIN_DAILY_ESTIMATES, day)
        both = est.join(truth, on="coin_id", suffix="_true")
        assert both.height >= 0.6 * truth.height  # stablecoins and tickers Binance lacks are left out, named
        err = both["market_cap_usd"].sum() / both["market_cap_usd_true"].sum() - 1
        assert abs(err) < 0.05, f"{day}: estimated total off by {err:.2%}"
    # nothing older than the plan was asked of CoinGecko: only the reference day
    assert not demo.has_partition(COIN_DAILY_ESTIMATES, "2025-12-01")


def test_the_report_names_a_week_resting_on_estimates_with_no_unclaimed_number() -> None:
    from datetime import timedelta

    from pipelines.narrative.claims import uncovered_numbers
    from pipelines.narrative.data import from_frames
    from pipelines.narrative.render import render_week
    from tests._narrative_frames import WEEK, frames

    wd = from_frames(WEEK.isoformat(), frames())
    assert not [g for g in render_week(wd).gaps if "estimates" in g]
    wd.estimated_days = {WEEK - timedelta(days=1) + timedelta(days=i): 180 for i in range(3)}
    report = render_week(wd)
    line = [g for g in report.gaps if "estimates" in g]
    assert len(line) == 1 and "the week's first days (its opening day included)" in line[0]
    assert "## Data gaps" in report.markdown and line[0] in report.markdown
    assert uncovered_numbers(report.markdown, report.claims, report.texts) == []
    wd.estimated_days = {WEEK - timedelta(days=1) + timedelta(days=i): 180 for i in range(8)}
    assert "every day of the week" in [g for g in render_week(wd).gaps if "estimates" in g][0]
