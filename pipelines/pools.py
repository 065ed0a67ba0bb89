"""Concurrency pools, assigned in one place instead of in every asset.

The rule (applied by ``apply_pools`` in ``pipelines/definitions.py`` to every asset, including ones added later):

* a **raw** asset (group ``raw``) that uses a source resource goes into the pool ``source_<resource>``, e.g.
  ``source_coingecko``: one step at a time, across every run of the instance, talks to each API. The API's rate
  budget is shared instead of doubled, and two runs never pull (and store) the same responses: the second one
  finds them stored and makes no request.
* every other asset goes into the pool ``asset_<op name>``: one step at a time materializes a given asset, so a
  backfill and the scheduled run take turns on the same lake files instead of racing on them.

``.dagster_home/dagster.yaml`` sets ``concurrency.pools.default_limit: 1`` with ``granularity: op``, so every
pool above holds one step; runs launched by the daemon and in-process runs of the command line claim the same
slots from the instance's storage. An asset that already declares ``pool=`` keeps its own pool.

The DuckDB file (``catalog.duckdb``) needs no pool: ``Warehouse.refresh_catalog`` is the only code that opens it
read-write and it does so under an exclusive ``fcntl`` lock; every read goes through in-memory connections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg
from dagster._core.definitions.input import In
from dagster._core.definitions.output import Out

RAW_GROUPS = frozenset({"raw"})
NOT_SOURCES = frozenset({"warehouse", "io_manager"})


def pool_for(asset: dg.AssetsDefinition) -> str:
    """The pool an asset's step belongs to, by the rule above."""
    op = asset.node_def
    groups = {asset.group_names_by_key.get(k) for k in asset.keys}
    sources = sorted(set(op.required_resource_keys) - NOT_SOURCES)
    if groups & RAW_GROUPS and sources:
        return "source_" + "_".join(sources)
    return f"asset_{op.name}"


def with_pool(asset: dg.AssetsDefinition, pool: str) -> dg.AssetsDefinition:
    """The same asset with its op in ``pool``.

    Dagster has no public way to change an existing asset's pool, so the op is rebuilt with the same fields the
    public ``OpDefinition.with_replaced_properties`` copies, plus the pool (Dagster 1.13 internals; the test of
    ``tests/test_operations.py`` fails if they change).
    """
    op = asset.node_def
    if not isinstance(op, dg.OpDefinition):  # graph-backed assets: left as they are
        return asset
    new_op = dg.OpDefinition.dagster_internal_init(
        compute_fn=op.compute_fn,
        name=op.name,
        ins={d.name: In.from_definition(d) for d in op.input_defs},
        outs={d.name: Out.from_definition(d) for d in op.output_defs},
        description=op.description,
        config_schema=op.config_schema,
        required_resource_keys=op.required_resource_keys,
        tags=op.tags,
        version=None,
        retry_policy=op.retry_policy,
        code_version=op.version,
        pool=pool,
    )
    attrs = asset.get_attributes_dict()
    attrs["node_def"] = new_op
    return dg.AssetsDefinition.dagster_internal_init(**attrs)


def apply_pools(assets: Iterable[object]) -> Sequence[object]:
    """Every ``AssetsDefinition`` without a pool gets one by the rule; anything else is passed through."""
    out = []
    for a in assets:
        if isinstance(a, dg.AssetsDefinition) and a.is_executable and isinstance(a.node_def, dg.OpDefinition):
            if not a.node_def.pool:
                a = with_pool(a, pool_for(a))
        out.append(a)
    return out
