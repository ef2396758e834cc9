"""A rollback whose attempts fail partway (seed edge case), on the sandbox MariaDB.

Already covered in tests/test_rollback_and_scope.py: a DROP whose answer is lost (the proxy cuts
after forwarding it: two attempts, one DROP), the network down for two connects (three attempts),
and every attempt refused (failed, L4); TC-07 (tests/test_tc_cases.py): a lock wait on every
attempt. Here: the DROP refused by lock_wait_timeout while a transaction holds the table, then done
on a later attempt once it ends; and the network cut while the DROP waits on that lock — every
attempt in the record and in the audit trail, and exactly one DROP that did anything.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace

import pytest
from netfault import FaultyProxy
from test_rollback_and_scope import _completed_run
from waits import wait_for

from engine.adapters.target import Target
from engine.flows.rollback import IndexRollback

pytestmark = pytest.mark.mariadb


def _drops(lab, db):
    """(DROP INDEX statements the server was sent on this database, how many of them failed)."""
    with lab.admin() as c, c.cursor() as cur:
        cur.execute("SELECT COALESCE(SUM(COUNT_STAR), 0) AS n, COALESCE(SUM(SUM_ERRORS), 0) AS errors "
                    "FROM performance_schema.events_statements_summary_by_digest "
                    "WHERE DIGEST_TEXT LIKE %s AND DIGEST_TEXT LIKE %s", ("%DROP INDEX%", f"%`{db}`%"))
        row = cur.fetchone()
        return int(row["n"]), int(row["errors"])


class TableHolder:
    """An open transaction that read the table: it holds the table's metadata lock, so the DROP's
    exclusive lock waits ``lock_wait_timeout`` and fails, until ``release``."""

    def __init__(self, lab, db):
        self.conn = lab.admin(db)
        self.thread_id = self.conn.thread_id()
        with self.conn.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT id FROM orders LIMIT 1")
        self.released = threading.Event()

    def release(self):
        if not self.released.is_set():
            self.conn.rollback()
            self.conn.close()
            self.released.set()

    def release_when(self, predicate, timeout=30.0):
        def watch():
            wait_for(predicate, timeout)
            self.release()
        threading.Thread(target=watch, daemon=True).start()


def _queued(lab, pattern):
    """How many statements like ``pattern`` (SQL LIKE) the server is running or holding queued."""
    with lab.admin() as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE %s", (pattern,))
        return cur.fetchone()["n"]


class PartitionProxy(FaultyProxy):
    """A cut the server does not see: after forwarding a packet with ``silent_after`` in it, the
    client's side is closed and the server's is left open, with nothing flowing (a link that died
    with no FIN reaching the server, before its TCP keepalive notices). The server goes on running
    the statement; the client gets a lost connection."""

    def __init__(self, target_port: int):
        super().__init__(target_port)
        self.silent_after: bytes | None = None
        self.held: list[socket.socket] = []

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        server, client = (dst, src) if upstream else (src, dst)
        try:
            while True:
                data = src.recv(65536)
                if not data or server in self.held:
                    break
                dst.sendall(data)
                if upstream and self.silent_after and self.silent_after in data:
                    with self._lock:
                        self.silent_after = None
                        self.cuts += 1
                        self.held.append(server)
                    client.shutdown(socket.SHUT_RDWR)
                    break
        except OSError:
            pass
        finally:
            for s in (src, dst):
                if s not in self.held:
                    try:
                        s.close()
                    except OSError:
                        pass

    def close(self) -> None:
        super().close()
        for s in self.held:
            s.close()


def _per_attempt(store, tenant, run_id):
    """The rollback's audit rows, each with the number of attempts its record had then."""
    return [(e.action, (e.details or {}).get("attempts")) for e in store.audit_entries(tenant, run_id)
            if e.action.startswith("rollback_") and e.action != "rollback_point_captured"]


def test_a_drop_refused_by_a_lock_wait_is_retried_after_the_transaction_ends(lab):
    plan, store, run = _completed_run(lab, "rb_lockwait")
    holder = TableHolder(lab, plan.schema)
    try:
        # The holder's transaction ends as soon as the first attempt is recorded as failed.
        holder.release_when(lambda: store.audit_entries(plan.tenant, run.id, "rollback_attempt_failed"))
        out = IndexRollback(store, Target(plan.connection), "dba@test", backoff_s=0.5,
                            lock_wait_timeout=1).drop(run, "lock wait 7 s on orders")
    finally:
        holder.release()
    assert out.status == "completed", out.message
    assert not lab.index_exists(plan)
    [record] = store.rollback_records(plan.tenant, run.id)
    assert record.rollback_status == "completed"
    first, second = record.attempts
    assert (first["n"], first.get("sent"), first["kind"]) == (1, True, "lock_wait_timeout")
    assert "(1205) Lock wait timeout exceeded" in first["error"]
    assert (second["n"], second.get("sent"), second.get("ok")) == (2, True, True)
    sent, failed = _drops(lab, plan.schema)
    assert (sent, failed) == (2, 1), "two DROPs sent; the first refused by the lock, so exactly one ran"
    assert _per_attempt(store, plan.tenant, run.id) == [
        ("rollback_started", 0), ("rollback_attempt", 1), ("rollback_attempt_failed", 1),
        ("rollback_attempt", 2), ("rollback_completed", 2)]
    final = store.get_run(plan.tenant, run.id)
    assert (final.status, final.fail_reason) == ("rolled_back", "manual_rollback")
    assert store.verify_audit_chain().intact


