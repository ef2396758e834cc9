"""A step that may not be entered yet says what is missing and who can provide it (docs/runbook.md)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from engine.domain.text import for_terminal
from engine.flows.runbook import Missing


def missing_text(missing: Sequence[Missing]) -> str:
    """One line per thing missing, and the checks not run yet as one line (there can be twenty)."""
    unchecked = [m for m in missing if m.what.endswith(": not checked")]
    lines = [f"• {m.what}\n    → {m.who}" for m in missing if m not in unchecked]
    if unchecked:
        names = ", ".join(m.what.removesuffix(": not checked") for m in unchecked[:4])
        lines.insert(0, f"• {len(unchecked)} check(s) not run yet: {names}{', …' if len(unchecked) > 4 else ''}\n"
                        "    → run the checks (r) and the kill-switch test (k) on the Prechecks screen")
    # Who provides what can name people and runs from the store: shown, never interpreted.
    return "\n".join("\n".join(for_terminal(part) for part in line.split("\n")) for line in lines)


class StepLocked(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "Back"), ("enter", "dismiss", "Back")]
    CSS_PATH = "locked.tcss"

    def __init__(self, title: str, missing: Sequence[Missing]):
        super().__init__()
        self.title_text = title
        self.missing = list(missing)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text} is not open yet. Missing:", id="title", markup=False)
            with VerticalScroll():
                yield Static(missing_text(self.missing), id="missing", markup=False)
            yield Button("Back (Esc)", id="back")

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(None)
