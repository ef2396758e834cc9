"""The Textual App: the war room's console.

The App owns every worker (a worker dies with the node that owns it, and screens come and go),
the global bindings — F9, the kill switch, a priority binding that works on every screen, with an
input focused, in tmux and over SSH — and the frame state every screen draws. Blocking calls
(store, target, HTTP) run in thread workers; only ``call_from_thread`` crosses back.

One console **drives** a run (it holds the lease and runs the statements); the others **join**
it: they read the same run from the store twice a second, sign, approve and press the kill
switch, and do not poll the target a second time (docs/roles.md).
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.cells import cached_cell_len
from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.worker import Worker, WorkerState, get_current_worker

from engine.adapters import sql
from engine.adapters.identity import Identity, current_identity, worker_id
from engine.adapters.killswitch import KillSwitchBackend, KillSwitchReading, backend_for
from engine.adapters.paths import state_dir
from engine.domain.cases import PRIORITY
from engine.domain.clock import Clock, SystemClock, set_display_zone
from engine.domain.plan import Plan
from engine.domain.roles import may
from engine.domain.runstate import ACTIVE
from engine.domain.sizegate import sampling_interval
from engine.domain.text import for_terminal
from engine.flows import guard, step_actions
from engine.flows.runbook import (
    STEPS,
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
from screens.base import KeysAnswer, RunbookScreen, StepShown, drawable
from screens.deactivate import DeactivateKillSwitch, DeactivationRequest
from screens.execution import AlterProgress, ExecutionScreen
from screens.frame import DialogKillBanner, FrameState, KillSwitchPressed
from screens.locked import StepLocked
from screens.plan import PlanScreen, ScopeFacts
from screens.prechecks import PrechecksScreen
from screens.sizegate import SizeGateScreen, TableSize

if TYPE_CHECKING:  # loaded on a worker after the first screen is drawn (SQLAlchemy is slow to import)
    from engine.adapters.store import ExecutionRun, Store
    from engine.adapters.target import Target
    from engine.views.report import ReportFacts
    from screens.decision import OpenRollback
    from screens.report import ReportCopy, ReportExport, ReportLesson, ReportPost, ReportScreen
    from screens.rollback import (
        RollbackApprove,
        RollbackDecide,
        RollbackExecute,
        RollbackKeepIndex,
        RollbackRefresh,
        RollbackRetrigger,
    )

POLL_S = 0.5  # a second console sees a change within one second (docs/kill-switch.md)
# The kill switch alone, more often: an activation reaches every console within 250 ms (issue 7's
# load target; one read is ~2 ms on SQLite or PostgreSQL, bench/killswitch_load.py).
KILL_POLL_S = 0.2
HEALTH_S = 5.0
QUIET = {"alter_progress", "wait_tick", "baseline_tick", "observation_tick"}
DRIVEN = ("running", "observing")  # a driver holds the run's lease (docs/states.md)


class KillSwitchSaid(Message):
    """What the kill switch's worker has to say (a retry, a failure). Posted, not called: a
    ``post_message`` from the worker never waits for the screen, so a busy or blocked UI cannot
    hold back the switch's next write."""

    def __init__(self, severity: str, text: str) -> None:
        super().__init__()
        self.severity, self.text = severity, text


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


def step_actions_provider() -> type[Any]:
    """The palette's step actions, imported when the palette first opens (not at start)."""
    from console.palette import StepActions

    return StepActions


TRIM_S = 30.0  # how often the console hands freed heap back to the system (``trim_heap``)


def trim_heap() -> None:
    """Give the memory the console freed back to the system (glibc ``malloc_trim``; elsewhere
    nothing). Its polls run on short-lived worker threads — a store read twice a second, the kill
    switch five times — and glibc keeps what they freed in its per-thread arenas. And empty Rich's
    cell-width cache first: Textual measures every text it draws through it (4,096 entries, any
    length), and a clock that ticks puts new strings in it every second — it was what grew, ~0.2 MB a
    real minute for the first quarter of an hour (bench/dashboard_rss.py, a tracemalloc diff)."""
    cached_cell_len.cache_clear()
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None

