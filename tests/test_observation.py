"""The post-success observation (issue 16 item 4; docs/runbook.md#post-success-observation,
docs/states.md): after a PASS or a PASS WITH WARNING the run is ``observing`` for 15 minutes under
its own thresholds (runbook 5.1's success limits) before it is ``completed``; a success limit
crossed in that time fails the run as ``observation_failed`` with the manual rollback prepared. The
drill's compressed clock shortens it alike. Engine path (what ``run --headless`` and the rehearsal
drive), on a scripted source."""

from __future__ import annotations

import time

from plans import ACME, people
from scripted_window import ScriptedSource, world

from engine.domain.plan import parse_plan
from engine.domain.thresholds import Profile
from engine.flows.monitor import observation_profile
from engine.views.report import render_report, report_facts

PLAN = parse_plan(ACME + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok", "@nok")),
                  "canary.toml")


def test_the_post_success_profile_holds_the_success_limits():
    base = Profile()
    obs = observation_profile(base, "post_success")
    assert obs.window_minutes == 15 and obs.checkpoints == (0,)
    assert (obs.rule("latency_p50").warning, obs.rule("latency_p50").critical) == (10, 10)
    assert (obs.rule("latency_p99").warning, obs.rule("latency_p99").critical) == (10, 20)
    assert (obs.rule("lock_wait").warning, obs.rule("lock_wait").critical) == (1, 1)
    assert (obs.rule("replication_lag").warning, obs.rule("replication_lag").critical) == (30, 30)
    assert obs.rule("error_rate") == base.rule("error_rate"), "its PASS limit is an increase: bands kept"
    assert obs.rule("connections") == base.rule("connections")
    after_rollback = observation_profile(base, "post_rollback")
    assert after_rollback.window_minutes == 30 and after_rollback.rules == base.rules


def test_a_pass_is_observed_for_15_minutes_before_the_run_is_completed(tmp_path):
    events: list = []
    store, ex, run = world(tmp_path, PLAN, ScriptedSource(), events)
    statuses: list[str] = []
    ex.on_event = lambda name, data: (events.append((name, dict(data))),
                                      statuses.append(store.get_run("acme", run.id).status)
                                      if name == "observation_tick" else None)
    started = time.monotonic()
    out = ex._monitoring_window(run)
    assert out.status == "completed", out.message
    assert "post-success observation OK (15 min)" in out.message
    # 15 min at 30 s is 30 ticks on time; on the compressed clock a loaded machine overruns some of
    # them (21 seen at load 4): the 15 minutes themselves are asserted below (elapsed_s).
    assert set(statuses) == {"observing"} and len(statuses) >= 10, "ticks all along, all observing"
    assert ("observing", {"minutes": 15.0, "verdict": "PASS"}) in events
    changes = [(e.old_status, e.new_status) for e in store.audit_entries("acme", run.id, "status_change")]
    assert changes[-2:] == [("running", "observing"), ("observing", "completed")]
    [begun] = store.audit_entries("acme", run.id, "post_success_observation_started")
    [done] = store.audit_entries("acme", run.id, "post_success_observation_completed")
    assert begun.details["minutes"] == 15 and "post-success observation" in begun.details["profile"]
    assert done.details["ok"] is True and done.details["elapsed_s"] >= 15 * 60
    # The compressed clock: 15 minutes of drill time, seconds of real time.
    assert time.monotonic() - started < 60
    md = render_report(report_facts(store, PLAN, run.id))
    assert "| Observation | post-success observation of 15 min: OK — no alert fired; 0 warning(s) |" in md


def test_a_success_limit_crossed_while_observing_fails_the_run_with_the_rollback_prepared(tmp_path):
    """A lock wait of 1.5 s is only a warning in the window (critical at 5 s) but crosses the
    success limit (< 1 s) the observation holds: the run is not declared a success."""
    events: list = []
    store, ex, run = world(tmp_path, PLAN, ScriptedSource({"lock_wait": 1.5}, from_min=64), events)
    out = ex._monitoring_window(run)
    assert (out.status, out.fail_reason) == ("failed", "observation_failed"), out.message
    assert "post-success observation NOT OK after a PASS" in out.message and "Lock wait time" in out.message
    [decision] = store.decisions("acme", run.id)
    assert decision.verdict == "PASS", "the window's verdict stands; the observation decided the run"
    [record] = store.rollback_records("acme", run.id)
    assert record.rollback_status == "would_roll_back"
    assert record.rollback_details["metrics_at_decision"]["observation"]["kind"] == "post_success"
    [done] = store.audit_entries("acme", run.id, "post_success_observation_completed")
    assert done.details["ok"] is False and done.details["stopped_early"] is True
    assert done.details["elapsed_s"] < 15 * 60, "stopped at the first alert, not after 15 minutes"
    md = render_report(report_facts(store, PLAN, run.id))
    assert "| Observation | post-success observation of 15 min: NOT OK — Lock wait time" in md
    assert "| Status | failed (observation_failed) |" in md


