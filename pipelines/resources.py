"""Resources: the warehouse and the source clients, configured from the environment with ``dg.EnvVar``.

Nothing reads the environment inside an asset body; assets get these resources by parameter name.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from typing import Any

import dagster as dg
from pydantic import Field

from pipelines.clean import estimates
from pipelines.settings import parse_venues, validate
from pipelines.sources import binance as _binance
from pipelines.sources import binance_vision as _vision
from pipelines.sources import bybit as _bybit
from pipelines.sources import fred as _fred
from pipelines.sources import okx as _okx
from pipelines.sources.coingecko import PUBLIC_BASE_URL, CoinGeckoClient
from pipelines.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """Where raw responses, the Parquet lake, the DuckDB catalog and the reports live (``WAREHOUSE_DIR``)."""

    root: str = Field(default="warehouse", description="warehouse directory")
    reports_url: str = Field(
        default="",
        description="where the reports folder is served (crypto-weekly dev sets it); empty = not served",
    )

    def get(self) -> Warehouse:
        return Warehouse(self.root)


class _MarketClock(dg.ConfigurableResource):
    """``CRYPTO_WEEKLY_NOW``: the pipeline's clock (ISO-8601 UTC) when it is not the wall clock, i.e. against the
    emulator (whose clock is fixed) or a recording. It decides which days have closed, which days the venues'
    history windows (Binance 30 days, OKX about 3 months) still reach, and what ``fetched_at`` and snapshot names
    record, so the same seed and clock give the same lake. Empty (production) = the wall clock."""

    market_now: str = Field(default="", description="ISO-8601 UTC; empty = now")

    def now(self) -> datetime:
        if not self.market_now:
            return datetime.now(timezone.utc)
        t = datetime.fromisoformat(self.market_now)
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


class _Venue(_MarketClock):
    """A venue the user may leave out (``CRYPTO_WEEKLY_VENUES``): its raw assets then make no request and
    record a "not selected" gap."""

    selected: bool = Field(default=True, description="False when CRYPTO_WEEKLY_VENUES leaves this venue out")
    calls_per_minute: int = Field(default=0, description="pacing per host; 0 turns it off (the emulator)")
    max_attempts: int = Field(default=5)
    timeout_seconds: float = Field(default=30)

    def client_options(self) -> dict[str, Any]:
        """What every client of the venue is made with: its pacing, tries, timeout and clock."""
        return {
            "calls_per_minute": self.calls_per_minute,
            "max_attempts": self.max_attempts,
            "timeout": self.timeout_seconds,
            "clock": self.now,
        }


class CoinGeckoResource(_MarketClock):
    """CoinGecko v3. ``COINGECKO_BASE_URL``, ``COINGECKO_API_KEY`` (optional), ``COINGECKO_API_PLAN`` (demo|pro),
    ``COINGECKO_CALLS_PER_MINUTE`` (default 30; 0 turns pacing off, for the emulator)."""

    base_url: str = Field(default=PUBLIC_BASE_URL)
    api_key: str | None = Field(default=None, description="secret; sent as a header, never stored or logged")
    plan: str = Field(default="demo")
    calls_per_minute: int = Field(default=30)
    max_attempts: int = Field(default=5)
    timeout_seconds: float = Field(default=30)
    top_n: int = Field(default=250, description="how many coins /coins/markets lists as history candidates")
    max_retry_wait_seconds: float = Field(
        default=120,
        description="longest wait between two tries, whatever Retry-After asks (tests set it low)",
    )

    def client(self) -> CoinGeckoClient:
        return CoinGeckoClient(
            base_url=self.base_url,
            api_key=self.api_key or None,
            plan=self.plan,
            calls_per_minute=self.calls_per_minute,
            max_attempts=self.max_attempts,
            timeout=self.timeout_seconds,
            max_wait=self.max_retry_wait_seconds,
            clock=self.now,
        )

    def plan_first_day(self) -> date | None:
        """The first day whose close the plan's history window reaches (keyless and Demo: 365 days back), or
        None for a paid plan; older market caps are estimated (``pipelines.clean.estimates``)."""
        return estimates.plan_first_day(
            self.plan if self.api_key or self.plan == "pro" else "public", self.now()
        )


class BinanceResource(_Venue):
    """Binance USDT-M futures (``BINANCE_FAPI_BASE_URL``), spot (``BINANCE_SPOT_BASE_URL``) and the
    data.binance.vision archive (``BINANCE_VISION_BASE_URL``). Public market data: no key.
    ``BINANCE_CALLS_PER_MINUTE`` (default 600; the clients also slow down on ``X-MBX-USED-WEIGHT-1M``) and
    ``BINANCE_MAX_ATTEMPTS`` (default 5)."""

    fapi_base_url: str = Field(default=_binance.FAPI_BASE_URL)
    spot_base_url: str = Field(default=_binance.SPOT_BASE_URL)
    vision_base_url: str = Field(default=_vision.BASE_URL)
    calls_per_minute: int = Field(default=600, description="pacing per host; 0 turns it off (the emulator)")

    def _unpaced(self, client):
        # calls_per_minute = 0 means "no pacing" (the loopback emulator): that includes the client's slow-down on
        # X-MBX-USED-WEIGHT-1M, which the emulator counts but never enforces unless started with rate limits.
        if self.calls_per_minute == 0:
            client.pacer = _binance.WeightPacer(10**12)
        return client

    def futures(self) -> _binance.BinanceFuturesClient:
        return self._unpaced(_binance.BinanceFuturesClient(self.fapi_base_url, **self.client_options()))

    def spot(self) -> _binance.BinanceSpotClient:
        return self._unpaced(_binance.BinanceSpotClient(self.spot_base_url, **self.client_options()))

    def vision(self) -> _vision.BinanceVisionClient:
        return _vision.BinanceVisionClient(self.vision_base_url, **self.client_options())


class BybitResource(_Venue):
    """Bybit v5 public market data (``BYBIT_BASE_URL``); ``BYBIT_CALLS_PER_MINUTE`` (default 300, far under the
    600 requests / 5 s IP limit) and ``BYBIT_MAX_ATTEMPTS``."""

    base_url: str = Field(default=_bybit.BASE_URL)
    calls_per_minute: int = Field(default=300)

    def client(self) -> _bybit.BybitClient:
        return _bybit.BybitClient(self.base_url, **self.client_options())


class OkxResource(_Venue):
    """OKX v5 public data (``OKX_BASE_URL``); ``OKX_CALLS_PER_MINUTE`` (default 120: rubik allows 5 / 2 s) and
    ``OKX_MAX_ATTEMPTS``."""

    base_url: str = Field(default=_okx.BASE_URL)
    calls_per_minute: int = Field(default=120)

    def client(self) -> _okx.OkxClient:
        return _okx.OkxClient(self.base_url, **self.client_options())


class FredResource(_Venue):
    """FRED keyless ``fredgraph.csv`` (``FRED_BASE_URL``); ``FRED_CALLS_PER_MINUTE`` (default 20) and
    ``FRED_MAX_ATTEMPTS``."""

    base_url: str = Field(default=_fred.BASE_URL)
    calls_per_minute: int = Field(default=20)

    def client(self) -> _fred.FredClient:
        return _fred.FredClient(self.base_url, **self.client_options())


def _env(name: str, default: str) -> str | dg.EnvVar:
    """``dg.EnvVar(name)`` when the variable is set (so the UI shows where the value came from), else a default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int(name: str, default: int) -> int:
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def _env_float(name: str, default: float) -> float:
    return float(os.environ[name]) if os.environ.get(name) else default


