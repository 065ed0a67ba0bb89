"""The report's charts as inline SVG, drawn by pygal (a chart library that writes SVG elements directly, about
15 ms a chart; matplotlib took 90-130 ms, most of a week's report in a backfill: `bench/HOTSPOT.md`).

Every chart is byte-deterministic and self-contained: its id is its name (pygal draws a random one; the id also
scopes the chart's stylesheet inside the HTML page, so each name appears once in a report), no script (pygal's
tooltips load JavaScript from its website: none is linked and its inline configuration is removed), no comment
(pygal writes the day it drew the chart), no XML prolog, text as SVG text in a sans-serif font the viewer has. A
series with no value in the history is not drawn, and a chart with nothing to draw is left out
(``docs/narrative.md``)."""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import polars as pl
import pygal
from pygal.etree import etree as pygal_etree
from pygal.style import Style

from pipelines.narrative.data import WeekData
from pipelines.narrative.vocabulary import ASSET_LABELS, INDEX_LABELS

# The standard library's ElementTree, whether or not lxml is installed: the two write the same drawing with
# different bytes, and a report's bytes must not depend on what else is installed.
pygal_etree.to_etree()

UP, DOWN, INK = "#1a7f37", "#cf222e", "#57606a"
LINES = ("#0969da", "#bc4c00", "#8250df", "#1a7f37", "#cf222e", "#57606a")
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground=INK,
    foreground_strong="#24292f",
    foreground_subtle="#8c959f",
    font_family="'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif",
    # legible when the 520-pixel figure is scaled to a phone's width
    title_font_size=13,
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=11,
    colors=LINES,
    opacity="1",
    opacity_hover="1",
    transition="0s",
    guide_stroke_color="#d0d7de",
    major_guide_stroke_color="#d0d7de",
)
WIDTH, HEIGHT = 520, 300
COMMON: dict[str, Any] = {
    "style": STYLE,
    "width": WIDTH,
    "js": [],  # no tooltip script from pygal's website
    "disable_xml_declaration": True,  # inlined in HTML
    "explicit_size": True,
    "show_x_guides": False,
    "margin": 8,
    "spacing": 8,
    "truncate_label": -1,
    "truncate_legend": -1,
}
# False inside ``render_charts(wd, draw=False)``: ``_svg`` returns an empty text without drawing.
_DRAW = contextvars.ContextVar("draw_charts", default=True)


def _without_scripts_or_comments(root):
    """pygal's inline ``<script>`` (the tooltips' configuration, for a script the report does not load) and its
    comments (the library's links and the day the chart was drawn, which would change the bytes every day)."""
    for parent in root.iter():
        for child in list(parent):
            if not isinstance(child.tag, str) or child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _svg(chart, name: str) -> str:
    """The chart's SVG with ``chart-<name>`` as its id (an empty text when charts are not drawn)."""
    if not _DRAW.get():
        return ""
    chart.uuid = name
    chart.add_xml_filter(_without_scripts_or_comments)
    return chart.render(is_unicode=True)


def _signed(values: Sequence[float | None]) -> list[dict[str, Any] | None]:
    """Bar values coloured by sign (a missing value: no bar)."""
    return [None if v is None else {"value": v, "color": UP if v >= 0 else DOWN} for v in values]


def _bars(labels: list[str], values: list[float], title: str, name: str) -> str:
    """Horizontal bars of returns, the first label on top."""
    chart = pygal.HorizontalBar(
        height=28 * len(labels) + 90,
        title=title,
        show_legend=False,
        x_title="return over the week, %",
        **COMMON,
    )
    chart.x_labels = labels[::-1]
    chart.add("return, %", _signed(values[::-1]))
    return _svg(chart, name)


def _return_bars(
    wd: WeekData,
    table: str,
    name_col: str,
    labels: dict[str, str],
    title: str,
    name: str,
    *,
    highest_first: bool,
) -> str | None:
    """Bars of the week's ``return_pct`` in ``table``, one per ``name_col`` (shown by its label), ordered by
    return (ties by name); None when the table is missing or has no return."""
    rows = wd.rows(table)
    if rows is None:
        return None
    rows = rows.filter(pl.col("return_pct").is_not_null()).sort(
        ["return_pct", name_col], descending=[highest_first, False]
    )
    if not rows.height:
        return None
    return _bars([labels.get(n, n) for n in rows[name_col]], rows["return_pct"].to_list(), title, name)


