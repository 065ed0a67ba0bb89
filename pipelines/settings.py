"""Every environment variable the project reads, checked in one place before any work.

``validate()`` returns the settings, typed and normalized, or raises one ``SettingsError`` whose message names
each bad variable, the value it has and what is allowed. ``build_resources`` and every CLI command call it
first, so a typo fails in milliseconds with one line instead of a Dagster config error or a traceback mid-run.

``WAREHOUSE_DIR`` has one meaning for every command (``warehouse_root``): when set, that path (a relative one
is taken from the current directory); when unset, the ``warehouse/`` folder of the project checkout this code
runs from (or ``./warehouse`` when the package is installed outside a checkout). It is always made absolute.
An ``s3://bucket/prefix`` URL puts the warehouse on S3-compatible object storage (``object_store_root``; the
endpoint and credentials come from the standard ``AWS_*`` variables, see docs/deploy.md); any other ``scheme://``
is refused.
"""

from __future__ import annotations

import os
import re
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


EXECUTORS = ("in_process", "celery", "k8s_job")


def _executor(value: str) -> str:
    v = value.strip().lower().replace("-", "_")
    if v not in EXECUTORS:
        raise ValueError("expected in_process (the default), celery or k8s_job")
    return v


AUTOMATION = ("running", "stopped")


def _automation(value: str) -> str:
    v = value.strip().lower()
    if v not in AUTOMATION:
        raise ValueError("expected running (the default) or stopped")
    return v


def automation_running(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the schedules and sensors start running when a daemon loads the code (``CRYPTO_WEEKLY_AUTOMATION``,
    default ``running``). ``stopped`` is for a stack whose runs are all submitted by hand against a fixed clock
    (the tests' distributed stack): the daemon's wall clock would otherwise start the 00:45 daily run inside it.
    A stopped schedule or sensor can still be started from the UI."""
    env = os.environ if environ is None else environ
    raw = (env.get("CRYPTO_WEEKLY_AUTOMATION") or "").strip()
    try:
        return not raw or _automation(raw) == "running"
    except ValueError as exc:
        raise SettingsError(f"CRYPTO_WEEKLY_AUTOMATION={raw!r} is not valid: {exc}") from None


def _broker(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("redis", "rediss") or not parts.netloc:
        raise ValueError("expected a redis:// or rediss:// URL with a host")
    return value.strip()


# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$")
WAREHOUSE_URL_FORM = "s3://bucket/prefix"


def parse_warehouse_url(value: str) -> str:
    """An object-store ``WAREHOUSE_DIR`` -> ``s3://bucket/prefix`` (normalized: no trailing slash), or a
    ``ValueError`` saying what is wrong. Only ``s3://`` is supported; the prefix (optional) is made of plain path
    components (no ``..``, no empty part, no query or fragment)."""
    parts = urlsplit(value.strip())
    if parts.scheme != "s3":
        raise ValueError(
            f"{parts.scheme}:// is not supported: expected a directory path or {WAREHOUSE_URL_FORM}"
        )
    if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
        raise ValueError(f"expected {WAREHOUSE_URL_FORM} (no credentials, port, query or fragment)")
    if not _BUCKET.match(parts.netloc) or ".." in parts.netloc:
        raise ValueError(
            f"expected {WAREHOUSE_URL_FORM}; {parts.netloc!r} is not a bucket name "
            "(3-63 lower-case letters, digits, dots and hyphens)"
        )
    prefix = parts.path.strip("/")
    components = prefix.split("/") if prefix else []
    bad = [c for c in components if not _PREFIX_PART.match(c) or ".." in c]
    if bad:
        raise ValueError(
            f"expected {WAREHOUSE_URL_FORM}; prefix part {bad[0]!r} is not a plain name "
            "(letters, digits, '.', '_', '=', '-'; no empty part or '..')"
        )
    return f"s3://{parts.netloc}" + (f"/{prefix}" if prefix else "")


def _warehouse(value: str) -> str:
    return parse_warehouse_url(value) if "://" in value else value


# name -> (parser, what the README says). Only non-empty values are parsed; empty means "the default".
SPECS: dict[str, tuple[Callable[[str], Any], str]] = {
    "WAREHOUSE_DIR": (_warehouse, "a directory path or s3://bucket/prefix"),
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
    "CRYPTO_WEEKLY_EXECUTOR": (
        _executor,
        "in_process, celery (steps on Celery workers) or k8s_job (a Kubernetes Job per step)",
    ),
    "CRYPTO_WEEKLY_AUTOMATION": (
        _automation,
        "running (the default) or stopped: the schedules' and sensors' start",
    ),
    "CRYPTO_WEEKLY_CELERY_BROKER": (_broker, "a redis:// URL (the Celery broker and result backend)"),
    "CRYPTO_WEEKLY_WEEK_PROCESSES": (
        _int(1),
        "a whole number >= 1 (processes that compute a range of weeks' tables, checks and reports, and a "
        "long range of days' clean parts; 1: the step's own process)",
    ),
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
    """The warehouse's root: an absolute local path, or for ``s3://bucket/prefix`` a ``upath.UPath`` on S3
    (whose ``str`` is the URL). A malformed URL raises ``SettingsError``."""
    env = os.environ if environ is None else environ
    value = env.get("WAREHOUSE_DIR") or ""
    if "://" in value:
        from pipelines.warehouse import object_store_root

        try:
            return object_store_root(parse_warehouse_url(value))
        except ValueError as exc:
            raise SettingsError(f"WAREHOUSE_DIR={value.strip()!r} is not valid: {exc}") from None
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
    from pipelines.warehouse import is_remote

    if is_remote(root):  # one PUT and one DELETE of a probe object; the message never carries a secret
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except Exception as exc:  # botocore and s3fs raise many kinds (no bucket, refused, no endpoint)
            raise SettingsError(
                f"WAREHOUSE_DIR={str(root)!r} is not writable ({type(exc).__name__}: {exc}); check the bucket "
                "and AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION"
            ) from None
        return root
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
