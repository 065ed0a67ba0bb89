"""Immutable report versions: reports/<week>/versions/<n>/ and a CHANGES.md diff between versions.

Publishing the same bytes again is a no-op (the latest version is returned). Different bytes make version n+1,
with ``CHANGES.md`` holding a unified diff (difflib) of the Markdown against version n. The latest version is
also copied to ``reports/<week>/`` (report.md, report.html, manifest.json, charts/, CHANGES.md).

Publishing is atomic: a version is written into ``versions/.tmp-<n>-<pid>/`` and renamed to ``versions/<n>/``
only when complete (``.content-sha256`` written last). A version directory without its marker or its report.md
(left by a kill during an older publish) is incomplete: it is treated as absent and swept, so its number is
reused, and a stale temporary directory is swept the same way.

On object storage (an ``s3://`` warehouse) there is no directory rename: version n is written straight into
``versions/<n>/``, each file one atomic PUT and ``.content-sha256`` last, so the marker alone makes the version
complete; a publish killed before it leaves an incomplete version, swept and its number reused as above.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.warehouse import atomic_write_bytes, is_remote, remove_tree


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


def _complete(vdir: Path) -> bool:
    return (vdir / ".content-sha256").is_file() and (vdir / "report.md").is_file()


def _sweep(week_dir: Path) -> None:
    """Remove what a killed publish left: temporary dirs and numbered dirs that are not complete versions."""
    base = week_dir / "versions"
    if not base.exists():
        return
    for p in sorted(base.iterdir()):
        stale_tmp = p.name.startswith(".tmp-") and not _alive(p.name.rsplit("-", 1)[-1])
        if p.is_dir() and (stale_tmp or (p.name.isdigit() and not _complete(p))):
            remove_tree(p)


def _alive(pid: str) -> bool:
    """Whether the writer of a temporary directory (its pid) is still running (then its directory is left)."""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _versions(week_dir: Path) -> list[int]:
    """The complete versions, ascending (an incomplete numbered directory does not count)."""
    base = week_dir / "versions"
    if not base.exists():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit() and _complete(p))


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
    _sweep(week_dir)
    versions = _versions(week_dir)
    if versions:
        last = week_dir / "versions" / str(versions[-1])
        if (last / ".content-sha256").exists() and (last / ".content-sha256").read_text() == digest:
            _write_latest(week_dir, last)
            return Published(versions[-1], last, False, digest)
    n = versions[-1] + 1 if versions else 1
    vdir = week_dir / "versions" / str(n)
    old_md = (week_dir / "versions" / str(versions[-1]) / "report.md").read_text() if versions else ""
    # object storage has no rename: the version is written in place, complete once its marker is there
    tmp = vdir if is_remote(week_dir) else week_dir / "versions" / f".tmp-{n}-{os.getpid()}"
    remove_tree(tmp)
    for rel, data in sorted(files.items()):
        atomic_write_bytes(tmp / rel, data)
    atomic_write_bytes(
        tmp / "CHANGES.md",
        changes_md(week, versions[-1] if versions else None, old_md, n, files["report.md"].decode()).encode(),
    )
    atomic_write_bytes(tmp / ".content-sha256", digest.encode())  # written last: marks the version complete
    if tmp != vdir:
        os.rename(tmp, vdir)  # the version appears whole or not at all
    _write_latest(week_dir, vdir)
    return Published(n, vdir, True, digest)


def _write_latest(week_dir: Path, vdir: Path) -> None:
    for path in sorted(vdir.rglob("*")):
        if path.is_file() and path.name != ".content-sha256":
            target = week_dir / path.relative_to(vdir)
            if not target.exists() or target.read_bytes() != path.read_bytes():
                atomic_write_bytes(target, path.read_bytes())
