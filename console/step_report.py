"""Step 8 at the console, the report (copied, exported, posted; a lesson recorded), and the audit
log (F2) on every screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work

from console.part import AppPart
from engine.adapters.paths import state_dir
from engine.domain.text import for_terminal
from engine.flows import step_actions
from screens.audit import AuditScreen

if TYPE_CHECKING:  # the Report screen loads on a worker, after the first frame
    from screens.report import ReportCopy, ReportExport, ReportLesson, ReportPost


class ReportSteps(AppPart):
    """The Report screen's messages and the audit log's key (``audit``)."""

    def on_report_copy(self, message: ReportCopy) -> None:
        hint = self.copy_text(message.text)
        self.audit_in_worker("report_copied", {"view": message.view})
        self.report_screen().show_result(f"copied ({message.view}). {hint}", True, "copy")

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

        screen = self.report_screen()
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

        screen = self.report_screen()
        try:
            path = step_actions.export_report(self.store, self.plan, self.run_id, self.actor, screen.facts, text, view,
                                              state_dir() / "reports", self.clock.now())
        except ExportError as exc:
            self.call_from_thread(screen.show_result, str(exc), False, "export")
            return
        self.call_from_thread(screen.show_result, f"written to {path}", True, "export")

    @work(thread=True, group="webhook", exit_on_error=False)
    def post_report(self, text: str, view: str) -> None:
        screen = self.report_screen()
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
