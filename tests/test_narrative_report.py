"""The narrative: facts, rendering from hand-made tables, claim check, immutability, escaping, lineage."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from assets.report import build_report
from pipelines.lake_files import state_paths
from pipelines.narrative.claims import check_claims
from pipelines.narrative.data import BY_NAME, from_frames
from pipelines.narrative.facts import derive_facts, our_view
from pipelines.narrative.render import render_week
from pipelines.warehouse import Warehouse
from tests._narrative_frames import WEEK, WEEKS, frames, write_weeks

HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
W = WEEK.isoformat()


def keys(facts) -> list[str]:
    return [f.key for f in facts]


def lake(tmp_path: Path, fr: dict[str, pl.DataFrame], skip: tuple[str, ...] = ()) -> Warehouse:
    return write_weeks(Warehouse(tmp_path / "wh"), fr, skip)


# ---- facts ---------------------------------------------------------------------------------------------------
def test_facts_are_ranked_and_sourced() -> None:
    facts, gaps = derive_facts(from_frames(W, frames()))
    assert keys(facts)[:3] == ["mcap_crossing", "crypto_worst_streak", "funding_turned_negative"]
    cross = facts[0]
    assert cross.sentence.md() == "The total market cap closed below $3T for the first time since April 2025."
    assert any(
        s.startswith("weekly_mcap_crossings/week=2025-11-17#last_other_side_day[") for s in cross.sources
    )
    assert (
        facts[1]
        .sentence.md()
        .startswith("Crypto was the worst-performing major asset class for the 3rd consecutive")
    )
    flip = facts[2]
    assert flip.numbers == {"funding": -0.00002, "prev": 0.00008}
    assert "weekly_leverage/week=2025-11-10#funding_8h_mean" in flip.sources  # the previous week's partition
    assert all(f.sources for f in facts if f.sentence.nums())
    view = [f.sentence.md() for f in our_view(facts, from_frames(W, frames()))]
    assert 2 <= len(view) <= 4
    assert "flushed" in view[1] or "reset" in view[1]
    assert all(p.holds() for f in our_view(facts, from_frames(W, frames())) for p in f.predicates)


def test_first_week_of_history_makes_no_comparison() -> None:
    facts, _ = derive_facts(from_frames(WEEKS[0].isoformat(), frames()))
    k = keys(facts)
    assert "funding_level" in k and not any(x.startswith("funding_turned") for x in k)
    assert not any(x.startswith("mcap_lowest") or x.startswith("mcap_highest") for x in k)


def test_missing_inputs_produce_no_fact_and_a_gap() -> None:
    fr = frames()
    fr["weekly_leverage"] = fr["weekly_leverage"].with_columns(
        pl.when(pl.col("week_start") == WEEK)
        .then(None)
        .otherwise(pl.col("funding_8h_mean"))
        .alias("funding_8h_mean")
    )
    fr["weekly_volume"] = fr["weekly_volume"].with_columns(pl.lit(None, pl.Float64).alias("spot_volume_usd"))
    del fr["weekly_btc_volatility"]
    wd = from_frames(W, fr)
    facts, gaps = derive_facts(wd)
    assert not any(k.startswith(("funding_turned", "funding_level", "spot_", "btc_rv")) for k in keys(facts))
    assert any(g.startswith("Funding") for g in gaps) and any(g.startswith("Spot volume") for g in gaps)
    r = render_week(wd)
    assert "weekly_btc_volatility: no partition for week=2025-11-17" in r.markdown
    assert "Spot volume totalled" not in r.markdown and "realized volatility (hourly" not in r.markdown


def test_tied_sectors_are_named_together() -> None:
    fr = frames()
    fr["weekly_index_returns"] = fr["weekly_index_returns"].with_columns(
        pl.when(pl.col("index") == "gaming").then(-14.94).otherwise(pl.col("return_pct")).alias("return_pct")
    )
    facts, _ = derive_facts(from_frames(W, fr))
    worst = next(f for f in facts if f.key == "worst_sector")
    assert worst.numbers["indices"] == ["gaming", "l2"]
    assert worst.sentence.md() == "Gaming and Layer 2 (L2) were the weakest sectors (-14.9%)."


def test_wording_follows_the_sign() -> None:
    fr = frames()
    fr["weekly_leverage"] = fr["weekly_leverage"].with_columns(
        (-pl.col("funding_8h_mean")).alias("funding_8h_mean")
    )
    facts, _ = derive_facts(from_frames(W, fr))
    assert "funding_turned_positive" in keys(facts) and "funding_turned_negative" not in keys(facts)


# ---- rendering ---------------------------------------------------------------------------------------------
def test_report_has_the_model_shape_and_spans() -> None:
    r = render_week(from_frames(W, frames()))
    md = r.markdown
    assert md.startswith("# Crypto Falls Below $3T, Worst Major Asset Class for the 3rd Straight Week\n")
    assert "*Market Update – November 24, 2025*" in md
    order = [
        "## Macro Update",
        "## Market Internal Structure",
        "## Correlations and Volatility",
        "## Sector Performance",
        "## Our View",
        "## Data gaps",
    ]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order)
    assert "- Layer 2 (L2) down 14.9% (12 members)" in md
    assert (
        "Unemployment rate: the October 2025 observation is missing" in md
        and "Non-farm payrolls (change): +119k (September 2025)" in md
    )
    assert (
        '<span class="num" data-source="weekly_index_returns/week=2025-11-17#return_pct[index=l2]"' in r.html
    )
    assert (
        r.html.count("<svg") == 6
        and "http://" not in r.html.replace("http://www.w3.org", "")
        and "<script" not in r.html
    )
    assert "https://" not in r.html


def test_hostile_names_are_escaped() -> None:
    for name in HOSTILE:
        r = render_week(from_frames(W, frames((name, name))))
        assert "<script>" not in r.html and "<img" not in r.html
        assert "&lt;" in r.html
        # Markdown: every '<' from the name is backslash-escaped, so a Markdown viewer shows it as text
        assert not re.search(r"(?<!\\)<", r.markdown)
        assert "\\<" in r.markdown


# ---- claim check, immutability, lineage --------------------------------------------------------------------
def test_claim_check_passes_then_catches_tampering(tmp_path: Path) -> None:
    wh = lake(tmp_path, frames())
    r = render_week(from_frames(W, frames()))
    assert all(c.ok for c in check_claims(wh, W, r.markdown, r.claims, r.texts))
    tampered = r.markdown.replace("down 14.9%", "down 13.9%")
    bad = [c for c in check_claims(wh, W, tampered, r.claims, r.texts) if not c.ok]
    assert {c.problem for c in bad} == {"not in the text", "number in the text without a claim"}
    extra = r.markdown.replace("## Our View\n", "## Our View\n\nBTC could reach 250k.\n")
    assert [c.printed_text for c in check_claims(wh, W, extra, r.claims, r.texts) if not c.ok] == ["250"]
    # the lake changes after rendering: the printed value no longer matches a fresh query
    lev = (
        frames()["weekly_leverage"]
        .filter(pl.col("week_start") == WEEK)
        .with_columns(pl.lit(150e9).alias("oi_close_usd"))
    )
    wh.write_partition(BY_NAME["weekly_leverage"], W, lev)
    bad = [c for c in check_claims(wh, W, r.markdown, r.claims, r.texts) if not c.ok]
    assert [c.label for c in bad] == ["weekly_leverage/week=2025-11-17#oi_close_usd"]
    assert bad[0].expected_text == "$150.0B" and bad[0].printed_text == "$135.0B"


def test_rerender_is_byte_identical_and_changes_make_a_version(tmp_path: Path) -> None:
    wh = lake(tmp_path, frames(), skip=("weekly_volume",))
    r1, man, p1, _ = build_report(wh, W)
    week_dir = wh.reports_dir / W
    first = {p.relative_to(week_dir): p.read_bytes() for p in week_dir.rglob("*") if p.is_file()}
    r2, _, p2, _ = build_report(wh, W)
    assert (p1.version, p1.new, p2.version, p2.new) == (1, True, 1, False)
    assert first == {p.relative_to(week_dir): p.read_bytes() for p in week_dir.rglob("*") if p.is_file()}
    assert "weekly_volume: no partition for week=2025-11-17" in (week_dir / "report.md").read_text()
    # lineage: every input partition with its sha256, the code version, facts with sources
    assert {"code", "inputs", "facts", "claims"} <= set(man)
    assert all(re.fullmatch(r"[0-9a-f]{64}", i["sha256"]) for i in man["inputs"])
    assert {"weekly_market_summary", "weekly_leverage"} <= {i["table"] for i in man["inputs"]}
    assert all(f["sources"] for f in man["facts"] if f["key"] != "crypto_worst")
    # the volume table arrives: a new version, with a diff
    wh.write_partition(
        BY_NAME["weekly_volume"], W, frames()["weekly_volume"].filter(pl.col("week_start") == WEEK)
    )
    r3, _, p3, _ = build_report(wh, W)
    assert (p3.version, p3.new) == (2, True)
    changes = (week_dir / "CHANGES.md").read_text()
    assert "Version 1 -> version 2" in changes and "+- Spot volume totalled $210.0B" in changes
    assert (week_dir / "versions" / "1" / "report.md").read_bytes() == first[Path("report.md")]
    assert (week_dir / "report.md").read_text() == r3.markdown
    assert json.loads((week_dir / "manifest.json").read_text())["week"] == W


def test_required_summary_missing_fails(tmp_path: Path) -> None:
    import dagster as dg

    wh = lake(tmp_path, frames(), skip=("weekly_market_summary",))
    with pytest.raises(dg.Failure, match="weekly_market_summary"):
        build_report(wh, W)


def test_report_refuses_to_publish_on_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    import assets.report as rep

    wh = lake(tmp_path, frames())
    real = rep.render_week

    def lying(wd, sources=None, *rest, **kw):
        r = real(wd, sources, *rest, **kw)
        r.markdown = r.markdown.replace("$135.0B", "$125.0B")
        return r

    monkeypatch.setattr(rep, "render_week", lying)
    with pytest.raises(dg.Failure, match="not published"):
        build_report(wh, W)
    assert not (wh.reports_dir / W / "report.md").exists()


def test_point_in_time_later_weeks_do_not_matter() -> None:
    fr = frames()
    later = {
        k: pl.concat(
            [v, v.filter(pl.col("week_start") == WEEK).with_columns(pl.col("week_start") + timedelta(days=7))]
        )
        for k, v in fr.items()
    }
    a = render_week(from_frames(W, fr))
    b = render_week(from_frames(W, later))
    assert a.markdown == b.markdown and a.html == b.html
    assert date.fromisoformat(W) == WEEK


def test_a_part_the_template_does_not_print_is_no_claim() -> None:
    """Found by the claim check on a demo week: a streak sentence carried last week's value without printing it."""
    from pipelines.narrative.pieces import Num, Phrase

    cur = Num(-0.0000019, "funding_bp", "weekly_leverage", "2026-10-19", "funding_8h_mean")
    prev = Num(-0.0000006, "funding_bp", "weekly_leverage", "2026-10-12", "funding_8h_mean")
    phrase = Phrase("Funding averaged {f} per 8h, negative for the second week.", {"f": cur, "prev": prev})
    assert phrase.nums() == [cur]


