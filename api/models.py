"""The API's contract: request and answer bodies as pydantic models (the OpenAPI document is
generated from them). Request bodies forbid unknown fields (422 naming the field)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
)

from engine.adapters.store.models import FAIL_REASONS, RUN_STATUSES
from engine.domain import rollback_rules as rules
from engine.domain.identifiers import check_identifier, check_slug
from engine.domain.roles import ROLES
from engine.domain.text import REASON_LIMIT

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
IDENT_PATTERN = r"^(?![0-9]+$)[A-Za-z0-9_$]{1,64}$"


def _ident(value: str, info: ValidationInfo) -> str:
    return check_identifier(value, info.field_name or "identifier")


def _slug(value: str, info: ValidationInfo) -> str:
    return check_slug(value, info.field_name or "id")


def _nonblank(value: str, info: ValidationInfo) -> str:
    if not value.strip():
        raise ValueError(f'"{info.field_name}" must not be blank: say what was seen and why')
    return value


def _aware(value: str, info: ValidationInfo) -> str:
    try:
        when = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f'"{info.field_name}" must be an ISO 8601 date and time, '
                         "e.g. 2025-01-31T22:00:00+07:00") from None
    if when.tzinfo is None:
        raise ValueError(f'"{info.field_name}" needs its UTC offset, e.g. 2025-01-31T22:00:00+07:00')
    return value


Ident = Annotated[str, Field(max_length=64, json_schema_extra={"pattern": IDENT_PATTERN}), AfterValidator(_ident)]
Slug = Annotated[str, Field(max_length=63, json_schema_extra={"pattern": SLUG_PATTERN}), AfterValidator(_slug)]
# A free-text reason: any JSON value is taken and cleaned (engine/domain/text.py), never refused for what
# it contains (lone surrogates, control characters, length): a kill switch must go on.
FreeText = Annotated[Any, WithJsonSchema({"type": "string", "description": "free text; cleaned, cut to "
                                                                          f"{REASON_LIMIT} characters"})]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- kill switch ------------------------------------------------------------------------------------


class KillSwitchSet(Body):
    is_active: StrictBool = Field(description="true stops everything in the scope")
    reason: FreeText = Field(None, description="why; required to deactivate (422 naming it otherwise)")
    actor: FreeText = Field(None, description="ignored: the actor recorded is the token's")
    tenant_id: Slug | None = Field(None, description="the tenant (else the query's, else the token's)")


class KillSwitchState(BaseModel):
    global_active: bool
    connection_active: bool
    tenant_active: bool
    updated_by: dict[str, str] = {}
    reasons: dict[str, str] = {}


class KillSwitchSetAnswer(KillSwitchState):
    scope: Literal["global", "tenant", "connection"]
    is_active: bool
    tenant_id: str
    actor: str
    reason: str = Field(description="the reason as stored (cleaned)")
    reason_cleaned: bool = Field(description="true when the reason given was changed to be stored")
    reason_changes: list[str] = Field(description="what the cleaning changed, e.g. '2 control characters removed'")


class KillSwitchStatus(BaseModel):
    tenant_id: str
    global_active: bool
    tenant_active: bool
    connections: dict[str, bool]


class ScopeStatus(BaseModel):
    is_active: bool
    tenant_id: str
    connection_id: str | None = None


# --- executions -------------------------------------------------------------------------------------


def _column(value: Any, info: ValidationInfo) -> tuple[str, int | None]:
    """A column name, or {"name": …, "prefix": N}: (name, prefix)."""
    if isinstance(value, str):
        return check_identifier(value, "column"), None
    if isinstance(value, dict) and set(value) <= {"name", "prefix"} and isinstance(value.get("name"), str):
        prefix = value.get("prefix")
        if isinstance(prefix, float) and prefix.is_integer():
            prefix = int(prefix)  # 16.0 is 16 in JSON
        if prefix is not None and (isinstance(prefix, bool) or not isinstance(prefix, int) or not 1 <= prefix <= 3072):
            raise ValueError("a prefix is a whole number from 1 to 3072")
        return check_identifier(value["name"], "column"), prefix
    raise ValueError('a column is a name, or {"name": …, "prefix": N} for a prefix index')


Column = Annotated[Any, AfterValidator(_column), WithJsonSchema({
    "description": 'a column name, or {"name": …, "prefix": N} for a prefix index',
    "anyOf": [{"type": "string", "pattern": IDENT_PATTERN, "maxLength": 64},
              {"type": "object", "required": ["name"], "additionalProperties": False,
               "properties": {"name": {"type": "string", "pattern": IDENT_PATTERN, "maxLength": 64},
                              "prefix": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 3072},
                                                   {"type": "null"}]}}}]})]


class ExecutionCreate(Body):
    tenant_id: Slug | None = None
    connection_id: Slug
    action: Annotated[str, Field(max_length=32, description="ADD_INDEX only: anything else is refused "
                                                             "as out_of_scope (422, audited)",
                                 json_schema_extra={"enum": ["ADD_INDEX"]})] = "ADD_INDEX"
    schema_name: Ident | None = Field(None, description="the database; default: the stored connection profile's")
    table_name: Ident
    index_name: Ident
    columns: Annotated[list[Column], Field(min_length=1, max_length=16)]
    query_digests: Annotated[list[Annotated[str, Field(pattern=r"^[0-9a-f]{1,64}$", max_length=64)]],
                             Field(max_length=50)] | None = None
    scheduled_at: Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"}),
                            AfterValidator(_aware)] | None = None


class Claim(Body):
    worker: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:@-]{1,90}$", max_length=90)] | None = Field(
        None, description="the claiming process (the lease owner is '<token user>:<worker>')")
    lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 30


class StatusChange(Body):
    status: Literal["running", "completed", "failed", "cancelled", "rolled_back"] = Field(
        description="rolled_back is refused (409) unless the rollback flow already set it")
    fail_reason: Literal[tuple(sorted(FAIL_REASONS))] | None = None  # type: ignore[valid-type]
    message: FreeText = Field(None, description="what happened, for the run and the audit trail")


class Run(BaseModel):
    id: str
    tenant_id: str
    connection_profile_id: str
    action: str
    schema_name: str
    table_name: str
    index_name: str
    columns: list[Any] | None = None
    status: Literal[RUN_STATUSES]  # type: ignore[valid-type]
    fail_reason: str | None = None
    error_message: str | None = None
    claimed_by: str | None = None
    lease_expires_at: datetime | None = None
    index_created_by_run: bool = False
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class RunList(BaseModel):
    runs: list[Run]


class ExecuteAnswer(BaseModel):
    id: str
    status: str
    requested: bool
    next: str


# --- rollback ---------------------------------------------------------------------------------------

TRIGGERS = tuple(t.key for t in rules.TRIGGERS)


class RollbackTrigger(Body):
    trigger: Literal[TRIGGERS] | None = Field(  # type: ignore[valid-type]
        None, description="the runbook 6.3 condition; it says which role decides. Default: the one the "
                          "reason names (e.g. 'lock wait …'); 422 naming \"trigger\" when it names none")
    reason: Annotated[str, Field(min_length=1, max_length=REASON_LIMIT), AfterValidator(_nonblank)] = Field(
        description="what was seen (R1), e.g. 'lock wait 7 s on orders for 2 min'")
    role: Literal[ROLES] | None = Field(None, description="the deciding role; default: the token's")  # type: ignore[valid-type]
    rollback_type: Literal["full"] | None = Field("full", description="a canary adds one index: its rollback is full")


class RollbackApprove(Body):
    role: Literal[ROLES] | None = Field(None, description="the role approving; default: the token's")  # type: ignore[valid-type]
    decision: Literal["approve", "refuse"] | None = "approve"
    note: FreeText = None


class RollbackRefuse(Body):
    role: Literal[ROLES] | None = Field(None, description="the role refusing; default: the token's")  # type: ignore[valid-type]
    reason: Annotated[str, Field(min_length=1, max_length=REASON_LIMIT), AfterValidator(_nonblank)] = Field(
        description="why the rollback must not go ahead (every console shows it; audited)")


class RollbackReason(Body):
    reason: Annotated[str, Field(min_length=1, max_length=REASON_LIMIT), AfterValidator(_nonblank)] = Field(
        description="why (kept on the rollback record and in the audit trail)")


class RoleActor(BaseModel):
    role: str
    actor: str


class ApprovalState(BaseModel):
    trigger: str
    decided_by: RoleActor | None = None
    required: list[str]
    approved: list[RoleActor]
    missing: list[str]
    refused: list[RoleActor]
    complete: bool


class FlowResult(BaseModel):
    result: Literal["done"]
    message: str
    record_id: str | None = None
    approvals: ApprovalState | None = None


class RollbackStep(BaseModel):
    code: str
    label: str
    done: bool
    detail: str | None = None


class RollbackHistory(BaseModel):
    run_id: str
    tenant_id: str
    run_status: str
    fail_reason: str | None = None
    index_created_by_run: bool
    headline: str
    level: Literal["ok", "warning", "error"]
    trigger: str | None = None
    suggested_trigger: str | None = None
    reason: str
    approvals: ApprovalState | None = None
    records: list[dict[str, Any]]
    steps: list[RollbackStep]
    escalation: str | None = None
    drop_sql: str


class RollbackReport(Body):
    """A rollback an outside executor ran (the executor's recordRollback): kept as ``reported``."""
    execution_run_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,36}$", max_length=36)]
    rollback_type: Literal["auto", "manual", "full"] = "manual"
    trigger_reason: FreeText = None
    rollback_sql: Annotated[str, Field(max_length=1000)] | None = None
    status: Literal["pending", "in_progress", "completed", "failed"] = "completed"
    created_at: Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None = None


class RollbackReported(BaseModel):
    id: str
    execution_run_id: str
    rollback_status: Literal["reported"]
    reported_status: str
    rollback_type: str
    trigger_reason: str


# --- audit ------------------------------------------------------------------------------------------


class AuditEntry(BaseModel):
    seq: int
    id: str
    tenant_id: str
    execution_run_id: str | None = None
    actor: str
    action: str
    old_status: str | None = None
    new_status: str | None = None
    details: dict[str, Any] | None = None
    created_at: datetime | None = None


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_after: int | None = Field(description="pass as ?after= for the next page; null on the last")
    limit: int


class AuditReport(Body):
    """An outside tool's audit entry (the executor's sendAuditLog): stored as ``reported.<action>``."""
    execution_run_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,36}$", max_length=36)] | None = None
    action: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,55}$", max_length=55)]
    details: dict[str, Any] | None = None
    timestamp: Annotated[str, Field(max_length=64)] | None = Field(None, description="the reporter's clock; "
                                                                        "kept in details, the store's time is the entry's")


class AuditReported(BaseModel):
    action: str
    execution_run_id: str | None = None
    actor: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    store: str
