"""The HTML report in a real headless Chromium: it renders, is not blank, logs no errors, and has its charts."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from pipelines.narrative.data import from_frames
from pipelines.narrative.render import render_week
from tests._narrative_frames import WEEK, frames

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def png_pixels_not_blank(png: bytes) -> bool:
    """True when the decoded image has more than one distinct row (a blank page is uniform)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw[i : i + 64] for i in range(0, len(raw), 997))) > 10


@pytest.mark.slow
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed at /usr/bin/chromium (apt-get install -y chromium)")
    r = render_week(from_frames(WEEK.isoformat(), frames(("<script>alert(1)</script>", "x"))))
    html = tmp_path / "report.html"
    html.write_text(r.html)
    png = tmp_path / "report.png"
    shot = subprocess.run(
        [
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={png}",
            "--window-size=1200,3000",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert png.exists() and png.stat().st_size > 10_000, shot.stderr[-2000:]
    assert png_pixels_not_blank(png.read_bytes())
    console = [line for line in shot.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    dom = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count("<svg") == 6
    assert "Market Update – <span" in dom and ">November 24, 2025</span>" in dom
    assert "<script" not in dom  # the hostile name stayed text
    import os

    if os.environ.get("NARRATIVE_SCREENSHOT"):
        Path(os.environ["NARRATIVE_SCREENSHOT"]).write_bytes(png.read_bytes())
