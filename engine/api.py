"""The seed-000 kill-switch API, served by the engine (Starlette on uvicorn).

``GET /api/kill-switch?connection_id=…&tenant_id=…`` is the executor's contract (seed 001 §2,
read by ``engine.killswitch.RemoteKillSwitch``); the PUTs and the status GETs are the ones the
runbook's ``curl`` lines use (seed 000 §2). Token authentication: every bearer token maps to an
actor and a role, and the actor recorded is the token's, never the body's. Activation is open to
any token; deactivation needs canary_lead or dba and a reason, and a refusal is audited.

Every error answers ``{"error": …}`` with its status code — never a traceback: 401 without a
known token, 403 for a role that may not, 422 for a bad body or identifier, 404/405 for a wrong
path or method, 503 when the store cannot be used.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.identifiers import IdentifierError, check_slug
from engine.store import KillSwitchState, Store, StoreError

ROLES = ("canary_lead", "dba", "sre", "developer")
DEACTIVATE_ROLES = frozenset({"canary_lead", "dba"})
MAX_REASON = 2000
MAX_BODY = 64 * 1024

Identity = tuple[str, str]  # (actor, role)
Handler = Callable[[Request, Identity], Awaitable[JSONResponse]]


class ApiError(Exception):
    """An answer other than 200: its status and the message for ``{"error": …}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0][:200] if text else ''}".rstrip(": ")


def _slug(value: object, what: str) -> str:
    try:
        return check_slug(value, what)
    except IdentifierError as exc:
        raise ApiError(422, str(exc)) from None


