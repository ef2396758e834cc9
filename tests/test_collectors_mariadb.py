"""Collectors against a real primary + replica with a real workload (docs/metrics.md): digests appear, the
new index lowers rows examined, injected lock waits and replication delay show up in the right
metric, and a failing source goes stale, is retried, and recovers."""

from __future__ import annotations

import threading
import time

import pytest
from waits import wait_for

from engine.adapters.collector_loop import CollectorLoop
from engine.adapters.collectors import MySQLSource, percentile_spacing, percentiles_from_buckets
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.killswitch_source import KillSwitchSource
from engine.adapters.replica_source import ReplicaSource, replica_lag
from engine.domain.clock import FrozenClock
from engine.drill.sandbox import MariaDBSandbox
from engine.drill.selftest import Lab
from engine.drill.workload import Workload

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def pair():
    with MariaDBSandbox(replica=True) as sb:
        lab = Lab(sb, sb.base / "lab")  # removed with the sandbox
        db = lab.database("mon")
        lab.load_orders(db, 60_000)
        sb.wait_replica_caught_up(60)
        yield sb, lab, db


def by_metric(samples):
    return {s.metric: s for s in samples}


def ticks(loop, n, gap=0.6):
    out = []
    for _ in range(n):
        out.append(by_metric(loop.tick()))
        time.sleep(gap)
    return out


def test_digests_percentiles_and_the_index_lowering_rows_examined(pair):
    sb, lab, db = pair
    profile = sb.primary.profile(db)
    source = MySQLSource(profile, db, "orders", percentile_every=0, percentile_budget=0)  # percentiles on every tick
    loop = CollectorLoop([source])
    with Workload(profile, "SELECT id, total FROM orders WHERE customer_id = %s",
                  lambda r: (r.randint(0, 49_999),), rate_per_s=40):
        before = ticks(loop, 3)[-1]
        with lab.admin(db) as c, c.cursor() as cur:
            cur.execute("ALTER TABLE orders ADD INDEX idx_mon_cust (customer_id), ALGORITHM=INPLACE, LOCK=NONE")
        ticks(loop, 1)
        after = ticks(loop, 2)[-1]
    assert before["digest_count"].value >= 10
    assert before["rows_examined_per_stmt"].value >= 50_000 and before["no_index_used"].value > 0
    assert after["rows_examined_per_stmt"].value < 100 and after["no_index_used"].value == 0
    p50, p99 = before["latency_p50"], before["latency_p99"]
    assert p50.value is not None and p99.value >= p50.value
    assert "history_long" in p50.how and str(p50.n) in p50.how
    assert after["latency_p50"].value < p50.value
    assert source.round_trips / loop.ticks <= 6
    with lab.admin(db) as c, c.cursor() as cur:
        cur.execute("ALTER TABLE orders DROP INDEX idx_mon_cust")
    source.close()


def test_percentiles_are_read_every_5_s_and_cover_every_statement_since_the_last_read(pair):
    """The history_long scan is most of the monitor's load on the server: at a 1 s interval it runs
    on one tick in five (at most: see the budget below), and that read takes in the statements of
    all five."""
    sb, lab, db = pair
    clock = FrozenClock()
    source = MySQLSource(sb.primary.profile(db), db, "orders", clock=clock, percentile_budget=0)
    seen, every = [], []
    with Workload(sb.primary.profile(db), "SELECT id FROM orders WHERE id = %s",
                  lambda r: (r.randint(1, 50_000),), rate_per_s=40):
        time.sleep(1)
        for _ in range(12):
            got = by_metric(source.collect())
            seen.append((got.get("latency_p99"), got.get("digest_count")))
            every.append(got)
            clock.advance(1.0)
            time.sleep(0.25)
    source.close()
    read_at = [i for i, (p99, _) in enumerate(seen) if p99 is not None]
    assert read_at == [5, 10], read_at  # tick 0 only marks where the first interval starts
    p99 = seen[10][0]
    statements = sum(d.n for _, d in seen[6:11])
    assert p99.value is not None and p99.n >= 0.8 * statements, (p99.n, statements)
    assert "in the last 5 s" in p99.how
    # One statement a tick, the percentiles on 3 of them, max_connections once (no lock waits here).
    assert source.round_trips == 12 + 3 + 1, source.round_trips
    # The gauges every tick; the status counters ride on the tick every 5 s (the first read only
    # marks where their deltas start), the buffer pool's hit rate over all the reads since the last.
    assert all(g["threads_running"].value >= 1 and g["connections"].value > 0 for g in every)
    assert [i for i, g in enumerate(every) if "row_lock_waits" in g] == [5, 10]
    assert [i for i, g in enumerate(every) if "buffer_pool_hit" in g] == [5, 10]
    assert every[10]["buffer_pool_hit"].n > every[6]["digest_count"].n  # the requests of five ticks


