"""Resources: the warehouse and the source clients, configured from the environment with ``dg.EnvVar``.

Nothing reads the environment inside an asset body; assets get these resources by parameter name.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import dagster as dg
from pydantic import Field

from pipelines.sources.coingecko import PUBLIC_BASE_URL, CoinGeckoClient
from pipelines.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """Where raw responses, the Parquet lake, the DuckDB catalog and the reports live (``WAREHOUSE_DIR``)."""

    root: str = Field(default="warehouse", description="warehouse directory")

    def get(self) -> Warehouse:
        return Warehouse(self.root)


class CoinGeckoResource(dg.ConfigurableResource):
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
        default=120, description="longest wait between two tries, whatever Retry-After asks (tests set it low)"
    )
    frozen_now: str | None = Field(
        default=None,
        description=(
            "CRYPTO_WEEKLY_NOW: an ISO UTC instant the pipeline takes as 'now' (snapshot names, fetched_at). "
            "The emulator sets its own clock here so that the same seed and clock give the same lake; unset in "
            "production (the wall clock)."
        ),
    )

    def now(self) -> datetime:
        if self.frozen_now:
            return datetime.fromisoformat(self.frozen_now).astimezone(timezone.utc)
        return datetime.now(timezone.utc)

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


def _env(name: str, default: str) -> str | dg.EnvVar:
    """``dg.EnvVar(name)`` when the variable is set (so the UI shows where the value came from), else a default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int(name: str, default: int) -> int:
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def _env_float(name: str, default: float) -> float:
    return float(os.environ[name]) if os.environ.get(name) else default


def build_resources() -> dict[str, dg.ConfigurableResource]:
    cg_key = dg.EnvVar("COINGECKO_API_KEY") if os.environ.get("COINGECKO_API_KEY") else None
    return {
        "warehouse": WarehouseResource(root=_env("WAREHOUSE_DIR", "warehouse")),
        "coingecko": CoinGeckoResource(
            base_url=_env("COINGECKO_BASE_URL", PUBLIC_BASE_URL),
            api_key=cg_key,
            plan=_env("COINGECKO_API_PLAN", "demo"),
            calls_per_minute=_env_int("COINGECKO_CALLS_PER_MINUTE", 30),
            max_attempts=_env_int("COINGECKO_MAX_ATTEMPTS", 5),
            timeout_seconds=_env_float("COINGECKO_TIMEOUT_SECONDS", 30.0),
            top_n=_env_int("COINGECKO_TOP_N", 250),
            max_retry_wait_seconds=_env_float("HTTP_MAX_RETRY_WAIT_SECONDS", 120.0),
            frozen_now=dg.EnvVar("CRYPTO_WEEKLY_NOW") if os.environ.get("CRYPTO_WEEKLY_NOW") else None,
        ),
    }
