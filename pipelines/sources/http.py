"""The HTTP layer every source client shares.

* Per-host pacing (``HostLimiter``): at most N calls a minute, shared by every client of that host in the
  process.
* Retries with ``tenacity``: on 429, 418, 5xx, timeouts, dropped connections and bodies that are not valid
  JSON; the wait honours ``Retry-After`` when the server sends it (capped), and otherwise backs off
  exponentially with jitter.
* A circuit breaker per host (``HostBreaker``): after ``BREAKER_THRESHOLD`` consecutive connection failures
  (refused, DNS, connect timeouts; a read timeout or a reset does not count: the host took the connection)
  every further request to that host fails at once with ``HostUnreachableError``, without retrying, so a dead
  base URL fails the run in seconds rather than retrying every coin for an hour. Any HTTP answer from the host closes it again; after ``BREAKER_COOLDOWN_SECONDS`` one
  request is let through to see whether the host came back.
* After the last try, ``SourceError`` names the endpoint, the parameters (secrets redacted), the status and the
  start of the body. Client errors (4xx other than 429/418) are not retried: a second try cannot fix them.

Secrets never leave this module: keys travel in headers, and everything that is logged, raised or stored
goes through ``redact``.
"""

from __future__ import annotations

import abc
import functools
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import tenacity

SECRET_WORDS = ("key", "token", "secret", "signature", "password")
USER_AGENT = "crypto-weekly/0.1"
RETRY_STATUSES = {418, 429, 500, 502, 503, 504}


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR itself, as httpx.Client would


def tls_context() -> ssl.SSLContext:
    """The process's TLS context for every client, made once per certificate setting: httpx makes one per
    client otherwise (loading the CA bundle, about 25 ms each, ten clients a daily run). Keyed by
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``, which httpx honours, so a changed setting gets a new one."""
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("***" if any(w in k.lower() for w in SECRET_WORDS) else v) for k, v in params.items()}


class SourceError(RuntimeError):
    """A request that failed for good: what was asked, what came back."""

    def __init__(
        self, message: str, *, endpoint: str, params: Mapping[str, Any], status: int | None, body: str = ""
    ):
        self.endpoint = endpoint
        self.params = redact(params)
        self.status = status
        self.body = body[:300]
        super().__init__(
            f"{message}: GET {endpoint} params={self.params} status={status}"
            + (f" body={self.body!r}" if body else "")
        )

    def __reduce__(self) -> tuple:
        # to another process as it is (a step's part computed in a pool's process): the class, the message and
        # the fields; the constructor's keywords would not come back from ``args``
        return (_restored_error, (type(self), self.args, self.__dict__))


def _restored_error(cls: type[SourceError], args: tuple, fields: dict[str, Any]) -> SourceError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(fields)
    return exc


class HistoryLimitError(SourceError):
    """The plan in use cannot reach that far back (e.g. CoinGecko's 365-day window for Demo keys)."""


class PayloadError(SourceError):
    """The response arrived but does not have the documented shape (schema drift, wrong types)."""


class HostUnreachableError(SourceError):
    """The host failed ``BREAKER_THRESHOLD`` connections in a row: requests to it fail at once for a while."""


BREAKER_THRESHOLD = 3
BREAKER_COOLDOWN_SECONDS = 300.0


