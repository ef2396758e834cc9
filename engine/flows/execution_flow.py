"""Executions as an outside executor or a runbook ``curl`` line drives them (the HTTP API): create,
claim, report a status, ask for the execution, record a rollback it ran, report an audit entry.

One function per action: the role check (engine/domain/roles.py), the work, the audit entry. A refusal is
a ``Refused`` naming its kind (forbidden, conflict, invalid, not_found) and, for a bad value, the
field; the front end picks its own words for the kind (docs/api.md). No HTTP here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.adapters import sql
from engine.adapters.store import (
    ClaimConflict,
    ExecutionRun,
    InvalidTransition,
    RollbackRecord,
    ScopeLockError,
    Store,
    StoreError,
)
from engine.domain.text import clean_text
from engine.flows.guard import refusal

REPORTED_PREFIX = "reported."  # an external tool's audit entry: never mistaken for the engine's own
# The statuses a worker may report. ``rolled_back`` is the rollback flow's to set once the index is
# dropped and verified gone; reporting it for a run already rolled back is an idempotent no-op.
WORKER_STATUSES = ("running", "completed", "failed", "cancelled")


class Refused(Exception):
    """An action the rules refuse; ``kind``: forbidden | conflict | invalid | not_found."""

    def __init__(self, kind: str, message: str, field: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.field = field


def check_role(store: Store, tenant: str, actor: str, roles: Iterable[str], action: str,
               run_id: str | None = None, **details: Any) -> None:
    """Refuse (audited as ``<action>_refused``, engine/flows/guard.py) unless one of ``roles`` may do
    ``action``."""
    text = refusal(store, tenant, actor, roles, action, run_id, **details)
    if text is not None:
        raise Refused("forbidden", text)


def run_anywhere(store: Store, run_id: str) -> ExecutionRun | None:
    """The run with this id whatever its tenant: the caller decides whether it may see it."""
    with store.session() as s:
        return s.get(ExecutionRun, run_id)


@dataclass(frozen=True)
class NewExecution:
    tenant: str
    connection_id: str
    table_name: str
    index_name: str
    columns: Sequence[tuple[str, int | None]]
    action: str = "ADD_INDEX"
    schema_name: str | None = None
    query_digests: Sequence[str] = ()
    scheduled_at: str | None = None


def create_execution(store: Store, new: NewExecution, actor: str, roles: Iterable[str],
                     via: str = "api") -> ExecutionRun:
    """A ``scheduled`` ADD_INDEX run; takes the store's scope lock (one canary at a time)."""
    check_role(store, new.tenant, actor, roles, "execution_create", via=via)
    if new.action != "ADD_INDEX":
        store.audit(new.tenant, actor, "execution_refused", None,
                    {"fail_reason": "out_of_scope", "action": new.action, "table": new.table_name, "via": via})
        raise Refused("invalid", f"action {new.action!r} is out of scope (out_of_scope): a canary run adds "
                                 "one index, ADD_INDEX only", "action")
    schema = new.schema_name
    if not schema:
        profile = store.connection_profile(new.tenant, new.connection_id)
        if profile is None:
            raise Refused("invalid", f'"schema_name" is required: connection {new.connection_id} has no stored '
                                     "profile (the console stores it when it opens a plan)", "schema_name")
        schema = profile.database
    run = ExecutionRun(tenant_id=new.tenant, connection_profile_id=new.connection_id, action="ADD_INDEX",
                       schema_name=schema, table_name=new.table_name, index_name=new.index_name,
                       columns=[[c, p] for c, p in new.columns], query_digests=list(new.query_digests),
                       mode="canary", auto_rollback=False)
    try:
        run = store.create_run(run, actor)
    except ScopeLockError as exc:
        raise Refused("conflict", str(exc)) from None
    if new.scheduled_at:
        store.audit(new.tenant, actor, "run_scheduled_at", run.id, {"scheduled_at": new.scheduled_at, "via": via})
    return run


def claim_execution(store: Store, run: ExecutionRun, owner: str, actor: str, roles: Iterable[str],
                    lease_seconds: float = 30.0) -> ExecutionRun:
    """Take the run's lease: a second claim while it is held is a conflict, whoever asks (the
    holder renews with its worker's lease, not with a claim). A claimed ``scheduled`` run moves to
    ``running``, so the worker's ``completed`` is accepted."""
    check_role(store, run.tenant_id, actor, roles, "execution_claim", run.id)
    try:
        claimed = store.claim(run.tenant_id, run.id, owner, lease_seconds, exclusive=True)
    except ClaimConflict as exc:  # Store.claim wrote the claim_failed entry
        raise Refused("conflict", str(exc)) from None
    if claimed.status == "scheduled":
        try:
            claimed = store.transition(run.tenant_id, run.id, "running", actor, details={"claimed_by": owner})
        except (InvalidTransition, StoreError):
            claimed = store.get_run(run.tenant_id, run.id) or claimed  # another writer moved it first
    return claimed


