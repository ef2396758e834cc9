"""Kill-switch latency with an ADD INDEX in flight on a 2M-row table (sandbox MariaDB).

Both series activate through ``engine.flows.killswitch_actions.activate`` (what F9 and ``kill`` run).
Series "local": the switch is activated in this process while the executor's ALTER runs; we time
activation → ALTER aborted + run ``cancelled`` + index verified absent (the executor returns only
after all three). Series "remote": the switch is activated by another process on the same store;
we time the propagation (its commit → our watcher's KILL QUERY, seen as the executor's first event
after it) and the same end-to-end figure. ``alter_killed_rows_per_kill``: the audit rows each kill
left (one, docs/kill-switch.md).
The other process stays up until the trial is timed, as the console whose F9 it stands for does
(its interpreter's exit used to share the two cores with the cancellation being timed).

With ``--phases`` it also says where the time goes: each store write, switch read, KILL QUERY
and index read is timestamped (by wrapping those methods in this process, nothing else changed) and
the phases are printed as median / p90 / max milliseconds after the activation, per thread.

Prints a table and ends with one JSON line of the figures.
    python bench/kill_latency.py [--rows 2000000] [--trials 20] [--phases]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.adapters.killswitch import EmbeddedKillSwitch  # noqa: E402
from engine.adapters.target import Target  # noqa: E402
from engine.drill.sandbox import MariaDBSandbox  # noqa: E402
from engine.drill.selftest import Lab, wait_for  # noqa: E402
from engine.flows.killswitch_actions import activate as activate_switch  # noqa: E402

ACTIVATE_ELSEWHERE = """
import sys, time
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.flows.killswitch_actions import activate
from engine.adapters.store import Store
s = Store(sys.argv[1])
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
r = activate(s, EmbeddedKillSwitch(s), sys.argv[2], "global", "bench-other-process", (), "bench", via="bench",
             enforce=False)  # another console's F9; what is timed is this process noticing it
