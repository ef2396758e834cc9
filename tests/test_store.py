"""The engine's store (docs/states.md) on SQLite (a file under tmp_path) and on the machine's PostgreSQL
(a fresh database for the session): the store-wide run lock, claims with leases, audited
transitions, the kill switch's scopes, tenant_id on every row, and the transition race.

PostgreSQL must be reachable on 127.0.0.1:5432 as ``postgres``: if it is not, the PostgreSQL cases
fail with the reason. Set CANARY_SKIP_POSTGRES=1 to skip them on a machine without it."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, or_, select
from sqlmodel import SQLModel

import engine.adapters.store.store as store_module
from engine.adapters.store import (
    GLOBAL_TENANT,
    Approval,
    AuditLog,
    Checkpoint,
    ClaimConflict,
    Decision,
    ExecutionRun,
    KillSwitchState,
    PrecheckResult,
    RollbackPoint,
    RollbackRecord,
    ScopeLockError,
    Store,
    StoreError,
)
from engine.domain.clock import FrozenClock
from engine.domain.runstate import TransitionError

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
T0 = datetime(2026, 11, 22, 16, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh database on the machine's PostgreSQL for this session, dropped at the end."""
    if os.environ.get("CANARY_SKIP_POSTGRES") == "1":
        pytest.skip("CANARY_SKIP_POSTGRES=1: the PostgreSQL store tests are skipped")
    import psycopg

    name = f"cc_test_{uuid.uuid4().hex[:12]}"
    problem = None
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        problem = f"{exc.__class__.__name__}: {str(exc).strip()}"
    if problem:  # a failure, not a skip: these tests are part of the suite
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 (user postgres) is needed for the store tests and is "
                    f"not usable: {problem}. Set CANARY_SKIP_POSTGRES=1 to skip them on a machine without it.",
                    pytrace=False)
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mysql_url(sandbox):
    """A database on the suite's sandbox MariaDB: the store by a mysql:// URL."""
    name = f"cc_store_{uuid.uuid4().hex[:8]}"
    with sandbox.primary.connect() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    return f"mysql://root@127.0.0.1:{sandbox.primary.port}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mariadb)])
def backend_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue({"postgresql": "postgres_url", "mysql": "mysql_url"}[request.param])


@pytest.fixture
def clock():
    return FrozenClock(T0)


@pytest.fixture
def store(backend_url, clock):
    """An empty store on the backend, with a clock that moves only when told to (its schema stamp,
    store_meta, is the store's identity rather than its data, and stays)."""
    s = Store(backend_url, clock=clock)
    with s.engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table.name != "store_meta":
                conn.execute(table.delete())
    yield s
    s.close()


def new_run(tenant: str = "acme", **kw) -> ExecutionRun:
    return ExecutionRun(tenant_id=tenant, connection_profile_id="orders-primary", schema_name="shop",
                        table_name="orders", index_name="idx_orders_customer",
                        columns=[["customer_id", None], ["note", 16]], **kw)


def status_changes(store: Store, tenant: str, run_id: str) -> list[tuple[str | None, str | None, str]]:
    return [(e.old_status, e.new_status, e.actor) for e in store.audit_entries(tenant, run_id)
            if e.action == "status_change"]


def aware(dt: datetime | None) -> datetime | None:
    """Timestamps come back as aware UTC on every backend; tolerate a naive UTC just in case."""
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=UTC)


# --- the store-wide lock: one active run anywhere -------------------------------------------


def test_create_run_takes_the_store_wide_lock(store):
    run = store.create_run(new_run(), "somchai")
    assert run.status == "scheduled" and run.created_by == "somchai"
    holder = store.lock_holder()
    assert holder is not None
    assert (holder.tenant_id, holder.execution_run_id, holder.holder_tenant_id, holder.acquired_by) == (
        GLOBAL_TENANT, run.id, "acme", "somchai")
    created = store.audit_entries("acme", run.id, action="run_created")
    assert len(created) == 1
    assert (created[0].old_status, created[0].new_status, created[0].actor) == (None, "scheduled", "somchai")
    assert created[0].details["table"] == "orders" and created[0].details["index"] == "idx_orders_customer"


