"""The seed-000 HTTP API, served by the engine (Starlette on uvicorn): the kill switch, executions,
rollbacks and the audit trail, for workers and the runbook's ``curl`` lines (SPEC §10).

``GET /api/kill-switch?connection_id=…&tenant_id=…`` is the executor's contract (seed 001 §2, read
by ``engine.killswitch.RemoteKillSwitch``); the other paths are seed 000 §2's and the runbook's
(seed 002). The API keeps no rules of its own: it calls what the console calls — ``Store`` for
the kill switch, runs, claims and the audit trail, ``engine.rollback_flow`` for rollback decisions
and approvals, the role sets of ``engine.runbook`` for who may create, claim or move a run.

Token authentication: every bearer token maps to a person and ONE role, and the actor recorded is
the token's, never the body's. A role-gated endpoint refuses other roles with 403, a message
naming the role needed, and an audit entry ``<action>_refused`` (as the console's ``refuse()``).

Every operation is declared once (``Operation``): its route, its role, its parameters and body as
JSON Schema — which both validates the request and is published at ``/openapi.json`` — so the
document cannot drift from the routes. Every error answers ``{"error": …}`` with its status, never
a traceback: 401 without a known token, 403 for a role that may not, 404 for an unknown run or
path, 405 for a wrong method, 409 for a conflict (a held lease, a second run, a transition the
state machine refuses, a rollback the rules refuse), 413 for a body over 64 KiB, 422 for a bad
body or parameter, 503 when the store cannot be used.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
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

from engine import rollback_flow as flow
from engine.identifiers import IdentifierError, check_identifier, check_slug
from engine.plan import ROLES, Person
from engine.runbook import EXECUTE_ROLES, START_ROLES
from engine.store import (
    AuditLog,
    ClaimConflict,
    ExecutionRun,
    InvalidTransition,
    KillSwitchState,
    ScopeLockError,
    Store,
    StoreError,
)
from engine.store.models import FAIL_REASONS, RUN_STATUSES
from engine.thresholds import Profile

API_VERSION = "1.0"
DEACTIVATE_ROLES = frozenset({"canary_lead", "dba"})  # SPEC §4: deactivation, as the console's F9 dialog
MAX_REASON = 2000
MAX_BODY = 64 * 1024
# The statuses a worker may set with PATCH …/status. ``rolled_back`` is not one of them: a run
# becomes rolled_back when the rollback flow has dropped its index and verified it gone (SPEC §8).
PATCH_STATUSES = ("running", "completed", "failed", "cancelled")
# The metrics a rollback trigger names, recorded at decision time (runbook 6.5). The console keeps
# the same list next to its ``metrics_at_decision`` (console/app.py), which the engine cannot import.
ROLLBACK_METRICS = ("latency_p50", "latency_p99", "error_rate", "lock_wait", "replication_lag")


class ApiError(Exception):
    """An answer other than 2xx: its status and the message for ``{"error": …}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0][:200] if text else ''}".rstrip(": ")


def _roles_words(roles: frozenset[str] | tuple[str, ...]) -> str:
    return " or ".join(sorted(roles))


# --- request validation: the subset of JSON Schema this API documents ----------------------------

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
IDENT_PATTERN = r"^(?![0-9]+$)[A-Za-z0-9_$]{1,64}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9-]{1,36}$"
ACTION_PATTERN = r"^[a-z0-9_]{1,64}$"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return "bool" if isinstance(value, bool) else type(value).__name__


def _expect(schema: Mapping[str, Any]) -> str:
    """What a value of ``schema`` looks like, in words."""
    t = schema.get("type")
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if t == "boolean":
        return "true or false"
    if t == "string":
        if "maxLength" in schema:
            return f"a string of at most {schema['maxLength']} characters"
        return "a string"
    if t in ("integer", "number"):
        word = "an integer" if t == "integer" else "a number"
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and hi is not None:
            return f"{word} from {lo} to {hi}"
        return f"{word} ≥ {lo}" if lo is not None else word
    if t == "array":
        return f"a list of {schema.get('minItems', 0)} to {schema.get('maxItems', 'any number of')} items"
    if t == "object":
        return "a JSON object"
    return "a value"


def _check_run_id(value: str, name: str) -> str:
    if not re.fullmatch(RUN_ID_PATTERN, value):
        raise IdentifierError(f"{name} {value[:80]!r} is not a run id (letters, digits and '-', at most 36)")
    return value


def _check_nonblank(value: str, name: str) -> str:
    if not value.strip():
        raise IdentifierError(f'"{name}" must not be blank: say what was seen and why')
    return value


def _check_datetime(value: str, name: str) -> str:
    try:
        when = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise IdentifierError(f'"{name}" must be an ISO 8601 date and time, e.g. 2025-01-31T22:00:00+07:00') from None
    if when.tzinfo is None:
        raise IdentifierError(f'"{name}" needs its UTC offset, e.g. 2025-01-31T22:00:00+07:00')
    return value


def _check_statuses(value: str, name: str) -> str:
    for status in value.split(","):
        if status not in RUN_STATUSES:
            raise IdentifierError(f'"{name}" {status[:40]!r} is not a run status: give one or more of '
                                  f'{", ".join(RUN_STATUSES)}, separated by commas')
    return value


CHECKS: dict[str, Callable[[str, str], str]] = {
    "slug": check_slug, "identifier": check_identifier, "run_id": _check_run_id,
    "nonblank": _check_nonblank, "datetime": _check_datetime, "statuses": _check_statuses,
    "any": lambda value, _name: value,  # the handler decides (and audits), e.g. an out-of-scope action
}


