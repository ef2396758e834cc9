"""The executor's lease on its run (docs/runbook.md#4-execution, TC-01, TC-10): renewed while it
waits with the kill switch watched, lost when another worker took the run over (this one then
stops); a run whose driver died taken over once its lease ran out, and recovered after looking
at the target (an ALTER still in the processlist is watched to its end).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.adapters import sql
from engine.adapters.killswitch import KillSwitchReading
from engine.adapters.store import ExecutionRun
from engine.adapters.store.backend import StoreLocked
from engine.domain.runstate import ACTIVE
from engine.domain.verification import DigestStats
from engine.flows.executor_base import Abort, ExecutorBase, Outcome, reading_details


class LeaseSteps(ExecutorBase):
    """The lease, the take-over and crash recovery (mixed into ``Executor``)."""

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
