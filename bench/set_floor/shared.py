"""What several of the floor's modules derive the same way: the weeks' open and close days, the registry snapshot
each week takes, each snapshot's eligible coins (and index tags), and the tracked coins' daily total market cap
(derived once for a lake and shared by the modules that read it, ``Lake.derived``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import polars as pl

from pipelines.metrics.market import CARRY_DAYS, SHARE_TOP_N
from pipelines.metrics.universe import _EXCLUDED_PATTERNS, EXCLUDED_CATEGORIES


def week_days(mondays: Iterable[date]) -> pl.DataFrame:
    """``week_start, open_day, close_day`` of each week: the Sunday whose close opens it and its own Sunday."""
    return pl.DataFrame({"week_start": list(mondays)}, schema={"week_start": pl.Date}).with_columns(
        open_day=pl.col("week_start") - pl.duration(days=1),
        close_day=pl.col("week_start") + pl.duration(days=6),
    )


def consecutive_weeks(first: date, count: int) -> pl.DataFrame:
    """``week_days`` of ``count`` consecutive weeks from the Monday ``first``."""
    return week_days(first + timedelta(days=7 * i) for i in range(count))


def pct(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Percent change from ``a`` to ``b`` (``pipelines.metrics.pit.pct``: null when either is null or ``a`` is
    not positive)."""
    return pl.when(a > 0).then((b / a - 1.0) * 100.0)


def week_snapshots(weeks: pl.DataFrame, registry: pl.DataFrame) -> pl.DataFrame:
    """``week_start, snapshot``: the registry snapshot each week of ``weeks`` (``week_start, close_day``) takes,
    as ``assets.weekly.shape.registry_as_of`` picks it: the last in name order of those taken on or before its
    close day, else the first in name order (weeks x snapshots: a few thousand rows at most)."""
    name = pl.col("snapshot")
    snaps = registry.select(name.unique()).with_columns(
        pl.coalesce(
            name.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False),
            name.str.slice(0, 8).str.strptime(pl.Date, "%Y%m%d", strict=False),
        ).alias("snap_day")
    )
    taken = (
        weeks.select("week_start", "close_day")
        .join(snaps, how="cross")
        .filter(pl.col("snap_day") <= pl.col("close_day"))
        .group_by("week_start")
        .agg(name.max())
    )
    return (
        weeks.select("week_start")
        .join(taken, on="week_start", how="left")
        .with_columns(name.fill_null(snaps["snapshot"].min()))
    )


def registry_flags(registry: pl.DataFrame, tags: dict[str, Iterable[str]] | None = None) -> pl.DataFrame:
    """Per ``(snapshot, coin_id)``: ``eligible`` (no row of the coin in the snapshot carries an excluded category,
    exactly or by pattern; a coin without any category is eligible) and, for each of ``tags``
    (``{name: categories}``), ``tag_<name>`` (a row of the coin carries one of the categories)."""
    cats = pl.col("categories").cast(pl.List(pl.String))
    excluded = cats.list.eval(
        pl.element().is_in(list(EXCLUDED_CATEGORIES))
        | pl.element().str.contains_any(list(_EXCLUDED_PATTERNS))
    ).list.any()
    tagged = [
        cats.list.eval(pl.element().is_in(list(c))).list.any().fill_null(False).alias(f"tag_{n}")
        for n, c in (tags or {}).items()
    ]
    return (
        registry.select("snapshot", "coin_id", excluded.fill_null(False).alias("excluded"), *tagged)
        .group_by("snapshot", "coin_id")
        .agg(pl.col("excluded").any(), *(pl.col(f"tag_{n}").any() for n in (tags or {})))
        .with_columns(eligible=~pl.col("excluded"))
        .drop("excluded")
    )


def eligible_coins(registry: pl.DataFrame) -> pl.DataFrame:
    """``snapshot, coin_id`` of every eligible coin of every snapshot (``registry_flags``)."""
    return registry_flags(registry).filter(pl.col("eligible")).select("snapshot", "coin_id")


def daily_totals(lake) -> pl.DataFrame:
    """``date, total_mcap_usd, coins, coins_carried, top_mcap_usd, top_coins`` for every day of ``coin_daily``
    with a reading: each coin's largest positive market cap that day, or its last reading of the ``CARRY_DAYS``
    days before when it has none that day (``total_market_cap_daily``). A day's total only looks backwards, so a
    week keeps the days up to its close. Derived once for the lake (``Lake.derived``)."""
    return lake.derived("daily_totals", lambda: _daily_totals(lake["coin_daily"]))


def _daily_totals(cd: pl.DataFrame) -> pl.DataFrame:
    obs = (
        cd.lazy()
        .filter(pl.col("market_cap_usd") > 0)
        .group_by("date", "coin_id")
        .agg(pl.col("market_cap_usd").max())
        .sort("coin_id", "date")
        .with_columns(pl.col("date").shift(-1).over("coin_id").alias("next"))
        .collect()
    )
    parts = [obs.select("date", "market_cap_usd", pl.lit(False).alias("carried"))]
    for k in range(1, CARRY_DAYS + 1):  # the reading carried k days, up to the coin's next reading
        day = pl.col("date") + timedelta(days=k)
        parts.append(
            obs.filter(pl.col("next").is_null() | (day < pl.col("next"))).select(
                day.alias("date"), "market_cap_usd", pl.lit(True).alias("carried")
            )
        )
    mcap = pl.col("market_cap_usd")
    return (
        pl.concat(parts)
        .join(obs.select(pl.col("date").unique()), on="date", how="semi")  # only days with a reading
        .group_by("date")
        .agg(
            mcap.sort().sum().alias("total_mcap_usd"),
            (~pl.col("carried")).sum().cast(pl.Int32).alias("coins"),
            pl.col("carried").sum().cast(pl.Int32).alias("coins_carried"),
            mcap.sort(descending=True).head(SHARE_TOP_N).sort().sum().alias("top_mcap_usd"),
            pl.len().clip(upper_bound=SHARE_TOP_N).cast(pl.Int32).alias("top_coins"),
        )
        .sort("date")
    )