@pytest.mark.parametrize("second_tenant", ["acme", "globex"])
def test_a_second_create_run_in_any_tenant_is_refused(store, second_tenant):
    first = store.create_run(new_run(), "somchai")
    second = new_run(second_tenant)
    with pytest.raises(ScopeLockError) as caught:
        store.create_run(second, "nok")
    msg = str(caught.value)
    assert first.id in msg and "tenant acme" in msg and "one run at a time" in msg
    # Nothing half-written: the refused run and its audit entry are not in the store.
    assert store.get_run(second_tenant, second.id) is None
    assert [e.execution_run_id for e in store.audit_entries(second_tenant, action="run_created")] == (
        [first.id] if second_tenant == "acme" else [])
    assert store.lock_holder().execution_run_id == first.id


@pytest.mark.parametrize("path", [
    [("running", None), ("completed", None)],
    [("running", None), ("failed", "verification_failed")],
    [("running", None), ("cancelled", "kill_switch")],
    [("running", None), ("rolled_back", "manual_rollback")],
    [("failed", "out_of_scope")],
    [("cancelled", None)],
])
def test_the_lock_is_released_when_the_run_ends(store, path):
    run = store.create_run(new_run(), "somchai")
    for status, reason in path:
        assert store.lock_holder() is not None  # still held while the run is active
        store.transition("acme", run.id, status, "worker", fail_reason=reason)
    assert store.lock_holder() is None
    nxt = store.create_run(new_run("globex"), "other")  # any tenant may now start one
    assert store.lock_holder().execution_run_id == nxt.id


def test_rolling_back_an_ended_run_does_not_release_another_runs_lock(store):
    first = store.create_run(new_run(), "somchai")
    store.transition("acme", first.id, "running", "w")
    store.transition("acme", first.id, "completed", "w")
    second = store.create_run(new_run("globex"), "other")
    store.transition("acme", first.id, "rolled_back", "nok", fail_reason="manual_rollback")
    assert store.lock_holder().execution_run_id == second.id
    with pytest.raises(ScopeLockError):
        store.create_run(new_run(), "somchai")


def test_concurrent_create_run_has_one_winner(store):
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def create(i: int) -> None:
        run = new_run("acme" if i % 2 else "globex")
        barrier.wait(timeout=10)
        try:
            store.create_run(run, f"racer{i}")
            outcomes.append("won")
        except ScopeLockError:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join(timeout=30) for t in threads]
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"]
    active = store.find_runs("acme", ["scheduled"]) + store.find_runs("globex", ["scheduled"])
    assert len(active) == 1 and store.lock_holder().execution_run_id == active[0].id


# --- claims with a lease --------------------------------------------------------------------


def test_claim_takes_the_lease(store, clock):
    run = store.create_run(new_run(), "somchai")
    claimed = store.claim("acme", run.id, "console-1", 30)
    assert claimed.claimed_by == "console-1"
    assert aware(claimed.lease_expires_at) == T0 + timedelta(seconds=30)
    assert [e.actor for e in store.audit_entries("acme", run.id, action="claimed")] == ["console-1"]
    # The holder may claim again (it renews).
    clock.advance(10)
    again = store.claim("acme", run.id, "console-1", 30)
    assert aware(again.lease_expires_at) == T0 + timedelta(seconds=40)


def test_a_second_owner_gets_a_conflict_and_an_audit_row(store, clock):
    run = store.create_run(new_run(), "somchai")
    store.claim("acme", run.id, "console-1", 30)
    clock.advance(5)
    with pytest.raises(ClaimConflict) as caught:
        store.claim("acme", run.id, "console-2", 30)
    assert "held by console-1 until 16:00:30 UTC" in str(caught.value)
    failed = store.audit_entries("acme", run.id, action="claim_failed")
    assert len(failed) == 1
    assert failed[0].actor == "console-2" and failed[0].tenant_id == "acme"
    assert failed[0].details["holder"] == "console-1" and failed[0].details["status"] == "scheduled"
    assert store.get_run("acme", run.id).claimed_by == "console-1"  # unchanged


