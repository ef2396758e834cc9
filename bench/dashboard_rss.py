"""The console's memory through a full monitoring window: 60 minutes × 1-second samples × 16
metrics (57,600 samples) arriving in the store, time-compressed, while the real console shows the
live dashboard. Target: RSS ≤ 150 MB and flat.

The console is the real ``CanaryApp`` (console/app.py), headless (``run_test(size=(160, 50))``), on a
rehearsal plan's compressed clock, with its own ``refresh_dashboard`` worker polling the store once a
(real) second. A second process plays the driver: it writes the run, five minutes of baseline and
the ALTER, then feeds the window through the engine's own ``CollectorLoop`` (every tick stored with
``Store.add_samples``, as the monitor does) at the compressed speed — from sources that answer like
a calm server (no MariaDB needed: what is measured is the console, not the collectors). The
console only reads; its RSS (/proc/self/status VmRSS) is sampled every two seconds.

"Flat" means: over the second half of the window the RSS grows by less than 5 MB (least-squares
fit over that half; the evaluator keeps every point for the final matrix, so a little growth is
the data itself). A compressed window lives through 1/speed of the real time, so the console is
first left ``--idle`` seconds on the dashboard with no new data (the growth fitted after its first
10 s): what grows then grows with real time, and is extrapolated to a real 60-minute window.

    .venv/bin/python bench/dashboard_rss.py [--speed 40] [--minutes 60]

``--feed`` is that driver process (``bench/dashboard_cpu.py`` uses it too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.domain.plan import load_plan, plan_from_dict, toml_dump, window_covering  # noqa: E402

# (engine.adapters.collectors is imported by the driver only: the console's process loads what it loads.)
# The 16 metrics of the profile a full installation samples (the kill-switch's response aside), by
# the source that gives them, at the levels of a calm server.
SOURCES = {
    "mysql": ("latency_p50", "latency_p99", "lock_wait", "connections", "threads_running", "buffer_pool_hit"),
    "replica": ("replication_lag",),
    "prometheus": ("error_rate", "cpu", "memory", "disk_read", "disk_write", "network_latency",
                   "request_latency_p50", "request_latency_p99", "throughput"),
}
CALM = {"latency_p50": 1.2, "latency_p99": 6.0, "lock_wait": 0.0, "replication_lag": 1.0, "error_rate": 0.02,
        "connections": 22.0, "threads_running": 4.0, "buffer_pool_hit": 99.2, "cpu": 35.0, "memory": 55.0,
        "disk_read": 12.0, "disk_write": 6.0, "network_latency": 2.0, "request_latency_p50": 40.0,
        "request_latency_p99": 180.0, "throughput": 1200.0}
DRIVER = "bench-driver@feeder"
WATCHER = "watcher"  # the console's user: an SRE, who joins (never takes a run over)


class CalmSource:
    """A source that answers like a calm server: each value within ±4 % of its level (seeded), the
    latency percentiles with their statement count and how they were computed, as MySQLSource
    gives them."""

    def __init__(self, name: str, metrics: tuple[str, ...], seed: int):
        self.name, self.metrics = name, metrics
        self.rng = random.Random(seed)

    def collect(self) -> list[Any]:
        from engine.adapters.collectors import Sample

        out = []
        for m in self.metrics:
            v = CALM[m] * (1 + 0.08 * (self.rng.random() - 0.5))
            if m == "buffer_pool_hit":
                v = min(v, 99.9)
            if m.startswith("latency"):
                out.append(Sample(m, v, self.name, n=40, how="from events_statements_history_long, 40 statements"))
            else:
                out.append(Sample(m, v, self.name))
        return out

    def close(self) -> None:
        pass


def sources() -> list[CalmSource]:
    return [CalmSource(name, metrics, seed) for seed, (name, metrics) in enumerate(SOURCES.items())]


def write_plan(path: Path, user: str, speed: float | None) -> Path:
    """A plan whose target nobody listens on (port 9): a console that joins a running run never
    polls the target. ``speed``: a rehearsal plan with a compressed clock anchored now."""
    from engine.domain.clock import utcnow

    data: dict = {
        "tenant": "bench",
        "connection": {"id": "bench-primary", "host": "127.0.0.1", "port": 9, "user": "canary", "database": "shop"},
        "change": {"table": "orders", "index": "idx_orders_customer_created", "columns": ["customer_id", "created_at"]},
        "people": [{"name": "Driver", "roles": ["canary_lead", "dba"], "unix_user": "bench-driver"},
                   {"name": "Watcher", "roles": ["sre"], "unix_user": user}],
        "window": window_covering(utcnow()),
    }
    if speed:
        data["rehearsal"] = True
        data["time_compression"] = {"speed": speed, "origin": utcnow().isoformat()}
    path.write_text(toml_dump(data))
    plan_from_dict(data)  # validated now, not in the other process
    return path


# --- the driver (a process of its own) ------------------------------------------------------------


def feed(plan_path: str, store_url: str, window_minutes: float, baseline_minutes: float, backfill_minutes: float,
         interval: float, wait_for_go: bool) -> None:
    """The run, its baseline and ALTER (and ``backfill_minutes`` of window already stored: a
    console that joins late), written at once; then — after a ``go`` line on stdin when asked — the
    window fed tick by tick by a CollectorLoop on the plan's clock. Says ``ready RUN`` and ``done N``."""
    from engine.adapters.collector_loop import CollectorLoop
    from engine.adapters.store import ExecutionRun, Store
    from engine.domain.clock import clock_for

    plan = load_plan(plan_path)
    clock = clock_for(plan)
    speed = float(getattr(clock, "speed", 1.0))
    store = Store(store_url, clock=clock)
    tenant = plan.tenant
    run = store.create_run(ExecutionRun(
        id=str(uuid.uuid4()), tenant_id=tenant, connection_profile_id=plan.connection.id, schema_name=plan.schema,
        table_name=plan.change.table, index_name=plan.change.index,
        columns=[[c, None] for c in ("customer_id", "created_at")]), DRIVER)
    store.transition(tenant, run.id, "running", DRIVER)
    lease = max(60.0, 20 * interval * speed)
    store.claim(tenant, run.id, DRIVER, lease)
    src = sources()
    now = clock.now()
    at = now - timedelta(seconds=(baseline_minutes + 2.5 + backfill_minutes) * 60)
    for _ in range(int(baseline_minutes * 60 / interval)):
        store.add_samples(tenant, run.id, at, [s for x in src for s in x.collect()])
        at += timedelta(seconds=interval)
    store.update_run(tenant, run.id, alter_started_at=at, alter_finished_at=at + timedelta(seconds=30),
                     index_created_by_run=True)
    store.audit(tenant, DRIVER, "index_added", run.id, {})
    at += timedelta(seconds=150)  # the ALTER and the cool-down
    details = {"interval": interval, "profile": "default", "window_minutes": window_minutes,
               "time_compression": speed}
    backfilled = 0
    if backfill_minutes:
        store.audit(tenant, DRIVER, "monitoring_started", run.id, {"at": at.isoformat(), **details})
        for _ in range(int(backfill_minutes * 60 / interval)):
            store.add_samples(tenant, run.id, at, [s for x in src for s in x.collect()])
            at += timedelta(seconds=interval)
            backfilled += 1
    print(f"ready {run.id}", flush=True)
    if wait_for_go and sys.stdin.readline().strip() != "go":
        return
    if not backfill_minutes:
        store.audit(tenant, DRIVER, "monitoring_started", run.id, {"at": clock.now().isoformat(), **details})
    ticks = int(window_minutes * 60 / interval) - backfilled
    done = threading.Event()

    def on_tick(_at: object, _samples: list[Any]) -> None:
        if loop.ticks % 10 == 0:
            store.renew_lease(tenant, run.id, DRIVER, lease)
        if loop.ticks % max(1, int(60 / interval)) == 0:
            print(f"tick {loop.ticks}", flush=True)
        if loop.ticks >= ticks:
            done.set()

    loop = CollectorLoop(src, interval, clock, on_tick=on_tick, store=store, tenant_id=tenant, run_id=run.id)
    loop.start()
    done.wait()
    loop.stop()
    print(f"done {backfilled + loop.ticks} ticks, {(backfilled + loop.ticks) * 16} samples", flush=True)


