"""The report reads the like-for-like figures and says when coverage changed (pure: frames in, text out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.metrics.leverage import weekly_leverage
from pipelines.narrative.claims import check_claims
from pipelines.narrative.data import BY_NAME, from_frames
from pipelines.narrative.facts import derive_facts
from pipelines.narrative.render import render_week
from pipelines.warehouse import Warehouse
from tests._leverage_frames import funding_frame, oi_rows
from tests._narrative_frames import WEEK, WEEKS, frames, frames_with_mcap_coverage_change

W = WEEK.isoformat()
OPEN, CLOSE = WEEK - timedelta(days=1), WEEK + timedelta(days=6)
DAYS = [WEEK - timedelta(days=80) + timedelta(days=i) for i in range(87)]  # .. the close day


def _funding(venues: list[str], rate: float) -> pl.DataFrame:
    t0 = datetime(WEEK.year, WEEK.month, WEEK.day, tzinfo=UTC) - timedelta(days=14)
    sym = {"okx": "BTC-USDT-SWAP"}
    rows = [
        (ex, sym.get(ex, "BTCUSDT"), t0 + timedelta(hours=8 * k), rate, 8)
        for ex in venues
        for k in range(1, 64)
    ]
    return funding_frame(rows)


def _with_leverage(row: pl.DataFrame) -> dict[str, pl.DataFrame]:
    fr = frames()
    lev = fr["weekly_leverage"].filter(pl.col("week_start") != WEEK)
    fr["weekly_leverage"] = pl.concat([lev, row.select(lev.columns).cast(lev.schema)])
    return fr


def _lake(tmp_path: Path, fr: dict[str, pl.DataFrame]) -> Warehouse:
    wh = Warehouse(tmp_path / "wh")
    for name, df in fr.items():
        for w in WEEKS:
            part = df.filter(pl.col("week_start") == w)
            if part.height or name == "weekly_mcap_crossings":
                wh.write_partition(BY_NAME[name], w.isoformat(), part)
    return wh


def okx_missing_at_close() -> pl.DataFrame:
    """OKX (30bn) has no reading on the close day; Binance and Bybit rise 2.1%. Binance funding has no OI."""
    lv = {
        ("binance", "BTCUSDT"): {d: 60e9 for d in DAYS},
        ("bybit", "BTCUSDT"): {d: 40e9 for d in DAYS},
        ("okx", "BTC-USDT-SWAP"): {d: 30e9 for d in DAYS if d != CLOSE},
    }
    lv[("binance", "BTCUSDT")][CLOSE] = 61.26e9
    lv[("bybit", "BTCUSDT")][CLOSE] = 40.84e9
    oi = (
        oi_rows(lv)
        .filter(pl.col("exchange") != "binance")
        .vstack(oi_rows({k: v for k, v in lv.items() if k[0] == "binance"}))
    )
    f = pl.concat([_funding(["bybit", "okx"], 0.0001), _funding(["binance"], 0.0003)])
    # Binance funding has no OI: its OI series is named differently from its funding symbol
    oi = oi.with_columns(
        pl.when(pl.col("exchange") == "binance")
        .then(pl.lit("BTCUSDT_PERP"))
        .otherwise(pl.col("symbol"))
        .alias("symbol")
    )
    return weekly_leverage(f, oi, None, W, oi_tolerance=timedelta(days=2))


def test_a_venue_missing_at_the_close_makes_no_leverage_headline(tmp_path: Path) -> None:
    row = okx_missing_at_close()
    r = row.row(0, named=True)
    assert r["oi_change_pct"] < -20 and abs(r["oi_change_like_for_like_pct"] - 2.1) < 1e-9
    fr = _with_leverage(row)
    facts, gaps = derive_facts(from_frames(W, fr))
    keys = {f.key for f in facts}
    assert "oi_deleveraging" not in keys and "oi_vs_peak" in keys
    rep = render_week(from_frames(W, fr))
    assert "Leverage Resets" not in rep.title
    text = rep.markdown
    assert (
        "Open interest changed +2.1% on the week, comparing Binance and Bybit at both ends; OKX had no open-interest reading on the close day."
        in text
    )
    assert "-21" not in text and "-18" not in text
    assert "Open interest coverage changed: OKX had no open-interest reading on the close day." in text
    # funding: OI-weighted over the settlements with OI only, and the report says so
    assert "Open-interest-weighted funding" not in text
    assert (
        "Funding averaged +1.00 bp per 8h (+11.0% annualized; open-interest-weighted over the 67% of settlements with an open-interest reading)"
        in text
    )
    assert "Funding weighting: Binance settlements had no open-interest reading" in text
    # every printed number re-derives from the lake
    wh = _lake(tmp_path, fr)
    bad = [c for c in check_claims(wh, W, rep.markdown, rep.claims, rep.texts) if not c.ok]
    assert bad == []


def test_a_fully_covered_week_reads_as_before() -> None:
    facts, gaps = derive_facts(from_frames(W, frames()))
    oi = [f for f in facts if f.key == "oi_weekly_change"][0]
    assert (
        oi.sentence.md() == "Open interest changed \\-10.0% on the week."
        or oi.sentence.md() == "Open interest changed -10.0% on the week."
    )
    fund = [f for f in facts if f.key.startswith("funding_turned")][0]
    assert fund.sentence.md().startswith("Open-interest-weighted funding averaged")
    assert not any("coverage" in g or "weighting" in g for g in gaps)


def test_the_mcap_coverage_sentence_passes_the_claim_check(tmp_path: Path) -> None:
    fr = frames_with_mcap_coverage_change()
    rep = render_week(from_frames(W, fr))
    assert (
        "across the 170 coins with a market cap at both ends (190 at the open, 171 at the close)"
        in rep.markdown
    )
    wh = _lake(tmp_path, fr)
    assert [c for c in check_claims(wh, W, rep.markdown, rep.claims, rep.texts) if not c.ok] == []


def test_a_share_below_one_never_prints_as_100_percent() -> None:
    from pipelines.narrative.format import fmt

    assert [fmt("share_pct", v) for v in (0.4812, 0.666, 0.999001, 1.0)] == ["48%", "67%", "99.9%", "100%"]
