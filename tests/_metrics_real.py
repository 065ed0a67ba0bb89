
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def real_file(rel: str) -> Path:
    """A file of the shared real-data set beside the repo, or skip the test with the reason."""
    path = REAL / rel
    if not path.exists():
        pytest.skip(f"real data not available: {path} (clone the repo with shared/ beside it)")
    return path
