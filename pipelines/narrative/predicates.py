"""Qualitative statements as checked claims.

A number in the report is a claim (``pieces.Num``): the claim check re-derives it from the lake. A *judgment*
("the highest since", "did worst", "closed back above", "turned negative", "supports the move", "trails every
major asset class") is a ``Predicate``: a rule over operands that are claims (table, partition, column, row key)
or fixed thresholds written in code. The facts engine only writes a sentence when its predicates hold on the
week's tables; the report's blocking check (``check_predicates``) re-derives every operand from the lake with
the claim check's own queries and evaluates the rule again, so a sentence whose judgment the tables do not
support is never published, and the failure names the sentence.

Rules (``RULES``):

=============  ===========================================================================================
kind           holds when
=============  ===========================================================================================
gt, ge         a > b, a >= b
gt_by          a > b + n: "more tightly together" only with a visible margin
lt, le         a < b, a <= b
days_before    date a is at least n days before date b (``n`` in ``param``): "since D" is not this week
between_up     open < level <= close: "closed above L" (the close printed beside it agrees)
between_down   open >= level > close: "closed below L"
strict_min     a is below every other operand: "did worst", "trails every asset class" (ties fail)
strict_max     a is above every other operand: "did best"
same_sign      a and b are both above zero or both below: "supports the move"
opposite_sign  a and b have opposite signs: "against the move"
=============  ===========================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from pipelines.narrative.pieces import Num

RULES: dict[str, Callable[..., bool]] = {
    "gt": lambda a, b, n=0: a > b,
    "gt_by": lambda a, b, n=0: a > b + n,
    "ge": lambda a, b, n=0: a >= b,
    "lt": lambda a, b, n=0: a < b,
    "le": lambda a, b, n=0: a <= b,
    "days_before": lambda a, b, n=0: (b - a).days >= n,
    "between_up": lambda o, lvl, c, n=0: o < lvl <= c,
    "between_down": lambda o, lvl, c, n=0: o >= lvl > c,
    "same_sign": lambda a, b, n=0: (a > 0 and b > 0) or (a < 0 and b < 0),
    "opposite_sign": lambda a, b, n=0: (a > 0 > b) or (a < 0 < b),
}
KINDS = (*RULES, "strict_min", "strict_max")


@dataclass(frozen=True)
class Predicate:
    kind: str
    operands: tuple[Any, ...]  # Num (a claim reference) or a literal threshold written in code
    rule: str  # what it states, in words ("the 7-day volatility rose")
    param: float = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise KeyError(self.kind)

    def evaluate(self, values: list[Any]) -> bool:
        if any(v is None for v in values):
            return False
        try:
            if self.kind == "strict_min":
                return all(values[0] < v for v in values[1:])
            if self.kind == "strict_max":
                return all(values[0] > v for v in values[1:])
            return bool(RULES[self.kind](*values, n=self.param))
        except TypeError:
            return False

    def holds(self) -> bool:
        """On the values the renderer read (the week's frames)."""
        return self.evaluate([o.value if isinstance(o, Num) else o for o in self.operands])

    def as_dict(self, sentence: str = "") -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "param": self.param,
            "sentence": sentence,
            "operands": [
                {"claim": o.claim()}
                if isinstance(o, Num)
                else {"literal": o.isoformat() if isinstance(o, date) else o}
                for o in self.operands
            ],
        }


def hold(preds: list[Predicate] | tuple[Predicate, ...]) -> bool:
    return all(p.holds() for p in preds)


@dataclass
class PredicateResult:
    sentence: str
    rule: str
    kind: str
    values: list[Any]
    ok: bool
    problem: str = ""

    def __str__(self) -> str:
        return f"{self.sentence!r}: {self.rule} ({self.kind} on {self.values}) {self.problem}".strip()


def check_predicates(wh, week: str, predicates: list[dict[str, Any]]) -> list[PredicateResult]:
    """Every predicate re-evaluated on operands re-derived from the lake (claims.rederive; its value operands
    read from one query per table and week, shared by the check's predicates)."""
    from pipelines.narrative.claims import rederive

    out = []
    week_rows: dict[tuple[str, str], Any] = {}
    for d in predicates:
        values, problem = [], ""
        try:
            for o in d["operands"]:
                if "claim" in o:
                    c = o["claim"]
                    if c["partition"] > week:
                        raise ValueError("operand from a later week than the report")
                    values.append(rederive(wh, c, week_rows))
                else:
                    lit = o["literal"]
                    values.append(date.fromisoformat(lit) if isinstance(lit, str) else lit)
            p = Predicate(d["kind"], tuple(values), d["rule"], d.get("param", 0))
            ok = p.evaluate(values)
            problem = "" if ok else "does not hold on the lake"
        except Exception as exc:
            ok, problem = False, f"cannot re-derive: {exc}"
        out.append(PredicateResult(d.get("sentence", ""), d["rule"], d["kind"], values, ok, problem))
    return out
