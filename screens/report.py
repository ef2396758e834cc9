"""Runbook step 8 — the post-canary report and the announcements (docs/runbook.md#8-report; runbook 8.2, 3.2
steps 0 and 9, 6.4 R1 and R5), with real values.

The screen only draws what it is given (``show``) and asks the App to act: export, copy and post
are messages carrying the text on screen; the App does the I/O in its workers and reports back
with ``show_result``. Its keys are letters (e, c, w, v), which survive SSH jump hosts; the digits
stay the App's (they jump between the runbook's steps)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import ContentSwitcher, Markdown, Static, Tab, Tabs

from engine.adapters.webhook import redact_webhook
from engine.domain.clock import wall
from engine.domain.plan import Plan
from engine.domain.text import for_terminal
from engine.flows.runbook import RunView
from engine.views.report import ReportFacts, announcements, render_report
from screens.base import RunbookScreen, StepFooter, drawable, shown

# The views, in the order of the tabs; v and shift+v step through them (the digits belong to the
# App: they jump between the runbook's steps).
VIEWS = (("report", "Report"), ("start", "Start"), ("completion", "Completion"),
         ("rollback_initiated", "Rollback initiated"), ("rollback_outcome", "Rollback complete"))

# The run's outcome → the title's colour class (the engine decides the outcome, the screen only maps it).
OUTCOME_CLASS = {"PASS": "-pass", "WARNING": "-warning", "INCONCLUSIVE": "-warning", "FAIL": "-fail",
                 "CANCELLED": "-fail"}


@dataclass
class ReportExport(Message):
    """Write ``text`` (the view on screen) to a Markdown file."""

    text: str
    view: str


@dataclass
class ReportCopy(Message):
    """Put ``text`` on the clipboard (OSC 52)."""

    text: str
    view: str


@dataclass
class ReportLesson(Message):
    """Record one row of the lessons-learned table (runbook 8.3)."""

    what: str
    impact: str
    cause: str
    action: str


@dataclass
class ReportPost(Message):
    """Post ``text`` to the plan's webhook."""

    text: str
    view: str


def _at(value: datetime | None, offset: timedelta = timedelta(0)) -> str:
    """Wall time in the plan's time zone, said as such (engine.domain.clock.wall)."""
    return wall(value, offset, date=True) if value is not None else "—"


def preliminary_title(view: RunView) -> str:
    run = view.run
    if run is None:
        return "Report — no run yet: begin the prechecks on the Plan screen (1, then b)"
    verdict = f" · {view.verdicts[-1]}" if view.verdicts else ""
    return for_terminal(f"Report — run {run.id[:8]} · {run.schema_name}.{run.table_name} +{run.index_name} · "
                        f"{run.status}{verdict} · building the report…")


def preliminary_text(view: RunView, offset: timedelta = timedelta(0)) -> str:
    """What the run's row alone says, while the report is being built."""
    run = view.run
    if run is None:
        return "There is no run to report on yet."
    rows = [("Run", run.id), ("Status", run.status + (f" ({run.fail_reason})" if run.fail_reason else "")),
            ("Table", f"{run.schema_name}.{run.table_name}"), ("Index", run.index_name),
            ("ALTER started", _at(run.alter_started_at, offset)),
            ("ALTER finished", _at(run.alter_finished_at, offset)), ("Ended", _at(run.completed_at, offset))]
    if view.verdicts:
        rows.append(("Verdict", view.verdicts[-1]))
    table = "\n".join(f"| {k} | {for_terminal(str(v)).replace('|', '/')} |" for k, v in rows)
    return ("*Building the report from the store (criteria, checkpoints, rollback, audit trail)…*\n\n"
            f"| | |\n|---|---|\n{table}\n")


