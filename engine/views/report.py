"""The post-canary report and the war room's announcements, with real values (docs/runbook.md#8-report; runbook
3.2 steps 0 and 9, 6.4 R1 and R5, 7.2, 7.4, 8.2).

``report_facts`` reads a run from the store once (a blocking call: run it off the UI thread) into
the frozen ``ReportFacts``; the renderers are pure functions over it. The edges — the OSC 52
clipboard sequence, the Slack-compatible webhook, the Markdown file — never raise into a screen
and never show a secret: the plan holds no password (only where it comes from, which is not
rendered either) and a webhook URL is shown as ``scheme://host`` only, its path being the secret.

Announcements keep the runbook's heading lines and emoji; where the runbook says "Executor v1"
(the product it was written for) they name what this canary changes: ``schema.table ADD INDEX``
and the tenant. A value that is not known is "—", never a ``{PLACEHOLDER}``.
"""

from __future__ import annotations

import base64
import os
import statistics
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.domain.clock import drill_mark, utcnow, wall, zone_label
from engine.domain.plan import Plan
from engine.domain.roles import TITLES
from engine.domain.rollback_eta import eta_for_run

if TYPE_CHECKING:  # the store (SQLAlchemy) and httpx load lazily: not needed to draw a screen
    from engine.adapters.store import AuditLog, MetricSample, Store

UNKNOWN = "—"
RULE = "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━"
ROLE_LABELS = TITLES  # engine/domain/roles.py
END_WINDOW_S = 300.0  # "after" = the last five minutes of the window (runbook step 6; docs/thresholds.md)
ACTIVE_STATUSES = ("scheduled", "running", "observing")
APPROVAL_KINDS = ("signoff", "size_gate", "rollback", "auto_pause", "resume")


# --- the facts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonFacts:
    name: str
    roles: tuple[str, ...]
    contact: str = ""

    @property
    def handle(self) -> str:
        """How to reach them in the channel: their @handle, else their name (and contact)."""
        if self.contact.startswith("@"):
            return self.contact.split(",")[0].strip()
        return f"{self.name} ({self.contact})" if self.contact else self.name


@dataclass(frozen=True)
class CriterionFacts:
    """One row of the decision matrix, as ``Verdict.as_dict`` stored it."""

    name: str
    met: bool | None
    value: str
    threshold: str
    rule: str
    n: int | None = None
    interval: str | None = None
    applicable: bool = True


@dataclass(frozen=True)
class MetricComparison:
    """Baseline (before the ALTER) against after (the end of the monitoring window), and after a
    rollback when there was one. Values are medians of per-interval values, except a statement
    error rate computed from the digests, which is errors / statements over the period."""

    key: str  # latency_p50 | latency_p99 | error_rate
    label: str
    unit: str  # "ms" or "%"
    baseline: float | None
    after: float | None
    post_rollback: float | None = None
    n_baseline: int = 0
    n_after: int = 0
    n_post_rollback: int = 0
    source: str = ""

    @property
    def delta_pct(self) -> float | None:
        if self.baseline is None or self.after is None or self.baseline == 0:
            return None
        return (self.after - self.baseline) / self.baseline * 100.0

    @property
    def delta_abs(self) -> float | None:
        if self.baseline is None or self.after is None:
            return None
        return self.after - self.baseline


@dataclass(frozen=True)
class RollbackFacts:
    status: str  # pending | in_progress | completed | failed | would_roll_back | not_needed
    type: str  # full | partial | none | auto | manual
    reason: str
    sql: str | None
    started_at: datetime | None
    completed_at: datetime | None
    attempts: int
    error: str | None
    triggered_by: str

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    @property
    def drops_index(self) -> bool:
        """A DROP INDEX is (or was, or would be) part of it — not the kill switch stopping an ALTER
        before the index existed."""
        return bool(self.sql)


@dataclass(frozen=True)
class CheckpointFacts:
    label: str
    recorded_at: datetime | None
    metrics_ok: bool | None
    notes: str
    recorded_by: str


@dataclass(frozen=True)
class Issue:
    at: datetime | None
    kind: str  # warning | alert | failure | escalation | auto_pause | kill_switch | execution | rollback | refused
    text: str


@dataclass(frozen=True)
class ApprovalFacts:
    kind: str
    role: str
    actor: str
    decision: str
    at: datetime | None
    note: str = ""


@dataclass(frozen=True)
class PrecheckFacts:
    check_id: str
    status: str  # pass | fail | warn | skip
    priority: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ObservationFacts:
    """Runbook 5.4: an observation after the window (post_success) or after a rollback."""

    kind: str  # post_success | post_rollback
    minutes: float
    started_at: datetime | None
    ok: bool | None  # None: still under way (or its driver died)
    alerts: tuple[str, ...] = ()
    warnings: int = 0
    elapsed_s: float | None = None

    @property
    def text(self) -> str:
        what = "post-success" if self.kind == "post_success" else "post-rollback"
        if self.ok is None:
            return f"{what} observation of {self.minutes:g} min: under way"
        took = "" if self.elapsed_s is None or self.elapsed_s >= self.minutes * 60 else \
            f" (stopped at {self.elapsed_s / 60:.1f} min)"
        verdict = "OK — no alert fired" if self.ok else "NOT OK — " + "; ".join(self.alerts[:3])
        return f"{what} observation of {self.minutes:g} min: {verdict}{took}; {self.warnings} warning(s)"


def cancel_words(status: str, fail_reason: str | None, observation: ObservationFacts | None) -> str:
    """A cancelled run's cancellation in words, for a header beside the window's verdict ("" when
    the run is not cancelled): who or what cancelled it, and in which phase."""
    if status != "cancelled":
        return ""
    by = "by the kill switch" if fail_reason == "kill_switch" else f"({fail_reason})" if fail_reason else ""
    # Begun and cancelled: it cannot have ended (an observation that ends completes or fails the run).
    during = " during the post-success observation" if observation is not None else ""
    return " ".join(w for w in ("run cancelled", by) if w) + during


