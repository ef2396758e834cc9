"""The manual rollback's actions (runbook section 6; docs/rollback.md), each audited: ``decide_rollback``
(R1), ``approve_rollback``, ``refuse_rollback`` (with its reason), ``retrigger_rollback`` and
``keep_index`` (the canary lead's steps after a refusal, behind one guard), ``inspect`` (pre-verify:
is the index the run's, what changed since the rollback point), ``execute_ignore`` / ``undo_ignore``
(rung 1, instant and reversible), ``execute_drop`` (rung 2 through ``IndexRollback``: R2 verify, R3
``rolled_back``, R4 the start of the 30-minute observation), ``observe_after_rollback`` (R4 and
R5) and ``rung_progress`` (a running rung, read on a session of its own).

The rules they apply are engine/domain/rollback_rules.py (pure); the screen's data is
engine/views/rollback.py. An action never raises a refusal: it returns a ``FlowOutcome`` whose
message names the problem and the way out, and the refusal is in the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from engine.adapters import sql
from engine.adapters.retry import retrying
from engine.adapters.store import Approval, ExecutionRun, RollbackPoint, RollbackRecord, Store
from engine.adapters.target import IndexInfo, Target, TargetError
from engine.domain.clock import Clock, SystemClock, wall
from engine.domain.jsonable import jsonable
from engine.domain.plan import Plan
from engine.domain.roles import may, needed, role_words
from engine.domain.rollback_rules import (
    APPROVAL_KIND,
    DECISION_KIND,
    DECISION_MARK,
    EXECUTE_ROLES,
    TRIGGER_BY_KEY,
    ApprovalState,
    FlowOutcome,
    Inspection,
    active_ignore,
    approval_state,
    check_approval,
    check_decision,
    closed_votes,
    columns_text,
    decision_record,
    diff_against_point,
    expected_columns,
    held_words,
    kept_of,
    next_steps,
    person,
    prepared_record,
    record_kind,
    who_holds,
)
from engine.domain.text import clean_text
from engine.flows.rollback import RETRYABLE, IndexRollback
from engine.views.rollback import (
    RollbackView,
    RungProgress,
    rollback_state,
    rollback_view,
    votes_of,
)

# The flow's records as events, for whoever listens (engine/flows/notify.py ``Notifier.on_rollback_event``
# pushes them to the plan's webhooks): ``decided`` (R1), ``dropped`` / ``drop_failed`` (R2–R3, L4) and
# ``completed`` (R5, after the post-rollback observation). Only the process that performs a step
# emits it, so a second console watching the same run never posts it again.
Listener = Callable[[str, Mapping[str, Any]], None]


def _emit(listeners: Iterable[Listener], name: str, data: Mapping[str, Any]) -> None:
    for listen in listeners:
        try:
            listen(name, data)
        except Exception:  # noqa: BLE001, S110 - a listener never stops the rollback; the audit has the step
            pass


# --- pre-verify: the target as the rollback finds it ----------------------------------------------


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


# --- the store-backed actions --------------------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(json.dumps(jsonable(value), default=str))


def _kept_message(run: ExecutionRun, kept: dict[str, Any]) -> str:
    return (f"final: {kept.get('by')} ({kept.get('role')}) kept index {run.index_name} — {kept.get('reason')}; "
            "the rollback flow of this run is closed (removing the index later is a change of its own)")


def _refuse(store: Store, run: ExecutionRun, actor: str, action: str, message: str,
            **details: Any) -> FlowOutcome:
    store.audit(run.tenant_id, actor, action, run.id, _json(dict(details, reason=message)))
    return FlowOutcome("refused", message)


def _fresh(store: Store, run: ExecutionRun) -> ExecutionRun:
    return store.get_run(run.tenant_id, run.id) or run


def decide_rollback(store: Store, plan: Plan, run: ExecutionRun, trigger: str, actor: str,
                    roles: Iterable[str], reason: str, metrics_at_decision: dict[str, Any] | None = None,
                    role: str | None = None, listeners: Iterable[Listener] = ()) -> FlowOutcome:
    """R1: record the decision (an Approval of kind ``rollback_decision``) and the rollback record in
    ``pending`` with the metrics at decision time — reusing the record the executor prepared
    ('would roll back', or pending after a kill switch) when there is one."""
    run = _fresh(store, run)
    held = set(roles)
    records = store.rollback_records(run.tenant_id, run.id)
    decision = decision_record(records)
    t = TRIGGER_BY_KEY.get(trigger)
    if t is not None and role is None:
        role = next((r for r in t.deciders if r in held), t.deciders[0])
    refusal: str | None = None
    kept = kept_of(decision)
    if run.status == "rolled_back":
        refusal = f"run {run.id[:8]} is already rolled back: there is nothing left to decide"
    elif kept is not None:
        refusal = _kept_message(run, kept)
    elif not run.index_created_by_run:
        refusal = (f"run {run.id[:8]} has not created index {run.index_name}: there is nothing it may roll "
                   "back (TC-05); to stop a run in progress press F9")
    else:
        existing = None
        if decision is not None:
            d = decision.rollback_details or {}
            existing = (d["decided_role"], d["decided_by"])
        refusal = check_decision(trigger, role or "", actor, held, existing)
        if refusal is not None and t is not None and not set(t.deciders) & held:
            refusal += f" — {who_holds(plan, t.deciders)}"
        if refusal is None and not reason.strip():
            refusal = "a reason is required (R1): say what was seen, e.g. 'lock wait 7 s on orders for 2 min'"
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_decision_refused", refusal, trigger=trigger, role=role,
                       roles=sorted(held))
    assert t is not None and role is not None
    now = store.now()
    approval = store.add_approval(Approval(
        tenant_id=run.tenant_id, execution_run_id=run.id, kind=DECISION_KIND, role=role, actor=actor,
        decision="rollback", note=reason, created_at=now))
    details = {"trigger": t.key, "condition": t.condition, "decided_by": actor, "decided_role": role,
               "decided_at": now.isoformat(), "reason": reason, DECISION_MARK: approval.id,
               "required": list(t.required(role))}
    record = prepared_record(records)
    if record is not None:
        old = dict(record.rollback_details or {})
        details["prepared_as"] = record.rollback_status
        details["prepared_reason"] = record.trigger_reason
        details["metrics_at_decision"] = _json(metrics_at_decision or old.get("metrics_at_decision") or {})
        record.rollback_details = {**old, **details}
        record.rollback_status = "pending"
        record.trigger_reason = reason
    else:
        details["metrics_at_decision"] = _json(metrics_at_decision or {})
        record = RollbackRecord(
            tenant_id=run.tenant_id, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
            rollback_status="pending", rollback_type="manual", trigger_reason=reason,
            rollback_sql=sql.drop_index(run.schema_name, run.table_name, run.index_name),
            rollback_details=details, created_by=actor, created_at=now)
    record = store.save_rollback_record(record, actor, "rollback_decided")
    _emit(listeners, "decided", {"trigger": t.key, "condition": t.condition, "decided_by": actor,
                                 "decided_role": role, "reason": reason, "record_id": record.id,
                                 "metrics_at_decision": dict(details["metrics_at_decision"])})
    return FlowOutcome("done", f"rollback decided ({t.condition}) by {actor} as {role}; approvals needed: "
                       f"{who_holds(plan, t.required(role))}", record.id)


def approve_rollback(store: Store, plan: Plan, run: ExecutionRun, role: str, actor: str,
                     roles: Iterable[str], note: str = "", decision: str = "approve") -> FlowOutcome:
    """Record one approval by the matrix. ``decision="refuse"`` is ``refuse_rollback`` with the note
    as its reason (kept for the API's body: ``{"decision": "refuse", "note": …}``)."""
    if decision == "refuse":
        return refuse_rollback(store, plan, run, role, actor, roles, note)
    run = _fresh(store, run)
    held = set(roles)
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = rollback_state(store, run, records)
    if run.status == "rolled_back":
        refusal: str | None = f"run {run.id[:8]} is already rolled back: there is nothing left to approve"
    elif kept_of(record) is not None:
        refusal = _kept_message(run, kept_of(record))  # type: ignore[arg-type]
    elif record is None or state is None:
        refusal = "no rollback has been decided yet: the deciding role decides first (d); approvals follow it"
    else:
        refusal = check_approval(state.trigger, role, actor, held, state, decision)
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_approval_refused", refusal, role=role, roles=sorted(held),
                       decision=decision)
    assert record is not None and state is not None
    cleaned = clean_text(note)
    store.add_approval(Approval(tenant_id=run.tenant_id, execution_run_id=run.id, kind=APPROVAL_KIND,
                                role=role, actor=actor, decision=decision, note=cleaned.text,
                                created_at=store.now()))
    if cleaned.changed:
        store.audit(run.tenant_id, actor, "rollback_note_cleaned", run.id, {"changes": list(cleaned.changes)})
    after = approval_state(state.trigger, state.decision_by, votes_of(store, run, records))
    over = [f"{a}'s refusal ({r}) is overruled" for r, a, by in after.overruled if person(by) == person(actor)]
    also = f" ({'; '.join(over)})" if over else ""
    if after.complete:
        return FlowOutcome("done", f"{actor} approved as {role}{also}; all approvals are in — the DBA may "
                           "execute rung 1 (i) or rung 2 (x)", record.id)
    still = who_holds(plan, after.missing) if after.missing else "refused by " + ", ".join(a for _, a in after.refused)
    return FlowOutcome("done", f"{actor} approved as {role}{also}; still needed: {still}", record.id)


