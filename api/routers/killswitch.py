"""The kill switch: the executor's read, the tenant's status, each scope on or off (docs/api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from api.auth import Caller, Principal, Tenant, refuse_tenant
from api.models import (
    SLUG_PATTERN,
    KillSwitchSet,
    KillSwitchSetAnswer,
    KillSwitchState,
    KillSwitchStatus,
    ScopeStatus,
)
from api.problems import ApiProblem
from engine.switch_flow import set_switch, switch_state, tenant_switches

router = APIRouter(prefix="/api/kill-switch", tags=["kill-switch"])
SlugQuery = Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=63,
                                        description="the connection whose switch counts too")]
ConnPath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=63, description="the connection profile's id")]
TenantPath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=63, description="the tenant")]
SET_DOC = ("Any token activates (the reason is cleaned, never refused: the answer says what the cleaning "
           "changed). Deactivation (is_active false) needs the canary_lead or dba role (403 otherwise) and a "
           "reason (422 naming \"reason\" otherwise); both refusals are audited as "
           "'kill_switch_deactivation_refused'. A tenant the token is not bound to is 403, audited.")


def _own(request: Request, who: Principal, tenant: str) -> str:
    if not who.may_act_on(tenant):
        raise refuse_tenant(request, who, tenant)
    return tenant


def _set(request: Request, who: Principal, tenant: str, scope: str, body: KillSwitchSet,
         connection_id: str = "") -> KillSwitchSetAnswer:
    store = request.app.state.store
    out = set_switch(store, tenant, scope, body.is_active, who.actor, {who.role}, body.reason, connection_id)
    if not out.ok:
        raise ApiProblem(403 if out.refusal == "role" else 422, out.message,
                         field="reason" if out.refusal == "reason" else None)
    return KillSwitchSetAnswer(**switch_state(store, tenant, connection_id), scope=scope, is_active=body.is_active,
                               tenant_id=tenant, actor=who.actor, reason=out.reason,
                               reason_cleaned=bool(out.reason_changes), reason_changes=list(out.reason_changes))


@router.get("", response_model=KillSwitchState, summary="the executor's read: every scope for one connection")
def read(request: Request, tenant: Tenant, connection_id: SlugQuery = None) -> KillSwitchState:
    return KillSwitchState(**switch_state(request.app.state.store, tenant, connection_id or ""))


@router.get("/status", response_model=KillSwitchStatus, summary="the tenant's switches")
def status(request: Request, tenant: Tenant) -> KillSwitchStatus:
    return KillSwitchStatus(**tenant_switches(request.app.state.store, tenant))


@router.put("/global", response_model=KillSwitchSetAnswer, summary="turn the global switch on or off",
            description=SET_DOC + " The global switch stops every tenant: who may set it is the role table's "
                                  "'kill_switch_global' (with 'kill_switch_deactivate' to turn it off).")
def put_global(request: Request, who: Caller, tenant: Tenant, body: KillSwitchSet) -> KillSwitchSetAnswer:
    tenant = _own(request, who, body.tenant_id) if body.tenant_id and not request.query_params.get("tenant_id") \
        else tenant
    return _set(request, who, tenant, "global", body)


@router.get("/connection/{connection_id}", response_model=ScopeStatus, summary="one connection's switch")
def read_connection(request: Request, tenant: Tenant, connection_id: ConnPath) -> ScopeStatus:
    state = switch_state(request.app.state.store, tenant, connection_id)
    return ScopeStatus(is_active=state["connection_active"], connection_id=connection_id, tenant_id=tenant)


@router.put("/connection/{connection_id}", response_model=KillSwitchSetAnswer,
            summary="turn one connection's switch on or off", description=SET_DOC)
def put_connection(request: Request, who: Caller, tenant: Tenant, connection_id: ConnPath,
                   body: KillSwitchSet) -> KillSwitchSetAnswer:
    if body.tenant_id and not request.query_params.get("tenant_id"):
        tenant = _own(request, who, body.tenant_id)
    return _set(request, who, tenant, "connection", body, connection_id)


@router.get("/tenant/{tenant_id}/status", response_model=ScopeStatus, summary="one tenant's switch")
def read_tenant(request: Request, who: Caller, tenant_id: TenantPath) -> ScopeStatus:
    tenant = _own(request, who, tenant_id)
    return ScopeStatus(is_active=switch_state(request.app.state.store, tenant)["tenant_active"], tenant_id=tenant)


@router.put("/tenant/{tenant_id}", response_model=KillSwitchSetAnswer, summary="turn one tenant's switch on or off",
            description=SET_DOC + " A body tenant_id other than the path's is 422.")
def put_tenant(request: Request, who: Caller, tenant_id: TenantPath, body: KillSwitchSet) -> KillSwitchSetAnswer:
    tenant = _own(request, who, tenant_id)
    if body.tenant_id and body.tenant_id != tenant:
        raise ApiProblem(422, f'"tenant_id" {body.tenant_id!r} in the body differs from {tenant!r} in the path',
                         field="tenant_id")
    return _set(request, who, tenant, "tenant", body)