@dataclass(frozen=True)
class LessonFacts:
    """Runbook 8.3: one row of the lessons-learned table."""

    what: str
    impact: str
    cause: str
    action: str
    by: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class ReportFacts:
    run_id: str
    tenant: str
    connection_id: str
    schema: str
    table: str
    index: str
    columns: tuple[str, ...]
    status: str
    fail_reason: str | None = None
    message: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    alter_started_at: datetime | None = None
    alter_finished_at: datetime | None = None
    index_created: bool = False
    verdict: str | None = None
    verdict_reasons: tuple[str, ...] = ()
    verdict_warnings: tuple[str, ...] = ()
    next_step: str | None = None
    team_decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    stopped_early: bool = False
    stop_text: str = ""  # engine.domain.stops: where and why the window stopped early
    not_reached: tuple[str, ...] = ()  # checkpoints the window never reached (it stopped before them)
    criteria: tuple[CriterionFacts, ...] = ()
    rollback: RollbackFacts | None = None
    metrics: tuple[MetricComparison, ...] = ()
    checkpoints: tuple[CheckpointFacts, ...] = ()
    people: tuple[PersonFacts, ...] = ()
    issues: tuple[Issue, ...] = ()
    approvals: tuple[ApprovalFacts, ...] = ()
    prechecks: tuple[PrecheckFacts, ...] = ()
    utc_offset: timedelta = timedelta(0)  # the plan's war-room time zone (its off-peak window's)
    plan_source: str = ""
    time_compression: float | None = None  # a rehearsal's compressed clock, when there was one
    dashboard: str = ""  # the plan's [war_room] links (runbook 2.5.2, step 0)
    war_room: str = ""
    chat: str = ""
    rollback_eta: str = ""  # R1's ETA (engine/domain/rollback_eta.py), once the index exists
    generated_at: datetime | None = None
    observations: tuple[ObservationFacts, ...] = ()  # runbook 5.4: post-success, post-rollback
    lessons: tuple[LessonFacts, ...] = ()  # runbook 8.3, written on the report screen (l)

    # --- derived -------------------------------------------------------------------------------

    @property
    def short_id(self) -> str:
        return self.run_id[:8]

    @property
    def target(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    @property
    def name(self) -> str:
        """What the announcements call this canary (the runbook's "Executor v1")."""
        return f"{self.target} ADD INDEX"

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE_STATUSES

    @property
    def rolled_back(self) -> bool:
        return self.status == "rolled_back" or (
            self.rollback is not None and self.rollback.status == "completed" and self.rollback.drops_index)

    @property
    def rollback_failed(self) -> bool:
        return self.rollback is not None and self.rollback.status == "failed"

    @property
    def result(self) -> str:
        """The verdict, or what the run's status says when there is none. A run cancelled or failed
        after a passing window says so first: the verdict then is the window's, not the run's."""
        if self.verdict:
            verdict = f"{self.verdict} (team decided: {self.team_decision})" if self.team_decision else self.verdict
            if self.status == "cancelled":
                return f"CANCELLED — {cancel_words(self.status, self.fail_reason, self.observation)}; " \
                       f"the window's verdict: {verdict}"
            if self.status == "failed" and self.verdict.upper() in ("PASS", "PASS WITH WARNING"):
                return f"FAIL ({self.fail_reason or 'failed'}) — the window's verdict: {verdict}"
            return verdict
        if self.status in ACTIVE_STATUSES:
            return "IN PROGRESS"
        base = {"completed": "COMPLETED (no verdict recorded)", "failed": "FAIL", "cancelled": "CANCELLED",
                "rolled_back": "ROLLED BACK"}.get(self.status, self.status.upper())
        return f"{base} ({self.fail_reason})" if self.fail_reason else base

    @property
    def observation(self) -> ObservationFacts | None:
        """The post-success observation, once begun."""
        return next((o for o in self.observations if o.kind == "post_success"), None)

    @property
    def outcome(self) -> str:
        """PASS | WARNING | FAIL | INCONCLUSIVE | CANCELLED | IN PROGRESS: what the emoji follow.
        The run's end first: a run cancelled or failed after a passing window did not pass."""
        if self.status == "cancelled":
            return "CANCELLED"
        v = (self.verdict or "").upper()
        if self.status == "failed" and v in ("PASS", "PASS WITH WARNING"):
            return "FAIL"
        if v == "PASS":
            return "PASS"
        if v == "PASS WITH WARNING":
            return "WARNING"
        if v in ("FAIL", "INCONCLUSIVE"):
            return v
        if self.status in ACTIVE_STATUSES:
            return "IN PROGRESS"
        if self.status == "completed":
            return "PASS"
        if self.status == "cancelled":
            return "CANCELLED"
        return "FAIL"

    @property
    def duration_s(self) -> float | None:
        start = self.started_at or self.created_at
        end = self.completed_at or (self.generated_at if self.status in ACTIVE_STATUSES else None)
        if start is None or end is None:
            return None
        return (end - start).total_seconds()

    @property
    def alter_duration_s(self) -> float | None:
        if self.alter_started_at is None or self.alter_finished_at is None:
            return None
        return (self.alter_finished_at - self.alter_started_at).total_seconds()

    @property
    def alerts_fired(self) -> bool | None:
        """None when nobody can say (no decision and no alert recorded)."""
        for c in self.criteria:
            if c.name.lower().startswith("no alerts fired"):
                return c.met is False
        if any(i.kind == "alert" for i in self.issues):
            return True
        return None

    def metric(self, key: str) -> MetricComparison | None:
        return next((m for m in self.metrics if m.key == key), None)

    def people_with(self, role: str) -> tuple[PersonFacts, ...]:
        return tuple(p for p in self.people if role in p.roles)

    def names_with(self, role: str) -> str:
        found = self.people_with(role)
        return ", ".join(p.name for p in found) if found else UNKNOWN

    def handles_with(self, role: str) -> str:
        found = self.people_with(role)
        return ", ".join(p.handle for p in found) if found else UNKNOWN


# --- escalation (runbook 7.2) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Escalation:
    level: str  # L1 … L4
    condition: str
    contact: str
    response: str


ESCALATION_MATRIX: dict[str, Escalation] = {
    "L1": Escalation("L1", "Minor warnings", "Canary Lead", "5 minutes"),
    "L2": Escalation("L2", "Major degradation", "Canary Lead + DBA", "2 minutes"),
    "L3": Escalation("L3", "Critical - Rollback needed", "All team + On-call manager", "Immediate"),
    "L4": Escalation("L4", "Rollback failed", "On-call manager + Director", "Immediate"),
}


def escalation_level(*, warnings: int = 0, major: bool = False, rollback_needed: bool = False,
                     rollback_failed: bool = False) -> Escalation | None:
    """Runbook 7.2: the highest level that applies, or None when there is nothing to escalate.

    ``warnings``: metrics in their warning zone; ``major``: major degradation (3+ concurrent
    warnings, an AUTO-PAUSE, a major metric past its limit without a rollback decision yet);
    ``rollback_needed``: a critical alert or a FAIL; ``rollback_failed``: the DROP did not go
    through."""
    if rollback_failed:
        return ESCALATION_MATRIX["L4"]
    if rollback_needed:
        return ESCALATION_MATRIX["L3"]
    if major:
        return ESCALATION_MATRIX["L2"]
    if warnings > 0:
        return ESCALATION_MATRIX["L1"]
    return None


def escalation_for(facts: ReportFacts) -> Escalation | None:
    """The highest level this run reached."""
    kinds = {i.kind for i in facts.issues}
    l4 = facts.rollback_failed or any(i.kind == "escalation" and "L4" in i.text for i in facts.issues)
    needed = (facts.outcome == "FAIL" or bool(facts.alerts_fired) or "alert" in kinds
              or (facts.rollback is not None and facts.rollback.drops_index))
    major = facts.outcome == "INCONCLUSIVE" or bool(kinds & {"auto_pause", "escalation", "kill_switch"})
    warnings = len(facts.verdict_warnings) + sum(1 for i in facts.issues if i.kind == "warning")
    return escalation_level(warnings=warnings, major=major, rollback_needed=needed, rollback_failed=l4)


def escalation_contacts(esc: Escalation, facts: ReportFacts) -> str:
    """The people of the plan an escalation level calls (on-call manager and director are not
    roles of the plan: they are named by role)."""
    if esc.level == "L1":
        return f"Canary Lead {facts.handles_with('canary_lead')}"
    if esc.level == "L2":
        return f"Canary Lead {facts.handles_with('canary_lead')}, DBA {facts.handles_with('dba')}"
    if esc.level == "L3":
        team = ", ".join(p.handle for p in facts.people) or UNKNOWN
        return f"all team ({team}) + on-call manager"
    return "on-call manager + director"


# --- formatting -----------------------------------------------------------------------------------


_offset_label = zone_label  # engine.domain.clock: one way to say a time zone


def fmt_when(dt: datetime | None, offset: timedelta = timedelta(0)) -> str:
    """Wall time in the plan's time zone, with its date and zone (engine.domain.clock.wall)."""
    return UNKNOWN if dt is None else wall(dt, offset, date=True)


def fmt_clock(dt: datetime | None, offset: timedelta = timedelta(0)) -> str:
    return UNKNOWN if dt is None else wall(dt, offset, zone=False)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return UNKNOWN
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return UNKNOWN
    if abs(v) < 1:
        return f"{v:.3f} ms"
    if abs(v) < 10:
        return f"{v:.2f} ms"
    if abs(v) < 100:
        return f"{v:.1f} ms"
    return f"{v:,.0f} ms"


def fmt_value(m: MetricComparison, v: float | None) -> str:
    if v is None:
        return UNKNOWN
    return fmt_ms(v) if m.unit == "ms" else f"{v:.2f}%"


def fmt_delta(m: MetricComparison) -> str:
    """A latency's change in percent of its baseline; a rate's in percentage points."""
    if m.unit == "%":
        d = m.delta_abs
        return UNKNOWN if d is None else f"{d:+.2f} pp"
    d = m.delta_pct
    return UNKNOWN if d is None else f"{d:+.1f}%"


def _cell(text: Any) -> str:
    """One Markdown table cell: no pipe, no line break."""
    s = UNKNOWN if text is None or text == "" else str(text)
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _met(c: CriterionFacts) -> str:
    if not c.applicable:
        return "— not measured"
    return {True: "✅ yes", False: "❌ no", None: "❔ inconclusive"}[c.met]


def _yes_no(flag: bool | None) -> str:
    return {True: "✅ yes", False: "❌ no", None: "—"}[flag]


# --- reading the store ------------------------------------------------------------------------


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)  # SQLite gives naive datetimes back: they are UTC


