"""OKX v5 public endpoints (``/okx``): swap funding history and the rubik OI/volume statistic.

Formats (``shared/reference/market-apis.md`` section 4.2): envelope ``{"code":"0","msg":"","data":[...]}`` with a
string ``code``, numbers and ms timestamps as strings, rows newest first.

* ``/api/v5/public/funding-rate-history``: ``instId`` (``BTC-USDT-SWAP``) required; ``after`` = rows older than a
  ``fundingTime``, ``before`` = rows newer; ``limit`` ≤400 (default 400); only the last ~3 months (92 days) are
  kept, older requests get an empty ``data``. Each row carries ``fundingRate`` (as predicted) and
  ``realizedRate`` (charged; differs a little).
* ``/api/v5/rubik/stat/contracts/open-interest-volume``: ``ccy`` required, ``period`` 5m (default) / 1H / 1D
  reaching back 2 / 30 / 180 days; rows ``[ts, oi_usd, vol_usd]`` as strings, newest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipelines.emulator.derivatives import build_derivatives
from pipelines.emulator.market import HOURS, START, build_market
from pipelines.emulator.server import ApiError, Request, Response

if TYPE_CHECKING:
    from pipelines.emulator.server import MarketEmulator

PREFIX = "/okx"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
START_MS = int(START.timestamp() * 1000)
FUNDING_DAYS = 92
PERIODS = {"5m": (300_000, 2), "1H": (HOUR_MS, 30), "1D": (DAY_MS, 180)}


def register(emu: MarketEmulator) -> None:
    deriv = build_derivatives(emu.seed)
    market = build_market(emu.seed)
    now_ms = int(emu.now.timestamp() * 1000)
    by_base = {b: j for j, b in enumerate(deriv.bases)}

    def error(status: int, headers: dict[str, str]) -> Response:
        if status == 429:
            return Response.json({"code": "50011", "msg": "Too Many Requests", "data": []}, 429, headers)
        if status == 404:
            return Response.json({"code": "50000", "msg": "Not Found", "data": []}, 404, headers)
        return Response.json(
            {"code": "50001", "msg": "Service temporarily unavailable", "data": []}, status, headers
        )

    emu.add_api("okx", PREFIX, "OKX_BASE_URL", error)

    def bad(code: str, msg: str) -> ApiError:
        return ApiError(Response.json({"code": code, "msg": msg, "data": []}, 400))

    def num(req: Request, name: str) -> int | None:
        v = req.query.get(name)
        if v in (None, ""):
            return None
        if not v.isdigit():
            raise bad("51000", f"Parameter {name} error")
        return int(v)

    def funding(req: Request) -> Response:
        inst = req.query.get("instId", "")
        if not inst:
            raise bad("50014", "Parameter instId can not be empty")
        parts = inst.split("-")
        if len(parts) != 3 or parts[1:] != ["USDT", "SWAP"] or parts[0] not in by_base:
            raise bad("51001", "Instrument ID does not exist")
        j = by_base[parts[0]]
        n = num(req, "limit")
        n = 400 if n is None else max(1, min(n, 400))
        after, before = num(req, "after"), num(req, "before")
        wall = now_ms - FUNDING_DAYS * DAY_MS
        hi = min(after - 1 if after is not None else now_ms, now_ms)
        lo = max(before + 1 if before is not None else wall, wall)
        rows = [
            (START_MS + h * HOUR_MS, r)
            for h, r in deriv.settlements(
                "okx", j, max(0, (lo - START_MS) // HOUR_MS), (hi - START_MS) // HOUR_MS
            )
        ]
        rows = [(t, r) for t, r in rows if lo <= t <= hi][::-1]
        rows = rows[:n] if before is None else rows[-n:]
        out = [
            {
                "formulaType": "withRate",
                "fundingRate": f"{r * 1.0004:.16f}",
                "fundingTime": str(t),
                "instId": inst,
                "instType": "SWAP",
                "method": "current_period",
                "realizedRate": f"{r:.16f}",
            }
            for t, r in rows
        ]
        return Response.json({"code": "0", "msg": "", "data": out})

    def oi_volume(req: Request) -> Response:
        ccy = req.query.get("ccy", "")
        if not ccy:
            raise bad("50014", "Parameter ccy can not be empty")
        if ccy not in by_base:
            raise bad("51000", "Parameter ccy error")
        period = req.query.get("period", "5m")
        if period not in PERIODS:
            raise bad("51000", "Parameter period error")
        step, reach = PERIODS[period]
        j = by_base[ccy]
        begin, end = num(req, "begin"), num(req, "end")
        hi = min(end if end is not None else now_ms, now_ms)
        lo = max(begin if begin is not None else 0, now_ms - reach * DAY_MS, START_MS)
        last = hi - (hi - START_MS) % step
        oi = deriv.oi_usd["okx"][:, j]
        vol = np.nan_to_num(market.volume_24h[:, deriv.coin_idx[j]]) * 0.12
        out = []
        t = last
        while t >= lo:
            x = (t - START_MS) / HOUR_MS
            h = int(x)
            f = x - h
            h2 = min(h + 1, HOURS - 1)
            usd = oi[h] + (oi[h2] - oi[h]) * f
            v = vol[h] * step / DAY_MS
            out.append([str(t), f"{usd:.4f}", f"{v:.3f}"])
            t -= step
        return Response.json({"code": "0", "msg": "", "data": out})

    emu.route("okx", "/api/v5/public/funding-rate-history", funding)
    emu.route("okx", "/api/v5/rubik/stat/contracts/open-interest-volume", oi_volume)
