"""The console under Textual's Pilot: the F9 kill switch from every screen, with an input focused,
the frame, the plan's scope lock, the audit log. A real store; no target needed for these."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from plans import ACME, people
from waits import until

from console.app import CanaryApp
from engine.adapters.identity import Identity
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import Store
from engine.domain.clock import FrozenClock
from engine.domain.plan import parse_plan
from screens.audit import AuditScreen
from screens.frame import KillBanner, RunFrame
from screens.plan import PlanScreen

PLAN = ACME + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok"))


class SteadyKillSwitch(EmbeddedKillSwitch):
    """The store's kill switch, reporting a fixed response time: for snapshots, where a slow read on
    a loaded machine would otherwise put "answered in 633 ms (warning)" in the picture."""

    def read(self, tenant_id, connection_id):  # noqa: ANN001, ANN201
        return replace(super().read(tenant_id, connection_id), response_ms=2.0)


def make_app(tmp_path, user="somchai", poll=False, steady=False):
    plan = parse_plan(PLAN, "canary.toml")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    clock = FrozenClock(datetime(2026, 11, 22, 16, 0, tzinfo=UTC))  # 23:00 at UTC+7: off-peak
    backend = SteadyKillSwitch(store) if steady else EmbeddedKillSwitch(store)
    return CanaryApp(plan, store, Identity(user, "10.0.0.5", "jump"), clock, backend, poll=poll)


async def _wait_active(app, pilot):  # up to 5 s: a loaded CI machine, two apps in one loop
    return await until(pilot, lambda: app.frame.kill and app.frame.kill.active, 5, 0.02)


async def test_f9_on_the_plan_screen_turns_the_frame_red_at_once_and_records_it(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, PlanScreen)
        await pilot.press("f9")
        assert app.frame.kill_active, "the frame must turn red at the key press, not after the store"
        assert await _wait_active(app, pilot)
        frame = app.screen.query_one(RunFrame)
        assert frame.has_class("-kill-active")
        assert "KILL SWITCH ACTIVE" in str(app.screen.query_one(KillBanner).render())
    [row] = [r for r in app.store.kill_switch_rows("acme") if r.scope == "global"]
    assert row.is_active and row.updated_by == "somchai@10.0.0.5"
    assert app.store.audit_entries("acme", action="kill_switch_activated")


async def test_f9_works_while_the_audit_filter_has_focus(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, AuditScreen)
        assert app.focused is not None and app.focused.id == "audit-filter"
        await pilot.press("k", "i", "l")
        await pilot.press("f9")
        assert await _wait_active(app, pilot)
        assert app.screen.query_one("#audit-filter").value == "kil", "the input kept its text"


async def test_the_big_red_button_is_the_same_kill_switch(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.click("#kill-switch-button")
        assert await _wait_active(app, pilot)


async def test_a_second_console_sees_the_kill_switch_within_a_second(tmp_path):
    first, second = make_app(tmp_path), make_app(tmp_path, user="nok", poll=True)
    async with second.run_test(size=(140, 40)) as pilot2:
        await pilot2.pause(0.1)
        assert not second.frame.kill_active
        async with first.run_test(size=(140, 40)) as pilot1:
            await pilot1.press("f9")
            assert await _wait_active(first, pilot1)
        for _ in range(50):
            await pilot2.pause(0.02)
            if second.frame.kill and second.frame.kill.active:
                break
        assert second.frame.kill.active and "somchai" in second.frame.kill.describe()


async def test_the_plan_screen_shows_the_scope_lock_and_the_people(tmp_path):
    app = make_app(tmp_path, user="nok")
    async with app.run_test(size=(140, 40)) as pilot:
        scope = app.screen.query_one("#scope")
        for _ in range(200):  # the scope lock is read on a worker (a loaded machine: a while)
            await pilot.pause(0.05)
            rows = [[str(c) for c in scope.get_row_at(i)] for i in range(scope.row_count)]
            if any(r[0] == "Kill switch & rollback" and "not run yet" in r[3] for r in rows):
                break
        assert ["Time window", "✓", "off-peak only", "22:00-06:00 UTC+07:00"] in rows
        assert any(r[0] == "Kill switch & rollback" and r[1] == "✗" and "not run yet" in r[3] for r in rows)
        people = app.screen.query_one("#people")
        assert str(people.get_row_at(1)[-1]) == "← you"
        assert app.frame.user == "nok@10.0.0.5"
        assert app.frame.roles == ("dba",)


@pytest.mark.parametrize("key", ["f9"])
def test_the_kill_switch_binding_is_a_priority_binding_with_an_id(key):
    [binding] = [b for b in CanaryApp.BINDINGS if b.key == key]
    assert binding.priority and binding.id == "kill-switch"


async def test_deactivation_needs_a_reason_and_the_role(tmp_path):
    app = make_app(tmp_path, user="nok")  # the DBA
    app.store.set_kill_switch("acme", "global", True, "somchai@10.0.0.5", "drill")
    async with app.run_test(size=(140, 40)) as pilot:
        app.read_kill_switch()
        assert await _wait_active(app, pilot)
        await pilot.press("f8")
        await pilot.pause()
        await pilot.click("#confirm")
        await pilot.pause()
        assert "reason is required" in str(app.screen.query_one("#why").render())
        await pilot.press("f9")  # the kill switch key works inside the modal: the dialog gives way
        await pilot.pause(0.1)
        from screens.deactivate import DeactivateKillSwitch

        assert not isinstance(app.screen, DeactivateKillSwitch), "F9 must not leave an unkill dialog up"
        assert await _wait_active(app, pilot) and app.frame.kill_active
        await pilot.press("f8")
        await pilot.pause(0.1)
        await pilot.press(*"cause", "space", *"found", "enter")
        for _ in range(250):
            await pilot.pause(0.02)
            if app.frame.kill and not app.frame.kill.active:
                break
        assert not app.frame.kill.active
    [row] = [r for r in app.store.kill_switch_rows("acme") if r.scope == "global"]
    assert not row.is_active and row.reason == "cause found" and row.updated_by == "nok@10.0.0.5"


async def test_deactivation_by_someone_without_the_role_is_refused_and_audited(tmp_path):
    app = make_app(tmp_path, user="mallory")  # not in the plan: no role
    app.store.set_kill_switch("acme", "global", True, "somchai@10.0.0.5", "drill")
    async with app.run_test(size=(140, 40)) as pilot:
        app.read_kill_switch()
        assert await _wait_active(app, pilot)
        await pilot.press("f8")
        await pilot.pause()
        await pilot.press(*"please", "enter")
        for _ in range(250):
            await pilot.pause(0.02)
            if app.store.audit_entries("acme", action="kill_switch_deactivation_refused"):
                break
    assert app.store.audit_entries("acme", action="kill_switch_deactivation_refused")
    assert [r.is_active for r in app.store.kill_switch_rows("acme") if r.scope == "global"] == [True]


async def _wait_off(app, pilot):
    app.read_kill_switch()
    return await until(pilot, lambda: app.frame.kill and not app.frame.kill.active and not app.frame.kill_pending,
                       5, 0.02)


async def test_f9_works_on_every_screen_and_in_every_dialog(tmp_path):
    """Every runbook screen (reached directly here: gating has its own tests), the audit log, the
    locked-step dialog and the rollback decision's reason Input: F9 turns the switch on at once."""
    from screens.locked import StepLocked
    from screens.rollback import RollbackScreen

    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        # the steps' screens are installed as the app starts: iterate once they all are
        assert await until(pilot, lambda: "report" in app.steps)
        places = []
        for name in list(app.steps):
            app.switch_screen(name)
            await pilot.pause(0.05)
            places.append(name)
            await pilot.press("f9")
            assert app.frame.kill_active, name
            assert await _wait_active(app, pilot), name
            app.store.set_kill_switch("acme", "global", False, "nok@10.0.0.9", "next screen")
            assert await _wait_off(app, pilot), name
        app.push_screen(StepLocked("3 Size gate", []))
        await pilot.pause(0.05)
        await pilot.press("f9")
        assert await _wait_active(app, pilot), "locked dialog"
        app.store.set_kill_switch("acme", "global", False, "nok@10.0.0.9", "next")
        assert await _wait_off(app, pilot)
        await pilot.press("escape")
        app.switch_screen("rollback")
        await pilot.pause(0.05)
        assert isinstance(app.screen, RollbackScreen)
        await pilot.press("d")  # the decision dialog, its reason Input focused
        await pilot.pause(0.1)
        assert app.focused is not None and app.focused.id == "reason"
        await pilot.press("a", "b")
        await pilot.press("f9")
        assert await _wait_active(app, pilot), "rollback reason input"
        assert app.focused.value == "ab"
    assert places == list(app.steps)
    assert len(app.store.audit_entries("acme", action="kill_switch_activated")) == len(places) + 2


