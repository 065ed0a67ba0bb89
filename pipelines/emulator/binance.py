"""Binance USDT-M futures (``/binance-fapi``) and spot (``/binance-spot``) market-data endpoints.

Formats follow ``shared/reference/market-apis.md`` section 2: decimals as strings, times as integer ms, rows in
ascending time order, ``{"code":..,"msg":..}`` error bodies, and an ``X-MBX-USED-WEIGHT-1M`` header on every
response (weight used by "this IP" in the current calendar minute; with ``rate_limits`` on, going over 2400 on
futures or 6000 on spot answers 429 with ``Retry-After``).

* ``/fapi/v1/fundingRate``: ``limit`` default 100, clamped to 1000; ``startTime``/``endTime`` inclusive; with
  more rows than ``limit`` between them, the first ``limit`` from ``startTime``; without either, the latest.
  ``fundingTime`` is sometimes a few ms past the hour, as at the real venue.
* ``/fapi/v1/premiumIndex``: an object for one symbol, an array without ``symbol``.
* ``/futures/data/openInterestHist`` and ``/futures/data/globalLongShortAccountRatio``: ``period`` required,
  ``limit`` default 30, clamped to 500, only the last 30 days: an older ``startTime`` is HTTP 400 ``-1130``.
* ``/fapi/v1/klines`` (``limit`` ≤1500) and spot ``/api/v3/klines`` (≤1000): 12-element arrays; only
  completed bars are served. Intervals 1h, 2h, 4h, 6h, 8h, 12h and 1d.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from pipelines.emulator.derivatives import build_derivatives
from pipelines.emulator.market import HOURS, START, build_market, hour_index
from pipelines.emulator.server import ApiError, Request, Response

if TYPE_CHECKING:
    from pipelines.emulator.server import MarketEmulator

FAPI_PREFIX = "/binance-fapi"
SPOT_PREFIX = "/binance-spot"
HOUR_MS = 3_600_000
START_MS = int(START.timestamp() * 1000)
INTERVAL_HOURS = {"1h": 1, "2h": 2, "4h": 4, "6h": 6, "8h": 8, "12h": 12, "1d": 24}
PERIOD_MS = {
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": 24 * HOUR_MS,
}
WEIGHT_LIMIT = {"binance_fapi": 2400, "binance_spot": 6000}
HISTORY_DAYS = 30


_FIXED = {places: f".{places}f" for places in range(17)}  # format specs made once: dec runs millions of times


def dec(x: float, places: int = 8) -> str:
    return format(x, _FIXED[places])


def bad(code: int, msg: str, status: int = 400) -> ApiError:
    return ApiError(Response.json({"code": code, "msg": msg}, status))


class WeightCounter:
    """Request weight per calendar minute, as Binance counts it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute = -1
        self.used = 0

    def add(self, weight: int) -> int:
        with self._lock:
            minute = int(time.time() // 60)
            if minute != self._minute:
                self._minute, self.used = minute, 0
            self.used += weight
            return self.used


def klines_weight(limit: int) -> int:
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


@lru_cache(maxsize=256)
def hourly_bars(seed: int, coin: int, venue: str) -> np.ndarray:
    """[hour, 9]: open, high, low, close, base volume, quote volume, trades, taker-buy base, taker-buy quote."""
    market = build_market(seed)
    p = market.price[:, coin]
    o = p
    c = np.append(p[1:], p[-1])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3, coin, {"fapi": 0, "spot": 1}[venue]]))
    wick = np.abs(rng.normal(0.0, 0.0025, (2, HOURS)))
    hi = np.maximum(o, c) * (1 + wick[0])
    lo = np.minimum(o, c) * (1 - wick[1])
    share = 0.30 if venue == "fapi" else 0.07
    quote = np.nan_to_num(market.volume_24h[:, coin]) / 24.0 * share * np.exp(rng.normal(0.0, 0.2, HOURS))
    base = quote / ((o + c) / 2)
    trades = np.floor(quote / 2500.0) + 1
    taker = rng.uniform(0.42, 0.58, HOURS)
    return np.column_stack([o, hi, lo, c, base, quote, trades, base * taker, quote * taker])


