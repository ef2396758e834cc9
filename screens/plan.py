"""Runbook step 1 — the plan: the scope lock (runbook 1.2–1.3), the people, the timeline (1.4)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from engine.domain.plan import ROLE_WORDS, Plan
from engine.views import warroom
from screens.base import RunbookScreen, drawable, plain

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


class PlanScreen(RunbookScreen):
    step = "plan"
    BINDINGS = [("b", "app.begin_prechecks", "Begin prechecks (canary lead)")]
    DEFAULT_CSS = RunbookScreen.DEFAULT_CSS + """
    PlanScreen .section { margin: 1 1 0 1; text-style: bold; }
    PlanScreen DataTable { margin: 0 1; height: auto; }
    PlanScreen #unstaffed { margin: 0 1; padding: 0 1; background: $error 40%; text-style: bold; }
    """

    def __init__(self, plan: Plan, user: str):
        super().__init__(name="plan")
        self.plan = plan
        self.user = user
        self.facts: ScopeFacts | None = None

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
        yield Footer()

    def on_mount(self) -> None:
        scope = self.query_one("#scope", DataTable)
        scope.add_columns("Dimension", "", "Constraint", "This run")
        self._draw_scope()
        people = self.query_one("#people", DataTable)
        people.add_columns("Role", "Name", "Phone", "Handle / contact", "Backup", "Unix user", "")
        for r in warroom.people_rows(self.plan):
            you = "← you" if r.unix_user == self.user or (r.unix_user == "—" and r.name == self.user) else ""
            name = f"✗ {r.name}: add to the plan" if r.name == warroom.MISSING else r.name
            people.add_row(*plain(r.role, name, r.phone, r.handle, r.backup, r.unix_user, you))
        unstaffed = self.plan.unstaffed()
        box = self.query_one("#unstaffed", Static)
        box.update("Sign-off is blocked until the plan names: " + ", ".join(ROLE_WORDS[r] for r in unstaffed)
                   if unstaffed else "")
        box.display = bool(unstaffed)
        links = self.query_one("#links", DataTable)
        links.add_columns("Channel", "Where")
        for label, where in warroom.links(self.plan):
            links.add_row(*plain(label, where))
        esc = self.query_one("#escalation", DataTable)
        esc.add_columns("Level", "Condition", "Who", "Response")
        for e in warroom.escalation_rows(self.plan):
            esc.add_row(*plain(e.level, e.condition, e.who, e.response))
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

    def _draw_scope(self) -> None:
        scope = self.query_one("#scope", DataTable)
        scope.clear()
        for row in scope_rows(self.plan, self.facts):
            scope.add_row(*plain(*row))
