"""The workers that follow and drive the run: the store read twice a second (the war room: every
console sees the same run), the executor and its monitor on the console that drives, the ALTER's
progress, the baseline sampled before it, the dashboard's samples — and the take-over of a run
whose driver is gone (docs/roles.md: one console drives, the others join).

Blocking calls run in thread workers; only ``call_from_thread`` crosses back to the UI.
"""

from __future__ import annotations

import gc
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from textual import work
from textual.worker import get_current_worker

from console.part import DRIVEN, AppPart
from engine.domain.clock import Clock
from engine.domain.roles import may
from engine.domain.runstate import ACTIVE
from engine.domain.sizegate import sampling_interval
from engine.domain.text import for_terminal
from engine.flows import guard, step_actions
from engine.flows.runbook import (
    TITLES,
    RunView,
    attach_run,
    clock_origin,
    is_plan_run,
    load_view,
    missing_for,
    step_of_run,
)
from screens.audit import AuditScreen
from screens.base import RunbookScreen, drawable
from screens.execution import AlterProgress, ExecutionScreen
from screens.locked import StepLocked

if TYPE_CHECKING:
    from engine.adapters.store import ExecutionRun
    from engine.views.report import ReportFacts

POLL_S = 0.5  # a second console sees a change within one second (docs/kill-switch.md)
QUIET = {"alter_progress", "wait_tick", "baseline_tick", "observation_tick"}


class DriverStopped(Exception):
    """The console that drove the run is closing: the run stays where it is, its lease runs out,
    and another console (or this one, restarted) takes it over after inspecting the target."""


class StoppableClock:
    """The App's clock for its long workers (executor, monitor, observation): a sleep ends early,
    with ``DriverStopped``, when the console closes — so quitting never waits out a 60-minute
    window. The run stays in the store; its lease runs out; it can be taken over."""

    def __init__(self, clock: Clock, stop: threading.Event):
        self.clock = clock
        self.stop = stop
        self.speed = float(getattr(clock, "speed", 1.0))

    def now(self) -> Any:
        return self.clock.now()

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def sleep(self, seconds: float) -> None:
        left = max(0.0, seconds)
        while True:
            if self.stop.is_set():
                raise DriverStopped()
            if left <= 0:
                return
            chunk = min(left, 0.5 * self.speed)  # at most half a real second between looks
            self.clock.sleep(chunk)
            left -= chunk


