"""SVG snapshots of the runbook screens in their significant states (pytest-textual-snapshot).

Deterministic: a frozen clock drives the store's timestamps and the App's; the run, the checks,
the approvals and the ALTER's progress are injected as plain data. No server is needed: the
target is a port nobody listens on (the health check says so, and that is part of the picture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from test_console_pilot import PLAN, SteadyKillSwitch

from console.app import CanaryApp
from engine.adapters.identity import Identity
from engine.adapters.store import Approval, ExecutionRun, PrecheckResult, Store
from engine.domain.clock import FrozenClock
from engine.domain.plan import parse_plan
from engine.flows import prechecks
from engine.flows.runbook import STEPS, missing_for
from screens.execution import AlterProgress
from screens.locked import StepLocked
from screens.sizegate import TableSize

T0 = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # 23:00 at UTC+7: off-peak
PEOPLE = """
[[people]]
name = "Arun"
role = "sre"
unix_user = "arun"
[[people]]
name = "Dao"
role = "developer"
unix_user = "dao"
handle = "@dao"
"""


def world(tmp_path, minutes_in=20):
    clock = FrozenClock(T0)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=clock)
    plan = parse_plan(PLAN.replace('host = "10.0.0.12"', 'host = "127.0.0.1"\nport = 9') + PEOPLE, "canary.toml")
    for case in ("TC-02", "TC-03", "TC-09", "TC-01", "TC-06"):
        store.save_precheck(PrecheckResult(tenant_id="acme", check_id=case, status="pass", detail="x: ok",
                                           source="self-test", recorded_by="somchai@10.0.0.5", recorded_at=T0))
    run = store.create_run(ExecutionRun(id="1a2b3c4d-0000-4000-8000-000000000001", tenant_id="acme",
                                        connection_profile_id="orders-primary", schema_name="shop",
                                        table_name="orders", index_name="idx_orders_customer_created",
                                        columns=[["customer_id", None], ["created_at", None]]), "somchai@10.0.0.5")
    clock.advance(minutes_in * 60)
    return clock, store, plan, run


def record(store, plan, run, cid, status, detail, query=None):
    prechecks.record(store, plan, run.id, prechecks.Finding(cid, status, detail, query), "somchai@10.0.0.5")


def approve(store, run, kind, role, actor, clock):
    store.add_approval(Approval(tenant_id="acme", execution_run_id=run.id, kind=kind, role=role, actor=actor,
                                created_at=clock.now()))


def all_checks_pass(store, plan, run, clock):
    for c in prechecks.CHECKS:
        if c.id not in ("rb.prepared",):
            record(store, plan, run, c.id, "skip" if c.id in ("env.prometheus", "env.webhook", "rb.scratch")
                   else "pass", {"db.row_count": "~1,204,311 rows (TABLE_ROWS estimate), data 182.4 MB, indexes 61.0 MB",
                                 "ks.response_time": "3 ms (ok)"}.get(c.id, "ok"))
    approve(store, run, "rollback_prepared", "dba", "nok@10.0.0.9", clock)
    for role, actor in (("canary_lead", "somchai@10.0.0.5"), ("dba", "nok@10.0.0.9"), ("sre", "arun@10.0.0.7")):
        approve(store, run, "presence", role, actor, clock)


def app_for(clock, store, plan, user="somchai"):
    return CanaryApp(plan, store, Identity(user, "10.0.0.5", "jump"), clock, SteadyKillSwitch(store), poll=False)


async def quiet(app, pilot):
    """Every worker done and the screen redrawn: what a snapshot may show (a loaded machine — the
    suite runs in parallel — must not change the picture)."""
    from textual.widgets import Input

    for _ in range(3):
        await app.workers.wait_for_complete()
        for field in app.screen.query(Input):
            field.cursor_blink = False  # the cursor always drawn, never caught mid-blink
        await pilot.pause(0.05)


def settle(app, step, then=None):
    async def run_before(pilot):
        for _ in range(100):
            await pilot.pause(0.02)
            if app.view.run is not None and app.frame.kill is not None and "report" in app.steps:
                break
        if step != "plan":
            app.switch_screen(step)
        await pilot.pause(0.05)
        app.screen.show_view(app.view, app.clock.now())
        await quiet(app, pilot)
        if then:
            then(app)
        await quiet(app, pilot)
    return run_before


def test_prechecks_in_progress(snap_compare, term, tmp_path):
    clock, store, plan, run = world(tmp_path, minutes_in=6)
    record(store, plan, run, "env.store", "pass", "sqlite store answers")
    record(store, plan, run, "env.kill_switch_api", "pass", "embedded answered in 2 ms")
    record(store, plan, run, "env.target", "pass", "MariaDB 10.11.9 as canary", "SELECT VERSION()")
    record(store, plan, run, "db.table_exists", "pass", "shop.orders (InnoDB)")
    record(store, plan, run, "db.no_long_trx", "fail", "thread 812 (report) open 431 s: they would block the "
           "ALTER's metadata lock")
    approve(store, run, "signoff", "canary_lead", "somchai@10.0.0.5", clock)
    app = app_for(clock, store, plan)
    assert snap_compare(app, terminal_size=term, run_before=settle(app, "prechecks"))


def test_prechecks_done_and_signed(snap_compare, term, tmp_path):
    clock, store, plan, run = world(tmp_path)
    all_checks_pass(store, plan, run, clock)
    for role, actor in (("canary_lead", "somchai@10.0.0.5"), ("dba", "nok@10.0.0.9"), ("sre", "arun@10.0.0.7")):
        approve(store, run, "signoff", role, actor, clock)
    app = app_for(clock, store, plan)
    assert snap_compare(app, terminal_size=term, run_before=settle(app, "prechecks"))


def test_a_locked_step_says_what_is_missing_and_who_provides_it(snap_compare, term, tmp_path):
    clock, store, plan, run = world(tmp_path, minutes_in=6)
    app = app_for(clock, store, plan, user="arun")

    def locked(app):
        app.push_screen(StepLocked("3 Size gate", missing_for("size_gate", app.view, clock.now())))
    assert snap_compare(app, terminal_size=term, run_before=settle(app, "prechecks", locked))


def _gate(tmp_path, status, detail, approved=False):
    clock, store, plan, run = world(tmp_path)
    all_checks_pass(store, plan, run, clock)
    record(store, plan, run, "gate.size", status, detail)
    if approved:
        approve(store, run, "size_gate", "dba", "nok@10.0.0.9", clock)
    if status == "fail":
        store.transition("acme", run.id, "cancelled", "somchai@10.0.0.5", fail_reason="out_of_scope",
                         message=f"size gate BLOCK: {detail}")
    app = app_for(clock, store, plan)

    def size(app):
        rows = int(detail.split()[0].replace(",", ""))
        app.screen.show_size(TableSize(rows, rows * 152 / 1e6, rows * 51 / 1e6))
    return app, settle(app, "size_gate", size)


def test_size_gate_warning_waits_for_the_dba(snap_compare, term, tmp_path):
    app, before = _gate(tmp_path, "warn", "7,012,554 rows (estimated) > 5,000,000: the DBA must approve; "
                        "monitoring doubled")
    assert snap_compare(app, terminal_size=term, run_before=before)


def test_size_gate_block_cancels_the_run(snap_compare, term, tmp_path):
    app, before = _gate(tmp_path, "fail", "23,400,120 rows (estimated) > 10,000,000: no DDL in this phase; "
                        "run cancelled for this table")
    assert snap_compare(app, terminal_size=term, run_before=before)


def test_execution_with_the_alter_in_progress_and_a_session_queued(snap_compare, term, tmp_path):
    clock, store, plan, run = world(tmp_path)
    all_checks_pass(store, plan, run, clock)
    store.claim("acme", run.id, "somchai@jump:4242", 30)
    store.transition("acme", run.id, "running", "somchai@10.0.0.5")
    store.audit("acme", "somchai@10.0.0.5", "baseline_sampling", run.id, {"seconds": 300})
    clock.advance(300)
    store.audit("acme", "somchai@10.0.0.5", "baseline_captured", run.id, {"digests": 3})
    store.update_run("acme", run.id, alter_thread_id=4711, alter_started_at=clock.now())
    store.audit("acme", "somchai@10.0.0.5", "alter_started", run.id,
                {"sql": "ALTER /* canary-console:alter run=1a2b… */ TABLE `shop`.`orders` ADD INDEX "
                        "`idx_orders_customer_created` (`customer_id`, `created_at`), ALGORITHM=INPLACE, LOCK=NONE",
                 "thread_id": 4711, "lock_wait_timeout": 5})
    clock.advance(42)
    app = app_for(clock, store, plan)
    app.driving = True

    def progress(app):
        screen = app.screen
        screen.show_entries(store.audit_entries("acme", run_id=run.id))
        screen.show_progress(AlterProgress("alter table (read PK and internal sort)", 0.46, 42.0,
                                           ({"thread_id": 5120, "time": 3, "info": "UPDATE orders SET total = …"},),
                                           ()))
    async def run_before(pilot):
        await settle(app, "execution")(pilot)
        for _ in range(200):  # the announcement is rendered from the run on a worker
            await pilot.pause(0.02)
            if app.steps["execution"].announcement:
                break
        progress(app)
        await quiet(app, pilot)
    assert snap_compare(app, terminal_size=term, run_before=run_before)


def test_every_step_is_locked_until_its_time(tmp_path):
    clock, store, plan, run = world(tmp_path, minutes_in=6)
    from engine.flows.runbook import load_view
    view = load_view(store, "acme", run.id)
    locked = {s for s in STEPS if missing_for(s, view, clock.now())}
    assert locked == {"size_gate", "execution", "monitoring", "decision", "rollback"}
    clock.advance(timedelta(minutes=10).total_seconds())
    all_checks_pass(store, plan, run, clock)
    for role, actor in (("canary_lead", "a"), ("dba", "b"), ("sre", "c")):
        approve(store, run, "signoff", role, actor, clock)
    view = load_view(store, "acme", run.id)
    assert not missing_for("size_gate", view, clock.now())
    assert missing_for("execution", view, clock.now())[0].what.startswith("the table-size gate")


def test_audit_log_filtered(snap_compare, term, tmp_path):
    clock, store, plan, run = world(tmp_path)
    all_checks_pass(store, plan, run, clock)
    store.set_kill_switch("acme", "global", True, "nok@10.0.0.9", "p99 doubling")
    app = app_for(clock, store, plan)

    async def run_before(pilot):
        await settle(app, "prechecks")(pilot)
        await pilot.press("f2")
        await quiet(app, pilot)
        await pilot.press(*"kill")
        await quiet(app, pilot)
    assert snap_compare(app, terminal_size=term, run_before=run_before)


def test_deactivation_dialog_names_the_scopes_and_asks_for_a_reason(snap_compare, term, tmp_path):
    clock, store, plan, run = world(tmp_path)
    store.set_kill_switch("acme", "global", True, "nok@10.0.0.9", "p99 doubling")
    app = app_for(clock, store, plan)

    async def run_before(pilot):
        await settle(app, "prechecks")(pilot)
        await pilot.press("f8")
        await quiet(app, pilot)
    assert snap_compare(app, terminal_size=term, run_before=run_before)
