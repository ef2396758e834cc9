"""The runbook walked in the console, under Textual's Pilot, against the sandbox MariaDB: plan →
prechecks → size gate → execution → the monitoring hand-off; the gate's WARNING and BLOCK; the
kill switch during the ALTER; roles; two consoles on one store.

The clock is a FrozenClock the test advances (the 15 minutes of prechecks pass at once); the
server, the store and the executor are real.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from waits import until

from console.app import CanaryApp
from engine.adapters.identity import Identity
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import PrecheckResult, Store
from engine.adapters.target import Target
from engine.domain.clock import FrozenClock, utcnow
from engine.domain.identifiers import qualified
from engine.domain.plan import plan_from_dict, window_covering
from engine.drill.selftest import PRIORITY
from screens.confirm import ConfirmStatement
from screens.decision import OpenRollback
from screens.execution import ExecutionScreen
from screens.locked import StepLocked
from screens.monitoring import MonitoringScreen
from screens.prechecks import PrechecksScreen
from screens.report import ReportScreen
from screens.rollback import RollbackScreen
from screens.sizegate import SizeGateScreen

pytestmark = [pytest.mark.long, pytest.mark.mariadb]
ALL_ROLES = ["canary_lead", "dba", "sre", "developer"]


def make_plan(lab, db, index, people=None, **executor):
    opts = {"mode": "canary", "cooldown_seconds": 2, "baseline_window_seconds": 10, "baseline_extend_max_seconds": 0,
            "lease_seconds": 10, "lock_wait_timeout": 2}
    opts.update(executor)
    return plan_from_dict({
        "tenant": "console",
        "connection": {"id": "sbx-console", "host": "127.0.0.1", "port": lab.sandbox.primary.port, "user": "root",
                       "database": db},
        "change": {"table": "orders", "index": index, "columns": ["customer_id", "created_at"]},
        "people": people or [{"name": "Lead", "roles": ALL_ROLES, "unix_user": "lead"}],
        "window": window_covering(utcnow()),
        "executor": opts,
    }, source=f"console-test:{db}")


def passed_self_test(store, tenant):
    """The self-test's P0 rows, as `canary-console self-test` records them (its cases are tested in
    tests/test_tc_cases.py; here they are the precondition)."""
    for case in (c for c, p in PRIORITY.items() if p == "P0"):
        store.save_precheck(PrecheckResult(tenant_id=tenant, check_id=case, priority="P0", status="pass",
                                           detail="recorded for the console test", source="self-test",
                                           recorded_by="tester"))


def make_app(plan, store, user="lead", clock=None, poll=True, role=None):
    clock = clock or FrozenClock(utcnow().replace(microsecond=0))
    return CanaryApp(plan, store, Identity(user, "10.0.0.5", "jump"), clock, EmbeddedKillSwitch(store),
                     poll=poll, role=role)


def set_estimate(lab, db, rows):
    """Make InnoDB's row estimate (information_schema.TABLES.TABLE_ROWS) say ``rows``: the persistent
    statistics are the server's own source for it (a rename makes InnoDB reload them). The gate
    reads the real catalogue."""
    with lab.admin() as c, c.cursor() as cur:
        cur.execute(f"ANALYZE TABLE {qualified(db, 'orders')}")
        cur.fetchall()
        cur.execute("UPDATE mysql.innodb_table_stats SET n_rows = %s WHERE database_name = %s "
                    "AND table_name = 'orders'", (rows, db))
        c.commit()
        # InnoDB reloads a table's persistent statistics when the table is opened afresh.
        table, aside = qualified(db, "orders"), qualified(db, "orders_stats")
        cur.execute(f"RENAME TABLE {table} TO {aside}, {aside} TO {table}")


@pytest.fixture(scope="module")
def small_db(lab):
    db = lab.database("cc_console")
    lab.load_orders(db, 20_000)
    return db


async def walk_prechecks(app, pilot, clock):
    """Begin, run every check, the kill-switch test, the DBA's confirmation, three sign-offs, and
    the 15 minutes; returns once the size gate is open."""
    await pilot.press("b")
    assert await until(pilot, lambda: app.view.run is not None and isinstance(app.screen, PrechecksScreen))
    await pilot.press("r")
    assert await until(pilot, lambda: "team.present" in app.view.prechecks)
    await pilot.press("k")
    assert await until(pilot, lambda: "ks.deactivate" in app.view.prechecks)
    await pilot.press("p")  # the statement is shown first; the DBA confirms it
    assert await until(pilot, lambda: isinstance(app.screen, ConfirmStatement))
    app.screen.query_one("#confirm").press()
    assert await until(pilot, lambda: app.view.approvals_of("rollback_prepared"))
    for n in (1, 2, 3):
        await pilot.press("s")
        assert await until(pilot, lambda n=n: len(app.view.signoffs()) == n)
    failing = {k: v.detail for k, v in app.view.prechecks.items() if v.status not in ("pass", "skip", "warn")}
    assert not failing, failing
    await pilot.press("3")  # not yet: the minimum 15 minutes of prechecks
    await pilot.pause(0.1)
    assert isinstance(app.screen, StepLocked)
    assert any("15 minutes" in m.what for m in app.screen.missing)
    await pilot.press("escape")
    clock.advance(16 * 60)
    await pilot.press("3")
    assert await until(pilot, lambda: isinstance(app.screen, SizeGateScreen))


def driving_console(plan, tmp_path, user="lead"):
    """A store with the P0 self-test passed, a frozen clock, and the console of ``user`` on it."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    passed_self_test(store, plan.tenant)
    clock = FrozenClock(utcnow().replace(microsecond=0))
    return store, clock, make_app(plan, store, user=user, clock=clock)


