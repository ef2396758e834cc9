"""Step 7 at the console, the manual rollback (docs/rollback.md): the Rollback screen's messages run
their flow functions (engine/flows/rollback_flow.py, rollback_rungs.py) on workers, one step at a
time; a rung's progress is watched on a connection of its own; R4's observation follows a DROP;
this console's own steps are pushed to the webhooks."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual import work
from textual.worker import get_current_worker

from console.part import DRIVEN, AppPart
from console.run_workers import DriverStopped, StoppableClock

if TYPE_CHECKING:
    from engine.adapters.target import Target
    from screens.rollback import (
        RollbackApprove,
        RollbackDecide,
        RollbackExecute,
        RollbackKeepIndex,
        RollbackRefresh,
        RollbackRetrigger,
    )


class RollbackSteps(AppPart):
    """The Rollback screen's messages (``RollbackDecide`` …) and the workers they start."""

    def _rollback_target(self) -> Target | None:
        """The driver, or a console when nobody drives, inspects the target; joined consoles do not."""
        run = self.view.run
        if run is not None and run.status in DRIVEN and not self.driving:
            return None
        return self.target

    def on_rollback_refresh(self, _message: RollbackRefresh) -> None:
        if self.run_id is not None:
            self.refresh_rollback(self.run_id)

    @work(thread=True, group="rollback-read", exclusive=True, exit_on_error=False)
    def refresh_rollback(self, run_id: str) -> None:
        from engine.flows.rollback_flow import refresh

        view, inspection = refresh(self.store, self.plan, self._rollback_target(), run_id, self.clock)
        if get_current_worker().is_cancelled:
            return  # a newer read replaced this one: never draw an older state over a newer one
        self.call_from_thread(self.rollback_screen().show, view, inspection)

    def on_rollback_decide(self, message: RollbackDecide) -> None:
        self.rollback_act("decide", trigger=message.trigger, reason=message.reason, metrics=dict(message.metrics))

    def on_rollback_approve(self, message: RollbackApprove) -> None:
        self.rollback_act("approve", role=message.role, note=message.note, decision=message.decision)

    def on_rollback_execute(self, message: RollbackExecute) -> None:
        if self.dry_refused(f"the rollback's {message.rung}"):
            return
        self.rollback_act(message.rung, acknowledged=tuple(message.acknowledged))

    def on_rollback_retrigger(self, message: RollbackRetrigger) -> None:
        self.rollback_act("retrigger", reason=message.reason)

    def on_rollback_keep_index(self, message: RollbackKeepIndex) -> None:
        self.rollback_act("keep", reason=message.reason)

    @work(thread=True, group="rollback", exit_on_error=False)
    def rollback_act(self, what: str, **data: Any) -> None:
        from engine.flows import rollback_flow as flow
        from engine.flows import rollback_rungs as rungs
        from engine.flows.rollback_remote import latest_metrics

        if not self._rollback_busy.acquire(blocking=False):
            self.call_from_thread(self.notify, "A rollback step is already running: wait for it.", severity="warning")
            return
        try:
            run = self.store.get_run(self.plan.tenant, self.run_id or "")
            if run is None:
                return
            roles = set(self.roles)
            notifier = self._rollback_notifier(run.id)
            told = (notifier.on_rollback_event,) if notifier is not None else ()
            if what == "decide":
                out = flow.decide_rollback(self.store, self.plan, run, data["trigger"], self.actor, roles,
                                           data["reason"], data.get("metrics") or latest_metrics(self.store, run),
                                           listeners=told)
            elif what == "approve" and data["decision"] == "refuse":
                out = flow.refuse_rollback(self.store, self.plan, run, data["role"], self.actor, roles,
                                           data["note"])
            elif what == "approve":
                out = flow.approve_rollback(self.store, self.plan, run, data["role"], self.actor, roles,
                                            data["note"], data["decision"])
            elif what == "retrigger":
                out = flow.retrigger_rollback(self.store, self.plan, run, self.actor, roles, data["reason"])
            elif what == "keep":
                out = flow.keep_index(self.store, self.plan, run, self.actor, roles, data["reason"])
            else:
                execute = {"ignore": rungs.execute_ignore, "drop": rungs.execute_drop}.get(what)
                self._rung_on.set()
                self.call_from_thread(self.watch_rung, what)
                if what == "drop":
                    out = rungs.execute_drop(self.store, self.plan, self.target, run, self.actor, roles,
                                             data.get("acknowledged", ()), self.clock, listeners=told)
                elif execute is not None:
                    out = execute(self.store, self.plan, self.target, run, self.actor, roles,
                                  data.get("acknowledged", ()), self.clock)
                else:
                    out = rungs.undo_ignore(self.store, self.plan, self.target, run, self.actor, roles, self.clock)
        finally:
            self._rung_on.clear()
            self._rollback_busy.release()
        label = {"approve": data.get("decision", "approve"), "keep": "keep the index", "retrigger": "new trigger"}
        self.call_from_thread(self.notify, out.message, title=f"Rollback: {label.get(what, what)}",
                              severity={"done": "information", "refused": "warning"}.get(out.status, "error"),
                              timeout=15)
        self._sync_view()
        self.call_from_thread(self.refresh_rollback, run.id)
        if what == "drop" and out.status == "done":
            self.call_from_thread(self.observe_after_rollback, run.id)

    @work(thread=True, group="rung-progress", exclusive=True, exit_on_error=False)
    def watch_rung(self, rung: str) -> None:
        """A rung while it runs, once a second, on a connection of its own (the rung's is busy):
        its statement's progress and the metadata-lock queue on the table (engine.flows.rollback_rungs
        ``rung_progress``, the execution step's MDL guard) — on the Rollback screen."""
        from engine.adapters.target import TargetError
        from engine.flows.rollback_rungs import rung_progress
        from engine.views.rollback import RungProgress

        screen = self.rollback_screen()
        started = time.monotonic()
        try:
            with self.target.session("rollback-progress", read_timeout=5) as s:
                while self._rung_on.is_set() and not self._stop.is_set():
                    progress = rung_progress(s, self.plan.schema, self.plan.change.table, rung,
                                             time.monotonic() - started)
                    self.call_from_thread(screen.show_rung, progress)
                    self._stop.wait(1.0)
        except TargetError as exc:
            self.call_from_thread(screen.show_rung,
                                  RungProgress(rung, time.monotonic() - started, note=f"progress unavailable: {exc}"))
            while self._rung_on.is_set() and not self._stop.wait(0.5):
                pass
        self.call_from_thread(screen.show_rung, None)

    def _rollback_notifier(self, run_id: str) -> Any:
        """The notifier of this console's rollback steps (engine/flows/notify.py), one per run; None
        when the plan names no webhook. Only this console's own steps reach it: a console watching
        the same run posts nothing of them."""
        if not self.plan.webhooks:
            return None
        from engine.flows.notify import Notifier

        current = self._rb_notifier
        if current is not None and current.run_id == run_id:
            return current

        def told(out: Any) -> None:
            if not out.ok:
                self.call_from_thread(self._exec_event, "webhook_failed",
                                      {"kind": out.kind, "to": out.where, "attempts": out.attempts,
                                       "message": out.message})

        self._rb_notifier = Notifier(self.store, self.plan, run_id, self.actor, profile=self.profile,
                                     on_result=told)
        return self._rb_notifier

    @work(thread=True, group="observe", exclusive=True, exit_on_error=False)
    def observe_after_rollback(self, run_id: str) -> None:
        """R4: 30 minutes of post-rollback observation, watched like the window; its start, its
        result and R5 pushed to the webhooks (engine/flows/rollback_rungs.py ``observe_after_rollback``)."""
        from engine.flows.monitor import sources_for
        from engine.flows.rollback_rungs import observe_after_rollback

        clock = StoppableClock(self.clock, self._stop)
        notifier = self._rollback_notifier(run_id)
        try:
            result = observe_after_rollback(
                self.store, self.plan, run_id, sources_for(self.plan, self.backend, clock), self.actor, clock,
                self.profile, listeners=(notifier.on_rollback_event,) if notifier is not None else (),
                monitor_listeners=(notifier.on_monitor_event,) if notifier is not None else ())
        except DriverStopped:
            return
        if result is None:
            return
        self.call_from_thread(self.notify, f"post-rollback observation: {'OK' if result.ok else 'NOT OK'} "
                              f"({result.ticks} samples, {len(result.alerts)} alert(s))", title="Rollback R4",
                              timeout=20)
        self._sync_view()
