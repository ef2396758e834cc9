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

Its dialogs are screens/rollback_dialogs.py; the text it draws, screens/rollback_text.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, RadioButton, RadioSet, Static

from engine.domain.plan import Plan
from engine.domain.roles import in_role, may
from engine.domain.rollback_rules import TRIGGERS, Inspection
from engine.domain.text import for_terminal
from engine.flows.runbook import RunView
from engine.views.rollback import RollbackView, RungProgress, role_rows, rung_lines
from screens.base import RunbookScreen, StepFooter, drawable, plain
from screens.rollback_dialogs import (
    KEEP_LINES,
    RETRIGGER_LINES,
    ApproveDialog,
    ConfirmRung,
    DecideDialog,
    ReasonDialog,
)
from screens.rollback_text import (
    APPROVAL_COLUMNS,
    approval_cells,
    at,
    decision_text,
    inspection_text,
    ladder_lines,
    record_rows,
    status_line,
    steps_line,
    title_line,
    unstaffed_line,
    without_hosts,
)
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


# --- the screen ----------------------------------------------------------------------------------

WIDE = 100  # from this width the decision flow (46 columns) and the approvals stand side by side
REFRESH_S = 3.0  # the screen asks for a fresh view this often (real seconds), changed or not


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
    CSS_PATH = "rollback.tcss"

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
            shown = without_hosts(cells)  # the host: in the audit, the decision
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
        self.query_one("#title", Static).update(title_line(v))
        status.update(status_line(v, self.inspection))
        nxt = self.query_one("#next", Static)
        nxt.display = bool(v.next_line)
        nxt.update(for_terminal(v.next_line))
        self.query_one("#steps", Static).update(steps_line(v))
        escalation = self.query_one("#escalation", Static)
        escalation.display = bool(v.escalation)
        escalation.update(f"ESCALATION {v.escalation}" if v.escalation else "")
        self._draw_matrix()
        self._draw_ladder()
        self.query_one("#inspection", Static).update(inspection_text(v, self.inspection, self._tz))
        table = self.query_one("#records", DataTable)
        table.clear()
        for row in record_rows(v, self._tz):
            table.add_row(*plain(*row))

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
        self._draw_approvals(approval_cells(rows, self._tz))
        note = self.query_one("#unstaffed", Static)
        text = unstaffed_line(rows)
        note.display = bool(text)
        note.update(text)
        self.query_one("#decision", Static).update(decision_text(v, self.preset_metrics, self._tz))

    def _draw_ladder(self) -> None:
        v = self.view
        assert v is not None
        self.query_one("#eta", Static).update(f"⏰ ETA (R1): {v.eta}" if v.eta else "")
        for n in range(2):
            for part, text in ladder_lines(v, n).items():
                widget = self.query_one(f"#rung{n}-{part}", Static)
                widget.display = bool(text)
                widget.update(text)
        if not v.ladder:
            self.query_one("#rung0-title", Static).update("no ladder: refresh (r)")
            self.query_one("#rung0-title", Static).display = True
        observation = self.query_one("#observation", Static)
        observation.display = v.observation_until is not None
        observation.update(f"Post-rollback observation (R4) until {at(v.observation_until, self._tz, True)}"
                           if v.observation_until else "")

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
                by = in_role(v.decided_by[1], v.decided_by[0]) if v.decided_by else "the decider"
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

    def _reason_step(self, action: str, what: str, message: type[RollbackRetrigger | RollbackKeepIndex],
                     dialog: Callable[[], ReasonDialog]) -> None:
        """The canary lead's steps after a refusal (docs/rollback.md), each confirmed with its reason."""
        def chosen(reason: str | None) -> None:
            if reason is not None:
                self.post_message(message(reason))

        if self._cannot(action, what):
            return
        if not may(action, self.user_roles):
            self.post_message(message(""))  # refused by the engine: who may, in the audit trail
            return
        self.app.push_screen(dialog(), chosen)

    def action_retrigger(self) -> None:
        self._reason_step("rollback_retrigger", "New trigger", RollbackRetrigger, lambda: ReasonDialog(
            "New trigger: close the decision in force", RETRIGGER_LINES, "Close the decision"))

    def action_keep_index(self) -> None:
        index = self.view.index if self.view is not None else "the index"
        self._reason_step("rollback_keep_index", "Keep the index", RollbackKeepIndex, lambda: ReasonDialog(
            f"Keep {index}: end the rollback flow", KEEP_LINES, "Keep the index"))

    def _warnings(self) -> tuple[str, ...]:
        v, i = self.view, self.inspection
        if v is None:
            return ("nothing read yet: refresh (r) first",)
        out: list[str] = []
        if v.state is None or not v.state.complete:
            out.append(f"as of {at(v.as_of, self._tz, True)} the rollback is not approved: {v.status}")
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
