"""Clean builders over a range: the split of a range's rows into days (``pipelines.clean.derivatives._split``), and
a builder's independent part computed beside the step over a long range."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from pipelines import week_processes
from pipelines.clean import coingecko as clean_coingecko
from pipelines.clean import in_order
from pipelines.clean.coingecko import build_coin_daily, latest_registry
from pipelines.clean.derivatives import _split, build_funding_rates, build_open_interest
from pipelines.schemas import FUNDING_RATES, PERP_VOLUME_DAILY
from pipelines.sources.http import PayloadError
from pipelines.warehouse import Warehouse


def _funding(rows: list[tuple]) -> pl.DataFrame:
    """(day, exchange, symbol, hour of the day, rate) rows as a funding frame with its ``day``."""
    return pl.DataFrame(
        {
            "day": [r[0] for r in rows],
            "exchange": [r[1] for r in rows],
            "symbol": [r[2] for r in rows],
            "funding_time": [
                datetime(r[0].year, r[0].month, r[0].day, r[3], tzinfo=timezone.utc) for r in rows
            ],
            "funding_rate": [r[4] for r in rows],
            "interval_hours": pl.Series([8] * len(rows), dtype=pl.Int32),
            "raw_file": [f"raw/{r[1]}.json" for r in rows],
        }
    ).with_columns(pl.col("funding_time").cast(pl.Datetime("ms", "UTC")))


def test_each_day_its_rows_sorted_by_the_key_the_first_of_a_key_kept_and_an_empty_day_typed() -> None:
    """Every day equals its own rows (a key's first row across the frames, in their order) sorted by the table's
    key: the one sort of the range gives what a sort a day gives; a day without rows is an empty frame with the
    table's columns and types."""
    d1, d2, d3 = date(2025, 11, 17), date(2025, 11, 18), date(2025, 11, 19)
    first = _funding(
        [
            (d2, "okx", "BTCUSDT", 8, 0.3),
            (d1, "bybit", "ETHUSDT", 0, 0.1),
            (d1, "binance", "BTCUSDT", 16, 0.2),
        ]
    )
    second = _funding(
        [
            (d1, "binance", "BTCUSDT", 16, 9.9),
            (d2, "binance", "ETHUSDT", 0, 0.4),
            (d1, "binance", "BTCUSDT", 0, 0.5),
        ]
    )
    frames = [f.select("day", *FUNDING_RATES.column_names) for f in (first, second)]
    out = _split([f.clone() for f in frames], FUNDING_RATES, [d1, d2, d3])
    rows = pl.concat(frames, how="vertical_relaxed").unique(
        ["day", *FUNDING_RATES.key], keep="first", maintain_order=True
    )
    for d in (d1, d2):
        alone = rows.filter(pl.col("day") == d).drop("day").sort(list(FUNDING_RATES.key))
        assert out[d].equals(alone), d
    assert out[d1]["funding_rate"].to_list() == [
        0.5,
        0.2,
        0.1,
    ]  # the first 16:00 reading (0.2), not the later 9.9
    assert out[d3].is_empty() and out[d3].columns == FUNDING_RATES.column_names
    assert out[d3].schema == out[d1].schema


def test_a_key_without_time_is_sorted_within_each_day() -> None:
    """A table whose key has no time (daily perpetual volume: exchange, symbol) sorts each day by it, though the
    same key recurs on every day."""
    days = [date(2025, 11, 17) + timedelta(days=i) for i in range(3)]
    rows = [
        (d, ex, sym) for d in reversed(days) for ex, sym in (("okx", "B"), ("binance", "Z"), ("binance", "A"))
    ]
    frame = pl.DataFrame(
        {
            "day": [r[0] for r in rows],
            "exchange": [r[1] for r in rows],
            "symbol": [r[2] for r in rows],
            "quote_volume_usd": [float(i) for i in range(len(rows))],
            "raw_file": ["raw/x.json"] * len(rows),
        }
    ).select("day", *PERP_VOLUME_DAILY.column_names)
    out = _split([frame], PERP_VOLUME_DAILY, days)
    for d in days:
        assert out[d].select("exchange", "symbol").rows() == [
            ("binance", "A"),
            ("binance", "Z"),
            ("okx", "B"),
        ]


@pytest.mark.parametrize(
    ("build", "part", "rows"),
    [
        (lambda wh, days: build_open_interest(wh, days), "perp_closes", pl.col("exchange") == "bybit"),
        (
            lambda wh, days: (build_funding_rates(wh, days), None),
            "_venue_funding",
            pl.col("exchange") == "binance",
        ),
        (lambda wh, days: build_coin_daily(wh, latest_registry(wh), days), "_batches_rows", pl.lit(True)),
    ],
    ids=["open_interest", "funding_rates", "coin_daily"],
)
def test_a_part_computed_by_another_process_gives_the_same_days(
    week_from_november, monkeypatch, build, part, rows
):
    """Over a long range a clean builder's independent part (open interest: the Binance closes that price
    Bybit's readings; funding: Binance's settlements; coin_daily: the first half of the charts) is computed by the
    kept pool's process beside the rest of the step (``week_processes.alongside``): the same frames, in the same
    order, as computed in the step."""
    wh = Warehouse(week_from_november.warehouse)
    days = [date(2025, 11, 1) + timedelta(days=k) for k in range(23)]
    monkeypatch.setattr(clean_coingecko, "CHARTS_PER_PARSE", 3)  # several batches in each half of the charts
    # the extra: open interest's Bybit readings left unpriced, coin_daily's coins missing a day
    frames, extra = build(wh, days)
    parts: list[str] = []
    alongside = week_processes.alongside

    def recorded(fn, *args, days):
        parts.append(fn.__name__)
        return alongside(fn, *args, days=days)

    monkeypatch.setattr(week_processes, "_splits_days", lambda days: True)
    monkeypatch.setattr(week_processes, "alongside", recorded)
    frames_beside, extra_beside = build(wh, days)
    assert parts == [part] and extra_beside == extra
    assert list(frames_beside) == days and all(frames_beside[d].equals(frames[d]) for d in days)
    assert sum(frames[d].filter(rows).height for d in days) > 0


def test_the_first_failing_chart_is_named_when_half_the_charts_are_parsed_beside(
    week_from_november, tmp_path, monkeypatch
) -> None:
    """coin_daily's charts parsed in two halves, the first by another process: a chart of the first half that
    cannot be cleaned is the error raised, as parsing them in order raises it, also when the second half has one."""
    import shutil

    root = tmp_path / "warehouse"
    shutil.copytree(week_from_november.warehouse, root, ignore=shutil.ignore_patterns("lake", "reports"))
    shutil.copytree(week_from_november.warehouse / "lake" / "coin_registry", root / "lake" / "coin_registry")
    wh = Warehouse(root)
    registry = latest_registry(wh)
    charts = sorted((root / "raw" / "coingecko" / "market_chart_range").glob("coin=*/*[0-9]Z.json"))
    by_coin = {c.parent.name.split("=", 1)[1]: c for c in charts}
    coins = [c for c in registry["coin_id"].to_list() if c in by_coin]
    first, last = by_coin[coins[0]], by_coin[coins[-1]]
    for broken in (first, last):
        broken.write_text("{not json")
    days = [date(2025, 11, 1) + timedelta(days=k) for k in range(23)]
    monkeypatch.setattr(week_processes, "_splits_days", lambda days: True)
    monkeypatch.setattr(clean_coingecko, "CHARTS_PER_PARSE", 3)  # several batches in each half
    with pytest.raises(PayloadError, match=re.escape(str(first.relative_to(root)))):
        build_coin_daily(wh, registry, days)


def test_a_part_beside_and_the_rest_are_joined_in_order_and_the_first_error_wins() -> None:
    """``in_order``: the part's frames then the rest's; when both fail, the part's error (the earlier work), as
    computing them one after the other raises it; the rest's error when only it fails."""

    def fails(message: str):
        def raise_it() -> list:
            raise ValueError(message)

        return raise_it

    assert in_order(lambda: [1, 2], lambda: [3]) == [1, 2, 3]
    with pytest.raises(ValueError, match="the part"):
        in_order(fails("the part"), fails("the rest"))
    with pytest.raises(ValueError, match="the rest"):
        in_order(lambda: [1], fails("the rest"))
    with pytest.raises(ValueError, match="the part"):
        in_order(fails("the part"), lambda: [3])


def _metrics_zip(symbol: str, day: date, oi: float) -> bytes:
    """A daily archive ``metrics`` file of ``symbol`` for ``day``: a reading every 30 minutes."""
    import io
    import zipfile

    from pipelines.sources.binance_vision import METRICS_COLUMNS

    rows = [
        f"{day} {h:02d}:{m:02d}:00,{symbol},{oi},{oi * 100},1.1,1.2,1.3,0.9"
        for h in range(24)
        for m in (0, 30)
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{symbol}-metrics-{day}.csv", ",".join(METRICS_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return buf.getvalue()


def test_the_archive_files_read_by_both_its_tables_are_parsed_once_for_the_same_files(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``open_interest`` and ``long_short_ratio`` read the same archive files: the second read of the same files
    for the same days gives the first's frames without parsing them again; a newer recording of a day, or other
    days, are parsed again and give their own rows."""
    from pipelines.clean import derivatives as cd
    from pipelines.pulls.derivatives import BINANCE_METRICS, Page, store_pull

    wh = Warehouse(tmp_path)
    days = [date(2025, 6, 2) + timedelta(days=k) for k in range(3)]

    def store(symbol: str, day: date, oi: float, fetched_hours: int) -> None:
        fetched = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(hours=fetched_hours)
        page = Page(_metrics_zip(symbol, day, oi), {"fetched_at": fetched.isoformat(), "status": 200}, "zip")
        store_pull(wh, BINANCE_METRICS, symbol, day, day, [page])

    for symbol in ("BTCUSDT", "ETHUSDT"):
        for d in days:
            store(symbol, d, 10.0, 30)
    parsed: list[int] = []
    real = cd.parse_metrics_csvs
    monkeypatch.setattr(cd, "parse_metrics_csvs", lambda texts: (parsed.append(len(texts)), real(texts))[1])
    monkeypatch.setattr(cd, "_METRICS_KEPT", None)

    first = cd._metrics_frames(wh, days)
    assert parsed == [6] and first[0].height == 6 * 24  # the readings on the hour
    oi = cd.build_open_interest(wh, days)[0]
    long_short = cd.build_long_short(wh, days)
    assert parsed == [6]  # neither builder parsed the files again
    assert sum(f.height for f in oi.values()) == sum(f.height for f in long_short.values()) == 6 * 24
    assert cd._metrics_frames(wh, days)[0].equals(first[0])

    store("ETHUSDT", days[1], 20.0, 40)  # a newer recording of one day
    again = cd._metrics_frames(wh, days)[0]
    assert parsed == [6, 6]
    newer = again.filter((pl.col("symbol") == "ETHUSDT") & (pl.col("day") == days[1]))
    assert newer["oi_base"].unique().to_list() == [20.0] and newer["raw_file"].n_unique() == 1
    assert again.filter(pl.col("oi_base") == 10.0).height == 5 * 24
    assert cd._metrics_frames(wh, days[:2])[0].height == 4 * 24 and parsed == [6, 6, 4]  # other days
