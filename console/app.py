"""The Textual App: the war room's console.

The App owns every worker (a worker dies with the node that owns it, and screens come and go),
the global bindings — F9, the kill switch, a priority binding that works on every screen, with an
input focused, in tmux and over SSH — and the frame state every screen draws. Blocking calls
(store, target) run in thread workers; only messages and ``call_from_thread`` cross back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding

from engine.clock import Clock, SystemClock
from engine.enforce import enforce_kill_switch
from engine.identity import Identity, current_identity, worker_id
from engine.killswitch import KillSwitchBackend, KillSwitchReading, backend_for
from engine.plan import Plan
from engine.runstate import ACTIVE
from engine.selftest import PRIORITY
from engine.store import Store
from screens.audit import AuditScreen
from screens.base import RunbookScreen
from screens.deactivate import DeactivateKillSwitch, DeactivationRequest
from screens.frame import FrameState, KillSwitchPressed
from screens.plan import PlanScreen, ScopeFacts

POLL_S = 0.5  # a second console sees a change within one second (SPEC §4)
UNKILL_ROLES = {"canary_lead", "dba"}


class CanaryApp(App):
    TITLE = "Canary Console"
    BINDINGS = [
        Binding("f9", "kill_switch", "KILL SWITCH", priority=True, id="kill-switch"),
        Binding("f8", "deactivate", "Kill switch off", id="kill-switch-off"),
        Binding("f2", "audit", "Audit log", id="audit"),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, plan: Plan, store: Store, identity: Identity | None = None, clock: Clock | None = None,
                 backend: KillSwitchBackend | None = None, poll: bool = True):
        super().__init__()
        self.plan = plan
        self.store = store
        self.identity = identity or current_identity()
        self.clock = clock or SystemClock()
        self.backend = backend or backend_for(plan, store)
        self.poll = poll
        self.roles = tuple(sorted(plan.roles_of(self.identity.user)))
        self.frame = FrameState(user=self.identity.actor, roles=self.roles,
                                target=f"{plan.schema}.{plan.change.table}@{plan.connection.socket or plan.connection.host}"
                                       f"{'' if plan.connection.socket else ':' + str(plan.connection.port)}",
                                now=self.clock.now())

    def on_mount(self) -> None:
        self.push_screen(PlanScreen(self.plan, self.identity.user))
        self.read_scope()
        self.read_kill_switch()
        if self.poll:
            self.set_interval(POLL_S, self.read_kill_switch)

    # --- the frame ---------------------------------------------------------------------------

    def set_frame(self, **changes: Any) -> None:
        self.frame = replace(self.frame, now=self.clock.now(), **changes)
        screen = self.screen
        if isinstance(screen, RunbookScreen):
            screen.apply_frame(self.frame)

    def on_screen_resume(self) -> None:
        self.set_frame()

    # --- the kill switch -----------------------------------------------------------------------

    def action_kill_switch(self) -> None:
        """Instant, no dialog (SPEC §4): the frame turns red now; the store write, and the KILL of
        any ALTER in flight, happen on the kill switch's own worker."""
        self.set_frame(kill_pending=True)
        self.activate_kill_switch()

    def on_kill_switch_pressed(self, _message: KillSwitchPressed) -> None:
        self.action_kill_switch()

    @work(thread=True, group="kill-switch", exit_on_error=False)
    def activate_kill_switch(self) -> None:
        actor = self.identity.actor
        try:
            self.backend.set(self.plan.tenant, "global", True, actor, "F9 in the console")
            enforce_kill_switch(self.store, self.backend, self.plan.tenant, actor, worker_id(self.identity),
                                take_over=False)
            reading = self.backend.read(self.plan.tenant, self.plan.connection.id)
        except Exception as exc:  # noqa: BLE001 - the frame stays red; say what failed
            self.call_from_thread(self.notify, f"kill switch: {exc}", title="Kill switch", severity="error",
                                  timeout=30)
            return
        self.call_from_thread(self.set_frame, kill=reading, kill_pending=False)

    @work(thread=True, group="kill-switch-poll", exclusive=True, exit_on_error=False)
    def read_kill_switch(self) -> None:
        reading = self.backend.read(self.plan.tenant, self.plan.connection.id)
        self.call_from_thread(self._kill_read, reading)

    def _kill_read(self, reading: KillSwitchReading) -> None:
        self.set_frame(kill=reading, kill_pending=self.frame.kill_pending and not reading.active)

    def action_deactivate(self) -> None:
        if isinstance(self.screen, DeactivateKillSwitch):
            return
        self.push_screen(DeactivateKillSwitch(self.frame.kill, self.roles), self._deactivation_chosen)

    def _deactivation_chosen(self, request: DeactivationRequest | None) -> None:
        if request is not None:
            self.deactivate_kill_switch(request)

    @work(thread=True, group="kill-switch", exit_on_error=False)
    def deactivate_kill_switch(self, request: DeactivationRequest) -> None:
        actor = self.identity.actor
        if not set(self.roles) & UNKILL_ROLES:
            self.store.audit(self.plan.tenant, actor, "kill_switch_deactivation_refused", None,
                             {"scopes": list(request.scopes), "roles": list(self.roles), "via": "console"})
            self.call_from_thread(self.notify, "Refused: only the canary lead or the DBA may turn the kill switch "
                                  "off. Ask them; your attempt is in the audit log.", title="Kill switch",
                                  severity="error", timeout=15)
            return
        try:
            for scope in request.scopes:
                self.backend.set(self.plan.tenant, scope, False, actor, request.reason, self.plan.connection.id)
            reading = self.backend.read(self.plan.tenant, self.plan.connection.id)
        except Exception as exc:  # noqa: BLE001 - the switch stays as it was; say why
            self.call_from_thread(self.notify, f"could not turn the kill switch off: {exc}", severity="error")
            return
        self.call_from_thread(self.set_frame, kill=reading, kill_pending=False)

    # --- screens ------------------------------------------------------------------------------

    @work(thread=True, group="store", exit_on_error=False)
    def read_scope(self) -> None:
        holder = self.store.lock_holder()
        active = [r for r in self.store.find_runs(self.plan.tenant, list(ACTIVE), limit=1)]
        other = None
        if holder is not None:
            other = f"run {holder.execution_run_id[:8]} of tenant {holder.holder_tenant_id}"
        elif active:
            other = f"run {active[0].id[:8]}"
        tcs = self.store.latest_prechecks(self.plan.tenant, "TC-")
        p0 = [f"{c} {tcs[c].status}" for c in sorted(PRIORITY) if PRIORITY[c] == "P0" and c in tcs]
        facts = ScopeFacts(self.plan.off_peak.contains(self.clock.now()), other, ", ".join(p0) or "not run yet")
        self.call_from_thread(self._show_scope, facts)

    def _show_scope(self, facts: ScopeFacts) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, PlanScreen):
                screen.show_scope(facts)

    def action_audit(self) -> None:
        if isinstance(self.screen, AuditScreen):
            return
        self.push_screen(AuditScreen())
        self.read_audit()

    @work(thread=True, group="store", exit_on_error=False)
    def read_audit(self) -> None:
        entries = self.store.audit_entries(self.plan.tenant, limit=5000)
        self.call_from_thread(self._show_audit, entries)

    def _show_audit(self, entries: list[Any]) -> None:
        if isinstance(self.screen, AuditScreen):
            self.screen.show(entries)
