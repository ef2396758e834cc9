"""Rollback under network faults (never a double DROP), canary mode's "would roll back", and the
scope lock — against the sandbox MariaDB, through a real TCP proxy that cuts connections."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from netfault import FaultyProxy

from engine.adapters.target import Target
from engine.domain.clock import FrozenClock, utcnow
from engine.drill.selftest import _regression_workload
from engine.flows.rollback import IndexRollback

pytestmark = pytest.mark.mariadb


def _completed_run(lab, name):
    """A run that really created its index (no workload: verification inconclusive, index kept)."""
    db = lab.database(name)
    lab.load_orders(db, 5000)
    plan = lab.plan(db, f"idx_{name}", ["customer_id"], baseline_window_seconds=0.2, verify_window_seconds=0.2)
    store = lab.store(name)
    ex = lab.executor(plan, store)
    run = ex.create_run()
    out = ex.execute(run.id)
    assert out.status == "completed" and lab.index_exists(plan)
    return plan, store, store.get_run(plan.tenant, run.id)


def _drops_executed(lab, db):
    """DROP INDEX statements the server ran on this database's table (performance_schema)."""
    with lab.admin() as c, c.cursor() as cur:
        cur.execute("SELECT COALESCE(SUM(COUNT_STAR), 0) AS n FROM performance_schema.events_statements_summary_by_digest "
                    "WHERE DIGEST_TEXT LIKE %s AND DIGEST_TEXT LIKE %s", ("%DROP INDEX%", f"%`{db}`%"))
        return int(cur.fetchone()["n"])


def test_drop_whose_answer_is_lost_is_not_sent_twice(lab):
    plan, store, run = _completed_run(lab, "rb_lost")
    proxy = FaultyProxy(lab.sandbox.primary.port)
    try:
        proxy.cut_after = b"DROP INDEX"
        target = Target(replace(plan.connection, port=proxy.port))
        out = IndexRollback(store, target, "dba@test", backoff_s=0.05).drop(run, "latency +60 % for 5 min")
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert out.status == "completed", out.message
    assert "earlier attempt" in out.message
    assert not lab.index_exists(plan)
    assert _drops_executed(lab, plan.schema) == 1, "the DROP must reach the server exactly once"
    [record] = store.rollback_records(plan.tenant, run.id)
    assert [a.get("sent", False) for a in record.attempts] == [True, False]
    assert record.attempts[0]["kind"] == "lost_connection"
    final = store.get_run(plan.tenant, run.id)
    assert (final.status, final.fail_reason) == ("rolled_back", "manual_rollback")
    actions = [e.action for e in store.audit_entries(plan.tenant, run.id)]
    assert actions.count("rollback_attempt") == 1 and "rollback_attempt_failed" in actions


def test_rollback_retries_with_backoff_while_the_network_is_down(lab):
    plan, store, run = _completed_run(lab, "rb_down")
    proxy = FaultyProxy(lab.sandbox.primary.port)
    try:
        proxy.refuse_next = 2
        target = Target(replace(plan.connection, port=proxy.port))
        out = IndexRollback(store, target, "dba@test", backoff_s=0.05).drop(run, "lag 75 s")
    finally:
        proxy.close()
    assert out.status == "completed" and proxy.refused == 2
    [record] = store.rollback_records(plan.tenant, run.id)
    assert [a.get("kind") for a in record.attempts] == ["lost_connection", "lost_connection", None]
    assert _drops_executed(lab, plan.schema) == 1
    again = IndexRollback(store, Target(plan.connection), "dba@test").drop(store.get_run(plan.tenant, run.id), "again")
    assert again.status == "refused" and "already rolled back" in again.message


def test_rollback_gives_up_after_its_attempts_and_escalates(lab):
    plan, store, run = _completed_run(lab, "rb_fail")
    proxy = FaultyProxy(lab.sandbox.primary.port)
    try:
        proxy.refuse_next = 10
        target = Target(replace(plan.connection, port=proxy.port))
        out = IndexRollback(store, target, "dba@test", max_attempts=3, backoff_s=0.02).drop(run, "errors 2 %")
    finally:
        proxy.close()
    assert out.status == "failed"
    assert lab.index_exists(plan), "nothing was dropped"
    [record] = store.rollback_records(plan.tenant, run.id)
    assert record.rollback_status == "failed" and len(record.attempts) == 3
    assert any(e.details.get("level") == "L4" for e in store.audit_entries(plan.tenant, run.id, "escalation"))
    assert store.get_run(plan.tenant, run.id).status == "completed"  # unchanged: the index is still there


