"""The manual rollback (runbook 6, docs/rollback.md): the approvals matrix (pure), the decision and the
approvals on a real SQLite store, the whole flow against the sandbox MariaDB (decide → approve →
refused before complete → rung 1 IGNORED → undo → rung 2 DROP → rolled_back), an index that is not
the run's, a table changed since the rollback point; and the Rollback screen under Pilot and as SVG
snapshots. No mock of the database anywhere."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from plans import ACME, people
from textual.app import App
from textual.widgets import DataTable, Input, RadioSet, Static
from waits import steady, until

from engine.adapters.store import ExecutionRun, RollbackRecord, Store
from engine.adapters.target import Target
from engine.domain.clock import FrozenClock
from engine.domain.plan import Person, parse_plan
from engine.domain.roles import role_words
from engine.domain.rollback_eta import rollback_eta
from engine.domain.rollback_rules import (
    TRIGGERS,
    ApprovalState,
    FlowOutcome,
    Inspection,
    approval_state,
    check_approval,
    check_decision,
    diff_against_point,
    suggest_trigger,
)
from engine.flows.rollback_flow import approve_rollback, decide_rollback, rollback_candidate
from engine.flows.rollback_rungs import execute_drop, execute_ignore, inspect, undo_ignore
from engine.views.rollback import (
    AttemptRow,
    RecordRow,
    RollbackView,
    RungProgress,
    RungRow,
    Step,
    role_rows,
    rollback_view,
)
from screens.rollback import (
    RollbackApprove,
    RollbackDecide,
    RollbackExecute,
    RollbackRefresh,
    RollbackScreen,
)
from screens.rollback_dialogs import ApproveDialog, ConfirmRung, DecideDialog

PEOPLE = (
    Person("Somchai", ("canary_lead",), "somchai"),
    Person("Nok", ("dba",), "nok"),
    Person("Ploy", ("sre",), "ploy"),
    Person("Dev", ("developer",), "dev"),
)
T0 = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)

PLAN = ACME + people(("Somchai", "canary_lead", "somchai"), ("Nok", "dba", "nok"), ("Ploy", "sre", "ploy"),
                     ("Dev", "developer", "dev"))


# --- the matrix, pure ---------------------------------------------------------------------------

MATRIX = {  # runbook 6.3 (+ the kill switch after the ALTER): decider, approvals needed
    "latency": ("canary_lead", ("dba", "sre")),
    "lock_wait": ("dba", ("canary_lead",)),
    "replication_lag": ("dba", ("canary_lead", "sre")),
    "error_rate": ("sre", ("canary_lead", "developer")),
    "consensus": ("canary_lead", ("dba", "sre", "developer")),
    "kill_switch": ("dba", ("canary_lead",)),
}
ACTOR = {"canary_lead": "somchai", "dba": "nok", "sre": "ploy", "developer": "dev"}


def test_every_trigger_of_the_runbook_is_in_the_matrix():
    assert {t.key for t in TRIGGERS} == set(MATRIX)


@pytest.mark.parametrize("trigger", sorted(MATRIX))
def test_matrix_complete_only_when_every_required_role_approved(trigger):
    decider, needed = MATRIX[trigger]
    by = (decider, ACTOR[decider])
    state = approval_state(trigger, by, [])
    assert state.required == needed and state.missing == needed and not state.complete
    votes = []
    for n, role in enumerate(needed):
        assert check_approval(trigger, role, ACTOR[role], {role}, state) is None
        votes.append((role, ACTOR[role], "approve"))
        state = approval_state(trigger, by, votes)
        assert state.complete == (n == len(needed) - 1)
    assert state.missing == () and state.approver_of(needed[0]) == ACTOR[needed[0]]


@pytest.mark.parametrize("trigger", sorted(MATRIX))
def test_matrix_refuses_a_role_not_held_and_approving_twice(trigger):
    decider, needed = MATRIX[trigger]
    state = approval_state(trigger, (decider, ACTOR[decider]), [])
    role = needed[0]
    wrong = check_approval(trigger, role, "mallory", {"developer"} - {role}, state)
    assert wrong and "nobody approves for a role they do not hold" in wrong
    # One person holding two needed roles approves once, never for both.
    both = set(needed) | {"developer"}
    state = approval_state(trigger, (decider, ACTOR[decider]), [(role, "multi", "approve")])
    again = check_approval(trigger, role, "multi", both, state)
    assert again and "already approved" in again
    if len(needed) > 1:
        twice = check_approval(trigger, needed[1], "multi", both, state)
        assert twice and "nobody approves twice" in twice
    # A role already given by someone else is not given again.
    given = check_approval(trigger, role, "other", {role}, state)
    assert given and "already given by multi" in given


@pytest.mark.parametrize("trigger", sorted(MATRIX))
def test_matrix_refuses_a_role_that_is_not_needed_and_approvals_before_a_decision(trigger):
    decider, needed = MATRIX[trigger]
    spare = next((r for r in ACTOR if r not in needed and r != decider), None)
    state = approval_state(trigger, (decider, ACTOR[decider]), [])
    if spare:
        msg = check_approval(trigger, spare, ACTOR[spare], {spare}, state)
        assert msg and "not needed" in msg
    own = check_approval(trigger, decider, ACTOR[decider], {decider}, state)
    assert own and "decided this rollback" in own
    before = check_approval(trigger, needed[0], ACTOR[needed[0]], {needed[0]},
                            approval_state(trigger, None, []))
    assert before and "decides first" in before


@pytest.mark.parametrize("trigger", sorted(MATRIX))
def test_only_the_deciding_role_decides(trigger):
    decider, _needed = MATRIX[trigger]
    assert check_decision(trigger, decider, ACTOR[decider], {decider}, None) is None
    other = next(r for r in ACTOR if r not in TRIGGERS[[t.key for t in TRIGGERS].index(trigger)].deciders)
    msg = check_decision(trigger, other, ACTOR[other], {other}, None)
    assert msg and "is decided by the" in msg
    msg = check_decision(trigger, decider, "mallory", {"developer"} - {decider}, None)
    assert msg and f"not {role_words([decider])}" in msg
    msg = check_decision(trigger, decider, ACTOR[decider], {decider}, (decider, "someone"))
    assert msg and "already decided by someone" in msg


def test_the_requester_cannot_be_the_only_approver():
    # Lock wait: the DBA decides, the lead approves. Anna holds both roles: she may not do both.
    state = approval_state("lock_wait", ("dba", "anna"), [])
    msg = check_approval("lock_wait", "canary_lead", "anna", {"dba", "canary_lead"}, state)
    assert msg and "requester cannot be the only approver" in msg
    assert not approval_state("lock_wait", ("dba", "anna"), [("canary_lead", "anna", "approve")]).complete
    # Latency: the lead decides, DBA + SRE approve; the lead who is also a DBA may give one of the
    # two, since another person must still give the other.
    state = approval_state("latency", ("canary_lead", "anna"), [])
    assert check_approval("latency", "dba", "anna", {"canary_lead", "dba"}, state) is None
    state = approval_state("latency", ("canary_lead", "anna"), [("dba", "anna", "approve")])
    assert not state.complete and state.missing == ("sre",)
    assert approval_state("latency", ("canary_lead", "anna"),
                          [("dba", "anna", "approve"), ("sre", "ploy", "approve")]).complete


def test_kill_switch_either_lead_or_dba_decides_and_the_other_approves():
    assert approval_state("kill_switch", ("canary_lead", "somchai"), []).required == ("dba",)
    assert approval_state("kill_switch", ("dba", "nok"), []).required == ("canary_lead",)
    assert check_decision("kill_switch", "sre", "ploy", {"sre"}, None)


def test_a_refusal_blocks_until_the_same_person_approves():
    by = ("dba", "nok")
    state = approval_state("lock_wait", by, [("canary_lead", "somchai", "refuse")])
    assert state.refused == (("canary_lead", "somchai"),) and not state.complete
    assert "already refused" in check_approval("lock_wait", "canary_lead", "somchai", {"canary_lead"}, state,
                                               "refuse")
    assert check_approval("lock_wait", "canary_lead", "somchai", {"canary_lead"}, state) is None
    state = approval_state("lock_wait", by, [("canary_lead", "somchai", "refuse"),
                                             ("canary_lead", "somchai", "approve")])
    assert state.complete and not state.refused


def test_role_rows_show_who_decides_and_who_approves():
    plan = parse_plan(PLAN, "canary.toml")
    rows = {r.role: r for r in role_rows(plan, "consensus", None)}
    assert rows["canary_lead"].part == "records"
    assert {rows[r].status for r in ("dba", "sre", "developer")} == {"pending"}
    rows = {r.role: r for r in role_rows(plan, "kill_switch", None)}
    assert rows["canary_lead"].part == rows["dba"].part == "decides or approves"
    state = approval_state("lock_wait", ("dba", "nok"), [("canary_lead", "somchai", "approve")])
    rows = {r.role: r for r in role_rows(plan, "lock_wait", state)}
    assert (rows["dba"].status, rows["dba"].actor) == ("✓ decided", "nok")
    assert (rows["canary_lead"].status, rows["canary_lead"].actor) == ("✓ approved", "somchai")
    assert rows["sre"].status == "not needed" and rows["sre"].people == ("Ploy",)


def test_suggested_trigger_from_the_executor_s_reason():
    assert suggest_trigger("kill switch after the ALTER: ACTIVE: global") == "kill_switch"
    assert suggest_trigger("FAIL: replication lag 75 s ≥ 60 s") == "replication_lag"
    assert suggest_trigger("FAIL: latency p50 +62 %") == "latency"
    assert suggest_trigger("something else") is None


CREATE_BEFORE = """CREATE TABLE `orders` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `customer_id` int(11) NOT NULL,
  `note` varchar(64) DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=5001 DEFAULT CHARSET=utf8mb4"""


def test_diff_ignores_the_run_s_index_and_auto_increment_and_names_every_change():
    idx_before = [{"name": "PRIMARY", "columns": [["id", None]], "unique": True}]
    ours = {"name": "idx_run", "columns": [["customer_id", None]], "unique": False}
    same = CREATE_BEFORE.replace("PRIMARY KEY (`id`)", "PRIMARY KEY (`id`),\n  KEY `idx_run` (`customer_id`)") \
        .replace("AUTO_INCREMENT=5001", "AUTO_INCREMENT=9999")
    assert diff_against_point(CREATE_BEFORE, idx_before, same, [*idx_before, ours], "idx_run") == ()
    changed = (CREATE_BEFORE.replace("`note` varchar(64)", "`note` varchar(200)")
               .replace("  PRIMARY KEY", "  `extra` int(11) DEFAULT NULL,\n  PRIMARY KEY")
               .replace("ENGINE=InnoDB", "ENGINE=InnoDB ROW_FORMAT=COMPRESSED"))
    other = {"name": "idx_x", "columns": [["note", 16]], "unique": False}
    found = diff_against_point(CREATE_BEFORE, idx_before, changed, [*idx_before, ours, other], "idx_run")
    assert "index idx_x added since the rollback point (note(16))" in found
    assert "column note changed: varchar(64) DEFAULT NULL → varchar(200) DEFAULT NULL" in found
    assert "column extra added since the rollback point: int(11) DEFAULT NULL" in found
    assert any(f.startswith("table options changed") and "COMPRESSED" in f for f in found)
    gone = diff_against_point(CREATE_BEFORE, [*idx_before, other], CREATE_BEFORE, idx_before, "idx_run")
    assert gone == ("index idx_x dropped since the rollback point",)


# --- on a real SQLite store ---------------------------------------------------------------------


def _store_run(tmp_path, status="completed", created=True):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=FrozenClock(T0))
    plan = parse_plan(PLAN, "canary.toml")
    run = store.create_run(ExecutionRun(
        tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None], ["created_at", None]]), "test")
    store.transition("acme", run.id, "running", "test")
    store.update_run("acme", run.id, index_created_by_run=created)
    if status == "failed":
        store.transition("acme", run.id, "failed", "test", fail_reason="verification_failed")
    else:
        store.transition("acme", run.id, status, "test")
    return plan, store, store.get_run("acme", run.id)


def _actions(store, run):
    return [e.action for e in store.audit_entries(run.tenant_id, run.id)]


def test_decision_and_approvals_are_recorded_and_refusals_audited(tmp_path):
    plan, store, run = _store_run(tmp_path)
    out = decide_rollback(store, plan, run, "replication_lag", "somchai@10.0.0.5", {"canary_lead"}, "lag 75 s")
    assert out.status == "refused" and "names as DBA decides" in out.message and "the DBA (Nok)" in out.message
    out = decide_rollback(store, plan, run, "replication_lag", "nok@10.0.0.9", {"dba"}, "  ")
    assert out.status == "refused" and "reason is required" in out.message
    out = decide_rollback(store, plan, run, "replication_lag", "nok@10.0.0.9", {"dba"}, "lag 75 s for 3 min",
                          {"replication_lag_s": 75.0, "latency_p50_change_pct": 4.2})
    assert out.ok, out.message
    [record] = store.rollback_records("acme", run.id)
    assert (record.rollback_status, record.trigger_reason) == ("pending", "lag 75 s for 3 min")
    assert record.rollback_details["metrics_at_decision"]["replication_lag_s"] == 75.0
    assert record.rollback_details["trigger"] == "replication_lag"
    [decision] = store.approvals("acme", run.id, "rollback_decision")
    assert (decision.role, decision.actor) == ("dba", "nok@10.0.0.9")
    assert decide_rollback(store, plan, run, "replication_lag", "nok@10.0.0.9", {"dba"}, "again").status == "refused"

    refused = approve_rollback(store, plan, run, "sre", "somchai@10.0.0.5", {"canary_lead"})
    assert refused.status == "refused" and "do not hold" in refused.message
    assert approve_rollback(store, plan, run, "canary_lead", "somchai@10.0.0.5", {"canary_lead"}, "ok").ok
    twice = approve_rollback(store, plan, run, "canary_lead", "somchai@10.0.0.5", {"canary_lead"})
    assert twice.status == "refused" and "already approved" in twice.message
    view = rollback_view(store, plan, run.id)
    assert view.status.startswith("AWAITING APPROVALS") and "the SRE (Ploy)" in view.status
    assert view.state is not None and view.state.missing == ("sre",)
    last = approve_rollback(store, plan, run, "sre", "ploy@10.0.0.7", {"sre"})
    assert last.ok and "all approvals are in" in last.message
    view = rollback_view(store, plan, run.id)
    assert view.state.complete and view.status.startswith("APPROVED")
    assert view.steps[0].done and not view.steps[1].done
    assert dict(view.metrics)["replication_lag_s"] == "75"
    actions = _actions(store, run)
    assert actions.count("rollback_decision_refused") == 3
    assert actions.count("rollback_approval_refused") == 2
    assert {"rollback_decision_rollback", "rollback_decided", "rollback_approve"} <= set(actions)


def test_execution_is_refused_until_every_approval_is_in(tmp_path):
    plan, store, run = _store_run(tmp_path)
    target = Target(plan.connection)  # never reached: every refusal here comes before any I/O
    out = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert out.status == "refused" and "decide first" in out.message
    decide_rollback(store, plan, run, "latency", "somchai", {"canary_lead"}, "p50 +62 % for 6 min")
    out = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert out.status == "refused" and "still must approve: the DBA (Nok), the SRE (Ploy)" in out.message
    approve_rollback(store, plan, run, "dba", "nok", {"dba"})
    approve_rollback(store, plan, run, "sre", "ploy", {"sre"}, "the sale starts in 5 min", decision="refuse")
    out = execute_ignore(store, plan, target, run, "nok", {"dba"})
    assert out.status == "refused" and "refused by ploy (SRE)" in out.message
    assert rollback_view(store, plan, run.id).status.startswith("BLOCKED — refused by ploy (SRE): the sale starts")
    approve_rollback(store, plan, run, "sre", "ploy", {"sre"})
    out = execute_drop(store, plan, target, run, "ploy", {"sre"})
    assert out.status == "refused" and "DBA's step" in out.message and "Nok" in out.message
    refusals = store.audit_entries("acme", run.id, "rollback_execution_refused")
    assert len(refusals) == 4 and all(e.details["reason"] for e in refusals)


def test_the_decision_reuses_the_record_the_executor_prepared(tmp_path):
    plan, store, run = _store_run(tmp_path, status="cancelled")
    store.save_rollback_record(RollbackRecord(
        tenant_id="acme", execution_run_id=run.id, connection_profile_id="orders-primary",
        rollback_status="pending", rollback_type="manual", trigger_reason="kill switch after the ALTER: ACTIVE",
        rollback_sql="ALTER … DROP INDEX", rollback_details={"index_left_in_place": True}), "executor", "rollback_prepared")
    view = rollback_view(store, plan, run.id)
    assert view.suggested_trigger == "kill_switch" and view.status.startswith("AWAITING DECISION")
    out = decide_rollback(store, plan, run, "kill_switch", "somchai", {"canary_lead"}, "switch pulled at T+20")
    assert out.ok
    [record] = store.rollback_records("acme", run.id)
    assert record.rollback_status == "pending" and record.rollback_details["index_left_in_place"]
    assert record.rollback_details["prepared_reason"].startswith("kill switch")
    assert rollback_view(store, plan, run.id).state.required == ("dba",)


def test_nothing_to_decide_for_a_run_that_did_not_create_its_index(tmp_path):
    plan, store, run = _store_run(tmp_path, status="failed", created=False)
    out = decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s")
    assert out.status == "refused" and "TC-05" in out.message
    assert rollback_candidate(store, plan) is None
    assert rollback_view(store, plan, run.id).status.startswith("NOTHING TO ROLL BACK")


# --- against the sandbox MariaDB ----------------------------------------------------------------


def _real_run(lab, name, columns=("customer_id", "created_at")):
    """A run whose ADD INDEX really happened, with its rollback point (no workload: INCONCLUSIVE,
    the index kept)."""
    db = lab.database(name)
    lab.load_orders(db, 3000)
    plan = replace(lab.plan(db, f"idx_{name}", list(columns)), people=PEOPLE)
    store = lab.store(name)
    ex = lab.executor(plan, store)
    run = ex.create_run()
    out = ex.execute(run.id)
    assert out.status == "completed", out.message
    assert store.rollback_point(plan.tenant, run.id) is not None
    return plan, store, store.get_run(plan.tenant, run.id), Target(plan.connection)


def _ignored(lab, plan):
    with lab.admin() as c, c.cursor() as cur:
        cur.execute("SELECT IGNORED AS ignored FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_NAME = %s AND INDEX_NAME = %s", (plan.schema, plan.change.table, plan.change.index))
        return {r["ignored"] for r in cur.fetchall()}


def _admin_sql(lab, db, statement):
    with lab.admin(db) as c, c.cursor() as cur:
        cur.execute(statement)


@pytest.mark.mariadb
def test_the_whole_manual_rollback_on_the_sandbox(lab):
    plan, store, run, target = _real_run(lab, "rbflow_full")
    assert rollback_candidate(store, plan).id == run.id
    insp = inspect(target, run, store.rollback_point(plan.tenant, run.id))
    assert insp.index_exists and insp.ours and insp.ignored is False
    assert insp.conflicts == () and insp.blockers == ()

    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s on orders",
                           {"lock_wait_s": 7.1}).ok
    early = execute_ignore(store, plan, target, run, "nok", {"dba"})
    assert early.status == "refused" and "the canary lead (Somchai)" in early.message
    assert execute_drop(store, plan, target, run, "nok", {"dba"}).status == "refused"
    assert lab.index_exists(plan), "nothing may be sent before the approvals are complete"
    assert approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}).ok

    assert execute_ignore(store, plan, target, run, "somchai", {"canary_lead"}).status == "refused"
    rung1 = execute_ignore(store, plan, target, run, "nok", {"dba"})
    assert rung1.ok, rung1.message
    assert _ignored(lab, plan) == {"YES"}
    assert inspect(target, run, store.rollback_point(plan.tenant, run.id)).ignored is True
    view = rollback_view(store, plan, run.id)
    assert view.ignored and view.status.startswith("RUNG 1 APPLIED")
    assert execute_ignore(store, plan, target, run, "nok", {"dba"}).status == "refused"  # already applied

    assert undo_ignore(store, plan, target, run, "nok", {"dba"}).ok
    assert _ignored(lab, plan) == {"NO"}
    assert execute_ignore(store, plan, target, run, "nok", {"dba"}).ok
    assert _ignored(lab, plan) == {"YES"}

    drop = execute_drop(store, plan, target, run, "nok", {"dba"}, clock=FrozenClock(T0))
    assert drop.ok, drop.message
    assert not lab.index_exists(plan)
    final = store.get_run(plan.tenant, run.id)
    assert (final.status, final.fail_reason) == ("rolled_back", "manual_rollback")
    records = {r.id: r for r in store.rollback_records(plan.tenant, run.id)}
    full = records[drop.record_id]
    assert full.rollback_status == "completed" and full.rollback_type == "full"
    assert full.rollback_details["verified_absent"] is True
    assert full.rollback_details["observation"]["until"] == "2026-11-22T16:30:00+00:00"
    assert full.rollback_details["metrics_at_decision"] == {"lock_wait_s": 7.1}
    assert [a.get("sent") for a in full.attempts] == [True]
    kinds = sorted((r.rollback_type, r.rollback_status) for r in records.values())
    assert kinds == [("full", "completed"), ("manual", "completed"), ("partial", "completed"),
                     ("partial", "completed")]
    view = rollback_view(store, plan, run.id)
    assert view.status.startswith("ROLLED BACK") and view.observation_until == datetime(2026, 11, 22, 16, 30,
                                                                                         tzinfo=UTC)
    assert [s.done for s in view.steps] == [True, True, True, False, False]
    assert not view.ignored and [r.state for r in view.ladder] == ["superseded by the DROP", "done"]

    again = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert again.status == "refused" and "already rolled back" in again.message
    actions = _actions(store, run)
    for step in ("rollback_decision_rollback", "rollback_decided", "rollback_execution_refused",
                 "rollback_approve", "rollback_ignore_started", "rollback_ignore_completed",
                 "rollback_ignore_undone", "rollback_started", "rollback_attempt", "rollback_completed",
                 "status_change", "rollback_verified", "rollback_decision_completed",
                 "rollback_ignore_superseded"):
        assert step in actions, step
    assert actions.index("rollback_decided") < actions.index("rollback_approve") < \
        actions.index("rollback_ignore_completed") < actions.index("rollback_completed")


@pytest.mark.mariadb
def test_an_index_that_is_not_the_run_s_is_never_dropped(lab):
    plan, store, run, target = _real_run(lab, "rbflow_notours")
    # Someone replaced the run's index with another of the same name.
    _admin_sql(lab, plan.schema, f"ALTER TABLE orders DROP INDEX {plan.change.index}")
    _admin_sql(lab, plan.schema, f"ALTER TABLE orders ADD INDEX {plan.change.index} (status)")
    insp = inspect(target, run, store.rollback_point(plan.tenant, run.id))
    assert insp.index_exists and not insp.ours
    assert any("someone replaced it" in b for b in insp.blockers)
    decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 6 s")
    approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"})
    out = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert out.status == "refused" and "not this run's to drop" in out.message
    assert execute_ignore(store, plan, target, run, "nok", {"dba"}).status == "refused"
    assert lab.index_exists(plan)
    assert store.get_run(plan.tenant, run.id).status == "completed"
    assert store.audit_entries(plan.tenant, run.id, "rollback_execution_refused")


@pytest.mark.mariadb
def test_a_run_whose_index_already_existed_cannot_roll_it_back(lab):
    db = lab.database("rbflow_tc05")
    lab.load_orders(db, 500)
    plan = replace(lab.plan(db, "idx_rbflow_tc05", ["customer_id"]), people=PEOPLE)
    _admin_sql(lab, db, "ALTER TABLE orders ADD INDEX idx_rbflow_tc05 (customer_id)")
    store = lab.store("rbflow_tc05")
    ex = lab.executor(plan, store)
    run = ex.create_run()
    assert ex.execute(run.id).status == "failed"
    run = store.get_run(plan.tenant, run.id)
    out = decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait")
    assert out.status == "refused" and "TC-05" in out.message
    insp = inspect(Target(plan.connection), run, store.rollback_point(plan.tenant, run.id))
    assert not insp.ours and any("TC-05" in b for b in insp.blockers)
    assert lab.index_exists(plan)


@pytest.mark.mariadb
def test_a_table_changed_since_the_rollback_point_is_shown_and_must_be_acknowledged(lab):
    plan, store, run, target = _real_run(lab, "rbflow_conflict")
    _admin_sql(lab, plan.schema, "ALTER TABLE orders ADD INDEX idx_other (total)")
    _admin_sql(lab, plan.schema, "ALTER TABLE orders MODIFY note VARCHAR(128)")
    insp = inspect(target, run, store.rollback_point(plan.tenant, run.id))
    assert insp.ours and not insp.blockers
    assert "index idx_other added since the rollback point (total)" in insp.conflicts
    assert any(c.startswith("column note changed: varchar(64)") and "varchar(128)" in c for c in insp.conflicts)
    decide_rollback(store, plan, run, "replication_lag", "nok", {"dba"}, "lag 90 s")
    approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"})
    approve_rollback(store, plan, run, "sre", "ploy", {"sre"})
    out = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert out.status == "refused" and "acknowledge" in out.message and "idx_other" in out.message
    assert lab.index_exists(plan)
    out = execute_drop(store, plan, target, run, "nok", {"dba"}, acknowledged=insp.conflicts)
    assert out.ok, out.message
    assert not lab.index_exists(plan)
    [ack] = store.audit_entries(plan.tenant, run.id, "rollback_conflicts_acknowledged")
    assert ack.details["conflicts"] == list(insp.conflicts)
    with Target(plan.connection).session("check") as s:
        assert s.index_exists(plan.schema, "orders", "idx_other"), "only the run's index is dropped"


# --- the screen ----------------------------------------------------------------------------------

DROP_SQL = ("ALTER /* canary-console:rollback */ TABLE `shop`.`orders` DROP INDEX "
            "`idx_orders_customer_created`, ALGORITHM=INPLACE, LOCK=NONE")
LADDER = (
    RungRow("ignore", "1 · ignore (instant, reversible)", True,
            "ALTER /* canary-console:rollback */ TABLE `shop`.`orders` ALTER INDEX `idx_orders_customer_created` IGNORED",
            "SELECT INDEX_NAME, IGNORED FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop' AND "
            "TABLE_NAME = 'orders' AND INDEX_NAME = 'idx_orders_customer_created'",
            "ALTER /* canary-console:rollback */ TABLE `shop`.`orders` ALTER INDEX `idx_orders_customer_created` "
            "NOT IGNORED"),
    RungRow("drop", "2 · DROP INDEX (not reversible)", False, DROP_SQL,
            "SHOW INDEX FROM `shop`.`orders` WHERE Key_name = 'idx_orders_customer_created'", state="not run"),
)
RUN_ID = "3f2a1b4c-0000-4000-8000-000000000001"


def awaiting_view() -> RollbackView:
    plan = parse_plan(PLAN, "canary.toml")
    at = datetime(2026, 11, 22, 16, 2, 10, tzinfo=UTC)
    state = approval_state("replication_lag", ("dba", "nok@10.0.0.9"),
                           [("canary_lead", "somchai@10.0.0.5", "approve", "agreed on the bridge", at)])
    # R1's ETA as engine.domain.rollback_eta words it (the scratch test measured both rungs; a 512 MB index)
    eta = rollback_eta(512.0, 31.0, 9.0, ignore_available=True, lock_wait_timeout_s=5, attempts=5, backoff_s=0.5)
    return RollbackView(
        eta=eta.text,
        run_id=RUN_ID, table="shop.orders", index="idx_orders_customer_created", columns="customer_id, created_at",
        run_status="failed", fail_reason="verification_failed", index_created_by_run=True,
        as_of=datetime(2026, 11, 22, 16, 3, tzinfo=UTC),
        status="AWAITING APPROVALS — still needed: sre (Ploy)", level="warning", trigger="replication_lag",
        decided_by=("dba", "nok@10.0.0.9"), decided_at=datetime(2026, 11, 22, 16, 1, 30, tzinfo=UTC),
        reason="replica lag 75 s and rising for 3 min", metrics=(("replication_lag_s", "75"),
                                                                 ("latency_p50_change_pct", "4.2")),
        state=state, roles=role_rows(plan, "replication_lag", state), ladder=LADDER,
        point_captured_at=datetime(2026, 11, 22, 15, 40, tzinfo=UTC),
        records=(RecordRow("r1", "decision", "pending", "manual", "replica lag 75 s and rising for 3 min",
                           None, None),),
        steps=(Step("R1", "decided", True, "replication_lag · nok@10.0.0.9 (DBA) 16:01"),
               Step("R2", "DROP + verify", False, "awaiting approvals"),
               Step("R3", "rolled_back", False, "run is failed"),
               Step("R4", "30-min observation", False, "after R3"),
               Step("R5", "announced", False, "after R4")),
        drop_sql=DROP_SQL)


AWAITING_INSPECTION = Inspection(
    datetime(2026, 11, 22, 16, 3, 5, tzinfo=UTC), "MariaDB 10.11.6", "mariadb", True,
    (("customer_id", None), ("created_at", None)), True, False,
    conflicts=("index idx_orders_status added since the rollback point (status)",))


def completed_view() -> RollbackView:
    v = awaiting_view()
    plan = parse_plan(PLAN, "canary.toml")
    at = datetime(2026, 11, 22, 16, 4, tzinfo=UTC)
    state = approval_state("replication_lag", ("dba", "nok@10.0.0.9"),
                           [*v.state.votes, ("sre", "ploy@10.0.0.7", "approve", "", at)])
    done = datetime(2026, 11, 22, 16, 6, 42, tzinfo=UTC)
    return replace(
        v, run_status="rolled_back", fail_reason="manual_rollback", level="ok",
        status="ROLLED BACK — index dropped; observing until 16:36 UTC (R4)", state=state,
        roles=role_rows(plan, "replication_lag", state),
        ladder=(replace(LADDER[0], state="superseded by the DROP"), replace(LADDER[1], state="done")),
        records=(
            RecordRow("r1", "decision", "completed", "manual", v.reason, None, done),
            RecordRow("r2", "ignore", "completed", "partial", v.reason, datetime(2026, 11, 22, 16, 4, 30, tzinfo=UTC),
                      datetime(2026, 11, 22, 16, 4, 31, tzinfo=UTC),
                      attempts=(AttemptRow(1, "16:04:30", "ignore", True, True),)),
            RecordRow("r3", "drop", "completed", "full", v.reason, datetime(2026, 11, 22, 16, 6, 40, tzinfo=UTC), done,
                      attempts=(AttemptRow(1, "16:06:40", "", True, False, "lost_connection", "(2013) Lost connection"),
                                AttemptRow(2, "16:06:41", "", False, False, note="index gone"))),
        ),
        steps=(Step("R1", "decided", True, "replication_lag · nok@10.0.0.9 (DBA) 16:01"),
               Step("R2", "DROP + verify", True, "16:06:42"),
               Step("R3", "rolled_back", True),
               Step("R4", "30-min observation", False, "until 16:36"),
               Step("R5", "announced", False, "after R4")),
        observation_until=datetime(2026, 11, 22, 16, 36, 42, tzinfo=UTC))


COMPLETED_INSPECTION = Inspection(datetime(2026, 11, 22, 16, 6, 50, tzinfo=UTC), "MariaDB 10.11.6", "mariadb",
                                  False, (), False, None)


class Host(App):
    """A tiny App hosting the screen, recording what it posts (the real App runs the engine)."""

    def __init__(self, roles=("dba",)):
        super().__init__()
        self.plan = parse_plan(PLAN, "canary.toml")
        self.roles = roles
        self.posted: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(RollbackScreen(self.plan, self.roles))

    def on_rollback_decide(self, m: RollbackDecide) -> None:
        self.posted.append(m)

    def on_rollback_approve(self, m: RollbackApprove) -> None:
        self.posted.append(m)

    def on_rollback_execute(self, m: RollbackExecute) -> None:
        self.posted.append(m)

    def on_rollback_refresh(self, m: RollbackRefresh) -> None:
        self.posted.append(m)


async def test_rollback_screen_keys_post_the_messages_the_app_handles():
    app = Host(roles=("dba",))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RollbackScreen)
        # Before any view: pick a trigger (t cycles; digits are the App's step keys) and decide.
        assert screen.selected == "lock_wait"
        await pilot.press("t", "t")
        assert screen.selected == "latency"
        await pilot.press("d")
        assert isinstance(app.screen, DecideDialog)
        await pilot.press("enter")  # no reason: refused by the dialog itself
        assert isinstance(app.screen, DecideDialog)
        await pilot.press(*"lock wait 7 s", "enter")
        await pilot.pause()
        assert app.posted[-1] == RollbackDecide("latency", "lock wait 7 s")

        screen.show(awaiting_view(), AWAITING_INSPECTION)
        await pilot.pause()
        assert screen.selected == "replication_lag" and screen.query_one("#triggers", RadioSet).disabled
        await pilot.press("t")
        assert screen.selected == "replication_lag", "a decided trigger is part of the record"
        table = screen.query_one("#approvals", DataTable)
        assert [str(table.get_row_at(i)[2]) for i in range(table.row_count)] == [
            "✓ approved", "✓ decided", "pending", "not needed"]
        assert "AWAITING APPROVALS" in str(screen.query_one("#status", Static).render())

        await pilot.press("a")
        assert isinstance(app.screen, ApproveDialog)
        app.screen.query_one("#note", Input).focus()  # the dialog opens on Cancel (tests/test_rollback_dialogs.py)
        await pilot.press(*"ok", "enter")
        await pilot.pause()
        assert app.posted[-1] == RollbackApprove("dba", "ok", "approve")

        # Rung 2: the statement repeated, the conflict acknowledged, the index name typed.
        await pilot.press("x")
        dialog = app.screen
        assert isinstance(dialog, ConfirmRung) and dialog.statement == DROP_SQL
        await pilot.press(*"idx_orders", "enter")
        assert isinstance(app.screen, ConfirmRung), "wrong name: still asking"
        dialog.query_one("#ack").value = True
        typed = dialog.query_one("#typed", Input)
        typed.value = "idx_orders_customer_created"
        typed.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.posted[-1] == RollbackExecute("drop", AWAITING_INSPECTION.conflicts)

        await pilot.press("i")
        assert isinstance(app.screen, ConfirmRung)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.posted[-1], RollbackExecute) and app.posted[-1].rung == "drop"  # cancelled: nothing
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.posted[-1], RollbackRefresh)


async def test_a_failed_rollback_shows_the_l4_escalation():
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        v = replace(completed_view(), run_status="failed", level="error", escalation="L4 — rollback failed: "
                    "(2013) Lost connection; the index is still there",
                    status="ROLLBACK FAILED — escalation L4")
        app.screen.show(v, None)
        await pilot.pause()
        banner = app.screen.query_one("#escalation", Static)
        assert banner.display and "L4" in str(banner.render())
        assert app.screen.query_one("#status", Static).has_class("-error")


def _snap_app(view, inspection):
    app = Host(roles=("dba",))

    async def run_before(pilot):
        assert await until(pilot, lambda: isinstance(app.screen, RollbackScreen))
        app.screen.show(view, inspection)
        assert await steady(pilot)  # the picture once it stops changing (tests/waits.py)
    return app, run_before


def test_rollback_screen_awaiting_approvals(snap_compare, term):
    app, run_before = _snap_app(awaiting_view(), AWAITING_INSPECTION)
    assert snap_compare(app, terminal_size=term, run_before=run_before)


def test_rollback_screen_after_a_completed_rollback(snap_compare, term):
    app, run_before = _snap_app(completed_view(), COMPLETED_INSPECTION)
    assert snap_compare(app, terminal_size=term, run_before=run_before)


RUNG = RungProgress(
    "drop", 14.0, thread_id=57, statement_s=12.0, stage="alter table (read PK and internal sort)", fraction=0.4,
    holders=({"thread_id": 42, "lock_type": "SHARED_READ", "lock_duration": "TRANSACTION", "time": 95,
              "info": "SELECT /* report */ SUM(total) FROM orders"},),
    waiters=({"thread_id": 57, "lock_type": "EXCLUSIVE", "lock_duration": "TRANSACTION", "time": 12,
              "info": "ALTER /* canary-console:rollback */ TABLE `shop`.`orders` DROP INDEX …"},
             {"thread_id": 61, "lock_type": "SHARED_WRITE", "lock_duration": "TRANSACTION", "time": 9,
              "info": "UPDATE orders SET status = 'paid' WHERE id = 1042"}))


def test_rollback_screen_while_a_rung_runs(snap_compare, term):
    """The rung's progress and the metadata-lock queue on the table, live (refreshed once a second)."""
    app, first = _snap_app(awaiting_view(), AWAITING_INSPECTION)

    async def run_before(pilot):
        await first(pilot)
        app.screen.show_rung(RUNG)
        assert await steady(pilot)
    assert snap_compare(app, terminal_size=term, run_before=run_before)


