"""The engine's own store: sqlmodel over SQLite (default), PostgreSQL or MySQL.

Every write that changes state writes its audit entry in the same transaction, so a state change
without its audit row cannot exist. Every read filters on ``tenant_id``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, String, bindparam, event, func, insert, inspect, type_coerce, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine, select

from engine.adapters.paths import state_dir
from engine.adapters.store.models import (
    GLOBAL_TENANT,
    SCHEMA_VERSION,
    Approval,
    AuditChainHead,
    AuditLog,
    Checkpoint,
    ConnectionProfileRow,
    Decision,
    ExecutionRun,
    KillSwitchState,
    MetricSample,
    PrecheckResult,
    RollbackPoint,
    RollbackRecord,
    RunLock,
    StoreMeta,
    Tenant,
    Timestamp,
    new_id,
)
from engine.domain import audit_chain
from engine.domain.clock import Clock, SystemClock
from engine.domain.runstate import ACTIVE, TransitionError, check_transition

CANARY_LOCK = "canary"
BUSY_TIMEOUT_S = 5  # how long a write waits for another process's write lock (SQLite busy_timeout)


class StoreError(RuntimeError):
    """The store cannot be used; the message says why and what to do."""


class StoreLocked(StoreError):
    """Another process held the store's write lock longer than the busy timeout: nothing was
    written, and the same write can be retried (the kill switch's worker does)."""


class StoreFull(StoreError):
    """The store's disk (or its size limit) is full: nothing was written; reads still work."""


class InvalidTransition(StoreError, TransitionError):
    """A status change the state machine refuses — also a StoreError, so a caller that handles the
    store's refusals handles this one (a racing loser may see either)."""


class ClaimConflict(RuntimeError):
    """Another worker holds the run's lease (TC-01)."""


class ScopeLockError(RuntimeError):
    """A second active run was refused by the scope lock."""


def default_store_url() -> str:
    return f"sqlite:///{state_dir() / 'store.db'}"


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for a log or a screen."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as nothing at all
        return "<unparseable store URL>"


def store_fault(exc: BaseException, url: str) -> StoreError | None:
    """A database error that has a name and a way out — the store locked by another process, or
    its disk full — as the ``StoreError`` that says so; ``None`` for anything else. Either way the
    transaction was rolled back whole: a run's change and its audit row are both absent."""
    orig = getattr(exc, "orig", None) or exc
    said = (str(orig).strip().splitlines() or [orig.__class__.__name__])[0][:200]
    where = redact_url(url)
    path = make_url(url).database if where.startswith("sqlite") else None
    code = getattr(orig, "sqlite_errorcode", None)  # the extended code; its low byte is the primary one
    primary = code & 0xFF if isinstance(code, int) else None
    sqlstate = getattr(orig, "sqlstate", None) or ""  # psycopg
    mysql = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    if primary in (5, 6) or sqlstate in ("55P03", "40P01") or mysql in (1205, 1213):  # BUSY, LOCKED
        holder = (f"another canary-console, CLI or sqlite3 shell has held its lock on {path} for more than "
                  f"{BUSY_TIMEOUT_S} s" if path else "another session holds the rows this write needs")
        find = f" (`fuser -v {path}` lists the processes that have it open)" if path else ""
        return StoreLocked(f"the store is locked by another process ({said}: {holder}); nothing was written. "
                           f"Retry when that process finishes{find}.")
    if primary == 13 or sqlstate == "53100" or mysql in (1021, 1114):  # SQLITE_FULL, disk_full, disk/table full
        return StoreFull(f"the store's disk is full: {said} writing {where}; nothing was written. Free space "
                         "or move the store with --store.")
    return None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"the store URL is not valid ({exc}); use sqlite:////path/store.db or postgresql://user@host/db") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    if backend in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
        return create_engine(parsed, pool_pre_ping=True, pool_recycle=3600, connect_args={"connect_timeout": 5})
    raise StoreError(f"store backend {backend!r} is not supported: use sqlite, postgresql or mysql")


def _insert_ignore(conn: Connection, model: type[SQLModel], **values: Any) -> None:
    """Insert a row unless its key is taken (two processes opening a fresh store at once)."""
    table = model.__table__  # type: ignore[attr-defined]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).values(**values).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(insert(table).values(**values).prefix_with("IGNORE"))


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