def test_canary_mode_records_would_roll_back_and_leaves_the_drop_to_people(lab):
    db = lab.database("canary_wrb")
    lab.load_orders(db, 60000)
    plan = lab.plan(db, "idx_canary_wrb", ["status"], mode="canary", auto_rollback=True,
                    baseline_window_seconds=1.5, verify_window_seconds=1.5)
    store = lab.store("canary_wrb")
    work = _regression_workload(lab, plan)

    def on_event(name, _data):
        if name == "index_added":
            work.set_phase(work.statement, lambda rng: (s := rng.randint(1, 30000), s + 20000))

    with work:
        ex = lab.executor(plan, store, on_event=on_event)
        run = ex.create_run()
        assert run.auto_rollback is False, "auto-rollback is off in canary mode whatever the plan says"
        out = ex.execute(run.id)
    assert (out.status, out.fail_reason) == ("failed", "verification_failed")
    assert out.details.get("would_roll_back") is True
    [record] = store.rollback_records(plan.tenant, run.id)
    assert record.rollback_status == "would_roll_back" and "DROP INDEX" in record.rollback_sql
    assert lab.index_exists(plan), "in a canary the executor never drops the index itself"
    assert _drops_executed(lab, db) == 0


def test_out_of_scope_run_is_refused_before_any_claim(lab):
    db = lab.database("scope")
    lab.load_orders(db, 100)
    plan = lab.plan(db, "idx_scope", ["customer_id"])
    store = lab.store("scope")
    ex = lab.executor(plan, store)
    ex.clock = FrozenClock(utcnow() + timedelta(hours=12))  # the plan's 2-hour window covers now, not now+12h
    run = ex.create_run()
    out = ex.execute(run.id)
    assert (out.status, out.fail_reason) == ("failed", "out_of_scope")
    assert "off-peak" in out.message
    assert store.get_run(plan.tenant, run.id).claimed_by is None
    assert not lab.index_exists(plan)


def test_long_transaction_makes_the_alter_give_up_instead_of_queueing_the_app(lab):
    """The metadata-lock guard: a short lock_wait_timeout, so the ALTER stops waiting (and stops
    blocking the sessions queued behind it) instead of holding up the application."""
    db = lab.database("mdl_guard")
    lab.load_orders(db, 5000)
    plan = lab.plan(db, "idx_mdl_guard", ["customer_id"], lock_wait_timeout=1)
    store = lab.store("mdl_guard")
    blocker = lab.admin(db)
    blocker_id = blocker.thread_id()
    try:
        with blocker.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT id FROM orders LIMIT 1")
        ex = lab.executor(plan, store)
        run = ex.create_run()
        out = ex.execute(run.id)
    finally:
        blocker.rollback()
        blocker.close()
    assert (out.status, out.fail_reason) == ("failed", "execution_error")
    assert out.details["error_kind"] == "lock_wait_timeout"
    assert "metadata lock" in out.message and "long transaction" in out.message
    assert f"thread {blocker_id}" in out.message, out.message
    assert not lab.index_exists(plan)


def test_an_mdl_pile_up_behind_the_waiting_alter_is_counted_and_released_by_the_guard(lab):
    """The pile-up the guard exists for: a long transaction holds the table, the ALTER waits for
    its exclusive metadata lock, and the application's reads queue behind the ALTER. The waiters
    are counted (what the execution screen shows), and the short lock_wait_timeout ends the
    ALTER's wait so every queued read goes on within a second or two of it."""
    import threading
    import time

    db = lab.database("mdl_pileup")
    lab.load_orders(db, 5000)
    plan = lab.plan(db, "idx_mdl_pileup", ["customer_id"], lock_wait_timeout=3)
    store = lab.store("mdl_pileup")
    blocker = lab.admin(db)
    finished: list[float] = []
    reads_started = threading.Event()

    def app_read() -> None:
        reads_started.wait(10)
        with lab.admin(db) as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM orders WHERE customer_id = 7")
        finished.append(time.monotonic())

    readers = [threading.Thread(target=app_read, daemon=True) for _ in range(4)]
    for t in readers:
        t.start()
    most = 0
    try:
        with blocker.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT id FROM orders LIMIT 1")
        ex = lab.executor(plan, store)
        run = ex.create_run()
        outcome: dict[str, object] = {}
        alter = threading.Thread(target=lambda: outcome.update(out=ex.execute(run.id)), daemon=True)
        alter.start()
        with Target(plan.connection).session("guard") as s:
            deadline = time.monotonic() + 10
            while s.find_alter(run.id) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)  # the ALTER now asks for its exclusive lock: reads arriving queue behind it
            reads_started.set()
            while alter.is_alive():
                report = s.metadata_locks(db, "orders")
                app_waiting = [w for w in report.waiters if "canary-console:alter" not in str(w.get("info", ""))]
                most = max(most, len(app_waiting))
                time.sleep(0.1)
        gave_up = time.monotonic()
        for t in readers:
            t.join(10)
    finally:
        blocker.rollback()
        blocker.close()
    out = outcome["out"]
    assert (out.status, out.fail_reason) == ("failed", "execution_error") and out.details["error_kind"] == "lock_wait_timeout"
    assert most >= 1, "the application's reads queued behind the waiting ALTER, and were counted"
    assert len(finished) == 4, "every queued read went on"
    assert max(finished) - gave_up < 2.0, "…as soon as the guard ended the ALTER's wait"
    assert not lab.index_exists(plan)
