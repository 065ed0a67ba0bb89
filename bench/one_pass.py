"""Every weekly table of every week of the emulator's history, week by week against one pass over a lake read
once (``assets.weekly.weeks.compute_weeks``), on the every-week lake (``tests._every_week.build_lake``: 110
coins, 6 perpetuals, 87 weeks). Prints both wall times, their ratio and every (table, week) whose outcome
differs (written bytes, metadata, problems or failure); exits 1 when one does.

``python -m bench.one_pass [--weeks N]`` (the first N weeks; default all). About a minute for the lake, then
the week-by-week pass dominates.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.one_pass", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weeks", type=int, default=None, help="only the first N weeks")
    args = ap.parse_args(argv)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    from assets.weekly.weeks import compute_weeks
    from tests import _every_week as ew
    from tests import _one_pass

    weeks = ew.all_weeks()[: args.weeks]
    with tempfile.TemporaryDirectory(prefix="one-pass-bench-") as tmp:
        t0 = time.perf_counter()
        wh = ew.build_lake(Path(tmp) / "warehouse")
        lake_s = time.perf_counter() - t0
        alone, alone_s = _one_pass.timed(_one_pass.each_week_alone, wh, weeks)
        one_pass, one_pass_s = _one_pass.timed(compute_weeks, wh, weeks)
        diffs = _one_pass.differences(alone, one_pass)
    cells = sum(len(w) for w in one_pass.values())
    print(
        f"lake built in {lake_s:.0f} s; {len(weeks)} weeks ({weeks[0]} .. {weeks[-1]}) x {len(one_pass)} tables"
    )
    print(f"week by week: {alone_s:.1f} s; one pass: {one_pass_s:.1f} s; ratio {alone_s / one_pass_s:.1f}x")
    print(f"outcomes differing: {len(diffs)} of {cells}")
    for d in diffs:
        print(f"  {d}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
