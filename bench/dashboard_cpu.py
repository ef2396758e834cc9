"""The console's own CPU while the live dashboard runs: 160×50, full charts, a 1-second interval.
Target ≤ 110 ms of CPU per second (Dolphie, the closest peer, uses about 550 ms/s).

The real console — ``canary-console run PLAN --role sre``, as ``python -m console.cli`` from this
checkout — runs in a private tmux server (``-L``)
at 160×50, a terminal like any other. Its store holds a run whose window is 50 minutes in (the
baseline, the ALTER and 50 minutes of 1-second samples of 16 metrics, written before it starts);
a driver process (``bench/dashboard_rss.py --feed``: the engine's CollectorLoop into the store)
adds one tick of 16 samples every real second. The console joins, ``5`` opens the dashboard, it
catches up with the stored window (not measured), and then its process's utime + stime
(/proc/PID/stat, all its threads) is read over ``--seconds`` of wall time: milliseconds of CPU per
second. The machine's load average is printed with it: other work on the machine makes the
figure noisy (run it twice).

    .venv/bin/python bench/dashboard_cpu.py [--seconds 60] [--backfill-minutes 50]
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from dashboard_rss import Feeder, write_plan  # noqa: E402

CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX", "TMUX_PANE")}
TICK = os.sysconf("SC_CLK_TCK")


class Tmux:
    def __init__(self, socket: str, session: str):
        self.socket, self.session = socket, session

    def cmd(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True,
                              timeout=20, env=CLEAN_ENV)
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def capture(self) -> str:
        return self.cmd("capture-pane", "-p", "-t", self.session)

    def wait(self, what: str, ok, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if "Traceback" in screen:
                raise RuntimeError(f"a traceback on screen while waiting for {what}:\n{screen}")
            if ok(screen):
                return screen
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {timeout:g} s for {what}:\n{screen}")
            time.sleep(0.25)


def console_pid(root: int) -> int:
    """The console's Python process: the pane's process or a descendant of it running canary-console."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"python" in argv[0] and any(a.endswith(b"canary-console") or a == b"console.cli" for a in argv[1:3]):
            return pid
    raise RuntimeError(f"no canary-console process under pane pid {root}")


def cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured wall time (default 60)")
    ap.add_argument("--backfill-minutes", type=float, default=50.0,
                    help="window minutes already stored when the console joins (default 50: full charts)")
    ap.add_argument("--keep-capture", metavar="FILE", help="write the last screen to FILE")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed: apt-get install -y tmux")
    # `canary-console` is console.cli:main; run as a module from this checkout, it is this
    # checkout's console whatever the venv's entry point was installed from.
    cli = f"{sys.executable} -m console.cli"
    work = Path(tempfile.mkdtemp(prefix="cc-cpu-", dir="/tmp"))
    tmux = Tmux(f"cccpu{os.getpid()}", "cpu")
    feeder = None
    try:
        plan = write_plan(work / "canary.toml", getpass.getuser(), None)  # real time, 1-second samples
        store = f"sqlite:///{work / 'store.db'}"
        started = time.monotonic()
        feeder = Feeder(plan, store, "--minutes", "60", "--backfill-minutes", str(args.backfill_minutes), "--no-wait")
        feeder.expect("ready", 180)
        print(f"store: baseline, ALTER and {args.backfill_minutes:g} min of window written "
              f"({time.monotonic() - started:.1f} s); the driver adds 16 samples a second")
        tmux.cmd("new-session", "-d", "-s", tmux.session, "-x", "160", "-y", "50", "-c", str(ROOT),
                 "-e", f"XDG_STATE_HOME={work}", f"{cli} run {plan} --store {store} --role sre")
        pane = int(tmux.cmd("display-message", "-p", "-t", tmux.session, "#{pane_pid}").strip())
        pid = console_pid(pane)
        tmux.wait("the Plan screen", lambda s: "Scope lock" in s, 30)
        deadline = time.monotonic() + 60
        while True:  # the monitoring step opens once the store is read, the run found, the screen loaded
            tmux.cmd("send-keys", "-t", tmux.session, "5")
            time.sleep(1)
            screen = tmux.capture()
            if "Window T+15 → T+75" in screen:
                break
            if "is not open yet" in screen:
                tmux.cmd("send-keys", "-t", tmux.session, "Escape")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not open in 60 s:\n{screen}")
        joined = time.monotonic()
        progress = re.compile(r"Window T\+15 → T\+75\s+[\d.]+ / 60 min")
        tmux.wait("the catch-up", lambda s: progress.search(s) is not None and "catching up" not in s, 90)
        print(f"console pid {pid} on the dashboard at 160×50; caught up with the stored window in "
              f"{time.monotonic() - joined:.1f} s (not measured)")
        time.sleep(5)  # settled
        before = tmux.capture()
        m0 = re.search(r"Window T\+15 → T\+75\s+([\d.]+) / 60 min", before)
        load0 = os.getloadavg()[0]
        c0, w0 = cpu_s(pid), time.monotonic()
        per_5s: list[float] = []
        last_c, last_w = c0, w0
        while time.monotonic() - w0 < args.seconds:
            time.sleep(5)
            c, w = cpu_s(pid), time.monotonic()
            per_5s.append((c - last_c) / (w - last_w) * 1000)
            last_c, last_w = c, w
        c1, w1 = cpu_s(pid), time.monotonic()
        after = tmux.capture()
        m1 = re.search(r"Window T\+15 → T\+75\s+([\d.]+) / 60 min", after)
        load1 = os.getloadavg()[0]
        charts = len(re.findall(r"[⠁-⣿]", after))
        if args.keep_capture:
            Path(args.keep_capture).write_text(after)
    finally:
        socket = tmux.cmd("display-message", "-p", "#{socket_path}", check=False).strip()
        tmux.cmd("kill-server", check=False)
        if socket:
            Path(socket).unlink(missing_ok=True)
        if feeder is not None:
            feeder.stop()
        shutil.rmtree(work, ignore_errors=True)
    ms_per_s = (c1 - c0) / (w1 - w0) * 1000
    figures = {
        "bench": "dashboard_cpu", "size": "160x50", "interval_s": 1.0, "metrics": 16,
        "window_minutes_shown": [float(m0.group(1)) if m0 else None, float(m1.group(1)) if m1 else None],
        "measured_s": round(w1 - w0, 1), "cpu_ms_per_s": round(ms_per_s, 1),
        "cpu_ms_per_s_5s_min": round(min(per_5s), 1), "cpu_ms_per_s_5s_max": round(max(per_5s), 1),
        "loadavg_1m": [round(load0, 2), round(load1, 2)], "chart_braille_cells": charts,
        "target_ms_per_s": 110, "dolphie_ms_per_s": 550, "ok": ms_per_s <= 110,
    }
    print(f"window {figures['window_minutes_shown'][0]} → {figures['window_minutes_shown'][1]} min on screen; "
          f"{charts} braille cells of charts drawn")
    print(f"console CPU over {figures['measured_s']} s: {ms_per_s:.1f} ms/s (target ≤ 110; Dolphie ~550); "
          f"each 5 s: {', '.join(f'{x:.0f}' for x in per_5s)}; load average {load0:.2f} → {load1:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
