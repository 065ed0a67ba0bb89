"""FRED's keyless CSV download (``/fred``): ``/graph/fredgraph.csv?id=SERIES&cosd=YYYY-MM-DD&coed=YYYY-MM-DD``.

Body as recorded (``shared/reference/market-apis.md`` section 5.1): header ``observation_date,<SERIES>``, one
row per observation in ascending order, missing values as ``.``. Daily series list weekdays only (US holidays
as ``.``), monthly series are dated the 1st. Only observations published by the emulator's ``now`` appear
(see ``pipelines/emulator/macro.py``). The discontinued LBMA gold ids answer 404 like any unknown series.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from pipelines.emulator.macro import DECIMALS, build_macro
from pipelines.emulator.server import ApiError, Request, Response

if TYPE_CHECKING:
    from pipelines.emulator.server import MarketEmulator

PREFIX = "/fred"


def register(emu: MarketEmulator) -> None:
    macro = build_macro(emu.seed)
    today = emu.now.date()

    def error(status: int, headers: dict[str, str]) -> Response:
        text = {404: "Not Found", 429: "Too Many Requests"}.get(status, "Internal Server Error")
        return Response(
            status,
            f"<html><body><h1>{status} {text}</h1></body></html>".encode(),
            headers,
            "text/html; charset=UTF-8",
        )

    emu.add_api("fred", PREFIX, "FRED_BASE_URL", error)

    def parse_day(req: Request, name: str) -> date | None:
        v = req.query.get(name)
        if not v:
            return None
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise ApiError(error(400, {})) from None

    def csv(req: Request) -> Response:
        sid = req.query.get("id", "")
        if sid not in macro.series:
            raise ApiError(error(404, {}))
        lo, hi = parse_day(req, "cosd"), parse_day(req, "coed")
        lines = [f"observation_date,{sid}"]
        for ob in macro.series[sid]:
            if ob.published > today or (lo and ob.day < lo) or (hi and ob.day > hi):
                continue
            value = "." if ob.value is None else f"{ob.value:.{DECIMALS[sid]}f}"
            lines.append(f"{ob.day.isoformat()},{value}")
        return Response(200, ("\n".join(lines) + "\n").encode(), {}, "text/csv")

    emu.route("fred", "/graph/fredgraph.csv", csv)
