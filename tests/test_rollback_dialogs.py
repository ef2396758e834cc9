"""The rollback's dialogs can never jam a run by accident (docs/rollback.md): the approval dialog
opens on Cancel, so Tab, Tab, Enter does nothing harmful; a refusal is confirmed in a dialog of its
own and needs its reason; the canary lead's new trigger (n) and keep the index (k) each need a
reason; a key that cannot act says why in one line, and who can; the screen says the way forward
or that the state is final. Screen-level under Pilot with a recording host App, then the real App
on a store with a run whose index is in place (the sandbox MariaDB is the target it inspects)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from plans import ACME, people
from test_rollback_flow import AWAITING_INSPECTION, awaiting_view
from textual.app import App
from textual.widgets import Button, Input, Static
from waits import steady, until

from engine.domain.plan import parse_plan
from engine.domain.rollback_rules import approval_state, next_line, next_steps
from engine.views.rollback import role_rows
from screens.rollback import (
    RollbackApprove,
    RollbackDecide,
    RollbackExecute,
    RollbackKeepIndex,
    RollbackRefresh,
    RollbackRetrigger,
    RollbackScreen,
)
from screens.rollback_dialogs import ApproveDialog, ReasonDialog, RefuseDialog

PLAN = ACME + people(("Somchai", "canary_lead", "somchai"), ("Nok", "dba", "nok"), ("Ploy", "sre", "ploy"),
                     ("Dev", "developer", "dev"))


class Host(App):
    """Hosts the screen and records what it posts (the real App runs the engine: below)."""

    def __init__(self, roles=("sre",)):
        super().__init__()
        self.plan = parse_plan(PLAN, "canary.toml")
        self.roles = roles
        self.posted: list[object] = []
        self.said: list[str] = []

    def on_mount(self) -> None:
        self.push_screen(RollbackScreen(self.plan, self.roles))

    def notify(self, message, **kw):  # type: ignore[override]
        self.said.append(str(message))
        return super().notify(message, **kw)

    def on_rollback_decide(self, m: RollbackDecide) -> None:
        self.posted.append(m)

    def on_rollback_approve(self, m: RollbackApprove) -> None:
        self.posted.append(m)

    def on_rollback_execute(self, m: RollbackExecute) -> None:
        self.posted.append(m)

    def on_rollback_retrigger(self, m: RollbackRetrigger) -> None:
        self.posted.append(m)

    def on_rollback_keep_index(self, m: RollbackKeepIndex) -> None:
        self.posted.append(m)

    def on_rollback_refresh(self, m: RollbackRefresh) -> None:
        pass


def refused_view():
    at = datetime(2026, 11, 22, 16, 2, tzinfo=UTC)
    state = approval_state("replication_lag", ("dba", "nok@10.0.0.9"),
                           [("canary_lead", "somchai@10.0.0.5", "refuse", "sale at 22:00", at)])
    steps = next_steps("refused", "replication_lag", state)
    return replace(awaiting_view(), state=state, roles=role_rows(parse_plan(PLAN, "canary.toml"), "replication_lag",
                                                                 state),
                   phase="refused", next_steps=steps, next_line=next_line("refused", steps), level="error",
                   status="BLOCKED — refused by somchai@10.0.0.5 (canary lead): sale at 22:00")


async def _awaiting(pilot, app):
    await pilot.pause()
    app.screen.show(awaiting_view(), AWAITING_INSPECTION)  # replication lag: the SRE's approval is missing
    await pilot.pause()


async def test_the_approval_dialog_opens_on_cancel_and_tab_tab_enter_does_nothing_harmful():
    app = Host(roles=("sre",))
    async with app.run_test(size=(120, 40)) as pilot:
        await _awaiting(pilot, app)
        await pilot.press("a")
        dialog = app.screen
        assert isinstance(dialog, ApproveDialog)
        assert app.focused is dialog.query_one("#cancel", Button), "focus starts on the harmless choice"
        await pilot.press("tab", "tab", "enter")
        await pilot.pause()
        assert app.posted == [], "Tab, Tab, Enter neither approved nor refused"
        # It reached Refuse…, which only asks: a refusal is confirmed, with its reason.
        assert isinstance(app.screen, RefuseDialog)
        assert app.focused is app.screen.query_one("#reason", Input)
        await pilot.press("enter")  # no reason: nothing
        await pilot.press("tab", "tab", "enter")  # Cancel, the refusal button: still no reason
        await pilot.pause()
        assert isinstance(app.screen, RefuseDialog) and app.posted == []
        assert "A reason is required" in str(app.screen.query_one("#why", Static).render())
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ApproveDialog)
        await pilot.press("enter")  # focus is back on Cancel
        await pilot.pause()
        assert isinstance(app.screen, RollbackScreen) and app.posted == []


async def test_a_refusal_is_confirmed_with_its_reason():
    app = Host(roles=("sre",))
    async with app.run_test(size=(120, 40)) as pilot:
        await _awaiting(pilot, app)
        await pilot.press("a")
        await pilot.pause()
        await pilot.click("#refuse")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, RefuseDialog)
        said = " ".join(str(s.render()) for s in dialog.query(Static))
        assert "You refuse as sre" in said and "new trigger (n)" in said and "keeps the index (k)" in said
        await pilot.press(*"the replica catches up", "enter")
        await pilot.pause()
        assert app.posted == [RollbackApprove("sre", "the replica catches up", "refuse")]
        assert isinstance(app.screen, RollbackScreen)


async def test_an_approval_is_one_deliberate_press():
    app = Host(roles=("sre",))
    async with app.run_test(size=(120, 40)) as pilot:
        await _awaiting(pilot, app)
        await pilot.press("a", "tab", "enter")  # Cancel → Approve
        await pilot.pause()
        assert app.posted == [RollbackApprove("sre", "", "approve")]


async def test_new_trigger_and_keep_the_index_each_need_a_reason():
    app = Host(roles=("canary_lead",))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.show(refused_view(), AWAITING_INSPECTION)
        await pilot.pause()
        for key, message in (("n", RollbackRetrigger), ("k", RollbackKeepIndex)):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, ReasonDialog), key
            await pilot.press("enter", "tab", "tab", "enter")  # no reason: nothing, whatever is pressed
            await pilot.pause()
            assert isinstance(app.screen, ReasonDialog) and app.posted == [], key
            await pilot.press(*"wrong trigger", "enter")
            await pilot.pause()
            assert app.posted == [message("wrong trigger")], key
            app.posted.clear()


async def test_keep_the_index_without_a_refusal_says_why_not_in_one_line():
    app = Host(roles=("canary_lead",))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        waiting = replace(awaiting_view(), phase="awaiting_approvals",
                          next_steps=next_steps("awaiting_approvals", "replication_lag", awaiting_view().state))
        app.screen.show(replace(waiting, next_line=next_line("awaiting_approvals", waiting.next_steps)), None)
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, RollbackScreen) and app.posted == []
        [said] = app.said
        assert "follows a refusal, and none stands" in said and "AWAITING APPROVALS" in said and "\n" not in said
        await pilot.press("n")  # a decision is in force: the lead may close it
        await pilot.pause()
        assert isinstance(app.screen, ReasonDialog)


async def test_keep_the_index_outside_the_role_goes_to_the_engine_which_refuses_and_audits():
    app = Host(roles=("sre",))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.show(refused_view(), AWAITING_INSPECTION)
        await pilot.pause()
        await pilot.press("k", "n")
        await pilot.pause()
        assert app.posted == [RollbackKeepIndex(""), RollbackRetrigger("")]


async def test_t_on_a_decided_rollback_says_why_it_cannot_act_and_who_can():
    app = Host(roles=("dba",))
    async with app.run_test(size=(120, 40)) as pilot:
        await _awaiting(pilot, app)
        await pilot.press("t")
        await pilot.pause()
        assert app.screen.selected == "replication_lag"
        [said] = app.said
        assert "part of the decision by nok@10.0.0.9 (DBA)" in said and "canary lead" in said and "(n)" in said
        assert "\n" not in said


async def test_the_screen_says_the_way_forward_or_that_the_state_is_final():
    app = Host(roles=("dba",))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        refused = refused_view()
        app.screen.show(refused, AWAITING_INSPECTION)
        await pilot.pause()
        shown = str(app.screen.query_one("#next", Static).render())
        assert shown.startswith("Next: another canary lead approves (a)") and "keeps the index (k)" in shown
        kept = replace(refused, phase="kept", next_steps=(), next_line=next_line("kept", ()),
                       status="KEPT — index idx_orders_customer_created kept by somchai: sale", level="warning")
        app.screen.show(kept, None)
        await pilot.pause()
        assert str(app.screen.query_one("#next", Static).render()).startswith("Final: the index stays")
        await pilot.press("t")
        await pilot.pause()
        assert "final" in app.said[-1]


def test_rollback_screen_refused(snap_compare, term):
    app = Host(roles=("canary_lead",))
    view = refused_view()

    async def run_before(pilot):
        assert await until(pilot, lambda: isinstance(app.screen, RollbackScreen))
        app.screen.show(view, AWAITING_INSPECTION)
        # The footer recomposes and the records table sizes its columns a few turns of the loop
        # after show(): the picture is taken once it stops changing (tests/waits.py).
        assert await steady(pilot)

    assert snap_compare(app, terminal_size=term, run_before=run_before)


# --- the real App, two consoles, one store ------------------------------------------------------


@pytest.mark.mariadb
@pytest.mark.long
async def test_the_real_console_refused_then_kept(lab, tmp_path):
    """The lead decides, the DBA refuses from their console (Tab Tab Enter first: nothing), the lead
    keeps the index: final, said on both consoles, every step audited."""
    from test_console_flow import make_app, make_plan

    from engine.adapters.store import ExecutionRun, Store

    db = lab.database("cc_rbjam")
    lab.load_orders(db, 2_000)
    plan = make_plan(lab, db, "idx_rbjam", people=[
        {"name": "Lead", "roles": ["canary_lead"], "unix_user": "lead"},
        {"name": "Nok", "roles": ["dba"], "unix_user": "nok"}])
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    run = store.create_run(ExecutionRun(
        tenant_id=plan.tenant, connection_profile_id=plan.connection.id, schema_name=db, table_name="orders",
        index_name="idx_rbjam", columns=[["customer_id", None], ["created_at", None]]), "test")
    store.transition(plan.tenant, run.id, "running", "test")
    store.update_run(plan.tenant, run.id, index_created_by_run=True)
    store.transition(plan.tenant, run.id, "cancelled", "test")
    lead = make_app(plan, store, user="lead")
    async with lead.run_test(size=(160, 50)) as pilot:
        assert await until(pilot, lambda: lead.view.run is not None and lead.view.run.id == run.id)
        lead.action_goto("rollback")
        assert await until(pilot, lambda: isinstance(lead.screen, RollbackScreen) and lead.screen.view is not None)
        lead.screen.selected = "kill_switch"
        await pilot.press("d")
        await pilot.pause(0.1)
        await pilot.press(*"switch pulled after the ALTER", "enter")
        assert await until(pilot, lambda: store.audit_entries(plan.tenant, run.id, "rollback_decided"))

        dba = make_app(plan, store, user="nok")
        async with dba.run_test(size=(160, 50)) as p2:
            assert await until(p2, lambda: dba.view.run is not None)
            dba.action_goto("rollback")
            assert await until(p2, lambda: isinstance(dba.screen, RollbackScreen) and dba.screen.view is not None
                               and dba.screen.view.phase == "awaiting_approvals")
            await p2.press("a")
            await p2.pause(0.1)
            await p2.press("tab", "tab", "enter")
            await p2.pause(0.2)
            assert isinstance(dba.screen, RefuseDialog)
            assert not store.audit_entries(plan.tenant, run.id, "rollback_refuse")
            await p2.press(*"the index serves the sale", "enter")
            assert await until(p2, lambda: store.audit_entries(plan.tenant, run.id, "rollback_refuse"))

        assert await until(pilot, lambda: lead.screen.view.phase == "refused", 5)
        assert "keeps the index (k)" in str(lead.screen.query_one("#next", Static).render())
        await pilot.press("k")
        await pilot.pause(0.1)
        await pilot.press(*"the sale needs it; a separate change removes it later", "enter")
        assert await until(pilot, lambda: store.audit_entries(plan.tenant, run.id, "rollback_index_kept"))
        assert await until(pilot, lambda: lead.screen.view.final, 5)
        assert str(lead.screen.query_one("#status", Static).render()).startswith("KEPT")
        assert str(lead.screen.query_one("#next", Static).render()).startswith("Final:")
    [refusal] = store.audit_entries(plan.tenant, run.id, "rollback_refuse")
    assert refusal.actor.startswith("nok") and refusal.details["note"] == "the index serves the sale"
    [kept] = store.audit_entries(plan.tenant, run.id, "rollback_index_kept")
    assert kept.details["reason"].startswith("the sale needs it") and kept.actor.startswith("lead")
