"""The monitoring window, headless (runbook steps 5–7): sample, evaluate, record, decide.

``Monitor.baseline`` samples before the ALTER; ``Monitor.window`` samples the 60-minute window
(T+15 → T+75), evaluating each tick, recording the checkpoints, stopping early on a failure
condition, and stores the verdict with its evidence. ``replay`` re-evaluates a finished run's stored
samples under any profile — the same code path, so the same profile gives the same verdict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.adapters.collector_loop import CollectorLoop
from engine.adapters.collectors import Sample, Source
from engine.adapters.store import Approval, Checkpoint, Decision, MetricSample, Store
from engine.domain.baseline_ready import Readiness, baseline_readiness
from engine.domain.clock import Clock, SystemClock
from engine.domain.decision import WindowState, window_complete
from engine.domain.decision_evaluator import CONTROL, HISTORY, WindowEvaluator
from engine.domain.decision_matrix import Verdict
from engine.domain.jsonable import jsonable
from engine.domain.roles import AUTO_PAUSE, in_role, needed
from engine.domain.stops import AUTO_PAUSE_ROLLBACK, FAILURE_CONDITION, t_label
from engine.domain.thresholds import Profile
from engine.flows import guard
from engine.flows.digest_check import with_check

Tick = dict[str, tuple[float | None, str | None, int | None]]
# The approval kind that lifts an AUTO-PAUSE, and who may give it (runbook "Decision Rules" §3: the
# tech lead reviews) — from the one table.
PAUSE_APPROVERS = set(needed("auto_pause_approval"))


@dataclass
class MonitorResult:
    verdict: Verdict
    state: WindowState
    window_started_at: datetime
    ticks: int
    stopped_early: bool
    stop_cause: str | None = None  # engine.domain.stops: why the window stopped early


def sources_for(plan: Any, backend: Any, clock: Clock | None = None) -> list[Source]:
    """Every source the plan can feed (docs/metrics.md): the primary, the replica if given, Prometheus if
    configured (with the plan's queries), and the kill-switch backend."""
    from engine.adapters.collectors import MySQLSource
    from engine.adapters.killswitch_source import KillSwitchSource
    from engine.adapters.replica_source import ReplicaSource

    sources: list[Source] = [MySQLSource(plan.connection, plan.schema, plan.change.table, plan.change.query_digests,
                                         statement_error_rate=not plan.prometheus_url, clock=clock,
                                         control_schemas=plan.change.control_schemas)]
    if plan.replica is not None:
        sources.append(ReplicaSource(plan.replica, clock))
    if plan.prometheus_url:
        from engine.adapters.prometheus import PrometheusSource

        sources.append(PrometheusSource(plan.prometheus_url, plan.prometheus_queries,
                                        history_days=plan.prometheus_history_days))
    sources.append(KillSwitchSource(backend, plan.tenant, plan.connection.id))
    # runbook 5.3 #8: whether the table, the index and the target are there (engine/domain/availability.py)
    from engine.adapters.presence import PresenceSource

    sources.append(PresenceSource(plan.connection, plan.schema, plan.change.table, plan.change.index, clock))
    return sources


def warm_up(sources: Sequence[Source]) -> None:
    """Open the sources' connections before the baseline's clock starts: a connection takes a few
    hundred milliseconds on a loaded server, which a compressed clock multiplies (at ×120, minutes
    of the baseline went to the first tick's connections)."""
    for source in sources:
        connect = getattr(source, "warm_up", None)
        if connect is not None:
            connect()


def _tick_of(samples: Sequence[Sample]) -> Tick:
    return {s.metric: (s.value, s.error, s.n) for s in samples}


class Monitor:
    def __init__(self, store: Store, tenant_id: str, run_id: str, sources: Sequence[Source], profile: Profile,
                 actor: str, clock: Clock | None = None, interval: float = 5.0):
        self.store, self.tenant_id, self.run_id = store, tenant_id, run_id
        self.sources = list(sources)
        self.profile = profile
        self.actor = actor
        self.clock = clock or SystemClock()
        self.interval = interval
        self.loop = CollectorLoop(self.sources, interval, self.clock, store=store, tenant_id=tenant_id,
                                  run_id=run_id)
        # Set by the executor: the digests and the sample queries judged at the window's end
        # (engine/flows/digest_check.py); its warnings join the verdict.
        self.verify_digests: Callable[[], Any] | None = None
        # Who hears the window's events as they happen (engine/flows/notify.py pushes them to the
        # webhooks): window_event, checkpoint, verdict, observation_started, observation_completed.
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.history: Any = None  # engine.flows.history.HistoryFetch, once the baseline read it

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(name, data)
            except Exception:  # noqa: BLE001, S112 - a listener never stops the window
                continue

    def _emit_events(self, ev: WindowEvaluator, seen: int, profile: Profile | None = None) -> int:
        """The window events since ``seen`` (an index into ``ev.state.events``), each with its band."""
        profile = profile or self.profile
        events = ev.state.events
        for e in events[seen:]:
            rule = next((r for r in profile.rules if r.key == e.metric), None)
            self._emit("window_event", {"event": e, "band": ev.state.last_bands.get(e.metric or ""),
                                        "rule": rule, "at": t_label(profile.checkpoints[0], e.t_s),
                                        "concurrent": ev.state.concurrent})
        return len(events)

    def _emit_checkpoint(self, ev: WindowEvaluator, cp: Any) -> None:
        labels = [f"T+{m}" for m in self.profile.checkpoints]
        at = labels.index(cp.label) if cp.label in labels else len(labels)
        self._emit("checkpoint", {"label": cp.label, "metrics_ok": cp.metrics_ok,
                                  "notes": f"{cp.warnings} warning(s), {cp.alerts} alert(s), {cp.stale} stale "
                                           f"source(s), {cp.concurrent} concurrent",
                                  "bands": dict(ev.state.last_bands), "elapsed_min": ev.state.elapsed_s / 60,
                                  "window_min": self.profile.window_minutes,
                                  "next": labels[at + 1] if at + 1 < len(labels) else None})

    @property
    def configured(self) -> set[str]:
        return {m for s in self.sources for m in s.metrics}

    def _tick(self, ev: WindowEvaluator, first_at: datetime | None) -> tuple[datetime, float, Tick]:
        """One tick sampled and evaluated: (the window's first sample time, seconds into the window,
        the tick). The seconds come from the stored sample times, exactly as replay computes them."""
        samples = self.loop.tick()
        first_at = first_at or self.loop.last_at
        t_s = (self.loop.last_at - first_at).total_seconds()
        tick = _tick_of(samples)
        ev.add(t_s, tick)
        return first_at, t_s, tick

    def _sleep_until(self, deadline: float) -> None:
        left = deadline - self.clock.monotonic()
        if left > 0:
            self.clock.sleep(left)

    def baseline(self, seconds: float, on_tick: Callable[[], None] | None = None) -> None:
        """Sample before the ALTER; these are the baseline's per-interval values. ``on_tick`` runs
        after every tick (the executor watches the kill switch and renews its lease there)."""
        self.store.audit(self.tenant_id, self.actor, "baseline_sampling", self.run_id,
                         {"seconds": seconds, "interval": self.interval})
        self.history = self.previous_days(seconds, on_tick)
        warm_up(self.sources)
        self.sample(seconds, on_tick)

    def sample(self, seconds: float, on_tick: Callable[[], None] | None = None) -> None:
        """Tick for ``seconds`` (the baseline, or its extension), ``on_tick`` after every tick."""
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            started = self.clock.monotonic()
            self.loop.tick()
            if on_tick:
                on_tick()
            self._sleep_until(started + self.interval)

    def readiness(self) -> Readiness:
        """Whether the baseline sampled so far (every stored sample of this run) holds enough
        effective intervals for each latency judged (engine/domain/baseline_ready.py)."""
        rows = self.store.samples(self.tenant_id, self.run_id)
        now = self.clock.now()
        values, times = baselines_of(rows), baseline_times_of(rows, now)
        latency = {r.key for r in self.profile.rules if r.latency} & self.configured

        def points(key: str) -> list[tuple[float, Any]]:
            return list(zip(times.get(key, []), values.get(key, []), strict=False))

        return baseline_readiness(self.profile, {k: points(k) for k in latency},
                                  {k: points(CONTROL + k) for k in latency if values.get(CONTROL + k)},
                                  {k: points(HISTORY + k) for k in latency if values.get(HISTORY + k)})

    def previous_days(self, seconds: float, between: Callable[[], None] | None = None) -> Any:
        """The same hours of previous days from Prometheus, where the plan configures it
        (engine/flows/history.py): read once per run, before the baseline's clock starts;
        ``between`` runs after each query (the executor's kill-switch watch and lease)."""
        from engine.flows.history import record_previous_days

        for source in self.sources:
            if getattr(source, "history_days", 0) and hasattr(source, "query_range"):
                return record_previous_days(
                    self.store, self.tenant_id, self.run_id, source, self.actor,
                    before_s=max(seconds, 3600.0), after_s=(self.profile.window_minutes + 30) * 60,
                    step_s=self.interval, between=between)
        return None

    def baselines(self, before: datetime) -> dict[str, list[float]]:
        rows = [r for r in self.store.samples(self.tenant_id, self.run_id) if r.sampled_at < before]
        return baselines_of(rows)

    def evaluator(self, before: datetime, profile: Profile | None = None,
                  reference: datetime | None = None) -> WindowEvaluator:
        """A window evaluator on this run's baseline (every sample before ``before``, from the
        run's creation on), each value with its time relative to the window's start (now, or the
        start a window already recorded): the trend and the correlation need the times."""
        rows = [r for r in self.store.samples(self.tenant_id, self.run_id) if r.sampled_at < before]
        started = self.store.audit_entries(self.tenant_id, self.run_id, "monitoring_started")
        ref = reference or (datetime.fromisoformat(started[-1].details["at"]) if started else self.clock.now())
        return WindowEvaluator(profile or self.profile, baselines_of(rows), self.configured,
                               baseline_times_of(rows, ref))

    def window(self, alter_started_at: datetime, index_created: bool,
               on_tick: Callable[[WindowEvaluator, Tick], None] | None = None,
               speed: float = 1.0) -> MonitorResult:
        # A new window's start is taken once: the baseline's times are relative to the very instant the
        # audit records, as replay reads them (two readings of a 120× clock differ by seconds, and a
        # trend carried forward, or a borderline choice of noise, then differed between the two).
        started = self.store.audit_entries(self.tenant_id, self.run_id, "monitoring_started")
        start = datetime.fromisoformat(started[-1].details["at"]) if started else self.clock.now()
        ev = self.evaluator(alter_started_at, reference=start)
        resumed = self._resume(ev, started)
        if resumed is None:
            started_at = start
            self.store.audit(self.tenant_id, self.actor, "monitoring_started", self.run_id,
                             {"at": started_at.isoformat(), "interval": self.interval, "profile": self.profile.name,
                              "window_minutes": self.profile.window_minutes, "time_compression": speed})
            first_at: datetime | None = None
            used: set[str] = set()
        else:
            started_at, first_at, used = resumed
        recorded = {c.label for c in self.store.checkpoints(self.tenant_id, self.run_id)
                    if c.recorded_by.startswith("engine (")}
        ticks = 0
        stopped = False
        cause: str | None = None
        announced = ev.state.paused  # a pause the dead driver announced is not announced twice
        seen = len(ev.state.events)  # a resumed window's restored events were pushed by the dead driver
        while True:
            tick_started = self.clock.monotonic()
            first_at, t_s, tick = self._tick(ev, first_at)
            ticks += 1
            if ev.state.paused:
                if not announced:
                    self.store.audit(self.tenant_id, self.actor, "auto_pause", self.run_id,
                                     {"reason": ev.state.pause_reason})
                    announced = True
                decision = self._lift_pause(ev, used)
                if decision == "rollback":
                    stopped, cause = True, AUTO_PAUSE_ROLLBACK
                    break
            else:
                announced = False
            for cp in ev.checkpoints:
                if cp.label not in recorded:
                    self.store.save_checkpoint(Checkpoint(
                        tenant_id=self.tenant_id, execution_run_id=self.run_id, label=cp.label,
                        metrics_ok=cp.metrics_ok, recorded_by=f"engine ({self.actor})",
                        notes=f"{cp.warnings} warning(s), {cp.alerts} alert(s), {cp.stale} stale source(s), "
                              f"{cp.concurrent} concurrent"))
                    recorded.add(cp.label)
                    self._emit_checkpoint(ev, cp)
            seen = self._emit_events(ev, seen)
            if on_tick:
                on_tick(ev, tick)
            if ev.state.stop_reason:
                stopped, cause = True, FAILURE_CONDITION
                break
            if window_complete(self.profile, t_s) and not ev.state.paused:
                break  # an AUTO-PAUSE holds the decision back until someone lifts it
            self._sleep_until(tick_started + self.interval)
        check = self.verify_digests() if self.verify_digests is not None else None
        verdict = with_check(ev.finish(index_created), check)
        end = t_label(self.profile.checkpoints[0], ev.state.elapsed_s)
        for cp in (c for c in ev.checkpoints if c.label not in recorded):
            # Due exactly at the last tick: evaluated on the window's data up to there, and said so.
            self.store.save_checkpoint(Checkpoint(
                tenant_id=self.tenant_id, execution_run_id=self.run_id, label=cp.label, metrics_ok=cp.metrics_ok,
                recorded_by=f"engine ({self.actor})", notes=f"{cp.warnings} warning(s), {cp.alerts} alert(s); "
                f"evaluated at the window's {'stop' if stopped else 'end'} ({end}) on the data up to then"))
            self._emit_checkpoint(ev, cp)
        self._emit_events(ev, seen)
        stop = {"stopped_early": stopped, "stop_cause": cause, "stopped_at_s": round(ev.state.elapsed_s, 1),
                "stop_reason": ev.state.stop_reason} if stopped else {"stopped_early": False}
        self.store.save_decision(Decision(
            tenant_id=self.tenant_id, execution_run_id=self.run_id, verdict=verdict.verdict,
            evidence=jsonable(verdict.as_dict() | {"profile": self.profile.name,
                                                   "verification": check.as_dict() if check else None} | stop),
            decided_by=f"engine ({self.actor})"))
        self._emit("verdict", {"verdict": verdict.verdict, "reasons": list(verdict.reasons),
                               "warnings": list(verdict.warnings), "next_step": verdict.next_step,
                               "stopped_early": stopped, "stop_cause": cause})
        return MonitorResult(verdict, ev.state, started_at, ticks, stopped, cause)

    def _resume(self, ev: WindowEvaluator, started: list[Any]) -> tuple[datetime, datetime | None, set[str]] | None:
        """A window this run already started (its driver died; we took the run over): feed ``ev``
        the stored ticks — exactly as ``replay`` does, approvals included — and carry on from there.
        The time nobody sampled stays a gap: the window's clock counts from its first sample, so it
        cannot be lengthened or shortened by a crash. Returns the window's start, its first sample's
        time and the approvals already used; None for a window not yet started (``started``: the
        run's ``monitoring_started`` entries, read once by the caller)."""
        if not started:
            return None
        window_start = datetime.fromisoformat(started[-1].details["at"])
        rows = [r for r in self.store.samples(self.tenant_id, self.run_id) if r.sampled_at >= window_start]
        approvals = sorted(self.store.approvals(self.tenant_id, self.run_id, AUTO_PAUSE), key=lambda a: a.created_at)
        used: set[str] = set()
        first_at: datetime | None = None
        last_at: datetime | None = None
        for t_s, tick in ticks_of(rows, window_start):
            at = window_start + timedelta(seconds=t_s)
            first_at = first_at or at
            last_at = at
            ev.add((at - first_at).total_seconds(), tick)
            while ev.state.paused and approvals and approvals[0].created_at <= at:
                if approvals[0].decision == "rollback":
                    break  # left for the first live tick, which stops the window on it
                a = approvals.pop(0)
                used.add(a.id)
                ev.approve(in_role(a.actor, a.role), a.decision)
        now = self.clock.now()
        self.store.audit(self.tenant_id, self.actor, "monitoring_resumed", self.run_id, {
            "window_started_at": window_start.isoformat(), "ticks_restored": len({r.sampled_at for r in rows}),
            "last_sample_at": last_at.isoformat() if last_at else None,
            "gap_s": round((now - last_at).total_seconds(), 1) if last_at else None,
            "elapsed_s": round((now - first_at).total_seconds(), 1) if first_at else 0.0})
        return window_start, first_at, used

    def _lift_pause(self, ev: WindowEvaluator, used: set[str]) -> str | None:
        """An AUTO-PAUSE lifts only on an explicit approval recorded in the store (any console,
        the CLI's ``approve``): resume, or roll back."""
        for a in self.store.approvals(self.tenant_id, self.run_id, AUTO_PAUSE):
            if a.id in used:
                continue
            used.add(a.id)
            ev.approve(in_role(a.actor, a.role), a.decision)
            self.store.audit(self.tenant_id, self.actor, "auto_pause_lifted", self.run_id,
                             {"decision": a.decision, "approved_by": a.actor, "role": a.role})
            return a.decision
        return None

    def close(self) -> None:
        for s in self.sources:
            s.close()


def baselines_of(rows: Sequence[MetricSample]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.value is not None:
            out[r.metric].append(r.value)
    return dict(out)


def baseline_times_of(rows: Sequence[MetricSample], reference: datetime) -> dict[str, list[float]]:
    """The times of ``baselines_of``'s values, in seconds relative to ``reference`` (the window's
    start: negative)."""
    out: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.value is not None:
            out[r.metric].append((r.sampled_at - reference).total_seconds())
    return dict(out)


def ticks_of(rows: Sequence[MetricSample], window_start: datetime) -> list[tuple[float, Tick]]:
    """Stored samples, grouped back into ticks, as seconds into the window."""
    grouped: dict[datetime, Tick] = defaultdict(dict)
    for r in rows:
        if r.sampled_at >= window_start:
            grouped[r.sampled_at][r.metric] = (r.value, r.error, (r.meta or {}).get("n"))
    return [((at - window_start).total_seconds(), tick) for at, tick in sorted(grouped.items())]


def replay(store: Store, tenant_id: str, run_id: str, profile: Profile) -> tuple[Verdict, WindowEvaluator]:
    """Re-evaluate a finished run's stored samples under ``profile``."""
    run = store.get_run(tenant_id, run_id)
    if run is None:
        raise LookupError(f"run {run_id} not found for tenant {tenant_id}")
    started = store.audit_entries(tenant_id, run_id, "monitoring_started")
    if not started or run.alter_started_at is None:
        raise LookupError(f"run {run_id} has no monitoring window to replay")
    window_start = datetime.fromisoformat(started[-1].details["at"])
    rows = store.samples(tenant_id, run_id)
    before = [r for r in rows if r.sampled_at < run.alter_started_at]
    ev = WindowEvaluator(profile, baselines_of(before), {r.metric for r in rows},
                         baseline_times_of(before, window_start))
    approvals = sorted(store.approvals(tenant_id, run_id, AUTO_PAUSE), key=lambda a: a.created_at)
    first = None
    for t_s, tick in ticks_of(rows, window_start):
        first = t_s if first is None else first
        ev.add(t_s - first, tick)
        at = window_start + timedelta(seconds=t_s)
        while ev.state.paused and approvals and approvals[0].created_at <= at:
            a = approvals.pop(0)
            ev.approve(in_role(a.actor, a.role), a.decision)
            if a.decision == "rollback":
                return ev.finish(run.index_created_by_run), ev
    return ev.finish(run.index_created_by_run), ev


@dataclass
class Observation:
    kind: str  # post_success | post_rollback
    minutes: float
    ok: bool
    alerts: list[str]
    warnings: list[str]
    ticks: int
    stopped_early: bool = False  # post-success: a success limit crossed ends the observation at once


def observation_profile(profile: Profile, kind: str) -> Profile:
    """Runbook 5.4's observations as profiles (docs/thresholds.md#observations).

    ``post_rollback``: 30 minutes under the window's own bands. ``post_success``: 15 minutes
    "before declaring success", held to the success criteria of runbook 5.1 — a metric that has a
    PASS limit measured as the bands measure it (p50 < +10 %, p99 < +20 %, lock wait < 1 s, lag
    < 30 s) is critical at that limit, and its warning no later — so the index that passed is still
    passing when success is declared. Other metrics (and the error rate, whose PASS limit is an increase
    over the baseline) keep their bands."""
    from dataclasses import replace as _replace

    if kind == "post_rollback":
        return _replace(profile, window_minutes=profile.post_rollback_minutes, checkpoints=(0,),
                        name=f"{profile.name} · post-rollback observation")
    if kind != "post_success":
        raise ValueError(f"an observation is post_success or post_rollback, not {kind!r}")
    rules = []
    for r in profile.rules:
        if r.pass_below is not None and r.pass_mode == "measure":
            warning = min(r.warning, r.pass_below) if not r.lower_is_worse else max(r.warning, r.pass_below)
            note = r.note if r.note is None or r.worse_or_equal(warning, r.note) else None
            r = _replace(r, warning=warning, critical=r.pass_below, note=note)
        # The error rate's PASS limit is an increase over the baseline, not a level the bands can
        # compare: it keeps its bands (and an alert at 1 % still ends the observation).
        rules.append(r)
    return _replace(profile, rules=tuple(rules), window_minutes=profile.post_success_minutes, checkpoints=(0,),
                    name=f"{profile.name} · post-success observation")


def observe(monitor: Monitor, kind: str, alter_started_at: datetime,
            on_tick: Callable[[WindowEvaluator, Tick], None] | None = None) -> Observation:
    """Runbook 5.4: 15 minutes after a success (``post_success``), 30 after a rollback
    (``post_rollback``), against the same baseline, each under its own profile
    (``observation_profile``); OK when no alert fired and no failure condition tripped. A
    post-success observation stops at its first alert: success is not declared. ``on_tick`` runs
    after every tick (the executor watches the kill switch and renews its lease there). The clock
    is the monitor's: a drill's compressed clock shortens it alike."""
    profile = observation_profile(monitor.profile, kind)
    minutes = profile.window_minutes
    monitor.store.audit(monitor.tenant_id, monitor.actor, f"{kind}_observation_started", monitor.run_id,
                        {"minutes": minutes, "at": monitor.clock.now().isoformat(), "profile": profile.name})
    monitor._emit("observation_started", {"kind": kind, "minutes": minutes})
    ev = monitor.evaluator(alter_started_at, profile, monitor.clock.now())
    first_at: datetime | None = None
    ticks = 0
    seen = 0
    stopped = False
    while True:
        started = monitor.clock.monotonic()
        first_at, t_s, tick = monitor._tick(ev, first_at)
        ticks += 1
        seen = monitor._emit_events(ev, seen, profile)
        if on_tick:
            on_tick(ev, tick)
        if kind == "post_success" and (ev.state.alerts or ev.state.stop_reason):
            stopped = True
            break
        if window_complete(profile, t_s):
            break
        monitor._sleep_until(started + monitor.interval)
    result = Observation(kind, minutes, not ev.state.alerts and ev.state.stop_reason is None,
                         [e.detail for e in ev.state.alerts], [e.detail for e in ev.state.warnings], ticks, stopped)
    monitor.store.audit(monitor.tenant_id, monitor.actor, f"{kind}_observation_completed", monitor.run_id,
                        {"ok": result.ok, "alerts": result.alerts[:5], "warnings": len(result.warnings),
                         "ticks": ticks, "stopped_early": stopped, "elapsed_s": round(ev.state.elapsed_s, 1)})
    monitor._emit("observation_completed", {"kind": kind, "minutes": minutes, "ok": result.ok,
                                            "alerts": result.alerts, "warnings": len(result.warnings)})
    return result


TEAM_DECISIONS = ("keep", "remove")


def record_team_decision(store: Store, tenant_id: str, run_id: str, decision: str, actor: str,
                         roles: set[str], note: str = "") -> Decision:
    """An INCONCLUSIVE verdict is settled by the team (runbook 6.1), recorded by the canary lead.
    It stays INCONCLUSIVE — the record says what the team chose and who recorded it; it never turns
    into a PASS."""
    if decision not in TEAM_DECISIONS:
        raise ValueError(f"the team decides 'keep' or 'remove', not {decision!r}")
    text = guard.refusal_text("inconclusive_decision", actor, roles)
    latest = store.decisions(tenant_id, run_id)
    why = text or ("" if latest and latest[-1].verdict == "INCONCLUSIVE" else
                   "only an INCONCLUSIVE verdict is settled by a team decision")
    if why:  # one audit entry for either refusal (the console used to write a second one)
        store.audit(tenant_id, actor, "team_decision_refused", run_id,
                    {"decision": decision, "why": why, "roles": sorted(roles)})
        raise PermissionError(why) if text else ValueError(why)
    return store.save_decision(Decision(
        tenant_id=tenant_id, execution_run_id=run_id, verdict="INCONCLUSIVE",
        evidence=jsonable({**(latest[-1].evidence or {}), "team_decision": decision, "note": note,
                           "recorded_by": actor}),
        decided_by=actor))


def approve_pause(store: Store, tenant_id: str, run_id: str, decision: str, actor: str, roles: set[str],
                  note: str = "") -> Approval:
    """Record the approval that lifts an AUTO-PAUSE: 'resume' or 'rollback', by the canary lead."""
    if decision not in ("resume", "rollback"):
        raise ValueError(f"an AUTO-PAUSE is lifted by 'resume' or 'rollback', not {decision!r}")
    guard.check(store, tenant_id, actor, roles, "auto_pause_approval", run_id, decision=decision)
    allowed = set(roles) & PAUSE_APPROVERS
    return store.add_approval(Approval(tenant_id=tenant_id, execution_run_id=run_id, kind=AUTO_PAUSE,
                                       role=sorted(allowed)[0], actor=actor, decision=decision, note=note))
