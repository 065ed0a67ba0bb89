"""Report layer: the rendered weekly update, its manifest and versions, and the blocking claim check."""

import json
import os
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import dagster as dg
import polars as pl

from assets._meta import md_table
from assets.weekly.shape import weeks_failed
from pipelines import gaps as gaps_mod
from pipelines import lake_files, quality
from pipelines.calendar import WEEKLY, weeks_of_run
from pipelines.lake_files import file_identity
from pipelines.lake_snapshot import reads_for
from pipelines.narrative.claims import ClaimResult, check_claims
from pipelines.narrative.crosscheck import crosscheck
from pipelines.narrative.data import ALL_TABLES, MAY_BE_EMPTY, OPTIONAL, load_week
from pipelines.narrative.lineage import clean_inputs, manifest, sources_for, weekly_inputs
from pipelines.narrative.predicates import check_predicates
from pipelines.narrative.publish import publish
from pipelines.narrative.render import render_week
from pipelines.resources import WarehouseResource
from pipelines.schemas import FUNDING_RATES, OPEN_INTEREST, WEEKLY_MARKET_SUMMARY
from pipelines.week_processes import map_weeks


def source_gap_lines(wh, week: str, frames: dict[str, pl.DataFrame] | None = None) -> list[str]:
    """What the sources could not give for the week's seven days (the gap ledger, ``pipelines.gaps``), and which
    venues the week's funding and open interest come from when a venue is missing. ``frames``: the week's clean
    frames (``quality.week_frames``, read here when not given), whose days hold the week's."""
    first = date.fromisoformat(week)
    days = [first + timedelta(days=i) for i in range(7)]
    # a table with no partition has no venue; a partition that cannot be read fails the report
    frames = quality.week_frames(wh, week) if frames is None else frames
    in_week = {
        table: frames[table.name].filter(pl.col("date").is_between(days[0], days[-1]))
        for table in (FUNDING_RATES, OPEN_INTEREST)
        if table.name in frames
    }
    found = gaps_mod.gaps_for_days(wh, days)
    lines = gaps_mod.describe(found)
    derivative_gap = any(g.source in ("binance", "bybit", "okx") for g in found)
    if derivative_gap:
        for table, label in ((FUNDING_RATES, "Funding"), (OPEN_INTEREST, "Open interest")):
            venues = sorted(in_week[table]["exchange"].unique().to_list()) if table in in_week else []
            names = [gaps_mod.VENUE_LABELS.get(v, v) for v in venues]
            if not names:
                lines.append(f"{label}: no venue has data this week.")
            elif len(names) < 3:
                lines.append(f"{label} this week covers {', '.join(names)} only.")
            else:
                lines.append(f"{label} this week covers {', '.join(names)}.")
    lines += _symbol_holes(in_week.get(FUNDING_RATES), days)
    # a weekly table written empty because its inputs are missing (e.g. no BTC hourly bar with Binance blocked)
    for t in OPTIONAL:
        if t.name not in MAY_BE_EMPTY and wh.has_partition(t, week) and wh.read_partition(t, week).is_empty():
            lines.append(f"{t.name}: no rows for the week (its inputs are missing); its section is left out.")
    return lines


def _symbol_holes(funding: pl.DataFrame | None, days: list[date]) -> list[str]:
    """Perpetuals a venue settled funding for on some of the week's days but not on others (delisted, or an
    answer without rows) while the venue itself has more days: named, so a smaller average is not read as a move.
    ``funding``: the week's ``funding_rates`` rows (None: the table has no partition)."""
    if funding is None or funding.is_empty():
        return []
    seen = funding.select("exchange", "symbol", "date").unique()
    venue_days = seen.group_by("exchange").agg(pl.col("date").n_unique().alias("n"))
    rows = (
        seen.group_by("exchange", "symbol")
        .agg(pl.col("date").sort().alias("dates"), pl.len().alias("k"))
        .join(venue_days, on="exchange")
        .filter(pl.col("k") < pl.col("n"))
        .sort("exchange", "symbol")
        .select("exchange", "symbol", "dates")
    )
    out = []
    for ex, sym, dates in rows.iter_rows():
        lacking = [d.isoformat() for d in days if d not in set(dates)]
        span = lacking[0] if len(lacking) == 1 else f"{lacking[0]}..{lacking[-1]}"
        out.append(
            f"{gaps_mod.VENUE_LABELS.get(ex, ex)} {sym}: no funding settlements on {span} (delisted or no "
            "answer); the venue's other perpetuals are kept."
        )
    return out


