"""AUTO-PAUSE (≥ 5 concurrent warnings) holds the decision back until the canary lead approves a
resume or a rollback — in the live monitor, and the same in replay.

The source here is scripted (values chosen by the test): what is under test is the monitor's
control flow and the store's records, not a database."""

from __future__ import annotations

import threading
import time

import pytest

from engine.adapters.collectors import Sample
from engine.adapters.store import ExecutionRun, Store
from engine.domain.clock import CompressedClock, utcnow
from engine.domain.thresholds import Profile
from engine.flows.monitor import Monitor, approve_pause, replay

WARN = {"connections": 80.0, "threads_running": 50.0, "cpu": 70.0, "memory": 80.0, "disk_read": 100.0}
CALM = {"connections": 10.0, "threads_running": 5.0, "cpu": 20.0, "memory": 40.0, "disk_read": 5.0}


class ScriptedSource:
    name = "scripted"
    metrics = tuple(WARN)

    def __init__(self):
        self.values = dict(CALM)

    def collect(self):
        return [Sample(m, v, self.name) for m, v in self.values.items()]

    def close(self):
        pass


@pytest.fixture
def setup(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    run = store.create_run(ExecutionRun(tenant_id="acme", connection_profile_id="c", schema_name="shop",
                                        table_name="orders", index_name="idx", columns=[["a", None]]), "lead")
    source = ScriptedSource()
    clock = CompressedClock(1200)
    monitor = Monitor(store, "acme", run.id, [source], Profile(), "engine@test", clock, interval=30.0)
    monitor.baseline(300)
    store.update_run("acme", run.id, alter_started_at=utcnow())
    time.sleep(0.05)
    return store, run, source, monitor


def _approve_when_paused(store, run_id, decision, roles, delay=0.3):
    def go():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not store.audit_entries("acme", run_id, "auto_pause"):
            time.sleep(0.02)
        time.sleep(delay)  # the window has ended by now: the monitor must still be waiting
        approve_pause(store, "acme", run_id, decision, "somchai@jump", roles, "looked at it")
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_auto_pause_waits_for_the_lead_then_resumes(setup):
    store, run, source, monitor = setup
    source.values = dict(WARN)  # five concurrent warnings from the first tick
    with pytest.raises(PermissionError):
        approve_pause(store, "acme", run.id, "resume", "dev@jump", {"developer"})
    assert store.audit_entries("acme", run.id, "auto_pause_approval_refused")
    t = _approve_when_paused(store, run.id, "resume", {"canary_lead"}, delay=4.0)
    result = monitor.window(store.get_run("acme", run.id).alter_started_at, index_created=True)
    t.join(5)
    lifted = store.audit_entries("acme", run.id, "auto_pause_lifted")
    assert lifted and lifted[0].details["decision"] == "resume"
    assert result.state.elapsed_s > 3600, "the decision waited past the window for the approval"
    assert result.verdict.verdict in ("PASS WITH WARNING", "FAIL")  # warnings, never a silent PASS
    again, _ = replay(store, "acme", run.id, Profile())
    assert again.verdict == result.verdict.verdict


def test_auto_pause_rollback_approval_ends_the_window_with_fail(setup):
    store, run, source, monitor = setup
    source.values = dict(WARN)
    t = _approve_when_paused(store, run.id, "rollback", {"canary_lead", "dba"}, delay=0.1)
    result = monitor.window(store.get_run("acme", run.id).alter_started_at, index_created=True)
    t.join(5)
    assert result.stopped_early and result.verdict.verdict == "FAIL"
    assert any("rollback approved by somchai@jump" in r for r in result.verdict.reasons)
    assert replay(store, "acme", run.id, Profile())[0].verdict == "FAIL"
