"""CoinGecko v3 client (public, Demo or Pro) and the parsers of its payloads.

Settings come from the environment through ``CoinGeckoResource``: ``COINGECKO_BASE_URL`` (default the public
API), ``COINGECKO_API_KEY`` (a Demo key, sent as the ``x-cg-demo-api-key`` header; a Pro key with
``COINGECKO_API_PLAN=pro`` goes in ``x-cg-pro-api-key``) and ``COINGECKO_CALLS_PER_MINUTE`` (default 30, the
Demo plan's documented limit).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import polars as pl

from pipelines.sources.dedupe import unique_strict
from pipelines.sources.http import Fetched, HistoryLimitError, PayloadError, SourceClient, SourceError

PUBLIC_BASE_URL = "https://api.coingecko.com/api/v3"
PRO_BASE_URL = "https://pro-api.coingecko.com/api/v3"
MAX_PER_PAGE = 250


class CoinGeckoClient(SourceClient):
    def __init__(
        self,
        base_url: str = PUBLIC_BASE_URL,
        api_key: str | None = None,
        plan: str = "demo",
        calls_per_minute: float = 30,
        **http_options: Any,
    ):
        key_header = "x-cg-pro-api-key" if plan.strip().lower() == "pro" else "x-cg-demo-api-key"
        super().__init__(
            base_url,
            extra_headers={key_header: api_key} if api_key else None,
            calls_per_minute=calls_per_minute,
            classify_error=classify_error,
            **http_options,
        )

    def _get(self, endpoint: str, params: dict[str, Any]) -> Fetched:
        fetched = self.http.get(endpoint, params)
        check_error_body(fetched)
        return fetched

    def markets_pages(self, top_n: int = 250, category: str | None = None) -> Iterator[Fetched]:
        """``/coins/markets`` by market cap, page after page, until ``top_n`` coins or a short page."""
        per_page = min(MAX_PER_PAGE, top_n)
        seen = 0
        page = 1
        while seen < top_n:
            params: dict[str, Any] = {
                "vs_currency": "usd",
                "order": "market_cap_desc",
                "per_page": per_page,
                "page": page,
            }
            if category:
                params["category"] = category
            fetched = self._get("/coins/markets", params)
            rows = fetched.json()
            if not isinstance(rows, list):
                raise fetched.error("expected a JSON array")
            yield fetched
            seen += len(rows)
            if len(rows) < per_page:
                return
            page += 1

    def market_chart_range(self, coin_id: str, start: datetime, end: datetime) -> Fetched:
        """``/coins/{id}/market_chart/range`` between two instants (sent as UNIX seconds)."""
        params = {"vs_currency": "usd", "from": int(start.timestamp()), "to": int(end.timestamp())}
        return self._get(f"/coins/{coin_id}/market_chart/range", params)

    def categories_list(self) -> Fetched:
        return self._get("/coins/categories/list", {})

    def global_market(self) -> Fetched:
        """``/global``: the market's total market cap and volume now (``data.total_market_cap.usd``)."""
        return self._get("/global", {})


HISTORY_LIMIT_HELP = (
    "CoinGecko refused history older than 365 days (error 10012). The free and Demo plans only reach back 365 days: "
    "set COINGECKO_API_KEY to a paid key with COINGECKO_API_PLAN=pro, or replay recorded responses (README, "
    "'Recorded responses')"
)


def _error_of(body: Any) -> tuple[int | None, str] | None:
    """(error_code, message) when a decoded body is one of CoinGecko's error objects, else None."""
    if not isinstance(body, dict) or _is_payload(body) or not ("error" in body or "status" in body):
        return None
    inner = body.get("error", body)
    status = inner.get("status") if isinstance(inner, dict) else None
    if isinstance(status, dict):
        return status.get("error_code"), str(status.get("error_message", ""))
    return None, str(inner)


