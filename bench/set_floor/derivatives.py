"""The set-based floor of the derivatives and trading tables: ``weekly_volume``, ``weekly_btc_volatility`` and
``weekly_leverage`` for every week of a range in one vectorized pass.

* ``weekly_volume``: the eligible coins of each registry snapshot (no excluded category on any of its rows) and
  each week's snapshot (the last taken on or before its close day, else the earliest); spot volume per
  (snapshot, day) over those coins, a day kept when it has at least ``MIN_VOLUME_COINS`` coins; perp volume per
  day, a day kept when every exchange with a volume in the week or the week before has one that day. A week's
  volume is the sum of its seven kept days (null unless all seven are kept), the week before's likewise.
* ``weekly_btc_volatility``: one series of hourly log returns (between bars one hour apart, stamped at the later
  bar's close) and one of daily ones (the 23:00 bars' closes, consecutive days); cumulative sums of the returns
  and their squares, and one ``join_asof`` per window edge give the sample variance over ``(edge - window,
  edge]`` at every week's start and end and at every daily boundary of the history (``rv7_highest_since``: the
  last boundary before the week's end whose 7-day value is at least the week's). A return is stamped no later
  than the bars it uses, so a value at an instant is the same over the whole history as over the history cut
  at any later week's end.
* ``weekly_leverage``: settlements out of line with the other venues at the same instant are left out; every
  settlement takes its series' last open-interest reading within a day before it (one ``join_asof``); the
  week's funding is aggregated over the settlements of ``(start, end]`` grouped by ``week_start``, the daily
  funding over their accrual days. The negative-funding facts come from the daily series over the whole
  history (a day's row never depends on later settlements): sign flips, the last negative day before each, and
  the runs of negative days, the run reaching past a week's close cut at it. Open interest per (series, day) is
  the last positive reading of the day; the open/close and reference/close comparisons are outer joins of the
  two days' series per week, the reference day the best day of the 90 before the open over the close's series.

A week the project writes empty (no BTC bar in the week; no funding settlement in the week) has no row here
either."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from assets.weekly.derivatives import MIN_VOLUME_COINS
from bench.set_floor import Lake
from bench.set_floor.shared import consecutive_weeks, eligible_coins, pct, week_snapshots
from pipelines.metrics.leverage import BASELINE_8H, HAS_OI, funding_weighting
from pipelines.metrics.volatility import DAYS_PER_YEAR, HOURS_PER_YEAR
from pipelines.quality import FUNDING_VENUE_FACTOR, FUNDING_VENUE_GAP
from pipelines.schemas import WEEKLY_BTC_VOLATILITY, WEEKLY_LEVERAGE, WEEKLY_VOLUME

TABLES = ("weekly_volume", "weekly_btc_volatility", "weekly_leverage")

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
# the project's function defaults the weekly assets use (restated: they have no name of their own)
MIN_FRAC = 0.9  # volatility's min_frac: share of a window's expected returns a realized volatility needs
OI_TOLERANCE_US = DAY_US  # leverage's oi_tolerance: a settlement's reading is at most a day older than it
PEAK_LOOKBACK_DAYS = 90  # leverage.weekly_leverage's peak_lookback_days


def _weeks(weeks: list[str]) -> pl.DataFrame:
    """``week_days`` of each week with its bounds in µs since the epoch."""
    return consecutive_weeks(date.fromisoformat(weeks[0]), len(weeks)).with_columns(
        (pl.col("week_start").cast(pl.Int64) * DAY_US).alias("start_us"),
        ((pl.col("week_start").cast(pl.Int64) + 7) * DAY_US).alias("end_us"),
    )


def _monday(day: pl.Expr) -> pl.Expr:
    """The Monday of the week ``day`` falls in."""
    return day - pl.duration(days=day.dt.weekday() - 1)


def _change(a: pl.Expr, b: pl.Expr, names: tuple[str, str, str]) -> list[pl.Expr]:
    """``a``, ``b`` and the percent change from one to the other (``_pct``), named ``names``."""
    return [a.alias(names[0]), b.alias(names[1]), pct(a, b).alias(names[2])]


def _us(col: str) -> pl.Expr:
    """A UTC datetime column as µs since the epoch."""
    return pl.col(col).dt.epoch("us")


def _day_of_us(us: pl.Expr) -> pl.Expr:
    """The UTC day of an instant in µs."""
    return us.floordiv(DAY_US).cast(pl.Int32).cast(pl.Date)


# ---- weekly_volume ---------------------------------------------------------------------------------------------
def _volume_pair(kept: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """``week_start, cur, prev``: from the kept days ``by + [role_week, date, v]``, each week's sum of its seven
    days and the week before's, null unless all seven days are kept."""
    sums = (
        kept.group_by([*by, "role_week", "role"])
        .agg(pl.col("v").sum().alias("s"), pl.col("date").n_unique().alias("n"))
        .filter(pl.col("n") >= 7)
        .pivot("role", index=[*by, "role_week"], values="s")
        .rename({"role_week": "week_start"})
    )
    for c in ("cur", "prev"):
        if c not in sums.columns:
            sums = sums.with_columns(pl.lit(None, dtype=pl.Float64).alias(c))
    return sums


