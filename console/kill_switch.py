"""The kill switch at the console (docs/kill-switch.md): F9 on every screen — the frame turns red at
once, the store write and the KILL of an ALTER in flight happen on the switch's own worker group, so a
hung query never delays it —, the poll that keeps every console's frame up to date, the reason added
afterwards (F7) and the deactivation (F8)."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.message import Message
from textual.notifications import SeverityLevel

from console.part import AppPart
from engine.adapters.killswitch import KillSwitchReading
from screens.deactivate import DeactivateKillSwitch, DeactivationRequest
from screens.frame import KillSwitchPressed

# The kill switch alone, more often: an activation reaches every console within 250 ms (issue 7's
# load target; one read is ~2 ms on SQLite or PostgreSQL, bench/killswitch_load.py).
KILL_POLL_S = 0.2


class KillSwitchSaid(Message):
    """What the kill switch's worker has to say (a retry, a failure). Posted, not called: a
    ``post_message`` from the worker never waits for the screen, so a busy or blocked UI cannot
    hold back the switch's next write."""

    def __init__(self, severity: SeverityLevel, text: str) -> None:
        super().__init__()
        self.severity, self.text = severity, text


class KillSwitchKeys(AppPart):
    """F9 (``kill-switch``), F7 (``kill-switch-reason``), F8 (``kill-switch-off``) and the switch's poll."""

    def action_kill_switch(self) -> None:
        """Instant, no dialog (docs/kill-switch.md): the frame turns red now — over a dialog too,
        and a deactivation dialog gives way —; the store write, and the KILL of any ALTER in
        flight, happen on the kill switch's own worker."""
        if isinstance(self._top, DeactivateKillSwitch):
            self._top.dismiss(None)  # it was asked for a switch that is about to change
            # Said, or the dialog (and its typed reason) just vanishes: the switch stays ON.
            self.notify("F9: the kill switch stays ON; the deactivation was cancelled (nothing turned off).",
                        title="Kill switch", severity="warning", timeout=10, markup=False)
        self.set_frame(kill_pending=True)
        self.activate_kill_switch()

    def on_kill_switch_pressed(self, _message: KillSwitchPressed) -> None:
        self.action_kill_switch()

    def _kill_said(self, severity: SeverityLevel, text: str) -> None:
        self.post_message(KillSwitchSaid(severity, text))  # thread-safe, never waits for the screen

    @on(KillSwitchSaid)
    def _show_kill_said(self, said: KillSwitchSaid) -> None:
        self.notify(said.text, title="Kill switch", markup=False,
                    severity=said.severity,
                    timeout=60 if said.severity == "error" else 20)

    @work(thread=True, group="kill-switch", exit_on_error=False)
    def activate_kill_switch(self) -> None:
        """engine.flows.killswitch_actions.activate: set (retried while another process holds the
        store's lock, the ALTER killed directly meanwhile), enforce, audit; said when not all done."""
        from engine.flows.killswitch_actions import activate

        run = self.view.run
        result = activate(self.store, self.backend, self.plan.tenant, "global", self.actor, self.roles,
                          "F9 in the console", via="console", worker=self.worker_name,
                          target_for=lambda _run: self.target, runs=[run] if run is not None else [],
                          take_over=False, clock=self.clock, retry_for=60.0,
                          on_progress=lambda sev, text: self._kill_said(
                              sev, text + (" The frame stays red until it lands." if sev == "warning" else "")))
        if not result.ok:
            self._kill_said("error", "\n".join(result.lines(plan=self.plan.source)))
        elif result.already_on:  # a re-press: the first reason and who set it stay, said so
            self._kill_said("warning", "\n".join(result.lines(plan=self.plan.source)))
        try:
            reading = self.backend.read(self.plan.tenant, self.plan.connection.id)
        except Exception as exc:  # noqa: BLE001 - the frame stays red; say what failed
            self._kill_said("error", f"kill switch: {exc}")
            return
        self.call_from_thread(self.set_frame, kill=reading, kill_pending=not reading.active)

    @work(thread=True, group="kill-switch-poll", exclusive=True, exit_on_error=False)
    def read_kill_switch(self) -> None:
        reading = self.backend.read(self.plan.tenant, self.plan.connection.id)
        # Five reads a second: the frame hears of one only when it would draw something else.
        shown = (reading.active, reading.error, reading.source, reading.latency_level,
                 tuple(sorted(reading.scopes.items())),
                 reading.response_ms if reading.latency_level != "ok" else None)
        if shown == self._kill_shown:
            return
        self._kill_shown = shown
        self.call_from_thread(self._kill_read, reading)

    def _kill_read(self, reading: KillSwitchReading) -> None:
        self.set_frame(kill=reading, kill_pending=self.frame.kill_pending and not reading.active)

    def action_kill_reason(self) -> None:
        """docs/kill-switch.md: activation takes no dialog; the reason can be added afterwards."""
        if not self.frame.kill_active:
            self.notify("The kill switch is off: nothing to explain.", timeout=4)
            return
        from screens.note import NoteDialog

        self.push_screen(NoteDialog("Why is the kill switch on?", "Added to the switch and the audit log; the "
                                    "switch stays on.", "what was seen, e.g. p99 doubling on orders",
                                    ("Save reason",)), self._kill_reason_given)

    def _kill_reason_given(self, note: Any) -> None:
        if note is not None:
            self.add_kill_reason(note.text)

    @work(thread=True, group="kill-switch", exit_on_error=False)
    def add_kill_reason(self, reason: str) -> None:
        from engine.flows.killswitch_actions import activate

        reading = self.backend.read(self.plan.tenant, self.plan.connection.id)
        for scope in reading.active_scopes() or ["global"]:
            result = activate(self.store, self.backend, self.plan.tenant, scope, self.actor, self.roles, reason,
                              self.plan.connection.id, via="console", enforce=False, add_reason=True)
            if not result.ok or result.cleaned:
                self._kill_said("error" if not result.ok else "warning", "\n".join(result.lines()))
        self.call_from_thread(self.set_frame, kill=self.backend.read(self.plan.tenant, self.plan.connection.id))

    def action_deactivate(self) -> None:
        if isinstance(self.screen, DeactivateKillSwitch):
            return
        self.push_screen(DeactivateKillSwitch(self.frame.kill, self.roles), self._deactivation_chosen)

    def _deactivation_chosen(self, request: DeactivationRequest | None) -> None:
        if request is not None:
            self.deactivate_kill_switch(request)

    @work(thread=True, group="kill-switch", exit_on_error=False)
    def deactivate_kill_switch(self, request: DeactivationRequest) -> None:
        from engine.flows.killswitch_actions import deactivate

        result = deactivate(self.store, self.backend, self.plan.tenant, request.scopes, self.actor, self.roles,
                            request.reason, self.plan.connection.id, via="console")
        if result.refused is not None:
            self._kill_said("error", "Refused: " + result.refused.removeprefix("refused: "))
            return
        if not result.ok or result.cleaned:
            self._kill_said("error" if not result.ok else "warning", "\n".join(result.lines()))
        try:
            reading = self.backend.read(self.plan.tenant, self.plan.connection.id)
        except Exception as exc:  # noqa: BLE001 - the switch is as the result says
            self._kill_said("error", f"kill switch: {exc}")
            return
        self.call_from_thread(self.set_frame, kill=reading, kill_pending=False)
