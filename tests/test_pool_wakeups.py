"""Dagster's slot queue losing a wake-up, and the pool keeper that repairs it (``pipelines/automation/pools.py``).

The interleaving is replayed step by step on the storage, as two processes ran it when two daily runs shared the
pools (CI hung 400 s): the step that holds the slot frees it and hands it to the queue's head while the other step
has looked for a free slot, found none, and not yet queued itself. The PostgreSQL case is in
``tests/test_pool_limits.py`` (its fixture starts the server once).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import dagster as dg
import pytest
from dagster._core.test_utils import instance_for_test

from pipelines.automation import pools
from pipelines.automation.pools import hand_out_lost_slots, pool_keeper, pool_keeper_sensor
from tests._pool_queue import lose_a_wakeup


def claimed_within(instance: dg.DagsterInstance, seconds: float) -> bool:
    """Whether run-a's step-a claims its slot in ``source_x`` within ``seconds``, asking as an executor does."""
    deadline = time.monotonic() + seconds
    while not instance.event_log_storage.claim_concurrency_slot("source_x", "run-a", "step-a").is_claimed:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def instance():
    with instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as inst:
        yield inst


def test_dagster_alone_leaves_the_step_waiting_on_a_free_slot(instance) -> None:
    """The Dagster behaviour repaired: after the interleaving, claims stay blocked with the slot free. If a
    Dagster upgrade fixes it, this test fails and the keeper can go."""
    lose_a_wakeup(instance, "source_x", ("run-a", "step-a"))
    storage = instance.event_log_storage
    for _ in range(3):
        assert not storage.claim_concurrency_slot("source_x", "run-a", "step-a").is_claimed
    info = storage.get_concurrency_info("source_x")
    assert info.slot_count == 1 and not info.claimed_slots


def test_the_free_slot_goes_to_the_queue_head_only(instance) -> None:
    storage = instance.event_log_storage
    lose_a_wakeup(instance, "source_x", ("run-a", "step-a"))
    storage.add_pending_step("source_x", "run-c", "step-c", priority=0, should_assign=False)  # queued after
    storage.initialize_concurrency_limit_to_default("asset_y")  # a busy pool: its waiter must keep waiting
    assert storage.claim_concurrency_slot("asset_y", "run-b", "step-b").is_claimed
    assert not storage.claim_concurrency_slot("asset_y", "run-a", "step-y").is_claimed

    handed, seen = hand_out_lost_slots(instance, frozenset())
    assert handed == []  # seen once: it may be Dagster's own hand-out in progress
    assert seen == {("source_x", "run-a", "step-a"), ("source_x", "run-c", "step-c")}
    assert not storage.claim_concurrency_slot("source_x", "run-a", "step-a").is_claimed
    handed, seen = hand_out_lost_slots(instance, seen)
    assert handed == ["source_x: run-a/step-a"]  # seen twice: lost; the queue's head gets the slot
    assert seen == frozenset()

    assert storage.claim_concurrency_slot("source_x", "run-a", "step-a").is_claimed
    assert not storage.claim_concurrency_slot("source_x", "run-c", "step-c").is_claimed
    assert not storage.claim_concurrency_slot("asset_y", "run-a", "step-y").is_claimed
    assert hand_out_lost_slots(instance, seen) == ([], frozenset())  # every waiter waits on a busy slot
    storage.free_concurrency_slot_for_step("run-a", "step-a")  # Dagster's own hand-out goes on as before
    assert storage.claim_concurrency_slot("source_x", "run-c", "step-c").is_claimed


def test_the_keeper_frees_a_waiting_step_while_a_run_goes_on(instance, caplog) -> None:
    lose_a_wakeup(instance, "source_x", ("run-a", "step-a"))
    with caplog.at_level(logging.WARNING, logger=pools.__name__), pool_keeper(instance, every_s=0.05):
        assert claimed_within(instance, 10), "the keeper never assigned the free slot"
    assert "lost wake-up, now assigned: source_x: run-a/step-a" in caplog.text


def test_a_failed_sweep_is_logged_and_the_next_one_repairs(instance, caplog, monkeypatch) -> None:
    lose_a_wakeup(instance, "source_x", ("run-a", "step-a"))
    real, calls = pools.hand_out_lost_slots, []

    def flaky(inst: dg.DagsterInstance, seen: frozenset) -> tuple[list[str], frozenset]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return real(inst, seen)

    monkeypatch.setattr(pools, "hand_out_lost_slots", flaky)
    with caplog.at_level(logging.WARNING, logger=pools.__name__), pool_keeper(instance, every_s=0.05):
        assert claimed_within(instance, 10), "the keeper stopped after a failed sweep"
    assert "sweep failed (RuntimeError: database is locked)" in caplog.text


def test_the_sensor_repairs_at_its_second_tick_and_says_so(instance) -> None:
    lose_a_wakeup(instance, "source_x", ("run-a", "step-a"))
    storage = instance.event_log_storage
    context = dg.build_sensor_context(instance=instance)
    first = pool_keeper_sensor(context)
    assert first.skip_message == "1 step(s) on free slots; assigned at the next tick if still waiting"
    assert not storage.claim_concurrency_slot("source_x", "run-a", "step-a").is_claimed
    second = pool_keeper_sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor))
    assert second.skip_message == "assigned free pool slots to waiting steps: source_x: run-a/step-a"
    assert storage.claim_concurrency_slot("source_x", "run-a", "step-a").is_claimed
    again = pool_keeper_sensor(dg.build_sensor_context(instance=instance))
    assert again.skip_message == "every waiting step waits for a busy slot"


def test_in_process_runs_are_kept(monkeypatch) -> None:
    """The runner's in-process runs (the command line, backfills, tests) run inside the keeper."""
    from pipelines import runner

    inside: list[bool] = []
    kept = {"now": False}

    @contextmanager
    def keeper(inst: dg.DagsterInstance):
        kept["now"] = True
        yield
        kept["now"] = False

    @dg.op
    def look() -> None:
        inside.append(kept["now"])

    @dg.job
    def one_step() -> None:
        look()

    monkeypatch.setattr(runner, "pool_keeper", keeper)
    with instance_for_test() as inst:
        runner._execute("one_step", "one step", inst, dg.Definitions(jobs=[one_step]), {}, None)
    assert inside == [True] and not kept["now"]