def test_an_expired_lease_can_be_reclaimed_by_a_new_owner(store, clock):
    run = store.create_run(new_run(), "somchai")
    store.claim("acme", run.id, "console-1", 30)
    clock.advance(30)  # exactly at the expiry: not yet expired
    with pytest.raises(ClaimConflict):
        store.claim("acme", run.id, "console-2", 30)
    clock.advance(0.001)  # the driver crashed and its lease ran out
    taken = store.claim("acme", run.id, "console-2", 60)
    assert taken.claimed_by == "console-2"
    assert aware(taken.lease_expires_at) == T0 + timedelta(seconds=90.001)
    # The old owner has lost it: it can neither renew nor claim back.
    assert store.renew_lease("acme", run.id, "console-1", 30) is False
    with pytest.raises(ClaimConflict):
        store.claim("acme", run.id, "console-1", 30)
    assert [e.actor for e in store.audit_entries("acme", run.id, action="claimed")] == ["console-1", "console-2"]


def test_renew_lease_keeps_the_run(store, clock):
    run = store.create_run(new_run(), "somchai")
    store.claim("acme", run.id, "console-1", 30)
    clock.advance(20)
    assert store.renew_lease("acme", run.id, "console-1", 30) is True
    assert aware(store.get_run("acme", run.id).lease_expires_at) == T0 + timedelta(seconds=50)
    clock.advance(20)  # 40 s after the first claim: the renewed lease still holds
    with pytest.raises(ClaimConflict):
        store.claim("acme", run.id, "console-2", 30)
    assert store.renew_lease("acme", run.id, "console-2", 30) is False
    assert store.renew_lease("globex", run.id, "console-1", 30) is False  # another tenant's run
    clock.advance(10.5)
    assert store.claim("acme", run.id, "console-2", 30).claimed_by == "console-2"


def test_an_ended_run_cannot_be_claimed(store):
    run = store.create_run(new_run(), "somchai")
    store.transition("acme", run.id, "cancelled", "somchai")
    with pytest.raises(ClaimConflict, match="cannot be claimed"):
        store.claim("acme", run.id, "console-1", 30)
    assert len(store.audit_entries("acme", run.id, action="claim_failed")) == 1


def test_a_claim_on_another_tenants_run_is_not_found(store):
    run = store.create_run(new_run(), "somchai")
    with pytest.raises(StoreError, match="not found for tenant globex"):
        store.claim("globex", run.id, "console-1", 30)
    assert store.get_run("acme", run.id).claimed_by is None


def test_concurrent_claims_have_one_winner(store):
    run = store.create_run(new_run(), "somchai")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def claim(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            store.claim("acme", run.id, f"console-{i}", 30)
            outcomes.append(f"console-{i}")
        except ClaimConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join(timeout=30) for t in threads]
    winners = [o for o in outcomes if o != "conflict"]
    assert len(outcomes) == 4 and len(winners) == 1
    assert store.get_run("acme", run.id).claimed_by == winners[0]
    assert len(store.audit_entries("acme", run.id, action="claim_failed")) == 3


# --- transitions ----------------------------------------------------------------------------


def test_transitions_write_audit_rows_with_old_and_new_status_and_actor(store, clock):
    run = store.create_run(new_run(), "somchai")
    clock.advance(60)
    running = store.transition("acme", run.id, "running", "console-1")
    assert running.status == "running" and aware(running.started_at) == T0 + timedelta(seconds=60)
    clock.advance(60)
    failed = store.transition("acme", run.id, "failed", "nok", fail_reason="kill_switch",
                              message="kill switch pressed", details={"scope": "tenant"})
    assert (failed.status, failed.fail_reason, failed.error_message) == ("failed", "kill_switch",
                                                                         "kill switch pressed")
    assert aware(failed.completed_at) == T0 + timedelta(seconds=120)
    assert status_changes(store, "acme", run.id) == [("scheduled", "running", "console-1"),
                                                     ("running", "failed", "nok")]
    last = store.audit_entries("acme", run.id, action="status_change")[-1]
    assert last.details == {"scope": "tenant", "fail_reason": "kill_switch", "message": "kill switch pressed"}
    assert aware(last.created_at) == T0 + timedelta(seconds=120)
    # The whole trail, in order.
    assert [e.action for e in store.audit_entries("acme", run.id)] == ["run_created", "status_change",
                                                                       "status_change"]


