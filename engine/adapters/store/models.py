"""The store's tables (docs/states.md; docs/states.md#what-the-store-records). Every row carries ``tenant_id``.

Timestamps are aware UTC datetimes (sqlmodel stores them in UTC on every backend). Ids are UUID strings, except tenants and connection profiles, which
carry the slug the plan gives them (what a DBA types after ``--connection``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.domain.clock import utcnow
from engine.domain.tenancy import GLOBAL_TENANT  # noqa: F401 - part of the store's vocabulary

# Bumped whenever a store written by the previous version cannot be used as it is; ``Store`` refuses
# an older (or newer) one with the way out. 1: before the audit hash chain. 2: the audit chain
# (audit_logs.prev_hash/row_hash, audit_chain_head), the samples' (tenant, run, time) index.
SCHEMA_VERSION = 2

RUN_STATUSES = ("scheduled", "running", "observing", "completed", "failed", "cancelled", "rolled_back")
ACTIVE_STATUSES = ("scheduled", "running", "observing")
FAIL_REASONS = (
    "out_of_scope", "kill_switch", "claim_failed", "execution_error", "verification_failed",
    "manual_rollback", "harm_limit", "observation_failed",
)


class Timestamp(UTCDateTime):
    """Aware UTC, to the microsecond on every backend (MySQL's DATETIME keeps whole seconds unless
    asked, which would shuffle the audit trail's order within a second)."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return super().load_dialect_impl(dialect)


def _now() -> Any:
    return Field(default_factory=utcnow, sa_type=Timestamp)


def _at() -> Any:
    return Field(default=None, sa_type=Timestamp)


def new_id() -> str:
    return str(uuid.uuid4())


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON))


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=64, index=True)  # equal to id; kept so every row has one
    name: str = Field(max_length=200)
    created_at: datetime = _now()


class ConnectionProfileRow(SQLModel, table=True):
    __tablename__ = "connection_profiles"
    tenant_id: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    host: str = Field(max_length=255)
    port: int
    user: str = Field(max_length=80)
    database: str = Field(max_length=64)
    socket: str | None = Field(default=None, max_length=255)
    # The *name* of the variable holding the password, or the option file's path. Never the password.
    password_env: str | None = Field(default=None, max_length=128)
    option_file: str | None = Field(default=None, max_length=255)
    option_group: str = Field(default="client", max_length=64)
    created_at: datetime = _now()
    updated_at: datetime = _now()


