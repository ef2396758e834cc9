"""The monitoring and decision screens hosted alone in a tiny App (``Host``: data in through
``show_dashboard`` / ``show_decision``, messages out), its frame, and the recorded dashboards the
snapshots draw (tests/test_dashboard_snapshots.py, tests/test_small_terminals.py), each built once
per test process."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import timedelta

from dashboard_drill import PLAN, PROFILE, REPLICA_DOWN, T0, WARN, Drill
from textual.app import App

from engine.adapters.killswitch import KillSwitchReading
from engine.views.dashboard import CheckpointFact, dashboard_view
from screens.decision import OpenRollback, TeamDecision
from screens.frame import FrameState
from screens.monitoring import CheckpointNote, CopyText, MonitoringScreen, PauseDecision, PostText

FRAME = FrameState(user="somchai@10.0.0.5", roles=("canary_lead",), target="shop.orders@10.0.0.12:3306",
                   kill=KillSwitchReading(False, {}, "embedded", 2.0, checked_at=T0),
                   target_health="● ok", step="monitoring", run="run 3f2a9c1e running", driver="you drive")


class Host(App):
    """A screen alone, the way the App hosts it: data in, messages out."""

    def __init__(self, screen, frame: FrameState = FRAME, view=None):
        super().__init__()
        self.hosted = screen
        self.frame = frame
        self.first = view
        self.seen: list = []

    async def on_mount(self) -> None:
        from engine.domain.clock import set_display_zone

        set_display_zone(PLAN.off_peak.utc_offset)  # as the console does from its plan (wall times)
        await self.push_screen(self.hosted)
        self.hosted.apply_frame(self.frame)
        if self.first is not None:
            self.show(self.first)

    def show(self, view) -> None:
        if isinstance(self.hosted, MonitoringScreen):
            self.hosted.show_dashboard(view)
        else:
            self.hosted.show_decision(view)

    def on_checkpoint_note(self, m: CheckpointNote) -> None:
        self.seen.append(m)

    def on_copy_text(self, m: CopyText) -> None:
        self.seen.append(m)

    def on_post_text(self, m: PostText) -> None:
        self.seen.append(m)

    def on_pause_decision(self, m: PauseDecision) -> None:
        self.seen.append(m)

    def on_team_decision(self, m: TeamDecision) -> None:
        self.seen.append(m)

    def on_open_rollback(self, m: OpenRollback) -> None:
        self.seen.append(m)


# --- what the snapshots draw ---------------------------------------------------------------------


def _dashboard(built):
    view, d = built
    frame = replace(FRAME, t0=d.window_start - timedelta(minutes=15), now=d.at,
                    speed=d.speed or 1.0)
    return Host(MonitoringScreen(PLAN), frame, view)


def _settle(pilot_pauses: int = 4):
    async def run_before(pilot):
        for _ in range(pilot_pauses):
            await pilot.pause(0.05)
        # The charts drawn once more at their final size: a render during layout (a loaded machine,
        # the suite in parallel) may have been at an intermediate width, with other tick labels.
        from screens.monitoring_widgets import MetricChart

        for chart in pilot.app.screen.query(MetricChart):
            chart.refresh()
        await pilot.pause(0.1)
    return run_before


# The dashboards the snapshots draw, each built once per test process and shared by its three
# terminal sizes (and tests/test_small_terminals.py): the view is frozen and the drill only read.


@functools.cache
def green_view():
    d = Drill(speed=30.0)
    d.minutes(34)
    d.checkpoints = [CheckpointFact("T+15", d.window_start, True, "engine (somchai@10.0.0.5)",
                                    "0 warning(s), 0 alert(s), 0 stale source(s), 0 concurrent"),
                     CheckpointFact("T+30", d.window_start + timedelta(minutes=15), True, "engine (somchai@10.0.0.5)",
                                    "0 warning(s), 0 alert(s), 0 stale source(s), 0 concurrent"),
                     CheckpointFact("T+30", d.window_start + timedelta(minutes=15, seconds=50), True, "nok@10.0.0.9",
                                    "replica steady")]
    return d.view(), d


@functools.cache
def warnings_view():
    d = Drill()
    d.minutes(26)
    d.minutes(4, latency_p99=6.0 * 1.18, replication_lag=14.0)
    d.minutes(3, latency_p99=6.0 * 1.18, replication_lag=36.0, threads_running=58.0)
    return d.view(), d


@functools.cache
def critical_view():
    d = Drill(prometheus=True)
    d.minutes(40)
    d.minutes(3, latency_p99=6.0 * 1.3, cpu=74.0)
    d.ticks(3, latency_p99=6.0 * 2.6, lock_wait=6.4, cpu=88.0)
    return d.view(), d


@functools.cache
def stale_view():
    d = Drill()
    d.minutes(18)
    d.minutes(2, replication_lag=REPLICA_DOWN, killswitch_response="ConnectTimeout: timed out after 5 s")
    return d.view(), d


@functools.cache
def paused_view():
    d = Drill()
    d.minutes(47)
    d.minutes(1, **WARN)
    return dashboard_view(PROFILE, d.data(pauses=((d.at - timedelta(seconds=55), "5 concurrent warnings"),)), d.at), d
