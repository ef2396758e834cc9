"""Kill switch under load (issue 7 item 6): N consoles polling one switch while another activates it.

N separate processes (multiprocessing, spawn context; default 20) each poll the kill switch the way
the console does — ``EmbeddedKillSwitch.read`` on their own ``Store`` (``--remote``: on the HTTP
API served by ``canary-console api`` in a subprocess, through ``RemoteKillSwitch``) every
``console.app.KILL_POLL_S``, each at its own phase, one read at a time: a tick that falls due during a
slow read is skipped and counted (the console's exclusive thread worker would start a second read
beside the slow one instead). Meanwhile this process, as a console would, activates the global
switch (``backend.set`` with a reason), holds it, deactivates it (a canary lead, with a reason), and
so on, recording when each write returned.

Each write carries its number in its reason, so a poller knows which one it saw. Reported:

- read latency (``backend.read`` as the console calls it) p50/p95/p99/max over every poll;
- propagation: a write's commit (the moment ``set`` returned) → the end of the first read that
  returned it, p50/p99/max over every poller × activation; split into the wait for the poller's
  next tick (that read's start − the commit) and that read itself; also minus half a poll
  interval (the mean wait for a tick at a random phase);
- the time until ALL pollers had seen each activation (p50/p99/max over activations);
- errors (fail-closed readings, e.g. "database is locked"); stale reads (a read that returned a
  state older than the last write that had returned when it began: must be 0); writes a poller
  never saw; ticks skipped because a read overran.

Each store is run at the console's interval for ``--seconds`` and at 50 ms for ``--fast-seconds``
(the store's own cost: the wait for a tick shrinks to ≤ 50 ms). Stores: SQLite (a temporary file)
and PostgreSQL on 127.0.0.1:5432 (a throwaway database, created and dropped here).
``PollerPool.open_at_once`` (used by tests/test_killswitch_load.py) has every poller open a new
store at the same instant, as consoles started together would.

Clock: ``time.monotonic()``, which on Linux is CLOCK_MONOTONIC, one clock for every process on the
machine. Each poller's offset from this process is measured by a ping over its pipe (the offset of
the round trip with the smallest RTT, ± half that RTT) and printed; no correction is applied.

Prints a table per run and ends with one JSON line of every figure (about 3 minutes by default).
    .venv/bin/python bench/killswitch_load.py [--store sqlite|postgres|both] [--remote]
        [--pollers 20] [--seconds 60] [--fast-seconds 15]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import multiprocessing as mp
import os
import random
import re
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.adapters.killswitch import EmbeddedKillSwitch, RemoteKillSwitch  # noqa: E402
from engine.adapters.store import Store  # noqa: E402

TENANT = "acme"
CONN = "orders-primary"
LEAD = "somchai"  # the driver: a canary lead (deactivation needs that role, docs/kill-switch.md)
FAST_POLL_S = 0.05
REASON = {"on": "F9 in the console (load #{})", "off": "load #{} over, all clear"}  # the number says which
TARGET_MS = 250.0
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
now = time.monotonic  # CLOCK_MONOTONIC on Linux: the same clock in every process


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def spread(values: list[float], qs: tuple[float, ...] = (0.5, 0.99)) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"p{round(q * 100)}": (round(pct(values, q), 1) if values else None) for q in qs}
    out["max"] = round(max(values), 1) if values else None
    return out


# --- a poller (a console), in its own process -----------------------------------------------------


def _open_backend(job: dict[str, Any]) -> tuple[Any, Any]:
    if job["api_url"]:
        backend = RemoteKillSwitch(job["api_url"], job["token"])
        return backend, backend.close
    store = Store(job["store_url"])
    return EmbeddedKillSwitch(store), store.close


def _poll(job: dict[str, Any], conn: Any) -> dict[str, Any]:
    try:
        backend, close = _open_backend(job)
    except Exception as exc:  # noqa: BLE001 - said to the driver, which stops the run
        conn.send({"open_error": f"{exc.__class__.__name__}: {exc}"})
        conn.recv()
        return {"reads": [], "skipped": 0}
    conn.send("ready")
    start, end = conn.recv()
    interval = job["interval"]
    tick = start + random.Random(job["seed"]).uniform(0, interval)  # consoles start at any moment
    reads: list[tuple[float, float, bool, str, str | None]] = []
    skipped = 0
    try:
        while True:
            delay = tick - now()
            if delay > 0:
                time.sleep(delay)
            if tick >= end:
                break
            r0 = now()
            reading = backend.read(TENANT, CONN)
            r1 = now()
            scope = reading.scopes.get("global")
            reads.append((r0, r1, reading.active, scope.reason if scope else "", reading.error))
            tick += interval
            if tick < r1:  # the read overran its interval: skip the ticks that fell due meanwhile
                missed = int((r1 - tick) // interval) + 1
                skipped += missed
                tick += missed * interval
    finally:
        close()
    return {"reads": reads, "skipped": skipped}


def _open_at(url: str, at: float) -> str:
    """Open the store at the instant ``at``, read the switch once: "ok" or what went wrong."""
    time.sleep(max(0.0, at - now()))
    try:
        store = Store(url)
        try:
            EmbeddedKillSwitch(store).read(TENANT, CONN)
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"{exc.__class__.__name__}: {exc}"
    return "ok"


def poller_main(conn: Any) -> None:
    """A poller's life: answer pings, run the jobs it is sent, until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    while True:
        msg = conn.recv()
        if msg == "stop":  # nothing is left open between jobs: skip the interpreter's slow teardown
            os._exit(0)
        if msg == "ping":
            conn.send(now())
        elif "open_at" in msg:
            conn.send(_open_at(msg["store_url"], msg["open_at"]))
        else:
            conn.send(_poll(msg, conn))


