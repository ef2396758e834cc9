"""The Decision step as data (docs/runbook.md#6-decision, docs/verdict.md; runbook 5.5): the final
matrix from the stored decision's evidence, the verdict, what a person does next, and the metrics
at decision time that the rollback flow is opened with. Pure over ``DashboardData``
(engine/views/dashboard_window.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.domain.rollback_rules import ROLLBACK_METRICS
from engine.domain.stops import ended_without_verdict, judged_criteria, stop_words
from engine.views.dashboard_tiles import t_label, value_unit
from engine.views.dashboard_window import DashboardData

TEAM_DECIDERS = ("canary_lead",)  # engine.flows.monitor.record_team_decision: the canary lead records it


@dataclass(frozen=True)
class MatrixRow:
    name: str
    status: str  # met | not met | inconclusive | n.a.
    value: str
    threshold: str
    rule: str
    n: str
    interval: str
    evidence: str = ""  # latency: estimate, interval, n, effective n, the control's movement, the method


@dataclass(frozen=True)
class DecisionView:
    verdict: str | None  # PASS | PASS WITH WARNING | FAIL | INCONCLUSIVE | None (no verdict yet)
    level: str  # pass | warning | fail | inconclusive | pending
    rows: tuple[MatrixRow, ...]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    next_step: str  # the engine's words
    action: str  # close | document_warnings | rollback | team_decision | team_decided | wait | ended (no verdict, ever)
    action_text: str  # what a person does now, with the keys
    rollback_metrics: Mapping[str, Any] = field(default_factory=dict)  # metrics at decision time
    rollback_trigger: str = ""  # engine.domain.rollback_rules trigger the failing criteria point to
    team_decision: str | None = None
    team_note: str = ""
    team_recorded_by: str = ""
    team_roles: tuple[str, ...] = TEAM_DECIDERS
    decided_by: str = ""
    decided_at: datetime | None = None
    stopped_early: bool = False
    profile: str = ""
    summary: str = ""
    stop_text: str = ""  # engine.domain.stops.stop_words: where and why the window stopped early ("" if it did not)
    verification: str = ""  # the digests and the sample queries (engine/flows/digest_check.py), "" when not run


VERDICT_LEVEL = {"PASS": "pass", "PASS WITH WARNING": "warning", "FAIL": "fail", "INCONCLUSIVE": "inconclusive"}


def decision_view(data: DashboardData) -> DecisionView:
    """The final matrix of runbook 5.5 from the stored decision's evidence (``Verdict.as_dict``):
    every criterion with its value, threshold, the rule that decided it, n and interval; the
    verdict; what to do next."""
    f = data.facts
    d = f.decision
    first = data.profile.checkpoints[0]
    if d is None:
        elapsed = data.state.elapsed_s / 60
        if f.status not in ("scheduled", "running"):  # ended with no verdict: it will never have one
            at = t_label(data.profile, data.state.elapsed_s) if data.window and data.window.ticks else None
            text = ended_without_verdict(f.status, f.fail_reason, at, f.index_created)
            trigger = "kill_switch" if f.fail_reason == "kill_switch" and f.index_created else ""
            if trigger:
                text += " g opens the rollback flow."
            return DecisionView(None, "pending", (), (), (), "", "ended", text,
                                rollback_metrics=_metrics_at_decision(data) if trigger else {},
                                rollback_trigger=trigger, stopped_early=data.window is not None,
                                stop_text=text if data.window else "")
        text = (f"No verdict yet: the window is at {elapsed:.1f} / {data.profile.window_minutes:g} min; the "
                "verdict is recorded when it ends (it cannot be shortened).") if data.window else (
                "No verdict yet: the monitoring window has not started.")
        return DecisionView(None, "pending", (), (), (), "", "wait", text)
    ev = d.evidence
    rows = tuple(_matrix_row(c) for c in judged_criteria(ev, first))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    verdict = d.verdict
    team = ev.get("team_decision")
    metrics, trigger = {}, ""
    if verdict == "FAIL":
        action = "rollback"
        metrics = _metrics_at_decision(data)
        trigger = _trigger(ev, rows)
        text = ("FAIL: execute the rollback decision flow (runbook 6) — g opens it pre-filled with the metrics at "
                "decision time. In a canary the DROP is never automatic.")
    elif verdict == "INCONCLUSIVE" and team:
        action = "team_decided"
        text = f"The team decided: {team} (recorded by {ev.get('recorded_by', d.decided_by)})."
        if team == "remove":
            metrics, trigger = _metrics_at_decision(data), "consensus"
            text += " g opens the rollback flow (team consensus) to remove the index."
    elif verdict == "INCONCLUSIVE":
        action = "team_decision"
        text = ("INCONCLUSIVE: never an automatic rollback. The team decides and the canary lead records it: "
                "k keep the index · d remove it (then the rollback flow, team consensus).")
    elif verdict == "PASS WITH WARNING":
        action, text = "document_warnings", "PASS WITH WARNING: document the warnings and plan a follow-up."
    else:
        action, text = "close", ("PASS: document and close, after the 15-minute post-success observation "
                                 "(runbook 5.4).")
    return DecisionView(
        verdict=verdict, level=VERDICT_LEVEL.get(verdict, "fail"), rows=rows,
        reasons=tuple(str(r) for r in ev.get("reasons") or ()), warnings=tuple(str(w) for w in ev.get("warnings") or ()),
        next_step=str(ev.get("next_step") or ""), action=action, action_text=text, rollback_metrics=metrics,
        rollback_trigger=trigger, team_decision=team, team_note=str(ev.get("note") or ""),
        team_recorded_by=str(ev.get("recorded_by") or "") if team else "", decided_by=d.decided_by,
        decided_at=d.created_at, stopped_early=bool(ev.get("stopped_early")), profile=str(ev.get("profile") or ""),
        summary=summary, stop_text=stop_words(ev, first),
        verification=_verification_text(ev.get("verification")))


def _verification_text(check: Any) -> str:
    if not isinstance(check, Mapping):
        return ""
    return "; ".join(str(check[k]) for k in ("summary", "index_note") if check.get(k))


def _matrix_row(c: Mapping[str, Any]) -> MatrixRow:
    applicable = bool(c.get("applicable", True))
    met = c.get("met")
    status = "n.a." if not applicable else "met" if met is True else "not met" if met is False else "inconclusive"
    n = c.get("n")
    return MatrixRow(str(c.get("name", "")), status, str(c.get("value", "")), str(c.get("threshold", "")),
                     str(c.get("rule", "")), "—" if n is None else str(n), str(c.get("interval") or "—"),
                     str(c.get("evidence") or ""))


def _trigger(evidence: Mapping[str, Any], rows: tuple[MatrixRow, ...]) -> str:
    failed = [r.name.lower() for r in rows if r.status == "not met"]
    text = " ".join(failed + [str(r).lower() for r in evidence.get("reasons") or ()])
    for word, trigger in (("lock wait", "lock_wait"), ("replication lag", "replication_lag"),
                          ("error rate", "error_rate"), ("latency", "latency")):
        if word in text:
            return trigger
    return "consensus"


def _metrics_at_decision(data: DashboardData) -> dict[str, Any]:
    """Runbook 6.5's record: each rollback trigger's metric at the decision — its last value in the
    window, the baseline, the band."""
    out: dict[str, Any] = {}
    window = data.window
    for key in ROLLBACK_METRICS:
        if key not in data.configured:
            continue
        rule = data.profile.rule(key)
        track = window.tracks.get(key) if window else None
        band = data.state.last_bands.get(key)
        out[key] = {
            "label": rule.label, "value": track.last_value if track else None,
            "unit": value_unit(rule), "baseline": data.base_medians.get(key),
            "level": band.level if band else None, "measure": band.measure if band else None,
            "at": track.last_at.isoformat() if track and track.last_at else None,
            "error": track.last_error if track else None,
        }
    return out
