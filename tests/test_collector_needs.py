"""A target as production has it (docs/monitoring-sources.md): MariaDB with performance_schema OFF
(its default) and a least-privilege monitoring user. The prechecks check what the collectors need
and name the fix; a collector that cannot read a source says so in words; no canary starts
without a latency source unless the plan names Prometheus for it."""

from __future__ import annotations

import dataclasses

import pytest

from engine.adapters import collector_needs
from engine.adapters.collector_loop import CollectorLoop
from engine.adapters.collectors import MySQLSource
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.replica_source import ReplicaSource
from engine.adapters.target import Target
from engine.drill.sandbox import MariaDBSandbox
from engine.drill.selftest import Lab
from engine.flows import prechecks
from engine.flows.executor import Executor
from engine.flows.monitor import Monitor, sources_for

pytestmark = [pytest.mark.mariadb]
PASSWORD_ENV = "CC_TEST_MONITOR_PASSWORD"


@pytest.fixture(scope="module")
def ps_off(tmp_path_factory):
    """A primary and replica started the way MariaDB ships: performance_schema=OFF."""
    with MariaDBSandbox(replica=True, performance_schema=False) as sb:
        lab = Lab(sb, tmp_path_factory.mktemp("ps-off"))
        db = lab.database("shop")
        lab.load_orders(db, 3000)
        yield sb, lab, db


def _findings(plan, store):
    return {f.check_id: f for f in prechecks.auto_checks(plan, store, EmbeddedKillSwitch(store), Target(plan.connection))}


def test_performance_schema_off_is_named_with_its_fix(ps_off):
    sb, lab, db = ps_off
    plan = lab.plan(db, "idx_ps", ["customer_id"])
    found = _findings(plan, lab.store("ps-off-checks"))
    ps = found["mon.performance_schema"]
    assert ps.status == "fail"
    assert "performance_schema=ON" in ps.detail and "[mysqld]" in ps.detail and "restart" in ps.detail
    latency = found["mon.latency_source"]
    assert latency.status == "fail" and "no latency source" in latency.detail
    assert prechecks.BY_ID["mon.latency_source"].blocking


def test_collector_on_performance_schema_off_says_so_in_words(ps_off):
    sb, lab, db = ps_off
    loop = CollectorLoop([MySQLSource(sb.primary.profile(db), db, "orders")])
    samples = loop.tick()
    errors = {s.error for s in samples}
    assert all(s.value is None for s in samples)
    assert not any("IndexError" in (e or "") or "list index" in (e or "") for e in errors), errors
    assert any("performance_schema is OFF" in (e or "") and "performance_schema=ON" in (e or "") for e in errors)
    loop.stop()


def test_no_canary_starts_without_a_latency_source(ps_off):
    sb, lab, db = ps_off
    plan = lab.plan(db, "idx_nolat", ["customer_id"], baseline_window_seconds=5)
    store = lab.store("ps-off-exec")
    backend = EmbeddedKillSwitch(store)
    ex = Executor(plan, store, backend, Target(plan.connection), "lead@test", "worker-a")
    run = ex.create_run()
    ex.monitor = Monitor(store, plan.tenant, run.id, sources_for(plan, backend), plan.profile(), "lead@test",
                         interval=1)
    try:
        out = ex.execute(run.id)
    finally:
        ex.monitor.close()
    assert out.status == "failed" and out.fail_reason == "execution_error"
    assert "no latency source" in out.message and "performance_schema=ON" in out.message
    assert store.samples(plan.tenant, run.id) == []  # no baseline, no window: nothing sampled
    assert not lab.index_exists(plan)


def test_prometheus_latency_queries_are_another_latency_source():
    facts = collector_needs.CollectorFacts("mariadb", "'mon'@'%'", False, None)
    from engine.domain.plan import plan_from_dict

    base = {"tenant": "t", "connection": {"id": "c", "host": "h", "user": "mon", "database": "shop"},
            "change": {"table": "orders", "index": "idx", "columns": ["a"]}}
    plan = plan_from_dict(base)
    assert "performance_schema=ON" in (collector_needs.latency_problem(facts, plan) or "")
    prom = plan_from_dict(base | {"integrations": {"prometheus_url": "http://prom:9090"},
                                  "prometheus_queries": {"latency_p50": "x", "latency_p99": "y"}})
    assert collector_needs.latency_problem(facts, prom) is None
    by_id = {f.check_id: f for f in collector_needs.findings(facts, prom)}
    assert by_id["mon.latency_source"].status == "pass" and "Prometheus" in by_id["mon.latency_source"].detail
    assert by_id["mon.performance_schema"].status == "warn"


