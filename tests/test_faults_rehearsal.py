"""Fault injection for the rehearsal (engine/drill/faults.py, fault_kinds.py) against a sandbox primary + replica with the
rehearsal's workload, measured by the real collectors on a running CollectorLoop: each fault moves
its metric into a warning or critical band (computed with engine.domain.thresholds as the dashboard does)
or clearly away from its calm value within two samples, and the metric recovers after stop."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import replace

import pytest

from engine.adapters import sql
from engine.adapters.collector_loop import CollectorLoop
from engine.adapters.collectors import MySQLSource, Sample
from engine.adapters.replica_source import ReplicaSource
from engine.adapters.store import Store
from engine.adapters.target import TargetError, TargetSession
from engine.domain.clock import utcnow
from engine.domain.identifiers import qualified
from engine.domain.plan import plan_from_dict
from engine.domain.thresholds import Profile, evaluate_band
from engine.drill.fault_base import FaultError, FaultTarget
from engine.drill.fault_kinds import (
    ErrorBurst,
    LatencyRegression,
    LockContention,
    LongTransaction,
    ReplicationLag,
)
from engine.drill.faults import FaultBox, FaultsRefused
from engine.drill.rehearsal import DB, TABLE, plan_data
from engine.drill.sandbox import MariaDBSandbox, SandboxUnavailable, load_orders
from engine.drill.workload import Workload

pytestmark = [pytest.mark.mariadb]
ROWS = 60_000
INTERVAL = 2.0  # the collectors' interval: two samples are at most 2 × this after a start
PROFILE = Profile()
HOT = ("warning", "critical")


class Dashboard:
    """A CollectorLoop on the primary and the replica, as the monitoring screen is fed."""

    def __init__(self, sb: MariaDBSandbox):
        # Percentiles every tick (the default reads them every 5 s, for the server's sake; the faults
        # here are judged on each tick's own samples).
        self.sources = [MySQLSource(sb.primary.profile(DB), DB, TABLE, percentile_every=0, percentile_budget=0),
                        ReplicaSource(sb.replica.profile(DB))]
        self.ticks: list[dict[str, Sample]] = []
        self._cond = threading.Condition()
        self.loop = CollectorLoop(self.sources, INTERVAL, on_tick=self._on_tick)
        self.baseline: dict[str, float] = {}

    def _on_tick(self, _at, samples) -> None:
        with self._cond:
            self.ticks.append({s.metric: s for s in samples})
            self._cond.notify_all()

    def next(self, n: int) -> list[dict[str, Sample]]:
        """The next ``n`` samples from now."""
        with self._cond:
            first = len(self.ticks)
            assert self._cond.wait_for(lambda: len(self.ticks) >= first + n, timeout=n * INTERVAL + 30)
            return self.ticks[first:first + n]

    def band(self, tick: dict[str, Sample], metric: str):
        """The tile's band before the window: the latest sample against the baseline's median."""
        rule = PROFILE.rule(metric)
        s = tick.get(metric)
        return evaluate_band(rule, s.value if s else None,
                             self.baseline.get(metric) if rule.mode == "change_pct" else None, s.error if s else None)


def statement_error_rate(tick: dict[str, Sample]) -> float | None:
    """errors / statements on the table × 100 — the report's statement error rate (no Prometheus
    in a rehearsal), judged against the error-rate rule."""
    count, errors = tick.get("digest_count"), tick.get("digest_errors")
    if count is None or not count.value:
        return None
    return 100.0 * (errors.value if errors and errors.value else 0.0) / count.value


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    try:
        sb = MariaDBSandbox(replica=True).start()
    except SandboxUnavailable as exc:
        pytest.fail(f"the sandbox MariaDB cannot start: {exc}")
    try:
        load_orders(sb.primary, DB, ROWS, table=TABLE)
        sb.wait_replica_caught_up(60)
        profile = sb.primary.profile(DB)
        t = qualified(DB, TABLE)
        # The rehearsal's own statements (engine/drill/rehearsal.py): reads by customer, writes by id. There
        # a read scans a million rows and the reads fall behind their 20/s, so most statements are
        # writes and p50 is a write's latency; 10 reads a second keep that mix on this small table.
        reads = Workload(profile, f"SELECT /* rehearsal-read */ id, total FROM {t} WHERE customer_id = %s "  # noqa: S608
                         "AND created_at >= %s ORDER BY created_at LIMIT 20",
                         lambda r: (r.randint(0, 49_999), "2026-03-01"), rate_per_s=10, name="rehearsal-reads")
        writes = Workload(profile, f"UPDATE /* rehearsal-write */ {t} SET total = total + 0.01 WHERE id = %s",  # noqa: S608
                          lambda r: (r.randint(1, ROWS),), rate_per_s=20, name="rehearsal-writes")
        with reads, writes:
            dash = Dashboard(sb)
            dash.loop.start()
            try:
                calm = dash.next(4)[1:]  # the first read only sets where the percentiles start
                for metric in ("latency_p50", "latency_p99"):
                    values = [t[metric].value for t in calm if t.get(metric) and t[metric].value is not None]
                    assert values, f"no calm {metric}"
                    dash.baseline[metric] = statistics.median(values)
                yield sb, dash, FaultTarget.of_sandbox(sb, DB, TABLE), tmp_path_factory.mktemp("faults")
            finally:
                dash.loop.stop()
    finally:
        sb.stop()


def test_lock_contention_puts_lock_wait_in_its_warning_band(drill):
    sb, dash, target, _ = drill
    fault = LockContention(target)
    started = time.monotonic()
    assert fault.start() and not fault.start(), "start is idempotent"
    try:
        hot = dash.next(2)
        waits = [t["lock_wait"].value for t in hot]
        assert dash.band(hot[-1], "lock_wait").level in HOT, waits
        assert hot[-1]["lock_wait"].n >= 1
        shown_after = time.monotonic() - started
    finally:
        assert fault.stop() and not fault.stop(), "stop is idempotent"
    assert not fault.thread_ids and not fault.active
    calm = dash.next(2)
    assert dash.band(calm[-1], "lock_wait").level == "ok", calm[-1]["lock_wait"]
    print(f"lock_wait {waits} within {shown_after:.1f} s; after stop {calm[-1]['lock_wait'].value}")


def test_replication_lag_shows_at_once_and_recovers(drill):
    sb, dash, target, _ = drill
    fault = ReplicationLag(target)
    fault.start()
    try:
        hot = dash.next(2)
        lag = [t["replication_lag"] for t in hot]
        assert all(s.value is not None and s.meta.get("sql_running") == "No" for s in lag), lag
        assert "lower bound" in lag[-1].how
        assert lag[-1].value >= 0.75 * INTERVAL, "the lower bound grows with the clock"
    finally:
        fault.stop()
    calm = dash.next(2)
    assert calm[-1]["replication_lag"].meta.get("sql_running") == "Yes"
    assert dash.band(calm[-1], "replication_lag").level == "ok", calm[-1]["replication_lag"]
    print(f"replication_lag {[s.value for s in lag]}; after stop {calm[-1]['replication_lag'].value}")


def test_replication_lag_by_master_delay(drill):
    sb, dash, target, _ = drill
    fault = ReplicationLag(target, delay_s=120)
    fault.start()
    try:
        hot = dash.next(2)
        lag = hot[-1]["replication_lag"]
        assert lag.value is not None and lag.value >= 0.75 * INTERVAL and "SQL_Delay 120" in lag.how, lag
    finally:
        fault.stop()
    calm = dash.next(2)
    assert not calm[-1]["replication_lag"].meta.get("sql_delay")
    assert dash.band(calm[-1], "replication_lag").level == "ok", calm[-1]["replication_lag"]


def test_latency_regression_raises_the_workload_percentiles(drill):
    sb, dash, target, _ = drill
    pool_sql = "SELECT @@GLOBAL.innodb_buffer_pool_size AS pool"
    with TargetSession(target.primary, "check") as s:
        pool = s.query(pool_sql)[0]["pool"]
    fault = LatencyRegression(target)
    fault.MIN_POOL_BYTES = 4 << 20  # this table (~5 MB) is larger than that: the pool shrinks to it
    fault.start()
    try:
        with TargetSession(target.primary, "check") as s:
            shrunk = s.query(pool_sql)[0]["pool"]  # 4 MB, or the server's own granularity above it
        assert 4 << 20 <= shrunk < pool and f"{pool >> 20} MB → {shrunk >> 20} MB" in fault.note, fault.note
        hot = dash.next(2)
    finally:
        fault.stop()
    with TargetSession(target.primary, "check") as s:  # the buffer pool is put back
        assert s.query(pool_sql) == [{"pool": pool}]
    bands = {m: dash.band(hot[-1], m) for m in ("latency_p50", "latency_p99")}
    assert bands["latency_p50"].level in HOT and bands["latency_p99"].level in HOT, (dash.baseline, bands)
    calm = dash.next(2)
    p50, p99 = (calm[-1][m].value for m in ("latency_p50", "latency_p99"))
    halfway = (dash.baseline["latency_p50"] + hot[-1]["latency_p50"].value) / 2
    assert p50 < halfway and p99 < hot[-1]["latency_p99"].value, (dash.baseline, p50, p99)
    with TargetSession(target.primary, "check") as s:  # the commit settings are put back
        assert s.query("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit AS f, @@GLOBAL.sync_binlog AS s") == [
            {"f": 2, "s": 0}]
    print(f"p50 base {dash.baseline['latency_p50']:.1f} ms → {hot[-1]['latency_p50'].value:.1f} "
          f"({bands['latency_p50'].measure:+.0f} %), p99 {bands['latency_p99'].measure:+.0f} %; "
          f"after stop {p50:.1f} / {p99:.1f} ms")


def test_error_burst_puts_the_statement_error_rate_past_critical(drill):
    sb, dash, target, _ = drill
    fault = ErrorBurst(target)
    fault.start()
    try:
        hot = dash.next(2)
    finally:
        fault.stop()
    assert fault.failed > 0 and fault.failed == fault.sent, "every statement of the burst fails"
    rate = statement_error_rate(hot[-1])
    assert hot[-1]["digest_errors"].value > 0
    assert evaluate_band(PROFILE.rule("error_rate"), rate).level == "critical", rate
    calm = dash.next(2)
    assert statement_error_rate(calm[-1]) == 0.0, calm[-1].get("digest_errors")
    with TargetSession(target.primary, "check") as s:
        assert s.query(f"SELECT COUNT(*) AS n FROM {qualified(DB, TABLE)}")[0]["n"] == ROWS, "nothing inserted"  # noqa: S608


def test_long_transaction_blocks_the_alter_metadata_lock(drill):
    sb, dash, target, _ = drill
    fault = LongTransaction(target)
    index = "idx_fault_mdl"
    alter = sql.add_index(DB, TABLE, index, [("status", None)], "0" * 8 + "-0000-0000-0000-" + "0" * 12)
    fault.start()
    try:
        with TargetSession(target.primary, "guard") as s:
            holders = {h["thread_id"] for h in s.metadata_locks(DB, TABLE).holders}
            assert fault.thread_id in holders, "the execution screen's metadata-lock guard sees it"
            # What the executor names when its ALTER gives up (INNODB_TRX is refreshed every 0.1 s).
            deadline = time.monotonic() + 3
            while fault.thread_id not in {t["thread_id"] for t in s.long_transactions_on_table(DB, TABLE, 0)}:
                assert time.monotonic() < deadline, "the long transaction is not in INNODB_TRX"
                time.sleep(0.1)
        with TargetSession(target.primary, "alter-short") as s:  # the executor's lock_wait_timeout
            s.execute(sql.SET_LOCK_WAIT_TIMEOUT, (1,))
            with pytest.raises(TargetError) as refused:
                s.execute(alter)
            assert refused.value.kind == "lock_wait_timeout"
        outcome: dict[str, object] = {}

        def queued_alter() -> None:
            with TargetSession(target.primary, "alter", read_timeout=60) as s:
                s.execute(sql.SET_LOCK_WAIT_TIMEOUT, (30,))
                try:
                    s.execute(alter)
                    outcome["done"] = True
                except TargetError as exc:
                    outcome["error"] = exc

        waiter = threading.Thread(target=queued_alter)
        waiter.start()
        hot = dash.next(2)
        assert hot[-1]["mdl_waiters"].value >= 1, hot[-1]["mdl_waiters"]
        assert dash.band(hot[-1], "lock_wait").level in HOT, hot[-1]["lock_wait"]
    finally:
        fault.stop()
    waiter.join(30)
    assert outcome == {"done": True}, "the queued ALTER goes through once the transaction ends"
    calm = dash.next(2)
    assert calm[-1]["mdl_waiters"].value == 0 and dash.band(calm[-1], "lock_wait").level == "ok"
    with TargetSession(target.primary, "cleanup") as s:
        s.execute(sql.drop_index(DB, TABLE, index))


def test_fault_box_refuses_outside_a_rehearsal(drill):
    sb, dash, target, tmp = drill
    store = Store(f"sqlite:///{tmp / 'refused.db'}")
    with pytest.raises(FaultsRefused, match="only in a rehearsal"):
        FaultBox(target, rehearsal=False, store=store, tenant_id="acme", actor="lead@test")
    [entry] = store.audit_entries("acme", None, "fault_injection_refused")
    assert entry.actor == "lead@test"
    data = plan_data(sb, f"sqlite:///{tmp / 'plan.db'}", "lead")
    real_plan = plan_from_dict({**data, "rehearsal": False})
    with pytest.raises(FaultsRefused):
        FaultBox.from_plan(real_plan, store, actor="lead@test")
    with pytest.raises(FaultsRefused):
        FaultBox(target, rehearsal="yes", store=None)  # type: ignore[arg-type]  # only True opens it


def test_fault_box_audits_and_stops_everything_on_close(drill):
    sb, dash, target, tmp = drill
    store = Store(f"sqlite:///{tmp / 'box.db'}")
    plan = plan_from_dict(plan_data(sb, f"sqlite:///{tmp / 'plan.db'}", "lead"))
    assert plan.rehearsal
    box = FaultBox.from_plan(plan, store, run_id=None, actor="lead@test")
    assert [(f.key, f.name) for f in box.faults] == [
        ("l", "Lock contention"), ("L", "Lock contention, severe"), ("g", "Replication lag"),
        ("s", "Latency regression"),
        ("e", "Error burst"), ("m", "Long transaction (MDL)")]
    assert all(f.description and f.shows for f in box.faults)
    before = utcnow()
    assert box.start("e") and box.toggle("m") and not box.start("e")
    assert [(a.key, a.name) for a in box.active()] == [("e", "Error burst"), ("m", "Long transaction (MDL)")]
    assert all(a.since >= before for a in box.active())
    with pytest.raises(FaultError, match="no fault on key"):
        box.start("z")
    box.close()
    box.close()  # idempotent
    assert box.active() == []
    with pytest.raises(FaultError, match="closed"):
        box.start("l")
    started = store.audit_entries(plan.tenant, None, "fault_started")
    stopped = store.audit_entries(plan.tenant, None, "fault_stopped")
    assert sorted(e.details["key"] for e in started) == ["e", "m"]
    assert sorted(e.details["key"] for e in stopped) == ["e", "m"]
    assert all("password" not in str(e.details).lower() for e in started + stopped)
    assert not fault_sessions(target), "the faults closed every connection they opened"


def fault_sessions(target, wait_s: float = 5.0) -> list[int]:
    """Connections the faults opened that are still there (a closed one may take a moment to go)."""
    deadline = time.monotonic() + wait_s
    with TargetSession(replace(target.primary, database=""), "check") as s:
        while True:
            ids = [int(r["id"]) for r in s.query(
                "SELECT PROCESSLIST_ID AS id FROM performance_schema.session_connect_attrs "
                "WHERE ATTR_NAME = 'program_name' AND ATTR_VALUE LIKE %s", ("canary-console:fault%",))]
            if not ids or time.monotonic() > deadline:
                return ids
            time.sleep(0.1)


def test_a_fault_that_cannot_start_leaves_nothing_open(drill):
    sb, dash, target, _ = drill
    with pytest.raises(FaultError, match="needs the plan's replica"):
        ReplicationLag(replace(target, replica=None))
    missing = replace(target, table="no_such_table")
    for fault in (LockContention(missing), LongTransaction(missing)):
        with pytest.raises(FaultError):
            fault.start()
        assert not fault.active


def test_a_start_the_store_cannot_audit_is_undone(drill):
    sb, dash, target, _ = drill

    class StoreDown:
        def audit(self, *args, **kwargs):
            raise RuntimeError("the store is not reachable")

    box = FaultBox(target, rehearsal=True, store=StoreDown(), tenant_id="acme", actor="lead@test")
    with pytest.raises(RuntimeError, match="not reachable"):
        box.start("m")
    assert box.active() == [] and box.fault("m").thread_id is None
    box.close()  # and closing with the store down does not raise
