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
        return self._add_audited(point, actor, "rollback_point_captured",
                                 {"indexes": [i.get("name") for i in point.indexes or []],
                                  "ladder": [r.get("rung") for r in point.ladder or []]})

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
        return self._of_run(RollbackRecord, tenant_id, run_id, RollbackRecord.created_at)

    # --- prechecks and approvals ----------------------------------------------------------

    def save_precheck(self, result: PrecheckResult) -> PrecheckResult:
        return self._add_audited(result, result.recorded_by or result.source, "precheck_recorded",
                                 {"check": result.check_id, "status": result.status})

    def latest_prechecks(self, tenant_id: str, prefix: str = "") -> dict[str, PrecheckResult]:
        with self.session() as s:
            rows = s.exec(select(PrecheckResult).where(PrecheckResult.tenant_id == tenant_id)
                          .order_by(PrecheckResult.recorded_at)).all()
        return {r.check_id: r for r in rows if r.check_id.startswith(prefix)}

    def run_prechecks(self, tenant_id: str, run_id: str) -> dict[str, PrecheckResult]:
        """The latest result of each check recorded for one run (re-runs replace earlier ones)."""
        rows = self._of_run(PrecheckResult, tenant_id, run_id, PrecheckResult.recorded_at)
        return {r.check_id: r for r in rows}

    def run_approvals(self, tenant_id: str, run_id: str) -> list[Approval]:
        """Every sign-off, presence, gate and rollback approval of one run, oldest first."""
        return self._of_run(Approval, tenant_id, run_id, Approval.created_at)

    def add_approval(self, approval: Approval) -> Approval:
        return self._add_audited(approval, approval.actor, f"{approval.kind}_{approval.decision}",
                                 {"role": approval.role, "note": approval.note})

    def approvals(self, tenant_id: str, run_id: str | None, kind: str) -> list[Approval]:
        return self._of_run(Approval, tenant_id, run_id, Approval.created_at, Approval.kind == kind)

    def save_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        return self._add_audited(checkpoint, checkpoint.recorded_by, "checkpoint_recorded",
                                 {"label": checkpoint.label, "metrics_ok": checkpoint.metrics_ok,
                                  "notes": checkpoint.notes})

    def checkpoints(self, tenant_id: str, run_id: str) -> list[Checkpoint]:
        return self._of_run(Checkpoint, tenant_id, run_id, Checkpoint.recorded_at)

    def save_decision(self, decision: Decision) -> Decision:
        decision.created_at = self.now()  # the store's clock, as its audit entry (a drill's is compressed)
        return self._add_audited(decision, decision.decided_by, "verdict", {"verdict": decision.verdict})

    def decisions(self, tenant_id: str, run_id: str) -> list[Decision]:
        return self._of_run(Decision, tenant_id, run_id, Decision.created_at)

    # --- the two shapes every row here is written and read in ------------------------------

    def _add_audited(self, row: Any, actor: str, action: str, details: dict[str, Any]) -> Any:
        """Insert ``row`` with its audit entry, in one transaction."""
        with self.session() as s:
            s.add(row)
            self._commit_audited(s, self._audit_row(row.tenant_id, actor, action, row.execution_run_id, details))
        return row

    def _of_run(self, model: Any, tenant_id: str, run_id: str | None, order: Any, *where: Any) -> list[Any]:
        """One run's rows of ``model`` (and ``where``), in ``order``: filtered on the tenant, as every read is."""
        with self.session() as s:
            return list(s.exec(select(model).where(
                model.tenant_id == tenant_id, model.execution_run_id == run_id, *where
            ).order_by(order)).all())
