"""The manual rollback's ladder (runbook 6.4 R2–R4; docs/rollback.md), each rung audited:
``inspect`` (pre-verify: is the index the run's, what changed since the rollback point),
``execute_ignore`` / ``undo_ignore`` (rung 1, instant and reversible), ``execute_drop`` (rung 2
through ``IndexRollback``: R2 verify, R3 ``rolled_back``, R4 the start of the 30-minute
observation), ``observe_after_rollback`` (R4 and R5) and ``rung_progress`` (a running rung, read on
a session of its own). The people's steps before them (decide, approve, refuse, a new trigger,
keep the index) are engine/flows/rollback_flow.py; the rules engine/domain/rollback_rules.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from engine.adapters import sql
from engine.adapters.retry import retrying
from engine.adapters.store import ExecutionRun, RollbackPoint, RollbackRecord, Store
from engine.adapters.target import IndexInfo, Target, TargetError
from engine.domain.clock import Clock, SystemClock, wall
from engine.domain.plan import Plan
from engine.domain.roles import in_role
from engine.domain.rollback_rules import (
    ApprovalState,
    FlowOutcome,
    Inspection,
    active_ignore,
    columns_text,
    diff_against_point,
    expected_columns,
    kept_of,
    next_steps,
    who_holds,
)
from engine.flows import guard
from engine.flows.rollback import RETRYABLE, IndexRollback
from engine.flows.rollback_flow import (
    Listener,
    _emit,
    _fresh,
    _kept_message,
    _refuse,
    _role_refused,
)
from engine.views.rollback import RungProgress, rollback_state


def inspect(target: Target, run: ExecutionRun, point: RollbackPoint | None,
            clock: Clock | None = None) -> Inspection:
    """Pre-verify against the server (docs/rollback.md): the index exists and is the one this run created
    (TC-05: never drop an index the run did not create), and the table's diff against its
    rollback point. A target that cannot be read is an ``error``, not a verdict."""
    now = (clock or SystemClock()).now()
    name = f"{run.schema_name}.{run.table_name}"
    try:
        with target.session("rollback-inspect") as s:
            server = s.server_info()
            if s.table_info(run.schema_name, run.table_name) is None:
                return Inspection(now, server.describe(), server.flavour, blockers=(
                    f"table {name} no longer exists: there is nothing to roll back; find out who removed it",))
            indexes = s.indexes(run.schema_name, run.table_name)
            create = s.show_create_table(run.schema_name, run.table_name)
            ignored = (s.index_ignored(run.schema_name, run.table_name, run.index_name, server.flavour)
                       if server.supports_ignored_index else None)
    except TargetError as exc:
        return Inspection(now, error=f"cannot inspect {name}: {exc}; nothing was sent — retry (r)")
    current: dict[str, IndexInfo] = {i.name: i for i in indexes}
    idx = current.get(run.index_name)
    expected = expected_columns(run)
    before = {i["name"] for i in (point.indexes if point else None) or []}
    blockers: list[str] = []
    if not run.index_created_by_run:
        blockers.append(f"index {run.index_name} was not created by run {run.id[:8]}: a rollback never drops "
                        "an index the run did not create (TC-05); leave it, or remove it through a change "
                        "of its own")
    if run.index_name in before:
        blockers.append(f"index {run.index_name} already existed at the rollback point, before the ALTER: "
                        "not this run's, never dropped (TC-05)")
    if idx is not None and tuple(idx.columns) != expected:
        blockers.append(f"index {run.index_name} now has columns ({columns_text(idx.columns)}), the run created "
                        f"({columns_text(expected)}): someone replaced it; not this run's to drop")
    conflicts: list[str] = []
    if point is None:
        conflicts.append(f"no rollback point is stored for run {run.id[:8]}: the table cannot be compared "
                         "with its state before the ALTER — review SHOW CREATE TABLE by hand")
    else:
        conflicts += diff_against_point(point.show_create, point.indexes or [], create,
                                        [i.as_dict() for i in indexes], run.index_name)
    return Inspection(
        inspected_at=now, server=server.describe(), flavour=server.flavour, index_exists=idx is not None,
        index_columns=tuple(idx.columns) if idx else (), ours=not blockers and idx is not None,
        ignored=ignored, conflicts=tuple(conflicts), blockers=tuple(blockers))


# The roles table's row for every rung and its undo (engine/domain/roles.py): the role is asked first,
# through engine/flows/guard.py; every refusal of a rung, the role's or the state's, is audited as
# ``rollback_execution_refused``.
ACTION = "rollback_execution"
REFUSED = guard.refused_as(ACTION)


def _gate(store: Store, plan: Plan,
          run: ExecutionRun) -> tuple[str | None, RollbackRecord | None, ApprovalState | None]:
    """What every rung needs before anything is sent, once the DBA's role is granted: a decision and
    every approval."""
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = rollback_state(store, run, records)
    if run.status == "rolled_back":
        return f"run {run.id[:8]} is already rolled back: the index is gone", record, state
    if kept_of(record) is not None:
        return _kept_message(run, kept_of(record)), record, state  # type: ignore[arg-type]
    if record is None or state is None:
        return "no rollback has been decided yet: decide first (d), then collect the approvals", None, None
    if state.refused:
        return ("the rollback was refused by " + ", ".join(in_role(a, r) for r, a in state.refused)
                + ". Next: " + "; ".join(s.text for s in next_steps("refused", state.trigger, state))), record, state
    if not state.complete:
        missing = who_holds(plan, state.missing) if state.missing else "another person than the requester"
        return f"the rollback is not approved yet: still must approve: {missing}", record, state
    return None, record, state


def _preflight(insp: Inspection, acknowledged: Iterable[str]) -> tuple[str, str] | None:
    """(status, message) when the inspection stops the rung; conflicts need acknowledging."""
    if insp.error:
        return "failed", insp.error
    if insp.blockers:
        return "refused", "; ".join(insp.blockers)
    unacked = [c for c in insp.conflicts if c not in set(acknowledged)]
    if unacked:
        return "refused", ("the table changed since the rollback point — read and acknowledge first: "
                           + "; ".join(unacked))
    return None


def _stopped(store: Store, run: ExecutionRun, actor: str, rung: str, stop: tuple[str, str] | None,
             insp: Inspection) -> FlowOutcome | None:
    """How a rung ends when its inspection stops it: failed (audited) when the target could not be
    read, refused otherwise. None to go on, once the acknowledged conflicts are audited."""
    if stop is not None:
        if stop[0] == "failed":
            store.audit(run.tenant_id, actor, "rollback_execution_failed", run.id, {"rung": rung, "error": stop[1]})
            return FlowOutcome("failed", stop[1])
        return _refuse(store, run, actor, REFUSED, stop[1], rung=rung)
    if insp.conflicts:
        store.audit(run.tenant_id, actor, "rollback_conflicts_acknowledged", run.id,
                    {"rung": rung, "conflicts": list(insp.conflicts)})
    return None


def _rung(point: RollbackPoint | None, name: str) -> dict[str, Any] | None:
    return next((r for r in (point.ladder if point else None) or [] if r.get("rung") == name), None)


def execute_ignore(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                   roles: Iterable[str], acknowledged: Iterable[str] = (),
                   clock: Clock | None = None) -> FlowOutcome:
    """Rung 1: ``ALTER INDEX … IGNORED`` (MariaDB ≥ 10.6) / ``INVISIBLE`` (MySQL 8) — instant and
    reversible. Recorded as a ``partial`` rollback with every attempt; verified from the catalogue."""
    clock = clock or SystemClock()
    run = _fresh(store, run)
    refused = _role_refused(store, plan, run, actor, set(roles), ACTION, rung="ignore")
    if refused is not None:
        return refused
    refusal, decision, _state = _gate(store, plan, run)
    point = store.rollback_point(run.tenant_id, run.id)
    rung = _rung(point, "ignore")
    if refusal is None and rung is None:
        refusal = ("rung 1 is not available for this run: the server did not support ALTER INDEX … "
                   "IGNORED / INVISIBLE when the rollback point was captured (MariaDB ≥ 10.6, MySQL 8) — "
                   "use rung 2 (x)")
    if refusal is not None:
        return _refuse(store, run, actor, REFUSED, refusal, rung="ignore")
    assert decision is not None and rung is not None
    insp = inspect(target, run, point, clock)
    stop = _preflight(insp, acknowledged)
    if stop is None and not insp.index_exists:
        stop = ("refused", f"index {run.index_name} is not there: nothing to ignore — if it is really gone, "
                "rung 2 (x) records the rollback")
    if stop is None and insp.ignored and active_ignore(store.rollback_records(run.tenant_id, run.id)):
        stop = ("refused", "rung 1 is already applied: observe, then drop (x) or undo (u)")
    ended = _stopped(store, run, actor, "ignore", stop, insp)
    if ended is not None:
        return ended
    verify_sql = sql.ignored_index_query(run.schema_name, run.table_name, run.index_name, insp.flavour)
    record = store.save_rollback_record(RollbackRecord(
        tenant_id=run.tenant_id, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
        rollback_status="in_progress", rollback_type="partial", trigger_reason=decision.trigger_reason,
        # rollback_sql stays empty: it names the DROP of a full rollback (IndexRollback's guard).
        attempts=[], rollback_started_at=clock.now(), created_by=actor, created_at=clock.now(),
        rollback_details={"rung": "ignore", "sql": rung["sql"], "undo_sql": rung.get("undo_sql"),
                          "verify_sql": verify_sql, "decision_record": decision.id,
                          "index_name": run.index_name, "table_name": run.table_name}),
        actor, "rollback_ignore_started")
    ok, note = _alter_index(store, plan, target, run, actor, record, rung["sql"], True, insp.flavour, clock)
    record.rollback_completed_at = clock.now()
    record.rollback_status = "completed" if ok else "failed"
    if ok:
        record.rollback_details = dict(record.rollback_details or {}, verified_ignored_at=clock.now().isoformat(),
                                       note=note)
        record = store.save_rollback_record(record, actor, "rollback_ignore_completed")
        return FlowOutcome("done", f"index {run.index_name} is ignored by the optimiser ({note}); observe, then "
                           "drop it (x) or undo (u)", record.id)
    record.rollback_error = note
    record = store.save_rollback_record(record, actor, "rollback_ignore_failed")
    return FlowOutcome("failed", f"rung 1 failed: {note}; the index is unchanged — retry (i) or go to rung 2 (x)",
                       record.id)


def undo_ignore(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                roles: Iterable[str], clock: Clock | None = None) -> FlowOutcome:
    """Put rung 1 back (``NOT IGNORED`` / ``VISIBLE``). It only returns the table to where it was
    before the rollback began, so it needs the DBA's hand but no new approvals."""
    clock = clock or SystemClock()
    run = _fresh(store, run)
    refused = _role_refused(store, plan, run, actor, set(roles), ACTION, rung="undo_ignore")
    if refused is not None:
        return refused
    record = active_ignore(store.rollback_records(run.tenant_id, run.id))
    refusal = None
    if run.status == "rolled_back":
        refusal = "the index was dropped (rung 2): there is nothing to undo"
    elif record is None:
        refusal = "rung 1 is not applied: there is nothing to undo"
    if refusal is not None:
        return _refuse(store, run, actor, REFUSED, refusal, rung="undo_ignore")
    assert record is not None
    details = record.rollback_details or {}
    flavour = "mariadb" if "IGNORED" in details.get("sql", "") else "mysql"
    ok, note = _alter_index(store, plan, target, run, actor, record, details["undo_sql"], False, flavour, clock)
    if not ok:
        store.audit(run.tenant_id, actor, "rollback_ignore_undo_failed", run.id, {"error": note})
        return FlowOutcome("failed", f"undo failed: {note}; the index is still ignored — retry (u)", record.id)
    record.rollback_details = dict(details, undone_at=clock.now().isoformat(), undone_by=actor, undo_note=note)
    record = store.save_rollback_record(record, actor, "rollback_ignore_undone")
    return FlowOutcome("done", f"index {run.index_name} is in use again ({note})", record.id)


