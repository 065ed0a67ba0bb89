import os
from pathlib import Path

import pytest

# The real 2025 data set is never copied into the project: it is read from the shared/ folder beside the
# repository, or from CRYPTO_WEEKLY_REAL_DATA (a clone elsewhere pointing at it).
REAL = Path(
    os.environ.get("CRYPTO_WEEKLY_REAL_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
)


def real_dir() -> Path:
    """The real-data folder, or skip the test with the reason."""
    if not REAL.is_dir():
        pytest.skip(
            f"real market data not found at {REAL} (put shared/ beside the repository, or set "
            "CRYPTO_WEEKLY_REAL_DATA)"
        )
    return REAL


def real_file(rel: str) -> Path:
    """A file of the shared real-data set, or skip the test with the reason."""
    path = real_dir() / rel
    if not path.exists():
        pytest.skip(f"real data file not available: {path}")
    return path
