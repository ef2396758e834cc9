"""Executions: create, list, read, claim, report a status, ask for the execution (docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from api.auth import Caller, Run, Tenant, refuse_tenant, role_gate
from api.models import Claim, ExecuteAnswer, ExecutionCreate, RunList, StatusChange
from api.models import Run as RunOut
from engine.adapters.store import ExecutionRun
from engine.adapters.store.models import RUN_STATUSES
from engine.flows.execution_flow import (
    NewExecution,
    claim_execution,
    create_execution,
    request_execution,
    set_execution_status,
)

router = APIRouter(prefix="/api/executions", tags=["executions"])
_ONE = "(" + "|".join(RUN_STATUSES) + ")"


def dump(run: ExecutionRun) -> dict[str, Any]:
    return run.model_dump(mode="json")


@router.get("", response_model=RunList, summary="the tenant's runs, newest first")
def list_runs(request: Request, tenant: Tenant,
              status: Annotated[str | None, Query(pattern=f"^{_ONE}(,{_ONE})*$", max_length=100,
                                                  description="comma-separated, e.g. running or scheduled,running")] = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Any:
    wanted = [s for s in (status or "").split(",") if s]
    runs = request.app.state.store.find_runs(tenant, wanted or None, limit=limit)
    return {"runs": [dump(r) for r in runs]}


@router.post("", response_model=RunOut, status_code=201, summary="create a scheduled ADD_INDEX run",
             description="Role: the role table's 'execution_create' (403 and 'execution_create_refused' "
                         "otherwise). 422 for an action other than ADD_INDEX (out_of_scope, audited as "
                         "'execution_refused'), or without schema_name when the connection has no stored "
                         "profile. 409 while another run holds the store's scope lock.")
def create(request: Request, response: Response, who: Caller, tenant: Tenant, body: ExecutionCreate,
           _gate: Annotated[None, role_gate("execution_create")]) -> Any:
    if body.tenant_id and body.tenant_id != tenant:
        if not who.may_act_on(body.tenant_id):
            raise refuse_tenant(request, who, body.tenant_id)
        tenant = body.tenant_id
    columns = list(body.columns)  # (name, prefix) pairs, checked by the model
    run = create_execution(request.app.state.store, NewExecution(
        tenant=tenant, connection_id=body.connection_id, table_name=body.table_name, index_name=body.index_name,
        columns=columns, action=body.action, schema_name=body.schema_name, query_digests=body.query_digests or (),
        scheduled_at=body.scheduled_at), who.actor, {who.role})
    response.headers["Location"] = f"/api/executions/{run.id}"
    return dump(run)


@router.get("/{run_id}", response_model=RunOut, summary="one run: its status, lease and times")
def show(run: Run) -> Any:
    return dump(run)


@router.post("/{run_id}/claim", response_model=RunOut, summary="take the run's lease; it moves to running",
             description="Role: 'execution_claim'. Atomic: a second claim while the lease is held is 409, "
                         "whoever asks (the same token too). A claimed scheduled run moves to running.")
def claim(request: Request, who: Caller, run: Run,
          _gate: Annotated[None, role_gate("execution_claim")],
          body: Annotated[Claim | None, Body()] = None) -> Any:
    body = body or Claim()
    owner = f"{who.actor}:{body.worker}" if body.worker else who.actor
    return dump(claim_execution(request.app.state.store, run, owner, who.actor, {who.role}, body.lease_seconds))


@router.patch("/{run_id}/status", response_model=RunOut, summary="move the run along its state machine",
              description="Role: 'execution_status'. 409 for a change the state machine refuses (e.g. failed "
                          "without a fail_reason) and for rolled_back before the rollback flow set it, audited "
                          "as 'execution_status_refused'. The run's current status again is a no-op (200).")
def set_status(request: Request, who: Caller, run: Run, body: StatusChange,
               _gate: Annotated[None, role_gate("execution_status")]) -> Any:
    return dump(set_execution_status(request.app.state.store, run, body.status, who.actor, {who.role},
                                     body.fail_reason, body.message))


@router.post("/{run_id}/execute", response_model=ExecuteAnswer, status_code=202,
             summary="ask for the run to be executed now (the runbook's manual trigger)",
             description="Role: 'execute'. Recorded as 'execution_requested'; the ALTER is a worker's "
                         "(canary-console execute PLAN --run ID claims it). 409 unless the run is scheduled "
                         "and unclaimed.")
def execute(request: Request, who: Caller, run: Run,
            _gate: Annotated[None, role_gate("execute")]) -> Any:
    run = request_execution(request.app.state.store, run, who.actor, {who.role})
    return {"id": run.id, "status": run.status, "requested": True,
            "next": f"a worker claims it: canary-console execute PLAN --run {run.id}"}
