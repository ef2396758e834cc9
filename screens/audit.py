"""The audit log, filterable, from any screen (docs/runbook.md#audit-log)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.widgets import DataTable, Input

from engine.domain.clock import wall
from engine.domain.text import for_terminal
from screens.base import NARROW, RunbookScreen, StepFooter, clip, drawable, plain

if TYPE_CHECKING:
    from engine.adapters.store import AuditLog


def audit_row(e: AuditLog) -> tuple[str, str, str, str, str]:
    details = ", ".join(f"{k}={v}" for k, v in (e.details or {}).items() if v not in (None, "", [], {}))
    status = f"{e.old_status or ''}→{e.new_status}" if e.new_status else ""
    # Actors, reasons and ids were typed by people: shown, never interpreted by the terminal.
    return (f"{wall(e.created_at, zone=False)}", for_terminal(e.actor), for_terminal(e.action), for_terminal(status),
            clip(for_terminal(details)))


class AuditScreen(RunbookScreen):
    aside = "Audit log"  # not a step: the step bar says so rather than highlight the step it was opened from
    BINDINGS = [("escape", "app.pop_screen", "Back")]
    CSS_PATH = "audit.tcss"

    def __init__(self) -> None:
        super().__init__(name="audit")
        self.entries: list[AuditLog] = []
        self._wide = 0

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="filter: actor, action, run, text…", id="audit-filter")
        yield DataTable(id="audit", cursor_type="row", zebra_stripes=True)
        yield StepFooter()

    narrow: bool | None = None  # under 110 columns: the action, its status and details in one wrapped cell

    def on_mount(self) -> None:
        self._columns()
        self.query_one("#audit-filter", Input).focus()
        self._show_filtered("")

    def on_resize(self) -> None:
        if self._columns():
            self._show_filtered(self.query_one("#audit-filter", Input).value)

    def _columns(self) -> bool:
        """The table's columns for the width; True when they changed. On a jump host's terminal
        (80, 100 columns) the details would run past the edge: the action, its status and its
        details share the last column, wrapped at its width, a row as tall as it needs."""
        narrow = self.size.width < NARROW
        width = max(30, self.size.width - 2 - 2 - 6 - 8 - 16)  # margins, scroll bar, padding, time, actor
        if narrow == self.narrow and (not narrow or width == self._wide):
            return False
        self.narrow, self._wide = narrow, width
        table = self.query_one("#audit", DataTable)
        table.clear(columns=True)
        if narrow:
            table.add_column("Time", width=8)
            table.add_column("Actor", width=16)
            table.add_column("Action · status · details", width=width)
        else:
            table.add_columns("Time", "Actor", "Action", "Status", "Details")
        return True

    @property
    def last_seq(self) -> int | None:
        return self.entries[-1].seq if self.entries else None

    def show(self, entries: Sequence[AuditLog]) -> None:
        """Entries may arrive before the table has its columns: keep them; on_mount draws them."""
        self.entries = list(entries)
        if drawable(self):
            self._show_filtered(self.query_one("#audit-filter", Input).value)

    def append(self, entries: Sequence[AuditLog]) -> None:
        """Entries written since the last look (the log is live): the matching ones are added."""
        if not entries:
            return
        self.entries.extend(entries)
        if drawable(self):
            self._add(entries, self.query_one("#audit-filter", Input).value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_filtered(event.value)

    def _show_filtered(self, text: str) -> None:
        table = self.query_one("#audit", DataTable)
        table.clear()
        self._add(self.entries, text)
        if table.row_count:  # the newest entry in view (once the table is laid out)
            self.call_after_refresh(table.move_cursor, row=table.row_count - 1, animate=False)

    def _add(self, entries: Sequence[AuditLog], text: str) -> None:
        table = self.query_one("#audit", DataTable)
        at_end = table.cursor_row >= table.row_count - 1
        needle = text.strip().lower()
        for e in entries:
            row = audit_row(e)
            if not needle or needle in " ".join(row).lower() or needle in (e.execution_run_id or ""):
                if self.narrow:
                    time_, actor, action, status, details = plain(*row)
                    cell = action.copy()
                    cell.stylize("bold")
                    for extra in (status, details):
                        if extra.plain:
                            cell.append("  ")
                            cell.append_text(extra)
                    table.add_row(time_, actor, cell, height=None)
                else:
                    table.add_row(*plain(*row))
        if at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1)  # follow the newest, unless you scrolled up
