"""A small dialog for what a person records by hand: a test result with its reference, a reason
added to the kill switch after the fact. A text is required; nothing is recorded on Esc."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from screens.base import required_text


@dataclass(frozen=True)
class Note:
    choice: str
    text: str


class NoteDialog(ModalScreen[Note | None]):
    BINDINGS = [("escape", "cancel", "Cancel")]
    CSS_PATH = "note.tcss"

    def __init__(self, title: str, explain: str, placeholder: str, choices: tuple[str, ...]):
        super().__init__()
        self.title_text = title
        self.explain = explain
        self.placeholder = placeholder
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title", markup=False)
            yield Static(self.explain, id="explain", markup=False)
            yield Input(placeholder=self.placeholder, id="text")
            yield Static("", id="why", markup=False)
            with Horizontal():
                for n, choice in enumerate(self.choices):
                    yield Button(choice, id=f"choice-{n}", variant="primary" if n == 0 else "default")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        text = required_text(self, "text", "A text is required: it goes to the audit trail.")
        if text is None:
            return
        self.dismiss(Note(self.choices[int((event.button.id or "choice-0").split("-")[1])], text))

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#choice-0", Button).press()

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class Lesson:
    what: str
    impact: str
    cause: str
    action: str


class LessonDialog(ModalScreen[Lesson | None]):
    """Runbook 8.3: one row of the lessons-learned table. What happened is required; impact, root
    cause and action item may follow. Tab moves between the fields; Enter in the last one records."""

    BINDINGS = [("escape", "cancel", "Cancel")]
    FIELDS = (("what", "What happened", "e.g. p99 rose 12 % for 8 minutes after the ALTER"),
              ("impact", "Impact", "e.g. none for users; PASS WITH WARNING"),
              ("cause", "Root cause", "e.g. the buffer pool warmed the new index"),
              ("action", "Action item", "e.g. run the next canary after the nightly batch"))
    CSS_PATH = "note.tcss"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Lessons learned (runbook 8.3)", id="title", markup=False)
            yield Static("One row of the table, recorded with your name and the time and exported with the report.",
                         id="explain", markup=False)
            for key, label, placeholder in self.FIELDS:
                yield Label(label, classes="field", markup=False)
                yield Input(placeholder=placeholder, id=f"lesson-{key}")
            yield Static("", id="why", markup=False)
            with Horizontal():
                yield Button("Record", id="record", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        # Four bordered fields and the buttons need 31 rows: on a shorter terminal (an 80×24 jump
        # host) the fields go compact, one row each, and Record stays on screen.
        if self.app.size.height < 32:
            for field in self.query(Input):
                field.compact = True
        self.query_one("#lesson-what", Input).focus()

    def _values(self) -> dict[str, str]:
        return {key: self.query_one(f"#lesson-{key}", Input).value.strip() for key, _, _ in self.FIELDS}

    def _record(self) -> None:
        if required_text(self, "lesson-what", "What happened is required.") is None:
            return
        self.dismiss(Lesson(**self._values()))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self._record()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "lesson-action":
            self._record()
        else:
            self.focus_next()

    def action_cancel(self) -> None:
        self.dismiss(None)
