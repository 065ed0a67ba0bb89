"""data.binance.vision client: zip + CHECKSUM verification, missing days, CSV quirks."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, date, datetime

import polars as pl
import pytest

from pipelines.emulator.server import Fault
from pipelines.sources import binance_vision as bv
from pipelines.sources.dedupe import PAGE, ConflictingDuplicates
from pipelines.sources.http import PayloadError
from tests.conftest import SOURCES_NOW, emulator_client

NOW = SOURCES_NOW  # the shared emulator's clock (tests/conftest.py, fixture `emu`)


@pytest.fixture(autouse=True)
def _good_checksums(emu):
    yield
    emu.vision_bad_checksums.clear()


@pytest.fixture
def client(emu):
    yield from emulator_client(emu, bv.BinanceVisionClient, "BINANCE_VISION_BASE_URL")


def test_metrics_day_is_a_verified_zip(client):
    blob = client.metrics_day("BTCUSDT", date(2025, 11, 20))
    assert zipfile.ZipFile(io.BytesIO(blob)).namelist() == ["BTCUSDT-metrics-2025-11-20.csv"]
    assert client.metrics_day("BTCUSDT", date(2025, 11, 20)) == blob  # deterministic bytes
    text = bv.read_zip_csv(blob)
    assert text.splitlines()[1].startswith("2025-11-20 00:00:00,BTCUSDT,")
    df = bv.parse_metrics_csv(text)
    assert df.height == 288 and df.schema["ts"] == pl.Datetime("ms", "UTC")
    assert df["ts"][0] == datetime(2025, 11, 20, tzinfo=UTC)
    assert (df["oi_usd"] / df["oi_base"]).is_between(50_000, 200_000).all()


def test_blank_ratio_cells_become_null(client):
    nulls = 0
    for d in range(1, 11):
        blob = client.metrics_day("ETHUSDT", date(2025, 10, d))
        if blob:
            df = bv.parse_metrics_csv(bv.read_zip_csv(blob))
            nulls += df.select(
                pl.col("top_account_ratio", "top_position_ratio", "long_short_ratio").null_count()
            ).sum_horizontal()[0]
            assert df["oi_usd"].null_count() == 0
    assert nulls > 0


def test_missing_days_and_unpublished_files_are_none(client, emu):
    days = [date(2025, 9, d) for d in range(1, 31)]
    missing = [d for d in days if client.metrics_day("ETHUSDT", d) is None]
    assert 0 < len(missing) < 5
    assert client.metrics_day("BTCUSDT", date(2025, 12, 1)) is None  # today's file is not out yet
    assert client.funding_month("BTCUSDT", 2025, 12) is None  # month not over


def test_checksum_mismatch_raises(client, emu):
    path = "/data/futures/um/daily/metrics/SOLUSDT/SOLUSDT-metrics-2025-11-03.zip"
    emu.vision_bad_checksums.add(path)
    with pytest.raises(bv.ChecksumError, match="sha256 mismatch"):
        client.metrics_day("SOLUSDT", date(2025, 11, 3))


def test_corrupted_body_fails_checksum(client, emu):
    emu.inject(Fault(api="binance_vision", path=r"fundingRate-2025-10\.zip$", kind="invalid_json"))
    with pytest.raises(bv.ChecksumError):
        client.funding_month("BTCUSDT", 2025, 10)


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "truncated"])
def test_transient_faults_are_retried(client, emu, kind):
    emu.inject(Fault(api="binance_vision", path=r"\.zip$", kind=kind, times=1, retry_after=0, delay=1.0))
    blob = client.klines_day("ETHUSDT", "1h", date(2025, 11, 2))
    assert bv.parse_klines_csv(bv.read_zip_csv(blob)).height == 24


def test_funding_month(client, emu):
    df = bv.parse_funding_csv(bv.read_zip_csv(client.funding_month("BTCUSDT", 2025, 10)), "BTCUSDT")
    assert df.height == 31 * 3 and set(df["interval_hours"]) == {8}
    assert (df["funding_time"].dt.minute() == 0).all() and df["funding_time"].dt.millisecond().max() == 0


def test_klines_header_only_in_newer_files(client):
    old = bv.read_zip_csv(client.klines_day("BTCUSDT", "1h", date(2025, 2, 1)))
    new = bv.read_zip_csv(client.klines_day("BTCUSDT", "1h", date(2025, 11, 1)))
    assert old.split(",")[0].isdigit() and new.startswith("open_time,")
    a, b = bv.parse_klines_csv(old), bv.parse_klines_csv(new)
    assert a.height == b.height == 24 and a.columns == b.columns
    assert a["open_time"][0] == datetime(2025, 2, 1, tzinfo=UTC)


def test_drifted_csv_raises():
    with pytest.raises(PayloadError):
        bv.parse_metrics_csv("time,symbol\n2025-01-01 00:00:00,BTCUSDT\n")
    with pytest.raises(PayloadError):
        bv.read_zip_csv(b"not a zip")
    bad_time = ",".join(bv.METRICS_COLUMNS)
    with pytest.raises(PayloadError):
        bv.parse_metrics_csv(bad_time + "\n1704067200000,BTCUSDT,1,2,3,4,5,6\n")


def test_checksum_line_names_other_file(emu):
    import httpx

    class T(httpx.BaseTransport):
        def handle_request(self, request):
            blob = b"PK\x05\x06" + b"\x00" * 18
            if request.url.path.endswith(".CHECKSUM"):
                return httpx.Response(
                    200, content=f"{hashlib.sha256(blob).hexdigest()}  OTHER.zip\n".encode()
                )
            return httpx.Response(200, content=blob)

    with bv.BinanceVisionClient("https://data.binance.vision", transport=T()) as c:
        with pytest.raises(bv.ChecksumError, match="OTHER.zip"):
            c.fetch_verified("/data/x/BTCUSDT-metrics-2025-01-01.zip")


# ---- literal samples from the reference sheet ---------------------------------------------------------------
def test_reference_rows():
    header = ",".join(bv.METRICS_COLUMNS)
    m = bv.parse_metrics_csv(
        header + "\n2025-08-01 00:05:00,1000000BOBUSDT,28094099.0000000000000000,"
        "1608949.0497300000000000,1.40508806,2.00440300,1.67633929,1.51837000\n"
    )
    assert m["ts"][0] == datetime(2025, 8, 1, 0, 5, tzinfo=UTC) and m["oi_base"][0] == 28094099.0
    assert m["long_short_ratio"][0] == 1.67633929
    k = bv.parse_klines_csv(
        "1704067200000,42314.00,42603.20,42289.60,42503.50,8459.477,1704070799999,"
        "359196345.08716,88278,4687.976,199033806.82405,0\n"
    )
    assert k["open_time"][0] == datetime(2024, 1, 1, tzinfo=UTC) and k["trades"][0] == 88278
    us = bv.parse_klines_csv("1735689600000000,1,2,0.5,1.5,10,1735693199999999,15,3,5,7.5,0\n")
    assert us["open_time"][0] == datetime(2025, 1, 1, tzinfo=UTC)
    f = bv.parse_funding_csv(
        "calc_time,funding_interval_hours,last_funding_rate\n1780272000001,8,0.00005703\n", "BTCUSDT"
    )
    assert (
        f["funding_time"][0] == datetime.fromtimestamp(1780272000, UTC) and f["funding_rate"][0] == 0.00005703
    )
    assert f["interval_hours"][0] == 8
    line = "bf673f3d10804a951e8bac56dd2473486f113025971d43ebe5258ec40f9bfeb3  BTCUSDT-1h-2024-01.zip"
    assert bv._CHECKSUM.match(line + "\n")


def test_metrics_read_column_wise_equal_the_row_reader(client, monkeypatch):
    """The column-wise reader gives the row-by-row reader's frame, blanks and all; a file that is not the plain
    case (a cell that is no number, a ragged row, no header) still fails naming what is wrong."""
    texts = [
        bv.read_zip_csv(blob)
        for sym, d in (("BTCUSDT", 20), ("ETHUSDT", 3), ("ETHUSDT", 7))
        if (blob := client.metrics_day(sym, date(2025, 10, d)))
    ]
    assert texts and all(bv._metrics_columns([t]) is not None for t in texts)
    column_wise = [bv.parse_metrics_csv(t) for t in texts]
    monkeypatch.setattr(bv, "_metrics_columns", lambda texts: None)
    assert all(
        a.equals(bv.parse_metrics_csv(t), null_equal=True) for a, t in zip(column_wise, texts, strict=True)
    )
    monkeypatch.undo()
    lines = texts[0].splitlines()
    bad_cell = "\n".join([*lines[:5], lines[5].replace(",", ",12x", 3).replace(",12x", ",", 2), *lines[6:]])
    with pytest.raises(PayloadError, match="not a number: '12x"):
        bv.parse_metrics_csv(bad_cell + "\n")
    with pytest.raises(PayloadError, match="row has 7 cells"):
        bv.parse_metrics_csv("\n".join([*lines[:3], lines[3].rsplit(",", 1)[0], *lines[4:]]) + "\n")
    with pytest.raises(PayloadError, match="unexpected header"):
        bv.parse_metrics_csv("\n".join(lines[1:]) + "\n")


def test_metrics_files_parsed_together_equal_each_alone(client, monkeypatch):
    """``parse_metrics_csvs``: each file's rows are its ``parse_metrics_csv`` rows, in the files' order, with the
    file's place; a file that is not the plain case (here a cell that is no number, a repeated key) still fails
    naming what is wrong, as it does alone; the same row in two files is each file's own."""
    texts = [
        bv.read_zip_csv(blob)
        for sym, d in (("BTCUSDT", 20), ("ETHUSDT", 3), ("ETHUSDT", 7))
        if (blob := client.metrics_day(sym, date(2025, 10, d)))
    ]
    with monkeypatch.context() as m:  # plain files: read together, never one by one
        m.setattr(bv, "parse_metrics_csv", lambda text: pytest.fail("parsed one by one"))
        together = bv.parse_metrics_csvs([texts[0], texts[1], texts[0], texts[2]])
    for page, text in enumerate([texts[0], texts[1], texts[0], texts[2]]):
        alone = bv.parse_metrics_csv(text)
        assert together.filter(pl.col(PAGE) == page).drop(PAGE).equals(alone, null_equal=True)
    assert together[PAGE].to_list() == sorted(together[PAGE].to_list())
    lines = texts[1].splitlines()
    bad_cell = "\n".join([*lines[:5], lines[5].replace(",", ",12x", 3).replace(",12x", ",", 2), *lines[6:]])
    with pytest.raises(PayloadError, match="not a number: '12x"):
        bv.parse_metrics_csvs([texts[0], bad_cell + "\n"])
    conflicting = lines[1].rsplit(",", 1)[0] + ",9.99"  # the first row's key again, another value
    with pytest.raises(ConflictingDuplicates, match="Binance archive payload"):
        bv.parse_metrics_csvs([texts[0], "\n".join([*lines, conflicting]) + "\n"])
    empty = bv.parse_metrics_csvs([])
    assert empty.is_empty() and empty.columns == together.columns
