"""The kill-switch prechecks of runbook 2.3.1 and 4.4 (docs/kill-switch.md#the-kill-switch-test):
the global switch and the connection switch each activated, read back and deactivated, timed;
every switch left as the test found it; the test audited; the API's availability judged on the
same lines as the dashboard's metric. Against the embedded store and the engine's real HTTP API."""

from __future__ import annotations

import pytest

from api import create_app, serve_in_thread
from engine.adapters.killswitch import EmbeddedKillSwitch, RemoteKillSwitch
from engine.adapters.killswitch_source import KillSwitchSource
from engine.adapters.store import ExecutionRun, Store
from engine.domain.plan import parse_plan
from engine.domain.thresholds import DEFAULT_RULES, evaluate_band
from engine.flows.prechecks import KILL_TEST, availability_finding, kill_switch_test
from tests.plans import ACME, people

PLAN = parse_plan(ACME + people(("Somchai", "canary_lead", "somchai")))
TOKENS = {"lead": ("somchai", "canary_lead", "*")}


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 's.db'}")


def _run(store: Store, tenant: str = "acme") -> ExecutionRun:
    return store.create_run(ExecutionRun(
        tenant_id=tenant, connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None]]), "somchai")


def _states(backend) -> dict[str, bool]:
    r = backend.read("acme", "orders-primary")
    return {s: bool(r.scopes.get(s) and r.scopes[s].active) for s in ("global", "connection")}


def test_the_test_exercises_global_and_connection_and_leaves_them_off(store):
    run = _run(store)
    backend = EmbeddedKillSwitch(store)
    found = {f.check_id: f for f in kill_switch_test(PLAN, backend, "somchai", store, run.id)}
    assert set(found) == set(KILL_TEST)
    assert all(f.status == "pass" for f in found.values()), found
    assert "ACTIVE: global by somchai" in found["ks.global_activate"].detail
    assert all(f.duration_ms is not None and f.duration_ms < 500 for f in found.values())
    assert _states(backend) == {"global": False, "connection": False}
    # Audited: the test itself (rows, before, after), and each switch change by the store.
    [entry] = store.audit_entries("acme", run.id, "kill_switch_test")
    assert entry.details["before"] == entry.details["after"] == {"global": False, "connection": False}
    assert set(entry.details["rows"]) == set(KILL_TEST)
    changes = [(e.action, e.details["scope"]) for e in store.audit_entries("acme", None)
               if e.action.startswith("kill_switch_") and e.action != "kill_switch_test"]
    assert ("kill_switch_activated", "global") in changes and ("kill_switch_deactivated", "global") in changes


def test_a_switch_already_on_is_left_on_and_the_rows_say_why(store):
    run = _run(store)
    backend = EmbeddedKillSwitch(store)
    store.set_kill_switch("acme", "global", True, "nok", "maintenance")
    found = {f.check_id: f for f in kill_switch_test(PLAN, backend, "somchai", store, run.id)}
    assert found["ks.global_activate"].status == found["ks.global_deactivate"].status == "fail"
    assert "already ACTIVE (by nok: maintenance)" in found["ks.global_activate"].detail
    assert found["ks.activate"].status == found["ks.deactivate"].status == "pass"
    assert _states(backend) == {"global": True, "connection": False}  # as found


def test_global_is_not_flipped_while_another_run_holds_the_lock(store):
    other = _run(store, "globex")
    backend = EmbeddedKillSwitch(store)
    found = {f.check_id: f for f in kill_switch_test(PLAN, backend, "somchai", store, "not-the-holder")}
    assert found["ks.global_activate"].status == "fail"
    assert f"another run ({other.id[:8]} of tenant globex)" in found["ks.global_activate"].detail
    assert found["ks.deactivate"].status == "pass"
    assert not [e for e in store.audit_entries("acme", None) if e.action == "kill_switch_activated"
                and e.details["scope"] == "global"]


def test_against_the_remote_api_too(store):
    run = _run(store)
    server = serve_in_thread(create_app(store, "acme", TOKENS))
    try:
        remote = RemoteKillSwitch(server.url, token="lead")
        found = {f.check_id: f for f in kill_switch_test(PLAN, remote, "somchai", store, run.id)}
        assert all(f.status in ("pass", "warn") for f in found.values()), found
        assert _states(EmbeddedKillSwitch(store)) == {"global": False, "connection": False}
    finally:
        server.stop()


def test_a_deactivation_that_fails_is_a_failed_row_naming_the_switch(store):
    """A backend whose deactivation is refused (the API lost its token half-way): the row fails and
    says which switch is left on, so the team turns it off by hand."""
    run = _run(store)
    real = EmbeddedKillSwitch(store)

    class RefusesOff:
        source = "embedded"

        def read(self, tenant, conn):
            return real.read(tenant, conn)

        def set(self, tenant, scope, active, actor, reason="", connection_id=""):
            if not active and scope == "global":
                raise RuntimeError("kill-switch API refused (403): token expired")
            real.set(tenant, scope, active, actor, reason, connection_id)

    found = {f.check_id: f for f in kill_switch_test(PLAN, RefusesOff(), "somchai", store, run.id)}
    assert found["ks.global_deactivate"].status == "fail"
    assert "global ACTIVE (was off)" in found["ks.global_deactivate"].detail
    assert store.audit_entries("acme", run.id, "kill_switch_test")[0].details["after"]["global"] is True


@pytest.mark.parametrize("answered,reads,status", [
    (10, 10, "pass"), (1000, 1000, "pass"), (9990, 10000, "warn"), (9995, 10000, "pass"),
    (991, 1000, "warn"), (99, 100, "fail"), (9, 10, "fail")])
def test_availability_lines_are_runbook_4_4(answered, reads, status):
    assert availability_finding(answered, reads).status == status


def test_availability_is_a_profile_metric_with_the_runbook_lines():
    rule = next(r for r in DEFAULT_RULES if r.key == "killswitch_availability")
    assert (rule.warning, rule.critical, rule.lower_is_worse, rule.stop_at_critical) == (99.9, 99, True, True)
    assert evaluate_band(rule, 99.95).level == "ok"
    assert evaluate_band(rule, 99.9).level == "warning"  # at the line is in the band
    assert evaluate_band(rule, 99.0).level == "critical"


def test_the_source_samples_availability_over_its_reads(store):
    backend = EmbeddedKillSwitch(store)
    source = KillSwitchSource(backend, "acme", "orders-primary")
    for _ in range(3):
        samples = {s.metric: s for s in source.collect()}
    assert samples["killswitch_availability"].value == 100.0 and samples["killswitch_availability"].n == 3
    source.backend = RemoteKillSwitch("http://127.0.0.1:9", timeout=0.5)  # nothing listens: fail-closed
    samples = {s.metric: s for s in source.collect()}
    assert samples["killswitch_available"].value == 0.0
    assert samples["killswitch_availability"].value == pytest.approx(75.0)
    assert samples["killswitch_availability"].how == "3/4 reads answered"
