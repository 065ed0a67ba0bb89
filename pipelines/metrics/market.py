"""Total crypto market cap: the tracked coins' total and the market's total (CoinGecko's global figure, observed
or estimated from the top 100's share), their levels at the week's open and close, round-number crossings."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from pipelines.metrics.pit import as_of, pct, week_window
from pipelines.schemas import WEEKLY_MARKET_TOTAL, WEEKLY_MCAP_CROSSINGS

CARRY_DAYS = (
    3  # a coin missing for at most this many days counts at its last market cap (a data gap, not a fall)
)
SHARE_TOP_N = 100  # the largest coins whose share of the market's total is measured and divided by
# The top 100's mean share of the market's total on real listings (CMC top 300, 17 snapshots 2025-10-26..11-03;
# tests/test_total_mcap_share_real.py): used when no /global observation is usable for the week.
REAL_TOP100_SHARE = 0.986
# A /global observation made up to this long after a week's close (by the Wednesday 00:00 UTC after it) counts for
# the week; later ones never change it (point in time: a week's figures are final two days after its close).
USABLE_AFTER_CLOSE = timedelta(days=2)
OBSERVED, ESTIMATED = "observed", "estimated"
MEASURED, CONSTANT = "measured", "real-data constant"


def total_market_cap_daily(
    coin_daily: pl.DataFrame,
    coin_ids: list[str] | None = None,
    carry_days: int = CARRY_DAYS,
    top_n: int = SHARE_TOP_N,
) -> pl.DataFrame:
    """``date, total_mcap_usd, coins, coins_carried, top_mcap_usd, top_coins`` per close day (optionally over a
    subset of coins).

    The total sums each coin's positive market cap that day; a coin with no reading that day whose last reading
    is at most ``carry_days`` days earlier counts at that last reading (``coins_carried`` of them; ``coins`` counts
    the coins with a reading). So a one-day data gap of a large coin is not a fall and a recovery of the total,
    while a coin that stops being reported leaves it after ``carry_days``. Only days with at least one reading
    get a total. Carrying looks only backwards: the value of a day never depends on later data.
    ``top_mcap_usd`` sums the ``top_n`` largest of the same market caps (``top_coins`` of them: fewer when fewer
    coins are counted): what the market's total is estimated from (``market_total_daily``).
    """
    df = (
        coin_daily
        if coin_ids is None
        else coin_daily.filter(pl.col("coin_id").is_in(pl.Series(coin_ids).implode()))
    )
    obs = (
        df.filter(pl.col("market_cap_usd") > 0)
        .select("date", "coin_id", "market_cap_usd")
        .sort(["coin_id", "date", "market_cap_usd"])
        .unique(
            ["date", "coin_id"], keep="last", maintain_order=True
        )  # one reading per coin and day: the largest
    )
    days = obs.select("date").unique()
    parts = [obs.with_columns(pl.lit(False).alias("carried"))]
    if carry_days > 0 and obs.height:
        nxt = obs.with_columns(pl.col("date").shift(-1).over("coin_id").alias("next"))
        for k in range(1, carry_days + 1):
            c = nxt.with_columns((pl.col("date") + pl.duration(days=k)).alias("d")).filter(
                pl.col("next").is_null() | (pl.col("d") < pl.col("next"))
            )
            parts.append(
                c.select(
                    pl.col("d").alias("date"), "coin_id", "market_cap_usd", pl.lit(True).alias("carried")
                )
            )
    allrows = pl.concat(parts).join(days, on="date", how="semi")
    return (
        allrows.group_by("date")
        .agg(
            # summing the sorted values makes the float total independent of row order
            pl.col("market_cap_usd").sort().sum().alias("total_mcap_usd"),
            (~pl.col("carried")).sum().cast(pl.Int32).alias("coins"),
            pl.col("carried").sum().cast(pl.Int32).alias("coins_carried"),
            pl.col("market_cap_usd").sort(descending=True).head(top_n).sort().sum().alias("top_mcap_usd"),
            pl.len().clip(upper_bound=top_n).cast(pl.Int32).alias("top_coins"),
        )
        .sort("date")
    )


def _close_instant(day) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def usable_observations(observations: pl.DataFrame, week: str) -> pl.DataFrame:
    """The /global observations (``global_market_cap`` rows) a week may use: made at most ``USABLE_AFTER_CLOSE``
    after the week's close (next Monday 00:00 UTC), with a positive share; oldest first."""
    w = week_window(week)
    bound = _close_instant(w.close_day) + USABLE_AFTER_CLOSE
    if observations.is_empty():
        return observations
    # DuckDB reads the column as Etc/UTC, a test frame may say UTC: the same instants, one zone to compare in
    observations = observations.with_columns(
        pl.col("observed_at").dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    )
    return observations.filter(
        (pl.col("observed_at") <= bound) & (pl.col("top_share") > 0) & (pl.col("total_market_cap_usd") > 0)
    ).sort("observed_at")


