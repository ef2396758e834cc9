"""``report_facts``: one run read from the store once (a blocking call: run it off the UI thread)
into the frozen ``ReportFacts`` of engine/views/report_model.py, which the report and the
announcements render (docs/runbook.md#8-report). Also the audit trail read back as the run's
lessons learned (runbook 8.3) and observations (runbook 5.4).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.domain.plan import Plan
from engine.domain.rollback_eta import eta_for_run
from engine.domain.stops import judged_criteria
from engine.views.report_model import (
    APPROVAL_KINDS,
    END_WINDOW_S,
    ApprovalFacts,
    CheckpointFacts,
    CriterionFacts,
    Issue,
    LessonFacts,
    MetricComparison,
    ObservationFacts,
    PersonFacts,
    PrecheckFacts,
    ReportFacts,
    RollbackFacts,
)

if TYPE_CHECKING:  # the store (SQLAlchemy) loads lazily: not needed to draw a screen
    from engine.adapters.store import AuditLog, MetricSample, Store


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
        for c in judged_criteria(ev, plan.profile().checkpoints[0])
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
