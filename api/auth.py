"""Who is asking, and for which tenant: bearer tokens bound to a person, a role and tenants.

A token maps to a ``Principal`` (actor, role, tenants — or ``*`` for every tenant; the token file
format is in docs/api.md). The guard (api/guard.py) identifies the token before any body is read;
``current_principal`` hands it to the routes, and ``tenant_in_scope`` / ``run_in_scope`` are the one
place where a request for another tenant's objects is refused (403, audited).

Failed authentication is audited too (``auth_failed``: the client address, the path, whether a
token was sent — never the token), at most ``AUTH_AUDIT_PER_MINUTE`` rows per client address a
minute; the rows after that are counted and the next row written says how many were left out.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.problems import ApiProblem
from engine.adapters.store import ExecutionRun, Store
from engine.domain.identifiers import check_slug
from engine.domain.roles import ROLES
from engine.flows import guard
from engine.flows.execution_flow import check_role, run_anywhere

ALL_TENANTS = "*"
AUTH_AUDIT_PER_MINUTE = 5
TRACKED_ADDRESSES = 4096  # the rate limiter forgets the least recent address beyond this


@dataclass(frozen=True)
class Principal:
    actor: str
    role: str
    tenants: frozenset[str]

    def may_act_on(self, tenant: str) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants

    @property
    def everywhere(self) -> bool:
        return ALL_TENANTS in self.tenants

    @property
    def home(self) -> str | None:
        """The tenant a request without ``tenant_id`` is for: the token's only tenant, if one."""
        return next(iter(self.tenants)) if len(self.tenants) == 1 and not self.everywhere else None

    def describe_tenants(self) -> str:
        return "every tenant" if self.everywhere else ", ".join(sorted(self.tenants))


def principal_of(entry: Any, default_tenant: str) -> Principal:
    """A token table's value: a ``Principal``, ``(actor, role)`` (bound to the default tenant) or
    ``(actor, role, tenants)``."""
    if isinstance(entry, Principal):
        p = entry
    elif isinstance(entry, tuple) and len(entry) in (2, 3):
        tenants = entry[2] if len(entry) == 3 else (default_tenant,)
        p = Principal(entry[0], entry[1], frozenset([tenants] if isinstance(tenants, str) else tenants))
    else:
        raise ValueError("a token maps to (actor, role) or (actor, role, tenants)")
    if not p.actor or p.role not in ROLES or not p.tenants:
        raise ValueError(f"token entries need an actor, a role in {ROLES} and tenants")
    for t in p.tenants:
        if t != ALL_TENANTS:
            check_slug(t, "tenant")
    return p


class Authenticator:
    """Token → principal, in constant time per token; failed attempts audited, rate-limited."""

    def __init__(self, store: Store, default_tenant: str, tokens: Mapping[str, Principal],
                 clock: Callable[[], float] = time.monotonic, per_minute: int = AUTH_AUDIT_PER_MINUTE):
        self.store = store
        self.default_tenant = default_tenant
        self.known = [(t.encode(), p) for t, p in tokens.items()]
        self.clock = clock
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, tuple[float, int, int]] = OrderedDict()  # address → (window start, written, left out)

    def identify(self, authorization: str) -> Principal | None:
        scheme, _, token = authorization.partition(" ")
        presented = token.strip().encode("utf-8", "replace") if scheme.lower() == "bearer" else b""
        found: Principal | None = None
        for candidate, principal in self.known:  # no early exit on a match
            if hmac.compare_digest(presented, candidate):
                found = principal
        return found if presented else None

    def admit(self, address: str) -> int | None:
        """None: over the limit (counted); else how many rows were left out before this one."""
        now = self.clock()
        with self._lock:
            start, written, skipped = self._seen.pop(address, (now, 0, 0))
            if now - start >= 60:
                start, written = now, 0
            if written >= self.per_minute:
                self._seen[address] = (start, written, skipped + 1)
                out = None
            else:
                self._seen[address] = (start, written + 1, 0)
                out = skipped
            while len(self._seen) > TRACKED_ADDRESSES:
                self._seen.popitem(last=False)
        return out

    def audit_failure(self, address: str, method: str, path: str, token_sent: bool) -> bool:
        """Write ``auth_failed`` unless the address is over its limit; True when written."""
        skipped = self.admit(address)
        if skipped is None:
            return False
        self.write_failure(address, method, path, token_sent, skipped)
        return True

    def write_failure(self, address: str, method: str, path: str, token_sent: bool, skipped: int) -> None:
        details = {"client": address, "request": f"{method} {path}"[:300],
                   "why": "unknown bearer token" if token_sent else "no bearer token", "via": "api"}
        if skipped:
            details["left_out_before"] = skipped
        guard.auth_failed(self.store, self.default_tenant, details)


bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="a token from the API's token file (docs/api.md)")


async def current_principal(request: Request, _credentials: Annotated[Any, Depends(bearer)] = None) -> Principal:
    """The token's principal (the guard identified it before the body was read)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:  # the guard answers 401 first; this is the belt to its braces
        raise ApiProblem(401, "missing or unknown bearer token: send 'Authorization: Bearer <token>'")
    return principal


Caller = Annotated[Principal, Depends(current_principal)]


def role_gate(action: str) -> Any:
    """A dependency that refuses a role the table (engine/domain/roles.py) does not give ``action``: 403
    and ``<action>_refused`` in the audit trail, before the body is looked at. Declared after the
    tenant's or the run's dependency, it runs after it: another tenant's object is refused as such."""
    def gate(request: Request, principal: Caller) -> None:
        check_role(request.app.state.store, principal.home or request.app.state.default_tenant, principal.actor,
                   {principal.role}, action, request.path_params.get("run_id"), via="api",
                   request=f"{request.method} {request.url.path}"[:300])
    return Depends(gate)


def refuse_tenant(request: Request, principal: Principal, tenant: str, run_id: str | None = None) -> ApiProblem:
    """403 for another tenant's object, audited in that tenant's trail (its people see the attempt)."""
    state = request.app.state
    guard.tenant_refused(state.store, tenant, principal.actor, run_id,
                         {"role": principal.role, "token_tenants": sorted(principal.tenants),
                          "request": f"{request.method} {request.url.path}"[:300], "via": "api"})
    return ApiProblem(403, f"{principal.actor}'s token is for {principal.describe_tenants()}, not tenant {tenant}",
                      field="tenant_id")


async def tenant_in_scope(request: Request, principal: Caller,
                    tenant_id: Annotated[str | None, Query(
                        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", max_length=63,
                        description="the tenant; default: the token's own (or the API's)")] = None) -> str:
    """The request's tenant, refused (403, audited) when the token is not bound to it. Async (no
    threadpool hop: the kill switch's path never waits for it); the refusal's audit on a thread."""
    tenant = tenant_id or principal.home or request.app.state.default_tenant
    if not principal.may_act_on(tenant):
        raise await run_in_threadpool(refuse_tenant, request, principal, tenant)
    return tenant


Tenant = Annotated[str, Depends(tenant_in_scope)]
RUN_ID_PATTERN = r"^[A-Za-z0-9-]{1,36}$"


def run_in_scope(request: Request, principal: Caller,
                 run_id: Annotated[str, Path(pattern=RUN_ID_PATTERN, max_length=36,
                                             description="the execution run's id")],
                 tenant_id: Annotated[str | None, Query(
                     pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", max_length=63,
                     description="the tenant; default: the run's")] = None) -> ExecutionRun:
    """The run, whatever tenant it is in: 404 if there is none, 403 (audited) if the token is not
    bound to its tenant (or to the ``tenant_id`` asked for)."""
    if tenant_id and not principal.may_act_on(tenant_id):
        raise refuse_tenant(request, principal, tenant_id, None)
    run = run_anywhere(request.app.state.store, run_id)
    if run is None or (tenant_id and run.tenant_id != tenant_id):
        where = tenant_id or principal.home or request.app.state.default_tenant
        raise ApiProblem(404, f"run {run_id} not found for tenant {where}", field="run_id")
    if not principal.may_act_on(run.tenant_id):
        raise refuse_tenant(request, principal, run.tenant_id, run.id)
    return run


Run = Annotated[ExecutionRun, Depends(run_in_scope)]
