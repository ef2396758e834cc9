"""The engine's own store (SPEC §7)."""

from engine.store.models import (
    GLOBAL_TENANT,
    Approval,
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
    Tenant,
)
from engine.store.store import (
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
    "GLOBAL_TENANT", "Approval", "AuditLog", "Checkpoint", "ClaimConflict", "ConnectionProfileRow",
    "InvalidTransition",
    "Decision", "ExecutionRun", "KillSwitchState", "MetricSample", "PrecheckResult", "RollbackPoint",
    "RollbackRecord", "RunLock", "ScopeLockError", "Store", "StoreError", "Tenant",
    "default_store_url", "redact_url", "state_dir",
]
