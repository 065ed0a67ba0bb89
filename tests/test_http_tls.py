"""Every source client of a process shares one TLS context (httpx would load the CA bundle for each client)."""

from __future__ import annotations

import certifi

from pipelines.sources.http import HttpSource, tls_context


def _context_of(src: HttpSource):
    return src.client._transport._pool._ssl_context  # httpx 0.28's default transport (pinned in uv.lock)


def test_clients_share_the_process_tls_context(monkeypatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    a, b = HttpSource("https://api.example.test"), HttpSource("https://other.example.test")
    assert _context_of(a) is _context_of(b) is tls_context()
    assert (
        tls_context().cert_store_stats()["x509_ca"] > 0
    )  # the CA bundle is loaded: certificates are checked


def test_a_changed_certificate_setting_gets_its_own_context(monkeypatch) -> None:
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    default = tls_context()
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())  # as a corporate proxy's bundle would be set
    custom = HttpSource("https://api.example.test")
    assert _context_of(custom) is tls_context() is not default
