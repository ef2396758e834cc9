"""The headless CLI, run as a user runs it (a real subprocess), against a real store."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.adapters.store import Store

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))


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
    done = cli("kill", "--plan", str(plan), "--store", store_url, "--scope", "tenant", "--reason", "drill")
    assert done.returncode == 0, done.stderr
    assert "kill switch ACTIVE (tenant acme)" in done.stdout

    status = cli("status", "--plan", str(plan), "--store", store_url, "--json")
    data = json.loads(status.stdout)
    assert data["kill_switch"]["active"] is True and data["kill_switch"]["scopes"] == ["tenant"]

    no_reason = cli("unkill", "--plan", str(plan), "--store", store_url, "--scope", "tenant")
    assert no_reason.returncode == 2 and "reason is required" in no_reason.stderr

    off = cli("unkill", "--plan", str(plan), "--store", store_url, "--scope", "tenant", "--reason", "drill over")
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
    done = cli("run", str(real), "--as", "nok", "--store", f"sqlite:///{tmp_path / 's.db'}")
    assert done.returncode == 3 and "--as is for rehearsal plans only" in done.stderr
    assert "Traceback" not in done.stderr
    drill = tmp_path / "drill.toml"
    drill.write_text("rehearsal = true\n" + real.read_text())
    assert load_plan(drill).rehearsal and not load_plan(real).rehearsal
