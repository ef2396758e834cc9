"""The console of ``canary-console rehearse``: open at once, then prepare the drill behind it.

The plan is written before anything slow starts (the sandbox servers' ports are chosen first), so
the real console — frame, kill switch, audit log — is on screen within a second or two; the
servers' start, the data load and the self-test run on a thread while ``PreparingScreen`` shows
each as a step with a progress bar. When the drill is ready the Plan screen takes over.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any

from textual import on
from textual.message import Message

from console.app import CanaryApp
from engine.adapters.paths import state_dir
from engine.drill import rehearsal
from engine.drill.rehearsal import PreparationCancelled, Prepared, StepProgress
from screens.preparing import PreparingScreen


@dataclass
class PreparationStep(Message):
    """A step of the preparation moved on (posted from its thread: never blocks it)."""

    progress: StepProgress


@dataclass
class PreparationFailed(Message):
    text: str


class PreparationDone(Message):
    """The drill is ready."""


class RehearsalApp(CanaryApp):
    """``CanaryApp`` with the drill's preparation in front of it."""

    def __init__(self, plan: Any, store: Any, prepared: Prepared, *, clock: Any, self_test: bool,
                 cases: list[str] | None = None, **kwargs: Any):
        super().__init__(plan, store, clock=clock, **kwargs)
        self.prepared = prepared
        # Not ``self_test``: that name is CanaryApp's worker behind the Prechecks screen's `t`, and a
        # bool there made `t` in a drill end the console with a traceback.
        self.self_test_first = self_test
        self.cases = cases
        self.preparing = True
        self.failed: str | None = None  # why the preparation stopped, said on screen and after exit
        self.transcript: list[str] = []  # each step's lines, printed when the console closes
        self._prep_stop = threading.Event()
        self._prep_thread = threading.Thread(target=self._prepare, name="rehearsal-prepare", daemon=True)
        self.preparing_screen = PreparingScreen(str(prepared.plan_path))

    # Textual calls CanaryApp's on_mount / on_unmount too, after these (a handler per class).
    def on_mount(self) -> None:
        self.call_later(self._begin_preparing)  # once CanaryApp.on_mount has put the Plan screen up

    def _begin_preparing(self) -> None:
        self.push_screen(self.preparing_screen)
        self.set_frame(target_health="◌ starting (drill)")
        self._prep_thread.start()

    def on_unmount(self) -> None:
        self._prep_stop.set()

    def stop_preparation(self, timeout: float = 60.0) -> bool:
        """After the console closed: let the preparation end at its next step (what it started is
        then stopped by it). False when it did not end in ``timeout`` seconds."""
        self._prep_stop.set()
        if self._prep_thread.is_alive():
            self._prep_thread.join(timeout)
        return not self._prep_thread.is_alive()

    # --- the preparation (its own thread: it must not keep a closed console's process alive) ------

    def _step(self, progress: StepProgress) -> None:
        if self._prep_stop.is_set():
            raise PreparationCancelled()
        line = progress.text if progress.state in ("running", "waiting") else f"{progress.title}: {progress.text}"
        if not self.transcript or self.transcript[-1] != line:
            self.transcript.append(line)
        self.post_message(PreparationStep(progress))  # thread-safe, and a closing console never blocks it

    def _prepare(self) -> None:
        try:
            self.prepared.bring_up(self._step)
            if self.self_test_first:
                rehearsal.self_test(self.store, self.plan.tenant, self.actor, self.roles, self.cases, self._step)
            else:
                past = self.prepared.past_prechecks
                why = "the resumed run is past the prechecks" if past else "--skip-self-test: the stored results are used"
                rehearsal.stored_self_test(self.store, self.plan.tenant, why, self._step,
                                           None if past else str(self.prepared.plan_path))
        except PreparationCancelled:
            return
        except Exception as exc:  # noqa: BLE001 - said on screen in one line; the details go to the log
            log = state_dir() / "console.log"
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
                with log.open("a") as fh:
                    fh.write("rehearsal preparation: " + "".join(traceback.format_exception(exc)) + "\n")
            except OSError:
                pass
            first = (str(exc).splitlines() or [exc.__class__.__name__])[0][:300]
            self.failed = f"the drill could not be prepared: {first}"
            self.transcript.append(self.failed)
            self.post_message(PreparationFailed(f"{self.failed}\nDetails in {log}. Ctrl+Q quits; run "
                                                "`scripts/rehearse --reset` to start from a clean sandbox."))
            return
        self.post_message(PreparationDone())

    @on(PreparationStep)
    def _show_step(self, message: PreparationStep) -> None:
        self.preparing_screen.show_step(message.progress)

    @on(PreparationFailed)
    def _prepare_failed(self, message: PreparationFailed) -> None:
        self.preparing_screen.show_outcome(message.text, failed=True)
        self.set_frame(target_health="✗ sandbox not started")

    @on(PreparationDone)
    def _prepared(self) -> None:
        self.preparing = False
        self.preparing_screen.show_outcome("The drill is ready.", failed=False)
        if self.screen is self.preparing_screen:
            self.pop_screen()
        else:  # a dialog (the audit log) is on top: the Plan screen shows once it is closed
            self.preparing_screen.done = True
        self.read_scope()  # the self-test's results
        self.check_health()
        self.refresh_view()
        self.notify("The drill is ready: b begins the prechecks. F9 is the kill switch.", title="Rehearsal",
                    timeout=8)

    # --- what waits for the drill ----------------------------------------------------------------

    def check_health(self) -> None:
        if self.preparing:
            self.set_frame(target_health="◌ starting (drill)" if self.failed is None else "✗ sandbox not started")
            return
        super().check_health()

    def action_goto(self, step: str) -> None:
        if self.preparing:
            self.notify("The drill is still being prepared (the steps are on screen): the runbook opens when it "
                        "is ready. Ctrl+Q quits.", severity="warning", timeout=5)
            return
        super().action_goto(step)

    def action_faults(self) -> None:
        if self.preparing:
            self.notify("Faults need the drill's servers: they are still starting.", severity="warning", timeout=5)
            return
        super().action_faults()

    def _take_over(self, run: Any) -> None:
        if self.preparing:
            return  # the servers are not up yet: the next poll after the preparation takes it over
        super()._take_over(run)