async def test_the_rung_panel_comes_and_goes():
    app = Host(roles=("dba",))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.screen.show(awaiting_view(), AWAITING_INSPECTION)
        live = app.screen.query_one("#live", Static)
        assert not live.display
        app.screen.show_rung(RUNG)
        await pilot.pause()
        text = str(live.render())
        assert live.display and "rung 2: DROP INDEX — running 14 s; server thread 57" in text and "40%" in text
        assert "1 hold, 2 wait (longest 12 s)" in text and "holds thread 42" in text and "waits thread 61" in text
        app.screen.show_rung(None)
        await pilot.pause()
        assert not live.display


def test_flow_outcome_ok():
    assert FlowOutcome("done", "x").ok and not FlowOutcome("refused", "x").ok
    assert isinstance(approval_state("lock_wait", None, []), ApprovalState)


def test_the_requester_is_one_person_from_any_session_or_the_api():
    """nok decided in one SSH session; nok approving from another session (or through the API,
    where the actor is the token's user) is still the requester alone — refused. Nor does one
    person approve twice from two sessions."""
    state = approval_state("lock_wait", ("dba", "nok@10.0.0.5"), [])
    for me in ("nok@10.0.0.9", "nok", "NOK@jump"):
        alone = check_approval("lock_wait", "canary_lead", me, {"canary_lead", "dba"}, state)
        assert alone and "only approver" in alone, me
    state = approval_state("replication_lag", ("dba", "nok@10.0.0.5"), [("canary_lead", "lek@10.0.0.7", "approve")])
    twice = check_approval("replication_lag", "sre", "lek", {"canary_lead", "sre"}, state)
    assert twice and "already approved" in twice
    assert check_approval("replication_lag", "sre", "tee@10.0.0.8", {"sre"}, state) is None


async def test_the_decision_step_s_trigger_and_metrics_are_preselected_and_recorded_by_the_decision():
    """screens/decision.py posts ``OpenRollback(metrics, trigger)``: the Rollback screen opens on that
    trigger, shows those metrics, and the decision (d) carries them to the engine (R1's record)."""
    metrics = {"replication_lag": {"label": "Replication lag", "value": 75.0, "unit": "s", "baseline": 1.0}}
    app = Host(roles=("dba",))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.preselect("replication_lag", metrics)
        await pilot.pause()
        assert screen.selected == "replication_lag"
        assert "Replication lag 75 s" in str(screen.query_one("#decision", Static).render())
        screen.show(replace(awaiting_view(), trigger=None, state=None, decided_by=None, suggested_trigger="lock_wait"),
                    AWAITING_INSPECTION)
        await pilot.pause()
        assert screen.selected == "replication_lag", "a suggestion does not override the Decision step's trigger"
        await pilot.press("d")
        assert isinstance(app.screen, DecideDialog) and app.screen.trigger.key == "replication_lag"
        await pilot.press(*"lag 75 s", "enter")
        await pilot.pause()
        assert app.posted[-1] == RollbackDecide("replication_lag", "lag 75 s", metrics)