def refuse_rollback(store: Store, plan: Plan, run: ExecutionRun, role: str, actor: str,
                    roles: Iterable[str], reason: str) -> FlowOutcome:
    """Refuse the decided rollback for one role, with a reason (required, audited). The matrix
    applies as to an approval: only someone who may still give the role refuses, never the
    requester. What may follow is stated in the outcome (docs/rollback.md): another holder of the
    role approves, the refuser approves after all, the canary lead makes a new trigger
    (``retrigger_rollback``) or keeps the index (``keep_index``)."""
    run = _fresh(store, run)
    held = set(roles)
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = rollback_state(store, run, records)
    cleaned = clean_text(reason)
    if run.status == "rolled_back":
        refusal: str | None = f"run {run.id[:8]} is already rolled back: there is nothing left to refuse"
    elif kept_of(record) is not None:
        refusal = _kept_message(run, kept_of(record))  # type: ignore[arg-type]
    elif record is None or state is None:
        refusal = "no rollback has been decided yet: there is nothing to refuse"
    else:
        refusal = check_approval(state.trigger, role, actor, held, state, "refuse")
        if refusal is None and not cleaned.text:
            refusal = ("a refusal needs its reason: say why the rollback must not go ahead — every console "
                       "shows it and the audit trail keeps it")
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_approval_refused", refusal, role=role, roles=sorted(held),
                       decision="refuse")
    assert record is not None and state is not None
    store.add_approval(Approval(tenant_id=run.tenant_id, execution_run_id=run.id, kind=APPROVAL_KIND,
                                role=role, actor=actor, decision="refuse", note=cleaned.text,
                                created_at=store.now()))
    if cleaned.changed:
        store.audit(run.tenant_id, actor, "rollback_note_cleaned", run.id, {"changes": list(cleaned.changes)})
    after = approval_state(state.trigger, state.decision_by, votes_of(store, run, records))
    steps = next_steps("refused", state.trigger, after) if after.refused else ()
    then = "; ".join(step.text for step in steps) or "nothing blocks it: the role was given by another person"
    return FlowOutcome("done", f"{actor} refused as {role}: {cleaned.text}. Next: {then}", record.id)