@pytest.mark.parametrize("moves, bad, reason", [
    ([], "completed", None),
    ([], "rolled_back", None),
    ([("running", None)], "scheduled", None),
    ([("running", None), ("completed", None)], "running", None),
    ([("running", None), ("completed", None)], "failed", "execution_error"),
    ([("running", None), ("rolled_back", "manual_rollback")], "completed", None),
    ([], "failed", None),  # failed needs a fail_reason
    ([], "cancelled", "because"),  # not a fail_reason
])
def test_an_invalid_transition_raises_and_writes_nothing(store, moves, bad, reason):
    run = store.create_run(new_run(), "somchai")
    for status, r in moves:
        store.transition("acme", run.id, status, "w", fail_reason=r)
    before = store.get_run("acme", run.id)
    audit_before = store.count_rows(AuditLog, "acme")
    with pytest.raises(TransitionError):
        store.transition("acme", run.id, bad, "mallory", fail_reason=reason)
    after = store.get_run("acme", run.id)
    assert (after.status, after.fail_reason, after.updated_at) == (before.status, before.fail_reason,
                                                                   before.updated_at)
    assert store.count_rows(AuditLog, "acme") == audit_before


def test_a_transition_of_an_unknown_or_foreign_run_is_refused(store):
    run = store.create_run(new_run(), "somchai")
    with pytest.raises(StoreError, match="not found"):
        store.transition("acme", str(uuid.uuid4()), "running", "w")
    with pytest.raises(StoreError, match="not found for tenant globex"):
        store.transition("globex", run.id, "running", "w")
    assert store.get_run("acme", run.id).status == "scheduled"


def _race_once(store: Store, run_id: str, in_lockstep: bool, monkeypatch) -> dict[str, object]:
    """Two consoles finish the same running run at once: one as completed, one as cancelled."""
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}
    if in_lockstep:
        # Both read 'running' and pass the state machine's check before either writes: what
        # decides is the conditional UPDATE alone.
        check = store_module.check_transition

        def check_then_wait(old, new, fail_reason=None):
            check(old, new, fail_reason)
            barrier.wait(timeout=10)

        monkeypatch.setattr(store_module, "check_transition", check_then_wait)

    def finish(status: str, reason: str | None) -> None:
        if not in_lockstep:
            barrier.wait(timeout=10)
        try:
            store.transition("acme", run_id, status, f"racer-{status}", fail_reason=reason)
            outcome[status] = "won"
        except Exception as exc:  # noqa: BLE001 - the test looks at what it was
            outcome[status] = exc

    threads = [threading.Thread(target=finish, args=("completed", None)),
               threading.Thread(target=finish, args=("cancelled", "kill_switch"))]
    [t.start() for t in threads]
    [t.join(timeout=30) for t in threads]
    monkeypatch.undo()
    return outcome


def _check_one_winner(store: Store, run_id: str, outcome: dict[str, object], loser_types) -> None:
    winners = [s for s, o in outcome.items() if o == "won"]
    assert len(outcome) == 2 and len(winners) == 1, outcome
    loser = next(o for o in outcome.values() if o != "won")
    assert isinstance(loser, loser_types), repr(loser)
    run = store.get_run("acme", run_id)
    assert run.status == winners[0]
    changes = status_changes(store, "acme", run_id)
    assert changes == [("scheduled", "running", "w"), ("running", winners[0], f"racer-{winners[0]}")]
    assert store.lock_holder() is None


@pytest.mark.parametrize("round_", range(3))
def test_a_transition_race_in_lockstep_has_one_winner_and_the_loser_gets_store_error(
        store, clock, monkeypatch, round_):
    run = store.create_run(new_run(), "somchai")
    store.transition("acme", run.id, "running", "w")
    clock.advance(1)  # the audit trail is ordered by time
    outcome = _race_once(store, run.id, in_lockstep=True, monkeypatch=monkeypatch)
    _check_one_winner(store, run.id, outcome, StoreError)
    loser = next(o for o in outcome.values() if o != "won")
    assert "changed under us: it is now" in str(loser)


