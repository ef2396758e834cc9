"""The seed-000 kill-switch API, served by the engine (Starlette on uvicorn).

``GET /api/kill-switch?connection_id=…`` is the executor's contract (seed 001 §2); the PUTs and the
status GETs are the ones the runbook's ``curl`` lines use. Token authentication: every token maps
to an actor and a role. Activation is open to any token; deactivation needs canary_lead or dba and
a reason, and a refusal is audited. Errors answer ``{"error": …}`` — never a traceback.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.identifiers import IdentifierError, check_slug
from engine.store import Store

DEACTIVATE_ROLES = {"canary_lead", "dba"}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(store: Store, tenant_id: str, tokens: dict[str, tuple[str, str]]) -> Starlette:
    """``tokens``: bearer token → (actor, role)."""

    def who(request: Request) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if token not in tokens:
            raise ApiError(401, "missing or unknown bearer token")
        return tokens[token]

    def tenant_of(request: Request) -> str:
        tenant = request.query_params.get("tenant_id") or tenant_id
        return _slug(tenant, "tenant_id")

    async def state(tenant: str, connection_id: str) -> dict[str, Any]:
        rows = await run_in_threadpool(store.kill_switch_rows, tenant, connection_id or None)
        flags = {"global": False, "tenant": False, "connection": False}
        by: dict[str, str] = {}
        reasons: dict[str, str] = {}
        for r in rows:
            scope = r.scope
            if scope == "connection" and r.connection_profile_id != connection_id:
                continue
            flags[scope] = bool(r.is_active)
            by[scope] = r.updated_by
            reasons[scope] = r.reason
        return {"global_active": flags["global"], "tenant_active": flags["tenant"],
                "connection_active": flags["connection"], "updated_by": by, "reasons": reasons}

    async def health(_request: Request) -> JSONResponse:
        try:
            await run_in_threadpool(store.kill_switch_rows, tenant_id, None)
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            return JSONResponse({"status": "degraded", "store": f"unreadable: {exc.__class__.__name__}"}, 503)
        return JSONResponse({"status": "ok", "store": "ok"})

    async def kill_switch(request: Request) -> JSONResponse:
        who(request)
        conn = request.query_params.get("connection_id", "")
        if conn:
            _slug(conn, "connection_id")
        return JSONResponse(await state(tenant_of(request), conn))

    async def status(request: Request) -> JSONResponse:
        who(request)
        tenant = tenant_of(request)
        rows = await run_in_threadpool(store.kill_switch_rows, tenant, None)
        conns = await run_in_threadpool(_connection_rows, store, tenant)
        body = {"global_active": any(r.is_active for r in rows if r.scope == "global"),
                "tenant_active": any(r.is_active for r in rows if r.scope == "tenant"),
                "connections": conns}
        return JSONResponse(body)

    async def connection_status(request: Request) -> JSONResponse:
        who(request)
        conn = _slug(request.path_params["connection_id"], "connection_id")
        s = await state(tenant_of(request), conn)
        return JSONResponse({"is_active": s["connection_active"], "connection_id": conn})

    async def tenant_status(request: Request) -> JSONResponse:
        who(request)
        tenant = _slug(request.path_params["tenant_id"], "tenant_id")
        s = await state(tenant, "")
        return JSONResponse({"is_active": s["tenant_active"], "tenant_id": tenant})

    async def put(request: Request, scope: str, tenant: str, conn: str = "") -> JSONResponse:
        actor, role = who(request)
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(422, 'the body must be JSON: {"is_active": true|false, "reason": "…"}') from None
        if not isinstance(body, dict) or not isinstance(body.get("is_active"), bool):
            raise ApiError(422, '"is_active" must be true or false')
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 2000:
            raise ApiError(422, '"reason" must be a string of at most 2000 characters')
        active = body["is_active"]
        if not active:
            refusal = None
            if role not in DEACTIVATE_ROLES:
                refusal = (403, f"deactivation needs the canary_lead or dba role; {actor} is {role}")
            elif not reason.strip():
                refusal = (422, "deactivation needs a reason")
            if refusal:
                await run_in_threadpool(store.audit, tenant, actor, "kill_switch_deactivation_refused", None,
                                        {"scope": scope, "connection_id": conn or None, "role": role,
                                         "why": refusal[1], "via": "api"})
                raise ApiError(*refusal)
        await run_in_threadpool(store.set_kill_switch, tenant, scope, active, actor, reason.strip(), conn)
        return JSONResponse(dict(await state(tenant, conn), scope=scope, is_active=active))

    async def put_global(request: Request) -> JSONResponse:
        return await put(request, "global", tenant_of(request))

    async def put_tenant(request: Request) -> JSONResponse:
        return await put(request, "tenant", _slug(request.path_params["tenant_id"], "tenant_id"))

    async def put_connection(request: Request) -> JSONResponse:
        conn = _slug(request.path_params["connection_id"], "connection_id")
        return await put(request, "connection", tenant_of(request), conn)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return await handler(request)
            except ApiError as exc:
                return JSONResponse({"error": str(exc)}, exc.status)
            except Exception as exc:  # noqa: BLE001 - a store failure is a 503, never a traceback
                return JSONResponse({"error": f"store unavailable: {exc.__class__.__name__}"}, 503)
        return endpoint

    routes = [
        Route("/health", guarded(health)),
        Route("/api/kill-switch", guarded(kill_switch)),
        Route("/api/kill-switch/status", guarded(status)),
        Route("/api/kill-switch/global", guarded(put_global), methods=["PUT"]),
        Route("/api/kill-switch/connection/{connection_id}", guarded(connection_status)),
        Route("/api/kill-switch/connection/{connection_id}", guarded(put_connection), methods=["PUT"]),
        Route("/api/kill-switch/tenant/{tenant_id}/status", guarded(tenant_status)),
        Route("/api/kill-switch/tenant/{tenant_id}", guarded(put_tenant), methods=["PUT"]),
    ]
    return Starlette(routes=routes)


def _slug(value: str, what: str) -> str:
    try:
        return check_slug(value, what)
    except IdentifierError as exc:
        raise ApiError(422, str(exc)) from None


def _connection_rows(store: Store, tenant: str) -> dict[str, bool]:
    from sqlmodel import select

    from engine.store.models import KillSwitchState

    with store.session() as s:
        rows = s.exec(select(KillSwitchState).where(KillSwitchState.tenant_id == tenant,
                                                    KillSwitchState.scope == "connection")).all()
    return {r.connection_profile_id: bool(r.is_active) for r in rows}


@dataclass
class ApiServer:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(10)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0) -> ApiServer:
    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the API server did not start on {host}:{port}")
        time.sleep(0.01)
    return ApiServer(server, thread, host, port)
