"""A coin missing on the close day (a data gap) is not a market-cap fall (pure functions)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from pipelines.metrics.summary import weekly_market_summary
from pipelines.narrative.data import from_frames
from pipelines.narrative.facts import derive_facts
from pipelines.schemas import WEEKLY_MARKET_SUMMARY
from tests._narrative_frames import WEEK, frames

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
    fr = frames()
    s = fr["weekly_market_summary"]
    cur = pl.col("week_start") == WEEK
    fr["weekly_market_summary"] = s.with_columns(
        pl.when(cur)
        .then(pl.lit(1.0))
        .otherwise(pl.col("total_mcap_change_like_for_like_pct"))
        .alias("total_mcap_change_like_for_like_pct"),
        pl.when(cur)
        .then(pl.lit(170, dtype=pl.Int32))
        .otherwise(pl.col("coins_common"))
        .alias("coins_common"),
        pl.when(cur).then(pl.lit(171, dtype=pl.Int32)).otherwise(pl.col("coins_end")).alias("coins_end"),
    )
    facts, gaps = derive_facts(from_frames(WEEK.isoformat(), fr))
    m = [f for f in facts if f.key == "mcap_change"][0]
    assert m.headline.md().startswith("Crypto Market Cap up 1.0% to")
    assert m.sentence.md().startswith(
        "Total crypto market cap was up 1.0% over the week across the 170 coins"
    )
    assert any(g.startswith("Market cap coverage changed") for g in gaps)
    assert "spot_resilient" not in {f.key for f in facts}  # the market did not fall like for like
