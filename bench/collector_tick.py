"""One collector tick against the sandbox (primary + replica, with a workload): round trips and the
server's own time for them (target ≤ 6 round trips, ≤ 10 ms p99).

The server time is read from performance_schema for the collector's own threads
(events_statements_summary_by_thread_by_event_name), so it is the statements' time on the server,
not the network's. Prints its figures and ends with one JSON line.
    python bench/collector_tick.py [--ticks 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.adapters.collector_loop import CollectorLoop  # noqa: E402
from engine.adapters.collectors import MySQLSource  # noqa: E402
from engine.adapters.replica_source import ReplicaSource  # noqa: E402
from engine.drill.sandbox import MariaDBSandbox  # noqa: E402
from engine.drill.selftest import Lab  # noqa: E402
from engine.drill.workload import Workload  # noqa: E402

SERVER_TIME = """
SELECT COALESCE(SUM(s.SUM_TIMER_WAIT), 0) AS ps, COALESCE(SUM(s.COUNT_STAR), 0) AS n
FROM performance_schema.events_statements_summary_by_thread_by_event_name s
JOIN performance_schema.threads t ON t.THREAD_ID = s.THREAD_ID
WHERE t.PROCESSLIST_ID = %s
"""


def server_ps(conn, thread_id: int) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute(SERVER_TIME, (thread_id,))
        row = cur.fetchone()
        return int(row["ps"]), int(row["n"])


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    with MariaDBSandbox(replica=True) as sb:
        lab = Lab(sb, sb.base / "lab")  # removed with the sandbox
        db = lab.database("bench")
        lab.load_orders(db, args.rows)
        sb.wait_replica_caught_up(120)
        profile = sb.primary.profile(db)
        with Workload(profile, "SELECT id, total FROM orders WHERE customer_id = %s",
                      lambda r: (r.randint(0, 49_999),), rate_per_s=50), \
             Workload(profile, "UPDATE orders SET total = total + 0.01 WHERE id = %s",
                      lambda r: (r.randint(1, args.rows),), rate_per_s=20):
            primary, replica = MySQLSource(profile, db, "orders"), ReplicaSource(sb.replica.profile(db))
            loop = CollectorLoop([primary, replica])
            loop.tick()
            loop.tick()  # connections open, previous values in place
            admin_p, admin_r = sb.primary.connect(), sb.replica.connect()
            wall, server, trips = [], [], []
            for _ in range(args.ticks):
                p0, r0 = server_ps(admin_p, primary.session.thread_id), server_ps(admin_r, replica.session.thread_id)
                rt0 = primary.round_trips + replica.round_trips
                started = time.perf_counter()
                loop.tick()
                wall.append((time.perf_counter() - started) * 1000)
                p1, r1 = server_ps(admin_p, primary.session.thread_id), server_ps(admin_r, replica.session.thread_id)
                server.append(((p1[0] - p0[0]) + (r1[0] - r0[0])) / 1e9)
                trips.append(primary.round_trips + replica.round_trips - rt0)
                time.sleep(0.05)
            loop.stop()
    figures = {
        "ticks": args.ticks, "round_trips_per_tick": max(trips), "target_round_trips": 6,
        "server_ms_p50": round(pct(server, 0.5), 3), "server_ms_p99": round(pct(server, 0.99), 3),
        "wall_ms_p50": round(pct(wall, 0.5), 3), "wall_ms_p99": round(pct(wall, 0.99), 3), "target_p99_ms": 10,
    }
    print(f"collector tick: {figures['round_trips_per_tick']} round trips at most (primary: 1, "
          "+1 when the percentiles are due, +1 when a session waits for a metadata lock or a statement has run 1 s, +1 for max_connections each minute; "
          "replica: 1); server time "
          f"p50 {figures['server_ms_p50']} ms, p99 {figures['server_ms_p99']} ms; wall p50 {figures['wall_ms_p50']} ms, "
          f"p99 {figures['wall_ms_p99']} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