def _text_keyed(claim: dict) -> bool:
    """Whether every column of the claim's row key holds text in its table's schema."""
    from pipelines.schemas import TABLES

    types = {c.name: str(c.type) for c in TABLES[claim["table"]].columns}
    return all(types[k] == "string" for k in claim["where"])


def test_claims_read_from_one_query_per_table_week_equal_their_own_queries(tmp_path: Path) -> None:
    from pipelines.narrative.claims import rederive, row_key

    wh = lake(tmp_path, frames())
    r = render_week(from_frames(W, frames()))
    week_rows: dict = {}
    shared = [rederive(wh, c, week_rows) for c in r.claims]
    assert shared == [rederive(wh, c) for c in r.claims]
    assert len(week_rows) < len([c for c in r.claims if c["kind"] == "value"])  # fewer queries than figures
    keyed = next(
        c
        for c in r.claims
        if c["kind"] == "value"
        and c.get("where")
        and _text_keyed(c)
        and row_key(c["table"], c["where"]) is not None
    )
    assert any(c["kind"] != "value" for c in r.claims)  # own queries too
    ghost = {**keyed, "where": dict.fromkeys(keyed["where"], "no such row")}
    for rows in (week_rows, None):
        with pytest.raises(ValueError, match="0 rows"):
            rederive(wh, ghost, rows)


