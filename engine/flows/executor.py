"""The executor (docs/runbook.md#4-execution flow; docs/kill-switch.md, docs/states.md, docs/rollback.md).

scope validation → create run (scheduled, store-wide lock) → atomic claim with a lease →
running → kill-switch check → target checks → rollback point → baseline (extended while too short
for its noise) → ALTER … ADD INDEX … ALGORITHM=INPLACE, LOCK=NONE on a dedicated connection, the
kill switch watched while it runs →
kill-switch check after → cool-down → verification → completed | failed | cancelled | rolled_back.

Every transition goes through ``Store.transition``, which writes its audit entry with the actor.
The executor never drops an index in canary mode: there it records "would roll back" and leaves
the DROP to the manual flow.

The steps are mixed in by role: the ALTER, watched and cancelled (engine/flows/executor_alter.py),
after the ALTER — the window, the verdict, the observation (engine/flows/executor_window.py) —
the lease, the take-over and crash recovery (engine/flows/executor_lease.py) and the baseline's
extension (engine/flows/executor_baseline.py); what they share is engine/flows/executor_base.py.
Here: the run created, claimed and driven step by step up to the ALTER. Callers import ``Executor``, ``Outcome``, ``Abort`` and the cancellation records from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from engine.adapters import digests, sql
from engine.adapters.killswitch import KillSwitchBackend, KillSwitchReading
from engine.adapters.store import ClaimConflict, ExecutionRun, RollbackPoint, Store
from engine.adapters.target import Target, TargetError
from engine.domain.clock import Clock, SystemClock
from engine.domain.identifiers import IdentifierError, check_identifier
from engine.domain.jsonable import jsonable
from engine.domain.plan import Plan
from engine.domain.verification import DigestStats, window
from engine.flows.executor_alter import (
    CANCEL_AFTER,
    CANCEL_DURING,
    AlterSteps,
    record_cancel_after_alter,
    record_cancel_during_alter,
)
from engine.flows.executor_base import Abort, Outcome, reading_details
from engine.flows.executor_baseline import BaselineSteps
from engine.flows.executor_lease import LeaseSteps
from engine.flows.executor_window import AfterAlterSteps


class Observer(Protocol):
    """Measures the table's digests before and after the change (the baseline hook)."""

    def baseline(self, run: ExecutionRun, wait: Callable[[float], KillSwitchReading | None]) -> list[DigestStats]: ...

    def after(self, run: ExecutionRun, wait: Callable[[float], KillSwitchReading | None]) -> list[DigestStats]: ...


class DigestObserver:
    """Digest deltas over a window before the ALTER (baseline) and one after it (verification)."""

    def __init__(self, target: Target, baseline_seconds: float, after_seconds: float):
        self.target = target
        self.baseline_seconds = baseline_seconds
        self.after_seconds = after_seconds

    def _window(self, run: ExecutionRun, seconds: float,
                wait: Callable[[float], KillSwitchReading | None]) -> list[DigestStats]:
        with self.target.session("digests") as s:
            first = digests.snapshot(s, run.schema_name, run.table_name, run.query_digests or ())
        wait(seconds)
        with self.target.session("digests") as s:
            second = digests.snapshot(s, run.schema_name, run.table_name, run.query_digests or ())
        return window(first, second)

    def baseline(self, run: ExecutionRun, wait: Callable[[float], KillSwitchReading | None]) -> list[DigestStats]:
        return self._window(run, self.baseline_seconds, wait)

    def after(self, run: ExecutionRun, wait: Callable[[float], KillSwitchReading | None]) -> list[DigestStats]:
        return self._window(run, self.after_seconds, wait)


def columns_of(plan: Plan) -> list[list[Any]]:
    return [[c.name, c.prefix] for c in plan.change.columns]


def scope_problems(plan: Plan, now: Any) -> list[str]:
    """The scope lock of runbook 1.2–1.3 that the executor itself enforces (pure)."""
    problems = []
    if plan.change.action != "ADD_INDEX":
        problems.append(f"action {plan.change.action} is out of scope: ADD_INDEX only")
    if not plan.off_peak.contains(now):
        problems.append(f"outside the off-peak window {plan.off_peak.describe()}")
    for what, value in (("schema", plan.schema), ("table", plan.change.table), ("index", plan.change.index),
                        *(("column", c.name) for c in plan.change.columns)):
        try:
            check_identifier(value, what)
        except IdentifierError as exc:
            problems.append(str(exc))
    return problems