def create_app(store: Store, tenant_id: str, tokens: dict[str, tuple[str, str]]) -> Starlette:
    """The kill-switch API over ``store`` for ``tenant_id`` (the default tenant of every request).

    ``tokens``: bearer token → (actor, role), role one of canary_lead, dba, sre, developer.
    """
    default_tenant = check_slug(tenant_id, "tenant_id")
    for token, entry in tokens.items():
        if not token or not isinstance(entry, tuple) or len(entry) != 2 or entry[1] not in ROLES:
            raise ValueError(f"token entries must be non-empty token → (actor, role) with role in {ROLES}")
    known = [(t.encode(), entry) for t, entry in tokens.items()]

    def identify(request: Request) -> Identity:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip().encode() if scheme.lower() == "bearer" else b""
        found: Identity | None = None
        for candidate, entry in known:  # constant time per token: no early exit on a match
            if hmac.compare_digest(presented, candidate):
                found = entry
        if not presented or found is None:
            raise ApiError(401, "missing or unknown bearer token: send 'Authorization: Bearer <token>'")
        return found

    def query_tenant(request: Request) -> str:
        return _slug(request.query_params.get("tenant_id") or default_tenant, "tenant_id")

    def query_connection(request: Request) -> str:
        conn = request.query_params.get("connection_id", "")
        return _slug(conn, "connection_id") if conn else ""

    # --- blocking store reads, run in the thread pool ------------------------------------

    def read_state(tenant: str, connection_id: str) -> dict[str, Any]:
        flags = {"global": False, "tenant": False, "connection": False}
        by: dict[str, str] = {}
        reasons: dict[str, str] = {}
        for r in store.kill_switch_rows(tenant, connection_id or None):
            if r.scope not in flags or (r.scope == "connection" and r.connection_profile_id != connection_id):
                continue
            flags[r.scope] = bool(r.is_active)
            by[r.scope] = r.updated_by
            reasons[r.scope] = r.reason
        return {"global_active": flags["global"], "connection_active": flags["connection"],
                "tenant_active": flags["tenant"], "updated_by": by, "reasons": reasons}

    def read_status(tenant: str) -> dict[str, Any]:
        rows = store.kill_switch_rows(tenant, None)
        with store.session() as s:
            conns = s.exec(select(KillSwitchState).where(
                KillSwitchState.tenant_id == tenant, KillSwitchState.scope == "connection")).all()
        return {"tenant_id": tenant,
                "global_active": any(r.is_active for r in rows if r.scope == "global"),
                "tenant_active": any(r.is_active for r in rows if r.scope == "tenant"),
                "connections": {r.connection_profile_id: bool(r.is_active) for r in conns}}

    # --- endpoints -------------------------------------------------------------------------

    async def health(_request: Request) -> JSONResponse:
        try:
            await run_in_threadpool(store.kill_switch_rows, default_tenant, None)
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            # No token is needed here: name the kind of failure, not the store's own words.
            return JSONResponse({"status": "degraded", "store": f"unreadable: {exc.__class__.__name__}"}, 503)
        return JSONResponse({"status": "ok", "store": "ok"})

    async def kill_switch(request: Request, _who: Identity) -> JSONResponse:
        tenant, conn = query_tenant(request), query_connection(request)
        return JSONResponse(await run_in_threadpool(read_state, tenant, conn))

    async def status(request: Request, _who: Identity) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(read_status, query_tenant(request)))

    async def connection_status(request: Request, _who: Identity) -> JSONResponse:
        conn = _slug(request.path_params["connection_id"], "connection_id")
        tenant = query_tenant(request)
        state = await run_in_threadpool(read_state, tenant, conn)
        return JSONResponse({"is_active": state["connection_active"], "connection_id": conn, "tenant_id": tenant})

    async def tenant_status(request: Request, _who: Identity) -> JSONResponse:
        tenant = _slug(request.path_params["tenant_id"], "tenant_id")
        state = await run_in_threadpool(read_state, tenant, "")
        return JSONResponse({"is_active": state["tenant_active"], "tenant_id": tenant})

    async def read_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(422, 'the body must be JSON: {"is_active": true|false, "reason": "…"}') from None
        if not isinstance(body, dict):
            raise ApiError(422, 'the body must be a JSON object: {"is_active": true|false, "reason": "…"}')
        if "is_active" not in body:
            raise ApiError(422, '"is_active" is required (true or false)')
        if not isinstance(body["is_active"], bool):
            raise ApiError(422, f'"is_active" must be true or false, got {type(body["is_active"]).__name__}')
        reason = body.get("reason")
        if reason is None:
            body["reason"] = ""
        elif not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise ApiError(422, f'"reason" must be a string of at most {MAX_REASON} characters')
        for key in ("actor", "tenant_id"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise ApiError(422, f'"{key}" must be a string')
        return body

    async def put(request: Request, who: Identity, scope: str, path_tenant: str = "",
                  conn: str = "") -> JSONResponse:
        actor, role = who
        body = await read_body(request)
        body_tenant = body.get("tenant_id") or ""
        if path_tenant:
            if body_tenant and body_tenant != path_tenant:
                raise ApiError(422, f'"tenant_id" {body_tenant!r} in the body differs from {path_tenant!r} in the path')
            tenant = path_tenant
        else:
            tenant = _slug(request.query_params.get("tenant_id") or body_tenant or default_tenant, "tenant_id")
        active: bool = body["is_active"]
        reason: str = body["reason"].strip()
        if not active:
            refusal: tuple[int, str] | None = None
            if role not in DEACTIVATE_ROLES:
                refusal = (403, f"deactivation needs the canary_lead or dba role; {actor} is {role}")
            elif not reason:
                refusal = (422, "deactivation needs a reason")
            if refusal:
                await run_in_threadpool(
                    store.audit, tenant, actor, "kill_switch_deactivation_refused", None,
                    {"scope": scope, "connection_id": conn or None, "role": role, "why": refusal[1],
                     "reason": reason, "via": "api"})
                raise ApiError(*refusal)
        await run_in_threadpool(store.set_kill_switch, tenant, scope, active, actor, reason, conn)
        state = await run_in_threadpool(read_state, tenant, conn)
        return JSONResponse(dict(state, scope=scope, is_active=active, tenant_id=tenant, actor=actor))

    async def put_global(request: Request, who: Identity) -> JSONResponse:
        return await put(request, who, "global")

    async def put_tenant(request: Request, who: Identity) -> JSONResponse:
        return await put(request, who, "tenant", path_tenant=_slug(request.path_params["tenant_id"], "tenant_id"))

    async def put_connection(request: Request, who: Identity) -> JSONResponse:
        conn = _slug(request.path_params["connection_id"], "connection_id")
        return await put(request, who, "connection", conn=conn)

    def authed(handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return await handler(request, identify(request))
            except ApiError as exc:
                return JSONResponse({"error": str(exc)}, exc.status)
            except (StoreError, SQLAlchemyError, OSError) as exc:
                return JSONResponse({"error": f"store unavailable: {_first_line(exc)}"}, 503)
            except Exception as exc:  # noqa: BLE001 - never a traceback on the wire
                return JSONResponse({"error": f"internal error: {exc.__class__.__name__}"}, 500)
        return endpoint

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return JSONResponse({"error": str(detail)}, status, headers=getattr(exc, "headers", None))

    async def server_error(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {exc.__class__.__name__}"}, 500)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/api/kill-switch", authed(kill_switch), methods=["GET"]),
        Route("/api/kill-switch/status", authed(status), methods=["GET"]),
        Route("/api/kill-switch/global", authed(put_global), methods=["PUT"]),
        Route("/api/kill-switch/connection/{connection_id}", authed(connection_status), methods=["GET"]),
        Route("/api/kill-switch/connection/{connection_id}", authed(put_connection), methods=["PUT"]),
        Route("/api/kill-switch/tenant/{tenant_id}/status", authed(tenant_status), methods=["GET"]),
        Route("/api/kill-switch/tenant/{tenant_id}", authed(put_tenant), methods=["PUT"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})


# --- serving in a thread (tests, the self-test, the console's own API) --------------------


@dataclass
class ApiServer:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for its thread (idempotent)."""
        self.server.should_exit = True
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0) -> ApiServer:
    """Serve ``app`` with uvicorn in a daemon thread; return once it accepts connections.

    With ``port=0`` the socket is bound here to port 0 and handed to uvicorn, so the port the OS
    picked cannot be taken by someone else in between.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc}") from None
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout)
            raise RuntimeError(f"the API server did not start on {host}:{port}")
        time.sleep(0.01)
    return ApiServer(server, thread, host, port)
