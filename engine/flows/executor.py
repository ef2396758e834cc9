"""The executor (docs/runbook.md#4-execution flow; docs/kill-switch.md, docs/states.md, docs/rollback.md).

scope validation → create run (scheduled, store-wide lock) → atomic claim with a lease →
running → kill-switch check → target checks → rollback point → baseline → ALTER … ADD INDEX …
ALGORITHM=INPLACE, LOCK=NONE on a dedicated connection, the kill switch watched while it runs →
kill-switch check after → cool-down → verification → completed | failed | cancelled | rolled_back.

Every transition goes through ``Store.transition``, which writes its audit entry with the actor.
The executor never drops an index in canary mode: there it records "would roll back" and leaves
the DROP to the manual flow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.adapters import digests, sql
from engine.adapters.killswitch import AlterWatch, KillSwitchBackend, KillSwitchReading, watching
from engine.adapters.store import ClaimConflict, ExecutionRun, RollbackPoint, RollbackRecord, Store
from engine.adapters.store.store import StoreLocked
from engine.adapters.target import Target, TargetError, TargetSession
from engine.domain.clock import Clock, SystemClock
from engine.domain.identifiers import IdentifierError, check_identifier
from engine.domain.jsonable import jsonable
from engine.domain.plan import Plan
from engine.domain.runstate import ACTIVE
from engine.domain.verification import DigestStats, VerificationResult, verify, window
from engine.flows.rollback import IndexRollback

PROBE_S = 0.01  # while an ALTER runs: how often the store's commit probe is looked at (docs/kill-switch.md)
KILLED_ALTER_GRACE_S = 15.0  # an ALTER killed from outside: how long its kill switch may take to land


@dataclass
class Outcome:
    run_id: str
    status: str
    fail_reason: str | None = None
    message: str = ""
    verification: VerificationResult | None = None
    details: dict[str, Any] = field(default_factory=dict)


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


class Abort(Exception):
    """Ends the flow early with an outcome already recorded."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


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


