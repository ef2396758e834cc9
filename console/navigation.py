"""The way between the runbook's steps: the digit keys (``goto``), the step gate that locks a step
until what it needs is done (engine/flows/runbook.py ``missing_for``), the steps loaded late (after
the store), and a console opening on a run under way landing on the run's step."""

from __future__ import annotations

from dataclasses import replace

from console.part import AppPart
from engine.flows.runbook import STEPS, TITLES, RunView, missing_for
from screens.audit import AuditScreen
from screens.base import RunbookScreen, StepShown
from screens.locked import StepLocked
from screens.plan import PlanScreen


class StepNavigation(AppPart):
    """The steps: which are locked, which is shown, how to get there."""

    def _install_late(self, name: str, screen: RunbookScreen) -> None:
        self.steps[name] = screen
        self.install_screen(screen, name=name)
        self.set_frame(locked=self._locked(self.view))
        if self._pending_goto == name:  # asked for while it loaded: go there now
            self._pending_goto = None
            self.action_goto(name)

    def _locked(self, view: RunView) -> frozenset[str]:
        now = self.clock.now()
        return frozenset(s for s in STEPS if s not in self.steps or missing_for(s, view, now))

    def on_step_shown(self, message: StepShown) -> None:
        screen = message.screen
        self.frame = replace(self.frame, now=self.clock.now(), step=screen.step or self.frame.step)
        screen.apply_frame(self.frame)
        screen.show_view(self.view, self.clock.now())
        if screen.step in ("execution", "report"):
            self._facts_for = None
            self.refresh_view()
        if screen.step in ("monitoring", "decision"):
            self.refresh_dashboard()

    def _land(self, step: str) -> None:
        """A console that opens on a run already under way (restarted after a crash, taking it
        over, joining late) shows the step the run is in — unless the person has moved on from the
        Plan screen already. A screen still loading opens when it is loaded."""
        if step == "plan" or not isinstance(self._top, PlanScreen):
            return
        if step not in self.steps:
            self._pending_goto = step
            return
        self.action_goto(step)

    def action_goto(self, step: str) -> None:
        if step not in self.steps:
            self._pending_goto = step
            self.notify(f"{TITLES[step]} is still loading: it opens in a moment.", timeout=4)
            return
        self._pending_goto = None
        missing = missing_for(step, self.view, self.clock.now())
        if missing:
            self.audit_in_worker("step_locked", {"step": step, "missing": [str(m) for m in missing][:10]})
            self.push_screen(StepLocked(TITLES[step], missing))
            return
        if self.screen is not self.steps[step]:
            while isinstance(self.screen, (AuditScreen, StepLocked)):
                self.pop_screen()
            self.switch_screen(step)

    def _need_run(self, active: bool = True) -> bool:
        run = self.view.run
        if run is None or (active and run.status != "scheduled"):
            self.notify("This needs a scheduled run: begin the prechecks on the Plan screen (b)." if run is None
                        else f"Run {run.id[:8]} is {run.status}: prechecks are over.", severity="warning")
            return False
        return True
