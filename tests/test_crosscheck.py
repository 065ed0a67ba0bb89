"""The second derivation (``pipelines.narrative.crosscheck``) agrees with the weekly tables on a synthetic week,
and blocks the report when a metric function is deliberately wrong, although the claim check (which re-reads the
weekly tables) passes."""

from __future__ import annotations

import shutil

import dagster as dg
import numpy as np
import polars as pl
import pytest

import assets.weekly.macro as weekly_macro
import assets.weekly.summary as weekly_summary
import pipelines.metrics.leverage as leverage
import pipelines.metrics.sectors as sectors
import pipelines.metrics.volatility as volatility
import tests._week_pipeline as pipe
from assets.report import build_report
from pipelines.narrative import crosscheck as cc
from pipelines.warehouse import Warehouse
from tests._weekly_world import HISTORY, WEEK, write_week_lake


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("crosscheck")
    write_week_lake(root)
    return root


@pytest.fixture
def wh(base, tmp_path) -> Warehouse:
    shutil.copytree(base, tmp_path / "wh")
    return Warehouse(tmp_path / "wh")


def test_second_derivation_agrees_on_a_clean_week(wh) -> None:
    run = pipe.run_week(wh, WEEK)
    assert run.blocked == []
    figs = {f[0]: f[5] for f in cc.figures(wh, WEEK)}
    assert len(figs) >= 15 and all(v is not None for v in figs.values()), figs
    assert cc.crosscheck(wh, WEEK) == []
    rendered, _, _, _ = build_report(wh, WEEK)  # the report asset's own path publishes
    assert "Total crypto market cap" in rendered.markdown


def test_second_derivation_agrees_on_every_earlier_week(wh) -> None:
    for w in HISTORY:
        assert cc.crosscheck(wh, w) == [], w
    assert [cc.worst_streak_weeks(wh, w) for w in [*HISTORY, WEEK]] == [0, 0, 1, 2]


def test_a_figures_table_value_from_the_weeks_rows_is_its_own_querys(wh, monkeypatch) -> None:
    """Every figure's weekly-table value picked from its table's rows of the week (one query a table) equals
    the value of the figure's own query, also for a week the tables do not have; the week's rows are read once
    per table."""
    pipe.run_week(wh, WEEK)
    for week in [*HISTORY, WEEK, "2024-01-01"]:
        week_rows: dict = {}
        figures = cc.figures(wh, week)
        assert any(where == cc.INDEX_WHERE for _, _, _, where, *_ in figures)
        for _, table, column, where, params, *_ in figures:
            own = cc._table_value(wh, table, column, week, where, params)
            assert cc._table_value(wh, table, column, week, where, params, week_rows) == own, (table, column)
        assert sorted(table for table, _ in week_rows) == sorted({f[1] for f in figures})
    queries: list[str] = []
    query = Warehouse.query
    monkeypatch.setattr(
        Warehouse, "query", lambda self, sql, *a, **k: queries.append(sql) or query(self, sql, *a, **k)
    )
    assert cc.crosscheck(wh, WEEK) == []
    reads = [q for q in queries if q.startswith("SELECT * FROM")]
    assert len(reads) == len({f[1] for f in cc.figures(wh, WEEK)}) and not any(
        q.startswith('SELECT "') for q in queries
    )


