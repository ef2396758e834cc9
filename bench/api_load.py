"""The HTTP API under load: 200 concurrent clients polling the kill switch (as executors do) while
a canary lead activates and deactivates it, against ``canary-console api`` in its own process on
a SQLite store.

Correct: every read answers 200 with the three boolean flags, and every read that starts after an
activation has answered (and ends before the next deactivation is sent) sees the switch ON — and
OFF the other way round. Target: activation p99 ≤ 50 ms at that load (docs/api.md).

    .venv/bin/python bench/api_load.py [--clients 200] [--interval 1.0] [--switches 40] [--store URL]

Prints the figures and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

TENANT, CONN = "acme", "orders-primary"
LEAD = "bench-lead-token-0123456789abcdef"
READER = "bench-reader-token-0123456789abcd"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def start_api(workdir: Path, store_url: str) -> tuple[subprocess.Popen[str], str]:
    tokens = workdir / "tokens.toml"
    tokens.write_text(f'tenant = "{TENANT}"\n[[token]]\nuser = "lead"\nrole = "canary_lead"\ntoken = "{LEAD}"\n'
                      f'[[token]]\nuser = "executor"\nrole = "developer"\ntoken = "{READER}"\n')
    tokens.chmod(0o600)
    proc = subprocess.Popen([sys.executable, "-m", "console.api_cmd", "--listen", "127.0.0.1:0", "--store", store_url,
                             "--tokens", str(tokens)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    line = proc.stdout.readline() if proc.stdout else ""
    found = re.search(r"canary API on (http://127\.0\.0\.1:\d+)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the API did not start: {line} {proc.stderr.read() if proc.stderr else ''}")
    return proc, found.group(1)


async def _client(c: httpx.AsyncClient, interval: float, stop: Any, out: list[tuple[float, float, int, object]],
                  offset: float, first: asyncio.Event | None) -> None:
    await asyncio.sleep(offset)
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            r = await c.get("/api/kill-switch", params={"connection_id": CONN})
            data = r.json()
            flags = (data.get("global_active"), data.get("tenant_active"), data.get("connection_active"))
            ok = r.status_code == 200 and all(isinstance(f, bool) for f in flags)
            out.append((t0, time.monotonic(), r.status_code if ok else -r.status_code, data.get("global_active")))
        except Exception as exc:  # noqa: BLE001 - counted as a wrong answer
            out.append((t0, time.monotonic(), 0, repr(exc)[:80]))
        if first is not None:
            first.set()
            first = None
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))


def load(url: str, clients: int, interval: float, ready: Any, stop: Any, result_path: str) -> None:
    """``clients`` pollers on one event loop, one connection each; ``ready`` once all have read."""
    out: list[tuple[float, float, int, object]] = []

    async def main() -> None:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        firsts = [asyncio.Event() for _ in range(clients)]
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits,
                                     headers={"Authorization": f"Bearer {READER}"}) as c:
            tasks = [asyncio.create_task(_client(c, interval, stop, out, interval * i / clients, firsts[i]))
                     for i in range(clients)]
            for event in firsts:
                await event.wait()
            ready.set()
            await asyncio.gather(*tasks)
    asyncio.run(main())
    Path(result_path).write_text(json.dumps(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between one client's reads")
    ap.add_argument("--switches", type=int, default=40, help="activations (each followed by a deactivation)")
    ap.add_argument("--procs", type=int, default=4, help="processes the clients are spread over")
    ap.add_argument("--store", help="store URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="api-load-"))
    store_url = args.store or f"sqlite:///{workdir}/store.db"
    proc, url = start_api(workdir, store_url)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    # The clients are spread over a few processes, so that generating the load is not what limits it.
    parts = [args.clients // args.procs + (i < args.clients % args.procs) for i in range(args.procs)]
    loaders = []
    for i, n in enumerate(parts):
        ready = ctx.Event()
        loaders.append((ctx.Process(target=load, args=(url, n, args.interval, ready, stop, str(workdir / f"reads{i}.json"))),
                        ready))
    on_ms: list[float] = []
    off_ms: list[float] = []
    timeline: list[tuple[str, float, float]] = []  # (on|off, sent, answered)
    errors: list[str] = []
    started = time.monotonic()
    try:
        for proc_, _ in loaders:
            proc_.start()
        for _, ready in loaders:
            if not ready.wait(120):
                raise SystemExit("the load did not start within 120 s")
        loaded_at = time.monotonic()
        time.sleep(args.interval * 2)  # every client polling at its pace
        with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {LEAD}"}) as lead:
            for n in range(args.switches):
                for active, bucket in ((True, on_ms), (False, off_ms)):
                    t0 = time.monotonic()
                    r = lead.put("/api/kill-switch/global", json={"is_active": active, "reason": f"load drill {n}"})
                    t1 = time.monotonic()
                    bucket.append((t1 - t0) * 1000)
                    timeline.append(("on" if active else "off", t0, t1))
                    if r.status_code != 200 or r.json().get("global_active") is not active:
                        errors.append(f"switch {n} {'on' if active else 'off'}: {r.status_code} {r.text[:120]}")
                    time.sleep(0.25)
        time.sleep(args.interval)
        seconds = time.monotonic() - loaded_at
        stop.set()
        for proc_, _ in loaders:
            proc_.join(60)
    finally:
        stop.set()
        for proc_, _ in loaders:
            if proc_.is_alive():
                proc_.terminate()
        proc.terminate()
        proc.communicate(timeout=15)
    _ = started
    reads = []
    for i in range(len(parts)):
        f = workdir / f"reads{i}.json"
        reads += [r for r in (json.loads(f.read_text()) if f.exists() else []) if r[0] >= loaded_at]
    wrong = [r for r in reads if r[2] != 200]
    # Consistency: a read that starts after a change answered, and ends before the next change was
    # sent, must see that change.
    stale = 0
    for i, (kind, _sent, answered) in enumerate(timeline):
        next_sent = timeline[i + 1][1] if i + 1 < len(timeline) else float("inf")
        for t0, t1, status, seen in reads:
            if status == 200 and t0 >= answered and t1 <= next_sent and seen is not (kind == "on"):
                stale += 1
    read_ms = [(t1 - t0) * 1000 for t0, t1, status, _ in reads if status == 200]
    figures = {
        "clients": args.clients, "interval_s": args.interval, "reads": len(reads), "reads_wrong": len(wrong),
        "reads_stale": stale, "read_p50_ms": round(pct(read_ms, 50), 1), "read_p99_ms": round(pct(read_ms, 99), 1),
        "activations": len(on_ms), "activation_p50_ms": round(pct(on_ms, 50), 1),
        "activation_p99_ms": round(pct(on_ms, 99), 1), "activation_max_ms": round(max(on_ms or [0]), 1),
        "deactivation_p99_ms": round(pct(off_ms, 99), 1), "switch_errors": len(errors),
        "reads_per_s": round(len(reads) / seconds, 1),
    }
    figures["all_correct"] = not wrong and not stale and not errors and len(reads) > 0
    figures["activation_p99_ok"] = figures["activation_p99_ms"] <= 50
    print(f"{args.clients} clients reading every {args.interval:g} s: {len(reads)} reads "
          f"({figures['reads_per_s']}/s), {len(wrong)} wrong, {stale} stale; read p50 {figures['read_p50_ms']} ms, "
          f"p99 {figures['read_p99_ms']} ms")
    print(f"activation over the API: n={len(on_ms)}, p50 {figures['activation_p50_ms']} ms, "
          f"p99 {figures['activation_p99_ms']} ms (target ≤ 50), max {figures['activation_max_ms']} ms; "
          f"deactivation p99 {figures['deactivation_p99_ms']} ms; {len(errors)} errors"
          + (f" (mean {statistics.mean(on_ms):.1f} ms)" if on_ms else ""))
    for e in (errors + [str(w) for w in wrong])[:5]:
        print("  wrong:", e)
    print(json.dumps(figures))
    return 0 if figures["all_correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
