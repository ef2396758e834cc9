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
    # engine.drill.faults' keys; one the drill cannot inject (no replica: no lag) is hidden.
    BINDINGS = [Binding("escape", "close", "Close"),
                *(Binding(k, f"toggle('{k}')", name) for k, name in (
                    ("l", "Lock contention"), ("L", "Lock contention, severe"), ("g", "Replication lag"), ("s", "Latency regression"),
                    ("e", "Error burst"), ("m", "Long transaction (MDL)")))]
    CSS_PATH = "faults.tcss"

    def __init__(self, rows: tuple[FaultRow, ...]):
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Inject a fault (rehearsal only — into the drill's own sandbox)", id="title")
            yield DataTable(id="faults", cursor_type="none", zebra_stripes=True)
            yield Static("", id="status")
            yield Static("A key turns a fault on or off; each is audited. Watch the dashboard (5): each shows "
                         "within two samples. Esc closes; the faults stay as they are. Ctrl+Q stops them all.",
                         id="note")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Key", "Fault", "State", "What it does", "Shows on the dashboard")
        self.show(self.rows)

    def show(self, rows: tuple[FaultRow, ...], status: str = "") -> None:
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            state = (Text(f"ON since {wall(r.active_since, zone=False)}", style="bold black on yellow")
                     if r.active_since else Text("off", style="dim"))
            table.add_row(Text(r.key, style="bold"), r.name, state, r.description, r.shows + (
                f" — error: {r.error}" if r.error else ""), height=None)
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