@dataclass(frozen=True)
class _Closing:
    """The words of one of the canary lead's two steps after a decision: a new trigger, or keeping
    the index. Both pass the same guard (``_closing_guard``); only what they say differs."""

    action: str  # the roles table's action (engine/domain/roles.py)
    audit: str  # the audit action of a refusal
    whose: str  # "a new trigger is the {roles}'s step"
    rolled_back: str  # after "run … is already rolled back: "
    undecided: str  # no decision in force
    rung1: str  # after "the DBA undoes it (u) "
    no_reason: str
    needs_refusal: bool = False  # keep: only while a refusal stands
    no_drop_in_progress: bool = False  # retrigger: not while a DROP is in progress or was cut off


_RETRIGGER = _Closing(
    "rollback_retrigger", "rollback_retrigger_refused", "a new trigger is the {}'s step (docs/rollback.md); {} — ",
    "there is nothing left to trigger",
    "no rollback is decided: there is no trigger to replace — decide (d) with the trigger that fits",
    "before the trigger can change", "a new trigger needs its reason: say why the decision in force is closed",
    no_drop_in_progress=True)
_KEEP = _Closing(
    "rollback_keep_index", "rollback_keep_refused", "keeping the index is the {}'s call (docs/rollback.md); {} — ",
    "the index is gone", "", "before the index is kept",
    "keeping the index needs its reason: it ends the rollback flow, and the audit trail keeps why",
    needs_refusal=True)


