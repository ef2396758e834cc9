"""The live monitoring dashboard and the decision screen, as data (docs/runbook.md#5-monitoring, docs/metrics.md, docs/thresholds.md; runbook
steps 5–7, section 4, 5.5, "Decision Rules", 7.2, 7.4).

``load_dashboard`` is the one reader: the run's stored samples, checkpoints, decisions and the audit
entries that matter, with the window's evaluation rebuilt from the stored samples tick by tick
exactly as ``engine.flows.monitor.replay`` does — so the console that drives the run and every console
that joined it show the same bands, and none of them polls the target a second time. It is
incremental: given the previous ``DashboardData`` it reads only the samples stored since, and
advances the same evaluator (the previous data is consumed: keep only the latest).

``dashboard_view`` and ``decision_view`` are pure functions over that data, cheap enough to run on
every update (one full window of 1-second samples of 16 metrics: well under a frame). The charts
are kept downsampled as they are loaded: fixed time buckets keeping each bucket's minimum and
maximum, so a spike is never averaged away and a series never grows past ``2 × CHART_BUCKETS``
points.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.domain.clock import drill_mark, t_in_window, wall
from engine.domain.decision import Band, Points, WindowEvaluator, WindowState, checkpoint_offsets_s
from engine.domain.roles import AUTO_PAUSE, ROLES, needed
from engine.domain.stops import ended_without_verdict, stop_words
from engine.domain.thresholds import MetricRule, Profile, evaluate_band, tightened_note
from engine.views.report import (
    ESCALATION_MATRIX,
    ObservationFacts,
    PersonFacts,
    ReportFacts,
    announce_critical,
    announce_warning,
    cancel_words,
    escalation_contacts,
    escalation_level,
    observations_of,
)

if TYPE_CHECKING:  # the store (SQLAlchemy) loads lazily: a screen can import this module cheaply
    from engine.adapters.store import Store
    from engine.domain.plan import Plan

CHART_BUCKETS = 120  # time buckets per chart; each keeps its min and max: ≤ 240 points a series
CHART_METRICS = ("latency_p50", "latency_p99", "replication_lag", "lock_wait", "threads_running")
ROLLBACK_METRICS = ("latency_p50", "latency_p99", "error_rate", "lock_wait", "replication_lag")
PASS_CRITERIA = ("latency_p50", "latency_p99", "replication_lag", "error_rate", "lock_wait")
# What the values of a change metric are measured in (a rule's unit is that of its *measure*, %).
VALUE_UNITS = {"latency_p50": "ms", "latency_p99": "ms", "request_latency_p50": "ms",
               "request_latency_p99": "ms", "throughput": "req/s"}
SHORT_NAMES = {"latency_p50": "p50", "latency_p99": "p99", "replication_lag": "lag", "lock_wait": "lock wait",
               "error_rate": "error rate"}
EVENT_KINDS = ("warning", "alert", "escalated", "concurrent_escalate", "auto_pause", "resumed", "stop",
               "stale", "extension_unconfirmed")
PAUSE_APPROVERS_DEFAULT = tuple(r for r in ROLES if r in needed("auto_pause_approval"))
TEAM_DECIDERS = ("canary_lead",)  # engine.flows.monitor.record_team_decision: the canary lead records it


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
            self.ev.approve(f"{a.actor} ({a.role})", a.decision)
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


# --- loading -----------------------------------------------------------------------------------------


def load_dashboard(store: Store, plan: Plan, run_id: str, now: datetime,
                   previous: DashboardData | None = None, max_ticks: int | None = None) -> DashboardData:
    """Read the run from the store and bring the window's evaluation up to date. Blocking (store
    queries): call it from a worker. With ``previous`` (the last result for the same run) only the
    samples stored since its last load are read. ``max_ticks`` bounds the ticks evaluated in one
    call (a late joiner catches up in steps: ``catching_up`` says there is more)."""
    tenant = plan.tenant
    if previous is not None and previous.facts.run_id != run_id:
        previous = None
    # Samples first, then the verdict: a sample stored after the verdict (the post-rollback
    # observation) is then always known to be outside the window.
    rows = read_samples(store, tenant, run_id, previous.last_sampled_at if previous else None)
    run = store.get_run(tenant, run_id)
    if run is None:
        raise LookupError(f"run {run_id} not found for tenant {tenant}")

    def entries(action: str) -> list[Any]:
        return store.audit_entries(tenant, run_id, action)

    started = entries("monitoring_started")
    details = (started[-1].details or {}) if started else {}
    monitoring_at = _parse_at(details.get("at")) if started else None
    speed = details.get("time_compression")
    verdicts = entries("verdict")
    alter_finished = run.alter_finished_at
    if alter_finished is None and run.alter_started_at is not None:
        added = entries("index_added")
        alter_finished = added[-1].created_at if added else None
    decisions = store.decisions(tenant, run_id)
    last = decisions[-1] if decisions else None
    facts = RunFacts(
        run_id=run.id, tenant=tenant, status=run.status, fail_reason=run.fail_reason, schema=run.schema_name,
        table=run.table_name, index=run.index_name, connection_id=run.connection_profile_id, alter_started_at=run.alter_started_at,
        alter_finished_at=alter_finished, index_created=bool(run.index_created_by_run),
        monitoring_started_at=monitoring_at,
        interval_s=float(details["interval"]) if isinstance(details.get("interval"), (int, float)) else None,
        time_compression=float(speed) if isinstance(speed, (int, float)) and speed != 1 else None,
        verdict_at=verdicts[0].created_at if verdicts else None,
        gaps=_gaps(entries("monitoring_resumed")),
        pauses=tuple((e.created_at, str((e.details or {}).get("reason", ""))) for e in entries("auto_pause")),
        lifts=tuple((e.created_at, str((e.details or {}).get("decision", "")),
                     str((e.details or {}).get("approved_by", ""))) for e in entries("auto_pause_lifted")),
        approvals=tuple(sorted((ApprovalFact(a.id, a.created_at, a.actor, a.role, a.decision)
                                for a in store.approvals(tenant, run_id, AUTO_PAUSE)), key=lambda a: a.created_at)),
        checkpoints=tuple(CheckpointFact(c.label, c.recorded_at, c.metrics_ok, c.recorded_by or "", c.notes or "")
                          for c in store.checkpoints(tenant, run_id)),
        decision=DecisionFact(last.verdict, dict(last.evidence or {}), last.decided_by, last.created_at) if last else None,
        rollback_failed=any(r.rollback_status == "failed" for r in store.rollback_records(tenant, run_id)),
        people=tuple(PersonFacts(p.name, tuple(p.roles), p.contact) for p in plan.people),
        pause_approvers=PAUSE_APPROVERS_DEFAULT,
        control_schemas=tuple(plan.change.control_schemas),
        observation=next(iter(observations_of(entries("post_success_observation_started")
                                            + entries("post_success_observation_completed"))), None),
    )
    # The profile the run is watched with: tightened after a WARNING size gate (docs/thresholds.md).
    from engine.views.profile import run_profile

    profile = previous.profile if previous is not None else run_profile(plan, store, run_id)
    return advance(previous, profile, facts, rows, now, max_ticks)


def _gaps(resumed: Iterable[Any]) -> tuple[tuple[datetime, datetime], ...]:
    """The time nobody sampled, from the ``monitoring_resumed`` entries: (the last sample before
    the take-over, the take-over). Its own function: an assignment expression in a comprehension
    binds in the enclosing function, and there it once overwrote ``load_dashboard``'s ``last``
    (the latest decision) with a datetime."""
    out = []
    for e in resumed:
        before = _parse_at((e.details or {}).get("last_sample_at"))
        if before is not None:
            out.append((before, e.created_at))
    return tuple(out)


def read_samples(store: Store, tenant: str, run_id: str, since: datetime | None = None) -> list[SampleRow]:
    """The run's samples stored after ``since``, oldest first (the columns the dashboard needs, not
    whole ORM objects: a full window is tens of thousands of rows). ``Store.samples`` has no
    ``since``; this is the same query with one."""
    from sqlmodel import select

    from engine.adapters.store.models import MetricSample

    cols = (MetricSample.sampled_at, MetricSample.metric, MetricSample.value, MetricSample.error,
            MetricSample.meta)
    with store.session() as s:
        q = select(*cols).where(MetricSample.tenant_id == tenant, MetricSample.execution_run_id == run_id)
        if since is not None:
            q = q.where(MetricSample.sampled_at > since)
        q = q.order_by(MetricSample.sampled_at, MetricSample.id)  # type: ignore[arg-type]
        return [SampleRow(*r) for r in s.exec(q).all()]


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


def _baselines(rows: Sequence[SampleRow], alter_started_at: datetime | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    if alter_started_at is None:
        return out
    for r in rows:
        if r.sampled_at < alter_started_at and r.value is not None:
            out.setdefault(r.metric, []).append(r.value)
    return out


def _baseline_times(rows: Sequence[SampleRow], alter_started_at: datetime | None,
                    window_start: datetime) -> dict[str, list[float]]:
    """The times of ``_baselines``' values, seconds relative to the window's start."""
    out: dict[str, list[float]] = {}
    if alter_started_at is None:
        return out
    for r in rows:
        if r.sampled_at < alter_started_at and r.value is not None:
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


def _parse_at(raw: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(raw))
    except ValueError:
        return None


def _median(values: Sequence[float]) -> float | None:
    usable = [v for v in values if v is not None]
    return statistics.median(usable) if usable else None


# --- the view (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowProgress:
    phase: str  # waiting | running | paused | complete | stopped | observing (runbook 5.4, after the verdict)
    elapsed_min: float
    total_min: float
    text: str
    compression: float | None = None

    @property
    def fraction(self) -> float:
        return max(0.0, min(1.0, self.elapsed_min / self.total_min)) if self.total_min else 0.0


@dataclass(frozen=True)
class Tile:
    key: str
    name: str
    unit: str
    level: str  # ok | note | warning | critical | stale
    baseline: str
    now: str
    delta: str
    thresholds: str
    rule: str  # the sentence that decided the band
    error: str | None = None  # the source's error, when stale
    detail: str = ""  # n, how it was computed, since when (the whole sentence)
    short: str = ""  # the one fact that matters most now, in a few words (zone, outage, too few intervals)


@dataclass(frozen=True)
class ChartLine:
    y: float
    level: str  # note | warning | critical
    label: str


@dataclass(frozen=True)
class ChartMarker:
    x: float
    kind: str  # alter_end | checkpoint
    label: str


@dataclass(frozen=True)
class ChartSeries:
    key: str
    title: str
    unit: str
    x: tuple[float, ...]  # minutes from the window's start (T+15 = 0)
    y: tuple[float, ...]
    lines: tuple[ChartLine, ...]
    markers: tuple[ChartMarker, ...]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    level: str = "ok"
    median_x: tuple[float, ...] = ()  # latency: the 5-minute median the band is judged on
    median_y: tuple[float, ...] = ()
    revision: int = 0  # moves when a drawn point moved: the screen redraws a chart only then
    note: str = ""
    breaks: tuple[int, ...] = ()  # indices of x where the line starts again after a gap
    median_breaks: tuple[int, ...] = ()

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.key, self.revision, self.lines, self.markers, self.x_range, self.y_range, self.level, self.note)


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


# --- pieces of the view -------------------------------------------------------------------------------


def _baseline_words(profile: Profile, data: DashboardData) -> dict[str, Any]:
    """The latency baseline in one line (docs/verdict.md): how many minutes it spans (from the run's
    creation on, where a console sampled the prechecks), its n and — once the window judges it —
    its effective n; the control; and a warning when it is too short to judge the thresholds."""
    key = "latency_p50"
    if key not in data.configured or data.facts.alter_started_at is None:
        return {}
    times = [r.sampled_at for r in data.pre_rows
             if r.metric == key and r.value is not None and r.sampled_at < data.facts.alter_started_at]
    n = len(times)
    span = (times[-1] - times[0]).total_seconds() / 60 if n > 1 else 0.0
    judge = data.window.ev.judges.get(key) if data.window is not None else None
    degenerate = judge.degenerate if judge is not None else None
    n_eff = ""
    if judge is not None and judge.tracker is not None and not degenerate:
        n_eff = f" (effective {float(judge.tracker.cur.n_eff[0]):.0f})"
    control = ("control: " + ", ".join(data.facts.control_schemas)) if data.facts.control_schemas else "no control"
    history = judge.history if judge is not None else None
    if history is not None and history.days:
        control += (f"; previous {history.days} day{'s' if history.days > 1 else ''} (Prometheus, n={history.n}): "
                    f"long-run ×{history.ratio:.0f}")
    # Once the window judges it, the effective n decides; before, the profile's baseline length.
    short = degenerate is not None if judge is not None else (n < 3 or span < profile.baseline_minutes)
    text = f"Baseline {span:.1f} min before the ALTER: p50 n={n}{n_eff}; {control}"
    if short:
        text = "⚠ " + text + (f" — too short: {degenerate}" if degenerate else
                              f" — under the profile's {profile.baseline_minutes:g} min: the latency verdict "
                              "may be INCONCLUSIVE")
    return {"baseline": text, "baseline_short": short}


def t_label(profile: Profile, t_s: float) -> str:
    """Seconds into the window as the run's one clock (engine.domain.clock): T+15:00 opens the window."""
    return t_in_window(profile.checkpoints[0], t_s)