class Feeder:
    """``feed`` in a child process; its lines arrive on a queue."""

    def __init__(self, plan: Path, store_url: str, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--feed", str(plan), "--store", store_url, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("exit")

    def expect(self, word: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"the feeder did not say {word!r} in {timeout:g} s") from None
            if line.startswith(word):
                return line
            if line == "exit":
                raise RuntimeError(f"the feeder exited (code {self.proc.wait()}) before saying {word!r}")

    def latest(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --- the console, measured -------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fit(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


async def watch(plan_path: Path, store_url: str, feeder: Feeder, every_s: float, window_minutes: float,
                idle_s: float) -> dict:
    from rich.cells import cached_cell_len

    from console.app import CanaryApp
    from engine.adapters.identity import Identity
    from engine.adapters.store import Store
    from engine.domain.clock import clock_for
    from screens.monitoring import MonitoringScreen

    plan = load_plan(plan_path)
    clock = clock_for(plan)
    app = CanaryApp(plan, Store(store_url, clock=clock), Identity(WATCHER, "127.0.0.1"), clock, role="sre")
    started = time.monotonic()
    series: list[tuple[float, float, float]] = []  # (real s since the window's start, window minutes fed, RSS MB)
    async with app.run_test(size=(160, 50)) as pilot:
        deadline = time.monotonic() + 60
        while not ("monitoring" in app.steps and app.view.run is not None and app.view.run.alter_started_at):
            if time.monotonic() > deadline:
                raise RuntimeError("the console never found the run")
            await pilot.pause(0.1)
        await pilot.press("5")
        while not isinstance(app.screen, MonitoringScreen):
            if time.monotonic() > deadline:
                raise RuntimeError("the monitoring screen never opened")
            await pilot.pause(0.1)
        await pilot.pause(3)  # the dashboard drawn once, the baseline loaded
        start_mb = rss_mb()
        cache_start = cached_cell_len.cache_info().currsize  # what grew with real time (console/app.py trim_heap)
        print(f"console on the monitoring screen, window not open yet: RSS {start_mb:.1f} MB "
              f"({time.monotonic() - started:.1f} s after start); {idle_s:g} s idle there first")
        # No new data, the dashboard refreshed every second as usual: what grows now grows with
        # real time, which the compressed window below sees only 1/speed of.
        idle: list[tuple[float, float]] = []
        t_idle = time.monotonic()
        while time.monotonic() - t_idle < idle_s:
            await pilot.pause(every_s)
            idle.append((time.monotonic() - t_idle, rss_mb()))
        settled = [(t, mb) for t, mb in idle if t >= min(10.0, idle_s / 3)]  # after the first frames' caches
        idle_slope = fit(settled) if len(settled) > 2 else 0.0  # MB per real second
        idle_mb = rss_mb()
        cache_idle = cached_cell_len.cache_info().currsize
        print(f"  idle: RSS {start_mb:.1f} → {idle_mb:.1f} MB, {idle_slope * 60:+.2f} MB per real minute "
              f"(Rich's cell-width cache {cache_start} → {cache_idle} of 4,096 entries)")
        feeder.go()
        t0 = time.monotonic()
        fed = 0.0
        finished_at = None
        while True:
            await pilot.pause(every_s)
            for line in feeder.latest():
                if line.startswith("tick "):
                    fed = int(line.split()[1]) / 60
                elif line.startswith("done"):
                    finished_at, fed = time.monotonic(), window_minutes
                    print(f"feeder: {line}")
                elif line == "exit" and finished_at is None:
                    raise RuntimeError(f"the feeder exited early (code {feeder.proc.wait()})")
            series.append((time.monotonic() - t0, fed, rss_mb()))
            if len(series) % 10 == 0:
                print(f"  {series[-1][0]:6.1f} s  window {fed:4.1f} min fed  RSS {series[-1][2]:6.1f} MB")
            if finished_at is not None and time.monotonic() - finished_at > 6:
                break  # the last ticks loaded and drawn
        dash = getattr(app, "_dash", None)
        evaluated_min = dash.state.elapsed_s / 60 if dash is not None else float("nan")
        window_s = series[-1][0]
    half = [(t, mb) for t, fed, mb in series if fed >= window_minutes / 2]
    slope = fit(half)  # MB per real second
    growth = slope * (half[-1][0] - half[0][0]) if len(half) > 1 else 0.0
    peak = max(mb for _, _, mb in series)
    # A real window lasts window_minutes of real time, not window_s: add the time-driven growth
    # the compressed run did not live through.
    real_hour = series[-1][2] + max(0.0, idle_slope) * (window_minutes * 60 - window_s)
    return {
        "bench": "dashboard_rss", "window_minutes": window_minutes, "samples": int(window_minutes * 60) * 16,
        "speed": float(getattr(clock, "speed", 1.0)), "real_window_s": round(window_s, 1),
        "evaluated_minutes": round(evaluated_min, 2), "rss_start_mb": round(start_mb, 1),
        "idle_s": idle_s, "idle_mb_per_real_min": round(idle_slope * 60, 2), "rss_window_start_mb": round(idle_mb, 1),
        "cell_width_cache_idle": [cache_start, cache_idle],
        "rss_max_mb": round(peak, 1), "rss_end_mb": round(series[-1][2], 1),
        "rss_growth_whole_window_mb": round(series[-1][2] - idle_mb, 1),
        "last_half_growth_mb": round(growth, 2),
        "last_half_mb_per_window_min": round(growth / (window_minutes / 2), 3),
        "rss_samples": len(series), "target_max_mb": 150, "flat_means": "last-half growth < 5 MB",
        "real_time_window_estimate_mb": round(real_hour, 1),
        "ok": peak <= 150 and growth < 5 and real_hour <= 150,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=40.0, help="time compression (default 40: 60 min in 90 s)")
    ap.add_argument("--minutes", type=float, default=60.0, help="the window's length (default 60)")
    ap.add_argument("--every", type=float, default=2.0, help="RSS sampled every N real seconds")
    ap.add_argument("--idle", type=float, default=30.0,
                    help="real seconds on the dashboard before the window opens (time-driven growth)")
    ap.add_argument("--feed", metavar="PLAN", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--baseline-minutes", type=float, default=5.0, help=argparse.SUPPRESS)
    ap.add_argument("--backfill-minutes", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--no-wait", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.feed:
        feed(args.feed, args.store, args.minutes, args.baseline_minutes, args.backfill_minutes, args.interval,
             wait_for_go=not args.no_wait)
        return
    work = Path(tempfile.mkdtemp(prefix="cc-rss-"))
    feeder = None
    try:
        plan = write_plan(work / "canary.toml", WATCHER, args.speed)
        store_url = f"sqlite:///{work / 'store.db'}"
        feeder = Feeder(plan, store_url, "--minutes", str(args.minutes))
        feeder.expect("ready", 120)
        print(f"{args.minutes:g}-minute window × 1 s × 16 metrics at TIME ×{args.speed:g} "
              f"({args.minutes * 60 / args.speed:.0f} real s); the console headless at 160×50 on the dashboard")
        figures = asyncio.run(watch(plan, store_url, feeder, args.every, args.minutes, args.idle))
    finally:
        if feeder is not None:
            feeder.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"RSS: window opens at {figures['rss_window_start_mb']} MB → end of the window {figures['rss_end_mb']} MB; "
          f"max {figures['rss_max_mb']} MB (target ≤ 150 MB); over the last half of the window "
          f"{figures['last_half_growth_mb']:+.2f} MB (flat: < 5 MB); the dashboard evaluated "
          f"{figures['evaluated_minutes']} of {args.minutes:g} min")
    print(f"with no data the console grows {figures['idle_mb_per_real_min']:+.2f} MB per real minute: a real "
          f"{args.minutes:g}-minute window would end near {figures['real_time_window_estimate_mb']} MB")
    print(json.dumps(figures))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