def _closing_guard(store: Store, plan: Plan, run: ExecutionRun, actor: str, held: set[str], reason: str,
                   step: _Closing) -> tuple[str | None, list[RollbackRecord], RollbackRecord | None,
                                            ApprovalState | None, Any]:
    """Why the canary lead's step (a new trigger, or keeping the index) may not be taken, or None;
    with what it read: the records, the decision in force, its approval state, the cleaned reason."""
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = rollback_state(store, run, records)
    cleaned = clean_text(reason)
    refusal: str | None = None
    if not may(step.action, held):
        need = needed(step.action)
        refusal = step.whose.format(role_words(need), held_words(actor, held)) + f"ask {who_holds(plan, sorted(need))}"
    elif run.status == "rolled_back":
        refusal = f"run {run.id[:8]} is already rolled back: {step.rolled_back}"
    elif kept_of(record) is not None:
        refusal = _kept_message(run, kept_of(record))  # type: ignore[arg-type]
    elif step.needs_refusal and (record is None or state is None or not state.refused):
        refusal = ("the index is kept only once a refusal stands: "
                   + ("decide the rollback first (d)" if state is None else
                      "nobody has refused this rollback — approve it (a), or make a new trigger (n)"))
    elif record is None or state is None:
        refusal = step.undecided
    elif active_ignore(records) is not None:
        refusal = f"rung 1 is applied (the index is ignored): the DBA undoes it (u) {step.rung1}"
    elif step.no_drop_in_progress and any(record_kind(r) == "drop" and r.rollback_status == "in_progress"
                                          for r in records):
        refusal = ("a DROP for this decision is in progress (or was cut off): the DBA retries it (x), which "
                   "finds out whether it went through, before the trigger can change")
    elif not cleaned.text:
        refusal = step.no_reason
    return refusal, records, record, state, cleaned


def retrigger_rollback(store: Store, plan: Plan, run: ExecutionRun, actor: str, roles: Iterable[str],
                       reason: str) -> FlowOutcome:
    """The canary lead closes the decision in force (refused, or waiting for approvals that will
    not come) so a new trigger can be decided: the flow is back at AWAITING DECISION, and the
    approvals and refusals given so far stay on the record but do not count for the new decision.
    Nothing is sent to the server; a rung already applied must be undone (u) first."""
    run = _fresh(store, run)
    held = set(roles)
    refusal, records, record, state, cleaned = _closing_guard(store, plan, run, actor, held, reason, _RETRIGGER)
    if refusal is not None:
        return _refuse(store, run, actor, _RETRIGGER.audit, refusal, roles=sorted(held))
    assert record is not None and state is not None
    now = store.now()
    d = dict(record.rollback_details or {})
    closed = [v_id for v_id in _open_vote_ids(store, run, records)]
    record.rollback_details = {**d, "superseded_at": now.isoformat(), "superseded_by": actor,
                               "superseded_reason": cleaned.text, "closed_votes": closed}
    record.rollback_status = "superseded"
    store.save_rollback_record(record, actor, "rollback_decision_superseded")
    store.audit(run.tenant_id, actor, "rollback_retriggered", run.id, _json({
        "reason": cleaned.text, "previous_trigger": d.get("trigger"), "decided_by": d.get("decided_by"),
        "refused_by": [f"{a} ({r})" for r, a in state.refused], "votes_closed": len(closed),
        "cleaned": list(cleaned.changes)}))
    t = TRIGGER_BY_KEY[state.trigger]
    return FlowOutcome("done", f"{actor} closed the '{t.condition}' decision: {cleaned.text}. Next: pick the "
                       "trigger that fits (t) and its deciding role decides (d); earlier approvals do not carry "
                       "over", record.id)


