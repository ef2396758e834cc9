"""Runbook step 2 — the prechecks (runbook 2.1–2.6; docs/runbook.md#2-prechecks).

Every row says what is expected, what was found, by which query, by whom and when. The console
fills what it can (r: the checks, k: the kill-switch test, t: the self-test, x: the scratch-table
rollback rehearsal); people fill the rest from their own sessions (p: the DBA confirms the
prepared rollback, s: sign-off, a: the canary lead and the DBA each acknowledge a failed P1 case
with a reason). What still stands between the team and the size gate is listed
at the bottom, each with who can provide it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from engine.adapters import sql
from engine.domain.cases import NAMES, PRIORITY
from engine.domain.clock import wall
from engine.domain.plan import Plan
from engine.domain.roles import role_words
from engine.flows import selftest_gate
from engine.flows.prechecks import CHECKS
from engine.flows.runbook import SIGNOFF_ROLES, RunView, precheck_missing
from screens.base import RunbookScreen, StepFooter, clip, drawable, plain
from screens.locked import missing_text
from screens.tables import fill_wrapped, table_room

if TYPE_CHECKING:
    from engine.adapters.store import PrecheckResult

TESTS_COLUMNS = ("Test", "Name", "Priority", "Status", "Result", "By")
CHECKS_COLUMNS = ("Section", "Check", "Status", "Found", "By", "Query")
MARK = {"pass": "✓ pass", "fail": "✗ FAIL", "warn": "! warn", "skip": "– skip"}


def when(r: PrecheckResult | None) -> str:
    return f"{r.recorded_by.split('@')[0]} {wall(r.recorded_at, zone=False)}" if r else ""


def rollback_statements(plan: Plan) -> str:
    schema, table, index = plan.schema, plan.change.table, plan.change.index
    return "\n".join((
        "-- PREPARED ROLLBACK (runbook 2.4.2) — run only when approved, from the Rollback screen",
        sql.ignore_index(schema, table, index, "mariadb") + ";   -- rung 1 where supported: instant, reversible",
        sql.drop_index(schema, table, index) + ";",
        "-- verification after rollback (expected: empty):",
        sql.show_index_query(schema, table, index) + ";",
    ))


class PrechecksScreen(RunbookScreen):
    step = "prechecks"
    BINDINGS = [
        ("r", "app.run_prechecks", "Checks"),
        ("k", "app.kill_switch_test", "KS test"),
        ("p", "app.confirm_rollback", "Confirm rollback"),
        ("s", "app.sign_off", "Sign off"),
        ("t", "app.self_test", "Self-test"),
        ("x", "app.scratch_test", "Scratch test"),
        ("m", "app.record_test", "Record TC"),
        ("a", "app.acknowledge_case", "Ack P1"),
    ]
    CSS_PATH = "prechecks.tcss"

    def __init__(self, plan: Plan):
        super().__init__(name="prechecks")
        self.plan = plan
        self.view = RunView()
        self._widths: dict[str, tuple[int, ...]] = {}  # per table: the column widths drawn

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Before the size gate", classes="section")
            yield Static("", id="missing", markup=False)
            yield Static("Integration tests TC-01…TC-10 (2.1): P0 must pass, P1 conditional, P2 good to have",
                         classes="section")
            yield DataTable(id="tests", cursor_type="row", zebra_stripes=True)
            yield Static("Checks the console runs (2.2–2.5, and the monitoring sources of 4)", classes="section")
            yield DataTable(id="checks", cursor_type="row", zebra_stripes=True)
            yield Static("Prepared rollback statement (2.4.2)", classes="section")
            yield Static(rollback_statements(self.plan), id="rollback-sql", markup=False)
            yield Static("Sign-off (2.6): canary lead, DBA and SRE, each from their own session",
                         classes="section")
            yield DataTable(id="signoffs", cursor_type="none")
        yield StepFooter()

    def on_mount(self) -> None:
        self.query_one("#signoffs", DataTable).add_columns("Role", "Signed by", "When")
        self._draw(datetime.now().astimezone())

    def on_resize(self) -> None:
        if drawable(self):
            self._draw(datetime.now().astimezone())

    def _fill(self, name: str, columns: tuple[str, ...], rows: list[tuple[str, ...]],
              optional: tuple[str, ...] = ()) -> None:
        """A table in the terminal's width: a long result or finding wraps in its cell (100×30 cut
        them at the right edge); on a narrow terminal the ``optional`` columns give way."""
        self._widths[name] = fill_wrapped(self.query_one(f"#{name}", DataTable), columns, rows,
                                          # 6: the margins, the body's scroll bar and the table's own (a
                                          # table taller than the screen scrolls in itself: max-height 100%)
                                          table_room(self.size.width or self.app.size.width, len(columns), 6),
                                          self._widths.get(name, ()), optional=optional)

    def selected_case(self) -> str | None:
        """The TC row under the cursor of the tests table (for recording it by hand)."""
        table = self.query_one("#tests", DataTable)
        if table.row_count == 0:
            return None
        return str(table.get_row_at(table.cursor_row)[0])

    def show_view(self, view: RunView, now: datetime) -> None:
        self.view = view
        if drawable(self):
            self._draw(now)

    def _draw(self, now: datetime) -> None:
        view = self.view
        tests: list[tuple[str, ...]] = []
        failed = selftest_gate.failed_p1(view.self_test)
        for case in sorted(PRIORITY):
            r = view.self_test.get(case)
            status = MARK.get(r.status, r.status) if r else "○ not run"
            if case in failed:  # runbook 2.1: the canary lead and the DBA each acknowledge it (a)
                acked = selftest_gate.acknowledged_by(view.approvals, case)
                status += f" ack {len(acked)}/{len(selftest_gate.ACK_ROLES)}"
            tests.append((case, NAMES[case], PRIORITY[case], status, clip(r.detail.split(": ", 1)[-1]) if r else "",
                          when(r)))
        self._fill("tests", TESTS_COLUMNS, tests)
        checks: list[tuple[str, ...]] = []
        confirmed = view.approvals_of("rollback_prepared")
        for c in CHECKS:
            r = view.prechecks.get(c.id)
            status, found, by = ((MARK.get(r.status, r.status), r.detail, when(r)) if r
                                 else ("○", f"expected: {c.expected}", ""))
            if c.id == "rb.prepared":
                status = "✓ confirmed" if confirmed else "○ DBA to confirm"
                found = f"by {confirmed[-1].actor}" if confirmed else "press p (DBA)"
                by = f"{confirmed[-1].actor.split('@')[0]} {wall(confirmed[-1].created_at, zone=False)}" if confirmed else ""
            checks.append((c.section.split(" (")[0], c.label, status, clip(found), by, clip(r.query or "", 48) if r else ""))
        # On a narrow terminal the query and the section give way to what was found (a wider one
        # shows them again).
        self._fill("checks", CHECKS_COLUMNS, checks, optional=("Query", "Section"))
        signoffs = self.query_one("#signoffs", DataTable)
        signoffs.clear()
        signed = {a.role: a for a in view.approvals_of("signoff")}
        for role in SIGNOFF_ROLES:
            a = signed.get(role)
            signoffs.add_row(*plain(role_words([role]), a.actor if a else "○ not yet",
                                    f"{wall(a.created_at, zone=False)}" if a else ""))
        self._draw_missing(now)

    def tick(self, view: RunView, now: datetime) -> None:
        if drawable(self):
            self._draw_missing(now)

    def _draw_missing(self, now: datetime) -> None:
        view = self.view
        missing = precheck_missing(view, now) if view.run is not None else []
        box = self.query_one("#missing", Static)
        box.set_class(not missing and view.run is not None, "-ready")
        if view.run is None:
            box.update("No run yet: the canary lead begins the prechecks on the Plan screen (b).")
        elif not missing:
            box.update("✓ All prechecks done and signed: the size gate is open (3).")
        else:
            box.update(missing_text(missing))
