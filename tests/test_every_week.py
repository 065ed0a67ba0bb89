"""Every sentence true, over the emulator's whole history: a lake built once by the project's own daily pulls and
cleaning (tests/_every_week.py), every week's quality rules and weekly tables in order, and the reports of every
6th week, the weeks named in the issue, the model report's week and the latest week rendered with their checks.
``CRYPTO_WEEKLY_EVERY_WEEK=1`` (``make test-every-week``) renders all 87 weeks.

Asserted for each rendered week: nothing blocks publication (quality rules, weekly tables' blocking checks, the
claim check with its unlabeled numbers, the predicates re-derived from the lake, the second derivation), every
weekly table of every week computed again in one pass (``assets.weekly.weeks.compute_weeks``) byte for byte the
partition the week wrote alone, no sentence
twice, no style fault; across weeks: the Our View of each week is its own, two to four reasoned paragraphs."""

from __future__ import annotations

import statistics

import pytest

from assets.weekly.weeks import WEEKLY_COMPUTES, compute_weeks
from bench.set_floor import compute_all, read_lake, table_differences
from tests import _every_week as ew
from tests import _one_pass
from tests import _report_audit as audit

WEEKS = ew.all_weeks()
RENDERED = ew.rendered_weeks(WEEKS)


def test_the_weeks_are_the_emulator_history() -> None:
    assert WEEKS[0] == "2025-03-31" and WEEKS[-1] == "2026-11-23" and len(WEEKS) == 87
    assert {ew.MODEL_WEEK, WEEKS[-1], *ew.NAMED_WEEKS} <= set(RENDERED)
    assert len(RENDERED) == 87 or len(RENDERED) >= len(WEEKS) // ew.EVERY


# One test, so that no other xdist worker takes part of the module and builds the lake a second time.
@pytest.mark.slow
@pytest.mark.timeout(1800 if len(RENDERED) == len(WEEKS) else 900)
def test_every_week_true_once_and_reasoned(tmp_path) -> None:
    wh = ew.build_lake(tmp_path / "warehouse")
    runs = ew.run_weeks(wh, WEEKS, RENDERED)
    assert set(runs) == set(WEEKS)
    # every weekly table of every week computed again in one pass over the lake read once: byte for byte the
    # partition the week wrote alone
    assert _one_pass.lake_differences(wh, compute_weeks(wh, WEEKS)) == []
    # the benchmark's set-based floor (bench/set_floor: every table of every week in one vectorized pass, not the
    # project's code) gives the same tables, every week, floats within its tolerance
    floor = compute_all(read_lake(wh.root), WEEKS)
    assert set(floor) == set(WEEKLY_COMPUTES)
    assert {t: d for t, f in floor.items() if (d := table_differences(wh.root, t, f, WEEKS))} == {}
    # zero failing predicates, zero unlabeled numbers, zero wrong figures, no blocking quality or table check
    assert {w: r.blocked for w, r in runs.items() if r.blocked} == {}
    assert all(runs[w].markdown and runs[w].predicates > 5 for w in RENDERED)

    # no sentence twice, no "-0.0%", double parentheses or "ranked N of"
    repeated = {w: audit.repeated_sentences(runs[w].body) for w in RENDERED}
    assert {w: s for w, s in repeated.items() if s} == {}
    faults = {w: audit.style_faults(runs[w].body) for w in RENDERED}
    assert {w: f for w, f in faults.items() if f} == {}

    # Our View states the week's close as the lede does (the market's total, "about" when estimated)
    closes = {w: audit.close_mismatches(runs[w].markdown) for w in RENDERED}
    assert {w: c for w, c in closes.items() if c} == {}

    # Our View: each week's own, two to four reasoned paragraphs ending on what would change it
    views = {w: audit.section(runs[w].markdown, "Our View") for w in RENDERED}
    assert len(set(views.values())) == len(views)
    for w, v in views.items():
        paras = audit.paragraphs(v)
        assert 2 <= len(paras) <= 4, (w, v)
        assert "What would change this view" in paras[-1] or "revisit this view" in paras[-1], w
    words = [len(v.split()) for v in views.values()]
    assert min(words) >= 80 and statistics.median(words) >= 120, words
    for w in (
        ew.MODEL_WEEK,
        WEEKS[-1],
    ):  # the desk-note weeks: position, leverage, flows, then the conditions
        assert len(audit.paragraphs(views[w])) == 4, views[w]

    # the history has rises and falls, crossings, leverage resets, best and worst weeks: the reports say so, and
    # their headlines are not one template
    keys = {k for w in RENDERED for k in runs[w].fact_keys}
    for k in (
        "mcap_change",
        "mcap_crossing",
        "crypto_worst_streak",
        "crypto_best",
        "funding_turned_negative",
        "funding_turned_positive",
        "corr_concentrated_top",
    ):
        assert k in keys, (k, sorted(keys))
    titles = {audit.template_of(audit.title(runs[w].markdown)) for w in RENDERED}
    assert len(titles) >= 8, titles
