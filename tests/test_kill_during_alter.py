"""The kill switch against an ALTER in flight (docs/kill-switch.md), on the sandbox.

In flight two ways: on a million-row table, where the copy takes seconds and the kill races it
(the kill's latency is asserted there: ``long``), and on a small table whose ALTER a reader's open
transaction holds on its metadata lock, so it stays in flight until the kill (the default run: the
same behaviour, no race). The dead console's ALTER needs the copy: see its test."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from engine.adapters.target import Target
from engine.drill.selftest import spawn_worker, wait_for, write_plan

pytestmark = [pytest.mark.mariadb]
ROWS = 1_000_000
IN_FLIGHT = [pytest.param("held", id="held-on-its-metadata-lock"),
             pytest.param("big", id="1M-rows", marks=[pytest.mark.long, pytest.mark.slow])]


def _table(lab, how: str, name: str) -> str:
    if how == "big":
        return lab.big_table(ROWS)
    db = lab.database(name)
    lab.load_orders(db, 2_000)
    return db


def _waits(how: str) -> dict[str, int]:
    """A held ALTER waits on its metadata lock up to lock_wait_timeout: longer than the test."""
    return {"lock_wait_timeout": 60} if how == "held" else {}


@contextmanager
def _held(lab, db: str, how: str):
    """For "held": a transaction that read the table holds the ALTER on its metadata lock until
    the block ends (the ALTER is in flight all that time, killable as in the middle of a copy)."""
    if how != "held":
        yield
        return
    blocker = lab.sandbox.primary.connect(db)
    try:
        blocker.autocommit(False)
        with blocker.cursor() as cur:
            cur.execute("SELECT id FROM orders LIMIT 1")
            cur.fetchall()
        yield
    finally:
        blocker.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize("how", IN_FLIGHT)
def test_kill_during_alter_aborts_it_and_leaves_no_index(lab, how):
    db = _table(lab, how, "cc_kill_inflight")
    plan = lab.plan(db, "idx_kill_inflight", ["note", "status", "total"], **_waits(how))
    lab.drop_index_if_present(db, "orders", plan.change.index)
    store = lab.store("kill-inflight")
    activated: dict[str, float] = {}
    seen_running = threading.Event()

    def activate() -> None:
        with Target(plan.connection).session("observer") as s:
            if wait_for(lambda: s.find_alter(run.id), 10):
                seen_running.set()
        activated["at"] = time.perf_counter()
        store.set_kill_switch(plan.tenant, "global", True, "tester", "kill during ALTER")

    def on_event(name, _data):
        if name == "alter_started":
            threading.Thread(target=activate, daemon=True).start()

    ex = lab.executor(plan, store, on_event=on_event)
    run = ex.create_run()
    with _held(lab, db, how):
        out = ex.execute(run.id)
    elapsed_ms = (time.perf_counter() - activated["at"]) * 1000

    assert seen_running.is_set(), "the ALTER was never seen running on the server"
    assert (out.status, out.fail_reason) == ("cancelled", "kill_switch"), out.message
    assert not lab.index_exists(plan), "a killed ALTER must leave no index"
    killed = store.audit_entries(plan.tenant, run.id, "alter_killed")
    assert killed and killed[0].details["thread_id"] == store.get_run(plan.tenant, run.id).alter_thread_id
    [record] = store.rollback_records(plan.tenant, run.id)
    assert record.rollback_status == "completed" and record.rollback_details["alter_killed"]
    assert record.rollback_details["index_absent"] is True
    if how == "big":  # a latency target: the long run only (a loaded machine stretches it)
        assert elapsed_ms < 2000, f"activation to cancelled took {elapsed_ms:.0f} ms"
    with Target(plan.connection).session("observer") as s:
        assert s.find_alter(run.id) is None


@pytest.mark.parametrize("settled_first", [False, True])
def test_f9_in_the_driving_process_kills_first_and_audits_the_kill_once(lab, settled_first, monkeypatch):
    """F9 in the console that drives the run (the same process): its executor is woken and sends the
    KILL on its own connection before the activation does anything else, and the kill is audited
    once — ``alter_killed`` with what it came to, in the cancellation's transaction — not a second
    time by the activation that woke it (docs/kill-switch.md).

    ``settled_first``: the executor cancelled its run before the activation looked for running ones
    (a loaded machine; seen with six test workers on two cores) — the activation said only "kill
    switch ACTIVE", not the ALTER it had stopped. It still lists the kill."""
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.flows import enforce
    from engine.flows.killswitch_actions import activate

    if settled_first:
        monkeypatch.setattr(enforce, "enforce_kill_switch", lambda *a, **k: [])

    db = _table(lab, "held", "cc_kill_once")
    plan = lab.plan(db, "idx_kill_once", ["note", "status", "total"], **_waits("held"))
    lab.drop_index_if_present(db, "orders", plan.change.index)
    store = lab.store("kill-once")
    results = []

    def press_f9() -> None:
        with Target(plan.connection).session("observer") as s:
            assert wait_for(lambda: s.find_alter(run.id), 10)
        results.append(activate(store, EmbeddedKillSwitch(store), plan.tenant, "tenant", "nok@jump", (), "p99",
                                via="console", target_for=lambda _run: Target(plan.connection)))

    def on_event(name, _data):
        if name == "alter_started":
            threading.Thread(target=press_f9, daemon=True).start()

    ex = lab.executor(plan, store, on_event=on_event)
    run = ex.create_run()
    with _held(lab, db, "held"):
        out = ex.execute(run.id)
    assert wait_for(lambda: results, 10), "the activation never returned"
    [result] = results
    assert (out.status, out.fail_reason) == ("cancelled", "kill_switch"), out.message
    assert not lab.index_exists(plan)
    assert result.ok and result.killed == [(run.id, store.get_run(plan.tenant, run.id).alter_thread_id)], result.lines()
    [killed] = store.audit_entries(plan.tenant, run.id, "alter_killed")
    assert killed.details["outcome"] == "killed" and killed.details["index_present"] is False
    assert killed.details["thread_id"] == store.get_run(plan.tenant, run.id).alter_thread_id
    assert killed.details["scopes"] and killed.details["waited_ms"] >= 0
    actions = [e.action for e in store.audit_entries(plan.tenant, run.id)]
    # Written after the kill, with the cancellation: one transaction, chained in this order.
    assert actions[-3:] == ["alter_killed", "rollback_recorded", "status_change"], actions
    assert not store.audit_entries(plan.tenant, run.id, "alter_finished_before_kill")
    v = store.verify_audit_chain()
    assert v.intact, v.problems