def build_report(wh, week: str):
    """Load, render, check (fail closed) and publish one week; returns (rendered, manifest, published)."""
    if not wh.has_partition(WEEKLY_MARKET_SUMMARY, week):
        raise dg.Failure(
            f"report for {week}: weekly_market_summary has no partition for the week (it is required)"
        )
    wd, read = load_week(wh, week)
    clean = clean_inputs(wh, week)
    frames = quality.week_frames(wh, week)
    input_gaps = source_gap_lines(wh, week, frames) + quality.week_gaps(frames, week)
    rendered = render_week(wd, sources_for(wh, week, clean), input_gaps)
    verified = verify_report(
        wh, week, rendered.markdown, rendered.claims, rendered.texts, rendered.predicates
    )
    man = manifest(
        week,
        rendered.title,
        weekly_inputs(wh, read),
        clean,
        [f.as_dict() for f in rendered.facts],
        rendered.claims,
        sorted(rendered.charts),
        rendered.gaps,
    )
    man["texts"] = rendered.texts
    man["predicates"] = rendered.predicates
    man["sources_sha256"] = rendered.sources_sha256
    files = {
        "report.md": rendered.markdown.encode(),
        "report.html": rendered.html.encode(),
        "manifest.json": json.dumps(man, indent=1, sort_keys=True, default=str).encode(),
    }
    for name, (_, svg) in rendered.charts.items():
        files[f"charts/{name}.svg"] = svg.encode()
    published = publish(wh.reports_dir / week, week, files)
    return rendered, man, published, verified


def verify_report(wh, week: str, markdown: str, claims, texts, predicates) -> list[ClaimResult]:
    """Every claim, statement and headline figure of a week's report checked on the lake, failing closed
    (``dg.Failure`` naming what is wrong) before anything is published; the checks' results, as the blocking
    check ``report_claims_match_tables`` reports them."""
    # A figure that does not match a fresh query of the lake is never published.
    checked = check_claims(wh, week, markdown, claims, texts)
    wrong = [c for c in checked if not c.ok]
    if wrong:
        raise dg.Failure(
            f"report for {week} not published: {len(wrong)} figure(s) fail the claim check: "
            + "; ".join(
                f"{c.label} printed {c.printed_text!r}, expected {c.expected_text!r} ({c.problem})"
                for c in wrong[:20]
            )
        )
    # A judgment ("highest since", "did worst", "closed below", "supports the move") that the tables do not
    # support is never published; the failure names the sentence.
    judged = check_predicates(wh, week, predicates)
    false = [r for r in judged if not r.ok]
    if false:
        raise dg.Failure(
            f"report for {week} not published: {len(false)} statement(s) fail their predicate: "
            + "; ".join(map(str, false[:20]))
        )
    # A headline figure that a second, independent derivation from the clean lake disagrees with.
    disagree = crosscheck(wh, week)
    if disagree:
        raise dg.Failure(
            f"report for {week} not published: the second derivation disagrees: "
            + "; ".join(map(str, disagree))
        )
    return checked + _statement_results(judged)


def _statement_results(judged) -> list[ClaimResult]:
    return [ClaimResult("(statement) " + r.rule, "holds", r.sentence, True, r.ok, r.problem) for r in judged]


# What the report step found for each week it published, for the blocking check of the same run (in this
# process): {(warehouse root, week): (the files it checked, their results)}. The check uses the results only when
# the lake's partitions (``lake_state``), every file of the gap ledger, and the week's report and manifest are the
# ones the step checked (``file_identity``: inode, size, mtime and ctime), and the lake did not change while the
# step read it; otherwise it checks again. A warehouse on object storage is always checked again.
_VERIFIED: dict[tuple[str, str], tuple[tuple, list[ClaimResult]]] = {}


def _files_under(*tops) -> tuple:
    out = []
    for top in tops:
        for dirpath, _, names in os.walk(top):
            for name in names:
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue  # gone since the listing: another writer's temp file, renamed or swept
                out.append((dirpath, name, file_identity(st)))
    return tuple(sorted(out))