def test_least_privilege_user_gets_the_exact_grants(sandbox, lab, monkeypatch):
    db = lab.database("leastpriv")
    lab.load_orders(db, 2000)
    sandbox.primary.create_user("cc_mon", "pw-mon", (f"SELECT ON `{db}`.*",))
    monkeypatch.setenv(PASSWORD_ENV, "pw-mon")
    plan = lab.plan(db, "idx_lp", ["customer_id"])
    plan = dataclasses.replace(plan, connection=dataclasses.replace(plan.connection, user="cc_mon",
                                                                       password_env=PASSWORD_ENV))
    found = _findings(plan, lab.store("least-priv"))
    priv = found["mon.privileges"]
    assert priv.status == "fail"
    assert "GRANT SELECT ON performance_schema.* TO 'cc_mon'@'127.0.0.1';" in priv.detail
    assert "GRANT PROCESS ON *.* TO 'cc_mon'@'127.0.0.1';" in priv.detail
    assert found["mon.latency_source"].status == "fail"
    samples = CollectorLoop([MySQLSource(plan.connection, db, "orders")]).tick()
    errors = {s.error for s in samples}
    assert any("GRANT SELECT ON performance_schema.* TO 'cc_mon'@'127.0.0.1';" in (e or "") for e in errors), errors
    assert not any((e or "").startswith("TargetError") for e in errors)

    # SELECT on performance_schema but no PROCESS: still named, and only that grant.
    sandbox.primary.create_user("cc_mon", "pw-mon", (f"SELECT ON `{db}`.*", "SELECT ON performance_schema.*"))
    found = _findings(plan, lab.store("least-priv-2"))
    priv = found["mon.privileges"]
    assert priv.status == "fail" and "GRANT PROCESS ON *.*" in priv.detail and "GRANT SELECT" not in priv.detail
    assert found["mon.latency_source"].status == "pass"
    assert found["mon.performance_schema"].status == "pass" and found["mon.consumers"].status == "pass"


def test_replica_without_monitor_privilege_names_the_grant(ps_off, monkeypatch):
    sb, lab, db = ps_off
    sb.replica.create_user("cc_rmon", "pw-r", (f"SELECT ON `{db}`.*",))
    monkeypatch.setenv(PASSWORD_ENV, "pw-r")
    profile = sb.replica.profile(db, user="cc_rmon", password_env=PASSWORD_ENV)
    finding = collector_needs.replica_finding(profile)
    assert finding.status == "fail" and "GRANT SLAVE MONITOR ON *.* TO 'cc_rmon'@'127.0.0.1';" in finding.detail
    sample = CollectorLoop([ReplicaSource(profile)]).tick()[0]
    assert sample.value is None and "GRANT SLAVE MONITOR" in sample.error and "TargetError" not in sample.error
    assert collector_needs.replica_finding(sb.replica.profile(db)).status == "pass"


def test_a_collector_that_breaks_says_so_in_words():
    class Broken:
        name, metrics = "mysql", ("latency_p50",)

        def collect(self):
            return [][0]

        def close(self):
            pass

    [sample] = CollectorLoop([Broken()]).tick()
    assert sample.value is None and sample.error.startswith("the mysql collector failed unexpectedly")
    assert not sample.error.startswith("IndexError")


@pytest.mark.slow
def test_the_headless_drill_on_performance_schema_off_stops_at_the_prechecks_with_the_fix(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path), PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-m", "console.cli", "rehearse", "--rows", "5000", "--speed", "120",
                           "--skip-self-test", "--headless", "--performance-schema-off"], capture_output=True,
                          text=True, cwd=root, env=env, timeout=600)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "BLOCKED: A latency source: no latency source: performance_schema is OFF" in out
    assert "performance_schema=ON" in out and "alter_started" not in out and "Traceback" not in done.stderr
