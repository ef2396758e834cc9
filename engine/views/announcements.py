"""The war room's announcements with real values (docs/runbook.md; runbook 3.2 steps 0 and 9, 6.4
R1 and R5, 7.4): the start, the completion, the rollback initiated, complete or failed, and the
warning and critical templates the dashboard and the webhooks fill. Pure functions over the
``ReportFacts`` of engine/views/report_model.py.

Announcements keep the runbook's heading lines and emoji; where the runbook says "Executor v1"
(the product it was written for) they name what this canary changes: ``schema.table ADD INDEX``
and the tenant. A value that is not known is "—", never a ``{PLACEHOLDER}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.domain.clock import drill_mark
from engine.views.report_model import (
    ESCALATION_MATRIX,
    ROLE_LABELS,
    RULE,
    UNKNOWN,
    MetricComparison,
    ReportFacts,
    escalation_contacts,
    fmt_delta,
    fmt_duration,
    fmt_value,
)


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


# R1's "Metrics at decision time", by the template's own labels (engine/flows/notify.py puts the
# values recorded at decision time in their place).
DECISION_LABELS = {"latency_p50": "Latency P50", "latency_p99": "Latency P99", "error_rate": "Error rate"}


def _at_decision(f: ReportFacts) -> dict[str, str]:
    out = {}
    for key, label in DECISION_LABELS.items():
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
