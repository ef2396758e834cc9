"""The monitoring window's rules (docs/thresholds.md; runbook 5–6, "Decision Rules"), as pure
functions over plain data.

``step`` advances the window by one sampling tick: warning zones (logged, observed 2× longer,
escalated to FAIL if still in the zone when the extension ends), concurrent warnings (3–4:
escalate to the tech lead; ≥ 5: AUTO-PAUSE until an approval), alerts (any critical), the failure
conditions that stop the run now, and severity routing; ``resume`` lifts an AUTO-PAUSE; the
checkpoints T+15…T+75 are evaluated from the window's state. A source that is down is an error
state: never OK, never a FAIL.

The final decision matrix is in engine/domain/decision_matrix.py; the evaluator that runs the
window one tick at a time (or replays it) in engine/domain/decision_evaluator.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from engine.domain.thresholds import Band, MetricRule, Profile


@dataclass(frozen=True)
class Episode:
    """A metric in its warning zone: when it entered, and when its 2× observation ends."""

    metric: str
    since_s: float
    extension_ends_s: float
    worst_measure: float


@dataclass(frozen=True)
class Event:
    t_s: float
    kind: str  # warning | alert | escalated | concurrent_escalate | auto_pause | resumed | stop | stale | route
    metric: str | None
    detail: str
    route: str | None = None  # severity routing: immediate_manual_rollback | rollback_decision |
    #                           inconclusive_team_decision | continue_reevaluate_15m


@dataclass(frozen=True)
class WindowState:
    elapsed_s: float = 0.0
    episodes: Mapping[str, Episode] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    concurrent: int = 0
    max_concurrent: int = 0
    paused: bool = False
    pause_reason: str = ""
    stop_reason: str | None = None  # a failure condition fired: stop now
    last_bands: Mapping[str, Band] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    @property
    def alerts(self) -> list[Event]:
        return self.of_kind("alert")

    @property
    def warnings(self) -> list[Event]:
        return self.of_kind("warning")

    @property
    def escalations(self) -> list[Event]:
        return self.of_kind("escalated")

    @property
    def can_advance(self) -> bool:
        """AUTO-PAUSE blocks progress until an explicit approval to resume or to roll back."""
        return not self.paused


def route_for(rule: MetricRule, band: Band, min_samples: int) -> str:
    """Runbook 6.1: which way an issue on this metric goes."""
    if rule.severity == "critical":
        return "immediate_manual_rollback"
    if rule.severity == "major":
        if rule.latency and (band.n is None or band.n < min_samples):
            return "inconclusive_team_decision"
        return "rollback_decision"
    return "continue_reevaluate_15m"


def step(profile: Profile, state: WindowState, t_s: float, bands: Mapping[str, Band],
         confirm: Callable[[str, float], bool] | None = None) -> WindowState:
    """One sampling tick at ``t_s`` seconds into the window. Pure: returns the new state.

    ``confirm(metric, since_s)`` is asked before a warning zone escalates to FAIL at the end of its
    extension; it says whether the data since then really show the shift (for latencies: a 98 %
    interval that excludes no change). Without it, every escalation stands."""
    events: list[Event] = []
    episodes = dict(state.episodes)
    stop = state.stop_reason
    extension_s = profile.warning_observation_minutes * 60 * profile.extension_factor
    for key, band in bands.items():
        rule = profile.rule(key)
        prev = state.last_bands.get(key)
        if band.stale:
            if prev is None or not prev.stale:
                events.append(Event(t_s, "stale", key, f"{rule.label}: {band.error}"))
            continue  # an outage is not a measurement: no warning, no alert, no FAIL
        if rule.latency and (band.n or 0) < profile.min_samples:
            continue  # too few intervals yet to say anything about a shift (docs/runbook.md#4-execution: < 10 samples)
        if band.level == "critical":
            if prev is None or prev.level != "critical":
                events.append(Event(t_s, "alert", key, band.rule, route_for(rule, band, profile.min_samples)))
            # A failure condition (runbook 5.3) stops the run — but latency on too few samples is
            # not evidence enough: it goes to the team instead (docs/runbook.md#4-execution, runbook 6.1).
            if rule.stop_at_critical and stop is None and route_for(rule, band, profile.min_samples) != \
                    "inconclusive_team_decision":
                stop = band.rule
                events.append(Event(t_s, "stop", key, band.rule, route_for(rule, band, profile.min_samples)))
        if band.level in ("warning", "critical"):
            ep = episodes.get(key)
            if ep is None:
                episodes[key] = Episode(key, t_s, t_s + extension_s, band.measure or 0.0)
                if band.level == "warning":
                    events.append(Event(t_s, "warning", key, band.rule, route_for(rule, band, profile.min_samples)))
            else:
                worst = ep.worst_measure
                if band.measure is not None:
                    worst = min(worst, band.measure) if rule.lower_is_worse else max(worst, band.measure)
                episodes[key] = replace(ep, worst_measure=worst)
                if t_s >= ep.extension_ends_s and not any(
                        e.kind == "escalated" and e.metric == key for e in state.events):
                    if confirm is not None and not confirm(key, ep.since_s):
                        # Noise, not a shift: observe another extension instead of failing.
                        episodes[key] = replace(ep, since_s=t_s, extension_ends_s=t_s + extension_s)
                        events.append(Event(t_s, "extension_unconfirmed", key,
                                            f"{rule.label}: in the warning zone for {extension_s / 60:.0f} min "
                                            "but not distinguishable from noise; observing again"))
                        continue
                    events.append(Event(t_s, "escalated", key,
                                        f"{rule.label} still in its warning zone after the {extension_s / 60:.0f}-minute "
                                        f"extended observation (since T+{ep.since_s / 60:.1f} min): FAIL",
                                        route_for(rule, band, profile.min_samples)))
        else:
            episodes.pop(key, None)
    # Every metric's latest band, not only this tick's: a metric read less often than every tick
    # (the latency percentiles) still counts between its reads.
    last_bands = {**state.last_bands, **bands}
    concurrent = sum(1 for b in last_bands.values() if b.level in ("warning", "critical"))
    paused, pause_reason = state.paused, state.pause_reason
    if concurrent >= profile.concurrent_autopause and not paused:
        paused = True
        pause_reason = (f"{concurrent} concurrent warnings (≥ {profile.concurrent_autopause}): AUTO-PAUSE until "
                        "the tech lead approves a resume or a rollback")
        events.append(Event(t_s, "auto_pause", None, pause_reason))
    elif profile.concurrent_escalate <= concurrent < profile.concurrent_autopause and \
            state.concurrent < profile.concurrent_escalate:
        events.append(Event(t_s, "concurrent_escalate", None,
                            f"{concurrent} concurrent warnings: escalate to the tech lead, consider a pause"))
    return WindowState(
        elapsed_s=t_s, episodes=episodes, events=state.events + tuple(events), concurrent=concurrent,
        max_concurrent=max(state.max_concurrent, concurrent), paused=paused, pause_reason=pause_reason,
        stop_reason=stop, last_bands=last_bands,
    )


def resume(state: WindowState, approver: str, decision: str) -> WindowState:
    """An explicit approval lifts an AUTO-PAUSE: ``resume`` or ``rollback``."""
    if decision not in ("resume", "rollback"):
        raise ValueError("an AUTO-PAUSE is lifted by 'resume' or 'rollback'")
    return replace(state, paused=False, pause_reason="",
                   events=state.events + (Event(state.elapsed_s, "resumed", None, f"{decision} approved by {approver}"),))


# --- checkpoints and observation periods ---------------------------------------------------------


@dataclass(frozen=True)
class CheckpointEvaluation:
    label: str  # T+15 …
    at_s: float  # seconds into the window
    metrics_ok: bool
    warnings: int
    alerts: int
    stale: int
    concurrent: int


def checkpoint_offsets_s(profile: Profile) -> list[tuple[str, float]]:
    """Checkpoints T+15…T+75 as offsets from the window's start (the window opens at T+15)."""
    first = profile.checkpoints[0]
    return [(f"T+{m}", (m - first) * 60.0) for m in profile.checkpoints]


def evaluate_checkpoint(label: str, at_s: float, state: WindowState, since_s: float) -> CheckpointEvaluation:
    recent = [e for e in state.events if since_s <= e.t_s <= at_s]
    warnings = sum(1 for e in recent if e.kind in ("warning", "escalated"))
    alerts = sum(1 for e in recent if e.kind == "alert")
    stale = sum(1 for b in state.last_bands.values() if b.stale)
    ok = not alerts and not state.episodes and state.stop_reason is None and not state.paused
    return CheckpointEvaluation(label, at_s, ok, warnings, alerts, stale, state.concurrent)


def window_complete(profile: Profile, elapsed_s: float) -> bool:
    return elapsed_s >= profile.window_minutes * 60