def keep_index(store: Store, plan: Plan, run: ExecutionRun, actor: str, roles: Iterable[str],
               reason: str) -> FlowOutcome:
    """The canary lead accepts a refusal and keeps the index: the rollback flow ends in its final
    state KEPT, with the reason on the record and in the audit trail. Only while a refusal stands
    (a rollback nobody refused is approved or decided again, not abandoned), before any rung."""
    run = _fresh(store, run)
    held = set(roles)
    refusal, _records, record, state, cleaned = _closing_guard(store, plan, run, actor, held, reason, _KEEP)
    if refusal is not None:
        return _refuse(store, run, actor, _KEEP.audit, refusal, roles=sorted(held))
    assert record is not None and state is not None
    now = store.now()
    role = next((r for r in sorted(needed("rollback_keep_index")) if r in held), "")
    kept = {"by": actor, "role": role, "at": now.isoformat(), "reason": cleaned.text,
            "refused_by": [f"{a} ({r})" for r, a in state.refused]}
    record.rollback_details = {**(record.rollback_details or {}), "kept": kept}
    record.rollback_status = "not_needed"
    record.rollback_completed_at = now
    store.save_rollback_record(record, actor, "rollback_decision_closed")
    store.audit(run.tenant_id, actor, "rollback_index_kept", run.id, _json({
        **kept, "trigger": state.trigger, "index": run.index_name, "cleaned": list(cleaned.changes)}))
    return FlowOutcome("done", f"index {run.index_name} kept by {actor}: {cleaned.text}. Final: the rollback flow "
                       "of this run is closed", record.id)


def _open_vote_ids(store: Store, run: ExecutionRun, records: Sequence[RollbackRecord]) -> list[str]:
    closed = closed_votes(records)
    return [a.id for a in store.approvals(run.tenant_id, run.id, APPROVAL_KIND) if a.id not in closed]


def _gate(store: Store, plan: Plan, run: ExecutionRun, actor: str, roles: set[str],
          rung: str) -> tuple[str | None, RollbackRecord | None, ApprovalState | None]:
    """What every rung needs before anything is sent: a decision, every approval, the DBA's hand."""
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = rollback_state(store, run, records)
    if run.status == "rolled_back":
        return f"run {run.id[:8]} is already rolled back: the index is gone", record, state
    if kept_of(record) is not None:
        return _kept_message(run, kept_of(record)), record, state  # type: ignore[arg-type]
    if record is None or state is None:
        return "no rollback has been decided yet: decide first (d), then collect the approvals", None, None
    if state.refused:
        return ("the rollback was refused by " + ", ".join(f"{a} ({r})" for r, a in state.refused)
                + ". Next: " + "; ".join(s.text for s in next_steps("refused", state.trigger, state))), record, state
    if not state.complete:
        missing = who_holds(plan, state.missing) if state.missing else "another person than the requester"
        return f"the rollback is not approved yet: still must approve: {missing}", record, state
    if not roles & set(EXECUTE_ROLES):
        return (f"executing {rung} is the DBA's step (runbook 6.1, R2); {held_words(actor, roles)} — ask "
                f"{who_holds(plan, EXECUTE_ROLES)}"), record, state
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


def _rung(point: RollbackPoint | None, name: str) -> dict[str, Any] | None:
    return next((r for r in (point.ladder if point else None) or [] if r.get("rung") == name), None)


