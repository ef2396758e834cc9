"""The frame every screen draws (screens/frame.py draws it; the App keeps its state): who, where,
the run and its clock, the kill switch, the target's health. A dialog on top is covered by the kill
switch's banner too."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual import work

from console.part import DRIVEN, AppPart
from engine.adapters import sql
from screens.base import RunbookScreen, drawable
from screens.frame import DialogKillBanner

HEALTH_S = 5.0  # how often the target is pinged for the frame (``check_health``)


class FrameKeeper(AppPart):
    """``set_frame``: the frame's state changed, every screen up shows it."""

    def set_frame(self, **changes: Any) -> None:
        self.frame = replace(self.frame, now=self.clock.now(), **changes)
        screen = self._top
        if isinstance(screen, RunbookScreen):
            screen.apply_frame(self.frame)
        elif screen is not None:
            self._frame_under_dialog(screen)

    def push_screen(self, screen: Any, *args: Any, **kwargs: Any) -> Any:
        """Every screen and dialog comes up with the frame as it is: a dialog opened while the
        kill switch is on is covered by its banner too."""
        pushed = super().push_screen(screen, *args, **kwargs)
        self.call_after_refresh(self._cover_top)
        return pushed

    def _cover_top(self) -> None:
        top = self._top
        if top is not None and not isinstance(top, RunbookScreen) and self.frame.kill_active:
            self._frame_under_dialog(top)

    def _frame_under_dialog(self, dialog: Any) -> None:
        """A dialog is on top: the runbook screen under it gets the frame too (it shows through),
        and a kill switch turned on covers the dialog with its banner at once — not after Esc."""
        under = next((s for s in reversed(self.screen_stack) if isinstance(s, RunbookScreen)), None)
        if under is not None:
            under.apply_frame(self.frame)
        banner = getattr(dialog, "_kill_cover", None)
        if banner is None:
            if not self.frame.kill_active or not dialog.is_mounted:
                return
            banner = dialog._kill_cover = DialogKillBanner(self.frame)
            dialog.mount(banner)
            return
        banner.state = self.frame

    def tick(self) -> None:
        self.set_frame()
        screen = self._top
        if isinstance(screen, RunbookScreen) and drawable(screen):
            screen.tick(self.view, self.clock.now())

    # --- connection health (the frame) ----------------------------------------------------------

    @work(thread=True, group="health", exclusive=True, exit_on_error=False)
    def check_health(self) -> None:
        """A ping of the target, unless another console drives the run (joined consoles do not
        poll the target a second time)."""
        from engine.adapters.target import TargetError

        run = self.view.run
        if run is not None and run.status in DRIVEN and not self.driving:
            self.call_from_thread(self.set_frame, target_health="● (driver's connection)")
            return
        try:
            with self.target.session("health") as s:
                s.query(sql.HEALTH)
            health = "● ok"
        except TargetError as exc:
            health = f"✗ down: {str(exc)[:60]}"
        self.call_from_thread(self.set_frame, target_health=health)