def classify_error(endpoint: str, params: Any, status: int, text: str) -> SourceError | None:
    try:
        found = _error_of(json.loads(text))
    except ValueError:
        return None
    if found and found[0] == 10012:
        return HistoryLimitError(
            HISTORY_LIMIT_HELP, endpoint=endpoint, params=params, status=status, body=found[1]
        )
    return None


def check_error_body(fetched: Fetched) -> None:
    """CoinGecko sometimes answers an error with HTTP 200 and an error object: look at the body too."""
    try:
        found = _error_of(fetched.json())
    except ValueError:
        return
    if found is None:
        return
    if found[0] == 10012:
        raise fetched.error(HISTORY_LIMIT_HELP, HistoryLimitError, body=found[1])
    raise fetched.error("CoinGecko returned an error body", SourceError, body=found[1])


def _is_payload(body: dict[str, Any]) -> bool:
    return any(k in body for k in ("prices", "data", "market_caps"))


def _series(body: dict[str, Any], key: str, fetched_endpoint: str) -> list[list[Any]]:
    rows = body.get(key)
    if not isinstance(rows, list):
        raise PayloadError(
            f"field {key!r} missing or not a list", endpoint=fetched_endpoint, params={}, status=200
        )
    for row in rows:
        if (
            not isinstance(row, list)
            or len(row) != 2
            or not isinstance(row[0], int | float)
            or isinstance(row[0], bool)
            or not (row[1] is None or (isinstance(row[1], int | float) and not isinstance(row[1], bool)))
        ):
            raise PayloadError(
                f"bad point in {key!r}: {str(row)[:80]}", endpoint=fetched_endpoint, params={}, status=200
            )
    return rows


CHART = "chart"
_CHART_SERIES = (("prices", "price"), ("market_caps", "market_cap"), ("total_volumes", "total_volume"))


def parse_market_chart(body: Any, endpoint: str = "/coins/{id}/market_chart/range") -> pl.DataFrame:
    """``{"prices": [[ms, v], ...], "market_caps": ..., "total_volumes": ...}`` -> one row per timestamp.

    Columns: ``ts`` (UTC, ms), ``price``, ``market_cap``, ``total_volume`` (nulls where a series lacks the point).
    Raises ``PayloadError`` when the shape is not CoinGecko's.
    """
    return parse_market_charts([body], endpoint).drop(CHART)


def parse_market_charts(bodies: list[Any], endpoint: str = "/coins/{id}/market_chart/range") -> pl.DataFrame:
    """Several market charts in one pass: the rows ``parse_market_chart`` gives for each, ascending, with
    ``chart`` (UInt32), the position of its body in ``bodies``. A bad body raises as it would alone."""
    keys = ["ts_ms"] if len(bodies) == 1 else [CHART, "ts_ms"]
    frames = []
    for key, col in _CHART_SERIES:
        charts: list[int] = []
        instants: list[int] = []
        values: list[float | None] = []
        for i, body in enumerate(bodies):
            if not isinstance(body, dict):
                raise PayloadError("expected a JSON object", endpoint=endpoint, params={}, status=200)
            rows = _series(body, key, endpoint)
            charts += [i] * len(rows)
            instants += [int(t) for t, _ in rows]
            values += [None if v is None or not math.isfinite(v) else float(v) for _, v in rows]
        frame = pl.DataFrame(
            [
                pl.Series(CHART, charts, dtype=pl.UInt32),
                pl.Series("ts_ms", instants, dtype=pl.Int64),
                pl.Series(col, values, dtype=pl.Float64),
            ]
        )
        frames.append(unique_strict(frame, keys, f"CoinGecko market chart {col}"))
    on = [CHART, "ts_ms"]
    df = (
        frames[0]
        .join(frames[1], on=on, how="full", coalesce=True)
        .join(frames[2], on=on, how="full", coalesce=True)
    )
    return (
        df.sort(on)
        .with_columns(
            pl.from_epoch("ts_ms", time_unit="ms")
            .dt.cast_time_unit("ms")
            .dt.replace_time_zone("UTC")
            .alias("ts")
        )
        .select(CHART, "ts", "price", "market_cap", "total_volume")
    )