class HostBreaker:
    """Consecutive connection failures against one host, shared by every client of that host in the process."""

    _registry: dict[str, HostBreaker] = {}
    _registry_lock = threading.Lock()

    def __init__(
        self,
        host: str,
        threshold: int = BREAKER_THRESHOLD,
        cooldown: float = BREAKER_COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.host, self.threshold, self.cooldown, self._clock = host, threshold, cooldown, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.last_reason = ""
        self._lock = threading.Lock()

    @classmethod
    def for_host(cls, host: str) -> HostBreaker:
        with cls._registry_lock:
            if host not in cls._registry:
                cls._registry[host] = cls(host, BREAKER_THRESHOLD, BREAKER_COOLDOWN_SECONDS)
            return cls._registry[host]

    @classmethod
    def reset_all(cls) -> None:
        with cls._registry_lock:
            cls._registry.clear()

    def allow(self) -> bool:
        """False while open; after the cooldown one request goes through (half-open)."""
        with self._lock:
            if self.opened_at is None:
                return True
            if self._clock() - self.opened_at >= self.cooldown:
                self.opened_at = self._clock()  # one probe per cooldown
                return True
            return False

    def failure(self, reason: str) -> None:
        with self._lock:
            self.failures += 1
            self.last_reason = reason
            if self.failures >= self.threshold:
                self.opened_at = self._clock()

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None


class _Retryable(Exception):
    def __init__(
        self, reason: str, status: int | None = None, retry_after: float | None = None, body: str = ""
    ):
        super().__init__(reason)
        self.reason, self.status, self.retry_after, self.body = reason, status, retry_after, body


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)
            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
        except ValueError:
            return None


class HostLimiter:
    """Spaces calls to one host at least ``60 / calls_per_minute`` seconds apart (0 = no limit)."""

    _registry: dict[str, HostLimiter] = {}
    _registry_lock = threading.Lock()

    def __init__(self, calls_per_minute: float, sleep: Callable[[float], None] = time.sleep):
        self.interval = 60.0 / calls_per_minute if calls_per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep

    @classmethod
    def for_host(cls, host: str, calls_per_minute: float) -> HostLimiter:
        with cls._registry_lock:
            lim = cls._registry.get(host)
            if lim is None or lim.interval != (60.0 / calls_per_minute if calls_per_minute > 0 else 0.0):
                lim = cls._registry[host] = cls(calls_per_minute)
            return lim

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


@dataclass
class Fetched:
    """One successful response: the body exactly as received, and the request that produced it."""

    url: str  # without query string
    endpoint: str
    params: dict[str, Any]  # redacted
    status: int
    body: bytes
    fetched_at: datetime
    attempts: int
    headers: dict[str, str] = field(default_factory=dict)
    # The body decoded when it was checked to be JSON (``HttpSource.get``), handed out by ``json`` rather than
    # decoded again; read it, never change it (every caller is handed the same object).
    decoded: Any = field(default=None, repr=False, compare=False)

    def json(self) -> Any:
        if self.decoded is None:
            self.decoded = json.loads(self.body)
        return self.decoded

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def error(self, message: str, kind: type[SourceError] = PayloadError, body: str = "") -> SourceError:
        """A ``kind`` error about this response, naming its request and status (and ``body``, when given)."""
        return kind(message, endpoint=self.endpoint, params=self.params, status=self.status, body=body)

    def oldest_ms(self, rows: list[Any], key: str) -> int:
        """The earliest epoch-ms ``key`` of this response's ``rows`` (a page of a history walked backwards); an
        error naming ``key`` when a row lacks it or holds no integer there."""
        try:
            return min(int(r[key]) for r in rows)
        except (KeyError, TypeError, ValueError) as exc:
            raise self.error(f"bad {key}") from exc

    def request_record(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "endpoint": self.endpoint,
            "params": self.params,
            "status": self.status,
            "fetched_at": self.fetched_at.isoformat(),
            "attempts": self.attempts,
        }


