"""A monitoring window that stops early (issue 14 item 6): on a harm limit (a lock wait past its
critical line) and on the kill switch. The checkpoints it never reached are shown as not reached —
on the dashboard, in the decision and in the report — never as due or evaluated; the ones recorded
at the stop say they were evaluated on the data up to then; and the run's fail_reason, the
decision's words and the audit name the stop's real cause (a lock-wait critical is ``harm_limit``,
not ``verification_failed``).

The window runs for real (``Monitor`` and the executor's monitoring step on a 600× clock) with a
scripted source: what is under test is the control flow and the records, not a database."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import datetime

import pytest
from plans import ACME, people

from engine.adapters.collectors import Sample
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import ExecutionRun, Store
from engine.adapters.target import Target
from engine.domain.clock import CompressedClock
from engine.domain.plan import parse_plan
from engine.domain.stops import fail_reason_for, stop_words
from engine.flows.executor import Abort, Executor
from engine.flows.monitor import Monitor
from engine.views.dashboard import dashboard_view, decision_view, load_dashboard
from engine.views.report import render_report, report_facts

PLAN = parse_plan(ACME + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok", "@nok")),
                  "canary.toml")
CALM = {"lock_wait": 0.0, "connections": 10.0, "threads_running": 5.0, "replication_lag": 1.0}
INTERVAL = 30.0
BASELINE_TICKS = 10  # 300 s of baseline at 30 s


class ScriptedSource:
    """Calm, then ``then`` from ``after_min`` minutes into the window on (``hook`` called once
    there): the window's time as the monitor's own clock reads it, however slow a tick is."""

    name = "scripted"
    metrics = tuple(CALM)

    def __init__(self, after_min: float, then: dict[str, float] | None = None, hook=None):
        self.after_s = after_min * 60
        self.then = then or {}
        self.hook = hook
        self.store = self.clock = None
        self.window_at: datetime | None = None
        self.fired = False

    def collect(self):
        values = dict(CALM)
        if self.window_at is None and self.store is not None:
            started = self.store.audit_entries("acme", None, "monitoring_started")
            self.window_at = datetime.fromisoformat(started[0].details["at"]) if started else None
        if self.window_at is not None and (self.clock.now() - self.window_at).total_seconds() >= self.after_s:
            values.update(self.then)
            if self.hook is not None and not self.fired:
                self.fired = True
                self.hook()
        return [Sample(m, v, self.name) for m, v in values.items()]

    def close(self):
        pass


def _unreachable_target() -> Target:
    """A target that refuses at once (a local port nobody listens on): the window reads the table's
    digests at its start and end (engine/flows/digest_check.py), and here they are unreadable — audited,
    and the verification says so; the stop under test does not depend on them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Target(replace(PLAN.connection, host="127.0.0.1", port=port, socket=None))


@pytest.fixture
def world(tmp_path):
    clock = CompressedClock(600)  # 60 min in 6 s: a slow tick on a loaded machine stays well inside 15 min
    store = Store(f"sqlite:///{tmp_path / 's.db'}", clock=clock)
    run = store.create_run(ExecutionRun(tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop",
                                        table_name="orders", index_name="idx_orders_customer_created",
                                        columns=[["customer_id", None], ["created_at", None]], mode="canary"),
                           "somchai@10.0.0.5")
    store.claim("acme", run.id, "worker-1", 3600)
    store.transition("acme", run.id, "running", "somchai@10.0.0.5")

    def executor(source: ScriptedSource) -> tuple[Executor, ExecutionRun]:
        source.store, source.clock = store, clock
        backend = EmbeddedKillSwitch(store)
        ex = Executor(PLAN, store, backend, _unreachable_target(), "somchai@10.0.0.5", "worker-1", clock=clock)
        ex.monitor = Monitor(store, "acme", run.id, [source], PLAN.profile(), "somchai@10.0.0.5", clock,
                             interval=INTERVAL)
        ex.monitor.baseline(BASELINE_TICKS * INTERVAL)
        at = clock.now()
        ex.monitor.loop.tick()  # the ALTER's own tick
        done = store.update_run("acme", run.id, alter_started_at=at, alter_finished_at=clock.now(),
                                index_created_by_run=True)
        return ex, done

    return clock, store, run, executor


def _rows(view) -> dict[str, object]:
    return {r.label: r for r in view.checkpoints}


