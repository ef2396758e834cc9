"""What every screen shows (docs/runbook.md): the T+ clock, the kill-switch state, who is at the keyboard
and in which role, the target, and the connection health — plus the big red kill-switch button
and, when the switch is on, the banner saying which scopes and who set them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Static

from engine.adapters.killswitch import KillSwitchReading
from engine.domain.clock import run_clock
from engine.domain.text import for_terminal
from engine.flows.runbook import STEPS, TITLES


@dataclass(frozen=True)
class FrameState:
    """Everything the frame draws, as plain data (the App refreshes it; screens only read it)."""

    user: str = ""
    roles: tuple[str, ...] = ()
    target: str = ""
    target_health: str = "○ not checked"  # ● ok | ✗ down: <why> | ○ not checked
    t0: datetime | None = None  # T+0 of the run's one clock (engine.domain.clock): known once the window opens
    now: datetime | None = None
    utc_offset: timedelta = timedelta(0)  # the plan's time zone: wall times before T+ exists
    kill: KillSwitchReading | None = None
    kill_pending: bool = False  # pressed; the store has not confirmed yet
    step: str = "plan"
    aside: str = ""  # a screen that is no runbook step (the audit log): the bar names it, no step highlighted
    locked: frozenset[str] = frozenset()  # steps that may not be entered yet
    run: str = ""  # "run 1a2b3c4d scheduled", "" before the prechecks begin
    driver: str = ""  # "you drive" | "joined: nok@… drives"
    speed: float = 1.0  # > 1: a rehearsal's compressed clock, always said on screen
    t_end: datetime | None = None  # the run ended: the clock stops there
    faults: tuple[str, ...] = ()  # a drill's injected faults that are on (F6), always said on screen
    dry_run: bool = False  # `run --dry-run`: nothing that writes is sent (docs/dry-run.md), always said

    @property
    def clock(self) -> str:
        return self.clock_text()

    def clock_text(self, short: bool = False) -> str:
        """The run's one clock (engine.domain.clock.run_clock), the drill's compression marked."""
        if self.now is None:
            return "T —"
        return run_clock(self.t0, self.now, end=self.t_end if self.t0 is not None else None, speed=self.speed,
                         offset=self.utc_offset, short=short)

    @property
    def kill_active(self) -> bool:
        return self.kill_pending or bool(self.kill and self.kill.active)

    def kill_text(self) -> str:
        if self.kill_pending and not (self.kill and self.kill.active):
            return "KILL SWITCH: ACTIVATING…"
        if self.kill is None:
            return "kill switch: reading…"
        if self.kill.fail_closed:
            return "KILL SWITCH: ACTIVE (fail-closed)"
        if self.kill.active:
            return "KILL SWITCH: ACTIVE (" + ", ".join(self.kill.active_scopes()) + ")"
        if self.kill.latency_level != "ok":  # the response time matters when it is slow (runbook 4.4)
            return f"kill switch: off — {self.kill.source} answered in {self.kill.response_ms:.0f} ms ({self.kill.latency_level})"
        return "kill switch: off"

    def banner(self) -> str:
        if not self.kill_active:
            return ""
        if self.kill is None or not self.kill.active:
            return "KILL SWITCH ACTIVATING — every ALTER of this run is being stopped"
        # Who set it and why come from the store, typed by anyone: shown, never interpreted.
        return "KILL SWITCH ACTIVE — " + for_terminal(self.kill.describe().removeprefix("ACTIVE: "))


SHORT_ROLE = {"canary_lead": "lead", "developer": "dev"}


class FramePart(Static):
    """A part of the frame: given a new FrameState five times a second (every kill-switch read),
    it repaints only when what it draws changed — a repaint of the frame each time was a tenth of
    the console's CPU on the dashboard."""

    state: reactive[FrameState] = reactive(FrameState, always_update=True, repaint=False)
    _drawn: object = None

    def watch_state(self, state: FrameState) -> None:
        self.state_changed(state)
        drawn = self.render()
        if drawn != self._drawn:
            self._drawn = drawn
            self.refresh()

    def state_changed(self, state: FrameState) -> None:
        """What else follows the state (classes, display), before the repaint is decided."""


class StepBar(FramePart):
    """The runbook's steps: where you are, which are open, which are locked (digits jump)."""

    def render(self) -> str:
        s = self.state
        parts = []
        narrow = self.size.width < 110  # an SSH laptop terminal: numbers only, the current step in full
        for step in STEPS:
            current = step == s.step and not s.aside
            title = TITLES[step] if current or not narrow else TITLES[step].split()[0]
            if current:
                parts.append(f"[reverse] {title} [/reverse]")
            elif step in s.locked:
                parts.append(f"[dim]{title} ⊘[/dim]")
            else:
                parts.append(f" {title} ")
        if s.aside:
            parts.append(f"[reverse] {escape(s.aside)} [/reverse]")
        steps = " ".join(parts)
        # The run and who drives, as many as fit whole on the one line (never a name cut in half).
        room = self.size.width - Text.from_markup(steps).cell_len - 4 if self.size.width else 10_000
        shown = []
        for part in (s.run, s.driver):
            part = for_terminal(part)
            if part and cell_len(" │ ".join([*shown, part])) <= room:
                shown.append(part)
        tail = escape(" │ ".join(shown))
        return steps + (f"  [dim]│ {tail}[/dim]" if tail else "")


