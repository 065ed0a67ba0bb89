"""Every week of the emulator's history through the pipeline, and the counts of what the reports must not say.

The lake is built once, by the project's own daily pulls and cleaning run as plain code against the market
emulator (``bench.phases.floor_daily``: every asset of ``daily_job``, invoked without a run), with the smallest
universe that still fills every section: ``TOP_N`` coins (ranks 51-100 of the eligible universe exist after
stablecoins and wrapped tokens are left out) and ``PERPS`` perpetuals across the venues. Then every week from
2025-03-31 to the latest complete week of the emulator's fixed clock (``EVERY_WEEK_NOW``) gets its quality rules
and weekly tables in order (later weeks read earlier ones as history), and the chosen weeks are rendered with the
claim check, the predicate check and the second derivation (``tests._week_pipeline.run_week``).

``python -m tests._every_week`` builds the lake in a temporary folder, renders every week and prints the counts
(failing predicates, repeated sentences, unlabeled numbers, Our View texts and lengths, headline templates, style
faults), then the Our View of the model report's week and of the latest week; ``--out DIR`` also writes each
week's Markdown there (``DIR/<week>.md``).
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pipelines.calendar import WEEKLY_START, latest_complete_week
from pipelines.warehouse import Warehouse
from tests import _report_audit as audit
from tests._week_pipeline import WeekRun, run_week

# The emulator's clock: fixed, so the set of weeks and every byte of the lake are the same on every run. The
# latest complete week at this clock is 2026-11-23: 87 weeks from 2025-03-31.
EVERY_WEEK_NOW = datetime(2026, 12, 1, 6, tzinfo=UTC)
TOP_N = 110
PERPS = 6
MODEL_WEEK = "2025-11-24"  # the week of /work/shared/seed/model-report-2025-11-24.txt
# Weeks named in the issue that asked for this test (false statements were found in them), always rendered.
NAMED_WEEKS = ("2025-10-06", "2025-11-10", MODEL_WEEK, "2026-02-02", "2026-07-13")
EVERY = 6  # the default run renders every 6th week, the named weeks and the first and latest
ALL_WEEKS_ENV = "CRYPTO_WEEKLY_EVERY_WEEK"


def all_weeks(now: datetime = EVERY_WEEK_NOW) -> list[str]:
    first, last = date.fromisoformat(WEEKLY_START), date.fromisoformat(latest_complete_week(now))
    return [(first + timedelta(weeks=i)).isoformat() for i in range((last - first).days // 7 + 1)]


def rendered_weeks(weeks: list[str], every_week: bool | None = None) -> list[str]:
    """The weeks rendered: all of them when ``every_week`` (default: the ``CRYPTO_WEEKLY_EVERY_WEEK`` variable is
    1), else every ``EVERY``-th from the first, the named weeks and the latest."""
    if every_week is None:
        every_week = os.environ.get(ALL_WEEKS_ENV, "") == "1"
    if every_week:
        return list(weeks)
    chosen = set(weeks[::EVERY]) | {weeks[-1]} | {w for w in NAMED_WEEKS if w in weeks}
    return [w for w in weeks if w in chosen]


def build_lake(
    root: Path, now: datetime = EVERY_WEEK_NOW, top_n: int = TOP_N, perps: int = PERPS
) -> Warehouse:
    """Every daily raw pull and clean table from the first daily partition to the latest week's close, pulled from
    an emulator whose clock is ``now`` (pacing off), by the pipeline's own pull and clean functions."""
    from bench.common import daily_range_for
    from bench.phases import floor_daily
    from pipelines.runner import emulated_sources

    first, last = daily_range_for([WEEKLY_START, latest_complete_week(now)])
    with emulated_sources(now=now, out_of_process=True):  # the pulls' interpreter is left to the pulls
        floor_daily(root, first, last, top_n=top_n, perps=perps)
    return Warehouse(root)


def run_weeks(wh: Warehouse, weeks: list[str], render: list[str]) -> dict[str, WeekRun]:
    """Every week's quality rules and weekly tables, in order; the report and its checks for the weeks in
    ``render``. Returns every week's run (a week not rendered has its blocking problems and no Markdown)."""
    chosen = set(render)
    return {w: run_week(wh, w, render=w in chosen) for w in weeks}


def unlabeled_numbers(run: WeekRun) -> list[str]:
    return [b for b in run.blocked if "number in the text without a claim" in b]


def failing_predicates(run: WeekRun) -> list[str]:
    return [b for b in run.blocked if b.startswith("report_predicates:")]


def counts(runs: dict[str, WeekRun]) -> dict[str, object]:
    """The counts over the rendered weeks (a week not rendered has no Markdown and is not counted)."""
    done = {w: r for w, r in runs.items() if r.markdown}
    views = {w: audit.section(r.markdown, "Our View") for w, r in done.items()}
    words = [len(v.split()) for v in views.values()]
    titles = [audit.title(r.markdown) for r in done.values()]
    return {
        "weeks rendered": len(done),
        "weeks blocked (any blocking problem)": sum(1 for r in runs.values() if r.blocked),
        "failing predicates": sum(len(failing_predicates(r)) for r in done.values()),
        "reports with a repeated sentence": sum(1 for r in done.values() if audit.repeated_sentences(r.body)),
        "unlabeled numbers": sum(len(unlabeled_numbers(r)) for r in done.values()),
        "Our View closes differing from the lede's": sum(
            len(audit.close_mismatches(r.markdown)) for r in done.values()
        ),
        "Our View distinct texts": len(set(views.values())),
        "Our View words min/median/max": (min(words), statistics.median(words), max(words))
        if words
        else None,
        "Our View paragraphs min": min((len(audit.paragraphs(v)) for v in views.values()), default=0),
        "distinct headline templates": len({audit.template_of(t) for t in titles}),
        "reports saying 'highest since'": sum(1 for r in done.values() if audit.HIGHEST_SINCE.search(r.body)),
        "double parentheses": sum(len(audit.DOUBLE_PARENTHESES.findall(r.body)) for r in done.values()),
        "'-0.0%'": sum(len(audit.NEGATIVE_ZERO.findall(r.body)) for r in done.values()),
        "'ranked N of'": sum(len(audit.RANKED_N_OF.findall(r.body)) for r in done.values()),
    }


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests._every_week", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write each week's Markdown to OUT/<week>.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="every-week-") as tmp:
        wh = build_lake(Path(tmp) / "warehouse")
        t1 = time.perf_counter()
        weeks = all_weeks()
        runs = run_weeks(wh, weeks, rendered_weeks(weeks, every_week=True))
    t2 = time.perf_counter()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for w, r in runs.items():
            (args.out / f"{w}.md").write_text(r.markdown)
    print(f"lake {t1 - t0:.0f} s, {len(weeks)} weeks {t2 - t1:.0f} s ({weeks[0]} .. {weeks[-1]})")
    for k, v in counts(runs).items():
        print(f"{k:40s} {v}")
    problems = Counter(re.sub(r"\d", "#", b.split(":", 1)[0]) for r in runs.values() for b in r.blocked)
    for what, n in problems.most_common():
        print(f"  blocked by {what}: {n}")
    for w, r in runs.items():
        for b in r.blocked:
            print(f"  {w}: {b}")
        for s in audit.repeated_sentences(r.body):
            print(f"  {w}: repeated: {s}")
    for w in (MODEL_WEEK, weeks[-1]):
        print(f"\n## Our View, week of {w}\n\n{audit.section(runs[w].markdown, 'Our View')}")


if __name__ == "__main__":
    main()