def test_a_lock_wait_past_its_harm_limit_stops_the_window_as_harm_limit_with_the_rest_not_reached(world):
    clock, store, run, executor = world
    ex, run = executor(ScriptedSource(20, then={"lock_wait": 6.2}))  # T+35
    out = ex._monitoring_window(run)

    assert (out.status, out.fail_reason) == ("failed", "harm_limit"), out.message
    run = store.get_run("acme", run.id)
    assert (run.status, run.fail_reason) == ("failed", "harm_limit")
    [decision] = store.decisions("acme", run.id)
    ev = decision.evidence
    assert decision.verdict == "FAIL" and ev["stopped_early"] is True
    assert ev["stop_cause"] == "failure_condition" and 19 * 60 <= ev["stopped_at_s"] <= 29 * 60
    assert "Lock wait time" in ev["stop_reason"]
    [done] = store.audit_entries("acme", run.id, "monitoring_completed")
    assert done.details["stop_cause"] == "failure_condition"
    [failed] = [e for e in store.audit_entries("acme", run.id, "status_change") if (e.details or {}).get("fail_reason")]
    assert failed.details["fail_reason"] == "harm_limit", "the audit names the same cause as the run"

    # Checkpoints: T+15 and T+30 reached (recorded by the engine), the rest never evaluated.
    labels = {c.label: c for c in store.checkpoints("acme", run.id)}
    assert set(labels) == {"T+15", "T+30"}, sorted(labels)

    data = load_dashboard(store, PLAN, run.id, clock.now())
    view = dashboard_view(PLAN.profile(), data, clock.now())
    rows = _rows(view)
    assert [rows[k].status for k in ("T+15", "T+30")] == ["recorded", "recorded"]
    for label in ("T+45", "T+60", "T+75"):
        assert rows[label].status == "not_reached" and rows[label].metrics_ok is None, rows[label]
        assert rows[label].notes.startswith("not reached: the window stopped at T+3"), rows[label].notes
    assert view.current_checkpoint == "T+30", "the last checkpoint the window reached"
    assert "stopped early at T+3" in view.progress.text and "harm limit" in view.progress.text

    dv = decision_view(data)
    assert dv.verdict == "FAIL" and dv.rollback_trigger == "lock_wait"
    assert "harm limit" in dv.stop_text and "verification" not in dv.stop_text

    report = render_report(report_facts(store, PLAN, run.id))
    assert "failed (harm_limit)" in report
    assert "Not reached — the window stopped before them, so never evaluated: T+45, T+60, T+75." in report
    assert "harm limit" in report


def test_the_kill_switch_during_the_window_leaves_no_verdict_and_says_so(world):
    clock, store, run, executor = world
    ex, run = executor(ScriptedSource(5, hook=lambda: store.set_kill_switch(
        "acme", "global", True, "nok@10.0.0.9", "p99 doubling")))  # T+20
    with pytest.raises(Abort) as stopped:
        ex._monitoring_window(run)
    assert (stopped.value.outcome.status, stopped.value.outcome.fail_reason) == ("cancelled", "kill_switch")
    assert not store.decisions("acme", run.id), "a kill switch records no verdict"
    [entry] = store.audit_entries("acme", run.id, "monitoring_stopped")
    assert entry.details["cause"] == "kill_switch" and entry.details["stopped_at"].startswith("T+")

    data = load_dashboard(store, PLAN, run.id, clock.now())
    view = dashboard_view(PLAN.profile(), data, clock.now())
    rows = _rows(view)
    assert rows["T+15"].status == "recorded"
    assert all(rows[k].status == "not_reached" for k in ("T+30", "T+45", "T+60", "T+75")), rows
    assert "stopped by the kill switch at T+" in view.progress.text
    dv = decision_view(data)
    assert dv.verdict is None and dv.action == "ended", "never 'the verdict is recorded when it ends'"
    assert "the kill switch stopped the run at T+" in dv.action_text and "No verdict yet" not in dv.action_text
    assert dv.rollback_trigger == "kill_switch"

    report = render_report(report_facts(store, PLAN, run.id))
    assert "cancelled (kill_switch)" in report and "verification" not in report.lower().split("## run")[0]
    assert "The kill switch stopped the window at T+" in report
    assert "never evaluated: T+30, T+45, T+60, T+75." in report


@pytest.mark.parametrize(("evidence", "reason", "words"), [
    ({"stopped_early": True, "stop_cause": "failure_condition", "stopped_at_s": 1230.0,
      "stop_reason": "Lock wait time 6.2 s ≥ 5 s"}, "harm_limit", "stopped early at T+35:30: Lock wait time"),
    ({"stopped_early": True, "stop_cause": "auto_pause_rollback", "stopped_at_s": 600.0}, "manual_rollback",
     "stopped early at T+25:00: a rollback was approved during the AUTO-PAUSE"),
    ({"stopped_early": False}, "verification_failed", ""),
    ({"stopped_early": True}, "verification_failed", "the window stopped early"),  # evidence from before the cause
])
def test_each_stop_cause_has_its_fail_reason_and_words(evidence, reason, words):
    assert fail_reason_for(evidence) == reason
    text = stop_words(evidence, 15)
    assert (words in text) if words else text == ""
    assert "verification" not in text

