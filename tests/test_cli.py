"""The headless CLI against a real store: in this process (tests/cli_run.py), and as a process of its
own where that is the point (the whole kill → status → unkill round, ``run``)."""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path

import pytest
from cli_run import cli_process, run_cli
from waits import wait_for

from engine.adapters.store import Store

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def write_plan(tmp_path: Path, role: str) -> Path:
    plan = tmp_path / "canary.toml"
    plan.write_text(f"""
tenant = "acme"
[connection]
id = "orders-primary"
host = "127.0.0.1"
port = 3306
user = "canary"
database = "shop"
password_env = "CANARY_DB_PASSWORD"
[change]
table = "orders"
index = "idx_orders_customer_created"
columns = ["customer_id", "created_at"]
[[people]]
name = "Me"
role = "{role}"
unix_user = "{getpass.getuser()}"
""")
    return plan


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_kill_then_status_then_unkill_by_a_dba(tmp_path, store_url):
    plan = write_plan(tmp_path, "dba")
    done = cli_process("kill", "--plan", str(plan), "--store", store_url, "--scope", "tenant", "--reason", "drill")
    assert done.returncode == 0, done.stderr
    assert "kill switch ACTIVE (tenant acme)" in done.stdout

    status = cli_process("status", "--plan", str(plan), "--store", store_url, "--json")
    data = json.loads(status.stdout)
    assert data["kill_switch"]["active"] is True and data["kill_switch"]["scopes"] == ["tenant"]

    no_reason = cli_process("unkill", "--plan", str(plan), "--store", store_url, "--scope", "tenant")
    assert no_reason.returncode == 2 and "reason is required" in no_reason.stderr

    off = cli_process("unkill", "--plan", str(plan), "--store", store_url, "--scope", "tenant", "--reason", "drill over")
    assert off.returncode == 0, off.stderr
    store = Store(store_url)
    assert not any(r.is_active for r in store.kill_switch_rows("acme"))
    actions = [e.action for e in store.audit_entries("acme")]
    assert actions == ["kill_switch_activated", "kill_switch_deactivation_refused", "kill_switch_deactivated"]
    assert all(e.actor.startswith(getpass.getuser() + "@") for e in store.audit_entries("acme"))


def test_unkill_refused_without_the_role_and_audited(tmp_path, store_url):
    plan = write_plan(tmp_path, "developer")
    cli("kill", "--plan", str(plan), "--store", store_url, "--scope", "global")
    refused = cli("unkill", "--plan", str(plan), "--store", store_url, "--scope", "global", "--reason", "x")
    assert refused.returncode == 3
    assert "needs the canary lead or DBA role" in refused.stderr and "Traceback" not in refused.stderr
    store = Store(store_url)
    assert [r.is_active for r in store.kill_switch_rows("acme") if r.scope == "global"] == [True]
    assert store.audit_entries("acme", action="kill_switch_deactivation_refused")


