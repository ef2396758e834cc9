"""The final decision matrix (docs/thresholds.md; runbook 5.5), as pure functions over plain data:
``final_matrix`` turns the monitoring window into PASS / PASS WITH WARNING / FAIL / INCONCLUSIVE,
each criterion with its value, threshold, rule, n and confidence interval. A latency criterion
comes from its judge (engine.domain.verdict); the others from the median of the window's end. A
source that is down is an error state: never OK, never a FAIL.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.domain.decision import WindowState, checkpoint_offsets_s, window_complete
from engine.domain.evidence import ShiftEstimate
from engine.domain.thresholds import MetricRule, Profile, num
from engine.domain.verdict import LatencyJudge, pct, settings_of

PASS, PASS_WITH_WARNING, FAIL, INCONCLUSIVE = "PASS", "PASS WITH WARNING", "FAIL", "INCONCLUSIVE"


@dataclass(frozen=True)
class Criterion:
    name: str
    met: bool | None  # None: not enough evidence (inconclusive) or the source was down
    value: str
    threshold: str
    rule: str
    n: int | None = None
    interval: str | None = None
    applicable: bool = True  # False: no source configured for it (shown, not counted)
    n_eff: float | None = None  # the effective n that correlation leaves (latency criteria)
    evidence: str | None = None  # one line: estimate, interval, n, effective n, control, method
    warning: str | None = None  # a met criterion's warning (an incident it was judged without)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    criteria: tuple[Criterion, ...]
    reasons: tuple[str, ...]
    next_step: str
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "reasons": list(self.reasons), "next_step": self.next_step,
            "warnings": list(self.warnings),
            "criteria": [c.__dict__ for c in self.criteria],
        }


@dataclass(frozen=True)
class Series:
    """One metric's samples in the window: (seconds into the window, value or None, n)."""

    points: Sequence[tuple[float, float | None, int | None]]
    baseline: Sequence[float] = ()  # per-interval values before the ALTER
    configured: bool = True
    judge: LatencyJudge | None = None  # the window's own judge (latency), when it ran live
    baseline_times: Sequence[float] | None = None  # seconds relative to the window's start
    control: Sequence[tuple[float, float | None, int | None]] = ()  # the control's points, same moments
    control_baseline: Sequence[float] = ()

    def values(self) -> list[float]:
        return [v for _, v, _ in self.points if v is not None]

    def end_values(self, end_s: float, last_s: float) -> list[float]:
        return [v for t, v, _ in self.points if v is not None and t >= end_s - last_s]

    @property
    def statements(self) -> int:
        return sum(n or 0 for _, v, n in self.points if v is not None)


PASS_CRITERIA = ("latency_p50", "latency_p99", "replication_lag", "error_rate", "lock_wait")


def familywise(profile: Profile) -> float:
    """The confidence each latency criterion is tested at so that all of them together keep the
    profile's confidence (Bonferroni): with two latency criteria at 98 %, each at 99 %."""
    k = max(1, sum(1 for r in profile.rules if r.latency and r.pass_below is not None))
    return 1 - (1 - profile.confidence) / k


def looks_s(profile: Profile) -> tuple[float, ...]:
    """The sequential looks, in seconds into the window: every checkpoint after the window's
    opening (T+30, T+45, T+60, T+75 in the runbook's labels: 15, 30, 45 and 60 minutes in)."""
    return tuple(at for _, at in checkpoint_offsets_s(profile) if at > 0) or (profile.window_minutes * 60,)


def _regular_times(n: int, interval: float = 5.0) -> list[float]:
    return [-(n - i) * interval for i in range(n)]


def latency_judge(profile: Profile, rule: MetricRule, baseline: Sequence[Any],
                  baseline_times: Sequence[float] | None = None, control_baseline: Sequence[Any] = (),
                  control_times: Sequence[float] | None = None,
                  history: Sequence[tuple[float, Any]] = ()) -> LatencyJudge:
    """The judge of one latency metric over one window (engine.domain.verdict; docs/verdict.md). Without
    times, the baseline's values are taken as consecutive 5-s intervals ending at the window."""
    times = list(baseline_times) if baseline_times is not None and len(baseline_times) == len(baseline) \
        else _regular_times(len(baseline))
    ctl = None
    if control_baseline:
        ctimes = list(control_times) if control_times is not None and len(control_times) == len(control_baseline) \
            else _regular_times(len(control_baseline))
        ctl = list(zip(ctimes, control_baseline, strict=True))
    return LatencyJudge(settings_of(profile, rule, looks_s(profile)), list(zip(times, baseline, strict=True)), ctl,
                        profile.confidence, list(history))


