"""The run's T+ clock on every screen (docs/runbook.md): T+0 is the run's start (runbook step 1) until the
monitoring window opens, and from then on the window starts at T+15, where the runbook, the
checkpoints and the dashboard's axis put it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.adapters.store import ExecutionRun, Store
from engine.domain.clock import FrozenClock
from engine.flows.runbook import RunView, clock_origin, load_view
from screens.frame import FrameState

T0 = datetime(2026, 11, 23, 4, 0, 0, tzinfo=UTC)


def run(**fields) -> ExecutionRun:
    return ExecutionRun(id="1a2b3c4d-0000-4000-8000-00000000c10c", tenant_id="acme",
                        connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
                        index_name="idx_orders_customer", columns=[["customer_id", None]], **fields)


def shown(view: RunView, now: datetime) -> str:
    return FrameState(t0=clock_origin(view, 15), now=now).clock


def test_before_the_window_the_clock_counts_from_the_runs_start():
    view = RunView(run=run(started_at=T0))
    assert shown(view, T0 + timedelta(minutes=8, seconds=14)) == "T+08:14"
    assert shown(RunView(), T0) == "T —"


def test_from_the_windows_start_the_window_opens_at_t_plus_15_whatever_came_before():
    # The baseline, the ALTER and the cool-down took 8 min: the clock moves once, to T+15.
    short = RunView(run=run(started_at=T0), window_started_at=T0 + timedelta(minutes=8))
    assert shown(short, T0 + timedelta(minutes=8)) == "T+15:00"
    assert shown(short, T0 + timedelta(minutes=8 + 15)) == "T+30:00", "the T+30 checkpoint is due at T+30"
    # A long ALTER: the window opened at 40 min in; the T+75 checkpoint is still 60 min later.
    long = replace(short, window_started_at=T0 + timedelta(minutes=40))
    assert shown(long, T0 + timedelta(minutes=100)) == "T+75:00"


def test_the_console_reads_the_window_start_from_the_audit_once(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=FrozenClock(T0))
    try:
        r = store.create_run(run(), "lead")
        assert load_view(store, "acme", r.id).window_started_at is None
        store.update_run("acme", r.id, alter_started_at=T0 + timedelta(minutes=5))
        assert load_view(store, "acme", r.id).window_started_at is None, "no window yet"
        opened = T0 + timedelta(minutes=8)
        store.audit("acme", "lead", "monitoring_started", r.id, {"at": opened.isoformat(), "interval": 1})
        view = load_view(store, "acme", r.id)
        assert view.window_started_at == opened
        # Known, it is not read again: a later (resumed) entry does not move it.
        store.audit("acme", "lead", "monitoring_started", r.id, {"at": (opened + timedelta(hours=1)).isoformat()})
        assert load_view(store, "acme", r.id, known=view).window_started_at == opened
        assert load_view(store, "acme", r.id, known=RunView()).window_started_at == opened
    finally:
        store.close()