class Closing(abc.ABC):
    """``with thing:`` closes ``thing`` on the way out."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the object holds open (connections)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class HttpSource(Closing):
    """A base URL, its default headers, its pacing and its retry policy."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        calls_per_minute: float = 0,
        max_attempts: int = 5,
        timeout: float = 30.0,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        classify_error: Callable[[str, Mapping[str, Any], int, str], SourceError | None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.classify_error = classify_error
        # What ``fetched_at`` records: the wall clock, or the pipeline's frozen clock (the emulator's).
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._sleep = sleep
        host = urlsplit(self.base_url).netloc
        self.limiter = HostLimiter.for_host(host, calls_per_minute)
        self.breaker = HostBreaker.for_host(host)
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            transport=transport,
            verify=tls_context(),
            follow_redirects=False,
        )
        self._fallback_wait = tenacity.wait_exponential_jitter(initial=1.0, max=60.0, jitter=1.0)

    def close(self) -> None:
        self.client.close()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        if self.breaker.opened_at is not None:
            return 0.0  # the next try fails at once (HostUnreachableError): no point waiting for it
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_wait)
        return min(self._fallback_wait(state), self.max_wait)

    def get(
        self, endpoint: str, params: Mapping[str, Any] | None = None, *, expect_json: bool = True
    ) -> Fetched:
        params = dict(params or {})
        attempts = 0

        def once() -> Fetched:
            nonlocal attempts
            attempts += 1
            if not self.breaker.allow():
                raise HostUnreachableError(
                    f"{self.breaker.host} unreachable ({self.breaker.failures} connection failures in a row, last: "
                    f"{self.breaker.last_reason}); not tried again for now, check the base URL and the network",
                    endpoint=endpoint,
                    params=params,
                    status=None,
                )
            self.limiter.wait()
            try:
                resp = self.client.get(endpoint, params=params)
            except httpx.ConnectTimeout as exc:  # no connection at all (a black-holed host or port)
                self.breaker.failure(f"timeout ({type(exc).__name__})")
                raise _Retryable(f"timeout ({type(exc).__name__})") from exc
            except httpx.TimeoutException as exc:  # the host took the connection: slow, not dead
                raise _Retryable(f"timeout ({type(exc).__name__})") from exc
            except httpx.ConnectError as exc:  # refused, DNS: the host is not answering at all
                self.breaker.failure(f"{type(exc).__name__}: {exc}")
                raise _Retryable(f"transport error ({type(exc).__name__}: {exc})") from exc
            except httpx.TransportError as exc:  # reset, body cut short: the host did take the connection
                raise _Retryable(f"transport error ({type(exc).__name__}: {exc})") from exc
            self.breaker.success()
            if resp.status_code in RETRY_STATUSES:
                raise _Retryable(
                    f"HTTP {resp.status_code}",
                    resp.status_code,
                    parse_retry_after(resp.headers.get("retry-after")),
                    resp.text,
                )
            if resp.status_code >= 400:
                special = (
                    self.classify_error(endpoint, params, resp.status_code, resp.text)
                    if self.classify_error
                    else None
                )
                if special is not None:
                    raise special
                raise SourceError(
                    "request refused",
                    endpoint=endpoint,
                    params=params,
                    status=resp.status_code,
                    body=resp.text,
                )
            decoded = None
            if expect_json:
                try:
                    decoded = json.loads(resp.content)
                except ValueError as exc:
                    raise _Retryable("body is not valid JSON", resp.status_code, None, resp.text) from exc
            return Fetched(
                url=f"{self.base_url}{endpoint}",
                endpoint=endpoint,
                params=redact(params),
                status=resp.status_code,
                body=resp.content,
                fetched_at=self.clock(),
                attempts=attempts,
                headers={
                    k.lower(): v
                    for k, v in resp.headers.items()
                    if k.lower().startswith(("x-mbx", "x-bapi", "retry"))
                },
                decoded=decoded,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(once)
        except _Retryable as exc:
            raise SourceError(
                f"gave up after {attempts} attempts ({exc.reason})",
                endpoint=endpoint,
                params=params,
                status=exc.status,
                body=exc.body,
            ) from exc


class SourceClient(Closing):
    """What every source's client shares: one ``HttpSource`` (``self.http``) that sends the project's user
    agent and ``accept`` (none when ``accept`` is None) plus ``extra_headers``, and closes with the client.
    ``http_options`` go to ``HttpSource`` as they are (``calls_per_minute``, ``max_attempts``, ``timeout``,
    ``sleep``, ``transport``, ``clock``, ...)."""

    def __init__(
        self,
        base_url: str,
        *,
        accept: str | None = "application/json",
        extra_headers: Mapping[str, str] | None = None,
        **http_options: Any,
    ):
        headers = {"accept": accept} if accept is not None else {}
        headers.update({"user-agent": USER_AGENT, **(extra_headers or {})})
        self.http = HttpSource(base_url, headers=headers, **http_options)

    def close(self) -> None:
        self.http.close()
