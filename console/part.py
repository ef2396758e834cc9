"""What every part of the console's App shares: the screen on top, the one table's refusal said
and audited, a console note audited, a dry run's refusal, the clipboard.

``CanaryApp`` (console/app.py) is composed of parts, one role each: the kill switch
(console/kill_switch.py), the frame (console/frame.py), the way between the steps
(console/navigation.py), the workers that follow and drive the run (console/run_workers.py), the
steps' keys (console/step_*.py) and a drill's keys (console/drill.py). A part is a mixin: it keeps
no state of its own — ``CanaryApp.__init__`` sets it all (``plan``, ``store``, ``view``, ``frame``,
``run_id`` …) — and adds no CSS and no binding (the App's bindings stay in one list, in the
footer's order). It is a ``MessagePump`` only so that Textual collects its ``@on`` handlers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from textual import work
from textual.message_pump import MessagePump
from textual.screen import Screen

from engine.flows import guard, step_actions

if TYPE_CHECKING:  # both load on a worker, after the first frame
    from screens.report import ReportScreen
    from screens.rollback import RollbackScreen

DRIVEN = ("running", "observing")  # a driver holds the run's lease (docs/states.md)
S = TypeVar("S", bound=Screen[Any])


class AppPart(MessagePump):
    """The base of the App's parts (see the module's docstring)."""

    @property
    def _top(self) -> Any:
        """The screen on top, or None while the console starts or closes (timers and workers may
        still call in then)."""
        return self.screen_stack[-1] if self.screen_stack else None

    def step_screen(self, name: str, kind: type[S]) -> S:
        """The screen of step ``name``, as the class it is (``self.steps`` holds them as
        ``RunbookScreen``); a screen of another class is a bug, said as one."""
        screen = self.steps[name]
        if not isinstance(screen, kind):
            raise TypeError(f"step {name!r} is a {type(screen).__name__}, not a {kind.__name__}")
        return screen

    def report_screen(self) -> ReportScreen:
        from screens.report import ReportScreen

        return self.step_screen("report", ReportScreen)

    def rollback_screen(self) -> RollbackScreen:
        from screens.rollback import RollbackScreen

        return self.step_screen("rollback", RollbackScreen)

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

    def dry_refused(self, what: str) -> bool:
        """True (and said in one line) in a dry run, where nothing that writes is sent."""
        if not self.dry_run:
            return False
        self.notify(f"DRY RUN: {what} is not done in a dry run — its SQL is on the dry-run screen (F4).",
                    title="Dry run", severity="warning", timeout=8)
        return True

    def copy_text(self, text: str) -> str:
        """OSC 52 to the terminal (over SSH too; inside tmux it needs ``set -g set-clipboard on``,
        which the hint says)."""
        self.copy_to_clipboard(text)
        from engine.views.report import copy_hint, in_tmux

        return copy_hint(in_tmux())
