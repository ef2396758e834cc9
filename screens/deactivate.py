"""Deactivating the kill switch (docs/kill-switch.md): a modal, the canary lead or the DBA only, with a reason.

Activation is one key and no dialog; turning it off is deliberate: the modal names the active
scopes and who set them, asks for a reason, and the App checks the role and records the outcome
(a refusal is audited too)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from engine.adapters.killswitch import KillSwitchReading
from engine.domain.roles import may, needed, role_words
from engine.domain.text import for_terminal
from screens.dialog import ReasonModal


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


class DeactivateKillSwitch(ReasonModal[DeactivationRequest]):
    CSS_PATH = "deactivate.tcss"
    WHY = "A reason is required: it goes to the audit trail."

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

    def result(self, reason: str) -> DeactivationRequest:
        return DeactivationRequest(tuple(self.reading.active_scopes()) if self.reading else (), reason)
