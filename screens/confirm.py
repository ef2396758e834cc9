"""A confirmation that shows what is confirmed: the statement itself, then Confirm or Cancel.
Nothing is recorded on Esc or Cancel."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmStatement(ModalScreen[bool]):
    BINDINGS = [("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ConfirmStatement { align: center middle; }
    ConfirmStatement > Vertical { width: 100; max-width: 95%; height: auto; max-height: 95%;
                                  border: thick $warning; background: $surface; padding: 0 2; }
    ConfirmStatement #statement { height: auto; max-height: 14; margin: 1 0; background: $boost; }
    ConfirmStatement #statement Static { padding: 0 1; }
    ConfirmStatement Horizontal { height: auto; }
    ConfirmStatement Button { margin-right: 2; }
    """

    def __init__(self, title: str, explain: str, statement: str, confirm: str):
        super().__init__()
        self.title_text = title
        self.explain = explain
        self.statement = statement
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title", markup=False)
            yield Static(self.explain, id="explain", markup=False)
            with VerticalScroll(id="statement"):
                yield Static(self.statement, id="statement-text", markup=False)
            with Horizontal():
                yield Button(self.confirm, id="confirm", variant="warning")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # a stray Enter never confirms

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)
