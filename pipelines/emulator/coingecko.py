"""CoinGecko v3 (public / Demo / Pro) endpoints over the synthetic market.

Formats follow ``shared/reference/market-apis.md`` section 1: JSON numbers, chart timestamps in ms, inputs in
seconds (or ISO dates), the automatic granularity rules of ``market_chart/range``, ``per_page`` capped at 250,
the Demo plan's 365-day history window (HTTP 401, error 10012, inside ``{"error":{"status":...}}``), the 429 body
without that wrapper, ``_in_currency`` keys for extra price-change windows, ``category_id`` in the categories list
but ``id`` in categories with market data, and ``/global`` (everything inside ``data``, ``updated_at`` in seconds)
whose total is the market's: the listed coins plus an unlisted tail (``market.unlisted_tail_share``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import numpy as np

from pipelines.emulator.coins import CATEGORY_NAMES
from pipelines.emulator.market import HOURS, START, hour_index, hour_time
from pipelines.emulator.server import ApiError, Request, Response

if TYPE_CHECKING:
    from pipelines.emulator.server import MarketEmulator

PREFIX = "/coingecko/api/v3"
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
WINDOWS = {"1h": 1, "24h": 24, "7d": 168, "14d": 336, "30d": 720, "200d": 4800, "1y": 8760}


def error(status: int, headers: dict[str, str]) -> Response:
    if status == 429:
        body: dict = {
            "status": {
                "error_code": 429,
                "error_message": "You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing "
                "to subscribe to our API plans for higher rate limits.",
            }
        }
    elif status == 404:
        body = {"error": "coin not found"}
    else:
        body = {"status": {"error_code": status, "error_message": "Internal Server Error"}}
    return Response.json(body, status, headers)


def _bad(msg: str, status: int = 400) -> ApiError:
    return ApiError(Response.json({"error": msg}, status))


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _parse_time(value: str, name: str) -> float:
    """UNIX seconds, or YYYY-MM-DD / YYYY-MM-DDTHH:MM (both accepted by the current API)."""
    try:
        return float(value)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise _bad(f"invalid '{name}' parameter")


def register(emu: MarketEmulator) -> None:
    emu.add_api("coingecko", PREFIX, "COINGECKO_BASE_URL", error)
    market = emu.market
    now_h = hour_index(emu.now)
    now_ms = int(emu.now.timestamp() * 1000)

    def check_key(req: Request) -> None:
        # Keyless and Demo keys share one behaviour here; the plan decides the history window.
        return None

    def ping(req: Request) -> Response:
        return Response.json({"gecko_says": "(V3) To the Moon!"})

    def categories_list(req: Request) -> Response:
        return Response.json([{"category_id": k, "name": v} for k, v in CATEGORY_NAMES.items()])

    def members(category: str) -> list[int]:
        return [i for i, c in enumerate(market.coins) if category in c.categories]

    def categories(req: Request) -> Response:
        rows = []
        for cid, name in CATEGORY_NAMES.items():
            idx = [i for i in members(cid) if not np.isnan(market.mcap[now_h, i])]
            cap_now = float(np.nansum(market.mcap[now_h, idx])) if idx else None
            cap_prev = float(np.nansum(market.mcap[max(now_h - 24, 0), idx])) if idx else None
            top = sorted(idx, key=lambda i: -market.mcap[now_h, i])[:3]
            rows.append(
                {
                    "id": cid,
                    "name": name,
                    "market_cap": cap_now,
                    "market_cap_change_24h": (cap_now / cap_prev - 1) * 100 if cap_now and cap_prev else None,
                    "content": "",
                    "top_3_coins_id": [market.coins[i].id for i in top],
                    "top_3_coins": [
                        f"https://assets.coingecko.com/coins/images/{i + 1}/small/{market.coins[i].id}.png"
                        for i in top
                    ],
                    "volume_24h": float(np.nansum(market.volume_24h[now_h, idx])) if idx else None,
                    "updated_at": _iso(emu.now),
                }
            )
        order = req.query.get("order", "market_cap_desc")
        if order.startswith("market_cap"):
            rows.sort(key=lambda r: r["market_cap"] or 0, reverse=order.endswith("desc"))
        elif order.startswith("name"):
            rows.sort(key=lambda r: r["name"], reverse=order.endswith("desc"))
        return Response.json(rows)

    def global_(req: Request) -> Response:
        # The market's total: the listed coins and the unlisted tail (market.py, ``unlisted_tail_share``), so the
        # coins /coins/markets lists are less than the total, as at CoinGecko. The tail's volume is taken in the
        # same proportion as its market cap.
        caps = market.mcap[now_h]
        total = float(market.global_mcap[now_h])
        prev = float(market.global_mcap[max(now_h - 24, 0)])
        vol = float(np.nansum(market.volume_24h[now_h])) * total / float(np.nansum(caps))
        order = np.argsort(-np.nan_to_num(caps, nan=-1))[:10]
        btc_price = float(market.price[now_h, 0])
        return Response.json(
            {
                "data": {
                    "active_cryptocurrencies": 13690 + len(market.coins),
                    "upcoming_icos": 0,
                    "ongoing_icos": 49,
                    "ended_icos": 3376,
                    "markets": 1046,
                    "total_market_cap": {"btc": total / btc_price, "usd": total},
                    "total_volume": {"btc": vol / btc_price, "usd": vol},
                    "market_cap_percentage": {
                        market.coins[i].symbol: float(caps[i] / total * 100) for i in order
                    },
                    "market_cap_change_percentage_24h_usd": (total / prev - 1) * 100,
                    "updated_at": int(emu.now.timestamp()),
                }
            }
        )

    def markets(req: Request) -> Response:
        if "vs_currency" not in req.query:
            raise _bad("Missing parameter vs_currency")
        if req.query["vs_currency"].lower() != "usd":
            raise _bad("invalid vs_currency")
        try:
            per_page = min(max(int(req.query.get("per_page", "100")), 1), 250)
            page = max(int(req.query.get("page", "1")), 1)
        except ValueError as exc:
            raise _bad("invalid per_page or page") from exc
        idx = [i for i in range(len(market.coins)) if not np.isnan(market.mcap[now_h, i])]
        if "category" in req.query:
            cat = req.query["category"]
            if cat not in CATEGORY_NAMES:
                raise _bad("category not found", 404)
            idx = [i for i in idx if cat in market.coins[i].categories]
        if "ids" in req.query:
            wanted = set(req.query["ids"].split(","))
            idx = [i for i in idx if market.coins[i].id in wanted]
        ranks = market.ranks_at(now_h)
        order = req.query.get("order", "market_cap_desc")
        key = {
            "market_cap_desc": lambda i: -market.mcap[now_h, i],
            "market_cap_asc": lambda i: market.mcap[now_h, i],
            "volume_desc": lambda i: -market.volume_24h[now_h, i],
            "volume_asc": lambda i: market.volume_24h[now_h, i],
            "id_asc": lambda i: market.coins[i].id,
        }.get(order)
        if key is None and order == "id_desc":
            idx.sort(key=lambda i: market.coins[i].id, reverse=True)
        elif key is None:
            raise _bad("invalid order")
        else:
            idx.sort(key=key)
        windows = [w for w in req.query.get("price_change_percentage", "").split(",") if w]
        for w in windows:
            if w not in WINDOWS:
                raise _bad("invalid price_change_percentage")
        rows = [_market_row(i, ranks[i], windows) for i in idx[(page - 1) * per_page : page * per_page]]
        return Response.json(rows)

    def _market_row(i: int, rank: int, windows: list[str]) -> dict:
        c = market.coins[i]
        p, cap = market.price[:, i], market.mcap[:, i]
        price = float(p[now_h])
        day = slice(max(now_h - 24, 0), now_h + 1)
        prev = float(p[max(now_h - 24, 0)]) if not np.isnan(p[max(now_h - 24, 0)]) else price
        prev_cap = (
            float(cap[max(now_h - 24, 0)]) if not np.isnan(cap[max(now_h - 24, 0)]) else float(cap[now_h])
        )
        hist = p[: now_h + 1]
        ath_h = int(np.nanargmax(hist))
        atl_h = int(np.nanargmin(hist))
        ath, ath_date = (
            (float(hist[ath_h]), hour_time(ath_h))
            if hist[ath_h] > market.prior_ath[i]
            else (float(market.prior_ath[i]), datetime(2021, 11, 10, 14, 24, 11, tzinfo=timezone.utc))
        )
        atl, atl_date = (
            (float(hist[atl_h]), hour_time(atl_h))
            if hist[atl_h] < market.prior_atl[i]
            else (float(market.prior_atl[i]), datetime(2020, 3, 13, 2, 24, 0, tzinfo=timezone.utc))
        )
        row = {
            "id": c.id,
            "symbol": c.symbol,
            "name": c.name,
            "image": f"https://coin-images.coingecko.com/coins/images/{i + 1}/large/{c.id}.png",
            "current_price": price,
            "market_cap": round(float(cap[now_h])),
            "market_cap_rank": int(rank),
            "fully_diluted_valuation": round(price * float(market.total_supply[i]))
            if c.kind != "stable"
            else None,
            "total_volume": round(float(market.volume_24h[now_h, i])),
            "high_24h": float(np.nanmax(p[day])),
            "low_24h": float(np.nanmin(p[day])),
            "price_change_24h": price - prev,
            "price_change_percentage_24h": (price / prev - 1) * 100,
            "market_cap_change_24h": float(cap[now_h]) - prev_cap,
            "market_cap_change_percentage_24h": (float(cap[now_h]) / prev_cap - 1) * 100,
            "circulating_supply": float(market.supply[now_h, i]),
            "total_supply": float(market.total_supply[i]),
            "max_supply": market.max_supply[i],
            "ath": ath,
            "ath_change_percentage": (price / ath - 1) * 100,
            "ath_date": _iso(ath_date),
            "atl": atl,
            "atl_change_percentage": (price / atl - 1) * 100,
            "atl_date": _iso(atl_date),
            "roi": None,
            "last_updated": _iso(emu.now - timedelta(seconds=37)),
        }
        for w in windows:
            back = p[max(now_h - WINDOWS[w], 0)]
            row[f"price_change_percentage_{w}_in_currency"] = (
                None if np.isnan(back) else (price / float(back) - 1) * 100
            )
        return row

    def market_chart_range(req: Request) -> Response:
        coin_id = req.query["coin_id"]
        if not market.has_coin(coin_id):
            raise ApiError(Response.json({"error": "coin not found"}, 404))
        if "vs_currency" not in req.query:
            raise _bad("Missing parameter vs_currency")
        if "from" not in req.query or "to" not in req.query:
            raise _bad("Missing parameter from or to")
        t_from = _parse_time(req.query["from"], "from")
        t_to = _parse_time(req.query["to"], "to")
        if t_from > t_to:
            raise _bad("invalid 'from' and 'to' parameter: from must be before to")
        if emu.plan == "demo" and t_from < emu.now.timestamp() - 365 * 86400:
            raise ApiError(
                Response.json(
                    {
                        "error": {
                            "status": {
                                "timestamp": emu.now.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
                                "error_code": 10012,
                                "error_message": "Your request exceeds the allowed time range. Public API users are "
                                "limited to querying historical data within the past 365 days. Upgrade to a paid "
                                "plan to enjoy full historical data access: https://www.coingecko.com/en/api/pricing. ",
                            }
                        }
                    },
                    401,
                )
            )
        i = market.coin_index(coin_id)
        from_ms, to_ms = int(t_from * 1000), int(min(t_to * 1000, now_ms))
        span = t_to - t_from
        start_ms = int(START.timestamp() * 1000)
        points: list[tuple[int, int]] = []  # (timestamp ms, hour index)
        if span > 90 * 86400:  # daily, stamped 00:00 UTC
            first = max(from_ms, start_ms)
            day0 = -(-(first - start_ms) // DAY_MS)
            for d in range(day0, (to_ms - start_ms) // DAY_MS + 1):
                points.append((start_ms + d * DAY_MS, d * 24))
            if t_to * 1000 >= now_ms and (not points or points[-1][0] < now_ms):
                points.append((now_ms - 37_000, now_h))  # the live point is not on midnight
        elif span <= 86400 and t_to * 1000 >= now_ms - 5 * 60_000:  # 1 day ending now: 5-minutely
            step = 300_000
            t = from_ms - (from_ms % step) + step
            while t <= to_ms:
                points.append((t, hour_index(datetime.fromtimestamp(t / 1000, timezone.utc))))
                t += step
        else:  # hourly, stamped a few seconds to minutes after the hour
            h0 = max(-(-(from_ms - start_ms) // HOUR_MS), 0)
            for h in range(h0, min((to_ms - start_ms) // HOUR_MS, HOURS - 1) + 1):
                jitter = (h * 7919 + i * 104_729) % 240_000
                ts = start_ms + h * HOUR_MS + jitter
                if from_ms <= ts <= to_ms:
                    points.append((ts, h))
        prices, caps, vols = [], [], []
        for ts, h in points:
            if h > now_h or np.isnan(market.price[h, i]):
                continue
            prices.append([ts, float(market.price[h, i])])
            caps.append([ts, float(market.mcap[h, i])])
            vols.append([ts, float(market.volume_24h[h, i])])
        return Response.json({"prices": prices, "market_caps": caps, "total_volumes": vols})

    emu.route("coingecko", "/ping", ping)
    emu.route("coingecko", "/coins/categories/list", categories_list)
    emu.route("coingecko", "/coins/categories", categories)
    emu.route("coingecko", "/global", global_)
    emu.route("coingecko", "/coins/markets", markets)
    emu.route("coingecko", r"/coins/(?P<coin_id>[^/]+)/market_chart/range", market_chart_range)
