"""Enforcing the kill switch from any process (docs/kill-switch.md).

The server does not stop an ALTER when its client dies. So every live console, and the headless
CLI's ``kill``, runs ``enforce_kill_switch``: for each of the tenant's running runs whose ALTER is
in flight, if the switch is active for it, find the ALTER in the processlist by the tag it carries
and ``KILL QUERY`` it. When the run's owner is gone (its lease has expired), the enforcer finishes
the run itself: it takes the lease, checks the index, and records the cancellation.

A ``KILL QUERY`` is not a kill until the server says so: an ALTER already in its commit phase
ignores it and finishes. So ``kill_run_alter`` waits for the ALTER's statement to leave the
processlist and reads the index back; ``kill_outcome`` (pure) says what happened — killed, or
finished before the kill (the index is on the table), or not confirmed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.adapters import sql
from engine.adapters.killswitch import KillSwitchBackend, watch_of
from engine.adapters.store import ClaimConflict, ConnectionProfileRow, ExecutionRun, Store
from engine.adapters.target import Target, TargetError
from engine.domain.clock import Clock, SystemClock
from engine.domain.plan import ConnectionProfile
from engine.flows.executor_alter import record_cancel_after_alter, record_cancel_during_alter
from engine.flows.executor_base import reading_details

KILL_CONFIRM_S = 10.0  # how long a killed ALTER may take to leave the processlist (a rollback of the build)
KILLED = "killed"  # the ALTER ended and the index is absent: the kill stopped it
FINISHED_BEFORE = "finished_before"  # the index is on the table: the ALTER committed before the kill took
NO_ALTER = "no_alter"  # no ALTER of the run on the server and no index: nothing was in flight
STILL_RUNNING = "still_running"  # KILL QUERY sent, the ALTER still running after KILL_CONFIRM_S
UNCONFIRMED = "unconfirmed"  # the ALTER ended but the index could not be read


def kill_outcome(thread: int | None, ended: bool, index_present: bool | None) -> str:
    """What a kill of a run's ALTER came to (pure). ``thread``: the server thread sent ``KILL
    QUERY`` (None: no ALTER of the run was on the server); ``ended``: the ALTER's statement left the
    processlist; ``index_present``: the run's index is on the table once it ended (None: not read).

    The index decides, not the KILL: an ALTER in its commit phase ignores ``KILL QUERY`` and
    finishes, and an ALTER that committed an instant before is not in the processlist at all —
    both leave the index in place, and neither is a kill."""
    if not ended:
        return STILL_RUNNING
    if index_present is None:
        return UNCONFIRMED
    if index_present:
        return FINISHED_BEFORE
    return KILLED if thread is not None else NO_ALTER


@dataclass(frozen=True)
class AlterKill:
    """A kill of one run's ALTER, read back from the server."""

    run_id: str
    thread: int | None  # the server thread sent KILL QUERY; None: no ALTER of the run was on the server
    ended: bool  # the ALTER's statement left the processlist
    index_present: bool | None  # the run's index on the table once it ended; None: not read
    index: str = ""  # "idx_x on shop.orders", for the words
    waited_ms: float = 0.0  # from KILL QUERY to the ALTER's end
    error: str = ""  # why the index could not be read
    # The run's executor (in this process) sent the KILL and audits what it came to itself, with
    # the run's cancellation: the activation that woke it writes no second entry.
    audited_by_owner: bool = False

    @property
    def outcome(self) -> str:
        return kill_outcome(self.thread, self.ended, self.index_present)

    def details(self) -> dict[str, Any]:
        """For the audit entry."""
        return {"thread_id": self.thread, "outcome": self.outcome, "index": self.index,
                "index_present": self.index_present, "waited_ms": round(self.waited_ms, 1),
                **({"error": self.error} if self.error else {})}

    def problem(self) -> str | None:
        """What the person must hear when the ALTER was not (known to be) stopped; None for a kill
        or nothing in flight. A finished ALTER is said by the caller (it knows the switch)."""
        if self.outcome == STILL_RUNNING:
            return (f"KILL QUERY sent to the ALTER of run {self.run_id} (server thread {self.thread}) but it was "
                    f"still running after {KILL_CONFIRM_S:.0f} s; the switch stays on — look at the processlist")
        if self.outcome == UNCONFIRMED:
            return (f"the ALTER of run {self.run_id} ended but index {self.index} could not be read "
                    f"({self.error or 'no answer'}): check whether it is on the table")
        return None


