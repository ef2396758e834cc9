"""Runbook step 4 — execution (runbook steps 0–4; docs/runbook.md#4-execution's executor flow; docs/runbook.md#4-execution).

Announce, final pre-check, baseline, claim, kill-switch check, ``ALTER TABLE … ADD INDEX …
ALGORITHM=INPLACE, LOCK=NONE`` with its progress and ETA from performance_schema's stage events,
the metadata-lock guard (who queues behind the ALTER, which long transactions block it), the
index verified, the two-minute cool-down, then the hand-off to the monitoring window.

The log is the run's audit trail, so every console in the war room — the one that drives the run
and the ones that joined it — shows the same lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Log, ProgressBar, Static

from engine.domain.clock import wall
from engine.domain.plan import Plan
from engine.domain.text import for_terminal
from engine.flows.runbook import RunView
from screens.base import RunbookScreen, StepFooter, drawable, plain

if TYPE_CHECKING:
    from engine.adapters.store import AuditLog

# (step, title, the audit action that starts it, the one that ends it)
STEPS = (
    ("0", "Announce canary start", None, "run_announced"),
    ("1", "Final pre-check (kill switch, target)", "claimed", "target_checked"),
    ("2", "Baseline metrics", "baseline_sampling", "baseline_captured"),
    ("3", "execution_run scheduled → claimed → running", "run_created", "claimed"),
    ("4", "ALTER … ADD INDEX … LOCK=NONE", "alter_started", "index_added"),
    ("5", "Cool-down (2 min), then the monitoring window", "index_added", "monitoring_started"),
)
ENDED = {"failed": "✗ failed", "cancelled": "■ cancelled", "rolled_back": "↺ rolled back", "completed": "✓ completed"}


def step_marks(actions: Sequence[str], status: str | None) -> list[str]:
    """Each step's mark from the run's audit actions (pure, for every console alike)."""
    seen = set(actions)
    marks = []
    stopped = status in ("failed", "cancelled")
    for _n, _title, start, end in STEPS:
        if end in seen:
            marks.append("✓")
        elif start is None or start in seen:
            marks.append("✗" if stopped and (start in seen) else ("…" if start in seen else "○"))
        else:
            marks.append("○")
    return marks


def baseline_note(entries: Sequence[AuditLog]) -> str:
    """What step 2's title adds when the baseline was extended (docs/verdict.md, "Baseline"), from
    the audit entries (pure): why while it is extended, how long once it ended; "" otherwise."""
    started = next((e for e in entries if e.action == "baseline_extended"), None)
    if started is None:
        return ""
    ended = next((e for e in entries if e.action in ("baseline_ready", "baseline_extension_capped")), None)
    if ended is None:
        return " — extended: " + "; ".join((started.details or {}).get("reasons") or ["too short for its noise"])
    d = ended.details or {}
    minutes = f"{float(d.get('extended_s') or 0) / 60:.0f} min"
    if ended.action == "baseline_ready":
        return f" — extended {minutes}"
    return f" — extended {minutes}, {d.get('stopped') or 'the cap'}: " + "; ".join(d.get("reasons") or [])


@dataclass(frozen=True)
class AlterProgress:
    """The driver's live view of its ALTER (other consoles see the audit trail only)."""

    stage: str = ""
    fraction: float | None = None
    elapsed_s: float = 0.0
    waiters: tuple[dict, ...] = ()
    blockers: tuple[dict, ...] = ()
    note: str = ""

    @property
    def eta_s(self) -> float | None:
        if not self.fraction or self.fraction <= 0.0 or self.fraction >= 1.0:
            return None
        return self.elapsed_s * (1 - self.fraction) / self.fraction


def audit_line(e: AuditLog) -> str:
    d = e.details or {}
    keep = ("by", "sql", "thread_id", "fail_reason", "message", "seconds", "digests", "statements", "when", "scopes",
            "error", "verdict", "estimated_rows", "server", "lock_wait_timeout", "reasons", "cap_s")
    details = ", ".join(f"{k}={d[k]}" for k in keep if d.get(k) not in (None, "", [], {}))
    status = f" {e.old_status or ''}→{e.new_status}" if e.new_status else ""
    # Actors and details were typed by people (a reason, an error): shown, never interpreted.
    return for_terminal(f"{wall(e.created_at, zone=False)} {e.actor.split('@')[0]:<16} {e.action}{status} {details}"[:400])