def latency_criterion(rule: MetricRule, series: Series | None, profile: Profile) -> tuple[Criterion, ShiftEstimate | None]:
    """A latency criterion from its judge: the window's own (live), or one that replays the
    series' points. FAIL only from a confirmed harm limit or the sequential boundary; a shift
    that cannot be told from the pass line, a degenerate baseline or a later level change is
    INCONCLUSIVE with its reason."""
    threshold = f"< +{rule.pass_below:g}%"
    if series is None or not series.configured:
        return Criterion(rule.label, None, "no source", threshold, "not measured", applicable=False), None
    judge = series.judge
    if judge is None:
        judge = latency_judge(profile, rule, list(series.baseline), series.baseline_times, series.control_baseline)
        ctl = {t: v for t, v, _ in series.control}
        for t, v, _ in series.points:
            judge.add(t, v, ctl.get(t))
    f = judge.finish()
    conf = f"{profile.confidence:.0%}"
    interval = None
    if f["low"] is not None and f["high"] is not None:
        interval = f"{conf} CI {pct(f['low'])}…{pct(f['high'])}"
    value = "—" if f["estimate"] is None else pct(f["estimate"])
    control = ("no control" if not judge.control else
               f"control {pct(f['control_pct'])}" if f["control_pct"] is not None else "control: no value")
    n_eff = f["n_eff"]
    evidence = (f"{value}" + (f", {interval}" if interval else "") + f", n={f['n']}"
                + (f" (effective {n_eff:g})" if n_eff is not None else "") + f", {control}; {f['method']}")
    met = f["met"]
    rule_text = f["reason"] + ("" if met is not None else ": INCONCLUSIVE, never an automatic rollback")
    return Criterion(rule.label, met, value, threshold, rule_text, f["n"], interval, n_eff=n_eff,
                     evidence=evidence, warning=f.get("warning")), None


def end_criterion(rule: MetricRule, series: Series | None, profile: Profile, end_s: float) -> Criterion:
    threshold = (f"increase < {rule.pass_below:g}{rule.unit}" if rule.pass_mode == "increase"
                 else f"< {rule.pass_below:g}{rule.unit}")
    if series is None or not series.configured:
        return Criterion(rule.label, None, "no source", threshold, "not measured", applicable=False)
    last = series.end_values(end_s, profile.end_window_minutes * 60)
    if not last:
        return Criterion(rule.label, None, "stale", threshold,
                         f"no sample in the last {profile.end_window_minutes:g} minutes (source down): INCONCLUSIVE", 0)
    value = statistics.median(last)
    if rule.pass_mode == "increase":
        base = statistics.median(series.baseline) if series.baseline else 0.0
        measure = value - base
        shown = f"{num(value)}{rule.unit} ({'+' if measure >= 0 else ''}{num(measure)} vs baseline {num(base)})"
    else:
        measure, shown = value, f"{num(value)}{rule.unit}"
    met = measure < (rule.pass_below or 0)
    return Criterion(rule.label, met, shown, threshold,
                     f"median of the last {profile.end_window_minutes:g} minutes {'<' if met else '≥'} "
                     f"{rule.pass_below:g}{rule.unit}", len(last))


def final_matrix(profile: Profile, state: WindowState, series: Mapping[str, Series], index_created: bool,
                 kill_switch_activated: bool = False, covered_s: float | None = None) -> Verdict:
    """The runbook's final matrix. ``covered_s``: a replayed file's window, as far as its samples
    cover it (its last sample plus one sampling interval); None for a live window, which the
    monitor runs to its end. A file that simply ends before the window does is not a window cut
    short: nothing was stopped, the file holds less — INCONCLUSIVE, not a FAIL."""
    complete = window_complete(profile, state.elapsed_s if covered_s is None else covered_s)
    window = Criterion("Monitoring window completed", complete, f"{state.elapsed_s / 60:.1f} min",
                       f"{profile.window_minutes:g} min", "runbook 5.4: the window cannot be shortened")
    if covered_s is not None:
        window = replace(window, value=f"{covered_s / 60:.1f} min")
        if not complete and not state.stop_reason:
            window = replace(window, met=None, rule=(
                f"the file's samples end {covered_s / 60:.1f} min into the window: a file shorter than the "
                "window cannot show the whole of it (replay a file that covers the hour)"))
    criteria = [
        Criterion("Index created successfully", index_created, "yes" if index_created else "no", "yes",
                  "the index exists and this run created it"),
        Criterion("No alerts fired during monitoring", not state.alerts, f"{len(state.alerts)} alert(s)", "0",
                  "; ".join(e.detail for e in state.alerts) or "no metric reached its critical threshold"),
    ]
    for key in PASS_CRITERIA:
        rule = profile.rule(key)
        if rule.latency:
            criteria.append(latency_criterion(rule, series.get(key), profile)[0])
        else:
            criteria.append(end_criterion(rule, series.get(key), profile, state.elapsed_s))
    criteria.append(window)
    counted = [c for c in criteria if c.applicable]
    reasons = [f"{c.name}: {c.value} (needs {c.threshold}) — {c.rule}" for c in counted if c.met is False]
    reasons += [e.detail for e in state.escalations]
    if kill_switch_activated:
        reasons.insert(0, "kill switch activated")
    if state.stop_reason and state.stop_reason not in " ".join(reasons):
        reasons.append(f"failure condition: {state.stop_reason}")
    reasons += [f"during the AUTO-PAUSE, {e.detail}" for e in state.of_kind("resumed") if e.detail.startswith("rollback")]
    warnings = tuple(e.detail for e in state.warnings) + tuple(f"{c.name}: {c.warning}" for c in counted if c.warning)
    if reasons:
        return Verdict(FAIL, tuple(criteria), tuple(reasons),
                       "execute the rollback decision flow (runbook 6), pre-filled with these metrics", warnings)
    unknown = [f"{c.name}: {c.rule}" for c in counted if c.met is None]
    if state.paused:
        unknown.append(f"AUTO-PAUSE not lifted: {state.pause_reason}")
    if unknown:
        return Verdict(INCONCLUSIVE, tuple(criteria), tuple(unknown),
                       "the team decides keep or remove, and records it; no automatic rollback", warnings)
    if warnings:
        return Verdict(PASS_WITH_WARNING, tuple(criteria), (), "document the warnings and plan a follow-up", warnings)
    return Verdict(PASS, tuple(criteria), (), "document and close (15-minute post-success observation first)")
