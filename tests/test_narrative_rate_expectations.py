"""The Macro Update's rate-expectations sentence: printed with its predicates and claims, each judgment following
the tables, left out with a named gap when a series is missing (a 404 from the emulator's FRED included), and
wrong values blocking the week with the row named."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

import assets.weekly.macro as wm
from pipelines import gaps as gaps_mod
from pipelines import quality
from pipelines.clean.derivatives import build_macro
from pipelines.emulator.profiles import fred_series_not_found
from pipelines.narrative.claims import check_claims
from pipelines.narrative.data import BY_NAME, from_frames
from pipelines.narrative.predicates import check_predicates
from pipelines.narrative.rate_expectations import GAP_NO_CHANGE, GAP_STALE, GAP_UNAVAILABLE, rate_expectations
from pipelines.narrative.render import render_week
from pipelines.pulls import derivatives as ing
from pipelines.schemas import MACRO_OBSERVATIONS
from pipelines.sources.fred import FredClient
from pipelines.warehouse import Warehouse
from tests._narrative_frames import WEEK, frames, table
from tests.conftest import SOURCES_NOW
from tests.test_narrative_report import lake

W = WEEK.isoformat()
T = "weekly_rate_expectations"
SENTENCE = "Rate expectations: three-month Treasury bills"


def _with(fr: dict[str, pl.DataFrame], **values) -> dict[str, pl.DataFrame]:
    """``fr`` with this week's rate row changed (the other weeks as they were)."""
    rows = [dict(r, **values) if r["week_start"] == WEEK else r for r in fr[T].to_dicts()]
    return {**fr, T: table(T, rows)}


def _rate(implied: float, prev: float | None) -> dict:
    return {
        "implied_change_bp": implied,
        "cuts_priced": -implied / 25,
        "bill_overnight_pct": 3.87 + implied / 100,
        "prev_implied_change_bp": prev,
        "change_bp": None if prev is None else implied - prev,
    }


def _macro_lines(markdown: str) -> list[str]:
    section = markdown.split("## Macro Update", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if SENTENCE in line]


def _gaps(markdown: str) -> str:
    return markdown.split("## Data gaps", 1)[1].split("## Sources", 1)[0]


def test_the_sentence_is_printed_with_its_predicates_and_every_figure_is_a_claim(tmp_path: Path) -> None:
    fr = frames()
    wh = lake(tmp_path, fr)
    rendered = render_week(from_frames(W, fr))
    [line] = _macro_lines(rendered.markdown)
    assert (
        "priced about 0.3 cuts of 25 bp over the next three months, a bill-implied change of -8 bp in the "
        "average overnight rate (bill yield 3.79% on the funds rate's overnight basis against an effective fed "
        "funds rate of 3.87%, November 21, 2025). A week earlier (November 14, 2025) it was -11 bp: markets "
        "priced fewer cuts, +3 bp on the week."
    ) in line
    preds = [p for p in rendered.predicates if p["sentence"].startswith(SENTENCE)]
    assert {p["rule"] for p in preds} == {
        "bills price the overnight rate at least a tenth of a cut below the funds rate",
        "the bill-implied change rose by at least a tenth of a cut on the week",
        "bills priced at least a tenth of a cut a week earlier",
    }
    assert all(o["claim"]["table"] == T for p in preds for o in p["operands"] if "claim" in o)
    sources = {c["source"] for c in rendered.claims if c["table"] == T}
    assert sources == {
        f"{T}/week={W}#{c}"
        for c in (
            "implied_change_bp",
            "cuts_priced",
            "bill_overnight_pct",
            "funds_rate_pct",
            "observation_date",
            "prev_implied_change_bp",
            "prev_observation_date",
            "change_bp",
        )
    }
    assert [
        c for c in check_claims(wh, W, rendered.markdown, rendered.claims, rendered.texts) if not c.ok
    ] == []
    assert [r for r in check_predicates(wh, W, rendered.predicates) if not r.ok] == []
    assert "rate_expectations" in [f.key for f in rendered.facts]
    assert SENTENCE not in rendered.headline  # printed in the Macro Update only, never in the lede


