"""The drill's FAIL path, end to end on the rehearsal's own primary + replica with its workload,
time-compressed 120×: a severe lock contention injected mid-window (the fault key L) turns lock
wait critical; the window stops with FAIL and records the DROP it would run (a canary never rolls
back by itself); the DBA decides the manual rollback, the requester alone may not approve it, the
canary lead (the teammate) approves; the DROP runs, the index is gone, the run is rolled_back —
each step in the store and in the audit trail, in the runbook's order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import Store
from engine.adapters.target import Target
from engine.domain.clock import clock_for
from engine.domain.plan import load_plan
from engine.domain.sizegate import sampling_interval
from engine.drill import rehearsal
from engine.drill.faults import FaultBox
from engine.flows.executor import Executor
from engine.flows.monitor import Monitor, sources_for
from engine.flows.rollback_flow import approve_rollback, decide_rollback
from engine.flows.rollback_rungs import execute_drop

pytestmark = [pytest.mark.long, pytest.mark.mariadb, pytest.mark.slow]
SPEED = 120.0
YOU, TEAMMATE = "you@jump", "teammate@jump (played by you)"
ALL = {"canary_lead", "dba", "sre", "developer"}

FAIL_PATH = ("alter_started", "index_added", "monitoring_started", "fault_started", "verdict",
             "auto_rollback_would_run", "rollback_decided", "rollback_approve", "rollback_completed")


@contextmanager
def drill_run(tmp_path: Any, monkeypatch: Any, rows: int = 20_000, speed: float = SPEED, control: bool = False,
              ) -> Iterator[tuple[Any, Store, Executor, Any, FaultBox]]:
    """A drill (20,000 rows, compressed 120×, unless told), a run created on it with its monitor, and
    the drill's fault box; the box is closed and the drill stopped however the test ends."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    drill = rehearsal.start(rows, True, "you", lambda line: None, speed=speed, control=control)
    box = None
    try:
        plan = load_plan(drill.plan_path)
        clock = clock_for(plan)
        store = Store(drill.store_url, clock=clock)
        backend = EmbeddedKillSwitch(store)
        ex = Executor(plan, store, backend, Target(plan.connection), YOU, "drill-worker", clock=clock)
        run = ex.create_run()
        ex.monitor = Monitor(store, plan.tenant, run.id, sources_for(plan, backend, clock), plan.profile(), YOU,
                             clock, interval=sampling_interval("PASS", speed))
        box = FaultBox.from_plan(plan, store, run.id, YOU, clock)
        yield plan, store, ex, run, box
    finally:
        if box is not None:
            box.close()
        drill.stop()


def test_injected_lock_wait_fails_the_window_and_the_manual_rollback_removes_the_index(tmp_path, monkeypatch):
    with drill_run(tmp_path, monkeypatch) as (plan, store, ex, run, box):

        def inject() -> None:  # a few minutes into the window, as a person at the keyboard would
            deadline = time.monotonic() + 120
            while not store.audit_entries(plan.tenant, run.id, "monitoring_started") and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.5)
            box.start("L")

        side = threading.Thread(target=inject, daemon=True)
        side.start()
        out = ex.execute(run.id)
        side.join(10)
        box.close()  # the fault's sessions go before the DROP (it would queue behind them)

        assert (out.status, out.fail_reason) == ("failed", "harm_limit"), out.message
        [decision] = store.decisions(plan.tenant, run.id)
        assert decision.verdict == "FAIL"
        assert decision.evidence["stopped_early"] is True
        assert any("lock" in r.lower() for r in decision.evidence["reasons"]), decision.evidence["reasons"]
        lock = [s.value for s in store.samples(plan.tenant, run.id, "lock_wait") if s.value is not None]
        assert max(lock) >= 5, "lock wait reached the critical line (≥ 5 s)"
        [would] = store.rollback_records(plan.tenant, run.id)
        assert would.rollback_status == "would_roll_back" and "DROP INDEX" in would.rollback_sql
        with Target(plan.connection).session("check") as s:
            assert s.index_exists(plan.schema, plan.change.table, plan.change.index), "a canary never drops by itself"

        # The manual rollback (runbook 6.3: lock wait > 5 s — the DBA decides, the canary lead approves).
        run = store.get_run(plan.tenant, run.id)
        decided = decide_rollback(store, plan, run, "lock_wait", YOU, ALL, "lock wait critical at the window",
                                  role="dba")
        assert decided.ok, decided.message
        alone = approve_rollback(store, plan, run, "canary_lead", YOU, ALL, "me too")
        assert not alone.ok and "requester" in alone.message.lower(), alone.message
        early = execute_drop(store, plan, Target(plan.connection), run, YOU, ALL, clock=ex.clock)
        assert not early.ok, "no DROP before the approval"
        approved = approve_rollback(store, plan, run, "canary_lead", TEAMMATE, ALL, "agreed: drop it")
        assert approved.ok, approved.message
        dropped = execute_drop(store, plan, Target(plan.connection), run, YOU, ALL, clock=ex.clock)
        assert dropped.ok, dropped.message

    run = store.get_run(plan.tenant, run.id)
    assert (run.status, run.fail_reason) == ("rolled_back", "manual_rollback")
    records = store.rollback_records(plan.tenant, run.id)
    assert any(r.rollback_status == "completed" and r.rollback_type == "manual" for r in records)
    actions = [e.action for e in store.audit_entries(plan.tenant, run.id)]
    positions = [actions.index(a) for a in FAIL_PATH]
    assert positions == sorted(positions), f"out of the runbook's order: {actions}"
    refused = store.audit_entries(plan.tenant, run.id, "rollback_approval_refused")
    assert refused and refused[0].actor == YOU
    drops = [e for e in store.audit_entries(plan.tenant, run.id) if "DROP INDEX" in str(e.details)]
    assert drops, "the DROP statement is in the audit trail"