def test_claims_keyed_by_numbers_and_days_are_found_in_the_week_read_as_their_own_queries_find_them(
    tmp_path: Path,
) -> None:
    """A value claim whose row key holds an integer (a mover's position), a day or a float (a crossing's day and
    level) is picked from the one read of its table's week, as its own ``= CAST(? AS ...)`` query picks it: the
    same value, a key no row holds fails with "0 rows" both ways, and a key in a form Python does not write
    (``"01"``, ``"1.50"``, a day without its zeros) is left to the query, which reads it as DuckDB casts it."""
    from pipelines.narrative import claims as claims_mod
    from pipelines.narrative.claims import rederive, row_key

    wh = lake(tmp_path, frames())
    r = render_week(from_frames(W, frames()))
    typed = [c for c in r.claims if c["kind"] == "value" and c.get("where") and not _text_keyed(c)]
    assert {c["table"] for c in typed} == {"weekly_movers", "weekly_mcap_crossings"}
    week_rows: dict = {}
    for c in typed:
        assert row_key(c["table"], c["where"]) is not None
        assert rederive(wh, c, week_rows) == rederive(wh, c)
    queries = []
    real_query = Warehouse.query
    mover = next(c for c in typed if c["table"] == "weekly_movers")
    plain = rederive(wh, mover)

    def counted(self, sql, *args, **kwargs):
        queries.append(sql)
        return real_query(self, sql, *args, **kwargs)

    Warehouse.query = counted  # type: ignore[method-assign]
    try:
        rederive(wh, mover, week_rows)  # the week's rows are read already: no query
        assert queries == []
        padded = {**mover, "where": {**mover["where"], "position": f"0{mover['where']['position']}"}}
        assert row_key("weekly_movers", padded["where"]) is None
        assert rederive(wh, padded, week_rows) == plain  # DuckDB reads "01" as 1
        assert len(queries) == 1
    finally:
        Warehouse.query = real_query  # type: ignore[method-assign]
    ghost = {**mover, "where": {**mover["where"], "position": 999}}
    for rows in (week_rows, None):
        with pytest.raises(ValueError, match="0 rows"):
            rederive(wh, ghost, rows)
    position = {c.name: c.type for c in claims_mod.TABLES["weekly_movers"].columns}["position"]
    assert claims_mod._key_value(position, "1") == 1
    for t, text in (
        (pa.date32(), "2025-1-5"),
        (pa.float64(), "1.50"),
        (pa.float64(), "nan"),
        (position, "+1"),
    ):
        assert claims_mod._key_value(t, text) is claims_mod._ASK


