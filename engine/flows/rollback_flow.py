"""The manual rollback's people steps (runbook section 6; docs/rollback.md), each audited:
``decide_rollback`` (R1), ``approve_rollback``, ``refuse_rollback`` (with its reason),
``retrigger_rollback`` and ``keep_index`` (the canary lead's steps after a refusal, behind one
guard); and what the Rollback screen opens on (``rollback_candidate``, ``refresh``).

The ladder's rungs that follow an approval are engine/flows/rollback_rungs.py; the rules they all
apply are engine/domain/rollback_rules.py (pure); the screen's data is engine/views/rollback.py.
An action never raises a refusal: it returns a ``FlowOutcome`` whose message names the problem and
the way out, and the refusal is in the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.adapters import sql
from engine.adapters.store import Approval, ExecutionRun, RollbackRecord, Store
from engine.adapters.target import Target
from engine.domain.clock import Clock
from engine.domain.jsonable import jsonable
from engine.domain.plan import Plan
from engine.domain.roles import in_role, needed, role_words
from engine.domain.rollback_rules import (
    APPROVAL_KIND,
    DECISION_KIND,
    DECISION_MARK,
    TRIGGER_BY_KEY,
    ApprovalState,
    FlowOutcome,
    Inspection,
    active_ignore,
    approval_state,
    check_approval,
    check_decision,
    closed_votes,
    decision_record,
    kept_of,
    next_steps,
    person,
    prepared_record,
    record_kind,
    who_holds,
)
from engine.domain.text import clean_text
from engine.flows import guard
from engine.views.rollback import (
    RollbackView,
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


# --- the store-backed actions --------------------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(json.dumps(jsonable(value), default=str))


def _kept_message(run: ExecutionRun, kept: dict[str, Any]) -> str:
    return (f"final: {in_role(str(kept.get('by')), str(kept.get('role')))} kept index {run.index_name} — {kept.get('reason')}; "
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
    return FlowOutcome("done", f"rollback decided ({t.condition}) by {actor} as {role_words([role])}; approvals needed: "
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
    refusal = _vote_refusal(run, record, state, role, actor, held, decision, "approve",
                            "no rollback has been decided yet: the deciding role decides first (d); approvals "
                            "follow it")
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
    over = [f"{a}'s refusal as {role_words([r])} is overruled" for r, a, by in after.overruled if person(by) == person(actor)]
    also = f" ({'; '.join(over)})" if over else ""
    if after.complete:
        return FlowOutcome("done", f"{actor} approved as {role_words([role])}{also}; all approvals are in — the DBA may "
                           "execute rung 1 (i) or rung 2 (x)", record.id)
    still = who_holds(plan, after.missing) if after.missing else "refused by " + ", ".join(a for _, a in after.refused)
    return FlowOutcome("done", f"{actor} approved as {role_words([role])}{also}; still needed: {still}", record.id)


def _vote_refusal(run: ExecutionRun, record: RollbackRecord | None, state: ApprovalState | None, role: str,
                  actor: str, held: set[str], decision: str, verb: str, undecided: str) -> str | None:
    """Why a vote on the decided rollback (an approval or a refusal) is not taken: the run is rolled
    back already, the index was kept, nothing is decided (``undecided``), or the approvals matrix
    says no (``check_approval``); None when it is taken."""
    if run.status == "rolled_back":
        return f"run {run.id[:8]} is already rolled back: there is nothing left to {verb}"
    if kept_of(record) is not None:
        return _kept_message(run, kept_of(record))  # type: ignore[arg-type]
    if record is None or state is None:
        return undecided
    return check_approval(state.trigger, role, actor, held, state, decision)


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
    refusal = _vote_refusal(run, record, state, role, actor, held, "refuse", "refuse",
                            "no rollback has been decided yet: there is nothing to refuse")
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
    return FlowOutcome("done", f"{actor} refused as {role_words([role])}: {cleaned.text}. Next: {then}", record.id)


@dataclass(frozen=True)
class _Closing:
    """The words of one of the canary lead's two steps after a decision: a new trigger, or keeping
    the index. Both pass the same checks (the role through engine/flows/guard.py, then
    ``_closing_guard``); only what they say differs. Every refusal of the step is audited as
    ``<action>_refused``."""

    action: str  # the roles table's action (engine/domain/roles.py)
    rolled_back: str  # after "run … is already rolled back: "
    undecided: str  # no decision in force
    rung1: str  # after "the DBA undoes it (u) "
    no_reason: str
    needs_refusal: bool = False  # keep: only while a refusal stands
    no_drop_in_progress: bool = False  # retrigger: not while a DROP is in progress or was cut off


_RETRIGGER = _Closing(
    "rollback_retrigger", "there is nothing left to trigger",
    "no rollback is decided: there is no trigger to replace — decide (d) with the trigger that fits",
    "before the trigger can change", "a new trigger needs its reason: say why the decision in force is closed",
    no_drop_in_progress=True)
_KEEP = _Closing(
    "rollback_keep_index", "the index is gone", "", "before the index is kept",
    "keeping the index needs its reason: it ends the rollback flow, and the audit trail keeps why",
    needs_refusal=True)


def _role_refused(store: Store, plan: Plan, run: ExecutionRun, actor: str, held: set[str],
                  action: str, **details: Any) -> FlowOutcome | None:
    """The role of ``action``, from the one table through engine/flows/guard.py (audited there as
    ``<action>_refused``), naming who in the plan holds it; None when the person may. The canary
    lead's steps here and the DBA's rungs (engine/flows/rollback_rungs.py) ask it first."""
    said = guard.refusal(store, run.tenant_id, actor, held, action, run.id,
                         ask=who_holds(plan, sorted(needed(action))), **details)
    return FlowOutcome("refused", said) if said is not None else None


def _closing_guard(store: Store, plan: Plan, run: ExecutionRun, actor: str, held: set[str], reason: str,
                   step: _Closing) -> tuple[str | None, list[RollbackRecord], RollbackRecord | None,
                                            ApprovalState | None, Any]:
    """Why the state does not let the canary lead's step (a new trigger, or keeping the index) be
    taken, or None; with what it read: the records, the decision in force, its approval state, the
    cleaned reason. The role is asked before (``_role_refused``)."""
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = rollback_state(store, run, records)
    cleaned = clean_text(reason)
    refusal: str | None = None
    if run.status == "rolled_back":
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
    refused = _role_refused(store, plan, run, actor, held, _RETRIGGER.action)
    if refused is not None:
        return refused
    refusal, records, record, state, cleaned = _closing_guard(store, plan, run, actor, held, reason, _RETRIGGER)
    if refusal is not None:
        return _refuse(store, run, actor, guard.refused_as(_RETRIGGER.action), refusal, roles=sorted(held))
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
        "refused_by": [in_role(a, r) for r, a in state.refused], "votes_closed": len(closed),
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
    refused = _role_refused(store, plan, run, actor, held, _KEEP.action)
    if refused is not None:
        return refused
    refusal, _records, record, state, cleaned = _closing_guard(store, plan, run, actor, held, reason, _KEEP)
    if refusal is not None:
        return _refuse(store, run, actor, guard.refused_as(_KEEP.action), refusal, roles=sorted(held))
    assert record is not None and state is not None
    now = store.now()
    role = next((r for r in sorted(needed("rollback_keep_index")) if r in held), "")
    kept = {"by": actor, "role": role, "at": now.isoformat(), "reason": cleaned.text,
            "refused_by": [in_role(a, r) for r, a in state.refused]}
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
    from engine.flows.rollback_rungs import inspect

    run = store.get_run(plan.tenant, run_id)
    assert run is not None
    return view, inspect(target, run, store.rollback_point(plan.tenant, run_id), clock)
