"""Steps 1 to 3 at the console: the plan's scope lock and the run's creation (b), the prechecks —
the checks, the kill-switch test, the self-test, a test recorded by hand, a failed P1 case
acknowledged, the prepared rollback confirmed, the sign-offs — and the table-size gate. Each key
asks the one table first (``refuse``) and runs its flow function (engine/flows/step_actions.py) on a
worker, which asks again and audits."""

from __future__ import annotations

from typing import Any

from textual import work

from console.part import AppPart
from engine.domain.cases import PRIORITY
from engine.domain.roles import role_words
from engine.domain.runstate import ACTIVE
from engine.flows import guard, step_actions
from screens.plan import PlanScreen, ScopeFacts
from screens.prechecks import PrechecksScreen
from screens.sizegate import SizeGateScreen, TableSize


class PrecheckSteps(AppPart):
    """The keys of the Plan, Prechecks and Size gate screens (``app.begin_prechecks`` …)."""

    # --- step 1: the plan ------------------------------------------------------------------------

    @work(thread=True, group="store-read", exit_on_error=False)
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
        self.call_from_thread(self.step_screen("plan", PlanScreen).show_scope, facts)

    def action_begin_prechecks(self) -> None:
        if self.dry_refused("beginning the prechecks (creating a run)"):
            return
        if self.refuse("begin_prechecks"):
            return
        run = self.view.run
        if run is not None and run.status in ACTIVE:
            self.action_goto("prechecks")
            return
        self.begin_prechecks()

    @work(thread=True, group="store-write", exit_on_error=False)
    def begin_prechecks(self) -> None:
        from engine.adapters.store import ScopeLockError

        try:
            run = step_actions.begin_prechecks(self.plan, self.store, self.backend, self.target, self.actor,
                                               self.roles, self.worker_name, self.clock)
        except (ScopeLockError, guard.RoleRefused) as exc:
            self.call_from_thread(self.notify, str(exc), title="Scope lock" if isinstance(exc, ScopeLockError) else
                                  "Not your role", severity="error", timeout=20)
            return
        self.run_id = run.id
        self._start_presampling(run.id)
        self._sync_view()
        self.call_from_thread(self.notify, f"run {run.id[:8]} scheduled: the prechecks begin (at least 15 "
                              "minutes, runbook 5.4)", title="Prechecks")
        self.call_from_thread(self.action_goto, "prechecks")

    # --- step 2: the prechecks ---------------------------------------------------------------------

    def action_run_prechecks(self) -> None:
        if self._need_run():
            self.notify("running the prechecks…", timeout=3)
            self.run_prechecks(self.run_id)

    @work(thread=True, group="prechecks", exclusive=True, exit_on_error=False)
    def run_prechecks(self, run_id: str) -> None:
        step_actions.run_prechecks(self.plan, self.store, self.backend, self.target, run_id, self.actor,
                                   self.clock.now())
        self._sync_view()

    def action_kill_switch_test(self) -> None:
        if self.dry_refused("the kill-switch test"):
            return
        if self._need_run() and not self.refuse("kill_switch_test"):
            self.kill_switch_test(self.run_id)

    @work(thread=True, group="kill-switch", exit_on_error=False)
    def kill_switch_test(self, run_id: str) -> None:
        step_actions.kill_switch_test(self.plan, self.store, self.backend, run_id, self.actor, self.roles)
        self._sync_view()

    def action_self_test(self) -> None:
        if self.refuse("self_test"):
            return
        self.notify("self-test TC-01…TC-10 against a private sandbox MariaDB: a few minutes; rows fill in as "
                    "cases finish", title="Self-test", timeout=8)
        self.self_test()

    @work(thread=True, group="self-test", exclusive=True, exit_on_error=False)
    def self_test(self) -> None:
        from engine.drill import selftest

        def report(_result: Any) -> None:  # stored by the action as each case finishes
            self._sync_view()
        try:  # the self_test action: the role asked again (a refusal audited), then the cases
            selftest.run_for_prechecks(self.store, self.plan.tenant, self.actor, self.roles, report=report)
        except Exception as exc:  # noqa: BLE001 - e.g. MariaDB binaries missing: say so
            self.call_from_thread(self.notify, f"self-test could not run: {exc}", severity="error", timeout=20)

    def action_scratch_test(self) -> None:
        if self.dry_refused("the scratch-table test"):
            return
        if self._need_run() and not self.refuse("scratch_test"):
            self.scratch_test(self.run_id)

    @work(thread=True, group="prechecks", exit_on_error=False)
    def scratch_test(self, run_id: str) -> None:
        step_actions.scratch_test(self.plan, self.store, self.target, run_id, self.actor, self.roles)
        self._sync_view()

    def action_record_test(self) -> None:
        """Runbook 2.1: a TC row filled by a person (a result from elsewhere, with its reference)."""
        if self.refuse("record_test"):
            return
        screen = self.screen
        case = screen.selected_case() if isinstance(screen, PrechecksScreen) else None
        if case is None:
            return
        from screens.note import NoteDialog

        self.push_screen(NoteDialog(f"Record {case} ({PRIORITY[case]}) by hand",
                                    "For a result obtained elsewhere: say where (a link, a ticket, a log).",
                                    "reference, e.g. CI run 4512 on staging", ("pass", "fail")),
                         lambda note: note and self.record_test(case, note.choice, note.text))

    @work(thread=True, group="store-write", exit_on_error=False)
    def record_test(self, case: str, status: str, reference: str) -> None:
        step_actions.record_test(self.store, self.plan, case, status, reference, self.actor, self.roles,
                                 self.clock.now())
        self._sync_view()

    def action_acknowledge_case(self) -> None:
        """Runbook 2.1: a failed P1 self-test case, acknowledged with a reason by the canary lead and
        by the DBA (engine/flows/selftest_gate.py)."""
        from engine.flows import selftest_gate

        if not self._need_run() or self.refuse("acknowledge_self_test"):
            return
        failed = selftest_gate.failed_p1(self.view.self_test)
        screen = self.screen
        chosen = screen.selected_case() if isinstance(screen, PrechecksScreen) else None
        waiting = [c for c in failed if any(r in self.roles and r not in selftest_gate.acknowledged_by(
            self.view.approvals, c) for r in selftest_gate.ACK_ROLES)]
        case = chosen if chosen in waiting else (waiting[0] if waiting else None)
        if case is None:
            self.notify("No failed P1 case waits for your acknowledgement" + (
                f" ({', '.join(failed)} acknowledged in your roles)" if failed else ""), timeout=6)
            return
        from screens.note import NoteDialog

        self.push_screen(NoteDialog(f"Acknowledge {case} (P1) failed",
                                    "The canary goes with this case failed only if the canary lead and the DBA "
                                    "each say why (audited).", "reason, e.g. TC-06 fails on the sandbox's "
                                    "slow disk; verified by hand on staging", ("acknowledge",)),
                         lambda note: note and self.acknowledge_case(self.run_id, case, note.text))

    @work(thread=True, group="store-write", exit_on_error=False)
    def acknowledge_case(self, run_id: str, case: str, reason: str) -> None:
        from engine.flows import selftest_gate

        try:
            ack = selftest_gate.acknowledge(self.store, self.plan.tenant, run_id, case, reason, self.actor,
                                            set(self.roles))
        except (PermissionError, ValueError) as exc:
            self.call_from_thread(self.notify, str(exc), title="Not acknowledged", severity="error", timeout=12)
            return
        self._sync_view()
        self.call_from_thread(self.notify, f"{case} acknowledged as {role_words([ack.role])} by {self.actor}", timeout=5)

    def action_confirm_rollback(self) -> None:
        if self._need_run() and not self.refuse("confirm_rollback"):
            done = self.view.approvals_of("rollback_prepared")
            if done:
                self.notify(f"The prepared rollback is already confirmed (by {done[-1].actor}).", timeout=6)
                return
            from screens.confirm import ConfirmStatement
            from screens.prechecks import rollback_statements

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self.approve("rollback_prepared", step_actions.confirm_rollback)

            self.push_screen(ConfirmStatement(
                "Confirm the prepared rollback (runbook 2.4.2) — DBA",
                "You confirm that this is the statement a rollback runs and the query that verifies it. Nothing "
                "runs now: it runs only from the Rollback screen, once a rollback is approved.",
                rollback_statements(self.plan), "Confirm (DBA)"), confirmed)

    def action_sign_off(self) -> None:
        if not self._need_run() or self.refuse("sign_off"):
            return
        self.sign_off(self.run_id)

    @work(thread=True, group="store-write", exit_on_error=False)
    def sign_off(self, run_id: str) -> None:
        """The first of your roles not signed yet, decided against the store (not the last poll), one
        sign-off at a time: a quick second press signs the next role, never the same one twice."""
        from engine.flows.runbook import sign_off

        with self._sign_lock:
            ok, message = sign_off(self.store, self.plan, run_id, self.actor, self.roles, self.clock.now())
        if not ok:
            self.call_from_thread(self.notify, message, title="Sign-off", severity="warning", timeout=12,
                                  markup=False)
            return
        self._sync_view()
        self.call_from_thread(self.notify, message, timeout=4)

    @work(thread=True, group="store-write", exit_on_error=False)
    def approve(self, kind: str, action: Any, *args: Any) -> None:
        """``action``: the step's flow function (engine/flows/step_actions.py), which checks the role."""
        try:
            action(self.store, self.plan, self.run_id or "", *args, self.actor, self.roles, self.clock.now())
        except guard.RoleRefused as exc:
            self.call_from_thread(self.notify, f"Refused: {exc}", severity="error", timeout=12, markup=False)
            return
        self._sync_view()
        self.call_from_thread(self.notify, f"{kind.replace('_', ' ')} recorded as DBA by {self.actor}", timeout=4)

    # --- step 3: the table-size gate -------------------------------------------------------------

    def action_check_size(self) -> None:
        if not self._need_run() or self.refuse("size_gate_check"):
            return
        self.count_cancel.clear()
        self.check_size(self.run_id)

    def action_cancel_count(self) -> None:
        reason = self.why_not("cancel_count", ())
        if reason:
            self.notify(reason, title="Not now", severity="warning", timeout=8, markup=False)
            return
        self.count_cancel.set()

    @work(thread=True, group="gate", exclusive=True, exit_on_error=False)
    def check_size(self, run_id: str) -> None:
        from engine.adapters.target import TargetError

        screen = self.step_screen("size_gate", SizeGateScreen)
        try:
            out = step_actions.check_size(
                self.plan, self.store, self.target, run_id, self.actor, self.roles, cancel=self.count_cancel,
                on_size=lambda i: self.call_from_thread(screen.show_size, TableSize(i.estimated_rows, i.data_mb,
                                                                                    i.index_mb)),
                on_count=lambda text, f: self.call_from_thread(screen.show_count, text, f))
        except (TargetError, guard.RoleRefused) as exc:
            self.call_from_thread(self.notify, f"size gate: {exc}", severity="error", timeout=15)
            return
        if out.decision is None and out.said:
            self.call_from_thread(self.notify, out.said, severity="error")
        elif out.said:
            self.call_from_thread(self.notify, out.said, title="Size gate", severity="error", timeout=30)
        if out.decision is not None:
            self._sync_view()

    def action_approve_gate(self) -> None:
        if not self._need_run() or self.refuse("size_gate_approval"):
            return
        g = self.view.gate()
        if g is None or g.status != "warn":
            self.notify("Nothing to approve: the gate is " + ("undecided" if g is None else g.status), timeout=5)
            return
        self.approve("size_gate", step_actions.approve_gate, g.detail)