async def test_the_monitoring_screen_shows_the_observation_while_it_runs_and_its_outcome_after(tmp_path):
    """Pilot: the dashboard drawn from the store while the run is observing (5 minutes in), and
    after it completed."""
    from dataclasses import replace

    from dashboard_host import FRAME, Host

    from engine.views.dashboard import dashboard_view, load_dashboard
    from screens.monitoring import MonitoringScreen

    events: list = []
    store, ex, run = world(tmp_path, PLAN, ScriptedSource(), events)
    seen = {}

    def on_event(name, data):
        if name == "observation_tick" and data["elapsed_s"] >= 300 and "during" not in seen:
            now = ex.clock.now()
            seen["during"] = dashboard_view(PLAN.profile(), load_dashboard(store, PLAN, run.id, now), now)

    ex.on_event = on_event
    assert ex._monitoring_window(run).status == "completed"
    during = seen["during"]
    # ×600: a loaded machine may draw it a few compressed minutes late, never after the end
    assert during.progress.phase == "observing" and 5 <= during.progress.elapsed_min < during.progress.total_min
    now = ex.clock.now()
    after = dashboard_view(PLAN.profile(), load_dashboard(store, PLAN, run.id, now), now)
    assert after.progress.phase == "complete"

    screen = MonitoringScreen(PLAN)
    app = Host(screen, replace(FRAME, run=f"run {run.id[:8]} observing"))
    async with app.run_test(size=(160, 50)) as pilot:
        screen.show_dashboard(during)
        await pilot.pause()
        text = str(screen.query_one("#window-text").render())
        assert "Post-success observation" in text and "/ 15 min" in text and "(PASS)" in text
        assert screen.query_one("#window").has_class("-observing")
        screen.show_dashboard(after)
        await pilot.pause()
        text = str(screen.query_one("#window-text").render())
        assert "post-success observation of 15 min: OK" in text
        assert not screen.query_one("#window").has_class("-observing")


def test_the_kill_switch_during_the_observation_is_what_the_report_and_the_dashboard_say(tmp_path):
    """F9 while the run observes a PASS: the run is cancelled, and the report's header and the
    Monitoring screen's window line say so first — the PASS is labelled as the window's, never shown
    as the run's result (issue 18: "PASS WITH WARNING" and "60.0 / 60 min — complete" with no word
    of the cancellation)."""
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.flows.executor import Abort
    from engine.views.dashboard import dashboard_view, load_dashboard

    events: list = []
    store, ex, run = world(tmp_path, PLAN, ScriptedSource(), events)

    fired: list = []

    def on_event(name, data):
        if name == "observation_tick" and data["elapsed_s"] >= 120 and not fired:
            fired.append(data["elapsed_s"])
            EmbeddedKillSwitch(store).set("acme", "global", True, "nok@10.0.0.9", "drill: F9 while observing", "")

    ex.on_event = on_event
    try:
        out = ex._monitoring_window(run)
    except Abort as stop:
        out = stop.outcome
    assert (out.status, out.fail_reason) == ("cancelled", "kill_switch"), out.message
    assert store.get_run("acme", run.id).status == "cancelled"
    [decision] = store.decisions("acme", run.id)
    assert decision.verdict == "PASS", "the window's verdict stays on the record"

    facts = report_facts(store, PLAN, run.id)
    assert facts.outcome == "CANCELLED"
    assert facts.result == ("CANCELLED — run cancelled by the kill switch during the post-success observation; "
                            "the window's verdict: PASS")
    md = render_report(facts)
    assert "the window's verdict: PASS" in md and "| Result | PASS |" not in md
    assert "| Observation | post-success observation of 15 min: not finished (cancelled) |" in md, md

    now = ex.clock.now()
    view = dashboard_view(PLAN.profile(), load_dashboard(store, PLAN, run.id, now), now)
    text = view.progress.text
    assert "60 / 60 min — complete" in text.replace("60.0 /", "60 /"), text
    assert "RUN CANCELLED by the kill switch during the post-success observation" in text, text
