"""The HTTP layer: the circuit breaker for dead base URLs (a closed port on 127.0.0.1 fails every further request
at once) and the JSON check whose decoded body callers read."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from pipelines.sources.http import (
    BREAKER_THRESHOLD,
    HostBreaker,
    HostUnreachableError,
    HttpSource,
    SourceError,
)


@pytest.fixture(autouse=True)
def _fresh_breakers():
    HostBreaker.reset_all()
    yield
    HostBreaker.reset_all()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused at once
    return port


def test_a_dead_host_fails_fast_after_the_threshold() -> None:
    waits: list[float] = []
    src = HttpSource(f"http://127.0.0.1:{_closed_port()}", max_attempts=5, sleep=waits.append)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as first:
        src.get("/coins/bitcoin")
    # the first request tries until the breaker opens, then stops retrying
    assert isinstance(first.value, HostUnreachableError)
    assert len([w for w in waits if w > 0]) == BREAKER_THRESHOLD - 1
    for coin in range(250):  # every further coin fails at once, without waiting
        with pytest.raises(HostUnreachableError, match="unreachable"):
            src.get(f"/coins/c{coin}")
    assert len([w for w in waits if w > 0]) == BREAKER_THRESHOLD - 1
    assert time.monotonic() - t0 < 5
    assert "ConnectError" in str(first.value)


def test_the_breaker_is_per_host_and_closes_on_an_answer() -> None:
    b = HostBreaker("h:1", threshold=2, cooldown=10, clock=lambda: now[0])
    now = [0.0]
    b.failure("refused")
    assert b.allow()
    b.failure("refused")
    assert not b.allow()
    now[0] = 11.0
    assert b.allow()  # half-open: one probe after the cooldown
    assert not b.allow()
    b.success()
    assert b.allow() and b.failures == 0
    assert HostBreaker.for_host("a:1") is not HostBreaker.for_host("b:1")


@pytest.mark.parametrize(("error", "opens"), [(httpx.ConnectTimeout, True), (httpx.ReadTimeout, False)])
def test_connect_timeouts_count_read_timeouts_do_not(error: type[httpx.TransportError], opens: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("slow", request=request)

    src = HttpSource(
        "http://blackhole.test", max_attempts=5, sleep=lambda _s: None, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(SourceError) as err:
        src.get("/ping")
    assert isinstance(err.value, HostUnreachableError) is opens
    assert (HostBreaker.for_host("blackhole.test").opened_at is not None) is opens


def test_a_json_body_is_decoded_once_and_handed_out_as_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.sources.http as http

    body = b'{"prices": [[1, 2.5]], "name": "x"}'
    src = HttpSource(
        "http://emulated", transport=httpx.MockTransport(lambda req: httpx.Response(200, content=body))
    )
    decodes: list[bytes] = []
    real_loads = http.json.loads
    monkeypatch.setattr(http.json, "loads", lambda raw: decodes.append(raw) or real_loads(raw))
    fetched = src.get("/coins/x")
    assert fetched.json() == {"prices": [[1, 2.5]], "name": "x"}
    assert fetched.json() is fetched.json()  # every caller reads the object the check decoded
    assert decodes == [body]
    assert fetched.body == body  # what is stored is still the bytes as received