def test_water_fill_caps_and_matches_pro_rata_when_feasible() -> None:
    w = cc.water_fill(np.array([100.0, 50.0, 10.0, 5.0, 5.0]))
    assert w.max() <= 0.25 + 1e-12 and abs(w.sum() - 1) < 1e-12
    assert np.allclose(cc.water_fill(np.array([1.0, 1.0, 1.0])), 1 / 3)
    m = np.array([3.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    assert np.allclose(cc.water_fill(m), m / m.sum())


def _uncapped(mcaps, cap=0.25, max_iter=100):
    m = np.where(np.isfinite(mcaps) & (mcaps > 0), mcaps, 0.0)
    return m / m.sum() if m.sum() else m


def _ddof0(stamps, r, ends, window, per_year, min_frac=0.9, step=None):
    out = ORIG_RV(stamps, r, ends, window, per_year, min_frac, step)
    n = np.searchsorted(stamps, ends, side="right") - np.searchsorted(stamps, ends - window, side="right")
    return out * np.sqrt(np.maximum(n - 1, 1) / np.maximum(n, 1))


ORIG_RV = volatility.rolling_rv


def _equal_weighted(df, by):
    return df.group_by(by).agg(
        pl.col("rate_8h").mean().alias("funding_8h"),
        pl.lit("oi").alias("weighting"),
        pl.len().cast(pl.Int32).alias("settlements"),
    )


def _summary_drops_last_coin(open_rows, close_rows, *a):
    return ORIG_SUMMARY(open_rows, close_rows.sort("coin_id").head(close_rows.height - 1), *a)


ORIG_SUMMARY = weekly_summary.summarize
ORIG_RANK = weekly_macro.weekly_crypto_rank


def _streak_off_by_one(levels, week, *a, **k):
    return ORIG_RANK(levels, week, *a, **k).with_columns(pl.col("worst_streak_weeks") + 1)


@pytest.mark.parametrize(
    ("target", "attr", "bug", "figure"),
    [
        (sectors, "capped_weights", _uncapped, "index return"),
        (volatility, "rolling_rv", _ddof0, "BTC 7-day realized volatility"),
        (leverage, "_weighted", _equal_weighted, "mean funding per 8h"),
        (weekly_summary, "summarize", _summary_drops_last_coin, "total market cap change %"),
        (weekly_macro, "weekly_crypto_rank", _streak_off_by_one, "crypto worst-asset streak"),
    ],
)
def test_a_wrong_metric_function_blocks_the_report(wh, monkeypatch, target, attr, bug, figure) -> None:
    monkeypatch.setattr(target, attr, bug)
    # rendered even if a table check blocks first: what is tested is the second derivation's finding
    run = pipe.run_week(wh, WEEK, even_if_blocked=True)
    claims = [b for b in run.blocked if b.startswith("report_claims_match_tables")]
    assert claims == []  # the claim check re-reads the (wrong) tables: it cannot see the bug
    second = [b for b in run.blocked if b.startswith("crosscheck")]
    assert any(figure in b and f"week {WEEK}" in b and "second derivation" in b for b in second), run.blocked
    if target is not pipe:  # the report asset itself refuses to publish
        with pytest.raises(dg.Failure, match="second derivation disagrees"):
            build_report(wh, WEEK)


def test_a_long_streak_reads_a_window_and_counts_as_the_whole_history(tmp_path) -> None:
    """Crypto worst every week of the world (its market caps fall 19% a week): the streak grows by one a week
    past the first window of 8 weeks, and every week's count equals the one from the widest window
    (``MAX_STREAK`` weeks, the whole history here)."""
    from datetime import timedelta

    from tests._weekly_world import FIRST_DAY, falling_lake

    wh = falling_lake(tmp_path)
    mondays = [FIRST_DAY + timedelta(days=7 * i) for i in range(15)]
    streaks = [cc.worst_streak_weeks(wh, m.isoformat()) for m in mondays]
    assert streaks == [None, *range(1, 15)]  # the first week has no open: no return
    widest = [cc._worst_streak_within(wh, m, cc.MAX_STREAK)[0] for m in mondays]
    assert streaks == widest
    assert cc._worst_streak_within(wh, mondays[-1], 8) == (9, True)  # the first window (9 weeks) falls short


def test_a_week_with_too_few_classes_ranked_ends_the_streak_both_ways(tmp_path) -> None:
    """The falling world, with the S&P 500, the Nasdaq and 10-year yields missing through the week of the 7th
    Monday: that week and the next (whose open is that week's close) rank too few classes to be weeks crypto was
    known to be the worst, so the streak the weekly table counts and the second derivation's both restart after
    them, and agree week by week."""
    from datetime import timedelta

    from tests._weekly_world import FIRST_DAY, falling_lake

    mondays = [FIRST_DAY + timedelta(days=7 * i) for i in range(15)]
    hole = (mondays[6], mondays[6] + timedelta(days=6))

    def without_markets(df: pl.DataFrame) -> pl.DataFrame:
        gone = pl.col("series_id").is_in(["SP500", "NASDAQCOM", "DGS10"]) & pl.col("date").is_between(*hole)
        return df.filter(~gone)

    wh = falling_lake(tmp_path, without_markets)
    table = [weekly_macro.crypto_rank_in_window(wh, m.isoformat()).row(0, named=True) for m in mondays[1:]]
    ranked = [r["assets_ranked"] for r in table]
    assert (
        ranked[5] < weekly_macro.MIN_RANKED and ranked[6] < weekly_macro.MIN_RANKED
    )  # the 7th and 8th weeks
    assert all(n >= weekly_macro.MIN_RANKED for i, n in enumerate(ranked) if i not in (5, 6)), ranked
    expected = [1, 2, 3, 4, 5, 6, 1, 1, 2, 3, 4, 5, 6, 7]
    assert [r["worst_streak_weeks"] for r in table] == expected
    assert [cc.worst_streak_weeks(wh, m.isoformat()) for m in mondays[1:]] == expected


def test_a_zero_open_interest_reading_weighs_nothing_both_ways(wh) -> None:
    """Binance reports zero open interest for BTCUSDT at the 08:00 settlement of every day of the week (a venue's
    glitch). That is wrong data: the week's input rule blocks the report and names each row. Rendered all the
    same, the weekly table weighs those settlements with the reading before (``leverage._with_oi``) and the
    second derivation does too, so the two agree and the block is the input rule's alone."""
    from datetime import date, timedelta

    from pipelines.schemas import OPEN_INTEREST, WEEKLY_LEVERAGE

    monday = date.fromisoformat(WEEK)
    for day in (monday + timedelta(days=i) for i in range(7)):
        part = wh.read_partition(OPEN_INTEREST, day.isoformat())
        glitch = (
            (pl.col("exchange") == "binance")
            & (pl.col("symbol") == "BTCUSDT")
            & (pl.col("ts").dt.hour() == 8)
        )
        wh.write_partition(
            OPEN_INTEREST,
            day.isoformat(),
            part.with_columns(pl.when(glitch).then(0.0).otherwise("oi_usd").alias("oi_usd")),
        )
    run = pipe.run_week(wh, WEEK, even_if_blocked=True)
    assert len(run.blocked) == 7 and all("oi_usd = 0.0 (must be positive)" in b for b in run.blocked), (
        run.blocked
    )
    assert cc.crosscheck(wh, WEEK) == []
    row = wh.read_partition(WEEKLY_LEVERAGE, WEEK).row(0, named=True)
    assert row["funding_weighting"] == "oi" and row["funding_venues_without_oi"] is None
