"""The monitoring and decision screens, each hosted alone in a tiny App (tests/dashboard_host.py): data
in through ``show_dashboard`` / ``show_decision``, messages out. Pilot tests: the dashboard following a
recorded run and its keys, the decision screen changing with the verdict, its scroll per run, the
checkpoint notes wrapping, a toast above the footer."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dashboard_drill import PLAN, PROFILE, T0, WARN, Drill, fail_data, inconclusive_data, pass_data
from dashboard_host import FRAME, Host
from waits import until

from engine.adapters.store import ExecutionRun
from engine.domain.clock import FrozenClock
from engine.views.dashboard import dashboard_view, decision_view
from screens.decision import DecisionScreen, OpenRollback, TeamDecision
from screens.monitoring import CheckpointNote, CopyText, MonitoringScreen, PauseDecision, PostText
from screens.monitoring_widgets import MetricChart, TileWidget
from screens.note import NoteDialog


def tile_classes(screen, key):
    return next(w for w in screen.query(TileWidget) if w.tile.key == key).classes


async def test_the_dashboard_follows_the_recorded_run_step_by_step_and_its_keys_post_messages():
    clock = FrozenClock(T0)
    d = Drill()
    clock.current = d.at
    # A plan with a webhook: without one, w can never act on this screen and is not shown.
    screen = MonitoringScreen(replace(PLAN, webhook_url="https://hooks.example.com/canary"))
    app = Host(screen)
    async with app.run_test(size=(160, 50)) as pilot:
        data = None

        async def step(n: int = 1, **values):
            nonlocal data
            for _ in range(n):
                d.tick(**values)
                clock.advance(d.interval)
            data = d.data(data)
            screen.show_dashboard(dashboard_view(PROFILE, data, clock.now()))
            await pilot.pause()

        await step(60)
        assert "-warning" not in tile_classes(screen, "replication_lag")
        await pilot.press("y", "w")
        await pilot.pause()
        assert app.seen == [], "nothing to announce while every metric is green"
        draws = {c.key: c.draws for c in screen.query(MetricChart)}
        screen.show_dashboard(dashboard_view(PROFILE, data, clock.now()))
        await pilot.pause()
        assert {c.key: c.draws for c in screen.query(MetricChart)} == draws, "same data: no chart redrawn"

        await step(2, replication_lag=35.0)
        assert "-warning" in tile_classes(screen, "replication_lag")
        await step(2, replication_lag=65.0)
        assert "-critical" in tile_classes(screen, "replication_lag")
        assert screen.query_one("#escalation").has_class("-L3")
        assert {c.key: c.draws for c in screen.query(MetricChart)}["replication_lag"] > draws["replication_lag"]
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.seen[-1], CopyText) and app.seen[-1].text.startswith("🚨 [CRITICAL]")
        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.seen[-1], PostText) and "Replication lag: 65 s" in app.seen[-1].text

        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, NoteDialog), "no AUTO-PAUSE: nothing to resume"
        banner = screen.query_one("#pause-banner")
        assert not banner.has_class("-on")
        await step(2, **WARN)
        assert banner.has_class("-on") and "canary lead (@somchai)" in str(banner.render())
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, NoteDialog)
        await pilot.press(*"batch job ended", "enter")
        await pilot.pause()
        assert app.seen[-1] == PauseDecision("resume", "batch job ended")
        await pilot.press("x", "escape")
        await pilot.pause()
        assert app.seen[-1] == PauseDecision("resume", "batch job ended"), "cancelled: nothing posted"

        await pilot.press("p")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, NoteDialog) and "T+15" in dialog.title_text
        await pilot.press(*"lag from a batch job")
        dialog.query_one("#choice-1").press()
        await until(pilot, lambda: app.seen[-1] != PauseDecision("resume", "batch job ended"), 5)
        assert app.seen[-1] == CheckpointNote("T+15", "lag from a batch job", False)


async def test_the_decision_screen_changes_with_the_verdict_and_posts_the_team_decision():
    screen = DecisionScreen(PLAN)
    app = Host(screen, replace(FRAME, step="decision"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        screen.show_decision(decision_view(pass_data()))
        await pilot.pause()
        verdict = screen.query_one("#verdict")
        assert verdict.has_class("-pass") and "PASS" in str(verdict.render())
        await pilot.press("k", "d", "g")
        await pilot.pause()
        assert app.seen == [] and app.screen is screen

        screen.show_decision(decision_view(inconclusive_data()))
        await pilot.pause()
        assert verdict.has_class("-inconclusive") and not verdict.has_class("-pass")
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, NoteDialog)
        await pilot.press("enter")
        assert isinstance(app.screen, NoteDialog), "a note is required"
        await pilot.press(*"reads faster, no harm seen", "enter")
        await pilot.pause()
        assert app.seen[-1] == TeamDecision("keep", "reads faster, no harm seen")

        fail = decision_view(fail_data())
        screen.show_decision(fail)
        await pilot.pause()
        assert verdict.has_class("-fail")
        await pilot.press("g")
        await pilot.pause()
        assert app.seen[-1] == OpenRollback(dict(fail.rollback_metrics), "lock_wait")


async def test_the_decision_of_another_run_opens_at_the_top_not_where_the_last_was_scrolled():
    """The walk at 80×24: after a new run began, the Decision screen kept the scroll position of the
    previous run's matrix."""
    from engine.flows.runbook import RunView

    def run(n: int) -> RunView:
        return RunView(run=ExecutionRun(id=f"1a2b3c4d-0000-4000-8000-00000000000{n}", tenant_id="acme",
                                        connection_profile_id="orders-primary", schema_name="shop",
                                        table_name="orders", index_name="idx", columns=[["customer_id", None]]))

    screen = DecisionScreen(PLAN)
    app = Host(screen, replace(FRAME, step="decision"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen.show_view(run(1), FRAME.now)
        screen.show_decision(decision_view(fail_data()))
        await pilot.pause()
        body = screen.query_one("#body")
        assert body.max_scroll_y > 0
        body.scroll_end(animate=False)
        assert await until(pilot, lambda: body.scroll_y > 0, 5)
        screen.show_view(run(1), FRAME.now)  # the same run again: the reader's place is kept
        await pilot.pause()
        assert body.scroll_y > 0
        screen.show_view(run(2), FRAME.now)
        assert await until(pilot, lambda: body.scroll_y == 0, 5), "another run's decision opens at the top"


@pytest.mark.parametrize("size", [(160, 50), (80, 24)])
async def test_checkpoint_notes_wrap_instead_of_being_cut(size):
    """The walk at 160×50: "not reached: the window s…" — the notes were cut at 48 characters."""
    data = fail_data()
    view = dashboard_view(PROFILE, data, data.last_sampled_at)
    screen = MonitoringScreen(PLAN)
    app = Host(screen, FRAME, view)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = screen.query_one("#checkpoints")
        notes = [str(table.get_row_at(r)[4]) for r in range(table.row_count)]
        assert " ".join(notes[2].split()) == "not reached: the window stopped at T+38:05", notes
        assert all("…" not in n for n in notes)
        region = table.region
        assert region.right <= size[0], "the table fits the screen"


@pytest.mark.parametrize("size", [(80, 24), (56, 24), (160, 50)])
async def test_a_toast_stands_above_the_footer_whatever_its_rows(size):
    """The walk at 80×24: a toast covered the 2–3-row footer's keys for ~8 s."""
    from textual.widgets._toast import Toast

    from screens.base import StepFooter

    data = fail_data()
    screen = MonitoringScreen(PLAN)
    app = Host(screen, FRAME, dashboard_view(PROFILE, data, data.last_sampled_at))
    async with app.run_test(size=size, notifications=True) as pilot:
        await pilot.pause()
        footer = screen.query_one(StepFooter)
        if size[0] == 56:
            assert await until(pilot, lambda: footer.region.height >= 2, 5), footer.region
        app.notify("The monitoring window is running: 5 shows the live dashboard.", title="Execution", timeout=30)
        assert await until(pilot, lambda: bool(screen.query(Toast)) and screen.query_one(Toast).region.height > 0, 5)
        await pilot.pause()
        toast = screen.query_one(Toast).region
        assert toast.bottom <= footer.region.y, (toast, footer.region)
