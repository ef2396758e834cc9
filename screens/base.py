"""The frame every runbook screen shares."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen

from screens.frame import BANNER_CSS, FrameBar, FrameState, KillBanner, RunFrame


class RunbookScreen(Screen):
    """A runbook step: the frame on top, the step's body below (``compose_body``)."""

    DEFAULT_CSS = BANNER_CSS

    def compose(self) -> ComposeResult:
        yield FrameBar()
        yield KillBanner(id="kill-banner")
        yield from self.compose_body()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def apply_frame(self, state: FrameState) -> None:
        for widget in (*self.query(RunFrame), *self.query(KillBanner)):
            widget.state = state
