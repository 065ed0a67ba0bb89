"""Compare the set-based floor's weekly tables with the tables the project wrote, every week of the lake.

    python -m bench.set_floor.check WAREHOUSE [TABLE ...]

WAREHOUSE is a warehouse folder the project backfilled (its ``lake/`` holds the clean tables and the weekly ones).
Prints the time to read the lake and to compute each module's tables, then each table's weeks compared; exits 1
when a week differs (naming the first rows that do)."""

from __future__ import annotations

import sys
import time

from bench.set_floor import modules, project_weeks, read_lake, table_differences


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    warehouse, wanted = argv[0], set(argv[1:]) or None
    unknown = sorted((wanted or set()) - {t for m in modules() for t in m.TABLES})
    if unknown:
        print(f"not a weekly table of the floor: {', '.join(unknown)}")
        return 2
    t0 = time.perf_counter()
    lake = read_lake(warehouse)
    if "coin_daily" not in lake:
        print(
            f"{warehouse}: no coin_daily partition under {warehouse}/lake; give a warehouse the project backfilled"
        )
        return 2
    if not any(project_weeks(warehouse, t) for m in modules(wanted) for t in m.TABLES):
        print(
            f"{warehouse}: the project wrote no weekly table there to compare with; backfill its weeks first"
        )
        return 2
    print(
        f"read the lake: {time.perf_counter() - t0:.3f} s ({', '.join(f'{k} {v.height}' for k, v in lake.items())})"
    )
    failed = 0
    for module in modules(wanted):
        names = [t for t in module.TABLES if wanted is None or t in wanted]
        weeks = sorted({w for t in names for w in project_weeks(warehouse, t)})
        t0 = time.perf_counter()
        frames = module.compute(lake, weeks)
        print(f"{module.__name__}: {len(weeks)} weeks computed in {time.perf_counter() - t0:.3f} s")
        for table in names:
            if table not in frames:
                print(f"  {table}: NOT COMPUTED")
                failed += 1
                continue
            diffs = table_differences(warehouse, table, frames[table], weeks)
            print(f"  {table}: {'equal' if not diffs else f'{len(diffs)} difference(s)'}")
            for d in diffs[:10]:
                print(f"    {d}")
            failed += bool(diffs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