def test_free_running_transition_races_have_one_winner_each(store, clock, monkeypatch):
    """Without lockstep the loser may read the run after the winner's commit, and is then refused
    by the state machine (TransitionError) rather than by the conditional update (StoreError)."""
    for _ in range(10):
        run = store.create_run(new_run(), "somchai")
        store.transition("acme", run.id, "running", "w")
        clock.advance(1)
        outcome = _race_once(store, run.id, in_lockstep=False, monkeypatch=monkeypatch)
        _check_one_winner(store, run.id, outcome, (StoreError, TransitionError))


# --- the kill switch ------------------------------------------------------------------------


def _active(rows: list[KillSwitchState]) -> set[tuple[str, str, str]]:
    return {(r.tenant_id, r.scope, r.connection_profile_id) for r in rows if r.is_active}


def test_kill_switch_scopes_and_what_each_tenant_sees(store):
    g = store.set_kill_switch("acme", "global", True, "somchai", reason="stop everything")
    t = store.set_kill_switch("acme", "tenant", True, "somchai", reason="acme only")
    c = store.set_kill_switch("acme", "connection", True, "nok", reason="primary", connection_id="orders-primary")
    assert (g.tenant_id, g.scope, g.connection_profile_id) == (GLOBAL_TENANT, "global", "")
    assert (t.tenant_id, t.scope, t.connection_profile_id) == ("acme", "tenant", "")
    assert (c.tenant_id, c.scope, c.connection_profile_id) == ("acme", "connection", "orders-primary")

    glob, ten, conn = (GLOBAL_TENANT, "global", ""), ("acme", "tenant", ""), ("acme", "connection", "orders-primary")
    assert _active(store.kill_switch_rows("acme")) == {glob, ten}
    assert _active(store.kill_switch_rows("acme", "orders-primary")) == {glob, ten, conn}
    assert _active(store.kill_switch_rows("acme", "orders-replica")) == {glob, ten}
    # Tenant B sees the global switch, never tenant A's rows, even for a connection of the same name.
    assert _active(store.kill_switch_rows("globex")) == {glob}
    assert _active(store.kill_switch_rows("globex", "orders-primary")) == {glob}


def test_kill_switch_is_one_row_per_scope_updated_in_place_and_audited(store, clock):
    store.set_kill_switch("acme", "tenant", True, "somchai", reason="latency")
    clock.advance(30)
    row = store.set_kill_switch("acme", "tenant", False, "nok", reason="all clear")
    assert (row.is_active, row.reason, row.updated_by, row.created_by) == (False, "all clear", "nok", "somchai")
    rows = [r for r in store.kill_switch_rows("acme") if r.scope == "tenant"]
    assert len(rows) == 1 and rows[0].is_active is False
    assert aware(rows[0].updated_at) == T0 + timedelta(seconds=30)
    audit = [(e.action, e.actor, e.details["was_active"], e.details["scope"])
             for e in store.audit_entries("acme") if e.action.startswith("kill_switch")]
    assert audit == [("kill_switch_activated", "somchai", False, "tenant"),
                     ("kill_switch_deactivated", "nok", True, "tenant")]
    # Tenant B's audit trail has none of it.
    assert store.audit_entries("globex") == []


def test_kill_switch_connections_are_separate_rows(store):
    store.set_kill_switch("acme", "connection", True, "nok", connection_id="orders-primary")
    store.set_kill_switch("acme", "connection", True, "nok", connection_id="orders-replica")
    store.set_kill_switch("globex", "connection", True, "x", connection_id="orders-primary")
    assert _active(store.kill_switch_rows("acme", "orders-replica")) == {("acme", "connection", "orders-replica")}
    assert _active(store.kill_switch_rows("globex", "orders-primary")) == {("globex", "connection", "orders-primary")}
    store.set_kill_switch("acme", "connection", False, "nok", connection_id="orders-primary")
    assert _active(store.kill_switch_rows("acme", "orders-primary")) == set()
    assert _active(store.kill_switch_rows("globex", "orders-primary")) == {("globex", "connection", "orders-primary")}