def _alter_index(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                 record: RollbackRecord, statement: str, want_ignored: bool, flavour: str,
                 clock: Clock) -> tuple[bool, str]:
    """Send rung 1 (or its undo) with retry and backoff. Every attempt is recorded before it is
    sent; the statement is idempotent, and each attempt first reads the state, so an answer lost
    on the way back is recognised rather than sent again."""
    opts = plan.executor
    attempts = list(record.attempts or [])
    first = len(attempts)
    action = "ignore" if want_ignored else "undo"

    def attempt_once() -> tuple[bool, str]:
        attempt: dict[str, Any] = {"n": len(attempts) + 1, "at": clock.now().isoformat(), "action": action}
        attempts.append(attempt)
        try:
            with target.session("rollback") as s:
                s.execute(sql.SET_LOCK_WAIT_TIMEOUT, (opts.lock_wait_timeout,))
                state = s.index_ignored(run.schema_name, run.table_name, run.index_name, flavour)
                if state is None:
                    attempt["error"] = f"index {run.index_name} is not there"
                    return False, attempt["error"]
                if state == want_ignored:
                    attempt["ok"] = True
                    return True, "already so: nothing sent" if len(attempts) == first + 1 else "done by an earlier attempt"
                attempt["sent"] = True
                record.attempts = list(attempts)
                store.save_rollback_record(record, actor, "rollback_attempt")
                s.execute(statement)
                if s.index_ignored(run.schema_name, run.table_name, run.index_name, flavour) != want_ignored:
                    attempt["error"] = "the ALTER returned but the catalogue does not show the change"
                    return False, attempt["error"]
                attempt["ok"] = True
                return True, "verified in information_schema.STATISTICS"
        except TargetError as exc:
            attempt.update(error=str(exc), kind=exc.kind)
            record.attempts = list(attempts)
            store.save_rollback_record(record, actor, "rollback_attempt_failed")
            raise

    send = retrying(opts.rollback_attempts, opts.rollback_backoff_seconds, clock.sleep,
                    lambda exc: isinstance(exc, TargetError) and exc.kind in RETRYABLE)
    try:
        ok, note = send(attempt_once)
    except TargetError as exc:
        ok, note = False, str(exc)
    record.attempts = attempts
    return ok, note


