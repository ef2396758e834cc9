"""The decision view (docs/verdict.md; runbook 7, 7.2), from the engine's own verdicts: PASS, PASS
WITH WARNING, FAIL opening the rollback flow, INCONCLUSIVE asking the team, before a verdict; a
criterion that stopped the window; the n beside a criterion is its evidence's."""

from __future__ import annotations

from dashboard_drill import Drill, decided, fail_data, inconclusive_data, pass_data, warning_data

from engine.views.dashboard import decision_view


def test_decision_view_pass():
    v = decision_view(pass_data())
    assert (v.verdict, v.level, v.action) == ("PASS", "pass", "close")
    names = [r.name for r in v.rows]
    assert names[0] == "Index created successfully" and names[-1] == "Monitoring window completed"
    status = {r.name: r.status for r in v.rows}
    assert status["Error rate (app)"] == "n.a." and status["Query latency p50 change"] == "met"
    p50 = next(r for r in v.rows if r.name == "Query latency p50 change")
    assert "98% CI" in p50.interval and p50.n == "721" and "estimate below +10%" in p50.rule
    # the one-line evidence: estimate, interval, n and effective n, the control, the method
    assert "n=721 (effective" in p50.evidence and "no control" in p50.evidence and "long-run ρ" in p50.evidence
    assert "baseline 5 min" in p50.evidence
    assert "post-success observation" in v.action_text and not v.rollback_trigger
    assert v.summary == "7 met, 1 n.a."


def test_decision_view_pass_with_warning():
    v = decision_view(warning_data())
    assert (v.verdict, v.level, v.action) == ("PASS WITH WARNING", "warning", "document_warnings")
    assert any("Threads running" in w for w in v.warnings)


def test_decision_view_fail_opens_the_rollback_flow_with_the_metrics_at_decision_time():
    v = decision_view(fail_data())
    assert (v.verdict, v.level, v.action) == ("FAIL", "fail", "rollback")
    assert v.stopped_early and any("Lock wait time" in r for r in v.reasons)
    assert v.rollback_trigger == "lock_wait"
    lock = v.rollback_metrics["lock_wait"]
    assert lock["value"] == 6.2 and lock["level"] == "critical" and lock["unit"] == "s"
    assert set(v.rollback_metrics) == {"latency_p50", "latency_p99", "lock_wait", "replication_lag"}
    status = {r.name: r.status for r in v.rows}
    assert status["Monitoring window completed"] == "not met"


def test_a_criterion_that_stopped_the_window_is_not_met_with_the_value_that_stopped_it():
    """The walk at 80×24: "Replication lag met, 0 s" beside a run that FAILED on replication lag —
    the criterion judges the median of the last 5 minutes, calm before the stop. The metric that
    stopped the window is not met, with its value at the stop; its end median stays in the rule."""
    d = Drill()
    d.minutes(20)
    d.ticks(3, replication_lag=65.0)
    data = decided(d, stopped_early=True)
    assert data.facts.decision.evidence["stop_reason"].startswith("Replication lag 65")
    end = {c["name"]: c for c in data.facts.decision.evidence["criteria"]}["Replication lag"]
    assert end["met"] is True, "the stored evidence (engine.domain.decision_matrix) judged the end median"
    v = decision_view(data)
    lag = next(r for r in v.rows if r.name == "Replication lag")
    assert lag.status == "not met" and lag.value.startswith("65"), lag
    assert lag.rule.startswith("stopped the window at T+35:") and f"at the end: {end['value']}" in lag.rule
    assert v.rollback_trigger == "replication_lag" and "not met" in v.summary
    # the lock-wait stop says the same of lock wait
    lock = next(r for r in decision_view(fail_data()).rows if r.name == "Lock wait time")
    assert lock.status == "not met" and lock.value.startswith("6.2"), lock


def test_decision_view_inconclusive_asks_the_team_then_shows_what_it_decided():
    v = decision_view(inconclusive_data())
    assert (v.verdict, v.level, v.action) == ("INCONCLUSIVE", "inconclusive", "team_decision")
    assert "k keep the index · d remove it" in v.action_text and v.team_roles == ("canary_lead",)
    assert {r.status for r in v.rows if "latency" in r.name} == {"inconclusive"}
    assert not v.rollback_trigger
    v = decision_view(inconclusive_data({"team_decision": "remove", "note": "no evidence either way",
                                         "recorded_by": "somchai@10.0.0.5"}))
    assert v.action == "team_decided" and v.team_decision == "remove" and v.rollback_trigger == "consensus"
    assert "recorded by somchai@10.0.0.5" in v.action_text


def test_decision_view_before_a_verdict():
    d = Drill()
    d.minutes(34)
    v = decision_view(d.data())
    assert v.verdict is None and v.action == "wait" and "33.9 / 60 min" in v.action_text


def test_the_n_beside_a_criterion_is_the_n_its_evidence_states():
    """The n in the matrix's column and the n in the criterion's evidence line (the interval's, with
    its effective n) are one number, whatever the verdict — there is no separate confidence tier
    with a threshold of its own that could contradict it."""
    import re

    for data in (pass_data(), warning_data(), fail_data(), inconclusive_data()):
        v = decision_view(data)
        for row in v.rows:
            if row.evidence:
                stated = re.search(r"\bn=(\d+)", row.evidence)
                assert stated and stated.group(1) == row.n, (row.name, row.n, row.evidence)
                assert "low confidence" not in row.evidence