class Executor(AlterSteps, AfterAlterSteps, LeaseSteps, BaselineSteps):
    def __init__(self, plan: Plan, store: Store, kill_switch: KillSwitchBackend, target: Target,
                 actor: str, worker: str, clock: Clock | None = None, observer: Observer | None = None,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None, monitor: Any = None):
        self.plan = plan
        self.store = store
        self.kill_switch = kill_switch
        self.target = target
        self.actor = actor
        self.worker = worker
        self.clock = clock or SystemClock()
        self.opts = plan.executor
        self.observer = observer or DigestObserver(target, self.opts.baseline_window_seconds,
                                                   self.opts.verify_window_seconds)
        self.on_event = on_event or (lambda _name, _data: None)
        self.monitor = monitor  # engine.flows.monitor.Monitor: the 60-minute window decides
        self.notifier: Any = None  # engine.flows.notify.Notifier: the run's events pushed to the plan's webhooks
        self.tenant = plan.tenant
        self.conn_id = plan.connection.id
        self._last_renew = 0.0

    # --- the whole flow ----------------------------------------------------------------------

    def create_run(self) -> ExecutionRun:
        """A ``scheduled`` run; out-of-scope plans are recorded as failed ``out_of_scope``."""
        self.store.save_connection_profile(self.tenant, self.plan.connection)
        run = ExecutionRun(
            tenant_id=self.tenant, connection_profile_id=self.conn_id, action=self.plan.change.action,
            schema_name=self.plan.schema, table_name=self.plan.change.table, index_name=self.plan.change.index,
            columns=columns_of(self.plan), query_digests=list(self.plan.change.query_digests),
            mode=self.opts.mode, auto_rollback=self.opts.auto_rollback and self.opts.mode != "canary",
        )
        return self.store.create_run(run, self.actor)

    def execute(self, run_id: str) -> Outcome:
        self._notifier_for(run_id)
        try:
            return self._execute(run_id)
        except Abort as stop:
            return stop.outcome
        finally:
            if self.notifier is not None:
                # The last posts (the verdict, the completion) before the driver goes; bounded, so
                # a webhook that is down never holds the run's end (docs/runbook.md#pushed-to-the-webhooks).
                self.notifier.flush()

    def _notifier_for(self, run_id: str) -> None:
        """Push the run's events to the plan's webhooks (engine/flows/notify.py), if it names any; a post
        that failed is told as a ``webhook_failed`` event (the screen, the headless output)."""
        if self.notifier is not None or not self.plan.webhooks:
            return
        from engine.flows.notify import Notifier

        def told(out: Any) -> None:
            self.on_event("webhook_posted" if out.ok else "webhook_failed",
                          {"kind": out.kind, "to": out.where, "attempts": out.attempts, "message": out.message})

        self.notifier = Notifier(self.store, self.plan, run_id, self.actor,
                                 profile=self.monitor.profile if self.monitor is not None else None, on_result=told)

    def _execute(self, run_id: str) -> Outcome:
        run = self._get(run_id)
        problems = scope_problems(self.plan, self.clock.now())
        if run.action != "ADD_INDEX":
            problems.insert(0, f"action {run.action} is out of scope: ADD_INDEX only")
        if problems and run.status == "scheduled":
            self._fail(run, "out_of_scope", "; ".join(problems))

        try:
            run = self.store.claim(self.tenant, run_id, self.worker, self.opts.lease_seconds)
        except ClaimConflict as exc:
            # Not ours: we record the refusal (Store.claim audits it) and leave the run alone.
            raise Abort(Outcome(run_id, run.status, "claim_failed", str(exc))) from None
        self._last_renew = self.clock.monotonic()
        self._event("claimed", lease_s=self.opts.lease_seconds)

        if run.status == "observing":  # taken over after the verdict: observe again, then declare
            decided = self.store.decisions(self.tenant, run.id)
            verdict = decided[-1].verdict if decided else "PASS"
            self._audit(run, "observation_restarted", {"worker": self.worker})
            return self._observe_success(run, verdict, run.error_message or verdict)
        if run.status == "running":
            return self._recover(run)
        run = self.store.transition(self.tenant, run_id, "running", self.actor,
                                    details={"worker": self.worker})
        self._event("running")
        return self._from_kill_check(run)

    def _from_kill_check(self, run: ExecutionRun) -> Outcome:
        reading = self.kill_switch.read(self.tenant, self.conn_id)
        self._audit(run, "kill_switch_checked", reading_details(reading, "before"))
        if reading.active:
            self._fail(run, "kill_switch", f"kill switch {reading.describe()} before the ALTER: aborted")
        if reading.latency_level == "critical":
            self._fail(run, "kill_switch", f"kill-switch API answered in {reading.response_ms:.0f} ms "
                       "(≥ 2000 ms is critical before execution): aborted")
        self._check_target(run)
        if self.monitor is not None:
            self._check_latency_source(run)
        self._rollback_point(run)
        if self.monitor is not None:
            # The monitoring window decides (runbook 5–7); its baseline is sampled here, with the
            # kill switch watched and the lease renewed on every tick.
            def before_alter() -> None:
                reading = self.kill_switch.read(self.tenant, self.conn_id)
                if reading.active:
                    self._audit(run, "kill_switch_checked", reading_details(reading, "before"))
                    self._fail(run, "kill_switch", f"kill switch {reading.describe()} before the ALTER: aborted")
                self._renew(run)
                self._event("baseline_tick")

            self._event("baseline", seconds=self.opts.baseline_window_seconds)
            # The digests and the sample queries' plans before the change (engine/flows/digest_check.py).
            first = self._digest_snapshot(run)
            explained = self._explain(run)
            self.monitor.baseline(self.opts.baseline_window_seconds, before_alter)
            extended = self._extend_baseline(run, before_alter)  # too short for its own noise: sample on
            second = self._digest_snapshot(run)
            baseline: list[DigestStats] = window(first, second) if first is not None and second is not None else []
            extra: dict[str, Any] = {"explain_before": jsonable([p.__dict__ for p in explained])}
        else:
            baseline = self.observer.baseline(run, self._wait_watching_before_alter(run))
            extra = {}
            extended = 0.0
        run = self.store.update_run(self.tenant, run.id, baseline={"digests": [d.__dict__ for d in baseline], **extra})
        if self.monitor is not None:  # the window's collectors sampled it; their samples are the baseline
            self._audit(run, "baseline_captured", {"by": "monitoring collectors", "seconds":
                                                   self.opts.baseline_window_seconds + extended,
                                                   "extended_s": extended})
        else:
            self._audit(run, "baseline_captured", {"digests": len(baseline),
                                                   "statements": sum(d.count for d in baseline)})
        self._check_kill_before_alter(run)
        run = self._alter(run)
        return self._after_alter(run, baseline)

    # --- steps ---------------------------------------------------------------------------

    def _check_target(self, run: ExecutionRun) -> None:
        try:
            with self.target.session("precheck") as s:
                info = s.table_info(run.schema_name, run.table_name)
                if info is None:
                    self._fail(run, "execution_error", f"table {run.schema_name}.{run.table_name} does not exist")
                columns = {c["name"].lower() for c in s.columns(run.schema_name, run.table_name)}
                missing = [c[0] for c in run.columns or [] if c[0].lower() not in columns]
                if missing:
                    self._fail(run, "execution_error", f"column(s) {', '.join(missing)} not in "
                               f"{run.schema_name}.{run.table_name}")
                if s.index_exists(run.schema_name, run.table_name, run.index_name):
                    # TC-05: it is not ours, so nothing this run does may ever drop it.
                    self._fail(run, "execution_error",
                               f"index {run.index_name} already exists on {run.table_name}; this run did not "
                               "create it and will never drop it")
                self._audit(run, "target_checked", {"engine": info.engine, "estimated_rows": info.estimated_rows,
                                                    "data_mb": info.data_mb, "index_mb": info.index_mb,
                                                    "server": s.server_info().describe()})
        except TargetError as exc:
            self._fail(run, "execution_error", f"target check failed: {exc}")

    def _check_latency_source(self, run: ExecutionRun) -> None:
        """No canary starts without a latency source (docs/monitoring-sources.md): performance_schema
        readable with its statement consumers on, or Prometheus queries the plan names."""
        from engine.adapters import collector_needs

        try:
            with self.target.session("precheck") as s:
                facts = collector_needs.read_facts(s, s.server_info().flavour)
        except TargetError as exc:
            self._fail(run, "execution_error", f"could not check the latency source: {exc}")
        problem = collector_needs.latency_problem(facts, self.plan)
        if problem is not None:
            self._fail(run, "execution_error", f"the canary cannot start: {problem}")
        self._audit(run, "latency_source_checked", {"source": "prometheus" if collector_needs.prometheus_latency(
            self.plan) and not facts.performance_schema else "performance_schema", "account": facts.account})

    def _rollback_point(self, run: ExecutionRun) -> None:
        try:
            with self.target.session("rollback-point") as s:
                server = s.server_info()
                show_create = s.show_create_table(run.schema_name, run.table_name)
                indexes = [i.as_dict() for i in s.indexes(run.schema_name, run.table_name)]
        except TargetError as exc:
            self._fail(run, "execution_error", f"could not capture the rollback point: {exc}")
        ladder = sql.rollback_ladder(run.schema_name, run.table_name, run.index_name, server.flavour,
                                     server.supports_ignored_index)
        self.store.save_rollback_point(RollbackPoint(
            tenant_id=self.tenant, execution_run_id=run.id, show_create=show_create, indexes=indexes,
            ladder=ladder, captured_at=self.clock.now()), self.actor)

    def _check_kill_before_alter(self, run: ExecutionRun) -> None:
        reading = self.kill_switch.read(self.tenant, self.conn_id)
        if reading.active:
            self._audit(run, "kill_switch_checked", reading_details(reading, "before"))
            self._fail(run, "kill_switch", f"kill switch {reading.describe()} before the ALTER: aborted")


__all__ = [
    "CANCEL_AFTER", "CANCEL_DURING", "Abort", "DigestObserver", "Executor", "Observer", "Outcome",
    "columns_of", "record_cancel_after_alter", "record_cancel_during_alter", "reading_details",
    "scope_problems",
]
