"""A console that joined a run follows the next one: once the run it shows has ended and the team
begins another (on another console), it shows the new run — it stayed on the old FAIL for good."""

from __future__ import annotations

import uuid

from waits import until

from console.app import CanaryApp
from engine.adapters.identity import Identity
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import ExecutionRun, Store
from engine.domain.clock import FrozenClock, utcnow
from engine.domain.plan import plan_from_dict

PLAN = plan_from_dict({
    "tenant": "acme",
    "connection": {"id": "c1", "host": "127.0.0.1", "port": 9, "user": "canary", "database": "shop"},
    "change": {"table": "orders", "index": "idx_a", "columns": ["customer_id"]},
    "people": [{"name": "Nok", "roles": ["sre"], "unix_user": "nok"}],
})


def new_run(store: Store) -> ExecutionRun:
    return store.create_run(ExecutionRun(
        id=str(uuid.uuid4()), tenant_id="acme", connection_profile_id="c1", schema_name="shop", table_name="orders",
        index_name="idx_a", columns=[["customer_id", None]]), "lead@jump")


async def test_a_joined_console_follows_the_run_begun_after_the_one_it_showed(tmp_path):
    clock = FrozenClock(utcnow().replace(microsecond=0))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=clock)
    first = new_run(store)
    store.transition("acme", first.id, "failed", "lead@jump", fail_reason="harm_limit")
    app = CanaryApp(PLAN, store, Identity("nok", "10.0.0.7", "jump"), clock, EmbeddedKillSwitch(store))
    async with app.run_test(size=(100, 30)) as pilot:
        assert await until(pilot, lambda: app.view.run is not None and app.view.run.id == first.id)
        second = new_run(store)
        assert await until(pilot, lambda: app.run_id == second.id), "the new run is followed"
        assert await until(pilot, lambda: app.frame.run.startswith(f"run {second.id[:8]}"))
        assert await until(pilot, lambda: any(n.title == "A new run" for n in app._notifications))
