"""The dry run (docs/dry-run.md): what ``engine.flows.dryrun`` found and the SQL each step would send,
shown under the frame (which says DRY RUN). Nothing here acts: `g` asks the App, which refuses."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.domain.text import for_terminal
from screens.base import RunbookScreen, StepFooter


class DryRunScreen(RunbookScreen):
    step = ""  # not a runbook step: the frame keeps the step the console was on
    BINDINGS = [
        Binding("g", "app.execute", "Execute (refused: dry run)", id="dry-run-execute"),
        Binding("escape", "app.goto('plan')", "Plan", id="dry-run-back"),
    ]
    CSS_PATH = "dryrun.tcss"

    def compose_body(self) -> ComposeResult:
        yield Static("DRY RUN — walking the checks against the target, read-only…", id="dry-run-head", markup=False)
        with VerticalScroll(id="dry-run-scroll"):
            yield Static("", id="dry-run-body", markup=False)
        yield StepFooter()

    def show_lines(self, lines: Sequence[str]) -> None:
        """The engine's lines (``engine.flows.dryrun.lines``); text from the server is never markup."""
        head, *rest = list(lines) or [""]
        self.query_one("#dry-run-head", Static).update(for_terminal(head))
        self.query_one("#dry-run-body", Static).update("\n".join(for_terminal(line) for line in rest))

    def show_error(self, message: str) -> None:
        self.query_one("#dry-run-head", Static).update(for_terminal(f"DRY RUN could not be made: {message}"))
