"""Total crypto market cap: level at the week's open and close, weekly change, round-number crossings."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.metrics.pit import as_of, pct, week_window
from pipelines.schemas import Column, Table, register

WEEKLY_TOTAL_MARKET_CAP = register(
    Table(
        name="weekly_total_market_cap",
        description="Total crypto market cap (sum over every coin in coin_daily, short data gaps carried) at the "
        "week's open and close.",
        partition_by="week",
        key=("week_start",),
        columns=(
            Column("week_start", pa.date32(), "Monday 00:00 UTC that opens the week"),
            Column("open_day", pa.date32(), "daily partition whose close opens the week"),
            Column("close_day", pa.date32(), "daily partition whose close ends the week"),
            Column("mcap_open_usd", pa.float64(), "total market cap at the open", True),
            Column("mcap_close_usd", pa.float64(), "total market cap at the close", True),
            Column("change_pct", pa.float64(), "weekly change, percent", True),
            Column("mcap_low_usd", pa.float64(), "lowest daily close within open..close", True),
            Column("mcap_high_usd", pa.float64(), "highest daily close within open..close", True),
            Column("coins_open", pa.int32(), "coins with a market cap reading at the open", True),
            Column("coins_close", pa.int32(), "coins with a market cap reading at the close", True),
            Column("coins_carried_open", pa.int32(), "coins counted at their last reading (data gap) at the open", True),
            Column("coins_carried_close", pa.int32(), "coins counted at their last reading (data gap) at the close", True),
        ),
    )
)

WEEKLY_MCAP_CROSSINGS = register(
    Table(
        name="weekly_mcap_crossings",
        description="Round-number levels of the total market cap crossed (daily closes) during the week.",
        partition_by="week",
        key=("level_usd", "crossed_on"),
        columns=(
            Column("week_start", pa.date32(), "Monday 00:00 UTC that opens the week"),
            Column("level_usd", pa.float64(), "the round level crossed, e.g. 3e12"),
            Column("direction", pa.string(), "'down' (closed below, was at or above) or 'up' (closed at or above)"),
            Column("crossed_on", pa.date32(), "first daily close on the new side"),
            Column(
                "last_other_side_day",
                pa.date32(),
                "last close before crossed_on already on the new side ('first time since'); null: never in history",
                True,
            ),
        ),
    )
)


CARRY_DAYS = 3  # a coin missing for at most this many days counts at its last market cap (a data gap, not a fall)


def total_market_cap_daily(
    coin_daily: pl.DataFrame, coin_ids: list[str] | None = None, carry_days: int = CARRY_DAYS
) -> pl.DataFrame:
    """``date, total_mcap_usd, coins, coins_carried`` per close day (optionally over a subset of coins).

    The total sums each coin's positive market cap that day; a coin with no reading that day whose last reading
    is at most ``carry_days`` days earlier counts at that last reading (``coins_carried`` of them; ``coins`` counts
    the coins with a reading). So a one-day data gap of a large coin is not a fall and a recovery of the total,
    while a coin that stops being reported leaves it after ``carry_days``. Only days with at least one reading
    get a total. Carrying looks only backwards: the value of a day never depends on later data.
    """
    df = coin_daily if coin_ids is None else coin_daily.filter(pl.col("coin_id").is_in(pl.Series(coin_ids).implode()))
    obs = (
        df.filter(pl.col("market_cap_usd") > 0)
        .select("date", "coin_id", "market_cap_usd")
        .sort(["coin_id", "date", "market_cap_usd"])
        .unique(["date", "coin_id"], keep="last", maintain_order=True)  # one reading per coin and day: the largest
    )
    days = obs.select("date").unique()
    parts = [obs.with_columns(pl.lit(False).alias("carried"))]
    if carry_days > 0 and obs.height:
        nxt = obs.with_columns(pl.col("date").shift(-1).over("coin_id").alias("next"))
        for k in range(1, carry_days + 1):
            c = nxt.with_columns((pl.col("date") + pl.duration(days=k)).alias("d")).filter(
                pl.col("next").is_null() | (pl.col("d") < pl.col("next"))
            )
            parts.append(c.select(pl.col("d").alias("date"), "coin_id", "market_cap_usd", pl.lit(True).alias("carried")))
    allrows = pl.concat(parts).join(days, on="date", how="semi")
    return (
        allrows.group_by("date")
        .agg(
            # summing the sorted values makes the float total independent of row order
            pl.col("market_cap_usd").sort().sum().alias("total_mcap_usd"),
            (~pl.col("carried")).sum().cast(pl.Int32).alias("coins"),
            pl.col("carried").sum().cast(pl.Int32).alias("coins_carried"),
        )
        .sort("date")
    )


def _value_on(daily: pl.DataFrame, day) -> float | None:
    hit = daily.filter(pl.col("date") == day)
    return hit["total_mcap_usd"][0] if hit.height else None


def weekly_total_market_cap(total_daily: pl.DataFrame, week: str) -> pl.DataFrame:
    """One ``weekly_total_market_cap`` row from the daily totals (``total_market_cap_daily``)."""
    w = week_window(week)
    d = as_of(total_daily, week)
    a, b = _value_on(d, w.open_day), _value_on(d, w.close_day)
    inside = d.filter(pl.col("date").is_between(w.open_day, w.close_day))["total_mcap_usd"]

    def count(col: str, day) -> int | None:
        if col not in d.columns:
            return None
        hit = d.filter(pl.col("date") == day)
        return int(hit[col][0]) if hit.height else None

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
        },
        schema={
            "week_start": pl.Date, "open_day": pl.Date, "close_day": pl.Date, "mcap_open_usd": pl.Float64,
            "mcap_close_usd": pl.Float64, "change_pct": pl.Float64, "mcap_low_usd": pl.Float64,
            "mcap_high_usd": pl.Float64, "coins_open": pl.Int32, "coins_close": pl.Int32,
            "coins_carried_open": pl.Int32, "coins_carried_close": pl.Int32,
        },
    )


def level_crossings(total_daily: pl.DataFrame, week: str, step: float = 0.5e12, base: float = 0.0) -> pl.DataFrame:
    """Every level ``base + k*step`` crossed between consecutive daily closes from the open to the close.

    A level L is crossed down between closes ``x0 >= L > x1`` and up when ``x0 < L <= x1``; every crossing is a
    row (a level crossed twice in the week, the closing day included, has two). For each crossing,
    ``last_other_side_day`` is the last close strictly before the crossing day that was already on the new side
    (below L for 'down', at or above L for 'up'): "below $3T for the first time since <that day>". Gaps in the
    daily series are bridged (consecutive available closes are compared).
    """
    w = week_window(week)
    d = as_of(total_daily, week).filter(pl.col("total_mcap_usd").is_not_null()).sort("date")
    dates = d["date"].to_list()
    vals = d["total_mcap_usd"].to_numpy()
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
            rows.append((w.monday, float(level), direction, dates[i], dates[prior[-1]] if prior.size else None))
    return pl.DataFrame(
        rows,
        schema={
            "week_start": pl.Date, "level_usd": pl.Float64, "direction": pl.String, "crossed_on": pl.Date,
            "last_other_side_day": pl.Date,
        },
        orient="row",
    ).sort(["crossed_on", "level_usd"])
