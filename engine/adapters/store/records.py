"""What the store keeps beside the runs themselves, each write audited in its own transaction:
the kill switch's rows, the rollback point and records, the prechecks, the approvals and
sign-offs, the checkpoints and the decisions. Every read filters on ``tenant_id``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from engine.adapters.store.audit import AuditTrail
from engine.adapters.store.backend import StoreError
from engine.adapters.store.models import (
    GLOBAL_TENANT,
    Approval,
    Checkpoint,
    Decision,
    KillSwitchState,
    PrecheckResult,
    RollbackPoint,
    RollbackRecord,
)


class RunRecords(AuditTrail):
    """The kill switch, rollback, precheck, approval, checkpoint and decision rows (mixed into ``Store``)."""

    # --- kill switch ----------------------------------------------------------------------

    def set_kill_switch(self, tenant_id: str, scope: str, active: bool, actor: str,
                        reason: str = "", connection_id: str = "") -> KillSwitchState:
        if scope not in ("global", "tenant", "connection"):
            raise ValueError(f"unknown kill-switch scope {scope!r}: global, tenant or connection")
        if scope == "connection" and not connection_id:
            raise ValueError("a connection kill switch needs the connection id")
        row_tenant = GLOBAL_TENANT if scope == "global" else tenant_id
        conn = connection_id if scope == "connection" else ""
        now = self.now()
        for _ in range(3):  # two consoles inserting the same scope at once: retry as an update
            with self.session() as s:
                row = s.exec(select(KillSwitchState).where(
                    KillSwitchState.tenant_id == row_tenant, KillSwitchState.scope == scope,
                    KillSwitchState.connection_profile_id == conn)).first()
                old = row.is_active if row else False
                if row is None:
                    row = KillSwitchState(tenant_id=row_tenant, scope=scope, connection_profile_id=conn,
                                          created_by=actor, created_at=now)
                row.is_active = active
                row.reason = reason
                row.updated_by = actor
                row.updated_at = now
                s.add(row)
                try:
                    self._commit_audited(s, self._audit_row(
                        tenant_id, actor, "kill_switch_activated" if active else "kill_switch_deactivated",
                        None, {"scope": scope, "connection_id": conn or None, "reason": reason,
                               "was_active": old}))
                    return row
                except IntegrityError:
                    s.rollback()
        raise StoreError("could not record the kill switch after three attempts")

    def kill_switch_rows(self, tenant_id: str, connection_id: str | None = None) -> list[KillSwitchState]:
        """The global row, the tenant's row and (if given) the connection's row."""
        with self.session() as s:
            q = select(KillSwitchState).where(
                KillSwitchState.tenant_id.in_([GLOBAL_TENANT, tenant_id])  # type: ignore[attr-defined]
            )
            rows = list(s.exec(q).all())
        return [
            r for r in rows
            if r.scope in ("global", "tenant") or (connection_id is not None and r.connection_profile_id == connection_id)
        ]

    # --- rollback -------------------------------------------------------------------------

    def save_rollback_point(self, point: RollbackPoint, actor: str) -> RollbackPoint:
        with self.session() as s:
            s.add(point)
            self._commit_audited(s, self._audit_row(
                point.tenant_id, actor, "rollback_point_captured", point.execution_run_id,
                {"indexes": [i.get("name") for i in point.indexes or []],
                 "ladder": [r.get("rung") for r in point.ladder or []]}))
        return point

    def rollback_point(self, tenant_id: str, run_id: str) -> RollbackPoint | None:
        with self.session() as s:
            return s.exec(select(RollbackPoint).where(
                RollbackPoint.tenant_id == tenant_id, RollbackPoint.execution_run_id == run_id
            ).order_by(RollbackPoint.captured_at.desc())).first()  # type: ignore[attr-defined]

    def save_rollback_record(self, record: RollbackRecord, actor: str, action: str) -> RollbackRecord:
        record.updated_at = self.now()
        with self.session() as s:
            merged = s.merge(record)
            self._commit_audited(s, self._record_audit_row(record, actor, action))
            return merged

    def _record_audit_row(self, record: RollbackRecord, actor: str, action: str) -> dict[str, Any]:
        return self._audit_row(
            record.tenant_id, actor, action, record.execution_run_id,
            {"rollback_status": record.rollback_status, "rollback_type": record.rollback_type,
             "reason": record.trigger_reason, "error": record.rollback_error,
             "attempts": len(record.attempts or []), "sql": record.rollback_sql})

    def rollback_records(self, tenant_id: str, run_id: str) -> list[RollbackRecord]:
        with self.session() as s:
            return list(s.exec(select(RollbackRecord).where(
                RollbackRecord.tenant_id == tenant_id, RollbackRecord.execution_run_id == run_id
            ).order_by(RollbackRecord.created_at)).all())

    # --- prechecks and approvals ----------------------------------------------------------

    def save_precheck(self, result: PrecheckResult) -> PrecheckResult:
        with self.session() as s:
            s.add(result)
            self._commit_audited(s, self._audit_row(
                result.tenant_id, result.recorded_by or result.source, "precheck_recorded",
                result.execution_run_id, {"check": result.check_id, "status": result.status}))
        return result

    def latest_prechecks(self, tenant_id: str, prefix: str = "") -> dict[str, PrecheckResult]:
        with self.session() as s:
            rows = s.exec(select(PrecheckResult).where(PrecheckResult.tenant_id == tenant_id)
                          .order_by(PrecheckResult.recorded_at)).all()
        return {r.check_id: r for r in rows if r.check_id.startswith(prefix)}

    def run_prechecks(self, tenant_id: str, run_id: str) -> dict[str, PrecheckResult]:
        """The latest result of each check recorded for one run (re-runs replace earlier ones)."""
        with self.session() as s:
            rows = s.exec(select(PrecheckResult).where(PrecheckResult.tenant_id == tenant_id,
                                                       PrecheckResult.execution_run_id == run_id)
                          .order_by(PrecheckResult.recorded_at)).all()
        return {r.check_id: r for r in rows}

    def run_approvals(self, tenant_id: str, run_id: str) -> list[Approval]:
        """Every sign-off, presence, gate and rollback approval of one run, oldest first."""
        with self.session() as s:
            return list(s.exec(select(Approval).where(
                Approval.tenant_id == tenant_id, Approval.execution_run_id == run_id
            ).order_by(Approval.created_at)).all())

    def add_approval(self, approval: Approval) -> Approval:
        with self.session() as s:
            s.add(approval)
            self._commit_audited(s, self._audit_row(
                approval.tenant_id, approval.actor, f"{approval.kind}_{approval.decision}",
                approval.execution_run_id, {"role": approval.role, "note": approval.note}))
        return approval

    def approvals(self, tenant_id: str, run_id: str | None, kind: str) -> list[Approval]:
        with self.session() as s:
            return list(s.exec(select(Approval).where(
                Approval.tenant_id == tenant_id, Approval.execution_run_id == run_id, Approval.kind == kind
            ).order_by(Approval.created_at)).all())

    def save_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        with self.session() as s:
            s.add(checkpoint)
            self._commit_audited(s, self._audit_row(
                checkpoint.tenant_id, checkpoint.recorded_by, "checkpoint_recorded", checkpoint.execution_run_id,
                {"label": checkpoint.label, "metrics_ok": checkpoint.metrics_ok, "notes": checkpoint.notes}))
        return checkpoint

    def checkpoints(self, tenant_id: str, run_id: str) -> list[Checkpoint]:
        with self.session() as s:
            return list(s.exec(select(Checkpoint).where(
                Checkpoint.tenant_id == tenant_id, Checkpoint.execution_run_id == run_id
            ).order_by(Checkpoint.recorded_at)).all())

    def save_decision(self, decision: Decision) -> Decision:
        decision.created_at = self.now()  # the store's clock, as its audit entry (a drill's is compressed)
        with self.session() as s:
            s.add(decision)
            self._commit_audited(s, self._audit_row(decision.tenant_id, decision.decided_by, "verdict",
                                                    decision.execution_run_id, {"verdict": decision.verdict}))
        return decision

    def decisions(self, tenant_id: str, run_id: str) -> list[Decision]:
        with self.session() as s:
            return list(s.exec(select(Decision).where(
                Decision.tenant_id == tenant_id, Decision.execution_run_id == run_id
            ).order_by(Decision.created_at)).all())
