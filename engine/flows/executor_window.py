"""The executor after the ALTER (docs/runbook.md#4-execution to #6-decision, docs/verification.md):
the kill switch checked, the cool-down, then the 60-minute monitoring window and its verdict
(engine/flows/monitor.py), the 15-minute post-success observation, the digests and the sample
queries' plans judged at the window's end (engine/flows/digest_check.py) — or, without a
monitor, the digest verification. In a canary a failure never drops the index: it records the
rollback it would run and leaves the DROP to the manual flow (runbook 6.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.adapters import digests, sql
from engine.adapters.store import ExecutionRun, RollbackRecord
from engine.adapters.target import TargetError
from engine.domain.jsonable import jsonable
from engine.domain.verification import DigestStats, VerificationResult, verify, window
from engine.flows.executor_base import ExecutorBase, Outcome, reading_details
from engine.flows.rollback import IndexRollback


class AfterAlterSteps(ExecutorBase):
    """The cool-down, the window, the verdict and the observation (mixed into ``Executor``)."""

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