async def execute_until(app, pilot, clock, action, seconds):
    """The prechecks walked, the size gate passed, ``g`` pressed; returns once the run's audit trail
    has ``action`` (alter_started, monitoring_started…)."""
    await walk_prechecks(app, pilot, clock)
    await pilot.press("c")
    assert await until(pilot, lambda: app.view.gate() is not None)
    assert app.view.gate().status == "pass", app.view.gate().detail
    await pilot.press("4")
    assert await until(pilot, lambda: isinstance(app.screen, ExecutionScreen))
    await pilot.press("g")
    assert await until(pilot, lambda: app.store.audit_entries(app.plan.tenant, app.run_id, action), seconds)


async def test_happy_path_from_the_plan_to_the_monitoring_hand_off(lab, small_db, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    index = "idx_console_happy"
    lab.drop_index_if_present(small_db, "orders", index)
    plan = make_plan(lab, small_db, index)
    store, clock, app = driving_console(plan, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await execute_until(app, pilot, clock, "monitoring_started", 90)
        run = store.get_run(plan.tenant, app.run_id)
        assert run.status == "running" and run.index_created_by_run
        assert app.frame.driver == "you drive"
        screen = app.screen
        assert await until(pilot, lambda: "[CANARY START]" in screen.announcement and run.id[:8] in screen.announcement)
        await pilot.press("c")  # copy the announcement (OSC 52)
        assert await until(pilot, lambda: store.audit_entries(plan.tenant, run.id, "run_announced"))
        await pilot.press("5")  # the live dashboard, from the stored samples
        assert await until(pilot, lambda: isinstance(app.screen, MonitoringScreen) and app.screen.view is not None
                           and app.screen.view.tiles, 20)
        assert {t.key for t in app.screen.view.tiles} >= {"latency_p50", "threads_running"}
        await pilot.press("8")
        assert await until(pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.facts is not None)
        await pilot.press("e")
        assert await until(pilot, lambda: store.audit_entries(plan.tenant, run.id, "report_exported"))
        [exported] = (tmp_path / "state" / "canary-console" / "reports").glob("canary-report-*.md")
        assert index in exported.read_text() and "running" in exported.read_text()
    with Target(plan.connection).session("verify") as s:
        assert s.index_exists(plan.schema, "orders", index)
    actions = [e.action for e in store.audit_entries(plan.tenant)]  # the kill-switch test is tenant-wide
    for expected in ("run_created", "presence_approve", "precheck_recorded", "kill_switch_activated",
                     "rollback_prepared_approve", "signoff_approve", "claimed", "baseline_sampling",
                     "alter_started", "index_added", "monitoring_started"):
        assert expected in actions, expected
    assert actions.index("signoff_approve") < actions.index("alter_started") < actions.index("index_added")


async def test_gate_warning_needs_the_dba_and_block_cancels_the_run(lab, small_db, tmp_path):
    index = "idx_console_gate"
    lab.drop_index_if_present(small_db, "orders", index)
    plan = make_plan(lab, small_db, index, people=[
        {"name": "Lead", "roles": ["canary_lead", "sre"], "unix_user": "lead"},
        {"name": "Nok", "roles": ["dba"], "unix_user": "nok"},
        {"name": "Dao", "roles": ["developer"], "unix_user": "dao"}])  # required personnel (runbook 2.5.1)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    passed_self_test(store, plan.tenant)
    clock = FrozenClock(utcnow().replace(microsecond=0))
    lead, dba = make_app(plan, store, clock=clock), make_app(plan, store, user="nok", clock=clock)
    try:
        set_estimate(lab, small_db, 7_000_000)
        async with lead.run_test(size=(160, 50)) as p1:
            await p1.press("b")
            assert await until(p1, lambda: lead.view.run is not None)
            async with dba.run_test(size=(160, 50)) as p2:
                assert await until(p2, lambda: dba.view.run is not None and "dba" in dba.view.present_roles())
                dba.action_goto("prechecks")
                await p2.press("p")  # the statement shown first: the DBA confirms it
                assert await until(p2, lambda: isinstance(dba.screen, ConfirmStatement))
                dba.screen.query_one("#confirm").press()
                assert await until(p2, lambda: not isinstance(dba.screen, ConfirmStatement))
                await p2.press("s")
                assert await until(p1, lambda: "dba" in lead.view.signoffs(), 3)
                await p1.press("r", "k")
                assert await until(p1, lambda: {"team.present", "ks.deactivate"} <= set(lead.view.prechecks))
                await p1.press("s", "s")
                assert await until(p1, lambda: len(lead.view.signoffs()) == 3)
                clock.advance(16 * 60)
                await p1.press("3")
                assert await until(p1, lambda: isinstance(lead.screen, SizeGateScreen))
                await p1.press("c")
                assert await until(p1, lambda: lead.view.gate() is not None)
                assert lead.view.gate().status == "warn" and "7,000,000" in lead.view.gate().detail
                await p1.press("a")  # the lead is not the DBA: refused and audited
                assert await until(p1, lambda: store.audit_entries(plan.tenant, action="size_gate_approval_refused"))
                await p1.press("4")
                await p1.pause(0.1)
                assert isinstance(lead.screen, StepLocked) and "DBA approves" in str(lead.screen.missing)
                await p1.press("escape")
                dba.action_goto("size_gate")
                await p2.press("a")
                assert await until(p1, lambda: lead.view.approvals_of("size_gate"), 3)
                await p1.press("4")
                assert await until(p1, lambda: isinstance(lead.screen, ExecutionScreen))

                # The same table at twenty million rows: BLOCK, no DDL, the run cancelled with the reason.
                set_estimate(lab, small_db, 20_000_000)
                lead.action_goto("size_gate")
                await p1.press("c")
                assert await until(p1, lambda: lead.view.run.status == "cancelled")
        run = store.get_run(plan.tenant, lead.run_id)
        assert run.fail_reason == "out_of_scope" and "BLOCK" in run.error_message
        assert store.audit_entries(plan.tenant, run.id, "size_gate_block")
        assert run.alter_started_at is None
    finally:
        with lab.admin() as c, c.cursor() as cur:
            cur.execute(f"ANALYZE TABLE {qualified(small_db, 'orders')}")  # the true estimate back
            cur.fetchall()


async def test_near_a_boundary_the_gate_counts_exactly(lab, small_db, tmp_path):
    plan = make_plan(lab, small_db, "idx_console_exact")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    app = make_app(plan, store)
    try:
        set_estimate(lab, small_db, 5_400_000)  # within 25 % of 5M: the estimate is not trusted
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("b")
            assert await until(pilot, lambda: app.view.run is not None)
            app.switch_screen("size_gate")
            await pilot.press("c")
            assert await until(pilot, lambda: app.view.gate() is not None)
        gate = app.view.gate()
        assert gate.status == "pass" and "20,000 rows (exactly)" in gate.detail
    finally:
        with lab.admin() as c, c.cursor() as cur:
            cur.execute(f"ANALYZE TABLE {qualified(small_db, 'orders')}")
            cur.fetchall()


@pytest.mark.slow
async def test_kill_switch_during_the_alter_from_the_console(lab, tmp_path):
    db = lab.big_table(1_000_000)
    index = "idx_console_kill"
    lab.drop_index_if_present(db, "orders", index)
    # An observer holds the table open in a transaction from before the ALTER: the ALTER waits for
    # its metadata lock (up to 30 s) and cannot commit before F9 reaches it, however loaded the
    # machine is.
    plan = make_plan(lab, db, index, baseline_window_seconds=0, cooldown_seconds=0, lock_wait_timeout=30)
    plan = plan_from_dict({**plan.raw, "change": {"table": "orders", "index": index,
                                                   "columns": ["note", "status", "total"]}}, source="kill")
    store, clock, app = driving_console(plan, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await walk_prechecks(app, pilot, clock)
        await pilot.press("c")
        assert await until(pilot, lambda: app.view.gate() is not None and app.view.gate().status == "pass")
        await pilot.press("4")
        assert await until(pilot, lambda: isinstance(app.screen, ExecutionScreen))
        with Target(plan.connection).session("observer") as s:
            s.execute("START TRANSACTION")
            s.query(f"SELECT 1 FROM {qualified(db, 'orders')} LIMIT 1")  # noqa: S608 - a quoted name
            await pilot.press("g")
            assert await until(pilot, lambda: s.find_alter(app.run_id) is not None, 30)
            await pilot.press("f9")
            assert app.frame.kill_active
            assert await until(pilot, lambda: app.view.run.status == "cancelled", 30)
            s.execute("ROLLBACK")
    run = store.get_run(plan.tenant, app.run_id)
    assert run.fail_reason == "kill_switch"
    assert not lab.index_exists(plan)
    assert store.audit_entries(plan.tenant, run.id, "alter_killed")


async def test_actions_outside_your_role_are_refused_and_audited(lab, small_db, tmp_path):
    plan = make_plan(lab, small_db, "idx_console_roles", people=[
        {"name": "Lead", "roles": ["canary_lead"], "unix_user": "lead"},
        {"name": "Dev", "roles": ["developer"], "unix_user": "dev"}])
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    app = make_app(plan, store, user="dev")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("b")  # only the canary lead begins the prechecks
        assert await until(pilot, lambda: store.audit_entries(plan.tenant, action="begin_prechecks_refused"))
        assert app.view.run is None
        await pilot.press("2")
        await pilot.pause(0.1)
        assert isinstance(app.screen, StepLocked) and "canary lead begins" in str(app.screen.missing)
    [entry] = store.audit_entries(plan.tenant, action="begin_prechecks_refused")
    assert entry.actor == "dev@10.0.0.5" and entry.details["needed"] == ["canary_lead"]


def test_a_role_you_do_not_hold_is_refused_at_start(lab, small_db, tmp_path):
    plan = make_plan(lab, small_db, "idx_console_role")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(ValueError, match="holds"):
        make_app(plan, store, user="nobody", role="dba")
    app = make_app(plan, store, role="dba")
    assert app.roles == ("dba",)


async def test_two_consoles_on_one_store_see_each_others_sign_offs_within_a_second(lab, small_db, tmp_path):
    plan = make_plan(lab, small_db, "idx_console_two", people=[
        {"name": "Lead", "roles": ["canary_lead"], "unix_user": "lead"},
        {"name": "Nok", "roles": ["dba"], "unix_user": "nok"},
        {"name": "Arun", "roles": ["sre"], "unix_user": "arun"},  # required personnel (runbook 2.5.1)
        {"name": "Dao", "roles": ["developer"], "unix_user": "dao"}])
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    lead, dba = make_app(plan, store), make_app(plan, store, user="nok")
    async with lead.run_test(size=(140, 40)) as p1:
        await p1.press("b")
        assert await until(p1, lambda: lead.view.run is not None)
        async with dba.run_test(size=(140, 40)) as p2:
            assert await until(p2, lambda: dba.view.run is not None)
            assert dba.view.run.id == lead.view.run.id, "the second console joins the same run"
            dba.action_goto("prechecks")
            await p2.press("s")
            started = datetime.now(UTC)
            assert await until(p1, lambda: lead.view.signoffs().get("dba") == "nok@10.0.0.5", 3)
            assert (datetime.now(UTC) - started).total_seconds() < 1.5
            await p1.press("s")
            assert await until(p2, lambda: dba.view.signoffs().get("canary_lead") == "lead@10.0.0.5", 3)


async def test_kill_switch_after_the_alter_then_a_manual_rollback_with_approvals(lab, small_db, tmp_path):
    """F9 during the monitoring window: the run is cancelled with the index left in place; the
    lead decides the rollback, the DBA (another console) approves, the DROP runs, the index is gone."""
    index = "idx_console_rollback"
    lab.drop_index_if_present(small_db, "orders", index)
    plan = make_plan(lab, small_db, index, people=[
        {"name": "Lead", "roles": ALL_ROLES, "unix_user": "lead"},
        {"name": "Nok", "roles": ["dba"], "unix_user": "nok"}])
    store, clock, lead = driving_console(plan, tmp_path)
    async with lead.run_test(size=(160, 50)) as pilot:
        await execute_until(lead, pilot, clock, "monitoring_started", 90)
        await pilot.press("f9")
        assert await until(pilot, lambda: lead.view.run.status == "cancelled", 30)
        assert lead.view.run.index_created_by_run and lab.index_exists(plan), "after the ALTER: the index stays"
        store.set_kill_switch(plan.tenant, "global", False, "nok@10.0.0.5", "cause found")

        await pilot.press("7")
        assert await until(pilot, lambda: isinstance(lead.screen, RollbackScreen) and lead.screen.view is not None)
        assert lead.screen.selected == "kill_switch", "the trigger is suggested from the kill switch's record"
        # What the Decision step's g posts (screens/decision.py): the App hands trigger and metrics over.
        seen = {"lock_wait": {"label": "Lock wait time", "value": 0.2, "unit": "s", "baseline": 0.0}}
        lead.post_message(OpenRollback(seen, "kill_switch"))
        assert await until(pilot, lambda: lead.steps["rollback"].preset_metrics == seen)
        await pilot.press("d")
        await pilot.pause(0.1)
        await pilot.press(*"killed-after-the-ALTER", "enter")
        assert await until(pilot, lambda: store.audit_entries(plan.tenant, lead.run_id, "rollback_decided"))
        [decided] = [r for r in store.rollback_records(plan.tenant, lead.run_id)
                     if "decision_approval" in (r.rollback_details or {})]
        assert decided.rollback_details["metrics_at_decision"] == seen, "R1 records the Decision step's metrics"
        await pilot.press("x")  # before the DBA approved: refused, and the index stays
        await pilot.pause(0.1)
        await pilot.press(*index, "enter")
        assert await until(pilot, lambda: store.audit_entries(plan.tenant, action="rollback_execution_refused"), 5)
        assert lab.index_exists(plan)

        dba = make_app(plan, store, user="nok", clock=clock)
        async with dba.run_test(size=(160, 50)) as p2:
            assert await until(p2, lambda: dba.view.run is not None)
            dba.action_goto("rollback")
            assert await until(p2, lambda: isinstance(dba.screen, RollbackScreen) and dba.screen.view is not None)
            await p2.press("a")
            await p2.pause(0.1)
            await p2.click("#approve")
            assert await until(p2, lambda: store.audit_entries(plan.tenant, lead.run_id, "rollback_approve"))

        await pilot.press("x")
        await pilot.pause(0.1)
        await pilot.press(*index, "enter")
        assert await until(pilot, lambda: store.get_run(plan.tenant, lead.run_id).status == "rolled_back", 30)
    assert not lab.index_exists(plan)
    run = store.get_run(plan.tenant, lead.run_id)
    assert run.fail_reason == "manual_rollback"
    actions = [e.action for e in store.audit_entries(plan.tenant, run.id)]
    assert actions.index("rollback_decided") < actions.index("rollback_approve") < actions.index(
        "rollback_completed")