def _as_roles(daily: pl.DataFrame) -> pl.DataFrame:
    """Each day's row twice: for the week it falls in (``cur``) and for the week after (``prev``)."""
    wk = _monday(pl.col("date"))
    return pl.concat(
        [
            daily.with_columns(wk.alias("role_week"), pl.lit("cur").alias("role")),
            daily.with_columns((wk + pl.duration(days=7)).alias("role_week"), pl.lit("prev").alias("role")),
        ]
    )


def weekly_volume(lake: dict[str, pl.DataFrame], wk: pl.DataFrame) -> pl.DataFrame:
    """``weekly_volume`` rows of every week of ``wk``."""
    first, last = wk["week_start"].min() - timedelta(days=7), wk["close_day"].max()
    week_snap = week_snapshots(wk, lake["coin_registry"])
    eligible = eligible_coins(lake["coin_registry"]).join(
        week_snap.select("snapshot").unique(), on="snapshot"
    )
    # spot: per (snapshot, day) the eligible coins' volumes, a day kept with MIN_VOLUME_COINS of them
    spot_daily = (
        lake["coin_daily"]
        .filter(pl.col("date").is_between(first, last) & pl.col("volume_24h_usd").is_not_null())
        .select("date", "coin_id", pl.col("volume_24h_usd").alias("v"))
        .join(eligible, on="coin_id")
        .group_by("snapshot", "date")
        .agg(pl.col("v").sum(), pl.len().alias("coins"))
        .filter(pl.col("coins") >= MIN_VOLUME_COINS)
    )
    spot = week_snap.join(
        _volume_pair(_as_roles(spot_daily), ["snapshot"]), on=["week_start", "snapshot"], how="left"
    ).select("week_start", pl.col("cur").alias("s1"), pl.col("prev").alias("s0"))
    # perp: a day kept when it has every exchange with a volume in the week or the week before
    perp_rows = lake["perp_volume_daily"].filter(
        pl.col("date").is_between(first, last) & pl.col("quote_volume_usd").is_not_null()
    )
    perp_daily = perp_rows.group_by("date").agg(
        pl.col("quote_volume_usd").sum().alias("v"), pl.col("exchange").n_unique().alias("exchanges")
    )
    week_exchanges = (
        _as_roles(perp_rows.select("date", "exchange"))
        .group_by("role_week")
        .agg(pl.col("exchange").n_unique().alias("week_exchanges"))
    )
    kept = (
        _as_roles(perp_daily)
        .join(week_exchanges, on="role_week")
        .filter(pl.col("exchanges") == pl.col("week_exchanges"))
    )
    perp = _volume_pair(kept, []).select("week_start", pl.col("cur").alias("p1"), pl.col("prev").alias("p0"))
    s1, s0, p1, p0 = pl.col("s1"), pl.col("s0"), pl.col("p1"), pl.col("p0")
    return (
        wk.select("week_start")
        .join(spot, on="week_start", how="left")
        .join(perp, on="week_start", how="left")
        .select(
            "week_start",
            *_change(s0, s1, ("spot_volume_prev_usd", "spot_volume_usd", "spot_change_pct")),
            *_change(p0, p1, ("perp_volume_prev_usd", "perp_volume_usd", "perp_change_pct")),
            pl.when(s1 != 0).then(p1 / s1).alias("perp_to_spot"),
            pl.when(s0 != 0).then(p0 / s0).alias("perp_to_spot_prev"),
        )
        .sort("week_start")
        .cast(WEEKLY_VOLUME.polars_schema)  # type: ignore[arg-type]
    )


