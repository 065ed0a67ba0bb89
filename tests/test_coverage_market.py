"""A coin missing on the close day (a data gap) is not a market-cap fall (pure functions)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from pipelines.metrics.summary import weekly_market_summary
from pipelines.narrative.data import from_frames
from pipelines.narrative.facts import derive_facts
from pipelines.schemas import WEEKLY_MARKET_SUMMARY
from tests._narrative_frames import WEEK, frames, frames_with_mcap_coverage_change

OPEN, CLOSE = WEEK - timedelta(days=1), WEEK + timedelta(days=6)


def day_rows(day: date, caps: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": day,
            "coin_id": list(caps),
            "price_usd": [c / 1e9 for c in caps.values()],
            "market_cap_usd": list(caps.values()),
        }
    )


def test_a_coin_missing_at_the_close_is_not_a_fall() -> None:
    caps = {"bitcoin": 1.8e12, "ethereum": 0.4e12, "tether": 0.18e12, "solana": 0.07e12}
    close = {k: v * 1.01 for k, v in caps.items() if k != "tether"}  # tether has no reading on the close day
    out = weekly_market_summary(
        day_rows(OPEN, caps), day_rows(CLOSE, close), WEEK, WEEK + timedelta(7), CLOSE
    )
    WEEKLY_MARKET_SUMMARY.conform(out)
    r = out.row(0, named=True)
    assert r["total_mcap_change_pct"] == pytest.approx((2.2927e12 / 2.45e12 - 1) * 100)  # -6.4%: the artifact
    assert r["total_mcap_change_like_for_like_pct"] == pytest.approx(1.0)
    assert (r["coins_start"], r["coins_end"], r["coins_common"]) == (4, 3, 3)
    assert r["total_mcap_start_common_usd"] == pytest.approx(2.27e12)
    assert r["total_mcap_end_common_usd"] == pytest.approx(2.2927e12)


def test_the_report_prints_the_like_for_like_change() -> None:
    fr = frames_with_mcap_coverage_change()
    facts, gaps = derive_facts(from_frames(WEEK.isoformat(), fr))
    m = [f for f in facts if f.key == "mcap_change"][0]
    assert m.headline.md().startswith("Crypto Market Cap up 1.0% to")
    assert m.sentence.md().startswith(
        "Total crypto market cap was up 1.0% over the week across the 170 coins"
    )
    assert any(g.startswith("Market cap coverage changed") for g in gaps)
    assert "spot_resilient" not in {f.key for f in facts}  # the market did not fall like for like


def _coin_daily(caps: dict[str, list[float | None]], first: date) -> pl.DataFrame:
    rows = [
        {"date": first + timedelta(days=i), "coin_id": c, "market_cap_usd": v}
        for c, vals in caps.items()
        for i, v in enumerate(vals)
        if v is not None
    ]
    return pl.DataFrame(rows, schema={"date": pl.Date, "coin_id": pl.String, "market_cap_usd": pl.Float64})


def test_a_coin_missing_on_the_close_day_is_no_fall_and_no_crossing() -> None:
    from pipelines.metrics.market import level_crossings, total_market_cap_daily, weekly_total_market_cap

    first = OPEN - timedelta(days=3)  # 11 days: first .. CLOSE
    cd = _coin_daily(
        {
            "bitcoin": [2.0e12] * 10 + [2.02e12],
            "ethereum": [0.5e12] * 10 + [0.505e12],
            "tether": [0.6e12] * 10 + [None],
        },  # no tether reading on the close day
        first,
    )
    daily = total_market_cap_daily(cd)
    assert daily.filter(pl.col("date") == CLOSE).select("total_mcap_usd", "coins", "coins_carried").row(
        0
    ) == (pytest.approx(3.125e12), 2, 1)
    row = weekly_total_market_cap(daily, WEEK.isoformat()).row(0, named=True)
    assert row["change_pct"] == pytest.approx(25e9 / 3.1e12 * 100)  # +0.8%, not -18.5%
    assert (row["coins_open"], row["coins_close"], row["coins_carried_close"]) == (3, 2, 1)
    assert level_crossings(daily, WEEK.isoformat()).height == 0  # no "falls below $3T" from the gap


def test_a_coin_gone_longer_than_the_carry_leaves_the_total() -> None:
    from pipelines.metrics.market import total_market_cap_daily

    cd = _coin_daily({"a": [1.0, 1.0, 1.0], "b": [2.0] + [None] * 5 + [2.0]}, date(2025, 11, 1))
    cd = cd.vstack(
        _coin_daily({"a": [1.0] * 7}, date(2025, 11, 1)).filter(pl.col("date") > date(2025, 11, 3))
    )
    got = dict(total_market_cap_daily(cd, carry_days=3).select("date", "total_mcap_usd").iter_rows())
    assert [got[date(2025, 11, d)] for d in range(1, 8)] == [3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 3.0]


def test_index_members_priced_at_each_end_are_counted() -> None:
    from pipelines.metrics.sectors import IndexSpec, weekly_index_returns
    from pipelines.schemas import WEEKLY_INDEX_RETURNS

    start = date(2025, 11, 9)  # this week's open day is index 7 (11-16), close 14 (11-23)
    prices = {"a": [1.0] * 14 + [1.1], "b": [1.0] * 12 + [1.2, None, None], "c": [1.0] * 8 + [None] * 7}
    rows = [
        {
            "date": start + timedelta(days=i),
            "coin_id": c,
            "symbol": c,
            "name": c,
            "price_usd": p,
            "market_cap_usd": 100.0 * p,
            "volume_24h_usd": 0.0,
        }
        for c, ps in prices.items()
        for i, p in enumerate(ps)
        if p is not None
    ]
    cd = pl.DataFrame(rows)
    cats = pl.DataFrame({"coin_id": list(prices), "categories": [["x"]] * 3})
    out = weekly_index_returns(
        cd, cats, list(prices), WEEK.isoformat(), (IndexSpec("all", None, 1, 3),), cap=1.0
    )
    WEEKLY_INDEX_RETURNS.conform(out)
    r = out.row(0, named=True)
    # a priced on the close day, b at its last price of the week (+20%), c never priced after the open: left out
    assert (r["constituents"], r["members_close"], r["members_carried"], r["members_dropped"]) == (3, 1, 1, 1)
    assert r["return_pct"] == pytest.approx(100 * (0.1 + 0.2) / 2)


def test_the_sector_line_says_how_many_members_were_priced_on_the_close_day() -> None:
    from pipelines.narrative.render import render_week

    fr = frames()
    cur = (pl.col("week_start") == WEEK) & (pl.col("index") == "l2")
    fr["weekly_index_returns"] = fr["weekly_index_returns"].with_columns(
        pl.when(cur)
        .then(pl.lit(10, dtype=pl.Int32))
        .otherwise(pl.col("members_close"))
        .alias("members_close")
    )
    md = render_week(from_frames(WEEK.isoformat(), fr)).markdown
    assert "Layer 2 (L2) down 14.9% (12 members, 10 priced on the close day)" in md
    assert "Gaming down 12.0% (12 members)" in md


def test_movers_rank_the_universes_coins_only() -> None:
    """A coin the week's registry does not list (its categories unknown: it may be a wrapped or staked token) and
    a coin whose market cap is zero at the open are not movers, however far they move; the others' rank at the
    open is their rank in the weekly universe."""
    from pipelines.metrics.summary import weekly_movers
    from pipelines.metrics.universe import eligible, eligible_ids, universe_at

    caps = {"bitcoin": 1.8e12, "ethereum": 0.4e12, "newtoken": 0.3e12, "solana": 0.07e12, "dead": 0.0}
    moves = {"bitcoin": 1.01, "ethereum": 0.97, "newtoken": 3.0, "solana": 1.2, "dead": 5.0}
    close = {k: v * moves[k] for k, v in caps.items()}
    registry = pl.DataFrame(
        {
            "coin_id": ["bitcoin", "ethereum", "solana", "dead"],
            "categories": [["layer-1"], ["layer-1", "smart-contract-platform"], ["layer-1"], []],
        }
    )

    def rows(day: date, values: dict[str, float]) -> pl.DataFrame:
        named = pl.col("coin_id").str.to_uppercase()
        return day_rows(day, values).with_columns(named.alias("symbol"), named.alias("name"))

    out = weekly_movers(rows(OPEN, caps), rows(CLOSE, close), registry, WEEK)
    gainers = out.filter(pl.col("kind") == "gainer")
    assert gainers["coin_id"].to_list() == ["solana", "bitcoin", "ethereum"]
    universe = universe_at(rows(OPEN, caps), eligible_ids(eligible(registry)), OPEN)
    ranks = dict(universe.select("coin_id", "rank").iter_rows())
    assert dict(gainers.select("coin_id", "rank_start").iter_rows()) == ranks
