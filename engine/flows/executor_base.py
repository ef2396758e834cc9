"""What every part of the executor shares (engine/flows/executor.py; docs/runbook.md#4-execution):
the ``Outcome`` a drive comes to, ``Abort`` that ends it early with the outcome already recorded,
and ``ExecutorBase``: the executor's state and the helpers that fail the run, audit and tell the
screen. The executor's steps are mixed in from engine/flows/executor_alter.py (the ALTER, watched
and cancelled), executor_window.py (after the ALTER) and executor_lease.py (the lease, the
take-over and crash recovery).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.adapters.killswitch import KillSwitchBackend, KillSwitchReading
from engine.adapters.store import ExecutionRun, Store
from engine.adapters.target import Target
from engine.domain.clock import Clock
from engine.domain.plan import ExecutorOptions, Plan
from engine.domain.verification import VerificationResult


@dataclass
class Outcome:
    run_id: str
    status: str
    fail_reason: str | None = None
    message: str = ""
    verification: VerificationResult | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Abort(Exception):
    """Ends the flow early with an outcome already recorded."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


class ExecutorBase:
    """The executor's state (set by ``Executor.__init__``) and its recording helpers."""

    plan: Plan
    store: Store
    kill_switch: KillSwitchBackend
    target: Target
    actor: str
    worker: str
    clock: Clock
    opts: ExecutorOptions
    observer: Any  # engine.flows.executor.Observer
    on_event: Callable[[str, dict[str, Any]], None]
    monitor: Any  # engine.flows.monitor.Monitor: the 60-minute window decides
    notifier: Any  # engine.flows.notify.Notifier
    tenant: str
    conn_id: str
    _last_renew: float

    def _fail(self, run: ExecutionRun, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        self.store.transition(self.tenant, run.id, "failed", self.actor, fail_reason=reason, message=message,
                              details=details)
        self._event("failed", fail_reason=reason, message=message)
        raise Abort(Outcome(run.id, "failed", reason, message, details=details or {}))

    def _audit(self, run: ExecutionRun, action: str, details: dict[str, Any]) -> None:
        self.store.audit(self.tenant, self.actor, action, run.id, details)

    def _event(self, name: str, **data: Any) -> None:
        if self.notifier is not None:
            self.notifier.on_executor_event(name, data)
        self.on_event(name, data)

    def _get(self, run_id: str) -> ExecutionRun:
        run = self.store.get_run(self.tenant, run_id)
        if run is None:
            raise Abort(Outcome(run_id, "missing", None, f"run {run_id} not found for tenant {self.tenant}"))
        return run


def reading_details(reading: KillSwitchReading, when: str) -> dict[str, Any]:
    return {"when": when, "active": reading.active, "scopes": reading.active_scopes(),
            "source": reading.source, "response_ms": round(reading.response_ms, 1),
            "latency_level": reading.latency_level, "error": reading.error}