def test_the_consoles_own_statements_are_left_out_of_the_percentiles(pair):
    """A drill's fault (or the size gate's count) runs on the table too; tagged as the console's,
    its slow statements do not move the application's p99. The same statement untagged does."""
    sb, lab, db = pair
    clock = FrozenClock()
    source = MySQLSource(sb.primary.profile(db), db, "orders", clock=clock, percentile_budget=0)
    p99 = {}
    with Workload(sb.primary.profile(db), "SELECT id FROM orders WHERE id = %s",
                  lambda r: (r.randint(1, 50_000),), rate_per_s=40):
        source.collect()  # marks where the first interval starts
        for tag in ("/* canary-console:fault-test */", "/* app */"):
            with lab.admin(db) as c, c.cursor() as cur:
                for _ in range(4):
                    cur.execute(f"SELECT {tag} SLEEP(0.3) AS s, id FROM orders LIMIT 1")  # noqa: S608 - literals
                    cur.fetchall()
            clock.advance(5.0)
            p99[tag] = by_metric(source.collect())["latency_p99"]
    source.close()
    own, app = p99["/* canary-console:fault-test */"], p99["/* app */"]
    assert own.value is not None and own.value < 100, own  # ms
    assert app.value is not None and app.value >= 290, app


def test_the_percentile_scan_keeps_within_its_budget_of_server_time(pair):
    sb, lab, db = pair
    clock = FrozenClock()
    source = MySQLSource(sb.primary.profile(db), db, "orders", clock=clock, percentile_budget=0.001)
    for _ in range(3):
        source.collect()
        clock.advance(source.percentile_spacing_s)
    cost = source.percentile_cost_s
    source.close()
    assert cost is not None and cost > 0
    # A read costing c seconds waits c / 0.001 seconds for the next (5 to 15 s: the harm limit's
    # five minutes hold at least twenty intervals).
    assert source.percentile_spacing_s == pytest.approx(max(5.0, min(15.0, cost / 0.001)))
    assert percentile_spacing(5, 0.002, 0.001) == 5 and percentile_spacing(5, 0.012, 0.001) == 12
    assert percentile_spacing(5, 0.5, 0.001) == 15 and percentile_spacing(0, 0.015, 0) == 0


def test_an_injected_row_lock_wait_shows_in_lock_wait(pair):
    sb, lab, db = pair
    source = MySQLSource(sb.primary.profile(db), db, "orders")
    loop = CollectorLoop([source])
    assert by_metric(loop.tick())["lock_wait"].value == 0
    holder = lab.admin(db)
    with holder.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute("UPDATE orders SET total = total WHERE id = 1")
    waiter = lab.admin(db)

    def wait():
        with waiter.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 10")
            try:
                cur.execute("UPDATE orders SET total = total + 1 WHERE id = 1")
            except Exception:  # noqa: BLE001 - the holder's rollback ends the wait either way
                pass

    t = threading.Thread(target=wait, daemon=True)
    t.start()

    def waited_a_second():
        got = by_metric(loop.tick())
        return got if got["lock_wait"].value is not None and got["lock_wait"].value >= 1.0 else None

    seen = wait_for(waited_a_second, 10, 0.2) or by_metric(loop.tick())
    holder.rollback()
    t.join(10)
    holder.close()
    waiter.close()
    assert seen["lock_wait"].value >= 1.0 and seen["lock_wait"].n >= 1, seen["lock_wait"]
    # InnoDB's information_schema lock tables are a cache refreshed every 0.1 s
    assert wait_for(lambda: by_metric(loop.tick())["lock_wait"].value == 0, 5, 0.1)
    source.close()


