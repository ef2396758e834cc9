"""The engine's own store: sqlmodel over SQLite (default), PostgreSQL or MySQL.

Every write that changes state writes its audit entry in the same transaction, so a state change
without its audit row cannot exist. Every read filters on ``tenant_id``.

``Store`` is split by role: the database, its tables and its faults (engine/adapters/store/backend.py),
the audit trail (audit.py), the kill switch, rollback, precheck, approval, checkpoint and decision
rows (records.py), the metric samples (samples.py); here, opening the store, the tenants, the runs,
their transitions along the state machine and their claims.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from engine.adapters.paths import state_dir
from engine.adapters.store.backend import (
    StoreError,
    StoreFull,
    StoreLocked,
    default_store_url,
    make_engine,
    redact_url,
    store_fault,
)
from engine.adapters.store.models import (
    GLOBAL_TENANT,
    SCHEMA_VERSION,
    ConnectionProfileRow,
    ExecutionRun,
    RollbackRecord,
    RunLock,
    Tenant,
)
from engine.adapters.store.records import RunRecords
from engine.adapters.store.samples import Samples
from engine.domain.clock import Clock, SystemClock
from engine.domain.runstate import ACTIVE, TransitionError, check_transition

CANARY_LOCK = "canary"


class InvalidTransition(StoreError, TransitionError):
    """A status change the state machine refuses — also a StoreError, so a caller that handles the
    store's refusals handles this one (a racing loser may see either)."""


class ClaimConflict(RuntimeError):
    """Another worker holds the run's lease (TC-01)."""


class ScopeLockError(RuntimeError):
    """A second active run was refused by the scope lock."""


