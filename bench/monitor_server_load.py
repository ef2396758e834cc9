"""The monitoring's load on the server it watches: statement time our own connections use per second
of wall time. Target ≤ 3.5 ms/s.

A sandbox MariaDB primary and replica (performance_schema on, history_long 5,000) with a workload
on ``orders`` (50 SELECT/s by customer, 20 UPDATE/s by id) run the engine's collectors —
MySQLSource on the primary, ReplicaSource on the replica, in a CollectorLoop on its own thread at a
1-second interval — for ``--seconds`` of wall time. The statement time is the server's own account
of our connections' threads: ``SUM_TIMER_WAIT`` (picoseconds) in
``events_statements_summary_by_thread_by_event_name`` at the start and at the end, on each server;
the breakdown by statement comes from ``events_statements_history_long`` filtered on the same
threads (read every 15 s, before the ring of 5,000 turns over). Our measuring connection is a
different thread and is not counted.

    .venv/bin/python bench/monitor_server_load.py [--seconds 120] [--interval 1] [--rows 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.adapters.collector_loop import CollectorLoop  # noqa: E402
from engine.adapters.collectors import PERCENTILE_BUDGET, PERCENTILE_EVERY_S, MySQLSource  # noqa: E402
from engine.adapters.replica_source import ReplicaSource  # noqa: E402
from engine.drill.sandbox import MariaDBSandbox  # noqa: E402
from engine.drill.selftest import Lab  # noqa: E402
from engine.drill.workload import Workload  # noqa: E402

THREAD_TOTAL = """
SELECT /* bench:server-load */ COALESCE(SUM(s.SUM_TIMER_WAIT), 0) AS ps, COALESCE(SUM(s.COUNT_STAR), 0) AS n
FROM performance_schema.events_statements_summary_by_thread_by_event_name s
JOIN performance_schema.threads t ON t.THREAD_ID = s.THREAD_ID
WHERE t.PROCESSLIST_ID = %s
"""
THREAD_OF = """
SELECT /* bench:server-load */ THREAD_ID AS t FROM performance_schema.threads WHERE PROCESSLIST_ID = %s
"""
HISTORY = """
SELECT /* bench:server-load */ EVENT_ID AS id, TIMER_WAIT AS ps, SQL_TEXT AS text, ROWS_EXAMINED AS examined,
       CREATED_TMP_TABLES AS tmp_tables
