"""The threshold profiles as data (docs/thresholds.md): every line of the default profile pinned to
the table in docs/thresholds.md, and the tightened profile of a WARNING-band table pinned to its
definition (warning and note lines at three quarters of their distance from the metric's best
value; critical lines and the PASS-at-end limits as written). Then the run: the size gate's WARNING
picks the tightened profile and the halved interval, and the dashboard says so."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from engine.adapters.collectors import Sample
from engine.adapters.store import ExecutionRun, Store
from engine.domain.plan import parse_plan
from engine.domain.sizegate import gate, profile_for, sampling_interval
from engine.domain.thresholds import DEFAULT_RULES, TIGHTEN_FACTOR, Profile, tightened
from engine.flows.prechecks import record_gate, run_gate, run_profile
from engine.views.dashboard import dashboard_view, load_dashboard
from tests.plans import ACME, people

# docs/thresholds.md, "The threshold table": key → (note, warning, critical, PASS below, lower is worse)
TABLE = {
    "latency_p50": (5, 10, 50, 10, False),
    "latency_p99": (None, 10, 100, 20, False),
    "lock_wait": (None, 1, 5, 1, False),
    "replication_lag": (10, 30, 60, 30, False),
    "error_rate": (None, 0.1, 1, 0.1, False),
    "connections": (None, 80, 90, None, False),
    "threads_running": (None, 50, 100, None, False),
    "buffer_pool_hit": (None, 95, 90, None, True),
    "cpu": (None, 70, 85, None, False),
    "memory": (None, 80, 90, None, False),
    "disk_read": (None, 100, 200, None, False),
    "disk_write": (None, 50, 100, None, False),
    "network_latency": (None, 50, 100, None, False),
    "request_latency_p50": (None, 20, 50, None, False),
    "request_latency_p99": (None, 30, 100, None, False),
    "throughput": (None, -10, -50, None, True),
    "killswitch_response": (None, 500, 2000, None, False),
    "query_timeouts": (None, 1, math.inf, None, False),  # a warning only: never a stop
    "killswitch_availability": (None, 99.9, 99, None, True),
}
# The tightened warning (and note) lines, worked out by hand from the definition.
TIGHT = {
    "latency_p50": (3.75, 7.5), "latency_p99": (None, 7.5), "lock_wait": (None, 0.75),
    "replication_lag": (7.5, 22.5), "error_rate": (None, 0.075), "connections": (None, 60),
    "threads_running": (None, 37.5), "buffer_pool_hit": (None, 96.25), "cpu": (None, 52.5),
    "memory": (None, 60), "disk_read": (None, 75), "disk_write": (None, 37.5), "network_latency": (None, 37.5),
    "request_latency_p50": (None, 15), "request_latency_p99": (None, 22.5), "throughput": (None, -7.5),
    "killswitch_response": (None, 375), "query_timeouts": (None, 0.75), "killswitch_availability": (None, 99.925),
}


def test_every_line_of_the_default_profile_is_the_documented_one():
    assert [r.key for r in DEFAULT_RULES] == list(TABLE)
    for r in DEFAULT_RULES:
        assert (r.note, r.warning, r.critical, r.pass_below, r.lower_is_worse) == TABLE[r.key], r.key


def test_the_tightened_profile_is_its_definition():
    assert TIGHTEN_FACTOR == 0.75
    base = Profile()
    tight = tightened(base, 6_000_000)
    assert tight.tightened_rows == 6_000_000 and base.tightened_rows is None
    for d, t in zip(base.rules, tight.rules, strict=True):
        note, warning = TIGHT[d.key]
        assert t.warning == pytest.approx(warning) and t.warning == pytest.approx(d.best + (d.warning - d.best) * 0.75)
        assert (t.note is None and note is None) or t.note == pytest.approx(note), d.key
        # what is not a warning line stays as written
        assert (t.critical, t.pass_below, t.pass_mode, t.stop_at_critical, t.severity) == \
            (d.critical, d.pass_below, d.pass_mode, d.stop_at_critical, d.severity), d.key
        # tighter: the warning is reached sooner, and still before the critical line
        assert d.worse_or_equal(d.warning, t.warning) and t.worse_or_equal(t.critical, t.warning), d.key
    # the other settings of the profile (window, samples, checkpoints) are untouched
    assert (tight.window_minutes, tight.min_samples, tight.checkpoints) == (60.0, 10, base.checkpoints)


def test_a_plans_overrides_are_tightened_too():
    plan = parse_plan(ACME + "[thresholds.lock_wait]\nwarning = 2\ncritical = 8\n")
    assert profile_for(plan.profile(), "WARNING", 7_000_000).rule("lock_wait").warning == 1.5
    assert profile_for(plan.profile(), "PASS", 100).rule("lock_wait").warning == 2


def test_the_gate_picks_the_profile_and_the_interval_and_the_dashboard_says_so(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    plan = parse_plan(ACME + people(("Somchai", "canary_lead", "somchai")))
    run = store.create_run(ExecutionRun(
        tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None]]), "somchai")
    assert run_profile(plan, store, run.id).tightened_rows is None  # before the gate: the plan's
    decision = gate(6_400_000, exact=True)
    assert decision.band == "WARNING" and sampling_interval(decision.band) == 2.5 == decision.sampling_interval_s
    record_gate(store, plan, run.id, decision, "nok")
    assert run_gate(store, "acme", run.id) == ("WARNING", 6_400_000)
    assert store.run_prechecks("acme", run.id)["gate.size"].status == "warn"
    profile = run_profile(plan, store, run.id)
    assert profile.tightened_rows == 6_400_000 and profile.rule("latency_p50").warning == 7.5

    now = store.now()
    store.add_samples("acme", run.id, now - timedelta(seconds=5), [Sample("lock_wait", 0.2, "mysql")])
    data = load_dashboard(store, plan, run.id, now)
    view = dashboard_view(data.profile, data, now)
    assert view.profile_note.startswith("tightened: the table has 6,400,000 rows")
    [tile] = [t for t in view.tiles if t.key == "lock_wait"]
    assert "warn ≥ 0.75s" in tile.thresholds and "crit ≥ 5s" in tile.thresholds

    # A PASS table afterwards (the gate checked again) is watched with the plan's own lines.
    record_gate(store, plan, run.id, gate(1_000, exact=True), "nok")
    assert run_profile(plan, store, run.id) == plan.profile()
    fresh = load_dashboard(store, plan, run.id, now)
    assert dashboard_view(fresh.profile, fresh, now).profile_note == ""
