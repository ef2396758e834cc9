"""The README's main command, run as a user runs it (time-compressed, small table), in a private
state directory, headless: it walks the runbook to a PASS, records every step in the store and the
audit trail, and stops everything it started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.adapters.store import Store

pytestmark = [pytest.mark.long, pytest.mark.mariadb, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent

# The runbook's order, as the audit trail of a passing drill must show it.
PASS_PATH = ("run_created", "claimed", "kill_switch_checked", "target_checked", "rollback_point_captured",
             "baseline_sampling", "baseline_captured", "alter_started", "index_added", "monitoring_started",
             "checkpoint_recorded", "monitoring_completed")


def test_rehearse_headless_passes_records_the_runbook_and_cleans_up(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "console.cli", "rehearse", "--rows", "20000", "--speed", "120",
                           # The P0 cases, for real: a drill reaches execution only once they passed
                           # (docs/rehearsal.md); a new drill's store has none stored yet.
                           "--self-test-cases", "TC-02,TC-03,TC-09", "--headless"], capture_output=True, text=True,
                          cwd=ROOT, env=env,
                          timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr
    assert "size gate PASS" in out and "TIME COMPRESSED 120×" in out
    assert "outcome: completed — PASS" in out or "outcome: completed — PASS WITH WARNING" in out, out
    assert "[    met] Monitoring window completed" in out
    assert "stopping the workload and the sandbox servers" in out
    base = tmp_path / "canary-console" / "rehearsal"
    assert (base / "canary.toml").is_file() and (base / "store.db").is_file()
    leftovers = subprocess.run(["pgrep", "-f", str(base)], capture_output=True, text=True).stdout.strip()
    assert leftovers == "", f"processes still running under {base}: {leftovers}"

    store = Store(f"sqlite:///{base / 'store.db'}")
    [run] = store.find_runs("rehearsal")
    assert (run.status, run.fail_reason, run.index_created_by_run) == ("completed", None, True)
    assert run.alter_started_at < run.alter_finished_at < run.completed_at
    [decision] = store.decisions("rehearsal", run.id)
    assert decision.verdict in ("PASS", "PASS WITH WARNING")
    met = {c["name"]: c["met"] for c in decision.evidence["criteria"] if c["applicable"]}
    assert all(met.values()), met
    actions = [e.action for e in store.audit_entries("rehearsal", run.id)]
    # The baseline is sampled from the run's creation (the presampler's "baseline_sampling" comes
    # first) and again right before the ALTER: the order is the executor's, after its claim.
    claimed = actions.index("claimed")
    assert actions.index("baseline_sampling") < claimed
    positions = [actions.index(a, claimed if a == "baseline_sampling" else 0) for a in PASS_PATH]
    assert positions == sorted(positions), f"out of the runbook's order: {actions}"
    started = store.audit_entries("rehearsal", run.id, "monitoring_started")[0]
    assert started.details["time_compression"] == 120, "the store records the compressed clock"
    labels = [c.label for c in store.checkpoints("rehearsal", run.id)]
    assert labels == ["T+15", "T+30", "T+45", "T+60", "T+75"]
    metrics = {r.metric for r in store.samples("rehearsal", run.id) if r.value is not None}
    assert {"latency_p50", "latency_p99", "replication_lag", "lock_wait", "threads_running"} <= metrics
