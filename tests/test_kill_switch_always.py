"""Issue 14 items 3-5 in the console: F9 shows its effect at once from every dialog, a text input
focused included (the dialog gives way, or the kill-switch banner covers it — not after Esc); a
reason typed into F7 is cleaned and the cleaning noted; text from the store never reaches the
terminal as an escape sequence."""

from __future__ import annotations

import pytest
from test_console_pilot import _wait_active, _wait_off, make_app
from textual.widgets import Input
from waits import until

from engine.adapters.killswitch import KillSwitchReading, ScopeState
from screens.audit import AuditScreen, audit_row
from screens.deactivate import DeactivateKillSwitch
from screens.faults import FaultsDialog
from screens.frame import DialogKillBanner, FrameState, KillBanner
from screens.locked import StepLocked
from screens.note import NoteDialog
from screens.rollback_dialogs import ApproveDialog, ConfirmRung, DecideDialog

DIALOGS = {
    "note (checkpoint, kill reason, test by hand)": lambda: NoteDialog("Checkpoint T+15", "explain", "note", ("Save",)),
    "rollback decision": lambda: DecideDialog("latency", ("canary_lead",)),
    "rollback approval": lambda: ApproveDialog(("dba",), ("dba",)),
    "rollback DROP confirmation": lambda: ConfirmRung("drop", "ALTER TABLE `shop`.`orders` DROP INDEX `idx`", "idx",
                                                      (), ()),
    "locked step": lambda: StepLocked("3 Size gate", []),
    "faults (drill)": lambda: FaultsDialog(()),
}


def _banner_over(screen) -> str | None:
    """The kill-switch banner drawn over a dialog, as shown (None when there is none, or hidden)."""
    found = screen.query(DialogKillBanner)
    if not found or not found.first().display:
        return None
    return str(found.first().render())


@pytest.mark.parametrize("name", list(DIALOGS))
async def test_f9_in_a_dialog_with_its_input_focused_covers_it_with_the_banner_at_once(tmp_path, name):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        under = app.screen
        dialog = DIALOGS[name]()
        app.push_screen(dialog)
        await pilot.pause(0.1)
        typed = isinstance(app.focused, Input)
        if typed:
            await pilot.press("a", "b")
        await pilot.press("f9")
        await pilot.pause()  # one frame: no store round trip needed to show it
        assert app.screen is dialog, "the dialog stays (its text is not lost)"
        shown = _banner_over(dialog)
        assert shown is not None and "KILL SWITCH" in shown, f"{name}: nothing on screen says the switch is on"
        assert under.query_one(KillBanner).display, "the frame under the dialog shows it too"
        assert await _wait_active(app, pilot)
        for _ in range(100):
            await pilot.pause(0.02)
            if "KILL SWITCH ACTIVE" in (_banner_over(dialog) or ""):
                break
        assert "KILL SWITCH ACTIVE — global by somchai@10.0.0.5" in _banner_over(dialog)
        if typed:
            assert app.focused.value == "ab", "the input kept its text and its focus"
        app.store.set_kill_switch("acme", "global", False, "nok@10.0.0.9", "drill over")
        assert await _wait_off(app, pilot)
        assert _banner_over(dialog) is None, "the banner goes when the switch goes off"
    assert len(app.store.audit_entries("acme", action="kill_switch_activated")) == 1


async def test_f9_in_the_deactivation_dialog_makes_it_give_way(tmp_path):
    app = make_app(tmp_path, user="nok")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("f8")
        await pilot.pause(0.1)
        assert isinstance(app.screen, DeactivateKillSwitch) and app.focused.id == "reason"
        await pilot.press(*"fine")
        await pilot.press("f9")
        await pilot.pause()
        assert not isinstance(app.screen, DeactivateKillSwitch), "an unkill dialog must not outlive a kill"
        assert app.screen.query_one(KillBanner).display
        # The dialog and its typed reason do not just vanish: the person is told why.
        assert any("deactivation was cancelled" in n.message for n in app._notifications)
        assert await _wait_active(app, pilot)
    assert not app.store.audit_entries("acme", action="kill_switch_deactivated")


async def test_f9_on_the_audit_log_with_its_filter_focused_shows_the_banner_at_once(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, AuditScreen) and app.focused.id == "audit-filter"
        await pilot.press("x", "f9")
        await pilot.pause()
        assert app.screen.query_one(KillBanner).display
        assert "KILL SWITCH" in str(app.screen.query_one(KillBanner).render())


