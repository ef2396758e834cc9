"""Faults during the monitoring window, with real processes (issue 7): the target's connection cut
by the network, and the replica's server killed. Each source goes stale with its error, comes back
on its own, and the outage never fails the run: a missing sample is not a bad one (docs/thresholds.md, docs/product.md#what-bad-input-gets).

The window is the real ``Monitor.window`` on a real primary + replica with a workload, on a clock
compressed 120× and a window shortened to 20 minutes for the test (a plan cannot shorten it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from netfault import FaultyProxy
from waits import wait_for

from engine.adapters.collectors import MySQLSource
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.replica_source import ReplicaSource
from engine.adapters.target import Target
from engine.domain.clock import CompressedClock
from engine.domain.thresholds import profile_from_overrides
from engine.drill.sandbox import MariaDBSandbox
from engine.drill.selftest import Lab
from engine.drill.workload import Workload
from engine.flows.executor import Executor
from engine.flows.monitor import Monitor

pytestmark = [pytest.mark.long, pytest.mark.mariadb]
SPEED = 120.0
# Latency is not what these tests are about, and a loaded CI machine moves a sub-millisecond
# SELECT's latency by half of itself: its lines are set far away, so only the outage is judged.
LOOSE = {k: {"note": 900.0, "warning": 1000.0, "critical": 5000.0, "pass_below": 1000.0}
         for k in ("latency_p50", "latency_p99")}
PROFILE = replace(profile_from_overrides(LOOSE), window_minutes=20.0, checkpoints=(15, 25, 35))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with MariaDBSandbox(replica=True) as sb:
        lab = Lab(sb, tmp_path_factory.mktemp("faultmon"))
        db = lab.database("shop")
        lab.load_orders(db, 30_000)
        sb.wait_replica_caught_up(60)
        reads = Workload(sb.primary.profile(db), "SELECT id, total FROM orders WHERE customer_id = %s LIMIT 20",
                         lambda r: (r.randint(0, 49_999),), rate_per_s=40, name="faultmon-reads")
        writes = Workload(sb.primary.profile(db), "UPDATE orders SET total = total + 0.01 WHERE id = %s",
                          lambda r: (r.randint(1, 30_000),), rate_per_s=10, name="faultmon-writes")
        with reads, writes:
            yield sb, lab, db


def _window(lab, db, name, sources, during):
    """A run's baseline then window with ``sources``; ``during(ticks)`` runs beside the window (it
    is handed a function that says how many window ticks are stored)."""
    plan = lab.plan(db, f"idx_{name}", ["customer_id"])
    store = lab.store(name)
    run = Executor(plan, store, EmbeddedKillSwitch(store), Target(plan.connection), "test", "w").create_run()
    clock = CompressedClock(SPEED)
    monitor = Monitor(store, plan.tenant, run.id, sources, PROFILE, "test", clock, interval=20.0)
    monitor.baseline(600)
    alter_at = clock.now()

    def ticks() -> int:
        return len({r.sampled_at for r in store.samples(plan.tenant, run.id) if r.sampled_at >= alter_at})

    side = threading.Thread(target=during, args=(ticks,), daemon=True)
    side.start()
    result = monitor.window(alter_at, True)
    side.join(30)
    monitor.close()
    return result, store.samples(plan.tenant, run.id), alter_at


def wait_ticks(ticks, n, timeout=30.0):
    assert wait_for(lambda: ticks() >= n, timeout, 0.05), f"only {ticks()} ticks"


def test_the_targets_connection_cut_mid_window_is_stale_then_back_and_never_fails_the_run(pair):
    sb, lab, db = pair
    proxy = FaultyProxy(sb.primary.port)  # the monitor reaches the primary through a network we can cut
    outage: dict[str, int] = {}

    def cut(ticks):
        wait_ticks(ticks, 12)
        proxy.go_down()
        outage["from"] = ticks()
        time.sleep(2.0)  # ≈ 4 compressed minutes, a dozen ticks
        outage["to"] = ticks()
        proxy.come_back()

    source = MySQLSource(replace(sb.primary.profile(db), port=proxy.port), db, "orders")
    try:
        result, samples, start = _window(lab, db, "netcut", [source], cut)
    finally:
        proxy.close()
    assert outage["to"] - outage["from"] >= 3, outage
    window = [s for s in samples if s.sampled_at >= start and s.metric == "threads_running"]
    stale = [s for s in window if s.value is None]
    assert len(stale) >= 3 and all(s.error for s in stale), "the outage is stale, with the source's error"
    assert window[-1].value is not None, "the source came back on its own"
    assert result.verdict.verdict != "FAIL", result.verdict.reasons
    assert not result.stopped_early and not result.state.alerts


def test_the_replica_killed_mid_window_is_stale_then_back_and_never_fails_the_run(pair):
    sb, lab, db = pair
    clock = CompressedClock(SPEED)

    def kill_replica(ticks):
        wait_ticks(ticks, 12)
        sb.replica.kill()
        time.sleep(1.5)
        sb.replica.start(sb.server_bin)  # it reconnects to the primary from its own settings

    source = ReplicaSource(sb.replica.profile(db), clock)
    result, samples, start = _window(lab, db, "replicadown", [source], kill_replica)
    lag = [s for s in samples if s.sampled_at >= start and s.metric == "replication_lag"]
    stale = [s for s in lag if s.value is None]
    assert stale and all(s.error for s in stale), "the replica's outage is stale, with its error"
    assert lag[-1].value is not None, "the lag is read again once the replica is back"
    assert result.verdict.verdict != "FAIL", result.verdict.reasons
    assert not result.stopped_early and not result.state.alerts
    sb.wait_replica_caught_up(60)