class ReportScreen(RunbookScreen):
    BINDINGS = [
        Binding("e", "export", "Export Markdown", id="report-export"),
        Binding("c", "copy", "Copy (OSC 52)", id="report-copy"),
        Binding("w", "post", "Post to webhook", id="report-post"),
        Binding("l", "lesson", "Lessons learned", id="report-lesson"),
        Binding("v", "cycle(1)", "Next text", id="report-next-view"),
        Binding("shift+v", "cycle(-1)", "Previous text", show=False, id="report-previous-view"),
    ]
    step = "report"
    DEFAULT_CSS = RunbookScreen.DEFAULT_CSS + """
    ReportScreen #report-title { margin: 0 1; padding-top: 1; text-style: bold; height: auto; }
    ReportScreen #report-title.-pass { color: $success; }
    ReportScreen #report-title.-warning { color: $warning; }
    ReportScreen #report-title.-fail { color: $error; }
    ReportScreen Tabs { margin: 0 1; }
    ReportScreen ContentSwitcher { height: 1fr; margin: 0 1; }
    ReportScreen VerticalScroll { height: 1fr; }
    ReportScreen #announcement-text { padding: 1 2; }
    ReportScreen #report-status { height: auto; padding: 0 1; background: $panel; }
    ReportScreen #report-status.-ok { color: $success; }
    ReportScreen #report-status.-error { color: $error; text-style: bold; }
    /* A word wider than its column (a confidence interval, "successfully") folds onto the next line:
       Textual's "…" cut the decision matrix's intervals and its "yes" at 80 columns. */
    ReportScreen MarkdownTableContent > .cell, ReportScreen MarkdownTableContent > .header { text-overflow: fold; }
    """

    def __init__(self, plan: Plan) -> None:
        super().__init__(name="report")
        self.plan = plan
        self.facts: ReportFacts | None = None
        self.texts: dict[str, str] = {}
        self.titles: dict[str, str] = dict(VIEWS)
        self.view = "report"
        self.busy: set[str] = set()  # "export" | "post" while the App works on one

    # --- layout -------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        yield Static("Report — reading the run…", id="report-title")
        yield Tabs(*[Tab(title, id=f"view-{key}") for key, title in VIEWS], id="report-views")
        with ContentSwitcher(initial="report-view"):
            with VerticalScroll(id="report-view"):
                yield Markdown("Reading the run from the store…", id="report-md")
            with VerticalScroll(id="announcement-view"):
                yield Static("", id="announcement-text", markup=False)
        yield Static(self._idle_status(), id="report-status", markup=False)
        yield StepFooter()

    def on_mount(self) -> None:
        self.query_one("#report-view").focus()
        self._draw()

    @property
    def webhook_reason(self) -> str | None:
        """Why posting is not possible, or None when it is."""
        if not self.plan.webhook_url:
            return "add webhook_url under [integrations] in the plan to post from here"
        return None

    def _idle_status(self) -> str:
        if self.webhook_reason:
            return f"Webhook: not configured — {self.webhook_reason}."
        return f"Webhook: {redact_webhook(self.plan.webhook_url or '')}/… (the path is a secret: not shown)."

    # --- data in ------------------------------------------------------------------------------

    def show_view(self, view: RunView, now: datetime) -> None:
        """Until the report is built (on a worker: it reads the whole run from the store), the
        first frame says what is already known of the run, and that the rest is coming."""
        if self.facts is None and drawable(self):
            self.query_one("#report-title", Static).update(Text(preliminary_title(view)))
            self.query_one("#report-md", Markdown).update(preliminary_text(view, self.plan.off_peak.utc_offset))

    def show(self, facts: ReportFacts) -> None:
        """Draw the report and the announcements that apply to this run (nothing is redrawn when
        the facts have not changed: the App may send the same ones on every poll)."""
        if facts == self.facts:
            return
        self.facts = facts
        self.texts = {"report": shown(render_report(facts))}
        self.titles = dict(VIEWS)
        for a in announcements(facts):
            self.texts[a.key] = shown(a.text)
            self.titles[a.key] = a.title
        if drawable(self):  # else on_mount draws it
            self._draw()

    def _draw(self) -> None:
        tabs = self.query_one(Tabs)
        for key, _ in VIEWS:
            tab = tabs.get_tab(f"view-{key}")
            if tab is None:
                continue
            tab.label = self.titles[key]
            if key == "report" or key in self.texts:
                tabs.show(f"view-{key}")
            else:
                tabs.hide(f"view-{key}")
        facts = self.facts
        if facts is None:
            return
        title = self.query_one("#report-title", Static)
        title.update(f"Report — run {facts.short_id} · {facts.target} · {facts.result}"
                     + (" · rolled back" if facts.rolled_back else ""))
        level = OUTCOME_CLASS.get(facts.outcome, "")
        for cls in set(OUTCOME_CLASS.values()):
            title.set_class(cls == level, cls)
        self.query_one("#report-md", Markdown).update(self.texts["report"])
        self._select(self.view if self.view in self.texts else "report")
        self.refresh_bindings()

    def show_result(self, message: str, ok: bool, kind: str | None = None) -> None:
        """The outcome of an export, a copy or a post, in the status line. ``kind`` ends that
        action's busy state (all of them when not given)."""
        if kind is None:
            self.busy.clear()
        else:
            self.busy.discard(kind)
        status = self.query_one("#report-status", Static)
        status.set_class(ok, "-ok")
        status.set_class(not ok, "-error")
        status.update(("✓ " if ok else "✗ ") + message)
        self.refresh_bindings()

    # --- views --------------------------------------------------------------------------------

    @property
    def current_text(self) -> str:
        return self.texts.get(self.view, "")

    def _select(self, key: str) -> None:
        self.view = key
        tabs = self.query_one(Tabs)
        # The tabs mount after the screen's first update: selecting one before it exists would
        # raise; the switcher below shows the view meanwhile, and the next update selects the tab.
        if tabs.active != f"view-{key}" and tabs.query(f"#tabs-list > #view-{key}"):
            tabs.active = f"view-{key}"
        switcher = self.query_one(ContentSwitcher)
        if key == "report":
            switcher.current = "report-view"
        else:
            self.query_one("#announcement-text", Static).update(self.texts.get(key, ""))
            switcher.current = "announcement-view"
            self.query_one("#announcement-view", VerticalScroll).scroll_home(animate=False)

    @property
    def views(self) -> list[str]:
        """The views that apply to this run, in tab order."""
        return [key for key, _ in VIEWS if key in self.texts]

    def action_view(self, key: str) -> None:
        if key in self.texts:
            self._select(key)

    def action_cycle(self, step: int) -> None:
        views = self.views
        if views:
            at = views.index(self.view) if self.view in views else 0
            self._select(views[(at + step) % len(views)])

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        key = (event.tab.id or "").removeprefix("view-")
        if key in self.texts and key != self.view:
            self._select(key)

    # --- actions: the App does the work -----------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "post" and not self.plan.webhook_url:
            return False  # never acts with this plan: not shown (the status line says how to add one)
        return super().check_action(action, parameters)

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        if action == "lesson" and self.facts is None:
            return "The report is still being built from the store: lessons can be added in a moment."
        if action in ("export", "copy", "post") and self.facts is None:
            return "The report is still being built from the store: it can be exported, copied or posted in a moment."
        if action == "post" and self.webhook_reason:
            return f"Cannot post: {self.webhook_reason}."
        return None

    def _status(self, text: str) -> None:
        status = self.query_one("#report-status", Static)
        status.remove_class("-ok", "-error")
        status.update(text)

    def action_export(self) -> None:
        if "export" in self.busy:
            self._status("Still exporting: wait for it to finish.")
            return
        self.busy.add("export")
        self._status("Exporting…")
        self.post_message(ReportExport(self.current_text, self.view))

    def action_lesson(self) -> None:
        """Runbook 8.3: a row of the lessons-learned table; the App records it and redraws."""
        if self.facts is None:
            self._status("The report is still being built: lessons can be added in a moment.")
            return
        from screens.note import Lesson, LessonDialog

        def done(lesson: Lesson | None) -> None:
            if lesson is not None:
                self._status("Recording the lesson…")
                self.post_message(ReportLesson(lesson.what, lesson.impact, lesson.cause, lesson.action))

        self.app.push_screen(LessonDialog(), done)

    def action_copy(self) -> None:
        self._status("Copying…")
        self.post_message(ReportCopy(self.current_text, self.view))

    def action_post(self) -> None:
        if self.webhook_reason:
            self.show_result(f"cannot post: {self.webhook_reason}", False, "post")
            return
        if "post" in self.busy:
            self._status("Still posting the previous message: wait for its answer before posting again.")
            return
        self.busy.add("post")
        self._status(f"Posting to {redact_webhook(self.plan.webhook_url or '')}…")
        self.post_message(ReportPost(self.current_text, self.view))
