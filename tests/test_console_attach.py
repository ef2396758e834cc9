"""Which run a console shows when it opens (a restart after a crash included): the open run; else
the plan's latest run if it ended in the last twelve hours (its verdict, the team's decision, the
report); else none — the runbook begins anew."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_console_flow import make_app, make_plan
from waits import until

from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import Store
from engine.adapters.target import Target
from engine.domain.clock import FrozenClock, utcnow
from engine.flows.executor import Executor

pytestmark = [pytest.mark.mariadb]


@pytest.fixture(scope="module")
def attach_db(lab):
    db = lab.database("cc_attach")
    lab.load_orders(db, 2_000)
    return db


def _ended_run(lab, db, tmp_path, clock):
    plan = make_plan(lab, db, "idx_attach")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=clock)
    run = Executor(plan, store, EmbeddedKillSwitch(store), Target(plan.connection), "lead@10.0.0.5", "w",
                   clock=clock).create_run()
    store.transition(plan.tenant, run.id, "running", "lead@10.0.0.5")
    store.transition(plan.tenant, run.id, "completed", "lead@10.0.0.5", message="INCONCLUSIVE: too few samples")
    return plan, store, run


async def test_a_console_opened_after_the_verdict_shows_that_run(lab, attach_db, tmp_path):
    clock = FrozenClock(utcnow().replace(microsecond=0))
    plan, store, run = _ended_run(lab, attach_db, tmp_path, clock)
    clock.advance(3600)
    app = make_app(plan, store, clock=clock)
    async with app.run_test(size=(160, 50)) as pilot:
        assert await until(pilot, lambda: app.view.run is not None)
        assert app.view.run.id == run.id and app.view.run.status == "completed"


async def test_a_run_that_ended_long_ago_is_history(lab, attach_db, tmp_path):
    clock = FrozenClock(utcnow().replace(microsecond=0))
    plan, store, _run = _ended_run(lab, attach_db, tmp_path, clock)
    clock.advance(timedelta(hours=13).total_seconds())
    app = make_app(plan, store, clock=clock)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(1.0)
        assert app.view.run is None, "the runbook begins anew"
