"""One week through the distributed stack (pipelines/stack.py) on one worker, then on two, in one session.

    python -m bench.workers [--week 2025-11-17] [--first-day 2025-11-01]

Prints a JSON line: each run's seconds (the week's runs, from submission to the report) and the ratio. The
emulator's clock is the tests' (2025-12-02 06:00 UTC) and 8 perpetuals are followed, as in tests/test_distributed.py.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--week", default="2025-11-17")
    parser.add_argument("--first-day", default="2025-11-01")
    args = parser.parse_args()
    os.environ.setdefault("CRYPTO_WEEKLY_PERP_TOP_N", "8")
    from pipelines.stack import stack

    seconds = {}
    for names in (("worker-1",), ("worker-1", "worker-2")):
        with (
            tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp,
            stack(
                workdir=Path(tmp), worker_names=names, now=datetime(2025, 12, 2, 6, tzinfo=timezone.utc)
            ) as st,
        ):
            seconds[len(names)] = st.run_week(args.week, first_day=args.first_day).seconds
    print(
        json.dumps(
            {
                "week": args.week,
                "one_worker_s": round(seconds[1], 1),
                "two_workers_s": round(seconds[2], 1),
                "ratio": round(seconds[1] / seconds[2], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