class RunWorkers(AppPart):
    """The run as the store has it, and the run driven from this console."""

    # --- the war room: the run as the store has it --------------------------------------------

    @work(thread=True, group="store-read", exit_on_error=False)
    def refresh_view(self) -> None:
        """Read the run (and find it, the first time); redraw only when something changed."""
        if self._view_busy:
            return  # the previous read is still going: polls never overlap
        self._view_busy = True
        try:
            if self.run_id is None or (self.view.run is not None and self.view.run.status not in ACTIVE):
                # None yet, or the one shown has ended: a run begun since (on another console) is
                # followed — a joined console stayed on the last run's FAIL and rollback for good.
                found = (attach_run(self.store, self.plan, self.clock.now()) if self.run_id is None else
                         next((r for r in self.store.find_runs(self.plan.tenant, ACTIVE, limit=1)
                               if r.id != self.run_id and is_plan_run(self.plan, r)), None))
                if found is not None:
                    if self.run_id is not None:
                        self.call_from_thread(self.notify, f"run {found.id[:8]} has begun: this console follows it",
                                              title="A new run", timeout=8)
                    self.run_id = found.id
                    self._land_on_run = True
                    step_actions.mark_present(self.store, self.plan.tenant, found.id, self.actor, self.roles,
                                              self.clock.now())
            view = load_view(self.store, self.plan.tenant, self.run_id, self.view, self.unstaffed)
            screen = self._top
            entries = self._run_entries(screen) if self.run_id and isinstance(screen, ExecutionScreen) else None
            if isinstance(screen, AuditScreen) and screen.entries:
                fresh = self.store.audit_entries(self.plan.tenant, since_seq=screen.last_seq, limit=500)
                if fresh:
                    self.call_from_thread(screen.append, fresh)
            faults = self._drill_faults() if self.plan.rehearsal else None
            facts, announcement = None, ""
            step = getattr(screen, "step", "")
            if self.run_id and step in ("execution", "report") and self._facts_for != (step, view.signature()):
                from engine.views.report import announce_start, report_facts

                facts = report_facts(self.store, self.plan, self.run_id)
                announcement = announce_start(facts)
                self._facts_for = (step, view.signature())
        except Exception as exc:  # noqa: BLE001 - the store is down: say so, keep the last view
            self.call_from_thread(self.set_frame, target_health=f"✗ store: {str(exc).splitlines()[0][:80]}")
            return
        finally:
            self._view_busy = False
        self.call_from_thread(self._show_view, view, entries, facts, announcement)
        if faults is not None and faults != self.frame.faults:
            self.call_from_thread(self.set_frame, faults=faults)

    def _run_entries(self, screen: ExecutionScreen) -> list[Any] | None:
        """The run's audit entries for the Execution screen, read incrementally (only those written
        since the last poll: a run's thousands were read again twice a second); None when the
        screen already shows them all."""
        run_id, cached, seq = self._run_audit
        if run_id != self.run_id:
            run_id, cached, seq = self.run_id, [], None
        fresh = self.store.audit_entries(self.plan.tenant, run_id=run_id, since_seq=seq, limit=2000)
        if fresh:
            cached = cached + fresh
            seq = fresh[-1].seq
        self._run_audit = (run_id, cached, seq)
        if not fresh and len(screen.entries) == len(cached):
            return None
        return cached

    def _sync_view(self) -> None:
        """From a worker, after a write: read the run now and show it (not at the next poll)."""
        view = load_view(self.store, self.plan.tenant, self.run_id, self.view, self.unstaffed)
        self.call_from_thread(self._show_view, view, None)

    def _show_view(self, view: RunView, entries: list[Any] | None, facts: ReportFacts | None = None,
                   announcement: str = "") -> None:
        changed = view.signature() != self.view.signature()
        self.view = view
        now = self.clock.now()
        run = view.run
        locked = self._locked(view)
        label = f"run {run.id[:8]} {run.status}" if run else ""
        driver = ""
        if run is not None and run.status in DRIVEN:
            driver = "you drive" if self.driving else f"joined: {run.claimed_by or '?'} drives"
            if not self.driving and self._driver_gone(run, now):
                driver = f"{run.claimed_by or 'the driver'} is gone (lease expired)"
                if self.dry_run:
                    driver += ": a canary lead or DBA console (not a dry run) takes it over"
                elif may("execute", self.roles):
                    driver += ": taking the run over"
                    self._take_over(run)
                else:
                    driver += ": a canary lead or DBA console takes it over"
        t0 = clock_origin(view, self.profile.checkpoints[0])
        t_end = (view.ended_at or run.completed_at) if run is not None and run.status not in ACTIVE else None
        self.set_frame(locked=locked, run=label, driver=driver, t0=t0, t_end=t_end)
        if self._say_monitoring and "monitoring" not in locked:
            self._say_monitoring = False
            self.notify("The monitoring window is running: 5 shows the live dashboard.", title="Execution",
                        timeout=8)
        if self._land_on_run and run is not None:
            self._land_on_run = False
            self._land(step_of_run(view, now))
        screen = self._top
        if isinstance(screen, RunbookScreen) and changed:
            screen.show_view(view, now)
        if entries is not None and isinstance(screen, ExecutionScreen) and drawable(screen):
            screen.show_entries(entries)
        if facts is not None:
            self.step_screen("execution", ExecutionScreen).show_announcement(announcement)
            if "report" in self.steps:
                self.report_screen().show(facts)

    # --- the baseline before the execution ------------------------------------------------------

    def _start_presampling(self, run_id: str) -> None:
        """The baseline from the run's creation on (engine/flows/presample.py): this console samples
        the plan's sources into the run until the execution's monitor takes over."""
        from engine.flows.presample import PreSampler

        if self.dry_run or self.presampler is not None:
            return
        self.presampler = PreSampler(
            self.plan, self.store, self.backend, run_id, self.actor, self.clock,
            on_error=lambda why: self.call_from_thread(self.notify, why, title="Baseline", severity="warning",
                                                       timeout=12)).start()

    def _stop_presampling(self) -> None:
        sampler, self.presampler = self.presampler, None
        if sampler is not None:
            sampler.stop()

    # --- step 4: execution -----------------------------------------------------------------------

    @staticmethod
    def _driver_gone(run: ExecutionRun, now: datetime) -> bool:
        """The driving console stopped renewing its lease (killed, or its machine lost)."""
        return run.lease_expires_at is not None and run.lease_expires_at < now

    def _take_over(self, run: ExecutionRun) -> None:
        """Become the driver of a run whose driver is gone: the executor inspects the target (an
        ALTER still running is found by its thread id, a finished one verified) and carries on —
        the monitoring window resumes from the stored samples, the gap left as it is."""
        if self.driving or self._stop.is_set() or self.dry_run:  # a dry run never drives
            return
        self.driving = True
        self.audit_in_worker("take_over", {"from": run.claimed_by, "lease_expired_at": str(run.lease_expires_at)})
        self.notify(f"{run.claimed_by} stopped driving run {run.id[:8]} (its lease expired): this console takes "
                    "it over and looks at the target first.", title="Taking over", timeout=10)
        self.execute(run.id, self._interval(), take_over=True)

    def action_execute(self) -> None:
        if self.dry_refused("executing the ALTER"):
            return
        if self.refuse("execute"):
            return
        if not self._need_run():
            return
        missing = missing_for("execution", self.view, self.clock.now())
        if missing:
            self.push_screen(StepLocked(TITLES["execution"], missing))
            return
        self.driving = True
        self.execute(self.run_id, self._interval())

    def _interval(self) -> float:
        """docs/metrics.md's sampling interval for the gate's band, on this console's clock."""
        g = self.view.gate()
        return sampling_interval({"warn": "WARNING"}.get(g.status if g else "", "PASS"),
                                 float(getattr(self.clock, "speed", 1.0)))

    @work(thread=True, group="executor", exit_on_error=False)
    def execute(self, run_id: str, interval: float, take_over: bool = False) -> None:
        me = get_current_worker()

        def on_event(name: str, data: dict[str, Any]) -> None:
            if me.is_cancelled:
                raise DriverStopped()
            if name in QUIET or name == "monitor_tick":
                seen = self.view.run
                if seen is not None and seen.id == run_id and seen.status not in ACTIVE:
                    raise DriverStopped()  # ended elsewhere (a manual rollback, a console's kill switch)
            if name in QUIET:
                return
            self.call_from_thread(self._exec_event, name, data)

        self._stop_presampling()  # the execution's monitor samples from here on
        try:  # the execute action: its role asked again (and a refusal audited) by the engine
            outcome = step_actions.execute(self.plan, self.store, self.backend, self.target, run_id, self.actor,
                                           self.roles, self.worker_name, StoppableClock(self.clock, self._stop),
                                           interval, on_event, self.profile, take_over=take_over)
        except DriverStopped:
            return
        except guard.RoleRefused as exc:
            self.call_from_thread(self.notify, f"Refused: {exc}", title="Not your role", severity="error",
                                  timeout=12, markup=False)
            return
        finally:
            self._progress_on.clear()
            self.driving = False
        self.call_from_thread(self.notify, f"run {run_id[:8]}: {outcome.status}"
                              + (f" ({outcome.fail_reason})" if outcome.fail_reason else "")
                              + f" — {outcome.message[:300]}", title="Execution",
                              severity="information" if outcome.status == "completed" else "warning", timeout=12)
        self._sync_view()

    def _exec_event(self, name: str, data: dict[str, Any]) -> None:
        screen = self.step_screen("execution", ExecutionScreen)
        if name == "alter_started":
            self._progress_on.set()
            self.watch_alter(self.run_id, int(data["thread_id"]))
        elif name in ("index_added", "failed", "cancelled"):
            self._progress_on.clear()
        elif name == "cooldown":
            screen.start_cooldown(self.clock.now() + timedelta(seconds=float(data["seconds"])))
        elif name == "monitoring":
            # Said by _show_view once step 5 can open: the view read before the event (and a
            # Monitoring screen still loading) keeps it locked for a moment, "the ALTER has not run".
            self._say_monitoring = True
        elif name == "observing":
            self.notify(f"{data.get('verdict')}: the {float(data.get('minutes', 15)):g}-minute post-success observation "
                        "runs before the run is declared complete (runbook 5.4).", title="Observation", timeout=10)
        elif name == "webhook_failed":
            # Pushed, not only shown: a post that failed is said on screen; the runbook goes on.
            self.notify(f"{data.get('kind')} not posted after {data.get('attempts')} attempt(s): "
                        f"{for_terminal(str(data.get('message', '')))}", title="Webhook", severity="warning",
                        timeout=15, markup=False)
            return
        elif name == "webhook_posted":
            return
        self.refresh_view()

    @work(thread=True, group="progress", exclusive=True, exit_on_error=False)
    def watch_alter(self, run_id: str, thread_id: int) -> None:
        """The ALTER's progress and the metadata-lock guard, once a second, on a connection of its
        own (the ALTER's connection is busy; the kill switch has another)."""
        from engine.adapters.target import TargetError, alter_stage

        screen = self.step_screen("execution", ExecutionScreen)
        schema, table = self.plan.schema, self.plan.change.table
        started = self.clock.monotonic()
        try:
            with self.target.session("progress", read_timeout=5) as s:
                while self._progress_on.is_set():
                    stage = alter_stage(s, thread_id)
                    mdl = s.metadata_locks(schema, table)
                    waiters = tuple(w for w in mdl.waiters if w.get("thread_id") != thread_id)
                    blockers = tuple(s.long_transactions_on_table(schema, table, older_than_s=0)) if (
                        waiters or stage is None) else ()
                    blockers = tuple(b for b in blockers if b.get("thread_id") != thread_id)
                    progress = AlterProgress(stage.stage if stage else "", stage.fraction if stage else None,
                                             self.clock.monotonic() - started, waiters, blockers, mdl.note)
                    self.call_from_thread(screen.show_progress, progress)
                    self._progress_on.wait(0)  # let a clear() land before the sleep
                    threading.Event().wait(1.0)
        except TargetError as exc:
            self.call_from_thread(screen.show_progress, AlterProgress(note=f"progress unavailable: {exc}"))
        self.call_from_thread(screen.show_progress, AlterProgress())

    # --- steps 5 and 6: the monitoring dashboard and the decision --------------------------------

    @work(thread=True, group="dashboard", exit_on_error=False)
    def refresh_dashboard(self) -> None:
        """Once a second while the dashboard or the decision is on screen: the new samples since the
        last look, evaluated as the driver's monitor does (every console alike; no target query)."""
        screen = self._top
        step = getattr(screen, "step", "")
        run_id = self.run_id
        if step not in ("monitoring", "decision") or run_id is None or self._dash_busy.locked():
            return
        from engine.views.dashboard import dashboard_view, decision_view, load_dashboard

        with self._dash_busy:
            if self._dash is not None and self._dash.facts.run_id != run_id:
                self._dash = None
            loads = 0
            while True:
                now = self.clock.now()
                self._dash = load_dashboard(self.store, self.plan, run_id, now, self._dash, max_ticks=300)
                loads += 1
                if step == "monitoring":
                    self.call_from_thread(screen.show_dashboard, dashboard_view(self._dash.profile, self._dash, now))
                else:
                    self.call_from_thread(screen.show_decision, decision_view(self._dash))
                if not self._dash.catching_up or self._stop.is_set():
                    break
            if loads > 1:
                # A window caught up: its ~200,000 objects stay for the run. Out of the collector's
                # sight they no longer make each full collection cost ~140 ms (every ~20 s).
                gc.freeze()
