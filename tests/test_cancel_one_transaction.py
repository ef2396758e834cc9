"""Issue 14, the kill's last step: the rollback record and the run's cancellation are one
transaction (engine/flows/executor.py record_cancel_during_alter / record_cancel_after_alter), so
a cancellation that loses a race (the run finished by someone else) leaves no stray record, and the
audit trail has both entries, chained, in order."""

from __future__ import annotations

import pytest

from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import ExecutionRun, Store
from engine.adapters.store.store import StoreError
from engine.domain.clock import SystemClock
from engine.flows.executor import (
    CANCEL_DURING,
    record_cancel_after_alter,
    record_cancel_during_alter,
)


def _running(store: Store) -> ExecutionRun:
    run = store.create_run(ExecutionRun(tenant_id="acme", connection_profile_id="orders-primary",
                                        action="ADD_INDEX", schema_name="shop", table_name="orders",
                                        index_name="idx_x", columns=[["a", None]], query_digests=[],
                                        mode="canary", auto_rollback=False), "me")
    return store.transition("acme", run.id, "running", "me")


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/s.db")
    s.set_kill_switch("acme", "global", True, "nok", "p99 doubling")
    yield s
    s.close()


def test_the_cancellation_and_its_record_are_written_together(store):
    run = _running(store)
    reading = EmbeddedKillSwitch(store).read("acme", "orders-primary")
    record_cancel_during_alter(store, run, reading, "me", SystemClock())
    after = store.get_run("acme", run.id)
    assert (after.status, after.fail_reason, after.error_message) == ("cancelled", "kill_switch", CANCEL_DURING)
    assert after.alter_finished_at is not None
    [record] = store.rollback_records("acme", run.id)
    assert record.rollback_status == "completed" and record.rollback_details["index_absent"] is True
    actions = [e.action for e in store.audit_entries("acme", run.id)]
    assert actions[-2:] == ["rollback_recorded", "status_change"]
    v = store.verify_audit_chain()
    assert v.intact, v.problems


def test_the_executor_s_own_kill_is_audited_in_the_cancellation_s_transaction(store):
    """The executor's KILL is audited once, after the server said what it came to: ``alter_killed``
    chained before the record and the status change, in their commit — and a lost race writes none."""
    run = _running(store)
    reading = EmbeddedKillSwitch(store).read("acme", "orders-primary")
    killed = {"thread_id": 42, "outcome": "killed", "index_present": False, "waited_ms": 12.5}
    record_cancel_during_alter(store, run, reading, "me", SystemClock(), killed)
    entries = store.audit_entries("acme", run.id)
    assert [e.action for e in entries][-3:] == ["alter_killed", "rollback_recorded", "status_change"]
    assert entries[-3].details == killed and entries[-3].actor == "me"
    assert store.verify_audit_chain().intact

    lost = _running(store)  # the first run has ended: one canary at a time
    store.transition("acme", lost.id, "failed", "someone-else", fail_reason="execution_error", message="gone")
    with pytest.raises(StoreError):
        record_cancel_during_alter(store, lost, reading, "me", SystemClock(), killed)
    assert store.audit_entries("acme", lost.id, "alter_killed") == []


@pytest.mark.parametrize("record", [record_cancel_during_alter, record_cancel_after_alter])
def test_a_cancellation_that_loses_the_race_leaves_no_record(store, record):
    run = _running(store)
    reading = EmbeddedKillSwitch(store).read("acme", "orders-primary")
    store.transition("acme", run.id, "failed", "someone-else", fail_reason="execution_error", message="gone")
    before = len(store.audit_entries("acme", run.id))
    with pytest.raises(StoreError):
        if record is record_cancel_during_alter:
            record(store, run, reading, "me", SystemClock())
        else:
            record(store, run, reading, "me")
    assert store.rollback_records("acme", run.id) == [], "no rollback record for a run that was not cancelled"
    assert len(store.audit_entries("acme", run.id)) == before
    assert store.get_run("acme", run.id).status == "failed"
    v = store.verify_audit_chain()
    assert v.intact, v.problems
