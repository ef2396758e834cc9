"""The audit trail: read it (filtered, paged), and report an entry from outside (docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.auth import Caller, Tenant, refuse_tenant
from api.models import AuditPage, AuditReport, AuditReported
from api.problems import ApiProblem
from engine.flows.execution_flow import report_audit, run_anywhere

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=AuditPage, summary="the tenant's audit trail, oldest first, paged by seq")
def read(request: Request, tenant: Tenant,
         run_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9-]{1,36}$", max_length=36,
                                             description="only this run's entries")] = None,
         action: Annotated[str | None, Query(pattern=r"^[a-z0-9_.]{1,64}$", max_length=64,
                                             description="only this action, e.g. kill_switch_activated")] = None,
         limit: Annotated[int, Query(ge=1, le=500)] = 100,
         after: Annotated[int | None, Query(ge=0, le=2**62, description="the previous page's next_after")] = None,
         ) -> Any:
    # One more than the page: the last page says so (next_after null) without an empty page after it.
    rows = request.app.state.store.audit_entries(tenant, run_id, action, limit=limit + 1, since_seq=after)
    page = rows[:limit]
    return {"entries": [r.model_dump(mode="json") for r in page], "limit": limit,
            "next_after": page[-1].seq if len(rows) > limit else None}


@router.post("", response_model=AuditReported, status_code=201, summary="report an audit entry from outside",
             description="Role: 'audit_report'. Written as 'reported.<action>' by the token's actor (an outside "
                         "tool's entry is never mistaken for the engine's own); the reporter's timestamp is kept "
                         "in details.")
def report(request: Request, who: Caller, tenant: Tenant, body: AuditReport) -> Any:
    run = None
    if body.execution_run_id:
        run = run_anywhere(request.app.state.store, body.execution_run_id)
        if run is None:
            raise ApiProblem(404, f"run {body.execution_run_id} not found", field="execution_run_id")
        if not who.may_act_on(run.tenant_id):
            raise refuse_tenant(request, who, run.tenant_id, run.id)
        tenant = run.tenant_id
    details = dict(body.details or {})
    if body.timestamp:
        details["reported_at"] = body.timestamp
    name = report_audit(request.app.state.store, tenant, run, who.actor, {who.role}, body.action, details)
    return {"action": name, "execution_run_id": run.id if run else None, "actor": who.actor}
