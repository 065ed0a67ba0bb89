"""A loopback HTTP server that answers in the real APIs' formats, with injectable faults.

One server emulates every source; each API lives under its own path prefix, so a client's base URL is the
only thing that changes between the emulator and production::

    COINGECKO_BASE_URL = http://127.0.0.1:<port>/coingecko/api/v3      (real: https://api.coingecko.com/api/v3)

It binds 127.0.0.1 on an ephemeral port by default. The standard library's ``ThreadingHTTPServer`` is used on
purpose: faults such as a connection reset or a body cut mid-way need control of the raw socket.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pipelines.emulator.market import DEFAULT_SEED, SyntheticMarket, build_market


@dataclass
class Request:
    method: str
    path: str  # path below the API prefix, e.g. /coins/markets
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(obj, separators=(",", ":")).encode(), headers or {})


class ApiError(Exception):
    """Raised by a route to answer with an error body in the API's own format."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


Handler = Callable[[Request], Response]


@dataclass
class Fault:
    """Answer matching requests wrongly, ``times`` times (None = forever).

    kinds: ``429`` / ``418`` / ``500`` / ``502`` / ``503`` (status with the API's error body and, for 429/418,
    a ``Retry-After`` of ``retry_after`` seconds), ``timeout`` (sleep ``delay`` seconds before answering),
    ``reset`` (close the connection without a response), ``truncated`` (cut the body in half), ``invalid_json``
    (a body that is not JSON), ``drift`` (apply ``mutate`` to the decoded JSON before sending it), ``respond``
    (answer ``status`` with ``body`` as ``content_type`` instead of routing: a region block, a 404).
    ``query``: only requests whose parameters include these values match (e.g. one FRED series, one symbol).
    """

    api: str
    path: str  # regex, searched in the path below the API prefix
    kind: str
    times: int | None = 1
    retry_after: float = 1.0
    delay: float = 5.0
    mutate: Callable[[Any], Any] | None = None
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    query: dict[str, str] | None = None

    def matches(self, api: str, path: str, query: dict[str, str] | None = None) -> bool:
        if self.query and any((query or {}).get(k) != v for k, v in self.query.items()):
            return False
        return (
            api == self.api
            and re.search(self.path, path) is not None
            and (self.times is None or self.times > 0)
        )