def test_bad_plan_gets_one_message_per_problem_and_no_traceback(tmp_path, store_url):
    plan = tmp_path / "bad.toml"
    plan.write_text('tenant = "Acme Corp"\n[connection]\nport = 99999\npassword = "hunter2"\n'
                    '[change]\ntable = "orders; DROP TABLE x"\nindex = "i"\ncolumns = []\n')
    done = cli("status", "--plan", str(plan), "--store", store_url)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
    for expected in ("'tenant'", "'connection.port'", "password_env", "'change.table'", "'change.columns'"):
        assert expected in done.stderr, expected
    missing = cli("status", "--plan", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_bad_store_url_is_a_message_not_a_traceback(tmp_path):
    done = cli("status", "--tenant", "acme", "--store", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert done.returncode == 1
    assert "cannot open the store" in done.stderr and "secret" not in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.mariadb
def test_self_test_subset_stores_results_for_the_prechecks_screen(tmp_path, store_url):
    """Everyone the plan names may run it (here a developer): the results go to the plan's tenant."""
    plan = write_plan(tmp_path, "developer")
    done = cli("self-test", "--plan", str(plan), "--store", store_url, "--cases", "TC-02,TC-05")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "TC-02 [P0] PASS" in done.stdout and "TC-05 [P2] PASS" in done.stdout
    results = Store(store_url).latest_prechecks("acme", "TC-")
    assert {k: v.status for k, v in results.items()} == {"TC-02": "pass", "TC-05": "pass"}
    assert results["TC-02"].priority == "P0" and results["TC-02"].duration_ms > 0


def test_playing_a_teammate_is_for_rehearsal_plans_only(tmp_path):
    from engine.domain.plan import load_plan

    real = write_plan(tmp_path, "dba")
    done = cli_process("run", str(real), "--as", "nok", "--store", f"sqlite:///{tmp_path / 's.db'}")
    assert done.returncode == 3 and "--as is for rehearsal plans only" in done.stderr
    assert "Traceback" not in done.stderr
    drill = tmp_path / "drill.toml"
    drill.write_text("rehearsal = true\n" + real.read_text())
    assert load_plan(drill).rehearsal and not load_plan(real).rehearsal


def test_execute_is_refused_where_the_console_s_step_4_is_locked_and_says_what_is_missing(tmp_path, store_url):
    """``canary-console execute`` asks the console's step-4 gate (runbook.missing_for("execution"))
    after the role: no run, or a run whose prechecks are not walked, is refused (exit 3) naming each
    missing thing and how to provide it; nothing is claimed, the refusal is audited as step_locked.
    No database is listening on the plan's port: the gate stops it before any connection."""
    from datetime import UTC, datetime

    from engine.adapters.store import Approval, ExecutionRun
    from engine.domain.plan import load_plan
    from engine.flows.runbook import load_view, missing_for

    plan = write_plan(tmp_path, "canary_lead")
    store = Store(store_url)
    no_run = cli("execute", str(plan), "--store", store_url)
    assert no_run.returncode == 3, no_run.stderr
    assert "step 4 (execute) is locked" in no_run.stderr and "no run for this plan yet" in no_run.stderr
    assert f"canary-console run {plan}" in no_run.stderr and "Traceback" not in no_run.stderr
    assert store.find_runs("acme") == [], "refused before a run is created"

    run = store.create_run(ExecutionRun(tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop",
                                        table_name="orders", index_name="idx_orders_customer_created",
                                        columns=["customer_id", "created_at"]), "somchai")
    done = cli("execute", str(plan), "--run", run.id, "--store", store_url)
    assert done.returncode == 3, done.stderr
    for needle in ("TC-02 (P0)", "run the self-test", "prepared rollback statement not confirmed",
                   "sign-off by the canary lead", "the plan names no DBA", f"--run {run.id}"):
        assert needle in done.stderr, needle
    # One rule: what the CLI lists is what the console's step 4 lists for the same run.
    [locked] = store.audit_entries("acme", run.id, "step_locked")
    console = missing_for("execution", load_view(store, "acme", run.id, unstaffed=load_plan(plan).unstaffed()),
                          datetime.now(UTC))
    assert locked.details["missing"] == [str(m) for m in console][:10]
    assert locked.details["step"] == "execution"
    after = store.get_run("acme", run.id)
    assert (after.status, after.claimed_by) == ("scheduled", None), "a refused execute claims nothing"

    # The gate reads the store: a sign-off given (at the console) is no longer asked for.
    store.add_approval(Approval(tenant_id="acme", execution_run_id=run.id, kind="signoff", role="canary_lead",
                                actor="somchai"))
    again = cli("execute", str(plan), "--run", run.id, "--store", store_url)
    assert again.returncode == 3 and "sign-off by the canary lead" not in again.stderr
    assert "sign-off by the DBA" in again.stderr


def test_execute_asks_the_role_before_the_prechecks_gate(tmp_path, store_url):
    plan = write_plan(tmp_path, "developer")
    done = cli("execute", str(plan), "--store", store_url)
    assert done.returncode == 3 and "needs the canary lead or DBA role" in done.stderr
    store = Store(store_url)
    assert store.audit_entries("acme", action="execute_refused") and not store.audit_entries("acme", action="step_locked")


def test_a_run_is_named_by_the_start_of_its_id_as_the_screens_show_it(tmp_path, store_url):
    """The screens say "run 3f2a9c1e"; a person types that. One run with that start: it is the run;
    several: they are listed and more of the id is asked for; too short or none: said, with where
    the runs are listed."""
    from engine.adapters.store import ExecutionRun
    from engine.domain.plan import load_plan
    from engine.flows.lessons import LESSON

    path = write_plan(tmp_path, "canary_lead")
    plan = load_plan(path)
    store = Store(store_url)
    ids = ("3f2a9c1e-1111-4000-8000-000000000001", "3f2a9c1e-2222-4000-8000-000000000002",
           "7b10c4d2-0000-4000-8000-000000000003")
    for run_id in ids:
        store.create_run(ExecutionRun(id=run_id, tenant_id=plan.tenant, connection_profile_id=plan.connection.id,
                                      schema_name="shop", table_name="orders", index_name=plan.change.index,
                                      columns=[["customer_id", None]]), "test")
        store.transition(plan.tenant, run_id, "cancelled", "test", message="made for the test")
    lesson = ("lesson", "--plan", str(path), "--store", store_url, "--what", "the drill's clock ran fast")

    done = cli(lesson[0], "7b10c4d2", *lesson[1:])
    assert done.returncode == 0, done.stderr
    assert [e.execution_run_id for e in store.audit_entries(plan.tenant, action=LESSON)] == [ids[2]]

    done = cli(lesson[0], "3f2a9c1e", *lesson[1:])
    assert done.returncode == 1 and "is the start of 2 runs" in done.stderr and "give more of the id" in done.stderr
    assert ids[0] in done.stderr and ids[1] in done.stderr
    done = cli(lesson[0], "3F2A9C1E-2", *lesson[1:])
    assert done.returncode == 0, done.stderr

    done = cli(lesson[0], "7b1", *lesson[1:])
    assert done.returncode == 1 and "at least 4 characters" in done.stderr
    done = cli(lesson[0], "ffff0000", *lesson[1:])
    assert done.returncode == 1 and "not found for tenant acme" in done.stderr and "status --plan" in done.stderr
    done = cli(lesson[0], "3f2a%", *lesson[1:])  # a LIKE wildcard is not a prefix
    assert done.returncode == 1 and "not found" in done.stderr
    assert len(store.audit_entries(plan.tenant, action=LESSON)) == 2


@pytest.mark.mariadb
def test_sigterm_stops_what_the_command_started_and_says_so(tmp_path, store_url):
    """SIGTERM (``kill``, ``timeout``) ended a command where it stood: a headless drill's servers and
    its self-test's sandbox ran on with nobody to stop them. Now it unwinds as Ctrl+C does — its
    sandbox stopped and removed — and says which signal ended it (exit 128 + 15, as a shell would)."""
    import os
    import signal
    import sys

    plan = write_plan(tmp_path, "developer")
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "self-test", "--plan", str(plan), "--store",
                             store_url, "--cases", "TC-10"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    def its_sandbox() -> Path | None:
        if proc.poll() is not None:
            return None
        for base in Path("/tmp").glob("cc-sbx-*"):
            try:
                if (base / "owner").read_text().startswith(f"{proc.pid} ") and (base / "primary.pid").exists():
                    return base
            except OSError:
                pass
        return None

    started = wait_for(its_sandbox, 60)
    assert started is not None, "the self-test started its sandbox"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert not started.exists(), "the sandbox it started is stopped and removed"
