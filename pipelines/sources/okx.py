"""OKX v5 public client (swap funding history, rubik OI/volume) and the parsers of its payloads.

Setting: ``OKX_BASE_URL`` (default ``https://www.okx.com``). No key is needed.

Quirks handled (``shared/reference/market-apis.md`` section 4.2):

* envelope ``{"code":"0","msg":"","data":[...]}``; ``code`` is a string and anything but ``"0"`` is an error
  (``SourceError``); HTTP 429 (code ``50011``) is retried by the HTTP layer;
* newest first; numbers and ms timestamps are strings;
* funding history pages backward with ``after = oldest fundingTime`` (≤400 rows); only about 3 months are
  kept, beyond that ``data`` is empty, so the client stops there and ``FundingResult.reached_wall`` says so;
  the rate charged is ``realizedRate`` (``fundingRate`` is the prediction): the parser uses ``realizedRate``;
* the funding interval is inferred from consecutive ``fundingTime`` values;
* rubik ``open-interest-volume`` gives ``[ts, oi_usd, vol_usd]`` strings for all of a coin's futures and swaps;
  ``period`` 5m / 1H / 1D reaches 2 / 30 / 180 days back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import polars as pl

from pipelines.sources.binance import UTC_MS, ms, settlements
from pipelines.sources.dedupe import unique_strict
from pipelines.sources.http import Fetched, PayloadError, SourceClient, SourceError

BASE_URL = "https://www.okx.com"
FUNDING_LIMIT = 400
PERIOD_REACH_DAYS = {"5m": 2, "1H": 30, "1D": 180}


def inst_id(base: str) -> str:
    return f"{base.upper()}-USDT-SWAP"


class OkxClient(SourceClient):
    def _get(self, endpoint: str, params: dict[str, Any]) -> tuple[Fetched, list]:
        fetched = self.http.get(endpoint, params)
        body = fetched.json()
        if not isinstance(body, dict) or not isinstance(body.get("code"), str):
            raise fetched.error("not an OKX v5 envelope", body=fetched.text)
        if body["code"] != "0":
            raise fetched.error(
                f"OKX code {body['code']} ({body.get('msg')})", SourceError, body=fetched.text
            )
        if not isinstance(body.get("data"), list):
            raise fetched.error("data missing")
        return fetched, body["data"]

    def funding_history_pages(self, inst: str, start: datetime, end: datetime) -> Iterator[Fetched]:
        """Settlements in [start, end] for ``inst`` (``BTC-USDT-SWAP``), newest page first. Stops at an empty
        page: either ``start`` is older than OKX keeps (about 3 months) or there is no more data."""
        lo, cursor = ms(start), ms(end) + 1
        while True:
            params = {"instId": inst, "after": cursor, "limit": FUNDING_LIMIT}
            fetched, data = self._get("/api/v5/public/funding-rate-history", params)
            yield fetched
            if not data:
                return
            oldest = fetched.oldest_ms(data, "fundingTime")
            if oldest <= lo or oldest >= cursor:
                return
            cursor = oldest

    def open_interest_volume(self, ccy: str, period: str, start: datetime, end: datetime) -> Fetched:
        """One request (the endpoint returns the whole reachable window); ``period`` 5m, 1H or 1D."""
        if period not in PERIOD_REACH_DAYS:
            raise ValueError(f"period must be one of {list(PERIOD_REACH_DAYS)}")
        fetched, _ = self._get(
            "/api/v5/rubik/stat/contracts/open-interest-volume",
            {"ccy": ccy, "period": period, "begin": ms(start), "end": ms(end)},
        )
        return fetched


def _drift(msg: str, endpoint: str) -> PayloadError:
    return PayloadError(msg, endpoint=endpoint, params={}, status=200)


def _data(body: Any, endpoint: str) -> list:
    if not isinstance(body, dict) or body.get("code") != "0" or not isinstance(body.get("data"), list):
        raise _drift("not a successful OKX envelope", endpoint)
    return body["data"]


def _f(v: Any, endpoint: str) -> float:
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise _drift(f"not a decimal string: {str(v)[:40]!r}", endpoint)


def _i(v: Any, endpoint: str) -> int:
    if isinstance(v, str) and v.isdigit():
        return int(v)
    raise _drift(f"not an epoch-ms string: {str(v)[:40]!r}", endpoint)


def parse_funding_history(
    bodies: list[Any], endpoint: str = "/api/v5/public/funding-rate-history", *, page_index: bool = False
) -> pl.DataFrame:
    """Envelopes -> venue, symbol (instId), base, funding_time (UTC), funding_rate = ``realizedRate``
    (fraction per interval), interval_hours (inferred), mark_price (null), ascending. ``page_index``: see
    ``dedupe.PAGE``."""
    out = []
    for i, body in enumerate(bodies):
        for r in _data(body, endpoint):
            if not isinstance(r, dict) or not isinstance(r.get("instId"), str):
                raise _drift(f"bad row {str(r)[:100]}", endpoint)
            t = _i(r.get("fundingTime"), endpoint)
            rate = r.get("realizedRate")
            rate = r.get("fundingRate") if rate in (None, "") else rate  # rows not settled yet
            inst = r["instId"]
            out.append((inst, inst.split("-")[0], t, _f(rate, endpoint), None, i))
    return settlements("okx", out, "OKX payload", page_index)


def parse_open_interest_volume(
    body: Any, ccy: str, endpoint: str = "/api/v5/rubik/stat/contracts/open-interest-volume"
) -> pl.DataFrame:
    """``[[ts, oi, vol], ...]`` -> venue, base, ts (UTC), ``oi_usd``, ``volume_usd`` (per period), ascending."""
    out = []
    for r in _data(body, endpoint):
        if not isinstance(r, list) or len(r) < 3:
            raise _drift(f"bad row {str(r)[:80]}", endpoint)
        out.append(
            {
                "venue": "okx",
                "base": ccy.upper(),
                "ts": _i(r[0], endpoint),
                "oi_usd": _f(r[1], endpoint),
                "volume_usd": _f(r[2], endpoint),
            }
        )
    schema = {
        "venue": pl.String,
        "base": pl.String,
        "ts": pl.Int64,
        "oi_usd": pl.Float64,
        "volume_usd": pl.Float64,
    }
    df = pl.DataFrame(out, schema=schema).with_columns(pl.col("ts").cast(UTC_MS))
    return unique_strict(df, "ts", "OKX " + "ts").sort("ts")
