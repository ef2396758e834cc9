"""Fault injection for a drill (docs/api.md, rehearsal plans only): F6 opens this list of the faults
the rehearsal can inject into its own sandbox — lock contention, replication lag, a latency
regression, an error burst, a long transaction that blocks the ALTER's metadata lock. A key turns
one on or off; the App does it on a worker and audits it; the frame says which are on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from engine.domain.clock import wall
from screens.base import NARROW, plain
from screens.tables import fit_widths, header_in, table_room

FAULT_COLUMNS = ("Key", "Fault", "State", "What it does", "What you see (measured)")


@dataclass(frozen=True)
class FaultRow:
    key: str
    name: str
    description: str
    shows: str
    active_since: datetime | None = None
    error: str = ""


class FaultToggle(Message):
    def __init__(self, key: str):
        super().__init__()
        self.key = key


class FaultsDialog(ModalScreen[None]):
    # engine.drill.fault_kinds' keys; one the drill cannot inject (no replica: no lag) is hidden.
    BINDINGS = [Binding("escape", "close", "Close"),
                *(Binding(k, f"toggle('{k}')", name) for k, name in (
                    ("l", "Lock contention"), ("L", "Lock contention, severe"), ("g", "Replication lag"), ("s", "Latency regression"),
                    ("e", "Error burst"), ("m", "Long transaction (MDL)")))]
    CSS_PATH = "faults.tcss"

    def __init__(self, rows: tuple[FaultRow, ...]):
        super().__init__()
        self.rows = rows
        self._widths: tuple[int, ...] = ()
        self._status = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Inject a fault (rehearsal only — into the drill's own sandbox)", id="title")
            yield DataTable(id="faults", cursor_type="none", zebra_stripes=True)
            yield Static("", id="status")
            yield Static("A key turns a fault on or off (audited). Watch the dashboard (5) — for m, the Execution "
                         "screen (4). Esc closes; the faults stay on. Ctrl+Q stops them all.", id="note")

    def on_mount(self) -> None:
        self.show(self.rows)

    def on_resize(self) -> None:
        if self.is_mounted:
            self.show(self.rows, self._status)

    def show(self, rows: tuple[FaultRow, ...], status: str = "") -> None:
        """The faults in the dialog's width, a long cell wrapped in its column: at 80 columns what
        each does and what it shows ran off the right edge. Under 110 columns "what it does" gives
        way — what you see is what a drill watches for."""
        self.rows, self._status = rows, status
        table = self.query_one(DataTable)
        width, height = self.app.size
        # The title, the status, the note and the border keep their rows; the table scrolls in the rest.
        table.styles.max_height = max(6, height - 9)
        wide = width >= NARROW
        headers = FAULT_COLUMNS if wide else tuple(c for c in FAULT_COLUMNS if c != "What it does")
        cells = []
        for r in rows:
            state = f"ON since {wall(r.active_since, zone=False)}" if r.active_since else "off"
            shows = r.shows + (f" — error: {r.error}" if r.error else "")
            cells.append((r.key, r.name, state, r.description, shows) if wide else (r.key, r.name, state, shows))
        # The dialog's border and padding (4) and the table's scroll bar (2) lie outside the cells.
        widths = fit_widths(headers, cells, table_room(min(130, width), len(headers), 6))
        if widths != self._widths:
            self._widths = widths
            table.clear(columns=True)
            for label, w in zip(headers, widths, strict=True):
                table.add_column(header_in(label, w), width=w)
        else:
            table.clear()
        for r, row in zip(rows, cells, strict=True):
            state = Text(row[2], style="bold black on yellow" if r.active_since else "dim")
            table.add_row(Text(r.key, style="bold"), *plain(row[1]), state, *plain(*row[3:]), height=None)
        self.query_one("#status", Static).update(status)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle":
            return any(r.key == parameters[0] for r in self.rows)  # False: not shown
        return True

    def action_toggle(self, key: str) -> None:
        self.query_one("#status", Static).update(f"{key}: working…")
        self.post_message(FaultToggle(key))

    def action_close(self) -> None:
        self.dismiss(None)
