"""Dropping the run's index (docs/rollback.md; docs/rollback.md; docs/thresholds.md#verification-of-the-tables-digests).

Guarded: only an index this run created, only while it still is the index the run created, and
never twice. A lost connection is retried with backoff; every attempt is recorded *before* its
DROP is sent, so a DROP whose answer was lost is recognised on the next attempt (the index is
already gone) instead of being sent again — and one the server is still running (queued on the
table's metadata lock when the cut came) is waited for, not doubled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from engine.adapters import sql
from engine.adapters.retry import retrying
from engine.adapters.store import ExecutionRun, RollbackRecord, Store
from engine.adapters.target import Target, TargetError
from engine.domain.clock import Clock, SystemClock


@dataclass(frozen=True)
class RollbackOutcome:
    status: str  # completed | failed | refused
    message: str
    record_id: str | None = None


RETRYABLE = {"lost_connection", "lock_wait_timeout"}
CANT_DROP_KEY = 1091  # the index went between our look and our DROP: the next attempt looks again


class IndexRollback:
    def __init__(self, store: Store, target: Target, actor: str, clock: Clock | None = None,
                 max_attempts: int = 5, backoff_s: float = 0.5, lock_wait_timeout: int = 5):
        self.store = store
        self.target = target
        self.actor = actor
        self.clock = clock or SystemClock()
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.lock_wait_timeout = lock_wait_timeout

    def drop(self, run: ExecutionRun, reason: str, rollback_type: str = "manual",
             fail_reason: str = "manual_rollback", details: dict[str, Any] | None = None) -> RollbackOutcome:
        tenant = run.tenant_id
        if not run.index_created_by_run:
            msg = (f"refused: index {run.index_name} was not created by run {run.id}; "
                   "a rollback never drops an index the run did not create")
            self.store.audit(tenant, self.actor, "rollback_refused", run.id, {"reason": msg})
            return RollbackOutcome("refused", msg)
        done = [r for r in self.store.rollback_records(tenant, run.id) if r.rollback_status == "completed"
                and r.rollback_sql]
        if done:
            msg = f"refused: run {run.id} was already rolled back ({done[0].rollback_completed_at})"
            self.store.audit(tenant, self.actor, "rollback_refused", run.id, {"reason": msg})
            return RollbackOutcome("refused", msg, done[0].id)

        statement = sql.drop_index(run.schema_name, run.table_name, run.index_name)
        expected = [list(c) if isinstance(c, (list, tuple)) else [c, None] for c in run.columns or []]
        record = RollbackRecord(
            tenant_id=tenant, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
            rollback_status="in_progress", rollback_type=rollback_type, trigger_reason=reason,
            rollback_sql=statement, attempts=[], rollback_started_at=self.clock.now(),
            rollback_details=dict(details or {}, index_name=run.index_name, table_name=run.table_name,
                                  triggered_by=self.actor),
            created_by=self.actor,
        )
        record = self.store.save_rollback_record(record, self.actor, "rollback_started")
        attempts: list[dict[str, Any]] = []
        drop = retrying(self.max_attempts, self.backoff_s, self.clock.sleep,
                        lambda exc: isinstance(exc, TargetError) and (exc.kind in RETRYABLE
                                                                      or exc.code == CANT_DROP_KEY))
        try:
            ok, note = drop(self._attempt, run, record, attempts, statement, expected)
        except TargetError as exc:
            ok, note = False, str(exc)
        return self._finish(run, record, attempts, ok, note, fail_reason)

    def _attempt(self, run: ExecutionRun, record: RollbackRecord, attempts: list[dict[str, Any]],
                 statement: str, expected: list[list[Any]]) -> tuple[bool, str]:
        """One try: look, then DROP and verify. Returns (done, note) when it is settled either way;
        raises the TargetError that a retry may cure (after recording it)."""
        sent_before = any(a.get("sent") for a in attempts)
        attempt: dict[str, Any] = {"n": len(attempts) + 1, "at": self.clock.now().isoformat()}
        attempts.append(attempt)
        try:
            with self.target.session("rollback") as session:
                session.execute(sql.SET_LOCK_WAIT_TIMEOUT, (self.lock_wait_timeout,))
                if sent_before and not self._earlier_drop_ended(session, statement, attempt):
                    attempt["error"] = (f"the DROP an earlier attempt sent is still running on the server (thread "
                                        f"{attempt['earlier_drop_thread']}); not sending a second one")
                    return False, attempt["error"]
                present = {i.name: i for i in session.indexes(run.schema_name, run.table_name)}
                idx = present.get(run.index_name)
                if idx is None:
                    attempt["index_present"] = False
                    if attempts[-2:-1] and attempts[-2].get("code") == CANT_DROP_KEY:
                        return True, "gone before our DROP could run (another DROP of it ran first); no more sent"
                    if sent_before:
                        return True, "dropped by an earlier attempt whose answer was lost"
                    return True, "already absent: no DROP sent"
                if [list(c) for c in idx.columns] != expected:
                    attempt["conflict"] = f"index columns are {idx.columns}, the run created {expected}"
                    return False, (f"index {run.index_name} is no longer the one this run created "
                                   f"({attempt['conflict']}); not dropped")
                attempt["sent"] = True
                record.attempts = list(attempts)
                self.store.save_rollback_record(record, self.actor, "rollback_attempt")
                session.execute(statement)
                if session.index_exists(run.schema_name, run.table_name, run.index_name):
                    attempt["error"] = "DROP INDEX returned but the index is still there"
                    return False, attempt["error"]
                attempt["ok"] = True
                return True, "index dropped and verified absent"
        except TargetError as exc:
            attempt["error"] = str(exc)
            attempt["kind"] = exc.kind
            if exc.code is not None:
                attempt["code"] = exc.code
            record.attempts = list(attempts)
            self.store.save_rollback_record(record, self.actor, "rollback_attempt_failed")
            raise

    def _earlier_drop_ended(self, session: Any, statement: str, attempt: dict[str, Any]) -> bool:
        """A DROP whose connection was cut may still be on the server, queued on the table's
        metadata lock, when the server has not noticed the cut: it would run after all, and a second
        DROP queued behind it would fail. Wait for it to end (it gives up after its lock_wait_timeout;
        real seconds, the server's), then look at the catalogue. False if it is still there."""
        started = time.monotonic()
        while True:
            rows = [r for r in session.active_statements() if (r.get("info") or "").strip() == statement]
            if not rows:
                return True
            attempt["earlier_drop_thread"] = int(rows[0]["id"])
            attempt["waited_for_it_s"] = round(time.monotonic() - started, 1)
            if time.monotonic() - started >= self.lock_wait_timeout + 10:
                return False
            time.sleep(0.1)

    def _finish(self, run: ExecutionRun, record: RollbackRecord, attempts: list[dict[str, Any]],
                ok: bool, note: str, fail_reason: str) -> RollbackOutcome:
        record.attempts = attempts
        record.rollback_completed_at = self.clock.now()
        record.rollback_status = "completed" if ok else "failed"
        if ok:
            record.rollback_details = dict(record.rollback_details or {}, note=note)
            record = self.store.save_rollback_record(record, self.actor, "rollback_completed")
            self.store.transition(run.tenant_id, run.id, "rolled_back", self.actor, fail_reason=fail_reason,
                                  message=record.trigger_reason, details={"rollback_record": record.id})
            return RollbackOutcome("completed", note, record.id)
        record.rollback_error = note
        record = self.store.save_rollback_record(record, self.actor, "rollback_failed")
        # Runbook 7.2: a failed rollback is escalation level L4.
        self.store.audit(run.tenant_id, self.actor, "escalation", run.id,
                         {"level": "L4", "why": "rollback failed", "error": note})
        return RollbackOutcome("failed", note, record.id)