@pytest.mark.parametrize(
    ("implied", "prev", "said", "not_said"),
    [
        (
            -8.2,
            -11.2,
            ["about 0.3 cuts", "markets priced fewer cuts, +3 bp on the week"],
            ["more cuts", "no cut"],
        ),
        (-14.0, -8.0, ["about 0.6 cuts", "markets priced more cuts, -6 bp on the week"], ["fewer cuts"]),
        (
            -9.0,
            -9.5,
            ["about 0.4 cuts", "it was -10 bp, little changed (0 bp on the week)"],
            ["more cuts", "fewer"],
        ),
        (
            -1.0,
            -1.5,
            ["priced no cut over the next three months, a bill-implied change of -1 bp", "little changed"],
            ["cuts of 25 bp", "higher overnight rate"],
        ),
        (
            4.0,
            -1.0,
            [
                "priced no cut over the next three months but a slightly higher overnight rate",
                "markets priced a higher rate path, +5 bp",
            ],
            ["fewer cuts", "cuts of 25 bp"],
        ),
        (-1.0, 4.0, ["priced no cut", "markets priced a lower rate path, -5 bp"], ["more cuts"]),
        (-12.0, -2.0, ["about 0.5 cuts", "markets priced more cuts, -10 bp"], []),
        (-2.0, -12.0, ["priced no cut", "markets priced fewer cuts, +10 bp"], ["lower rate path"]),
    ],
)
def test_each_judgment_follows_the_tables(implied, prev, said, not_said) -> None:
    gaps: list[str] = []
    [fact] = rate_expectations(from_frames(W, _with(frames(), **_rate(implied, prev))), gaps)
    line = fact.sentence.md()
    for words in said:
        assert words in line, line
    for words in not_said:
        assert words not in line, line
    assert fact.predicates and all(p.holds() for p in fact.predicates) and gaps == []


def test_a_lake_contradicting_the_judgment_blocks_the_week(tmp_path: Path) -> None:
    fr = frames()
    wh = lake(tmp_path, fr)
    rendered = render_week(from_frames(W, fr))  # "markets priced fewer cuts" (+3 bp)
    bad = _with(fr, change_bp=-5.0)[T].filter(
        pl.col("week_start") == WEEK
    )  # the claim check reads change_bp too
    wh.write_partition(BY_NAME[T], W, bad)
    wh.refresh_catalog()
    failing = [r for r in check_predicates(wh, W, rendered.predicates) if not r.ok]
    assert failing and all(r.sentence.startswith(SENTENCE) for r in failing)
    assert "rose by at least a tenth of a cut" in str(failing[0])


@pytest.mark.parametrize(("status", "gap"), [("unavailable", GAP_UNAVAILABLE), ("stale", GAP_STALE)])
def test_a_missing_or_stale_series_leaves_the_sentence_out_and_names_the_gap(
    tmp_path: Path, status, gap
) -> None:
    nulls = dict.fromkeys(
        (
            "observation_date",
            "bill_discount_pct",
            "bill_overnight_pct",
            "funds_rate_pct",
            "implied_change_bp",
            "cuts_priced",
            "prev_observation_date",
            "prev_implied_change_bp",
            "change_bp",
        )
    )
    if status == "stale":  # the latest pair is there, dated before the week
        nulls = {
            **nulls,
            "observation_date": WEEK - timedelta(days=10),
            "bill_discount_pct": 3.74,
            "bill_overnight_pct": 3.76,
            "funds_rate_pct": 3.87,
            "implied_change_bp": -11.0,
            "cuts_priced": 0.44,
        }
    fr = _with(frames(), status=status, **nulls)
    wh = lake(tmp_path, fr)
    rendered = render_week(from_frames(W, fr))
    assert _macro_lines(rendered.markdown) == [] and "rate_expectations" not in [
        f.key for f in rendered.facts
    ]
    assert gap in _gaps(rendered.markdown)
    assert "US 10Y Treasury yield: 4.06%" in rendered.markdown  # the rest of the Macro Update is there
    assert [
        c for c in check_claims(wh, W, rendered.markdown, rendered.claims, rendered.texts) if not c.ok
    ] == []


def test_no_value_a_week_earlier_prints_the_level_without_the_change() -> None:
    rendered = render_week(from_frames(W, _with(frames(), **_rate(-8.2, None), prev_observation_date=None)))
    [line] = _macro_lines(rendered.markdown)
    assert "about 0.3 cuts" in line and "week earlier" not in line
    assert GAP_NO_CHANGE in _gaps(rendered.markdown)


def test_no_partition_for_the_week_is_named() -> None:
    fr = frames()
    del fr[T]
    rendered = render_week(from_frames(W, fr))
    assert _macro_lines(rendered.markdown) == []
    assert f"{T}: no partition for week={W}; its section is left out." in _gaps(rendered.markdown)


