"""Every sentence true: qualitative statements are checked claims (pipelines/narrative/predicates.py).

One test per false-statement class found in the emulator's reports builds the contradicting tables and asserts
the sentence is not printed; a lake edited after rendering blocks the week with the sentence named; and a
multi-week synthetic lake is rendered week by week with zero failing predicates, zero repeated sentences and
zero numbers without a claim."""

from __future__ import annotations

import collections
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.report import build_report
from pipelines.narrative.data import BY_NAME, from_frames
from pipelines.narrative.facts import derive_facts, our_view
from pipelines.narrative.predicates import Predicate, check_predicates
from pipelines.narrative.render import render_week
from tests import _report_audit as audit
from tests._narrative_frames import WEEK, WEEKS, frames, table

W = WEEK.isoformat()


def _set(fr: dict[str, pl.DataFrame], name: str, values: dict, where: pl.Expr | None = None) -> None:
    cond = pl.col("week_start") == WEEK
    if where is not None:
        cond = cond & where
    fr[name] = table(
        name,
        fr[name]
        .with_columns(
            [pl.when(cond).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in values.items()]
        )
        .to_dicts(),
    )


def _text(fr: dict[str, pl.DataFrame]) -> str:
    return render_week(from_frames(W, fr)).markdown


# ---- the rule engine -----------------------------------------------------------------------------------------
def test_rules_evaluate_and_fail_on_missing_values() -> None:
    assert Predicate("between_down", (3.1e12, 3e12, 2.9e12), "").holds()
    assert not Predicate("between_down", (3.1e12, 3e12, 3.0e12), "").holds()  # closed at the level: not below
    assert Predicate("between_up", (2.9e12, 3e12, 3e12), "").holds()
    assert not Predicate("strict_min", (-4.2, -4.2, 1.0), "").holds()  # a tie is not "worst"
    assert Predicate("days_before", (date(2025, 10, 18), date(2025, 11, 17)), "", 15).holds()
    assert not Predicate("days_before", (date(2025, 11, 16), date(2025, 11, 17)), "", 15).holds()
    assert not Predicate("same_sign", (0.0001, -3.0), "").holds()
    assert not Predicate("gt", (None, 0), "").holds()
    with pytest.raises(KeyError):
        Predicate("roughly", (1, 2), "")


# ---- one test per false-statement class ----------------------------------------------------------------------
def test_highest_since_needs_a_rise_and_a_date_before_the_week() -> None:
    fr = frames()
    assert "the highest since April 9" in _text(fr)
    _set(fr, "weekly_btc_volatility", {"rv7_change_pts": -11.3})  # the volatility fell
    assert "highest since" not in _text(fr)
    fr = frames()
    _set(
        fr, "weekly_btc_volatility", {"rv7_highest_since": WEEK - timedelta(days=1)}
    )  # the week's opening day
    md = _text(fr)
    assert "highest since" not in md and "Highest Since" not in md


def test_closed_below_agrees_with_the_printed_open_and_close() -> None:
    fr = frames()
    assert "closed below $3T" in _text(fr)
    _set(
        fr, "weekly_total_market_cap", {"market_total_close_usd": 3.05e12}
    )  # the close printed beside it is above
    md = _text(fr)
    assert "closed below $3T" not in md and "Falls Below" not in md
    fr = frames()
    _set(
        fr, "weekly_total_market_cap", {"market_total_open_usd": 2.97e12}
    )  # opened below already: no crossing
    assert "closed below $3T" not in _text(fr)


def test_did_worst_only_when_the_top_10_is_the_minimum() -> None:
    fr = frames()
    assert "which also lost the most of the rank buckets" in _text(fr)
    _set(fr, "weekly_correlation_buckets", {"ew_return_pct": -12.0}, pl.col("bucket") == "11-50")
    md = _text(fr)
    assert "which also" not in md and "fell the most" not in md


def test_largest_coins_fell_the_most_not_printed_in_a_rising_week() -> None:
    fr = frames()
    _set(
        fr,
        "weekly_market_summary",
        {"total_mcap_change_like_for_like_pct": 10.2, "total_mcap_change_pct": 10.2},
    )
    assert "fell the most" not in _text(fr)


