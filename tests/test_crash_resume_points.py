"""Crash-resume at five points with the console open (issue 14 item 1), real processes in tmux.

One run, driven by real consoles (``canary-console run`` in tmux), each SIGKILLed at one point of
the runbook and followed by a console started again on the same plan:

1. before the ALTER (its baseline),
2. during the ALTER (held on its metadata lock by a transaction),
3. during the monitoring window (the dashboard open),
4. during a rollback (decided, awaiting its approval),
5. on the report.

Each console started again must open on the step the run is in (not the Plan screen), take the run
over where one is to be driven, and show no error; the run reaches its verdict (a harm limit —
a lock wait — stops the resumed window with FAIL), the rollback completes, and nothing recorded
before a kill is lost: samples, checkpoints, audit rows, and the audit trail's hash chain verifies
(``canary-console audit verify``). The plan is a drill's on a clock compressed 120×, anchored in
the plan, so every process reads the same time. About three minutes.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
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
INDEX = "idx_points_cust_note"
TENANT = "points"
MATE = "mate"  # the second person of the rollback (nobody approves their own): played through the engine


def console_pids(plan_path: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"canary-console run {plan_path}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def tmux_driver():
    import tmux_driver as module

    return module


@pytest.fixture
def drill(lab, tmp_path):
    db = lab.big_table(200_000)
    lab.drop_index_if_present(db, "orders", INDEX)
    plan_path = tmp_path / "canary.toml"
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    plan_path.write_text(toml_dump({
        "tenant": TENANT,
        "store_url": store_url,
        "connection": {"id": "sbx-points", "host": "127.0.0.1", "port": lab.sandbox.primary.port, "user": "root",
                       "database": db},
        "change": {"table": "orders", "index": INDEX, "columns": ["customer_id", "note", "created_at"]},
        "people": [{"name": "You", "roles": ["canary_lead", "dba", "sre"], "unix_user": getpass.getuser()},
                   {"name": "Mate", "roles": ["canary_lead", "dba"], "unix_user": MATE}],
        "rehearsal": True,
        "time_compression": {"speed": SPEED, "origin": utcnow().isoformat()},
        "window": window_covering(utcnow(), hours=23),
        # A 10-minute baseline (never extended: a fixed timeline), a one-minute cool-down, a 4-minute lease: 5 s, 0.5 s and 2 s real.
        "executor": {"mode": "canary", "baseline_window_seconds": 600, "baseline_extend_max_seconds": 0,
                     "cooldown_seconds": 60, "lease_seconds": 240, "lock_wait_timeout": 60},
    }))
    reads = Workload(lab.sandbox.primary.profile(db), "SELECT id, total FROM orders WHERE customer_id = %s "
                     "AND note >= %s LIMIT 20", lambda r: (r.randint(0, 9_999), "8"), rate_per_s=20,
                     name="points-reads")
    tmux_socket = f"ccpoints-{os.getpid()}"
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    with reads:
        yield plan_path, store_url, db, tmux_socket, env
    subprocess.run(["tmux", "-L", tmux_socket, "-f", "/dev/null", "kill-server"], capture_output=True)
    for pid in console_pids(plan_path):
        os.kill(pid, signal.SIGKILL)
    lab.drop_index_if_present(db, "orders", INDEX)


class Consoles:
    """Consoles on the plan, one tmux session each; the one open is killed with SIGKILL."""

    def __init__(self, plan_path: Path, socket: str, env: dict[str, str]):
        self.plan_path, self.socket, self.env = plan_path, socket, env
        self.n = 0
        self.tmux = None

    def open(self):
        self.n += 1
        self.tmux = tmux_driver().Tmux(self.socket, f"console{self.n}")
        self.tmux.start(160, 50, f"{CLI} run {self.plan_path}", self.env, ROOT)
        return self.tmux

    def screen_until(self, what: str, ok, timeout: float) -> str:
        last = [""]

        def look():
            last[0] = self.tmux.capture()
            assert "Traceback (most recent call last)" not in last[0], last[0]
            return ok(last[0])
        try:
            expect(what, look, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- console {self.n} ---\n{last[0]}") from None
        return last[0]

    def kill(self) -> None:
        for pid in console_pids(self.plan_path):  # the console (and the shell tmux started it with)
            os.kill(pid, signal.SIGKILL)
        expect("the console to die", lambda: not console_pids(self.plan_path), 10)
        self.tmux.cmd("kill-session", "-t", self.tmux.session, check=False)


def errors_on(screen: str) -> list[str]:
    """A worker's failure as the console says it ("dashboard failed: … Nothing was lost; details in
    …"); a run's own outcome ("run …: failed (harm_limit)") is not an error of the console."""
    toasts = tmux_driver().toast_text(screen)
    return [toasts] if "Nothing was lost; details in" in toasts or "Traceback" in toasts else []


