"""Charts as inline SVG, byte-deterministic: fixed ``svg.hashsalt``, no date or creator in the metadata,
text drawn as paths (no fonts needed by the viewer), and the Agg-free SVG backend only."""

from __future__ import annotations

import contextvars
import io

import matplotlib

matplotlib.use("svg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import polars as pl
from matplotlib.collections import PolyCollection

from pipelines.narrative.data import WeekData
from pipelines.narrative.vocabulary import ASSET_LABELS, INDEX_LABELS

RC = {
    "svg.hashsalt": "crypto-weekly",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 10,  # legible when a 6-inch figure is scaled to a phone's width
    "axes.spines.top": False,
    "axes.spines.right": False,
}
UP, DOWN, INK = "#1a7f37", "#cf222e", "#57606a"
# False inside ``render_charts(wd, draw=False)``: ``_svg`` closes each figure without drawing it.
_DRAW = contextvars.ContextVar("draw_charts", default=True)


def _svg(fig) -> str:
    """The figure cut to its drawn extent plus ``savefig.pad_inches``, as ``bbox_inches="tight"`` cuts it, but
    measured without drawing the figure first: "tight" draws every chart twice (once with the output turned off,
    to place it), and these charts have no layout engine that needs that first draw (`bench/HOTSPOT.md`).
    The same SVG up to float rounding (``tests/test_narrative_charts.py``). An empty text when charts are not
    drawn (``render_charts(wd, draw=False)``)."""
    if not _DRAW.get():
        plt.close(fig)
        return ""
    buf = io.StringIO()
    extent = fig.get_tightbbox().padded(matplotlib.rcParams["savefig.pad_inches"])
    fig.savefig(
        buf,
        format="svg",
        metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        bbox_inches=extent,
    )
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG is inlined in HTML


def _bars(labels: list[str], values: list[float], title: str) -> str:
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(6.0, 0.35 * len(labels) + 1.0))
        ax.barh(labels[::-1], values[::-1], color=[UP if v >= 0 else DOWN for v in values[::-1]])
        ax.axvline(0, color=INK, lw=0.8)
        ax.set_xlabel("return over the week, %")
        ax.set_title(title, loc="left")
        return _svg(fig)


