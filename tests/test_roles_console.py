"""Roles in the console (docs/roles.md): every role-gated action, tried by someone who lacks the role, is
refused with a message that names who may do it, and the refusal is in the audit trail (the
kill switch's deactivation: tests/test_console_pilot.py). The run is
real (created in the store by the canary lead) and the console is the real App; the keys call the
same actions the bindings do."""

from __future__ import annotations

import pytest
from test_console_flow import make_app, make_plan
from waits import until

from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import Store
from engine.adapters.target import Target
from engine.flows.executor import Executor

pytestmark = [pytest.mark.mariadb]

# action method → (the audit action of its refusal, words the refusal must say)
GATED = {
    "action_begin_prechecks": ("begin_prechecks_refused", "canary lead"),
    "action_kill_switch_test": ("kill_switch_test_refused", "canary lead"),
    "action_scratch_test": ("scratch_test_refused", "dba"),
    "action_record_test": ("record_test_refused", "canary lead"),
    "action_confirm_rollback": ("confirm_rollback_refused", "dba"),
    "action_sign_off": ("sign_off_refused", "canary lead"),
    "action_check_size": ("size_gate_check_refused", "canary lead"),
    "action_approve_gate": ("size_gate_approval_refused", "dba"),
    "action_execute": ("execute_refused", "canary lead"),
    "action_acknowledge_case": ("acknowledge_self_test_refused", "canary lead"),
}


@pytest.fixture(scope="module")
def roles_db(lab):
    db = lab.database("cc_roles")
    lab.load_orders(db, 5_000)
    return db


@pytest.fixture
def run_and_outsider(lab, roles_db, tmp_path):
    plan = make_plan(lab, roles_db, "idx_roles", people=[
        {"name": "Lead", "roles": ["canary_lead"], "unix_user": "lead"},
        {"name": "Dev", "roles": ["developer"], "unix_user": "obs"}])
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    run = Executor(plan, store, EmbeddedKillSwitch(store), Target(plan.connection), "lead@10.0.0.5",
                   "lead-worker").create_run()
    return plan, store, run


@pytest.mark.parametrize("method", sorted(GATED))
async def test_a_role_gated_console_action_is_refused_said_and_audited(run_and_outsider, method):
    plan, store, run = run_and_outsider
    refused, words = GATED[method]
    app = make_app(plan, store, user="obs")
    notes: list[str] = []
    async with app.run_test(size=(160, 50)) as pilot:
        assert await until(pilot, lambda: app.view.run is not None and app.view.run.id == run.id)
        original = app.notify
        app.notify = lambda message, **kw: (notes.append(str(message)), original(message, **kw))  # type: ignore[method-assign]
        getattr(app, method)()
        assert await until(pilot, lambda: store.audit_entries(plan.tenant, action=refused)), \
            f"{method}: no {refused} in the audit trail"
    [entry] = store.audit_entries(plan.tenant, action=refused)
    assert entry.actor == "obs@10.0.0.5"
    assert entry.details["roles"] == ["developer"]
    said = " ".join(notes).lower()
    assert words in said and "developer" in said, f"{method}: the refusal said {notes}"

