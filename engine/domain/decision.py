"""The monitoring window's rules and the final decision matrix (docs/thresholds.md; runbook 5–6, "Decision
Rules"), as pure functions over plain data.

``step`` advances the window by one sampling tick: warning zones (logged, observed 2× longer,
escalated to FAIL if still in the zone when the extension ends), concurrent warnings (3–4:
escalate to the tech lead; ≥ 5: AUTO-PAUSE until an approval), alerts (any critical), the failure
conditions that stop the run now, and severity routing. ``final_matrix`` turns the window into
PASS / PASS WITH WARNING / FAIL / INCONCLUSIVE, each criterion with its value, threshold, rule,
n and confidence interval. A source that is down is an error state: never OK, never a FAIL.
"""

from __future__ import annotations

import bisect
import math
import statistics
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.domain.availability import judge as target_availability
from engine.domain.evidence import ShiftEstimate, hodges_lehmann
from engine.domain.thresholds import Band, MetricRule, Profile, evaluate_band, num
from engine.domain.verdict import LatencyJudge, pct, settings_of

CONTROL = "control:"  # a control's metric in a tick or a baseline: "control:latency_p50"
HISTORY = "history:"  # the same hours of a previous day, from Prometheus: "history:latency_p50"

PASS, PASS_WITH_WARNING, FAIL, INCONCLUSIVE = "PASS", "PASS WITH WARNING", "FAIL", "INCONCLUSIVE"


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


# --- the final decision matrix (runbook 5.5) ---------------------------------------------------


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
                     evidence=evidence), None


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
                 kill_switch_activated: bool = False) -> Verdict:
    complete = window_complete(profile, state.elapsed_s)
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
    criteria.append(Criterion("Monitoring window completed", complete, f"{state.elapsed_s / 60:.1f} min",
                              f"{profile.window_minutes:g} min", "runbook 5.4: the window cannot be shortened"))
    counted = [c for c in criteria if c.applicable]
    reasons = [f"{c.name}: {c.value} (needs {c.threshold}) — {c.rule}" for c in counted if c.met is False]
    reasons += [e.detail for e in state.escalations]
    if kill_switch_activated:
        reasons.insert(0, "kill switch activated")
    if state.stop_reason and state.stop_reason not in " ".join(reasons):
        reasons.append(f"failure condition: {state.stop_reason}")
    reasons += [f"during the AUTO-PAUSE, {e.detail}" for e in state.of_kind("resumed") if e.detail.startswith("rollback")]
    warnings = tuple(e.detail for e in state.warnings)
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


# --- the whole window, from stored samples (the dashboard's evaluator and replay) -------------


Point = tuple[float, float | None, int | None]  # seconds into the window, value (None: stale), n
_I64 = (-(2 ** 63), 2 ** 63 - 1)


