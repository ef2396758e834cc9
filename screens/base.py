"""The frame every runbook screen shares."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Input, Static
from textual.widgets._footer import FooterKey

from engine.domain.text import for_terminal
from engine.flows.runbook import RunView
from screens.frame import BANNER_CSS, FrameBar, FramePart, FrameState, KillBanner, RunFrame, StepBar


def plain(*cells: object) -> tuple[Text, ...]:
    """Table cells shown as they are: text from the store or the server is never read as markup
    (a ``[`` in a detail or a query would otherwise be a tag, or an error), nor by the terminal
    (an escape sequence a user typed into a reason is shown escaped: ``\\x1b[2J``)."""
    return tuple(Text(for_terminal(c)) for c in cells)


def clip(text: str, most: int = 160) -> str:
    """A cell's text whole when it is short enough to read in a table, else marked as cut."""
    return text if len(text) <= most else text[:most - 1] + "…"


def shown(text: str) -> str:
    """A text of several lines from the store (a report, an announcement) made safe for a
    terminal line by line: its line breaks kept, every other control character shown escaped."""
    return "\n".join(for_terminal(line) for line in text.split("\n"))


def update_text(widget: Static, content: str | Text) -> None:
    """``Static.update`` that asks for a layout pass only when the widget's size changes: a line
    that ticks every second ("34.2 / 60 min", "p99 +1.2% < +20%") keeps it, and a layout of the
    whole dashboard every second was a third of the console's CPU. The new text's height is
    measured as the layout would, in the widget's width; a widget as wide as its text (width:
    auto) compares the width of each line instead."""
    width_style, height_style = widget.styles.width, widget.styles.height
    region = widget.content_region
    if width_style is not None and width_style.is_auto or region.width <= 0:
        text = content if isinstance(content, str) else content.plain
        shape = tuple(cell_len(line) for line in text.split("\n"))
        same = getattr(widget, "_text_shape", None) == shape
        widget._text_shape = shape  # type: ignore[attr-defined]
        widget.update(content, layout=not same)
        return
    widget.update(content, layout=False)  # a repaint: the measured height is computed afresh
    if height_style is None or height_style.is_auto:
        if widget.get_content_height(region.size, region.size, region.width) != region.height:
            widget.refresh(layout=True)


def required_text(dialog: Screen, field: str, why: str, value: str | None = None) -> str | None:
    """What a person typed in a dialog's ``#field`` that it cannot close without (a reason, a
    note), stripped — ``value`` when given (the input's as it was at Enter). Empty: None, with
    ``why`` said in the dialog's ``#why`` and the focus back in the field."""
    text = (dialog.query_one(f"#{field}", Input).value if value is None else value).strip()
    if not text:
        dialog.query_one("#why", Static).update(why)
        dialog.query_one(f"#{field}", Input).focus()
        return None
    return text


def drawable(screen: Screen) -> bool:
    """The screen's widgets are there to draw on: composed, and not being torn down (an app that
    exits prunes a screen's children while the screen still counts as mounted, and a timer may
    still fire in between)."""
    return (screen.is_mounted and screen.is_attached
            and not (screen._closing or screen._pruning or screen.app._exit))


class KeysAnswer:
    """An App mixin — keys that answer (docs/keys.md): a key the footer shows greyed (its
    ``check_action`` → None) is not silent when pressed, nor its palette entry: it says in one line
    why it cannot act now and who can, from the ``why_not`` of the node that owns the action."""

    def why_not_for(self, action: str, namespace: Any) -> str | None:
        """Why a bound action cannot act now (None: it can, or it is not shown at all): what a
        greyed key says when pressed, and what the palette shows beside it."""
        target, name, params = self._parse_action(action, namespace)
        if target.check_action(name, params) is not None:
            return None
        why = getattr(target, "why_not", None)
        return why(name, params) if callable(why) else None

    async def run_action(self, action: Any, default_namespace: Any = None, namespaces: Any = None) -> bool:
        """Keys that answer: a key shown greyed (``check_action`` → None) is not silent when pressed
        — nor its palette entry —: it says in one line why it cannot act now and who can."""
        if isinstance(action, str) and namespaces is None:
            try:
                reason = self.why_not_for(action, self if default_namespace is None else default_namespace)
            except Exception:  # noqa: BLE001 - a bad action string: Textual says what is wrong with it
                reason = None
            if reason:
                self.notify(reason, title="Not now", severity="warning", timeout=8, markup=False)
                return True
        return await super().run_action(action, default_namespace, namespaces)


# What a key says in the footer of a terminal under 110 columns (an 80×24 jump host): the words that
# still say what it does; the palette (^p) and the tooltip keep the whole description.
SHORT_KEYS = {
    "Begin prechecks (canary lead)": "Begin prechecks", "Checkpoint note": "Note", "Copy announcement": "Copy",
    "Post announcement": "Post", "Resume (lead)": "Resume", "Roll back (lead)": "Roll back",
    "Confirm rollback": "Confirm rb", "Scratch test": "Scratch", "Record TC": "Record",
    "Cancel exact count": "Cancel count", "DBA: approve WARNING": "Approve", "Execute (lead/DBA)": "Execute",
    "Team: keep (lead)": "Keep", "Team: remove (lead)": "Remove", "Rollback flow": "Rollback",
    "Export Markdown": "Export", "Copy (OSC 52)": "Copy", "Post to webhook": "Post", "Lessons learned": "Lesson",
    "Next text": "Next", "Rung 1 ignore": "Ignore", "Undo rung 1": "Undo", "Rung 2 DROP": "DROP",
    "New trigger": "Retrigger", "Keep index": "Keep", "KILL SWITCH": "KILL", "Audit log": "Audit",
    "Kill switch off": "KS off", "Faults (drill)": "Faults", "Execute (refused: dry run)": "Execute",
}
NARROW = 110  # columns: below this, the frame and the footer take their short forms


class StepFooter(Footer):
    """The footer of a runbook screen on any terminal: under 110 columns its keys take their short
    words and the compact style, and when they still do not fit on one line they take two rows (or
    three) — never a key cut off at the edge (docs/runbook.md#small-terminals)."""

    DEFAULT_CSS = """
    StepFooter.-rows { layout: grid; grid-rows: 1; grid-gutter: 0 1; }
    StepFooter.-rows FooterKey { margin: 0; }
    """

    def on_resize(self) -> None:
        narrow = 0 < self.size.width < NARROW
        if narrow != self.compact:
            self.compact = narrow
            self.call_after_refresh(self.recompose)

    def compose(self) -> ComposeResult:
        keys = list(super().compose())
        for key in keys:
            if isinstance(key, FooterKey) and not key.has_class("-command-palette"):
                # Born with the footer's style: a FooterKey starts compact and is bound to the
                # footer's ``compact`` only once mounted, so each key was restyled twice on every
                # recompose (a third of the CPU of switching screens). Nothing drawn changes (the
                # palette key is not bound: it keeps Textual's own start).
                key.set_reactive(FooterKey.compact, self.compact)
                key.set_class(self.compact, "-compact", update=False)
        # The step's own keys first, the App's next; "PgDn More" last, beside the palette.
        keys.sort(key=lambda k: isinstance(k, FooterKey) and k.action == "page(1)")
        width = self.size.width or self.app.size.width
        narrow = width < NARROW
        plain_keys = [k for k in keys if isinstance(k, FooterKey) and not k.has_class("-command-palette")]
        if narrow:
            for key in plain_keys:
                short = SHORT_KEYS.get(key.description)
                if short:
                    key.tooltip = key.tooltip or key.description
                    key.description = short
        # Each key: its key, a space, its words, a gap; the palette key docks at the right (12).
        gap = 1 if narrow else 3
        sizes = [cell_len(k.key_display) + 1 + cell_len(k.description) + gap for k in plain_keys]
        rows = 1
        if sum(sizes) + 12 > width:
            # Row-major in a grid of as few rows as fit beside the palette key: a column as wide as
            # the widest of its keys (never cut), a gap of one between columns.
            for rows in range(2, 5):
                columns = -(-len(plain_keys) // rows)
                # A key's own padding when not compact: one each side of the key, one after its words.
                widths = [max(sizes[j::columns]) - gap + (0 if narrow else 2) for j in range(columns)]
                if sum(widths) + columns - 1 <= width - 12:
                    break
            self.styles.grid_size_columns = columns
            self.styles.grid_columns = " ".join(str(w) for w in widths)
            self.styles.height = rows
        else:
            self.styles.height = 1
        self.set_class(rows > 1, "-rows")
        if isinstance(self.parent, RunbookScreen):  # its toasts stand above these rows (RunbookScreen's CSS)
            for n in (2, 3, 4):
                self.parent.set_class(rows == n, f"-footer-{n}")
        yield from keys


class StepShown(Message):
    """A runbook screen came to the top: the App draws its frame and its view at once."""

    def __init__(self, screen: RunbookScreen):
        super().__init__()
        self.screen = screen


class RunbookScreen(Screen):
    """A runbook step: the frame on top, the step's body below (``compose_body``)."""

    # A toast (Textual docks them at the bottom, one row up) stands above the footer however many
    # rows its keys take: at 80×24 it covered the keys of a two- or three-row footer for seconds.
    DEFAULT_CSS = BANNER_CSS + """
    RunbookScreen.-footer-2 > ToastRack { margin-bottom: 2; }
    RunbookScreen.-footer-3 > ToastRack { margin-bottom: 3; }
    RunbookScreen.-footer-4 > ToastRack { margin-bottom: 4; }
    """
    step = ""  # the runbook step this screen is (engine.flows.runbook.STEPS)
    aside = ""  # a screen beside the steps (the audit log): its name in the step bar, no step highlighted
    # The long screens scroll by the page whatever has the focus: a table with a cursor would
    # otherwise take PageUp/PageDown/Home/End for itself and the screen would not move.
    BINDINGS = [
        Binding("pageup", "page(-1)", "Page up", show=False, priority=True, id="page-up"),
        # Shown (as "PgDn More") only while the step's body runs past the bottom of the terminal.
        Binding("pagedown", "page(1)", "More", key_display="PgDn", priority=True, id="page-down"),
        Binding("home", "page_end(-1)", "Top", show=False, priority=True, id="page-top"),
        Binding("end", "page_end(1)", "Bottom", show=False, priority=True, id="page-bottom"),
    ]
    _frame_parts: tuple[FramePart, ...] = ()  # the frame's widgets, found on the first apply_frame
    _said_bottom_at = -10.0  # PgDn at the bottom said so then (time.monotonic)
    # The body runs past the terminal's bottom: the footer says PgDn (an 80×24 jump host).
    overflows: reactive[bool] = reactive(False, bindings=True)

    def compose(self) -> ComposeResult:
        yield FrameBar()
        yield StepBar(id="step-bar")
        yield KillBanner(id="kill-banner")
        yield from self.compose_body()

    def compose_body(self) -> ComposeResult:
        yield from ()

    # --- keys that answer (docs/keys.md) ------------------------------------------------------------

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        """Why ``action`` cannot act now, and who can, in one line — or None when it can. The one
        place a screen says so: ``check_action`` greys the key in the footer from it, the App says it
        when the key is pressed anyway (``CanaryApp.run_action``), and the palette shows it."""
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("page", "page_end") and isinstance(self.focused, Input):
            return False  # Home/End move the cursor in a text field (the audit filter)
        if action == "page" and parameters == (1,) and not self.overflows:
            return False  # nothing below: PgDn is not shown
        return None if self.why_not(action, parameters) else True

    def _said_why_not(self, action: str, *parameters: object) -> str | None:
        """For an action method called directly (not through a key): says why not, as a key would."""
        reason = self.why_not(action, parameters)
        if reason:
            self.notify(reason, title="Not now", severity="warning", timeout=8, markup=False)
        return reason

    def _body(self) -> VerticalScroll | None:
        return next((v for v in self.query(VerticalScroll) if v.display), None)

    def action_page(self, direction: int) -> None:
        body = self._body()
        if body is None:
            return
        if direction > 0 and body.scroll_y >= body.max_scroll_y:
            # The footer keeps PgDn while the step runs past the terminal (its rows do not change
            # as you scroll): at the bottom it says so rather than doing nothing — once, not a
            # toast per press.
            if time.monotonic() - self._said_bottom_at > 4:
                self._said_bottom_at = time.monotonic()
                self.notify("This is the bottom of the step: PgUp or Home go back up.", title="PgDn",
                            severity="information", timeout=3, markup=False)
            return
        (body.scroll_page_down if direction > 0 else body.scroll_page_up)(animate=False)

    def action_page_end(self, direction: int) -> None:
        body = self._body()
        if body is not None:
            (body.scroll_end if direction > 0 else body.scroll_home)(animate=False)

    def on_mount(self) -> None:
        # The frame as the App has it now, before the first paint: a screen installed on the way
        # (Execution, Prechecks) otherwise painted a blank frame for a moment — "kill switch:
        # reading…", "(no role)", the steps without names — until its StepShown arrived.
        frame = getattr(self.app, "frame", None)
        if isinstance(frame, FrameState):
            self.apply_frame(frame)
        # The width's breakpoint class too (Textual sets it at the first Resize, after the first
        # paint: the Rollback screen showed its wide two-column layout at 80 columns for a moment).
        breakpoints = self.HORIZONTAL_BREAKPOINTS or []
        if breakpoints:
            width = self.app.size.width
            on = next((name for at, name in sorted(breakpoints, reverse=True) if width >= at), None)
            self.update_classes({name: name == on for _, name in breakpoints}, animate=False)
        body = self._body()
        if body is not None:
            self.watch(body, "virtual_size", self._measure_overflow, init=False)

    def on_resize(self) -> None:
        self.call_after_refresh(self._measure_overflow)

    def _measure_overflow(self, *_: object) -> None:
        body = self._body()
        self.overflows = body is not None and body.max_scroll_y > 0

    def on_screen_resume(self) -> None:
        self.post_message(StepShown(self))

    def apply_frame(self, state: FrameState) -> None:
        if self.step and state.step != self.step:
            state = replace(state, step=self.step)
        if state.aside != self.aside:
            state = replace(state, aside=self.aside)
        parts = self._frame_parts
        if not parts:  # found once: five times a second, a query of the whole screen cost
            parts = (*self.query(RunFrame), *self.query(StepBar), *self.query(KillBanner))
            # Kept only once all three are composed: a screen switched to before it was composed (a
            # console landing on a run's step as it opens) would otherwise keep a frame without its
            # first line (the kill switch's state) or its banner for good.
            if {RunFrame, StepBar, KillBanner} <= {type(w) for w in parts}:
                self._frame_parts = parts
        for widget in parts:
            widget.state = state

    def show_view(self, view: RunView, now: datetime) -> None:
        """The run as the store has it now; called when it changes (and on the clock's tick)."""

    def tick(self, view: RunView, now: datetime) -> None:
        """Once a second: redraw what depends on the clock alone (countdowns), nothing else."""