def test_replication_delay_and_a_stopped_sql_thread_show_as_lag(pair):
    sb, lab, db = pair
    replica = ReplicaSource(sb.replica.profile(db))
    assert replica.collect()[0].value == 0
    with sb.replica.connect() as r, r.cursor() as cur:
        cur.execute("STOP SLAVE")
        cur.execute("CHANGE MASTER TO MASTER_DELAY = 30")
        cur.execute("START SLAVE")
    try:
        for i in range(4):
            with lab.admin(db) as c, c.cursor() as cur:
                cur.execute("UPDATE orders SET total = total + 1 WHERE id = %s", (i + 1,))
            time.sleep(0.8)
        lagged = replica.collect()[0]
        assert lagged.value >= 2 and "SQL_Delay 30" in lagged.how
    finally:
        with sb.replica.connect() as r, r.cursor() as cur:
            cur.execute("STOP SLAVE")
            cur.execute("CHANGE MASTER TO MASTER_DELAY = 0")
            cur.execute("START SLAVE")
    sb.wait_replica_caught_up(60)
    with sb.replica.connect() as r, r.cursor() as cur:
        cur.execute("STOP SLAVE SQL_THREAD")
    try:
        first = replica.collect()[0]
        time.sleep(1.5)
        second = replica.collect()[0]
        assert first.value is not None and second.value >= first.value + 1
        assert "lower bound" in second.how and "SQL thread is not running" in second.how
    finally:
        with sb.replica.connect() as r, r.cursor() as cur:
            cur.execute("START SLAVE SQL_THREAD")
    replica.close()


def test_a_failing_source_is_stale_then_retried_and_recovers(pair):
    sb, lab, db = pair
    with MariaDBSandbox() as other:  # a server we can stop under the collector
        with other.primary.connect() as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE m")
            cur.execute("CREATE TABLE m.orders (id INT PRIMARY KEY)")
        source = MySQLSource(other.primary.profile("m"), "m", "orders")
        loop = CollectorLoop([source], max_backoff=1.0)
        assert by_metric(loop.tick())["threads_running"].value >= 1
        port = other.primary.port
        other.primary.stop()
        down = by_metric(loop.tick())
        assert down["threads_running"].value is None and "connect" in down["threads_running"].error
        assert all(s.value is None for s in down.values()), "a down source never reports a value"
        retrying = by_metric(loop.tick())
        assert retrying["threads_running"].error.startswith("retrying")
        other.primary.port = port
        other.primary.start(other.server_bin)
        # the next try waits out the backoff (at most 1 s): tick until one reads the server again
        back = wait_for(lambda: (got := by_metric(loop.tick()))["threads_running"].value is not None and got,
                        10, 0.2) or by_metric(loop.tick())
        assert back["threads_running"].value >= 1 and loop.health["mysql"].failures == 0
        source.close()


def test_samples_are_stored_with_time_and_source(pair, tmp_path):
    from engine.adapters.store import Store

    sb, lab, db = pair
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    sources = [MySQLSource(sb.primary.profile(db), db, "orders"), ReplicaSource(sb.replica.profile(db)),
               KillSwitchSource(EmbeddedKillSwitch(store), "acme", "c")]
    loop = CollectorLoop(sources, interval=0.3, store=store, tenant_id="acme", run_id="run-1").start()
    wait_for(lambda: len({r.sampled_at for r in store.samples("acme", "run-1")}) >= 3, 10, 0.1)
    loop.stop()
    rows = store.samples("acme", "run-1")
    assert {r.source for r in rows} == {"mysql", "replica", "killswitch"}
    assert len({r.sampled_at for r in rows}) >= 3
    ks = [r for r in rows if r.metric == "killswitch_response"]
    assert ks and all(r.value is not None and r.value < 500 for r in ks)
    assert store.samples("other-tenant", "run-1") == []


