"""A step that may not be entered yet says what is missing and who can provide it (SPEC §3)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from engine.runbook import Missing


class StepLocked(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "Back"), ("enter", "dismiss", "Back")]
    DEFAULT_CSS = """
    StepLocked { align: center middle; }
    StepLocked > Vertical { width: 90; max-width: 95%; height: auto; max-height: 90%; border: thick $warning;
                            background: $surface; padding: 1 2; }
    StepLocked #title { text-style: bold; margin-bottom: 1; }
    StepLocked #missing { height: auto; }
    StepLocked Button { margin-top: 1; }
    """

    def __init__(self, title: str, missing: Sequence[Missing]):
        super().__init__()
        self.title_text = title
        self.missing = list(missing)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text} is not open yet. Missing:", id="title", markup=False)
            yield Static("\n".join(f"• {m.what}\n    → {m.who}" for m in self.missing), id="missing", markup=False)
            yield Button("Back (Esc)", id="back")

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(None)