# ---- weekly_btc_volatility -------------------------------------------------------------------------------------
def _cumulative(stamps_returns: pl.DataFrame) -> pl.DataFrame:
    """``stamp, n, s1, s2`` sorted by stamp: the count, sum and sum of squares of the returns up to each stamp,
    after a row at the earliest instant with zeros."""
    r = pl.col("r")
    cum = stamps_returns.sort("stamp").select(
        "stamp",
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("n"),
        r.cum_sum().alias("s1"),
        (r * r).cum_sum().alias("s2"),
    )
    zero = pl.DataFrame(
        {"stamp": [-(2**62)], "n": [0], "s1": [0.0], "s2": [0.0]},
        schema={"stamp": pl.Int64, "n": pl.Int64, "s1": pl.Float64, "s2": pl.Float64},
    )
    return pl.concat([zero, cum])


def _rv_at(edges: pl.DataFrame, cum: pl.DataFrame, window: int, per_year: int, expected: int, name: str):
    """``edges`` (an ``at`` column, µs, sorted) with ``name``: the annualized realized volatility (percent) of
    the returns stamped in ``(at - window, at]``, null with fewer than two or than ``MIN_FRAC`` of the
    ``expected`` returns."""
    hi = edges.join_asof(cum, left_on="at", right_on="stamp", strategy="backward")
    lo = (
        edges.select((pl.col("at") - window).alias("lo_at"))
        .join_asof(cum, left_on="lo_at", right_on="stamp", strategy="backward")
        .select(pl.col("n").alias("n0"), pl.col("s1").alias("a0"), pl.col("s2").alias("b0"))
    )
    n = pl.col("n") - pl.col("n0")
    a, b = pl.col("s1") - pl.col("a0"), pl.col("s2") - pl.col("b0")
    var = (b - a * a / n) / (n - 1)
    vol = (pl.max_horizontal(var, 0.0) * per_year).sqrt() * 100.0
    return pl.concat([hi, lo], how="horizontal").select(
        *edges.columns, pl.when((n >= 2) & (n >= MIN_FRAC * expected)).then(vol).alias(name)
    )


