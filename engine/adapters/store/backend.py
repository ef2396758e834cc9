"""The database behind the store (engine/adapters/store/store.py): its URL, the SQLAlchemy engine
for SQLite (WAL, a busy timeout), PostgreSQL or MySQL, the store's tables and schema version, and a
locked store or a full disk said as the ``StoreError`` with the way out. ``StoreBase`` is what
every part of ``Store`` shares: the engine, the sessions, the store's clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine, select

from engine.adapters.paths import state_dir
from engine.adapters.store.models import GLOBAL_TENANT, SCHEMA_VERSION, StoreMeta
from engine.domain.clock import Clock

BUSY_TIMEOUT_S = 5  # how long a write waits for another process's write lock (SQLite busy_timeout)


class StoreError(RuntimeError):
    """The store cannot be used; the message says why and what to do."""


class StoreLocked(StoreError):
    """Another process held the store's write lock longer than the busy timeout: nothing was
    written, and the same write can be retried (the kill switch's worker does)."""


class StoreFull(StoreError):
    """The store's disk (or its size limit) is full: nothing was written; reads still work."""


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


class StoreBase:
    """The engine, the tables, the sessions and the clock: what each part of ``Store`` uses."""

    url: str
    clock: Clock
    engine: Engine

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
