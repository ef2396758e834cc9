"""Runbook step 1 — the plan: the scope lock (runbook 1.2–1.3), the people, the timeline (1.4)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from engine.domain.plan import ROLE_WORDS, Plan
from engine.views import warroom
from screens.base import RunbookScreen, StepFooter, drawable, plain
from screens.tables import fill_wrapped, table_room

TIMELINE = (("Pre-check verification", 30), ("Team readiness check", 15), ("Execute ADD_INDEX", 15),
            ("Monitoring window (cannot be shortened)", 60), ("Result analysis", 30), ("Documentation", 15))


@dataclass(frozen=True)
class ScopeFacts:
    """What the scope lock needs from the store and the clock, read off the UI thread."""

    in_off_peak: bool
    other_active_run: str | None  # "run … of tenant …" when the store-wide lock is held
    p0_self_test: str  # e.g. "TC-02 pass, TC-03 pass, TC-09 pass" or "not run yet"


def scope_rows(plan: Plan, facts: ScopeFacts | None) -> list[tuple[str, str, str, str]]:
    cols = ", ".join(c.name + (f"({c.prefix})" if c.prefix else "") for c in plan.change.columns)
    rows = [
        ("Tenant", "✓", "1 tenant only", plan.tenant),
        ("MySQL connection", "✓", "1 connection only", f"{plan.connection.id}: {plan.connection.describe()}"),
        ("Table", "✓", "1 table only", f"{plan.schema}.{plan.change.table}"),
        ("Operation", "✓", "ADD_INDEX only", f"ADD INDEX {plan.change.index} ({cols}), INPLACE, LOCK=NONE"),
    ]
    if facts is None:
        return rows + [("Time window", "…", "off-peak only", plan.off_peak.describe()),
                       ("Other runs", "…", "none active in the store", "reading…"),
                       ("Kill switch & rollback", "…", "verified (TC P0)", "reading…")]
    return rows + [
        ("Time window", "✓" if facts.in_off_peak else "✗ not now", "off-peak only", plan.off_peak.describe()),
        ("Other runs", "✗" if facts.other_active_run else "✓", "none active in the store",
         facts.other_active_run or "none"),
        ("Kill switch & rollback", "✓" if facts.p0_self_test.count("pass") == 3 else "✗", "verified (TC P0)",
         facts.p0_self_test if facts.p0_self_test.count("pass") == 3 else
         f"{facts.p0_self_test}: run canary-console self-test"),
    ]


SCOPE_COLUMNS = ("Dimension", "", "Constraint", "This run")
PEOPLE_COLUMNS = ("Role", "Name", "Phone", "Handle / contact", "Backup", "Unix user", "")
ESCALATION_COLUMNS = ("Level", "Condition", "Who", "Response")


def scope_widths(rows: list[tuple[str, str, str, str]], room: int) -> tuple[int, ...]:
    """Each column as wide as its longest cell while the four fit in ``room`` columns; when they do
    not, "This run" gives way first (down to 41), then the dimension and the constraint (down to
    12 and 14), then "This run" again: nothing is cut, a cell wraps at its spaces (the ALTER's
    index name stays whole at 80 columns)."""
    widths = [max(cell_len(r[i]) for r in [SCOPE_COLUMNS, *rows]) for i in range(4)]
    for column, least in ((3, 41), (0, 12), (2, 14), (3, 12)):
        over = sum(widths) - room
        if over <= 0:
            break
        widths[column] = max(least, widths[column] - over)
    return tuple(widths)


class PlanScreen(RunbookScreen):
    step = "plan"
    BINDINGS = [("b", "app.begin_prechecks", "Begin prechecks (canary lead)")]
    CSS_PATH = "plan.tcss"

    def __init__(self, plan: Plan, user: str):
        super().__init__(name="plan")
        self.plan = plan
        self.user = user
        self.facts: ScopeFacts | None = None
        self._scope_widths: tuple[int, ...] = ()
        self._widths: dict[str, tuple[int, ...]] = {}  # the wrapped tables' columns as drawn

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"Plan — {self.plan.source}", classes="section")
            yield Static("Scope lock (runbook 1.2–1.3)", classes="section")
            yield DataTable(id="scope", cursor_type="row", zebra_stripes=True)
            yield Static("People and roles (runbook 2.5.1: Canary Lead, DBA, SRE, Developer required)",
                         classes="section")
            yield DataTable(id="people", cursor_type="row")
            yield Static("", id="unstaffed", markup=False)
            yield Static("War room (runbook 2.5.2)", classes="section")
            yield DataTable(id="links", cursor_type="none", show_header=False)
            yield Static("Escalation (runbook 7.2)", classes="section")
            yield DataTable(id="escalation", cursor_type="none")
            yield Static("Timeline (runbook 1.4)", classes="section")
            yield DataTable(id="timeline", cursor_type="none")
        yield StepFooter()

    def on_mount(self) -> None:
        self._draw_scope()
        self._draw_wide_tables()
        unstaffed = self.plan.unstaffed()
        box = self.query_one("#unstaffed", Static)
        box.update("Sign-off is blocked until the plan names: " + ", ".join(ROLE_WORDS[r] for r in unstaffed)
                   if unstaffed else "")
        box.display = bool(unstaffed)
        links = self.query_one("#links", DataTable)
        links.add_columns("Channel", "Where")
        for label, where in warroom.links(self.plan):
            links.add_row(*plain(label, where))
        timeline = self.query_one("#timeline", DataTable)
        # Minutes from the start of the prechecks, not T+ (the run's one clock starts at the window).
        timeline.add_columns("Phase", "Minutes", "From the start")
        at = 0
        for phase, minutes in TIMELINE:
            timeline.add_row(phase, str(minutes), f"+{at} min")
            at += minutes

    def show_scope(self, facts: ScopeFacts) -> None:
        """Facts may arrive before this screen is mounted: keep them, draw when there is a table."""
        self.facts = facts
        if drawable(self):
            self._draw_scope()

    def on_resize(self) -> None:
        if self._scope_widths != scope_widths(scope_rows(self.plan, self.facts), self._scope_room()):
            self._draw_scope()
        if drawable(self):
            self._draw_wide_tables()

    def _draw_wide_tables(self) -> None:
        """The people and the escalation in the terminal's width: at 80 columns their last columns
        (the Unix user, who answers and how fast) ran off the right edge; a long cell wraps instead."""
        people = []
        for r in warroom.people_rows(self.plan):
            you = "← you" if r.unix_user == self.user or (r.unix_user == "—" and r.name == self.user) else ""
            name = f"✗ {r.name}: add to the plan" if r.name == warroom.MISSING else r.name
            people.append((r.role, name, r.phone, r.handle, r.backup, r.unix_user, you))
        width = self.size.width or self.app.size.width
        self._widths["people"] = fill_wrapped(self.query_one("#people", DataTable), PEOPLE_COLUMNS, people,
                                              table_room(width, len(PEOPLE_COLUMNS)), self._widths.get("people", ()))
        escalation = [(e.level, e.condition, e.who, e.response) for e in warroom.escalation_rows(self.plan)]
        self._widths["escalation"] = fill_wrapped(
            self.query_one("#escalation", DataTable), ESCALATION_COLUMNS, escalation,
            table_room(width, len(ESCALATION_COLUMNS)), self._widths.get("escalation", ()))

    def _scope_room(self) -> int:
        # The table's margins and the scroll bar, a cell's padding either side; never under 40.
        return max(40, table_room(self.size.width, len(SCOPE_COLUMNS)))

    def _draw_scope(self) -> None:
        """The scope lock in the terminal's width: a long value (the ALTER, the connection) wraps
        at its spaces in its cell, a row as tall as it needs, rather than running off the edge."""
        rows = scope_rows(self.plan, self.facts)
        room = self._scope_room()
        self._scope_widths = fill_wrapped(self.query_one("#scope", DataTable), SCOPE_COLUMNS, rows, room,
                                          self._scope_widths, scope_widths(rows, room))
