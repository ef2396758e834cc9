"""The store on every backend it supports: SQLite (default), the machine's PostgreSQL, and
MySQL/MariaDB by URL (the suite's sandbox). Same behaviour on each: tenant isolation, the
store-wide run lock, atomic claims with leases, audited transitions, the kill switch."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import timedelta

import pytest
from sqlmodel import select

from engine.clock import FrozenClock, utcnow
from engine.runstate import TransitionError
from engine.store import (
    AuditLog,
    ClaimConflict,
    ExecutionRun,
    KillSwitchState,
    ScopeLockError,
    Store,
    StoreError,
)

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


@pytest.fixture(scope="module")
def postgres_url():
    if os.environ.get("CANARY_SKIP_POSTGRES") == "1":
        pytest.skip("CANARY_SKIP_POSTGRES=1")
    import psycopg

    name = f"cc_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is needed for the store tests ({exc}); "
                    "set CANARY_SKIP_POSTGRES=1 to skip them on a machine without it")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def mysql_url(sandbox):
    db = f"cc_store_{uuid.uuid4().hex[:8]}"
    with sandbox.primary.connect() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
    return f"mysql://root@127.0.0.1:{sandbox.primary.port}/{db}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mariadb)])
def make_store(request, tmp_path):
    """A factory: each call gives a fresh store on the backend (a new database on the servers)."""
    stores = []

    def make(clock=None):
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f's{len(stores)}.db'}"
        elif request.param == "postgresql":
            url = request.getfixturevalue("postgres_url")
        else:
            url = request.getfixturevalue("mysql_url")
        store = Store(url, clock=clock)
        _wipe(store)
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()


def _wipe(store):
    from sqlmodel import SQLModel

    with store.engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(table.delete())


def _run(tenant="acme", **kw):
    return ExecutionRun(tenant_id=tenant, connection_profile_id="orders-primary", schema_name="shop",
                        table_name="orders", index_name="idx_x", columns=[["customer_id", None]], **kw)


def test_one_active_run_in_the_whole_store(make_store):
    store = make_store()
    first = store.create_run(_run("acme"), "lead@a")
    with pytest.raises(ScopeLockError, match="another canary run is active"):
        store.create_run(_run("globex"), "lead@b")
    store.transition("acme", first.id, "running", "w")
    store.transition("acme", first.id, "completed", "w", message="ok")
    second = store.create_run(_run("globex"), "lead@b")  # the lock went with the terminal status
    assert second.status == "scheduled"


def test_claims_are_atomic_and_expired_leases_can_be_reclaimed(make_store):
    clock = FrozenClock(utcnow())
    store = make_store(clock)
    run = store.create_run(_run(), "lead")
    store.claim("acme", run.id, "worker-a", 30)
    with pytest.raises(ClaimConflict, match="worker-a"):
        store.claim("acme", run.id, "worker-b", 30)
    assert store.audit_entries("acme", run.id, "claim_failed")[0].details["holder"] == "worker-a"
    assert store.renew_lease("acme", run.id, "worker-a", 30)
    assert not store.renew_lease("acme", run.id, "worker-b", 30)
    clock.advance(31)
    taken = store.claim("acme", run.id, "worker-b", 30)
    assert taken.claimed_by == "worker-b"
    assert not store.renew_lease("acme", run.id, "worker-a", 30), "the old owner lost its lease"


def test_concurrent_claims_have_one_winner(make_store):
    store = make_store()
    run = store.create_run(_run(), "lead")
    winners, barrier = [], threading.Barrier(8)

    def claim(i):
        barrier.wait()
        try:
            store.claim("acme", run.id, f"worker-{i}", 30)
            winners.append(i)
        except ClaimConflict:
            pass

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(winners) == 1


def test_transitions_are_audited_checked_and_race_free(make_store):
    store = make_store()
    run = store.create_run(_run(), "lead")
    with pytest.raises(TransitionError, match="cannot become completed"):
        store.transition("acme", run.id, "completed", "w")
    store.transition("acme", run.id, "running", "w1")
    results, barrier = [], threading.Barrier(2)

    def finish(status, reason):
        barrier.wait()
        try:
            store.transition("acme", run.id, status, f"racer-{status}", fail_reason=reason)
            results.append(status)
        except (StoreError, TransitionError):  # read before or after the winner's commit
            results.append("lost")

    threads = [threading.Thread(target=finish, args=a) for a in (("cancelled", "kill_switch"),
                                                                  ("failed", "execution_error"))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count("lost") == 1
    changes = [(e.old_status, e.new_status, e.actor) for e in store.audit_entries("acme", run.id)
               if e.action == "status_change"]
    assert changes[0] == ("scheduled", "running", "w1") and len(changes) == 2


def test_kill_switch_scopes_and_tenant_isolation(make_store):
    store = make_store()
    store.set_kill_switch("acme", "tenant", True, "lead@acme", "acme only")
    store.set_kill_switch("acme", "connection", True, "dba@acme", "one conn", connection_id="orders-primary")
    assert {r.scope for r in store.kill_switch_rows("acme", "orders-primary") if r.is_active} == {"tenant", "connection"}
    assert {r.scope for r in store.kill_switch_rows("acme", "other-conn") if r.is_active} == {"tenant"}
    assert not [r for r in store.kill_switch_rows("globex", "orders-primary") if r.is_active]
    store.set_kill_switch("globex", "global", True, "sre@globex", "everyone")
    assert [r.scope for r in store.kill_switch_rows("acme") if r.is_active and r.scope == "global"] == ["global"]
    store.set_kill_switch("acme", "tenant", False, "lead@acme", "resolved")
    assert [r.is_active for r in store.kill_switch_rows("acme") if r.scope == "tenant"] == [False]
    # Audit rows belong to the tenant that acted, and a tenant reads only its own.
    assert {e.actor for e in store.audit_entries("globex")} == {"sre@globex"}
    assert "sre@globex" not in {e.actor for e in store.audit_entries("acme")}


def test_every_row_carries_a_tenant(make_store):
    store = make_store()
    run = store.create_run(_run(), "lead")
    store.claim("acme", run.id, "w", 30)
    store.transition("acme", run.id, "running", "w")
    store.set_kill_switch("acme", "global", True, "lead")
    with store.session() as s:
        for model in (ExecutionRun, AuditLog, KillSwitchState):
            assert all(row.tenant_id for row in s.exec(select(model)).all()), model.__name__
    assert store.get_run("globex", run.id) is None, "another tenant cannot read the run"


def test_timestamps_round_trip_as_utc(make_store):
    store = make_store()
    run = store.create_run(_run(), "lead")
    again = store.get_run("acme", run.id)
    assert again.created_at.tzinfo is not None
    assert abs(again.created_at - utcnow()) < timedelta(minutes=1)


def test_the_audit_trail_keeps_its_order_within_a_second(make_store):
    store = make_store()
    for i in range(30):
        store.audit("acme", "lead", f"step_{i:02d}")
    assert [e.action for e in store.audit_entries("acme")] == [f"step_{i:02d}" for i in range(30)]