def _progress(profile: Profile, data: DashboardData, now: datetime) -> WindowProgress:
    f = data.facts
    total = profile.window_minutes
    speed = f.time_compression
    compressed = f" · {drill_mark(speed)} ({total:g} min in {total / speed:.1f} real min)" if speed and speed > 1 else ""
    start = data.window_started_at
    if start is None:
        why = ("the ALTER is running" if f.alter_started_at and not f.alter_finished_at
               else "after the ALTER and its cool-down" if f.alter_finished_at else "after the ALTER")
        return WindowProgress("waiting", 0.0, total, f"Window T+15 → T+75: not open yet ({why}){compressed}", speed)
    state = data.state
    obs = f.observation
    if obs is not None and obs.ok is None and f.status == "observing" and obs.started_at is not None:
        # Runbook 5.4: the verdict is in; 15 more minutes are watched before success is declared.
        took = max(0.0, (now - obs.started_at).total_seconds() / 60)
        shown_obs = min(took, obs.minutes)
        ends = "; the run completes when it ends" if took < obs.minutes else "; ending with the next tick"
        return WindowProgress("observing", shown_obs, obs.minutes,
                              f"Post-success observation  {shown_obs:.1f} / {obs.minutes:g} min — the verdict "
                              f"({f.decision.verdict if f.decision else '—'}) is observed before success is "
                              f"declared (runbook 5.4){ends}"
                              + (f" · TIME ×{speed:g}" if speed else ""), speed)
    decided = f.decision is not None and f.verdict_at is not None
    if decided or f.status not in ("scheduled", "running", "observing"):
        elapsed = state.elapsed_s / 60
        stopped = (f.decision is not None and bool(f.decision.evidence.get("stopped_early"))) or elapsed < total
        phase = "stopped" if stopped else "complete"
    else:
        elapsed = max(state.elapsed_s, (now - start).total_seconds()) / 60
        phase = "paused" if state.paused else "running"
    shown = min(elapsed, total) if phase != "paused" else elapsed
    words = {"running": "cannot be shortened (runbook 5.4)",
             "paused": "AUTO-PAUSE: the decision waits for an approval",
             "complete": "complete", "stopped": "stopped early"}[phase]
    if phase == "running" and elapsed >= total:
        words = "complete; the verdict follows the last tick"
    if phase == "stopped":  # where and why, in the words the decision and the report use
        evidence = f.decision.evidence if f.decision is not None else {}
        at = t_label(profile, state.elapsed_s)
        words = (stop_words(evidence, profile.checkpoints[0]).replace("the window ", "", 1)
                 or (f"stopped by the kill switch at {at}" if f.fail_reason == "kill_switch"
                     else f"stopped at {at} ({f.status})"))
    if data.catching_up:
        words += f"; catching up with the stored samples (evaluated to {t_label(profile, state.elapsed_s)})"
    if f.gaps:
        words += "; " + ", ".join(
            f"no samples {t_label(profile, (a - start).total_seconds())}→{t_label(profile, (b - start).total_seconds())}"
            for a, b in f.gaps) + " (the driving console was down: a gap in the charts)"
    if obs is not None and obs.ok is not None:
        words += f"; {obs.text}"
    if f.status == "cancelled" and (cancelled := cancel_words(f.status, f.fail_reason, obs)) \
            and "kill switch" not in words:  # a window the kill switch stopped says so already
        words += " · RUN CANCELLED" + cancelled.removeprefix("run cancelled")
    text = f"Window T+15 → T+75  {shown:.1f} / {total:g} min — {words}{compressed}"
    return WindowProgress(phase, shown, total, text, speed)