def execute_drop(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                 roles: Iterable[str], acknowledged: Iterable[str] = (),
                 clock: Clock | None = None, listeners: Iterable[Listener] = ()) -> FlowOutcome:
    """Rung 2: ``DROP INDEX`` through ``IndexRollback`` (guarded, retried, never twice), then R2 the
    verification, R3 ``rolled_back`` (IndexRollback's transition), R4 the 30-minute observation's
    start and end recorded on the record (the App runs the observation itself)."""
    clock = clock or SystemClock()
    run = _fresh(store, run)
    refused = _role_refused(store, plan, run, actor, set(roles), ACTION, rung="drop")
    if refused is not None:
        return refused
    refusal, decision, state = _gate(store, plan, run)
    if refusal is not None:
        return _refuse(store, run, actor, REFUSED, refusal, rung="drop")
    assert decision is not None and state is not None
    point = store.rollback_point(run.tenant_id, run.id)
    insp = inspect(target, run, point, clock)
    stop = _preflight(insp, acknowledged)
    ended = _stopped(store, run, actor, "drop", stop, insp)
    if ended is not None:
        return ended
    d = decision.rollback_details or {}
    records = store.rollback_records(run.tenant_id, run.id)
    rung1 = active_ignore(records)
    opts = plan.executor
    out = IndexRollback(store, target, actor, clock, max_attempts=opts.rollback_attempts,
                        backoff_s=opts.rollback_backoff_seconds, lock_wait_timeout=opts.lock_wait_timeout).drop(
        run, decision.trigger_reason, rollback_type="full", fail_reason="manual_rollback",
        details={"rung": "drop", "trigger": d.get("trigger"), "decision_record": decision.id,
                 "decided": in_role(str(d.get('decided_by')), str(d.get('decided_role'))),
                 "approvals": [in_role(a, r) for r, a in state.approved],
                 "metrics_at_decision": d.get("metrics_at_decision") or {},
                 "ignored_first": rung1 is not None, "conflicts_acknowledged": list(insp.conflicts)})
    if out.status == "refused":
        return FlowOutcome("refused", out.message, out.record_id)
    if out.status == "failed":
        _emit(listeners, "drop_failed", {"message": out.message, "record_id": out.record_id})
        return FlowOutcome("failed", f"ROLLBACK FAILED — escalation L4: {out.message}. The index is still there; "
                           "retry (x) once the cause is found, or the DBA intervenes by hand", out.record_id)
    # R2: the verification query, on a connection of its own.
    try:
        with target.session("verify") as s:
            gone: bool | None = not s.index_exists(run.schema_name, run.table_name, run.index_name)
    except TargetError:
        gone = None  # IndexRollback verified it on its own connection; say we could not re-read it
    started = clock.now()
    minutes = plan.profile().post_rollback_minutes
    until = started + timedelta(minutes=minutes)
    drop_record = next(r for r in store.rollback_records(run.tenant_id, run.id) if r.id == out.record_id)
    drop_record.rollback_details = dict(
        drop_record.rollback_details or {}, verified_absent=gone,
        verify_sql=sql.show_index_query(run.schema_name, run.table_name, run.index_name),
        observation={"kind": "post_rollback", "minutes": minutes, "started_at": started.isoformat(),
                     "until": until.isoformat()})
    store.save_rollback_record(drop_record, actor, "rollback_verified")
    decision.rollback_status = "completed"
    decision.rollback_completed_at = started
    decision.rollback_details = dict(d, rollback_record=out.record_id)
    store.save_rollback_record(decision, actor, "rollback_decision_completed")
    if rung1 is not None:
        rung1.rollback_details = dict(rung1.rollback_details or {}, superseded_by=out.record_id)
        store.save_rollback_record(rung1, actor, "rollback_ignore_superseded")
    _emit(listeners, "dropped", {"record_id": out.record_id, "minutes": minutes, "until": until.isoformat(),
                                 "verified_absent": gone})
    return FlowOutcome("done", f"index {run.index_name} dropped and verified gone ({out.message}); run "
                       f"rolled_back; post-rollback observation until {wall(until, plan.off_peak.utc_offset)}", out.record_id)