class KillSwitchPressed(Message):
    """The big red button (the F9 key goes straight to the App's priority binding)."""


class RunFrame(FramePart):
    """The status line at the top of every screen."""

    def state_changed(self, state: FrameState) -> None:
        self.set_class(state.kill_active, "-kill-active")

    def render(self) -> Text:
        s = self.state
        role = "/".join(SHORT_ROLE.get(r, r) for r in s.roles) if s.roles else "no role"
        clock = s.clock_text(short=self.size.width < 110)
        parts: list[tuple[str, str]] = []
        if s.dry_run:  # first: whoever looks must know that nothing here changes the target
            parts.append(("DRY RUN · read-only", "bold black on cyan"))
        parts.append((clock, ""))
        if s.faults:  # next to the clock: the first thing anyone reading the dashboard must know
            parts.append((f"⚡ FAULT: {', '.join(s.faults)}", "bold black on yellow"))
        parts += [(s.kill_text(), ""), (f"{s.user} ({role})", ""), (f"{s.target} {s.target_health}", "")]
        return fit_parts(parts, self.size.width)


def fit_parts(parts: list[tuple[str, str]], width: int, sep: str = " │ ") -> Text:
    """The frame's parts on as few lines as the width allows, a line broken only between two parts —
    never inside a name (an 80-column jump-host terminal gets two or three lines, not a name cut in
    half). A part longer than a whole line wraps at its own spaces."""
    text = Text(" ")
    used = 1
    for i, (part, style) in enumerate(parts):
        if i:
            if width and used + len(sep) + cell_len(part) > width - 1:
                text.append("\n ")
                used = 1
            else:
                text.append(sep)
                used += len(sep)
        text.append(part, style=style or None)
        used += cell_len(part)
    return text


class KillBanner(FramePart):
    def on_mount(self) -> None:
        # As the state says, not hidden outright: Textual runs this after a subclass's on_mount, and
        # a dialog's banner mounted while the switch is already on has its state set by then.
        self.display = self.state.kill_active

    def state_changed(self, state: FrameState) -> None:
        self.display = state.kill_active

    def render(self) -> Text:
        return Text(self.state.banner())


class DialogKillBanner(KillBanner):
    """The banner over a dialog: the App mounts one into the dialog on top when the kill switch
    turns on, so F9 pressed in a dialog — a text input focused — shows at once, above it."""

    DEFAULT_CSS = """
    DialogKillBanner { dock: top; width: 100%; height: 1; background: red; color: white; text-style: bold;
                       padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, state: FrameState):
        super().__init__(id="dialog-kill-banner")
        self._first = state

    def on_mount(self) -> None:
        self.state = getattr(self.app, "frame", self._first)  # the newest, whatever came first


class FrameBar(Horizontal):
    """The frame's two rows, as one widget a screen yields first."""

    DEFAULT_CSS = """
    FrameBar { height: auto; dock: top; }
    FrameBar RunFrame { width: 1fr; height: 3; content-align: left middle; background: $panel; }
    FrameBar RunFrame.-kill-active { background: $error 40%; }
    FrameBar #kill-switch-button { width: 24; height: 3; background: red; color: white; text-style: bold; }
    FrameBar.-narrow #kill-switch-button { width: 13; }
    """

    def compose(self) -> ComposeResult:
        yield RunFrame(id="run-frame")
        yield Button("■ KILL SWITCH  F9", id="kill-switch-button")

    def on_mount(self) -> None:
        self._fit(self.app.size.width)  # before the first paint, not at the first Resize

    def on_resize(self) -> None:
        self._fit(self.size.width)

    def _fit(self, width: int) -> None:
        narrow = width < 110
        self.set_class(narrow, "-narrow")
        self.query_one("#kill-switch-button", Button).label = "■ KILL  F9" if narrow else "■ KILL SWITCH  F9"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "kill-switch-button":
            event.stop()
            self.post_message(KillSwitchPressed())


BANNER_CSS = """
KillBanner { height: 1; background: red; color: white; text-style: bold; padding: 0 1;
             text-wrap: nowrap; text-overflow: ellipsis; }
StepBar { height: 1; background: $boost; padding: 0 1; }
"""
