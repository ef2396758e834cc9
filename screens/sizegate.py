"""Runbook step 3 — the table-size gate (runbook 2.3; docs/runbook.md#3-size-gate).

≤ 5M rows PASS; ≤ 10M WARNING (the DBA approves; sampling twice as often, thresholds shown
tighter); > 10M BLOCK (no DDL; the run is cancelled for this table with the reason recorded).
``TABLE_ROWS`` is an estimate: near a boundary the console counts exactly, with progress, and the
count can be cancelled (the estimate then stands, and the gate says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, ProgressBar, Static

from engine.domain.clock import wall
from engine.domain.plan import Plan
from engine.domain.sizegate import BLOCK_ABOVE, NEAR, WARN_ABOVE, sampling_interval
from engine.flows.runbook import RunView
from screens.base import RunbookScreen, StepFooter, drawable, plain
from screens.tables import fill_wrapped, table_room

BAND_CLASS = {"pass": "-pass", "warn": "-warn", "fail": "-block"}
BAND_NAME = {"pass": "PASS", "warn": "WARNING", "fail": "BLOCK"}
RULES_COLUMNS = ("Rows", "Band", "Action")
RULES = (
    (f"≤ {WARN_ABOVE:,}", "PASS", "go on"),
    (f"> {WARN_ABOVE:,} and ≤ {BLOCK_ABOVE:,}", "WARNING",
     "the DBA approves; sampling every 2.5 s; thresholds shown tighter"),
    (f"> {BLOCK_ABOVE:,}", "BLOCK", "no DDL; reason recorded; lead and DBA notified; run cancelled for this table"),
)


@dataclass(frozen=True)
class TableSize:
    """What the catalogue says, read on a worker."""

    estimated_rows: int
    data_mb: float
    index_mb: float


class SizeGateScreen(RunbookScreen):
    step = "size_gate"
    BINDINGS = [
        ("c", "app.check_size", "Check size"),
        ("x", "app.cancel_count", "Cancel exact count"),
        ("a", "app.approve_gate", "DBA: approve WARNING"),
    ]
    CSS_PATH = "sizegate.tcss"

    def __init__(self, plan: Plan):
        super().__init__(name="size_gate")
        self.plan = plan
        self.view = RunView()
        self.table_size: TableSize | None = None
        self.counting = False  # an exact count runs (x cancels it)
        self._rules_widths: tuple[int, ...] = ()

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"Table-size gate — {self.plan.schema}.{self.plan.change.table}", classes="section",
                         markup=False)
            yield DataTable(id="size", cursor_type="none")
            yield Static("Exact count (within 25 % of a boundary the estimate is not trusted)", classes="section")
            yield Static("not needed yet", id="count-row", markup=False)
            yield ProgressBar(id="count-progress", total=100, show_eta=True)
            yield Static("press c to read the table's size", id="band", markup=False)
            yield Static("", id="approval", markup=False)
            yield Static("Rules (runbook 2.3)", classes="section")
            yield DataTable(id="rules", cursor_type="none")
        yield StepFooter()

    def on_mount(self) -> None:
        self.query_one("#size", DataTable).add_columns("Rows (estimate)", "Data MB", "Index MB", "Sampling")
        self._draw_rules()
        self.query_one("#count-progress", ProgressBar).display = False
        self._draw()

    def on_resize(self) -> None:
        if drawable(self):
            self._draw_rules()

    def _draw_rules(self) -> None:
        """The rules in the terminal's width: an action wraps in its cell rather than being cut."""
        room = table_room(self.size.width or self.app.size.width, len(RULES_COLUMNS))
        self._rules_widths = fill_wrapped(self.query_one("#rules", DataTable), RULES_COLUMNS, RULES, room,
                                          self._rules_widths)

    def show_size(self, size: TableSize) -> None:
        self.table_size = size
        self._draw()

    def show_count(self, text: str, fraction: float | None) -> None:
        """The exact count's progress (fraction None: not counting)."""
        self.query_one("#count-row", Static).update(text)
        bar = self.query_one("#count-progress", ProgressBar)
        bar.display = fraction is not None
        if self.counting != (fraction is not None):
            self.counting = fraction is not None
            self.refresh_bindings()
        if fraction is not None:
            bar.update(progress=fraction * 100)

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        if action == "cancel_count" and not self.counting:
            return ("No exact count is running: nothing to cancel. A count runs only near a boundary, after c "
                    "(the canary lead or the DBA); x stops it and the estimate stands.")
        return None

    def show_view(self, view: RunView, now: datetime) -> None:
        self.view = view
        if drawable(self):
            self._draw()

    def _draw(self) -> None:
        table = self.query_one("#size", DataTable)
        table.clear()
        gate = self.view.gate()
        band_name = BAND_NAME.get(gate.status, "") if gate else ""
        if self.table_size is not None:
            table.add_row(*plain(f"{self.table_size.estimated_rows:,}", f"{self.table_size.data_mb:,.1f}",
                                 f"{self.table_size.index_mb:,.1f}",
                                 f"every {sampling_interval(band_name or 'PASS'):g} s"))
        box = self.query_one("#band", Static)
        for cls in BAND_CLASS.values():
            box.remove_class(cls)
        approval = self.query_one("#approval", Static)
        if gate is None:
            box.update("press c to read the table's size and decide" if self.table_size is None else
                       f"deciding… (near a boundary: within {NEAR:.0%} the rows are counted exactly)")
            approval.update("")
            return
        box.add_class(BAND_CLASS.get(gate.status, ""))
        who = f"decided by {gate.recorded_by} at {wall(gate.recorded_at, zone=False)}"
        box.update(f"{band_name}: {gate.detail}\n{who}")
        approvals = self.view.approvals_of("size_gate")
        if gate.status == "warn":
            approval.update(f"✓ approved by the DBA {approvals[-1].actor} at {wall(approvals[-1].created_at, zone=False)}"
                            if approvals else "○ the DBA must approve (a) before execution; monitoring will sample "
                            "every 2.5 s with the thresholds shown tighter")
        elif gate.status == "fail":
            run = self.view.run
            approval.update("The run is cancelled for this table: no DDL in this phase. "
                            + (f"Run {run.id[:8]} is {run.status}." if run else "") + " The report (8) has the reason.")
        else:
            approval.update("No approval needed: execution (4) is open.")
