"""Rollbacks by the console's own rules (engine/flows/rollback_flow.py): decide, approve, history; and the
record of a rollback an outside executor ran (docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from api.auth import Caller, Principal, refuse_tenant, role_gate
from api.auth import Run as RunDep
from api.models import (
    FlowResult,
    RollbackApprove,
    RollbackHistory,
    RollbackReason,
    RollbackRefuse,
    RollbackReport,
    RollbackReported,
    RollbackTrigger,
)
from api.problems import ApiProblem
from engine.adapters.store import ExecutionRun
from engine.domain import rollback_rules as rules
from engine.domain.roles import may
from engine.flows import rollback_flow as flow
from engine.flows.execution_flow import record_rollback, run_anywhere
from engine.flows.rollback_remote import (
    approval_refusal_kind,
    decision_refusal_kind,
    history_json,
    latest_metrics,
    roster_of,
    state_json,
)
from engine.views import rollback as rollback_views

router = APIRouter(tags=["rollback"])
STATUS = {"forbidden": 403, "conflict": 409}
RULES = ("Decided and approved by the rules of the rollback flow (runbook 6.3), as in the console: "
         + "; ".join(f"{t.key} — {t.who()}" for t in rules.TRIGGERS)
         + ". Nobody approves for a role they lack or twice; the requester is never the only approver. A refusal "
           "is 403 (the person) or 409 (the state), audited as 'rollback_decision_refused' / "
           "'rollback_approval_refused'.")


def _roster(request: Request, tenant: str) -> Any:
    return roster_of(tenant, request.app.state.holders)


def _approvals(request: Request, run: ExecutionRun) -> Any:
    return state_json(rollback_views.rollback_view(request.app.state.store, _roster(request, run.tenant_id), run.id).state)


@router.post("/api/rollback/{run_id}/trigger", response_model=FlowResult, status_code=201,
             summary="decide a manual rollback (R1)", description=RULES)
def trigger(request: Request, who: Caller, run: RunDep, body: RollbackTrigger) -> Any:
    store = request.app.state.store
    role = body.role or who.role
    trigger = body.trigger or rules.suggest_trigger(body.reason)
    if trigger is None:
        raise ApiProblem(422, '"trigger" is required: the reason names no runbook 6.3 condition; give one of '
                              + ", ".join(t.key for t in rules.TRIGGERS), field="trigger")
    with request.app.state.flow_lock:
        out = flow.decide_rollback(store, _roster(request, run.tenant_id), run, trigger, who.actor, {who.role},
                                   body.reason, latest_metrics(store, run), role=role)
    if not out.ok:  # the flow wrote rollback_decision_refused
        raise ApiProblem(STATUS[decision_refusal_kind(trigger, role, who.role)], out.message)
    return {"result": out.status, "message": out.message, "record_id": out.record_id,
            "approvals": _approvals(request, run)}


@router.post("/api/rollback/{run_id}/approve", response_model=FlowResult, summary="approve (or refuse) a rollback",
             description=RULES)
def approve(request: Request, who: Caller, run: RunDep,
            body: Annotated[RollbackApprove | None, Body()] = None) -> Any:
    body = body or RollbackApprove()
    store = request.app.state.store
    role = body.role or who.role
    decision = body.decision or "approve"
    roster = _roster(request, run.tenant_id)
    with request.app.state.flow_lock:
        before = rollback_views.rollback_view(store, roster, run.id).state
        out = flow.approve_rollback(store, roster, run, role, who.actor, {who.role},
                                    flow_note(body.note), decision)
    if not out.ok:  # the flow wrote rollback_approval_refused
        fresh = store.get_run(run.tenant_id, run.id) or run
        raise ApiProblem(STATUS[approval_refusal_kind(before, fresh, role, who.actor, {who.role}, decision)],
                         out.message)
    return {"result": out.status, "message": out.message, "record_id": out.record_id,
            "approvals": _approvals(request, run)}


@router.post("/api/rollback/{run_id}/refuse", response_model=FlowResult,
             summary="refuse the decided rollback for one role, with a reason",
             description="The rollback flow's refusal (as the console's and the CLI's 'refuse'): only someone who "
                         "may still give the role refuses, never the requester; the reason is required (422 "
                         "naming \"reason\"). A refusal of the refusal is 403 (the person) or 409 (the state), "
                         "audited as 'rollback_approval_refused'. What may follow: another holder of the role "
                         "approves, the canary lead retriggers or keeps the index.")
def refuse(request: Request, who: Caller, run: RunDep, body: RollbackRefuse) -> Any:
    store = request.app.state.store
    role = body.role or who.role
    roster = _roster(request, run.tenant_id)
    with request.app.state.flow_lock:
        before = rollback_views.rollback_view(store, roster, run.id).state
        out = flow.refuse_rollback(store, roster, run, role, who.actor, {who.role}, body.reason)
    if not out.ok:  # the flow wrote rollback_approval_refused
        fresh = store.get_run(run.tenant_id, run.id) or run
        raise ApiProblem(STATUS[approval_refusal_kind(before, fresh, role, who.actor, {who.role}, "refuse")],
                         out.message)
    return {"result": out.status, "message": out.message, "record_id": out.record_id,
            "approvals": _approvals(request, run)}


def _lead_step(request: Request, who: Principal, run: ExecutionRun, action: str, step: Any, reason: str) -> Any:
    """Retrigger or keep the index: the flow checks the role (engine/domain/roles.py) and the state and
    audits a refusal; 403 when the token's role may not, 409 when the state does not allow it."""
    with request.app.state.flow_lock:
        out = step(request.app.state.store, _roster(request, run.tenant_id), run, who.actor, {who.role}, reason)
    if not out.ok:
        raise ApiProblem(409 if may(action, {who.role}) else 403, out.message)
    return {"result": out.status, "message": out.message, "record_id": out.record_id,
            "approvals": _approvals(request, run)}


