"""Crash-resume with real processes (issue 5): SIGKILL the driver mid-run and start a console again.

1. A headless worker (engine/drill/worker.py, the execute action) starts the run and is SIGKILLed during its
   ALTER: the server keeps the ALTER running.
2. A real console in tmux (``canary-console run``) attaches, waits out the dead worker's lease,
   takes the run over, finds the ALTER by its thread id, waits for it, and starts the monitoring
   window. It is SIGKILLed in the middle of the window.
3. The console started again takes the run over once more and *resumes* the window from the
   stored samples: one window, nothing recorded lost, the gap left as it is, a verdict at the end.

The plan is a drill's (rehearsal = true) on a clock compressed 120×, anchored in the plan, so the
three processes read the same time. About a minute and a half.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from waits import expect

from engine.adapters.store import Store
from engine.adapters.target import Target
from engine.domain.clock import clock_for, utcnow
from engine.domain.plan import load_plan, toml_dump, window_covering
from engine.drill.workload import Workload

pytestmark = [pytest.mark.long, pytest.mark.mariadb, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is needed to run the real console")]

ROOT = Path(__file__).resolve().parent.parent
CLI = str(ROOT / ".venv" / "bin" / "canary-console")
SPEED = 120.0
INDEX = "idx_resume_cust_note"


def console_pids(plan_path: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"canary-console run {plan_path}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.fixture
def drill(lab, tmp_path):
    db = lab.big_table(1_000_000)
    lab.drop_index_if_present(db, "orders", INDEX)
    plan_path = tmp_path / "canary.toml"
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    plan_path.write_text(toml_dump({
        "tenant": "resume",
        "store_url": store_url,
        "connection": {"id": "sbx-resume", "host": "127.0.0.1", "port": lab.sandbox.primary.port, "user": "root",
                       "database": db},
        "change": {"table": "orders", "index": INDEX, "columns": ["customer_id", "note", "created_at"]},
        "people": [{"name": "You", "roles": ["canary_lead", "dba", "sre"], "unix_user": getpass.getuser()}],
        "rehearsal": True,
        "time_compression": {"speed": SPEED, "origin": utcnow().isoformat()},
        "window": window_covering(utcnow(), hours=23),
        # A 10-minute baseline (never extended: a fixed timeline), a one-minute cool-down, a 4-minute lease: 5 s, 0.5 s and 2 s real.
        "executor": {"mode": "canary", "baseline_window_seconds": 600, "baseline_extend_max_seconds": 0,
                     "cooldown_seconds": 60, "lease_seconds": 240, "lock_wait_timeout": 60},
    }))
    reads = Workload(lab.sandbox.primary.profile(db), "SELECT id, total FROM orders WHERE customer_id = %s "
                     "AND note >= %s LIMIT 20", lambda r: (r.randint(0, 49_999), "8"), rate_per_s=20,
                     name="resume-reads")
    tmux_socket = f"ccresume-{os.getpid()}"
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    with reads:
        yield plan_path, store_url, db, tmux_socket, env
    subprocess.run(["tmux", "-L", tmux_socket, "-f", "/dev/null", "kill-server"], capture_output=True)
    for pid in console_pids(plan_path):
        os.kill(pid, signal.SIGKILL)
    lab.drop_index_if_present(db, "orders", INDEX)


def test_a_run_survives_its_driver_hung_during_the_alter_and_its_console_killed_mid_window(drill, lab):
    plan_path, store_url, db, tmux_socket, env = drill
    store = Store(store_url, clock=clock_for(load_plan(plan_path)))  # the drill's time, as the consoles read it
    tenant = "resume"
    blocker = lab.sandbox.primary.connect(db)
    worker = None
    try:
        run_id = _worker_hangs_with_its_alter_on_the_server(store, plan_path, env, blocker, lab, db)
        worker = run_id[1]
        run_id = run_id[0]

        def audit(action: str):
            return store.audit_entries(tenant, run_id, action)

        # 2. A console takes the run over after the lease, finds the ALTER by its thread id, waits
        #    for it and starts the window; SIGKILL it in the middle of the window.
        screen_1, before, checkpoints_before, killed_at = _console_takes_over_and_is_killed(
            store, tenant, run_id, plan_path, env, tmux_socket, blocker, worker)
        assert store.get_run(tenant, run_id).status == "running"
        [inspected] = audit("recovery_inspected")
        assert inspected.details["alter_in_processlist"] is True and inspected.details["alter_thread"]
        assert "you drive" in screen_1

        # 3. The console again: it takes over and resumes the window; the run reaches its verdict.
        tmux = tmux_driver().Tmux(tmux_socket, "second")
        tmux.start(160, 50, f"{CLI} run {plan_path}", env, ROOT)
        try:
            expect("the second take-over", lambda: len(audit("take_over")) >= 2, 30)
            [resumed] = expect("the window resumed", lambda: audit("monitoring_resumed"), 30)
            # a PASS is observed 15 more minutes (the drill's clock) before the run is completed
            expect("the verdict and the observation after it",
                   lambda: store.get_run(tenant, run_id).status not in ("running", "observing"), 120, step=0.5)
            screen = tmux.capture()
        finally:
            tmux.cmd("kill-session", "-t", "second", check=False)
    finally:
        blocker.close()
        if worker is not None and worker.poll() is None:
            worker.kill()

    run = store.get_run(tenant, run_id)
    assert run.status == "completed", (run.status, run.fail_reason, run.error_message)
    assert len(audit("monitoring_started")) == 1, "one window, resumed — not a second one"
    assert resumed.details["ticks_restored"] >= 6
    assert resumed.details["gap_s"] > 0, "the time nobody sampled is a gap"
    after = {(r.sampled_at, r.metric, r.value) for r in store.samples(tenant, run_id)}
    assert before <= after, "nothing recorded before the kill is lost"
    assert any(r.sampled_at > killed_at for r in store.samples(tenant, run_id)), "sampling went on"
    labels = [c.label for c in store.checkpoints(tenant, run_id)]
    assert len(labels) == len(set(labels)), f"a checkpoint recorded twice: {labels}"
    assert set(checkpoints_before) <= set(labels)
    [decision] = store.decisions(tenant, run_id)
    assert decision.verdict in ("PASS", "PASS WITH WARNING", "INCONCLUSIVE"), decision.evidence["reasons"]
    assert len(audit("recovery_inspected")) == 2
    assert lab.index_exists(lab.plan(db, INDEX, ["customer_id"]))
    assert run.id[:8] in screen


def tmux_driver():
    import tmux_driver as module

    return module


def _worker_hangs_with_its_alter_on_the_server(store, plan_path, env, blocker, lab, db):
    """1. A headless worker starts the run and hangs (SIGSTOP: its machine froze) with its ALTER
    on the server. A transaction that read the table holds that ALTER on its metadata lock until
    the console has found it, however fast the ALTER itself would be (the worker's connection
    stays open while it is stopped, so the server keeps the statement)."""
    blocker.autocommit(False)
    with blocker.cursor() as cur:
        cur.execute("SELECT id FROM orders LIMIT 1")
    worker = subprocess.Popen([sys.executable, "-m", "engine.drill.worker", str(plan_path), "", "", "18"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env={**os.environ, **env}, cwd=ROOT)
    first = worker.stdout.readline()
    assert first.startswith("run "), first
    run_id = first.split()[1]
    expect("the worker's ALTER", lambda: store.audit_entries("resume", run_id, "alter_started"), 60)
    worker.send_signal(signal.SIGSTOP)
    with Target(lab.plan(db, INDEX, ["customer_id"]).connection).session("observer") as s:
        assert expect("the ALTER on the server", lambda: s.find_alter(run_id), 10)
    assert store.get_run("resume", run_id).status == "running"
    return run_id, worker


def _console_takes_over_and_is_killed(store, tenant, run_id, plan_path, env, tmux_socket, blocker, worker):
    def audit(action: str):
        return store.audit_entries(tenant, run_id, action)

    tmux = tmux_driver().Tmux(tmux_socket, "first")
    tmux.start(160, 50, f"{CLI} run {plan_path}", env, ROOT)
    try:
        expect("the console's take-over", lambda: audit("take_over"), 30)
        expect("the console to look at the target", lambda: audit("recovery_inspected"), 30)
        blocker.rollback()  # the ALTER may go on now
        expect("the monitoring window", lambda: audit("monitoring_started"), 90)
        worker.kill()  # the hung worker, for good
        worker.wait(10)
        window_start = audit("monitoring_started")[0].created_at

        def window_ticks() -> int:
            return len({r.sampled_at for r in store.samples(tenant, run_id) if r.sampled_at >= window_start})

        expect("six ticks of the window", lambda: window_ticks() >= 6, 60)
        screen = tmux.capture()
        before = {(r.sampled_at, r.metric, r.value) for r in store.samples(tenant, run_id)}
        checkpoints = [c.label for c in store.checkpoints(tenant, run_id)]
        for pid in console_pids(plan_path):  # the console (and the shell tmux started it with)
            os.kill(pid, signal.SIGKILL)
        expect("the console to die", lambda: not console_pids(plan_path), 10)
        return screen, before, checkpoints, store.now()
    finally:
        tmux.cmd("kill-session", "-t", "first", check=False)
