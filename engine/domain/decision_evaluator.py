"""The monitoring window evaluated one tick at a time (the live dashboard) or all at once (replay):
``WindowEvaluator`` turns each tick's samples into bands (a latency through its judge,
engine.domain.verdict), advances the window's rules (engine/domain/decision.py), evaluates the
checkpoints as they fall due and, at the end, the final matrix (engine/domain/decision_matrix.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from engine.domain.availability import judge as target_availability
from engine.domain.decision import (
    CheckpointEvaluation,
    Event,
    WindowState,
    checkpoint_offsets_s,
    evaluate_checkpoint,
    resume,
    step,
)
from engine.domain.decision_matrix import Series, Verdict, familywise, final_matrix, latency_judge
from engine.domain.decision_series import Points, RollingMedian
from engine.domain.evidence import hodges_lehmann
from engine.domain.thresholds import Band, MetricRule, Profile, evaluate_band
from engine.domain.verdict import LatencyJudge

CONTROL = "control:"  # a control's metric in a tick or a baseline: "control:latency_p50"
HISTORY = "history:"  # the same hours of a previous day, from Prometheus: "history:latency_p50"


class WindowEvaluator:
    """The window, evaluated one tick at a time (the live dashboard) or all at once (replay).

    ``add(t_s, sample)``: seconds into the window and ``{metric: (value, error, n)}``.
    ``baselines``: per-interval values of each metric before the ALTER."""

    def __init__(self, profile: Profile, baselines: Mapping[str, Sequence[float]], configured: Iterable[str],
                 baseline_times: Mapping[str, Sequence[float]] | None = None):
        self.profile = profile
        self.baseline_times = {k: list(v) for k, v in (baseline_times or {}).items()}
        raw = {k: list(vs) for k, vs in baselines.items()}
        self.baselines = {k: [v for v in vs if v is not None] for k, vs in baselines.items()}
        self.configured = set(configured) & set(profile.keys)
        self.state = WindowState()
        self.points: dict[str, Points] = {k: Points() for k in self.configured}
        self.checkpoints: list[CheckpointEvaluation] = []
        self._pending = checkpoint_offsets_s(profile)
        self._last_cp = 0.0
        self._rules = {r.key: r for r in profile.rules}
        self._base_median: dict[str, float | None] = {}  # the baselines are fixed: their medians once
        self._rolling: dict[str, RollingMedian] = {}  # latencies: their last rolling_minutes, sorted
        self._unordered: set[str] = set()  # latencies whose points came out of time order
        # Latencies: judged on the log scale with their noise (engine.domain.verdict, docs/verdict.md); a
        # control (``control:<metric>``, the same moments on untouched tenants) where one is measured.
        self.judges: dict[str, LatencyJudge] = {}
        for key in self.configured:
            rule = self._rules[key]
            if rule.latency:
                vals = [v for v in raw.get(key, []) if v is not None]
                times = self.baseline_times.get(key)
                if times is not None and len(times) == len(raw.get(key, [])):
                    times = [t for t, v in zip(times, raw[key], strict=True) if v is not None]
                cvals = [v for v in raw.get(CONTROL + key, []) if v is not None]
                ctimes = self.baseline_times.get(CONTROL + key)
                if ctimes is not None and len(ctimes) == len(raw.get(CONTROL + key, [])):
                    ctimes = [t for t, v in zip(ctimes, raw[CONTROL + key], strict=True) if v is not None]
                hvals, htimes = raw.get(HISTORY + key, []), self.baseline_times.get(HISTORY + key, [])
                history = [(t, v) for t, v in zip(htimes, hvals, strict=False) if v is not None] \
                    if len(htimes) == len(hvals) else []
                self.judges[key] = latency_judge(profile, rule, vals, times, cvals, ctimes, history)
        self.control_points: dict[str, Points] = {k: Points() for k in self.judges if self.judges[k].control}

    def _due_checkpoints(self, t_s: float, inclusive: bool) -> None:
        while self._pending and (self._pending[0][1] < t_s or (inclusive and self._pending[0][1] <= t_s)):
            label, at = self._pending.pop(0)
            self.checkpoints.append(evaluate_checkpoint(label, at, self.state, self._last_cp))
            self._last_cp = at

    def add(self, t_s: float, sample: Mapping[str, tuple[float | None, str | None, int | None]]) -> WindowState:
        self._due_checkpoints(t_s, inclusive=False)
        bands: dict[str, Band] = {}
        news: list[Event] = []
        stop: tuple[str, str] | None = None
        for key, (value, error, n) in sample.items():
            if key not in self.configured:
                continue
            rule = self._rules[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                value, error = None, f"not a number: {str(value)[:40]!r}"
            self.points[key].append((t_s, value, n))
            judge = self.judges.get(key)
            if judge is not None:
                ctl = sample.get(CONTROL + key, (None, None, None))[0] if judge.control else None
                if judge.control:
                    self.control_points[key].append((t_s, ctl if isinstance(ctl, float) else None, None))
                tick = judge.add(t_s, value, ctl)
                if value is None or tick is None:
                    bands[key] = evaluate_band(rule, None, None, error or judge.degenerate or "no usable value", 0)
                    continue
                bands[key] = self._judged_band(key, rule, value, tick, judge)
                if tick.incident:
                    news.append(Event(t_s, "incident", key, f"{rule.label}: {tick.incident}"))
                if tick.stop and stop is None:
                    stop = (key, f"{rule.label}: {tick.stop}")
            elif rule.latency and value is not None:
                bands[key] = self._latency_band(key, rule, t_s, value)
            else:
                base = self._baseline_median(key) if rule.mode == "change_pct" else None
                bands[key] = evaluate_band(rule, value, base, error, n)
        state = step(self.profile, self.state, t_s, bands, self._confirm)
        if news or (stop and state.stop_reason is None):
            events = list(news)
            reason = state.stop_reason
            if stop and reason is None:
                reason = stop[1]
                events.append(Event(t_s, "stop", stop[0], stop[1], "rollback_decision"))
            state = replace(state, events=state.events + tuple(events), stop_reason=reason)
        self.state = state
        self.state = target_availability(self, t_s, sample)  # runbook 5.3 #8: engine/domain/availability.py
        return self.state

    def _judged_band(self, key: str, rule: MetricRule, value: float, tick: Any, judge: LatencyJudge) -> Band:
        """A latency's band: its level from a lower bound (engine.domain.verdict) — critical only once
        confirmed, warning when the window so far is probably past the warning line — its measure
        the last few minutes' shift (against the control where there is one)."""
        base = self._baseline_median(key)
        est = tick.estimate_pct
        roll = f"{self.profile.rolling_minutes:g} min"
        what = f"{rule.label} {'—' if est is None else f'{est:+.1f}%'} over the last {roll}"
        if judge.control:
            what += " (relative to the control)"
        if tick.level == "critical":
            threshold = rule.describe_threshold("critical")
            text = (f"{what}, lower bound {tick.low_pct:+.1f}% past {threshold} for the "
                    f"{self.profile.confirmation_minutes:g}-min confirmation period: critical")
        elif tick.level == "warning":
            threshold = rule.describe_threshold("warning")
            text = (f"{what}; the window so far is probably past {threshold} (one-sided "
                    f"{self.profile.warning_confidence:.1%} lower bound {tick.warn_low_pct:+.1f}%): warning")
        elif judge.degenerate:
            threshold = rule.describe_threshold("warning")
            text = f"{what}; not judged: {judge.degenerate}"
        else:
            threshold = rule.describe_threshold("warning")
            text = f"{what}; not shown past {threshold} by a lower bound"
            if tick.pending:
                text += f" (past critical, confirming for {self.profile.confirmation_minutes:g} min)"
        return Band(key, tick.level, est, value, base, threshold, text, None, int(tick.n_eff))

    def _baseline_median(self, key: str) -> float | None:
        if key not in self._base_median:
            self._base_median[key] = _median_or_none(self.baselines.get(key, ()))
        return self._base_median[key]

    def _latency_band(self, key: str, rule: MetricRule, t_s: float, value: float) -> Band:
        """``rolling_latency_band`` over this metric's points, in O(rolling window) a tick: the
        values of the last ``rolling_minutes`` kept sorted as they come (a full window at 1 s is
        3,600 points a metric; filtering and sorting them all every tick made a late joiner's catch-up
        quadratic). Points out of time order (never from a clock; possible from hand-fed data) fall
        back to the definition itself."""
        roll = self._rolling.get(key)
        if roll is None:
            roll = self._rolling[key] = RollingMedian()
        if key in self._unordered or not roll.add(t_s, value):
            self._unordered.add(key)
            return rolling_latency_band(self.profile, rule, self.baselines.get(key, ()), self.points[key], t_s)
        roll.trim(t_s - self.profile.rolling_minutes * 60)
        base = self._baseline_median(key)
        if not roll.n or base is None:
            return evaluate_band(rule, None, None, "no baseline or no recent interval", roll.n)
        return _rolling_band(self.profile, rule, base, roll.median(), roll.n, roll.last)

    def _confirm(self, key: str, since_s: float) -> bool:
        rule = self.profile.rule(key)
        if not rule.latency:
            return True
        judge = self.judges.get(key)
        if judge is not None:
            # A latency fails only by a confirmed harm limit or the sequential boundary, never by
            # a warning zone's duration (a duration on noise is not evidence).
            return judge.tracker is not None and int(judge.tracker.stop_kind[0]) > 0
        recent = [v for t, v, _ in self.points.get(key, []) if v is not None and t >= since_s]
        est = hodges_lehmann(self.baselines.get(key, ()), recent, familywise(self.profile))
        return est is not None and est.low > 1.0 and est.change_pct >= rule.warning

    def approve(self, approver: str, decision: str) -> None:
        self.state = resume(self.state, approver, decision)

    def finish(self, index_created: bool, kill_switch_activated: bool = False,
               covered_s: float | None = None) -> Verdict:
        """The final matrix (``covered_s``: a replayed file's coverage of the window, ``final_matrix``)."""
        self._due_checkpoints(self.state.elapsed_s, inclusive=True)
        series = {k: Series(self.points.get(k, []), self.baselines.get(k, ()), k in self.configured,
                            self.judges.get(k)) for k in self.profile.keys}
        return final_matrix(self.profile, self.state, series, index_created, kill_switch_activated, covered_s)


