"""What a report was built from: input partitions with their hashes, and the code version."""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

from pipelines.lake_files import LAKE_FILES
from pipelines.lake_snapshot import LakeSnapshot
from pipelines.schemas import Table
from pipelines.warehouse import Warehouse, safe_component, sha256_file

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent
# What decides a report's numbers and words: the two code packages (pipelines/ and the Dagster assets/), their
# templates, and the locked dependency versions.
CODE_DIRS = ("pipelines", "assets")
CODE_FILES = ("pyproject.toml", "uv.lock")


@lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """A hash of every source and template file of ``pipelines/`` and ``assets/`` and of the locked dependencies,
    and the git commit when there is one."""
    h = hashlib.sha256()
    paths = [p for d in CODE_DIRS if (PROJECT_ROOT / d).is_dir() for p in (PROJECT_ROOT / d).rglob("*")]
    paths += [PROJECT_ROOT / f for f in CODE_FILES if (PROJECT_ROOT / f).is_file()]
    for path in sorted(paths):
        if (
            path.suffix in (".py", ".j2", ".sql", ".csv", ".toml", ".lock")
            and "__pycache__" not in path.parts
        ):
            h.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
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


def input_entries(wh: Warehouse, table: Table, partitions: list[str]) -> list[dict[str, str]]:
    """The partitions of ``table`` the report was built from, in the order given: each one's table, partition,
    path and sha256 (of a local file: hashed once per version of the file in this process, or taken from its
    closed month's segment while the file is the one it recorded, ``LakeFiles.digests``)."""
    # paths as text (a report names thousands of partitions, and path objects cost more than the hashes kept)
    rels = [f"lake/{table.name}/{table.partition_by}={safe_component(p)}/data.parquet" for p in partitions]
    if wh.remote:
        digests = [sha256_file(wh.partition_path(table, p)) for p in partitions]
    else:
        paths = [f"{wh.root}/{rel}" for rel in rels]
        # a snapshot's reports (a range of weeks) stat each file once: the files as the snapshot first named them
        known = wh.identities if isinstance(wh, LakeSnapshot) else None
        kept = LAKE_FILES.digests(
            table, paths, wh.read_cache(table), lambda path: sha256_file(Path(path)), known
        )
        digests = [kept[path] for path in paths]
    return [
        {"table": table.name, "partition": p, "path": rel, "sha256": digest}
        for p, rel, digest in zip(partitions, rels, digests, strict=True)
    ]


def input_entry(wh: Warehouse, table: Table, partition: str) -> dict[str, str]:
    """``input_entries`` of one partition."""
    return input_entries(wh, table, [partition])[0]
