"""F9 → kill switch recorded in the store, while a slow query runs on one of the console's workers
(target ≤ 50 ms).

A sandbox MariaDB; the console (the real App, headless under Textual's Pilot) on a plan for it; a
worker of the App's blocked in ``SELECT SLEEP(30)`` on the target (a hung poll). Each trial presses
F9 and times: the frame turning red (the UI's answer), and the kill switch's row committed in the
store (what every other console and worker reads). Between trials the switch is turned off.

Prints a table and ends with one JSON line of the figures.
    python bench/console_kill_key.py [--trials 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.app import CanaryApp  # noqa: E402
from engine.adapters.identity import Identity  # noqa: E402
from engine.adapters.killswitch import EmbeddedKillSwitch  # noqa: E402
from engine.adapters.store import Store  # noqa: E402
from engine.adapters.target import Target  # noqa: E402
from engine.domain.clock import utcnow  # noqa: E402
from engine.domain.plan import plan_from_dict, window_covering  # noqa: E402
from engine.drill.sandbox import MariaDBSandbox  # noqa: E402


class TimedKillSwitch(EmbeddedKillSwitch):
    """The embedded backend, noting when each activation's write returned (committed)."""

    def __init__(self, store: Store):
        super().__init__(store)
        self.committed: list[float] = []

    def set(self, tenant_id, scope, active, actor, reason="", connection_id=""):  # noqa: ANN001
        super().set(tenant_id, scope, active, actor, reason, connection_id)
        if active:
            self.committed.append(time.perf_counter())


class TimedApp(CanaryApp):
    """The console, noting when F9's action has turned the frame red."""

    red_at: list[float] = []

    def action_kill_switch(self) -> None:
        super().action_kill_switch()
        if self.frame.kill_active:
            self.red_at.append(time.perf_counter())


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def run(trials: int, sandbox: MariaDBSandbox, workdir: Path) -> dict:
    plan = plan_from_dict({
        "tenant": "bench", "connection": {"id": "bench", "host": "127.0.0.1", "port": sandbox.primary.port,
                                          "user": "root", "database": "mysql"},
        "change": {"table": "user", "index": "idx_bench", "columns": ["Host"]},
        "people": [{"name": "Bench", "roles": ["canary_lead", "dba"], "unix_user": "bench"}],
        "window": window_covering(utcnow()),
    }, source="bench")
    store = Store(f"sqlite:///{workdir / 'store.db'}")
    backend = TimedKillSwitch(store)
    app = TimedApp(plan, store, Identity("bench", None, "bench"), backend=backend, poll=True)
    ui_ms: list[float] = []
    store_ms: list[float] = []
    hung = threading.Event()

    def slow_query() -> None:
        with Target(plan.connection).session("bench-slow", read_timeout=60) as s:
            hung.set()
            s.query("SELECT /* canary-console:bench */ SLEEP(30) AS slept")

    async with app.run_test(size=(160, 50)) as pilot:
        app.run_worker(slow_query, thread=True, group="bench-slow", exit_on_error=False)
        while not hung.is_set():
            await pilot.pause(0.01)
        await pilot.pause(0.2)
        for _ in range(trials):
            before, reds = len(backend.committed), len(app.red_at)
            pressed = time.perf_counter()
            await pilot.press("f9")
            if len(app.red_at) > reds:
                ui_ms.append((app.red_at[-1] - pressed) * 1000)
            while len(backend.committed) == before:
                await asyncio.sleep(0.0005)
            store_ms.append((backend.committed[-1] - pressed) * 1000)
            row = [r for r in store.kill_switch_rows("bench") if r.scope == "global"][0]
            assert row.is_active
            store.set_kill_switch("bench", "global", False, "bench", "next trial")
            while app.frame.kill_active:
                await pilot.pause(0.02)
        still_hung = any(w.group == "bench-slow" and not w.is_finished for w in app.workers)
        app.exit()
    return {"ui": ui_ms, "store": store_ms, "slow_query_still_running": still_hung}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cc-killkey-") as tmp, MariaDBSandbox() as sandbox:
        result = asyncio.run(run(args.trials, sandbox, Path(tmp)))
    ui, st = result["ui"], result["store"]
    print(f"{'series':<40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    print(f"{'F9 → frame red (UI thread)':<40} {pct(ui, .5):8.2f} {pct(ui, .95):8.2f} {max(ui):8.2f}")
    print(f"{'F9 → kill switch committed in store':<40} {pct(st, .5):8.2f} {pct(st, .95):8.2f} {max(st):8.2f}")
    print(f"slow query still running on its worker throughout: {result['slow_query_still_running']}")
    print(json.dumps({"bench": "console_kill_key", "trials": args.trials, "target_ms": 50,
                      "ui_p50_ms": round(pct(ui, .5), 2), "ui_max_ms": round(max(ui), 2),
                      "store_p50_ms": round(pct(st, .5), 2), "store_p95_ms": round(pct(st, .95), 2),
                      "store_max_ms": round(max(st), 2),
                      "slow_query_running": result["slow_query_still_running"]}))


if __name__ == "__main__":
    main()