def set_execution_status(store: Store, run: ExecutionRun, new: str, actor: str, roles: Iterable[str],
                         fail_reason: str | None = None, message: str | None = None,
                         via: str = "api") -> ExecutionRun:
    """Move the run along its state machine (engine/domain/runstate.py). The same status again is a no-op
    (a retried report); ``rolled_back`` is refused unless the rollback flow already set it."""
    check_role(store, run.tenant_id, actor, roles, "execution_status", run.id,
               status=new)
    note = clean_text(message).text or None if message is not None else None
    if new == run.status:
        return run

    def refuse(why: str) -> Refused:
        store.audit(run.tenant_id, actor, "execution_status_refused", run.id,
                    {"status": new, "fail_reason": fail_reason, "why": why, "via": via})
        return Refused("conflict", why)

    if new == "rolled_back":
        raise refuse("a run becomes rolled_back when the rollback flow has dropped its index and verified "
                     "it gone: decide (POST /api/rollback/{run_id}/trigger), collect the approvals, and the "
                     "DBA executes it from the console; reporting rolled_back afterwards is accepted")
    try:
        return store.transition(run.tenant_id, run.id, new, actor, fail_reason=fail_reason, message=note,
                                details={"via": via})
    except InvalidTransition as exc:
        raise refuse(str(exc)) from None
    except StoreError as exc:
        current = store.get_run(run.tenant_id, run.id)
        if current is not None and current.status != run.status:  # another writer won the race
            raise refuse(str(exc)) from None
        raise


def request_execution(store: Store, run: ExecutionRun, actor: str, roles: Iterable[str],
                      via: str = "api") -> ExecutionRun:
    """The runbook's manual trigger: record that the run should be executed now. The ALTER is a
    worker's (it holds the target's credentials): ``canary-console execute PLAN --run ID`` claims it."""
    check_role(store, run.tenant_id, actor, roles, "execute", run.id)
    if run.status != "scheduled":
        store.audit(run.tenant_id, actor, "execute_refused", run.id, {"status": run.status, "via": via})
        raise Refused("conflict", f"run {run.id} is {run.status}: only a scheduled run can be executed")
    if run.claimed_by:
        raise Refused("conflict", f"run {run.id} is already claimed by {run.claimed_by}")
    store.audit(run.tenant_id, actor, "execution_requested", run.id, {"via": via})
    return run


def record_rollback(store: Store, run: ExecutionRun, actor: str, roles: Iterable[str], rollback_type: str,
                    reported_status: str, trigger_reason: object, rollback_sql: str | None,
                    via: str = "api") -> RollbackRecord:
    """A rollback an outside executor says it ran, kept as ``reported``: never taken as proof that
    the index is gone (the rollback flow verifies that itself) and never a second DROP's guard."""
    check_role(store, run.tenant_id, actor, roles, "rollback_record", run.id)
    if rollback_sql is not None:
        text = " ".join(rollback_sql.split())
        if not re.search(r"\bDROP\s+INDEX\b", text, re.I) or run.index_name not in text or run.table_name not in text:
            raise Refused("invalid", f'"rollback_sql" must be this run\'s own DROP, e.g. '
                                     f"{sql.drop_index(run.schema_name, run.table_name, run.index_name)}",
                          "rollback_sql")
    reason = clean_text(trigger_reason)
    record = RollbackRecord(
        tenant_id=run.tenant_id, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
        rollback_status="reported", rollback_type=rollback_type, trigger_reason=reason.text,
        rollback_details={"reported_status": reported_status, "reported_by": actor, "reported_sql": rollback_sql,
                          "reason_changes": list(reason.changes), "via": via},
        created_by=actor)
    return store.save_rollback_record(record, actor, "rollback_reported")


def report_audit(store: Store, tenant: str, run: ExecutionRun | None, actor: str, roles: Iterable[str],
                 action: str, details: dict[str, Any] | None, via: str = "api") -> str:
    """An outside tool's audit entry, written as ``reported.<action>`` by the token's actor."""
    check_role(store, tenant, actor, roles, "audit_report", run.id if run else None)
    name = (REPORTED_PREFIX + action)[:64]
    store.audit(tenant, actor, name, run.id if run else None, dict(storable(details or {}), via=via))
    return name


def storable(value: Any, depth: int = 0) -> Any:
    """JSON from outside made fit for the store and the audit chain's hash: every string (keys too)
    cleaned (lone surrogates would break the driver and the hash), NaN and infinities null."""
    if depth > 32:
        return None
    if isinstance(value, dict):
        return {clean_text(k, 200).text: storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v, depth + 1) for v in value]
    if isinstance(value, str):
        return clean_text(value).text
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
