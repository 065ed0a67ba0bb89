"""Immutable report versions: reports/<week>/versions/<n>/ and a CHANGES.md diff between versions.

Publishing the same bytes again is a no-op (the latest version is returned). Different bytes make version n+1,
with ``CHANGES.md`` holding a unified diff (difflib) of the Markdown against version n. The latest version is
also copied to ``reports/<week>/`` (report.md, report.html, manifest.json, charts/, CHANGES.md).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipelines.warehouse import atomic_write_bytes


@dataclass
class Published:
    version: int
    directory: Path
    new: bool
    content_sha256: str


def _digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def _versions(week_dir: Path) -> list[int]:
    base = week_dir / "versions"
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()) if base.exists() else []


def changes_md(week: str, old_version: int | None, old_md: str, new_version: int, new_md: str) -> str:
    if old_version is None:
        return f"# Changes to the report for week {week}\n\nVersion {new_version} is the first version.\n"
    diff = difflib.unified_diff(
        old_md.splitlines(keepends=True),
        new_md.splitlines(keepends=True),
        fromfile=f"versions/{old_version}/report.md",
        tofile=f"versions/{new_version}/report.md",
    )
    body = "".join(diff)
    return f"# Changes to the report for week {week}\n\nVersion {old_version} -> version {new_version}.\n\n```diff\n{body}```\n"


def publish(week_dir: Path, week: str, files: dict[str, bytes]) -> Published:
    """``files``: relative path -> bytes (must include report.md)."""
    digest = _digest(files)
    versions = _versions(week_dir)
    if versions:
        last = week_dir / "versions" / str(versions[-1])
        if (last / ".content-sha256").exists() and (last / ".content-sha256").read_text() == digest:
            _write_latest(week_dir, last)
            return Published(versions[-1], last, False, digest)
    n = versions[-1] + 1 if versions else 1
    vdir = week_dir / "versions" / str(n)
    old_md = (week_dir / "versions" / str(versions[-1]) / "report.md").read_text() if versions else ""
    for rel, data in sorted(files.items()):
        atomic_write_bytes(vdir / rel, data)
    atomic_write_bytes(
        vdir / "CHANGES.md",
        changes_md(week, versions[-1] if versions else None, old_md, n, files["report.md"].decode()).encode(),
    )
    atomic_write_bytes(vdir / ".content-sha256", digest.encode())  # written last: marks the version complete
    _write_latest(week_dir, vdir)
    return Published(n, vdir, True, digest)


def _write_latest(week_dir: Path, vdir: Path) -> None:
    for path in sorted(vdir.rglob("*")):
        if path.is_file() and path.name != ".content-sha256":
            target = week_dir / path.relative_to(vdir)
            if not target.exists() or target.read_bytes() != path.read_bytes():
                atomic_write_bytes(target, path.read_bytes())
