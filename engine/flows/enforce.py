"""Enforcing the kill switch from any process (docs/kill-switch.md).

The server does not stop an ALTER when its client dies. So every live console, and the headless
CLI's ``kill``, runs ``enforce_kill_switch``: for each of the tenant's running runs whose ALTER is
in flight, if the switch is active for it, find the ALTER in the processlist by the tag it carries
and ``KILL QUERY`` it. When the run's owner is gone (its lease has expired), the enforcer finishes
the run itself: it takes the lease, checks the index, and records the cancellation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.adapters.killswitch import KillSwitchBackend
from engine.adapters.store import ClaimConflict, ConnectionProfileRow, ExecutionRun, Store
from engine.adapters.target import Target, TargetError
from engine.domain.clock import Clock, SystemClock
from engine.domain.plan import ConnectionProfile
from engine.flows.executor import (
    reading_details,
    record_cancel_after_alter,
    record_cancel_during_alter,
)


@dataclass
class Enforcement:
    run_id: str
    killed_thread: int | None = None
    finished: str | None = None  # cancelled-during | cancelled-after | left to its owner
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "killed_thread": self.killed_thread, "finished": self.finished,
                "errors": self.errors}


def profile_from_row(row: ConnectionProfileRow) -> ConnectionProfile:
    """The stored profile as a connection profile (the password is read from its source now)."""
    return ConnectionProfile(id=row.id, host=row.host, port=row.port, user=row.user, database=row.database,
                             socket=row.socket, password_env=row.password_env,
                             option_file=row.option_file if row.option_file and os.path.isfile(row.option_file) else None,
                             option_group=row.option_group)


def stored_target(store: Store) -> Callable[[ExecutionRun], Target]:
    def target_for(run: ExecutionRun) -> Target:
        row = store.connection_profile(run.tenant_id, run.connection_profile_id)
        if row is None:
            raise TargetError(f"no stored connection profile {run.connection_profile_id} for run {run.id}")
        return Target(profile_from_row(row))
    return target_for


def kill_run_alter(target: Target, run_id: str) -> int | None:
    """``KILL QUERY`` the run's ALTER, found in the processlist by the tag it carries: the killed
    thread's id, or None when the run has no ALTER on the server."""
    with target.session("kill-switch") as s:
        row = s.find_alter(run_id)
        if row is None:
            return None
        s.kill_query(int(row["id"]))
        return int(row["id"])


def enforce_kill_switch(store: Store, backend: KillSwitchBackend, tenant_id: str, actor: str, worker: str,
                        target_for: Callable[[ExecutionRun], Target] | None = None,
                        clock: Clock | None = None, take_over: bool = True,
                        lease_seconds: float = 30.0, max_wait_s: float = 60.0) -> list[Enforcement]:
    clock = clock or SystemClock()
    target_for = target_for or stored_target(store)
    done: list[Enforcement] = []
    for run in store.find_runs(tenant_id, ["running"]):
        if run.alter_started_at is None or run.alter_finished_at is not None:
            continue
        reading = backend.read(tenant_id, run.connection_profile_id)
        if not reading.active:
            continue
        result = Enforcement(run.id)
        done.append(result)
        try:
            result.killed_thread = kill_run_alter(target_for(run), run.id)
            if result.killed_thread is not None:
                store.audit(tenant_id, actor, "alter_killed", run.id,
                            dict(reading_details(reading, "during"), thread_id=result.killed_thread, enforcer=worker))
        except TargetError as exc:
            result.errors.append(f"could not kill the ALTER of run {run.id}: {exc}")
            store.audit(tenant_id, actor, "alter_kill_failed", run.id, {"error": str(exc), "enforcer": worker})
            continue
        if not take_over:
            continue
        result.finished = _owner_or_take_over(store, target_for, run, tenant_id, actor, worker, reading, clock,
                                              lease_seconds, max_wait_s)
    return done


def _owner_or_take_over(store: Store, target_for: Callable[[ExecutionRun], Target], run: ExecutionRun,
                        tenant_id: str, actor: str, worker: str, reading: Any, clock: Clock,
                        lease_seconds: float, max_wait_s: float) -> str:
    """A live owner records the cancellation itself within a poll; a dead one stops renewing its
    lease. Wait for whichever comes first, and finish the run ourselves in the second case."""
    deadline = clock.monotonic() + max_wait_s
    while True:
        current = store.get_run(tenant_id, run.id)
        if current is None or current.status != "running":
            return f"finished by its owner: {current.status if current else 'gone'}"
        try:
            store.claim(tenant_id, run.id, worker, lease_seconds)
        except ClaimConflict:
            if clock.monotonic() >= deadline:
                return "left to its owner (lease still held)"
            clock.sleep(0.1)
            continue
        return _finish_orphan(store, target_for(run), run.id, tenant_id, actor, reading, clock)


def _finish_orphan(store: Store, target: Target, run_id: str, tenant_id: str, actor: str, reading: Any,
                   clock: Clock) -> str:
    """We hold the dead owner's run: wait for the killed ALTER to leave, then record the outcome."""
    run = store.get_run(tenant_id, run_id)
    assert run is not None
    with target.session("recovery") as s:
        for _ in range(200):  # the server aborts a killed ALTER within milliseconds; allow 10 s
            if s.find_alter(run.id) is None:
                break
            clock.sleep(0.05)
        exists = s.index_exists(run.schema_name, run.table_name, run.index_name)
    store.audit(tenant_id, actor, "recovery_inspected", run.id, {"index_exists": exists, "by": "enforcer"})
    if exists:
        run = store.update_run(tenant_id, run.id, alter_finished_at=clock.now(), index_created_by_run=True)
        record_cancel_after_alter(store, run, reading, actor)
        return "cancelled-after"
    record_cancel_during_alter(store, run, reading, actor, clock)
    return "cancelled-during"
