"""The monitoring window rebuilt from the stored samples (docs/runbook.md#5-monitoring): the run's
facts as ``load_dashboard`` (engine/views/dashboard.py) reads them, each metric's track kept
downsampled for its chart, and ``advance``, which adds newly read samples to the window's
evaluation tick by tick exactly as ``engine.flows.monitor.replay`` does.

The charts are kept downsampled as they are loaded: fixed time buckets keeping each bucket's
minimum and maximum, so a spike is never averaged away and a series never grows past
``2 × CHART_BUCKETS`` points.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.domain.decision import WindowState
from engine.domain.decision_evaluator import WindowEvaluator
from engine.domain.decision_series import Points
from engine.domain.roles import ROLES, in_role, needed
from engine.domain.thresholds import Profile
from engine.views.report_model import ObservationFacts, PersonFacts, ReportFacts

CHART_BUCKETS = 120  # time buckets per chart; each keeps its min and max: ≤ 240 points a series
PAUSE_APPROVERS_DEFAULT = tuple(r for r in ROLES if r in needed("auto_pause_approval"))


# --- what the store says (plain data, read by load_dashboard) -------------------------------------


@dataclass(frozen=True)
class SampleRow:
    """One stored sample (the columns of ``MetricSample`` the dashboard needs)."""

    sampled_at: datetime
    metric: str
    value: float | None
    error: str | None = None
    meta: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ApprovalFact:
    id: str
    created_at: datetime
    actor: str
    role: str
    decision: str  # resume | rollback


@dataclass(frozen=True)
class CheckpointFact:
    label: str
    recorded_at: datetime | None
    metrics_ok: bool | None
    recorded_by: str
    notes: str


@dataclass(frozen=True)
class DecisionFact:
    verdict: str
    evidence: Mapping[str, Any]
    decided_by: str
    created_at: datetime | None


@dataclass(frozen=True)
class RunFacts:
    """Everything but the samples: the run, the monitoring audit trail, checkpoints, decisions."""

    run_id: str
    tenant: str
    status: str = "running"
    fail_reason: str | None = None
    schema: str = ""
    table: str = ""
    index: str = ""
    connection_id: str = ""
    alter_started_at: datetime | None = None
    alter_finished_at: datetime | None = None
    index_created: bool = False
    monitoring_started_at: datetime | None = None  # the audit's monitoring_started "at"
    interval_s: float | None = None
    time_compression: float | None = None  # > 1: a rehearsal's compressed clock
    verdict_at: datetime | None = None  # the engine's verdict: the window's last tick is at or before it
    gaps: tuple[tuple[datetime, datetime], ...] = ()  # nobody sampled (a driver died): (last sample, resumed)
    pauses: tuple[tuple[datetime, str], ...] = ()  # auto_pause audit entries: (at, reason)
    lifts: tuple[tuple[datetime, str, str], ...] = ()  # auto_pause_lifted: (at, decision, approved_by)
    approvals: tuple[ApprovalFact, ...] = ()  # auto_pause approvals, oldest first
    checkpoints: tuple[CheckpointFact, ...] = ()
    decision: DecisionFact | None = None  # the latest (a team decision is a later one)
    rollback_failed: bool = False
    people: tuple[PersonFacts, ...] = ()
    pause_approvers: tuple[str, ...] = PAUSE_APPROVERS_DEFAULT
    control_schemas: tuple[str, ...] = ()  # the plan's control tenants (docs/verdict.md#the-control)
    observation: ObservationFacts | None = None  # runbook 5.4: the post-success observation, once begun

    def report_facts(self) -> ReportFacts:
        """Enough of the report's facts for the warning and critical templates (runbook 7.4)."""
        return ReportFacts(run_id=self.run_id, tenant=self.tenant, connection_id=self.connection_id,
                           schema=self.schema, table=self.table, index=self.index, columns=(), status=self.status,
                           people=self.people)


# --- the window, rebuilt from the samples (mutable; owned by the worker that loads) ----------------


