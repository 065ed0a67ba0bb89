"""The event-log benchmark (bench/instance_storage.py) runs on both instance storages and its figures add up.

Two days of a few daily assets, once on SQLite and once on Postgres with DAGSTER_EVENT_BATCH_SIZE, in process.
No timing is asserted: the figures live in bench/RESULTS.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import instance_storage as bench
from pipelines.services import Postgres, ServiceUnavailable

# the registry and one partitioned venue pull: a partitioned output of two days, so two materializations in a batch
ASSETS = ["raw_coingecko_markets", "coin_registry", "raw_binance_premium_index", "raw_okx_derivatives"]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    try:
        Postgres(tmp_path_factory.mktemp("probe"))
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    return bench.measure(
        days=2,
        perps=2,
        repeats=1,
        batch_size=100,
        mode_names=["sqlite", "postgres, batched"],
        inprocess=True,
        assets=ASSETS,
    )


def test_both_storages_write_the_same_events_and_every_write_is_timed(result: dict) -> None:
    runs = {r["mode"]: r for r in result["runs"]}
    assert set(runs) == {"sqlite", "postgres, batched"}
    sqlite, pg = runs["sqlite"], runs["postgres, batched"]
    assert sqlite["storage_class"] == "SqliteEventLogStorage"
    assert pg["storage_class"] == "PostgresEventLogStorage"
    assert sqlite["by_type"] == pg["by_type"]
    # one materialization per day of the partitioned pull, plus the unpartitioned assets' one each
    assert sqlite["by_type"]["ASSET_MATERIALIZATION"] == 2 + 3
    for r in (sqlite, pg):
        # every event the run wrote passed through the timed storage calls and through handle_new_event
        assert r["store_events"] == r["events"] == sum(r["by_type"].values())
        assert r["handle_calls"] == r["events"]
        assert 0 < r["store_seconds"] <= r["handle_seconds"] <= r["run_seconds"]
        assert r["days"] == 2
    # the batch size reaches Dagster: the two days' materializations go to store_event_batch together
    assert sqlite["store_batch_calls"] == 0
    assert pg["store_batch_calls"] >= 1
    assert pg["store_event_calls"] < pg["events"]
    assert pg["pg_server_cpu_seconds"] > 0
    assert "DAGSTER_EVENT_BATCH_SIZE" not in os.environ


def test_section_reports_every_mode_the_ratio_and_the_event_types(result: dict) -> None:
    text = bench.section(result, "python -m bench.instance_storage --days 2")
    assert text.startswith(bench.HEADING)
    assert "| sqlite |" in text and "| postgres, batched |" in text
    assert "| postgres, batched / sqlite |" in text
    assert "| ASSET_MATERIALIZATION | 5 |" in text
    assert "the same counts in every run of every mode" in text


def test_splice_replaces_the_section_in_place(tmp_path: Path) -> None:
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\n## 5. Profile\n\nx\n\n_Benchmark wall time: 1 s._\n")
    bench.splice(md, f"{bench.HEADING}\n\nfirst\n")
    bench.splice(md, f"{bench.HEADING}\n\nsecond\n")
    text = md.read_text()
    assert text.count(bench.HEADING) == 1
    assert "second" in text and "first" not in text
    assert text.index("## 5. Profile") < text.index(bench.HEADING) < text.index("_Benchmark wall time")
    # make bench rewrites RESULTS.md and puts the section back as it was read
    kept = bench.read_section(md)
    assert kept == f"{bench.HEADING}\n\nsecond\n"
    md.write_text("# Results\n\n_Benchmark wall time: 2 s._\n")
    bench.splice(md, kept)
    assert bench.read_section(md) == kept


def test_server_cpu_seconds_reads_a_live_process() -> None:
    assert bench.server_cpu_seconds(os.getpid()) > 0