class PollerPool:
    """N poller processes, started once and reused by every run (their start-up is paid once)."""

    def __init__(self, n: int):
        ctx = mp.get_context("spawn")
        started = now()
        self.pipes = []
        self.procs = []
        for _ in range(n):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=poller_main, args=(theirs,), daemon=True)
            proc.start()
            theirs.close()
            self.pipes.append(mine)
            self.procs.append(proc)
        for pipe in self.pipes:  # the first answer waits for the poller's imports
            pipe.send("ping")
            self._recv(pipe, 120)
        self.start_s = now() - started
        self.clock = self.calibrate()

    def __len__(self) -> int:
        return len(self.procs)

    def _recv(self, pipe: Any, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise RuntimeError(f"a poller did not answer within {timeout:g} s")
        return pipe.recv()

    def open_at_once(self, url: str) -> list[str]:
        """Every poller opens the store at the same instant (consoles started together on a new
        store): "ok" or the error, one per poller."""
        at = now() + 0.3
        for pipe in self.pipes:
            pipe.send({"store_url": url, "open_at": at})
        return [self._recv(pipe, 120) for pipe in self.pipes]

    def calibrate(self, rounds: int = 20) -> dict[str, float]:
        """Each poller's clock against ours: the offset of the ping with the smallest round trip,
        ± half that round trip."""
        offsets, bounds = [], []
        for pipe in self.pipes:
            best = None
            for _ in range(rounds):
                t0 = now()
                pipe.send("ping")
                theirs = self._recv(pipe, 120)
                t1 = now()
                if best is None or t1 - t0 < best[1] - best[0]:
                    best = (t0, t1, theirs)
            assert best is not None
            offsets.append(best[2] - (best[0] + best[1]) / 2)
            bounds.append((best[1] - best[0]) / 2)
        return {"max_abs_offset_us": round(max(abs(o) for o in offsets) * 1e6, 1),
                "max_error_bound_us": round(max(bounds) * 1e6, 1)}

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)

    def __enter__(self) -> PollerPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# --- the stores and the API -----------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_store() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="ks-load-") as tmp:
        yield f"sqlite:///{tmp}/store.db"


