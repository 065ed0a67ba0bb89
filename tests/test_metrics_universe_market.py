from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.metrics.market import level_crossings, total_market_cap_daily, weekly_total_market_cap
from pipelines.metrics.universe import eligible, eligible_ids, weekly_universe
from pipelines.schemas import TABLES, WEEKLY_MCAP_CROSSINGS, WEEKLY_TOTAL_MARKET_CAP, WEEKLY_UNIVERSE

WEEK = "2025-11-17"  # open day 2025-11-16, close day 2025-11-23


def coin_rows(coin_id, start, mcaps, price=1.0):
    return [
        {
            "date": start + timedelta(days=i),
            "coin_id": coin_id,
            "symbol": coin_id[:3],
            "name": coin_id.title(),
            "price_usd": price * m / mcaps[0] if m is not None else None,
            "market_cap_usd": m,
            "volume_24h_usd": 1.0,
        }
        for i, m in enumerate(mcaps)
    ]


def test_eligible_excludes_categories_and_applies_overrides():
    registry = pl.DataFrame(
        {
            "coin_id": [
                "bitcoin",
                "tether",
                "wrapped-bitcoin",
                "lido-staked-ether",
                "pax-gold",
                "usd-coin-bridged",
                "ether-fi-staked-eth",
                "dogecoin",
                "weird",
            ],
            "categories": [
                ["layer-1"],
                ["stablecoins", "usd-stablecoin"],
                ["wrapped-tokens"],
                ["liquid-staking-tokens"],
                ["tokenized-gold"],
                ["bridged-usdc"],
                ["liquid-restaking-tokens"],
                ["meme-token"],
                ["layer-1"],
            ],
        }
    )
    overrides = pl.DataFrame(
        {"coin_id": ["weird", "pax-gold"], "include": [False, False], "reason": ["scam", "x"]}
    )
    out = eligible(registry, overrides)
    assert set(eligible_ids(out)) == {"bitcoin", "dogecoin"}
    assert out.filter(pl.col("coin_id") == "weird")["reason"][0] == "override: scam"
    forced = eligible(registry, pl.DataFrame({"coin_id": ["tether"], "include": [True], "reason": ["desk"]}))
    assert "tether" in eligible_ids(forced)


def test_weekly_universe_uses_open_day_and_is_survivorship_free():
    start = date(2025, 11, 10)
    rows = coin_rows("aaa", start, [10.0] * 14) + coin_rows("bbb", start, [20.0] * 7 + [5.0] * 7)
    # ccc is big at the open (2025-11-16 is index 6) and then vanishes
    rows += coin_rows("ccc", start, [1, 1, 1, 1, 1, 1, 30.0])
    rows += coin_rows("ddd", start, [100.0] * 14)  # ineligible
    cd = pl.DataFrame(rows)
    u = weekly_universe(cd, ["aaa", "bbb", "ccc"], WEEK, top_n=2)
    assert u["coin_id"].to_list() == ["ccc", "bbb"]
    assert u["rank"].to_list() == [1, 2]
    WEEKLY_UNIVERSE.conform(u)
    assert TABLES["weekly_universe"] is WEEKLY_UNIVERSE


def test_total_and_weekly_change_hand_computed():
    start = date(2025, 11, 16)
    cd = pl.DataFrame(coin_rows("a", start, [1e12] * 8) + coin_rows("b", start, [2e12] * 7 + [1e12]))
    daily = total_market_cap_daily(cd)
    row = weekly_total_market_cap(daily, WEEK)
    WEEKLY_TOTAL_MARKET_CAP.conform(row)
    assert row["mcap_open_usd"][0] == 3e12 and row["mcap_close_usd"][0] == 2e12
    assert row["change_pct"][0] == pytest.approx(-100 / 3)


