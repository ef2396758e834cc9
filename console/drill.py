"""A drill's keys: the faults a rehearsal injects (F6, rehearsal plans only; every console on the
drill shows them on its frame) and the dry run (F4, ``run --dry-run``: read-only, the SQL shown;
docs/dry-run.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work

from console.part import AppPart

if TYPE_CHECKING:
    from screens.faults import FaultToggle


class DrillKeys(AppPart):
    """F6 (``faults``) and F4 (``dry-run``), and the faults on the frame."""

    def _drill_faults(self) -> tuple[str, ...]:
        """A drill's injected faults that are on, as the audit trail says (``fault_started`` /
        ``fault_stopped``, engine.drill.faults): every console on the drill — the teammate's too, not
        only the one that pressed F6 — shows the FAULT marker. Read incrementally (from a worker)."""
        while True:
            fresh = self.store.audit_entries(self.plan.tenant, since_seq=self._fault_seq, limit=500)
            for e in fresh:
                self._fault_seq = e.seq
                d = e.details or {}
                if e.action == "fault_started":
                    self._faults_on[str(d.get("key"))] = str(d.get("fault") or d.get("key")).lower()
                elif e.action == "fault_stopped":  # a stop that failed leaves it on
                    self._faults_on.pop(str(d.get("key")), None)
            if len(fresh) < 500:
                return tuple(self._faults_on.values())

    # --- a dry run (docs/dry-run.md) -----------------------------------------------------------------

    def action_dry_run(self) -> None:
        if self.dry_run and self.screen is not self.get_screen("dry_run"):
            self.push_screen("dry_run")

    @work(thread=True, group="dry-run", exit_on_error=False)
    def walk_dry_run(self) -> None:
        from engine.flows.dryrun import dry_run, lines

        wait = getattr(self.store, "wait_open", None)
        try:
            if wait is not None:
                wait()
            result = dry_run(self.plan, self.store, self.backend, self.actor, self.roles, target=self._target)
        except Exception as exc:  # noqa: BLE001 - a store or a refusal: said in one line, never a traceback
            self.call_from_thread(self.get_screen("dry_run").show_error, str(exc))
            return
        self.call_from_thread(self.get_screen("dry_run").show_lines, lines(result))

    # --- a drill's faults (rehearsal plans only) ----------------------------------------------------

    def action_faults(self) -> None:
        from screens.faults import FaultsDialog

        if self.dry_refused("injecting a fault"):
            return

        if not self.plan.rehearsal:
            self.notify("Fault injection is for rehearsal plans only.", severity="warning")
            return
        if not isinstance(self.screen, FaultsDialog):
            self.push_screen(FaultsDialog(self._fault_rows()))

    def _fault_rows(self) -> tuple[Any, ...]:
        from engine.drill.fault_base import FaultTarget
        from engine.drill.fault_kinds import catalogue
        from screens.faults import FaultRow

        faults = self._faults.faults if self._faults is not None else catalogue(FaultTarget.of_plan(self.plan))
        return tuple(FaultRow(f.key, f.name, f.description, f.shows, f.since if f.active else None,
                              str(f.last_error or "")) for f in faults)

    def on_fault_toggle(self, message: FaultToggle) -> None:
        self.toggle_fault(message.key)

    @work(thread=True, group="faults", exit_on_error=False)
    def toggle_fault(self, key: str) -> None:
        from engine.drill.fault_base import FaultError
        from engine.drill.faults import FaultBox
        from screens.faults import FaultsDialog

        with self._faults_lock:
            try:
                if self._faults is None:
                    self._faults = FaultBox.from_plan(self.plan, self.store, self.run_id, self.actor, self.clock)
                self._faults.run_id = self.run_id
                on = self._faults.toggle(key)
                name = self._faults.fault(key).name
                status = f"{name}: {'ON' if on else 'off'}"
            except (FaultError, KeyError) as exc:
                status = f"{key}: {exc}"
            active = tuple(f.name.lower() for f in self._faults.faults if f.active) if self._faults else ()
        rows = self._fault_rows()
        self.call_from_thread(self.set_frame, faults=active)
        screen = self._top
        if isinstance(screen, FaultsDialog):
            self.call_from_thread(screen.show, rows, status)
