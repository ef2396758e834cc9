"""The Rollback screen's dialogs (screens/rollback.py): the decision (R1) with its reason, an
approval (focus on Cancel; a refusal confirmed with its reason), a step that needs its reason (a new
trigger, keeping the index), and a rung's execution — the statement repeated, the conflicts to
acknowledge, and for the DROP the index name typed by hand (docs/rollback.md)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from engine.domain.roles import role_words, roles_and
from engine.domain.rollback_rules import TRIGGERS
from screens.base import required_text
from screens.dialog import ReasonModal


class DecideDialog(ReasonModal[tuple[str, str]]):
    """R1: the decision, with the reason that goes into the record and the announcement."""

    CSS_PATH = "rollback_dialogs.tcss"
    WHY = "A reason is required: it goes into the rollback record (R1)."

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
                yield Static(f"You hold {roles_and(self.roles)}; this decision is the "
                             f"{role_words(t.deciders)}'s — it will be refused and audited.",
                             classes="warn", markup=False)
            yield Input(placeholder="reason (required): what was seen, since when", id="reason")
            yield Static("", classes="why", id="why")
            with Horizontal():
                yield Button("Decide rollback", id="confirm", variant="error")
                yield Button("Cancel", id="cancel")

    def result(self, reason: str) -> tuple[str, str]:
        return (self.trigger.key, reason)


class ApproveDialog(ModalScreen[tuple[str, str, str] | None]):
    """One approval for one of the user's roles: (role, note, approve | refuse).

    Focus starts on Cancel, so no key pressed in a hurry acts: Tab reaches Approve, then
    Refuse…, which only opens ``RefuseDialog`` — a refusal is confirmed there, with its reason."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    CSS_PATH = "rollback_dialogs.tcss"

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
    CSS_PATH = "rollback_dialogs.tcss"  # RefuseDialog matches its rules too

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
        reason = required_text(self, "reason", "A reason is required: it goes into the audit trail and every "
                               "console shows it. Type it, or Cancel (Esc).", value)
        if reason is not None:
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
    CSS_PATH = "rollback_dialogs.tcss"

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