def test_crossing_first_time_since():
    days = pl.date_range(date(2025, 4, 1), date(2025, 11, 23), eager=True)
    vals = [2.9e12 if d < date(2025, 4, 20) else 3.6e12 for d in days]
    vals[-3:] = [3.1e12, 2.95e12, 2.97e12]  # 11-21, 11-22, 11-23
    vals[0] = 4.1e12  # above 4T only on 04-01: 4T is never crossed inside the week
    daily = pl.DataFrame({"date": days, "total_mcap_usd": vals})
    out = level_crossings(daily, WEEK, step=0.5e12)
    WEEKLY_MCAP_CROSSINGS.conform(out)
    assert out.select("level_usd", "direction", "crossed_on", "last_other_side_day").rows() == [
        (3.5e12, "down", date(2025, 11, 21), date(2025, 4, 19)),
        (3.0e12, "down", date(2025, 11, 22), date(2025, 4, 19)),
    ]
    up = level_crossings(daily.with_columns(-pl.col("total_mcap_usd") + 7e12), WEEK, step=0.5e12)
    assert set(up["direction"]) == {"up"}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(2e12, 5e12), min_size=20, max_size=40), st.integers(0, 20))
def test_removing_later_data_does_not_change_a_week(vals, extra):
    days = pl.date_range(
        date(2025, 11, 23) - timedelta(days=len(vals) - 1 - extra),
        date(2025, 11, 23) + timedelta(days=extra),
        eager=True,
    )
    daily = pl.DataFrame({"date": days[: len(vals)], "total_mcap_usd": vals})
    cut = daily.filter(pl.col("date") <= date(2025, 11, 23))
    assert weekly_total_market_cap(daily, WEEK).equals(weekly_total_market_cap(cut, WEEK))
    assert level_crossings(daily, WEEK).equals(level_crossings(cut, WEEK))


def test_total_market_cap_daily_is_independent_of_row_order():
    import numpy as np

    rng = np.random.default_rng(5)
    n = 5000
    cd = pl.DataFrame(
        {
            "date": [date(2025, 4, 1) + timedelta(days=int(d)) for d in rng.integers(0, 5, n)],
            "coin_id": [f"c{i}" for i in range(n)],
            "market_cap_usd": rng.lognormal(20, 3, n),
        }
    )
    first = total_market_cap_daily(cd)
    for seed in range(8):
        again = total_market_cap_daily(cd.sample(fraction=1.0, shuffle=True, seed=seed))
        assert again["total_mcap_usd"].to_list() == first["total_mcap_usd"].to_list()


def test_crossing_back_and_again_on_the_closing_day():
    """Down on Tuesday, up on Thursday, down again on the closing Sunday: the last crossing is kept, so the
    report's 'closed below' agrees with the close (the old de-duplication dropped the closing-day crossing)."""
    days = pl.date_range(date(2025, 9, 1), date(2025, 11, 23), eager=True)
    vals = [3.2e12] * len(days)
    vals[-6:] = [2.9e12, 2.95e12, 3.05e12, 3.1e12, 3.02e12, 2.98e12]  # 11-18 .. 11-23 (close day 11-23)
    out = level_crossings(pl.DataFrame({"date": days, "total_mcap_usd": vals}), WEEK, step=0.5e12)
    WEEKLY_MCAP_CROSSINGS.conform(out)
    assert out.select("level_usd", "direction", "crossed_on").rows() == [
        (3.0e12, "down", date(2025, 11, 18)),
        (3.0e12, "up", date(2025, 11, 20)),
        (3.0e12, "down", date(2025, 11, 23)),
    ]


def test_a_coin_without_any_category_is_eligible() -> None:
    """Many CoinGecko coins belong to none of the categories pulled: an empty list must not drop them from the
    universe (polars' explode drops empty lists; the second derivation caught the size buckets disagreeing)."""
    from pipelines.metrics.universe import eligible, eligible_ids

    registry = pl.DataFrame(
        {"coin_id": ["plain", "stable", "both"], "categories": [[], ["stablecoins"], ["layer-1"]]},
        schema={"coin_id": pl.String, "categories": pl.List(pl.String)},
    )
    assert eligible_ids(eligible(registry)) == ["both", "plain"]