def test_a_drop_cut_off_silently_while_it_waits_on_a_lock_is_waited_for_not_sent_again(lab):
    """The server never hears of the cut: our DROP stays queued on the lock and runs when the
    transaction ends. The next attempt finds it in the processlist, waits, and finds the index gone;
    before the fix it sent a second DROP, which queued behind the first and failed with 1091, and the
    rollback ended failed (L4) with the index gone."""
    plan, store, run = _completed_run(lab, "rb_partition")
    holder = TableHolder(lab, plan.schema)
    proxy = PartitionProxy(lab.sandbox.primary.port)
    try:
        proxy.silent_after = b"DROP INDEX"
        cut = {}
        holder.release_when(lambda: proxy.cuts == 1 and (cut.setdefault("at", time.monotonic()) + 1.5
                                                          < time.monotonic()))
        target = Target(replace(plan.connection, port=proxy.port))
        out = IndexRollback(store, target, "dba@test", backoff_s=0.3, lock_wait_timeout=4).drop(
            run, "lock wait 7 s on orders")
    finally:
        holder.release()
        proxy.close()
    assert out.status == "completed", out.message
    assert out.message == "dropped by an earlier attempt whose answer was lost"
    assert not lab.index_exists(plan)
    assert _drops(lab, plan.schema) == (1, 0), "one DROP sent, and it is the one that ran"
    [record] = store.rollback_records(plan.tenant, run.id)
    first, second = record.attempts
    assert (first.get("sent"), first["kind"]) == (True, "lost_connection")
    assert second.get("earlier_drop_thread") and second["index_present"] is False and not second.get("sent")
    assert _per_attempt(store, plan.tenant, run.id) == [
        ("rollback_started", 0), ("rollback_attempt", 1), ("rollback_attempt_failed", 1),
        ("rollback_completed", 2)]
    assert store.get_run(plan.tenant, run.id).status == "rolled_back"
    assert not store.audit_entries(plan.tenant, run.id, "escalation")
    assert store.verify_audit_chain().intact


def test_a_drop_cut_off_while_it_waits_on_a_lock_runs_exactly_once(lab):
    """A clean cut (the server sees the connection close): MariaDB abandons the queued DROP; the
    next attempt waits until it has left the processlist, then sends its own."""
    plan, store, run = _completed_run(lab, "rb_cutwait")
    holder = TableHolder(lab, plan.schema)
    proxy = FaultyProxy(lab.sandbox.primary.port)
    try:
        proxy.cut_after = b"DROP INDEX"
        # The lock is held until the next attempt has sent its own DROP: by then the cut one has
        # left the processlist (the attempt waits for that), and ours waits on the lock.
        holder.release_when(lambda: ("rollback_attempt", 2) in _per_attempt(store, plan.tenant, run.id))
        target = Target(replace(plan.connection, port=proxy.port))
        out = IndexRollback(store, target, "dba@test", backoff_s=0.3, lock_wait_timeout=4).drop(
            run, "lock wait 7 s on orders")
    finally:
        holder.release()
        proxy.close()
    assert out.status == "completed", out.message
    assert not lab.index_exists(plan)
    sent, failed = _drops(lab, plan.schema)
    assert sent - failed == 1, f"exactly one DROP ran ({sent} sent, {failed} failed)"
    [record] = store.rollback_records(plan.tenant, run.id)
    assert record.attempts[0]["kind"] == "lost_connection" and len(record.attempts) == 2
    attempts_audited = {n for action, n in _per_attempt(store, plan.tenant, run.id) if action != "rollback_started"}
    assert attempts_audited == {1, 2}, "every attempt has its audit row"
    assert store.get_run(plan.tenant, run.id).status == "rolled_back"


def test_a_drop_that_finds_the_index_already_dropped_by_someone_else_completes(lab):
    """A DBA's own DROP queued on the same lock runs first; ours then fails with 1091. The index is
    gone: the next attempt looks, sends nothing, and the rollback completes (it used to end failed,
    L4, with the index gone)."""
    plan, store, run = _completed_run(lab, "rb_person")
    holder = TableHolder(lab, plan.schema)
    person = lab.admin(plan.schema)
    by_hand = threading.Thread(target=lambda: person.cursor().execute(
        f"ALTER TABLE orders DROP INDEX {plan.change.index}"), daemon=True)
    try:
        by_hand.start()
        # The person's DROP is queued before ours; the lock is released once ours queues behind it.
        assert wait_for(lambda: _queued(lab, f"ALTER TABLE orders DROP INDEX {plan.change.index}"), 5)
        holder.release_when(lambda: store.audit_entries(plan.tenant, run.id, "rollback_attempt")
                            and _queued(lab, "ALTER /* canary-console:rollback */ %DROP INDEX%"))
        out = IndexRollback(store, Target(plan.connection), "dba@test", backoff_s=0.3,
                            lock_wait_timeout=4).drop(run, "lock wait 7 s on orders")
    finally:
        holder.release()
        by_hand.join(10)
        person.close()
    assert out.status == "completed", out.message
    assert out.message.startswith("gone before our DROP could run")
    [record] = store.rollback_records(plan.tenant, run.id)
    first, second = record.attempts
    assert (first.get("sent"), first.get("code")) == (True, 1091)
    assert second["index_present"] is False and not second.get("sent")
    assert _drops(lab, plan.schema) == (1, 1), "ours was sent once and refused: the person's ran"
    assert store.get_run(plan.tenant, run.id).status == "rolled_back"
    assert not store.audit_entries(plan.tenant, run.id, "escalation")
