"""The war room as the runbook staffs it (docs/product.md#the-war-room, docs/rollback.md#the-eta):
people with phone, handle and backup; the Developer among the required personnel, a missing role
blocking the sign-off by name; the dashboard, chat and war-room links; the escalation timings; the
rollback's ETA from the index's size and the measured DROP / IGNORED timings (on the sandbox)."""

from __future__ import annotations

import pytest

from engine.adapters.store import ExecutionRun, Store
from engine.domain.plan import PlanError, parse_plan
from engine.domain.rollback_eta import DROP_S_PER_GB, eta_for_run, rollback_eta
from engine.flows.runbook import load_view, precheck_missing, sign_off
from engine.views import warroom
from engine.views.report import announce_rollback_initiated, announce_start, report_facts
from tests.plans import ACME

STAFF = """
[[people]]
name = "Somchai"
role = "canary_lead"
unix_user = "somchai"
phone = "+66 81 234 5678"
handle = "@somchai"
backup = "Pim"
[[people]]
name = "Nok"
role = "dba"
unix_user = "nok"
handle = "@nok"
[[people]]
name = "Arun"
role = "sre"
unix_user = "arun"
contact = "arun@example.com"
"""
DEV = """
[[people]]
name = "Dao"
role = "developer"
unix_user = "dao"
phone = "+66 89 000 1111"
"""
ROOM = """
[war_room]
dashboard = "https://grafana.example/d/canary"
chat = "#canary-executor-v1"
room = "https://meet.example/canary"
pager = "PagerDuty: db-oncall"
"""


def _run(store: Store) -> ExecutionRun:
    return store.create_run(ExecutionRun(
        tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None]]), "somchai")


def test_the_plan_carries_phones_handles_backups_and_the_war_room():
    plan = parse_plan(ACME + STAFF + DEV + ROOM)
    lead = plan.people[0]
    assert (lead.phone, lead.handle, lead.backup, lead.reach) == ("+66 81 234 5678", "@somchai", "Pim",
                                                                  "@somchai, +66 81 234 5678")
    assert plan.war_room.chat == "#canary-executor-v1" and plan.war_room.pager == "PagerDuty: db-oncall"
    assert plan.unstaffed() == []
    rows = {r.role: r for r in warroom.people_rows(plan)}
    assert (rows["Developer"].name, rows["Developer"].phone) == ("Dao", "+66 89 000 1111")
    assert rows["SRE"].handle == "arun@example.com"  # an older plan's free-text contact still shows
    assert dict(warroom.links(plan))["War room"] == "https://meet.example/canary"
    esc = {e.level: e for e in warroom.escalation_rows(plan)}
    assert esc["L1"].who == "Canary Lead @somchai" and esc["L1"].response == "5 minutes"
    assert esc["L2"].who == "Canary Lead @somchai + DBA @nok" and esc["L2"].response == "2 minutes"
    assert esc["L3"].response == esc["L4"].response == "Immediate"


def test_an_older_plan_loads_and_says_which_required_role_is_missing():
    plan = parse_plan(ACME + STAFF)  # no developer, no [war_room]: as plans were written before
    assert plan.unstaffed() == ["developer"]
    assert [r.name for r in warroom.people_rows(plan) if r.role == "Developer"] == [warroom.MISSING]
    assert dict(warroom.links(plan))["Chat"] == "not in the plan ([war_room])"


@pytest.mark.parametrize("extra,message", [
    ('phone = "call me"', "'people[0].phone' must be a phone number"),
    ('handle = "@som chai"', "'people[0].handle' must be a chat handle without spaces"),
    ('pager = "x"', "unknown key 'people[0].pager'"),
])
def test_bad_contact_fields_get_one_message_each(extra, message):
    with pytest.raises(PlanError) as err:
        parse_plan(ACME + f'[[people]]\nname = "S"\nrole = "dba"\n{extra}\n')
    assert any(message in p for p in err.value.problems), err.value.problems


def test_an_unknown_war_room_key_names_the_allowed_ones():
    with pytest.raises(PlanError) as err:
        parse_plan(ACME + '[war_room]\nslack = "#x"\n')
    assert "unknown key 'war_room.slack': allowed are chat, dashboard, pager, room" in err.value.problems


