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
from engine.domain.roles import may, needed, role_words
from engine.domain.text import for_terminal


def who_may(roles: tuple[str, ...]) -> str:
    """Who may turn the switch off, said to the person at the keyboard: a canary lead read "Only the
    canary lead or the DBA may turn it off; you are canary_lead/dba/…" as a refusal."""
    allowed = role_words(needed("kill_switch_deactivate"))
    yours = f"you are the {role_words(roles).replace(' or ', ' and ')}" if roles else "you have no role in this plan"
    if may("kill_switch_deactivate", roles):
        return f"You may turn it off (the {allowed} only): {yours}."
    return f"Only the {allowed} may turn it off; {yours}."


@dataclass(frozen=True)
class DeactivationRequest:
    scopes: tuple[str, ...]
    reason: str


class DeactivateKillSwitch(ModalScreen[DeactivationRequest | None]):
    BINDINGS = [("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    DeactivateKillSwitch { align: center middle; }
    DeactivateKillSwitch > Vertical { width: 72; height: auto; border: thick $error; background: $surface; padding: 1 2; }
    DeactivateKillSwitch #why { color: $error; height: auto; }
    DeactivateKillSwitch Horizontal { height: auto; margin-top: 1; }
    DeactivateKillSwitch Button { margin-right: 2; }
    """

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
            yield Static(who_may(self.roles), id="who")
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
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#why", Static).update("A reason is required: it goes to the audit trail.")
            self.query_one("#reason", Input).focus()
            return
        scopes = tuple(self.reading.active_scopes()) if self.reading else ()
        self.dismiss(DeactivationRequest(scopes, reason))

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#confirm", Button).press()

    def action_cancel(self) -> None:
        self.dismiss(None)
