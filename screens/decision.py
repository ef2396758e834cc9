"""Runbook step 6 — the decision (docs/runbook.md#6-decision; runbook step 7, 5.5, 6.1).

The final decision matrix as the engine recorded it: every criterion with its measured value, its
threshold, the rule that decided it, n and the confidence interval; the verdict, big and in its
colour; the next step. An INCONCLUSIVE verdict is never an automatic rollback: the team decides
keep or remove and the canary lead records it (k / d); a FAIL opens the rollback decision flow
pre-filled with the metrics at decision time (g).

The screen draws the ``DecisionView`` it is given (``show_decision``) and asks the App to act
with messages; the App checks roles and writes the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from engine.domain.clock import wall
from engine.domain.plan import Plan
from engine.domain.roles import needed, role_words
from engine.views.dashboard import DecisionView
from screens.base import RunbookScreen, StepFooter, drawable
from screens.note import Note, NoteDialog

if TYPE_CHECKING:
    from engine.flows.runbook import RunView

VERDICT_MARK = {"pass": "✅", "warning": "⚠️", "fail": "❌", "inconclusive": "❔", "pending": "…"}
STATUS_STYLE = {"met": "green", "not met": "bold red", "inconclusive": "yellow", "n.a.": "dim"}
NARROW = 130  # below this width the decision matrix is a list, not an eight-column table
STATUS_MARK = {"met": "✓ met", "not met": "✗ not met", "inconclusive": "? inconclusive", "n.a.": "– n.a."}


@dataclass
class TeamDecision(Message):
    """The team's decision on an INCONCLUSIVE verdict: ``keep`` or ``remove`` (canary lead records)."""

    decision: str
    note: str


@dataclass
class OpenRollback(Message):
    """Open the rollback decision flow, pre-filled with the metrics at decision time."""

    metrics: dict[str, Any] = field(default_factory=dict)
    trigger: str = ""  # engine.domain.rollback_rules trigger the failing criteria point to