@router.post("/api/rollback/{run_id}/retrigger", response_model=FlowResult,
             summary="close the decision in force so a new trigger can be decided",
             description="Role: 'rollback_retrigger' (the canary lead). As the console's and the CLI's "
                         "'retrigger': the flow is back at AWAITING DECISION; approvals and refusals given so far "
                         "stay on the record but do not count. 403 for another role, 409 when nothing is decided, "
                         "rung 1 is applied or a DROP is in progress; both audited as "
                         "'rollback_retrigger_refused'.")
def retrigger(request: Request, who: Caller, run: RunDep, body: RollbackReason) -> Any:
    return _lead_step(request, who, run, "rollback_retrigger", flow.retrigger_rollback, body.reason)


@router.post("/api/rollback/{run_id}/keep-index", response_model=FlowResult,
             summary="accept a refusal and keep the index: the rollback flow ends (KEPT)",
             description="Role: 'rollback_keep_index' (the canary lead). As the console's and the CLI's "
                         "'keep-index': only while a refusal stands, before any rung. 403 for another role, 409 "
                         "otherwise (no refusal stands, already kept or rolled back); both audited as "
                         "'rollback_keep_index_refused'.")
def keep(request: Request, who: Caller, run: RunDep, body: RollbackReason) -> Any:
    return _lead_step(request, who, run, "rollback_keep_index", flow.keep_index, body.reason)


def flow_note(note: Any) -> str:
    from engine.domain.text import clean_text

    return clean_text(note).text


@router.get("/api/rollback/history/{run_id}", response_model=RollbackHistory,
            summary="the run's rollback records, approvals and steps")
def history(request: Request, run: RunDep) -> Any:
    return history_json(request.app.state.store, _roster(request, run.tenant_id), run,
                        lambda r: r.model_dump(mode="json"))


@router.post("/api/rollbacks", response_model=RollbackReported, status_code=201,
             summary="record a rollback an outside executor ran",
             description="Role: 'rollback_record'. Kept as rollback_status 'reported' (the status reported is "
                         "in reported_status): never taken as proof that the index is gone — the rollback flow "
                         "verifies that itself. rollback_sql, when given, must be the run's own DROP INDEX (422).")
def report_rollback(request: Request, who: Caller, body: RollbackReport,
                    _gate: Annotated[None, role_gate("rollback_record")]) -> Any:
    run = _run_of(request, who, body.execution_run_id)
    rec = record_rollback(request.app.state.store, run, who.actor, {who.role}, body.rollback_type, body.status,
                          body.trigger_reason, body.rollback_sql)
    return {"id": rec.id, "execution_run_id": run.id, "rollback_status": rec.rollback_status,
            "reported_status": body.status, "rollback_type": rec.rollback_type,
            "trigger_reason": rec.trigger_reason}


def _run_of(request: Request, who: Principal, run_id: str) -> ExecutionRun:
    run = run_anywhere(request.app.state.store, run_id)
    if run is None:
        raise ApiProblem(404, f"run {run_id} not found", field="execution_run_id")
    if not who.may_act_on(run.tenant_id):
        raise refuse_tenant(request, who, run.tenant_id, run.id)
    return run