def test_replica_status_is_read_by_column_name():
    assert replica_lag({"Slave_SQL_Running": "Yes", "Slave_IO_Running": "Yes", "Seconds_Behind_Master": 7})[0] == 7
    assert replica_lag({"Replica_SQL_Running": "Yes", "Replica_IO_Running": "Yes", "Seconds_Behind_Source": 3})[0] == 3
    lag, error, _ = replica_lag({"Slave_SQL_Running": "No", "Last_SQL_Error": "dup key", "Seconds_Behind_Master": None})
    assert lag is None and "dup key" in error
    assert replica_lag(None)[1].startswith("not a replica")


def test_percentiles_from_histogram_bucket_deltas():
    prev = {0: (1.0, 10), 1: (2.0, 20), 2: (5.0, 20)}
    cur = {0: (1.0, 10), 1: (2.0, 70), 2: (5.0, 120)}  # 50 new in ≤ 2 ms, 100 new in ≤ 5 ms
    (p50, p99), n = percentiles_from_buckets(prev, cur)
    assert n == 150 and p50 == 5.0 and p99 == 5.0
    (p50, _), _ = percentiles_from_buckets({}, {0: (1.0, 60), 1: (2.0, 40)})
    assert p50 == 1.0


def test_the_control_tenants_same_reads_give_the_control_series_at_the_same_moments(pair):
    """docs/verdict.md#the-control: the same query shape in another tenant's schema (not altered)
    is read in the same statement as the canary's; the index the canary gets speeds up the
    canary's reads only, so the canary moves and the control does not."""
    sb, lab, db = pair
    ctl = lab.database("mon_ctl")
    lab.load_orders(ctl, 20_000)
    profile = sb.primary.profile(db)
    source = MySQLSource(profile, db, "orders", percentile_every=0, percentile_budget=0, control_schemas=(ctl,))
    assert "control:latency_p50" in source.metrics
    loop = CollectorLoop([source])
    read = "SELECT id, total FROM orders WHERE customer_id = %s"
    with (Workload(profile, read, lambda r: (r.randint(0, 49_999),), rate_per_s=30),
          Workload(sb.primary.profile(ctl), read, lambda r: (r.randint(0, 49_999),), rate_per_s=30)):
        before = ticks(loop, 3)[-1]
        with lab.admin(db) as c, c.cursor() as cur:
            cur.execute("ALTER TABLE orders ADD INDEX idx_mon_ctl (customer_id), ALGORITHM=INPLACE, LOCK=NONE")
        ticks(loop, 1)
        after = ticks(loop, 2)[-1]
    with lab.admin(db) as c, c.cursor() as cur:
        cur.execute("ALTER TABLE orders DROP INDEX idx_mon_ctl")
    source.close()
    for tick in (before, after):
        c50, c99 = tick["control:latency_p50"], tick["control:latency_p99"]
        assert c50.value is not None and c99.value >= c50.value, c50
        assert c50.n and ctl in c50.how and "control" in c50.how
    assert before["latency_p50"].n and before["control:latency_p50"].n
    # the canary's reads got the index (a 60k-row scan → a lookup); the control's did not
    assert after["latency_p50"].value < before["latency_p50"].value / 3
    assert after["control:latency_p50"].value > after["latency_p50"].value * 3


def test_a_control_schema_without_the_canarys_statements_says_so():
    from engine.adapters.collectors import CONTROL

    source = MySQLSource.__new__(MySQLSource)
    source.control_schemas, source.name = ("quiet_tenant",), "mysql"
    empty = source._pair(CONTROL, [], "")
    assert [s.metric for s in empty] == ["control:latency_p50", "control:latency_p99"]
    assert all(s.value is None and "quiet_tenant" in s.error for s in empty)