def market_total_daily(
    total_daily: pl.DataFrame, observations: pl.DataFrame, week: str, default_share: float = REAL_TOP100_SHARE
) -> pl.DataFrame:
    """The market's total for every close day up to the week's close, as known to the week (point in time).

    ``total_daily`` is ``total_market_cap_daily``'s output, ``observations`` the ``global_market_cap`` rows.
    For day D:

    * **observed**: an observation (usable for the week, ``usable_observations``) whose ``close_day`` is D is
      CoinGecko's total at D's close (made within the hour after it); the earliest such observation is used;
    * **estimated** otherwise: ``top_mcap_usd / share``, the share measured by the usable observation nearest
      to D's close (00:00 UTC of D+1; a tie goes to the earlier), else ``default_share`` (the top 100's share on
      real listings).

    Returns ``date, tracked_mcap_usd, top_mcap_usd, top_coins, market_total_usd, basis, share, share_source,
    share_observed_at``.
    """
    d = as_of(total_daily, week).filter(pl.col("top_mcap_usd") > 0).sort("date")
    obs = usable_observations(observations, week)
    schema = {
        "date": pl.Date,
        "tracked_mcap_usd": pl.Float64,
        "top_mcap_usd": pl.Float64,
        "top_coins": pl.Int32,
        "market_total_usd": pl.Float64,
        "basis": pl.String,
        "share": pl.Float64,
        "share_source": pl.String,
        "share_observed_at": pl.Datetime("ms", "UTC"),
    }
    if d.is_empty():
        return pl.DataFrame(schema=schema)
    times = obs["observed_at"].to_list() if obs.height else []
    ms = np.array([t.timestamp() for t in times]) if times else np.array([])
    observed: dict = {}
    for r in obs.filter(pl.col("close_day").is_not_null()).iter_rows(named=True):
        observed.setdefault(r["close_day"], r)  # oldest first: the one nearest the close wins
    shares = obs["top_share"].to_list() if obs.height else []
    rows = []
    for day, tracked, top, n in d.select("date", "total_mcap_usd", "top_mcap_usd", "top_coins").iter_rows():
        hit = observed.get(day)
        if hit is not None:
            rows.append(
                (
                    day,
                    tracked,
                    top,
                    n,
                    hit["total_market_cap_usd"],
                    OBSERVED,
                    hit["top_share"],
                    MEASURED,
                    hit["observed_at"],
                )
            )
            continue
        if ms.size:
            t = _close_instant(day).timestamp()
            i = int(np.argmin(np.abs(ms - t)))  # argmin takes the first of equal distances: the earlier
            share, source, at = shares[i], MEASURED, times[i]
        else:
            share, source, at = default_share, CONSTANT, None
        rows.append((day, tracked, top, n, top / share, ESTIMATED, share, source, at))
    return pl.DataFrame(rows, schema=schema, orient="row")


def weekly_market_total(market_daily: pl.DataFrame, week: str) -> pl.DataFrame:
    """The week's rows of ``market_total_daily`` (open day to close day), as the ``weekly_market_total`` table."""
    w = week_window(week)
    rows = market_daily.filter(pl.col("date").is_between(w.open_day, w.close_day)).sort("date")
    return rows.select(pl.lit(w.monday).alias("week_start"), *WEEKLY_MARKET_TOTAL.column_names[1:])


def _value_on(daily: pl.DataFrame, day) -> float | None:
    hit = daily.filter(pl.col("date") == day)
    return hit["total_mcap_usd"][0] if hit.height else None


