"""Issue 14 item 3: a dialog opened while the kill switch is ALREADY on carries the kill-switch banner
of its own (the frame under it says ON, but the dialog covers it) — at 80×24, every dialog."""

from __future__ import annotations

import pytest
from test_console_pilot import _wait_active, make_app
from test_kill_switch_always import DIALOGS, _banner_over
from waits import until

from screens.confirm import ConfirmStatement
from screens.deactivate import DeactivateKillSwitch
from screens.note import LessonDialog
from screens.rollback_dialogs import ReasonDialog

ALL = dict(DIALOGS)
ALL.update({
    "lesson": lambda: LessonDialog(),
    "confirm statement": lambda: ConfirmStatement("Run this?", "it is sent as shown",
                                                  "ALTER TABLE `shop`.`orders` ADD INDEX `i` (`a`)", "Run"),
    "rollback reason": lambda: ReasonDialog("Refuse the rollback?", ("the reason is audited",), "Refuse"),
})


@pytest.mark.parametrize("name", list(ALL))
async def test_a_dialog_opened_while_the_switch_is_already_on_shows_the_banner(tmp_path, name):
    app = make_app(tmp_path)
    app.store.set_kill_switch("acme", "global", True, "mallory@10.0.0.7", "p99 doubling")
    async with app.run_test(size=(80, 24)) as pilot:
        app.read_kill_switch()
        assert await _wait_active(app, pilot)
        dialog = ALL[name]()
        app.push_screen(dialog)
        # No key is pressed and the switch does not change: the dialog comes up covered (within a
        # refresh or two; 2 s for a loaded machine — today it never is).
        await until(pilot, lambda: _banner_over(dialog) is not None
                    and dialog.get_widget_at(40, 0)[0].id == "dialog-kill-banner", 2, 0.02)
        assert app.screen is dialog
        shown = _banner_over(dialog)
        assert shown is not None and "KILL SWITCH ACTIVE" in shown and "mallory@10.0.0.7" in shown, \
            f"{name}: opened while the switch is on, nothing on it says so"
        widget, region = dialog.get_widget_at(40, 0)
        assert widget.id == "dialog-kill-banner" and region.width >= 78, "on the top line, across it (a tall dialog: less its scrollbar)"


async def test_the_deactivation_dialog_opened_with_f8_while_on_shows_the_banner_at_80x24(tmp_path):
    app = make_app(tmp_path, user="nok")
    app.store.set_kill_switch("acme", "global", True, "mallory@10.0.0.7", "p99 doubling")
    async with app.run_test(size=(80, 24)) as pilot:
        app.read_kill_switch()
        assert await _wait_active(app, pilot)
        await pilot.press("f8")
        await pilot.pause(0.1)
        assert isinstance(app.screen, DeactivateKillSwitch)
        await until(pilot, lambda: _banner_over(app.screen) is not None, 2, 0.02)
        assert "KILL SWITCH ACTIVE" in (_banner_over(app.screen) or "")
