"""The Macro Update's sentence on rate expectations, from ``weekly_rate_expectations``.

Three-month Treasury bills against the effective fed funds rate (METHODOLOGY.md, "Rate expectations"): the
bill-implied change is the bill's yield, on the funds rate's overnight basis, minus the funds rate, in basis
points and in cuts of 25 bp. Every figure is a claim on that table's row and every judgment a ``Predicate`` over
those claims and the threshold below:

* "priced about N cuts": the bill-implied change is at most ``-MOVE_BP``; "priced no cut": above it (with "a
  slightly higher overnight rate" from ``+MOVE_BP``);
* "more cuts" / "fewer cuts" than a week earlier: the weekly change is at most ``-MOVE_BP`` with cuts priced now,
  or at least ``+MOVE_BP`` with cuts priced a week earlier; otherwise "a lower" / "a higher rate path"; within
  ``MOVE_BP`` either way "little changed".

A row whose status is not 'ok' (a series missing or not updated this week) gives no sentence and a Data gaps
line; so does a week with no value a week earlier for the change (the level is still printed).
"""

from __future__ import annotations

from pipelines.narrative.data import WeekData
from pipelines.narrative.facts import Fact, num
from pipelines.narrative.pieces import Phrase
from pipelines.narrative.predicates import Predicate, hold

TABLE = "weekly_rate_expectations"
MOVE_BP = 2.5  # a tenth of a cut of 25 bp: a smaller priced change (or weekly change) is said to be none
PRIORITY = 20  # the Macro Update prints it; it is not a candidate for the lede (see ``render_week``)

GAP_UNAVAILABLE = (
    "Rate expectations: the three-month Treasury bill rate or the effective fed funds rate is not available, so "
    "the report says nothing about the rate path priced this week."
)
GAP_STALE = (
    "Rate expectations: the three-month Treasury bill rate and the effective fed funds rate have no common "
    "observation this week (the latest is older), so the report says nothing about the rate path priced this week."
)
GAP_NO_CHANGE = "Rate expectations: no value as known a week earlier, so the weekly change of the priced path is not given."


def rate_expectations(wd: WeekData, gaps: list[str]) -> list[Fact]:
    """The rate-expectations fact of the week (one or none); gap lines go to ``gaps``."""
    r = wd.one(TABLE)
    if r is None:  # no partition: ``WeekData.missing`` names it under Data gaps
        return []
    if r["status"] != "ok" or r["implied_change_bp"] is None:
        gaps.append(GAP_STALE if r["status"] == "stale" else GAP_UNAVAILABLE)
        return []
    t, w = TABLE, wd.week
    implied = num(t, w, "implied_change_bp", r["implied_change_bp"], "bp0")
    levels = {
        "i": implied,
        "y": num(t, w, "bill_overnight_pct", r["bill_overnight_pct"], "rate2"),
        "f": num(t, w, "funds_rate_pct", r["funds_rate_pct"], "rate2"),
        "d": num(t, w, "observation_date", r["observation_date"], "long_date"),
    }
    detail = (
        "a bill-implied change of {i} in the average overnight rate (bill yield {y} on the funds rate's overnight "
        "basis against an effective fed funds rate of {f}, {d})."
    )
    cuts = Predicate(
        "le",
        (implied, -MOVE_BP),
        "bills price the overnight rate at least a tenth of a cut below the funds rate",
    )
    if cuts.holds():
        first = Phrase(
            "Rate expectations: three-month Treasury bills priced about {n} cuts of 25 bp over the next "
            "three months, " + detail,
            {**levels, "n": num(t, w, "cuts_priced", r["cuts_priced"], "cuts1")},
        )
        preds = [cuts]
    elif (
        up := Predicate(
            "ge",
            (implied, MOVE_BP),
            "bills price the overnight rate at least a tenth of a cut above the funds rate",
        )
    ).holds():
        first = Phrase(
            "Rate expectations: three-month Treasury bills priced no cut over the next three months but a "
            "slightly higher overnight rate, " + detail,
            levels,
        )
        preds = [up]
    else:
        first = Phrase(
            "Rate expectations: three-month Treasury bills priced no cut over the next three months, "
            + detail,
            levels,
        )
        preds = [
            Predicate("gt", (implied, -MOVE_BP), "bills price less than a tenth of a cut"),
            Predicate("lt", (implied, MOVE_BP), "bills price less than a tenth of a cut of rise"),
        ]
    if not hold(preds):  # the branches cover every value; a failure here is a bug, not data
        raise AssertionError(f"rate expectations: no rule holds for {r['implied_change_bp']}")
    sentence, change_preds = _weekly_change(wd, r, implied, first)
    if sentence is None:
        gaps.append(GAP_NO_CHANGE)
        sentence = first
    numbers = {k: r[k] for k in ("implied_change_bp", "cuts_priced", "change_bp")}
    return [Fact("rate_expectations", PRIORITY, sentence, None, numbers, (*preds, *change_preds))]


def _weekly_change(wd: WeekData, r: dict, implied, first: Phrase) -> tuple[Phrase | None, list[Predicate]]:
    if r["change_bp"] is None or r["prev_implied_change_bp"] is None or r["prev_observation_date"] is None:
        return None, []
    t, w = TABLE, wd.week
    ch = num(t, w, "change_bp", r["change_bp"], "bp0")
    prev = num(t, w, "prev_implied_change_bp", r["prev_implied_change_bp"], "bp0")
    parts = {
        "a": first,
        "p": prev,
        "pd": num(t, w, "prev_observation_date", r["prev_observation_date"], "long_date"),
        "ch": ch,
    }
    fell = Predicate(
        "le", (ch, -MOVE_BP), "the bill-implied change fell by at least a tenth of a cut on the week"
    )
    rose = Predicate(
        "ge", (ch, MOVE_BP), "the bill-implied change rose by at least a tenth of a cut on the week"
    )
    cuts_now = Predicate("le", (implied, -MOVE_BP), "bills price at least a tenth of a cut now")
    cuts_before = Predicate("le", (prev, -MOVE_BP), "bills priced at least a tenth of a cut a week earlier")
    rules: list[tuple[str, list[Predicate]]] = [
        ("markets priced more cuts", [fell, cuts_now]),
        ("markets priced fewer cuts", [rose, cuts_before]),
        (
            "markets priced a lower rate path",
            [fell, Predicate("gt", (implied, -MOVE_BP), "bills price less than a tenth of a cut now")],
        ),
        (
            "markets priced a higher rate path",
            [
                rose,
                Predicate("gt", (prev, -MOVE_BP), "bills priced less than a tenth of a cut a week earlier"),
            ],
        ),
    ]
    for words, preds in rules:
        if hold(preds):
            return Phrase(
                "{a} A week earlier ({pd}) it was {p}: " + words + ", {ch} on the week.", parts
            ), preds
    steady = [
        Predicate(
            "gt", (ch, -MOVE_BP), "the bill-implied change moved less than a tenth of a cut on the week"
        ),
        Predicate(
            "lt", (ch, MOVE_BP), "the bill-implied change moved less than a tenth of a cut on the week"
        ),
    ]
    if not hold(steady):
        raise AssertionError(f"rate expectations: no rule holds for a weekly change of {r['change_bp']}")
    return Phrase("{a} A week earlier ({pd}) it was {p}, little changed ({ch} on the week).", parts), steady