def lake_state(wh) -> tuple | None:
    """The state of the lake's partitions (``pipelines.lake_files.lake_state``) and of every file of the gap
    ledger (``None`` on object storage: not tracked)."""
    return None if wh.remote else (lake_files.lake_state(wh.lake_dir), _files_under(gaps_mod.ledger_dir(wh)))


def report_state(wh, week: str) -> tuple:
    return _files_under(wh.reports_dir / week)


def report_metadata(warehouse: WarehouseResource, wh, week: str, rendered, man, pub) -> dict:
    """The metadata of one week's report materialization: where it is, its version, facts and gaps."""
    out_dir = wh.reports_dir / week
    html_path = out_dir / "report.html"
    missing = [t.name for t in OPTIONAL if t.name in {g.split(":")[0] for g in rendered.gaps}]
    served = warehouse.reports_url.rstrip("/") if warehouse.reports_url else None
    return {
        "title": rendered.title,
        "headline": rendered.headline,
        "report": dg.MetadataValue.md(rendered.markdown_with_inline_charts()),
        "html": dg.MetadataValue.url(html_path.as_uri()),
        **(
            {
                "served": dg.MetadataValue.url(f"{served}/{week}/report.html"),
                "all_reports": dg.MetadataValue.url(f"{served}/"),
            }
            if served
            else {}
        ),
        "html_path": dg.MetadataValue.path(str(html_path)),
        "markdown_path": dg.MetadataValue.path(str(out_dir / "report.md")),
        "version": pub.version,
        "version_path": dg.MetadataValue.path(str(pub.directory)),
        "new_version": pub.new,
        "content_sha256": pub.content_sha256,
        "claims": len(rendered.claims),
        "facts": dg.MetadataValue.md(
            md_table(
                pl.DataFrame(
                    [{"key": f.key, "priority": f.priority, "text": f.sentence.md()} for f in rendered.facts]
                )
                if rendered.facts
                else pl.DataFrame(),
                40,
            )
        ),
        "missing_tables": ", ".join(missing) or "none",
        "data_gaps": dg.MetadataValue.md("\n".join(f"- {g}" for g in rendered.gaps) or "none"),
        "manifest_inputs": len(man["inputs"]),
        "code": dg.MetadataValue.json(man["code"]),
    }


@dg.asset(
    pool="asset_weekly_report",
    group_name="report",
    kinds={"python", "markdown", "html"},
    partitions_def=WEEKLY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[t.name for t in ALL_TABLES],
    description=(
        "The weekly market update (Markdown and self-contained HTML with inline SVG charts) under "
        "reports/<week>/, versioned under versions/<n>/ with CHANGES.md; manifest.json lists every input "
        "partition (sha256), the raw pulls behind the clean partitions, the code version, the facts and every "
        "claim with its source. Only weekly_market_summary is required; a missing optional table is listed "
        "under Data gaps. A range of weeks (a backfill) is one run: each week is published only when its own "
        "checks pass, and the run fails naming the weeks that did not."
    ),
)
def weekly_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    weeks = sorted(context.partition_keys)
    failed: dict[str, BaseException] = {}
    # a range of weeks: runs of weeks built in parallel processes (pipelines/week_processes.py)
    root = str(warehouse.get().root)
    for week, (published, outcome) in sorted(map_weeks(publish_weeks, weeks, _unbound(warehouse)).items()):
        if published:
            metadata, state, verified = outcome
            _VERIFIED[(root, week)] = (state, verified)  # for this run's blocking check, if it runs here
            context.add_asset_metadata(metadata, partition_key=week)
        elif len(weeks) == 1:
            raise dg.Failure(outcome)  # one week: its own failure, in full
        else:
            failed[week] = dg.Failure(outcome)
            context.log.error(f"week {week}: {outcome}")
    if failed:
        raise weeks_failed("weekly_report", failed, weeks)
    return dg.MaterializeResult()


def _unbound(warehouse: WarehouseResource) -> tuple[str, str]:
    """The warehouse resource's configuration, for another process (a resource does not pickle)."""
    return warehouse.root, warehouse.reports_url


def _rebound(config: tuple[str, str]) -> WarehouseResource:
    """The warehouse resource again from ``_unbound``'s configuration."""
    return WarehouseResource(root=config[0], reports_url=config[1])


