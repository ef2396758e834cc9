"""The engine's own store (docs/states.md)."""

from engine.adapters.store.models import (
    GLOBAL_TENANT,
    SCHEMA_VERSION,
    Approval,
    AuditChainHead,
    AuditLog,
    Checkpoint,
    ConnectionProfileRow,
    Decision,
    ExecutionRun,
    KillSwitchState,
    MetricSample,
    PrecheckResult,
    RollbackPoint,
    RollbackRecord,
    RunLock,
    StoreMeta,
    Tenant,
)
from engine.adapters.store.store import (
    ClaimConflict,
    InvalidTransition,
    ScopeLockError,
    Store,
    StoreError,
    default_store_url,
    redact_url,
    state_dir,
)

__all__ = [
    "GLOBAL_TENANT", "SCHEMA_VERSION", "Approval", "AuditChainHead", "AuditLog", "Checkpoint", "ClaimConflict",
    "ConnectionProfileRow", "InvalidTransition",
    "Decision", "ExecutionRun", "KillSwitchState", "MetricSample", "PrecheckResult", "RollbackPoint",
    "RollbackRecord", "RunLock", "ScopeLockError", "Store", "StoreError", "StoreMeta", "Tenant",
    "default_store_url", "redact_url", "state_dir",
]
