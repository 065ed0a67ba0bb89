"""The reports folder over HTTP on 127.0.0.1 (``crypto-weekly dev``): an index of every week, with its title,
key figures and gaps, and each week's files (``/<week>/report.html``) served as they are on disk.

A warehouse on object storage (``WAREHOUSE_DIR=s3://...``) is served the same way, each file read from its
object when asked for (``reports`` is then a ``UPath``); a request path is a plain relative path there (no
``..``, no hidden part), as ``SimpleHTTPRequestHandler`` allows locally."""

from __future__ import annotations

import html
import json
import mimetypes
import threading
import urllib.parse
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipelines.warehouse import is_remote

KEY_FIGURES = 3


def index_html(reports: Path) -> str:
    rows = []
    weeks = sorted((p for p in reports.iterdir() if p.is_dir()), reverse=True) if reports.is_dir() else []
    for d in weeks:
        if not (d / "report.html").exists():
            continue
        try:
            man = json.loads((d / "manifest.json").read_text())
        except (OSError, ValueError):
            man = {}
        facts = sorted(man.get("facts") or [], key=lambda f: -f.get("priority", 0))[:KEY_FIGURES]
        gaps = man.get("data_gaps") or []
        week = html.escape(d.name)
        rows.append(
            f'<tr><td><a href="/{week}/report.html">{week}</a></td>'
            f"<td><strong>{html.escape(man.get('title', ''))}</strong><ul>"
            + "".join(f"<li>{html.escape(f.get('text', ''))}</li>" for f in facts)
            + f"</ul></td><td>{len(gaps) or ''}</td>"
            f'<td><a href="/{week}/report.md">md</a> <a href="/{week}/manifest.json">manifest</a></td></tr>'
        )
    body = (
        "".join(rows) or '<tr><td colspan="4">No report yet: run <code>crypto-weekly report</code>.</td></tr>'
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>crypto-weekly reports</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}td{vertical-align:top;padding:.4em;"
        "border-bottom:1px solid #ddd}ul{margin:.3em 0}</style></head><body><h1>Weekly reports</h1>"
        "<table><tr><th>week</th><th>headline and key figures</th><th>data gaps</th><th>files</th></tr>"
        f"{body}</table></body></html>"
    )


class _Handler(SimpleHTTPRequestHandler):
    remote: Path | None = None  # the reports folder on object storage; None: ``directory`` on disk

    def _send(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_remote(self) -> None:
        parts = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/").split("/")
        if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
            self.send_error(404)
            return
        target = self.remote.joinpath(*parts)  # type: ignore[union-attr]
        try:
            if not target.is_file():
                raise FileNotFoundError(str(target))
            data = target.read_bytes()
        except FileNotFoundError:
            self.send_error(404)
            return
        kind = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        self._send(data, kind + ("; charset=utf-8" if kind.startswith("text/") else ""))

    def do_GET(self) -> None:
        if self.path == "/favicon.ico":
            # Browsers ask for it on every page; "no content" instead of a 404 that their console reports as an
            # error (the reports carry no icon).
            self.send_response(204)
            self.end_headers()
            return
        if self.path in ("/", "/index.html"):
            self._send(index_html(self.remote or Path(self.directory)).encode(), "text/html; charset=utf-8")
            return
        if self.remote is not None:
            self._send_remote()
            return
        super().do_GET()

    def list_directory(self, path):
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


class ReportServer:
    """``with ReportServer(reports_dir, port) as srv: srv.url`` serves until the block ends."""

    def __init__(self, reports: Path, port: int = 0, host: str = "127.0.0.1"):
        if is_remote(reports):  # objects need no folder; the handler reads them by name
            handler = type("_RemoteHandler", (_Handler,), {"remote": reports})
            self.httpd = ThreadingHTTPServer((host, port), partial(handler, directory="/nonexistent"))
        else:
            reports.mkdir(parents=True, exist_ok=True)
            self.httpd = ThreadingHTTPServer((host, port), partial(_Handler, directory=str(reports)))
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="reports", daemon=True)

    def __enter__(self) -> ReportServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
