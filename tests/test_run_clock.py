"""The run's one T+ clock on every screen (docs/runbook.md#the-t-clock): the window's opening is
T+15, where the runbook, the checkpoints and the dashboard's axis put it; before it there is no T+
(the frame shows the wall time in the plan's time zone), so the clock never jumps; a drill's
compressed clock is marked."""

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


def test_before_the_window_there_is_no_t_plus_but_the_wall_time_in_the_plans_zone():
    view = RunView(run=run(started_at=T0))
    at = T0 + timedelta(minutes=8, seconds=14)
    assert shown(view, at) == "04:08:14 UTC+00:00 (T+ at the window)"
    seven = FrameState(t0=clock_origin(view, 15), now=at, utc_offset=timedelta(hours=7))
    assert seven.clock == "11:08:14 UTC+07:00 (T+ at the window)"
    assert FrameState(now=None).clock == "T —"


def test_the_clock_never_runs_backwards_however_long_the_alter_took():
    """The old clock counted from the run's start and moved to T+15 when the window opened: after a
    40-minute ALTER it went back from T+40 to T+15. Now T+ starts at the window and only grows."""
    view = RunView(run=run(started_at=T0), window_started_at=T0 + timedelta(minutes=40))
    seconds = []
    for minute in range(40, 110, 5):
        text = shown(view, T0 + timedelta(minutes=minute))
        assert text.startswith("T+"), text
        mm, ss = text.removeprefix("T+").split(":")
        seconds.append(int(mm) * 60 + int(ss))
    assert seconds == sorted(seconds) and seconds[0] == 15 * 60
    assert all(b - a == 300 for a, b in zip(seconds, seconds[1:], strict=False)), "it moves by the elapsed time"


def test_a_compressed_drill_clock_is_marked():
    view = RunView(run=run(started_at=T0), window_started_at=T0)
    state = FrameState(t0=clock_origin(view, 15), now=T0 + timedelta(minutes=5), speed=40)
    assert state.clock == "T+20:00 ⏩ drill clock ×40"
    assert state.clock_text(short=True) == "T+20:00 ⏩×40 drill"


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


def test_a_rollback_after_the_verdict_does_not_move_the_clock(tmp_path):
    """The walk at 80×24: the frame said T+75:00 at the verdict, then T+200 once the rollback was done
    — the run's completed_at moves to the rollback's time (failed → rolled_back). The clock stops
    where the run first ended, anchored to the window."""
    clock = FrozenClock(T0)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=clock)
    try:
        r = store.create_run(run(), "lead")
        store.transition("acme", r.id, "running", "lead")
        opened = T0 + timedelta(minutes=8)
        store.update_run("acme", r.id, alter_started_at=T0 + timedelta(minutes=5))
        store.audit("acme", "lead", "monitoring_started", r.id, {"at": opened.isoformat(), "interval": 1})
        clock.advance(68 * 60)  # the window's 60 minutes: the verdict, FAIL
        store.transition("acme", r.id, "failed", "engine", fail_reason="verification_failed")
        ended = load_view(store, "acme", r.id)
        clock.advance(125 * 60)  # the team takes two hours to roll back
        store.transition("acme", r.id, "rolled_back", "dba")
        for known in (None, ended):
            view = load_view(store, "acme", r.id, known=known)
            assert view.run.status == "rolled_back" and view.run.completed_at == clock.now()
            assert view.ended_at == T0 + timedelta(minutes=68)
            state = FrameState(t0=clock_origin(view, 15), now=clock.now(), t_end=view.ended_at)
            assert state.clock == "T+75:00", "the clock stays where the window ended"
    finally:
        store.close()