def check_value(name: str, value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` checked against ``schema``; returns it (a ``null`` of a nullable field becomes its
    default), or raises ``ApiError(422)`` with a message naming ``name`` and what is allowed."""
    if value is None and schema.get("nullable"):
        return schema.get("default")
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                return check_value(name, value, option)
            except ApiError:
                continue
        raise ApiError(422, f'"{name}" must be {schema.get("description", "one of the documented forms")}')
    t = schema.get("type")
    bad = ApiError(422, f'"{name}" must be {_expect(schema)}, got {_kind(value)}')
    if t == "boolean":
        if not isinstance(value, bool):
            raise bad
    elif t == "string":
        if not isinstance(value, str) or len(value) > schema.get("maxLength", math.inf):
            raise bad
        if len(value) < schema.get("minLength", 0):
            raise ApiError(422, f'"{name}" must not be empty')
        check = schema.get("x-check")  # when given, it stands for the enum or pattern published
        if not check and "enum" in schema and value not in schema["enum"]:
            raise ApiError(422, f'"{name}" must be {_expect(schema)}, got {value[:80]!r}')
        try:
            if check:
                CHECKS[check](value, name)
            elif "pattern" in schema and not re.search(schema["pattern"], value):
                raise IdentifierError(f'"{name}" {value[:80]!r} does not match {schema["pattern"]}')
        except IdentifierError as exc:
            raise ApiError(422, str(exc)) from None
    elif t in ("integer", "number"):
        numeric = (int,) if t == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric) or not math.isfinite(value):
            raise bad
        if value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf):
            raise ApiError(422, f'"{name}" must be {_expect(schema)}, got {value}')
    elif t == "array":
        if not isinstance(value, list) or not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", math.inf):
            raise bad
        return [check_value(f"{name}[{i}]", item, schema.get("items", {})) for i, item in enumerate(value)]
    elif t == "object":
        if not isinstance(value, dict):
            raise bad
        out = dict(value)
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if value.get(key) is None and not props.get(key, {}).get("nullable"):
                if key in value:
                    raise ApiError(422, f'"{key}" must be {_expect(props.get(key, {}))}, got null')
                raise ApiError(422, f'"{key}" is required ({_expect(props.get(key, {}))})')
        for key, sub in props.items():
            if key in value:
                out[key] = check_value(key, value[key], sub)
            elif "default" in sub:
                out[key] = sub["default"]
        return out
    return value


def _public(schema: Any) -> Any:
    """A schema as published: without the validator's own ``x-check`` keys."""
    if isinstance(schema, dict):
        return {k: _public(v) for k, v in schema.items() if k != "x-check"}
    if isinstance(schema, list):
        return [_public(v) for v in schema]
    return schema


# --- schemas (validation and documentation alike) ---------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SLUG = {"type": "string", "pattern": SLUG_PATTERN, "maxLength": 63, "x-check": "slug"}
IDENT = {"type": "string", "pattern": IDENT_PATTERN, "maxLength": 64, "x-check": "identifier"}
RUN_ID = {"type": "string", "pattern": RUN_ID_PATTERN, "maxLength": 36, "x-check": "run_id"}
REASON = {"type": "string", "maxLength": MAX_REASON, "nullable": True, "default": ""}
TRIGGER_KEYS = tuple(t.key for t in flow.TRIGGERS)
_ONE_STATUS = "(" + "|".join(RUN_STATUSES) + ")"
STATUS_LIST = {"type": "string", "pattern": f"^{_ONE_STATUS}(,{_ONE_STATUS})*$", "maxLength": 100,
               "x-check": "statuses"}

KILL_SWITCH_BODY = {
    "type": "object", "required": ["is_active"],
    "properties": {
        "is_active": {"type": "boolean", "description": "true stops everything in the scope"},
        "reason": dict(REASON, description="why; required to deactivate"),
        "actor": {"type": "string", "maxLength": 200, "nullable": True,
                  "description": "ignored: the actor recorded is the token's"},
        "tenant_id": dict(SLUG, nullable=True, description="the tenant (else the query's, else the API's default)"),
    },
}
COLUMN = {
    "description": "a column name, or {\"name\": …, \"prefix\": N} for a prefix index",
    "anyOf": [
        IDENT,
        {"type": "object", "required": ["name"], "properties": {
            "name": IDENT, "prefix": {"type": "integer", "minimum": 1, "maximum": 3072, "nullable": True}}},
    ],
}
EXECUTION_BODY = {
    "type": "object", "required": ["connection_id", "table_name", "index_name", "columns"],
    "properties": {
        "tenant_id": dict(SLUG, nullable=True),
        "connection_id": SLUG,
        "action": {"type": "string", "enum": ["ADD_INDEX"], "default": "ADD_INDEX", "maxLength": 32,
                   "x-check": "any", "description": "ADD_INDEX only: anything else is refused as out_of_scope (SPEC §2)"},
        "schema_name": dict(IDENT, nullable=True,
                            description="the database; default: the stored connection profile's"),
        "table_name": IDENT,
        "index_name": IDENT,
        "columns": {"type": "array", "minItems": 1, "maxItems": 16, "items": COLUMN},
        "query_digests": {"type": "array", "maxItems": 50, "nullable": True, "default": [],
                          "items": {"type": "string", "pattern": r"^[0-9a-f]{1,64}$", "maxLength": 64}},
        "scheduled_at": {"type": "string", "format": "date-time", "maxLength": 64, "nullable": True,
                         "x-check": "datetime"},
    },
}
CLAIM_BODY = {
    "type": "object",
    "properties": {
        "worker": {"type": "string", "pattern": r"^[A-Za-z0-9_.:@-]{1,90}$", "maxLength": 90, "nullable": True,
                   "description": "the claiming process (the lease owner is '<token user>:<worker>')"},
        "lease_seconds": {"type": "number", "minimum": 1, "maximum": 3600, "default": 30},
    },
}
STATUS_BODY = {
    "type": "object", "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": [*PATCH_STATUSES, "rolled_back"],
                   "description": "rolled_back is refused (409): the rollback flow sets it once the "
                                  "index is dropped and verified gone"},
        "fail_reason": {"type": "string", "enum": sorted(FAIL_REASONS), "nullable": True},
        "message": dict(REASON, description="what happened, for the run and the audit trail"),
    },
}
TRIGGER_BODY = {
    "type": "object", "required": ["trigger", "reason"],
    "properties": {
        "trigger": {"type": "string", "enum": list(TRIGGER_KEYS),
                    "description": "the runbook 6.3 condition; it says which role decides"},
        "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON, "x-check": "nonblank",
                   "description": "what was seen (R1), e.g. 'lock wait 7 s on orders for 2 min'"},
        "role": {"type": "string", "enum": list(ROLES), "nullable": True,
                 "description": "the deciding role; default: the token's"},
        "rollback_type": {"type": "string", "enum": ["full"], "default": "full", "nullable": True,
                          "description": "a canary adds one index: its rollback is full (seed 000's "
                                         "'partial' has nothing to apply to)"},
    },
}
APPROVE_BODY = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": list(ROLES), "nullable": True,
                 "description": "the role approving; default: the token's (nobody approves for a role they lack)"},
        "decision": {"type": "string", "enum": ["approve", "refuse"], "default": "approve", "nullable": True},
        "note": REASON,
    },
}

_TS = {"type": "string", "format": "date-time", "nullable": True}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
KILL_SWITCH_STATE = {
    "type": "object", "required": ["global_active", "connection_active", "tenant_active"],
    "properties": {
        "global_active": {"type": "boolean"}, "connection_active": {"type": "boolean"},
        "tenant_active": {"type": "boolean"},
        "updated_by": {"type": "object", "additionalProperties": {"type": "string"}},
        "reasons": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
KILL_SWITCH_SET = {
    "allOf": [KILL_SWITCH_STATE, {"type": "object", "required": ["scope", "is_active", "tenant_id", "actor"],
                                  "properties": {"scope": {"type": "string", "enum": ["global", "tenant", "connection"]},
                                                 "is_active": {"type": "boolean"}, "tenant_id": {"type": "string"},
                                                 "actor": {"type": "string"}}}],
}
KILL_SWITCH_STATUS = {
    "type": "object", "required": ["tenant_id", "global_active", "tenant_active", "connections"],
    "properties": {"tenant_id": {"type": "string"}, "global_active": {"type": "boolean"},
                   "tenant_active": {"type": "boolean"},
                   "connections": {"type": "object", "additionalProperties": {"type": "boolean"}}},
}
SCOPE_STATUS = {
    "type": "object", "required": ["is_active", "tenant_id"],
    "properties": {"is_active": {"type": "boolean"}, "tenant_id": {"type": "string"},
                   "connection_id": {"type": "string"}},
}
RUN = {
    "type": "object", "required": ["id", "tenant_id", "status", "table_name", "index_name"],
    "properties": {
        "id": {"type": "string"}, "tenant_id": {"type": "string"}, "connection_profile_id": {"type": "string"},
        "action": {"type": "string"}, "schema_name": {"type": "string"}, "table_name": {"type": "string"},
        "index_name": {"type": "string"}, "columns": {"type": "array", "nullable": True},
        "status": {"type": "string", "enum": list(RUN_STATUSES)},
        "fail_reason": {"type": "string", "nullable": True}, "error_message": {"type": "string", "nullable": True},
        "claimed_by": {"type": "string", "nullable": True}, "lease_expires_at": _TS,
        "index_created_by_run": {"type": "boolean"}, "created_by": {"type": "string"},
        "created_at": _TS, "updated_at": _TS, "started_at": _TS, "completed_at": _TS,
    },
}
RUN_LIST = {"type": "object", "required": ["runs"], "properties": {"runs": {"type": "array", "items": _ref("Run")}}}
ROLE_ACTOR = {"type": "object", "required": ["role", "actor"],
              "properties": {"role": {"type": "string"}, "actor": {"type": "string"}}}
APPROVAL_STATE = {
    "type": "object", "nullable": True,
    "required": ["trigger", "required", "approved", "missing", "refused", "complete"],
    "properties": {
        "trigger": {"type": "string"}, "decided_by": dict(ROLE_ACTOR, nullable=True),
        "required": {"type": "array", "items": {"type": "string"}},
        "approved": {"type": "array", "items": ROLE_ACTOR},
        "missing": {"type": "array", "items": {"type": "string"}},
        "refused": {"type": "array", "items": ROLE_ACTOR},
        "complete": {"type": "boolean"},
    },
}
ROLLBACK_HISTORY = {
    "type": "object", "required": ["run_id", "tenant_id", "run_status", "headline", "records", "approvals", "steps"],
    "properties": {
        "run_id": {"type": "string"}, "tenant_id": {"type": "string"}, "run_status": {"type": "string"},
        "fail_reason": {"type": "string", "nullable": True}, "index_created_by_run": {"type": "boolean"},
        "headline": {"type": "string"}, "level": {"type": "string", "enum": ["ok", "warning", "error"]},
        "trigger": {"type": "string", "nullable": True}, "suggested_trigger": {"type": "string", "nullable": True},
        "reason": {"type": "string"}, "approvals": APPROVAL_STATE,
        "records": {"type": "array", "items": {"type": "object", "required": ["id", "rollback_status"]}},
        "steps": {"type": "array", "items": {"type": "object", "required": ["code", "label", "done"]}},
        "escalation": {"type": "string", "nullable": True}, "drop_sql": {"type": "string"},
    },
}
FLOW_RESULT = {
    "type": "object", "required": ["result", "message", "approvals"],
    "properties": {"result": {"type": "string", "enum": ["done"]}, "message": {"type": "string"},
                   "record_id": {"type": "string", "nullable": True}, "approvals": APPROVAL_STATE},
}
AUDIT_ENTRY = {
    "type": "object", "required": ["seq", "action", "actor", "created_at"],
    "properties": {"seq": {"type": "integer"}, "id": {"type": "string"}, "tenant_id": {"type": "string"},
                   "execution_run_id": {"type": "string", "nullable": True}, "actor": {"type": "string"},
                   "action": {"type": "string"}, "old_status": {"type": "string", "nullable": True},
                   "new_status": {"type": "string", "nullable": True},
                   "details": {"type": "object", "nullable": True}, "created_at": _TS},
}
AUDIT_PAGE = {
    "type": "object", "required": ["entries", "next_after", "limit"],
    "properties": {"entries": {"type": "array", "items": AUDIT_ENTRY},
                   "next_after": {"type": "integer", "nullable": True,
                                  "description": "pass as ?after= for the next page; null on the last"},
                   "limit": {"type": "integer"}},
}
HEALTH = {"type": "object", "required": ["status", "store"],
          "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]}, "store": {"type": "string"}}}

# The answers' schemas, published under components/schemas and referred to by name.
ANSWERS: dict[str, Mapping[str, Any]] = {
    "Error": ERROR, "Health": HEALTH, "KillSwitchState": KILL_SWITCH_STATE, "KillSwitchSet": KILL_SWITCH_SET,
    "KillSwitchStatus": KILL_SWITCH_STATUS, "ScopeStatus": SCOPE_STATUS, "Run": RUN, "RunList": RUN_LIST,
    "RollbackHistory": ROLLBACK_HISTORY, "FlowResult": FLOW_RESULT, "AuditPage": AUDIT_PAGE,
}


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # query | path
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False


TENANT_Q = Param("tenant_id", "query", SLUG, "the tenant; default: the API's")
RUN_P = Param("run_id", "path", RUN_ID, "the execution run's id", required=True)


@dataclass(frozen=True)
class Call:
    """One authenticated request, validated: what a handler needs."""

    request: Request
    actor: str
    role: str
    tenant: str
    params: dict[str, Any]
    body: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    status: int
    data: Any
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Callable[[Call], Reply]
    summary: str
    tag: str
    # Who may call it: None for any token; else these roles (the gate refuses others with 403 and
    # an audit entry ``<action>_refused``). ``role_note`` says it in words where a rule decides.
    roles: frozenset[str] | None = None
    action: str = ""
    what: str = ""  # for the refusal's message: "<what> needs the … role"
    role_note: str = ""
    notes: str = ""  # the rules that refuse a schema-valid request, for the description
    params: tuple[Param, ...] = ()
    body: Mapping[str, Any] | None = None
    body_optional: bool = False
    example: str = "{…}"
    ok: int = 200
    answer: str = "Error"  # the name of its 2xx answer's schema in ANSWERS
    errors: tuple[int, ...] = ()
    auth: bool = True


ERROR_WORDS = {
    401: "missing or unknown bearer token", 403: "the token's role may not do this (audited)",
    404: "no such run for this tenant", 409: "a conflict: held lease, second run, refused transition or rule",
    413: "body larger than 64 KiB", 422: "a bad body or parameter", 503: "the store cannot be used",
}


def openapi_document(operations: list[Operation]) -> dict[str, Any]:
    """The OpenAPI 3 document of ``operations`` (the same objects the routes are built from)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        params = [{"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                   "description": p.description, "schema": _public(p.schema)} for p in op.params]
        responses: dict[str, Any] = {str(op.ok): {"description": "OK", "content": {
            "application/json": {"schema": _ref(op.answer)}}}}
        codes = set(op.errors) | {422, 503}
        if op.auth:
            codes.add(401)
        if op.body is not None:
            codes.add(413)
        if op.roles is not None:
            codes.add(403)
        if any(p.where == "path" and p.name == "run_id" for p in op.params):
            codes.add(404)
        for code in sorted(codes):
            responses[str(code)] = {"description": ERROR_WORDS.get(code, "error"),
                                    "content": {"application/json": {"schema": _ref("Error")}}}
        entry: dict[str, Any] = {
            "operationId": f"{op.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', op.path.lower()).strip('_')}",
            "summary": op.summary, "tags": [op.tag], "parameters": params, "responses": responses,
            "security": [{"bearer": []}] if op.auth else [],
        }
        roles = sorted(op.roles) if op.roles is not None else None
        entry["x-roles"] = roles or ("any token" if op.auth else "no token")
        note = op.role_note or (f"Role: {_roles_words(op.roles)}; other roles get 403 and an audit entry "
                                f"'{op.action}_refused'." if op.roles is not None else
                                "Role: any token." if op.auth else "No token needed.")
        entry["description"] = f"{note} {op.notes}".strip()
        if op.body is not None:
            entry["requestBody"] = {"required": not op.body_optional, "content": {
                "application/json": {"schema": _public(op.body)}}}
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.0.3",
        "info": {"title": "Canary Console API", "version": API_VERSION,
                 "description": "The kill switch, executions, rollbacks and audit trail of Canary Console "
                                "(seed 000 §2). Errors are {\"error\": …}."},
        "paths": paths,
        "components": {"schemas": {name: _public(schema) for name, schema in ANSWERS.items()},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


# --- the people behind the tokens, as the rollback rules read a plan ------------------------------


@dataclass(frozen=True)
class Roster:
    """What ``engine.rollback_flow`` reads of a plan — the tenant, the people and their roles, the
    threshold profile — when the API serves without one: the people are the token holders."""

    tenant: str
    people: tuple[Person, ...]

    def profile(self) -> Profile:
        return Profile()


def roster_of(tenant: str, tokens: Mapping[str, tuple[str, str]]) -> Roster:
    roles: dict[str, list[str]] = {}
    for actor, role in tokens.values():
        roles.setdefault(actor, [])
        if role not in roles[actor]:
            roles[actor].append(role)
    return Roster(tenant, tuple(Person(name=a, roles=tuple(r), unix_user=a) for a, r in roles.items()))


def _state_json(state: flow.ApprovalState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "trigger": state.trigger,
        "decided_by": {"role": state.decision_by[0], "actor": state.decision_by[1]} if state.decision_by else None,
        "required": list(state.required),
        "approved": [{"role": r, "actor": a} for r, a in state.approved],
        "missing": list(state.missing),
        "refused": [{"role": r, "actor": a} for r, a in state.refused],
        "complete": state.complete,
    }


def _approval_refusal_status(state: flow.ApprovalState | None, role: str, actor: str, held: set[str],
                             decision: str) -> int:
    """The HTTP status of an approval ``rollback_flow`` refused: 403 when it is about the person
    (a role they lack, a role not needed, the requester alone), 409 when about the state (nothing
    decided, approved twice, the role already given). The flow decides *whether*; this only picks
    the code, from the same state the flow read."""
    if state is None:
        return 409
    if role not in held or role not in state.required:
        return 403
    mine = [v for v in state.votes if v.actor == actor]
    if mine and mine[-1].decision == decision:
        return 409
    given = state.approver_of(role)
    if given is not None and given != actor:
        return 409
    return 403


# --- the app ---------------------------------------------------------------------------------------


def _dump(row: Any) -> dict[str, Any]:
    return row.model_dump(mode="json")


def _clean(value: Any) -> Any:
    """Fit for strict JSON: NaN and infinities (a stored float can be one) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def create_app(store: Store, tenant_id: str, tokens: dict[str, tuple[str, str]]) -> Starlette:
    """The API over ``store`` for ``tenant_id`` (the default tenant of every request).

    ``tokens``: bearer token → (actor, role), role one of canary_lead, dba, sre, developer.
    """
    default_tenant = check_slug(tenant_id, "tenant_id")
    for token, entry in tokens.items():
        if not token or not isinstance(entry, tuple) or len(entry) != 2 or entry[1] not in ROLES:
            raise ValueError(f"token entries must be non-empty token → (actor, role) with role in {ROLES}")
    known = [(t.encode(), entry) for t, entry in tokens.items()]
    people = roster_of(default_tenant, tokens).people
    flow_lock = threading.Lock()  # one rollback action at a time, as the console's _rollback_busy

    def identify(request: Request) -> tuple[str, str]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip().encode() if scheme.lower() == "bearer" else b""
        found: tuple[str, str] | None = None
        for candidate, entry in known:  # constant time per token: no early exit on a match
            if hmac.compare_digest(presented, candidate):
                found = entry
        if not presented or found is None:
            raise ApiError(401, "missing or unknown bearer token: send 'Authorization: Bearer <token>'")
        return found

    def plan_for(tenant: str) -> Any:
        return Roster(tenant, people)

    def get_run(call: Call) -> ExecutionRun:
        run = store.get_run(call.tenant, call.params["run_id"])
        if run is None:
            raise ApiError(404, f"run {call.params['run_id']} not found for tenant {call.tenant}")
        return run

    # --- kill switch ------------------------------------------------------------------------------

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

    def kill_switch(call: Call) -> Reply:
        return Reply(200, read_state(call.tenant, call.params.get("connection_id") or ""))

    def kill_switch_status(call: Call) -> Reply:
        rows = store.kill_switch_rows(call.tenant, None)
        with store.session() as s:
            conns = s.exec(select(KillSwitchState).where(
                KillSwitchState.tenant_id == call.tenant, KillSwitchState.scope == "connection")).all()
        return Reply(200, {"tenant_id": call.tenant,
                           "global_active": any(r.is_active for r in rows if r.scope == "global"),
                           "tenant_active": any(r.is_active for r in rows if r.scope == "tenant"),
                           "connections": {r.connection_profile_id: bool(r.is_active) for r in conns}})

    def connection_status(call: Call) -> Reply:
        conn = call.params["connection_id"]
        state = read_state(call.tenant, conn)
        return Reply(200, {"is_active": state["connection_active"], "connection_id": conn, "tenant_id": call.tenant})

    def tenant_status(call: Call) -> Reply:
        state = read_state(call.tenant, "")
        return Reply(200, {"is_active": state["tenant_active"], "tenant_id": call.tenant})

    def put(call: Call, scope: str) -> Reply:
        body = call.body
        body_tenant = body.get("tenant_id") or ""
        conn = call.params.get("connection_id", "") if scope == "connection" else ""
        if scope == "tenant":
            if body_tenant and body_tenant != call.tenant:
                raise ApiError(422, f'"tenant_id" {body_tenant!r} in the body differs from {call.tenant!r} in the path')
            tenant = call.tenant
        else:
            tenant = call.params.get("tenant_id") or body_tenant or default_tenant
        active: bool = body["is_active"]
        reason: str = (body.get("reason") or "").strip()
        if not active:
            refusal: tuple[int, str] | None = None
            if call.role not in DEACTIVATE_ROLES:
                refusal = (403, f"deactivation needs the {_roles_words(DEACTIVATE_ROLES)} role; "
                                f"{call.actor} is {call.role}")
            elif not reason:
                refusal = (422, "deactivation needs a reason")
            if refusal:
                store.audit(tenant, call.actor, "kill_switch_deactivation_refused", None,
                            {"scope": scope, "connection_id": conn or None, "role": call.role, "why": refusal[1],
                             "reason": reason, "via": "api"})
                raise ApiError(*refusal)
        store.set_kill_switch(tenant, scope, active, call.actor, reason, conn)
        return Reply(200, dict(read_state(tenant, conn), scope=scope, is_active=active, tenant_id=tenant,
                               actor=call.actor))

    # --- executions -------------------------------------------------------------------------------

    def list_runs(call: Call) -> Reply:
        wanted = [s for s in (call.params.get("status") or "").split(",") if s]
        runs = store.find_runs(call.tenant, wanted or None, limit=call.params.get("limit") or 20)
        return Reply(200, {"runs": [_dump(r) for r in runs]})

    def create_run(call: Call) -> Reply:
        body = call.body
        tenant = body.get("tenant_id") or call.tenant
        conn = body["connection_id"]
        action = body.get("action") or "ADD_INDEX"
        if action != "ADD_INDEX":
            store.audit(tenant, call.actor, "execution_refused", None,
                        {"fail_reason": "out_of_scope", "action": action, "table": body["table_name"], "via": "api"})
            raise ApiError(422, f"action {action!r} is out of scope (out_of_scope): a canary run adds one "
                                "index, ADD_INDEX only (SPEC §2)")
        schema = body.get("schema_name")
        if not schema:
            profile = store.connection_profile(tenant, conn)
            if profile is None:
                raise ApiError(422, f'"schema_name" is required: connection {conn} has no stored profile '
                                    "(the console stores it when it opens a plan)")
            schema = profile.database
        columns = [[c, None] if isinstance(c, str) else [c["name"], c.get("prefix")] for c in body["columns"]]
        run = ExecutionRun(tenant_id=tenant, connection_profile_id=conn, action="ADD_INDEX", schema_name=schema,
                           table_name=body["table_name"], index_name=body["index_name"], columns=columns,
                           query_digests=list(body.get("query_digests") or []), mode="canary", auto_rollback=False)
        try:
            run = store.create_run(run, call.actor)
        except ScopeLockError as exc:
            raise ApiError(409, str(exc)) from None
        if body.get("scheduled_at"):
            store.audit(tenant, call.actor, "run_scheduled_at", run.id,
                        {"scheduled_at": body["scheduled_at"], "via": "api"})
        return Reply(201, _dump(run), {"Location": f"/api/executions/{run.id}"})

    def show_run(call: Call) -> Reply:
        return Reply(200, _dump(get_run(call)))

    def claim(call: Call) -> Reply:
        run = get_run(call)
        worker = call.body.get("worker")
        owner = f"{call.actor}:{worker}" if worker else call.actor
        try:
            run = store.claim(call.tenant, run.id, owner, float(call.body.get("lease_seconds") or 30))
        except ClaimConflict as exc:  # Store.claim wrote the claim_failed entry
            raise ApiError(409, str(exc)) from None
        return Reply(200, _dump(run))

    def set_status(call: Call) -> Reply:
        run = get_run(call)
        new, reason, message = call.body["status"], call.body.get("fail_reason"), call.body.get("message") or None

        def refuse(why: str) -> ApiError:
            store.audit(call.tenant, call.actor, "execution_status_refused", run.id,
                        {"status": new, "fail_reason": reason, "why": why, "via": "api"})
            return ApiError(409, why)

        if new == "rolled_back":
            raise refuse("a run becomes rolled_back when the rollback flow has dropped its index and verified "
                         "it gone (SPEC §8): decide (POST /api/rollback/{run_id}/trigger), collect the "
                         "approvals, and the DBA executes it from the console")
        try:
            run = store.transition(call.tenant, run.id, new, call.actor, fail_reason=reason, message=message,
                                   details={"via": "api"})
        except InvalidTransition as exc:
            raise refuse(str(exc)) from None
        except StoreError as exc:
            current = store.get_run(call.tenant, run.id)
            if current is not None and current.status != run.status:  # another writer won the race
                raise refuse(str(exc)) from None
            raise
        return Reply(200, _dump(run))

    # --- rollback (engine.rollback_flow: the console's rules) -------------------------------------

    def latest_metrics(run: ExecutionRun) -> dict[str, Any]:
        latest: dict[str, Any] = {}
        for row in store.samples(run.tenant_id, run.id):
            if row.metric in ROLLBACK_METRICS and row.value is not None:
                latest[row.metric] = row.value
        return latest

    def approvals_now(call: Call, run_id: str) -> dict[str, Any] | None:
        return _state_json(flow.rollback_view(store, plan_for(call.tenant), run_id).state)

    def trigger(call: Call) -> Reply:
        run = get_run(call)
        body = call.body
        t = flow.trigger_of(body["trigger"])
        role = body.get("role") or call.role
        with flow_lock:
            out = flow.decide_rollback(store, plan_for(call.tenant), run, t.key, call.actor, {call.role},
                                       body["reason"], latest_metrics(run), role=role)
        if not out.ok:  # the flow wrote rollback_decision_refused
            raise ApiError(403 if role != call.role or role not in t.deciders else 409, out.message)
        return Reply(201, {"result": out.status, "message": out.message, "record_id": out.record_id,
                           "approvals": approvals_now(call, run.id)})

    def approve(call: Call) -> Reply:
        run = get_run(call)
        role = call.body.get("role") or call.role
        decision = call.body.get("decision") or "approve"
        with flow_lock:
            before = flow.rollback_view(store, plan_for(call.tenant), run.id).state
            out = flow.approve_rollback(store, plan_for(call.tenant), run, role, call.actor, {call.role},
                                        call.body.get("note") or "", decision)
        if not out.ok:  # the flow wrote rollback_approval_refused
            status = 409 if run.status == "rolled_back" else _approval_refusal_status(
                before, role, call.actor, {call.role}, decision)
            raise ApiError(status, out.message)
        return Reply(200, {"result": out.status, "message": out.message, "record_id": out.record_id,
                           "approvals": approvals_now(call, run.id)})

    def history(call: Call) -> Reply:
        run = get_run(call)
        view = flow.rollback_view(store, plan_for(call.tenant), run.id)
        return Reply(200, {
            "run_id": run.id, "tenant_id": run.tenant_id, "run_status": run.status, "fail_reason": run.fail_reason,
            "index_created_by_run": run.index_created_by_run, "headline": view.status, "level": view.level,
            "trigger": view.trigger, "suggested_trigger": view.suggested_trigger, "reason": view.reason,
            "approvals": _state_json(view.state),
            "records": [_dump(r) for r in store.rollback_records(run.tenant_id, run.id)],
            "steps": [{"code": s.code, "label": s.label, "done": s.done, "detail": s.detail} for s in view.steps],
            "escalation": view.escalation, "drop_sql": view.drop_sql,
        })

    # --- audit ------------------------------------------------------------------------------------

    def audit(call: Call) -> Reply:
        limit = call.params.get("limit") or 100
        # One more than the page: the last page says so (next_after null) without an empty page after it.
        rows: list[AuditLog] = store.audit_entries(call.tenant, call.params.get("run_id"), call.params.get("action"),
                                                   limit=limit + 1, since_seq=call.params.get("after"))
        page = rows[:limit]
        return Reply(200, {"entries": [_dump(r) for r in page], "limit": limit,
                           "next_after": page[-1].seq if len(rows) > limit else None})

    # --- health -----------------------------------------------------------------------------------

    def health(_call: Call) -> Reply:
        try:
            store.kill_switch_rows(default_tenant, None)
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            # No token is needed here: name the kind of failure, not the store's own words.
            return Reply(503, {"status": "degraded", "store": f"unreadable: {exc.__class__.__name__}"})
        return Reply(200, {"status": "ok", "store": "ok"})

    # --- the operations ---------------------------------------------------------------------------

    conn_q = Param("connection_id", "query", SLUG, "the connection whose switch counts too")
    conn_p = Param("connection_id", "path", SLUG, "the connection profile's id", required=True)
    tenant_p = Param("tenant_id", "path", SLUG, "the tenant", required=True)
    ks_body = dict(body=KILL_SWITCH_BODY, example='{"is_active": true|false, "reason": "…"}',
                   notes="422 also when deactivating without a reason, or when the body's tenant_id differs "
                         "from the path's.",
                   role_note="Role: any token activates; deactivation (is_active false) needs canary_lead or dba "
                             "and a reason — others get 403 and an audit entry 'kill_switch_deactivation_refused'.")
    rollback_note = ("Role: decided by the rules of engine.rollback_flow (runbook 6.3), as in the console: "
                     + "; ".join(f"{t.key} — {t.who()}" for t in flow.TRIGGERS)
                     + ". Nobody approves for a role they lack or twice; the requester is never the only "
                       "approver. A refusal is 403 (the person) or 409 (the state), audited as "
                       "'rollback_decision_refused' / 'rollback_approval_refused'.")
    operations = [
        Operation("GET", "/health", health, "store reachable?", "system", auth=False, answer="Health"),
        Operation("GET", "/api/kill-switch", kill_switch, "the executor's read: every scope for one connection",
                  "kill-switch", params=(TENANT_Q, conn_q), answer="KillSwitchState"),
        Operation("GET", "/api/kill-switch/status", kill_switch_status, "the tenant's switches", "kill-switch",
                  params=(TENANT_Q,), answer="KillSwitchStatus"),
        Operation("PUT", "/api/kill-switch/global", lambda c: put(c, "global"), "turn the global switch on or off",
                  "kill-switch", params=(TENANT_Q,), answer="KillSwitchSet", errors=(403,), **ks_body),
        Operation("GET", "/api/kill-switch/connection/{connection_id}", connection_status,
                  "one connection's switch", "kill-switch", params=(conn_p, TENANT_Q), answer="ScopeStatus"),
        Operation("PUT", "/api/kill-switch/connection/{connection_id}", lambda c: put(c, "connection"),
                  "turn one connection's switch on or off", "kill-switch", params=(conn_p, TENANT_Q),
                  answer="KillSwitchSet", errors=(403,), **ks_body),
        Operation("GET", "/api/kill-switch/tenant/{tenant_id}/status", tenant_status, "one tenant's switch",
                  "kill-switch", params=(tenant_p,), answer="ScopeStatus"),
        Operation("PUT", "/api/kill-switch/tenant/{tenant_id}", lambda c: put(c, "tenant"),
                  "turn one tenant's switch on or off", "kill-switch", params=(tenant_p,),
                  answer="KillSwitchSet", errors=(403,), **ks_body),
        Operation("GET", "/api/executions", list_runs, "the tenant's runs, newest first", "executions",
                  params=(TENANT_Q, Param("status", "query", STATUS_LIST,
                                          "comma-separated statuses, e.g. running or scheduled,running"),
                          Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100})),
                  answer="RunList"),
        Operation("POST", "/api/executions", create_run, "create a scheduled ADD_INDEX run (takes the scope lock)",
                  "executions", roles=START_ROLES, action="execution_create", what="creating an execution run",
                  params=(TENANT_Q,), body=EXECUTION_BODY, ok=201, answer="Run", errors=(409,),
                  notes="422 also for an action other than ADD_INDEX (out_of_scope, audited as "
                        "'execution_refused'), or without schema_name when the connection has no stored "
                        "profile. 409 while another run holds the store's scope lock.",
                  example='{"connection_id": "…", "table_name": "…", "index_name": "…", "columns": ["…"]}'),
        Operation("GET", "/api/executions/{run_id}", show_run, "one run: its status, lease and times", "executions",
                  params=(RUN_P, TENANT_Q), answer="Run"),
        Operation("POST", "/api/executions/{run_id}/claim", claim, "take the run's lease (atomic; a second "
                  "claimer gets 409)", "executions", roles=EXECUTE_ROLES, action="execution_claim",
                  what="claiming a run", params=(RUN_P, TENANT_Q), body=CLAIM_BODY, body_optional=True,
                  answer="Run", errors=(409,), example='{"worker": "…", "lease_seconds": 30}'),
        Operation("PATCH", "/api/executions/{run_id}/status", set_status, "move the run along its state machine",
                  "executions", roles=EXECUTE_ROLES, action="execution_status", what="changing a run's status",
                  params=(RUN_P, TENANT_Q), body=STATUS_BODY, answer="Run", errors=(409,),
                  notes="409 for a change the state machine refuses (engine.runstate, e.g. failed without a "
                        "fail_reason) and for rolled_back, audited as 'execution_status_refused'.",
                  example='{"status": "completed", "message": "…"}'),
        Operation("POST", "/api/rollback/{run_id}/trigger", trigger, "decide a manual rollback (R1)", "rollback",
                  role_note=rollback_note, params=(RUN_P, TENANT_Q), body=TRIGGER_BODY, ok=201,
                  answer="FlowResult", errors=(403, 409),
                  example='{"trigger": "lock_wait", "reason": "lock wait 7 s on orders for 2 min"}'),
        Operation("POST", "/api/rollback/{run_id}/approve", approve, "approve (or refuse) a decided rollback",
                  "rollback", role_note=rollback_note, params=(RUN_P, TENANT_Q), body=APPROVE_BODY,
                  body_optional=True, answer="FlowResult", errors=(403, 409),
                  example='{"decision": "approve", "note": "…"}'),
        Operation("GET", "/api/rollback/history/{run_id}", history, "the run's rollback records and approvals",
                  "rollback", params=(RUN_P, TENANT_Q), answer="RollbackHistory"),
        Operation("GET", "/api/audit", audit, "the audit trail, oldest first, paged by seq", "audit",
                  params=(TENANT_Q, Param("run_id", "query", RUN_ID, "only this run's entries"),
                          Param("action", "query", {"type": "string", "pattern": ACTION_PATTERN, "maxLength": 64},
                                "only this action, e.g. kill_switch_activated"),
                          Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}),
                          Param("after", "query", {"type": "integer", "minimum": 0, "maximum": 2**62},
                                "the previous page's next_after")),
                  answer="AuditPage"),
    ]
    document = openapi_document(operations)

    # --- the plumbing: token, parameters, role gate, body, threadpool, errors ----------------------

    def parse_params(op: Operation, request: Request) -> dict[str, Any]:
        # A misspelt parameter is refused, not ignored: '?conection_id=' would read the switch
        # without the connection's scope.
        taken = [p.name for p in op.params if p.where == "query"]
        for name in request.query_params:
            if name not in taken:
                raise ApiError(422, f"unknown query parameter {name[:40]!r}: {op.method} {op.path} takes "
                                    + (", ".join(taken) or "none"))
            if len(request.query_params.getlist(name)) > 1:
                raise ApiError(422, f"query parameter {name!r} is given more than once")
        out: dict[str, Any] = {}
        for p in op.params:
            raw = request.path_params.get(p.name) if p.where == "path" else request.query_params.get(p.name)
            if raw is None:
                continue
            value: Any = raw
            if p.schema.get("type") == "integer" and re.fullmatch(r"-?\d{1,19}", raw):
                value = int(raw)
            out[p.name] = check_value(p.name, value, p.schema)
        return out

    async def read_body(op: Operation, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
        if not raw.strip() and op.body_optional:
            return check_value("body", {}, op.body or {})
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(422, f"the body must be JSON: {op.example}") from None
        if not isinstance(body, dict):
            raise ApiError(422, f"the body must be a JSON object: {op.example}")
        return check_value("body", body, op.body or {})

    def refuse_role(op: Operation, call: Call) -> None:
        assert op.roles is not None
        store.audit(call.tenant, call.actor, f"{op.action}_refused", call.params.get("run_id"),
                    {"needed": sorted(op.roles), "roles": [call.role], "via": "api",
                     "request": f"{op.method} {call.request.url.path}"})

    def endpoint_for(op: Operation) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                actor, role = identify(request) if op.auth else ("", "")
                params = parse_params(op, request)
                tenant = params.get("tenant_id") or default_tenant
                call = Call(request, actor, role, tenant, params, {})
                if op.roles is not None and role not in op.roles:
                    await run_in_threadpool(refuse_role, op, call)
                    raise ApiError(403, f"{op.what} needs the {_roles_words(op.roles)} role; {actor} is {role}")
                if op.body is not None:
                    call = Call(request, actor, role, tenant, params, await read_body(op, request))
                reply = await run_in_threadpool(op.handler, call)
                return JSONResponse(_clean(reply.data), reply.status, headers=reply.headers)
            except ApiError as exc:
                return JSONResponse({"error": str(exc)}, exc.status)
            except (StoreError, SQLAlchemyError, OSError) as exc:
                return JSONResponse({"error": f"store unavailable: {_first_line(exc)}"}, 503)
            except Exception as exc:  # noqa: BLE001 - never a traceback on the wire
                return JSONResponse({"error": f"internal error: {exc.__class__.__name__}"}, 500)
        return endpoint

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(document)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = getattr(exc, "headers", None)
        if status == 404:
            message = f"no endpoint at {request.url.path}: the API is described at /openapi.json"
        elif status == 405:
            allowed = (headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path}: use {allowed or 'another method'}"
        else:
            message = str(exc.detail) if isinstance(exc, HTTPException) else "internal error"
        return JSONResponse({"error": message}, status, headers=headers)

    async def server_error(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {exc.__class__.__name__}"}, 500)

    def route(path: str, ops: list[Operation]) -> Route:
        """One route per path, so a 405's Allow header lists every method the path has."""
        by_method = {op.method: endpoint_for(op) for op in ops}

        async def dispatch(request: Request) -> JSONResponse:
            method = "GET" if request.method == "HEAD" else request.method
            return await by_method[method](request)
        return Route(path, dispatch, methods=list(by_method))

    paths: dict[str, list[Operation]] = {}
    for op in operations:
        paths.setdefault(op.path, []).append(op)
    routes = [route(path, ops) for path, ops in paths.items()]
    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.openapi = document
    return app


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


