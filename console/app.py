"""The Textual App: the war room's console.

The App owns every worker (a worker dies with the node that owns it, and screens come and go),
the global bindings — F9, the kill switch, a priority binding that works on every screen, with an
input focused, in tmux and over SSH — and the frame state every screen draws. Blocking calls
(store, target, HTTP) run in thread workers; only ``call_from_thread`` crosses back.

One console **drives** a run (it holds the lease and runs the statements); the others **join**
it: they read the same run from the store twice a second, sign, approve and press the kill
switch, and do not poll the target a second time (docs/roles.md).

``CanaryApp`` holds the state and starts the polls; what it does is in its parts, one role each
(console/part.py lists them).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import traceback
from typing import TYPE_CHECKING, Any

from rich.cells import cached_cell_len
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from console.drill import DrillKeys
from console.frame import HEALTH_S, FrameKeeper
from console.kill_switch import KILL_POLL_S, KillSwitchKeys
from console.navigation import StepNavigation
from console.run_workers import POLL_S, RunWorkers
from console.step_prechecks import PrecheckSteps
from console.step_report import ReportSteps
from console.step_rollback import RollbackSteps
from console.step_window import WindowSteps
from engine.adapters.identity import Identity, current_identity, worker_id
from engine.adapters.killswitch import KillSwitchBackend, backend_for
from engine.adapters.paths import state_dir
from engine.domain.clock import Clock, SystemClock, set_display_zone
from engine.domain.plan import Plan
from engine.flows.runbook import STEPS, TITLES, RunView
from screens.base import KeysAnswer, RunbookScreen
from screens.execution import ExecutionScreen
from screens.frame import FrameState
from screens.plan import PlanScreen
from screens.prechecks import PrechecksScreen
from screens.sizegate import SizeGateScreen

if TYPE_CHECKING:  # loaded on a worker after the first screen is drawn (SQLAlchemy is slow to import)
    from engine.adapters.store import Store
    from engine.adapters.target import Target

__all__ = ["KILL_POLL_S", "POLL_S", "CanaryApp"]


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


class CanaryApp(KeysAnswer, KillSwitchKeys, FrameKeeper, StepNavigation, RunWorkers, PrecheckSteps, WindowSteps,
                RollbackSteps, ReportSteps, DrillKeys, App):
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
        self.closed_by: str | None = None  # the signal that closed the console (SIGTERM, SIGHUP), if one did
        self._signals_before: dict[signal.Signals, Any] = {}
        self._view_busy = False
        self._run_audit: tuple[str | None, list[Any], int | None] = (None, [], None)  # run_workers._run_entries
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
        self._catch_signals()

    # SIGTERM (``kill``, ``timeout``, a service manager) and SIGHUP (the SSH session dropped) close
    # the console as Ctrl+Q does. Python's default for both ended the process where it stood: the
    # terminal was left in the console's screen and raw mode (``reset`` needed), a drill's sandbox
    # and workload were not stopped, and nothing said why. The run itself is not touched: as after
    # Ctrl+Q, its lease runs out and a console started again takes it up.
    CLOSING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def _catch_signals(self) -> None:
        self._signals_before = {}
        try:
            loop = asyncio.get_running_loop()
            for sig in self.CLOSING_SIGNALS:
                self._signals_before[sig] = signal.getsignal(sig)
                loop.add_signal_handler(sig, self._closed_by_signal, sig)
        except (RuntimeError, ValueError, NotImplementedError):
            pass  # not the main thread (an embedding, a test host): the signals keep their handlers

    def _release_signals(self) -> None:
        """The handlers the process had before the console (asyncio would leave the default)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for sig, before in self._signals_before.items():
            try:
                loop.remove_signal_handler(sig)
                signal.signal(sig, before if before is not None else signal.SIG_DFL)
            except (RuntimeError, ValueError, NotImplementedError):
                pass
        self._signals_before = {}

    def _closed_by_signal(self, sig: signal.Signals) -> None:
        self.closed_by = signal.Signals(sig).name
        then = ("the drill stops what it started; `canary-console rehearse` takes its run up again"
                if self.plan.rehearsal else
                "the run, if one is under way, goes on: its lease runs out and a console started again takes it up")
        self.exit(return_code=1, message=f"the console was closed by {self.closed_by} (as Ctrl+Q): {then}")

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

    def on_unmount(self) -> None:
        self._release_signals()
        if self._faults is not None:
            self._faults.close()  # a drill's injected faults stop with the console
        self._stop.set()
        self._progress_on.clear()
        self.count_cancel.set()
        if self.presampler is not None:
            self.presampler.cancel()  # a daemon thread: it ends at its next tick, never holds the exit

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

    # --- which App keys the footer shows, and why one cannot act now ------------------------------

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