class MetricTrack:
    """One metric in the window: its last sample, and its chart kept downsampled as it grows —
    fixed time buckets, each keeping its minimum and maximum (so a spike is never averaged away).
    When the window runs long (an AUTO-PAUSE holds it open) neighbouring buckets merge."""

    __slots__ = ("key", "bucket_s", "buckets", "medians", "count", "values", "last_at", "last_t", "last_value",
                 "last_error", "last_n", "last_how", "first_error_at", "version")

    def __init__(self, key: str, bucket_s: float):
        self.key = key
        self.bucket_s = bucket_s
        self.buckets: list[list[float] | None] = []  # [t at min, min, t at max, max] per bucket
        self.medians: list[list[float] | None] = []  # latency: the rolling median the band judged
        self.count = 0  # ticks seen: the chart's revision
        self.values = 0  # ticks with a value
        self.last_at: datetime | None = None
        self.last_t: float | None = None
        self.last_value: float | None = None
        self.last_error: str | None = None
        self.last_n: int | None = None
        self.last_how = ""
        self.first_error_at: float | None = None  # start of the current outage (seconds into the window)
        self.version = 0  # moves only when a point the chart draws moved: the chart's revision

    def add(self, at: datetime, t: float, value: float | None, error: str | None, n: int | None, how: str,
            median: float | None) -> None:
        self.count += 1
        self.last_at, self.last_t, self.last_value, self.last_error, self.last_n, self.last_how = (
            at, t, value, error, n, how)
        if value is None:
            self.first_error_at = t if self.first_error_at is None else self.first_error_at
            return
        self.first_error_at = None
        self.values += 1
        _bucket_add(self, self.buckets, t, value)
        if median is not None:
            _bucket_add(self, self.medians, t, median)

    def points(self, medians: bool = False) -> tuple[tuple[float, ...], tuple[float, ...]]:
        xs, ys, _ = self.segmented(medians)
        return xs, ys

    def segmented(self, medians: bool = False) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]:
        """The chart's points, and where each run of them starts again after a gap (a time bucket
        with no value: nobody sampled, or the source was down) — a chart never draws a line
        across time nobody saw."""
        xs: list[float] = []
        ys: list[float] = []
        breaks: list[int] = []
        gap = False
        for b in self.medians if medians else self.buckets:
            if b is None:
                gap = bool(xs)
                continue
            if gap:
                breaks.append(len(xs))
                gap = False
            first, second = ((b[0], b[1]), (b[2], b[3])) if b[0] <= b[2] else ((b[2], b[3]), (b[0], b[1]))
            xs.append(first[0])
            ys.append(first[1])
            if second[0] != first[0]:
                xs.append(second[0])
                ys.append(second[1])
        return tuple(xs), tuple(ys), tuple(breaks)


