"""Steps 4 to 6 at the console, the people's part (the executor and the dashboard's reads are
console/run_workers.py): the run's announcement copied or posted, a checkpoint's note, the
AUTO-PAUSE lifted, the team's decision on an INCONCLUSIVE window, and the Decision step's FAIL
opening the rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work

from console.part import AppPart
from engine.flows import step_actions
from screens.execution import ExecutionScreen

if TYPE_CHECKING:  # the screens that post these load on a worker, after the first frame
    from screens.decision import OpenRollback, TeamDecision
    from screens.monitoring import CheckpointNote, CopyText, PauseDecision, PostText


class WindowSteps(AppPart):
    """The keys and messages of the Execution, Monitoring and Decision screens."""

    def _announcement(self) -> str:
        screen = self.step_screen("execution", ExecutionScreen)
        return screen.announcement

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

    def on_checkpoint_note(self, message: CheckpointNote) -> None:
        self.record_checkpoint(message.label, message.note, message.ok)

    @work(thread=True, group="store-write", exit_on_error=False)
    def record_checkpoint(self, label: str, note: str, ok: bool) -> None:
        if self.run_id is None:
            return
        step_actions.record_checkpoint(self.store, self.plan, self.run_id, label, note, ok, self.actor, self.clock.now())
        self.call_from_thread(self.notify, f"checkpoint {label} recorded by {self.actor}", timeout=4)

    def on_copy_text(self, message: CopyText) -> None:
        hint = self.copy_text(message.text)
        self.audit_in_worker("announcement_copied", {"text": message.text[:120]})
        self.notify(f"Copied. {hint}", timeout=6)

    def on_post_text(self, message: PostText) -> None:
        if not self.plan.webhook_url:
            self.notify("No webhook in the plan ([integrations] webhook_url): copy it (y) and post it by hand.",
                        severity="warning", timeout=8)
            return
        self.post_text(message.text, "announcement_posted")

    def on_pause_decision(self, message: PauseDecision) -> None:
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

    def on_team_decision(self, message: TeamDecision) -> None:
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
        self.rollback_screen().preselect(message.trigger, dict(message.metrics))
        self.action_goto("rollback")
