"""Console start → first screen (target ≤ 0.8 s), and the rehearsal's first screen (target ≤ 5 s).

Three figures:
- "process": ``canary-console run PLAN`` launched in a private tmux server (a real terminal), timed
  from the launch to the Plan screen's scope lock being on screen (capture-pane, polled every 5 ms).
  This is what a person waits for: Python start, imports, the store opened, the first frame drawn.
- "in-process": the App constructed and run headless until the Plan screen is mounted (no Python
  start, no imports) — the console's own share.

- "rehearse": ``canary-console rehearse`` launched in tmux in a private state directory, timed
  from the launch to the console on screen (its preparation screen: the servers, the data load and
  the self-test as steps), and on to the Plan screen; the first trial on a fresh state directory
  (the servers' datadirs initialised), the others with the sandbox already there. ``--skip-self-test``
  and a small table keep the bench short: the first screen does not wait for either.

The plan points at a port nobody listens on: the first screen must not wait for the target (its
health check runs on a worker). Prints a table and ends with one JSON line of the figures.
    python bench/console_start.py [--trials 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLAN = """
tenant = "bench"
[connection]
id = "bench-primary"
host = "127.0.0.1"
port = 9
user = "canary"
database = "shop"
password_env = "CANARY_BENCH_PASSWORD"
[change]
table = "orders"
index = "idx_orders_customer_created"
columns = ["customer_id", "created_at"]
[[people]]
name = "Bench"
roles = ["canary_lead", "dba"]
unix_user = "{user}"
"""


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def process_trial(plan: Path, store: str, tmux_socket: str) -> float:
    exe = ROOT / ".venv" / "bin" / "canary-console"
    cmd = f"{exe} run {plan} --store {store}"
    started = time.perf_counter()
    subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "start", "-x", "160", "-y", "50", cmd],
                   check=True)
    try:
        while time.perf_counter() - started < 20:
            out = subprocess.run(["tmux", "-L", tmux_socket, "capture-pane", "-p", "-t", "start"],
                                 capture_output=True, text=True).stdout
            if "Scope lock" in out and "Tenant" in out:
                return time.perf_counter() - started
            time.sleep(0.005)
        raise RuntimeError("the Plan screen never appeared:\n" + out)
    finally:
        subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], capture_output=True)


def rehearse_trial(state: Path, tmux_socket: str, rows: int) -> tuple[float, float]:
    """(launch → the console's first screen, launch → the Plan screen) in seconds."""
    exe = ROOT / ".venv" / "bin" / "canary-console"
    cmd = f"env XDG_STATE_HOME={state} {exe} rehearse --rows {rows} --skip-self-test"
    started = time.perf_counter()
    subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "drill", "-x", "100", "-y", "30", cmd],
                   check=True)
    first = None
    out = ""
    try:
        while time.perf_counter() - started < 180:
            out = subprocess.run(["tmux", "-L", tmux_socket, "capture-pane", "-p", "-t", "drill"],
                                 capture_output=True, text=True).stdout
            if first is None and ("Preparing the drill" in out or "Scope lock" in out):
                first = time.perf_counter() - started
            if "Scope lock" in out and "Begin prechecks" in out:
                plan = time.perf_counter() - started
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("the rehearsal's Plan screen never appeared:\n" + out)
        subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", "drill", "C-q"], check=True)
        deadline = time.monotonic() + 60  # the drill stops its servers as it ends
        while time.monotonic() < deadline and subprocess.run(
                ["tmux", "-L", tmux_socket, "has-session", "-t", "drill"], capture_output=True).returncode == 0:
            time.sleep(0.2)
        assert first is not None
        return first, plan
    finally:
        subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], capture_output=True)


async def in_process_trial(plan_path: Path, store_url: str) -> float:
    from console.app import CanaryApp
    from engine.adapters.store import Store
    from engine.domain.plan import load_plan
    from screens.plan import PlanScreen

    started = time.perf_counter()
    app = CanaryApp(load_plan(plan_path), Store(store_url), poll=False)
    async with app.run_test(size=(160, 50)) as pilot:
        while not (isinstance(app.screen, PlanScreen) and app.screen.query("#scope")):
            await pilot.pause(0.001)
        elapsed = time.perf_counter() - started
    app.store.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--rehearse-trials", type=int, default=3,
                    help="rehearsal launches: the first on a fresh state directory (0: skip)")
    ap.add_argument("--rows", type=int, default=20_000, help="the rehearsal's table (default 20,000 rows)")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed for the process figure: apt-get install -y tmux")
    work = Path(tempfile.mkdtemp(prefix="cc-start-"))
    try:
        plan = work / "canary.toml"
        plan.write_text(PLAN.format(user=os.environ.get("USER") or "root"))
        store = f"sqlite:///{work / 'store.db'}"
        process_trial(plan, store, f"ccstart{os.getpid()}w")  # warm the OS file cache once
        process = [process_trial(plan, store, f"ccstart{os.getpid()}n{n}") for n in range(args.trials)]
        inproc = [asyncio.run(in_process_trial(plan, store)) for _ in range(args.trials)]
        drills = [rehearse_trial(work / "state", f"ccstart{os.getpid()}r{n}", args.rows)
                  for n in range(args.rehearse_trials)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [("process (tmux, launch → Plan screen)", process), ("in-process (App → Plan screen mounted)", inproc)]
    if drills:
        rows += [("rehearse, fresh: launch → console", [drills[0][0]]),
                 ("rehearse, fresh: launch → Plan screen", [drills[0][1]])]
    if len(drills) > 1:
        rows += [("rehearse, sandbox there: → console", [d[0] for d in drills[1:]]),
                 ("rehearse, sandbox there: → Plan screen", [d[1] for d in drills[1:]])]
    print(f"{'series':<42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, vals in rows:
        print(f"{name:<42} {p(vals, .5) * 1000:8.0f} {p(vals, .95) * 1000:8.0f} {max(vals) * 1000:8.0f}")
    print(json.dumps({"bench": "console_start", "trials": args.trials, "target_ms": 800,
                      "process_p50_ms": round(p(process, .5) * 1000, 1),
                      "process_p95_ms": round(p(process, .95) * 1000, 1),
                      "process_max_ms": round(max(process) * 1000, 1),
                      "in_process_p50_ms": round(statistics.median(inproc) * 1000, 1),
                      "in_process_max_ms": round(max(inproc) * 1000, 1),
                      "rehearse_target_ms": 5000,
                      "rehearse_fresh_first_screen_ms": round(drills[0][0] * 1000) if drills else None,
                      "rehearse_fresh_plan_screen_ms": round(drills[0][1] * 1000) if drills else None,
                      "rehearse_first_screen_ms": (round(p([d[0] for d in drills[1:]], .5) * 1000)
                                                   if len(drills) > 1 else None),
                      "rehearse_plan_screen_ms": (round(p([d[1] for d in drills[1:]], .5) * 1000)
                                                  if len(drills) > 1 else None)}))


if __name__ == "__main__":
    main()
