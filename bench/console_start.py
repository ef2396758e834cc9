"""Console start → first screen (target ≤ 0.8 s), and the rehearsal's first screen (target ≤ 5 s).

Three figures, and the console's RSS on its first screen (/proc/PID/status VmRSS):
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


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def console_pid(tmux_socket: str, session: str) -> int | None:
    """The console's own process in a tmux pane: the pane's process, or the first of its
    descendants whose command line names canary-console (a shell may sit in between)."""
    out = subprocess.run(["tmux", "-L", tmux_socket, "display-message", "-p", "-t", session, "#{pane_pid}"],
                         capture_output=True, text=True).stdout.strip()
    if not out.isdigit():
        return None
    todo, seen = [int(out)], set()
    while todo:
        pid = todo.pop(0)
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"canary-console" in fh.read() and _status_kb(pid, "VmRSS"):
                    return pid
            with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
                todo += [int(c) for c in fh.read().split() if int(c) not in seen]
        except OSError:
            continue
    return None


def rss_mb(pid: int | None) -> float | None:
    kb = _status_kb(pid, "VmRSS") if pid else None
    return round(kb / 1024, 1) if kb else None


def process_trial(plan: Path, store: str, tmux_socket: str) -> tuple[float, float | None]:
    """(launch → the Plan screen painted, in seconds; the console's RSS then, in MB)."""
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
                elapsed = time.perf_counter() - started
                return elapsed, rss_mb(console_pid(tmux_socket, "start"))
            time.sleep(0.005)
        raise RuntimeError("the Plan screen never appeared:\n" + out)
    finally:
        subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], capture_output=True)


def rehearse_trial(state: Path, tmux_socket: str, rows: int) -> tuple[float, float, float | None]:
    """(launch → the console's first screen, launch → the Plan screen) in seconds, and the
    console's RSS on the Plan screen in MB."""
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
                rss = rss_mb(console_pid(tmux_socket, "drill"))
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
        return first, plan, rss
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
        trials = [process_trial(plan, store, f"ccstart{os.getpid()}n{n}") for n in range(args.trials)]
        inproc = [asyncio.run(in_process_trial(plan, store)) for _ in range(args.trials)]
        drills = [rehearse_trial(work / "state", f"ccstart{os.getpid()}r{n}", args.rows)
                  for n in range(args.rehearse_trials)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    process = [t for t, _ in trials]
    rss = [mb for _, mb in trials if mb is not None]
    rows = [("run PLAN: launch → Plan screen painted", process),
            ("run PLAN: in-process (App → Plan mounted)", inproc)]
    if drills:
        rows += [("rehearse, fresh: launch → first screen", [drills[0][0]]),
                 ("rehearse, fresh: launch → Plan screen", [drills[0][1]])]
    if len(drills) > 1:
        rows += [("rehearse, sandbox there: → first screen", [d[0] for d in drills[1:]]),
                 ("rehearse, sandbox there: → Plan screen", [d[1] for d in drills[1:]])]
    print(f"{'first screen (tmux, a real terminal)':<42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, vals in rows:
        print(f"{name:<42} {p(vals, .5) * 1000:8.0f} {p(vals, .95) * 1000:8.0f} {max(vals) * 1000:8.0f}")
    drill_rss = [d[2] for d in drills if d[2] is not None]
    print(f"RSS on the first screen: run PLAN {p(rss, .5) if rss else '?'} MB (p50 of {len(rss)}), "
          f"rehearse {max(drill_rss) if drill_rss else '?'} MB (max of {len(drill_rss)}); "
          f"targets: run PLAN ≤ 800 ms, rehearse ≤ 5,000 ms (load {os.getloadavg()[0]:.1f}: a busy machine "
          "is slower)")
    print(json.dumps({"bench": "console_start", "trials": args.trials, "target_ms": 800,
                      "load_1min": round(os.getloadavg()[0], 1),
                      "process_p50_ms": round(p(process, .5) * 1000, 1),
                      "process_p95_ms": round(p(process, .95) * 1000, 1),
                      "process_max_ms": round(max(process) * 1000, 1),
                      "process_rss_mb": p(rss, .5) if rss else None,
                      "in_process_p50_ms": round(p(inproc, .5) * 1000, 1),
                      "in_process_max_ms": round(max(inproc) * 1000, 1),
                      "rehearse_target_ms": 5000,
                      "rehearse_fresh_first_screen_ms": round(drills[0][0] * 1000) if drills else None,
                      "rehearse_fresh_plan_screen_ms": round(drills[0][1] * 1000) if drills else None,
                      "rehearse_first_screen_ms": (round(p([d[0] for d in drills[1:]], .5) * 1000)
                                                   if len(drills) > 1 else None),
                      "rehearse_plan_screen_ms": (round(p([d[1] for d in drills[1:]], .5) * 1000)
                                                  if len(drills) > 1 else None),
                      "rehearse_rss_mb": max(drill_rss) if drill_rss else None}))


if __name__ == "__main__":
    main()
