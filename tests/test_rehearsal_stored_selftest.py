"""A drill that does not run the self-test (resumed after a kill, or ``--skip-self-test``) still
says which cases passed: the stored results, a line each, then a summary (engine/drill/rehearsal.py)."""

from __future__ import annotations

from engine.adapters.store import Store
from engine.drill import rehearsal, selftest
from engine.drill.rehearsal import StepProgress


def _said(store: Store, tenant: str) -> list[StepProgress]:
    lines: list[StepProgress] = []
    rehearsal.stored_self_test(store, tenant, "the resumed run is past the prechecks", lines.append)
    return lines


def test_each_stored_case_is_said_with_its_mark_then_a_summary(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    passed = selftest.CaseResult("TC-02", checks=[("killed before start", True)])
    failed = selftest.CaseResult("TC-09", checks=[("fail closed", False)])
    selftest.record(store, "t1", passed, "lead\x1b[31m")
    selftest.record(store, "t1", failed, "dba")
    selftest.record(store, "other", selftest.CaseResult("TC-03", checks=[("x", True)]), "lead")  # another tenant

    lines = _said(store, "t1")

    texts = [p.text for p in lines]
    assert texts[0].startswith("TC-02 [P0] PASS " + selftest.NAMES["TC-02"] + " (stored result: run earlier by lead")
    assert "\x1b" not in texts[0] and "lead\\x1b[31m" in texts[0]  # the actor from the store, neutralised
    assert texts[1].startswith("TC-09 [P0] FAIL ")
    assert len(lines) == 3 and not any("TC-03" in t for t in texts)
    assert lines[-1].state == "skipped"
    assert lines[-1].text == "the resumed run is past the prechecks; stored results: 1/2 passed"


def test_no_stored_results_says_the_self_test_was_not_run(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    lines = _said(store, "t1")
    assert [p.state for p in lines] == ["skipped"]
    assert "no stored results" in lines[0].text


def test_skipping_the_self_test_without_a_stored_passing_p0_says_the_run_cannot_reach_execution(tmp_path):
    """``--skip-self-test`` on a store without a passing P0 result: the drill says at once that the
    prechecks will stop the run (P0 cases must pass, docs/rehearsal.md) and how to get the results."""
    store = Store(f"sqlite:///{tmp_path}/s.db")
    selftest.record(store, "t1", selftest.CaseResult("TC-02", checks=[("killed before start", True)]), "lead")
    selftest.record(store, "t1", selftest.CaseResult("TC-09", checks=[("fail closed", False)]), "lead")
    lines: list[StepProgress] = []
    rehearsal.stored_self_test(store, "t1", "--skip-self-test: the stored results are used", lines.append,
                               "/drill/canary.toml")
    summary = lines[-1]
    assert summary.state == "failed"
    assert ("no stored passing result for TC-03 (P0, not run), TC-09 (P0, fail): the run stops at the prechecks "
            "and cannot reach execution until they pass") in summary.text
    assert "`canary-console self-test --plan /drill/canary.toml --cases TC-03,TC-09`" in summary.text
    assert "without --skip-self-test" in summary.text

    fresh = Store(f"sqlite:///{tmp_path}/fresh.db")  # a fresh store: nothing stored at all
    lines = []
    rehearsal.stored_self_test(fresh, "t1", "--skip-self-test: the stored results are used", lines.append,
                               "/drill/canary.toml")
    assert [p.state for p in lines] == ["failed"] and "TC-02 (P0, not run)" in lines[0].text

    for case in ("TC-03", "TC-09"):  # every P0 case passed: nothing to say beyond the results
        selftest.record(store, "t1", selftest.CaseResult(case, checks=[("ok", True)]), "lead")
    lines = []
    rehearsal.stored_self_test(store, "t1", "--skip-self-test: the stored results are used", lines.append,
                               "/drill/canary.toml")
    assert lines[-1].state == "skipped" and lines[-1].text.endswith("stored results: 3/3 passed")