@contextlib.contextmanager
def postgres_store() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL, dropped afterwards."""
    import psycopg

    name = f"cc_ksload_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def api_server(store_url: str) -> Iterator[tuple[str, str, str]]:
    """``canary-console api`` in a subprocess over ``store_url``: (its URL, a lead's token, an
    SRE's token)."""
    lead, sre = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="ks-api-") as tmp:
        tokens = Path(tmp) / "tokens.toml"
        tokens.write_text(f'tenant = "{TENANT}"\n[[token]]\nuser = "{LEAD}"\nrole = "canary_lead"\ntoken = "{lead}"\n'
                          f'[[token]]\nuser = "pim"\nrole = "sre"\ntoken = "{sre}"\n')
        tokens.chmod(0o600)
        exe = Path(sys.executable).with_name("canary-console")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from console.cli import main; sys.exit(main())"]
        err = open(Path(tmp) / "stderr", "w+")  # noqa: SIM115 - read back if it fails
        proc = subprocess.Popen([*cmd, "api", "--listen", "127.0.0.1:0", "--store", store_url, "--tokens", str(tokens)],
                                stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            line = proc.stdout.readline() if ready else ""
            found = re.search(r"canary API on (http://\S+) ", line)
            if not found:
                err.seek(0)
                raise RuntimeError(f"canary-console api did not start: {line!r} {err.read()[-2000:]}")
            yield found.group(1), lead, sre
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.close()


# --- one run --------------------------------------------------------------------------------------


def run_phase(pool: PollerPool, store_url: str, interval: float, seconds: float, *,
              api: tuple[str, str, str] | None = None, hold_s: float | None = None,
              seed: int = 7) -> dict[str, Any]:
    """Poll for ``seconds`` at ``interval`` while this process activates and deactivates the
    global switch every ``hold_s`` (default max(0.5, 3 intervals)); return the figures."""
    hold = hold_s if hold_s is not None else max(0.5, 3 * interval)
    rng = random.Random(seed)
    store = None
    if api:
        driver: Any = RemoteKillSwitch(api[0], api[1])
    else:
        store = Store(store_url)
        driver = EmbeddedKillSwitch(store)
    try:
        driver.set(TENANT, "global", False, LEAD, "load bench: starting off")
        job = {"store_url": store_url, "api_url": api[0] if api else None, "token": api[2] if api else None,
               "interval": interval}
        asked = now()
        for i, pipe in enumerate(pool.pipes):
            pipe.send(dict(job, seed=seed * 1000 + i))
        opened = [pool._recv(pipe, 120) for pipe in pool.pipes]
        open_s = now() - asked
        start = now() + 0.2
        end = start + seconds
        for pipe in pool.pipes:
            pipe.send((start, end))
        failed = [o["open_error"] for o in opened if isinstance(o, dict)]
        if failed:
            for pipe in pool.pipes:
                pool._recv(pipe, 120)
            raise RuntimeError(f"{len(failed)} poller(s) could not open the backend: {failed[0]}")

        # The driver: on, hold, off, hold … (each hold stretched by up to 20 % so a write does not
        # fall at the same phase of every poll), ending off with a hold's room left for the pollers.
        events: list[tuple[str, int, float, float]] = []  # (on|off, number, set called, set returned)
        t = start + hold / 2
        k = 0
        while t + 2.2 * hold < end:
            for active in (True, False):
                time.sleep(max(0.0, t - now()))
                reason = REASON["on" if active else "off"].format(k)
                c0 = now()
                driver.set(TENANT, "global", active, LEAD, reason)
                c1 = now()
                events.append(("on" if active else "off", k, c0, c1))
                t = c1 + hold * rng.uniform(1.0, 1.2)
            k += 1
        results = [pool._recv(pipe, seconds + 120) for pipe in pool.pipes]
    finally:
        if isinstance(driver, RemoteKillSwitch):
            driver.close()
        if store is not None:
            store.close()
    return dict(figures(results, events, interval, seconds), pollers_open_s=round(open_s, 2))


def figures(results: list[dict[str, Any]], events: list[tuple[str, int, float, float]], interval: float,
            seconds: float) -> dict[str, Any]:
    reasons = {(kind, k): REASON[kind].format(k) for kind, k, _c0, _c1 in events}
    order = {reasons[(kind, k)]: i for i, (kind, k, _c0, _c1) in enumerate(events)}
    committed = [c1 for _kind, _k, _c0, c1 in events]
    latency: list[float] = []
    errors: Counter[str] = Counter()
    prop: dict[str, list[float]] = {"on": [], "off": []}
    wait: list[float] = []
    seen_read: list[float] = []
    all_saw: list[float] = []
    per_event: dict[int, list[float]] = {i: [] for i in range(len(events))}
    missed = stale = 0
    for res in results:
        reads = res["reads"]
        for r0, r1, _active, reason, error in reads:
            latency.append((r1 - r0) * 1000)
            if error:
                errors[re.sub(r"\d+(\.\d+)?", "N", error)[:120]] += 1
            # Stale: older than the last write that had returned when the read began (a read may
            # return a newer one: a write that commits while it runs).
            elif order.get(reason, -1) < bisect.bisect_left(committed, r0) - 1:
                stale += 1
        for i, (kind, k, _c0, c1) in enumerate(events):
            want = reasons[(kind, k)]
            first = next((r for r in reads if r[3] == want and r[2] == (kind == "on") and not r[4]), None)
            if first is None:
                missed += 1
            else:
                ms = (first[1] - c1) * 1000
                prop[kind].append(ms)
                per_event[i].append(ms)
                if kind == "on":
                    wait.append((first[0] - c1) * 1000)
                    seen_read.append((first[1] - first[0]) * 1000)
    for i, (kind, _k, _c0, _c1) in enumerate(events):
        if kind == "on" and len(per_event[i]) == len(results):
            all_saw.append(max(per_event[i]))
    writes = [(c1 - c0) * 1000 for _kind, _k, c0, c1 in events]
    half = interval * 500
    return {
        "pollers": len(results), "poll_interval_ms": round(interval * 1000), "seconds": seconds,
        "reads": len(latency), "read_ms": spread(latency, (0.5, 0.95, 0.99)),
        "errors": sum(errors.values()), "error_kinds": dict(errors.most_common(5)),
        "skipped_ticks": sum(r["skipped"] for r in results),
        "activations": sum(1 for e in events if e[0] == "on"),
        "propagation_ms": spread(prop["on"]),
        "propagation_minus_half_interval_ms": spread([p - half for p in prop["on"]]),
        "propagation_tick_wait_ms": spread(wait),
        "propagation_seeing_read_ms": spread(seen_read),
        "all_pollers_saw_ms": spread(all_saw),
        "deactivation_propagation_ms": spread(prop["off"]),
        "missed": missed, "stale_reads": stale,
        "write_ms": spread(writes),
    }


def describe(label: str, f: dict[str, Any]) -> str:
    r, p, a = f["read_ms"], f["propagation_ms"], f["all_pollers_saw_ms"]
    return (f"{label}: {f['pollers']} pollers every {f['poll_interval_ms']} ms for {f['seconds']:g} s "
            f"(all had opened the {'API' if 'remote' in label else 'store'} in {f.get('pollers_open_s')} s)\n"
            f"  reads {f['reads']}: p50 {r['p50']} p95 {r['p95']} p99 {r['p99']} max {r['max']} ms; "
            f"errors {f['errors']} {f['error_kinds'] or ''}; skipped ticks {f['skipped_ticks']}; "
            f"stale reads {f['stale_reads']}\n"
            f"  {f['activations']} activations (write p50 {f['write_ms']['p50']} p99 {f['write_ms']['p99']} ms) → "
            f"seen by a poller p50 {p['p50']} p99 {p['p99']} max {p['max']} ms "
            f"(minus half an interval p99 {f['propagation_minus_half_interval_ms']['p99']}; tick wait p99 "
            f"{f['propagation_tick_wait_ms']['p99']}, the read that saw it p99 {f['propagation_seeing_read_ms']['p99']})\n"
            f"  seen by all {f['pollers']}: p50 {a['p50']} p99 {a['p99']} max {a['max']} ms; "
            f"deactivation seen p99 {f['deactivation_propagation_ms']['p99']} ms; missed {f['missed']}")


def main() -> None:
    from console.app import (
        KILL_POLL_S as POLL_S,  # here, not at the top: the pollers need not import Textual
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--remote", action="store_true", help="poll the HTTP API (canary-console api) instead of the store")
    ap.add_argument("--pollers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60, help=f"run at the console's interval ({POLL_S:g} s)")
    ap.add_argument("--fast-seconds", type=float, default=15, help=f"run at {FAST_POLL_S * 1000:g} ms (0: skip it)")
    args = ap.parse_args()
    stores = {"sqlite": sqlite_store, "postgres": postgres_store}
    chosen = list(stores) if args.store == "both" else [args.store]
    backend = "remote" if args.remote else "embedded"
    out: dict[str, Any] = {"bench": "killswitch_load", "backend": backend, "pollers": args.pollers,
                           "console_poll_interval_ms": round(POLL_S * 1000), "target_ms": TARGET_MS}
    with PollerPool(args.pollers) as pool:
        print(f"{len(pool)} pollers up in {pool.start_s:.1f} s; clock CLOCK_MONOTONIC, offset to pollers "
              f"≤ {pool.clock['max_abs_offset_us']} µs measured ± {pool.clock['max_error_bound_us']} µs", flush=True)
        out["pollers_start_s"] = round(pool.start_s, 1)
        out["clock"] = dict(pool.clock, source="time.monotonic (CLOCK_MONOTONIC, shared by all processes on Linux)")
        for name in chosen:
            with stores[name]() as url, (api_server(url) if args.remote else contextlib.nullcontext()) as api:
                for interval, seconds in ((POLL_S, args.seconds), (FAST_POLL_S, args.fast_seconds)):
                    if seconds <= 0:
                        continue
                    label = f"{name}_{backend}_{round(interval * 1000)}ms"
                    f = run_phase(pool, url, interval, seconds, api=api)
                    out[label] = f
                    print(describe(label, f), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