class CanaryApp(KeysAnswer, App):
    TITLE = "Canary Console"
    COMMANDS = App.COMMANDS | {step_actions_provider}
    BINDINGS = [
        Binding("f9", "kill_switch", "KILL SWITCH", priority=True, id="kill-switch"),
        Binding("f2", "audit", "Audit log", id="audit"),
        Binding("f8", "deactivate", "Kill switch off", id="kill-switch-off"),
        Binding("f7", "kill_reason", "Why (kill switch)", show=False, id="kill-switch-reason"),
        Binding("f6", "faults", "Faults (drill)", id="faults"),
        Binding("f4", "dry_run", "Dry run", id="dry-run"),
        *(Binding(str(n), f"goto('{step}')", TITLES[step], show=False, id=f"step-{step}")
          for n, step in enumerate(STEPS, start=1)),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, plan: Plan, store: Store, identity: Identity | None = None, clock: Clock | None = None,
                 backend: KillSwitchBackend | None = None, poll: bool = True, role: str | None = None,
                 target: Target | None = None, dry_run: bool = False):
        super().__init__()
        self.plan = plan
        self.dry_run = dry_run  # `run --dry-run`: read-only, the SQL shown (docs/dry-run.md)
        self.presampler: Any = None  # engine/flows/presample.py: the baseline from the run's creation on
        self.profile = plan.profile()  # built and validated once: the view polls use it twice a second
        self.unstaffed = tuple(plan.unstaffed())  # runbook 2.5.1: shown as missing, blocks the sign-off
        self.store = store
        self.identity = identity or current_identity()
        self.clock = clock or SystemClock()
        self.backend = backend or backend_for(plan, store)
        self._target = target  # made on first use, on a worker (pymysql is not needed to draw)
        self.poll = poll
        held = plan.roles_of(self.identity.user)
        if role is not None and role not in held:
            raise ValueError(f"--role {role}: {self.identity.user} holds "
                             f"{', '.join(sorted(held)) or 'no role'} in {plan.source}")
        self.roles = (role,) if role else tuple(sorted(held))
        self.worker_name = worker_id(self.identity)
        self.view = RunView()
        self.run_id: str | None = None
        self.driving = False
        self.count_cancel = threading.Event()
        self._view_busy = False
        self._kill_shown: tuple | None = None  # what the frame was last told of the kill switch
        self._progress_on = threading.Event()
        self._rung_on = threading.Event()  # a rollback rung runs: its progress is watched (watch_rung)
        self._stop = threading.Event()  # set when the console closes: long workers end
        self.frame = FrameState(user=self.identity.actor, roles=self.roles,
                                target=f"{plan.schema}.{plan.change.table}@{plan.connection.socket or plan.connection.host}"
                                       f"{'' if plan.connection.socket else ':' + str(plan.connection.port)}",
                                now=self.clock.now(), locked=frozenset(STEPS[1:]),
                                speed=float(getattr(self.clock, "speed", 1.0)), dry_run=dry_run,
                                utc_offset=plan.off_peak.utc_offset)
        set_display_zone(plan.off_peak.utc_offset)  # every wall time shown: the plan's time zone
        self.steps: dict[str, RunbookScreen] = {
            "plan": PlanScreen(plan, self.identity.user), "prechecks": PrechecksScreen(plan),
            "size_gate": SizeGateScreen(plan), "execution": ExecutionScreen(plan),
        }  # + "rollback" and "report", installed once the store and what they need are loaded
        self._rollback_busy = threading.Lock()
        self._rb_notifier: Any = None  # engine.flows.notify.Notifier of this console's rollback steps
        self._sign_lock = threading.Lock()
        self._dash: Any = None  # engine.views.dashboard.DashboardData, only ever touched by its worker
        self._dash_busy = threading.Lock()
        self._facts_for: tuple[Any, ...] | None = None
        self._faults: Any = None  # engine.drill.faults.FaultBox, a drill's only (made on first use)
        self._pending_goto: str | None = None  # a step asked for before its screen was loaded
        self._land_on_run = False  # a run found on opening: show the step it is in (once)
        # The window opened (the executor's "monitoring" event): said once step 5 opens, not before.
        self._say_monitoring = False
        self._faults_lock = threading.Lock()
        self._fault_seq = 0  # the audit trail read so far for a drill's faults (``_drill_faults``)
        self._faults_on: dict[str, str] = {}

    @property
    def target(self) -> Target:
        if self._target is None:
            from engine.adapters.target import Target

            self._target = Target(self.plan.connection)
        return self._target

    @property
    def actor(self) -> str:
        return self.identity.actor

    def on_mount(self) -> None:
        for name, screen in self.steps.items():
            self.install_screen(screen, name=name)
        self.push_screen("plan")
        if self.dry_run:
            from screens.dryrun import DryRunScreen

            self.install_screen(DryRunScreen(), name="dry_run")
            self.push_screen("dry_run")
        # The first frame first; then the store's imports, the reads and the polls.
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        self.open_store()
        if self.dry_run:
            self.walk_dry_run()
        self.read_scope()
        self.read_kill_switch()
        self.refresh_view()
        if self.poll:
            self.set_interval(KILL_POLL_S, self.read_kill_switch)
            self.set_interval(POLL_S, self.refresh_view)
            self.set_interval(HEALTH_S, self.check_health)
            self.set_interval(1.0, self.tick)
            self.set_interval(1.0, self.refresh_dashboard)
            self.set_interval(TRIM_S, trim_heap)
            self.check_health()

    @work(thread=True, group="store-open", exit_on_error=False)
    def open_store(self) -> None:
        """Wait for the store (opened on a thread when the CLI made it), then load what the later
        steps need; a store that cannot open ends the console with its message."""
        wait = getattr(self.store, "wait_open", None)
        if wait is not None:
            try:
                wait()
            except Exception as exc:  # noqa: BLE001 - StoreError and friends: said, not shown as a traceback
                self.call_from_thread(self.exit, return_code=1, message=f"error: {exc}")
                return
        import engine.flows.enforce  # noqa: F401 - warm for the first F9
        import engine.flows.killswitch_actions  # noqa: F401
        from screens.decision import DecisionScreen
        from screens.monitoring import MonitoringScreen
        from screens.report import ReportScreen
        from screens.rollback import RollbackScreen

        for name, screen in (("monitoring", MonitoringScreen(self.plan)), ("decision", DecisionScreen(self.plan)),
                             ("rollback", RollbackScreen(self.plan, self.roles)), ("report", ReportScreen(self.plan))):
            self.call_from_thread(self._install_late, name, screen)

    def _install_late(self, name: str, screen: RunbookScreen) -> None:
        self.steps[name] = screen
        self.install_screen(screen, name=name)
        self.set_frame(locked=self._locked(self.view))
        if self._pending_goto == name:  # asked for while it loaded: go there now
            self._pending_goto = None
            self.action_goto(name)

    def _locked(self, view: RunView) -> frozenset[str]:
        now = self.clock.now()
        return frozenset(s for s in STEPS if s not in self.steps or missing_for(s, view, now))

    @property
    def _top(self) -> Any:
        """The screen on top, or None while the console starts or closes (timers and workers may
        still call in then)."""
        return self.screen_stack[-1] if self.screen_stack else None

    def on_unmount(self) -> None:
        if self._faults is not None:
            self._faults.close()  # a drill's injected faults stop with the console
        self._stop.set()
        self._progress_on.clear()
        self.count_cancel.set()
        if self.presampler is not None:
            self.presampler.cancel()  # a daemon thread: it ends at its next tick, never holds the exit

    # --- the frame ---------------------------------------------------------------------------

    def set_frame(self, **changes: Any) -> None:
        self.frame = replace(self.frame, now=self.clock.now(), **changes)
        screen = self._top
        if isinstance(screen, RunbookScreen):
            screen.apply_frame(self.frame)
        elif screen is not None:
            self._frame_under_dialog(screen)

    def push_screen(self, screen: Any, *args: Any, **kwargs: Any) -> Any:
        """Every screen and dialog comes up with the frame as it is: a dialog opened while the
        kill switch is on is covered by its banner too."""
        pushed = super().push_screen(screen, *args, **kwargs)
        self.call_after_refresh(self._cover_top)
        return pushed

    def _cover_top(self) -> None:
        top = self._top
        if top is not None and not isinstance(top, RunbookScreen) and self.frame.kill_active:
            self._frame_under_dialog(top)

    def _frame_under_dialog(self, dialog: Any) -> None:
        """A dialog is on top: the runbook screen under it gets the frame too (it shows through),
        and a kill switch turned on covers the dialog with its banner at once — not after Esc."""
        under = next((s for s in reversed(self.screen_stack) if isinstance(s, RunbookScreen)), None)
        if under is not None:
            under.apply_frame(self.frame)
        banner = getattr(dialog, "_kill_cover", None)
        if banner is None:
            if not self.frame.kill_active or not dialog.is_mounted:
                return
            banner = dialog._kill_cover = DialogKillBanner(self.frame)
            dialog.mount(banner)
            return
        banner.state = self.frame

    def on_step_shown(self, message: StepShown) -> None:
        screen = message.screen
        self.frame = replace(self.frame, now=self.clock.now(), step=screen.step or self.frame.step)
        screen.apply_frame(self.frame)
        screen.show_view(self.view, self.clock.now())
        if screen.step in ("execution", "report"):
            self._facts_for = None
            self.refresh_view()
        if screen.step in ("monitoring", "decision"):
            self.refresh_dashboard()

    def tick(self) -> None:
        self.set_frame()
        screen = self._top
        if isinstance(screen, RunbookScreen) and drawable(screen):
            screen.tick(self.view, self.clock.now())

    def refuse(self, action: str) -> bool:
        """True (and said now, and audited on a worker) when the one table (engine/domain/roles.py)
        does not give this console's roles ``action``: the words and the audit entry are the flow
        layer's (engine/flows/guard.py), as the CLI's and the API's."""
        text = guard.refusal_text(action, self.actor, self.roles)
        if text is None:
            return False
        self.refusal_in_worker(action)
        self.notify(f"Refused: {text}. Ask them; the attempt is in the audit log.", title="Not your role",
                    severity="error", timeout=12, markup=False)
        return True

    @work(thread=True, group="store-write", exit_on_error=False)
    def refusal_in_worker(self, action: str) -> None:
        guard.refusal(self.store, self.plan.tenant, self.actor, self.roles, action, self.run_id)

    @work(thread=True, group="store-write", exit_on_error=False)
    def audit_in_worker(self, action: str, details: dict[str, Any]) -> None:
        """A console note (engine/flows/step_actions.py ``CONSOLE_NOTES``): looked at, copied."""
        step_actions.note(self.store, self.plan.tenant, self.actor, action, self.run_id, details)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """No traceback reaches a user: a worker that failed says what failed, in one line, and
        the details go to the console's log file."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        log = state_dir() / "console.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as fh:
                fh.write(f"{self.clock.now().isoformat()} {event.worker.name}: "
                         + "".join(traceback.format_exception(error)) + "\n")
        except OSError:
            pass
        first = str(error).splitlines()[0][:200] if str(error) else error.__class__.__name__
        self.notify(f"{event.worker.group or event.worker.name} failed: {first}. Nothing was lost; details in {log}.",
                    title="Error", severity="error", timeout=20)

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
            entries = (self.store.audit_entries(self.plan.tenant, run_id=self.run_id, limit=2000)
                       if self.run_id and isinstance(screen, ExecutionScreen) else None)
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
        t_end = run.completed_at if run is not None and run.status not in ACTIVE else None
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
            self.steps["execution"].show_announcement(announcement)  # type: ignore[attr-defined]
            if "report" in self.steps:
                self.steps["report"].show(facts)  # type: ignore[attr-defined]

    def _land(self, step: str) -> None:
        """A console that opens on a run already under way (restarted after a crash, taking it
        over, joining late) shows the step the run is in — unless the person has moved on from the
        Plan screen already. A screen still loading opens when it is loaded."""
        if step == "plan" or not isinstance(self._top, PlanScreen):
            return
        if step not in self.steps:
            self._pending_goto = step
            return
        self.action_goto(step)

    def action_goto(self, step: str) -> None:
        if step not in self.steps:
            self._pending_goto = step
            self.notify(f"{TITLES[step]} is still loading: it opens in a moment.", timeout=4)
            return
        self._pending_goto = None
        missing = missing_for(step, self.view, self.clock.now())
        if missing:
            self.audit_in_worker("step_locked", {"step": step, "missing": [str(m) for m in missing][:10]})
            self.push_screen(StepLocked(TITLES[step], missing))
            return
        if self.screen is not self.steps[step]:
            while isinstance(self.screen, (AuditScreen, StepLocked)):
                self.pop_screen()
            self.switch_screen(step)

    # --- connection health (the frame) ----------------------------------------------------------

    @work(thread=True, group="health", exclusive=True, exit_on_error=False)
    def check_health(self) -> None:
        """A ping of the target, unless another console drives the run (joined consoles do not
        poll the target a second time)."""
        from engine.adapters.target import TargetError

        run = self.view.run
        if run is not None and run.status in DRIVEN and not self.driving:
            self.call_from_thread(self.set_frame, target_health="● (driver's connection)")
            return
        try:
            with self.target.session("health") as s:
                s.query(sql.HEALTH)
            health = "● ok"
        except TargetError as exc:
            health = f"✗ down: {str(exc)[:60]}"
        self.call_from_thread(self.set_frame, target_health=health)

    # --- the kill switch -----------------------------------------------------------------------

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

    def _kill_said(self, severity: str, text: str) -> None:
        self.post_message(KillSwitchSaid(severity, text))  # thread-safe, never waits for the screen

    @on(KillSwitchSaid)
    def _show_kill_said(self, said: KillSwitchSaid) -> None:
        self.notify(said.text, title="Kill switch", markup=False,
                    severity=said.severity,  # type: ignore[arg-type]
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

    # --- a drill's faults (rehearsal plans only) ----------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "faults" and not self.plan.rehearsal:
            return False  # not even shown: a real canary has no fault keys
        if action == "dry_run" and not self.dry_run:
            return False
        if action == "post_announcement" and not self.plan.webhook_url:
            return False  # never acts with this plan (no webhook): not shown; c copies the announcement
        return None if self.why_not(action, parameters) else True

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        """Why an App action a step's footer shows (``app.cancel_count`` …) cannot act now: the
        step's screen says, from its own ``why_not`` (one place per screen)."""
        # The step under a palette or a dialog: the palette lists that step's actions.
        screen = next((s for s in reversed(self.screen_stack) if isinstance(s, RunbookScreen)), None)
        return screen.why_not(action, parameters) if screen is not None else None

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

    def dry_refused(self, what: str) -> bool:
        """True (and said in one line) in a dry run, where nothing that writes is sent."""
        if not self.dry_run:
            return False
        self.notify(f"DRY RUN: {what} is not done in a dry run — its SQL is on the dry-run screen (F4).",
                    title="Dry run", severity="warning", timeout=8)
        return True

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
        from engine.drill.faults import FaultTarget, catalogue
        from screens.faults import FaultRow

        faults = self._faults.faults if self._faults is not None else catalogue(FaultTarget.of_plan(self.plan))
        return tuple(FaultRow(f.key, f.name, f.description, f.shows, f.since if f.active else None,
                              str(f.last_error or "")) for f in faults)

    def on_fault_toggle(self, message: Any) -> None:
        self.toggle_fault(message.key)

    @work(thread=True, group="faults", exit_on_error=False)
    def toggle_fault(self, key: str) -> None:
        from engine.drill.faults import FaultBox, FaultError
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
        self.call_from_thread(self.steps["plan"].show_scope, facts)  # type: ignore[attr-defined]

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

    # --- step 2: the prechecks ---------------------------------------------------------------------

    def _need_run(self, active: bool = True) -> bool:
        run = self.view.run
        if run is None or (active and run.status != "scheduled"):
            self.notify("This needs a scheduled run: begin the prechecks on the Plan screen (b)." if run is None
                        else f"Run {run.id[:8]} is {run.status}: prechecks are over.", severity="warning")
            return False
        return True

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

        def report(result: Any) -> None:
            selftest.record(self.store, self.plan.tenant, result, self.actor)
            self._sync_view()
        try:
            selftest.run_all(report=report)
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
        self.call_from_thread(self.notify, f"{case} acknowledged as {ack.role} by {self.actor}", timeout=5)

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
        self.call_from_thread(self.notify, f"{kind.replace('_', ' ')} recorded as dba by {self.actor}", timeout=4)

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

        screen: SizeGateScreen = self.steps["size_gate"]  # type: ignore[assignment]
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
        ex = step_actions.executor_for(self.plan, self.store, self.backend, self.target, run_id, self.actor,
                                       self.worker_name, StoppableClock(self.clock, self._stop), interval, on_event,
                                       self.profile)
        try:
            outcome = ex.take_over(run_id) if take_over else ex.execute(run_id)
        except DriverStopped:
            return
        finally:
            self._progress_on.clear()
            ex.monitor.close()
            self.driving = False
        self.call_from_thread(self.notify, f"run {run_id[:8]}: {outcome.status}"
                              + (f" ({outcome.fail_reason})" if outcome.fail_reason else "")
                              + f" — {outcome.message[:300]}", title="Execution",
                              severity="information" if outcome.status == "completed" else "warning", timeout=12)
        self._sync_view()

    def _exec_event(self, name: str, data: dict[str, Any]) -> None:
        screen: ExecutionScreen = self.steps["execution"]  # type: ignore[assignment]
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

        screen: ExecutionScreen = self.steps["execution"]  # type: ignore[assignment]
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

    def _announcement(self) -> str:
        screen: ExecutionScreen = self.steps["execution"]  # type: ignore[assignment]
        return screen.announcement

    def copy_text(self, text: str) -> str:
        """OSC 52 to the terminal (over SSH too; inside tmux it needs ``set -g set-clipboard on``,
        which the hint says)."""
        self.copy_to_clipboard(text)
        from engine.views.report import copy_hint, in_tmux

        return copy_hint(in_tmux())

    def action_copy_announcement(self) -> None:
        text = self._announcement()
        if not text:
            self.notify("No announcement yet: it is written once the run exists.", severity="warning")
            return
        hint = self.copy_text(text)
        self.audit_in_worker("run_announced", {"via": "clipboard (OSC 52)"})
        self.notify(f"Announcement copied. {hint}", timeout=6)

    def action_post_announcement(self) -> None:
        if not self.plan.webhook_url:
            self.notify("No webhook in the plan ([integrations] webhook_url): copy it (c) and post it by hand.",
                        severity="warning", timeout=8)
            return
        self.post_text(self._announcement(), "run_announced")

    @work(thread=True, group="webhook", exit_on_error=False)
    def post_text(self, text: str, action: str) -> None:
        result = step_actions.post_text(self.store, self.plan, self.run_id, self.actor, text, action)
        self.call_from_thread(self.notify, result.message, severity="information" if result.ok else "error")
        self._sync_view()

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

    def on_checkpoint_note(self, message: Any) -> None:
        self.record_checkpoint(message.label, message.note, message.ok)

    @work(thread=True, group="store-write", exit_on_error=False)
    def record_checkpoint(self, label: str, note: str, ok: bool) -> None:
        if self.run_id is None:
            return
        step_actions.record_checkpoint(self.store, self.plan, self.run_id, label, note, ok, self.actor, self.clock.now())
        self.call_from_thread(self.notify, f"checkpoint {label} recorded by {self.actor}", timeout=4)

    def on_copy_text(self, message: Any) -> None:
        hint = self.copy_text(message.text)
        self.audit_in_worker("announcement_copied", {"text": message.text[:120]})
        self.notify(f"Copied. {hint}", timeout=6)

    def on_post_text(self, message: Any) -> None:
        if not self.plan.webhook_url:
            self.notify("No webhook in the plan ([integrations] webhook_url): copy it (y) and post it by hand.",
                        severity="warning", timeout=8)
            return
        self.post_text(message.text, "announcement_posted")

    def on_pause_decision(self, message: Any) -> None:
        if not self.refuse("auto_pause_approval"):
            self.pause_decision(message.decision, message.note)

    @work(thread=True, group="store-write", exit_on_error=False)
    def pause_decision(self, decision: str, note: str) -> None:
        from engine.flows.monitor import approve_pause

        try:
            approve_pause(self.store, self.plan.tenant, self.run_id or "", decision, self.actor, set(self.roles), note)
        except (PermissionError, ValueError) as exc:
            self.call_from_thread(self.notify, f"Refused: {exc}", severity="error", timeout=12)
            return
        self.call_from_thread(self.notify, f"AUTO-PAUSE: {decision} approved by {self.actor}; the monitor "
                              "acts on it at its next sample", timeout=8)
        self._sync_view()

    def on_team_decision(self, message: Any) -> None:
        self.team_decision(message.decision, message.note)

    @work(thread=True, group="store-write", exit_on_error=False)
    def team_decision(self, decision: str, note: str) -> None:
        from engine.flows.monitor import record_team_decision

        try:
            record_team_decision(self.store, self.plan.tenant, self.run_id or "", decision, self.actor,
                                 set(self.roles), note)
        except (PermissionError, ValueError) as exc:  # audited by the flow
            self.call_from_thread(self.notify, f"Refused: {exc}", severity="error", timeout=12)
            return
        self._sync_view()
        if decision == "remove":
            self.call_from_thread(self.action_goto, "rollback")

    def on_open_rollback(self, message: OpenRollback) -> None:
        """The Decision step's FAIL: the Rollback step opens on the trigger its failing criteria point
        to, with the metrics it showed (they go into R1's record)."""
        self.steps["rollback"].preselect(message.trigger, dict(message.metrics))  # type: ignore[attr-defined]
        self.action_goto("rollback")

    # --- step 7: manual rollback (docs/rollback.md) ---------------------------------------------------------

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
        self.call_from_thread(self.steps["rollback"].show, view, inspection)  # type: ignore[attr-defined]

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

        screen = self.steps["rollback"]
        started = time.monotonic()
        try:
            with self.target.session("rollback-progress", read_timeout=5) as s:
                while self._rung_on.is_set() and not self._stop.is_set():
                    progress = rung_progress(s, self.plan.schema, self.plan.change.table, rung,
                                             time.monotonic() - started)
                    self.call_from_thread(screen.show_rung, progress)  # type: ignore[attr-defined]
                    self._stop.wait(1.0)
        except TargetError as exc:
            self.call_from_thread(screen.show_rung,  # type: ignore[attr-defined]
                                  RungProgress(rung, time.monotonic() - started, note=f"progress unavailable: {exc}"))
            while self._rung_on.is_set() and not self._stop.wait(0.5):
                pass
        self.call_from_thread(screen.show_rung, None)  # type: ignore[attr-defined]

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

    # --- step 8: the report ----------------------------------------------------------------------

    def on_report_copy(self, message: ReportCopy) -> None:
        hint = self.copy_text(message.text)
        self.audit_in_worker("report_copied", {"view": message.view})
        self.steps["report"].show_result(f"copied ({message.view}). {hint}", True, "copy")  # type: ignore[attr-defined]

    def on_report_export(self, message: ReportExport) -> None:
        self.export_report(message.text, message.view)

    def on_report_post(self, message: ReportPost) -> None:
        self.post_report(message.text, message.view)

    def on_report_lesson(self, message: ReportLesson) -> None:
        self.record_lesson(message.what, message.impact, message.cause, message.action)

    @work(thread=True, group="report", exit_on_error=False)
    def record_lesson(self, what: str, impact: str, cause: str, action: str) -> None:
        """Runbook 8.3: the same engine function as ``canary-console lesson``; the report is rebuilt
        with the new row."""
        from engine.views.report import report_facts

        screen: ReportScreen = self.steps["report"]  # type: ignore[assignment]
        if self.run_id is None:
            return
        try:
            step_actions.record_lesson(self.store, self.plan, self.run_id, self.actor, self.roles, what, impact, cause,
                                       action)
        except (PermissionError, ValueError) as exc:
            self.call_from_thread(screen.show_result, str(exc), False)
            return
        facts = report_facts(self.store, self.plan, self.run_id)
        self.call_from_thread(screen.show, facts)
        self.call_from_thread(screen.show_result, f"lesson recorded: {for_terminal(what)[:80]} (in the report's "
                              "Lessons Learned; e exports it)", True)

    @work(thread=True, group="report", exit_on_error=False)
    def export_report(self, text: str, view: str) -> None:
        from engine.views.report import ExportError

        screen: ReportScreen = self.steps["report"]  # type: ignore[assignment]
        try:
            path = step_actions.export_report(self.store, self.plan, self.run_id, self.actor, screen.facts, text, view,
                                              state_dir() / "reports", self.clock.now())
        except ExportError as exc:
            self.call_from_thread(screen.show_result, str(exc), False, "export")
            return
        self.call_from_thread(screen.show_result, f"written to {path}", True, "export")

    @work(thread=True, group="webhook", exit_on_error=False)
    def post_report(self, text: str, view: str) -> None:
        screen: ReportScreen = self.steps["report"]  # type: ignore[assignment]
        result = step_actions.post_report(self.store, self.plan, self.run_id, self.actor, text, view)
        self.call_from_thread(screen.show_result, result.message, result.ok, "post")

    # --- the audit log ---------------------------------------------------------------------------

    def action_audit(self) -> None:
        if isinstance(self.screen, AuditScreen):
            return
        self.push_screen(AuditScreen())
        self.read_audit()

    @work(thread=True, group="store-read", exit_on_error=False)
    def read_audit(self) -> None:
        entries = self.store.audit_entries(self.plan.tenant, limit=5000, latest=True)
        self.call_from_thread(self._show_audit, entries)

    def _show_audit(self, entries: list[Any]) -> None:
        if isinstance(self._top, AuditScreen):
            self._top.show(entries)