def _block_bars(hb: np.ndarray, opens: np.ndarray, hours: int) -> list[list]:
    """The bars of ``hours`` hours opening at the hours ``opens``, aggregated and formatted a column at a time:
    the same text as aggregating each bar's slice of hours on its own gives (tested on every bar of two coins'
    histories, hourly too). Each sum runs over one bar's hours laid out contiguously, as a slice's sum does, so
    the floating-point sums are the same."""
    blk = hb[opens[:, None] + np.arange(hours)]  # [bar, hour, column]
    sums = np.ascontiguousarray(blk[:, :, 4:].transpose(0, 2, 1)).sum(axis=2)  # [bar, column]: over the hours
    open_ms = (START_MS + opens * HOUR_MS).tolist()
    span = hours * HOUR_MS - 1
    return [
        [
            t,
            dec(o),
            dec(hi),
            dec(lo),
            dec(c),
            dec(b, 3),
            t + span,
            dec(q, 5),
            int(n),
            dec(tb, 3),
            dec(tq, 5),
            "0",
        ]
        for t, o, hi, lo, c, b, q, n, tb, tq in zip(
            open_ms,
            blk[:, 0, 0].tolist(),
            blk[:, :, 1].max(axis=1).tolist(),
            blk[:, :, 2].min(axis=1).tolist(),
            blk[:, -1, 3].tolist(),
            *sums.T.tolist(),
            strict=True,
        )
    ]


def bars(
    seed: int, coin: int, venue: str, hours: int, h_from: int, h_to: int, limit: int | None = None
) -> list[list]:
    """Bars of ``hours`` hours opening at hours [h_from, h_to] (aligned), in the REST array format; with
    ``limit``, only the first ``limit`` of them (a page: the rest is never built). A bar is left out when its
    first hour has no price (before the coin lists) or it would end after the last hour. Hourly bars are blocks
    of one hour (a full backfill asks for 670,000 of them)."""
    hb = hourly_bars(seed, coin, venue)
    first = max(h_from + (-h_from) % hours, 0)
    opens = np.arange(first, min(h_to, HOURS - hours) + 1, hours)
    opens = opens[~np.isnan(hb[opens, 0])][:limit]
    return _block_bars(hb, opens, hours)