class DecisionScreen(RunbookScreen):
    step = "decision"
    BINDINGS = [
        Binding("k", "team('keep')", "Team: keep (lead)", id="decision-keep"),
        Binding("d", "team('remove')", "Team: remove (lead)", id="decision-remove"),
        Binding("g", "rollback", "Rollback flow", id="decision-rollback"),
    ]
    CSS_PATH = "decision.tcss"

    def __init__(self, plan: Plan | None = None):
        super().__init__(name="decision")
        self.plan = plan
        self.view: DecisionView | None = None
        self._drawn: DecisionView | None = None
        self._bindings_shown: tuple[bool, bool] | None = None
        self._run_id: str | None = None  # the run the body was last scrolled for

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static("…  NO VERDICT YET", id="verdict", markup=False)
            yield Static("", id="next", markup=False)
            yield Static("Decision matrix (runbook 5.5): every criterion, its value and the rule that decided it",
                         classes="section")
            yield Static("", id="matrix")
            yield Static("Why", classes="section", id="reasons-title")
            yield Static("", id="reasons", markup=False)
            yield Static("", id="decided", markup=False)
        yield StepFooter()

    def on_mount(self) -> None:
        if self.view is not None:
            self._draw(self.view)

    def show_view(self, view: RunView, now: datetime) -> None:
        """Another run (a new one begun, a teammate's): its decision from the top, not from where
        the last run's matrix was scrolled to."""
        run_id = view.run.id if view.run is not None else None
        if run_id != self._run_id:
            self._run_id = run_id
            if drawable(self):
                self.query_one("#body", VerticalScroll).scroll_home(animate=False)

    def show_decision(self, view: DecisionView) -> None:
        self.view = view
        if drawable(self):
            self._draw(view)

    def _draw(self, v: DecisionView) -> None:
        if v == self._drawn:
            return
        self._drawn = v
        box = self.query_one("#verdict", Static)
        for level in ("pass", "warning", "fail", "inconclusive"):
            box.set_class(v.level == level, f"-{level}")
        title = v.verdict or ("NO VERDICT" if v.action == "ended" else "NO VERDICT YET")
        if v.team_decision:
            title += f" — team decided: {v.team_decision.upper()}"
        big = Text(f"{VERDICT_MARK.get(v.level, '')}  {title}", style="bold")
        if v.summary:
            big.append(f"\n{v.summary}", style="not bold")
        box.update(big)
        nxt = self.query_one("#next", Static)
        for action in ("rollback", "team_decision"):
            nxt.set_class(v.action == action, f"-{action}")
        nxt.update(f"Next step: {v.action_text}")
        self.query_one("#matrix", Static).update(self._matrix(v, self.size.width))
        # Per latency criterion, its evidence in one line (docs/verdict.md: how to read it).
        lines = [f"≈ {r.name.replace(' change', '')}: {r.evidence}" for r in v.rows if r.evidence]
        lines += [f"• {r}" for r in v.reasons]
        lines += [f"⚠ warning: {w}" for w in v.warnings]
        if v.verification:  # docs/verification.md: the digests and the sample queries, warnings or not
            lines.append(f"verification: {v.verification}")
        if v.team_note:
            lines.append(f"team note: {v.team_note}")
        self.query_one("#reasons", Static).update("\n".join(lines))
        self.query_one("#reasons", Static).display = bool(lines)
        self.query_one("#reasons-title", Static).display = bool(lines)
        decided = []
        if v.decided_by:
            decided.append(f"decided by {v.decided_by}"
                           + (f" at {wall(v.decided_at, self.plan.off_peak.utc_offset, date=True)}" if v.decided_at else ""))
        if v.profile:
            decided.append(f"profile {v.profile}")
        if v.stop_text and v.verdict:
            decided.append(v.stop_text)
        if v.next_step:
            decided.append(f"engine: {v.next_step}")
        self.query_one("#decided", Static).update(" · ".join(decided))
        bindings = (v.action == "team_decision", bool(v.rollback_trigger))
        if bindings != self._bindings_shown:  # a footer rebuild only on a change
            self._bindings_shown = bindings
            self.refresh_bindings()

    def on_resize(self) -> None:
        if self.view is not None:  # the matrix's layout follows the width (a table, or a list)
            self.query_one("#matrix", Static).update(self._matrix(self.view, self.size.width))

    @staticmethod
    def _matrix(v: DecisionView, width: int = 0) -> Table | Text:
        if not v.rows:
            return Text(v.action_text if v.verdict is None else "no criteria recorded", style="dim")
        if width and width < NARROW:
            # A jump host's 80 or 100 columns: eight columns would cut every value; each criterion
            # is a line (status, name, value against threshold, n, interval) and its rule below.
            out = Text()
            for i, r in enumerate(v.rows, 1):
                out.append(f"{i:>2} ")
                out.append(STATUS_MARK.get(r.status, r.status), style=STATUS_STYLE.get(r.status, ""))
                facts = [f"{r.value} (threshold {r.threshold})"]
                if r.n not in ("", "—"):
                    facts.append(f"n={r.n}")
                if r.interval not in ("", "—"):
                    facts.append(r.interval)
                out.append(f"  {r.name}: " + ", ".join(facts) + "\n")
                out.append(f"     rule: {r.rule}\n", style="dim")
            return out
        table = Table(expand=True, show_lines=False, header_style="bold", pad_edge=False)
        table.add_column("#", width=2, justify="right")
        table.add_column("Criterion", ratio=3)
        table.add_column("Status", width=14, no_wrap=True)
        table.add_column("Value", ratio=2)
        table.add_column("Threshold", ratio=2)
        table.add_column("n", width=5, justify="right")
        table.add_column("Confidence interval", ratio=3)
        table.add_column("Rule that decided", ratio=6)
        for i, r in enumerate(v.rows, 1):
            table.add_row(str(i), Text(r.name), Text(STATUS_MARK.get(r.status, r.status),
                                                     style=STATUS_STYLE.get(r.status, "")),
                          Text(r.value), Text(r.threshold), Text(r.n), Text(r.interval), Text(r.rule))
        return table

    # --- keys → messages --------------------------------------------------------------------------

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        v = self.view
        if action not in ("team", "rollback"):
            return None
        if v is None or v.verdict is None:
            return ("The run ended without a verdict: nothing to decide here." if v is not None and v.action == "ended"
                    else "No verdict yet: the decision is made when the window closes (or stops early).")
        verdict = v.verdict
        if action == "team" and v.action != "team_decision":
            if v.team_decision:
                return f"The team already decided: {v.team_decision.upper()} (recorded by {v.decided_by or 'the lead'})."
            return (f"The verdict is {verdict}: keep/remove is the {role_words(needed('inconclusive_decision'))}'s "
                    "call on an INCONCLUSIVE verdict only" + (" — a FAIL goes to the rollback flow (g)."
                                                              if v.rollback_trigger else "."))
        if action == "rollback" and not v.rollback_trigger:
            return (f"The verdict is {verdict}: no criterion asks for a rollback. A manual rollback stays open on "
                    "the Rollback screen (7).")
        return None

    def action_team(self, decision: str) -> None:
        v = self.view
        if self._said_why_not("team", decision) or v is None:
            return
        words = {"keep": "KEEP the index", "remove": "REMOVE the index (then the rollback flow)"}[decision]

        def done(note: Note | None) -> None:
            if note is not None:
                self.post_message(TeamDecision(decision, note.text))

        self.app.push_screen(NoteDialog(f"INCONCLUSIVE — the team decides: {words}",
                                        f"Recorded by the {role_words(v.team_roles)} for the team; the verdict "
                                        "stays INCONCLUSIVE with the team's decision beside it.",
                                        "what the team saw and agreed", (f"Record {decision}",)), done)

    def action_rollback(self) -> None:
        v = self.view
        if self._said_why_not("rollback") is None and v is not None and v.rollback_trigger:
            self.post_message(OpenRollback(dict(v.rollback_metrics), v.rollback_trigger))