async def test_a_reason_can_be_added_to_the_kill_switch_afterwards(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("f9")
        assert await _wait_active(app, pilot)
        await pilot.press("f7")
        await pilot.pause(0.1)
        await pilot.press(*"p99", "enter")
        for _ in range(250):
            await pilot.pause(0.02)
            if "(p99)" in app.frame.kill.describe():
                break
        assert app.frame.kill.active and "(p99)" in app.frame.kill.describe()
    [row] = [r for r in app.store.kill_switch_rows("acme") if r.scope == "global"]
    assert row.is_active and row.reason == "p99"


async def test_a_test_result_is_recorded_by_hand_with_its_reference(tmp_path):
    app = make_app(tmp_path, user="nok")  # the DBA
    async with app.run_test(size=(140, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if "rollback" in app.steps:
                break
        app.switch_screen("prechecks")
        await pilot.pause(0.1)
        await pilot.press("m")  # the cursor is on TC-01
        await pilot.pause(0.1)
        await pilot.press(*"CI-4512", "enter")
        for _ in range(250):
            await pilot.pause(0.02)
            if "TC-01" in app.view.self_test:
                break
    [row] = [r for r in app.store.latest_prechecks("acme", "TC-").values()]
    assert (row.check_id, row.status, row.source, row.recorded_by) == ("TC-01", "pass", "person", "nok@10.0.0.5")
    assert "CI-4512" in row.detail


def test_a_played_teammate_is_named_as_played_in_the_audit_trail():
    me = Identity("teammate", None, "jump", played_by="somchai")
    assert me.actor == "teammate@jump (played by somchai)"
    assert Identity("somchai", "10.0.0.5", "jump").actor == "somchai@10.0.0.5"


async def test_the_monitoring_toast_waits_until_step_5_can_open(tmp_path):
    """Issue 18: on the Execution step a toast said "5 shows the live dashboard" while step 5 was
    still locked ("the ALTER has not run": the view read before the executor's event). It comes only
    once the Monitoring step can open."""
    from engine.adapters.store import ExecutionRun

    app = make_app(tmp_path)
    said = "The monitoring window is running"
    async with app.run_test(size=(140, 40)) as pilot:
        store = app.store
        run = store.create_run(ExecutionRun(tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop",
                                            table_name="orders", index_name="idx_orders_customer_created",
                                            columns=[["customer_id", None], ["created_at", None]]), "somchai@10.0.0.5")
        store.claim("acme", run.id, "worker-1", 3600)
        store.transition("acme", run.id, "running", "somchai@10.0.0.5")
        app.refresh_view()
        assert await until(pilot, lambda: app.view.run is not None and {"execution", "monitoring"} <= set(app.steps),
                           10, 0.02)
        app._exec_event("monitoring", {})
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "monitoring" in app.frame.locked, "the ALTER has not run as far as this view knows"
        assert not [n for n in app._notifications if said in n.message], "no toast while step 5 is locked"

        now = app.clock.now()
        store.update_run("acme", run.id, alter_started_at=now, alter_finished_at=now, index_created_by_run=True)
        app.refresh_view()
        assert await until(pilot, lambda: "monitoring" not in app.frame.locked, 10, 0.02)
        await pilot.pause()
        assert len([n for n in app._notifications if said in n.message]) == 1
        app.refresh_view()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len([n for n in app._notifications if said in n.message]) == 1, "said once"


async def test_the_audit_log_says_so_in_the_step_bar_rather_than_highlight_a_step(tmp_path):
    """The walk at 80×24: F2 from the Report highlighted "8 Report" over the audit log."""
    from screens.frame import StepBar

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: isinstance(app.screen, PlanScreen), 5)
        bar = str(app.screen.query_one(StepBar).render())
        assert "[reverse] 1 Plan [/reverse]" in bar
        await pilot.press("f2")
        assert await until(pilot, lambda: isinstance(app.screen, AuditScreen), 5)
        await pilot.pause()
        bar = str(app.screen.query_one(StepBar).render())
        assert bar.count("[reverse]") == 1 and "[reverse] Audit log [/reverse]" in bar, bar
        assert "1 Plan" not in bar, "no step is shown as the current one"
        await pilot.press("escape")
        assert await until(pilot, lambda: isinstance(app.screen, PlanScreen), 5)
        await pilot.pause()
        bar = str(app.screen.query_one(StepBar).render())
        assert "[reverse] 1 Plan [/reverse]" in bar and "Audit" not in bar


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
async def test_sigterm_and_sighup_close_the_console_as_ctrl_q_does(tmp_path, sig):
    """``kill`` (SIGTERM) or a dropped SSH session (SIGHUP) ended the process where it stood: the
    terminal left in the console's screen and raw mode, a drill's sandbox not stopped, nothing said.
    Now the console closes as Ctrl+Q does, says why, and gives the process its handlers back."""
    import os
    import signal

    before = signal.getsignal(signal.Signals[sig])
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        os.kill(os.getpid(), signal.Signals[sig])
        await until(pilot, lambda: app.closed_by is not None, 5)
    assert app.closed_by == sig and app.return_code == 1
    assert signal.getsignal(signal.Signals[sig]) == before, "the process's own handler is back"
