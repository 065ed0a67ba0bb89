"""Raw responses -> clean daily rows. Pure functions over stored files; no network."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

import polars as pl

from pipelines.clean import beside, in_order
from pipelines.pulls.coingecko import stored_chart_pulls
from pipelines.pulls.recorded import choose_pulls
from pipelines.schemas import COIN_DAILY, COIN_REGISTRY, GLOBAL_MARKET_CAP
from pipelines.sources.coingecko import CHART, parse_market_chart, parse_market_charts
from pipelines.sources.http import PayloadError
from pipelines.warehouse import Warehouse


def closes(points: pl.DataFrame, by: tuple[str, ...] = ()) -> pl.DataFrame:
    """The daily closes in a parsed market chart: for each day D, the first point in [D+1 00:00, D+1 01:00).

    Daily-granularity answers put it exactly on midnight; hourly and 5-minutely ones a few seconds or minutes
    after. Any other point (e.g. the live, non-midnight last point of a daily answer) is never used as a close.
    Returns ``day`` (the day that closed), ``ts``, ``price``, ``market_cap``, ``total_volume``, and the ``by``
    columns, one close per day for each of their values (several charts parsed together).
    """
    midnight = pl.col("ts").dt.truncate("1d")
    return (
        points.filter(pl.col("price").is_not_null() & ((pl.col("ts") - midnight) < pl.duration(hours=1)))
        .with_columns((midnight.dt.date() - pl.duration(days=1)).cast(pl.Date).alias("day"))
        .sort("ts")
        .unique([*by, "day"], keep="first", maintain_order=True)
    )


def _uncleanable(wh: Warehouse, coin_id: str, relpath: str, exc: Exception) -> PayloadError:
    params = wh.raw_meta(wh.root / relpath).get("params", {})
    return PayloadError(
        f"stored response {relpath} cannot be cleaned ({exc})",
        endpoint=f"/coins/{coin_id}/market_chart/range",
        params=params,
        status=None,
    )


# Charts parsed per pass: most of the per-chart cost gone, and the decoded bodies of a long backfill (a chart a
# coin, each the whole history) never all in memory at once.
CHARTS_PER_PARSE = 50


def _chart_rows(wh: Warehouse, charts: list[dict], empty: pl.DataFrame) -> pl.DataFrame:
    """The clean rows (with ``day``) of ``charts`` (each its coin, raw file and the days taken from it), parsed
    in one pass; a chart that cannot be cleaned is named by its raw file."""
    bodies = []
    for chart in charts:
        try:
            bodies.append(json.loads((wh.root / chart["raw_file"]).read_bytes()))
        except ValueError as exc:
            raise _uncleanable(wh, chart["coin_id"], chart["raw_file"], exc) from exc
    try:
        points = closes(parse_market_charts(bodies), by=(CHART,))
    except (ValueError, PayloadError):
        # the charts are independent: the first that fails alone is the one to name
        for body, chart in zip(bodies, charts, strict=True):
            try:
                closes(parse_market_chart(body))
            except (ValueError, PayloadError) as exc:
                raise _uncleanable(wh, chart["coin_id"], chart["raw_file"], exc) from exc
        raise
    wanted = (
        pl.DataFrame(
            charts,
            schema={
                **{k: empty.schema[k] for k in ("coin_id", "symbol", "name", "raw_file")},
                "day": pl.List(pl.Date),
            },
        )
        .with_row_index(CHART)
        .with_columns(pl.col(CHART).cast(pl.UInt32))
        .explode("day")
    )
    return points.join(wanted, on=[CHART, "day"], how="inner").select(
        "day",
        "coin_id",
        "symbol",
        "name",
        pl.col("price").alias("price_usd"),
        pl.col("market_cap").alias("market_cap_usd"),
        pl.col("total_volume").alias("volume_24h_usd"),
        pl.col("ts").dt.cast_time_unit("ms").alias("observed_at"),
        "raw_file",
    )


def _batches_rows(wh: Warehouse, batches: list[list[dict]], empty: pl.DataFrame) -> list[pl.DataFrame]:
    return [_chart_rows(wh, charts, empty) for charts in batches]


def build_coin_daily(
    wh: Warehouse, registry: pl.DataFrame, days: list[date]
) -> tuple[dict[date, pl.DataFrame], dict[date, list[str]]]:
    """Clean rows for ``days`` from the newest stored pull covering each (coin, day).

    Returns the frames per day and, per day, the coins with no usable point (not listed yet, or a gap in the
    answer): those are reported, never filled. The charts chosen are parsed ``CHARTS_PER_PARSE`` at a time; a
    chart that cannot be cleaned is named by its raw file.
    """
    empty = pl.from_arrow(COIN_DAILY.arrow_schema.empty_table())  # the table's columns and types, no rows
    chosen: list[dict] = []  # one per chart to read: the coin, its file and the days taken from it
    for coin_id, symbol, name in registry.select("coin_id", "symbol", "name").iter_rows():
        for pull, file_days in choose_pulls({coin_id: stored_chart_pulls(wh, coin_id)}, days).items():
            chosen.append(
                {
                    "coin_id": coin_id,
                    "symbol": symbol,
                    "name": name,
                    "raw_file": pull.files[0],
                    "day": file_days,
                }
            )
    batches = [chosen[i : i + CHARTS_PER_PARSE] for i in range(0, len(chosen), CHARTS_PER_PARSE)]
    # on a long range the first half of the batches is parsed by another process beside the second; a failing
    # chart of the first half is the error raised, as parsing them in order would raise it
    first_half = beside(wh, len(days), _batches_rows, wh, batches[: len(batches) // 2], empty)
    allrows = pl.concat(
        in_order(first_half, lambda: _batches_rows(wh, batches[len(batches) // 2 :], empty))
        or [empty.with_columns(pl.lit(None, pl.Date).alias("day")).select("day", *empty.columns)]
    )
    frames: dict[date, pl.DataFrame] = {}
    missing: dict[date, list[str]] = {}
    every = set(registry["coin_id"].to_list())
    parts = {k[0]: v for k, v in allrows.partition_by("day", as_dict=True).items()}
    for d in days:
        frame = parts[d].drop("day").sort("coin_id") if d in parts else empty
        frames[d] = frame
        missing[d] = sorted(every - set(frame["coin_id"].to_list()))
    return frames, missing


def registry_snapshots(wh: Warehouse) -> list[str]:
    return wh.partition_values(COIN_REGISTRY)


def snapshot_day(snapshot: str) -> date:
    """The UTC day a registry snapshot was taken. Its name is the pull's stamp, ``YYYYMMDDTHHMMSSZ``; names
    written by hand (tests, recordings) may be ISO dates, ``YYYY-MM-DD...``."""
    if re.match(r"\d{4}-\d{2}-\d{2}", snapshot):
        return date.fromisoformat(snapshot[:10])
    return datetime.strptime(snapshot[:8], "%Y%m%d").date()


def latest_registry(wh: Warehouse) -> pl.DataFrame:
    """The newest coin registry snapshot in the lake (coin ids, names, categories)."""
    snaps = registry_snapshots(wh)
    if not snaps:
        raise LookupError(
            f"no {COIN_REGISTRY.name} snapshot in the lake yet: materialize coin_registry first"
        )
    return wh.read_partition(COIN_REGISTRY, snaps[-1])


def parse_registry_snapshot(wh: Warehouse, snapshot: str) -> pl.DataFrame:
    """Rebuild the registry rows of one stored /coins/markets snapshot (top pages + category pages)."""
    from pipelines.pulls.coingecko import MARKETS_ENDPOINT, SOURCE
    from pipelines.sources.coingecko import parse_markets

    base = wh.raw_dir / SOURCE / MARKETS_ENDPOINT / f"snapshot={snapshot}"
    files = sorted(
        p
        for p in base.glob("*.json")
        if not p.name.endswith(".meta.json") and p.with_suffix(".meta.json").exists()
    )
    top = [json.loads(p.read_bytes()) for p in files if p.name.startswith("top-page-")]
    if not top:
        raise LookupError(f"snapshot {snapshot} has no /coins/markets pages")
    pulled_at = min(datetime.fromisoformat(wh.raw_meta(p)["fetched_at"]) for p in files)
    coins = parse_markets(top)
    members: dict[str, set[str]] = {}
    for p in files:
        if not p.name.startswith("category-"):
            continue
        category = p.stem.removeprefix("category-").rsplit("-page-", 1)[0]
        for cid in parse_markets([json.loads(p.read_bytes())])["coin_id"].to_list():
            members.setdefault(cid, set()).add(category)
    return coins.with_columns(
        pl.Series(
            "categories",
            [sorted(members.get(c, ())) for c in coins["coin_id"].to_list()],
            dtype=pl.List(pl.String),
        ),
        pl.lit(pulled_at).cast(pl.Datetime("ms", "UTC")).alias("pulled_at"),
    )


CLOSE_WINDOW_MS = 3_600_000  # an observation in [D+1 00:00, D+1 01:00) is the close of D (as ``closes``)


def global_snapshots(wh: Warehouse) -> list[str]:
    """Registry snapshots that are complete and have a stored /global response, oldest first."""
    from pipelines.pulls.coingecko import (
        GLOBAL_ENDPOINT,
        GLOBAL_FILE,
        MARKETS_ENDPOINT,
        SNAPSHOT_COMPLETE,
        SOURCE,
    )

    base = wh.raw_dir / SOURCE / GLOBAL_ENDPOINT
    out = []
    for path in sorted(base.glob(f"snapshot=*/{GLOBAL_FILE}.json")):
        snap = path.parent.name.split("=", 1)[1]
        complete = wh.raw_dir / SOURCE / MARKETS_ENDPOINT / f"snapshot={snap}" / SNAPSHOT_COMPLETE
        if path.with_suffix(".meta.json").exists() and complete.exists():
            out.append(snap)
    return out


def parse_global_snapshot(wh: Warehouse, snapshot: str) -> pl.DataFrame:
    """One ``global_market_cap`` row from a snapshot's stored /global response and its /coins/markets top pages
    (the same instant): the total, and the share of it held by the ``SHARE_TOP_N`` largest listed coins."""
    from pipelines.pulls.coingecko import GLOBAL_ENDPOINT, GLOBAL_FILE, SHARE_TOP_N, SOURCE
    from pipelines.sources.coingecko import parse_global

    path = wh.raw_dir / SOURCE / GLOBAL_ENDPOINT / f"snapshot={snapshot}" / f"{GLOBAL_FILE}.json"
    g = parse_global(json.loads(path.read_bytes()))
    coins = parse_registry_snapshot(wh, snapshot)
    caps = (
        coins["market_cap_usd"]
        .drop_nulls()
        .filter(coins["market_cap_usd"].drop_nulls() > 0)
        .sort(descending=True)
    )
    top = caps.head(SHARE_TOP_N)
    top_sum = float(top.sort().sum())  # sorted: the float sum does not depend on order
    total = g["total_market_cap_usd"]
    observed = g["updated_at"]
    day = (
        (observed.date() - timedelta(days=1))
        if (observed.timestamp() * 1000) % 86_400_000 < CLOSE_WINDOW_MS
        else None
    )
    row = {
        "observed_at": observed,
        "pulled_at": datetime.fromisoformat(wh.raw_meta(path)["fetched_at"]),
        "total_market_cap_usd": total,
        "total_volume_usd": g["total_volume_usd"],
        "top_coins": top.len(),
        "top_mcap_usd": top_sum,
        "top_share": top_sum / total if total else float("nan"),
        "close_day": day,
        "raw_file": wh.rel(path),
    }
    schema = {
        "observed_at": pl.Datetime("ms", "UTC"),
        "pulled_at": pl.Datetime("ms", "UTC"),
        "total_market_cap_usd": pl.Float64,
        "total_volume_usd": pl.Float64,
        "top_coins": pl.Int32,
        "top_mcap_usd": pl.Float64,
        "top_share": pl.Float64,
        "close_day": pl.Date,
        "raw_file": pl.String,
    }
    return pl.DataFrame([row], schema=schema).select(GLOBAL_MARKET_CAP.column_names)
