"""A monitoring window run for real (``Monitor`` and the executor's monitoring step on a 600×
clock) on a scripted source: for tests of what the window and the observation after it do and
record, not of a database (the pattern of tests/test_early_stop.py)."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import datetime

from engine.adapters.collectors import Sample
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import ExecutionRun, Store
from engine.adapters.target import Target
from engine.domain.clock import CompressedClock
from engine.flows.executor import Executor
from engine.flows.monitor import Monitor

CALM = {"lock_wait": 0.0, "connections": 10.0, "threads_running": 5.0, "replication_lag": 1.0}
INTERVAL = 30.0


class ScriptedSource:
    """Calm; ``then`` between ``from_min`` and ``to_min`` minutes into the window (by the monitor's
    clock)."""

    name = "scripted"

    def __init__(self, then: dict[str, float] | None = None, from_min: float = 0.0, to_min: float = 1e9):
        self.then, self.from_s, self.to_s = then or {}, from_min * 60, to_min * 60
        self.metrics = tuple({**CALM, **self.then})
        self.store = self.clock = None
        self.window_at: datetime | None = None

    def collect(self):
        values = dict(CALM)
        if self.window_at is None and self.store is not None:
            started = self.store.audit_entries("acme", None, "monitoring_started")
            self.window_at = datetime.fromisoformat(started[0].details["at"]) if started else None
        if self.window_at is not None and self.from_s <= (self.clock.now() - self.window_at).total_seconds() < self.to_s:
            values.update(self.then)
        return [Sample(m, values.get(m), self.name, None if m in values else "not yet") for m in self.metrics]

    def close(self):
        pass


def world(tmp_path, plan, source, events):
    """A run past its ALTER (10 ticks of baseline first) and its executor with a monitor on
    ``source``; the executor's events go to ``events``."""
    clock = CompressedClock(600)
    store = Store(f"sqlite:///{tmp_path / 's.db'}", clock=clock)
    run = store.create_run(ExecutionRun(tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop",
                                        table_name="orders", index_name="idx_orders_customer_created",
                                        columns=[["customer_id", None], ["created_at", None]], mode="canary"),
                           "somchai@10.0.0.5")
    store.claim("acme", run.id, "worker-1", 3600)
    store.transition("acme", run.id, "running", "somchai@10.0.0.5")
    source.store, source.clock = store, clock
    with socket.socket() as s:  # the digests at the window's ends are unreadable here: audited, not under test
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = Target(replace(plan.connection, host="127.0.0.1", port=port, socket=None))
    ex = Executor(plan, store, EmbeddedKillSwitch(store), target, "somchai@10.0.0.5", "worker-1", clock=clock,
                  on_event=lambda name, data: events.append((name, dict(data))))
    ex.monitor = Monitor(store, "acme", run.id, [source], plan.profile(), "somchai@10.0.0.5", clock,
                         interval=INTERVAL)
    ex.monitor.baseline(10 * INTERVAL)
    at = clock.now()
    ex.monitor.loop.tick()
    run = store.update_run("acme", run.id, alter_started_at=at, alter_finished_at=clock.now(), index_created_by_run=True)
    return store, ex, run
