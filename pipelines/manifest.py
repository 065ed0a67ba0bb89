"""What a report was built from: input partitions with their hashes, and the code version."""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

from pipelines.schemas import Table
from pipelines.warehouse import Warehouse, sha256_file

PACKAGE_ROOT = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """A hash of every source and template file of the pipeline, and the git commit when there is one."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*")):
        if path.suffix in (".py", ".j2", ".sql", ".csv", ".toml") and "__pycache__" not in path.parts:
            h.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
            h.update(path.read_bytes())
    out = {"source_sha256": h.hexdigest()}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PACKAGE_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        out["git_commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def input_entry(wh: Warehouse, table: Table, partition: str) -> dict[str, str]:
    path = wh.partition_path(table, partition)
    return {"table": table.name, "partition": partition, "path": wh.rel(path), "sha256": sha256_file(path)}
