"""The runbook's integration cases TC-01…TC-10 against the real sandbox MariaDB.

Each case is the same code ``canary-console self-test`` runs (engine.drill.selftest); here we also look
at what it left in the store and on the server.
"""

from __future__ import annotations

import pytest

from engine.drill import selftest

pytestmark = pytest.mark.mariadb


def _run(lab, case):
    result = selftest.run_case(lab, case)
    assert result.passed, f"{case}: {result.summary()} — checks: {result.checks}"
    return result


def _statuses(result):
    return [(e.old_status, e.new_status) for e in result.store.audit_entries("selftest", result.run_id)
            if e.action in ("run_created", "status_change")]


def test_tc01_claim_conflict(lab):
    r = _run(lab, "TC-01")
    assert r.outcome.fail_reason == "claim_failed"
    assert "worker-a" in r.outcome.message


def test_tc02_kill_switch_before_start(lab):
    r = _run(lab, "TC-02")
    assert _statuses(r) == [(None, "scheduled"), ("scheduled", "running"), ("running", "failed")]
    assert not r.store.audit_entries("selftest", r.run_id, "alter_started")


def test_tc03_kill_switch_after_add_index(lab):
    r = _run(lab, "TC-03")
    assert _statuses(r)[-1] == ("running", "cancelled")
    assert r.store.get_run("selftest", r.run_id).index_created_by_run


def test_tc04_lock_none_refused(lab):
    r = _run(lab, "TC-04")
    assert r.outcome.details.get("error_kind") == "lock_none_refused"


def test_tc05_index_already_exists(lab):
    r = _run(lab, "TC-05")
    assert not r.store.get_run("selftest", r.run_id).index_created_by_run
    assert r.store.audit_entries("selftest", r.run_id, "rollback_refused")


def test_tc06_verification_fail_rollback_ok(lab):
    r = _run(lab, "TC-06")
    v = r.outcome.verification
    assert v.rule in ("latency_degraded", "rows_examined_rose") and v.sample_count >= 10
    assert _statuses(r)[-1] == ("running", "rolled_back")


def test_tc07_verification_fail_rollback_fail(lab):
    r = _run(lab, "TC-07")
    rec = [x for x in r.store.rollback_records("selftest", r.run_id) if x.rollback_status == "failed"][0]
    assert all(a.get("kind") == "lock_wait_timeout" for a in rec.attempts)


def test_tc08_low_sample_inconclusive(lab):
    r = _run(lab, "TC-08")
    assert r.outcome.verification.sample_count < 10


def test_tc09_kill_switch_api_down_fail_closed(lab):
    r = _run(lab, "TC-09")
    assert r.outcome.fail_reason == "kill_switch"


@pytest.mark.long
def test_tc10_worker_crash_lease_expiry(lab):
    r = _run(lab, "TC-10")
    audit = r.store.audit_entries("selftest", r.run_id)
    inspected = [e for e in audit if e.action == "recovery_inspected"][0]
    # The dead worker's ALTER was still running on the server: the new owner waited it out.
    assert inspected.details["alter_in_processlist"] is True
    # The inspection came before the new owner's first action on the target.
    later = [e.action for e in audit if e.created_at >= inspected.created_at]
    assert later[0] == "recovery_inspected"
