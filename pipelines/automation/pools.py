"""Concurrency pools: one rule, declared with Dagster's public ``pool=`` on every asset and enforced here.

The rule:

* a **raw** asset (group ``raw``) that uses a source resource is in the pool ``source_<resource>``, e.g.
  ``source_coingecko``: one step at a time, across every run of the instance, talks to each API. The API's rate
  budget is shared instead of doubled, and two runs never pull (and store) the same responses: the second one
  finds them stored and makes no request.
* every other asset is in the pool ``asset_<op name>``: one step at a time materializes a given asset, so a
  backfill and the scheduled run take turns on the same lake files instead of racing on them.

Each asset says its pool in its decorator (``@dg.asset(pool="source_binance", ...)``; the weekly table factory
derives it from the table name). ``check_pools`` runs when the code location loads (``pipelines/definitions.py``)
and refuses an asset whose pool is missing or breaks the rule, naming the pool to declare, so an asset added
later cannot silently skip the concurrency limits.

``.dagster_home/dagster.yaml`` sets ``concurrency.pools.default_limit: 1`` with ``granularity: op``, so every
pool above holds one step; runs launched by the daemon and in-process runs of the command line claim the same
slots from the instance's storage.

Dagster's slot queue can lose a wake-up (seen in 1.13 on SQLite; the same statements run on PostgreSQL): a step
asks whether its pool has a free slot, finds none, and queues itself unassigned, while the step holding the slot
frees it and hands it to the head of the queue *before* that row exists. The slot then stays free, the step
waits for an assignment nobody will make, and its run hangs (two daily runs at once hung 400 s in CI).
``hand_out_lost_slots`` does the missing hand-out: a pool whose slots outnumber its assigned steps while a step
waits unassigned, seen so at two sweeps in a row (Dagster's own hand-out passes through that state for a moment),
gets its queue's head assigned by Dagster, in Dagster's own order. ``pool_keeper`` does it
every few seconds around every in-process run (``pipelines/runner.py``), ``pool_keeper_sensor`` in the daemon for
runs it launches.

The DuckDB file (``catalog.duckdb``) needs no pool: ``Warehouse.refresh_catalog`` is the only code that opens it
read-write and it does so under an exclusive ``fcntl`` lock; every read goes through in-memory connections.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import dagster as dg

from pipelines.ticker import every

log = logging.getLogger(__name__)

RAW_GROUPS = frozenset({"raw"})
NOT_SOURCES = frozenset({"warehouse", "io_manager"})


class PoolError(ValueError):
    pass


def pool_for(asset: dg.AssetsDefinition) -> str:
    """The pool an asset's step belongs to, by the rule above."""
    op = asset.node_def
    groups = {asset.group_names_by_key.get(k) for k in asset.keys}
    sources = sorted(set(op.required_resource_keys) - NOT_SOURCES)
    if groups & RAW_GROUPS and sources:
        return "source_" + "_".join(sources)
    return f"asset_{op.name}"


def pool_problems(assets: Iterable[object]) -> list[str]:
    """One line per executable op-backed asset whose declared pool is missing or differs from the rule."""
    problems = []
    for a in assets:
        if not (
            isinstance(a, dg.AssetsDefinition) and a.is_executable and isinstance(a.node_def, dg.OpDefinition)
        ):
            continue
        want, have = pool_for(a), a.node_def.pool
        if have != want:
            problems.append(
                f"{a.node_def.name}: pool {have!r}, expected {want!r} (declare @dg.asset(pool={want!r}))"
            )
    return problems


def check_pools(assets: Sequence[object]) -> Sequence[object]:
    """The assets unchanged, or a ``PoolError`` listing every asset outside the rule."""
    problems = pool_problems(assets)
    if problems:
        raise PoolError(
            "assets outside the concurrency-pool rule (pipelines/automation/pools.py):\n"
            + "\n".join(problems)
        )
    return assets


def declared_pools(assets: Iterable[object]) -> set[str]:
    """Every pool the code location's steps claim."""
    return {
        a.node_def.pool
        for a in assets
        if isinstance(a, dg.AssetsDefinition) and isinstance(a.node_def, dg.OpDefinition) and a.node_def.pool
    }


def initialize_pool_limits(instance: dg.DagsterInstance, pools: Iterable[str]) -> list[str]:
    """Give every pool without a limit row the instance's default limit, one pool at a time; returns the pools
    initialized.

    Dagster creates a pool's row the first time a step or the run queue meets the pool, with an INSERT that falls
    back to an UPDATE in the same transaction when the row exists. On PostgreSQL the failed INSERT aborts the
    transaction, so when two processes meet a new pool at once (the daemon's queue and a run, two runs, two
    workers) the second fails with ``InFailedSqlTransaction`` and its run fails (dagster-io/dagster#33552, open
    in 1.13.27; seen here in ``make demo-distributed``). Creating every row first, from one process, leaves Dagster
    nothing to create. Two processes doing this at once are safe: a pool another one created meanwhile is
    re-read and accepted, any other error is raised.
    """
    storage = instance.event_log_storage
    default = instance.global_op_concurrency_default_limit
    if default is None or not storage.supports_global_concurrency_limits:
        return []
    existing = {p.name for p in storage.get_pool_limits()}
    done: list[str] = []
    for name in sorted(set(pools) - existing):
        try:
            storage.initialize_concurrency_limit_to_default(name)
        except Exception:
            if name not in {p.name for p in storage.get_pool_limits()}:
                raise
            continue
        done.append(name)
    return done


