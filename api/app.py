"""The FastAPI application: the routers, the guard, the problem documents, the OpenAPI document.

``create_app(store, tenant_id, tokens)``: ``tokens`` maps a bearer token to ``(actor, role)``
(bound to ``tenant_id``), ``(actor, role, tenants)`` (``"*"`` for every tenant) or a
``Principal``. ``tenant_id`` is the tenant of a request that names none, for a token bound to
several tenants (a token bound to one acts in it by default).
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api import problems
from api.auth import Authenticator, principal_of
from api.guard import MAX_BODY, MAX_DEPTH, Guard
from api.problems import ApiProblem, SafeJSONResponse
from api.routers import audit, executions, killswitch, rollback, system
from api.switch_reads import SwitchReader
from engine.adapters.store import Store
from engine.domain.identifiers import check_slug
from engine.flows.switch_flow import switch_state

API_VERSION = "2.0"


class Problem(BaseModel):
    """An error (RFC 9457)."""
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None
    error: str


ERROR_WORDS = {
    400: f"the body is not JSON, nests deeper than {MAX_DEPTH} levels, or gives a key twice",
    401: "missing or unknown bearer token (audited, never the token)",
    403: "the token's role or tenants may not do this (audited)",
    404: "no such run",
    409: "a conflict: a held lease, a second run, a refused transition or rule",
    413: f"body larger than {MAX_BODY} bytes",
    422: "a bad body or parameter: the field is named",
    500: "an unexpected error: a problem document naming its kind, never a traceback",
    503: "the store cannot be used",
}
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem, "description": words}
                                           for code, words in ERROR_WORDS.items()}


def _query_names(route: Any) -> frozenset[str]:
    names = getattr(route, "_canary_query_names", None)
    if names is None:
        found: set[str] = set()
        todo = [route.dependant]
        while todo:
            dependant = todo.pop()
            found.update(p.alias for p in dependant.query_params)
            todo.extend(dependant.dependencies)
        names = frozenset(found)
        route._canary_query_names = names
    return names


async def strict_query(request: Request) -> None:
    """A misspelt query parameter is refused, not ignored: '?conection_id=' would read the switch
    without the connection's scope. A parameter given twice is refused too."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    taken = _query_names(route)
    for name in request.query_params:
        if name not in taken:
            raise ApiProblem(422, f"unknown query parameter {name[:40]!r}: {request.method} {route.path} takes "
                                  + (", ".join(sorted(taken)) or "none"), field=name[:40])
        if len(request.query_params.getlist(name)) > 1:
            raise ApiProblem(422, f"query parameter {name!r} is given more than once", field=name)


def _problem_media(document: dict[str, Any]) -> dict[str, Any]:
    """Error answers are application/problem+json: move their schema there."""
    for item in document.get("paths", {}).values():
        for op in item.values():
            for code, response in op.get("responses", {}).items():
                content = response.get("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                if code[0] in "45" and schema.get("$ref", "").endswith("/Problem"):
                    content["application/problem+json"] = content.pop("application/json")
    return document


def create_app(store: Store, tenant_id: str, tokens: Mapping[str, Any]) -> FastAPI:
    default_tenant = check_slug(tenant_id, "tenant_id")
    principals = {}
    for token, entry in tokens.items():
        if not token or not isinstance(token, str):
            raise ValueError("a token must be a non-empty string")
        principals[token] = principal_of(entry, default_tenant)
    app = FastAPI(title="Canary Console API", version=API_VERSION, default_response_class=SafeJSONResponse,
                  description="The kill switch, executions, rollbacks and audit trail of Canary Console "
                              "(docs/api.md). Errors are RFC 9457 problem documents.",
                  docs_url=None, redoc_url=None, dependencies=[Depends(strict_query)])
    app.state.store = store
    app.state.default_tenant = default_tenant
    app.state.authenticator = Authenticator(store, default_tenant, principals)
    app.state.holders = tuple((p.actor, p.role) for p in principals.values())
    app.state.flow_lock = threading.Lock()  # one rollback action at a time, as the console's
    # The kill switch's writes have their own threads (docs/api.md): a flood of reads in the shared
    # threadpool never delays an activation.
    app.state.switch_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kill-switch")
    # The executors' polls: coalesced onto one thread of their own (api/switch_reads.py).
    app.state.switch_reader = SwitchReader(store)
    problems.install(app)
    app.include_router(system.router)
    for module in (killswitch, executions, rollback, audit):
        app.include_router(module.router, responses=ERRORS)
    app.add_middleware(Guard)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _warm(app, store, default_tenant)
    return app


_DOCUMENT: dict[str, Any] | None = None  # the same for every app: the routes are the routers' own


def _document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, built once a process (0.1 s of CPU each time; the tests create a
    hundred apps) and copied for each app, so no app can change another's."""
    global _DOCUMENT
    if _DOCUMENT is None:
        _DOCUMENT = _problem_media(get_openapi(title=app.title, version=app.version, description=app.description,
                                               routes=app.routes))
    return copy.deepcopy(_DOCUMENT)


def _warm(app: FastAPI, store: Store, tenant: str) -> None:
    """Do at start what the first request would otherwise pay for (hundreds of ms on a loaded host:
    a kill switch's first activation must not): the OpenAPI document, the routers' matching tables,
    the kill-switch read's compiled SELECT."""
    for template, item in app.openapi()["paths"].items():
        path = re.sub(r"\{[^/]+\}", "x", template)
        for method in item:
            scope = {"type": "http", "method": method.upper(), "path": path, "root_path": "", "headers": []}
            for route in app.router.routes:
                route.matches(scope)
    app.state.switch_executor.submit(lambda: None).result()  # its thread exists before the first kill
    try:
        switch_state(store, tenant, "")
        store.kill_switch_rows(tenant, None)
    except Exception:  # noqa: BLE001 - an unreadable store is /health's to report, not start-up's
        pass