FROM performance_schema.events_statements_history_long
WHERE THREAD_ID = %s AND EVENT_ID > %s AND TIMER_WAIT IS NOT NULL
"""
# Which of our statements a SQL text is (engine/adapters/collectors.py's constants, by what they read).
KINDS = (("events_statements_summary_by_digest", "tick (+ counters every 5 s)"),
         ("max_connections", "max_connections"),
         ("events_statements_history_long", "history_long percentiles"),
         ("GLOBAL_STATUS", "global status"), ("metadata_locks", "lock waits"),
         ("REPLICA STATUS", "replica status"), ("SLAVE STATUS", "replica status"))


def kind_of(text: str) -> str:
    for needle, kind in KINDS:
        if needle in (text or ""):
            return kind
    return (text or "?").split("*/")[-1].strip()[:40] or "?"


def one(conn, statement: str, params=()) -> dict:
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchone()


def rows(conn, statement: str, params=()) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return list(cur.fetchall())


class Ledger:
    """Our statements on one server, from history_long, read incrementally."""

    def __init__(self, admin, processlist_id: int):
        self.admin = admin
        self.thread = int(one(admin, THREAD_OF, (processlist_id,))["t"])
        self.last = 0
        self.ps: dict[str, int] = defaultdict(int)
        self.n: dict[str, int] = defaultdict(int)
        self.each: dict[str, list[float]] = defaultdict(list)
        self.examined: dict[str, int] = defaultdict(int)

    def start(self) -> None:
        seen = rows(self.admin, HISTORY, (self.thread, 0))
        self.last = max((int(r["id"]) for r in seen), default=0)

    def read(self) -> None:
        for r in rows(self.admin, HISTORY, (self.thread, self.last)):
            self.last = max(self.last, int(r["id"]))
            k = kind_of(r["text"])
            self.ps[k] += int(r["ps"])
            self.n[k] += 1
            self.each[k].append(int(r["ps"]) / 1e9)
            self.examined[k] += int(r["examined"] or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="wall time the collectors run (default 120)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--interval", type=float, default=1.0, help="sampling interval in seconds (default 1; the "
                    "plan's default is 5)")
    args = ap.parse_args()
    with MariaDBSandbox(replica=True) as sb:
        assert sb.replica is not None
        lab = Lab(sb, sb.base / "lab")  # removed with the sandbox
        db = lab.database("bench")
        lab.load_orders(db, args.rows)
        sb.wait_replica_caught_up(120)
        profile = sb.primary.profile(db)
        with Workload(profile, "SELECT id, total FROM orders WHERE customer_id = %s",
                      lambda r: (r.randint(0, 49_999),), rate_per_s=50), \
             Workload(profile, "UPDATE orders SET total = total + 0.01 WHERE id = %s",
                      lambda r: (r.randint(1, args.rows),), rate_per_s=20):
            time.sleep(3)  # digests in place: the first ticks have statements to read
            primary, replica = MySQLSource(profile, db, "orders"), ReplicaSource(sb.replica.profile(db))
            warm = CollectorLoop([primary, replica], interval=1.0)
            warm.tick()
            warm.tick()  # connections open, the consumer checked, previous values in place
            assert primary.session is not None and replica.session is not None
            admin_p, admin_r = sb.primary.connect(), sb.replica.connect()
            ledgers = {"primary": Ledger(admin_p, primary.session.thread_id),
                       "replica": Ledger(admin_r, replica.session.thread_id)}
            for ledger in ledgers.values():
                ledger.start()
            p0 = one(admin_p, THREAD_TOTAL, (primary.session.thread_id,))
            r0 = one(admin_r, THREAD_TOTAL, (replica.session.thread_id,))
            loop = CollectorLoop([primary, replica], interval=args.interval)  # the same sources, on its thread
            load0 = os.getloadavg()[0]
            started = time.monotonic()
            loop.start()
            while time.monotonic() - started < args.seconds:
                time.sleep(min(15.0, max(0.0, args.seconds - (time.monotonic() - started))))
                for ledger in ledgers.values():
                    ledger.read()
            # Read while the loop still runs: stopping it closes the connections, and their
            # per-thread totals with them.
            wall = time.monotonic() - started
            p1 = one(admin_p, THREAD_TOTAL, (primary.session.thread_id,))
            r1 = one(admin_r, THREAD_TOTAL, (replica.session.thread_id,))
            for ledger in ledgers.values():
                ledger.read()
            load1 = os.getloadavg()[0]
            loop.stop()
            admin_p.close()
            admin_r.close()
    ticks = loop.ticks
    primary_ms = (int(p1["ps"]) - int(p0["ps"])) / 1e9
    replica_ms = (int(r1["ps"]) - int(r0["ps"])) / 1e9
    total_per_s = (primary_ms + replica_ms) / wall
    print(f"{ticks} collector ticks in {wall:.1f} s at a {args.interval:g} s interval (primary: 1 statement a tick "
          f"and the percentiles every {primary.percentile_spacing_s:.1f} s — at least {PERCENTILE_EVERY_S:g} s, within "
          f"{PERCENTILE_BUDGET * 1000:g} ms/s; replica: 1)")
    print(f"statement time of our connections: primary {primary_ms / wall:.3f} ms/s, replica {replica_ms / wall:.3f} "
          f"ms/s, total {total_per_s:.3f} ms/s (target ≤ 3.5 ms/s); "
          f"{int(p1['n']) - int(p0['n']) + int(r1['n']) - int(r0['n'])} statements; load average {load0:.2f} → "
          f"{load1:.2f} (the server's timers count time it waited for a CPU too)")
    breakdown = {}
    print(f"{'server':8} {'statement':26} {'n':>6} {'ms/s':>7} {'share':>6} {'p50 ms':>7} {'p99 ms':>7} {'rows examined/stmt':>19}")
    for server, ledger in ledgers.items():
        for k in sorted(ledger.ps, key=lambda k: -ledger.ps[k]):
            each = sorted(ledger.each[k])
            ms_s = ledger.ps[k] / 1e9 / wall
            breakdown[f"{server}:{k}"] = {"n": ledger.n[k], "ms_per_s": round(ms_s, 4),
                                          "p50_ms": round(statistics.median(each), 3),
                                          "p99_ms": round(each[min(len(each) - 1, int(0.99 * len(each)))], 3),
                                          "rows_examined_per_stmt": round(ledger.examined[k] / ledger.n[k])}
            print(f"{server:8} {k:26} {ledger.n[k]:6d} {ms_s:7.3f} {ms_s / total_per_s:6.1%} "
                  f"{breakdown[f'{server}:{k}']['p50_ms']:7.3f} {breakdown[f'{server}:{k}']['p99_ms']:7.3f} "
                  f"{breakdown[f'{server}:{k}']['rows_examined_per_stmt']:19d}")
    print(json.dumps({
        "bench": "monitor_server_load", "seconds": round(wall, 1), "ticks": ticks, "interval_s": args.interval,
        "primary_ms_per_s": round(primary_ms / wall, 3), "replica_ms_per_s": round(replica_ms / wall, 3),
        "total_ms_per_s": round(total_per_s, 3),
        "percentile_spacing_s": round(primary.percentile_spacing_s, 1), "target_ms_per_s": 3.5, "ok": total_per_s <= 3.5,
        "loadavg_1m": [round(load0, 2), round(load1, 2)],
        "breakdown": breakdown,
    }))


if __name__ == "__main__":
    main()