def _columns(raw: Any) -> tuple[str, ...]:
    out = []
    for c in raw or []:
        if isinstance(c, (list, tuple)):
            name, prefix = (list(c) + [None])[:2]
            out.append(f"{name}({prefix})" if prefix else str(name))
        elif isinstance(c, dict):
            out.append(f"{c.get('name')}({c['prefix']})" if c.get("prefix") else str(c.get("name")))
        else:
            out.append(str(c))
    return tuple(out)


def _median_recent(rows: Sequence[MetricSample], seconds: float | None) -> tuple[float | None, int]:
    vals = [(r.sampled_at, r.value) for r in rows if r.value is not None]
    if not vals:
        return None, 0
    if seconds is not None:
        last = max(at for at, _ in vals)
        vals = [(at, v) for at, v in vals if (last - at).total_seconds() <= seconds]
    return statistics.median(v for _, v in vals), len(vals)


def _statement_error_rate(rows: Sequence[MetricSample], seconds: float | None) -> tuple[float | None, int]:
    """errors / statements × 100 over the period, from the digest samples of the same ticks."""
    counts: dict[datetime, float] = {}
    errors: dict[datetime, float] = {}
    for r in rows:
        if r.value is None:
            continue
        if r.metric == "digest_count":
            counts[r.sampled_at] = r.value
        elif r.metric == "digest_errors":
            errors[r.sampled_at] = r.value
    ticks = sorted(counts)
    if seconds is not None and ticks:
        ticks = [t for t in ticks if (ticks[-1] - t).total_seconds() <= seconds]
    total = sum(counts[t] for t in ticks)
    if not ticks or total <= 0:
        return None, len(ticks)
    return 100.0 * sum(errors.get(t, 0.0) for t in ticks) / total, len(ticks)


def _comparisons(rows: Sequence[MetricSample], alter_started: datetime | None, window_start: datetime | None,
                 rollback: RollbackFacts | None) -> tuple[MetricComparison, ...]:
    baseline = [r for r in rows if alter_started is None or r.sampled_at < alter_started]
    window: list[MetricSample] = []
    post: list[MetricSample] = []
    if alter_started is not None:
        start = window_start or alter_started
        cut = rollback.started_at if rollback is not None and rollback.drops_index and rollback.started_at else None
        window = [r for r in rows if r.sampled_at >= start and (cut is None or r.sampled_at < cut)]
        if rollback is not None and rollback.status == "completed" and rollback.drops_index and rollback.completed_at:
            post = [r for r in rows if r.sampled_at >= rollback.completed_at]

    def of(period: Sequence[MetricSample], metric: str) -> list[MetricSample]:
        return [r for r in period if r.metric == metric]

    out = []
    for key, label in (("latency_p50", "Latency P50"), ("latency_p99", "Latency P99")):
        b, nb = _median_recent(of(baseline, key), None)
        a, na = _median_recent(of(window, key), END_WINDOW_S)
        p, np_ = _median_recent(of(post, key), END_WINDOW_S)
        out.append(MetricComparison(key, label, "ms", b, a, p, nb, na, np_, "median of per-interval values"))
    # Credit only the source that measured it: the application's error rate comes from Prometheus
    # when the plan configures one; without it the primary's stand-in (the share of the table's
    # statements that failed, also stored as error_rate) is named as what it is.
    if any(r.metric == "error_rate" and r.source == "prometheus" for r in rows):
        def app(period: Sequence[MetricSample]) -> list[MetricSample]:
            return [r for r in of(period, "error_rate") if r.source == "prometheus"]

        b, nb = _median_recent(app(baseline), None)
        a, na = _median_recent(app(window), END_WINDOW_S)
        p, np_ = _median_recent(app(post), END_WINDOW_S)
        out.append(MetricComparison("error_rate", "Error Rate", "%", b, a, p, nb, na, np_, "application (Prometheus)"))
    else:
        b, nb = _statement_error_rate(baseline, None)
        a, na = _statement_error_rate(window, END_WINDOW_S)
        p, np_ = _statement_error_rate(post, END_WINDOW_S)
        out.append(MetricComparison("error_rate", "Error Rate", "%", b, a, p, nb, na, np_,
                                    "statements on the table (performance_schema digests)"))
    return tuple(out)


def _flat(details: Mapping[str, Any] | None, keys: Iterable[str]) -> str:
    """A few details as "k: v", never a dict's repr (no braces in a report)."""
    parts = []
    for k in keys:
        v = (details or {}).get(k)
        if v in (None, "", [], {}):
            continue
        if isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v if not isinstance(x, (dict, list)))
        elif isinstance(v, dict):
            continue
        parts.append(f"{k.replace('_', ' ')}: {v}")
    return "; ".join(parts)


