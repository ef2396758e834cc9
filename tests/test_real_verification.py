"""Verification in real runs (docs/verification.md): every monitored run judges the table's digests
— rows examined (a warning at +20 %) and new full scans — and EXPLAINs the plan's sample queries
before and after to see that the index is used; without sample queries it says it did not check."""

from __future__ import annotations

import pytest

from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.target import Target
from engine.domain.clock import CompressedClock
from engine.domain.decision_matrix import PASS, PASS_WITH_WARNING, Verdict
from engine.domain.plan import PlanError, plan_from_dict
from engine.domain.verification import DigestStats
from engine.drill.selftest import Lab
from engine.drill.workload import Workload
from engine.flows.digest_check import NOT_CHECKED, QueryPlan, judge, with_check
from engine.flows.executor import Executor
from engine.flows.monitor import Monitor, sources_for
from engine.views.dashboard import decision_view, load_dashboard

SPEED = 900.0
SAMPLE = "SELECT id, total FROM orders WHERE customer_id = 4242 AND created_at >= '2026-03-01' ORDER BY created_at LIMIT 20"


def _d(digest, count, rows, no_index, text="SELECT … FROM `orders`"):
    return DigestStats(digest, text, count, count * 1_000_000_000, rows, no_index)


def test_rows_examined_up_20_percent_and_a_new_full_scan_are_warnings():
    base = [_d("a", 100, 1000, 0)]
    check = judge(base, [_d("a", 100, 1250, 0)], "idx")
    assert check.status == "warn" and any("rows examined" in w and "+25.0" in w for w in check.warnings)
    assert check.index_used is None and check.index_note == NOT_CHECKED
    check = judge(base, [_d("a", 100, 1000, 0), _d("b", 20, 200, 20, "SELECT … WHERE `note` = ?")], "idx")
    assert any("new full scans" in w and "`note`" in w for w in check.warnings)
    assert judge(base, [_d("a", 100, 1100, 0)], "idx").status == "ok"
    verdict = Verdict(PASS, (), (), "document and close")
    assert with_check(verdict, check).verdict == PASS_WITH_WARNING
    miss = judge(base, [_d("a", 100, 900, 0)], "idx", [SAMPLE], (), (QueryPlan(SAMPLE, None, "ALL", 1000),))
    assert miss.index_used is False and any("not used" in w for w in miss.warnings)


def test_sample_queries_are_a_plan_key_for_single_selects():
    base = {"tenant": "t", "connection": {"id": "c", "host": "h", "user": "u", "database": "shop"},
            "change": {"table": "orders", "index": "idx", "columns": ["a"], "sample_queries": [SAMPLE]}}
    assert plan_from_dict(base).change.sample_queries == (SAMPLE,)
    for bad in ("DELETE FROM orders", "SELECT 1; DROP TABLE orders", "SELECT * FROM orders INTO OUTFILE '/tmp/x'"):
        with pytest.raises(PlanError, match="sample_queries"):
            plan_from_dict(base | {"change": base["change"] | {"sample_queries": [bad]}})


@pytest.fixture(scope="module")
def shop(lab: Lab):
    db = lab.database("cc_verify")
    lab.load_orders(db, 60_000)
    reads = Workload(lab.sandbox.primary.profile(db), "SELECT id, total FROM orders WHERE customer_id = %s AND "
                     "created_at >= %s ORDER BY created_at LIMIT 20", lambda r: (r.randint(0, 49_999), "2026-03-01"),
                     rate_per_s=40, name="verify-reads")
    with reads:
        yield db


def _monitored_run(lab, db, index, columns, sample_queries):
    plan = lab.plan(db, index, columns, baseline_window_seconds=300, lease_seconds=600)
    plan = plan_from_dict(plan.raw | {"change": plan.raw["change"] | {"sample_queries": sample_queries}})
    store = lab.store(f"verify-{index}")
    clock = CompressedClock(SPEED)
    backend = EmbeddedKillSwitch(store)
    ex = Executor(plan, store, backend, Target(plan.connection), "lead@test", "worker-a", clock=clock)
    run = ex.create_run()
    ex.monitor = Monitor(store, plan.tenant, run.id, sources_for(plan, backend, clock), plan.profile(), "lead@test",
                         clock, interval=10)
    try:
        ex.execute(run.id)
    finally:
        ex.monitor.close()
        lab.drop_index_if_present(db, "orders", index)
    decision = store.decisions(plan.tenant, run.id)[-1]
    # what the decision screen shows (the console reads the stored decision)
    shown = decision_view(load_dashboard(store, plan, run.id, clock.now())).verification
    assert shown and "rows examined per statement" in shown and decision.evidence["verification"]["index_note"] in shown
    return decision


@pytest.mark.mariadb
@pytest.mark.slow
def test_a_monitored_run_judges_the_digests_and_sees_the_index_used(lab, shop):
    decision = _monitored_run(lab, shop, "idx_verify_cc", ["customer_id", "created_at"], [SAMPLE])
    check = decision.evidence["verification"]
    assert check is not None, "the monitored run did not verify"
    assert check["verification"]["sample_count"] > 0 and check["verification"]["baseline"]["count"] > 0
    assert check["verification"]["rows_examined_change_pct"] < -50  # the reads stop scanning the table
    assert check["explain_before"][0]["key"] is None and check["explain_before"][0]["access"] == "ALL"
    assert check["index_used"] is True and "idx_verify_cc" in check["explain_after"][0]["key"]


@pytest.mark.mariadb
@pytest.mark.slow
def test_an_index_the_queries_do_not_use_is_a_warning_and_no_sample_queries_is_said(lab, shop):
    decision = _monitored_run(lab, shop, "idx_verify_note", ["note"], [SAMPLE])
    check = decision.evidence["verification"]
    assert check["index_used"] is False
    assert any("not used" in w for w in decision.evidence["warnings"]), decision.evidence["warnings"]
    assert decision.verdict != PASS
    decision = _monitored_run(lab, shop, "idx_verify_none", ["status"], [])
    assert decision.evidence["verification"]["index_note"] == NOT_CHECKED
