"""Helpers shared by the reliability and security tests: hashing a warehouse, running a week quietly."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.runner import WeekRun, run_week
from tests.conftest import run_instance


def tree_hashes(root: Path, *subdirs: str) -> dict[str, str]:
    """sha256 of every file under ``root/<subdir>`` (all of ``root`` when none given), keyed by relative path."""
    bases = [root / s for s in subdirs] if subdirs else [root]
    out = {}
    for base in bases:
        for p in sorted(base.rglob("*")):
            if p.is_file():
                out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_untouched(before: dict[str, str], after: dict[str, str]) -> None:
    """Every file that existed before still exists with the same bytes (new files may have appeared)."""
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"{len(changed)} stored file(s) changed or vanished, e.g. {changed[:5]}"


def week(week_key: str, first_day: str) -> WeekRun:
    with run_instance() as instance:
        return run_week(week_key, instance, first_day=first_day)
