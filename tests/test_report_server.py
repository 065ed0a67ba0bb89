"""The reports folder served by ``crypto-weekly dev``: an index of every week, each report's HTML, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pipelines.report_server import ReportServer


def test_index_and_reports(tmp_path: Path) -> None:
    reports = tmp_path / "wh" / "reports"
    d = reports / "2025-11-17"
    d.mkdir(parents=True)
    (d / "report.html").write_text("<h1>Crypto Falls Below $3T</h1>")
    (d / "report.md").write_text("# x")
    facts = [
        {"priority": 100, "text": "The total market cap closed below $3T."},
        {"priority": 1, "text": "minor"},
    ]
    (d / "manifest.json").write_text(
        json.dumps({"title": "Crypto Falls <Below> $3T", "facts": facts, "data_gaps": ["a"]})
    )
    (tmp_path / "wh" / "secret.txt").write_text("outside the reports folder")
    with ReportServer(reports) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        index = httpx.get(srv.url + "/").text
        assert 'href="/2025-11-17/report.html"' in index
        assert "Crypto Falls &lt;Below&gt; $3T" in index and "closed below $3T" in index
        assert httpx.get(srv.url + "/2025-11-17/report.html").text.startswith("<h1>Crypto Falls")
        assert httpx.get(srv.url + "/../secret.txt").status_code == 404
        assert httpx.get(srv.url + "/2025-11-17/").status_code == 404  # no directory listings
        # no icon, and no 404 for the one browsers ask for (their console reports it as an error)
        icon = httpx.get(srv.url + "/favicon.ico")
        assert (icon.status_code, icon.content) == (204, b"")


def test_reports_url_reaches_the_warehouse_resource(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipelines.resources import build_resources

    monkeypatch.setenv("WAREHOUSE_DIR", str(tmp_path))
    monkeypatch.setenv("CRYPTO_WEEKLY_REPORTS_URL", "http://127.0.0.1:3001")
    assert build_resources()["warehouse"].reports_url == "http://127.0.0.1:3001"
