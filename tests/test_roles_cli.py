"""Roles in the CLI (docs/roles.md): a role-gated command run by someone without the role is refused
(exit 3) with a message naming who may, and the refusal is audited — never a traceback. (Turning
the kill switch off: tests/test_cli.py.)"""

from __future__ import annotations

from test_cli import cli, write_plan

from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import Store
from engine.adapters.target import Target
from engine.domain.plan import load_plan
from engine.flows.executor import Executor


def test_lifting_an_auto_pause_is_the_canary_leads_alone(tmp_path):
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    path = write_plan(tmp_path, "sre")
    plan = load_plan(path)
    store = Store(store_url)
    run = Executor(plan, store, EmbeddedKillSwitch(store), Target(plan.connection), "lead@jump", "w").create_run()
    done = cli("approve", run.id, "--plan", str(path), "--store", store_url, "--decision", "resume")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "canary" in done.stderr.lower() and "Traceback" not in done.stderr
    [entry] = store.audit_entries(plan.tenant, run.id, "auto_pause_approval_refused")
    assert entry.details["roles"] == ["sre"]
    assert not store.approvals(plan.tenant, run.id, "auto_pause")