def publish_weeks(weeks: list[str], config: tuple[str, str]) -> dict[str, tuple[bool, Any]]:
    """Each week's report built and published in turn, over one read of the lake (every table it reads is
    complete: the weekly steps ran before): ``{week: (True, (its materialization's metadata, the state of the
    files its checks read or None, the checks' results))}``, or ``(False, why it was not published)``.
    ``config``: the warehouse resource's (``_unbound``).

    The state is the lake's (and the gap ledger's) as it was before the read began, and the week's report as
    published; None on object storage. The run's blocking check takes the results only while the state is the
    same: a lake still as it was before the read began was not written during the read either (every change
    gives a file a new identity, ``pipelines.lake_files.file_identity``), so one state taken before the read
    stands for the read and everything since, and the lake is not listed a third time."""
    warehouse = _rebound(config)
    wh = warehouse.get()
    out: dict[str, tuple[bool, Any]] = {}
    before = lake_state(wh)
    with reads_for(wh, weeks, snapshot_from=1, keep=True) as source:
        for week in weeks:
            try:
                rendered, man, pub, verified = build_report(source, week)
            except dg.Failure as exc:
                out[week] = (False, exc.description)
                continue
            metadata = report_metadata(warehouse, wh, week, rendered, man, pub)
            state = None if before is None else (before, report_state(wh, week))
            out[week] = (True, (metadata, state, verified))
    return out


def week_claim_results(wh, week: str) -> list[ClaimResult]:
    """Every claim, second derivation and statement of ``week``'s published report, re-checked on the lake."""
    markdown = (wh.reports_dir / week / "report.md").read_text()
    man = json.loads((wh.reports_dir / week / "manifest.json").read_text())
    results = check_claims(wh, week, markdown, man["claims"], man.get("texts", []))
    results += [
        ClaimResult(
            d.figure, repr(d.second_value), repr(d.table_value), True, False, "second derivation disagrees"
        )
        for d in crosscheck(wh, week)
    ]
    # the judgments: each statement's predicate, re-evaluated on operands re-derived from the lake
    return results + _statement_results(check_predicates(wh, week, man.get("predicates", [])))


def claim_results(weeks: list[str], config: tuple[str, str]) -> dict[str, list[ClaimResult]]:
    """``week_claim_results`` of each week, over one read of the lake (``config``: ``_unbound``)."""
    with reads_for(_rebound(config).get(), weeks, snapshot_from=1, keep=True) as source:
        return {week: week_claim_results(source, week) for week in weeks}


def results_still_true(wh, weeks: list[str]) -> dict[str, list[ClaimResult]]:
    """The report step's own results for those of ``weeks`` whose checked files are unchanged (``_VERIFIED``)."""
    kept = {week: _VERIFIED.pop((str(wh.root), week), (None, [])) for week in weeks}
    if all(state is None for state, _ in kept.values()):
        return {}
    lake = lake_state(wh)
    return {
        week: verified
        for week, (state, verified) in kept.items()
        if lake is not None and state == (lake, report_state(wh, week))
    }


@dg.asset_check(
    asset=weekly_report,
    blocking=True,
    description="Every figure in the text equals a fresh query of the lake, every number in the text has a claim, and every qualitative statement's predicate holds on the lake.",
)
def report_claims_match_tables(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    weeks = weeks_of_run(context.run.tags)
    # The weeks this process's report step just checked keep its results while the files it read are unchanged;
    # the others are checked again as the report step built them: runs of weeks in parallel processes, each over
    # one read of the lake as it is now.
    by_week = results_still_true(warehouse.get(), weeks)
    todo = [w for w in weeks if w not in by_week]
    if todo:
        by_week |= map_weeks(claim_results, todo, _unbound(warehouse))
    results: list[ClaimResult] = []
    for week in sorted(by_week):
        found = by_week[week]
        results += [replace(c, label=f"{week}: {c.label}") for c in found] if len(weeks) > 1 else found
    bad = [c for c in results if not c.ok]
    table = pl.DataFrame(
        {
            "claim": [c.label for c in results],
            "printed": [c.printed_text for c in results],
            "expected": [c.expected_text for c in results],
            "ok": [c.ok for c in results],
            "problem": [c.problem for c in results],
        }
    ).sort("ok")
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={
            "claims": len(results),
            "mismatches": len(bad),
            **(
                {"weeks_with_mismatches": ", ".join(sorted({c.label.split(":")[0] for c in bad})) or "none"}
                if len(weeks) > 1
                else {}
            ),
            "detail": dg.MetadataValue.md(md_table(table, 40)),
        },
    )