def mmss(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class ExecutionScreen(RunbookScreen):
    step = "execution"
    BINDINGS = [
        ("g", "app.execute", "Execute (lead/DBA)"),
        ("c", "app.copy_announcement", "Copy announcement"),
        ("w", "app.post_announcement", "Post announcement"),
    ]
    CSS_PATH = "execution.tcss"

    def __init__(self, plan: Plan):
        super().__init__(name="execution")
        self.plan = plan
        self.view = RunView()
        self.entries: list[AuditLog] = []
        self.progress = AlterProgress()
        self.cooldown_until: datetime | None = None
        self.announcement = ""

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            with Horizontal(id="top"):
                with Vertical(id="steps-box"):
                    yield Static("Steps (runbook 3.2)", classes="section")
                    yield DataTable(id="steps", cursor_type="none")
                with Vertical(id="announce-box"):
                    yield Static("Step 0 — announcement (c: copy over SSH, w: post to the webhook)",
                                 classes="section")
                    yield Static(self.announcement, id="announcement", markup=False)
            yield Static("Step 0 — the start announcement is not shown below 130 columns (it would squeeze the "
                         "steps): c copies it, w posts it, ^p lists both.", id="announce-note", markup=False)
            yield Static("ALTER progress (performance_schema stage events)", classes="section")
            yield Static("not started", id="alter", markup=False)
            yield ProgressBar(id="alter-progress", total=100, show_eta=False)
            yield Static("Metadata-lock guard: sessions queued behind the ALTER, transactions blocking it",
                         classes="section")
            yield DataTable(id="mdl", cursor_type="none")
            yield Static("", id="cooldown", markup=False)
            yield Static("", id="outcome", markup=False)
            yield Static("Log (the run's audit trail, shared by every console)", classes="section")
            yield Log(id="log", highlight=False)
        yield StepFooter()

    def on_mount(self) -> None:
        self.query_one("#steps", DataTable).add_columns("Step", "", "What")
        self.query_one("#mdl", DataTable).add_columns("Thread", "Kind", "Time s", "State / statement")
        self._draw_steps()
        self._draw_progress(None)

    def on_resize(self) -> None:
        # A jump host's 80 or 100 columns: the steps and the ALTER's progress get the width.
        self.set_class(self.size.width < 130, "-narrow")

    def show_announcement(self, text: str) -> None:
        self.announcement = text
        if drawable(self):
            self.query_one("#announcement", Static).update(text)

    def show_view(self, view: RunView, now: datetime) -> None:
        if (view.run.id if view.run else None) != (self.view.run.id if self.view.run else None):
            # Another run (a new one after a failed or rolled-back one): none of the last run's
            # steps, ALTER progress, cool-down or log stays — a new run showed "ALTER ✓ 100 %".
            self.entries, self.progress, self.cooldown_until = [], AlterProgress(), None
            if drawable(self):
                self.query_one("#log", Log).clear()
        self.view = view
        if drawable(self):
            self._draw_steps()
            self._draw_outcome()
            self._draw_cooldown(now)
            if self.progress == AlterProgress():
                self._draw_progress(None)  # no live progress: what the run record says

    def tick(self, view: RunView, now: datetime) -> None:
        if drawable(self):
            self._draw_cooldown(now)

    def show_entries(self, entries: Sequence[AuditLog]) -> None:
        """The run's audit entries; only the new ones are appended to the log."""
        log = self.query_one("#log", Log)
        fresh = entries[len(self.entries):] if entries[:len(self.entries)] == self.entries else entries
        if fresh is entries:
            log.clear()
        log.write_lines([audit_line(e) for e in fresh])
        self.entries = list(entries)
        self._draw_steps()
        self._draw_outcome()

    def show_progress(self, progress: AlterProgress, now: datetime | None = None) -> None:
        self.progress = progress
        self._draw_progress(progress)

    def start_cooldown(self, until: datetime) -> None:
        self.cooldown_until = until

    def _draw_steps(self) -> None:
        table = self.query_one("#steps", DataTable)
        table.clear()
        actions = [e.action for e in self.entries]
        if self.view.run is not None:
            actions.append("run_created")
        status = self.view.run.status if self.view.run else None
        note = baseline_note(self.entries)
        for (n, title, _s, _e), mark in zip(STEPS, step_marks(actions, status), strict=True):
            table.add_row(*plain(n, mark, title + note if n == "2" else title))

    def _draw_progress(self, p: AlterProgress | None) -> None:
        label = self.query_one("#alter", Static)
        bar = self.query_one("#alter-progress", ProgressBar)
        run = self.view.run
        if p is None or (not p.stage and p.fraction is None and not p.waiters and not p.blockers):
            if run is not None and run.alter_started_at and run.alter_finished_at:
                label.update(f"done: index {self.plan.change.index} added at {wall(run.alter_finished_at, zone=False)}"
                             if run.index_created_by_run else f"ended at {wall(run.alter_finished_at, zone=False)}")
                bar.update(progress=100 if run.index_created_by_run else bar.progress)
            elif run is not None and run.alter_started_at:
                label.update(f"running since {wall(run.alter_started_at, zone=False)} (thread {run.alter_thread_id}); "
                             "progress is shown on the console that drives the run")
            else:
                label.update("not started")
                bar.update(progress=0)
            self._draw_mdl((), ())
            return
        pct = f"{p.fraction:.0%}" if p.fraction is not None else "—"
        eta = f", ETA {mmss(p.eta_s)}" if p.eta_s is not None else ""
        label.update(f"{p.stage or 'waiting for the metadata lock'} {pct}, elapsed {mmss(p.elapsed_s)}{eta}"
                     + (f" — {p.note}" if p.note else ""))
        if p.fraction is not None:
            bar.update(progress=p.fraction * 100)
        self._draw_mdl(p.waiters, p.blockers)

    def _draw_mdl(self, waiters: Sequence[dict], blockers: Sequence[dict]) -> None:
        table = self.query_one("#mdl", DataTable)
        table.clear()
        for b in blockers:
            table.add_row(*plain(b.get("thread_id"), "BLOCKS (open trx)", b.get("age_s") or b.get("time") or "",
                                 f"{b.get('user') or ''} {(b.get('query') or b.get('info') or '')[:80]}"))
        for w in waiters:
            table.add_row(*plain(w.get("thread_id"), "queued", w.get("time") or "",
                                 (w.get("info") or w.get("state") or "")[:90]))
        if not waiters and not blockers:
            table.add_row(*plain("—", "none", "", "no session waits on the table's metadata lock"))

    def _draw_cooldown(self, now: datetime) -> None:
        box = self.query_one("#cooldown", Static)
        if (self.cooldown_until is None or now >= self.cooldown_until
                or any(e.action == "monitoring_started" for e in self.entries)):
            box.update("")
            return
        box.update(f"Cool-down: {mmss((self.cooldown_until - now).total_seconds())} before the monitoring window")

    def _draw_outcome(self) -> None:
        run = self.view.run
        box = self.query_one("#outcome", Static)
        if run is None:
            box.update("")
        elif run.status in ENDED:
            box.update(f"{ENDED[run.status]}" + (f" ({run.fail_reason})" if run.fail_reason else "")
                       + (f": {run.error_message}" if run.error_message else ""))
        elif run.status == "running" and "monitoring_started" in {e.action for e in self.entries}:
            box.update("→ The 60-minute monitoring window is running (it cannot be shortened): the live "
                       "dashboard is step 5, the decision step 6.")
        elif run.status == "running":
            box.update(f"running — driven by {run.claimed_by or '?'}")
        else:
            box.update("scheduled — press g to execute when the gate is open (canary lead or DBA)")
