"""data.binance.vision bulk archive (``/binance-vision``): real zip files with ``.CHECKSUM`` siblings.

Paths below the prefix, as at the real host (``shared/reference/market-apis.md`` section 3)::

    /data/futures/um/daily/metrics/{SYM}/{SYM}-metrics-{YYYY-MM-DD}.zip
    /data/futures/um/monthly/fundingRate/{SYM}/{SYM}-fundingRate-{YYYY-MM}.zip
    /data/futures/um/daily/klines/{SYM}/{interval}/{SYM}-{interval}-{YYYY-MM-DD}.zip     (1h, 4h, 1d)

and each with ``.CHECKSUM`` appended: ``<sha256 hex>␠␠<zip file name>\\n``. Each zip holds one CSV of the same
base name, with a fixed ``date_time`` in its ``ZipInfo`` so that the bytes (and checksums) are deterministic.

* metrics: header always, ``create_time`` as text ``YYYY-MM-DD HH:MM:SS``, 288 five-minute rows, numbers with
  long zero padding, some ratio cells blank, and about one day in sixty missing per symbol (404).
* fundingRate: monthly only, header ``calc_time,funding_interval_hours,last_funding_rate``, ``calc_time`` ms a
  few ms past the settlement.
* klines: no header before ``KLINES_HEADER_FROM``, header after. (At the real archive headers appeared around
  2022-2023; the switch is moved into the emulated range so clients meet both eras.)

Daily files exist from the day after, monthly files after the month ends. A missing file is 404 with S3's XML
body. ``emu.vision_bad_checksums`` (a set of zip paths) makes the ``.CHECKSUM`` of those files wrong, to test
the client's verification.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from pipelines.emulator.binance import INTERVAL_HOURS, bars
from pipelines.emulator.derivatives import build_derivatives
from pipelines.emulator.market import HOURS, START, build_market
from pipelines.emulator.server import ApiError, Request, Response

if TYPE_CHECKING:
    from pipelines.emulator.server import MarketEmulator

PREFIX = "/binance-vision"
HOUR_MS = 3_600_000
START_MS = int(START.timestamp() * 1000)
KLINES_HEADER_FROM = date(2025, 3, 1)
KLINES_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
    "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"
)


# the times of day of the metrics files' 288 five-minute rows, as the archive writes them
FIVE_MINUTE_CLOCKS = tuple(f"{m // 60:02d}:{m % 60:02d}:00" for m in range(0, 24 * 60, 5))


def zip_one(name: str, text: str, when: date) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(name, date_time=(when.year, when.month, when.day, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, text)
    return buf.getvalue()


def _missing(seed: int, sym: str, day: date) -> bool:
    h = hashlib.sha256(f"{seed}:{sym}:{day.isoformat()}".encode()).digest()
    return h[0] % 60 == 7


def register(emu: MarketEmulator) -> None:
    deriv = build_derivatives(emu.seed)
    market = build_market(emu.seed)
    today = emu.now.date()
    emu.vision_bad_checksums = set()  # type: ignore[attr-defined]
    # Publication lags (the real-world profile raises them): a daily file exists from ``1 + lag`` days after its
    # day, a monthly file ``lag`` days after its month ends.
    emu.vision_daily_lag_days = 0  # type: ignore[attr-defined]
    emu.vision_monthly_lag_days = 0  # type: ignore[attr-defined]

    def error(status: int, headers: dict[str, str]) -> Response:
        code = {404: "NoSuchKey", 403: "AccessDenied", 503: "SlowDown"}.get(status, "InternalError")
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{code}</Message>'
            f"</Error>"
        ).encode()
        return Response(status, body, headers, "application/xml")

    emu.add_api("binance_vision", PREFIX, "BINANCE_VISION_BASE_URL", error)

    def not_found() -> ApiError:
        return ApiError(error(404, {}))

    def sym_index(sym: str) -> int:
        if not deriv.has(sym):
            raise not_found()
        return deriv.index(sym)

    def day_hours(day: date) -> tuple[int, int]:
        h0 = int((datetime(day.year, day.month, day.day, tzinfo=UTC) - START).total_seconds() // 3600)
        if h0 < 0 or h0 + 24 > HOURS:
            raise not_found()
        return h0, h0 + 24

    def interp(arr: np.ndarray, j: int, h0: int, n: int, per_hour: int) -> np.ndarray:
        """Column ``j`` of the hourly ``arr`` at ``n`` points ``per_hour`` from hour ``h0``, linear between the
        hours: only the hours around the points are handed to ``np.interp`` (the same neighbours, so the same
        values, as the whole history gives, without copying the column of every hour each time)."""
        x = h0 + np.arange(n) / per_hour
        last = min(HOURS, h0 + -(-n // per_hour) + 1)  # the hour after the last point, when there is one
        return np.interp(x, np.arange(h0, last), arr[h0:last, j])

    @lru_cache(maxsize=512)
    def metrics_csv(sym: str, day: date) -> str:
        j = sym_index(sym)
        h0, _ = day_hours(day)
        usd = interp(deriv.oi_usd["binance"], j, h0, 288, 12)
        px = interp(deriv.price, j, h0, 288, 12)
        long_ = np.round(interp(deriv.long_account, j, h0, 288, 12), 4)
        rng = np.random.default_rng(np.random.SeedSequence([emu.seed, 5, j, day.toordinal()]))
        top_count = long_ / (1 - long_) * np.exp(rng.normal(0.0, 0.05, 288))
        top_sum = top_count * np.exp(rng.normal(0.0, 0.15, 288))
        taker = np.exp(rng.normal(0.0, 0.12, 288))
        blank = rng.uniform(0, 1, (288, 3)) < 0.004
        lines = [METRICS_HEADER]
        day_text, prefix = day.isoformat(), f",{sym},"
        rows = zip(
            FIVE_MINUTE_CLOCKS,
            usd.tolist(),
            px.tolist(),
            top_count.tolist(),
            top_sum.tolist(),
            long_.tolist(),
            taker.tolist(),
            blank.tolist(),
            strict=True,
        )
        for clock, u, p, tc, ts, lg, tk, gaps in rows:
            cells = [f"{tc:.8f}", f"{ts:.8f}", f"{lg / (1 - lg):.8f}", f"{tk:.8f}"]
            for c in range(3):
                if gaps[c]:
                    cells[c + 1 if c else 0] = ""
            lines.append(f"{day_text} {clock}{prefix}{u / p:.16f},{u:.16f}," + ",".join(cells))
        return "\n".join(lines) + "\n"

    @lru_cache(maxsize=256)
    def funding_csv(sym: str, year: int, month: int) -> str:
        j = sym_index(sym)
        first = date(year, month, 1)
        nxt = date(year + (month == 12), month % 12 + 1, 1)
        h0, _ = day_hours(first)
        h1 = h0 + (nxt - first).days * 24 - 1
        lines = ["calc_time,funding_interval_hours,last_funding_rate"]
        step = int(deriv.intervals["binance"][j])
        for h, rate in deriv.settlements("binance", j, h0, h1):
            lines.append(f"{START_MS + h * HOUR_MS + 1 + (h % 5)},{step},{rate:.8f}")
        return "\n".join(lines) + "\n"

    @lru_cache(maxsize=256)
    def klines_csv(sym: str, interval: str, day: date) -> str:
        j = sym_index(sym)
        if interval not in INTERVAL_HOURS or 24 % INTERVAL_HOURS[interval]:
            raise not_found()
        h0, h1 = day_hours(day)
        rows = bars(emu.seed, deriv.coin_idx[j], "fapi", INTERVAL_HOURS[interval], h0, h1 - 1)
        lines = [KLINES_HEADER] if day >= KLINES_HEADER_FROM else []
        lines += [",".join(str(c) for c in r) for r in rows]
        return "\n".join(lines) + "\n"

    patterns = [
        (
            re.compile(
                r"/data/futures/um/daily/metrics/(?P<s>[A-Z0-9]+)/(?P=s)-metrics-(?P<d>\d{4}-\d{2}-\d{2})\.zip"
            ),
            "metrics",
        ),
        (
            re.compile(
                r"/data/futures/um/monthly/fundingRate/(?P<s>[A-Z0-9]+)/(?P=s)-fundingRate-(?P<m>\d{4}-\d{2})\.zip"
            ),
            "funding",
        ),
        (
            re.compile(
                r"/data/futures/um/daily/klines/(?P<s>[A-Z0-9]+)/(?P<i>\w+)/(?P=s)-(?P=i)-(?P<d>\d{4}-\d{2}-\d{2})\.zip"
            ),
            "klines",
        ),
    ]

    @lru_cache(maxsize=1024)
    def zip_bytes(path: str) -> bytes:
        for pat, kind in patterns:
            m = pat.fullmatch(path)
            if not m:
                continue
            sym = m["s"]
            name = path.rsplit("/", 1)[1][: -len(".zip")] + ".csv"
            if kind == "funding":
                y, mo = (int(x) for x in m["m"].split("-"))
                ends = date(y + (mo == 12), mo % 12 + 1, 1)
                if ends + timedelta(days=emu.vision_monthly_lag_days) > today:  # type: ignore[attr-defined]
                    raise not_found()
                return zip_one(name, funding_csv(sym, y, mo), ends)
            day = date.fromisoformat(m["d"])
            if day + timedelta(days=emu.vision_daily_lag_days) >= today:  # type: ignore[attr-defined]
                raise not_found()
            if kind == "metrics":
                if _missing(emu.seed, sym, day):
                    raise not_found()
                text = metrics_csv(sym, day)
            else:
                text = klines_csv(sym, m["i"], day)
            return zip_one(name, text, day + timedelta(days=1))
        raise not_found()

    def serve(req: Request) -> Response:
        path = req.path
        if path.endswith(".zip.CHECKSUM"):
            zpath = path[: -len(".CHECKSUM")]
            digest = hashlib.sha256(zip_bytes(zpath)).hexdigest()
            if zpath in emu.vision_bad_checksums:  # type: ignore[attr-defined]
                digest = hashlib.sha256(digest.encode()).hexdigest()
            line = f"{digest}  {zpath.rsplit('/', 1)[1]}\n"
            return Response(200, line.encode(), {}, "binary/octet-stream")
        if path.endswith(".zip"):
            return Response(200, zip_bytes(path), {}, "application/zip")
        raise not_found()

    _ = market
    emu.route("binance_vision", r"/data/.+", serve)
