"""The executor's ALTER (docs/runbook.md#4-execution, docs/kill-switch.md): ``ALTER … ADD INDEX …
ALGORITHM=INPLACE, LOCK=NONE`` on a dedicated connection, the kill switch watched while it runs
(and the ALTER killed from a connection opened beforehand), what the ALTER came to, and the run
cancelled by the kill switch during or after it — the rollback record and the run's change in
one transaction (``record_cancel_during_alter`` / ``record_cancel_after_alter``, also used by
engine/flows/enforce.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from engine.adapters import sql
from engine.adapters.killswitch import AlterWatch, KillSwitchReading, watching
from engine.adapters.store import ExecutionRun, RollbackRecord, Store
from engine.adapters.target import TargetError, TargetSession
from engine.domain.clock import Clock
from engine.flows.executor_base import Abort, ExecutorBase, Outcome, reading_details

PROBE_S = 0.01  # while an ALTER runs: how often the store's commit probe is looked at (docs/kill-switch.md)
KILLED_ALTER_GRACE_S = 15.0  # an ALTER killed from outside: how long its kill switch may take to land


class AlterSteps(ExecutorBase):
    """The ALTER, watched, and the kill switch's cancellation (mixed into ``Executor``)."""

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
        with watching(run.id, self.tenant, self.conn_id) as watch:  # a switch set in this process wakes it at once
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