class Store:
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

    def _create_tables(self) -> None:
        """Create the tables a new store lacks. Consoles started at once on a new store race to
        create the same ones (SQLite: "table … already exists"; PostgreSQL: a duplicate pg_type
        row), so a failure while other openers' tables appeared is tried again, and finds them."""
        for _ in range(len(SQLModel.metadata.tables) + 1):  # each retry needs a new table to appear
            before = set(inspect(self.engine).get_table_names())
            try:
                SQLModel.metadata.create_all(self.engine)
                return
            except SQLAlchemyError:
                if set(inspect(self.engine).get_table_names()) == before:
                    raise
        SQLModel.metadata.create_all(self.engine)

    def _missing_columns(self) -> list[str]:
        """What the store's existing tables lack (tables not there yet are created, not missed)."""
        found = inspect(self.engine)
        existing = set(found.get_table_names())
        out = []
        for table in SQLModel.metadata.sorted_tables:
            if table.name not in existing:
                continue
            have = {c["name"] for c in found.get_columns(table.name)}
            lacking = [c.name for c in table.columns if c.name not in have]
            if lacking:
                out.append(f"{table.name} lacks {', '.join(lacking)}")
        return out

    def _schema_version(self) -> int:
        """The version stamped in the store; a fresh store (every column present, no stamp yet) is
        stamped with this one's. A store from before the stamp lacks columns and never gets here."""
        key = StoreMeta.tenant_id == GLOBAL_TENANT, StoreMeta.name == "schema_version"
        with self.engine.begin() as conn:
            value = conn.execute(select(StoreMeta.value).where(*key)).scalar()
            if value is None:
                _insert_ignore(conn, StoreMeta, tenant_id=GLOBAL_TENANT, name="schema_version",
                               value=str(SCHEMA_VERSION))
        if value is None:  # read again in a new transaction: another opener's stamp may have won
            with self.engine.connect() as conn:
                value = conn.execute(select(StoreMeta.value).where(*key)).scalar()
        try:
            return int(value)
        except (TypeError, ValueError):
            return 0

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

    @contextmanager
    def _faults_said(self) -> Iterator[None]:
        """A locked store or a full disk leaves as ``StoreLocked`` / ``StoreFull`` with the way out."""
        try:
            yield
        except DBAPIError as exc:
            fault = store_fault(exc, self.url)
            if fault is None:
                raise
            raise fault from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._faults_said(), Session(self.engine, expire_on_commit=False) as s:
            yield s

    def now(self) -> datetime:
        return self.clock.now()

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

    # --- audit ----------------------------------------------------------------------------

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

    # --- metric samples -------------------------------------------------------------------

    def add_samples(self, tenant_id: str, run_id: str, at: datetime, samples: Sequence[Any]) -> None:
        """One tick's samples, in one transaction."""
        rows = [
            MetricSample(tenant_id=tenant_id, execution_run_id=run_id, sampled_at=at, source=x.source,
                         metric=x.metric, value=x.value, stale=x.value is None, error=x.error,
                         meta={"n": x.n, "how": x.how, **(x.meta or {})} if (x.n is not None or x.how or x.meta) else None)
            for x in samples
        ]
        with self.session() as s:
            s.add_all(rows)
            s.commit()

    def add_points(self, tenant_id: str, run_id: str, source: str,
                   points: Sequence[tuple[datetime, str, float]], meta: dict[str, Any] | None = None) -> None:
        """Points taken at their own times (a range query's answer), in one transaction."""
        rows = [MetricSample(tenant_id=tenant_id, execution_run_id=run_id, sampled_at=at, source=source,
                             metric=metric, value=value, meta=meta) for at, metric, value in points]
        with self.session() as s:
            s.add_all(rows)
            s.commit()

    def samples(self, tenant_id: str, run_id: str, metric: str | None = None,
                since: datetime | None = None) -> list[MetricSample]:
        """Oldest first. ``since``: only samples taken after it (a dashboard's next poll; the
        (tenant, run, sampled_at) index serves it)."""
        with self.session() as s:
            q = select(MetricSample).where(MetricSample.tenant_id == tenant_id,
                                           MetricSample.execution_run_id == run_id)
            if metric is not None:
                q = q.where(MetricSample.metric == metric)
            if since is not None:
                q = q.where(MetricSample.sampled_at > since)  # type: ignore[operator]
            return list(s.exec(q.order_by(MetricSample.sampled_at, MetricSample.id)).all())

    def count_rows(self, model: type[SQLModel], tenant_id: str) -> int:
        with self.session() as s:
            return s.exec(select(func.count()).select_from(model).where(model.tenant_id == tenant_id)).one()  # type: ignore[attr-defined]
