"""Fault injection for the rehearsal (docs/api.md; issue 6): what a drill switches on from a key to
see the dashboard react — lock contention, replication lag, a latency regression, an error burst,
and a long transaction that blocks the ALTER's metadata lock.

Only ever against the rehearsal's private sandbox: a ``FaultBox`` refuses to exist unless the plan
says ``rehearsal = true``, and audits the refusal. Each fault acts through connections of its own
(one per thread), named ``canary-console:fault-<name>`` in the processlist, its statements tagged
``/* canary-console:fault-<name> */``. ``start()`` and ``stop()`` are idempotent and thread-safe;
they block for a moment (connects, and joins on stop: call them from a thread worker, never the UI
thread); ``stop()`` closes everything ``start()`` opened and is safe at process exit.

This module holds the box the console holds (``FaultBox``) and its refusal outside a rehearsal;
the faults themselves are in engine/drill/fault_kinds.py (``catalogue``), what they are made of in
engine/drill/fault_base.py, their SQL in engine/drill/fault_sql.py.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.domain.clock import Clock
from engine.drill.fault_base import Fault, FaultError, FaultTarget
from engine.drill.fault_kinds import catalogue

REFUSED = ("fault injection exists only in a rehearsal (a plan `canary-console rehearse` wrote, "
           "rehearsal = true); this plan is not one")


class FaultsRefused(FaultError):
    """Fault injection asked for outside a rehearsal."""


@dataclass(frozen=True)
class ActiveFault:
    key: str
    name: str
    since: datetime


class FaultBox:
    """The rehearsal's faults, by key. Exists only for a rehearsal (``rehearsal=True``: the plan's
    flag); audits every start and stop when given a store; stops them all on ``close()`` — and at
    process exit, before the sandbox (created earlier) is stopped."""

    def __init__(self, target: FaultTarget, *, rehearsal: bool, store: Any = None, tenant_id: str = "",
                 run_id: str | None = None, actor: str = "", clock: Clock | None = None,
                 faults: Sequence[Fault] | None = None):
        self.target = target
        self.store, self.tenant_id, self.run_id, self.actor = store, tenant_id, run_id, actor
        if rehearsal is not True:
            self._audit("fault_injection_refused", {"reason": REFUSED, "table": target.where()})
            raise FaultsRefused(REFUSED)
        self._faults = {f.key: f for f in (faults if faults is not None else catalogue(target, clock))}
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    @classmethod
    def from_plan(cls, plan: Any, store: Any = None, run_id: str | None = None, actor: str = "",
                  clock: Clock | None = None) -> FaultBox:
        return cls(FaultTarget.of_plan(plan), rehearsal=plan.rehearsal, store=store, tenant_id=plan.tenant,
                   run_id=run_id, actor=actor, clock=clock)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return tuple(self._faults.values())

    def fault(self, key: str) -> Fault:
        try:
            return self._faults[key]
        except KeyError:
            raise FaultError(f"no fault on key {key!r}: {', '.join(self._faults)}") from None

    def start(self, key: str) -> bool:
        """Start the fault on ``key``; False when it was on already. A start that cannot be audited
        is undone: no fault runs without its entry in the trail."""
        fault = self.fault(key)
        with self._lock:  # held through the start: close() never misses a fault starting
            if self._closed:
                raise FaultError("the fault box is closed (the rehearsal is ending)")
            if not fault.start():
                return False
            try:
                self._audit("fault_started", {"key": fault.key, "fault": fault.name,
                                              "description": fault.description, "table": self.target.where(),
                                              **({"note": fault.note} if fault.note else {})})
            except Exception:
                fault.stop()
                raise
            return True

    def stop(self, key: str) -> bool:
        fault = self.fault(key)
        since = fault.since
        if not fault.stop():
            return False
        self._audit("fault_stopped", self._stopped(fault, since))
        return True

    def toggle(self, key: str) -> bool:
        """Start the fault if it is off, stop it if it is on; True when it is on afterwards."""
        if self.fault(key).active:
            self.stop(key)
            return False
        self.start(key)
        return True

    def active(self) -> list[ActiveFault]:
        return [ActiveFault(f.key, f.name, f.since) for f in self._faults.values() if f.since is not None]

    def close(self) -> None:
        """Stop every fault (idempotent; safe at process exit: failures are recorded, not raised)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for fault in self._faults.values():
            since = fault.since
            try:
                if fault.stop():
                    self._audit("fault_stopped", self._stopped(fault, since), quiet=True)
            except FaultError as exc:
                fault.last_error = str(exc)
                self._audit("fault_stop_failed", {"key": fault.key, "fault": fault.name, "error": str(exc)},
                            quiet=True)
        atexit.unregister(self.close)

    def __enter__(self) -> FaultBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stopped(self, fault: Fault, since: datetime | None) -> dict[str, Any]:
        details: dict[str, Any] = {"key": fault.key, "fault": fault.name, "table": self.target.where()}
        if since is not None:
            details["seconds"] = round((fault.clock.now() - since).total_seconds(), 1)
        if fault.last_error:
            details["last_error"] = fault.last_error[:300]
        return details

    def _audit(self, action: str, details: dict[str, Any], quiet: bool = False) -> None:
        if self.store is None or not self.actor:
            return
        try:
            self.store.audit(self.tenant_id, self.actor, action, self.run_id, details)
        except Exception:  # noqa: BLE001
            if not quiet:
                raise
