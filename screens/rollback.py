"""Runbook section 6 — the manual rollback: the decision flow (6.1 severity → 6.3 trigger), the
approvals matrix, the rollback ladder with its SQL, the conflicts against the rollback point, the
records with every attempt, and the status line R1…R5 (docs/runbook.md#7-rollback, docs/rollback.md).

The screen never reads the store or the server: the App runs ``engine.flows.rollback_flow`` in thread
workers and calls ``show(view, inspection)`` (``engine.views.rollback``). Keys post the messages below, which the App handles.
Every execution passes a confirmation dialog (rung 2 wants the index name typed), whatever the
screen last saw — the engine checks approvals and the target again before it sends anything. The
approval dialog opens on Cancel; a refusal, a new trigger (n) and keeping the index (k) are each
confirmed with a reason. Under the headline: the way forward, or that the state is final
(docs/rollback.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Static,
)

from engine.domain.clock import wall
from engine.domain.plan import Plan
from engine.domain.roles import may
from engine.domain.rollback_rules import TRIGGERS, Inspection
from engine.domain.text import for_terminal
from engine.flows.runbook import RunView
from engine.views.rollback import (
    RollbackView,
    RungProgress,
    decision_metrics,
    role_rows,
    rung_lines,
)
from screens.base import RunbookScreen, StepFooter, drawable, plain
from screens.tables import fill_wrapped, table_room

# --- what the screen asks the App to do ----------------------------------------------------------


@dataclass
class RollbackDecide(Message):
    """R1: decide to roll back for this trigger (the engine checks the deciding role); ``metrics``:
    the metrics at decision time the Decision step handed over (empty: the App reads the latest)."""

    trigger: str
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class RollbackApprove(Message):
    """An approval (or a refusal) for one of the user's roles."""

    role: str
    note: str
    decision: str = "approve"  # approve | refuse


@dataclass
class RollbackRetrigger(Message):
    """The canary lead closes the decision in force so a new trigger can be decided."""

    reason: str


@dataclass
class RollbackKeepIndex(Message):
    """The canary lead keeps the index after a refusal: the flow ends, final."""

    reason: str


@dataclass
class RollbackExecute(Message):
    """Run a rung: ``ignore`` (rung 1), ``undo`` (rung 1 back), ``drop`` (rung 2); the conflicts the
    user read and acknowledged in the confirmation dialog travel with it."""

    rung: str
    acknowledged: tuple[str, ...] = ()


@dataclass
class RollbackRefresh(Message):
    """Read the store (and the target, on the driving console) again."""