def weekly_total_market_cap(
    total_daily: pl.DataFrame, week: str, market_daily: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One ``weekly_total_market_cap`` row from the daily totals (``total_market_cap_daily``) and, when given, the
    market's total (``market_total_daily``; else those columns are null)."""
    w = week_window(week)
    d = as_of(total_daily, week)
    a, b = _value_on(d, w.open_day), _value_on(d, w.close_day)
    inside = d.filter(pl.col("date").is_between(w.open_day, w.close_day))["total_mcap_usd"]

    def count(col: str, day) -> int | None:
        if col not in d.columns:
            return None
        hit = d.filter(pl.col("date") == day)
        return int(hit[col][0]) if hit.height else None

    m = {}
    if market_daily is not None:
        md = market_daily.filter(pl.col("date") <= w.close_day)
        ends = {
            r["date"]: r
            for r in md.filter(pl.col("date").is_in([w.open_day, w.close_day])).iter_rows(named=True)
        }
        mo, mc = ends.get(w.open_day, {}), ends.get(w.close_day, {})
        mins = md.filter(pl.col("date").is_between(w.open_day, w.close_day))["market_total_usd"]
        m = {
            "market_total_open_usd": mo.get("market_total_usd"),
            "market_total_close_usd": mc.get("market_total_usd"),
            "market_total_change_pct": pct(mo.get("market_total_usd"), mc.get("market_total_usd")),
            "market_total_low_usd": mins.min() if mins.len() else None,
            "market_total_high_usd": mins.max() if mins.len() else None,
            "basis_open": mo.get("basis"),
            "basis_close": mc.get("basis"),
            "share_open": mo.get("share"),
            "share_close": mc.get("share"),
            "share_source_open": mo.get("share_source"),
            "share_source_close": mc.get("share_source"),
            "share_observed_at_open": mo.get("share_observed_at"),
            "share_observed_at_close": mc.get("share_observed_at"),
            "top_coins_open": mo.get("top_coins"),
            "top_coins_close": mc.get("top_coins"),
        }
    market_cols = {c: [m.get(c)] for c in MARKET_COLUMNS}
    return pl.DataFrame(
        {
            "week_start": [w.monday],
            "open_day": [w.open_day],
            "close_day": [w.close_day],
            "mcap_open_usd": [a],
            "mcap_close_usd": [b],
            "change_pct": [pct(a, b)],
            "mcap_low_usd": [inside.min() if inside.len() else None],
            "mcap_high_usd": [inside.max() if inside.len() else None],
            "coins_open": [count("coins", w.open_day)],
            "coins_close": [count("coins", w.close_day)],
            "coins_carried_open": [count("coins_carried", w.open_day)],
            "coins_carried_close": [count("coins_carried", w.close_day)],
            **market_cols,
        },
        schema={
            "week_start": pl.Date,
            "open_day": pl.Date,
            "close_day": pl.Date,
            "mcap_open_usd": pl.Float64,
            "mcap_close_usd": pl.Float64,
            "change_pct": pl.Float64,
            "mcap_low_usd": pl.Float64,
            "mcap_high_usd": pl.Float64,
            "coins_open": pl.Int32,
            "coins_close": pl.Int32,
            "coins_carried_open": pl.Int32,
            "coins_carried_close": pl.Int32,
            **MARKET_COLUMNS,
        },
    )


MARKET_COLUMNS = {
    "market_total_open_usd": pl.Float64,
    "market_total_close_usd": pl.Float64,
    "market_total_change_pct": pl.Float64,
    "market_total_low_usd": pl.Float64,
    "market_total_high_usd": pl.Float64,
    "basis_open": pl.String,
    "basis_close": pl.String,
    "share_open": pl.Float64,
    "share_close": pl.Float64,
    "share_source_open": pl.String,
    "share_source_close": pl.String,
    "share_observed_at_open": pl.Datetime("ms", "UTC"),
    "share_observed_at_close": pl.Datetime("ms", "UTC"),
    "top_coins_open": pl.Int32,
    "top_coins_close": pl.Int32,
}


def level_crossings(
    total_daily: pl.DataFrame, week: str, step: float = 0.5e12, base: float = 0.0, col: str = "total_mcap_usd"
) -> pl.DataFrame:
    """Every level ``base + k*step`` crossed between consecutive daily closes from the open to the close, on the
    daily series ``col`` of ``total_daily`` (the report passes the market's total, ``market_total_usd``).

    A level L is crossed down between closes ``x0 >= L > x1`` and up when ``x0 < L <= x1``; every crossing is a
    row (a level crossed twice in the week, the closing day included, has two). For each crossing,
    ``last_other_side_day`` is the last close strictly before the crossing day that was already on the new side
    (below L for 'down', at or above L for 'up'): "below $3T for the first time since <that day>". Gaps in the
    daily series are bridged (consecutive available closes are compared).
    """
    w = week_window(week)
    d = as_of(total_daily, week).filter(pl.col(col).is_not_null()).sort("date")
    dates = d["date"].to_list()
    vals = d[col].to_numpy()
    idx = [i for i, day in enumerate(dates) if w.open_day <= day <= w.close_day]
    rows: list[tuple] = []
    for i in idx:
        if i == 0 or dates[i - 1] < w.open_day:
            continue
        x0, x1 = vals[i - 1], vals[i]
        lo, hi = sorted((x0, x1))
        for k in range(math.floor((lo - base) / step), math.floor((hi - base) / step) + 2):
            level = base + k * step
            if x0 >= level > x1:
                direction, new_side = "down", vals[:i] < level
            elif x0 < level <= x1:
                direction, new_side = "up", vals[:i] >= level
            else:
                continue
            # Every crossing is kept: a level crossed down on Tuesday, back up on Thursday and down again on the
            # closing Sunday has three rows, so "the last crossing per level" is the one that holds at the close.
            prior = np.flatnonzero(new_side)
            rows.append(
                (w.monday, float(level), direction, dates[i], dates[prior[-1]] if prior.size else None)
            )
    return pl.DataFrame(
        rows,
        schema=WEEKLY_MCAP_CROSSINGS.polars_schema,
        orient="row",
    ).sort(["crossed_on", "level_usd"])