@dataclass
class Enforcement:
    run_id: str
    killed_thread: int | None = None  # an ALTER the kill stopped (ended, index absent)
    finished: str | None = None  # cancelled-during | cancelled-after | left to its owner
    errors: list[str] = field(default_factory=list)
    kill: AlterKill | None = None  # what the kill came to

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "killed_thread": self.killed_thread, "finished": self.finished,
                "errors": self.errors, "outcome": self.kill.outcome if self.kill else None}


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


def kill_run_alter(target: Target, run: ExecutionRun, confirm_s: float = KILL_CONFIRM_S) -> AlterKill:
    """``KILL QUERY`` the run's ALTER, found in the processlist by the tag it carries, then wait for
    its statement to end and read the index back: an ``AlterKill`` (``kill_outcome`` says what it
    came to). No ALTER on the server: nothing is killed, and the index is still read (it may have
    committed an instant before)."""
    index = f"{run.index_name} on {run.schema_name}.{run.table_name}"
    with target.session("kill-switch") as s:
        row = s.find_alter(run.id)
        thread = int(row["id"]) if row is not None else None
        started = time.monotonic()
        ended = True
        if thread is not None:
            s.kill_query(thread)
            ended = _alter_ended(s, thread, run.id, confirm_s)
        waited = (time.monotonic() - started) * 1000
        if not ended:
            return AlterKill(run.id, thread, False, None, index, waited)
        try:
            present = s.index_exists(run.schema_name, run.table_name, run.index_name)
        except TargetError as exc:
            return AlterKill(run.id, thread, True, None, index, waited, str(exc).splitlines()[0][:300])
        return AlterKill(run.id, thread, True, present, index, waited)


def stop_run_alter(target_for: Callable[[ExecutionRun], Target], run: ExecutionRun,
                   confirm_s: float = KILL_CONFIRM_S) -> AlterKill:
    """Stop the run's ALTER and say what that came to. When this process's executor drives the
    ALTER (F9 in the console that runs it), it is woken to KILL it on the connection it opened
    before the ALTER, and its reading of the outcome is awaited: no second connection, no second
    KILL. Otherwise (another process's ALTER, or a dead one's) ``kill_run_alter``."""
    watch = watch_of(run.id)
    if watch is not None:
        watch.wake.set()
        if watch.settled.wait(confirm_s) and watch.outcome is not None:
            return watch.outcome  # type: ignore[no-any-return]
    return kill_run_alter(target_for(run), run, confirm_s)


def _alter_ended(s: Any, thread: int, run_id: str, confirm_s: float) -> bool:
    """The killed ALTER's statement has left the processlist (its thread gone, or on another
    statement): within ``confirm_s``."""
    tag = sql.alter_tag(run_id)
    deadline = time.monotonic() + confirm_s
    while True:
        row = s.thread(thread)
        if row is None or tag not in (row.get("info") or ""):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


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
            result.kill = kill = stop_run_alter(target_for, run)
        except TargetError as exc:
            result.errors.append(f"could not kill the ALTER of run {run.id}: {exc}")
            store.audit(tenant_id, actor, "alter_kill_failed", run.id, {"error": str(exc), "enforcer": worker})
            continue
        # Audited once the server has said what the kill came to (after the KILL, never before it);
        # once per kill: by the executor of this process when it sent it.
        details = dict(reading_details(reading, "during"), **kill.details(), enforcer=worker)
        if kill.outcome == KILLED:
            result.killed_thread = kill.thread
        elif kill.problem() is not None:
            result.errors.append(kill.problem() or "")
        action = {KILLED: "alter_killed", FINISHED_BEFORE: "alter_finished_before_kill"}.get(
            kill.outcome, "alter_kill_failed" if kill.problem() is not None else None)
        if action is not None and not kill.audited_by_owner:
            store.audit(tenant_id, actor, action, run.id, details)
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