async def test_a_hostile_reason_given_with_f7_is_cleaned_noted_and_the_switch_stays_on(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f9")
        assert await _wait_active(app, pilot)
        app.add_kill_reason("p99 \ud800doubling\x1b]0;owned\x07 " + "x" * 10_000)
        for _ in range(250):
            await pilot.pause(0.02)
            if app.store.audit_entries("acme", action="kill_switch_reason_cleaned"):
                break
        assert app.frame.kill.active
    [row] = [r for r in app.store.kill_switch_rows("acme") if r.scope == "global"]
    assert row.is_active and row.reason.startswith("p99 doubling]0;owned") and len(row.reason) <= 2001
    assert "\x1b" not in row.reason and "\ud800" not in row.reason
    [noted] = app.store.audit_entries("acme", action="kill_switch_reason_cleaned")
    assert any("lone surrogate" in c for c in noted.details["changes"])
    assert any("cut from" in c for c in noted.details["changes"])


def test_text_from_the_store_is_shown_escaped_in_the_banner_the_dialog_and_the_audit_log():
    evil = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J"
    reading = KillSwitchReading(True, {"global": ScopeState(True, f"mallory{evil}", f"why{evil}")}, "embedded", 1.0)
    banner = FrameState(kill=reading).banner()
    assert "\x1b" not in banner and "\x07" not in banner and "\\x1b]52" in banner

    class Entry:
        created_at = __import__("datetime").datetime(2026, 1, 1)
        actor = f"mallory{evil}"
        action = "kill_switch_activated"
        old_status = None
        new_status = None
        details = {"reason": f"stop{evil}"}

    row = audit_row(Entry())
    assert not any("\x1b" in cell or "\x07" in cell for cell in row)
    assert "\\x1b[2J" in row[1] and "\\x1b[2J" in row[4]
    from screens.base import plain
    from screens.execution import audit_line

    Entry.details = {"error": f"boom{evil}"}
    line = audit_line(Entry())
    assert "\x1b" not in line and "\\x1b[2J" in line  # the Execution screen's log
    from engine.flows.runbook import Missing
    from screens.locked import missing_text

    locked = missing_text([Missing(f"sign-off by mallory{evil}", "the SRE")])
    assert "\x1b" not in locked and "\\x1b[2J" in locked and "\n    → the SRE" in locked  # the locked-step dialog
    assert [t.plain for t in plain(f"a{evil}", 3)] == ["a\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J", "3"]  # every table cell


async def test_the_deactivation_dialog_shows_the_reason_escaped(tmp_path):
    app = make_app(tmp_path, user="nok")
    app.store.set_kill_switch("acme", "global", True, "mallory@1.2.3.4", "stop\x1b[2J\x1b]0;x\x07")
    async with app.run_test(size=(100, 30)) as pilot:
        app.read_kill_switch()
        assert await _wait_active(app, pilot)
        await pilot.press("f8")
        assert await until(pilot, lambda: isinstance(app.screen, DeactivateKillSwitch)
                           and bool(app.screen.query(DialogKillBanner)))
        state = str(app.screen.query_one("#state").render())
        assert "\x1b" not in state and "\\x1b[2J" in state
        banner = str(app.screen.query_one(DialogKillBanner).render())
        assert "\x1b" not in banner and "\\x1b[2J" in banner


async def test_f9_with_the_remote_api_down_says_what_was_not_set_and_audits_locally(tmp_path):
    """The API is a real port nobody listens on: the switch cannot be set there. F9 still turns the
    frame red (the reading fails closed), audits locally and says which part failed and what to do."""
    import socket

    from engine.adapters.killswitch import RemoteKillSwitch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(tmp_path)
    app.backend = RemoteKillSwitch(f"http://127.0.0.1:{port}", token="t", timeout=1.0)
    said: list[str] = []
    real_notify = app.notify
    app.notify = lambda message, **kw: (said.append(str(message)), real_notify(message, **kw))[1]  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f9")
        assert app.frame.kill_active
        for _ in range(250):
            await pilot.pause(0.02)
            if app.store.audit_entries("acme", action="kill_switch_activation_failed") and said:
                break
        assert app.frame.kill_active and app.frame.kill is not None and app.frame.kill.fail_closed
        assert "KILL SWITCH" in str(app.screen.query_one(KillBanner).render())
    [failed] = app.store.audit_entries("acme", action="kill_switch_activation_failed")
    assert failed.details["remote"] is True and "unreachable" in failed.details["error"]
    text = "\n".join(said)
    assert "kill switch NOT set on the kill-switch API" in text and "what to do:" in text
    assert "internal error" not in text


async def test_at_80_columns_a_long_reason_in_the_banner_ends_in_an_ellipsis_not_mid_word(tmp_path):
    """A reason longer than the banner's one line is cut with "…": a person must not read the cut
    text ("… and lock") as the whole reason. Who set it comes first and always shows."""
    app = make_app(tmp_path)
    reason = ("p99 on orders doubled at T+20 and lock waits climbed past 5 s on the replica; stopping until "
              "the batch job is found")
    app.store.set_kill_switch("acme", "global", True, "nok@10.0.0.9", reason)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await _wait_active(app, pilot)
        await pilot.pause(0.1)
        banner = app.screen.query_one(KillBanner)
        line = "".join(seg.text for seg in banner.render_line(0)).strip()
        assert line.startswith("KILL SWITCH ACTIVE — global by nok@10.0.0.9 (p99 on orders"), line
        assert line.endswith("…") and len(line) <= 80, line
