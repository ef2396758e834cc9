"""Self-test results gate the run (runbook 2.1; docs/prechecks.md#self-test-gate): a failed P1 case
blocks the prechecks until the canary lead and the DBA have each acknowledged it with a reason
(audited); the engine function checks the role; the CLI and the console's key call it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_cli import cli, write_plan

from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import PrecheckResult, Store
from engine.adapters.target import Target
from engine.domain.plan import load_plan
from engine.flows import selftest_gate
from engine.flows.executor import Executor
from engine.flows.runbook import load_view, precheck_missing


def _store_with_run(tmp_path, role="canary_lead"):
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    path = write_plan(tmp_path, role)
    plan = load_plan(path)
    store = Store(store_url)
    run = Executor(plan, store, EmbeddedKillSwitch(store), Target(plan.connection), "lead@jump", "w").create_run()
    return store_url, path, plan, store, run


def _result(store, tenant, case, status):
    store.save_precheck(PrecheckResult(tenant_id=tenant, check_id=case, priority="P1", status=status,
                                       detail=f"{case}: verification did not roll back", source="self-test",
                                       recorded_by="self-test", recorded_at=store.now()))


def _blocking(store, plan, run, case):
    view = load_view(store, plan.tenant, run.id)
    return [m for m in precheck_missing(view, store.now() + timedelta(hours=1)) if m.what.startswith(case)]


def test_a_failed_p1_case_blocks_until_the_lead_and_the_dba_acknowledge_it(tmp_path):
    _url, _path, plan, store, run = _store_with_run(tmp_path)
    _result(store, plan.tenant, "TC-06", "fail")
    [blocked] = _blocking(store, plan, run, "TC-06")
    assert "P1" in blocked.what and "canary lead" in blocked.who and "DBA" in blocked.who

    selftest_gate.acknowledge(store, plan.tenant, run.id, "TC-06", "fails on the sandbox's disk only",
                              "somchai@jump", {"canary_lead"})
    [still] = _blocking(store, plan, run, "TC-06")
    assert "DBA" in still.what and "canary lead" not in still.what
    assert still.who.startswith("the DBA acknowledges it with a reason")  # one role left: no "each"

    ack = selftest_gate.acknowledge(store, plan.tenant, run.id, "tc-06", "verified by hand on staging",
                                    "nok@jump", {"dba"})
    assert ack.role == "dba" and "verified by hand on staging" in ack.note
    assert _blocking(store, plan, run, "TC-06") == []
    audited = store.audit_entries(plan.tenant, run.id)
    assert {e.details.get("role") for e in audited if e.action == "selftest_ack:TC-06_approve"} == {"canary_lead", "dba"}

    _result(store, plan.tenant, "TC-01", "pass")  # a P1 that passed blocks nothing
    assert _blocking(store, plan, run, "TC-01") == []


def test_acknowledging_is_refused_without_the_role_a_reason_or_a_failed_p1(tmp_path):
    _url, _path, plan, store, run = _store_with_run(tmp_path)
    _result(store, plan.tenant, "TC-06", "fail")
    with pytest.raises(PermissionError, match="canary lead or DBA"):
        selftest_gate.acknowledge(store, plan.tenant, run.id, "TC-06", "because", "sre@jump", {"sre"})
    assert store.audit_entries(plan.tenant, run.id, "acknowledge_self_test_refused")
    with pytest.raises(ValueError, match="reason"):
        selftest_gate.acknowledge(store, plan.tenant, run.id, "TC-06", " \x1b ", "lead@jump", {"canary_lead"})
    with pytest.raises(ValueError, match="not a P1"):
        selftest_gate.acknowledge(store, plan.tenant, run.id, "TC-02", "P0 must pass", "lead@jump", {"canary_lead"})
    with pytest.raises(ValueError, match="has not failed"):
        selftest_gate.acknowledge(store, plan.tenant, run.id, "TC-01", "not run", "lead@jump", {"canary_lead"})
    selftest_gate.acknowledge(store, plan.tenant, run.id, "TC-06", "once", "lead@jump", {"canary_lead"})
    with pytest.raises(ValueError, match="already acknowledged"):
        selftest_gate.acknowledge(store, plan.tenant, run.id, "TC-06", "twice", "lead@jump", {"canary_lead"})


def test_the_cli_acknowledges_once_per_role(tmp_path):
    url, path, plan, store, run = _store_with_run(tmp_path, role="dba")
    _result(store, plan.tenant, "TC-06", "fail")
    done = cli("acknowledge", run.id, "--plan", str(path), "--store", url, "--case", "TC-06",
               "--reason", "slow sandbox disk")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "as DBA" in done.stdout and "still to acknowledge: the canary lead" in done.stdout
    again = cli("acknowledge", run.id, "--plan", str(path), "--store", url, "--case", "TC-06", "--reason", "again")
    assert again.returncode == 2 and "already acknowledged" in again.stderr and "Traceback" not in again.stderr
    sre_path = write_plan(tmp_path / "sre", "sre") if (tmp_path / "sre").mkdir() is None else None
    refused = cli("acknowledge", run.id, "--plan", str(sre_path), "--store", url, "--case", "TC-06", "--reason", "x y z")
    assert refused.returncode == 3 and "Traceback" not in refused.stderr


@pytest.mark.mariadb
async def test_the_prechecks_screen_key_acknowledges_the_failed_case(lab, tmp_path):
    from test_console_flow import make_app, make_plan
    from waits import until

    db = lab.database("cc_ack")
    lab.load_orders(db, 2000)
    plan = make_plan(lab, db, "idx_ack")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    run = Executor(plan, store, EmbeddedKillSwitch(store), Target(plan.connection), "lead@10.0.0.5", "w").create_run()
    _result(store, plan.tenant, "TC-06", "fail")
    app = make_app(plan, store, user="lead")
    async with app.run_test(size=(160, 50)) as pilot:
        assert await until(pilot, lambda: app.view.run is not None and app.view.run.id == run.id)
        await pilot.press("2")
        assert await until(pilot, lambda: app.screen.name == "prechecks")
        await pilot.press("a")
        assert await until(pilot, lambda: type(app.screen).__name__ == "NoteDialog")
        await pilot.press(*"flaky on the sandbox", "enter")
        assert await until(pilot, lambda: store.approvals(plan.tenant, run.id, "selftest_ack:TC-06"))
    [ack] = store.approvals(plan.tenant, run.id, "selftest_ack:TC-06")
    assert ack.role == "canary_lead" and "flaky on the sandbox" in ack.note and ack.actor == "lead@10.0.0.5"


@pytest.mark.mariadb
def test_the_headless_drill_stops_on_an_unacknowledged_p1_until_both_acknowledge(lab, tmp_path):
    from engine.flows.prechecks import headless_gate

    db = lab.database("cc_ack_headless")
    lab.load_orders(db, 2000)
    plan = lab.plan(db, "idx_ack_headless", ["customer_id"])
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    backend = EmbeddedKillSwitch(store)
    run = Executor(plan, store, backend, Target(plan.connection), "lead@jump", "w").create_run()
    for case in ("TC-02", "TC-03", "TC-09"):  # the P0 cases passed: only the P1 case is in question here
        _result(store, plan.tenant, case, "pass")
    _result(store, plan.tenant, "TC-06", "fail")
    said: list[str] = []
    blockers = headless_gate(plan, store, backend, Target(plan.connection), run.id, "lead@jump", said.append)
    assert [b for b in blockers if b.startswith("TC-06 (P1)")], blockers
    assert not [b for b in blockers if not b.startswith("TC-06")], blockers  # the sandbox's checks pass
    for role, who in (("canary_lead", "lead@jump"), ("dba", "nok@jump")):
        selftest_gate.acknowledge(store, plan.tenant, run.id, "TC-06", "known sandbox flake", who, {role})
    assert headless_gate(plan, store, backend, Target(plan.connection), run.id, "lead@jump", said.append) == []


@pytest.mark.mariadb
def test_a_p0_case_without_a_stored_pass_blocks_the_headless_drill_as_it_blocks_the_console(lab, tmp_path):
    """Not run counts as not passed (``selftest_gate.p0_missing``, one rule for both): a drill started
    with --skip-self-test on a fresh store never reaches execution, and says how to get the results."""
    from engine.flows.prechecks import headless_gate

    db = lab.database("cc_p0_headless")
    lab.load_orders(db, 2000)
    plan = lab.plan(db, "idx_p0_headless", ["customer_id"])
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    backend = EmbeddedKillSwitch(store)
    run = Executor(plan, store, backend, Target(plan.connection), "lead@jump", "w").create_run()
    _result(store, plan.tenant, "TC-02", "pass")
    _result(store, plan.tenant, "TC-09", "fail")
    blockers = headless_gate(plan, store, backend, Target(plan.connection), run.id, "lead@jump", [].append)
    p0 = [b for b in blockers if "(P0)" in b]
    assert [b.split(" (P0)")[0] for b in p0] == ["TC-03", "TC-09"], blockers
    assert p0[0].startswith("TC-03 (P0) not run: no stored passing result — run the self-test: ")
    assert "`canary-console self-test --plan PLAN.toml`" in p0[0] and "without --skip-self-test" in p0[0]
    assert p0[1].startswith("TC-09 (P0) failed: ")
    view = load_view(store, plan.tenant, run.id)
    console = [m.what for m in precheck_missing(view, store.now()) if "(P0)" in m.what]
    assert console == ["TC-03 (P0) not run", "TC-09 (P0) fail"]  # the same cases block the console
