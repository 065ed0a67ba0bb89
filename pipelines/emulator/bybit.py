"""Bybit v5 market endpoints (``/bybit``): funding history and open interest for linear perpetuals.

Formats (``shared/reference/market-apis.md`` section 4.1): the envelope
``{"retCode":0,"retMsg":"OK","result":{...},"retExtInfo":{},"time":ms}``, numbers and ms timestamps as strings,
rows **newest first**, parameter errors as ``retCode`` 10001 with HTTP 200.

* ``/v5/market/funding/history``: ``category`` and ``symbol`` required; ``limit`` 1..200 (default 200); sending
  only ``startTime`` is an error; only ``endTime`` gives the ``limit`` rows up to it.
* ``/v5/market/open-interest``: ``intervalTime`` required (5min..1d), ``limit`` 1..200 default 50, cursor
  pagination through ``nextPageCursor`` (an opaque token; ``""`` on the last page). ``openInterest`` is in the
  base coin for linear contracts.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import numpy as np

from pipelines.emulator.derivatives import build_derivatives
from pipelines.emulator.market import HOURS, START
from pipelines.emulator.server import ApiError, Request, Response

if TYPE_CHECKING:
    from pipelines.emulator.server import MarketEmulator

PREFIX = "/bybit"
HOUR_MS = 3_600_000
START_MS = int(START.timestamp() * 1000)
INTERVAL_MS = {
    "5min": 300_000,
    "15min": 900_000,
    "30min": 1_800_000,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "1d": 24 * HOUR_MS,
}


def register(emu: MarketEmulator) -> None:
    deriv = build_derivatives(emu.seed)
    now_ms = int(emu.now.timestamp() * 1000)

    def envelope(result: dict, code: int = 0, msg: str = "OK") -> Response:
        return Response.json(
            {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": now_ms + 1_337}
        )

    def error(status: int, headers: dict[str, str]) -> Response:
        if status == 403:
            return Response(403, b"access too frequent", headers, "text/plain")
        if status == 429:
            return Response.json(
                {
                    "retCode": 10006,
                    "retMsg": "Too many visits!",
                    "result": {},
                    "retExtInfo": {},
                    "time": now_ms,
                },
                429,
                headers,
            )
        return Response.json(
            {"retCode": 10016, "retMsg": "Server error.", "result": {}, "retExtInfo": {}, "time": now_ms},
            status,
            headers,
        )

    emu.add_api("bybit", PREFIX, "BYBIT_BASE_URL", error)

    def bad(msg: str) -> ApiError:
        return ApiError(envelope({}, 10001, msg))

    def num(req: Request, name: str) -> int | None:
        v = req.query.get(name)
        if v in (None, ""):
            return None
        if not v.lstrip("-").isdigit():
            raise bad(f"params error: {name} invalid")
        return int(v)

    def linear(req: Request) -> int:
        if req.query.get("category") not in ("linear", "inverse"):
            raise bad("params error: category is invalid")
        sym = req.query.get("symbol", "")
        if not sym:
            raise bad("params error: symbol is required")
        if req.query["category"] != "linear" or not deriv.has(sym):
            raise bad("params error: symbol invalid")
        return deriv.index(sym)

    def limit(req: Request, default: int) -> int:
        n = num(req, "limit")
        if n is None:
            return default
        if not 1 <= n <= 200:
            raise bad("params error: limit must be in [1, 200]")
        return n

    def funding(req: Request) -> Response:
        j = linear(req)
        n = limit(req, 200)
        start, end = num(req, "startTime"), num(req, "endTime")
        if start is not None and end is None:
            raise bad("params error: endTime is required when startTime is set")
        hi = min(end if end is not None else now_ms, now_ms)
        lo = start if start is not None else START_MS
        rows = [
            (START_MS + h * HOUR_MS, r)
            for h, r in deriv.settlements(
                "bybit", j, max(0, (lo - START_MS) // HOUR_MS), (hi - START_MS) // HOUR_MS
            )
        ]
        rows = [(t, r) for t, r in rows if lo <= t <= hi][::-1][:n]
        return envelope(
            {
                "category": "linear",
                "list": [
                    {
                        "symbol": deriv.symbols[j],
                        "fundingRate": f"{r:.8f}".rstrip("0").rstrip(".") if r else "0",
                        "fundingRateTimestamp": str(t),
                    }
                    for t, r in rows
                ],
            }
        )

    def open_interest(req: Request) -> Response:
        j = linear(req)
        iv = req.query.get("intervalTime")
        if iv not in INTERVAL_MS:
            raise bad("params error: intervalTime invalid")
        step = INTERVAL_MS[iv]
        n = limit(req, 50)
        start, end = num(req, "startTime"), num(req, "endTime")
        hi = min(end if end is not None else now_ms, now_ms)
        cursor = req.query.get("cursor", "")
        if cursor:
            try:
                hi = int(base64.urlsafe_b64decode(cursor.encode()).decode().split("=")[1]) - 1
            except (ValueError, IndexError):
                raise bad("params error: cursor invalid") from None
        lo = max(start if start is not None else START_MS, START_MS)
        last = hi - (hi - START_MS) % step
        times = []
        t = last
        while t >= lo and len(times) < n:
            times.append(t)
            t -= step
        more = t >= lo
        oi = deriv.oi_usd["bybit"][:, j]
        px = deriv.price[:, j]
        out = []
        for t in times:
            x = (t - START_MS) / HOUR_MS
            h = int(x)
            f = x - h
            h2 = min(h + 1, HOURS - 1)
            usd = oi[h] + (oi[h2] - oi[h]) * f
            p = px[h] + (px[h2] - px[h]) * f
            out.append({"openInterest": f"{usd / p:.8f}", "timestamp": str(t)})
        nxt = base64.urlsafe_b64encode(f"lastid={times[-1]}".encode()).decode() if more and times else ""
        return envelope(
            {"symbol": deriv.symbols[j], "category": "linear", "list": out, "nextPageCursor": nxt}
        )

    _ = np  # numpy arrays are indexed above
    emu.route("bybit", "/v5/market/funding/history", funding)
    emu.route("bybit", "/v5/market/open-interest", open_interest)