# ---- from the emulator's FRED ---------------------------------------------------------------------------------
def _pull_and_compute(emu, root: Path) -> tuple[Warehouse, dict, list[str], wm.Computed]:
    wh = Warehouse(root)
    with FredClient(
        emu.base_urls()["FRED_BASE_URL"], calls_per_minute=0, sleep=lambda s: None, timeout=2
    ) as client:
        report = ing.pull_fred(client, wh, SOURCES_NOW)
    report.record(wh)
    for sid, frame in build_macro(wh).items():
        wh.write_partition(MACRO_OBSERVATIONS, sid, frame)
    wh.refresh_catalog()
    out = wm.compute_rate_expectations(wh, W)
    wh.write_partition(BY_NAME[T], W, out.df)
    return wh, out.df.row(0, named=True), gaps_mod.describe(gaps_mod.read_ledger(wh)), out


def test_the_emulators_series_give_the_sentence(emu, tmp_path: Path) -> None:
    wh, row, ledger, out = _pull_and_compute(emu, tmp_path)
    assert ledger == [] and out.problems == {"rate_values_plausible": [], "rate_availability": []}
    assert row["status"] == "ok" and row["observation_date"] == date(2025, 11, 21)
    assert row["prev_observation_date"] == date(2025, 11, 14)
    assert -12 < row["implied_change_bp"] < -4 and row["change_bp"] > 2.5  # the December cut priced less
    fr = _with(frames(), **{k: v for k, v in row.items() if k != "week_start"})
    [line] = _macro_lines(render_week(from_frames(W, fr)).markdown)
    assert "markets priced fewer cuts" in line and "November 21, 2025" in line


def test_a_404_for_the_bill_is_a_named_gap_and_the_week_goes_on(emu, tmp_path: Path) -> None:
    emu.inject(fred_series_not_found("DTB3"))
    wh, row, ledger, out = _pull_and_compute(emu, tmp_path)
    assert "FRED series: not found (HTTP 404) for DTB3." in ledger
    assert row["status"] == "unavailable" and row["implied_change_bp"] is None
    assert out.problems["rate_availability"] == ["DTB3 against DFF: unavailable"]  # a warning, not blocking
    assert out.problems["rate_values_plausible"] == []
    fr = _with(frames(), **{k: v for k, v in row.items() if k != "week_start"})
    rendered = render_week(from_frames(W, fr), input_gaps=ledger)
    assert _macro_lines(rendered.markdown) == []
    gaps = _gaps(rendered.markdown)
    assert GAP_UNAVAILABLE in gaps and "FRED series: not found (HTTP 404) for DTB3." in gaps


# ---- wrong values ---------------------------------------------------------------------------------------------
def _lake_with_bill(root: Path, value: float) -> Warehouse:
    wh = Warehouse(root)
    days = [date(2025, 11, 1) + timedelta(days=i) for i in range(30)]
    funds = pl.DataFrame({"series_id": "DFF", "date": days, "value": 3.87})
    bill = pl.DataFrame(
        {
            "series_id": "DTB3",
            "date": [d for d in days if d.weekday() < 5],
            "value": [value if d == date(2025, 11, 21) else 3.77 for d in days if d.weekday() < 5],
        }
    )
    for frame in (funds, bill):
        wh.write_partition(
            MACRO_OBSERVATIONS,
            frame["series_id"][0],
            frame.with_columns(
                pulled_at=pl.lit(SOURCES_NOW).dt.cast_time_unit("ms"), raw_file=pl.lit("raw/fred/test.csv")
            ),
        )
    wh.refresh_catalog()
    return wh


def test_a_yield_beyond_sanity_blocks_naming_the_row(tmp_path: Path) -> None:
    out = wm.compute_rate_expectations(_lake_with_bill(tmp_path, -7.5), W)
    assert out.problems["rate_values_plausible"] == [
        f"{T}[week={W}]: bill_discount_pct = -7.5 (observations of 2025-11-21) outside [-1.0, 25.0]",
        f"{T}[week={W}]: implied_change_bp = {out.df['implied_change_bp'][0]} (observations of 2025-11-21) "
        "outside [-500.0, 500.0]",
    ]
    assert "rate_values_plausible" in {
        s.name for s in wm.weekly_rate_expectations_asset.check_specs if s.blocking
    }


def test_a_nan_blocks_naming_the_row(tmp_path: Path) -> None:
    wh = _lake_with_bill(tmp_path, math.nan)
    with pytest.raises(ValueError, match=r"macro_observations\[series_id=DTB3, date=2025-11-21\]"):
        wm.compute_rate_expectations(wh, W)
    assert any("DTB3" in p and "nan" in p for p in quality.week_violations(quality.week_frames(wh, W)))
