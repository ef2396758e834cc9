"""A rollback can never jam (docs/rollback.md): every state of a run's rollback flow has a way
forward, named with who takes it and the key, or is final by design and says so; a refusal needs
a reason and follows the approval matrix (never the requester's own); after a refusal another
approver may still approve, the canary lead may close the decision for a new trigger, or keep the
index — a final state, with its reason in the audit trail.

The states and their ways forward are pure (a table below); the actions run on a real SQLite
store (no target I/O: none of them sends anything to the server)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from plans import ACME, people

from engine.adapters.store import ExecutionRun, RollbackRecord, Store
from engine.adapters.target import Target
from engine.domain import rollback_rules as rules
from engine.domain.clock import FrozenClock
from engine.domain.plan import ROLES, parse_plan
from engine.domain.rollback_rules import (
    FINAL_PHASES,
    PHASES,
    approval_state,
    check_approval,
    flow_phase,
    next_line,
    next_steps,
)
from engine.flows import rollback_flow as flow
from engine.flows import rollback_rungs as rungs
from engine.flows.rollback_flow import (
    approve_rollback,
    decide_rollback,
    keep_index,
    refuse_rollback,
    retrigger_rollback,
)
from engine.flows.rollback_rungs import execute_drop
from engine.views.rollback import role_rows, rollback_view

T0 = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
SCREEN_KEYS = {"d", "a", "n", "k", "i", "u", "x"}  # the Rollback screen's keys (tests/test_rollback_dialogs.py)

LOCK_BY_DBA = ("dba", "nok")


def _state(trigger, by, votes=()):
    return approval_state(trigger, by, list(votes))


# phase → the facts that put a run there, and the keys of its ways forward (empty: final by design)
STATES = {
    "nothing_to_roll_back": (dict(index_created_by_run=False, run_status="failed", state=None), set()),
    "awaiting_decision": (dict(index_created_by_run=True, run_status="failed", state=None), {"d"}),
    "awaiting_approvals": (dict(index_created_by_run=True, run_status="failed",
                                state=_state("lock_wait", LOCK_BY_DBA)), {"a", "n"}),
    "refused": (dict(index_created_by_run=True, run_status="failed",
                     state=_state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai", "refuse", "sale")])),
                {"a", "n", "k"}),
    "approved": (dict(index_created_by_run=True, run_status="cancelled",
                      state=_state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai", "approve")])),
                 {"i", "x", "n"}),
    "ignored": (dict(index_created_by_run=True, run_status="failed", rung1_applied=True,
                     state=_state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai", "approve")])), {"x", "u"}),
    "drop_failed": (dict(index_created_by_run=True, run_status="failed", drop_failed=True,
                         state=_state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai", "approve")])), {"x"}),
    "rolled_back": (dict(index_created_by_run=True, run_status="rolled_back",
                         state=_state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai", "approve")])), set()),
    "kept": (dict(index_created_by_run=True, run_status="failed", kept=True,
                  state=_state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai", "refuse", "sale")])), set()),
}


def test_the_table_covers_every_state_of_the_flow():
    assert set(STATES) == set(PHASES) and set(FINAL_PHASES) < set(PHASES)


@pytest.mark.parametrize("phase", sorted(STATES))
def test_every_state_has_a_way_forward_or_is_final_by_design_and_says_so(phase):
    facts, keys = STATES[phase]
    assert flow_phase(**facts) == phase
    state = facts["state"]
    steps = next_steps(phase, state.trigger if state else None, state)
    line = next_line(phase, steps)
    if phase in FINAL_PHASES:
        assert steps == () and not keys
        assert line.startswith("Final: ") and FINAL_PHASES[phase] in line
        return
    assert {s.key for s in steps} == keys, f"{phase}: {steps}"
    assert line.startswith("Next: ") and "Final" not in line
    for s in steps:
        assert s.key in SCREEN_KEYS and s.text and s.text in line
        assert s.roles and set(s.roles) <= set(ROLES), f"{phase}: {s} names no one who can take it"
        assert callable(getattr(flow, s.action, None) or getattr(rungs, s.action, None)), \
            f"{phase}: {s.action} is not an engine function"


def test_a_refused_rollback_names_the_three_ways_forward_and_who_takes_each():
    state = _state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai@10.0.0.5", "refuse", "sale at 22:00")])
    steps = {s.action: s for s in next_steps("refused", "lock_wait", state)}
    assert set(steps) == {"approve_rollback", "retrigger_rollback", "keep_index"}
    assert steps["approve_rollback"].roles == ("canary_lead",) and "or somchai after all" in steps["approve_rollback"].text
    assert steps["retrigger_rollback"].roles == steps["keep_index"].roles == ("canary_lead",)
    assert "final" in steps["keep_index"].text


def test_an_unknown_state_is_an_error_not_a_dead_end():
    with pytest.raises(ValueError, match="unknown rollback phase"):
        next_steps("stuck", None, None)


# --- the matrix applies to refusals (pure) -------------------------------------------------------


def test_the_requester_cannot_refuse_their_own_rollback_even_holding_the_role():
    # Kill switch after the ALTER: the lead decides, the DBA approves; YOU hold both roles (the drill).
    state = approval_state("kill_switch", ("canary_lead", "you@jump"), [])
    msg = check_approval("kill_switch", "dba", "you@10.0.0.9", {"canary_lead", "dba"}, state, "refuse")
    assert msg and "requester cannot refuse their own rollback" in msg and "new trigger (n)" in msg


def test_only_someone_who_may_approve_may_refuse():
    state = approval_state("lock_wait", LOCK_BY_DBA, [])
    assert "do not hold" in check_approval("lock_wait", "canary_lead", "dev", {"developer"}, state, "refuse")
    assert "not needed" in check_approval("lock_wait", "sre", "ploy", {"sre"}, state, "refuse")
    given = approval_state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai", "approve")])
    msg = check_approval("lock_wait", "canary_lead", "lek", {"canary_lead"}, given, "refuse")
    assert msg and "already given by somchai" in msg
    # The one who gave it may take it back by refusing (their latest word counts).
    assert check_approval("lock_wait", "canary_lead", "somchai", {"canary_lead"}, given, "refuse") is None
    # One word per person: an approval for one role is not silently withdrawn by a refusal for another.
    lag = approval_state("replication_lag", LOCK_BY_DBA, [("canary_lead", "multi", "approve")])
    msg = check_approval("replication_lag", "sre", "multi", {"canary_lead", "sre"}, lag, "refuse")
    assert msg and "one word per person" in msg


def test_another_holder_of_the_role_overrules_a_refusal():
    state = approval_state("lock_wait", LOCK_BY_DBA, [("canary_lead", "somchai", "refuse", "sale"),
                                                      ("canary_lead", "lek", "approve", "the lock waits are real")])
    assert state.complete and state.refused == ()
    assert state.overruled == (("canary_lead", "somchai", "lek"),)
    plan = parse_plan(PLAN, "canary.toml")
    rows = {r.role: r for r in role_rows(plan, "lock_wait", state)}
    assert rows["canary_lead"].status == "✓ approved" and "overrules somchai's refusal" in rows["canary_lead"].note


# --- on a real SQLite store ---------------------------------------------------------------------

PLAN = ACME + people(("Somchai", "canary_lead", "somchai"), ("Lek", "canary_lead", "lek"), ("Nok", "dba", "nok"),
                     ("Ploy", "sre", "ploy"), ("Dev", "developer", "dev"))
# The drill: you and the teammate each hold every role.
DRILL = ACME + "".join(f'[[people]]\nname = "{n}"\nroles = ["canary_lead", "dba", "sre", "developer"]\n'
                       f'unix_user = "{u}"\n' for n, u in (("You", "you"), ("Teammate", "teammate")))
ALL = {"canary_lead", "dba", "sre", "developer"}


def _run(tmp_path, plan_text=PLAN, status="cancelled"):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=FrozenClock(T0))
    plan = parse_plan(plan_text, "canary.toml")
    run = store.create_run(ExecutionRun(
        tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None], ["created_at", None]]), "test")
    store.transition("acme", run.id, "running", "test")
    store.update_run("acme", run.id, index_created_by_run=True)
    store.transition("acme", run.id, status, "test")
    return plan, store, store.get_run("acme", run.id)


def _audit(store, run, action):
    return store.audit_entries("acme", run.id, action)


def test_the_drill_s_jam_refused_then_a_new_trigger_then_approved(tmp_path):
    """Issue 14 item 2: you decide, the teammate refuses; today nobody could approve, retrigger or
    finish it. Now the canary lead closes the decision for a new trigger, and it completes."""
    plan, store, run = _run(tmp_path, DRILL)
    assert decide_rollback(store, plan, run, "kill_switch", "you@jump", ALL, "switch pulled at T+20",
                           role="canary_lead").ok
    out = refuse_rollback(store, plan, run, "dba", "teammate@jump", ALL, "  ")
    assert out.status == "refused" and "needs its reason" in out.message
    out = refuse_rollback(store, plan, run, "dba", "you@jump", ALL, "changed my mind")
    assert out.status == "refused" and "requester cannot refuse" in out.message
    out = refuse_rollback(store, plan, run, "dba", "teammate@jump", ALL, "the index serves the sale")
    assert out.ok and "Next:" in out.message and "new trigger (n)" in out.message and "keeps the index (k)" in out.message
    view = rollback_view(store, plan, run.id)
    assert view.phase == "refused" and not view.final
    assert view.status.startswith("BLOCKED — refused by teammate@jump (DBA): the index serves the sale")
    assert {s.key for s in view.next_steps} == {"a", "n", "k"} and view.next_line.startswith("Next: ")
    [entry] = _audit(store, run, "rollback_refuse")
    assert entry.details["note"] == "the index serves the sale" and entry.details["role"] == "dba"
    # You cannot lift it alone (you asked for it)…
    assert "only approver" in approve_rollback(store, plan, run, "dba", "you@jump", ALL).message
    # …but the canary lead closes the decision, with a reason.
    assert "needs its reason" in retrigger_rollback(store, plan, run, "you@jump", ALL, "").message
    out = retrigger_rollback(store, plan, run, "you@jump", ALL, "the refusal is about timing: decide again now")
    assert out.ok, out.message
    view = rollback_view(store, plan, run.id)
    assert view.phase == "awaiting_decision" and view.trigger is None and view.state is None
    [entry] = _audit(store, run, "rollback_retriggered")
    assert entry.details["reason"].startswith("the refusal is about timing")
    assert entry.details["refused_by"] == ["teammate@jump (DBA)"] and entry.details["votes_closed"] == 1
    # The new decision: earlier words do not carry over; the teammate approves this time.
    assert decide_rollback(store, plan, run, "kill_switch", "you@jump", ALL, "sale over: drop it",
                           role="canary_lead").ok
    view = rollback_view(store, plan, run.id)
    assert view.phase == "awaiting_approvals" and view.state.refused == () and view.state.missing == ("dba",)
    assert approve_rollback(store, plan, run, "dba", "teammate@jump", ALL, "agreed").ok
    view = rollback_view(store, plan, run.id)
    assert view.phase == "approved" and {s.key for s in view.next_steps} == {"i", "x", "n"}
    records = store.rollback_records("acme", run.id)
    assert [r.rollback_status for r in records] == ["superseded", "pending"]


def test_keep_the_index_ends_the_flow_in_a_final_stated_state(tmp_path):
    plan, store, run = _run(tmp_path)
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s").ok
    out = keep_index(store, plan, run, "somchai", {"canary_lead"}, "keep it")
    assert out.status == "refused" and "only once a refusal stands" in out.message
    assert refuse_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"},
                           "the waits were the batch job, stopped now").ok
    out = keep_index(store, plan, run, "nok", {"dba"}, "keep it")
    assert out.status == "refused" and "canary lead's call" in out.message and "Somchai" in out.message
    assert "needs its reason" in keep_index(store, plan, run, "lek", {"canary_lead"}, " ").message
    out = keep_index(store, plan, run, "lek", {"canary_lead"}, "the batch job caused it; the index stays")
    assert out.ok and "Final" in out.message
    view = rollback_view(store, plan, run.id)
    assert view.phase == "kept" and view.final and view.next_steps == ()
    assert view.status.startswith("KEPT — index idx_orders_customer_created kept by lek: the batch job")
    assert view.next_line.startswith("Final: ")
    [entry] = _audit(store, run, "rollback_index_kept")
    assert entry.details["reason"] == "the batch job caused it; the index stays"
    assert entry.details["refused_by"] == ["somchai (canary lead)"]
    # Final: every action says so, and each refusal is audited.
    target = Target(plan.connection)  # never reached: refused before any I/O
    for out in (decide_rollback(store, plan, run, "latency", "somchai", {"canary_lead"}, "again"),
                approve_rollback(store, plan, run, "canary_lead", "lek", {"canary_lead"}),
                refuse_rollback(store, plan, run, "canary_lead", "lek", {"canary_lead"}, "no"),
                retrigger_rollback(store, plan, run, "lek", {"canary_lead"}, "again"),
                keep_index(store, plan, run, "lek", {"canary_lead"}, "again"),
                execute_drop(store, plan, target, run, "nok", {"dba"})):
        assert out.status == "refused" and "final" in out.message, out.message
    [record] = store.rollback_records("acme", run.id)
    assert record.rollback_status == "not_needed" and record.rollback_details["kept"]["by"] == "lek"


def test_another_approver_overrules_a_refusal_on_the_store(tmp_path):
    plan, store, run = _run(tmp_path)
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s").ok
    assert refuse_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}, "sale at 22:00").ok
    out = approve_rollback(store, plan, run, "canary_lead", "lek", {"canary_lead"}, "waits are real")
    assert out.ok and "somchai's refusal as canary lead is overruled" in out.message
    view = rollback_view(store, plan, run.id)
    assert view.phase == "approved" and view.state.overruled == (("canary_lead", "somchai", "lek"),)


def test_only_the_canary_lead_makes_a_new_trigger_and_not_over_an_applied_rung(tmp_path):
    plan, store, run = _run(tmp_path)
    out = retrigger_rollback(store, plan, run, "somchai", {"canary_lead"}, "wrong trigger")
    assert out.status == "refused" and "no rollback is decided" in out.message
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s").ok
    out = retrigger_rollback(store, plan, run, "nok", {"dba"}, "wrong trigger")
    assert out.status == "refused" and "canary lead's step" in out.message
    assert approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}).ok
    store.save_rollback_record(RollbackRecord(  # rung 1 applied (as execute_ignore records it)
        tenant_id="acme", execution_run_id=run.id, connection_profile_id="orders-primary",
        rollback_status="completed", rollback_type="partial", rollback_details={"rung": "ignore"}), "nok", "test")
    out = retrigger_rollback(store, plan, run, "somchai", {"canary_lead"}, "wrong trigger")
    assert out.status == "refused" and "undoes it (u)" in out.message
    assert len(_audit(store, run, "rollback_retrigger_refused")) == 3


# --- the same functions from the command line ------------------------------------------------------


def test_the_cli_refuses_keeps_and_says_the_state_is_final(tmp_path):
    import getpass

    from test_cli import cli

    me = getpass.getuser()
    path = tmp_path / "canary.toml"
    path.write_text(ACME + people(("Me", "canary_lead", me), ("Nok", "dba", "nok")))
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    plan, store, run = _run(tmp_path, path.read_text())
    assert decide_rollback(store, plan, run, "lock_wait", "nok@jump", {"dba"}, "lock wait 7 s").ok
    base = ("--plan", str(path), "--store", store_url)
    done = cli("rollback", "refuse", run.id, *base)
    assert done.returncode == 2 and "needs --reason" in done.stderr, done.stderr
    done = cli("rollback", "refuse", run.id, *base, "--reason", "the batch job caused it")
    assert done.returncode == 0 and "Next:" in done.stdout, done.stdout + done.stderr
    done = cli("rollback", "status", run.id, *base)
    assert done.returncode == 0 and "BLOCKED — refused by" in done.stdout and "keeps the index (k)" in done.stdout
    done = cli("rollback", "keep", run.id, *base, "--reason", "the batch job, not the index")
    assert done.returncode == 0 and "Final" in done.stdout, done.stdout + done.stderr
    done = cli("rollback", "retrigger", run.id, *base, "--reason", "again")
    assert done.returncode == 3 and "final" in done.stderr and "Traceback" not in done.stderr
    done = cli("rollback", "status", run.id, *base)
    headline, final = done.stdout.splitlines()[:2]
    assert headline.startswith(f"KEPT — index idx_orders_customer_created kept by {me}")
    assert headline.endswith(": the batch job, not the index") and final == f"Final: {FINAL_PHASES['kept']}."
    assert [e.action for e in _audit(store, run, "rollback_retrigger_refused")] == ["rollback_retrigger_refused"]


# --- refused, then completed, on the sandbox MariaDB -------------------------------------------------


@pytest.mark.mariadb
def test_a_refused_rollback_is_completed_after_a_new_trigger_on_the_sandbox(lab):
    from test_rollback_flow import _real_run

    plan, store, run, target = _real_run(lab, "rbway_refused")
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s on orders").ok
    assert refuse_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}, "not during the sale").ok
    refused = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert refused.status == "refused" and "Next:" in refused.message and lab.index_exists(plan)
    assert retrigger_rollback(store, plan, run, "somchai", {"canary_lead"}, "the sale is over").ok
    assert execute_drop(store, plan, target, run, "nok", {"dba"}).status == "refused"  # no decision in force
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s, decided again").ok
    assert approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}, "now, yes").ok
    drop = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert drop.ok, drop.message
    assert not lab.index_exists(plan)
    view = rollback_view(store, plan, run.id)
    assert view.phase == "rolled_back" and view.final and view.next_line.startswith("Final: ")
    statuses = sorted((r.rollback_details or {}).get("superseded_at") is not None and "superseded"
                      or r.rollback_status for r in store.rollback_records(plan.tenant, run.id))
    assert statuses == ["completed", "completed", "superseded"], statuses


def test_the_report_of_a_kept_index_says_who_kept_it_and_why(tmp_path):
    from engine.views.report import render_report, report_facts

    plan, store, run = _run(tmp_path)
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s").ok
    assert refuse_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}, "the batch job").ok
    assert keep_index(store, plan, run, "lek", {"canary_lead"}, "the batch job caused it").ok
    facts = report_facts(store, plan, run.id)
    assert facts.rollback.status == "not_needed"
    assert facts.rollback.reason == "index kept by lek after a refusal: the batch job caused it"
    assert "No — index kept by lek after a refusal: the batch job caused it" in render_report(facts)


@pytest.mark.parametrize("status, index, kept, is_open_", [
    ("running", False, False, True), ("scheduled", False, False, True),
    ("cancelled", True, False, True),  # index in place: the rollback may be due
    ("failed", True, False, True),
    ("cancelled", True, True, False),  # kept after a refusal: final by design
    ("failed", True, True, False),
    ("cancelled", False, False, False), ("completed", True, False, False), ("rolled_back", True, False, False),
])
def test_a_run_is_open_while_the_war_room_may_still_act_on_it(status, index, kept, is_open_):
    from types import SimpleNamespace

    from engine.flows.runbook import is_open

    assert is_open(SimpleNamespace(status=status, index_created_by_run=index), kept) is is_open_


def test_a_kept_index_closes_the_run_for_good_and_a_console_says_it_is_final(tmp_path):
    """A run whose index was kept after a refusal is not "open": a restarted drill does not resume
    it and a console does not hold it as the run in progress; opened within hours, it still shows
    it, on the Rollback step, saying the state is final."""
    from datetime import timedelta

    from engine.flows.runbook import attach_run, open_run

    plan, store, run = _run(tmp_path)
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s").ok
    assert refuse_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}, "the batch job").ok
    assert open_run(store, plan).id == run.id  # refused, not kept: still the war room's (a, n, k)
    assert keep_index(store, plan, run, "lek", {"canary_lead"}, "the batch job caused it").ok
    assert rules.index_kept(store.rollback_records("acme", run.id))["by"] == "lek"
    assert open_run(store, plan) is None
    assert attach_run(store, plan, T0 + timedelta(hours=1)).id == run.id  # shown, as history
    assert attach_run(store, plan, T0 + timedelta(hours=13)) is None
    drill = replace(plan, time_speed=30.0)  # a drill's clock: twelve real hours are 360 of its hours
    assert attach_run(store, drill, T0 + timedelta(hours=13)).id == run.id
    assert attach_run(store, drill, T0 + timedelta(hours=361)) is None
    view = rollback_view(store, plan, run.id)
    assert view.final and view.next_line.startswith("Final: ") and view.status.startswith("KEPT")
    # A new run may begin: the store's canary lock went with the run's end.
    store.create_run(ExecutionRun(
        tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None]]), "test")