def value_unit(rule: MetricRule) -> str:
    return VALUE_UNITS.get(rule.key, rule.unit)


def fmt(value: float | None, unit: str) -> str:
    """A value for a tile: three significant digits or so, its unit after it."""
    if value is None:
        return "—"
    a = abs(value)
    if float(value).is_integer() and a < 1e6:
        text = f"{value:.0f}"
    else:
        text = (f"{value:.0f}" if a >= 100 else f"{value:.1f}" if a >= 10 or (unit == "%" and a >= 1) else
                f"{value:.2f}" if a >= 1 or unit == "%" else f"{value:.3g}")
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def thresholds_text(rule: MetricRule) -> str:
    parts = [f"warn {rule.describe_threshold('warning')}", f"crit {rule.describe_threshold('critical')}"]
    if rule.note is not None:
        parts.append(f"note {rule.describe_threshold('note')}")
    return " · ".join(parts)


def _tile(profile: Profile, data: DashboardData, rule: MetricRule) -> Tile:
    unit = value_unit(rule)
    base = data.base_medians.get(rule.key)
    window = data.window
    track = window.tracks.get(rule.key) if window else None
    band: Band | None = data.state.last_bands.get(rule.key) if window else None
    detail = short = ""
    if band is None:  # before the window (or no tick of it yet): the latest sample against the baseline
        row = data.pre_window.get(rule.key)
        value, error = (row.value, row.error) if row else (None, "no sample yet")
        band = evaluate_band(rule, value, base if rule.mode == "change_pct" else None, error)
        now_text = fmt(value, unit)
        if window is None:
            detail = short = "before the window"
    else:
        value, error = band.value, band.error
        now_text = fmt(value, unit)
        if rule.latency and band.measure is not None and base:
            now_text = fmt(base * (1 + band.measure / 100), unit)
            detail = f"5-min median; last interval {fmt(value, unit)}"
            if (band.n or 0) < profile.min_samples:
                detail += f"; {band.n or 0}/{profile.min_samples} intervals: not yet counted"
                short = f"too few intervals: {band.n or 0}/{profile.min_samples}"  # fits a tile (26 cells)
        if track is not None and track.last_how and not rule.latency:
            detail = track.last_how
        episode = data.state.episodes.get(rule.key)
        if episode is not None:
            detail = (detail + "; " if detail else "") + (
                f"in zone since {t_label(profile, episode.since_s)}, observed until "
                f"{t_label(profile, episode.extension_ends_s)}")
            short = f"zone {t_label(profile, episode.since_s)} → {t_label(profile, episode.extension_ends_s)}"
        if band.level == "stale" and track is not None and track.first_error_at is not None:
            detail = short = f"stale since {t_label(profile, track.first_error_at)}"
    if rule.mode == "change_pct":
        delta = f"{band.measure:+.1f}%" if band.measure is not None else "—"
    elif value is not None and base and base > 0 and value / base >= 10:
        delta = f"×{value / base:.0f}"  # +21567 % says less than ×217
    elif value is not None and base:
        delta = f"{(value - base) / abs(base) * 100:+.0f}%"
    elif value is not None and base is not None:
        delta = ("+" if value >= base else "") + fmt(value - base, unit)  # "+1.85 s", not "+1.8456 s"
    else:
        delta = "—"
    return Tile(rule.key, rule.label, unit, band.level, fmt(base, unit), now_text, delta, thresholds_text(rule),
                band.rule, band.error if band.level == "stale" else None, detail, short)