@pytest.mark.slow
def test_kill_reaches_the_alter_of_a_dead_console(lab):
    """The server does not stop an ALTER when its client dies; the CLI's kill must. Only while the
    ALTER copies: one waiting on its metadata lock dies with its client, so this one needs the
    million rows (and stays in the default run: it is the only test of the CLI reaching an orphan)."""
    how = "big"
    db = _table(lab, how, "cc_kill_orphan")
    plan = lab.plan(db, "idx_kill_orphan", ["note", "status", "total"], lease_seconds=2.0)
    lab.drop_index_if_present(db, "orders", plan.change.index)
    store = lab.store("kill-orphan")
    plan_path = write_plan(lab, plan, "kill-orphan")
    run = lab.executor(plan, store).create_run()
    worker = spawn_worker(plan_path, store.url, run.id)
    with Target(plan.connection).session("observer") as s:
        alter = wait_for(lambda: s.find_alter(run.id), 30)
        assert alter, "the worker's ALTER never appeared in the processlist"
        worker.kill()
        worker.wait(10)
        time.sleep(0.2)
        assert s.find_alter(run.id), "the ALTER should outlive its client"

    done = _cli("kill", "--plan", str(plan_path), "--store", store.url, "--scope", "tenant",
                "--reason", "client died mid-ALTER")
    assert "Traceback" not in done.stderr
    # A loaded machine: the CLI takes seconds to start, or the KILL lands as the ALTER commits —
    # then the ALTER finished, and the CLI must say that, not "killed" (exit 1: the index is there).
    finished = f"the ALTER of run {run.id} had finished before the kill: index {plan.change.index}" in done.stderr
    killed = f"killed the ALTER of run {run.id}" in done.stdout + done.stderr
    assert finished != killed, done.stdout + done.stderr  # exactly one of the two is said
    assert done.returncode == (1 if finished else 0), done.stdout + done.stderr
    assert lab.index_exists(plan) == finished, "what the CLI said is not what the table shows"
    final = store.get_run(plan.tenant, run.id)
    assert (final.status, final.fail_reason) == ("cancelled", "kill_switch")
    actions = [e.action for e in store.audit_entries(plan.tenant, run.id)]
    assert "recovery_inspected" in actions
    if finished:
        # The index stays, and a manual rollback is prepared — never a DROP on the kill switch's own.
        assert "cancelled-after" in done.stderr and "remove it with the rollback" in done.stderr
        assert final.index_created_by_run and "alter_finished_before_kill" in actions
        assert "alter_killed" not in actions
        assert [r.rollback_status for r in store.rollback_records(plan.tenant, run.id)] == ["pending"]
        lab.drop_index_if_present(db, "orders", plan.change.index)
    else:
        assert "cancelled-during" in done.stdout, done.stdout
        assert "alter_killed" in actions
    with Target(plan.connection).session("observer") as s:
        assert s.find_alter(run.id) is None


def test_a_switch_set_elsewhere_is_seen_within_milliseconds_not_at_the_next_poll(lab):
    """Another process's switch: the watcher looks at the store's commit probe every 10 ms and
    reads the switch when someone committed, so the KILL does not wait for the poll (1 s here)."""
    from engine.adapters.store import Store

    db = _table(lab, "held", "cc_kill_probe")
    plan = lab.plan(db, "idx_kill_probe", ["note", "status", "total"], kill_poll_seconds=1.0, **_waits("held"))
    lab.drop_index_if_present(db, "orders", plan.change.index)
    store = lab.store("kill-probe")
    other = Store(store.url)  # its own connections: to the watcher, a commit like another process's
    marks: dict[str, float] = {}

    def set_switch() -> None:
        other.set_kill_switch(plan.tenant, "global", True, "elsewhere", "kill from another console")
        marks["set"] = time.perf_counter()

    def on_event(name, data):
        if name == "alter_progress" and "asked" not in marks:  # just after a poll: the next is 1 s away
            marks["asked"] = time.perf_counter()
            threading.Thread(target=set_switch, daemon=True).start()
        elif name == "alter_progress" and data.get("killed") and "killed" not in marks:
            marks["killed"] = time.perf_counter()

    ex = lab.executor(plan, store, on_event=on_event)
    run = ex.create_run()
    with _held(lab, db, "held"):
        out = ex.execute(run.id)
    other.close()
    assert (out.status, out.fail_reason) == ("cancelled", "kill_switch"), out.message
    assert not lab.index_exists(plan)
    waited = marks["killed"] - marks["set"]
    assert waited < 0.5, f"the KILL came {waited * 1000:.0f} ms after the switch was set (the poll is 1 s)"
