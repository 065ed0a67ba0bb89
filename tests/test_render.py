"""Rendering: API strings are escaped in HTML and Markdown; wording follows the numbers."""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines.narrative.render import md_escape, render_report

HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "[x](javascript:alert(1))", "a|b\nc"]


def summary(change: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "week_start": [date(2025, 11, 17)],
            "week_end": [date(2025, 11, 24)],
            "total_mcap_start_usd": [3.2e12],
            "total_mcap_end_usd": [3.2e12 * (1 + change / 100)],
            "total_mcap_change_pct": [change],
            "btc_return_pct": [-8.3],
            "eth_return_pct": [None],
            "coins_start": [189],
            "coins_end": [189],
            "last_close_day": [date(2025, 11, 23)],
        }
    )


def movers(names: list[str]) -> pl.DataFrame:
    n = len(names)
    return pl.DataFrame(
        {
            "week_start": [date(2025, 11, 17)] * 2 * n,
            "kind": ["gainer"] * n + ["loser"] * n,
            "position": list(range(1, n + 1)) * 2,
            "coin_id": [f"c{i}" for i in range(2 * n)],
            "symbol": names * 2,
            "name": names * 2,
            "rank_start": list(range(1, 2 * n + 1)),
            "return_pct": [10.0] * n + [-10.0] * n,
        }
    )


def test_hostile_names_are_escaped() -> None:
    r = render_report(summary(-7.8), movers(HOSTILE), [], "test")
    assert "<script>" not in r.html and "<img" not in r.html and "&lt;script&gt;" in r.html
    assert "<script>" not in r.markdown and "](javascript" not in r.markdown
    assert all("\n" not in md_escape(h) for h in HOSTILE)


def test_wording_follows_the_sign_and_missing_values_are_said() -> None:
    down = render_report(summary(-7.8), movers(["A"]), [], "test")
    up = render_report(summary(4.2), movers(["A"]), [], "test")
    assert down.title == "Crypto market cap falls 7.8% to $2.95T"
    assert up.title.startswith("Crypto market cap rises 4.2%")
    assert "Ether (ETH): n/a" in down.markdown
    assert "Ether -" not in down.headline  # no sentence about a missing number
