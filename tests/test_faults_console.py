"""The drill's fault keys in the console (F6, rehearsal plans only): the dialog lists the faults,
a key turns one on against the real sandbox and off again, the frame says it is on, and both are
in the audit trail. A real plan has no fault keys at all."""

from __future__ import annotations

import pytest
from test_console_flow import make_app, make_plan
from waits import until

from engine.adapters.store import Store
from engine.domain.plan import plan_from_dict
from screens.faults import FaultsDialog
from screens.frame import RunFrame

pytestmark = [pytest.mark.mariadb]


@pytest.fixture(scope="module")
def faults_db(lab):
    db = lab.database("cc_faults_console")
    lab.load_orders(db, 5_000)
    return db


async def test_f6_turns_a_fault_on_and_off_in_a_drill(lab, faults_db, tmp_path):
    plan = make_plan(lab, faults_db, "idx_faults")
    plan = plan_from_dict({**plan.raw, "rehearsal": True}, source="drill")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    app = make_app(plan, store)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f6")
        assert await until(pilot, lambda: isinstance(app.screen, FaultsDialog))
        assert [r.key for r in app.screen.rows] == ["l", "L", "s", "e", "m"], "no replica: no lag fault"
        await pilot.press("m")
        assert await until(pilot, lambda: app.frame.faults == ("long transaction (mdl)",), 15)
        assert await until(pilot, lambda: any(r.key == "m" and r.active_since for r in app.screen.rows), 5)
        await pilot.press("m")
        assert await until(pilot, lambda: app.frame.faults == (), 15)
        await pilot.press("escape")
    actions = [e.action for e in store.audit_entries(plan.tenant)]
    assert "fault_started" in actions and "fault_stopped" in actions


async def test_the_teammates_frame_shows_the_fault_marker_too(lab, faults_db, tmp_path):
    """Two consoles on one drill: the driver's F6 turns a fault on; the teammate's frame — another
    process, the same store — says FAULT within a poll, and stops saying it when it is off."""
    plan = make_plan(lab, faults_db, "idx_faults_mate")
    plan = plan_from_dict({**plan.raw, "rehearsal": True}, source="drill")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    driver, mate = make_app(plan, Store(url)), make_app(plan, Store(url), user="mate")
    async with driver.run_test(size=(160, 50)) as dp, mate.run_test(size=(100, 30)) as mp:
        await dp.press("f6")
        assert await until(dp, lambda: isinstance(driver.screen, FaultsDialog))
        await dp.press("m")
        assert await until(dp, lambda: driver.frame.faults == ("long transaction (mdl)",), 15)
        assert await until(mp, lambda: mate.frame.faults == ("long transaction (mdl)",), 15)
        assert "FAULT: long transaction (mdl)" in str(mate.screen.query_one(RunFrame).render())
        await dp.press("m")
        assert await until(mp, lambda: mate.frame.faults == (), 15)


async def test_a_real_plan_has_no_fault_keys(lab, faults_db, tmp_path):
    plan = make_plan(lab, faults_db, "idx_faults_real")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    app = make_app(plan, store)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f6")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, FaultsDialog)
    assert not store.audit_entries(plan.tenant, action="fault_started")