def test_supports_the_move_only_when_the_move_agrees() -> None:
    fr = frames()
    _set(
        fr,
        "weekly_leverage",
        {"funding_8h_mean": 0.0001, "oi_change_like_for_like_pct": 8.0, "oi_change_pct": 8.0},
    )
    md = _text(fr)  # the market fell
    assert "supports the move" not in md and "long squeeze" in md
    _set(
        fr,
        "weekly_market_summary",
        {
            "total_mcap_change_like_for_like_pct": 4.0,
            "total_mcap_change_pct": 4.0,
            "total_mcap_end_usd": 3.2e12,
        },
    )
    assert "supports the move" in _text(fr)


def test_leverage_resets_not_in_a_week_open_interest_rose() -> None:
    fr = frames()
    assert "Leverage Resets" in [f.headline.md() for f in derive_facts(from_frames(W, fr))[0] if f.headline]
    _set(fr, "weekly_leverage", {"oi_change_like_for_like_pct": 6.0, "oi_change_pct": 6.0})
    heads = [f.headline.md() for f in derive_facts(from_frames(W, fr))[0] if f.headline]
    assert "Leverage Resets" not in heads
    assert "flushed" not in _text(fr)


def test_leans_short_needs_funding_and_accounts_to_agree() -> None:
    fr = frames()
    assert "Positioning leans short" in _text(fr)
    _set(fr, "weekly_leverage", {"long_short_ratio_mean": 1.67})
    md = _text(fr)
    assert "leans short" not in md and "skewed towards shorts" not in md
    assert "no clear lean" in md


def test_trails_every_asset_class_not_printed_on_a_tie() -> None:
    fr = frames()
    _set(fr, "weekly_crypto_rank", {"worst_streak_weeks": 1})
    _set(fr, "weekly_cross_asset", {"return_pct": -4.2}, pl.col("asset").is_in(["crypto", "gold"]))
    md = _text(fr)
    assert "Trails Every" not in md and "worst-performing" not in md
    assert "tied for the weakest return" in md


def test_best_performing_wording_instead_of_a_rank() -> None:
    fr = frames()
    _set(fr, "weekly_crypto_rank", {"crypto_rank": 1, "is_worst": False, "worst_streak_weeks": 0})
    _set(fr, "weekly_cross_asset", {"return_pct": 5.0}, pl.col("asset") == "crypto")
    md = _text(fr)
    assert "best-performing of 7 major asset classes" in md and "ranked 1 of" not in md


def test_turned_positive_needs_the_sign_flip() -> None:
    fr = frames()
    _set(fr, "weekly_leverage", {"funding_8h_mean": 0.0001})
    facts, _ = derive_facts(from_frames(W, fr))
    assert "funding_turned_positive" not in [f.key for f in facts]  # positive the week before as well


def test_no_sentence_twice_and_no_negative_zero() -> None:
    fr = frames()
    _set(fr, "weekly_index_returns", {"return_pct": -0.04}, pl.col("index") == "gaming")
    md = _text(fr).split("## Sources")[0]
    assert audit.repeated_sentences(md) == []
    assert audit.style_faults(md) == []  # no "-0.0%", no double parentheses, no "ranked N of"


def test_our_view_is_reasoning_with_checked_judgments() -> None:
    wd = from_frames(W, frames())
    view = our_view(derive_facts(wd)[0], wd)
    assert 2 <= len(view) <= 4 and all(p.holds() for f in view for p in f.predicates)
    words = sum(len(f.sentence.md().split()) for f in view)
    assert words >= 120
    assert "What would change" in view[-1].sentence.md() or "revisit" in view[-1].sentence.md()
    other = from_frames(WEEKS[-2].isoformat(), frames())
    assert [f.sentence.md() for f in our_view(derive_facts(other)[0], other)] != [
        f.sentence.md() for f in view
    ]


# ---- a false statement in the lake blocks publication, naming the sentence -----------------------------------
def test_lake_contradicting_a_statement_blocks_the_week(tmp_path: Path) -> None:
    from tests.test_narrative_report import lake

    fr = frames()
    wh = lake(tmp_path, fr)
    rendered = render_week(from_frames(W, fr))
    assert all(r.ok for r in check_predicates(wh, W, rendered.predicates))
    bad = fr["weekly_btc_volatility"].with_columns(
        rv7_change_pts=pl.lit(-5.0)
    )  # the claim check would not see it
    wh.write_partition(BY_NAME["weekly_btc_volatility"], W, bad.filter(pl.col("week_start") == WEEK))
    wh.refresh_catalog()
    failing = [r for r in check_predicates(wh, W, rendered.predicates) if not r.ok]
    assert failing and all("7-day realized volatility" in r.sentence for r in failing)
    assert "the 7-day volatility rose" in str(failing[0])