def test_predicates_read_their_operands_from_one_query_per_table_week(tmp_path: Path) -> None:
    """The statements' check gives what each operand's own query gives, in fewer queries; a statement whose
    operand's row is gone still fails, named."""
    from pipelines.narrative import claims as claims_mod
    from pipelines.narrative.predicates import check_predicates

    wh = lake(tmp_path, frames())
    r = render_week(from_frames(W, frames()))
    assert r.predicates
    queries: list[str] = []
    real_query = wh.query

    def counted(sql, params=None):
        queries.append(sql)
        return real_query(sql, params)

    wh.query = counted  # type: ignore[method-assign]
    shared = check_predicates(wh, W, r.predicates)
    n_shared = len(queries)
    own = [[claims_mod.rederive(wh, o["claim"]) for o in d["operands"] if "claim" in o] for d in r.predicates]
    n_own = len(queries) - n_shared
    assert all(p.ok for p in shared)
    assert [
        [v for v, o in zip(p.values, d["operands"], strict=True) if "claim" in o]
        for p, d in zip(shared, r.predicates, strict=True)
    ] == own
    assert n_shared < n_own, (n_shared, n_own)
    gone = [
        {
            **d,
            "operands": [
                {**o, "claim": {**o["claim"], "partition": "2020-01-06"}} if "claim" in o else o
                for o in d["operands"]
            ],
        }
        for d in r.predicates
    ]
    assert not any(p.ok for p in check_predicates(wh, W, gone))


def test_the_blocking_check_keeps_the_report_steps_results_while_the_files_are_unchanged(
    tmp_path: Path,
) -> None:
    """The report step checks every claim, statement and second derivation before publishing; the run's blocking
    check takes those results instead of checking again, only while the lake, the gap ledger and the week's
    report are the files the step checked."""
    import os

    import assets.report as rep

    wh = lake(tmp_path, frames())
    config = (str(wh.root), "")
    published, (_, state, verified) = rep.publish_weeks([W], config)[W]
    assert published and state is not None and len(verified) > 10
    assert verified == rep.week_claim_results(wh, W)  # what a fresh check of the published files finds

    rep._VERIFIED[(str(wh.root), W)] = (state, verified)  # as the asset leaves it for its check
    assert rep.results_still_true(wh, [W]) == {W: verified}
    assert rep.results_still_true(wh, [W]) == {}  # taken once

    for changed in (next(wh.lake_dir.rglob("data.parquet")), wh.reports_dir / W / "report.md"):
        rep._VERIFIED[(str(wh.root), W)] = (state, verified)
        st = changed.stat()
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # rewritten since the step read it
        assert rep.results_still_true(wh, [W]) == {}  # checked again
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
    rep._VERIFIED[(str(wh.root), W)] = (None, verified)  # the lake changed while the step read it
    assert rep.results_still_true(wh, [W]) == {}


