"""Runbook step 5 — the live monitoring dashboard (docs/runbook.md#5-monitoring; runbook steps 5–6, section 4,
"Decision Rules", 7.2, 7.4).

The 60-minute window (T+15 → T+75, never shortened), a tile per metric coloured by its band
(green ok, blue note, yellow warning, red critical, grey stale with the source's error), charts of
latency p50/p99, replication lag, lock waits and threads running over the whole window with the
warning and critical lines, the ALTER's end and the checkpoints; the concurrent warnings against
their limits, the AUTO-PAUSE banner naming who may lift it, the checkpoints, the live criteria, the
escalation level and the announcement ready to copy.

Its widgets (the tiles, the band lines, the charts) are screens/monitoring_widgets.py. The screen
only draws the ``DashboardView`` it is given (``show_dashboard``; the App builds it on
a worker from the store) and asks the App to act with messages. Its keys are letters — digits and
F-keys belong to the App, and letters survive SSH jump hosts.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static

from engine.domain.clock import wall
from engine.domain.plan import Plan
from engine.domain.roles import needed, role_words
from engine.flows.runbook import RunView
from engine.views.dashboard import ChartSeries, CheckItem, DashboardView, Tile
from screens.base import RunbookScreen, StepFooter, drawable, plain, update_text
from screens.monitoring_widgets import LEGEND, BandLine, MetricChart, TileWidget
from screens.note import Note, NoteDialog


class TickingTable(DataTable):
    """A DataTable with a cell that changes every second (the next checkpoint's countdown).

    DataTable keys its render caches (cells, rows, lines) by an update counter that each
    ``update_cell`` bumps without emptying them: every change left the table's worth of dead
    entries behind, up to 10,000 rendered cells over a window. ``update_cells`` changes the cells,
    then drops the stale entries, as ``clear()`` does."""

    def update_cells(self, changes: list[tuple[Coordinate, Text, bool]]) -> None:
        for coordinate, value, update_width in changes:
            self.update_cell_at(coordinate, value, update_width=update_width)
        if changes:
            self._clear_caches()


CHECK_MARK = {"met": "✓", "not_met": "✗", "pending": "…", "na": "–"}
CHECK_STYLE = {"met": "green", "not_met": "bold red", "pending": "yellow", "na": "dim"}
TILE_WIDTH = 30  # columns per tile, gutter included: five across at 160 columns, two at 80
CHART_WIDTH = 30  # the narrowest a chart gets before the charts stack
SHORT_HEIGHT = 40  # rows: below this, a line per metric instead of the tiles (80×24, 100×30)
NARROW_BAND_WIDTH = 36  # two columns of name, value now and band (no change) at 80 columns
BAND_WIDTH = 46  # the narrowest a metric's line gets before the lines stack in one column


@dataclass
class CheckpointNote(Message):
    """Record a note against a checkpoint (T+15 …): ``ok`` is the person's "metrics OK?"."""

    label: str
    note: str
    ok: bool


@dataclass
class CopyText(Message):
    """Put ``text`` on the clipboard (OSC 52)."""

    text: str


@dataclass
class PostText(Message):
    """Post ``text`` to the plan's webhook."""

    text: str


@dataclass
class PauseDecision(Message):
    """Lift the AUTO-PAUSE: ``resume`` or ``rollback`` (the canary lead; the App checks the role)."""

    decision: str
    note: str = ""

def countdown(seconds: int | None) -> str:
    """840 → "14 min" and 781 → "14 min" (the table changes once a minute, not every second:
    redrawn, it is a tenth of the dashboard's CPU), then the last minute's seconds: "0:42"."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"0:{max(0, seconds):02d}"
    return f"{-(-seconds // 60)} min"


class MonitoringScreen(RunbookScreen):
    step = "monitoring"
    BINDINGS = [
        Binding("p", "checkpoint_note", "Checkpoint note", id="monitoring-checkpoint-note"),
        Binding("y", "copy", "Copy announcement", id="monitoring-copy"),
        Binding("w", "post", "Post announcement", id="monitoring-post"),
        Binding("r", "pause_decision('resume')", "Resume (lead)", id="monitoring-resume"),
        Binding("x", "pause_decision('rollback')", "Roll back (lead)", id="monitoring-rollback"),
    ]
    CSS_PATH = "monitoring.tcss"

    def __init__(self, plan: Plan | None = None):
        super().__init__(name="monitoring")
        self.plan = plan
        self.view: DashboardView | None = None
        self._shown: dict[str, object] = {}  # what each part last drew: redraw only what changed
        self.narrow = False
        self.tiles: dict[str, TileWidget] = {}  # by metric, in order (no DOM query on every update)
        self.bands: dict[str, BandLine] = {}  # the same metrics, a line each (a short terminal)
        self.charts: dict[str, MetricChart] = {}
        self._checkpoint_rows: list[tuple[str, ...]] = []  # the table's cells as drawn

    # --- layout ------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        yield Static("", id="reading", markup=False)  # shown instead of the body while another run loads
        with VerticalScroll(id="body"):
            with Horizontal(id="window"):
                yield ProgressBar(id="window-bar", total=100, show_eta=False, show_percentage=False)
                yield Static("Window T+15 → T+75: waiting for the run", id="window-text", markup=False)
            yield Static("", id="baseline-line", markup=False)
            yield Static("", id="pause-banner", markup=False)
            yield Container(id="bands")
            yield Static("", id="profile-note", markup=False)
            with Horizontal(id="status"):
                yield Static("Concurrent warnings —", id="concurrent", markup=False)
                yield Static("Escalation: none", id="escalation", markup=False)
            yield Container(id="tiles")
            yield Static("", id="not-measured", markup=False)
            yield Container(id="charts")
            yield Static(LEGEND, id="legend")
            with Container(id="bottom"):
                with Vertical(id="checkpoints-box"):
                    yield Static("Checkpoints (p: add a note to the current one)", classes="section")
                    yield TickingTable(id="checkpoints", cursor_type="none", show_cursor=False)
                with Vertical(id="checklist-box"):
                    yield Static("Criteria now (runbook 5.1)", classes="section")
                    yield Static("", id="checklist")
                with Vertical(id="side"):
                    yield Static("Announcement (y copy · w post)", classes="section")
                    yield Static("nothing to announce: no metric in its warning zone", id="announcement",
                                 markup=False)
                    yield Static("Events", classes="section")
                    yield Static("", id="events", markup=False)
        yield StepFooter()

    def on_mount(self) -> None:
        self.query_one("#reading").display = False
        self.query_one("#checkpoints", DataTable).add_columns("", "Due", "OK?", "By", "Notes")
        self._fit(self.size.width, self.size.height)
        if self.view is not None:
            self._draw(self.view)

    def on_resize(self) -> None:
        self._fit(self.size.width, self.size.height)
        if self.view is not None and drawable(self):
            self._draw_checkpoints(self.view)  # the notes wrap at the new width

    def _fit(self, width: int, height: int = 0) -> None:
        """Tiles wrap and charts stack as the terminal narrows; on a short terminal (80×24, 100×30
        over a jump host) a line per metric replaces the tiles, near the top: every band is on
        screen without scrolling, the rest scrolls below it (PgDn, said in the footer)."""
        inner = max(20, width - 4)
        self.set_class(0 < height < SHORT_HEIGHT, "-short")
        # Two columns when they fit whole, or when one would not fit the screen's height (many metrics).
        many = len(self.bands) > max(8, height - 13)
        self.query_one("#bands").styles.grid_size_columns = (
            2 if inner >= 2 * BAND_WIDTH + 2 or (many and inner >= 2 * NARROW_BAND_WIDTH + 2) else 1)
        self.query_one("#tiles").styles.grid_size_columns = max(1, inner // TILE_WIDTH)
        charts = len(self.charts) or 5
        self.query_one("#charts").styles.grid_size_columns = max(1, min(charts, inner // CHART_WIDTH))
        narrow = width < 120
        if narrow != self.narrow:
            self.narrow = narrow
            if self.view is not None:
                self._draw(self.view)
        bottom = self.query_one("#bottom")
        if width >= 140:
            bottom.styles.grid_size_columns = 3
            bottom.styles.grid_columns = "5fr 2fr 3fr"
        else:
            bottom.styles.grid_size_columns = 1
            bottom.styles.grid_columns = "1fr"

    # --- data in ----------------------------------------------------------------------------

    def show_view(self, view: RunView, now: datetime) -> None:
        """Another run than the one drawn (a new run after a failed one): its dashboard is not
        loaded yet — the last run's bands and FAIL must not stand for it meanwhile."""
        run_id = view.run.id if view.run else None
        if drawable(self) and self.view is not None and run_id != self.view.run_id:
            self.query_one("#body").display = False
            self.query_one("#reading", Static).update(f"Reading run {(run_id or '')[:8]}'s samples from the store…")
            self.query_one("#reading").display = True

    def show_dashboard(self, view: DashboardView) -> None:
        """The dashboard as the store has it now (the App calls this from its worker's result)."""
        self.view = view
        if drawable(self):
            self.query_one("#reading").display = False
            self.query_one("#body").display = True
            self._draw(view)

    def _changed(self, part: str, value: object) -> bool:
        if self._shown.get(part) == value:
            return False
        self._shown[part] = value
        return True

    def _draw(self, v: DashboardView) -> None:
        p = v.progress
        if self._changed("progress", p):
            self.query_one("#window-bar", ProgressBar).update(progress=round(p.fraction * 100, 1))
            update_text(self.query_one("#window-text", Static), p.text)
            self.query_one("#window").set_class(p.phase == "paused", "-paused")
            self.query_one("#window").set_class(p.phase == "observing", "-observing")
        if self._changed("baseline", (v.baseline, v.baseline_short)):
            line = self.query_one("#baseline-line", Static)
            line.display = bool(v.baseline)
            line.set_class(v.baseline_short, "-short")
            update_text(line, v.baseline)
        if self._changed("pause", v.pause):
            banner = self.query_one("#pause-banner", Static)
            banner.set_class(v.pause.paused, "-on")
            update_text(banner, v.pause.text)
        if self._changed("concurrent", (v.concurrent, self.narrow)):
            box = self.query_one("#concurrent", Static)
            for state in ("extend", "escalate", "auto_pause"):
                box.set_class(v.concurrent.state == state, f"-{state}")
            # Narrow terminals: the tiles already say which metrics; keep the count and the limits.
            names = f": {', '.join(v.concurrent.metrics)}" if v.concurrent.metrics and not self.narrow else ""
            update_text(box, v.concurrent.text + names)
        if self._changed("escalation", v.escalation):
            box = self.query_one("#escalation", Static)
            for level in ("L1", "L2", "L3", "L4"):
                box.set_class(v.escalation.level == level, f"-{level}")
            update_text(box, f"Escalation (runbook 7.2): {v.escalation.text}")
        if self._changed("tiles", v.tiles):
            self._draw_tiles(v.tiles)
        if self._changed("profile_note", v.profile_note):
            note = self.query_one("#profile-note", Static)
            note.update(v.profile_note)
            note.display = bool(v.profile_note)
        if self._changed("not_measured", v.not_measured):
            box = self.query_one("#not-measured", Static)
            box.update(f"Not measured in this run (no source): {', '.join(v.not_measured)}")
            box.display = bool(v.not_measured)
        self._draw_charts(v.charts)
        if self._changed("checkpoints", v.checkpoints):
            self._draw_checkpoints(v)
        if self._changed("checklist", v.checklist):
            update_text(self.query_one("#checklist", Static), self._checklist(v.checklist))
        if self._changed("announcement", v.announcement):
            a = v.announcement
            self.query_one("#announcement", Static).update(
                a.text if a else "nothing to announce: no metric in its warning zone")
        if self._changed("events", v.events):
            self.query_one("#events", Static).update("\n".join(v.events) or "none yet")
        # Only when what check_action decides on changed: each footer rebuild costs (and in
        # Textual 8.2 leaks the old footer keys — 13 MB a minute when it ran every second).
        if self._changed("bindings", (v.announcement is not None, v.pause.paused, v.progress.phase != "waiting")):
            self.refresh_bindings()

    def _draw_tiles(self, tiles: tuple[Tile, ...]) -> None:
        if list(self.tiles) != [t.key for t in tiles]:  # the metrics of the run changed: rebuild the grid
            self.tiles = {t.key: TileWidget(t) for t in tiles}
            self.bands = {t.key: BandLine(t) for t in tiles}
            for box_id, widgets in (("#tiles", self.tiles), ("#bands", self.bands)):
                box = self.query_one(box_id)
                box.remove_children()
                box.mount_all(widgets.values())
            self._fit(self.size.width, self.size.height)  # one column or two: by how many metrics
            return
        for t in tiles:
            self.tiles[t.key].show(t)
            self.bands[t.key].show(t)

    def _draw_charts(self, charts: tuple[ChartSeries, ...]) -> None:
        if list(self.charts) != [c.key for c in charts]:
            box = self.query_one("#charts")
            box.remove_children()
            self.charts = {c.key: MetricChart(c.key) for c in charts}
            box.mount_all(self.charts.values())
            for c in charts:
                self.charts[c.key].show(c)
            self._fit(self.size.width, self.size.height)
            return
        for c in charts:
            self.charts[c.key].show(c)

    def _draw_checkpoints(self, v: DashboardView) -> None:
        rows = []
        for row in v.checkpoints:
            ok = {True: "✓ yes", False: "✗ no"}.get(row.metrics_ok, "")  # type: ignore[arg-type]
            if not ok:
                ok = {"due": "… due now", "next": f"next, in {countdown(row.due_in_s)}", "upcoming": "",
                      "not_reached": "— not reached"}.get(row.status, "")
            label = f"▶ {row.label}" if row.label == v.current_checkpoint else f"  {row.label}"
            offset = self.plan.off_peak.utc_offset if self.plan is not None else None  # None: the console's zone
            due = wall(row.due_at, offset, zone=False) if row.due_at else "—"
            rows.append((label, due, ok, row.who, row.notes))
        # The notes wrap in what the other columns leave of the box (a row as tall as it needs): cut
        # at 48 characters they read "not reached: the window s…" even at 160 columns.
        width = self.size.width
        box = (width - 6) // 2 if width >= 140 else width - 4  # #bottom: 5fr of 10 (_fit), its margins and gutters
        others = sum(max([cell_len(h), *(cell_len(r[c]) for r in rows)]) + 2
                     for c, h in enumerate(("", "Due", "OK?", "By")))
        room = max(16, box - others - 2)
        rows = [(*r[:4], "\n".join(textwrap.wrap(r[4], room)) or "") for r in rows]
        table = self.query_one("#checkpoints", TickingTable)
        before = self._checkpoint_rows
        self._checkpoint_rows = rows
        if len(before) != len(rows) or table.row_count != len(rows) or any(
                old[:2] + old[3:] != new[:2] + new[3:] for old, new in zip(before, rows, strict=True)):
            table.clear()  # a note (a row's height) changed: drawn anew; the countdown alone is updated below
            for cells in rows:  # each line of a note neutralised alone (a newline would be shown as "\\n")
                table.add_row(*plain(*cells[:4]), Text("\n").join(plain(*cells[4].split("\n"))), height=None)
            return
        # The countdown ticks every second: only the cells that changed (a rebuilt table is
        # measured and drawn whole, a tenth of the console's CPU on the dashboard).
        table.update_cells([(Coordinate(r, c), Text(str(b)), cell_len(a) != cell_len(b))
                            for r, (old, new) in enumerate(zip(before, rows, strict=True))
                            for c, (a, b) in enumerate(zip(old, new, strict=True)) if a != b])

    @staticmethod
    def _checklist(items: tuple[CheckItem, ...]) -> Text:
        out = Text()
        for i, item in enumerate(items):
            if i:
                out.append("\n")
            out.append(f"{CHECK_MARK.get(item.state, '?')} ", style=CHECK_STYLE.get(item.state, ""))
            out.append(item.text)
        return out

    # --- keys → messages --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "post" and self.plan is not None and not self.plan.webhook_url:
            return False  # never acts with this plan (no webhook): not shown; y copies it
        return super().check_action(action, parameters)

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        v = self.view
        if action not in ("copy", "post", "pause_decision", "checkpoint_note"):
            return None
        if v is None:
            return "Nothing to act on yet: the dashboard is still reading the run."
        if action in ("copy", "post") and v.announcement is None:
            return ("Nothing to announce: no metric is in its warning zone. The announcement is written here "
                    "when one is; anyone can then copy (y) or post (w) it.")
        if action == "pause_decision" and not v.pause.paused:
            return (f"No AUTO-PAUSE to lift: the {role_words(needed('auto_pause_approval'))} resumes (r) or rolls "
                    "back (x) only when the monitor pauses the run. A rollback now: the Rollback screen (7).")
        if action == "checkpoint_note" and v.progress.phase == "waiting":
            return "The window has not opened: checkpoint notes start at T+15, from anyone in the war room."
        return None

    def action_copy(self) -> None:
        if self._said_why_not("copy") is None and self.view is not None and self.view.announcement is not None:
            self.post_message(CopyText(self.view.announcement.text))

    def action_post(self) -> None:
        if self._said_why_not("post") is None and self.view is not None and self.view.announcement is not None:
            self.post_message(PostText(self.view.announcement.text))

    def action_checkpoint_note(self) -> None:
        if self._said_why_not("checkpoint_note") or self.view is None:
            return
        label = self.view.current_checkpoint

        def done(note: Note | None) -> None:
            if note is not None:
                self.post_message(CheckpointNote(label, note.text, note.choice == "Metrics OK"))

        self.app.push_screen(NoteDialog(f"Checkpoint {label} (runbook step 5)",
                                        "Your observation for this checkpoint, and whether the metrics are OK. "
                                        "It is recorded with your name and the time.",
                                        "e.g. p99 back under +10 %, lag 4 s", ("Metrics OK", "Not OK")), done)

    def action_pause_decision(self, decision: str) -> None:
        if self._said_why_not("pause_decision", decision) or self.view is None:
            return
        words = {"resume": ("Resume the run", "Approve resume"),
                 "rollback": ("Stop and roll back", "Approve rollback")}[decision]

        def done(note: Note | None) -> None:
            if note is not None:
                self.post_message(PauseDecision(decision, note.text))

        self.app.push_screen(NoteDialog(f"AUTO-PAUSE: {words[0]}",
                                        f"{self.view.pause.reason}. Only the "
                                        f"{role_words(self.view.pause.approver_roles)} may lift it; say why.",
                                        "why (goes to the audit trail)", (words[1],)), done)