class ExecutionRun(SQLModel, table=True):
    __tablename__ = "execution_runs"
    __table_args__ = (Index("ix_runs_tenant_status", "tenant_id", "status"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    connection_profile_id: str = Field(max_length=64)
    action: str = Field(default="ADD_INDEX", max_length=32)
    schema_name: str = Field(max_length=64)
    table_name: str = Field(max_length=64)
    index_name: str = Field(max_length=64)
    columns: list[Any] | None = _json()
    query_digests: list[str] | None = _json()
    mode: str = Field(default="canary", max_length=16)
    auto_rollback: bool = False
    status: str = Field(default="scheduled", max_length=16)
    fail_reason: str | None = Field(default=None, max_length=32)
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    claimed_by: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = _at()
    alter_sql: str | None = Field(default=None, sa_column=Column(Text))
    alter_thread_id: int | None = None
    alter_started_at: datetime | None = _at()
    alter_finished_at: datetime | None = _at()
    # True only once this run's own ALTER succeeded: the one index a rollback may drop.
    index_created_by_run: bool = False
    baseline: dict[str, Any] | None = _json()
    verification: dict[str, Any] | None = _json()
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = _now()
    updated_at: datetime = _now()
    started_at: datetime | None = _at()
    completed_at: datetime | None = _at()


class KillSwitchState(SQLModel, table=True):
    __tablename__ = "kill_switch_states"
    __table_args__ = (UniqueConstraint("tenant_id", "scope", "connection_profile_id", name="uq_kill_scope"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    scope: str = Field(max_length=16)  # global | tenant | connection
    # '' for global and tenant scope, so the unique constraint holds on every backend.
    connection_profile_id: str = Field(default="", max_length=64)
    is_active: bool = False
    reason: str = Field(default="", sa_column=Column(Text))
    created_at: datetime = _now()
    updated_at: datetime = _now()
    created_by: str = Field(default="", max_length=200)
    updated_by: str = Field(default="", max_length=200)


class RollbackPoint(SQLModel, table=True):
    __tablename__ = "rollback_points"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    execution_run_id: str = Field(max_length=36, index=True)
    show_create: str = Field(sa_column=Column(Text))
    indexes: list[Any] | None = _json()
    # Both rungs of the rollback ladder, generated and validated before the ALTER (docs/rollback.md).
    ladder: list[Any] | None = _json()
    captured_at: datetime = _now()


class RollbackRecord(SQLModel, table=True):
    __tablename__ = "rollback_records"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    execution_run_id: str = Field(max_length=36, index=True)
    connection_profile_id: str = Field(max_length=64)
    rollback_status: str = Field(default="pending", max_length=16)  # pending|in_progress|completed|failed|not_needed|would_roll_back
    rollback_type: str = Field(default="full", max_length=16)  # full | partial | none | auto | manual
    trigger_reason: str = Field(default="", sa_column=Column(Text))
    rollback_sql: str | None = Field(default=None, sa_column=Column(Text))
    attempts: list[Any] | None = _json()
    rollback_started_at: datetime | None = _at()
    rollback_completed_at: datetime | None = _at()
    rollback_error: str | None = Field(default=None, sa_column=Column(Text))
    rollback_details: dict[str, Any] | None = _json()
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = _now()
    updated_at: datetime = _now()


class AuditLog(SQLModel, table=True):
    """The audit trail. ``seq`` is the order entries were written in, across every process on the
    store: timestamps alone can tie (and a frozen test clock always does). It is assigned with the
    hash chain's link under the chain head's lock (``Store._commit_audited``), so it has no gaps:
    a missing seq is a deleted row. ``row_hash = sha256(prev_hash + canonical JSON of the content
    fields)`` (``engine.domain.audit_chain``)."""

    __tablename__ = "audit_logs"
    __table_args__ = (Index("ix_audit_tenant_seq", "tenant_id", "seq"),)
    seq: int | None = Field(default=None, primary_key=True, sa_column_kwargs={"autoincrement": False})
    id: str = Field(default_factory=new_id, unique=True, max_length=36)
    tenant_id: str = Field(max_length=64)
    execution_run_id: str | None = Field(default=None, max_length=36, index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    old_status: str | None = Field(default=None, max_length=16)
    new_status: str | None = Field(default=None, max_length=16)
    details: dict[str, Any] | None = _json()
    created_at: datetime = _now()
    # No defaults: a row written around the chain is refused by the database (NOT NULL).
    prev_hash: str = Field(max_length=64)
    row_hash: str = Field(max_length=64)


class AuditChainHead(SQLModel, table=True):
    """The chain's last link: one row (``GLOBAL_TENANT``; the chain is store-wide). Every audit
    write updates it in its own transaction, which is the lock that serialises appends on every
    backend, and it lets ``audit verify`` see rows deleted from the end (unless the head was
    rewritten too: only a head hash kept outside the store proves that)."""

    __tablename__ = "audit_chain_head"
    tenant_id: str = Field(primary_key=True, max_length=64)
    seq: int = 0
    row_hash: str = Field(max_length=64)
    updated_at: datetime = _now()


class StoreMeta(SQLModel, table=True):
    """The store's own facts; ``schema_version`` is the one ``Store`` checks on opening."""

    __tablename__ = "store_meta"
    tenant_id: str = Field(primary_key=True, max_length=64)  # GLOBAL_TENANT
    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)


class PrecheckResult(SQLModel, table=True):
    __tablename__ = "precheck_results"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    execution_run_id: str | None = Field(default=None, max_length=36)
    check_id: str = Field(max_length=64)  # e.g. TC-02, db.table_exists
    priority: str | None = Field(default=None, max_length=4)  # P0 | P1 | P2 for TC rows
    status: str = Field(max_length=16)  # pass | fail | warn | skip
    detail: str = Field(default="", sa_column=Column(Text))
    query: str | None = Field(default=None, sa_column=Column(Text))
    duration_ms: float | None = None
    source: str = Field(default="self-test", max_length=32)  # self-test | console | person
    recorded_by: str = Field(default="", max_length=200)
    recorded_at: datetime = _now()


class Approval(SQLModel, table=True):
    """Sign-offs (prechecks), gate approvals and rollback approvals: one row per person and role."""

    __tablename__ = "approvals"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    execution_run_id: str | None = Field(default=None, max_length=36, index=True)
    kind: str = Field(max_length=32)  # signoff | size_gate | rollback | resume
    role: str = Field(max_length=16)
    actor: str = Field(max_length=200)
    decision: str = Field(default="approve", max_length=16)
    note: str = Field(default="", sa_column=Column(Text))
    created_at: datetime = _now()


class Checkpoint(SQLModel, table=True):
    __tablename__ = "checkpoints"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    execution_run_id: str = Field(max_length=36, index=True)
    label: str = Field(max_length=16)  # T+15 …
    metrics_ok: bool | None = None
    notes: str = Field(default="", sa_column=Column(Text))
    recorded_by: str = Field(default="", max_length=200)
    recorded_at: datetime = _now()


class MetricSample(SQLModel, table=True):
    __tablename__ = "metric_samples"
    __table_args__ = (
        Index("ix_samples_run_metric_time", "tenant_id", "execution_run_id", "metric", "sampled_at"),
        Index("ix_samples_run_time", "tenant_id", "execution_run_id", "sampled_at"),  # a poll's "since"
    )
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    execution_run_id: str = Field(max_length=36)
    sampled_at: datetime = _now()
    source: str = Field(max_length=32)
    metric: str = Field(max_length=64)
    value: float | None = None
    stale: bool = False
    error: str | None = Field(default=None, sa_column=Column(Text))
    meta: dict[str, Any] | None = _json()


class Decision(SQLModel, table=True):
    __tablename__ = "decisions"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    execution_run_id: str = Field(max_length=36, index=True)
    verdict: str = Field(max_length=32)
    evidence: dict[str, Any] | None = _json()
    decided_by: str = Field(default="", max_length=200)
    created_at: datetime = _now()


class RunLock(SQLModel, table=True):
    """The scope lock's "no second active run anywhere in the store" (runbook 1.2, docs/states.md#claims-and-leases).

    One row under ``GLOBAL_TENANT`` per lock name; inserting it is the atomic acquire (the primary
    key refuses a second holder on every backend), deleting it the release.
    """

    __tablename__ = "run_locks"
    tenant_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=64)
    execution_run_id: str = Field(max_length=36)
    holder_tenant_id: str = Field(max_length=64)
    acquired_by: str = Field(default="", max_length=200)
    acquired_at: datetime = _now()
