"""Every environment variable the project reads, checked in one place before any work.

``validate()`` returns the settings, typed and normalized, or raises one ``SettingsError`` whose message names
each bad variable, the value it has and what is allowed. ``build_resources`` and every CLI command call it
first, so a typo fails in milliseconds with one line instead of a Dagster config error or a traceback mid-run.

``WAREHOUSE_DIR`` has one meaning for every command (``warehouse_root``): when set, that path (a relative one
is taken from the current directory); when unset, the ``warehouse/`` folder of the project checkout this code
runs from (or ``./warehouse`` when the package is installed outside a checkout). It is always made absolute.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
APIS = ("COINGECKO", "BINANCE", "BYBIT", "OKX", "FRED")
BASE_URLS = (
    "COINGECKO_BASE_URL",
    "BINANCE_FAPI_BASE_URL",
    "BINANCE_SPOT_BASE_URL",
    "BINANCE_VISION_BASE_URL",
    "BYBIT_BASE_URL",
    "OKX_BASE_URL",
    "FRED_BASE_URL",
)
PLANS = ("demo", "pro")


class SettingsError(ValueError):
    """One or more environment variables (or options) have a value the pipeline cannot use."""


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL with a host")
    return value


def _int(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            n = int(value.strip())
        except ValueError:
            raise ValueError(f"expected a whole number >= {minimum}") from None
        if n < minimum:
            raise ValueError(f"expected a whole number >= {minimum}")
        return n

    return parse


def _seconds(value: str) -> float:
    try:
        x = float(value.strip())
    except ValueError:
        raise ValueError("expected a number of seconds > 0") from None
    if not x > 0 or x == float("inf"):
        raise ValueError("expected a number of seconds > 0")
    return x


def _plan(value: str) -> str:
    v = value.strip().lower()
    if v not in PLANS:
        raise ValueError("expected demo or pro (any case)")
    return v


def _now(value: str) -> str:
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("expected an ISO-8601 date-time such as 2025-11-25T06:00:00+00:00") from None
    return value.strip()


# Venues a user may select with CRYPTO_WEEKLY_VENUES (CoinGecko is the report's backbone: always used).
VENUES = ("binance", "bybit", "okx", "fred")


def parse_venues(value: str | None) -> tuple[str, ...]:
    """``CRYPTO_WEEKLY_VENUES`` (comma-separated, case-insensitive; empty = all) -> the selected venues.
    Unknown names raise one ``ValueError`` naming them and the valid ones."""
    names = [v.strip().lower() for v in (value or "").split(",") if v.strip()]
    if not names:
        return VENUES
    unknown = sorted(set(names) - set(VENUES))
    if unknown:
        raise ValueError(
            f"CRYPTO_WEEKLY_VENUES: unknown venue(s) {', '.join(unknown)}; "
            f"valid: {', '.join(VENUES)} (comma-separated; empty = all)"
        )
    return tuple(v for v in VENUES if v in names)


def _venues(value: str) -> tuple[str, ...]:
    try:
        return parse_venues(value)
    except ValueError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None


def _text(value: str) -> str:
    return value


EXECUTORS = ("in_process", "celery")


def _executor(value: str) -> str:
    v = value.strip().lower().replace("-", "_")
    if v not in EXECUTORS:
        raise ValueError("expected in_process (the default) or celery")
    return v


def _broker(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("redis", "rediss") or not parts.netloc:
        raise ValueError("expected a redis:// or rediss:// URL with a host")
    return value.strip()


# name -> (parser, what the README says). Only non-empty values are parsed; empty means "the default".
SPECS: dict[str, tuple[Callable[[str], Any], str]] = {
    "WAREHOUSE_DIR": (_text, "a directory path"),
    **{name: (_url, "an http(s) URL") for name in BASE_URLS},
    "COINGECKO_API_KEY": (_text, "a key"),
    "COINGECKO_API_PLAN": (_plan, "demo or pro"),
    "COINGECKO_TOP_N": (_int(1), "a whole number >= 1"),
    "COINGECKO_TIMEOUT_SECONDS": (_seconds, "seconds > 0"),
    **{f"{api}_CALLS_PER_MINUTE": (_int(0), "a whole number >= 0 (0 = no pacing)") for api in APIS},
    **{f"{api}_MAX_ATTEMPTS": (_int(1), "a whole number >= 1") for api in APIS},
    "HTTP_MAX_RETRY_WAIT_SECONDS": (_seconds, "seconds > 0"),
    "CRYPTO_WEEKLY_NOW": (_now, "an ISO-8601 date-time"),
    "CRYPTO_WEEKLY_PERP_TOP_N": (_int(1), "a whole number >= 1"),
    "CRYPTO_WEEKLY_REPORTS_URL": (_url, "an http(s) URL (set by crypto-weekly dev)"),
    "CRYPTO_WEEKLY_VENUES": (_venues, "a comma-separated list of binance, bybit, okx, fred"),
    "CRYPTO_WEEKLY_EXECUTOR": (_executor, "in_process or celery (steps on Celery workers)"),
    "CRYPTO_WEEKLY_CELERY_BROKER": (_broker, "a redis:// URL (the Celery broker and result backend)"),
    "CRYPTO_WEEKLY_CELERY_VISIBILITY_TIMEOUT": (
        _int(1),
        "seconds >= 1 before Redis hands the task of a lost worker to another (longer than any step)",
    ),
}


@dataclass(frozen=True)
class Settings:
    values: dict[str, Any]  # the set variables, parsed
    warehouse_root: Path

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def default_warehouse(cwd: Path | None = None) -> Path:
    """``WAREHOUSE_DIR`` unset: the project checkout's ``warehouse/``, else ``./warehouse``."""
    if (PROJECT_ROOT / "pyproject.toml").exists() and (PROJECT_ROOT / "pipelines").is_dir():
        return PROJECT_ROOT / "warehouse"
    return (cwd or Path.cwd()) / "warehouse"


def warehouse_root(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    value = env.get("WAREHOUSE_DIR") or ""
    return Path(value).expanduser().resolve() if value else default_warehouse().resolve()


def validate(environ: Mapping[str, str] | None = None) -> Settings:
    """Check every variable; raise one ``SettingsError`` listing each bad one (name, value, what is allowed)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, (parse, _) in SPECS.items():
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            shown = "***" if name == "COINGECKO_API_KEY" else raw
            problems.append(f"{name}={shown!r} is not valid: {exc}")
    if values.get("CRYPTO_WEEKLY_EXECUTOR") == "celery" and not values.get("CRYPTO_WEEKLY_CELERY_BROKER"):
        if not any(p.startswith("CRYPTO_WEEKLY_CELERY_BROKER=") for p in problems):
            problems.append(
                "CRYPTO_WEEKLY_EXECUTOR='celery' needs CRYPTO_WEEKLY_CELERY_BROKER, the Redis URL of the broker "
                "(e.g. redis://127.0.0.1:6379/0)"
            )
    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(values=values, warehouse_root=warehouse_root(env))


def check_writable(root: Path) -> Path:
    """Create the warehouse, write and remove a probe file; one ``SettingsError`` if any of it fails."""
    probe = root / f".write-probe-{uuid.uuid4().hex}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(
            f"WAREHOUSE_DIR={str(root)!r} is not writable ({exc.strerror or exc}); "
            "set WAREHOUSE_DIR to a directory you can write to"
        ) from None
    return root
