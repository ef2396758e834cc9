"""The kill switch: the executor's read, the tenant's status, each scope on or off (docs/api.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

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
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.flows.killswitch_actions import activate, deactivate
from engine.flows.switch_flow import switch_state, tenant_switches

router = APIRouter(prefix="/api/kill-switch", tags=["kill-switch"])
SlugQuery = Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=63,
                                        description="the connection whose switch counts too")]
ConnPath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=63, description="the connection profile's id")]
TenantPath = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=63, description="the tenant")]
SET_DOC = ("Any token activates (the reason is cleaned, never refused: the answer says what the cleaning "
           "changed). Deactivation (is_active false) needs the canary_lead or dba role (403 otherwise) and a "
           "reason (422 naming \"reason\" otherwise); both refusals are audited as "
           "'kill_switch_deactivation_refused'. A tenant the token is not bound to is 403, audited.")
NO_REASON = 'deactivation needs a reason: give "reason" (why it is safe to go on)'


def _own(request: Request, who: Principal, tenant: str) -> str:
    if not who.may_act_on(tenant):
        raise refuse_tenant(request, who, tenant)
    return tenant


async def _set(request: Request, who: Principal, tenant: str, scope: str, body: KillSwitchSet,
               connection_id: str = "", own: str | None = None) -> KillSwitchSetAnswer:
    """On the kill switch's own threads: never queued behind the reads in the shared threadpool.
    ``own``: a tenant named in the body, checked (and a refusal audited) there too."""
    return await asyncio.get_running_loop().run_in_executor(
        request.app.state.switch_executor, _set_now, request, who, tenant, scope, body, connection_id, own)


def _set_now(request: Request, who: Principal, tenant: str, scope: str, body: KillSwitchSet,
             connection_id: str = "", own: str | None = None) -> KillSwitchSetAnswer:
    store = request.app.state.store
    if own is not None:
        tenant = _own(request, who, own)
    # The same engine functions as F9/F8 and the CLI (docs/kill-switch.md). The API does not connect
    # to targets: the executor that runs an ALTER watches the switch and stops it (enforce=False).
    backend = EmbeddedKillSwitch(store)
    if body.is_active:
        out = activate(store, backend, tenant, scope, who.actor, {who.role}, body.reason, connection_id,
                       via="api", worker="api", enforce=False)
    else:
        out = deactivate(store, backend, tenant, [scope], who.actor, {who.role}, body.reason, connection_id,
                         via="api")
    if out.refused is not None and out.refused_usage and not body.is_active and not out.reason:
        # The API's words name its body field, as docs/api.md documents (the engine's suit every front end).
        raise ApiProblem(422, NO_REASON, field="reason")
    if out.refused is not None:
        raise ApiProblem(422 if out.refused_usage else 403, out.refused)
    if not out.switch_set:
        raise ApiProblem(503, "; ".join(out.lines()))
    return KillSwitchSetAnswer(**switch_state(store, tenant, connection_id), scope=scope, is_active=body.is_active,
                               tenant_id=tenant, actor=who.actor,
                               reason=out.on_reason if out.already_on else out.reason,  # as stored: the first
                               reason_cleaned=bool(out.cleaned), reason_changes=list(out.cleaned))


@router.get("", response_model=KillSwitchState, summary="the executor's read: every scope for one connection")
async def read(request: Request, tenant: Tenant, connection_id: SlugQuery = None) -> KillSwitchState:
    # The executors' poll, the hottest route: its ordinary form is answered before routing
    # (api/switch_reads.py fast_read); both read through the coalescing reader, never the threadpool.
    return KillSwitchState(**await request.app.state.switch_reader.state(tenant, connection_id or ""))


@router.get("/status", response_model=KillSwitchStatus, summary="the tenant's switches")
async def status(request: Request, tenant: Tenant) -> KillSwitchStatus:
    return KillSwitchStatus(**await run_in_threadpool(tenant_switches, request.app.state.store, tenant))


@router.put("/global", response_model=KillSwitchSetAnswer, summary="turn the global switch on or off",
            description=SET_DOC + " The global switch stops every tenant: who may set it is the role table's "
                                  "'kill_switch_global' (with 'kill_switch_deactivate' to turn it off).")
async def put_global(request: Request, who: Caller, tenant: Tenant, body: KillSwitchSet) -> KillSwitchSetAnswer:
    own = body.tenant_id if body.tenant_id and not request.query_params.get("tenant_id") else None
    return await _set(request, who, tenant, "global", body, own=own)


@router.get("/connection/{connection_id}", response_model=ScopeStatus, summary="one connection's switch")
async def read_connection(request: Request, tenant: Tenant, connection_id: ConnPath) -> ScopeStatus:
    state = await run_in_threadpool(switch_state, request.app.state.store, tenant, connection_id)
    return ScopeStatus(is_active=state["connection_active"], connection_id=connection_id, tenant_id=tenant)


@router.put("/connection/{connection_id}", response_model=KillSwitchSetAnswer,
            summary="turn one connection's switch on or off", description=SET_DOC)
async def put_connection(request: Request, who: Caller, tenant: Tenant, connection_id: ConnPath,
                         body: KillSwitchSet) -> KillSwitchSetAnswer:
    own = body.tenant_id if body.tenant_id and not request.query_params.get("tenant_id") else None
    return await _set(request, who, tenant, "connection", body, connection_id, own=own)


@router.get("/tenant/{tenant_id}/status", response_model=ScopeStatus, summary="one tenant's switch")
def read_tenant(request: Request, who: Caller, tenant_id: TenantPath) -> ScopeStatus:
    tenant = _own(request, who, tenant_id)
    return ScopeStatus(is_active=switch_state(request.app.state.store, tenant)["tenant_active"], tenant_id=tenant)


@router.put("/tenant/{tenant_id}", response_model=KillSwitchSetAnswer, summary="turn one tenant's switch on or off",
            description=SET_DOC + " A body tenant_id other than the path's is 422.")
async def put_tenant(request: Request, who: Caller, tenant_id: TenantPath, body: KillSwitchSet) -> KillSwitchSetAnswer:
    if body.tenant_id and body.tenant_id != tenant_id:
        raise ApiProblem(422, f'"tenant_id" {body.tenant_id!r} in the body differs from {tenant_id!r} in the path',
                         field="tenant_id")
    return await _set(request, who, tenant_id, "tenant", body, own=tenant_id)
