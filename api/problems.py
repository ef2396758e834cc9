"""Every error as an RFC 9457 problem document (``application/problem+json``), never a traceback.

The members: ``type`` (``about:blank``: the status says it), ``title`` (the status phrase),
``status``, ``detail`` (one line naming the problem and the way out), ``instance`` (the path), and
the extensions ``field`` (the body or query field at fault, when there is one), ``errors`` (every
field problem of a 422) and ``error`` (= ``detail``, for clients written against the API's first
``{"error": …}`` answers, e.g. ``engine.adapters.killswitch.RemoteKillSwitch``). See docs/api.md.
"""

from __future__ import annotations

import json
import math
import re
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.adapters.store import StoreError
from engine.domain.text import clean_text
from engine.flows.execution_flow import Refused

PROBLEM = "application/problem+json"
REFUSAL_STATUS = {"forbidden": 403, "conflict": 409, "invalid": 422, "not_found": 404}


def jsonable(value: Any) -> Any:
    """Fit for strict JSON: NaN and infinities (a stored float can be one) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class SafeJSONResponse(JSONResponse):
    """JSON that cannot fail to encode: ASCII escapes (a lone surrogate read back from anywhere
    is written as ``\\udxxx``, not a UnicodeEncodeError), no NaN."""

    def render(self, content: Any) -> bytes:
        return json.dumps(jsonable(content), ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")


def problem(status: int, detail: str, instance: str = "", headers: dict[str, str] | None = None,
            **extensions: Any) -> SafeJSONResponse:
    detail = clean_text(detail, 1000).text
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                            "detail": detail}
    if instance:
        body["instance"] = clean_text(instance, 300).text
    body.update({k: v for k, v in extensions.items() if v is not None})
    body["error"] = detail
    return SafeJSONResponse(body, status, headers=headers, media_type=PROBLEM)


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0][:200] if text else ''}".rstrip(": ")


def field_of(loc: tuple[Any, ...]) -> str:
    """("body", "columns", 1) → "columns[1]"; ("query", "limit") → "limit"."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or (str(loc[0]) if loc else "body")


def _message(error: dict[str, Any]) -> str:
    field = field_of(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    msg = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "missing":
        return f'"{field}" is required' if field != "body" else "a JSON body is required"
    if kind == "extra_forbidden":
        return f'"{field}" is not a field of this request: leave it out (the fields are in /openapi.json)'
    if msg.startswith(f'"{field}"') or msg.startswith(f"{field} "):
        return msg
    return f'"{field}": {msg}'


async def on_validation_error(request: Request, exc: RequestValidationError) -> SafeJSONResponse:
    errors = [{"field": field_of(tuple(e.get("loc", ()))), "message": _message(e)} for e in exc.errors()]
    first = errors[0] if errors else {"field": None, "message": "the request is not valid"}
    detail = first["message"] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
    return problem(422, detail, request.url.path, field=first["field"], errors=errors)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> SafeJSONResponse:
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404 and exc.detail == "Not Found":
        detail = f"no endpoint at {request.url.path}: the API is described at /openapi.json"
    elif exc.status_code == 405:
        allowed = ", ".join(_methods_at(request)) or (headers or {}).get("Allow", "")
        headers = dict(headers or {}, Allow=allowed)
        detail = f"{request.method} is not allowed on {request.url.path}: use {allowed or 'another method'}"
    else:
        detail = str(exc.detail)
    extra = getattr(exc, "extensions", {}) or {}
    return problem(exc.status_code, detail, request.url.path, headers=headers, **extra)


def _methods_at(request: Request) -> list[str]:
    """Every method the path has (one route per method), for a 405's Allow header: read from the
    OpenAPI document, the routes' own description."""
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {m.upper() for m in item}
    return sorted(methods)


async def on_refused(request: Request, exc: Refused) -> SafeJSONResponse:
    return problem(REFUSAL_STATUS.get(exc.kind, 409), str(exc), request.url.path, field=exc.field)


async def on_store_error(request: Request, exc: Exception) -> SafeJSONResponse:
    return problem(503, f"store unavailable: {first_line(exc)}", request.url.path)


async def on_any_error(request: Request, exc: Exception) -> SafeJSONResponse:
    return problem(500, f"internal error: {exc.__class__.__name__}", request.url.path)


class ApiProblem(StarletteHTTPException):
    """An HTTP refusal with problem extensions (e.g. ``field``)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extensions: Any):
        super().__init__(status, detail, headers)
        self.extensions = extensions


def install(app: Any) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Refused, on_refused)
    for cls in (StoreError, SQLAlchemyError, OSError):
        app.add_exception_handler(cls, on_store_error)
    app.add_exception_handler(Exception, on_any_error)