def _bucket_add(track: MetricTrack, buckets: list[list[float] | None], t: float, v: float) -> None:
    i = max(0, int(t // track.bucket_s))
    while i >= CHART_BUCKETS:  # the window outgrew the chart: merge pairs, double the width
        track.bucket_s *= 2
        track.version += 1
        for series in (track.buckets, track.medians):
            series[:] = [_merge(series[k] if k < len(series) else None,
                                series[k + 1] if k + 1 < len(series) else None)
                         for k in range(0, len(series), 2)]
        i = max(0, int(t // track.bucket_s))
    if i >= len(buckets):
        buckets.extend([None] * (i + 1 - len(buckets)))
    b = buckets[i]
    if b is None:
        buckets[i] = [t, v, t, v]
        track.version += 1
    else:
        if v < b[1]:
            b[0], b[1] = t, v
            track.version += 1
        if v > b[3]:
            b[2], b[3] = t, v
            track.version += 1


def _merge(a: list[float] | None, b: list[float] | None) -> list[float] | None:
    if a is None or b is None:
        return a or b
    lo = (a[0], a[1]) if a[1] <= b[1] else (b[0], b[1])
    hi = (a[2], a[3]) if a[3] >= b[3] else (b[2], b[3])
    return [lo[0], lo[1], hi[0], hi[1]]


class WindowReplay:
    """The window's evaluation from stored samples, tick by tick, as ``engine.flows.monitor.replay`` does
    it: baselines from the samples before the ALTER; ticks from the window's start; seconds counted
    from the first tick; an AUTO-PAUSE lifted by the first approval stored at or before a tick; a
    rollback approved during the pause ends the window. Kept between loads, so each load adds only
    the new ticks."""

    def __init__(self, profile: Profile, baselines: Mapping[str, Sequence[float]], configured: Iterable[str],
                 window_start: datetime, baseline_times: Mapping[str, Sequence[float]] | None = None):
        self.profile = profile
        self.ev = WindowEvaluator(profile, baselines, configured, baseline_times)
        self.window_start = window_start
        self.first_s: float | None = None
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self.ticks = 0
        self.ended_by_rollback = False
        self.applied: set[str] = set()
        self.rules = {r.key: r for r in profile.rules}
        bucket_s = profile.window_minutes * 60 / CHART_BUCKETS
        self.tracks: dict[str, MetricTrack] = {k: MetricTrack(k, bucket_s) for k in self.ev.configured}
        self.base_median: dict[str, float | None] = {k: _median(v) for k, v in self.ev.baselines.items()}

    def add_tick(self, at: datetime, tick: Mapping[str, tuple[float | None, str | None, int | None]],
                 hows: Mapping[str, str], approvals: Sequence[ApprovalFact]) -> None:
        if self.ended_by_rollback:
            return
        for key in tick:  # a metric seen first in the window (replay configures every stored metric)
            if key not in self.ev.configured and key in self.rules:
                self.ev.configured.add(key)
                self.ev.points.setdefault(key, Points())
                self.tracks[key] = MetricTrack(key, self.profile.window_minutes * 60 / CHART_BUCKETS)
        t_abs = (at - self.window_start).total_seconds()
        if self.first_s is None:
            self.first_s, self.first_at = t_abs, at
        t = t_abs - self.first_s
        state = self.ev.add(t, tick)
        for key, (value, error, n) in tick.items():
            track = self.tracks.get(key)
            if track is None:
                continue
            median = None
            band = state.last_bands.get(key)
            rule = self.rules[key]
            base = self.base_median.get(key)
            if rule.latency and value is not None and band is not None and band.measure is not None and base:
                median = base * (1 + band.measure / 100.0)
            track.add(at, t, value, error, n, hows.get(key, ""), median)
        self.ticks += 1
        self.last_at = at
        for a in approvals:  # replay: while paused, apply approvals stored at or before this tick
            if not self.ev.state.paused:
                break
            if a.id in self.applied or a.created_at > at:
                continue
            self.applied.add(a.id)
            self.ev.approve(in_role(a.actor, a.role), a.decision)
            if a.decision == "rollback":
                self.ended_by_rollback = True
                return


@dataclass(frozen=True)
class DashboardData:
    """What one load read, plus the window's evaluation so far. ``window`` is advanced in place by
    the next ``load_dashboard(previous=…)``: keep only the latest ``DashboardData``."""

    facts: RunFacts
    profile: Profile
    loaded_at: datetime
    baselines: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # per-interval values before the ALTER
    base_medians: Mapping[str, float | None] = field(default_factory=dict)
    pre_window: Mapping[str, SampleRow] = field(default_factory=dict)  # latest sample per metric before the window
    pre_rows: tuple[SampleRow, ...] = ()  # samples before the window (baseline, ALTER, cool-down)
    configured: frozenset[str] = frozenset()
    window: WindowReplay | None = None
    state: WindowState = field(default_factory=WindowState)  # the window's state at this load
    checkpoint_evals: tuple[Any, ...] = ()  # engine.domain.decision.CheckpointEvaluation, at this load
    last_sampled_at: datetime | None = None  # the newest sample read (the next load reads after it)
    backlog: tuple[SampleRow, ...] = ()  # read but not evaluated yet (``max_ticks``)

    @property
    def catching_up(self) -> bool:
        return bool(self.backlog)

    @property
    def window_started_at(self) -> datetime | None:
        if self.window is not None and self.window.first_at is not None:
            return self.window.first_at
        return self.facts.monitoring_started_at


def advance(previous: DashboardData | None, profile: Profile, facts: RunFacts, rows: Sequence[SampleRow],
            now: datetime, max_ticks: int | None = None) -> DashboardData:
    """Pure but for ``previous``'s evaluator, which it advances: add ``rows`` (newer than the
    previous load, in time order) to the window. At most ``max_ticks`` ticks are evaluated; the
    rest wait in ``backlog`` for the next call (a console that joins late catches up in steps and
    says so). ``load_dashboard`` is this after its reads."""
    window = previous.window if previous else None
    configured = set(previous.configured) if previous else set()
    keys = set(profile.keys)
    configured.update(m for m in {r.metric for r in rows} if m in keys)
    last_read = previous.last_sampled_at if previous else None
    if rows:
        last_read = max(rows[-1].sampled_at, last_read) if last_read else rows[-1].sampled_at
    window_start = facts.monitoring_started_at
    # Tuples: a late joiner's backlog is copied once a step (the part left), not three times.
    backlog = (previous.backlog if previous else ()) + tuple(rows)
    fresh: Sequence[SampleRow]
    if window is not None and previous is not None:
        # The window is open: the baseline is fixed and every new sample belongs to the window.
        pre_rows, baselines, medians, latest = (previous.pre_rows, previous.baselines, previous.base_medians,
                                                previous.pre_window)
        fresh = backlog
    elif previous is not None and window_start is None:
        # Before the window (the baseline, the ALTER, the cool-down): every sample is before it.
        # Add only the new ones, so a console that watches a long ALTER does not redo the
        # whole pre-window every second.
        pre_rows, fresh = previous.pre_rows + backlog, ()
        if previous.facts.alter_started_at == facts.alter_started_at:
            baselines = dict(previous.baselines)
            medians = dict(previous.base_medians)
            for k, vs in _baselines(backlog, facts.alter_started_at).items():
                baselines[k] = baselines.get(k, ()) + tuple(vs)
                medians[k] = _median(baselines[k])
        else:
            baselines = {k: tuple(v) for k, v in _baselines(pre_rows, facts.alter_started_at).items()}
            medians = {k: _median(v) for k, v in baselines.items()}
        latest = {**previous.pre_window, **{r.metric: r for r in backlog}}
    else:
        before: list[SampleRow] = []
        after: list[SampleRow] = []
        for r in [*(previous.pre_rows if previous else ()), *backlog]:
            (after if window_start is not None and r.sampled_at >= window_start else before).append(r)
        pre_rows, fresh = tuple(before), tuple(after)
        baselines = {k: tuple(v) for k, v in _baselines(pre_rows, facts.alter_started_at).items()}
        medians = {k: _median(v) for k, v in baselines.items()}
        latest = {r.metric: r for r in pre_rows}
        if window_start is not None:
            window = WindowReplay(profile, baselines, configured, window_start,
                                  _baseline_times(pre_rows, facts.alter_started_at, window_start))
    left: tuple[SampleRow, ...] = ()
    if window is not None:
        done = 0
        for at, tick, hows, first_row in _ticks(fresh):
            if facts.verdict_at is not None and at > facts.verdict_at:
                break  # after the verdict: the post-rollback observation, not the window
            if max_ticks is not None and done >= max_ticks:
                left = tuple(fresh[first_row:])
                break
            window.add_tick(at, tick, hows, facts.approvals)
            done += 1
    return DashboardData(
        facts=facts, profile=profile, loaded_at=now, baselines=baselines, base_medians=medians, pre_window=latest,
        pre_rows=pre_rows, configured=frozenset(configured), window=window,
        state=window.ev.state if window else WindowState(),
        checkpoint_evals=tuple(window.ev.checkpoints) if window else (), last_sampled_at=last_read,
        backlog=left)


def baseline_rows(rows: Sequence[SampleRow], alter_started_at: datetime | None) -> list[SampleRow]:
    """The baseline's samples: those with a value taken before the ALTER (none before it started)."""
    if alter_started_at is None:
        return []
    return [r for r in rows if r.sampled_at < alter_started_at and r.value is not None]


def _baselines(rows: Sequence[SampleRow], alter_started_at: datetime | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in baseline_rows(rows, alter_started_at):
        out.setdefault(r.metric, []).append(r.value)  # type: ignore[arg-type]
    return out


def _baseline_times(rows: Sequence[SampleRow], alter_started_at: datetime | None,
                    window_start: datetime) -> dict[str, list[float]]:
    """The times of ``_baselines``' values, seconds relative to the window's start."""
    out: dict[str, list[float]] = {}
    for r in baseline_rows(rows, alter_started_at):
        out.setdefault(r.metric, []).append((r.sampled_at - window_start).total_seconds())
    return out


def _ticks(rows: Sequence[SampleRow]) -> Iterable[tuple[datetime, dict[str, tuple[float | None, str | None, int | None]],
                                                           dict[str, str], int]]:
    """Rows grouped into ticks by their time (``engine.flows.monitor.ticks_of``; rows are in time order),
    each with the index of its first row."""
    at: datetime | None = None
    tick: dict[str, tuple[float | None, str | None, int | None]] = {}
    hows: dict[str, str] = {}
    start = 0
    for i, r in enumerate(rows):
        if r.sampled_at != at:
            if at is not None:
                yield at, tick, hows, start
            at, tick, hows, start = r.sampled_at, {}, {}, i
        meta = r.meta or {}
        tick[r.metric] = (r.value, r.error, meta.get("n"))
        if meta.get("how"):
            hows[r.metric] = str(meta["how"])
    if at is not None:
        yield at, tick, hows, start


def _median(values: Sequence[float]) -> float | None:
    usable = [v for v in values if v is not None]
    return statistics.median(usable) if usable else None
