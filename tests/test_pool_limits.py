"""Dagster's pool bookkeeping on the production instance (PostgreSQL): limit rows created before any run, and
lost slot wake-ups repaired.

Dagster 1.13.27 creates a pool's limit row on first use with an INSERT that falls back to an UPDATE in the same
transaction; on PostgreSQL the failed INSERT aborts the transaction, so a process that meets a pool another one
has just created fails (dagster-io/dagster#33552; it failed a weekly run of ``make demo-distributed``).
``pools.initialize_pool_limits`` creates every row once, before the daemon and the workers meet them.
"""

from __future__ import annotations

import threading

import dagster as dg
import pytest

from pipelines import workers
from pipelines.automation.pools import declared_pools, hand_out_lost_slots, initialize_pool_limits
from pipelines.definitions import all_assets
from pipelines.runner import patched_environ
from pipelines.services import Postgres, ServiceUnavailable
from tests._pool_queue import lose_a_wakeup


@pytest.fixture(scope="module")
def production_instance(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("pools")
    try:
        pg = Postgres(base / "postgres")
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    with pg:
        home = workers.prepare_home(base / "home")
        env = {**pg.env(), **workers.home_env(home)}
        with patched_environ(env), dg.DagsterInstance.get() as instance:
            yield instance, env


def test_dagster_alone_fails_on_a_pool_that_already_exists(production_instance) -> None:
    """The Dagster behaviour worked around: asking it to create a pool's row that exists raises on PostgreSQL.
    If a Dagster upgrade fixes it, this test fails and the workaround can go."""
    instance, _ = production_instance
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default("pool_for_the_dagster_check")
    with pytest.raises(Exception, match="InFailedSqlTransaction|current transaction is aborted"):
        storage.initialize_concurrency_limit_to_default("pool_for_the_dagster_check")


def test_every_declared_pool_is_created_once_with_the_default_limit(production_instance) -> None:
    instance, env = production_instance
    pools = declared_pools(all_assets)
    assert {"source_coingecko", "asset_weekly_report"} <= pools
    # two processes starting at once (two workers): both finish, each pool exists once
    errors: list[BaseException] = []

    def init() -> None:
        try:
            workers.initialize_pools(env)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=init) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    limits = {p.name: p for p in instance.event_log_storage.get_pool_limits()}
    assert pools <= set(limits)
    assert all(limits[p].limit == 1 and limits[p].from_default for p in pools)
    # run again (a worker restarting): nothing to create, nothing raised
    assert initialize_pool_limits(instance, pools) == []


def test_a_lost_wakeup_is_repaired_on_postgres(production_instance) -> None:
    """The lost slot wake-up (tests/test_pool_wakeups.py) on the production storage: the same statements leave
    the step waiting on a free slot, and the keeper's hand-out lets it claim."""
    instance, _ = production_instance
    lose_a_wakeup(instance, "pool_for_the_wakeup_check", ("run-a", "step-a"))
    storage = instance.event_log_storage
    assert not storage.claim_concurrency_slot("pool_for_the_wakeup_check", "run-a", "step-a").is_claimed
    _, seen = hand_out_lost_slots(instance, frozenset())
    assert hand_out_lost_slots(instance, seen)[0] == ["pool_for_the_wakeup_check: run-a/step-a"]
    assert storage.claim_concurrency_slot("pool_for_the_wakeup_check", "run-a", "step-a").is_claimed