def test_a_run_survives_its_console_killed_at_five_points(drill, lab):
    from engine.flows import rollback_flow as flow
    from engine.flows import rollback_rungs as rungs

    plan_path, store_url, db, tmux_socket, env = drill
    plan = load_plan(plan_path)
    clock = clock_for(plan)
    store = Store(store_url, clock=clock)
    me = f"{getpass.getuser()}@test"
    consoles = Consoles(plan_path, tmux_socket, env)
    blocker = lab.sandbox.primary.connect(db)
    kept: list[tuple[str, set, set, set]] = []  # what each kill must not lose
    worker = None

    def audit(action: str):
        return store.audit_entries(TENANT, run_id, action)

    def snapshot(point: str) -> None:
        kept.append((point, {e.id for e in store.audit_entries(TENANT, run_id, limit=100_000)},
                     {(r.sampled_at, r.metric, r.value) for r in store.samples(TENANT, run_id)},
                     {(c.label, c.recorded_by) for c in store.checkpoints(TENANT, run_id)}))

    try:
        # The run begins with a headless worker, killed in its baseline: a console takes it over.
        worker = subprocess.Popen([sys.executable, "-m", "engine.drill.worker", str(plan_path), "", "", "18"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env={**os.environ, **env}, cwd=ROOT)
        first = worker.stdout.readline()
        assert first.startswith("run "), first
        run_id = first.split()[1]
        expect("the worker's baseline", lambda: audit("baseline_sampling"), 60)
        worker.kill()
        worker.wait(10)

        # 1. Before the ALTER: the console that took the run over is killed in its baseline.
        consoles.open()
        expect("console 1's take-over and baseline", lambda: len(audit("baseline_sampling")) >= 2, 60)
        blocker.autocommit(False)
        with blocker.cursor() as cur:  # holds the next ALTER on its metadata lock
            cur.execute("SELECT id FROM orders LIMIT 1")
        assert not audit("alter_started")
        snapshot("before the ALTER")
        consoles.kill()

        # 2. During the ALTER: the next console lands on Execution, takes over, starts the ALTER
        #    (held on its metadata lock); killed there.
        consoles.open()
        screen = consoles.screen_until("console 2 on Execution", lambda s: "Steps (runbook 3.2)" in s, 30)
        expect("console 2's ALTER", lambda: audit("alter_started"), 60)
        with Target(plan.connection).session("observer") as s:
            assert expect("the ALTER on the server", lambda: s.find_alter(run_id), 10)
        assert not errors_on(consoles.tmux.capture())
        snapshot("during the ALTER")
        consoles.kill()
        blocker.rollback()  # the ALTER may go on now (or, if the server ended it with its client, again)

        # 3. During the monitoring window: the next console lands on Execution, finds the ALTER,
        #    starts the window; killed with the dashboard open after six ticks.
        consoles.open()
        consoles.screen_until("console 3 on Execution", lambda s: "Steps (runbook 3.2)" in s, 30)
        expect("the monitoring window", lambda: audit("monitoring_started"), 120)
        window_start = audit("monitoring_started")[0].created_at
        consoles.tmux.keys("5")
        expect("six ticks of the window", lambda: len({r.sampled_at for r in store.samples(TENANT, run_id)
                                                        if r.sampled_at >= window_start}) >= 6, 60)
        consoles.screen_until("console 3's dashboard", lambda s: "Window T+15 → T+75" in s, 15)
        snapshot("during the monitoring window")
        consoles.kill()
        killed_at = store.now()

        # 4. The next console opens on the dashboard, takes the run over and resumes the window
        #    with the gap shown. A lock wait past its harm limit (held from now on) stops it: FAIL.
        holder, waiter = lab.admin(db), lab.admin(db)
        with holder.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("UPDATE orders SET total = total WHERE id = 7")

        def wait() -> None:
            with waiter.cursor() as cur:
                cur.execute("SET SESSION innodb_lock_wait_timeout = 40")
                try:
                    cur.execute("UPDATE orders SET total = total + 1 WHERE id = 7")
                except Exception:  # noqa: BLE001 - the lock wait timing out is the point
                    pass
        waiting = threading.Thread(target=wait, daemon=True)
        try:
            consoles.open()
            waiting.start()
            consoles.screen_until("console 4 on the dashboard", lambda s: "Window T+15 → T+75" in s, 30)
            [resumed] = expect("the window resumed", lambda: audit("monitoring_resumed"), 60)
            screen = consoles.screen_until("the gap on the dashboard", lambda s: re.search(r"no\s+samples\s+T\+", s)
                                           and re.search(r"the\s+driving\s+console\s+was\s+down", s), 20)
            assert not errors_on(screen), screen
            expect("the verdict", lambda: store.get_run(TENANT, run_id).status != "running", 90, step=0.5)
        finally:
            holder.rollback()
            holder.close()
            waiting.join(45)
            waiter.close()
        screen = consoles.screen_until("the stop on the dashboard", lambda s: re.search(r"stopped\s+early\s+at\s+T\+", s), 20)
        assert re.search(r"harm\s+limit", screen) and not errors_on(screen), screen
        run = store.get_run(TENANT, run_id)
        assert (run.status, run.fail_reason) == ("failed", "harm_limit"), (run.status, run.fail_reason,
                                                                           run.error_message)
        [decision] = store.decisions(TENANT, run_id)
        assert decision.verdict == "FAIL" and decision.evidence["stop_cause"] == "failure_condition"
        # The rollback begins (the DBA decides on a lock wait; the canary lead approves): killed then.
        decided = flow.decide_rollback(store, plan, run, "lock_wait", me, {"dba", "canary_lead", "sre"},
                                       "lock wait past its harm limit", role="dba")
        assert decided.ok, decided.message
        snapshot("during a rollback")
        consoles.kill()

        # 5. The next console opens on the Rollback step, awaiting the approval; the approval and
        #    the DROP are done; the report is opened, and the console killed on it.
        consoles.open()
        screen = consoles.screen_until("console 5 on Rollback", lambda s: "Decision flow: severity → trigger" in s
                                       and "AWAITING APPROVALS" in s, 30)
        assert not errors_on(screen), screen
        approved = flow.approve_rollback(store, plan, store.get_run(TENANT, run_id), "canary_lead", f"{MATE}@test",
                                         {"canary_lead", "dba"}, "seen the lock wait")
        assert approved.ok, approved.message
        dropped = rungs.execute_drop(store, plan, Target(plan.connection), store.get_run(TENANT, run_id), me,
                                    {"dba", "canary_lead", "sre"}, (), clock)
        assert dropped.status == "done", dropped.message
        assert store.get_run(TENANT, run_id).status == "rolled_back"
        consoles.tmux.keys("8")
        short = run_id[:8]
        consoles.screen_until("console 5's report", lambda s: f"Report — run {short}" in s, 20)
        snapshot("on the report")
        consoles.kill()

        # 6. The console opened once more shows the report of the run, rolled back.
        consoles.open()
        screen = consoles.screen_until("console 6 on the report", lambda s: f"Report — run {short}" in s
                                       and "ROLLED BACK" in s.upper(), 30)
        assert not errors_on(screen), screen
        consoles.kill()
    finally:
        blocker.close()
        if worker is not None and worker.poll() is None:
            worker.kill()

    # Nothing recorded before a kill is lost.
    audit_now = {e.id for e in store.audit_entries(TENANT, run_id, limit=100_000)}
    samples_now = {(r.sampled_at, r.metric, r.value) for r in store.samples(TENANT, run_id)}
    checkpoints_now = {(c.label, c.recorded_by) for c in store.checkpoints(TENANT, run_id)}
    for point, ids, samples, checkpoints in kept:
        assert ids <= audit_now, f"audit rows lost after the kill {point}"
        assert samples <= samples_now, f"samples lost after the kill {point}"
        assert checkpoints <= checkpoints_now, f"checkpoints lost after the kill {point}"
    assert len(kept) == 5
    labels = [c.label for c in store.checkpoints(TENANT, run_id) if c.recorded_by.startswith("engine")]
    assert labels and len(labels) == len(set(labels)), f"an engine checkpoint recorded twice: {labels}"
    assert len(audit("monitoring_started")) == 1, "one window, resumed — not a second one"
    assert resumed.details["gap_s"] > 0 and resumed.details["ticks_restored"] >= 6
    assert any(r.sampled_at > killed_at for r in store.samples(TENANT, run_id)), "sampling went on"
    assert len(audit("take_over")) >= 4, "each console after a kill took the run over while it was driven"
    assert not lab.index_exists(lab.plan(db, INDEX, ["customer_id"])), "the rollback dropped the index"
    # The audit trail's hash chain, whole.
    done = subprocess.run([CLI, "audit", "verify", "--store", store_url], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
