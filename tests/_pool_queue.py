"""Dagster's slot queue driven statement by statement, for the pool keeper's tests (SQLite and PostgreSQL)."""

from __future__ import annotations

import dagster as dg


def lose_a_wakeup(instance: dg.DagsterInstance, pool: str, waiter: tuple[str, str]) -> None:
    """Leaves ``pool``'s one slot free and ``waiter`` (run id, step) queued unassigned behind nobody."""
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(pool)
    assert storage.claim_concurrency_slot(pool, "holder-run", "holder-step").is_claimed
    free = storage.has_unassigned_slots(pool)  # the waiter looks: the slot is held
    storage.free_concurrency_slot_for_step("holder-run", "holder-step")  # the holder frees it: nobody queued
    storage.add_pending_step(pool, *waiter, priority=0, should_assign=free)  # the waiter queues, unassigned