def test_a_lake_written_while_the_report_step_read_it_is_checked_again(tmp_path, monkeypatch) -> None:
    import assets.report as rep

    wh = lake(tmp_path, frames())
    real = rep.build_report

    def meanwhile(source, week):
        out = real(source, week)
        part = frames()["weekly_leverage"].filter(pl.col("week_start") == WEEK)
        wh.write_partition(
            BY_NAME["weekly_leverage"], W, part.with_columns(pl.lit(1.0).alias("oi_close_usd"))
        )
        return out  # another run rewrote a table the report read

    monkeypatch.setattr(rep, "build_report", meanwhile)
    published, (_, state, verified) = rep.publish_weeks([W], (str(wh.root), ""))[W]
    assert published and all(c.ok for c in verified)  # the step's own check, of the lake as it read it
    rep._VERIFIED[(str(wh.root), W)] = (state, verified)  # as the asset leaves it for its check
    assert rep.results_still_true(wh, [W]) == {}  # not the lake the step began reading: checked again
    assert any(not c.ok for c in rep.week_claim_results(wh, W))  # and finds the rewritten figure


def test_a_file_gone_between_listing_and_stat_is_not_a_failure(tmp_path, monkeypatch) -> None:
    """Another writer's temp file listed and then renamed into place: the report step's listing of the lake
    leaves it out instead of failing the report."""
    import os
    from types import SimpleNamespace

    import assets.report as rep
    import pipelines.lake_files as lake_files

    wh = lake(tmp_path, frames())
    tmp = wh.lake_dir / "weekly_leverage" / ".tmp-1-x.parquet"
    tmp.write_bytes(b"half")

    def stat(path, **kw):
        if ".tmp-" in str(path):
            raise FileNotFoundError(path)  # listed, then renamed away before its stat
        return os.stat(path, **kw)

    monkeypatch.setattr(lake_files, "os", SimpleNamespace(scandir=os.scandir, stat=stat, fspath=os.fspath))
    lake_part, _ = rep.lake_state(wh)
    assert lake_part and any(path.endswith("/data.parquet") for path in state_paths(lake_part))
    assert not any(".tmp-" in path for path in state_paths(lake_part))
    monkeypatch.undo()
    assert any(".tmp-" in path for path in state_paths(rep.lake_state(wh)[0]))  # there, it is listed


def test_the_lake_state_changes_with_every_change_a_reader_could_see(tmp_path) -> None:
    """What the report step takes before it reads the lake and its blocking check compares it with: a partition
    rewritten, edited in place, removed or added changes it; reading does not, nor a temp file being written."""
    import shutil

    from pipelines.lake_files import lake_state

    wh = lake(tmp_path, frames())
    first = lake_state(wh.lake_dir)
    assert lake_state(wh.lake_dir) == first
    data = {p for p in state_paths(first) if p.endswith("/data.parquet")}
    assert data == {str(p) for p in wh.lake_dir.glob("*/*/data.parquet")}
    # one stat a partition: its file's, not its folder's (a temp file in it, which no reader opens, is no change)
    assert not any(Path(p).is_dir() and Path(p).parent.parent == wh.lake_dir for p in state_paths(first))
    some = Path(next(iter(sorted(data)))).parent
    (some / ".tmp-1-x.parquet").write_bytes(b"half")
    assert lake_state(wh.lake_dir) == first
    (some / ".tmp-1-x.parquet").unlink()

    part = frames()["weekly_leverage"].filter(pl.col("week_start") == WEEK)
    wh.write_partition(BY_NAME["weekly_leverage"], W, part)  # the same rows, a new file
    rewritten = lake_state(wh.lake_dir)
    assert rewritten != first
    target = next(iter(sorted(data)))
    with open(target, "ab") as f:
        f.write(b"\0")  # edited in place
    edited = lake_state(wh.lake_dir)
    assert edited != rewritten
    shutil.rmtree(Path(target).parent)
    removed = lake_state(wh.lake_dir)
    assert removed != edited and not any(p.startswith(str(Path(target).parent)) for p in state_paths(removed))
    wh.write_partition(BY_NAME["weekly_leverage"], "2025-01-06", part)
    assert lake_state(wh.lake_dir) != removed