# Each client's pacing when its *_CALLS_PER_MINUTE is not set (the APIs' documented or observed limits, see
# docs/sources.md); the benchmark's pulls phase paces with the same figures.
DEFAULT_CALLS_PER_MINUTE = {"COINGECKO": 30, "BINANCE": 600, "BYBIT": 300, "OKX": 120, "FRED": 20}


def _venue_env(name: str, venues: tuple[str, ...]) -> dict[str, Any]:
    """A venue's settings from the environment: ``<NAME>_CALLS_PER_MINUTE``, ``<NAME>_MAX_ATTEMPTS``, the clock, and
    whether ``CRYPTO_WEEKLY_VENUES`` selects it."""
    return {
        "calls_per_minute": _env_int(f"{name}_CALLS_PER_MINUTE", DEFAULT_CALLS_PER_MINUTE[name]),
        "max_attempts": _env_int(f"{name}_MAX_ATTEMPTS", 5),
        "market_now": _env("CRYPTO_WEEKLY_NOW", ""),
        "selected": name.lower() in venues,
    }


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources from the environment, after ``settings.validate()`` has checked every variable (one
    ``SettingsError`` naming the bad ones, instead of a Dagster config error when a run starts)."""
    settings = validate()
    cg_key = dg.EnvVar("COINGECKO_API_KEY") if os.environ.get("COINGECKO_API_KEY") else None
    venues = parse_venues(os.environ.get("CRYPTO_WEEKLY_VENUES"))
    return {
        # One meaning for every command and the UI: settings.warehouse_root (absolute; see pipelines.settings).
        "warehouse": WarehouseResource(
            root=str(settings.warehouse_root), reports_url=settings.get("CRYPTO_WEEKLY_REPORTS_URL", "")
        ),
        "coingecko": CoinGeckoResource(
            base_url=_env("COINGECKO_BASE_URL", PUBLIC_BASE_URL),
            api_key=cg_key,
            plan=settings.get("COINGECKO_API_PLAN", "demo"),  # normalized to lower case
            calls_per_minute=_env_int("COINGECKO_CALLS_PER_MINUTE", DEFAULT_CALLS_PER_MINUTE["COINGECKO"]),
            max_attempts=_env_int("COINGECKO_MAX_ATTEMPTS", 5),
            timeout_seconds=_env_float("COINGECKO_TIMEOUT_SECONDS", 30.0),
            top_n=_env_int("COINGECKO_TOP_N", 250),
            max_retry_wait_seconds=_env_float("HTTP_MAX_RETRY_WAIT_SECONDS", 120.0),
            market_now=_env("CRYPTO_WEEKLY_NOW", ""),
        ),
        "binance": BinanceResource(
            fapi_base_url=_env("BINANCE_FAPI_BASE_URL", _binance.FAPI_BASE_URL),
            spot_base_url=_env("BINANCE_SPOT_BASE_URL", _binance.SPOT_BASE_URL),
            vision_base_url=_env("BINANCE_VISION_BASE_URL", _vision.BASE_URL),
            **_venue_env("BINANCE", venues),
        ),
        "bybit": BybitResource(
            base_url=_env("BYBIT_BASE_URL", _bybit.BASE_URL), **_venue_env("BYBIT", venues)
        ),
        "okx": OkxResource(base_url=_env("OKX_BASE_URL", _okx.BASE_URL), **_venue_env("OKX", venues)),
        "fred": FredResource(base_url=_env("FRED_BASE_URL", _fred.BASE_URL), **_venue_env("FRED", venues)),
    }
