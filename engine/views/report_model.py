"""The post-canary report's facts, as plain frozen data (docs/runbook.md#8-report; runbook 7.2,
8.2): the run, its criteria, metrics, rollback, checkpoints, people, issues and approvals, the
escalation matrix (runbook 7.2), and how a time, a duration and a metric are written. The report
(engine/views/report.py) and the announcements (engine/views/announcements.py) are rendered from
them; ``report_facts`` (engine/views/report_facts.py) reads them from the store. A value that is not
known is "—", never a ``{PLACEHOLDER}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.domain.clock import wall
from engine.domain.roles import TITLES

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
