"""The drill's preparation, on screen at once: the sandbox servers, the data load and the
self-test, each a step with a progress bar, under the console's frame (F9 works from here too).

``canary-console rehearse`` opens the console first and prepares the drill on a thread; this
screen is on top until the drill is ready, then the Plan screen takes over.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import ProgressBar, Static

from engine.drill.rehearsal import STEP_TITLES, StepProgress
from screens.base import RunbookScreen, StepFooter, drawable, update_text

MARK = {"waiting": "·", "running": "…", "done": "✓", "skipped": "–", "failed": "✗"}


class PreparingScreen(RunbookScreen):
    """One row per step: its mark and title, a bar, what happens now."""

    CSS_PATH = "preparing.tcss"

    def __init__(self, plan_path: str, steps: tuple[str, ...] = tuple(STEP_TITLES)):
        super().__init__(name="preparing")
        self.plan_path = plan_path
        self.keys = steps
        self.latest: dict[str, StepProgress] = {}
        self.outcome: tuple[str, bool] | None = None  # (text, failed)
        self.done = False  # the drill became ready while a dialog was on top: leave when shown again

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Preparing the drill", id="prep-title")
            yield Static(f"The console is open; the drill's sandbox is being brought up for {self.plan_path}. "
                         "The runbook's steps open when it is ready. F9 is the kill switch; Ctrl+Q quits and "
                         "stops what was started.", id="prep-intro", markup=False)
            for key in self.keys:
                with Horizontal(classes="prep-row"):
                    yield Static(f"{MARK['waiting']} {STEP_TITLES[key]}", id=f"name-{key}", classes="prep-name",
                                 markup=False)
                    # Determinate from the start (0 % while waiting): an indeterminate bar's animation
                    # would say "busy" of a step that has not begun.
                    yield ProgressBar(total=1, show_eta=False, id=f"bar-{key}")
                yield Static("waiting", id=f"text-{key}", classes="prep-text", markup=False)
            yield Static("", id="prep-outcome", markup=False)
        yield StepFooter()

    def on_mount(self) -> None:
        for progress in self.latest.values():
            self._draw(progress)
        if self.outcome is not None:
            self._draw_outcome(*self.outcome)

    def on_screen_resume(self) -> None:
        if self.done:
            self.app.pop_screen()
            return
        super().on_screen_resume()

    def show_step(self, progress: StepProgress) -> None:
        """A step moved on (called on the UI thread; kept when the screen is not mounted yet)."""
        self.latest[progress.key] = progress
        if drawable(self):
            self._draw(progress)

    def _draw(self, progress: StepProgress) -> None:
        if progress.key not in self.keys:
            return
        update_text(self.query_one(f"#name-{progress.key}", Static),
                    f"{MARK.get(progress.state, '…')} {progress.title}")
        bar = self.query_one(f"#bar-{progress.key}", ProgressBar)
        if progress.state in ("done", "skipped", "failed"):
            bar.update(total=1, progress=1)
        else:
            bar.update(total=max(progress.total, 1), progress=progress.done)
        update_text(self.query_one(f"#text-{progress.key}", Static), progress.text)

    def show_outcome(self, text: str, failed: bool) -> None:
        self.outcome = (text, failed)
        if drawable(self):
            self._draw_outcome(text, failed)

    def _draw_outcome(self, text: str, failed: bool) -> None:
        outcome = self.query_one("#prep-outcome", Static)
        outcome.set_class(failed, "-failed")
        update_text(outcome, text)
