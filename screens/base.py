"""The frame every runbook screen shares."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen

from engine.runbook import RunView
from screens.frame import BANNER_CSS, FrameBar, FrameState, KillBanner, RunFrame, StepBar


def plain(*cells: object) -> tuple[Text, ...]:
    """Table cells shown as they are: text from the store or the server is never read as markup
    (a ``[`` in a detail or a query would otherwise be a tag, or an error)."""
    return tuple(Text(str(c)) for c in cells)


def drawable(screen: Screen) -> bool:
    """The screen's widgets are there to draw on: composed, and not being torn down (an app that
    exits prunes a screen's children while the screen still counts as mounted, and a timer may
    still fire in between)."""
    return (screen.is_mounted and screen.is_attached
            and not (screen._closing or screen._pruning or screen.app._exit))


class StepShown(Message):
    """A runbook screen came to the top: the App draws its frame and its view at once."""

    def __init__(self, screen: RunbookScreen):
        super().__init__()
        self.screen = screen


class RunbookScreen(Screen):
    """A runbook step: the frame on top, the step's body below (``compose_body``)."""

    DEFAULT_CSS = BANNER_CSS
    step = ""  # the runbook step this screen is (engine.runbook.STEPS)

    def compose(self) -> ComposeResult:
        yield FrameBar()
        yield StepBar(id="step-bar")
        yield KillBanner(id="kill-banner")
        yield from self.compose_body()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        self.post_message(StepShown(self))

    def apply_frame(self, state: FrameState) -> None:
        if self.step and state.step != self.step:
            state = replace(state, step=self.step)
        for widget in (*self.query(RunFrame), *self.query(StepBar), *self.query(KillBanner)):
            widget.state = state

    def show_view(self, view: RunView, now: datetime) -> None:
        """The run as the store has it now; called when it changes (and on the clock's tick)."""

    def tick(self, view: RunView, now: datetime) -> None:
        """Once a second: redraw what depends on the clock alone (countdowns), nothing else."""
