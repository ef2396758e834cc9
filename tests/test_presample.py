"""The baseline from the run's creation on (engine/flows/presample.py; docs/verdict.md): one
console samples the plan's sources into a scheduled run while the prechecks take their time; the
samples join the baseline; it stops by itself when the run leaves ``scheduled``."""

from __future__ import annotations

import pytest
from waits import wait_for

from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.target import Target
from engine.domain.clock import CompressedClock
from engine.drill.workload import Workload
from engine.flows.executor import Executor
from engine.flows.monitor import Monitor, sources_for
from engine.flows.presample import PreSampler

pytestmark = pytest.mark.mariadb


def test_samples_from_the_runs_creation_join_the_baseline_and_stop_when_the_run_starts(sandbox, lab):
    db = lab.database("presample")
    lab.load_orders(db, 3000)
    plan = lab.plan(db, "idx_presample", ["customer_id"], baseline_window_seconds=20, lease_seconds=600)
    store = lab.store("presample")
    clock = CompressedClock(600)
    backend = EmbeddedKillSwitch(store)
    ex = Executor(plan, store, backend, Target(plan.connection), "lead@test", "worker-a", clock=clock)
    run = ex.create_run()
    with Workload(sandbox.primary.profile(db), "SELECT id, total FROM orders WHERE customer_id = %s",
                  lambda r: (r.randint(0, 2999),), rate_per_s=40):
        sampler = PreSampler(plan, store, backend, run.id, "lead@test", clock, interval=5).start()
        assert wait_for(lambda: sampler.ticks >= 6, 20), sampler.error
        latency = [s for s in store.samples(plan.tenant, run.id) if s.metric == "latency_p50" and s.value is not None]
        assert latency, "the presampler stored no latency sample"
        store.transition(plan.tenant, run.id, "running", "lead@test")  # the execution starts
        assert wait_for(lambda: not sampler.running, 20), "the presampler did not stop when the run left scheduled"
        assert sampler.error is None  # its thread has ended: no tick can follow
    audit = [a.action for a in store.audit_entries(plan.tenant, run.id)]
    assert "baseline_sampling" in audit
    # every stored sample is before now: the window's evaluator takes them all as its baseline
    monitor = Monitor(store, plan.tenant, run.id, sources_for(plan, backend, clock), plan.profile(), "lead@test",
                      clock, interval=5)
    base = monitor.baselines(clock.now())
    assert len(base.get("latency_p50", [])) >= len(latency)
    monitor.close()


def test_a_run_that_is_not_scheduled_is_never_presampled(lab):
    db = lab.database("presample_done")
    lab.load_orders(db, 500)
    plan = lab.plan(db, "idx_presample_done", ["customer_id"], baseline_window_seconds=20, lease_seconds=600)
    store = lab.store("presample_done")
    backend = EmbeddedKillSwitch(store)
    run = Executor(plan, store, backend, Target(plan.connection), "lead@test", "worker-a").create_run()
    store.transition(plan.tenant, run.id, "running", "lead@test")
    sampler = PreSampler(plan, store, backend, run.id, "lead@test", interval=0.1).start()
    assert wait_for(lambda: not sampler.running, 10)
    assert sampler.ticks == 0 and store.samples(plan.tenant, run.id) == []