def test_a_missing_developer_blocks_the_sign_off_by_name_and_is_audited(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    plan = parse_plan(ACME + STAFF)
    run = _run(store)
    ok, message = sign_off(store, plan, run.id, "somchai@10.0.0.5", {"canary_lead"}, store.now())
    assert not ok and "the plan names no Developer (required personnel, runbook 2.5.1)" in message
    [refused] = store.audit_entries("acme", run.id, "sign_off_refused")
    assert refused.details["roles"] == ["developer"]
    assert not store.approvals("acme", run.id, "signoff")
    view = load_view(store, "acme", run.id, unstaffed=plan.unstaffed())
    assert any("the plan names no Developer" in m.what and 'role = "developer"' in m.who
               for m in precheck_missing(view, store.now()))

    staffed = parse_plan(ACME + STAFF + DEV)
    ok, message = sign_off(store, staffed, run.id, "somchai@10.0.0.5", {"canary_lead"}, store.now())
    assert ok and message == "signed off as canary lead by somchai@10.0.0.5"
    assert [a.role for a in store.approvals("acme", run.id, "signoff")] == ["canary_lead"]


def test_the_eta_is_computed_from_the_size_and_the_timings():
    eta = rollback_eta(2048.0, 40.0, 10.0, ignore_available=True, lock_wait_timeout_s=5, attempts=5, backoff_s=0.5)
    assert eta.expected_s == pytest.approx(0.010 + 0.040 + 2 * DROP_S_PER_GB)
    assert eta.worst_s == pytest.approx(eta.expected_s + 5 * 5 + 0.5 + 1 + 2 + 4)
    assert "DROP 40 ms measured on the scratch copy" in eta.text and "IGNORED 10 ms measured" in eta.text
    assert "index 2,048.0 MB" in eta.text and eta.short() == f"~{eta.expected_s:.1f} s (at worst 37 s)"
    guess = rollback_eta(None, None, None, ignore_available=False, lock_wait_timeout_s=2, attempts=1, backoff_s=0)
    assert "assumed (scratch test not run)" in guess.text and "index size not recorded" in guess.text
    assert guess.expected_s == pytest.approx(0.5)


def test_the_start_and_rollback_announcements_use_the_plan_and_the_eta(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    plan = parse_plan(ACME + STAFF + DEV + ROOM)
    run = _run(store)
    store.update_run("acme", run.id, index_created_by_run=True)
    store.audit("acme", "w", "index_added", run.id, {"index_mb": 512.0})
    store.audit("acme", "nok", "rollback_timings", run.id, {"drop_ms": 30.0, "ignore_ms": 8.0})
    facts = report_facts(store, plan, run.id)
    start = announce_start(facts)
    assert "📊 Monitoring Dashboard: https://grafana.example/d/canary" in start
    assert "📞 War Room: https://meet.example/canary" in start
    assert "Developer Dao (+66 89 000 1111)" in start
    text = announce_rollback_initiated(facts)
    assert "⏰ ETA: ~1.0 s (at worst" in text and "—" not in text.split("ETA:")[1].splitlines()[0]
    assert eta_for_run(store, plan, run.id).text.startswith("~1.0 s (DROP 30 ms measured")


@pytest.mark.mariadb
def test_on_the_sandbox_the_scratch_test_times_the_rungs_and_the_alter_records_the_index_size(lab, tmp_path):
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.adapters.target import Target
    from engine.flows.executor import DigestObserver, Executor
    from engine.flows.prechecks import scratch_rollback_test

    db = lab.database("cc_warroom")
    lab.load_orders(db, 20_000)
    plan = lab.plan(db, "idx_warroom", ["customer_id", "created_at"])
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    target = Target(plan.connection)
    ex = Executor(plan, store, EmbeddedKillSwitch(store), target, "tester", "w", observer=DigestObserver(target, 0, 0))
    run = ex.create_run()
    found = scratch_rollback_test(plan, target, run.id, store, "nok")
    assert found.status == "pass", found.detail
    [timed] = store.audit_entries(plan.tenant, run.id, "rollback_timings")
    assert timed.details["drop_ms"] > 0 and timed.details["ignore_ms"] > 0  # MariaDB ≥ 10.6 has IGNORED
    assert "DROP" in found.detail and "IGNORE" in found.detail
    out = ex.execute(run.id)
    assert out.status == "completed", out.message
    [added] = store.audit_entries(plan.tenant, run.id, "index_added")
    assert added.details["index_mb"] >= 0 and "table_index_mb" in added.details
    eta = eta_for_run(store, plan, run.id)
    assert "measured on the scratch copy" in eta.text and "IGNORED" in eta.text and "MB" in eta.text
    assert 0 < eta.expected_s < eta.worst_s