class Store(RunRecords, Samples):
    def __init__(self, url: str | None = None, clock: Clock | None = None):
        self.url = url or default_store_url()
        self.clock = clock or SystemClock()
        self.engine = make_engine(self.url)
        try:
            missing = self._missing_columns()  # before creating anything: an old store is left as it is
            if not missing:
                self._create_tables()
            version = SCHEMA_VERSION - 1 if missing else self._schema_version()
        except SQLAlchemyError as exc:
            fault = store_fault(exc, self.url)
            if fault is not None:
                raise fault from None
            raise StoreError(
                f"cannot open the store at {redact_url(self.url)}: {exc.__class__.__name__}: "
                f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}. Check the URL and that the server is up."
            ) from None
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"the store at {redact_url(self.url)} was written by an older version of canary-console "
                f"(schema {version}, this version needs {SCHEMA_VERSION}"
                f"{': ' + '; '.join(missing) if missing else ''}). Keep it for its history and point --store "
                "at a new one (for the rehearsal: canary-console rehearse --reset)."
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {redact_url(self.url)} was written by a newer version of canary-console "
                f"(schema {version}; this version reads {SCHEMA_VERSION}). Run that version (upgrade this "
                "one), or point --store at another store."
            )

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def commit_probe(self) -> Iterator[Callable[[], Any] | None]:
        """A probe whose value changes when another connection commits to the store (SQLite's
        ``PRAGMA data_version``: microseconds, no table read), on its own connection for the length
        of the block; None for other backends. The ALTER's watcher looks at it every 10 ms and reads
        the switch when it changed, so a switch set by another process is seen within ~10 ms
        rather than a whole poll interval (docs/kill-switch.md)."""
        if self.engine.dialect.name != "sqlite":
            yield None
            return
        try:
            raw = self.engine.raw_connection()
        except Exception:  # noqa: BLE001 - the store cannot be opened now: no shortcut, the poll reads
            yield None
            return
        try:
            cur = raw.cursor()

            def probe() -> Any:
                return cur.execute("PRAGMA data_version").fetchone()[0]

            try:
                probe()
            except Exception:  # noqa: BLE001 - as above
                yield None
            else:
                yield probe
        finally:
            raw.close()

    # --- tenants and profiles -------------------------------------------------------------

    def ensure_tenant(self, tenant_id: str, name: str | None = None) -> None:
        with self.session() as s:
            if s.get(Tenant, tenant_id) is None:
                s.add(Tenant(id=tenant_id, tenant_id=tenant_id, name=name or tenant_id))
                try:
                    s.commit()
                except IntegrityError:
                    s.rollback()

    def save_connection_profile(self, tenant_id: str, profile: Any) -> None:
        """Upsert the plan's profile: where to connect and where the password comes from."""
        self.ensure_tenant(tenant_id)
        fields = dict(
            host=profile.host, port=profile.port, user=profile.user, database=profile.database,
            socket=profile.socket, password_env=profile.password_env,
            option_file=profile.option_file, option_group=profile.option_group,
        )
        with self.session() as s:
            row = s.get(ConnectionProfileRow, (tenant_id, profile.id))
            if row is None:
                s.add(ConnectionProfileRow(tenant_id=tenant_id, id=profile.id, **fields))
            else:
                for k, v in fields.items():
                    setattr(row, k, v)
                row.updated_at = self.now()
                s.add(row)
            s.commit()

    def connection_profile(self, tenant_id: str, profile_id: str) -> ConnectionProfileRow | None:
        with self.session() as s:
            return s.get(ConnectionProfileRow, (tenant_id, profile_id))

    # --- runs -----------------------------------------------------------------------------

    def create_run(self, run: ExecutionRun, actor: str) -> ExecutionRun:
        """Insert a ``scheduled`` run and take the store-wide canary lock in one transaction."""
        self.ensure_tenant(run.tenant_id)
        run.status = "scheduled"
        run.created_by = actor
        run.created_at = run.updated_at = self.now()
        with self.session() as s:
            s.add(run)
            s.add(RunLock(tenant_id=GLOBAL_TENANT, name=CANARY_LOCK, execution_run_id=run.id,
                          holder_tenant_id=run.tenant_id, acquired_by=actor, acquired_at=self.now()))
            try:
                self._commit_audited(s, self._audit_row(
                    run.tenant_id, actor, "run_created", run.id,
                    {"table": run.table_name, "index": run.index_name, "columns": run.columns, "mode": run.mode},
                    None, "scheduled"))
            except IntegrityError:
                s.rollback()
                holder = self.lock_holder()
                raise ScopeLockError(
                    "another canary run is active in this store "
                    f"(run {holder.execution_run_id if holder else '?'} of tenant "
                    f"{holder.holder_tenant_id if holder else '?'}); a canary allows one run at a time. "
                    "Finish, cancel or roll back that run first."
                ) from None
        return run

    def lock_holder(self) -> RunLock | None:
        with self.session() as s:
            return s.get(RunLock, (GLOBAL_TENANT, CANARY_LOCK))

    def get_run(self, tenant_id: str, run_id: str) -> ExecutionRun | None:
        with self.session() as s:
            run = s.get(ExecutionRun, run_id)
            return run if run is not None and run.tenant_id == tenant_id else None

    def runs_by_prefix(self, tenant_id: str, prefix: str, limit: int = 5) -> list[ExecutionRun]:
        """The tenant's runs whose id starts with ``prefix`` (what the screens show: the first 8
        characters), newest first; at most ``limit``. Only hex digits and dashes are looked for."""
        if not prefix or any(c not in "0123456789abcdef-" for c in prefix.lower()):
            return []
        with self.session() as s:
            q = select(ExecutionRun).where(ExecutionRun.tenant_id == tenant_id,
                                           ExecutionRun.id.startswith(prefix.lower()))  # type: ignore[attr-defined]
            q = q.order_by(ExecutionRun.created_at.desc()).limit(limit)  # type: ignore[attr-defined]
            return list(s.exec(q).all())

    def find_runs(self, tenant_id: str, statuses: Sequence[str] | None = None,
                  limit: int = 100) -> list[ExecutionRun]:
        with self.session() as s:
            q = select(ExecutionRun).where(ExecutionRun.tenant_id == tenant_id)
            if statuses:
                q = q.where(ExecutionRun.status.in_(list(statuses)))  # type: ignore[attr-defined]
            q = q.order_by(ExecutionRun.created_at.desc()).limit(limit)  # type: ignore[attr-defined]
            return list(s.exec(q).all())

    def update_run(self, tenant_id: str, run_id: str, **fields: Any) -> ExecutionRun:
        """Set plain fields (not the status) on a run."""
        assert "status" not in fields, "use transition() to change the status"
        with self.session() as s:
            run = s.get(ExecutionRun, run_id)
            if run is None or run.tenant_id != tenant_id:
                raise StoreError(f"run {run_id} not found for tenant {tenant_id}")
            for k, v in fields.items():
                setattr(run, k, v)
            run.updated_at = self.now()
            s.add(run)
            s.commit()
            return run

    def transition(self, tenant_id: str, run_id: str, new_status: str, actor: str,
                   fail_reason: str | None = None, message: str | None = None,
                   details: dict[str, Any] | None = None, **fields: Any) -> ExecutionRun:
        """Move a run along the state machine, with its audit entry, atomically.

        The update is conditional on the status read, so two processes racing to finish the same
        run cannot both win: the loser gets a ``StoreError`` naming the status it found.
        """
        with self.session() as s:
            entry = self._transition_in(s, tenant_id, run_id, new_status, actor, fail_reason, message, details,
                                        fields)
            self._commit_audited(s, entry)
        return self.get_run(tenant_id, run_id)  # type: ignore[return-value]

    def transition_with_record(self, tenant_id: str, run_id: str, new_status: str, actor: str,
                               record: RollbackRecord, record_action: str, fail_reason: str | None = None,
                               message: str | None = None,
                               audit_first: Sequence[tuple[str, dict[str, Any]]] = (), **fields: Any) -> None:
        """``save_rollback_record`` then ``transition``, in one transaction (one commit, the two
        audit entries chained in that order): the kill switch's last step, on its latency path
        (docs/kill-switch.md). The record is new (inserted, not merged). Either both are written or
        neither is; a lost race leaves neither and raises as ``transition`` does. ``audit_first``:
        (action, details) entries on the run chained before them, in the same commit (the kill's
        ``alter_killed``)."""
        record.updated_at = self.now()
        with self.session() as s:
            s.add(record)
            s.flush()  # the record before the run's change, as the two calls did
            first = [self._audit_row(tenant_id, actor, action, run_id, details) for action, details in audit_first]
            recorded = self._record_audit_row(record, actor, record_action)
            entry = self._transition_in(s, tenant_id, run_id, new_status, actor, fail_reason, message, None, fields)
            self._commit_audited(s, *first, recorded, entry)

    def _transition_in(self, s: Session, tenant_id: str, run_id: str, new_status: str, actor: str,
                       fail_reason: str | None, message: str | None, details: dict[str, Any] | None,
                       fields: dict[str, Any]) -> dict[str, Any]:
        """The run's conditional update in ``s`` (not committed); its audit entry, to commit."""
        run = s.get(ExecutionRun, run_id)
        if run is None or run.tenant_id != tenant_id:
            raise StoreError(f"run {run_id} not found for tenant {tenant_id}")
        old = run.status
        try:
            check_transition(old, new_status, fail_reason)
        except TransitionError as exc:
            raise InvalidTransition(str(exc)) from None
        now = self.now()
        values: dict[str, Any] = dict(fields, status=new_status, updated_at=now)
        if fail_reason is not None:
            values["fail_reason"] = fail_reason
        if message is not None:
            values["error_message"] = message
        if new_status == "running":
            values.setdefault("started_at", now)
        if new_status not in ACTIVE:
            values.setdefault("completed_at", now)
        result = s.exec(  # type: ignore[call-overload]
            update(ExecutionRun)
            .where(ExecutionRun.id == run_id, ExecutionRun.tenant_id == tenant_id,
                   ExecutionRun.status == old)
            .values(**values)
        )
        if result.rowcount != 1:
            s.rollback()
            current = self.get_run(tenant_id, run_id)
            raise StoreError(f"run {run_id} changed under us: it is now {current.status if current else 'gone'}")
        audit = dict(details or {})
        if fail_reason:
            audit["fail_reason"] = fail_reason
        if message:
            audit["message"] = message
        if new_status not in ACTIVE:
            lock = s.get(RunLock, (GLOBAL_TENANT, CANARY_LOCK))
            if lock is not None and lock.execution_run_id == run_id:
                s.delete(lock)
        return self._audit_row(tenant_id, actor, "status_change", run_id, audit, old, new_status)

    # --- claim with a lease (docs/runbook.md#4-execution, TC-01, TC-10) -----------------------------------

    def claim(self, tenant_id: str, run_id: str, owner: str, lease_seconds: float,
              exclusive: bool = False) -> ExecutionRun:
        """Take the run's lease atomically: free, expired, or already ours. Else ``ClaimConflict``.
        ``exclusive``: a lease held by ``owner`` too is a conflict (a second claim, docs/api.md)."""
        now = self.now()
        free = (ExecutionRun.claimed_by.is_(None)) | (ExecutionRun.lease_expires_at < now)  # type: ignore[union-attr,operator]
        if not exclusive:
            free = free | (ExecutionRun.claimed_by == owner)
        with self.session() as s:
            result = s.exec(  # type: ignore[call-overload]
                update(ExecutionRun)
                .where(
                    ExecutionRun.id == run_id, ExecutionRun.tenant_id == tenant_id,
                    ExecutionRun.status.in_(list(ACTIVE)),  # type: ignore[attr-defined]
                    free,
                )
                .values(claimed_by=owner, lease_expires_at=now + timedelta(seconds=lease_seconds),
                        updated_at=now)
            )
            s.commit()
            won = result.rowcount == 1
        run = self.get_run(tenant_id, run_id)
        if run is None:
            raise StoreError(f"run {run_id} not found for tenant {tenant_id}")
        if not won:
            self.audit(tenant_id, owner, "claim_failed", run_id,
                       {"holder": run.claimed_by, "lease_expires_at": str(run.lease_expires_at),
                        "status": run.status})
            raise ClaimConflict(
                f"run {run_id} is held by {run.claimed_by} until {run.lease_expires_at:%H:%M:%S} UTC"
                if run.claimed_by and run.lease_expires_at else f"run {run_id} cannot be claimed (status {run.status})"
            )
        self.audit(tenant_id, owner, "claimed", run_id, {"lease_seconds": lease_seconds})
        return run

    def renew_lease(self, tenant_id: str, run_id: str, owner: str, lease_seconds: float) -> bool:
        now = self.now()
        with self.session() as s:
            result = s.exec(  # type: ignore[call-overload]
                update(ExecutionRun)
                .where(ExecutionRun.id == run_id, ExecutionRun.tenant_id == tenant_id,
                       ExecutionRun.claimed_by == owner)
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            s.commit()
            return result.rowcount == 1


__all__ = [  # with what is defined here, what callers import from this module
    "StoreError", "StoreFull", "StoreLocked", "default_store_url", "make_engine", "redact_url", "state_dir",
    "ClaimConflict", "InvalidTransition", "ScopeLockError", "Store", "CANARY_LOCK",
]