def _chart(profile: Profile, data: DashboardData, key: str) -> ChartSeries:
    rule = profile.rule(key)
    unit = value_unit(rule)
    window = data.window
    track = window.tracks.get(key) if window else None
    xs, ys, breaks = track.segmented() if track else ((), (), ())
    mx, my, mbreaks = track.segmented(medians=True) if track and rule.latency else ((), (), ())
    xs = tuple(x / 60 for x in xs)
    mx = tuple(x / 60 for x in mx)
    base = data.base_medians.get(key)
    lines: list[ChartLine] = []
    for level, limit in (("note", rule.note), ("warning", rule.warning), ("critical", rule.critical)):
        if limit is None:
            continue
        if rule.mode == "change_pct":
            if not base:
                continue
            y = base * (1 + limit / 100)
            lines.append(ChartLine(y, level, f"{level} {rule.describe_threshold(level)} = {fmt(y, unit)}"))
        else:
            lines.append(ChartLine(limit, level, f"{level} {rule.describe_threshold(level)}"))
    markers = _markers(profile, data)
    total = profile.window_minutes
    lo_x = min([0.0] + [m.x for m in markers if m.kind == "alter_end"])
    hi_x = max([total] + list(xs[-1:]))
    data_hi = max(ys + my, default=0.0)
    data_lo = min(ys + my, default=0.0)
    warn = next((ln.y for ln in lines if ln.level == "warning"), None)
    crit = next((ln.y for ln in lines if ln.level == "critical"), None)
    hi = data_hi
    if warn is not None:  # the warning line is always in sight; the critical one once data reaches the warning
        hi = max(hi, warn)
        if crit is not None and data_hi >= warn:
            hi = max(hi, crit)
    if rule.mode == "change_pct" and ys:  # a latency: around its values, not from zero
        lo = max(0.0, min(data_lo, base or data_lo) - 0.1 * (hi - data_lo))
        hi = hi + 0.1 * (hi - lo) if hi > lo else hi * 1.1 or 1.0
    else:
        lo = min(0.0, data_lo)
        hi = hi * 1.1 if hi > 0 else 1.0
    band = data.state.last_bands.get(key)
    level = band.level if band else "ok"
    title = f"{rule.label.replace(' change', '').replace('Query latency', 'Latency')} ({unit})" if unit else rule.label
    note = "5-min median and each interval" if rule.latency else ""
    if track is None or not xs:
        note = "no sample in the window yet" if window else "the window is not open yet"
    return ChartSeries(key, title, unit, xs, ys, tuple(lines), markers, (lo_x, hi_x), (lo, hi), level, mx, my,
                       track.version if track else 0, note, breaks, mbreaks)