def weekly_btc_volatility(lake: dict[str, pl.DataFrame], wk: pl.DataFrame) -> pl.DataFrame:
    """``weekly_btc_volatility`` rows of every week of ``wk`` with a bar in the week."""
    bars = (
        lake["btc_hourly"]
        .select(_us("ts").alias("ts"), pl.col("close").cast(pl.Float64))
        .unique("ts", keep="last")
        .sort("ts")
    )
    hourly = (
        bars.select(
            (pl.col("ts") + HOUR_US).alias("stamp"),
            pl.col("close").log().diff().alias("r"),
            (pl.col("ts").diff() == HOUR_US).alias("ok"),
        )
        .filter(pl.col("ok"))
        .drop("ok")
    )
    daily = (
        bars.filter(pl.col("ts") % DAY_US == 23 * HOUR_US)
        .select(
            (pl.col("ts") // DAY_US + 1).alias("day_end"),
            pl.col("close").log().diff().alias("r"),
            (pl.col("ts").diff() == DAY_US).alias("ok"),
        )
        .filter(pl.col("ok"))
        .select((pl.col("day_end") * DAY_US).alias("stamp"), "r")
    )
    ch, cd = _cumulative(hourly), _cumulative(daily)
    has_bar = bars.select(_day_of_us(pl.col("ts")).alias("d")).select(
        _monday(pl.col("d")).alias("week_start")
    )
    weeks = wk.filter(pl.col("week_start").is_in(has_bar["week_start"].implode()))
    ends = weeks.select("week_start", pl.col("end_us").alias("at")).sort("at")
    starts = weeks.select("week_start", pl.col("start_us").alias("at")).sort("at")
    rv = (
        _rv_at(ends, ch, 7 * DAY_US, HOURS_PER_YEAR, 7 * 24, "rv7")
        .join(_rv_at(starts, ch, 7 * DAY_US, HOURS_PER_YEAR, 7 * 24, "rv7_prev").drop("at"), on="week_start")
        .join(_rv_at(ends, ch, 30 * DAY_US, HOURS_PER_YEAR, 30 * 24, "rv30").drop("at"), on="week_start")
        .join(_rv_at(ends, cd, 7 * DAY_US, DAYS_PER_YEAR, 7, "rv7d").drop("at"), on="week_start")
        .join(_rv_at(ends, cd, 30 * DAY_US, DAYS_PER_YEAR, 30, "rv30d").drop("at"), on="week_start")
    )
    # the 7-day hourly value at every daily boundary after the first return, up to the last week's end
    if hourly.height:
        first = (hourly["stamp"].min() // DAY_US + 1) * DAY_US
        bounds = pl.DataFrame({"at": pl.int_range(first, ends["at"].max(), DAY_US, eager=True)})
        hist = _rv_at(bounds, ch, 7 * DAY_US, HOURS_PER_YEAR, 7 * 24, "h").filter(pl.col("h").is_not_null())
        since = (
            rv.select("week_start", "at", "rv7")
            .filter(pl.col("rv7").is_not_null())
            .join(hist.rename({"at": "b"}), how="cross")
            .filter((pl.col("b") < pl.col("at")) & (pl.col("h") >= pl.col("rv7")))
            .group_by("week_start")
            .agg((_day_of_us(pl.col("b").max()) - pl.duration(days=1)).alias("rv7_highest_since"))
        )
    else:
        since = pl.DataFrame(schema={"week_start": pl.Date, "rv7_highest_since": pl.Date})
    return (
        rv.join(since, on="week_start", how="left")
        .select(
            "week_start",
            pl.col("rv7").alias("rv7_hourly_pct"),
            pl.col("rv7_prev").alias("rv7_hourly_prev_pct"),
            (pl.col("rv7") - pl.col("rv7_prev")).alias("rv7_change_pts"),
            pl.col("rv30").alias("rv30_hourly_pct"),
            pl.col("rv7d").alias("rv7_daily_pct"),
            pl.col("rv30d").alias("rv30_daily_pct"),
            "rv7_highest_since",
        )
        .sort("week_start")
        .cast(WEEKLY_BTC_VOLATILITY.polars_schema)  # type: ignore[arg-type]
    )


# ---- weekly_leverage -------------------------------------------------------------------------------------------
def _settlements(lake: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Every funding settlement not out of line with the other venues (more than ``FUNDING_VENUE_GAP`` and
    ``FUNDING_VENUE_FACTOR`` x |their median| from the median of the other venues' settlements of the symbol at
    the same instant): ``exchange, symbol, t`` (µs), ``rate_8h``, ``day`` (the accrual day, a 00:00 settlement
    belonging to the day before) and its ``week_start``."""
    f = lake["funding_rates"].select(
        "exchange",
        "symbol",
        _us("funding_time").alias("t"),
        (pl.col("funding_rate") * 8.0 / pl.col("interval_hours")).alias("rate_8h"),
    )
    # a settlement is a row (exchange, symbol and funding_time are the table's key): the other venues' median per
    # row index
    f = f.with_row_index("i")
    others = (
        f.select("i", "symbol", "t", "exchange")
        .join(
            f.select("symbol", "t", pl.col("exchange").alias("ex_o"), pl.col("rate_8h").alias("r_o")),
            on=["symbol", "t"],
        )
        .filter(pl.col("exchange") != pl.col("ex_o"))
        .group_by("i")
        .agg(pl.col("r_o").median().alias("others"))
    )
    gap = (pl.col("rate_8h") - pl.col("others")).abs()
    outliers = (
        f.select("i", "rate_8h")
        .join(others, on="i")
        .filter((gap > FUNDING_VENUE_GAP) & (gap > FUNDING_VENUE_FACTOR * pl.col("others").abs()))
    )
    day = _day_of_us(pl.col("t") - 1)
    return f.filter(~pl.col("i").is_in(outliers["i"].implode())).select(
        "exchange", "symbol", "t", "rate_8h", day.alias("day"), _monday(day).alias("week_start")
    )


def _weighted() -> list[pl.Expr]:
    """Aggregations of settlements with their ``oi_usd``: the project's ``funding_weighting`` (``funding_8h``,
    ``weighting``, ``settlements``), ``with_oi`` and ``venues_without_oi``."""
    return [
        *funding_weighting(),
        HAS_OI.sum().alias("with_oi"),
        _joined(pl.col("exchange").filter(~HAS_OI)).alias("venues_without_oi"),
    ]


def _joined(names: pl.Expr) -> pl.Expr:
    """The distinct ``names`` of a group sorted and joined with ', '; null when there are none."""
    j = names.unique().sort().str.join(", ")
    return pl.when(j != "").then(j)


def _negative_facts(daily: pl.DataFrame, wk: pl.DataFrame) -> pl.DataFrame:
    """``week_start`` and the negative-funding facts of each week of ``wk`` from the daily funding ``day,
    funding_8h`` (non-null, sorted): negative days, the first sign flip to negative and the last negative day
    before it, the longest negative run reaching the week (cut at its close) and the end of the last earlier run
    at least as long."""
    neg = pl.col("funding_8h") < 0
    next_day = (pl.col("day") - pl.col("day").shift(1)).dt.total_days() == 1
    d = daily.with_columns(
        neg.alias("neg"),
        # a flip: the day before in the series and not negative, or the first day of the series
        (neg & ((pl.col("funding_8h").shift(1) >= 0) & next_day).fill_null(True)).alias("flip"),
        pl.when(neg).then(pl.col("day")).shift(1).forward_fill().alias("neg_before"),
        ((neg != neg.shift(1)) | ~next_day).fill_null(True).cum_sum().alias("run"),
        _monday(pl.col("day")).alias("week_start"),
    )
    per_week = d.group_by("week_start").agg(
        pl.col("neg").sum().alias("negative_days"),
        pl.col("day").filter(pl.col("flip")).min().alias("first_negative_day"),
        pl.col("neg_before").filter(pl.col("flip")).first().alias("first_negative_since"),
    )
    runs = (
        d.filter(pl.col("neg"))
        .group_by("run")
        .agg(pl.col("day").min().alias("start"), pl.col("day").max().alias("end"))
        .with_columns(((pl.col("end") - pl.col("start")).dt.total_days() + 1).alias("days"))
    )
    # the runs reaching each week, a run going on past the week's close counted up to it
    cut_end = pl.min_horizontal("end", "close_day")
    longest = (
        wk.select("week_start", "close_day")
        .join(runs, how="cross")
        .filter((pl.col("start") <= pl.col("close_day")) & (pl.col("end") >= pl.col("week_start")))
        .with_columns(
            cut_end.alias("cut_end"), ((cut_end - pl.col("start")).dt.total_days() + 1).alias("longest")
        )
        .sort(["week_start", "longest", "cut_end"], descending=[False, True, False])
        .group_by("week_start", maintain_order=True)
        .first()
        .select("week_start", pl.col("start").alias("run_start"), "longest")
    )
    since = (
        longest.join(runs, how="cross")
        .filter((pl.col("end") < pl.col("run_start")) & (pl.col("days") >= pl.col("longest")))
        .group_by("week_start")
        .agg(pl.col("end").max().alias("longest_negative_run_since"))
    )
    return (
        per_week.join(longest, on="week_start", how="left")
        .join(since, on="week_start", how="left")
        .select(
            "week_start",
            "negative_days",
            "first_negative_day",
            "first_negative_since",
            pl.col("longest").fill_null(0).alias("longest_negative_run_days"),
            "longest_negative_run_since",
        )
    )


def _compare(pairs: pl.DataFrame, soi: pl.DataFrame) -> pl.DataFrame:
    """For ``pairs`` (``week_start, day_a, day_b``), the like-for-like comparison of the open interest of the
    series (``soi``: ``exchange, symbol, date, oi_usd``) on the two days: ``week_start``, the totals at each end,
    the totals over the series present at both, the series and venues at each end and at both, the series
    missing at each end (``venue:symbol``) and whether the series differ. A week with no series on either day
    has no row."""
    side = [
        pairs.join(soi, left_on=f"day_{x}", right_on="date").select(
            "week_start", "exchange", "symbol", pl.col("oi_usd").alias(x)
        )
        for x in ("a", "b")
    ]
    both = side[0].join(side[1], on=["week_start", "exchange", "symbol"], how="full", coalesce=True)
    a, b = pl.col("a"), pl.col("b")
    common = a.is_not_null() & b.is_not_null()
    name = pl.col("exchange") + ":" + pl.col("symbol")

    def total(v: pl.Expr, keep: pl.Expr) -> pl.Expr:
        return pl.when(keep.any()).then(v.filter(keep).sort().sum())

    return both.group_by("week_start").agg(
        total(a, a.is_not_null()).alias("total_a"),
        total(b, b.is_not_null()).alias("total_b"),
        total(a, common).alias("common_a"),
        total(b, common).alias("common_b"),
        a.is_not_null().sum().alias("series_a"),
        b.is_not_null().sum().alias("series_b"),
        common.sum().alias("series_common"),
        _joined(pl.col("exchange").filter(a.is_not_null())).alias("venues_a"),
        _joined(pl.col("exchange").filter(b.is_not_null())).alias("venues_b"),
        _joined(pl.col("exchange").filter(common)).alias("venues_common"),
        _joined(name.filter(a.is_null())).alias("missing_at_a"),
        _joined(name.filter(b.is_null())).alias("missing_at_b"),
        (~common).any().alias("changed"),
    )


def _reference_days(wk: pl.DataFrame, soi: pl.DataFrame) -> pl.DataFrame:
    """``week_start, ref_day``: among the ``PEAK_LOOKBACK_DAYS`` days before each week's open day (and it), the
    days with a reading for the most of the close day's series; of those the one whose total over them is
    highest (ties: the earliest)."""
    close = wk.join(soi, left_on="close_day", right_on="date").select("week_start", "exchange", "symbol")
    grid = wk.select(
        "week_start",
        pl.date_ranges(pl.col("open_day") - pl.duration(days=PEAK_LOOKBACK_DAYS), "open_day").alias("date"),
    ).explode("date")
    return (
        grid.join(soi, on="date")
        .join(close, on=["week_start", "exchange", "symbol"], how="semi")
        .group_by("week_start", "date")
        .agg(pl.len().alias("n"), pl.col("oi_usd").sort().sum().alias("total"))
        .sort(["week_start", "n", "total", "date"], descending=[False, True, True, False])
        .group_by("week_start", maintain_order=True)
        .first()
        .select("week_start", pl.col("date").alias("ref_day"))
    )


def weekly_leverage(lake: dict[str, pl.DataFrame], wk: pl.DataFrame) -> pl.DataFrame:
    """``weekly_leverage`` rows of every week of ``wk`` with a funding settlement in the week."""
    last = wk["close_day"].max()
    settle = _settlements(lake).filter(pl.col("day") <= last).sort("t")
    oi = lake.get("open_interest")
    if oi is not None:
        oi = oi.select("exchange", "symbol", _us("ts").alias("ts"), "oi_usd").sort("ts")
        # each settlement with its series' last positive reading at most OI_TOLERANCE_US before it (both sides
        # sorted by time, so within each series too: polars cannot check that with ``by`` and would warn)
        series = ["exchange", "symbol"]
        settle = settle.join_asof(
            oi.filter(HAS_OI).rename({"ts": "t"}),
            on="t",
            by=series,
            tolerance=OI_TOLERANCE_US,
            check_sortedness=False,
        )
    else:
        settle = settle.with_columns(pl.lit(None, dtype=pl.Float64).alias("oi_usd"))
    funding = (
        settle.group_by("week_start")
        .agg(_weighted())
        .join(wk.select("week_start"), on="week_start", how="semi")
    )
    daily = settle.group_by("day").agg(_weighted()[0]).filter(pl.col("funding_8h").is_not_null()).sort("day")
    facts = _negative_facts(daily, wk)
    mean8 = pl.col("funding_8h")
    out = funding.join(facts, on="week_start", how="left").select(
        "week_start",
        mean8.alias("funding_8h_mean"),
        (mean8 * 3 * 365).alias("funding_annualized_mean"),
        pl.col("weighting").alias("funding_weighting"),
        pl.col("settlements").alias("funding_settlements"),
        (pl.col("with_oi") / pl.col("settlements")).alias("funding_oi_share"),
        pl.col("venues_without_oi").alias("funding_venues_without_oi"),
        pl.col("negative_days").fill_null(0),
        "first_negative_day",
        "first_negative_since",
        pl.col("longest_negative_run_days").fill_null(0),
        "longest_negative_run_since",
        pl.when(mean8 < 0)
        .then(pl.lit("short"))
        .when(mean8 > BASELINE_8H)
        .then(pl.lit("long"))
        .otherwise(pl.lit("neutral"))
        .alias("leverage_skew"),
    )
    oi_cols = pl.DataFrame(schema={"week_start": pl.Date})
    if oi is not None and oi.height:
        # the weeks with a reading up to their end: the others have no open-interest figures at all
        with_oi = wk.filter(pl.col("end_us") >= oi["ts"].min())
        soi = (
            oi.filter(pl.col("oi_usd").is_not_null() & (pl.col("oi_usd") > 0))
            .with_columns(_day_of_us(pl.col("ts") - 1).alias("date"))
            .group_by("exchange", "symbol", "date")
            .agg(pl.col("oi_usd").last())  # the readings are sorted by time
        )
        week = _compare(
            with_oi.select(
                "week_start", pl.col("open_day").alias("day_a"), pl.col("close_day").alias("day_b")
            ),
            soi,
        )
        ref_days = _reference_days(with_oi, soi)
        ref = _compare(
            ref_days.join(with_oi, on="week_start").select(
                "week_start", pl.col("ref_day").alias("day_a"), pl.col("close_day").alias("day_b")
            ),
            soi,
        )
        ta, tb = pl.col("total_a"), pl.col("total_b")
        ca, cb = pl.col("common_a"), pl.col("common_b")
        oi_cols = (
            with_oi.select("week_start")
            .join(week, on="week_start", how="left")
            .select(
                "week_start",
                *_change(ta, tb, ("oi_open_usd", "oi_close_usd", "oi_change_pct")),
                *_change(
                    ca, cb, ("oi_open_common_usd", "oi_close_common_usd", "oi_change_like_for_like_pct")
                ),
                pl.col("series_a").fill_null(0).alias("oi_series_open"),
                pl.col("series_b").fill_null(0).alias("oi_series_close"),
                pl.col("series_common").fill_null(0).alias("oi_series_common"),
                pl.col("venues_a").alias("oi_venues_open"),
                pl.col("venues_b").alias("oi_venues_close"),
                pl.col("venues_common").alias("oi_venues_common"),
                pl.col("missing_at_a").alias("oi_missing_at_open"),
                pl.col("missing_at_b").alias("oi_missing_at_close"),
                pl.col("changed").fill_null(False).alias("coverage_changed"),
            )
            .join(
                ref_days.join(ref, on="week_start").select(
                    "week_start",
                    pl.when(ca.is_not_null()).then(pl.col("ref_day")).alias("oi_ref_day"),
                    *_change(ca, cb, ("oi_ref_usd", "oi_ref_close_usd", "oi_vs_ref_pct")),
                    pl.col("missing_at_a").alias("oi_ref_missing"),
                ),
                on="week_start",
                how="left",
            )
        )
    ls = lake.get("long_short_ratio")
    ls_mean = pl.DataFrame(schema={"week_start": pl.Date, "long_short_ratio_mean": pl.Float64})
    if ls is not None:
        ls_mean = (
            ls.filter(pl.col("short_account") > 0)
            .select(
                _monday(_day_of_us(_us("ts") - 1)).alias("week_start"),
                (pl.col("long_account") / pl.col("short_account")).alias("x"),
            )
            .group_by("week_start")
            .agg(pl.col("x").mean().alias("long_short_ratio_mean"))
        )
    full = out.join(oi_cols, on="week_start", how="left").join(ls_mean, on="week_start", how="left")
    # without open interest (or long/short readings) their columns are null
    columns = [
        pl.col(c) if c in full.columns else pl.lit(None).alias(c) for c in WEEKLY_LEVERAGE.column_names
    ]
    return full.select(columns).sort("week_start").cast(WEEKLY_LEVERAGE.polars_schema)  # type: ignore[arg-type]


def compute(lake: Lake, weeks: list[str]) -> dict[str, pl.DataFrame]:
    """``{table: frame of every week}`` for ``TABLES`` over the consecutive ``weeks``; a table whose required
    clean tables are not in the lake has no rows (the project fails its weeks)."""
    wk = _weeks(weeks)
    out = {}
    for name, (table, build, needs) in BUILDERS.items():
        ok = all(n in lake for n in needs)
        out[name] = build(lake, wk) if ok else pl.DataFrame(schema=table.polars_schema)
    return out


# each table: its schema, its builder and the clean tables the project requires for it
BUILDERS = {
    "weekly_volume": (WEEKLY_VOLUME, weekly_volume, ("coin_daily", "coin_registry", "perp_volume_daily")),
    "weekly_btc_volatility": (WEEKLY_BTC_VOLATILITY, weekly_btc_volatility, ("btc_hourly",)),
    "weekly_leverage": (WEEKLY_LEVERAGE, weekly_leverage, ("funding_rates",)),
}
