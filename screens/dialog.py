"""What the console's small dialogs share: one that closes on the reason a person types."""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen
from textual.widgets import Button, Input

from screens.base import required_text

ResultType = TypeVar("ResultType")


class ReasonModal(ModalScreen[ResultType | None]):
    """A dialog that closes on its ``#reason``: the focus starts there, Enter presses ``#confirm``,
    Cancel or Esc closes it with None, and confirmed without a reason it says ``WHY`` and waits.
    A subclass composes the widgets and turns the reason into its result (``result``)."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    WHY = "A reason is required."

    def result(self, reason: str) -> ResultType:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        reason = required_text(self, "reason", self.WHY)
        if reason is None:
            return
        self.dismiss(self.result(reason))

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#confirm", Button).press()

    def action_cancel(self) -> None:
        self.dismiss(None)