Waiter = tuple[str, str, str]  # (pool, run id, step key)


def _on_free_slots(key: str, info) -> tuple[list[Waiter], int]:
    """A pool's steps queued unassigned and its slots not assigned to any step (Dagster's ``ConcurrencyKeyInfo``);
    no waiters when every slot is assigned."""
    waiting = [(key, p.run_id, p.step_key) for p in info.pending_steps if p.assigned_timestamp is None]
    free = info.slot_count - (len(info.pending_steps) - len(waiting))
    return (waiting, free) if free > 0 else ([], 0)


def _waiters(storage, keys: list[str]) -> dict[str, tuple[list[Waiter], int]]:
    return {key: _on_free_slots(key, info) for key, info in storage.get_concurrency_infos(keys).items()}


def waiting_on_free_slots(instance: dg.DagsterInstance) -> frozenset[Waiter]:
    """Steps queued unassigned in a pool whose slots outnumber its assigned steps. Dagster passes through this
    state for a moment when it frees a slot (between removing the holder's row and assigning the next one);
    a lost wake-up stays in it."""
    storage = instance.event_log_storage
    if not hasattr(storage, "assign_pending_steps") or not storage.supports_global_concurrency_limits:
        return frozenset()  # only Dagster's SQL storages (SQLite, PostgreSQL) keep the queue this way
    by_pool = _waiters(storage, sorted(storage.get_concurrency_keys()))
    return frozenset(w for waiting, _ in by_pool.values() for w in waiting)


def hand_out_lost_slots(
    instance: dg.DagsterInstance, seen_before: frozenset[Waiter]
) -> tuple[list[str], frozenset]:
    """One sweep: the waiters found on free slots now *and* at the previous sweep (``seen_before``) are lost
    wake-ups, not Dagster's own hand-out in progress; their pools get their queues' heads assigned by Dagster,
    as many as the free slots. Returns ``"pool: run_id/step"`` for each step now assigned, and what this sweep
    saw (the repaired pools read again), to pass to the next one."""
    now = waiting_on_free_slots(instance)
    stuck = sorted({pool for pool, *_ in now & seen_before})
    if not stuck:
        return [], now
    storage = instance.event_log_storage
    for pool, (waiting, free) in _waiters(storage, stuck).items():
        if waiting:
            storage.assign_pending_steps([pool] * min(len(waiting), free))
    after = storage.get_concurrency_infos(stuck)
    assigned = {
        (pool, p.run_id, p.step_key)
        for pool in stuck
        for p in after[pool].pending_steps
        if p.assigned_timestamp
    }
    still = {w for pool in stuck for w in _on_free_slots(pool, after[pool])[0]}
    handed = [f"{pool}: {run}/{step}" for pool, run, step in sorted(now & assigned)]
    return handed, frozenset({w for w in now if w[0] not in after} | still)


KEEPER_EVERY_S = 3.0


@contextmanager
def pool_keeper(instance: dg.DagsterInstance, every_s: float = KEEPER_EVERY_S) -> Iterator[None]:
    """Runs ``hand_out_lost_slots`` every ``every_s`` seconds in a background thread while the block runs (an
    in-process run). Each hand-out is logged as a warning; a failed sweep (a locked SQLite file, say) is logged
    and the next one tries again."""
    seen: frozenset[Waiter] = frozenset()

    def sweep() -> None:
        nonlocal seen
        try:
            handed, seen = hand_out_lost_slots(instance, seen)
            for line in handed:
                log.warning("pool slot left free by a lost wake-up, now assigned: %s", line)
        except Exception as exc:  # the run goes on; the next sweep retries
            log.warning(
                "pool keeper: sweep failed (%s: %s); retrying in %g s", type(exc).__name__, exc, every_s
            )

    with every(every_s, sweep, "pool-keeper"):
        yield


@dg.sensor(
    name="pool_keeper_sensor",
    minimum_interval_seconds=30,
    # Always on, whatever CRYPTO_WEEKLY_AUTOMATION says: it starts no run, it only unblocks runs already going.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Gives a pool's free slot to the step waiting for it when Dagster's slot queue lost the wake-up "
    "(pipelines/automation/pools.py); every other tick skips.",
)
def pool_keeper_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    seen_before = frozenset(tuple(w) for w in json.loads(context.cursor or "[]"))
    handed, seen = hand_out_lost_slots(context.instance, seen_before)
    context.update_cursor(json.dumps(sorted(seen)))
    if handed:
        context.log.warning("pool slots left free by a lost wake-up, now assigned: " + "; ".join(handed))
        return dg.SkipReason("assigned free pool slots to waiting steps: " + "; ".join(handed))
    if seen:
        return dg.SkipReason(f"{len(seen)} step(s) on free slots; assigned at the next tick if still waiting")
    return dg.SkipReason("every waiting step waits for a busy slot")