class Executor:
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

    def take_over(self, run_id: str) -> Outcome:
        """Drive a run whose driver may be gone (a console killed mid-run): wait — reading the
        store, not claiming — until its lease has run out or the run has ended, then claim it and
        recover (``_recover`` inspects the target before doing anything). A live driver renews
        its lease, so this waits for as long as that driver lives."""
        while True:
            run = self._get(run_id)
            if run.status not in ACTIVE:
                return Outcome(run.id, run.status, run.fail_reason, f"run {run.id[:8]} already ended: {run.status}")
            now = self.clock.now()
            expires = run.lease_expires_at
            if run.claimed_by in (None, self.worker) or expires is None or expires < now:
                return self.execute(run_id)
            left = (expires - now).total_seconds()
            self._event("lease_wait", holder=run.claimed_by, left_s=round(left, 1))
            self.clock.sleep(min(left + 0.05, max(self.opts.kill_poll_seconds, 1.0)))

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
            second = self._digest_snapshot(run)
            baseline: list[DigestStats] = window(first, second) if first is not None and second is not None else []
            extra: dict[str, Any] = {"explain_before": jsonable([p.__dict__ for p in explained])}
        else:
            baseline = self.observer.baseline(run, self._wait_watching_before_alter(run))
            extra = {}
        run = self.store.update_run(self.tenant, run.id, baseline={"digests": [d.__dict__ for d in baseline], **extra})
        if self.monitor is not None:  # the window's collectors sampled it; their samples are the baseline
            self._audit(run, "baseline_captured", {"by": "monitoring collectors", "seconds":
                                                   self.opts.baseline_window_seconds})
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

    def _alter(self, run: ExecutionRun) -> ExecutionRun:
        statement = sql.add_index(run.schema_name, run.table_name, run.index_name,
                                  [(c[0], c[1]) for c in run.columns or []], run.id)
        killer: TargetSession | None = None
        try:
            # Opened before the ALTER starts, so a kill needs no connect time.
            killer = self.target.session("kill-switch")
            alter = self.target.session("alter", read_timeout=None)
            alter.execute(sql.SET_LOCK_WAIT_TIMEOUT, (self.opts.lock_wait_timeout,))
        except TargetError as exc:
            if killer is not None:
                killer.close()
            self._fail(run, "execution_error", f"cannot open the ALTER's connections: {exc}")
        assert killer is not None
        run = self.store.update_run(self.tenant, run.id, alter_sql=statement, alter_thread_id=alter.thread_id,
                                    alter_started_at=self.clock.now())
        self._audit(run, "alter_started", {"sql": statement, "thread_id": alter.thread_id,
                                           "lock_wait_timeout": self.opts.lock_wait_timeout})
        self._event("alter_started", thread_id=alter.thread_id, sql=statement)
        result: dict[str, Any] = {}
        with watching(run.id) as watch:  # a switch set in this process wakes the watch at once
            def work() -> None:
                try:
                    alter.execute(statement)
                    result["ok"] = True
                except TargetError as exc:
                    result["error"] = exc
                finally:
                    done.set()
                    watch.wake.set()

            done = threading.Event()
            worker = threading.Thread(target=work, name=f"alter-{run.id[:8]}", daemon=True)
            worker.start()
            killed = self._watch_alter(run, done, watch, killer, alter)
            worker.join()
            alter.close()
            try:
                return self._settle_alter(run, result, killed, killer, watch)
            finally:
                killer.close()

    def _watch_alter(self, run: ExecutionRun, done: threading.Event, watch: AlterWatch,
                     killer: TargetSession, alter: TargetSession) -> KillSwitchReading | None:
        """Read the switch every poll (or at once when this process sets it) while the ALTER runs;
        KILL it from the connection opened beforehand when the switch is active. A store-backed
        switch is also read as soon as another process commits to the store (its commit probe is
        looked at every PROBE_S), so a switch set elsewhere is not left waiting for the poll."""
        opener = getattr(self.kill_switch, "commit_probe", None)
        with (opener() if opener is not None else nullcontext()) as probe:
            return self._watch_alter_with(run, done, watch, killer, alter, probe)

    def _watch_alter_with(self, run: ExecutionRun, done: threading.Event, watch: AlterWatch,
                          killer: TargetSession, alter: TargetSession,
                          probe: Callable[[], Any] | None) -> KillSwitchReading | None:
        import time

        killed: KillSwitchReading | None = None
        wake = watch.wake
        poll = self.opts.kill_poll_seconds
        try:
            seen = probe() if probe is not None else None
        except Exception:  # noqa: BLE001 - the probe is a shortcut: without it, the poll
            probe = seen = None
        next_read = time.monotonic() + poll
        while not done.is_set():
            woke = wake.wait(min(poll, PROBE_S) if probe is not None else poll)
            wake.clear()
            if done.is_set():
                break
            if probe is not None and not woke and time.monotonic() < next_read:
                if killed is not None:
                    continue  # the KILL is out: the ALTER's end is what is awaited now
                try:
                    now_seen = probe()
                except Exception:  # noqa: BLE001 - the probe is a shortcut; the poll still reads
                    now_seen = None
                if now_seen == seen:
                    continue
                seen = now_seen
            next_read = time.monotonic() + poll
            reading = self.kill_switch.read(self.tenant, self.conn_id)
            if reading.active and killed is None:
                try:
                    killer.kill_query(alter.thread_id)
                    # Nothing is written here: the KILL is the only thing on its path. What it came
                    # to is audited once the server said (alter_killed with the cancellation, or
                    # alter_finished_before_kill), docs/kill-switch.md.
                    killed, watch.killed_at = reading, time.monotonic()
                except TargetError as exc:
                    watch.answered.set()
                    self._audit(run, "alter_kill_failed", {"error": str(exc), "thread_id": alter.thread_id})
            watch.answered.set()  # an activation in this process waits for this before its own work
            self._renew(run)
            self._event("alter_progress", killed=killed is not None)
        return killed

    def _settle_alter(self, run: ExecutionRun, result: dict[str, Any], killed: KillSwitchReading | None,
                      killer: TargetSession, watch: AlterWatch | None = None) -> ExecutionRun:
        error: TargetError | None = result.get("error")
        try:
            exists = killer.index_exists(run.schema_name, run.table_name, run.index_name)
        except TargetError:
            with self.target.session("verify") as s:
                exists = s.index_exists(run.schema_name, run.table_name, run.index_name)
        if watch is None:
            return self._settle_read(run, error, exists, killed, None)
        from engine.flows.enforce import AlterKill

        stopped = killed is not None or (error is not None and error.kind == "interrupted")
        outcome = AlterKill(run.id, run.alter_thread_id if stopped else None, True, exists,
                            f"{run.index_name} on {run.schema_name}.{run.table_name}",
                            audited_by_owner=killed is not None)
        try:
            return self._settle_read(run, error, exists, killed, watch)
        finally:
            # An activation in this process reports what its kill came to once the run has it on
            # record (the cancellation committed): it does nothing of its own meanwhile.
            watch.publish(outcome)

    def _settle_read(self, run: ExecutionRun, error: TargetError | None, exists: bool,
                     killed: KillSwitchReading | None, watch: AlterWatch | None) -> ExecutionRun:
        """The ALTER has ended and its index was read back: record what that means."""
        now = self.clock.now()
        own_kill = killed  # our KILL: its alter_killed entry is ours to write
        if killed is None and error is not None and error.kind == "interrupted" and not exists:
            # Killed from outside: a console's F9 kills the ALTER at once even when the store is
            # too busy to record the switch yet. Give the switch time to land before calling it
            # anything but the kill switch.
            killed = self._switch_within(run, KILLED_ALTER_GRACE_S)
        if killed is not None and not exists:
            self._cancel_killed_alter(run, killed, exists, self._kill_details(run, own_kill, watch))
        if error is not None and error.kind == "lost_connection" and not exists:
            # Our client lost the ALTER's connection; the server may still be building the index.
            with self.target.session("recovery") as s:
                orphan = s.find_alter(run.id)
            if orphan is not None:
                self._audit(run, "alter_connection_lost", {"thread_id": orphan["id"], "error": str(error)})
                exists = self._await_orphan_alter(run, int(orphan["id"]))
                error = None if exists else error
        if error is not None and not exists:
            kind, msg = error.kind, str(error)
            if kind == "lock_none_refused":
                msg = f"the server refused ALTER … LOCK=NONE for this table ({error}); no locking fallback is attempted"
            elif kind == "lock_wait_timeout":
                msg = (f"the ALTER waited {self.opts.lock_wait_timeout} s for the table's metadata lock and gave up "
                       f"({error}); a long transaction holds the table{self._holders(run)}")
            elif kind == "duplicate_key_name":
                msg = f"index {run.index_name} appeared while we ran ({error}); not ours, never dropped"
            self.store.update_run(self.tenant, run.id, alter_finished_at=now)
            self._fail(run, "execution_error", msg, details={"error_kind": kind, "code": error.code})
        if not exists:
            self._fail(run, "execution_error", "the ALTER returned but the index is not there")
        run = self.store.update_run(self.tenant, run.id, alter_finished_at=now, index_created_by_run=True)
        self._audit(run, "index_added", {"sql": run.alter_sql, "thread_id": run.alter_thread_id,
                                         **self._index_size(run)})
        self._event("index_added")
        if killed is not None:
            # Our KILL met the ALTER in its commit phase: it finished anyway, and that is what the
            # kill came to (no alter_killed: it killed nothing).
            self._audit(run, "alter_finished_before_kill", dict(self._kill_details(run, killed, watch) or {},
                                                                outcome="finished_before", index_present=True))
            self._cancel_after_alter(run, killed)
        return run

    def _index_size(self, run: ExecutionRun) -> dict[str, float]:
        """The new index's size: the table's index bytes now less those the target check recorded
        before the ALTER (an estimate from the table's statistics; the rollback's ETA uses it)."""
        before = self.store.audit_entries(self.tenant, run.id, "target_checked", limit=1, latest=True)
        was = (before[-1].details or {}).get("index_mb") if before else None
        try:
            with self.target.session("precheck") as s:
                info = s.table_info(run.schema_name, run.table_name)
        except TargetError:
            return {}
        if info is None or not isinstance(was, (int, float)):
            return {}
        return {"index_mb": round(max(info.index_mb - was, 0.0), 2), "table_index_mb": info.index_mb}

    def _switch_within(self, run: ExecutionRun, seconds: float) -> KillSwitchReading | None:
        """The kill switch, if it reads active within ``seconds`` (real seconds: a locked store
        clears in real time)."""
        import time

        deadline = time.monotonic() + seconds
        while True:
            reading = self.kill_switch.read(self.tenant, self.conn_id)
            if reading.active:
                self._audit(run, "kill_switch_checked", reading_details(reading, "during"))
                return reading
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)

    def _holders(self, run: ExecutionRun) -> str:
        """Who holds the table, for the message: the sessions a DBA would look at first."""
        try:
            with self.target.session("mdl") as s:
                trx = s.long_transactions_on_table(run.schema_name, run.table_name, older_than_s=0)
        except TargetError:
            return ""
        if not trx:
            return ""
        shown = ", ".join(f"thread {t['thread_id']} ({t.get('user') or '?'}, open {t.get('age_s') or 0} s)"
                          for t in trx[:5])
        return f": {shown}"

    def _kill_details(self, run: ExecutionRun, own_kill: KillSwitchReading | None,
                      watch: AlterWatch | None) -> dict[str, Any] | None:
        """Our KILL's audit details (the reading that called for it, the thread, the wait from the
        KILL to the ALTER's end); None when the KILL was not ours."""
        import time

        if own_kill is None:
            return None
        sent = watch.killed_at if watch is not None else None
        return dict(reading_details(own_kill, "during"), thread_id=run.alter_thread_id, outcome="killed",
                    index_present=False, enforcer=self.worker,
                    **({"waited_ms": round((time.monotonic() - sent) * 1000, 1)} if sent is not None else {}))

    def _cancel_killed_alter(self, run: ExecutionRun, reading: KillSwitchReading, exists: bool,
                             killed: dict[str, Any] | None = None) -> None:
        record_cancel_during_alter(self.store, run, reading, self.actor, self.clock, killed)
        self._event("cancelled", where="during")
        raise Abort(Outcome(run.id, "cancelled", "kill_switch", CANCEL_DURING))

    def _cancel_after_alter(self, run: ExecutionRun, reading: KillSwitchReading) -> None:
        """docs/kill-switch.md: after the ALTER, stop, leave the index, and pre-fill the manual rollback."""
        record_cancel_after_alter(self.store, run, reading, self.actor)
        self._event("cancelled", where="after")
        raise Abort(Outcome(run.id, "cancelled", "kill_switch", CANCEL_AFTER))

    def _after_alter(self, run: ExecutionRun, baseline: list[DigestStats]) -> Outcome:
        reading = self.kill_switch.read(self.tenant, self.conn_id)
        self._audit(run, "kill_switch_checked", reading_details(reading, "after"))
        if reading.active:
            self._cancel_after_alter(run, reading)
        watch = self._wait_watching_after_alter(run)
        cooldown = self._cooldown_left(run)
        if cooldown > 0:
            self._event("cooldown", seconds=cooldown)
            watch(cooldown)
        if self.monitor is not None:
            decided = self.store.decisions(self.tenant, run.id)
            if decided:  # the window ended before its driver died: its verdict stands
                return self._conclude(run, decided[0].verdict, decided[0].evidence or {})
            return self._monitoring_window(run)
        after = self.observer.after(run, watch)
        result = verify(baseline, after)
        run = self.store.update_run(self.tenant, run.id, verification=jsonable(result.as_dict()))
        self._audit(run, "verification_completed", {"status": result.status, "rule": result.rule,
                                                    "message": result.message, "n": result.sample_count})
        if result.status == "success":
            self.store.transition(self.tenant, run.id, "completed", self.actor, message=result.message)
            return Outcome(run.id, "completed", None, result.message, result)
        if result.status == "inconclusive":
            # Seed 001: never an automatic rollback on too few samples; the team decides.
            self.store.transition(self.tenant, run.id, "completed", self.actor,
                                  message=f"INCONCLUSIVE: {result.message}")
            return Outcome(run.id, "completed", None, f"INCONCLUSIVE: {result.message}", result)
        return self._verification_failed(run, result)

    def _monitoring_window(self, run: ExecutionRun) -> Outcome:
        assert self.monitor is not None

        def on_tick(_ev: Any, _tick: Any) -> None:
            reading = self.kill_switch.read(self.tenant, self.conn_id)
            if reading.active:
                from engine.domain.stops import t_label

                elapsed = _ev.state.elapsed_s
                self._audit(run, "monitoring_stopped", {
                    "cause": "kill_switch", "stopped_at_s": round(elapsed, 1),
                    "stopped_at": t_label(self.monitor.profile.checkpoints[0], elapsed), "verdict": None})
                self._cancel_after_alter(run, reading)
            self._renew(run)
            self._event("monitor_tick", elapsed_s=_ev.state.elapsed_s, concurrent=_ev.state.concurrent)

        self._event("monitoring", window_minutes=self.monitor.profile.window_minutes)
        self.monitor.verify_digests = self._digest_check_at_end(run)
        if self.notifier is not None and self.notifier.on_monitor_event not in self.monitor.listeners:
            self.monitor.listeners.append(self.notifier.on_monitor_event)
        result = self.monitor.window(run.alter_started_at or self.clock.now(), True, on_tick,
                                     speed=float(getattr(self.clock, "speed", 1.0)))
        self._audit(run, "monitoring_completed", {"verdict": result.verdict.verdict, "ticks": result.ticks,
                                                  "stopped_early": result.stopped_early,
                                                  "stop_cause": result.stop_cause})
        return self._conclude(run, result.verdict.verdict, jsonable(
            result.verdict.as_dict() | {"stopped_early": result.stopped_early, "stop_cause": result.stop_cause}))

    def _conclude(self, run: ExecutionRun, verdict: str, evidence: dict[str, Any]) -> Outcome:
        """The window's verdict decides the run's end (runbook 5.5, 6.2)."""
        summary = f"{verdict}: " + ("; ".join(evidence.get("reasons") or []) or str(evidence.get("next_step", "")))
        if verdict in ("PASS", "PASS WITH WARNING") and self.monitor is not None:
            self.store.transition(self.tenant, run.id, "observing", self.actor, message=summary[:2000])
            return self._observe_success(self._get(run.id), verdict, summary)
        if verdict in ("PASS", "PASS WITH WARNING", "INCONCLUSIVE"):
            return self._complete(run, verdict, summary)
        # Why the window failed names the run's fail_reason: a harm limit crossed (the window
        # stopped), a rollback approved during an AUTO-PAUSE, or the full window's verdict.
        from engine.domain.stops import fail_reason_for

        reason = fail_reason_for(evidence)
        self._would_roll_back(run, summary, {"metrics_at_decision": evidence}, reason)
        return Outcome(run.id, "failed", reason, summary, details={"verdict": verdict, "would_roll_back": True})

    def _complete(self, run: ExecutionRun, verdict: str, summary: str) -> Outcome:
        self.store.transition(self.tenant, run.id, "completed", self.actor, message=summary[:2000])
        self._event("completed", verdict=verdict)
        return Outcome(run.id, "completed", None, summary, details={"verdict": verdict})

    def _observe_success(self, run: ExecutionRun, verdict: str, summary: str) -> Outcome:
        """Runbook 5.4: the 15-minute post-success observation before success is declared
        (engine/flows/monitor.py ``observe``), the kill switch watched on every tick as in the window. A
        run taken over while observing observes again from the start: an observation is never
        shortened by a crash. Not OK → ``failed`` (``observation_failed``) with the manual rollback
        prepared, as a FAIL verdict would."""
        assert self.monitor is not None
        from engine.flows.monitor import observe

        def on_tick(ev: Any, _tick: Any) -> None:
            reading = self.kill_switch.read(self.tenant, self.conn_id)
            if reading.active:
                self._audit(run, "observation_stopped", {"cause": "kill_switch",
                                                         "stopped_at_s": round(ev.state.elapsed_s, 1)})
                self._cancel_after_alter(run, reading)
            self._renew(run)
            self._event("observation_tick", elapsed_s=ev.state.elapsed_s)

        if self.notifier is not None and self.notifier.on_monitor_event not in self.monitor.listeners:
            self.monitor.listeners.append(self.notifier.on_monitor_event)
        minutes = self.monitor.profile.post_success_minutes
        self._event("observing", minutes=minutes, verdict=verdict)
        result = observe(self.monitor, "post_success", run.alter_started_at or self.clock.now(), on_tick)
        if result.ok:
            return self._complete(run, verdict, f"{summary} — post-success observation OK ({minutes:g} min)")
        why = "; ".join(result.alerts[:3]) or "a failure condition tripped"
        message = f"post-success observation NOT OK after a {verdict}: {why}"
        self._would_roll_back(run, message, {"metrics_at_decision": {"observation": {
            "kind": "post_success", "minutes": minutes, "alerts": result.alerts[:5],
            "warnings": result.warnings[:5], "verdict": verdict}}}, "observation_failed")
        return Outcome(run.id, "failed", "observation_failed", message,
                       details={"verdict": verdict, "would_roll_back": True})

    # --- verification in a monitored run (engine/flows/digest_check.py) -------------------------

    def _digest_snapshot(self, run: ExecutionRun) -> list[DigestStats] | None:
        try:
            with self.target.session("digests") as s:
                return digests.snapshot(s, run.schema_name, run.table_name, run.query_digests or ())
        except TargetError as exc:
            self._audit(run, "digests_unreadable", {"error": str(exc)[:500]})
            return None

    def _explain(self, run: ExecutionRun) -> list[Any]:
        from engine.flows.digest_check import explain

        if not self.plan.change.sample_queries:
            return []
        try:
            with self.target.session("explain") as s:
                return explain(s, run.table_name, self.plan.change.sample_queries)
        except TargetError as exc:
            self._audit(run, "explain_failed", {"error": str(exc)[:500]})
            return []

    def _digest_check_at_end(self, run: ExecutionRun) -> Callable[[], Any]:
        """The window's start snapshot now (kept on the run, so a driver that takes the run over
        judges from the same start), and the check the monitor runs when the window ends."""
        from engine.flows.digest_check import DigestCheck, QueryPlan, judge

        stored = dict(self._get(run.id).baseline or {})
        if "window_start" not in stored:
            start = self._digest_snapshot(run)
            stored["window_start"] = None if start is None else [d.__dict__ for d in start]
            self.store.update_run(self.tenant, run.id, baseline=jsonable(stored))

        def check() -> DigestCheck:
            before = [DigestStats.from_dict(d) for d in stored.get("digests") or []]
            start = stored.get("window_start")
            end = self._digest_snapshot(run)
            if start is None or end is None:
                return DigestCheck("inconclusive", (), "the table's digests could not be read (see the audit "
                                   "trail): rows examined and full scans not judged")
            return judge(before, window([DigestStats.from_dict(d) for d in start], end), run.index_name,
                         self.plan.change.sample_queries,
                         tuple(QueryPlan(**p) for p in stored.get("explain_before") or []), tuple(self._explain(run)))
        return check

    def _cooldown_left(self, run: ExecutionRun) -> float:
        """The cool-down runs from the ALTER's end; a driver that takes the run over waits only what
        is left of it, and not at all once the window has started."""
        if not self.opts.cooldown_seconds:
            return 0.0
        if self.store.audit_entries(self.tenant, run.id, "monitoring_started", limit=1):
            return 0.0
        if run.alter_finished_at is None:
            return float(self.opts.cooldown_seconds)
        done = (self.clock.now() - run.alter_finished_at).total_seconds()
        return max(0.0, min(float(self.opts.cooldown_seconds), self.opts.cooldown_seconds - done))

    def _would_roll_back(self, run: ExecutionRun, reason: str, details: dict[str, Any],
                         fail_reason: str = "verification_failed") -> None:
        """Runbook 6.2: in a canary, automatic rollback is logging only — record the DROP it would
        run, fail the run, and leave the DROP to the manual flow."""
        self.store.save_rollback_record(RollbackRecord(
            tenant_id=self.tenant, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
            rollback_status="would_roll_back", rollback_type="manual", trigger_reason=reason[:2000],
            rollback_sql=sql.drop_index(run.schema_name, run.table_name, run.index_name),
            rollback_details={"canary": run.mode == "canary", **details}, created_by=self.actor,
        ), self.actor, "auto_rollback_would_run")
        self.store.transition(self.tenant, run.id, "failed", self.actor, fail_reason=fail_reason,
                              message=(reason + " (would roll back: the DROP is left to the manual flow)")[:2000])

    def _verification_failed(self, run: ExecutionRun, result: VerificationResult) -> Outcome:
        message = f"verification failed: {result.message}"
        if not run.auto_rollback:
            self._would_roll_back(run, message, {"rule": result.rule,
                                                 "metrics_at_decision": jsonable(result.as_dict())})
            return Outcome(run.id, "failed", "verification_failed", message, result, {"would_roll_back": True})
        rollback = IndexRollback(self.store, self.target, self.actor, self.clock,
                                 max_attempts=self.opts.rollback_attempts,
                                 backoff_s=self.opts.rollback_backoff_seconds,
                                 lock_wait_timeout=self.opts.lock_wait_timeout)
        done = rollback.drop(self._get(run.id), message, rollback_type="auto", fail_reason="verification_failed",
                             details={"metrics_at_decision": jsonable(result.as_dict())})
        if done.status == "completed":
            return Outcome(run.id, "rolled_back", "verification_failed", message, result,
                           {"rollback": done.message})
        self.store.transition(self.tenant, run.id, "failed", self.actor, fail_reason="verification_failed",
                              message=f"{message}; rollback {done.status}: {done.message}")
        return Outcome(run.id, "failed", "verification_failed", message, result,
                       {"rollback": done.status, "rollback_error": done.message, "escalation": "L4"})

    # --- crash recovery (TC-10) ----------------------------------------------------------

    def _recover(self, run: ExecutionRun) -> Outcome:
        """We hold an expired lease's run: look at the target before doing anything."""
        with self.target.session("recovery") as s:
            alter = s.find_alter(run.id)
            exists = s.index_exists(run.schema_name, run.table_name, run.index_name)
        findings = {"alter_in_processlist": alter is not None, "alter_thread": alter and alter["id"],
                    "index_exists": exists, "alter_started_at": str(run.alter_started_at)}
        self._audit(run, "recovery_inspected", findings)
        self._event("recovery", **findings)
        if alter is not None:
            exists = self._await_orphan_alter(run, int(alter["id"]))
        if exists and run.alter_started_at is not None:
            point = self.store.rollback_point(self.tenant, run.id)
            before = {i["name"] for i in (point.indexes if point else []) or []}
            if run.index_name in before:
                self._fail(run, "execution_error", f"index {run.index_name} existed before this run; never dropped")
            run = self.store.update_run(self.tenant, run.id, index_created_by_run=True,
                                        alter_finished_at=run.alter_finished_at or self.clock.now())
            self._audit(run, "index_added", {"recovered": True})
            baseline = [DigestStats.from_dict(d) for d in (run.baseline or {}).get("digests", [])]
            return self._after_alter(run, baseline)
        if exists:
            self._fail(run, "execution_error", f"index {run.index_name} exists but this run never started its "
                       "ALTER: not ours, never dropped")
        # The ALTER never completed and is not running: carry on from the kill-switch check.
        return self._from_kill_check(run)

    def _await_orphan_alter(self, run: ExecutionRun, thread_id: int) -> bool:
        """Watch a dead worker's ALTER to its end, killing it if the kill switch says so."""
        killed = False
        with self.target.session("recovery") as s:
            while True:
                row = s.thread(thread_id)
                if row is None or sql.alter_tag(run.id) not in (row.get("info") or ""):
                    break
                reading = self.kill_switch.read(self.tenant, self.conn_id)
                if reading.active and not killed:
                    s.kill_query(thread_id)
                    killed = True
                    self._audit(run, "alter_killed", dict(reading_details(reading, "during"), thread_id=thread_id,
                                                          orphan=True))
                self._renew(run)
                self.clock.sleep(self.opts.kill_poll_seconds)
            exists = s.index_exists(run.schema_name, run.table_name, run.index_name)
        if killed and not exists:
            self._cancel_killed_alter(run, self.kill_switch.read(self.tenant, self.conn_id), exists)
        return exists

    # --- helpers -------------------------------------------------------------------------

    def _wait_watching_before_alter(self, run: ExecutionRun) -> Callable[[float], KillSwitchReading | None]:
        def wait(seconds: float) -> KillSwitchReading | None:
            reading = self._sleep_watching(run, seconds)
            if reading is not None:
                self._audit(run, "kill_switch_checked", reading_details(reading, "before"))
                self._fail(run, "kill_switch", f"kill switch {reading.describe()} before the ALTER: aborted")
            return reading
        return wait

    def _wait_watching_after_alter(self, run: ExecutionRun) -> Callable[[float], KillSwitchReading | None]:
        def wait(seconds: float) -> KillSwitchReading | None:
            reading = self._sleep_watching(run, seconds)
            if reading is not None:
                self._cancel_after_alter(run, reading)
            return reading
        return wait

    def _sleep_watching(self, run: ExecutionRun, seconds: float) -> KillSwitchReading | None:
        end = self.clock.monotonic() + seconds
        while True:
            reading = self.kill_switch.read(self.tenant, self.conn_id)
            if reading.active:
                return reading
            self._renew(run)
            left = end - self.clock.monotonic()
            if left <= 0:
                return None
            self._event("wait_tick", left_s=left)
            self.clock.sleep(min(left, max(self.opts.kill_poll_seconds, 0.1)))

    def _renew(self, run: ExecutionRun) -> None:
        if self.clock.monotonic() - self._last_renew >= self.opts.lease_seconds / 3:
            try:
                renewed = self.store.renew_lease(self.tenant, run.id, self.worker, self.opts.lease_seconds)
            except StoreLocked as exc:
                # Another process holds the store's lock: the run goes on (the lease is there for
                # exactly this); it is renewed on the next look, and lost only if the lock outlasts it.
                self._event("lease_renewal_delayed", error=str(exc)[:200])
                return
            if not renewed:
                # Another worker took the run over (ours ran out): two drivers must never act on
                # one run, so this one stops here and leaves everything to the new driver.
                holder = self._get(run.id).claimed_by
                self._audit(run, "lease_lost", {"worker": self.worker, "now_held_by": holder})
                self._event("lease_lost", holder=holder)
                raise Abort(Outcome(run.id, "running", "lease_lost",
                                    f"{holder or 'another worker'} took the run over; this worker stopped"))
            self._last_renew = self.clock.monotonic()

    def _fail(self, run: ExecutionRun, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        self.store.transition(self.tenant, run.id, "failed", self.actor, fail_reason=reason, message=message,
                              details=details)
        self._event("failed", fail_reason=reason, message=message)
        raise Abort(Outcome(run.id, "failed", reason, message, details=details or {}))

    def _audit(self, run: ExecutionRun, action: str, details: dict[str, Any]) -> None:
        self.store.audit(self.tenant, self.actor, action, run.id, details)

    def _event(self, name: str, **data: Any) -> None:
        if self.notifier is not None:
            self.notifier.on_executor_event(name, data)
        self.on_event(name, data)

    def _get(self, run_id: str) -> ExecutionRun:
        run = self.store.get_run(self.tenant, run_id)
        if run is None:
            raise Abort(Outcome(run_id, "missing", None, f"run {run_id} not found for tenant {self.tenant}"))
        return run


CANCEL_DURING = "kill switch during the ALTER: ALTER killed, index verified absent"
CANCEL_AFTER = "kill switch after the ALTER: index left in place; manual rollback prepared"


def record_cancel_during_alter(store: Store, run: ExecutionRun, reading: KillSwitchReading, actor: str,
                               clock: Clock, killed: dict[str, Any] | None = None) -> None:
    """The ALTER was killed and the index is verified absent: rollback record and run cancelled, in
    one transaction (the ALTER's end is recorded with the cancellation, the kill's last step).
    ``killed``: the details of the executor's own KILL, audited as ``alter_killed`` in the same
    transaction — the one entry for the kill, written after it, off its path."""
    now = clock.now()
    store.transition_with_record(run.tenant_id, run.id, "cancelled", actor, RollbackRecord(
        tenant_id=run.tenant_id, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
        rollback_status="completed", rollback_type="none",
        trigger_reason=f"kill switch during the ALTER: {reading.describe()}",
        rollback_started_at=now, rollback_completed_at=now,
        rollback_details={"alter_killed": True, "thread_id": run.alter_thread_id, "index_absent": True,
                          "scopes": reading.active_scopes()},
        created_by=actor,
    ), "rollback_recorded", fail_reason="kill_switch", message=CANCEL_DURING, alter_finished_at=now,
        audit_first=(("alter_killed", killed),) if killed is not None else ())


def record_cancel_after_alter(store: Store, run: ExecutionRun, reading: KillSwitchReading, actor: str) -> None:
    """The index is on the table: the manual rollback prepared and the run cancelled, in one transaction."""
    store.transition_with_record(run.tenant_id, run.id, "cancelled", actor, RollbackRecord(
        tenant_id=run.tenant_id, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
        rollback_status="pending", rollback_type="manual",
        trigger_reason=f"kill switch after the ALTER: {reading.describe()}",
        rollback_sql=sql.drop_index(run.schema_name, run.table_name, run.index_name),
        rollback_details={"index_left_in_place": True, "scopes": reading.active_scopes()},
        created_by=actor,
    ), "rollback_prepared", fail_reason="kill_switch", message=CANCEL_AFTER)


def reading_details(reading: KillSwitchReading, when: str) -> dict[str, Any]:
    return {"when": when, "active": reading.active, "scopes": reading.active_scopes(),
            "source": reading.source, "response_ms": round(reading.response_ms, 1),
            "latency_level": reading.latency_level, "error": reading.error}