class Points(Sequence[Point]):
    """One metric's points in the window, read as the ``(t, value, n)`` tuples they were given but
    kept in typed arrays: 25 bytes a point instead of about 120 as tuples of boxed floats (a full
    window at 1 s is 57,600 points), in one growing buffer a column rather than small objects
    scattered among short-lived ones — which kept a console's memory growing through the window.
    Exact: a point that is not ``(float, float | None, int | None)`` turns the series into a plain
    list of the tuples as given."""

    __slots__ = ("_t", "_v", "_n", "_none", "_list")

    def __init__(self, points: Iterable[Point] = ()):
        self._t, self._v, self._n = array("d"), array("d"), array("q")
        self._none = bytearray()  # bit 1: the value is None; bit 2: n is None
        self._list: list[Point] | None = None
        for p in points:
            self.append(p)

    def append(self, point: Point) -> None:
        if self._list is None:
            if type(point) is tuple and len(point) == 3:
                t, v, n = point
                if type(t) is float and (v is None or type(v) is float) and (
                        n is None or (type(n) is int and _I64[0] <= n <= _I64[1])):
                    self._t.append(t)
                    self._v.append(0.0 if v is None else v)
                    self._n.append(0 if n is None else n)
                    self._none.append((v is None) | (n is None) << 1)
                    return
            self._list = list(self)
        self._list.append(point)

    def _at(self, i: int) -> Point:
        f = self._none[i]
        return self._t[i], None if f & 1 else self._v[i], None if f & 2 else self._n[i]

    def __len__(self) -> int:
        return len(self._list) if self._list is not None else len(self._t)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if self._list is not None:
            return self._list[i]
        if isinstance(i, slice):
            return [self._at(k) for k in range(*i.indices(len(self._t)))]
        if i < 0:
            i += len(self._t)
        if not 0 <= i < len(self._t):
            raise IndexError("point index out of range")
        return self._at(i)

    def __iter__(self) -> Iterator[Point]:
        if self._list is not None:
            yield from self._list
            return
        for t, v, n, f in zip(self._t, self._v, self._n, self._none, strict=True):
            yield t, None if f & 1 else v, None if f & 2 else n

    def __reversed__(self) -> Iterator[Point]:
        if self._list is not None:
            yield from reversed(self._list)
            return
        for i in range(len(self._t) - 1, -1, -1):
            yield self._at(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=False))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Points({list(self)!r})"


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

    def finish(self, index_created: bool, kill_switch_activated: bool = False) -> Verdict:
        self._due_checkpoints(self.state.elapsed_s, inclusive=True)
        series = {k: Series(self.points.get(k, []), self.baselines.get(k, ()), k in self.configured,
                            self.judges.get(k)) for k in self.profile.keys}
        return final_matrix(self.profile, self.state, series, index_created, kill_switch_activated)


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


class RollingMedian:
    """The values of one series over a trailing time span, in arrival order and sorted, so that
    each tick adds one value, drops the ones that left the span and reads the median: O(span), not
    O(series). ``median`` is exactly ``statistics.median`` of the values in arrival order: the sorted
    list holds (value, arrival) pairs, the order a stable sort gives; a NaN (which has no order)
    makes it sort the values as that function does, for as long as the NaN is in the span."""

    __slots__ = ("arrived", "ordered", "seq", "nans", "last_t")

    def __init__(self) -> None:
        self.arrived: deque[tuple[float, float, int]] = deque()  # (t, value, arrival)
        self.ordered: list[tuple[float, int]] = []  # (value, arrival), NaNs left out
        self.seq = 0
        self.nans = 0
        self.last_t: float | None = None

    @property
    def n(self) -> int:
        return len(self.arrived)

    @property
    def last(self) -> float:
        return self.arrived[-1][1]

    def add(self, t: float, value: float) -> bool:
        """False (and nothing added) when ``t`` is before the last value's time: the span can then
        no longer be cut at its start."""
        if self.last_t is not None and not t >= self.last_t:
            return False
        self.last_t = t
        self.seq += 1
        self.arrived.append((t, value, self.seq))
        if _is_nan(value):
            self.nans += 1
        else:
            bisect.insort(self.ordered, (value, self.seq))
        return True

    def trim(self, after: float) -> None:
        """Keep only the values whose time is after ``after``."""
        arrived = self.arrived
        while arrived and not arrived[0][0] > after:
            _, value, seq = arrived.popleft()
            if _is_nan(value):
                self.nans -= 1
            else:
                del self.ordered[bisect.bisect_left(self.ordered, (value, seq))]

    def median(self) -> float:
        if self.nans:
            return statistics.median([v for _, v, _ in self.arrived])
        data, n = self.ordered, len(self.ordered)
        if n % 2 == 1:
            return data[n // 2][0]
        return (data[n // 2 - 1][0] + data[n // 2][0]) / 2


def _is_nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _median_or_none(values: Sequence[float | None]) -> float | None:
    usable = [v for v in values if v is not None]
    return statistics.median(usable) if usable else None
