"""The report's charts: each is cut to its drawn extent as matplotlib's ``bbox_inches="tight"`` cuts it, without
the extra draw "tight" makes, and is the same bytes every time. The bar charts come out byte for byte as "tight"
makes them; the charts with a date axis place their extent from the tick labels before the first draw has rotated
them, which moves it by float rounding only: the same SVG elements, every coordinate within 1e-5 of a point, and
only the clip-path ids (a hash of those coordinates) and the sign of a zero written differently."""

from __future__ import annotations

import io
import re

import matplotlib
import matplotlib.pyplot as plt
import pytest

from pipelines.narrative import charts
from pipelines.narrative.data import from_frames
from tests._narrative_frames import WEEK, frames


def tight_svg(fig) -> str:
    """The reference: matplotlib's own tight cut, with the metadata and prolog ``charts._svg`` writes."""
    buf = io.StringIO()
    fig.savefig(
        buf,
        format="svg",
        metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        bbox_inches="tight",
    )
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")  # not the digits inside an id such as m2e3018a
CLIP_ID = re.compile(r"\bp[0-9a-f]{10}\b")


def same_drawing(a: str, b: str) -> bool:
    """The same SVG elements and text (ids too, but clip-path ids renamed in order of use) and every number
    within 1e-5."""

    def split(svg: str) -> tuple[list[str], list[float]]:
        ids: dict[str, str] = {}
        svg = CLIP_ID.sub(lambda m: ids.setdefault(m[0], f"clip{len(ids)}"), svg)
        return NUMBER.split(svg), [float(x) for x in NUMBER.findall(svg)]  # coordinates: 6 decimals at most

    (text_a, nums_a), (text_b, nums_b) = split(a), split(b)
    return (
        text_a == text_b
        and len(nums_a) == len(nums_b)
        and all(abs(x - y) <= 1e-5 for x, y in zip(nums_a, nums_b, strict=True))
    )


@pytest.mark.parametrize("name", [name for name, _, _ in charts.CHARTS])
def test_each_chart_is_cut_as_tight_cuts_it(name: str, monkeypatch) -> None:
    wd = from_frames(WEEK.isoformat(), frames())
    fn = next(fn for n, _, fn in charts.CHARTS if n == name)
    ours = fn(wd)
    assert ours is not None and ours.startswith("<svg")
    assert fn(wd) == ours  # deterministic
    monkeypatch.setattr(charts, "_svg", tight_svg)
    tight = fn(wd)
    assert same_drawing(ours, tight)
    if name in ("sectors", "cross_asset"):  # no date axis: the very bytes
        assert ours == tight


def test_a_drawing_that_differs_is_told_apart() -> None:
    svg = '<path d="M 0 0 L 382.925781 -0" clip-path="url(#p2fb24fc516)"/>'
    assert same_drawing(svg, svg.replace("-0", "0").replace("p2fb24fc516", "p166477bd50"))
    assert not same_drawing(svg, svg.replace("382.925781", "382.935781"))
    assert not same_drawing(svg, svg.replace("path", "rect"))


def test_the_cut_is_the_drawn_extent_when_a_label_reaches_past_the_axes() -> None:
    with plt.rc_context(charts.RC):
        long = ["a label far longer than the axes leave room for on the left", "b"]
        a = charts._bars(long, [1.0, -2.0], "t")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(charts, "_svg", tight_svg)
            b = charts._bars(long, [1.0, -2.0], "t")
    assert a == b


def test_a_report_without_drawn_charts_has_the_same_text() -> None:
    """``render_week(..., draw_charts=False)`` (the checks of a report's text): the same Markdown, claims and
    charts named, every SVG left empty; drawn, every SVG is one."""
    from pipelines.narrative.render import render_week

    wd = from_frames(WEEK.isoformat(), frames())
    drawn, text_only = render_week(wd), render_week(wd, draw_charts=False)
    assert text_only.markdown == drawn.markdown and text_only.claims == drawn.claims
    assert sorted(text_only.charts) == sorted(drawn.charts) == sorted(n for n, _, _ in charts.CHARTS)
    assert all(svg == "" for _, svg in text_only.charts.values())
    assert all(svg.startswith("<svg") for _, svg in drawn.charts.values())
    assert charts._DRAW.get()  # drawing is back on after the report


@pytest.mark.parametrize("signs", ["mixed", "positive", "negative"])
def test_funding_bars_drawn_as_one_collection_are_placed_as_bars_are(signs: str) -> None:
    """The funding bars are one collection, not an artist per bar: the same axis limits (the bars' foot on the
    edge where every value has one sign, as ``ax.bar`` keeps it) and date ticks as ``ax.bar`` gives, one bar per
    week coloured by its sign, a missing week a grey bar of height 0."""
    from datetime import date, timedelta

    weeks = [date(2025, 3, 31) + timedelta(weeks=k) for k in range(40)]
    mixed = [None if k % 9 == 4 else ((-1) ** k) * (0.2 + k / 50) for k in range(40)]
    values = {
        "mixed": mixed,
        "positive": [v if v is None else abs(v) for v in mixed],
        "negative": [v if v is None else -abs(v) for v in mixed],
    }[signs]
    colours = [charts.INK if v is None else charts.UP if v >= 0 else charts.DOWN for v in values]
    placed = []
    for draw in ("bar", "collection"):
        with plt.rc_context(charts.RC):
            fig, ax = plt.subplots(figsize=(6.0, 3.2))
            if draw == "bar":
                ax.bar(weeks, [0 if v is None else v for v in values], width=5, color=colours)
            else:
                charts._week_bars(ax, weeks, values)
                (bars,) = ax.collections
                assert len(bars.get_paths()) == len(weeks) and not ax.patches
                assert [matplotlib.colors.to_hex(c) for c in bars.get_facecolors()] == colours
            fig.autofmt_xdate()
            placed.append((ax.get_xlim(), ax.get_ylim(), [t.get_text() for t in ax.get_xticklabels()]))
            plt.close(fig)
    assert placed[0] == placed[1]
