"""The live monitoring dashboard as data (docs/runbook.md#5-monitoring, docs/metrics.md,
docs/thresholds.md; runbook steps 5–7, section 4, "Decision Rules", 7.2, 7.4).

``dashboard_view`` is a pure function over ``DashboardData`` (engine/views/dashboard_window.py),
cheap enough to run on every update (one full window of 1-second samples of 16 metrics: well
under a frame): the tiles and the progress line (engine/views/dashboard_tiles.py), the charts
(engine/views/dashboard_charts.py), and here the concurrent warnings, the AUTO-PAUSE, the
checkpoints' timeline, the criteria so far, the escalation level and the announcements to post.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.domain.clock import wall
from engine.domain.decision import WindowState, checkpoint_offsets_s
from engine.domain.decision_matrix import PASS_CRITERIA
from engine.domain.roles import role_words
from engine.domain.thresholds import MetricRule, Profile, tightened_note
from engine.views.announcements import announce_critical, announce_warning
from engine.views.dashboard_charts import CHART_METRICS, ChartSeries, _chart
from engine.views.dashboard_tiles import (
    SHORT_NAMES,
    VALUE_UNITS,
    Tile,
    WindowProgress,
    _baseline_words,
    _progress,
    _tile,
    fmt,
    t_label,
    value_unit,
)
from engine.views.dashboard_window import DashboardData
from engine.views.report_model import ReportFacts, escalation_contacts, escalation_level

EVENT_KINDS = ("warning", "alert", "escalated", "concurrent_escalate", "auto_pause", "resumed", "stop",
               "stale", "extension_unconfirmed")


@dataclass(frozen=True)
class Concurrent:
    count: int
    escalate_at: int
    autopause_at: int
    state: str  # ok | extend | escalate | auto_pause
    metrics: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class PauseView:
    paused: bool
    reason: str = ""
    since: datetime | None = None
    approver_roles: tuple[str, ...] = ()
    approvers: str = ""  # the plan's people in those roles
    text: str = ""
    last_lift: str = ""  # "resume approved by somchai@… at 23:41"


@dataclass(frozen=True)
class CheckpointRow:
    label: str  # T+15 …
    due_at: datetime | None
    status: str  # upcoming | next | due | recorded | not_reached (the window stopped before it)
    metrics_ok: bool | None
    who: str
    notes: str
    due_in_s: int | None = None  # whole seconds until the next one is due (None for the others)


@dataclass(frozen=True)
class CheckItem:
    name: str
    state: str  # met | not_met | pending | na
    text: str  # "samples 8/10", "warnings 3/5", "window 34/60 min"


@dataclass(frozen=True)
class EscalationView:
    level: str  # "" (nothing to escalate) | L1 … L4
    condition: str = ""
    contact: str = ""
    response: str = ""
    text: str = "no escalation"


@dataclass(frozen=True)
class AnnouncementText:
    kind: str  # warning | critical
    title: str
    text: str


@dataclass(frozen=True)
class DashboardView:
    run_id: str
    progress: WindowProgress
    tiles: tuple[Tile, ...]
    charts: tuple[ChartSeries, ...]
    concurrent: Concurrent
    pause: PauseView
    checkpoints: tuple[CheckpointRow, ...]
    current_checkpoint: str  # what a checkpoint note (p) is recorded against
    checklist: tuple[CheckItem, ...]
    escalation: EscalationView
    announcements: tuple[AnnouncementText, ...]
    events: tuple[str, ...] = ()  # the latest window events, newest last
    not_measured: tuple[str, ...] = ()  # docs/thresholds.md metrics with no source in this run
    verdict: str | None = None  # the recorded verdict, once there is one
    baseline: str = ""  # how long the latency baseline is, its n and effective n, the control
    baseline_short: bool = False  # too short to judge the latency thresholds: said, and shown as a warning
    profile_note: str = ""  # "tightened: the table has N rows …" after a WARNING size gate

    @property
    def announcement(self) -> AnnouncementText | None:
        """The one to copy or post now: a critical before a warning."""
        return self.announcements[0] if self.announcements else None


def dashboard_view(profile: Profile, data: DashboardData, now: datetime) -> DashboardView:
    """The dashboard for ``now`` (pure; cheap: everything heavy was done while loading)."""
    f = data.facts
    state = data.state
    window = data.window
    progress = _progress(profile, data, now)
    tiles = tuple(_tile(profile, data, rule) for rule in profile.rules if rule.key in data.configured)
    charts = tuple(_chart(profile, data, key) for key in CHART_METRICS if key in data.configured)
    warn = tuple(k for k, b in state.last_bands.items() if b.level in ("warning", "critical"))
    concurrent = _concurrent(profile, state, warn)
    pause = _pause(data)
    checkpoints, current = _checkpoints(profile, data, now,
                                        state.elapsed_s if progress.phase == "stopped" else None)
    alerts = state.alerts
    verdict = f.decision.verdict if f.decision else None
    esc = escalation_level(
        warnings=len(warn),
        major=state.concurrent >= profile.concurrent_escalate or state.paused or bool(state.escalations),
        rollback_needed=bool(alerts) or state.stop_reason is not None or verdict == "FAIL"
        or (window is not None and window.ended_by_rollback),
        rollback_failed=f.rollback_failed)
    facts = f.report_facts()
    escalation = (EscalationView(esc.level, esc.condition, escalation_contacts(esc, facts), esc.response,
                                 f"{esc.level} {esc.condition}: {escalation_contacts(esc, facts)} — "
                                 f"{esc.response.lower()}") if esc else EscalationView(""))
    events = tuple(_event_line(profile, e) for e in state.events[-8:] if e.kind in EVENT_KINDS)
    return DashboardView(
        run_id=f.run_id, progress=progress, tiles=tiles, charts=charts, concurrent=concurrent, pause=pause,
        checkpoints=checkpoints, current_checkpoint=current, checklist=_checklist(profile, data, progress),
        escalation=escalation, announcements=_announcements(profile, data, tiles, facts), events=events,
        not_measured=tuple(r.label for r in profile.rules if r.key not in data.configured), verdict=verdict,
        profile_note=tightened_note(profile), **_baseline_words(profile, data))


def _concurrent(profile: Profile, state: WindowState, warn: tuple[str, ...]) -> Concurrent:
    n = state.concurrent
    esc, pause = profile.concurrent_escalate, profile.concurrent_autopause
    if state.paused or n >= pause:
        kind, what = "auto_pause", "AUTO-PAUSE"
    elif n >= esc:
        kind, what = "escalate", "escalate to the tech lead, consider a pause"
    elif n:
        kind, what = "extend", "log, notify, observe 2× longer"
    else:
        kind, what = "ok", "none"
    names = tuple(profile.rule(k).label for k in warn)
    text = f"Concurrent warnings {n} — {what} (≥ {esc} escalate · ≥ {pause} AUTO-PAUSE)"
    return Concurrent(n, esc, pause, kind, names, text)


def _pause(data: DashboardData) -> PauseView:
    f = data.facts
    state = data.state
    roles = f.pause_approvers
    people = ", ".join(p.handle for p in f.people if set(p.roles) & set(roles)) or "—"
    last_lift = ""
    if f.lifts:
        at, decision, by = f.lifts[-1]
        last_lift = f"{decision} approved by {by} at {wall(at, zone=False)}"
    elif state.of_kind("resumed"):
        last_lift = state.of_kind("resumed")[-1].detail
    if not state.paused:
        return PauseView(False, approver_roles=roles, approvers=people, last_lift=last_lift)
    since = f.pauses[-1][0] if f.pauses else None
    who = role_words(roles)
    text = (f"AUTO-PAUSE — {state.pause_reason}. The run cannot advance until the {who} ({people}) approves: "
            "r resume · x roll back")
    return PauseView(True, state.pause_reason, since, roles, people, text, last_lift)


def _checkpoints(profile: Profile, data: DashboardData, now: datetime,
                 stopped_at_s: float | None = None) -> tuple[tuple[CheckpointRow, ...], str]:
    """One row per checkpoint. After an early stop (``stopped_at_s``: seconds into the window of
    its last tick) a checkpoint the window never reached is ``not_reached`` — never due, never
    evaluated on data nobody collected."""
    start = data.window_started_at
    evals = {c.label: c for c in data.checkpoint_evals}
    rows: list[CheckpointRow] = []
    current = checkpoint_offsets_s(profile)[0][0]
    next_marked = False
    for label, at_s in checkpoint_offsets_s(profile):
        due = start + timedelta(seconds=at_s) if start is not None else None
        stored = [c for c in data.facts.checkpoints if c.label == label]
        people = [c for c in stored if not c.recorded_by.startswith("engine")]
        engine_rows = [c for c in stored if c.recorded_by.startswith("engine")]
        ev = evals.get(label)
        ok: bool | None = None
        if people and people[-1].metrics_ok is not None:
            ok = people[-1].metrics_ok
        elif engine_rows:
            ok = engine_rows[-1].metrics_ok
        elif ev is not None:
            ok = ev.metrics_ok
        who = ", ".join(dict.fromkeys(
            ("engine" if c.recorded_by.startswith("engine") else c.recorded_by.split("@")[0]) for c in stored))
        if not who and ev is not None:
            who = "engine"
        notes = " · ".join(c.notes for c in [*engine_rows, *people] if c.notes)
        if not notes and ev is not None:
            notes = f"{ev.warnings} warning(s), {ev.alerts} alert(s), {ev.stale} stale, {ev.concurrent} concurrent"
        if due is not None and now >= due and (stopped_at_s is None or at_s <= stopped_at_s):
            current = label
        if stored or ev is not None:
            status = "recorded"
        elif stopped_at_s is not None and at_s > stopped_at_s:
            status = "not_reached"
            notes = f"not reached: the window stopped at {t_label(profile, stopped_at_s)}"
        elif due is not None and now >= due:
            status = "due"
        elif not next_marked:
            status, next_marked = "next", True
        else:
            status = "upcoming"
        due_in = max(0, int((due - now).total_seconds())) if status == "next" and due is not None else None
        rows.append(CheckpointRow(label, due, status, ok, who, notes, due_in))
    return tuple(rows), current


def _recent(points: Sequence[tuple[float, float | None, int | None]], since_s: float) -> list[float]:
    out: list[float] = []
    for t, v, _ in reversed(points):
        if t < since_s:
            break
        if v is not None:
            out.append(v)
    return out


def _checklist(profile: Profile, data: DashboardData, progress: WindowProgress) -> tuple[CheckItem, ...]:
    """The final matrix's criteria (runbook 5.1), live and cheap: what each would say now. The
    verdict itself uses the whole window (Hodges–Lehmann shifts with intervals) at T+75."""
    state = data.state
    f = data.facts
    items = [CheckItem("Index created", "met" if f.index_created else "pending" if f.alter_finished_at is None
                       else "not_met", "index created" if f.index_created else "index not created yet")]
    n_alerts = len(state.alerts)
    items.append(CheckItem("No alerts", "not_met" if n_alerts else "met", f"alerts {n_alerts} (none allowed)"))
    window = data.window
    points = window.ev.points if window else {}
    end_s = state.elapsed_s
    for key in PASS_CRITERIA:
        if key not in data.configured:
            continue
        rule = profile.rule(key)
        limit = rule.pass_below or 0.0
        if rule.latency:
            track = window.tracks.get(key) if window else None
            n = track.values if track else 0
            nb = len(data.baselines.get(key, ()))
            if key == "latency_p50":
                items.append(CheckItem("Latency samples", "met" if min(n, nb) >= profile.min_samples else "pending",
                                       f"samples {n}/{profile.min_samples} (baseline {nb})"))
            band = state.last_bands.get(key)
            name = f"{rule.label.replace(' change', '')} < +{limit:g}%"
            if band is None or band.measure is None:
                items.append(CheckItem(name, "pending", f"{name}: no value yet"))
            else:
                ok = band.measure < limit
                state_ = "met" if ok else ("pending" if (band.n or 0) < profile.min_samples else "not_met")
                items.append(CheckItem(name, state_, f"{SHORT_NAMES[key]} {band.measure:+.1f}% "
                                                     f"{'<' if ok else '≥'} +{limit:g}%"))
            continue
        recent = _recent(points.get(key, ()), end_s - profile.end_window_minutes * 60)
        unit = value_unit(rule)
        band = state.last_bands.get(key)
        if rule.pass_mode == "increase":
            name = f"{rule.label} increase < {fmt(limit, unit)}"
        else:
            name = f"{rule.label} < {fmt(limit, unit)}"
        if band is not None and band.stale:  # a source that is down is never OK (docs/metrics.md)
            items.append(CheckItem(name, "pending", f"{SHORT_NAMES.get(key, rule.label)}: stale, source down"))
            continue
        if not recent:
            items.append(CheckItem(name, "pending", f"{name}: no value in the last "
                                                    f"{profile.end_window_minutes:g} min"))
            continue
        value = statistics.median(recent)
        measure = value - (data.base_medians.get(key) or 0.0) if rule.pass_mode == "increase" else value
        ok = measure < limit
        shown = f"Δ {fmt(measure, unit)}" if rule.pass_mode == "increase" else fmt(measure, unit)
        items.append(CheckItem(name, "met" if ok else "not_met",
                               f"{SHORT_NAMES.get(key, rule.label)} {shown} {'<' if ok else '≥'} {fmt(limit, unit)}"))
    n = state.concurrent
    items.append(CheckItem("Concurrent warnings", "not_met" if state.paused or n >= profile.concurrent_autopause
                           else "pending" if n >= profile.concurrent_escalate else "met",
                           f"warnings {n}/{profile.concurrent_autopause}"))
    done = progress.elapsed_min >= progress.total_min and progress.phase != "waiting"
    items.append(CheckItem("Monitoring window", "met" if done else "not_met" if progress.phase == "stopped"
                           else "pending", f"window {progress.elapsed_min:.0f}/{progress.total_min:g} min"))
    return tuple(items)


def _event_line(profile: Profile, e: Any) -> str:
    return f"{t_label(profile, e.t_s)} {e.kind.replace('_', ' ')}: {e.detail}"


def _announcements(profile: Profile, data: DashboardData, tiles: Sequence[Tile],
                   facts: ReportFacts) -> tuple[AnnouncementText, ...]:
    """Runbook 7.4's templates (engine.views.announcements) with the metrics in their zone now: one critical
    alert listing every metric at or past its critical threshold, one warning listing those in
    their warning zone."""
    out: list[AnnouncementText] = []
    for level in ("critical", "warning"):
        hit = [t for t in tiles if t.level == level]
        if not hit:
            continue
        first, rest = hit[0], hit[1:]
        value = _announce_value(first)
        threshold = _announce_threshold(profile.rule(first.key), level)
        if level == "critical":
            rollback = any(profile.rule(t.key).stop_at_critical for t in hit)
            text = announce_critical(facts, first.name, value, threshold, "ROLLBACK" if rollback else "INVESTIGATE",
                                     issue=_observation(hit, "at or past its critical threshold"))
        else:
            prepare = any(profile.rule(t.key).severity in ("critical", "major") for t in hit)
            text = announce_warning(facts, first.name, value, threshold,
                                    "PREPARE ROLLBACK" if prepare else "CONTINUE MONITORING",
                                    observation=_observation(hit, "in its warning zone"))
        text = _more_metrics(text, first.name, [
            f"- {t.name}: {_announce_value(t)} (threshold: {_announce_threshold(profile.rule(t.key), level)})"
            for t in rest])
        names = ", ".join(t.name for t in hit)
        out.append(AnnouncementText(level, f"{level.upper()}: {names}", text))
    return tuple(out)


def _announce_value(tile: Tile) -> str:
    if tile.unit and tile.delta != "—" and tile.now != "—" and "%" in tile.delta and tile.key in VALUE_UNITS:
        return f"{tile.delta} ({tile.now} vs baseline {tile.baseline})"
    return tile.now


def _announce_threshold(rule: MetricRule, level: str) -> str:
    return rule.describe_threshold(level)


def _observation(hit: Sequence[Tile], words: str) -> str:
    if len(hit) == 1:
        return f"{hit[0].name} {words}"
    return f"{len(hit)} metrics {words.replace('its', 'their')}: " + ", ".join(t.name for t in hit)


def _more_metrics(text: str, first: str, extra: Sequence[str]) -> str:
    if not extra:
        return text
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith(f"- {first}:")), None)
    if at is None:
        return text
    return "\n".join(lines[:at + 1] + list(extra) + lines[at + 1:])
