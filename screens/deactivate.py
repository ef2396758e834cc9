"""Deactivating the kill switch (docs/kill-switch.md): a modal, the canary lead or the DBA only, with a reason.

Activation is one key and no dialog; turning it off is deliberate: the modal names the active
scopes and who set them, asks for a reason, and the App checks the role and records the outcome
(a refusal is audited too)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from engine.adapters.killswitch import KillSwitchReading
from engine.domain.text import for_terminal
from screens.base import required_text


@dataclass(frozen=True)
class DeactivationRequest:
    scopes: tuple[str, ...]
    reason: str


class DeactivateKillSwitch(ModalScreen[DeactivationRequest | None]):
    BINDINGS = [("escape", "cancel", "Cancel")]
    CSS_PATH = "deactivate.tcss"

    def __init__(self, reading: KillSwitchReading | None, roles: tuple[str, ...]):
        super().__init__()
        self.reading = reading
        self.roles = roles

    def compose(self) -> ComposeResult:
        active = self.reading.active_scopes() if self.reading else []
        with Vertical():
            yield Label("Deactivate the kill switch", id="title")
            yield Static(for_terminal(self.reading.describe()) if self.reading else "kill switch state unknown",
                         id="state", markup=False)
            yield Static("Only the canary lead or the DBA may turn it off; you are "
                         f"{'/'.join(self.roles) or 'without a role in this plan'}.", id="who")
            yield Input(placeholder="reason (required): what was found, why it is safe to go on", id="reason")
            yield Static("", id="why")
            with Horizontal():
                yield Button(f"Deactivate {', '.join(active) or 'nothing'}", id="confirm", variant="error",
                             disabled=not active)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        reason = required_text(self, "reason", "A reason is required: it goes to the audit trail.")
        if reason is None:
            return
        scopes = tuple(self.reading.active_scopes()) if self.reading else ()
        self.dismiss(DeactivationRequest(scopes, reason))

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#confirm", Button).press()

    def action_cancel(self) -> None:
        self.dismiss(None)