def market_chart_errors(charts: list[tuple[Any, str]]) -> list[PayloadError | ValueError | None]:
    """For each ``(body, endpoint)``, the error ``parse_market_chart`` raises on the body alone (a
    ``PayloadError`` for a drifted shape, ``ConflictingDuplicates`` for a point given twice with two values), or
    None. The bodies are parsed in one pass (``parse_market_charts``); only when that pass fails is each parsed
    alone, to tell which."""
    if not charts:
        return []
    try:
        parse_market_charts([body for body, _ in charts])
        return [None] * len(charts)
    except (PayloadError, ValueError):
        pass
    errors: list[PayloadError | ValueError | None] = []
    for body, endpoint in charts:
        try:
            parse_market_chart(body, endpoint=endpoint)
            errors.append(None)
        except (PayloadError, ValueError) as exc:
            errors.append(exc)
    return errors


def parse_markets(pages: list[Any]) -> pl.DataFrame:
    """Pages of ``/coins/markets`` -> id, symbol, name, market_cap_rank, market_cap (first occurrence wins)."""
    out = []
    for page in pages:
        if not isinstance(page, list):
            raise PayloadError("expected a JSON array", endpoint="/coins/markets", params={}, status=200)
        for row in page:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise PayloadError(
                    f"bad row {str(row)[:80]}", endpoint="/coins/markets", params={}, status=200
                )
            rank = row.get("market_cap_rank")
            cap = row.get("market_cap")
            out.append(
                {
                    "coin_id": row["id"],
                    "symbol": str(row.get("symbol") or ""),
                    "name": str(row.get("name") or ""),
                    "market_cap_rank": int(rank)
                    if isinstance(rank, int | float) and not isinstance(rank, bool)
                    else None,
                    "market_cap_usd": float(cap)
                    if isinstance(cap, int | float) and not isinstance(cap, bool)
                    else None,
                }
            )
    schema = {
        "coin_id": pl.String,
        "symbol": pl.String,
        "name": pl.String,
        "market_cap_rank": pl.Int32,
        "market_cap_usd": pl.Float64,
    }
    return pl.DataFrame(out, schema=schema).unique("coin_id", keep="first", maintain_order=True)


def parse_global(body: Any, endpoint: str = "/global") -> dict[str, Any]:
    """``{"data": {"total_market_cap": {"usd": ...}, "total_volume": {"usd": ...}, "updated_at": s}}`` ->
    ``total_market_cap_usd``, ``total_volume_usd`` (None when absent) and ``updated_at`` (UTC).

    Raises ``PayloadError`` when the shape is not CoinGecko's: no ``data`` object, no numeric
    ``total_market_cap.usd`` or no numeric ``updated_at`` (UNIX seconds). Whether the figure is plausible is the
    caller's rule (``pipelines.pulls.coingecko.global_problems``)."""

    def bad(why: str) -> PayloadError:
        return PayloadError(why, endpoint=endpoint, params={}, status=200)

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise bad("field 'data' missing or not an object")
    caps, vols = data.get("total_market_cap"), data.get("total_volume")
    if not isinstance(caps, dict) or not number(caps.get("usd")):
        raise bad("field 'data.total_market_cap.usd' missing or not a number")
    if not number(data.get("updated_at")):
        raise bad("field 'data.updated_at' missing or not a number")
    vol = vols.get("usd") if isinstance(vols, dict) else None
    return {
        "total_market_cap_usd": float(caps["usd"]),
        "total_volume_usd": float(vol) if number(vol) else None,
        "updated_at": datetime.fromtimestamp(float(data["updated_at"]), timezone.utc),
    }


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