def _markers(profile: Profile, data: DashboardData) -> tuple[ChartMarker, ...]:
    out: list[ChartMarker] = []
    start = data.window_started_at
    end = data.facts.alter_finished_at
    if start is not None and end is not None:
        x = (end - start).total_seconds() / 60
        out.append(ChartMarker(round(x, 3), "alter_end", f"ALTER ended {t_label(profile, x * 60)}"))
    for label, at_s in checkpoint_offsets_s(profile):
        out.append(ChartMarker(at_s / 60, "checkpoint", label))
    return tuple(out)


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
    who = " or ".join(roles)
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
    """Runbook 7.4's templates (engine.views.report) with the metrics in their zone now: one critical
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


# --- the decision screen -------------------------------------------------------------------------------


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
TRIGGER_FOR = (("p50", "latency"), ("p99", "latency"), ("lock wait", "lock_wait"),
               ("replication lag", "replication_lag"), ("error rate", "error_rate"))


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
    rows = tuple(_matrix_row(c) for c in ev.get("criteria") or () if isinstance(c, Mapping))
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
        trigger = _trigger(ev)
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


def _trigger(evidence: Mapping[str, Any]) -> str:
    failed = [str(c.get("name", "")).lower() for c in evidence.get("criteria") or ()
              if isinstance(c, Mapping) and c.get("met") is False]
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


__all__ = [
    "AnnouncementText", "ChartLine", "ChartMarker", "ChartSeries", "CheckItem", "CheckpointRow", "Concurrent",
    "DashboardData", "DashboardView", "DecisionView", "EscalationView", "MatrixRow", "PauseView", "RunFacts",
    "SampleRow", "Tile", "WindowProgress", "advance", "dashboard_view", "decision_view", "load_dashboard",
    "read_samples", "ESCALATION_MATRIX",
]
