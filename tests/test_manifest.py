"""The code version in every manifest covers what decides a report: both code packages and the locked
dependencies, so a change to an asset body (assets/) is a new code version too."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import manifest


def _version(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(manifest, "PROJECT_ROOT", root)
    return manifest.code_version.__wrapped__()["source_sha256"]


def test_code_version_covers_assets_pipelines_and_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in ("pipelines/a.py", "assets/weekly/b.py", "pipelines/narrative/templates/r.md.j2", "uv.lock"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / "README.md").write_text("docs do not change the numbers\n")
    base = _version(tmp_path, monkeypatch)
    (tmp_path / "README.md").write_text("edited\n")
    assert _version(tmp_path, monkeypatch) == base
    seen = {base}
    for rel in ("assets/weekly/b.py", "pipelines/a.py", "pipelines/narrative/templates/r.md.j2", "uv.lock"):
        (tmp_path / rel).write_text("x = 2\n")
        seen.add(_version(tmp_path, monkeypatch))
    assert len(seen) == 5  # every edit above moved the version