# action → (kind, the detail keys worth showing)
_ISSUE_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "warning": ("warning", ("metric", "value", "threshold", "detail", "rule")),
    "metric_warning": ("warning", ("metric", "value", "threshold", "detail", "rule")),
    "alert": ("alert", ("metric", "value", "threshold", "detail", "rule")),
    "metric_alert": ("alert", ("metric", "value", "threshold", "detail", "rule")),
    "concurrent_escalate": ("escalation", ("detail", "concurrent")),
    "escalation": ("escalation", ("level", "why", "error")),
    "auto_pause": ("auto_pause", ("reason",)),
    "auto_pause_lifted": ("auto_pause", ("decision", "approved_by", "role")),
    "kill_switch_activated": ("kill_switch", ("scope", "connection_id", "reason")),
    "kill_switch_deactivated": ("kill_switch", ("scope", "connection_id", "reason")),
    "kill_switch_repressed": ("kill_switch", ("scope", "set_by", "on_since")),
    "alter_killed": ("kill_switch", ("thread_id", "scopes", "reason")),
    "alter_kill_failed": ("execution", ("thread_id", "error")),
    "alter_connection_lost": ("execution", ("thread_id", "error")),
    "lease_lost": ("execution", ("worker",)),
    "claim_failed": ("execution", ("holder", "status")),
    "auto_rollback_would_run": ("rollback", ("reason",)),
    "rollback_failed": ("rollback", ("reason", "error", "attempts")),
    "rollback_refused": ("rollback", ("reason",)),
    "team_decision_refused": ("refused", ("roles",)),
    "auto_pause_approval_refused": ("refused", ("decision", "roles")),
    "kill_switch_deactivation_refused": ("refused", ("scopes", "roles")),
}
_RUNLESS_ACTIONS = ("kill_switch_activated", "kill_switch_repressed", "kill_switch_deactivated",
                   "kill_switch_deactivation_refused")


def _issue_of(e: AuditLog) -> Issue | None:
    at = _aware(e.created_at)
    if e.action == "status_change":
        if e.new_status in ("failed", "cancelled"):
            what = _flat(e.details, ("fail_reason", "message"))
            return Issue(at, "failure", f"run {e.new_status} ({what})" if what else f"run {e.new_status}")
        return None
    if e.action == "precheck_recorded":
        d = e.details or {}
        if d.get("status") == "fail":
            return Issue(at, "failure", f"precheck {d.get('check')} failed")
        return None
    if e.action not in _ISSUE_ACTIONS:
        return None
    kind, keys = _ISSUE_ACTIONS[e.action]
    what = _flat(e.details, keys)
    label = e.action.replace("_", " ")
    return Issue(at, kind, f"{label} by {e.actor}" + (f" — {what}" if what else ""))


def _by_time(x: Issue | ApprovalFacts) -> tuple[bool, float]:
    return (x.at is None, x.at.timestamp() if x.at else 0.0)


def report_facts(store: Store, plan: Plan, run_id: str) -> ReportFacts:
    """Everything the report and the announcements say about one run, read from the store once.

    Blocking (it queries the store): call it from a worker, not the UI thread. Raises
    ``LookupError`` when the plan's tenant has no such run."""
    tenant = plan.tenant
    run = store.get_run(tenant, run_id)
    if run is None:
        raise LookupError(f"run {run_id} not found for tenant {tenant}; `canary-console status` lists the runs")
    alter_started = _aware(run.alter_started_at)

    decisions = store.decisions(tenant, run_id)
    decision = decisions[-1] if decisions else None
    ev = (decision.evidence or {}) if decision else {}
    criteria = tuple(
        CriterionFacts(str(c.get("name", "")), c.get("met"), str(c.get("value", "")), str(c.get("threshold", "")),
                       str(c.get("rule", "")), c.get("n"), c.get("interval"), bool(c.get("applicable", True)))
        for c in ev.get("criteria") or [] if isinstance(c, dict)
    )

    records = store.rollback_records(tenant, run_id)
    chosen = None
    if records:
        # The one that says most: a DROP that completed, else the latest.
        done = [r for r in records if r.rollback_status == "completed" and r.rollback_sql]
        chosen = done[-1] if done else records[-1]
    rollback = None
    if chosen is not None:
        reason = chosen.trigger_reason or ""
        kept = (chosen.rollback_details or {}).get("kept")
        if isinstance(kept, dict):  # the canary lead kept the index after a refusal (docs/rollback.md)
            reason = f"index kept by {kept.get('by')} after a refusal: {kept.get('reason')}"
        rollback = RollbackFacts(
            status=chosen.rollback_status, type=chosen.rollback_type, reason=reason,
            sql=chosen.rollback_sql, started_at=_aware(chosen.rollback_started_at),
            completed_at=_aware(chosen.rollback_completed_at), attempts=len(chosen.attempts or []),
            error=chosen.rollback_error,
            triggered_by=str((chosen.rollback_details or {}).get("triggered_by") or chosen.created_by or ""),
        )

    entries = store.audit_entries(tenant, run_id, limit=10000)
    started = [e for e in entries if e.action == "monitoring_started"]
    window_start = None
    compression = None
    if started:
        d = started[-1].details or {}
        try:
            window_start = _aware(datetime.fromisoformat(str(d.get("at"))))
        except ValueError:
            window_start = None
        speed = d.get("time_compression")
        compression = float(speed) if isinstance(speed, (int, float)) and speed != 1 else None
    window_start = window_start or _aware(run.alter_finished_at)

    issues = [i for i in (_issue_of(e) for e in entries) if i is not None]
    # Kill-switch changes are not tied to a run: those of the tenant while the run was live.
    lo = _aware(run.created_at)
    hi = _aware(run.completed_at) or store.now()
    for action in _RUNLESS_ACTIONS:
        for e in store.audit_entries(tenant, None, action, limit=1000):
            at = _aware(e.created_at)
            if e.execution_run_id is None and lo is not None and at is not None and lo <= at <= hi:
                issue = _issue_of(e)
                if issue is not None:
                    issues.append(issue)
    at_decision = _aware(decision.created_at) if decision else None
    # The verdict's warnings are issues; its reasons are listed under the decision matrix.
    issues += [Issue(at_decision, "warning", w) for w in ev.get("warnings") or []]
    verdict = decision.verdict if decision else None
    issues.sort(key=_by_time)

    approvals = sorted(
        (ApprovalFacts(a.kind, a.role, a.actor, a.decision, _aware(a.created_at), a.note)
         for kind in APPROVAL_KINDS for a in store.approvals(tenant, run_id, kind)),
        key=_by_time)
    cutoff = alter_started or hi
    prechecks = tuple(
        PrecheckFacts(p.check_id, p.status, p.priority, p.detail or "")
        for _, p in sorted(store.latest_prechecks(tenant).items())
        if p.execution_run_id == run_id or (p.execution_run_id is None and (_aware(p.recorded_at) or cutoff) <= cutoff)
    )

    observations = observations_of(entries)
    lessons = lessons_of(entries)
    return ReportFacts(
        run_id=run.id, tenant=tenant, connection_id=run.connection_profile_id, schema=run.schema_name,
        table=run.table_name, index=run.index_name, columns=_columns(run.columns), status=run.status,
        fail_reason=run.fail_reason, message=run.error_message, created_at=_aware(run.created_at),
        started_at=_aware(run.started_at), completed_at=_aware(run.completed_at),
        alter_started_at=alter_started, alter_finished_at=_aware(run.alter_finished_at),
        index_created=bool(run.index_created_by_run), verdict=verdict,
        verdict_reasons=tuple(str(r) for r in ev.get("reasons") or []),
        verdict_warnings=tuple(str(w) for w in ev.get("warnings") or []),
        next_step=ev.get("next_step"), team_decision=ev.get("team_decision"),
        decided_by=decision.decided_by if decision else None, decided_at=at_decision,
        stopped_early=bool(ev.get("stopped_early")), criteria=criteria, rollback=rollback,
        **_stop_facts(store, plan, run_id, ev),
        metrics=_comparisons(store.samples(tenant, run_id), alter_started, window_start, rollback),
        checkpoints=tuple(CheckpointFacts(c.label, _aware(c.recorded_at), c.metrics_ok, c.notes or "", c.recorded_by)
                          for c in store.checkpoints(tenant, run_id)),
        people=tuple(PersonFacts(p.name, tuple(p.roles), p.reach) for p in plan.people),
        issues=tuple(issues), approvals=tuple(approvals), prechecks=prechecks,
        dashboard=plan.war_room.dashboard, war_room=plan.war_room.room, chat=plan.war_room.chat,
        rollback_eta=eta_for_run(store, plan, run_id).short() if run.index_created_by_run else "",
        utc_offset=plan.off_peak.utc_offset, plan_source=plan.source, time_compression=compression,
        generated_at=store.now(), observations=observations, lessons=lessons,
    )