def test_build_report_blocks_a_false_statement(tmp_path: Path, monkeypatch) -> None:
    from tests.test_narrative_report import lake

    wh = lake(tmp_path, frames())
    import assets.report as rep

    real = rep.render_week

    def lying(*a, **k):
        r = real(*a, **k)
        r.predicates.append(
            Predicate("lt", (r.facts[0].sentence.parts["level"], 1e12), "the level is below $1T").as_dict(
                r.facts[0].sentence.md()
            )
        )
        return r

    monkeypatch.setattr(rep, "render_week", lying)
    with pytest.raises(dg.Failure, match="closed below \\$3T"):
        build_report(wh, W)


# ---- many weeks -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many_weeks(tmp_path_factory):
    import tests._weekly_world as ww
    from tests import _week_pipeline as pipe

    old = ww.LAST_DAY
    ww.LAST_DAY = date(2025, 7, 6)  # 20 weeks: 2025-02-17 .. 2025-06-30
    try:
        world = ww.build()
    finally:
        ww.LAST_DAY = old

    # funding below zero in alternate three-week blocks: weekly sign flips both ways and negative streaks
    def flip(df: pl.DataFrame) -> pl.DataFrame:
        block = ((pl.col("funding_time").dt.date() - pl.lit(date(2025, 2, 17))).dt.total_days() // 21) % 2
        return df.with_columns(
            funding_rate=pl.when(block == 1)
            .then(pl.col("funding_rate") - 0.0003)
            .otherwise(pl.col("funding_rate"))
        )

    wh = ww.write_lake(
        tmp_path_factory.mktemp("many") / "wh",
        world,
        datetime(2025, 7, 8, tzinfo=UTC),
        transform={"funding_rates": flip},
    )
    runs, w = {}, date(2025, 2, 17)
    while w <= date(2025, 6, 30):
        runs[w] = pipe.run_week(wh, w.isoformat())
        w += timedelta(days=7)
    return runs


def test_many_weeks_every_sentence_checked(many_weeks) -> None:
    assert len(many_weeks) >= 20
    blocked = {w: r.blocked for w, r in many_weeks.items() if r.blocked}
    assert blocked == {}  # zero failing predicates, zero numbers without a claim, zero wrong figures
    assert sum(r.predicates for r in many_weeks.values()) > 5 * len(many_weeks)
    for w, r in many_weeks.items():
        assert audit.repeated_sentences(r.body) == [], w
        assert audit.style_faults(r.body) == [], w
    keys = collections.Counter(k for r in many_weeks.values() for k in set(r.fact_keys))
    # the lake has rises and falls, crossings, leverage resets and rebuilding, best and worst weeks
    for k in (
        "mcap_change",
        "mcap_crossing",
        "oi_deleveraging",
        "crypto_worst",
        "crypto_best",
        "funding_turned_negative",
        "funding_turned_positive",
        "funding_negative_streak",
    ):
        assert keys[k] >= 1, (k, keys)
    bodies = [r.body for r in many_weeks.values()]
    for words in (
        "market cap was up",
        "market cap was down",
        "Open interest changed +",
        "Open interest changed -",
    ):
        assert any(words in b for b in bodies), words  # rises and falls of the market and of open interest
    views = {audit.section(r.markdown, "Our View") for r in many_weeks.values()}
    assert len(views) == len(many_weeks)  # no two weeks share a view


def test_markdown_appendix_is_compact(tmp_path: Path) -> None:
    from tests.test_narrative_report import lake

    wh = lake(tmp_path, frames())
    rendered, man, _, _ = build_report(wh, W)
    tail = rendered.markdown.split("## Sources")[1]
    assert len(tail.strip().splitlines()) < 25 and "Lineage hash" in tail
    assert man["sources_sha256"].startswith(tail.split("`")[-2]) and man["predicates"]
    # the asset check re-reads the predicates from manifest.json: they survive the JSON round trip
    stored = json.loads((wh.reports_dir / W / "manifest.json").read_text())["predicates"]
    assert stored and all(r.ok for r in check_predicates(wh, W, stored))