def test_a_latency_regression_from_the_alter_fails_the_default_drill(tmp_path, monkeypatch):
    """The latency regression (the fault key s: CPU-heavy scans of the table, commits flushed to
    disk, the buffer pool shrunk to a sixth of the table) switched on as the ALTER starts — where a
    regression the change caused would begin — on the drill as the README runs it: 1,000,000 rows,
    30×. The new index makes the workload's reads 200 times faster, but with the working set out of
    memory every read and write waits for pages: p50 ×4–7, and the window stops with FAIL by the p50
    harm limit within minutes (docs/rehearsal.md#faults-f6; 4 drills of 4 measured by hand, 4.5–5
    minutes in). p99 stays far below the pre-index baseline."""
    with drill_run(tmp_path, monkeypatch, rows=1_000_000, speed=30.0) as (plan, store, ex, run, box):

        started = threading.Event()  # the executor's own event, as the ALTER starts
        ex.on_event = lambda name, _data: started.set() if name == "alter_started" else None

        def inject() -> None:
            started.wait(600)
            box.start("s")

        side = threading.Thread(target=inject, daemon=True)
        side.start()
        out = ex.execute(run.id)
        side.join(10)
        box.close()
        [note] = [e.details.get("note", "") for e in store.audit_entries(plan.tenant, run.id, "fault_started")]

    assert "buffer pool" in note and "→" in note, note
    assert out.status == "failed", out.message
    [decision] = store.decisions(plan.tenant, run.id)
    assert decision.verdict == "FAIL" and decision.evidence["stopped_early"] is True
    criteria = {c["name"]: c for c in decision.evidence["criteria"]}
    p50 = next(c for name, c in criteria.items() if name.startswith("Query latency p50"))
    assert p50["met"] is False and ("harm limit" in p50["rule"] or "sequential look" in p50["rule"]), p50


def test_the_default_drill_with_a_control_and_no_fault_passes(tmp_path, monkeypatch):
    """`rehearse --control` with nothing pressed: the latency judged relative to the control tenant
    (the same statements on a table a fifth the size, not altered). Its scans ran at the canary's
    rate, kept up with its writes, and its p50 jumped between a write's and a scan's (0.7 … 29 ms)
    from one interval to the next: the no-fault drill FAILed by the p50 harm limit, "+1,758 %
    relative to the control". Its scans are now a minority of its statements, as the canary's are."""
    with drill_run(tmp_path, monkeypatch, rows=1_000_000, speed=30.0, control=True) as (plan, store, ex, run, box):
        assert plan.change.control_schemas
        out = ex.execute(run.id)
    [decision] = store.decisions(plan.tenant, run.id)
    criteria = {c["name"]: c for c in decision.evidence["criteria"]}
    p50 = next(c for name, c in criteria.items() if name.startswith("Query latency p50"))
    assert decision.verdict != "FAIL" and out.status != "failed", (out.message, p50)
    assert "control" in str(p50), p50