# --- dialogs -------------------------------------------------------------------------------------

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > VerticalScroll {{ width: 96; max-width: 100%; height: auto; max-height: 90%; border: thick $warning; background: $surface; padding: 1 2; }}
{name} .title {{ text-style: bold; }}
{name} .sql {{ background: $panel; padding: 0 1; margin: 1 0; }}
{name} .why {{ color: $error; height: auto; }}
{name} .warn {{ color: $warning; height: auto; }}
{name} Horizontal {{ height: auto; margin-top: 1; }}
{name} Button {{ margin-right: 2; }}
"""


class DecideDialog(ModalScreen[tuple[str, str] | None]):
    """R1: the decision, with the reason that goes into the record and the announcement."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="DecideDialog")

    def __init__(self, trigger: str, roles: tuple[str, ...]):
        super().__init__()
        self.trigger = next(t for t in TRIGGERS if t.key == trigger)
        self.roles = roles

    def compose(self) -> ComposeResult:
        t = self.trigger
        with VerticalScroll():
            yield Label(f"Decide: roll back — {t.condition}", classes="title", markup=False)
            yield Static(f"Severity {t.severity} → {t.route}. {t.who()}.", markup=False)
            if not set(t.deciders) & set(self.roles):
                yield Static(f"You hold {', '.join(self.roles) or 'no role'}; this decision is the "
                             f"{' or the '.join(t.deciders)}'s — it will be refused and audited.",
                             classes="warn", markup=False)
            yield Input(placeholder="reason (required): what was seen, since when", id="reason")
            yield Static("", classes="why", id="why")
            with Horizontal():
                yield Button("Decide rollback", id="confirm", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#why", Static).update("A reason is required: it goes into the rollback record (R1).")
            self.query_one("#reason", Input).focus()
            return
        self.dismiss((self.trigger.key, reason))

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#confirm", Button).press()

    def action_cancel(self) -> None:
        self.dismiss(None)


class ApproveDialog(ModalScreen[tuple[str, str, str] | None]):
    """One approval for one of the user's roles: (role, note, approve | refuse).

    Focus starts on Cancel, so no key pressed in a hurry acts: Tab reaches Approve, then
    Refuse…, which only opens ``RefuseDialog`` — a refusal is confirmed there, with its reason."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="ApproveDialog")

    def __init__(self, roles: tuple[str, ...], missing: tuple[str, ...]):
        super().__init__()
        self.roles = roles
        self.missing = missing

    def compose(self) -> ComposeResult:
        first = next((r for r in self.roles if r in self.missing), self.roles[0] if self.roles else None)
        with VerticalScroll():
            yield Label("Approve the rollback", classes="title")
            yield Static(f"Still needed: {', '.join(self.missing) or 'nothing'}. Approve for one of your "
                         "roles; nobody approves twice.", markup=False)
            if self.roles:
                with RadioSet(id="role"):
                    for r in self.roles:
                        yield RadioButton(r, value=r == first, name=r)
            else:
                yield Static("You hold no role in this plan: the approval will be refused and audited.",
                             classes="warn")
            yield Input(placeholder="note (optional; Enter approves)", id="note")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Approve", id="approve", variant="success")
                yield Button("Refuse…", id="refuse", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def _role(self) -> str:
        if not self.roles:
            return ""
        pressed = self.query_one("#role", RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else self.roles[0]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        role, note = self._role(), self.query_one("#note", Input).value.strip()
        if event.button.id == "approve":
            self.dismiss((role, note, "approve"))
            return

        def confirmed(reason: str | None) -> None:
            if reason is not None:
                self.dismiss((role, reason, "refuse"))
            else:  # back on the harmless choice
                self.call_after_refresh(self.query_one("#cancel", Button).focus)

        self.app.push_screen(RefuseDialog(role, note), confirmed)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # Enter in the note approves, with the note as it was at Enter
        self.dismiss((self._role(), event.value.strip(), "approve"))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReasonDialog(ModalScreen[str | None]):
    """A step that needs its reason, confirmed: the reason goes into the record and the audit
    trail. Focus starts in the reason; the step's button does nothing until a reason is typed."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="ReasonDialog")  # RefuseDialog matches it too

    def __init__(self, title: str, lines: tuple[str, ...], confirm: str, reason: str = "",
                 placeholder: str = "reason (required)"):
        super().__init__()
        self.title_text = title
        self.lines = lines
        self.confirm_label = confirm
        self.reason = reason
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(self.title_text, classes="title", markup=False)
            for line in self.lines:
                yield Static(line, markup=False)
            yield Input(value=self.reason, placeholder=self.placeholder, id="reason")
            yield Static("", classes="why", id="why")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        self._submit(self.query_one("#reason", Input).value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # The value as it was at Enter: a key typed right after it must not join the reason.
        event.stop()
        self._submit(event.value)

    def _submit(self, value: str) -> None:
        reason = value.strip()
        if not reason:
            self.query_one("#why", Static).update("A reason is required: it goes into the audit trail and every "
                                                  "console shows it. Type it, or Cancel (Esc).")
            self.query_one("#reason", Input).focus()
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RefuseDialog(ReasonDialog):
    """The confirmation of a refusal: what it does, what may follow it, and its reason."""

    def __init__(self, role: str, reason: str = ""):
        super().__init__("Refuse the rollback", (
            f"You refuse as {role or 'a person without a role'}: nothing is executed while your refusal stands.",
            "What may follow: another person holding the role approves (your refusal stays on the record), you "
            "approve after all, the canary lead makes a new trigger (n), or keeps the index (k) — final.",
        ), "Refuse the rollback", reason, "reason (required): why the rollback must not go ahead")


# The canary lead's steps after a refusal (docs/rollback.md).
RETRIGGER_LINES = (
    "Closes the decision in force: the flow is back at AWAITING DECISION, the trigger can be picked again (t) "
    "and its deciding role decides (d). The approvals and refusals given so far stay on the record and do not "
    "count for the new decision. Nothing is sent to the server.",
)
KEEP_LINES = (
    "Ends the rollback flow of this run: the index stays, and the rollback is recorded as not needed, with "
    "your reason. This is final: no decision, approval or rung follows it on this run; removing the index "
    "later is a change of its own.",
)


class ConfirmRung(ModalScreen[tuple[str, ...] | None]):
    """Executing a rung: the statement repeated, the conflicts to acknowledge, and for the DROP the
    index name typed by hand. Returns the acknowledged conflicts, or None when cancelled."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmRung")

    def __init__(self, rung: str, statement: str, index: str, conflicts: tuple[str, ...],
                 warnings: tuple[str, ...]):
        super().__init__()
        self.rung = rung
        self.statement = statement
        self.index = index
        self.conflicts = conflicts
        self.warnings = warnings

    def compose(self) -> ComposeResult:
        title = {"ignore": "Rung 1 — ignore the index (instant, reversible)",
                 "undo": "Undo rung 1 — the index is used again",
                 "drop": "Rung 2 — DROP INDEX (not reversible)"}[self.rung]
        with VerticalScroll():
            yield Label(title, classes="title")
            yield Static(self.statement or "(no statement: refresh first)", classes="sql", markup=False)
            for w in self.warnings:
                yield Static(f"⚠ {w}", classes="warn", markup=False)
            if self.conflicts:
                yield Static("The table changed since the rollback point:", classes="warn")
                for c in self.conflicts:
                    yield Static(f"  • {c}", markup=False)
                yield Checkbox("I have read these changes; go ahead anyway", id="ack")
            if self.rung == "drop":
                yield Input(placeholder=f"type the index name to confirm: {self.index}", id="typed")
            yield Static("", classes="why", id="why")
            with Horizontal():
                label = {"ignore": "Ignore the index", "undo": "Undo", "drop": "DROP INDEX"}[self.rung]
                yield Button(label, id="confirm", variant="error" if self.rung == "drop" else "warning")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.rung == "drop":
            self.query_one("#typed", Input).focus()
        elif self.conflicts:
            self.query_one("#ack", Checkbox).focus()
        else:
            self.query_one("#confirm", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        why = self.query_one("#why", Static)
        if self.conflicts and not self.query_one("#ack", Checkbox).value:
            why.update("Read the changes above and tick the box: they are acknowledged in the audit trail.")
            return
        if self.rung == "drop" and self.query_one("#typed", Input).value.strip() != self.index:
            why.update(f"Type the index name exactly ({self.index}) to confirm the DROP.")
            self.query_one("#typed", Input).focus()
            return
        self.dismiss(tuple(self.conflicts))

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#confirm", Button).press()

    def action_cancel(self) -> None:
        self.dismiss(None)


# --- the screen ----------------------------------------------------------------------------------


APPROVAL_COLUMNS = ("Role", "Part", "Status", "Who", "At")
WIDE = 100  # from this width the decision flow (46 columns) and the approvals stand side by side
REFRESH_S = 3.0  # the screen asks for a fresh view this often (real seconds), changed or not

def _preset_words(metrics: dict[str, Any]) -> str:
    """The Decision step's metrics (engine/views/dashboard.py: label, value, unit per metric) in a line."""
    return ", ".join(f"{label} {value}" for label, value in decision_metrics(metrics)) or "none"


def _at(value: datetime | None, offset: timedelta = timedelta(0), zone: bool = False) -> str:
    """Wall time in the plan's time zone (engine.domain.clock.wall); ``zone``: said with it."""
    return wall(value, offset, zone=zone) if value is not None else ""


class RollbackScreen(RunbookScreen):
    step = "rollback"
    # Below 100 columns the two side-by-side rows stack (an SSH session on a laptop: 80×24).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]
    BINDINGS = [
        Binding("t", "next_trigger", "Trigger", id="rollback-trigger"),
        Binding("d", "decide", "Decide", id="rollback-decide"),
        Binding("a", "approve", "Approve", id="rollback-approve"),
        Binding("i", "ignore", "Rung 1 ignore", id="rollback-ignore"),
        Binding("u", "undo", "Undo rung 1", id="rollback-undo"),
        Binding("x", "drop", "Rung 2 DROP", id="rollback-drop"),
        Binding("n", "retrigger", "New trigger", id="rollback-retrigger"),
        Binding("k", "keep_index", "Keep index", id="rollback-keep-index"),
        # The screen refreshes itself on every change in the store; r stays for the impatient.
        Binding("r", "refresh", "Refresh", id="rollback-refresh", show=False),
    ]
    DEFAULT_CSS = RunbookScreen.DEFAULT_CSS + """
    RollbackScreen #title { padding: 0 1; text-style: bold; }
    RollbackScreen #status { padding: 0 1; text-style: bold; }
    RollbackScreen #status.-ok { background: $success 30%; }
    RollbackScreen #status.-warning { background: $warning 30%; }
    RollbackScreen #status.-error { background: $error 50%; }
    RollbackScreen #next { padding: 0 1; text-style: bold; }
    RollbackScreen #steps { padding: 0 1; color: $text-muted; }
    RollbackScreen #escalation { background: red; color: white; text-style: bold; padding: 0 1; }
    RollbackScreen .row { height: auto; }
    RollbackScreen .row > Vertical { height: auto; }
    RollbackScreen #flow { width: 46; }
    RollbackScreen #matrix { width: 1fr; }
    RollbackScreen #target { width: 50; }
    RollbackScreen #history { width: 1fr; }
    RollbackScreen.-narrow .row { layout: vertical; }
    RollbackScreen.-narrow #flow, RollbackScreen.-narrow #matrix, RollbackScreen.-narrow #target,
    RollbackScreen.-narrow #history { width: 100%; }
    RollbackScreen .section { margin: 0 1; text-style: bold; color: $accent; }
    RollbackScreen .row, RollbackScreen #ladder { margin-top: 1; }
    RollbackScreen RadioSet { margin: 0 1; width: 44; }
    RollbackScreen #trigger-who { margin-top: 1; }
    RollbackScreen DataTable { margin: 0 1; height: auto; max-height: 10; }
    RollbackScreen .body { padding: 0 1; height: auto; }
    RollbackScreen #ladder { height: auto; }
    RollbackScreen #ladder .rung { padding: 0 1; }
    RollbackScreen #ladder .sql { padding: 0 1 0 3; color: $text-muted; }
    RollbackScreen #unstaffed { color: $error; padding: 0 1; height: auto; }
    RollbackScreen #live { padding: 0 1; height: auto; background: $warning 15%; }
    """

    def __init__(self, plan: Plan, user_roles: tuple[str, ...]):
        super().__init__(name="rollback")
        self.plan = plan
        self._tz = plan.off_peak.utc_offset  # wall times in the plan's time zone (engine.domain.clock.wall)
        self.user_roles = tuple(user_roles)
        self.view: RollbackView | None = None
        self.inspection: Inspection | None = None
        self.selected: str = TRIGGERS[0].key
        self._picked_by_user = False
        # The metrics the Decision step handed over with its trigger (``preselect``): R1 records them.
        self.preset_metrics: dict[str, Any] = {}
        self._last_refresh: datetime | None = None
        self._approvals: tuple[list[tuple[str, ...]], tuple[int, ...]] = ([], ())  # rows, widths drawn

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Rollback (runbook 6)", id="title", markup=False)
            yield Static("reading the store…", id="status", markup=False)
            yield Static("", id="next", markup=False)
            yield Static("", id="steps", markup=False)
            yield Static("", id="live", markup=False)
            yield Static("", id="escalation", markup=False)
            with Horizontal(classes="row"):
                with Vertical(id="flow"):
                    yield Static("Decision flow: severity → trigger (6.1, 6.3)", classes="section")
                    with RadioSet(id="triggers", compact=True):
                        for t in TRIGGERS:
                            yield RadioButton(f"{t.severity:<11} {t.label}", name=t.key, value=t.key == self.selected)
                    yield Static("", id="trigger-who", classes="body", markup=False)
                with Vertical(id="matrix"):
                    yield Static("Approvals (6.3)", classes="section")
                    yield DataTable(id="approvals", cursor_type="none", zebra_stripes=True)
                    yield Static("", id="unstaffed", markup=False)
                    yield Static("", id="decision", classes="body", markup=False)
            with Vertical(id="ladder"):
                yield Static("Rollback ladder (docs/rollback.md)", classes="section")
                yield Static("", id="eta", classes="rung", markup=False)
                for n in range(2):
                    yield Static("", id=f"rung{n}-title", classes="rung", markup=False)
                    for part in ("sql", "undo", "verify"):
                        yield Static("", id=f"rung{n}-{part}", classes="sql", markup=False)
                yield Static("", id="observation", classes="rung", markup=False)
            with Horizontal(classes="row"):
                with Vertical(id="target"):
                    yield Static("Target vs the rollback point", classes="section")
                    yield Static("", id="inspection", classes="body", markup=False)
                with Vertical(id="history"):
                    yield Static("Records and attempts", classes="section")
                    yield DataTable(id="records", cursor_type="row", zebra_stripes=True)
        yield StepFooter()

    def on_mount(self) -> None:
        self.query_one("#records", DataTable).add_columns("What", "Status", "Done", "Attempts")
        self.query_one("#escalation", Static).display = False
        self.query_one("#live", Static).display = False
        self.query_one("#triggers", RadioSet).focus()
        self._draw()

    def on_resize(self) -> None:
        if drawable(self) and self._approvals[0]:
            self._draw_approvals(self._approvals[0])

    def _draw_approvals(self, cells: list[tuple[str, ...]]) -> None:
        """The approvals in the matrix's width (beside the decision flow from 100 columns, under it
        below): a cell wraps at its spaces rather than being cut; short of room an approver is named
        without the host (the decision's line and the audit trail keep it)."""
        width = self.size.width or self.app.size.width
        outside = 2 + 2 + (46 if width >= WIDE else 0)  # scroll bar, margins, the decision flow
        room = table_room(width, len(APPROVAL_COLUMNS), outside)
        shown = cells
        if sum(max(cell_len(c[i]) for c in [APPROVAL_COLUMNS, *cells]) for i in range(5)) > room:
            shown = [(*c[:3], c[3].split("@")[0], c[4]) for c in cells]  # the host: in the audit, the decision
        widths = fill_wrapped(self.query_one("#approvals", DataTable), APPROVAL_COLUMNS, shown, room,
                              self._approvals[1])
        self._approvals = (cells, widths)

    # --- data in ---------------------------------------------------------------------------------

    def show(self, view: RollbackView, inspection: Inspection | None) -> None:
        """The App's worker read these; draw them (or keep them until the screen is mounted)."""
        self.view = view
        self.inspection = inspection
        trigger = view.trigger or (None if self._picked_by_user else view.suggested_trigger)
        if trigger:
            self.selected = trigger
        if drawable(self):
            self._draw()

    def preselect(self, trigger: str, metrics: dict[str, Any]) -> None:
        """Open on the trigger the Decision step's failing criteria point to, with the metrics it
        showed: the decision (d) records those metrics. A decision in force keeps its own trigger."""
        if trigger in {t.key for t in TRIGGERS}:
            self.selected = trigger
            self._picked_by_user = True
        self.preset_metrics = dict(metrics)
        if drawable(self):
            self._draw()

    def show_view(self, view: RunView, now: datetime) -> None:
        """The run changed in the store (another console approved, the run moved on): ask for a
        fresh rollback view, so every console sees it within a second."""
        self._last_refresh = now
        self.post_message(RollbackRefresh())

    def tick(self, view: RunView, now: datetime) -> None:
        """The screen refreshes itself: a fresh view (and the driver's inspection of the target)
        every few seconds, whether or not the run's row changed — the R4 countdown, the target's
        state, a rung's record."""
        if self._last_refresh is None or (now - self._last_refresh).total_seconds() >= REFRESH_S * self._speed():
            self._last_refresh = now
            self.post_message(RollbackRefresh())

    def _speed(self) -> float:
        return float(getattr(getattr(self.app, "clock", None), "speed", 1.0))

    def show_rung(self, progress: RungProgress | None) -> None:
        """A rung while it runs (the App's worker reads it once a second): its statement, its
        progress and the metadata-lock queue on the table; None when it is over."""
        live = self.query_one("#live", Static)
        live.display = progress is not None
        if progress is not None:
            live.update("\n".join(for_terminal(line) for line in
                                  rung_lines(progress, self.plan.schema, self.plan.change.table)))

    # --- drawing ---------------------------------------------------------------------------------

    def _draw(self) -> None:
        v = self.view
        status = self.query_one("#status", Static)
        for level in ("ok", "warning", "error"):
            status.set_class(v is not None and v.level == level, f"-{level}")
        if v is None:
            self._draw_matrix()
            return
        self.query_one("#title", Static).update(
            f"{v.table} · {v.index} ({v.columns}) · run {v.run_id[:8]} "
            f"{v.run_status}{f', {v.fail_reason}' if v.fail_reason else ''}")
        conflicts = len(self.inspection.conflicts) if self.inspection is not None else 0
        status.update(for_terminal(v.status) + (f"  ⚠ {conflicts} change(s) since the rollback point (below)" if conflicts
                                  and v.run_status != "rolled_back" else ""))
        nxt = self.query_one("#next", Static)
        nxt.display = bool(v.next_line)
        nxt.update(for_terminal(v.next_line))
        self.query_one("#steps", Static).update("  ".join(
            f"{s.code} {'✓' if s.done else '·'} {s.label}{': ' + for_terminal(s.detail) if s.detail else ''}" for s in v.steps))
        escalation = self.query_one("#escalation", Static)
        escalation.display = bool(v.escalation)
        escalation.update(f"ESCALATION {v.escalation}" if v.escalation else "")
        self._draw_matrix()
        self._draw_ladder()
        self._draw_inspection()
        self._draw_records()

    def _draw_matrix(self) -> None:
        radios = self.query_one("#triggers", RadioSet)
        for button in radios.query(RadioButton):
            if button.name == self.selected and not button.value:
                button.value = True
        v = self.view
        radios.disabled = bool(v and v.trigger)
        t = next(t for t in TRIGGERS if t.key == self.selected)
        self.query_one("#trigger-who", Static).update(f"{t.severity} → {t.route}\n{t.who()}")
        state = v.state if v is not None and v.trigger == self.selected else None
        rows = v.roles if v is not None and v.roles and (v.trigger or v.suggested_trigger) == self.selected \
            else role_rows(self.plan, self.selected, state)
        cells = []
        for r in rows:
            if r.actor:
                who = r.actor
            elif r.part == "—":
                who = ""
            else:
                who = f"({', '.join(r.people)})" if r.people else "nobody in the plan"
            cells.append((r.role.replace("_", " "), r.part, r.status, who, _at(r.at, self._tz)))
        self._draw_approvals(cells)
        unstaffed = [r.role for r in rows if r.part != "—" and not r.people]
        note = self.query_one("#unstaffed", Static)
        note.display = bool(unstaffed)
        note.update(f"Nobody in the plan holds {', '.join(unstaffed)}: add them to the plan's [[people]], "
                    "or the rollback cannot be approved." if unstaffed else "")
        decision = self.query_one("#decision", Static)
        if v is not None and v.decided_by:
            metrics = ", ".join(f"{k} {val}" for k, val in v.metrics) or "none recorded"
            decision.update(for_terminal(f"Decided by {v.decided_by[1]} ({v.decided_by[0]}) at {_at(v.decided_at, self._tz, True)}: "
                                         f"{v.reason}") + f"\nMetrics at decision: {for_terminal(metrics)}")
        elif self.preset_metrics:
            decision.update("No decision yet: pick the trigger (t, or arrows) and decide (d).\nMetrics at decision "
                            f"(from the Decision step): {for_terminal(_preset_words(self.preset_metrics))}")
        else:
            decision.update("No decision yet: pick the trigger (t, or arrows) and decide (d).")

    def _draw_ladder(self) -> None:
        v = self.view
        assert v is not None
        self.query_one("#eta", Static).update(f"⏰ ETA (R1): {v.eta}" if v.eta else "")
        keys = {"ignore": "i", "drop": "x"}
        for n in range(2):
            rung = v.ladder[n] if n < len(v.ladder) else None
            lines = {"title": "", "sql": "", "undo": "", "verify": ""}
            if rung is not None:
                expected = "empty" if rung.rung == "drop" else "YES" if "IGNORED" in rung.verify_sql else "NO"
                lines = {"title": f"{rung.title} — {rung.state}  [{keys[rung.rung]}]", "sql": rung.sql,
                         "undo": f"undo [u]: {rung.undo_sql}" if rung.undo_sql else "",
                         "verify": f"verify (expected {expected}): {rung.verify_sql}"}
            for part, text in lines.items():
                widget = self.query_one(f"#rung{n}-{part}", Static)
                widget.display = bool(text)
                widget.update(text)
        if not v.ladder:
            self.query_one("#rung0-title", Static).update("no ladder: refresh (r)")
            self.query_one("#rung0-title", Static).display = True
        observation = self.query_one("#observation", Static)
        observation.display = v.observation_until is not None
        observation.update(f"Post-rollback observation (R4) until {_at(v.observation_until, self._tz, True)}"
                           if v.observation_until else "")

    def _draw_inspection(self) -> None:
        v, i = self.view, self.inspection
        assert v is not None
        point = f"the rollback point ({_at(v.point_captured_at, self._tz, True)})" if v.point_captured_at else \
            "the rollback point (none stored)"
        if i is None:
            text = ("Not inspected from this console (the driving console reads the target); executing "
                    "inspects it again.")
        elif i.error:
            text = f"✗ {i.error}"
        else:
            cols = ", ".join(c + (f"({p})" if p else "") for c, p in i.index_columns)
            ignored = {True: "yes", False: "no", None: "n/a"}[i.ignored]
            lines = [f"{i.server}, inspected {_at(i.inspected_at, self._tz, True)}"]
            if i.index_exists:
                lines += [f"index present ({cols})", f"this run's: {'✓' if i.ours else '✗'} · ignored: {ignored}"]
            else:
                lines.append(f"index {v.index} absent")
            lines += [f"✗ {b}" for b in i.blockers]
            if i.conflicts:
                lines.append(f"⚠ {len(i.conflicts)} change(s) since {point}, to acknowledge:")
                lines += [f"• {c}" for c in i.conflicts]
            else:
                lines.append(f"✓ no change since {point}")
            text = "\n".join(lines)
        self.query_one("#inspection", Static).update(text)

    def _draw_records(self) -> None:
        v = self.view
        assert v is not None
        table = self.query_one("#records", DataTable)
        table.clear()
        for r in v.records:
            attempts = " ".join(
                f"{a.n}{'✓' if a.ok else '✗' if a.error else '·'} {a.kind or a.note or ('sent' if a.sent else '')}"
                for a in r.attempts)
            if r.error:
                attempts = f"{attempts} {r.error[:40]}".strip()
            table.add_row(*plain(r.what, r.status, _at(r.completed_at, self._tz), attempts))

    # --- keys ------------------------------------------------------------------------------------

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set.id != "triggers" or event.pressed.name is None:
            return
        if event.pressed.name != self.selected:
            self._picked_by_user = True
        self.selected = event.pressed.name
        self._draw_matrix()

    def action_next_trigger(self) -> None:
        v = self.view
        if v is not None and (v.trigger or v.final):
            # The key cannot act now: say why in one line, and who can change it.
            if v.final:
                why = f"The rollback flow is final ({v.status.split(' — ')[0]}): the trigger no longer changes."
            else:
                by = f"{v.decided_by[1]} ({v.decided_by[0]})" if v.decided_by else "the decider"
                why = (f"The trigger is part of the decision by {by}: the canary lead can close it for a new "
                       "trigger (n).")
            self.notify(why, title="Trigger", severity="warning", timeout=8)
            return
        keys = [t.key for t in TRIGGERS]
        self._picked_by_user = True
        self.selected = keys[(keys.index(self.selected) + 1) % len(keys)]
        self._draw_matrix()

    def action_decide(self) -> None:
        def chosen(result: tuple[str, str] | None) -> None:
            if result is not None:
                self.post_message(RollbackDecide(*result, metrics=dict(self.preset_metrics)))

        self.app.push_screen(DecideDialog(self.selected, self.user_roles), chosen)

    def action_approve(self) -> None:
        missing = self.view.state.missing if self.view is not None and self.view.state else ()

        def chosen(result: tuple[str, str, str] | None) -> None:
            if result is not None:
                self.post_message(RollbackApprove(*result))

        self.app.push_screen(ApproveDialog(self.user_roles, missing), chosen)

    def _cannot(self, action: str, what: str) -> bool:
        """True (and said in one line: why not now, and who can) when the view has no such step.
        Someone outside the role goes on to the engine, which refuses, names who may, and audits."""
        v = self.view
        if not may(action, self.user_roles):
            return False
        engine_action = {"rollback_retrigger": "retrigger_rollback", "rollback_keep_index": "keep_index"}[action]
        if v is not None and any(s.action == engine_action for s in v.next_steps):
            return False
        if v is None:
            why = "nothing read yet: wait a second, or refresh (r)"
        elif v.final:
            why = f"the rollback flow is final ({v.status.split(' — ')[0]})"
        else:
            now = f"{v.status.split(' — ')[0]}; {v.next_line[0].lower()}{v.next_line[1:]}" if v.next_line else v.status
            why = {"rollback_retrigger": "there is no decision in force to close",
                   "rollback_keep_index": "it follows a refusal, and none stands"}[action] + f" — now: {now}"
        self.notify(f"{what}: {why}", title=what, severity="warning", timeout=10)
        return True

    def action_retrigger(self) -> None:
        def chosen(reason: str | None) -> None:
            if reason is not None:
                self.post_message(RollbackRetrigger(reason))

        if self._cannot("rollback_retrigger", "New trigger"):
            return
        if not may("rollback_retrigger", self.user_roles):
            self.post_message(RollbackRetrigger(""))  # refused by the engine: who may, in the audit trail
            return
        self.app.push_screen(ReasonDialog("New trigger: close the decision in force", RETRIGGER_LINES,
                                          "Close the decision"), chosen)

    def action_keep_index(self) -> None:
        def chosen(reason: str | None) -> None:
            if reason is not None:
                self.post_message(RollbackKeepIndex(reason))

        if self._cannot("rollback_keep_index", "Keep the index"):
            return
        if not may("rollback_keep_index", self.user_roles):
            self.post_message(RollbackKeepIndex(""))  # refused by the engine: who may, in the audit trail
            return
        index = self.view.index if self.view is not None else "the index"
        self.app.push_screen(ReasonDialog(f"Keep {index}: end the rollback flow", KEEP_LINES, "Keep the index"),
                             chosen)

    def _warnings(self) -> tuple[str, ...]:
        v, i = self.view, self.inspection
        if v is None:
            return ("nothing read yet: refresh (r) first",)
        out: list[str] = []
        if v.state is None or not v.state.complete:
            out.append(f"as of {_at(v.as_of, self._tz, True)} the rollback is not approved: {v.status}")
        if i is not None:
            out += list(i.blockers)
            if i.error:
                out.append(i.error)
        if "dba" not in self.user_roles:
            out.append("executing is the DBA's step: it will be refused and audited")
        return tuple(out)

    def _confirm(self, rung: str) -> None:
        if getattr(self.app, "dry_refused", lambda _what: False)(f"the rollback's {rung}"):
            return  # a dry run (docs/dry-run.md): refused before the dialog
        v = self.view
        statement = ""
        for r in v.ladder if v is not None else ():
            if rung in ("ignore", "undo") and r.rung == "ignore":
                statement = r.undo_sql if rung == "undo" else r.sql
            elif rung == "drop" and r.rung == "drop":
                statement = r.sql
        conflicts = self.inspection.conflicts if self.inspection is not None and rung != "undo" else ()

        def chosen(acknowledged: tuple[str, ...] | None) -> None:
            if acknowledged is not None:
                self.post_message(RollbackExecute(rung, acknowledged))

        self.app.push_screen(ConfirmRung(rung, statement, v.index if v else "", conflicts,
                                         self._warnings() if rung != "undo" else ()), chosen)

    def action_ignore(self) -> None:
        self._confirm("ignore")

    def action_undo(self) -> None:
        self._confirm("undo")

    def action_drop(self) -> None:
        self._confirm("drop")

    def action_refresh(self) -> None:
        self.post_message(RollbackRefresh())
