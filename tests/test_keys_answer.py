"""Keys that answer (docs/keys.md): every key a footer shows either acts or says in one line why it
cannot now and who can — never a silent no-op; PageUp/PageDown/Home/End move the long screens; `p`
on the prechecks shows the statement it confirms; the command palette lists each step action with
its key and whether it can act now."""

from __future__ import annotations

from dataclasses import replace

from dashboard_drill import PLAN, PROFILE, Drill, fail_data, pass_data
from dashboard_host import FRAME, Host
from test_console_screens_snapshots import app_for, quiet, world
from textual.app import App
from textual.command import CommandPalette
from textual.containers import VerticalScroll
from textual.widgets import DataTable
from waits import until

from engine.views.dashboard import dashboard_view, decision_view
from screens.base import KeysAnswer
from screens.confirm import ConfirmStatement
from screens.decision import DecisionScreen
from screens.monitoring import MonitoringScreen
from screens.prechecks import rollback_statements


class AnsweringHost(KeysAnswer, Host):
    """The dashboard tests' host, answering keys as the console does."""


def said(app: App) -> list[str]:
    """Every notification raised since the first look, in order. Textual drops each one after its
    timeout (5 s): on a loaded machine a count of the live ones shrinks between two looks."""
    heard = getattr(app, "_heard", None)
    if heard is None:
        heard = app._heard = [n.message for n in app._notifications]
        add = app._notifications.add

        def record(notification):  # noqa: ANN001, ANN202
            heard.append(notification.message)
            return add(notification)

        app._notifications.add = record
    return list(heard)


async def press_says(app: App, pilot, key: str, *words: str) -> str:
    """Press ``key``: a new notification names every word, and no dialog opened (no silent no-op)."""
    before = len(said(app))
    screen = app.screen
    await pilot.press(key)
    await until(pilot, lambda: len(said(app)) > before, 5)  # the answer may come from a worker
    new = said(app)[before:]
    assert new, f"{key!r} on {type(screen).__name__} did nothing and said nothing"
    assert app.screen is screen, f"{key!r} opened {type(app.screen).__name__} though it cannot act"
    for word in words:
        assert any(word in line for line in new), f"{key!r}: {word!r} not in {new}"
    assert all("\n" not in line for line in new), "one line"
    return new[-1]


def footer_keys(screen) -> dict[str, bool]:
    """The keys the footer of ``screen`` shows (its own, not the App's F-keys), and whether enabled."""
    return {key: active.enabled for key, active in screen.active_bindings.items()
            if active.binding.show and active.node is screen}


async def test_decision_keys_on_a_fail_say_why_and_who(tmp_path):
    screen = DecisionScreen(PLAN)
    app = AnsweringHost(screen, replace(FRAME, step="decision"))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        screen.show_decision(decision_view(fail_data()))
        await pilot.pause()
        assert footer_keys(screen) == {"k": False, "d": False, "g": True}, "k/d greyed on a FAIL"
        for key in "kd":
            await press_says(app, pilot, key, "FAIL", "canary lead", "INCONCLUSIVE", "(g)")
        assert app.seen == []
        screen.show_decision(decision_view(pass_data()))
        await pilot.pause()
        await press_says(app, pilot, "g", "PASS", "Rollback screen")
        assert app.seen == []


async def test_monitoring_keys_without_an_auto_pause_or_an_announcement_say_why():
    screen = MonitoringScreen(PLAN)
    app = AnsweringHost(screen)
    async with app.run_test(size=(160, 50)) as pilot:
        d = Drill()
        await press_says(app, pilot, "r", "still reading")
        screen.show_dashboard(dashboard_view(PROFILE, d.data(monitoring_started_at=None, alter_finished_at=None),
                                             d.at))
        await pilot.pause()
        await press_says(app, pilot, "p", "T+15")
        d.minutes(5)
        screen.show_dashboard(dashboard_view(PROFILE, d.data(), d.at))
        await pilot.pause()
        keys = footer_keys(screen)
        assert keys["r"] is False and keys["x"] is False and keys["y"] is False and keys["p"] is True
        assert "w" not in keys, "no webhook in this plan: w can never act here, so it is not shown"
        for key in "rx":
            await press_says(app, pilot, key, "No AUTO-PAUSE", "canary lead")
        await press_says(app, pilot, "y", "Nothing to announce")
        assert app.seen == []