assert r.switch_set, r.lines()
sys.stdout.write(repr(time.time()) + "\\n"); sys.stdout.flush()
sys.stdin.readline()  # a console lives on after its F9: it exits once the trial is timed, not during it
"""


class Phases:
    """Timestamps of what the kill does, per thread, while a trial is armed (``--phases``).

    Wraps, in this process only, the methods the kill's path calls: the switch's set and read, the
    store's writes (the audit rows by action), the KILL QUERY, the ALTER's statement, the index read,
    the enforcer's wait for the executor's outcome. ``mark(t0)`` starts a trial's record."""

    WRAPPED = (
        ("engine.adapters.killswitch", "EmbeddedKillSwitch", "set"),
        ("engine.adapters.killswitch", "EmbeddedKillSwitch", "read"),
        ("engine.adapters.store.store", "Store", "audit"),
        ("engine.adapters.store.store", "Store", "transition_with_record"),
        ("engine.adapters.store.store", "Store", "find_runs"),
        ("engine.adapters.store.store", "Store", "update_run"),
        ("engine.adapters.store.store", "Store", "renew_lease"),
        ("engine.adapters.target", "TargetSession", "kill_query"),
        ("engine.adapters.target", "TargetSession", "index_exists"),
        ("engine.flows.enforce", None, "stop_run_alter"),
    )

    def __init__(self) -> None:
        self.events: list[tuple[str, str, float, float]] | None = None  # (thread, what, start, end)
        self.trials: list[list[tuple[str, str, float, float]]] = []
        for module, cls, name in self.WRAPPED:
            self._wrap(module, cls, name)

    def _wrap(self, module: str, cls: str | None, name: str) -> None:
        import importlib

        owner = importlib.import_module(module)
        if cls is not None:
            owner = getattr(owner, cls)
        original = getattr(owner, name)
        phases = self

        @functools.wraps(original)
        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if phases.events is not None:
                    what = name
                    if name == "audit":
                        what = f"audit {args[3] if len(args) > 3 else kwargs.get('action')}"
                    elif name == "set":
                        what = "switch set"
                    elif name == "read":
                        what = "switch read"
                    phases.events.append((threading.current_thread().name, what, start, time.perf_counter()))

        setattr(owner, name, timed)

    def arm(self) -> None:
        self.events = []

    def finish(self, t0: float, done: float) -> None:
        events = self.events or []
        self.events = None
        self.trials.append([(th, what, (s - t0) * 1000, (e - t0) * 1000) for th, what, s, e in events
                            if e >= t0] + [("executor", "execute returned", (done - t0) * 1000, (done - t0) * 1000)])

    def table(self) -> list[str]:
        """Per (thread, what): how many trials saw it, and its end's median / p90 / max after the
        activation, with its own duration's median and max."""
        rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for events in self.trials:
            for th, what, s, e in events:
                kind = ("alter" if th.startswith("alter-") else "executor" if th in ("MainThread", "executor")
                        else "activation")
                rows.setdefault((kind, what), []).append((e, e - s))
        out = [f"{'thread':<11} {'what':<34} {'n':>4} {'end p50':>8} {'p90':>8} {'max':>8}   {'took p50':>8} {'max':>8}"]
        for (kind, what), vals in sorted(rows.items(), key=lambda kv: pct([e for e, _ in kv[1]], 0.5)):
            ends, took = [e for e, _ in vals], [d for _, d in vals]
            out.append(f"{kind:<11} {what:<34} {len(vals):>4} {pct(ends, .5):>8.1f} {pct(ends, .9):>8.1f} "
                       f"{max(ends):>8.1f}   {pct(took, .5):>8.1f} {max(took):>8.1f}")
        return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def trial(lab: Lab, db: str, n: int, remote: bool, rng: random.Random,
          phases: Phases | None = None) -> dict[str, float]:
    plan = lab.plan(db, "idx_bench_kill", ["note", "status", "total"])
    lab.drop_index_if_present(db, "orders", plan.change.index)
    store = lab.store(f"bench-{n}")
    ex = lab.executor(plan, store)
    run = ex.create_run()
    mark: dict[str, float] = {}
    helper = None
    if remote:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        helper = subprocess.Popen([sys.executable, "-c", ACTIVATE_ELSEWHERE, store.url, plan.tenant],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert helper.stdout and helper.stdout.readline().strip() == "ready"

    def activate() -> None:
        with Target(plan.connection).session("bench") as s:
            if not wait_for(lambda: s.find_alter(run.id), 10, 0.005):
                return
        time.sleep(rng.uniform(0.1, 0.6))  # somewhere in the middle of the index build
        if helper is not None:
            assert helper.stdin and helper.stdout
            helper.stdin.write("go\n")
            helper.stdin.flush()
            mark["activated_wall"] = float(helper.stdout.readline())
            mark["activated"] = time.perf_counter() - (time.time() - mark["activated_wall"])
        else:
            if phases is not None:
                phases.arm()
            mark["activated"] = time.perf_counter()
            # What F9 and `kill` run: set, then KILL QUERY the ALTER found by its tag.
            activate_switch(store, EmbeddedKillSwitch(store), plan.tenant, "global", "bench", (), "bench", via="bench",
                     target_for=lambda _run: Target(plan.connection))

    def on_event(name: str, data: dict) -> None:
        if name == "alter_started":
            threading.Thread(target=activate, daemon=True).start()
        elif name == "alter_progress" and data.get("killed") and "kill_sent_wall" not in mark:
            mark["kill_sent_wall"] = time.time()  # the executor's first event after its KILL QUERY

    ex.on_event = on_event
    out = ex.execute(run.id)
    done = time.perf_counter()
    if phases is not None and not remote and "activated" in mark:
        phases.finish(mark["activated"], done)
    if helper is not None:
        assert helper.stdin
        helper.stdin.write("done\n")
        helper.stdin.flush()
        helper.wait(10)
    if out.status != "cancelled" or lab.index_exists(plan):
        raise RuntimeError(f"trial {n}: expected a cancelled run and no index, got {out.status}: {out.message}")
    result = {"end_to_end_ms": (done - mark["activated"]) * 1000,
              "alter_killed_rows": len(store.audit_entries(plan.tenant, run.id, "alter_killed"))}
    if remote:
        result["propagation_ms"] = (mark["kill_sent_wall"] - mark["activated_wall"]) * 1000
    store.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--phases", action="store_true", help="time each phase of the same-process kill")
    args = ap.parse_args()
    phases = Phases() if args.phases else None
    rng = random.Random(11)
    with MariaDBSandbox() as sandbox:
        lab = Lab(sandbox, sandbox.base / "lab")  # removed with the sandbox
        t = time.perf_counter()
        db = lab.big_table(args.rows)
        print(f"loaded {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
        local = [trial(lab, db, i, False, rng, phases) for i in range(args.trials)]
        remote = [trial(lab, db, 100 + i, True, rng) for i in range(args.trials)]
    e2e_local = [r["end_to_end_ms"] for r in local]
    e2e_remote = [r["end_to_end_ms"] for r in remote]
    prop = [r["propagation_ms"] for r in remote]
    figures = {
        "rows": args.rows, "trials": args.trials,
        "local_end_to_end_p50_ms": round(pct(e2e_local, 0.5), 1),
        "local_end_to_end_p99_ms": round(pct(e2e_local, 0.99), 1),
        "local_end_to_end_max_ms": round(max(e2e_local), 1),
        "cross_process_propagation_p50_ms": round(pct(prop, 0.5), 1),
        "cross_process_propagation_p99_ms": round(pct(prop, 0.99), 1),
        "cross_process_end_to_end_p50_ms": round(pct(e2e_remote, 0.5), 1),
        "cross_process_end_to_end_p99_ms": round(pct(e2e_remote, 0.99), 1),
        "alter_killed_rows_per_kill": sorted({r["alter_killed_rows"] for r in local + remote}),
        "target_end_to_end_p99_ms": 100, "target_propagation_p99_ms": 250,  # docs/kill-switch.md: on a quiet machine
        "load_average_1m": round(os.getloadavg()[0], 1),  # the machine is shared: read the figures with it
    }
    print(f"activation → ALTER aborted + cancelled + index absent (same process): "
          f"p50 {figures['local_end_to_end_p50_ms']} ms, p99 {figures['local_end_to_end_p99_ms']} ms "
          f"(mean {statistics.mean(e2e_local):.1f})")
    print(f"activation in another process → our KILL QUERY: p50 {figures['cross_process_propagation_p50_ms']} ms, "
          f"p99 {figures['cross_process_propagation_p99_ms']} ms")
    print(f"activation in another process → cancelled + index absent: p50 {figures['cross_process_end_to_end_p50_ms']} ms, "
          f"p99 {figures['cross_process_end_to_end_p99_ms']} ms")
    if phases is not None:
        print("same process, phases (ms after the activation; 'took' = the call's own duration):")
        print("\n".join(phases.table()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