# --- lessons learned (runbook 8.3) ----------------------------------------------------------------

LESSON = "lesson_recorded"  # the audit entry a lesson is stored as (hash-chained, with who and when)
LESSON_FIELDS = ("what", "impact", "cause", "action")


def lessons_of(entries: Sequence[AuditLog]) -> tuple[LessonFacts, ...]:
    out = []
    for e in entries:
        if e.action != LESSON:
            continue
        d = e.details or {}
        out.append(LessonFacts(*(str(d.get(k) or "") for k in LESSON_FIELDS), by=e.actor, at=_aware(e.created_at)))
    return tuple(out)


def observations_of(entries: Sequence[AuditLog]) -> tuple[ObservationFacts, ...]:
    """The observations of runbook 5.4 from the audit trail: each ``<kind>_observation_started``
    with the ``…_completed`` that followed it, if any."""
    out: list[ObservationFacts] = []
    for kind in ("post_success", "post_rollback"):
        started = [e for e in entries if e.action == f"{kind}_observation_started"]
        done = [e for e in entries if e.action == f"{kind}_observation_completed"]
        if not started:
            continue
        begun = started[-1]
        d = begun.details or {}
        end = next((e for e in reversed(done) if _aware(e.created_at) >= _aware(begun.created_at)), None)
        e = (end.details or {}) if end is not None else {}
        minutes = d.get("minutes")
        out.append(ObservationFacts(
            kind, float(minutes) if isinstance(minutes, (int, float)) else 0.0, _aware(begun.created_at),
            bool(e["ok"]) if end is not None and "ok" in e else None,
            tuple(str(a) for a in e.get("alerts") or []), int(e.get("warnings") or 0),
            float(e["elapsed_s"]) if isinstance(e.get("elapsed_s"), (int, float)) else None))
    return tuple(out)


def _stop_facts(store: Store, plan: Plan, run_id: str, ev: Mapping[str, Any]) -> dict[str, Any]:
    """Where and why the window stopped early (the verdict's evidence; for a kill switch during the
    window, which leaves no verdict, its ``monitoring_stopped`` audit entry), and the checkpoints it
    never reached — listed as such, never as evaluated."""
    from engine.domain.decision import checkpoint_offsets_s
    from engine.domain.stops import stop_words, t_label

    profile = plan.profile()
    first = profile.checkpoints[0]
    text = stop_words(ev, first)
    at = ev.get("stopped_at_s") if ev.get("stopped_early") else None
    if not ev:
        stopped = store.audit_entries(plan.tenant, run_id, "monitoring_stopped")
        at = (stopped[-1].details or {}).get("stopped_at_s") if stopped else None
        if isinstance(at, (int, float)):
            text = f"the kill switch stopped the window at {t_label(first, float(at))}: no verdict"
    if not isinstance(at, (int, float)):
        return {"stop_text": text}
    recorded = {c.label for c in store.checkpoints(plan.tenant, run_id)}
    return {"stop_text": text, "not_reached": tuple(label for label, due_s in checkpoint_offsets_s(profile)
                                                    if due_s > at and label not in recorded)}


# --- the report (runbook 8.2) -----------------------------------------------------------------


def _recommendations(f: ReportFacts) -> list[str]:
    out = []
    o = f.outcome
    if f.rollback_failed:
        out.append("The rollback FAILED: escalation L4 (on-call manager + director). Do not retry blindly: "
                   "check the index and the table by hand first; every attempt is in the rollback record.")
    if f.rolled_back:
        out.append(f"Keep {f.index} off {f.target} until the root cause is understood; rerun the canary only "
                   "with a fix for the issues above.")
    elif o == "PASS":
        out.append(f"Keep {f.index}. The change is ready for the next rollout step once the 15-minute "
                   "post-success observation stays clean.")
    elif o == "WARNING":
        out.append(f"Keep {f.index}, but follow up every warning above before widening the rollout.")
    elif o == "INCONCLUSIVE":
        out.append("The evidence is not enough to decide: the team decides keep or remove and records it "
                   "(never an automatic rollback). A longer window or more traffic on the table gives the "
                   "≥ 10 intervals the decision needs.")
    elif o == "CANCELLED":
        if f.rollback is not None and f.rollback.drops_index:
            out.append(f"The run was stopped after the ALTER: {f.index} is still in place; decide the manual "
                       "rollback (runbook 6) with the prepared statement.")
        else:
            out.append("The run was stopped before the index existed; nothing to roll back. Find why the kill "
                       "switch was pressed before scheduling again.")
    elif o == "FAIL":
        if f.index_created and not f.rolled_back:
            out.append(f"Do not widen the rollout. {f.index} is still in place: follow the rollback decision flow "
                       "(runbook 6) with the metrics above.")
        else:
            out.append("Do not widen the rollout; find the cause of the failure before scheduling again.")
    elif o == "IN PROGRESS":
        out.append("The run is still in progress: this report is provisional.")
    return out


def _next_steps(f: ReportFacts) -> list[str]:
    steps = []
    if f.next_step and not (f.rolled_back and "rollback" in f.next_step):  # done already
        steps.append(f.next_step[0].upper() + f.next_step[1:])
    if f.outcome in ("FAIL", "CANCELLED") or f.rolled_back or f.rollback_failed:
        steps.append("Canary Lead: schedule the post-mortem (runbook 8.1).")
        if f.rolled_back:
            steps.append("Root-cause analysis, then the lessons-learned table (runbook 8.3).")
    steps.append("SRE: archive the logs; Canary Lead: send this summary to the stakeholders (runbook 8.1).")
    return steps