class MarketEmulator:
    """The synthetic market behind loopback HTTP endpoints in the real APIs' formats.

    ``now`` fixes the emulator's clock (default: the wall clock at start, floored to the hour) so that the
    same seed and the same ``now`` give the same bytes. ``plan`` is CoinGecko's: ``demo`` enforces the
    365-day history window, ``pro`` does not. ``rate_limits`` turns on the APIs' throttling (429s).
    """

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        now: datetime | None = None,
        plan: str = "pro",
        rate_limits: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        coingecko_calls_per_minute: int = 30,
    ):
        if plan not in ("demo", "pro"):
            raise ValueError("plan must be 'demo' or 'pro'")
        now = now or datetime.now(timezone.utc)
        self.now = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        self.seed = seed
        self.plan = plan
        self.rate_limits = rate_limits
        self.coingecko_calls_per_minute = coingecko_calls_per_minute
        self.host, self.port = host, port
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (api, path, query) of every request
        self.request_times: list[float] = []  # time.monotonic() of each request, in the order of ``requests``
        self.responses: list[tuple[str, str, int]] = []  # (api, path, status) of every answered request
        self._lock = threading.Lock()
        self._routes: dict[str, list[tuple[re.Pattern[str], Handler]]] = {}
        self._apis: dict[str, tuple[str, str, Callable[[int, dict[str, str]], Response]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._throttle: dict[str, list[float]] = {}
        from pipelines.emulator import register_all

        register_all(self)

    # ---- set-up -------------------------------------------------------------------------------------------
    @property
    def market(self) -> SyntheticMarket:
        return build_market(self.seed)

    def add_api(
        self, name: str, prefix: str, env_var: str, errors: Callable[[int, dict[str, str]], Response]
    ) -> None:
        """Serve an API under ``prefix``; ``env_var`` is the client setting that points at it."""
        self._apis[name] = (prefix, env_var, errors)
        self._routes.setdefault(name, [])

    @property
    def api_names(self) -> list[str]:
        """The APIs served, in the order they were added (e.g. ``coingecko``, ``binance_fapi``, ``okx``)."""
        return list(self._apis)

    def route(self, api: str, pattern: str, handler: Handler) -> None:
        self._routes[api].append((re.compile(f"^{pattern}$"), handler))

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def count(self, api: str, path_regex: str = ".*") -> int:
        with self._lock:
            return sum(1 for a, p, _ in self.requests if a == api and re.search(path_regex, p))

    def times(self, api: str, path_regex: str = ".*") -> list[float]:
        """When each request to ``api`` whose path matches ``path_regex`` arrived (``time.monotonic()``)."""
        with self._lock:
            return [
                t
                for (a, p, _), t in zip(self.requests, self.request_times, strict=True)
                if a == api and re.search(path_regex, p)
            ]

    def status_counts(self, api: str, path_regex: str = ".*") -> dict[int, int]:
        """How many answered requests got each HTTP status (e.g. ``{200: 263}``; a 429 shows as its own key)."""
        out: dict[int, int] = {}
        with self._lock:
            for a, p, status in self.responses:
                if a == api and re.search(path_regex, p):
                    out[status] = out.get(status, 0) + 1
        return out

    @property
    def url(self) -> str:
        if not self._server:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def base_urls(self) -> dict[str, str]:
        """Environment variables that point every client at this emulator."""
        return {env_var: f"{self.url}{prefix}" for prefix, env_var, _ in self._apis.values()}

    def start(self) -> MarketEmulator:
        _ = self.market  # build (about 2 s) before the first request, not during it
        emulator = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                emulator._handle(self)

        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="market-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MarketEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- request handling ---------------------------------------------------------------------------------
    def _split(self, path: str) -> tuple[str, str]:
        for api, (prefix, _, _) in self._apis.items():
            if path == prefix or path.startswith(prefix + "/"):
                return api, path[len(prefix) :] or "/"
        return "", path

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        api, sub = self._split(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests.append((api, sub, query))
            self.request_times.append(time.monotonic())
            fault = next((f for f in self.faults if f.matches(api, sub, query)), None)
            if fault and fault.times is not None:
                fault.times -= 1
        req = Request("GET", sub, query, {k.lower(): v for k, v in h.headers.items()})
        if fault and fault.kind == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            h.close_connection = True
            h.connection.close()
            return
        if fault and fault.kind == "timeout":
            time.sleep(fault.delay)
        resp = self._dispatch(api, req, fault)
        with self._lock:
            self.responses.append((api, sub, resp.status))
        body = resp.body
        if fault and fault.kind == "truncated":
            body = body[: max(1, len(body) // 2)]
        elif fault and fault.kind == "invalid_json":
            body = b"<html><body>502 Bad Gateway</body></html>"
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", resp.content_type)
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.send_header(
                "Content-Length", str(len(resp.body) if fault and fault.kind == "truncated" else len(body))
            )
            h.end_headers()
            h.wfile.write(body)
            if fault and fault.kind == "truncated":
                h.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _dispatch(self, api: str, req: Request, fault: Fault | None) -> Response:
        errors = self._apis[api][2] if api in self._apis else _generic_error
        if fault and fault.kind == "respond":
            return Response(fault.status, fault.body, {}, fault.content_type)
        if fault and fault.kind in ("429", "418", "500", "502", "503"):
            status = int(fault.kind)
            headers = {"Retry-After": f"{fault.retry_after:g}"} if status in (429, 418) else {}
            return errors(status, headers)
        throttled = self._throttled(api)
        if throttled:
            return throttled
        for pattern, handler in self._routes.get(api, []):
            m = pattern.match(req.path)
            if m:
                req.query.update(
                    {k: v for k, v in m.groupdict().items() if v is not None and k not in req.query}
                )
                try:
                    resp = handler(req)
                except ApiError as exc:
                    return exc.response
                if fault and fault.kind == "drift" and fault.mutate:
                    resp = Response.json(fault.mutate(json.loads(resp.body)), resp.status, resp.headers)
                return resp
        return errors(404, {})

    def _throttled(self, api: str) -> Response | None:
        if not self.rate_limits or api != "coingecko":
            return None
        now = time.monotonic()
        with self._lock:
            window = [t for t in self._throttle.get(api, []) if now - t < 60.0]
            window.append(now)  # every request counts, including refused ones (as at CoinGecko)
            self._throttle[api] = window
            over = len(window) > self.coingecko_calls_per_minute
        return self._apis[api][2](429, {}) if over else None


def _generic_error(status: int, headers: dict[str, str]) -> Response:
    return Response.json({"error": status}, status, headers)