def test_kill_switch_refuses_an_unknown_scope_or_a_connection_without_id(store):
    with pytest.raises(ValueError, match="unknown kill-switch scope"):
        store.set_kill_switch("acme", "planet", True, "x")
    with pytest.raises(ValueError, match="needs the connection id"):
        store.set_kill_switch("acme", "connection", True, "x")
    assert store.kill_switch_rows("acme", "orders-primary") == []


# --- tenant_id on every row, and reads filtered by it ---------------------------------------


def test_every_row_written_carries_a_tenant_id(store, clock):
    store.save_connection_profile("acme", SimpleNamespace(
        id="orders-primary", host="db1", port=3306, user="canary", database="shop", socket=None,
        password_env="PW", option_file=None, option_group="client"))
    ended = store.create_run(new_run(), "somchai")
    store.claim("acme", ended.id, "console-1", 30)
    with pytest.raises(ClaimConflict):
        store.claim("acme", ended.id, "console-2", 30)
    store.transition("acme", ended.id, "running", "console-1")
    store.transition("acme", ended.id, "completed", "console-1")
    run = store.create_run(new_run("globex"), "other")  # stays active: run_locks keeps a row
    store.set_kill_switch("acme", "global", True, "somchai")
    store.set_kill_switch("acme", "tenant", True, "somchai")
    store.set_kill_switch("acme", "connection", True, "somchai", connection_id="orders-primary")
    store.save_rollback_point(RollbackPoint(tenant_id="globex", execution_run_id=run.id,
                                            show_create="CREATE TABLE `orders` (...)",
                                            indexes=[{"name": "PRIMARY"}], ladder=[{"rung": "ignore"}]), "other")
    store.save_rollback_record(RollbackRecord(tenant_id="acme", execution_run_id=ended.id,
                                              connection_profile_id="orders-primary", trigger_reason="latency"),
                               "nok", "rollback_requested")
    store.save_precheck(PrecheckResult(tenant_id="acme", execution_run_id=ended.id, check_id="TC-02",
                                       status="pass", recorded_by="nok"))
    store.add_approval(Approval(tenant_id="acme", execution_run_id=ended.id, kind="rollback", role="dba",
                                actor="nok"))
    store.save_checkpoint(Checkpoint(tenant_id="globex", execution_run_id=run.id, label="T+15",
                                     metrics_ok=True, recorded_by="other"))
    store.save_decision(Decision(tenant_id="acme", execution_run_id=ended.id, verdict="PASS",
                                 decided_by="somchai"))
    store.add_samples("globex", run.id, clock.now(), [
        SimpleNamespace(source="mysql", metric="lock_wait", value=0.1, error=None, n=None, how=None, meta=None),
        SimpleNamespace(source="mysql", metric="threads_running", value=None, error="timeout", n=3,
                        how="max", meta={"k": 1}),
    ])

    with store.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            assert "tenant_id" in table.c, f"{table.name} has no tenant_id column"
            total = conn.execute(select(func.count()).select_from(table)).scalar_one()
            assert total > 0, f"the test wrote no row to {table.name}"
            missing = conn.execute(select(func.count()).select_from(table).where(
                or_(table.c.tenant_id.is_(None), table.c.tenant_id == ""))).scalar_one()
            assert missing == 0, f"{missing} row(s) of {table.name} have no tenant_id"


def test_reads_are_filtered_by_tenant(store):
    run = store.create_run(new_run(), "somchai")
    store.transition("acme", run.id, "running", "w")
    assert store.get_run("globex", run.id) is None
    assert store.find_runs("globex") == [] and [r.id for r in store.find_runs("acme")] == [run.id]
    assert store.audit_entries("globex", run.id) == []
    assert store.count_rows(ExecutionRun, "globex") == 0 and store.count_rows(ExecutionRun, "acme") == 1
    with pytest.raises(StoreError):
        store.update_run("globex", run.id, alter_sql="x")


def test_the_audit_trail_keeps_its_order_within_a_second(store):
    """Timestamps keep their microseconds on every backend (MySQL's DATETIME would round to the
    second and shuffle the trail)."""
    for i in range(30):
        store.audit("acme", "lead", f"step_{i:02d}")
    assert [e.action for e in store.audit_entries("acme")] == [f"step_{i:02d}" for i in range(30)]