def evaluate_window(profile: Profile, ticks: Iterable[tuple[float, Mapping[str, tuple[float | None, str | None, int | None]]]],
                    baselines: Mapping[str, Sequence[float]], configured: Iterable[str], index_created: bool,
                    kill_switch_activated: bool = False) -> tuple[WindowState, list[CheckpointEvaluation], Verdict]:
    """Run the whole window at once. ``ticks``: (seconds into the window, {metric: (value, error,
    n)}), in time order."""
    ev = WindowEvaluator(profile, baselines, configured)
    for t_s, sample in ticks:
        ev.add(t_s, sample)
    verdict = ev.finish(index_created, kill_switch_activated)
    return ev.state, ev.checkpoints, verdict


def rolling_latency_band(profile: Profile, rule: MetricRule, baseline: Sequence[float],
                         points: Sequence[tuple[float, float | None, int | None]], t_s: float) -> Band:
    """A latency's band is the shift of the median of its last few minutes of per-interval values
    against the baseline's median — not one interval's value, which is noise: judged one by one, a
    window with no change at all would cross +50 % somewhere in an hour. (The final matrix uses the
    Hodges–Lehmann shift with its confidence interval over the whole window.)

    This is the definition; ``WindowEvaluator`` computes the same band incrementally
    (``RollingMedian``)."""
    recent = [v for t, v, _ in points if v is not None and t > t_s - profile.rolling_minutes * 60]
    usable = [v for v in baseline if v is not None]
    if not recent or not usable:
        return evaluate_band(rule, None, None, "no baseline or no recent interval", len(recent))
    return _rolling_band(profile, rule, statistics.median(usable), statistics.median(recent), len(recent), recent[-1])


def _rolling_band(profile: Profile, rule: MetricRule, base: float, median: float, n: int, last: float) -> Band:
    band = evaluate_band(rule, median, base, None, n)
    return replace(band, value=last, rule=f"{band.rule} (median of the last {profile.rolling_minutes:g} min, n={n})")


def _median_or_none(values: Sequence[float | None]) -> float | None:
    usable = [v for v in values if v is not None]
    return statistics.median(usable) if usable else None