async def test_every_footer_key_answers_without_a_run(tmp_path):
    """The console before any run: each step's footer key either opens its dialog/acts or says why."""
    clock, store, plan, run = world(tmp_path)
    store.transition("acme", run.id, "cancelled", "somchai@10.0.0.5", message="not today")
    app = app_for(clock, store, plan, user="arun")  # the SRE: most steps are someone else's
    async with app.run_test(size=(160, 50)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if "report" in app.steps:
                break
        await quiet(app, pilot)
        cases = {"prechecks": "rkpsxa", "size_gate": "cxa", "execution": "gc"}
        for step, keys in cases.items():
            app.switch_screen(step)
            await pilot.pause(0.05)
            shown = footer_keys(app.screen)
            assert set(keys) <= set(shown), f"{step}: {sorted(shown)}"
            for key in keys:
                await press_says(app, pilot, key)
        app.switch_screen("size_gate")
        await pilot.pause()
        line = await press_says(app, pilot, "x", "No exact count is running", "canary lead or the DBA")
        assert "nothing to cancel" in line
        assert not app.count_cancel.is_set()
        app.screen.show_count("counting exactly… 10%", 0.1)
        await pilot.pause()
        assert footer_keys(app.screen)["x"] is True
        await pilot.press("x")
        await pilot.pause()
        assert app.count_cancel.is_set(), "a count running: x cancels it"


async def test_page_keys_move_the_prechecks_list_with_a_table_focused(tmp_path):
    clock, store, plan, run = world(tmp_path)
    app = app_for(clock, store, plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        app.switch_screen("prechecks")
        await pilot.pause(0.1)
        app.screen.query_one("#tests", DataTable).focus()
        await pilot.pause()
        body = app.screen.query_one(VerticalScroll)
        await until(pilot, lambda: body.max_scroll_y > 0)
        await pilot.press("home")  # a scroll may animate: each wait is for where it lands
        assert await until(pilot, lambda: body.scroll_y == 0, 5), "Home: the top of the list"
        await pilot.press("pagedown")
        assert await until(pilot, lambda: body.scroll_y > 0, 5), "PageDown moves the list"
        await pilot.press("end")
        assert await until(pilot, lambda: body.scroll_y == body.max_scroll_y, 5)
        await pilot.press("pageup")
        assert await until(pilot, lambda: 0 < body.scroll_y < body.max_scroll_y, 5)
        await pilot.press("home")
        assert await until(pilot, lambda: body.scroll_y == 0, 5)


async def test_p_shows_the_prepared_rollback_before_the_dba_confirms_it(tmp_path):
    clock, store, plan, run = world(tmp_path)
    app = app_for(clock, store, plan, user="nok")  # the DBA
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if app.view.run is not None:
                break
        app.switch_screen("prechecks")
        await pilot.pause(0.05)
        await pilot.press("p")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmStatement)
        text = str(dialog.query_one("#statement-text").render())
        assert rollback_statements(plan) in text
        assert "DROP INDEX" in text and "idx_orders_customer_created" in text
        await pilot.press("escape")
        await quiet(app, pilot)
        assert not store.approvals("acme", run.id, "rollback_prepared"), "Esc confirms nothing"
        await pilot.press("p")
        await pilot.pause()
        app.screen.query_one("#confirm").press()
        await quiet(app, pilot)
        [approval] = store.approvals("acme", run.id, "rollback_prepared")
        assert approval.role == "dba" and approval.actor == "nok@10.0.0.5"


async def test_the_palette_lists_the_screens_actions_with_key_and_state(tmp_path):
    from console.palette import step_actions

    clock, store, plan, run = world(tmp_path)
    app = app_for(clock, store, plan)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if app.view.run is not None:
                break
        app.switch_screen("size_gate")
        await pilot.pause(0.05)
        entries = {e.description: e for e in step_actions(app.screen)}
        assert {"Check size", "Cancel exact count", "DBA: approve WARNING"} <= set(entries)
        assert entries["Check size"].why_not is None and "key c · can act now" == entries["Check size"].help
        assert entries["Cancel exact count"].help.startswith("key x · not now: No exact count is running")
        await pilot.press("ctrl+p")
        await pilot.pause(0.1)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"cancel exact")
        for _ in range(50):
            await pilot.pause(0.02)
            options = app.screen.query_one("CommandList").options
            if any("Cancel exact count" in str(o.prompt) for o in options):
                break
        shown = " ".join(str(o.prompt) for o in options)
        assert "Cancel exact count (x)" in shown and "not now" in shown
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert any("No exact count is running" in line for line in said(app)), "the entry answers as its key"


async def test_home_and_end_stay_with_a_text_field(tmp_path):
    """The page keys scroll a step, but in the audit log's filter Home/End move the cursor."""
    clock, store, plan, run = world(tmp_path)
    app = app_for(clock, store, plan)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        await pilot.pause(0.1)
        field = app.screen.query_one("#audit-filter")
        assert app.focused is field
        await pilot.press(*"kill", "home")
        assert field.cursor_position == 0
        await pilot.press("end")
        assert field.cursor_position == 4