def render_report(facts: ReportFacts) -> str:
    """The post-canary report (runbook 8.2) in Markdown, every value filled from the run."""
    f = facts
    off = f.utc_offset
    esc = escalation_for(f)
    idx = f"{f.index} ({', '.join(f.columns)})" if f.columns else f.index
    if not f.index_created:
        created = f"No — {idx}"
    elif f.rolled_back:
        created = f"{idx}, then dropped by the rollback"
    else:
        created = idx
    if f.rolled_back:
        rolled = f"Yes ({fmt_when(f.rollback.completed_at if f.rollback else None, off)})"
    elif f.rollback_failed:
        rolled = "Attempted — FAILED (L4)"
    elif f.rollback is not None and f.rollback.status == "not_needed" and f.rollback.reason.startswith("index kept"):
        rolled = f"No — {f.rollback.reason}"
    elif f.rollback is not None and f.rollback.drops_index:
        rolled = f"No — prepared, {f.rollback.status.replace('_', ' ')}"
    else:
        rolled = "No"
    alter = UNKNOWN
    if f.alter_started_at:
        alter = (f"{fmt_clock(f.alter_started_at, off)} → {fmt_clock(f.alter_finished_at, off)} "
                 f"({fmt_duration(f.alter_duration_s)})")
    summary = [  # the runbook's rows, in its order
        ("Date", fmt_when(f.started_at or f.created_at, off)),
        ("Result", f.result),
        ("Duration", fmt_duration(f.duration_s)),
        ("Index Created", created),
        ("Rolled Back", rolled),
    ]
    details = [
        ("Run", f.run_id),
        ("Tenant", f.tenant),
        ("Connection", f.connection_id),
        ("Table", f.target),
        ("Status", f.status + (f" ({f.fail_reason})" if f.fail_reason else "")),
        ("ALTER (INPLACE, LOCK=NONE)", alter),
        ("Escalation reached", f"{esc.level} — {esc.condition}" if esc else "none"),
    ]
    if f.time_compression:
        details.append(("Clock", f"{drill_mark(f.time_compression)} (rehearsal): T+ and the times here are the drill's"))
    for o in f.observations:  # runbook 5.4; one the run's end cut short is not "under way"
        cut = f.finished and o.ok is None and o.kind == "post_success"
        details.append(("Observation", o.text.replace("under way", f"not finished ({f.status})") if cut else o.text))
    out = [f"# Canary Run Report - {f.name} ({f.tenant})", "", "## Summary", "", "| Field | Value |",
           "|-------|-------|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in summary]
    if f.message:
        out += ["", f"> {_cell(f.message)}"]

    post = f.rolled_back and any(m.post_rollback is not None for m in f.metrics)
    out += ["", "## Metrics Comparison", ""]
    head = "| Metric | Baseline | After | Delta |" + (" After rollback |" if post else "") + " Intervals |"
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for m in f.metrics:
        n = f"{m.n_baseline} / {m.n_after}" + (f" / {m.n_post_rollback}" if post else "")
        row = f"| {m.label} | {fmt_value(m, m.baseline)} | {fmt_value(m, m.after)} | {fmt_delta(m)} |"
        if post:
            row += f" {fmt_value(m, m.post_rollback)} |"
        out.append(row + f" {n} |")
    sources = "; ".join(f"{m.label}: {m.source}" for m in f.metrics if m.source)
    out += ["", "Baseline: before the ALTER. After: the last 5 minutes of the monitoring window"
            + (" (before the rollback)" if f.rollback and f.rollback.drops_index else "") + "."
            + (f" {sources}." if sources else "")]

    out += ["", "## Run", "", "| Field | Value |", "|-------|-------|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in details]

    out += ["", "## Decision Matrix", ""]
    if f.verdict:
        by = f" — decided by {f.decided_by} at {fmt_when(f.decided_at, off)}" if f.decided_by else ""
        out += [f"Verdict: **{f.result}**{by}" + (f" — {f.stop_text}" if f.stop_text else
                                                   " (stopped early)" if f.stopped_early else ""), ""]
    elif f.stop_text:
        out += [f"{f.stop_text[0].upper()}{f.stop_text[1:]}.", ""]
    if f.criteria:
        out += ["| Criterion | Value | Needs | Met | Rule | n | Interval |",
                "|---|---|---|---|---|---|---|"]
        for c in f.criteria:
            out.append(f"| {_cell(c.name)} | {_cell(c.value)} | {_cell(c.threshold)} | {_met(c)} | "
                       f"{_cell(c.rule)} | {_cell(c.n)} | {_cell(c.interval)} |")
    else:
        out.append("No verdict recorded" + (" yet." if not f.finished else " for this run."))
    if f.verdict_reasons:
        out += ["", "Why:"] + [f"- {r}" for r in f.verdict_reasons]

    out += ["", "## Monitoring Checkpoints", ""]
    if f.checkpoints:
        out += ["| Checkpoint | Time | Metrics OK? | Notes | Recorded by |", "|---|---|---|---|---|"]
        out += [f"| {_cell(c.label)} | {fmt_clock(c.recorded_at, off)} | {_yes_no(c.metrics_ok)} | {_cell(c.notes)} | "
                f"{_cell(c.recorded_by)} |" for c in f.checkpoints]
    else:
        out.append("No checkpoint recorded.")
    if f.not_reached:
        out += ["", f"Not reached — the window stopped before them, so never evaluated: {', '.join(f.not_reached)}."]

    if f.rollback is not None:
        r = f.rollback
        out += ["", "## Rollback", "", "| Field | Value |", "|-------|-------|",
                f"| Status | {_cell(r.status.replace('_', ' '))} |",
                f"| Type | {_cell(r.type)} |",
                f"| Reason | {_cell(r.reason)} |",
                f"| Statement | {_code(r.sql) if r.sql else 'none (no index to drop)'} |",
                f"| Started | {fmt_when(r.started_at, off)} |",
                f"| Completed | {fmt_when(r.completed_at, off)} |",
                f"| Duration | {fmt_duration(r.duration_s)} |",
                f"| Attempts | {r.attempts} |",
                f"| Triggered by | {_cell(r.triggered_by)} |",
                f"| Error | {_cell(r.error)} |"]

    out += ["", "## Issues Encountered", ""]
    if f.issues:
        out += [f"- {fmt_clock(i.at, off)} **{i.kind.replace('_', ' ')}**: {i.text}" for i in f.issues]
    else:
        out.append("None recorded.")

    out += ["", "## Recommendations", ""] + [f"- {r}" for r in _recommendations(f)]
    out += ["", "## Next Steps", ""] + [f"- {s}" for s in _next_steps(f)]

    out += ["", "## Lessons Learned", ""]  # runbook 8.3
    if f.lessons:
        out += ["| # | What Happened | Impact | Root Cause | Action Item | By |", "|---|---|---|---|---|---|"]
        out += [f"| {n} | {_cell(x.what)} | {_cell(x.impact or UNKNOWN)} | {_cell(x.cause or UNKNOWN)} | "
                f"{_cell(x.action or UNKNOWN)} | {_cell(x.by)} {fmt_clock(x.at, off)} |"
                for n, x in enumerate(f.lessons, 1)]
    else:
        out.append("None recorded yet: press l on the console's Report step (or `canary-console lesson`) to add one.")

    out += ["", "## Team", ""]
    if f.people:
        out += ["| Name | Roles | Contact |", "|---|---|---|"]
        out += [f"| {_cell(p.name)} | {', '.join(ROLE_LABELS.get(r, r) for r in p.roles)} | {_cell(p.contact)} |"
                for p in f.people]
    else:
        out.append("No people in the plan.")
    if f.approvals:
        out += ["", "Sign-offs and approvals:", ""]
        out += [f"- {fmt_clock(a.at, off)} {a.kind.replace('_', ' ')}: {a.decision} by {a.actor} "
                f"({ROLE_LABELS.get(a.role, a.role)})" + (f" — {a.note}" if a.note else "") for a in f.approvals]
    if f.prechecks:
        counts: dict[str, int] = {}
        for p in f.prechecks:
            counts[p.status] = counts.get(p.status, 0) + 1
        out += ["", "Prechecks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                + "".join(f"; {p.check_id} {p.status}" for p in f.prechecks if p.status in ("fail", "warn"))
                + "."]
    out += ["", f"_Generated by Canary Console at {fmt_when(f.generated_at, off)} from the run's store records"
            + (f" (plan {f.plan_source})" if f.plan_source else "") + "._", ""]
    return "\n".join(out)


# --- announcements (runbook 3.2 steps 0 and 9, 6.4 R1 and R5, 7.4) ----------------------------------


def _metric_line(m: MetricComparison | None, label: str) -> str:
    if m is None:
        return f"- {label}: {UNKNOWN}"
    delta = fmt_delta(m)
    return f"- {label}: {fmt_value(m, m.baseline)} → {fmt_value(m, m.after)} ({delta})"


def announce_start(facts: ReportFacts, dashboard: str | None = None, war_room: str | None = None,
                   expected_duration: str = "~2 hours") -> str:
    """Step 0, T−5 minutes, by the Canary Lead."""
    f = facts
    dash = dashboard or f.dashboard or (f"Canary Console (canary-console run {f.plan_source})" if f.plan_source
                                        else "Canary Console")
    team = ", ".join(f"{ROLE_LABELS[r]} {f.handles_with(r)}" for r in ("dba", "sre", "developer"))
    return "\n".join([
        f"🚀 [CANARY START] {f.name} Canary Run ({f.tenant})",
        RULE,
        f"📋 Scope: ADD_INDEX on {f.target} — {f.index} ({', '.join(f.columns) or UNKNOWN})",
        f"🎯 Tenant: {f.tenant}",
        f"🔗 Connection: {f.connection_id}",
        f"⏰ Expected Duration: {expected_duration}",
        f"👤 Lead: {f.handles_with('canary_lead')}",
        f"🆔 Run: {f.short_id}",
        "",
        f"📊 Monitoring Dashboard: {dash}",
        f"📞 War Room: {war_room or f.war_room or UNKNOWN}",
        "",
        f"👥 To confirm: {team}",
        "All team members please confirm availability in thread.",
    ]) + _drill_note(f)


def _drill_note(f: ReportFacts) -> str:
    """A drill's compressed clock, marked in every announcement it posts (engine.domain.clock)."""
    if not f.time_compression or f.time_compression <= 1:
        return ""
    return f"\n{drill_mark(f.time_compression)} (rehearsal): its times and durations are the drill's"


_RESULT_EMOJI = {"PASS": "✅", "WARNING": "⚠️", "INCONCLUSIVE": "⚠️", "FAIL": "❌", "CANCELLED": "🛑",
                 "IN PROGRESS": "⏳"}


def announce_completion(facts: ReportFacts, report_link: str | None = None) -> str:
    """Step 9, by the Canary Lead. The heading's emoji follows the result (✅ only for a PASS: a
    FAIL announced under a green tick would be misread at 2 a.m.)."""
    f = facts
    if not f.index_created:
        created = f"no — {f.index} on {f.target} was not created"
    elif f.rolled_back:
        created = f"{f.index} on {f.target} (dropped again by the rollback)"
    else:
        created = f"{f.index} on {f.target}"
    alerts = f.alerts_fired
    alerts_text = {False: "✅", True: "❌", None: f"{UNKNOWN} (no verdict)"}[alerts]
    thanks = ", ".join(p.name for p in f.people) or UNKNOWN
    return "\n".join([
        f"{_RESULT_EMOJI.get(f.outcome, '✅')} [CANARY COMPLETE] {f.name} Canary Run ({f.tenant})",
        RULE,
        f"📋 Result: {f.result}",
        f"🎯 Index Created: {created}",
        f"⏱️ Duration: {fmt_duration(f.duration_s)}",
        "",
        "📊 Metrics Summary:",
        _metric_line(f.metric("latency_p50"), "Latency P50"),
        _metric_line(f.metric("latency_p99"), "Latency P99"),
        f"- No alerts fired: {alerts_text}",
        "",
        f"📝 Full report: {report_link or f'Canary Console → Report, run {f.short_id}'}",
        "",
        f"Thanks to the team: {thanks}",
    ])


def _at_decision(f: ReportFacts) -> dict[str, str]:
    out = {}
    for key, label in (("latency_p50", "Latency P50"), ("latency_p99", "Latency P99"), ("error_rate", "Error rate")):
        m = f.metric(key)
        if m is None or m.after is None:
            out[label] = UNKNOWN
        else:
            out[label] = f"{fmt_value(m, m.after)} ({fmt_delta(m)} vs baseline {fmt_value(m, m.baseline)})"
    return out


def announce_rollback_initiated(facts: ReportFacts, reason: str | None = None,
                                metrics: Mapping[str, str] | None = None, dba_name: str | None = None,
                                eta: str | None = None) -> str:
    """R1, decision and announcement. ``metrics``: label → value at decision time (default: the
    run's latest after-values against the baseline)."""
    f = facts
    why = reason or (f.rollback.reason if f.rollback and f.rollback.reason else None) or "; ".join(f.verdict_reasons)
    shown = dict(_at_decision(f))
    if metrics:
        shown.update(metrics)
    return "\n".join([
        f"🔴 [ROLLBACK INITIATED] {f.name} Canary ({f.tenant})",
        RULE,
        f"⚠️ Reason: {why or UNKNOWN}",
        "📊 Metrics at decision time:",
        *[f"- {k}: {v or UNKNOWN}" for k, v in shown.items()],
        "",
        f"🎯 Action: Manual DROP INDEX {f.index} on {f.target}",
        f"👤 DBA: {dba_name or f.handles_with('dba')}",
        f"⏰ ETA: {eta or f.rollback_eta or UNKNOWN}",
        "",
        "All team standby.",
    ])


def announce_rollback_complete(facts: ReportFacts, next_steps: str | None = None) -> str:
    """R5. A rollback that failed is never announced as complete: that is the L4 announcement."""
    f = facts
    if f.rollback_failed:
        return announce_rollback_failed(f)
    r = f.rollback
    lines = []
    for key, label in (("latency_p50", "Latency P50"), ("latency_p99", "Latency P99")):
        m = f.metric(key)
        value = fmt_value(m, m.post_rollback) if m else UNKNOWN
        base = fmt_value(m, m.baseline) if m else UNKNOWN
        lines.append(f"- {label}: {value} (baseline: {base})")
    err = f.metric("error_rate")
    lines.append(f"- Error rate: {fmt_value(err, err.post_rollback) if err else UNKNOWN}"
                 + (f" (baseline: {fmt_value(err, err.baseline)})" if err else ""))
    steps = next_steps or "post-mortem scheduled by the Canary Lead (runbook 8.1); lessons learned (8.3)"
    dropped = (f"📋 Index {f.index} has been dropped from {f.target}" if f.rolled_back
               else f"📋 Index {f.index} on {f.target}: rollback {r.status.replace('_', ' ') if r else 'not started'}")
    return "\n".join([
        f"✅ [ROLLBACK COMPLETE] {f.name} Canary ({f.tenant})",
        RULE,
        dropped,
        f"⏱️ Rollback Duration: {fmt_duration(r.duration_s if r else None)}",
        "",
        "📊 Post-Rollback Metrics:",
        *lines,
        "",
        "📝 Root Cause Analysis will follow.",
        f"📅 Next Steps: {steps}",
    ])


def announce_rollback_failed(facts: ReportFacts) -> str:
    """Rollback failure: escalation L4, shown and announced (docs/rollback.md; runbook 7.2)."""
    f = facts
    r = f.rollback
    esc = ESCALATION_MATRIX["L4"]
    return "\n".join([
        f"🚨 [ROLLBACK FAILED] {f.name} Canary ({f.tenant}) - Immediate Action Required",
        RULE,
        f"📋 DROP INDEX {f.index} on {f.target} did not complete",
        f"⚠️ Error: {(r.error if r else None) or UNKNOWN}",
        f"🔁 Attempts: {r.attempts if r else 0}",
        f"📣 Escalation {esc.level}: {esc.contact} — {esc.response}",
        f"👤 DBA: {f.handles_with('dba')}",
        f"👤 Canary Lead: {f.handles_with('canary_lead')}",
        "",
        "Do not retry blindly: check the index and the table first.",
    ])


def _num(value: str | float | None) -> str:
    if value is None:
        return UNKNOWN
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def announce_warning(facts: ReportFacts, metric: str, value: str | float | None, threshold: str | float | None,
                     action: str = "CONTINUE MONITORING", person: str | None = None,
                     observation: str | None = None) -> str:
    """7.4 warning template. ``action``: CONTINUE MONITORING or PREPARE ROLLBACK."""
    f = facts
    who = person or ", ".join(x for x in (f.handles_with("sre"), f.handles_with("dba")) if x != UNKNOWN) or UNKNOWN
    esc = ESCALATION_MATRIX["L1"]
    return "\n".join([
        f"⚠️ [WARNING] {f.name} Canary ({f.tenant})",
        RULE,
        f"📊 Observation: {observation or f'{metric} in its warning zone'}",
        "📈 Current Metrics:",
        f"- {metric}: {_num(value)} (threshold: {_num(threshold)})",
        "",
        f"🎯 Action: {action.replace('_', ' ')}",
        f"👤 Monitoring: {who}",
        f"📣 Escalation {esc.level}: {escalation_contacts(esc, f)} — within {esc.response}",
        "",
        "Next update in 5 minutes.",
    ])


def announce_critical(facts: ReportFacts, metric: str, value: str | float | None, threshold: str | float | None,
                      action: str = "ROLLBACK", issue: str | None = None) -> str:
    """7.4 critical alert template. ``action``: ROLLBACK or INVESTIGATE."""
    f = facts
    esc = ESCALATION_MATRIX["L3"]
    return "\n".join([
        f"🚨 [CRITICAL] {f.name} Canary ({f.tenant}) - Immediate Action Required",
        RULE,
        f"📊 Issue: {issue or f'{metric} at or past its critical threshold'}",
        "📈 Current Metrics:",
        f"- {metric}: {_num(value)} (threshold: {_num(threshold)})",
        "",
        f"🎯 Action Required: {action.replace('_', ' ')}",
        f"👤 DBA: {f.handles_with('dba')} - please confirm",
        f"👤 Canary Lead: {f.handles_with('canary_lead')} - decision needed",
        f"📣 Escalation {esc.level}: {escalation_contacts(esc, f)}",
        "",
        "⏰ Response needed within 2 minutes.",
    ])


@dataclass(frozen=True)
class Announcement:
    key: str  # start | completion | rollback_initiated | rollback_outcome
    title: str
    text: str


def announcements(facts: ReportFacts) -> list[Announcement]:
    """The announcements that apply to this run, in the order they are posted."""
    out = [Announcement("start", "Start", announce_start(facts))]  # marks a drill itself
    note = _drill_note(facts)
    if facts.finished:
        out.append(Announcement("completion", "Completion", announce_completion(facts) + note))
    r = facts.rollback
    if r is not None and r.drops_index:
        out.append(Announcement("rollback_initiated", "Rollback initiated",
                                announce_rollback_initiated(facts) + note))
        if r.status == "failed":
            out.append(Announcement("rollback_outcome", "Rollback FAILED (L4)", announce_rollback_failed(facts) + note))
        elif facts.rolled_back:
            out.append(Announcement("rollback_outcome", "Rollback complete", announce_rollback_complete(facts) + note))
    return out


# --- the clipboard, over SSH and tmux -------------------------------------------------------------


def osc52(text: str, tmux: bool = False) -> str:
    """The OSC 52 "set clipboard" sequence for ``text``; inside tmux, wrapped in tmux's DCS
    passthrough (every ESC doubled) so it reaches the outer terminal (tmux ≥ 3.3 also needs
    ``set -g allow-passthrough on``; or ``set -g set-clipboard on`` and send it unwrapped)."""
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    seq = f"\x1b]52;c;{payload}\x07"
    if not tmux:
        return seq
    return "\x1bPtmux;" + seq.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def in_tmux(environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get("TMUX"))


def copy_hint(tmux: bool) -> str:
    """What to tell a person after a copy: OSC 52 has no acknowledgement."""
    if tmux:
        return ("sent to the clipboard with OSC 52 through tmux; if nothing arrives, "
                "`tmux set -g set-clipboard on` (and a terminal that accepts OSC 52)")
    return "sent to the clipboard with OSC 52; if nothing arrives, your terminal does not accept OSC 52: export with e"


# --- export -----------------------------------------------------------------------------------------


class ExportError(RuntimeError):
    """The report could not be written; the message names the path and the way out."""


def report_filename(facts: ReportFacts, now: datetime | None = None) -> str:
    at = now or utcnow()
    return f"canary-report-{facts.short_id}-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}.md"


def export_markdown(facts: ReportFacts, directory: str | os.PathLike[str], text: str | None = None,
                    now: datetime | None = None) -> Path:
    """Write the report (or ``text``, what the screen shows) to ``directory`` atomically: a
    temporary file in the same directory, then a rename. Returns the path; ``ExportError`` when
    the directory cannot be written."""
    folder = Path(directory).expanduser()
    path = folder / report_filename(facts, now)
    content = render_report(facts) if text is None else text
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".canary-report-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ExportError(
            f"cannot write the report to {path}: {exc.strerror or exc}. Choose a directory you can write to "
            "(e.g. your home directory), or copy the report with c instead."
        ) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path