def _int(req: Request, name: str) -> int | None:
    v = req.query.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise bad(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from None


def _limit(req: Request, default: int, cap: int) -> int:
    n = _int(req, "limit")
    return default if n is None else max(1, min(n, cap))


def register(emu: MarketEmulator) -> None:
    market = emu.market
    deriv = build_derivatives(emu.seed)
    now_h = hour_index(emu.now)
    now_ms = int(emu.now.timestamp() * 1000)
    spot_coins = {c.symbol.upper() + "USDT": i for i, c in enumerate(market.coins) if c.kind == "free"}
    counters = {"binance_fapi": WeightCounter(), "binance_spot": WeightCounter()}

    def weight_headers(api: str, weight: int) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(counters[api].add(weight))}

    def errors_for(api: str):
        def error(status: int, headers: dict[str, str]) -> Response:
            if status in (429, 418):
                msg = (
                    f"Too many requests; current limit of IP is {WEIGHT_LIMIT[api]} requests per minute."
                    if status == 429
                    else "Way too many requests; IP banned until later."
                )
                body = {"code": -1003, "msg": msg}
            elif status == 404:
                body = {"code": -1000, "msg": "Not found."}
            else:
                body = {"code": -1000, "msg": "An unknown error occured while processing the request."}
            return Response.json(body, status, {**headers, **weight_headers(api, 1)})

        return error

    emu.add_api("binance_fapi", FAPI_PREFIX, "BINANCE_FAPI_BASE_URL", errors_for("binance_fapi"))
    emu.add_api("binance_spot", SPOT_PREFIX, "BINANCE_SPOT_BASE_URL", errors_for("binance_spot"))

    def weighted(api: str, weight_of):
        def wrap(handler):
            def inner(req: Request) -> Response:
                weight = weight_of(req)
                used = counters[api].add(weight)
                hdr = {"X-MBX-USED-WEIGHT-1M": str(used)}
                if emu.rate_limits and used > WEIGHT_LIMIT[api]:
                    wait = 60 - int(time.time()) % 60
                    body = {
                        "code": -1003,
                        "msg": f"Too many requests; current limit of IP is {WEIGHT_LIMIT[api]} requests per minute.",
                    }
                    return Response.json(body, 429, {**hdr, "Retry-After": str(wait)})
                try:
                    resp = handler(req)
                except ApiError as exc:
                    exc.response.headers.update(hdr)
                    raise
                resp.headers.update(hdr)
                return resp

            return inner

        return wrap

    def perp(req: Request, required: bool = True) -> int | None:
        sym = req.query.get("symbol")
        if not sym:
            if required:
                raise bad(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        if not deriv.has(sym):
            raise bad(-1121, "Invalid symbol.")
        return deriv.index(sym)

    def window(req: Request, step_ms: int, limit: int, start_floor_ms: int) -> list[int]:
        """Timestamps (multiples of step) to return, Binance-style selection within [startTime, endTime]."""
        start, end = _int(req, "startTime"), _int(req, "endTime")
        if start is not None and end is not None and start > end:
            raise bad(-1130, "parameter 'startTime' is invalid.")
        hi = min(end if end is not None else now_ms, now_ms)
        lo = max(start if start is not None else start_floor_ms, start_floor_ms)
        first = lo + (-(lo - START_MS)) % step_ms
        last = hi - (hi - START_MS) % step_ms
        if last < first:
            return []
        count = (last - first) // step_ms + 1
        if start is not None:
            return [first + k * step_ms for k in range(min(count, limit))]
        return [last - k * step_ms for k in range(min(count, limit))][::-1]

    # ---- funding ------------------------------------------------------------------------------------------
    @weighted("binance_fapi", lambda r: 1)
    def funding_rate(req: Request) -> Response:
        limit = _limit(req, 100, 1000)
        j = perp(req, required=False)
        start, end = _int(req, "startTime"), _int(req, "endTime")
        lo = max(start if start is not None else START_MS, START_MS)
        hi = min(end if end is not None else now_ms, now_ms)
        targets = [j] if j is not None else range(len(deriv.symbols))
        rows = []
        for jj in targets:
            h0, h1 = max(0, (lo - START_MS) // HOUR_MS - 1), (hi - START_MS) // HOUR_MS
            for h, rate in deriv.settlements("binance", jj, h0, h1):
                t = START_MS + h * HOUR_MS + ((h * 7 + jj * 3) % 11 if (h + jj) % 3 == 0 else 0)
                if lo <= t <= hi:
                    rows.append(
                        {
                            "symbol": deriv.symbols[jj],
                            "fundingRate": dec(rate),
                            "fundingTime": t,
                            "markPrice": dec(float(deriv.price[h, jj])),
                        }
                    )
        rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
        rows = rows[:limit] if start is not None else rows[-limit:]
        return Response.json(rows)

    def premium_row(j: int) -> dict:
        step = int(deriv.intervals["binance"][j])
        nxt = (now_h // step + 1) * step
        mark = float(deriv.price[now_h, j])
        index = float(market.price[now_h, deriv.coin_idx[j]])
        return {
            "symbol": deriv.symbols[j],
            "markPrice": dec(mark),
            "indexPrice": dec(index),
            "estimatedSettlePrice": dec(index),
            "lastFundingRate": dec(float(deriv.f8["binance"][now_h, j]) * step / 8),
            "interestRate": "0.00010000",
            "nextFundingTime": START_MS + nxt * HOUR_MS,
            "time": now_ms + 2_417,
        }

    @weighted("binance_fapi", lambda r: 1 if r.query.get("symbol") else 10)
    def premium_index(req: Request) -> Response:
        j = perp(req, required=False)
        if j is not None:
            return Response.json(premium_row(j))
        return Response.json([premium_row(k) for k in range(len(deriv.symbols))])

    # ---- futures/data -------------------------------------------------------------------------------------
    def stat_rows(req: Request, make) -> Response:
        j = perp(req)
        period = req.query.get("period")
        if period not in PERIOD_MS:
            raise bad(-1102, "Mandatory parameter 'period' was not sent, was empty/null, or malformed.")
        limit = _limit(req, 30, 500)
        wall = now_ms - HISTORY_DAYS * 86_400_000
        start = _int(req, "startTime")
        if start is not None and start < wall:
            raise bad(-1130, "parameter 'startTime' is invalid.")
        return Response.json([make(j, t) for t in window(req, PERIOD_MS[period], limit, wall)])

    def at(arr: np.ndarray, j: int, t_ms: int) -> float:
        x = (t_ms - START_MS) / HOUR_MS
        h = int(x)
        frac = x - h
        a = float(arr[h, j])
        b = float(arr[min(h + 1, HOURS - 1), j]) if frac else a
        return a + (b - a) * frac

    def oi_row(j: int, t: int) -> dict:
        usd = at(deriv.oi_usd["binance"], j, t)
        px = at(deriv.price, j, t)
        supply = float(market.supply[min(hour_index_ms(t), HOURS - 1), deriv.coin_idx[j]])
        return {
            "symbol": deriv.symbols[j],
            "sumOpenInterest": dec(usd / px),
            "sumOpenInterestValue": dec(usd),
            "CMCCirculatingSupply": dec(supply),
            "timestamp": t,
        }

    def ls_row(j: int, t: int) -> dict:
        long_ = round(at(deriv.long_account, j, t), 4)
        short = round(1 - long_, 4)
        return {
            "symbol": deriv.symbols[j],
            "longShortRatio": dec(long_ / short, 4),
            "longAccount": dec(long_, 4),
            "shortAccount": dec(short, 4),
            "timestamp": t,
        }

    def hour_index_ms(t: int) -> int:
        return (t - START_MS) // HOUR_MS

    @weighted("binance_fapi", lambda r: 0)
    def open_interest_hist(req: Request) -> Response:
        return stat_rows(req, oi_row)

    @weighted("binance_fapi", lambda r: 0)
    def global_ls(req: Request) -> Response:
        return stat_rows(req, ls_row)

    # ---- klines -------------------------------------------------------------------------------------------
    def klines_for(coin_of, venue: str, cap: int):
        def handler(req: Request) -> Response:
            coin = coin_of(req)
            interval = req.query.get("interval")
            if interval not in INTERVAL_HOURS:
                raise bad(-1120, "Invalid interval.")
            hours = INTERVAL_HOURS[interval]
            limit = _limit(req, 500, cap)
            start, end = _int(req, "startTime"), _int(req, "endTime")
            last_open = now_h - hours  # completed bars only
            hi = min((end - START_MS) // HOUR_MS if end is not None else last_open, last_open)
            if start is not None:
                lo = max(-(-(start - START_MS) // HOUR_MS), 0)
                rows = bars(emu.seed, coin, venue, hours, lo, hi, limit)
            else:
                lo = max(hi - hours * (limit + 1), 0)
                rows = bars(emu.seed, coin, venue, hours, lo, hi)[-limit:]
            return Response.json(rows)

        return handler

    def perp_coin(req: Request) -> int:
        return deriv.coin_idx[perp(req)]

    def spot_coin(req: Request) -> int:
        sym = req.query.get("symbol", "")
        if sym not in spot_coins:
            raise bad(-1121, "Invalid symbol.")
        return spot_coins[sym]

    fapi_klines = weighted(
        "binance_fapi",
        lambda r: klines_weight(
            int(r.query.get("limit") or 500) if (r.query.get("limit") or "500").isdigit() else 500
        ),
    )(klines_for(perp_coin, "fapi", 1500))
    spot_klines = weighted("binance_spot", lambda r: 2)(klines_for(spot_coin, "spot", 1000))

    emu.route("binance_fapi", "/fapi/v1/fundingRate", funding_rate)
    emu.route("binance_fapi", "/fapi/v1/premiumIndex", premium_index)
    emu.route("binance_fapi", "/futures/data/openInterestHist", open_interest_hist)
    emu.route("binance_fapi", "/futures/data/globalLongShortAccountRatio", global_ls)
    emu.route("binance_fapi", "/fapi/v1/klines", fapi_klines)
    emu.route("binance_spot", "/api/v3/klines", spot_klines)