def execute_ignore(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                   roles: Iterable[str], acknowledged: Iterable[str] = (),
                   clock: Clock | None = None) -> FlowOutcome:
    """Rung 1: ``ALTER INDEX … IGNORED`` (MariaDB ≥ 10.6) / ``INVISIBLE`` (MySQL 8) — instant and
    reversible. Recorded as a ``partial`` rollback with every attempt; verified from the catalogue."""
    clock = clock or SystemClock()
    run = _fresh(store, run)
    held = set(roles)
    refusal, decision, _state = _gate(store, plan, run, actor, held, "rung 1 (ignore)")
    point = store.rollback_point(run.tenant_id, run.id)
    rung = _rung(point, "ignore")
    if refusal is None and rung is None:
        refusal = ("rung 1 is not available for this run: the server did not support ALTER INDEX … "
                   "IGNORED / INVISIBLE when the rollback point was captured (MariaDB ≥ 10.6, MySQL 8) — "
                   "use rung 2 (x)")
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_execution_refused", refusal, rung="ignore")
    assert decision is not None and rung is not None
    insp = inspect(target, run, point, clock)
    stop = _preflight(insp, acknowledged)
    if stop is None and not insp.index_exists:
        stop = ("refused", f"index {run.index_name} is not there: nothing to ignore — if it is really gone, "
                "rung 2 (x) records the rollback")
    if stop is None and insp.ignored and active_ignore(store.rollback_records(run.tenant_id, run.id)):
        stop = ("refused", "rung 1 is already applied: observe, then drop (x) or undo (u)")
    if stop is not None:
        if stop[0] == "failed":
            store.audit(run.tenant_id, actor, "rollback_execution_failed", run.id, {"rung": "ignore", "error": stop[1]})
            return FlowOutcome("failed", stop[1])
        return _refuse(store, run, actor, "rollback_execution_refused", stop[1], rung="ignore")
    if insp.conflicts:
        store.audit(run.tenant_id, actor, "rollback_conflicts_acknowledged", run.id,
                    {"rung": "ignore", "conflicts": list(insp.conflicts)})
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
    held = set(roles)
    record = active_ignore(store.rollback_records(run.tenant_id, run.id))
    refusal = None
    if run.status == "rolled_back":
        refusal = "the index was dropped (rung 2): there is nothing to undo"
    elif record is None:
        refusal = "rung 1 is not applied: there is nothing to undo"
    elif not held & set(EXECUTE_ROLES):
        refusal = f"undoing rung 1 is the DBA's step; {held_words(actor, held)} — ask {who_holds(plan, EXECUTE_ROLES)}"
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_execution_refused", refusal, rung="undo_ignore")
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
    held = set(roles)
    refusal, decision, state = _gate(store, plan, run, actor, held, "rung 2 (DROP INDEX)")
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_execution_refused", refusal, rung="drop")
    assert decision is not None and state is not None
    point = store.rollback_point(run.tenant_id, run.id)
    insp = inspect(target, run, point, clock)
    stop = _preflight(insp, acknowledged)
    if stop is not None:
        if stop[0] == "failed":
            store.audit(run.tenant_id, actor, "rollback_execution_failed", run.id, {"rung": "drop", "error": stop[1]})
            return FlowOutcome("failed", stop[1])
        return _refuse(store, run, actor, "rollback_execution_refused", stop[1], rung="drop")
    if insp.conflicts:
        store.audit(run.tenant_id, actor, "rollback_conflicts_acknowledged", run.id,
                    {"rung": "drop", "conflicts": list(insp.conflicts)})
    d = decision.rollback_details or {}
    records = store.rollback_records(run.tenant_id, run.id)
    rung1 = active_ignore(records)
    opts = plan.executor
    out = IndexRollback(store, target, actor, clock, max_attempts=opts.rollback_attempts,
                        backoff_s=opts.rollback_backoff_seconds, lock_wait_timeout=opts.lock_wait_timeout).drop(
        run, decision.trigger_reason, rollback_type="full", fail_reason="manual_rollback",
        details={"rung": "drop", "trigger": d.get("trigger"), "decision_record": decision.id,
                 "decided": f"{d.get('decided_by')} ({d.get('decided_role')})",
                 "approvals": [f"{a} ({r})" for r, a in state.approved],
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


# --- what the Rollback screen opens on, and its refresh -------------------------------------------


def rollback_candidate(store: Store, plan: Plan) -> ExecutionRun | None:
    """The run the Rollback screen opens on: the latest whose own index may still be in place."""
    for run in store.find_runs(plan.tenant, ("running", "completed", "failed", "cancelled"), limit=20):
        if run.index_created_by_run:
            return run
    return None


def refresh(store: Store, plan: Plan, target: Target | None, run_id: str,
            clock: Clock | None = None) -> tuple[RollbackView, Inspection | None]:
    """The view and, when a target is given (the driving console), a fresh inspection: one call
    for the App's worker. A joined console passes no target and does not poll the server."""
    view = rollback_view(store, plan, run_id)
    if target is None:
        return view, None
    run = store.get_run(plan.tenant, run_id)
    assert run is not None
    return view, inspect(target, run, store.rollback_point(plan.tenant, run_id), clock)


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


