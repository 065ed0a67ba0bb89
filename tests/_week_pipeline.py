"""One week through the pipeline's pure functions, without Dagster: the blocking quality rules, every weekly
table (the assets' own compute functions and their blocking checks), the report rendering with its gap lines,
the claim check and the second derivation. Used by the crosscheck tests and the mutation harness."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

import assets.weekly.derivatives as wd_
import assets.weekly.macro as wm_
import assets.weekly.market as wk_
import assets.weekly.summary as ws_
from assets.weekly.weeks import WEEKLY_COMPUTES
from pipelines import quality
from pipelines.narrative.claims import check_claims
from pipelines.narrative.crosscheck import crosscheck
from pipelines.narrative.data import load_week
from pipelines.narrative.predicates import check_predicates
from pipelines.narrative.render import SOURCES_HEADING, render_week
from pipelines.schemas import TABLES, WEEKLY_MARKET_SUMMARY
from pipelines.warehouse import Warehouse

# weekly table -> (compute function, its asset): the computes are the one list the one-pass computation runs
# (assets.weekly.weeks), the assets give the checks and which of them block
WEEKLY_ASSETS = {
    a.key.to_user_string(): a
    for mod in (wd_, wm_, wk_, ws_)
    for a in vars(mod).values()
    if isinstance(a, dg.AssetsDefinition)
}
COMPUTES = {name: (fn, WEEKLY_ASSETS[name]) for name, fn in WEEKLY_COMPUTES.items()}


@dataclass
class WeekRun:
    blocked: list[str] = field(
        default_factory=list
    )  # every reason publication is blocked, each naming its row
    markdown: str = ""
    predicates: int = 0  # the judgments checked on the lake
    fact_keys: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)

    @property
    def body(self) -> str:
        """The printed report without its Data gaps and Sources sections (input hashes change with any input)."""
        text = self.markdown.split("\n" + SOURCES_HEADING + "\n", 1)[0]
        return text.split("\n## Data gaps\n", 1)[0]


def _blocking(asset: dg.AssetsDefinition) -> set[str]:
    return {s.name for s in asset.check_specs if s.blocking}


def compute_weekly(wh: Warehouse, week: str) -> list[str]:
    """Write every weekly table of ``week`` into the lake; return the blocking problems (check failures and
    compute failures), as the weekly job would stop on them."""
    problems: list[str] = []
    for name, (fn, asset) in COMPUTES.items():
        try:
            out = fn(wh, week)
        except (dg.Failure, ValueError) as exc:
            problems.append(f"{name}: {getattr(exc, 'description', None) or exc}")
            continue
        wh.write_partition(TABLES[name], week, out.df)
        for check in _blocking(asset):
            problems += [f"{name}.{check}: {p}" for p in out.problems.get(check, [])]
    wh.refresh_catalog()
    return problems


def run_week(wh: Warehouse, week: str, render: bool = True, even_if_blocked: bool = False) -> WeekRun:
    """Quality rules, weekly tables, report, claim check and second derivation for one week (``render`` False:
    the quality rules and the weekly tables only, for a week that later weeks read as history). A week whose
    quality rules or weekly tables' blocking checks fail is not rendered, as in a run, where those checks block
    ``weekly_report``: ``blocked`` then holds their problems only (``even_if_blocked``: rendered and checked all
    the same, for a test of what the later checks catch)."""
    run = WeekRun(blocked=[f"week_inputs_quality: {p}" for p in quality.week_problems(wh, week)])
    run.blocked += compute_weekly(wh, week)
    if (
        not render
        or (run.blocked and not even_if_blocked)
        or not wh.has_partition(WEEKLY_MARKET_SUMMARY, week)
    ):
        return run
    wd, _ = load_week(wh, week)
    # the charts are named in the text but not drawn: no check here reads them (tests/test_narrative_charts.py)
    rendered = render_week(
        wd, None, quality.week_gaps(quality.week_frames(wh, week), week), draw_charts=False
    )
    run.markdown, run.gaps = rendered.markdown, rendered.gaps
    run.blocked += [
        f"report_claims_match_tables: {c.label} printed {c.printed_text!r}, expected {c.expected_text!r} ({c.problem})"
        for c in check_claims(wh, week, rendered.markdown, rendered.claims, rendered.texts)
        if not c.ok
    ]
    run.blocked += [
        f"report_predicates: {r}" for r in check_predicates(wh, week, rendered.predicates) if not r.ok
    ]
    run.predicates = len(rendered.predicates)
    run.fact_keys = [f.key for f in rendered.facts]
    run.blocked += [f"crosscheck: {d}" for d in crosscheck(wh, week)]
    return run