def observe_after_rollback(store: Store, plan: Plan, run_id: str, sources: Sequence[Any], actor: str,
                           clock: Clock, profile: Any = None, listeners: Iterable[Listener] = (),
                           monitor_listeners: Iterable[Callable[[str, dict[str, Any]], None]] = ()) -> Any:
    """R4 and R5: the post-rollback observation (``engine.flows.monitor.observe``, 30 minutes under
    its own profile) on the process that dropped the index, then ``completed`` for the rollback's
    closing announcement. ``monitor_listeners`` hear the observation's start and end (the notifier
    posts them); None when the run is not rolled back. A stopped clock's exception passes through."""
    from engine.flows.monitor import Monitor, observe

    run = store.get_run(plan.tenant, run_id)
    if run is None or run.alter_started_at is None or run.status != "rolled_back":
        return None
    monitor = Monitor(store, plan.tenant, run_id, sources, profile or plan.profile(), actor, clock)
    monitor.listeners.extend(monitor_listeners)
    try:
        result = observe(monitor, "post_rollback", run.alter_started_at)
    finally:
        monitor.close()
    _emit(listeners, "completed", {"ok": result.ok, "alerts": list(result.alerts),
                                   "warnings": len(result.warnings), "ticks": result.ticks})
    return result


# --- a rung while it runs: its statement and the table's metadata-lock queue ------------------------

ROLLBACK_STATEMENT_TAG = "/* canary-console:rollback */"  # what the rungs' ALTERs carry (engine.adapters.sql)


def rung_progress(session: Any, schema: str, table: str, rung: str, elapsed_s: float) -> RungProgress:
    """Read the running rung's statement, its stage and the table's metadata locks (on a session of
    the caller's own: a worker's, never the rung's)."""
    from engine.adapters.target import alter_stage

    mine = next((r for r in session.active_statements() if ROLLBACK_STATEMENT_TAG in (r.get("info") or "")), None)
    thread_id = int(mine["id"]) if mine else None
    stage = alter_stage(session, thread_id) if thread_id is not None else None
    mdl = session.metadata_locks(schema, table)
    return RungProgress(rung, elapsed_s, thread_id, float(mine["time"] or 0) if mine else None,
                        stage.stage if stage else "", stage.fraction if stage else None,
                        tuple(mdl.holders), tuple(mdl.waiters), mdl.note)
