"""The store's audit trail (docs/states.md, engine/domain/audit_chain.py): every audit row is
written by ``_commit_audited``, in the transaction of the change it records, linked into one
store-wide hash chain under the chain head's row lock; and read back — for a run, a tenant, or the
whole chain to verify it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, bindparam, insert, type_coerce, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from engine.adapters.store.backend import StoreBase, StoreError, _insert_ignore
from engine.adapters.store.models import GLOBAL_TENANT, AuditChainHead, AuditLog, Timestamp, new_id
from engine.domain import audit_chain

# The chain's statements, built once: the kill switch's path runs them on every press.
_HEAD = AuditChainHead.__table__  # type: ignore[attr-defined]
_AUDIT = AuditLog.__table__  # type: ignore[attr-defined]
_BUMP_HEAD = (update(_HEAD).where(_HEAD.c.tenant_id == GLOBAL_TENANT)
              .values(seq=_HEAD.c.seq + bindparam("n", type_=Integer)))
_BUMP_HEAD_RETURNING = _BUMP_HEAD.returning(_HEAD.c.seq, _HEAD.c.row_hash)
_READ_HEAD = select(_HEAD.c.seq, _HEAD.c.row_hash).where(_HEAD.c.tenant_id == GLOBAL_TENANT)
_SET_HEAD = (update(_HEAD).where(_HEAD.c.tenant_id == GLOBAL_TENANT)
             .values(row_hash=bindparam("new_hash"), updated_at=bindparam("at", type_=Timestamp())))
_LAST_AUDIT_ROW = select(_AUDIT.c.seq, _AUDIT.c.row_hash).order_by(_AUDIT.c.seq.desc()).limit(1)
_INSERT_AUDIT = insert(_AUDIT)


def _chain_row(r: Any) -> audit_chain.ChainRow:
    """A row as read for verification: ``details`` and ``created_at`` come raw (text on SQLite), so
    a value edited into something unreadable is reported, not raised."""
    details, created = r.details, r.created_at
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            pass
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created)
        except ValueError:
            pass
    return audit_chain.ChainRow(r.seq, r.id, r.tenant_id, r.execution_run_id, r.actor, r.action, r.old_status,
                                r.new_status, details, created, r.prev_hash, r.row_hash)


class AuditTrail(StoreBase):
    """Writing and reading the audit trail (mixed into ``Store``)."""

    def _audit_row(
        self, tenant_id: str, actor: str, action: str, run_id: str | None = None,
        details: dict[str, Any] | None = None, old_status: str | None = None,
        new_status: str | None = None,
    ) -> dict[str, Any]:
        """An audit entry's values, for ``_commit_audited`` to chain and insert."""
        return {"id": new_id(), "tenant_id": tenant_id, "execution_run_id": run_id, "actor": actor,
                "action": action, "old_status": old_status, "new_status": new_status,
                "details": details or {}, "created_at": self.now()}

    def audit(self, tenant_id: str, actor: str, action: str, run_id: str | None = None,
              details: dict[str, Any] | None = None) -> None:
        with self.session() as s:
            self._commit_audited(s, self._audit_row(tenant_id, actor, action, run_id, details))

    def _commit_audited(self, s: Session, *entries: dict[str, Any]) -> None:
        """Link ``entries`` to the hash chain, insert them and commit ``s``: every audit row is
        written here.

        The session's other writes are flushed first, so the chain head's row lock is the last lock
        the transaction takes and is held only for the few statements before the commit (no lock
        order to deadlock on). The head update is the transaction's first write on SQLite when it
        has no other: that takes the database's write lock before the head is read, so two
        processes cannot read the same head (pysqlite begins a transaction only at a write).
        """
        s.flush()
        conn = s.connection()
        start, prev = self._take_chain_head(conn, len(entries))
        rows = []
        for seq, entry in enumerate(entries, start + 1):
            row = dict(entry, seq=seq, details=audit_chain.normalize_details(entry["details"]), prev_hash=prev)
            row["row_hash"] = prev = audit_chain.row_hash(prev, audit_chain.content(row))
            rows.append(row)
        conn.execute(_INSERT_AUDIT, rows)
        conn.execute(_SET_HEAD, {"new_hash": prev, "at": self.now()})
        s.commit()

    def _take_chain_head(self, conn: Connection, n: int) -> tuple[int, str]:
        """Reserve ``n`` seqs under the head's lock: (the last seq before them, its row_hash)."""
        for _ in range(2):
            if conn.dialect.update_returning:  # SQLite ≥ 3.35, PostgreSQL: one statement
                got = conn.execute(_BUMP_HEAD_RETURNING, {"n": n}).first()
            elif conn.execute(_BUMP_HEAD, {"n": n}).rowcount:  # MySQL: the UPDATE holds the row lock
                got = conn.execute(_READ_HEAD).first()
            else:
                got = None
            if got is not None:
                return got.seq - n, got.row_hash
            # No head yet (a fresh store, or its rows were wiped): start it at the last row written.
            last = conn.execute(_LAST_AUDIT_ROW).first()
            _insert_ignore(conn, AuditChainHead, tenant_id=GLOBAL_TENANT, seq=last.seq if last else 0,
                           row_hash=last.row_hash if last else audit_chain.GENESIS, updated_at=self.now())
        raise StoreError("the audit chain head cannot be written")

    def audit_chain_rows(self) -> tuple[list[audit_chain.ChainRow], tuple[int, str] | None]:
        """Every audit row (all tenants: the chain is store-wide) and the chain head, read so that
        writers committing meanwhile are not mistaken for tampering: the rows first, then the head,
        then any rows up to the head that were committed in between."""
        cols = (AuditLog.seq, AuditLog.id, AuditLog.tenant_id, AuditLog.execution_run_id, AuditLog.actor,
                AuditLog.action, AuditLog.old_status, AuditLog.new_status,
                type_coerce(AuditLog.details, String).label("details"),
                type_coerce(AuditLog.created_at, String).label("created_at"),
                AuditLog.prev_hash, AuditLog.row_hash)
        with self._faults_said(), self.engine.connect() as conn:
            rows = [_chain_row(r) for r in conn.execute(select(*cols).order_by(AuditLog.seq))]
            got = conn.execute(select(AuditChainHead.seq, AuditChainHead.row_hash)
                               .where(AuditChainHead.tenant_id == GLOBAL_TENANT)).first()
            last = rows[-1].seq if rows else 0
            if got is not None and got.seq > last:
                rows += [_chain_row(r) for r in conn.execute(
                    select(*cols).where(AuditLog.seq > last, AuditLog.seq <= got.seq).order_by(AuditLog.seq))]
        return rows, (got.seq, got.row_hash) if got is not None else None

    def verify_audit_chain(self, expect_head: str | None = None) -> audit_chain.Verdict:
        rows, head = self.audit_chain_rows()
        return audit_chain.verify(rows, head, expect_head)

    def audit_entries(self, tenant_id: str, run_id: str | None = None, action: str | None = None,
                      limit: int = 1000, since_seq: int | None = None, latest: bool = False) -> list[AuditLog]:
        """Oldest first. ``since_seq``: only entries written after that one (a viewer's next poll);
        ``latest``: the newest ``limit`` entries rather than the oldest."""
        with self.session() as s:
            q = select(AuditLog).where(AuditLog.tenant_id == tenant_id)
            if run_id is not None:
                q = q.where(AuditLog.execution_run_id == run_id)
            if action is not None:
                q = q.where(AuditLog.action == action)
            if since_seq is not None:
                q = q.where(AuditLog.seq > since_seq)  # type: ignore[operator]
            if latest:
                rows = list(s.exec(q.order_by(AuditLog.seq.desc()).limit(limit)).all())  # type: ignore[union-attr]
                return rows[::-1]
            return list(s.exec(q.order_by(AuditLog.seq).limit(limit)).all())