def week_label(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def _over_weeks(kind, weeks: list[date], title: str, y_title: str, **options: Any):
    """A chart with a category per week, at most six of them labelled (every n-th from the first)."""
    chart = kind(
        height=HEIGHT,
        title=title,
        y_title=y_title,
        x_label_rotation=30,
        show_minor_x_labels=False,
        x_labels_major_every=max(1, -(-len(weeks) // 6)),
        **COMMON,
        **options,
    )
    chart.x_labels = [week_label(w) for w in weeks]
    return chart


def _lines(
    title: str, y_title: str, weeks: list[date], series: list[tuple[str, list]], name: str
) -> str | None:
    """One line per series with a value in the history (a missing week: a break in the line); None when none
    has one. A line has no dot a week (two thirds of a line chart's drawing and its bytes), but for a series with
    a value between two missing weeks, which only a dot shows."""
    drawn = [(label, ys) for label, ys in series if any(y is not None for y in ys)]
    if not drawn:
        return None
    chart = _over_weeks(
        pygal.Line,
        weeks,
        title,
        y_title,
        show_legend=len(drawn) > 1,
        legend_at_bottom=True,
        show_dots=False,
        dots_size=2,
        allow_interruptions=True,
    )
    for label, ys in drawn:
        chart.add(label, ys, show_dots=_has_lone_value(ys))
    return _svg(chart, name)


def _has_lone_value(ys: list) -> bool:
    """Whether a value of ``ys`` has no value beside it (no line segment would show it)."""
    present = [y is not None for y in ys]
    return any(
        here and (i == 0 or not present[i - 1]) and (i == len(ys) - 1 or not present[i + 1])
        for i, here in enumerate(present)
    )


def sector_returns(wd: WeekData) -> str | None:
    title = "Sector and size indices, Sunday close to Sunday close"
    return _return_bars(
        wd, "weekly_index_returns", "index", INDEX_LABELS, title, "sectors", highest_first=False
    )


def cross_asset_returns(wd: WeekData) -> str | None:
    title = "Weekly returns across asset classes"
    return _return_bars(
        wd, "weekly_cross_asset", "asset", ASSET_LABELS, title, "cross_asset", highest_first=True
    )


# The weeks a chart of the history shows: the year up to the report's week. Over years of weeks a bar or a point a
# week is too thin to read, and the drawing (most of a chart's time) would grow with every week of the history.
CHART_WEEKS = 52


def _recent(wd: WeekData, table: str) -> pl.DataFrame:
    """``table``'s history for a chart: its rows of the ``CHART_WEEKS`` weeks up to the report's week."""
    first = wd.week_date - timedelta(weeks=CHART_WEEKS - 1)
    return wd.hist(table).filter(pl.col("week_start") >= first)


def _leverage_history(wd: WeekData) -> pl.DataFrame | None:
    h = _recent(wd, "weekly_leverage").sort("week_start")
    if h.height < 1 or wd.rows("weekly_leverage") is None:
        return None
    return h


def funding_by_week(wd: WeekData) -> str | None:
    """A bar per week of the mean funding rate, green up and red down; None without a rate in the history (the
    funding weighting and the venues behind it vary by week: ``weekly_leverage``'s coverage columns)."""
    h = _leverage_history(wd)
    if h is None:
        return None
    fund = [None if v is None else v * 1e4 for v in h["funding_8h_mean"].to_list()]
    if all(v is None for v in fund):
        return None
    chart = _over_weeks(
        pygal.Bar, h["week_start"].to_list(), "Mean funding by week", "funding, bp per 8h", show_legend=False
    )
    chart.add("funding, bp per 8h", _signed(fund))
    return _svg(chart, "funding")


def open_interest(wd: WeekData) -> str | None:
    """The perpetuals' open interest at each close; None without a reading in the history."""
    h = _leverage_history(wd)
    if h is None:
        return None
    oi = [None if v is None else v / 1e9 for v in h["oi_close_usd"].to_list()]
    return _lines(
        "Perp open interest at each close",
        "open interest, $B",
        h["week_start"].to_list(),
        [("open interest, $B", oi)],
        "open_interest",
    )


def correlation_buckets(wd: WeekData) -> str | None:
    h = _recent(wd, "weekly_correlation_buckets").sort(["bucket", "week_start"])
    if h.height < 1 or wd.rows("weekly_correlation_buckets") is None:
        return None
    weeks = sorted(h["week_start"].unique().to_list())
    series = []
    for bucket in sorted(h["bucket"].unique().to_list(), key=lambda b: int(b.split("-")[0])):
        part = h.filter(pl.col("bucket") == bucket)
        by_week = dict(zip(part["week_start"].to_list(), part["avg_pairwise_corr"].to_list(), strict=True))
        series.append((f"ranks {bucket}", [by_week.get(w) for w in weeks]))
    return _lines(
        "Correlation by rank bucket (30-day daily returns)",
        "average pairwise correlation",
        weeks,
        series,
        "correlation",
    )


def btc_volatility(wd: WeekData) -> str | None:
    h = _recent(wd, "weekly_btc_volatility").sort("week_start")
    if h.height < 1 or wd.rows("weekly_btc_volatility") is None:
        return None
    return _lines(
        "Bitcoin realized volatility at each close",
        "annualized %",
        h["week_start"].to_list(),
        [
            (label, h[col].to_list())
            for col, label in (("rv7_hourly_pct", "7-day (hourly)"), ("rv30_hourly_pct", "30-day (hourly)"))
        ],
        "btc_volatility",
    )


CHARTS = (
    ("sectors", "Sector returns, Sunday close to Sunday close", sector_returns),
    ("cross_asset", "Cross-asset weekly returns", cross_asset_returns),
    ("funding", "Mean funding rate by week", funding_by_week),
    ("open_interest", "Perpetual open interest at each close", open_interest),
    ("correlation", "Correlation by rank bucket", correlation_buckets),
    ("btc_volatility", "Bitcoin realized volatility", btc_volatility),
)


def render_charts(wd: WeekData, draw: bool = True) -> dict[str, tuple[str, str]]:
    """name -> (caption, svg text); charts without data are left out. ``draw`` False: the same charts and
    captions, each with an empty text (drawing is most of a chart's time): for checks of a report's text, which
    only names its charts (``tests/_week_pipeline.py``)."""
    out = {}
    token = _DRAW.set(draw)
    try:
        for name, caption, fn in CHARTS:
            svg = fn(wd)
            if svg is not None:
                out[name] = (caption, svg)
    finally:
        _DRAW.reset(token)
    return out
