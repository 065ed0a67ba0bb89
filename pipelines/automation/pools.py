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
later cannot silently skip the concurrency limits. (An earlier version rebuilt each asset's op with the pool
through Dagster internals; declaring it is public API and shows in the code where a reader looks.)

``.dagster_home/dagster.yaml`` sets ``concurrency.pools.default_limit: 1`` with ``granularity: op``, so every
pool above holds one step; runs launched by the daemon and in-process runs of the command line claim the same
slots from the instance's storage.

The DuckDB file (``catalog.duckdb``) needs no pool: ``Warehouse.refresh_catalog`` is the only code that opens it
read-write and it does so under an exclusive ``fcntl`` lock; every read goes through in-memory connections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

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
