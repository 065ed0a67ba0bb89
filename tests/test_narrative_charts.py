"""The report's charts: self-contained SVG (no script, no link, no comment, an id of its own), the same bytes every
time and in every process, one bar per week coloured by its sign, and no series or chart without a value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import polars as pl
import pytest

from pipelines.narrative import charts
from pipelines.narrative.data import from_frames
from tests._narrative_frames import WEEK, WEEKS, frames

SVG = "{http://www.w3.org/2000/svg}"
NAMES = [name for name, _, _ in charts.CHARTS]


def drawn(fr: dict[str, pl.DataFrame] | None = None) -> dict[str, str]:
    return {
        name: svg
        for name, (_, svg) in charts.render_charts(from_frames(WEEK.isoformat(), fr or frames())).items()
    }


def bars(svg: str) -> list[tuple[str, str]]:
    """(fill colour, value) of each bar of the chart, in drawing order."""
    out = []
    for bar in ET.fromstring(svg).iter(f"{SVG}g"):
        if bar.get("class") == "bar":
            fill = bar.get("style", "").split("fill:")[1].split(";")[0].strip()
            out.append((fill, next(d.text for d in bar if d.get("class") == "value")))
    return out


def legend(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [
        "".join(t.itertext())
        for g in root.iter(f"{SVG}g")
        if (g.get("class") or "").startswith("legend ")
        for t in g.iter(f"{SVG}text")
    ]


def test_every_chart_is_self_contained_and_named() -> None:
    out = drawn()
    assert sorted(out) == sorted(NAMES)
    for name, svg in out.items():
        root = ET.fromstring(svg)  # well-formed XML, inlined as it is (no prolog)
        assert svg.startswith("<svg") and root.get("id") == f"chart-{name}", name
        assert not [e for e in root.iter() if e.tag == f"{SVG}script"], name
        assert "<!--" not in svg and "http" not in svg.replace("http://www.w3.org/", ""), name
        # the stylesheet scoped to the chart, so two charts of a page never clash
        assert f"#chart-{name} " in svg, name


def test_the_same_bytes_in_another_process() -> None:
    """A backfill builds its weeks' reports in several processes: a chart's bytes depend on the data alone (not
    on the process's string hashing, the day or a random id)."""
    here = drawn()
    assert drawn() == here
    code = "import json; from tests.test_narrative_charts import drawn; print(json.dumps(drawn()))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == here


def test_funding_bars_one_per_week_coloured_by_sign() -> None:
    fr = frames()
    rates = [None if k == 2 else ((-1) ** k) * (k + 1) * 1e-5 for k in range(len(WEEKS))]
    fr["weekly_leverage"] = fr["weekly_leverage"].with_columns(
        funding_8h_mean=pl.Series(rates, dtype=pl.Float64)
    )
    got = bars(drawn(fr)["funding"])
    expected = [
        (charts.UP if r >= 0 else charts.DOWN, f"{r * 1e4:g}") for r in rates if r is not None
    ]  # the missing week: no bar
    assert [(c, f"{float(v):g}") for c, v in got] == expected


def test_return_bars_in_order_with_hostile_labels_as_text() -> None:
    svg = charts._bars(["<script>alert(1)</script>", "b & c"], [1.5, -2.0], "t", "x")
    root = ET.fromstring(svg)
    assert not [e for e in root.iter() if e.tag == f"{SVG}script"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg and "b &amp; c" in svg
    assert bars(svg) == [(charts.DOWN, "-2"), (charts.UP, "1.5")]  # drawn bottom up: the first label on top


def test_no_chart_or_series_without_a_value() -> None:
    fr = frames()
    fr["weekly_leverage"] = fr["weekly_leverage"].with_columns(oi_close_usd=pl.lit(None, pl.Float64))
    fr["weekly_correlation_buckets"] = fr["weekly_correlation_buckets"].with_columns(
        avg_pairwise_corr=pl.when(pl.col("bucket") == "11-50")
        .then(None)
        .otherwise(pl.col("avg_pairwise_corr"))
    )
    out = drawn(fr)
    assert "open_interest" not in out and "funding" in out  # no empty open-interest chart
    assert legend(out["correlation"]) == ["ranks 1-10", "ranks 51-100"]
    fr["weekly_leverage"] = fr["weekly_leverage"].with_columns(funding_8h_mean=pl.lit(None, pl.Float64))
    assert "funding" not in drawn(fr)


def test_a_report_without_drawn_charts_has_the_same_text() -> None:
    """``render_week(..., draw_charts=False)`` (the checks of a report's text): the same Markdown, claims and
    charts named, every SVG left empty; drawn, every SVG is one."""
    from pipelines.narrative.render import render_week

    wd = from_frames(WEEK.isoformat(), frames())
    drawn_report, text_only = render_week(wd), render_week(wd, draw_charts=False)
    assert text_only.markdown == drawn_report.markdown and text_only.claims == drawn_report.claims
    assert sorted(text_only.charts) == sorted(drawn_report.charts) == sorted(NAMES)
    assert all(svg == "" for _, svg in text_only.charts.values())
    assert all(svg.startswith("<svg") for _, svg in drawn_report.charts.values())
    assert charts._DRAW.get()  # drawing is back on after the report


@pytest.mark.parametrize("weeks", [1, 8])
def test_week_axis_at_most_six_labels_from_the_first_week(weeks: int) -> None:
    fr = frames()
    fr["weekly_btc_volatility"] = fr["weekly_btc_volatility"].filter(pl.col("week_start") >= WEEKS[-weeks])
    root = ET.fromstring(drawn(fr)["btc_volatility"])
    labels = [
        "".join(t.itertext())
        for g in root.iter(f"{SVG}g")
        if (g.get("class") or "").startswith("axis x")
        for t in g.iter(f"{SVG}text")
        if "major" in (t.get("class") or "")
    ]
    assert labels and labels[0] == charts.week_label(WEEKS[-weeks]) and len(labels) <= 6


def test_a_chart_of_the_history_shows_the_year_up_to_the_week(monkeypatch) -> None:
    """Over a history longer than ``CHART_WEEKS`` a chart shows the weeks of the last year only, ending with the
    report's week: one funding bar a week of them."""
    monkeypatch.setattr(charts, "CHART_WEEKS", 3)
    fr = frames()
    rates = [(k + 1) * 1e-5 for k in range(len(WEEKS))]
    fr["weekly_leverage"] = fr["weekly_leverage"].with_columns(
        funding_8h_mean=pl.Series(rates, dtype=pl.Float64)
    )
    assert len(WEEKS) > 3 and WEEKS[-1] == WEEK
    assert [float(v) for _, v in bars(drawn(fr)["funding"])] == pytest.approx([r * 1e4 for r in rates[-3:]])


def test_a_line_has_no_dot_a_week_but_a_lone_value_is_drawn() -> None:
    """History lines are drawn without a dot a week; a series with a value between two missing weeks (which no
    segment shows) keeps its dots, so every value in the history is visible."""
    from datetime import date, timedelta

    weeks = [date(2025, 1, 6) + timedelta(weeks=i) for i in range(6)]

    def dots(series: list[tuple[str, list]]) -> list[int]:
        """The dots drawn for each series, in the order added (pygal's groups ``series serie-<n> ...``)."""
        root = ET.fromstring(charts._lines("t", "y", weeks, series, "lone"))
        count = [0] * len(series)
        for g in root.iter(f"{SVG}g"):
            cls = (g.get("class") or "").split()
            if cls[:1] == ["series"]:
                n = int(cls[1].removeprefix("serie-"))
                count[n] += sum(1 for c in g.iter(f"{SVG}circle") if "dot" in (c.get("class") or ""))
        return count

    assert dots([("a", [1, 2, 3, 4, 5, 6]), ("b", [None, 2, 3, None, 5, 6])]) == [0, 0]
    assert dots([("a", [1, 2, 3, 4, 5, 6]), ("b", [None, None, 3, None, 5, 6])]) == [0, 3]
    assert dots([("b", [7, None, None, None, None, None])]) == [1]