def _return_bars(
    wd: WeekData, table: str, name_col: str, labels: dict[str, str], title: str, *, highest_first: bool
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
    return _bars([labels.get(n, n) for n in rows[name_col]], rows["return_pct"].to_list(), title)


def sector_returns(wd: WeekData) -> str | None:
    title = "Sector and size indices, Sunday close to Sunday close"
    return _return_bars(wd, "weekly_index_returns", "index", INDEX_LABELS, title, highest_first=False)


def cross_asset_returns(wd: WeekData) -> str | None:
    title = "Weekly returns across asset classes"
    return _return_bars(wd, "weekly_cross_asset", "asset", ASSET_LABELS, title, highest_first=True)


def funding_and_oi(wd: WeekData) -> str | None:
    """Funding bars and the open-interest line; a series with no value in the history is not drawn, and neither
    is its axis (no empty OI axis when OI is missing)."""
    h = wd.hist("weekly_leverage").sort("week_start")
    if h.height < 1 or wd.rows("weekly_leverage") is None:
        return None
    fund = [None if v is None else v * 1e4 for v in h["funding_8h_mean"].to_list()]
    oi = [None if v is None else v / 1e9 for v in h["oi_close_usd"].to_list()]
    has_f, has_oi = any(v is not None for v in fund), any(v is not None for v in oi)
    if not (has_f or has_oi):
        return None
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        x = h["week_start"].to_list()
        if has_f:
            _week_bars(ax, x, fund)
            ax.set_ylabel("funding, bp per 8h")
        line_ax = ax.twinx() if has_f and has_oi else ax
        if has_oi:
            line_ax.plot(x, [float("nan") if v is None else v for v in oi], color="#0969da", marker="o", ms=3)
            line_ax.set_ylabel("open interest, $B")
        # the funding weighting and the venues behind the total vary by week (see weekly_leverage coverage columns)
        title = (
            "Funding (bars) and open interest (line)"
            if has_f and has_oi
            else "Mean funding by week"
            if has_f
            else "Perp open interest at each close"
        )
        ax.set_title(title, loc="left")
        fig.autofmt_xdate()
        return _svg(fig)


def _week_bars(ax, weeks: list, values: list[float | None]) -> None:
    """A bar 5 days wide at each week, green up and red down (a missing value: a grey bar of height 0), drawn as
    one collection: ``ax.bar`` makes an artist per bar, which cost more than a third of this chart at 87 weeks.
    The bars' foot stays on the axis's edge where every value has one sign, as ``ax.bar`` keeps it (sticky 0)."""
    xs = mdates.date2num(weeks)
    heights = [0.0 if v is None else v for v in values]
    bars = PolyCollection(
        [
            [(x - 2.5, 0.0), (x - 2.5, h), (x + 2.5, h), (x + 2.5, 0.0)]
            for x, h in zip(xs, heights, strict=True)
        ],
        facecolors=[INK if v is None else (UP if v >= 0 else DOWN) for v in values],
        edgecolors="none",
    )
    bars.sticky_edges.y.append(0.0)
    ax.add_collection(bars, autolim=True)
    ax.xaxis_date()


def correlation_buckets(wd: WeekData) -> str | None:
    h = wd.hist("weekly_correlation_buckets").sort(["bucket", "week_start"])
    if h.height < 1 or wd.rows("weekly_correlation_buckets") is None:
        return None
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        for bucket in sorted(h["bucket"].unique().to_list(), key=lambda b: int(b.split("-")[0])):
            part = h.filter(pl.col("bucket") == bucket)
            if part["avg_pairwise_corr"].is_null().all():
                continue  # no empty series in the legend
            y = [float("nan") if v is None else v for v in part["avg_pairwise_corr"].to_list()]
            ax.plot(part["week_start"].to_list(), y, marker="o", ms=3, label=f"ranks {bucket}")
        ax.set_ylabel("average pairwise correlation")
        ax.legend(frameon=False)
        ax.set_title("Correlation by rank bucket (30-day daily returns)", loc="left")
        fig.autofmt_xdate()
        return _svg(fig)


def btc_volatility(wd: WeekData) -> str | None:
    h = wd.hist("weekly_btc_volatility").sort("week_start")
    if h.height < 1 or wd.rows("weekly_btc_volatility") is None:
        return None
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        x = h["week_start"].to_list()
        for col, label in (("rv7_hourly_pct", "7-day (hourly)"), ("rv30_hourly_pct", "30-day (hourly)")):
            if h[col].is_null().all():
                continue
            ax.plot(
                x, [float("nan") if v is None else v for v in h[col].to_list()], marker="o", ms=3, label=label
            )
        ax.set_ylabel("annualized %")
        ax.legend(frameon=False)
        ax.set_title("Bitcoin realized volatility at each close", loc="left")
        fig.autofmt_xdate()
        return _svg(fig)


CHARTS = (
    ("sectors", "Sector returns, Sunday close to Sunday close", sector_returns),
    ("cross_asset", "Cross-asset weekly returns", cross_asset_returns),
    ("funding_oi", "Funding and open interest", funding_and_oi),
    ("correlation", "Correlation by rank bucket", correlation_buckets),
    ("btc_volatility", "Bitcoin realized volatility", btc_volatility),
)


def render_charts(wd: WeekData, draw: bool = True) -> dict[str, tuple[str, str]]:
    """name -> (caption, svg text); charts without data are left out. ``draw`` False: the same charts and
    captions, each with an empty text, as the figures are closed before they are drawn (drawing is most of a
    chart's time): for checks of a report's text, which only names its charts (``tests/_week_pipeline.py``)."""
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
