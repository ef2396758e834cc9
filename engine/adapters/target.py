"""Access to the target MySQL/MariaDB server over pymysql.

One ``TargetSession`` is one connection, used by one thread of work. Every connection carries a
``program_name`` and connect/read/write timeouts: pymysql's default is none, and a hung query
would freeze its thread forever.
"""

from __future__ import annotations

import configparser
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pymysql.cursors

from engine.adapters import sql
from engine.domain.identifiers import check_identifier
from engine.domain.plan import ConnectionProfile

PROGRAM_NAME = "canary-console"

# pymysql / server error codes, by what they mean to us.
LOST_CONNECTION = {2003, 2006, 2013, 2055, 1053, 1927}  # 1927: connection was killed
ACCESS_DENIED = {1044, 1045, 1142, 1143, 1227, 1370}
LOCK_WAIT_TIMEOUT = {1205}
INTERRUPTED = {1317, 3024, 1969}  # query interrupted / max_statement_time exceeded
LOCK_NONE_REFUSED = {1845, 1846}  # ALTER_OPERATION_NOT_SUPPORTED(_REASON)
DUPLICATE_KEY_NAME = {1061}
NO_SUCH_TABLE = {1146}


class TargetError(RuntimeError):
    """A target operation that failed, with its class (``kind``) and the server's code."""

    def __init__(self, message: str, kind: str = "error", code: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.code = code


def error_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def classify(exc: BaseException) -> str:
    """What an exception from pymysql means: lost_connection, access_denied, lock_wait_timeout,
    interrupted, lock_none_refused, duplicate_key_name, no_such_table, or error."""
    code = error_code(exc)
    if code in LOST_CONNECTION or isinstance(exc, (pymysql.err.InterfaceError, OSError, TimeoutError)):
        return "lost_connection"
    for kind, codes in (
        ("access_denied", ACCESS_DENIED), ("lock_wait_timeout", LOCK_WAIT_TIMEOUT),
        ("interrupted", INTERRUPTED), ("lock_none_refused", LOCK_NONE_REFUSED),
        ("duplicate_key_name", DUPLICATE_KEY_NAME), ("no_such_table", NO_SUCH_TABLE),
    ):
        if code in codes:
            return kind
    return "error"


def describe(exc: BaseException) -> str:
    code = error_code(exc)
    text = exc.args[1] if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) > 1 else str(exc)
    return f"({code}) {text}" if code else f"{exc.__class__.__name__}: {text}"


@dataclass(frozen=True)
class ServerInfo:
    flavour: str  # mariadb | mysql
    version: tuple[int, int, int]
    version_string: str

    @property
    def supports_ignored_index(self) -> bool:
        if self.flavour == "mariadb":
            return self.version >= (10, 6, 0)
        return self.version >= (8, 0, 0)

    def describe(self) -> str:
        name = "MariaDB" if self.flavour == "mariadb" else "MySQL"
        return f"{name} {'.'.join(map(str, self.version))}"


def parse_version(version: str, comment: str = "") -> ServerInfo:
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    numbers = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)
    flavour = "mariadb" if "mariadb" in (version + " " + comment).lower() else "mysql"
    return ServerInfo(flavour, numbers, version)


@dataclass(frozen=True)
class TableInfo:
    schema: str
    table: str
    engine: str | None
    estimated_rows: int
    data_bytes: int
    index_bytes: int

    @property
    def data_mb(self) -> float:
        return round(self.data_bytes / 1048576, 2)

    @property
    def index_mb(self) -> float:
        return round(self.index_bytes / 1048576, 2)


@dataclass(frozen=True)
class IndexInfo:
    name: str
    columns: tuple[tuple[str, int | None], ...]
    unique: bool
    index_type: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": [list(c) for c in self.columns], "unique": self.unique,
                "type": self.index_type}


@dataclass
class MdlReport:
    """Who holds and who waits for metadata locks on the table (the guard of docs/runbook.md#4-execution)."""

    source: str  # performance_schema | processlist
    holders: list[dict[str, Any]] = field(default_factory=list)
    waiters: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


class TargetSession:
    """One pymysql connection to the target. Not thread-safe: one per thread of work."""

    def __init__(self, profile: ConnectionProfile, purpose: str = "main", read_timeout: float | None = 30,
                 connect_timeout: float = 5):
        self.profile = profile
        self.purpose = purpose
        kwargs: dict[str, Any] = dict(
            host=profile.host, port=profile.port, user=profile.user, database=profile.database or None,
            connect_timeout=connect_timeout, read_timeout=read_timeout, write_timeout=30,
            autocommit=True, charset="utf8mb4", cursorclass=pymysql.cursors.DictCursor,
            program_name=f"{PROGRAM_NAME}:{purpose}",
        )
        if profile.socket:
            kwargs["unix_socket"] = profile.socket
        password = profile.password()
        if password is not None:
            kwargs["password"] = password
        if profile.option_file:
            kwargs["read_default_file"] = profile.option_file
            kwargs["read_default_group"] = profile.option_group
        if profile.tls:
            ssl: dict[str, Any] = {}
            if profile.tls.ca:
                ssl["ca"] = profile.tls.ca
            if profile.tls.cert:
                ssl["cert"] = profile.tls.cert
            if profile.tls.key:
                ssl["key"] = profile.tls.key
            kwargs["ssl"] = ssl or {"check_hostname": False}
            kwargs["ssl_verify_identity"] = profile.tls.verify_identity
        try:
            self.conn = pymysql.connect(**kwargs)
        except pymysql.err.MySQLError as exc:
            kind = classify(exc)
            hint = {
                "access_denied": _password_hint(profile),
                "lost_connection": "check host, port and that the server is up",
            }.get(kind, "check the connection profile in the plan")
            raise TargetError(f"cannot connect to {profile.describe()}: {describe(exc)}; {hint}", kind,
                              error_code(exc)) from None
        except Exception as exc:  # noqa: BLE001 - pymysql raises more than MySQLError before it connects
            raise TargetError(f"cannot connect to {profile.describe()}: {_connect_problem(profile, exc)}",
                              "error") from None
        self.thread_id: int = self.conn.thread_id()

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing a dead connection is not an error
            pass

    def __enter__(self) -> TargetSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, statement: str, params: Any = None) -> list[dict[str, Any]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(statement, params)
                return list(cur.fetchall())
        except pymysql.err.MySQLError as exc:
            raise TargetError(describe(exc), classify(exc), error_code(exc)) from exc

    def execute(self, statement: str, params: Any = None) -> int:
        try:
            with self.conn.cursor() as cur:
                return cur.execute(statement, params)
        except pymysql.err.MySQLError as exc:
            raise TargetError(describe(exc), classify(exc), error_code(exc)) from exc

    # --- catalogue -----------------------------------------------------------------------

    def server_info(self) -> ServerInfo:
        row = self.query(sql.SERVER_VERSION)[0]
        return parse_version(row["version"], row.get("comment") or "")

    def table_info(self, schema: str, table: str) -> TableInfo | None:
        rows = self.query(sql.TABLE_INFO, (check_identifier(schema, "schema"), check_identifier(table, "table")))
        if not rows or rows[0]["table_type"] != "BASE TABLE":
            return None
        r = rows[0]
        return TableInfo(schema, table, r["engine"], int(r["table_rows"] or 0), int(r["data_length"] or 0),
                         int(r["index_length"] or 0))

    def columns(self, schema: str, table: str) -> list[dict[str, Any]]:
        return self.query(sql.TABLE_COLUMNS, (schema, table))

    def indexes(self, schema: str, table: str) -> list[IndexInfo]:
        rows = self.query(sql.TABLE_INDEXES, (schema, table))
        grouped: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            grouped.setdefault(r["name"], []).append(r)
        return [
            IndexInfo(
                name=name,
                columns=tuple((c["column_name"], int(c["sub_part"]) if c["sub_part"] is not None else None) for c in cols),
                unique=not int(cols[0]["non_unique"]),
                index_type=cols[0]["index_type"],
            )
            for name, cols in grouped.items()
        ]

    def index_exists(self, schema: str, table: str, index: str) -> bool:
        return int(self.query(sql.INDEX_EXISTS, (schema, table, index))[0]["n"]) > 0

    def show_create_table(self, schema: str, table: str) -> str:
        row = self.query(sql.show_create_table(schema, table))[0]
        return row.get("Create Table") or list(row.values())[1]

    def primary_key(self, schema: str, table: str) -> list[str]:
        for idx in self.indexes(schema, table):
            if idx.name == "PRIMARY":
                return [c for c, _ in idx.columns]
        return []

    def exact_count(self, schema: str, table: str, chunk: int = 500_000,
                    progress: Callable[[float], None] | None = None,
                    cancel: threading.Event | None = None) -> int | None:
        """``COUNT(*)`` in primary-key ranges, so it reports progress and can stop between chunks.

        Returns None when cancelled. Tables without a single integer key are counted in one go.
        """
        # Refuse a bad name before the catalogue look-ups below send it anywhere.
        check_identifier(schema, "schema")
        check_identifier(table, "table")
        pk = self.primary_key(schema, table)
        integer_pk = False
        if len(pk) == 1:
            types = {c["name"]: c["data_type"] for c in self.columns(schema, table)}
            integer_pk = types.get(pk[0], "").lower() in INTEGER_TYPES
        if not integer_pk:
            n = int(self.query(sql.count_all(schema, table))[0]["n"])
            if progress:
                progress(1.0)
            return n
        bounds = self.query(sql.pk_range(schema, table, pk[0]))[0]
        if bounds["lo"] is None:
            return 0
        lo, hi = int(bounds["lo"]), int(bounds["hi"])
        total, start, statement = 0, lo, sql.count_pk_range(schema, table, pk[0])
        while start <= hi:
            if cancel is not None and cancel.is_set():
                return None
            total += int(self.query(statement, (start, start + chunk))[0]["n"])
            start += chunk
            if progress:
                progress(min(1.0, (start - lo) / max(1, hi - lo + 1)))
        return total

    # --- sessions and locks --------------------------------------------------------------

    def active_statements(self) -> list[dict[str, Any]]:
        return self.query(sql.PROCESSLIST_ACTIVE)

    def thread(self, thread_id: int) -> dict[str, Any] | None:
        rows = self.query(sql.PROCESSLIST_THREAD, (int(thread_id),))
        return rows[0] if rows else None

    def find_alter(self, run_id: str) -> dict[str, Any] | None:
        """The run's ALTER in the processlist, found by the tag it carries (not by a bare id,
        which the server may have reused for someone else)."""
        tag = sql.alter_tag(run_id)
        for row in self.active_statements():
            if tag in (row.get("info") or ""):
                return row
        return None

    def pending_ddl(self, schema: str, table: str) -> list[dict[str, Any]]:
        """Sessions running DDL that names the table (runbook 2.2.2 #5)."""
        pattern = re.compile(
            r"^\s*(/\*.*?\*/\s*)*(ALTER|CREATE|DROP|RENAME|TRUNCATE|OPTIMIZE|REPAIR)\b", re.I | re.S
        )
        hits = []
        for row in self.active_statements():
            info = row.get("info") or ""
            if pattern.match(info) and _names_table(info, table):
                hits.append(row)
        return hits

    def long_transactions(self, older_than_s: int = 10) -> list[dict[str, Any]]:
        return self.query(sql.LONG_TRANSACTIONS, (int(older_than_s),))

    def ensure_mdl_instrument(self) -> bool:
        """Turn on the metadata-lock instrument if we may. True when it is on."""
        try:
            rows = self.query(sql.MDL_INSTRUMENT_ENABLED)
            if rows and rows[0]["enabled"] == "YES":
                return True
            self.execute(sql.ENABLE_MDL_INSTRUMENT)
            return True
        except TargetError:
            return False

    def metadata_locks(self, schema: str, table: str) -> MdlReport:
        if self.ensure_mdl_instrument():
            try:
                rows = self.query(sql.TABLE_METADATA_LOCKS, (schema, table))
                own = {self.thread_id}
                holders = [r for r in rows if r["lock_status"] == "GRANTED" and r["thread_id"] not in own]
                waiters = [r for r in rows if r["lock_status"] == "PENDING"]
                return MdlReport("performance_schema", holders, waiters)
            except TargetError:
                pass
        waiters = [r for r in self.query(sql.PROCESSLIST_MDL_WAITERS) if _names_table(r.get("info") or "", table)]
        return MdlReport("processlist", [], waiters,
                         note="performance_schema.metadata_locks is not readable; holders are not shown")

    def long_transactions_on_table(self, schema: str, table: str, older_than_s: int = 10) -> list[dict[str, Any]]:
        """Open transactions older than the limit whose session holds a metadata lock on the table:
        the ones that will block the ALTER's final exclusive lock."""
        trx = self.long_transactions(older_than_s)
        report = self.metadata_locks(schema, table)
        if report.source != "performance_schema":
            return trx  # cannot tell which table they touch: report them all
        holding = {h["thread_id"] for h in report.holders}
        return [t for t in trx if t["thread_id"] in holding]

    def kill_query(self, thread_id: int) -> None:
        self.execute(sql.KILL_QUERY, (int(thread_id),))

    def index_ignored(self, schema: str, table: str, index: str, flavour: str) -> bool | None:
        """Whether the optimiser ignores the index (MariaDB IGNORED / MySQL INVISIBLE); None when
        there is no such index."""
        statement = sql.INDEX_IGNORED_MARIADB if flavour == "mariadb" else sql.INDEX_INVISIBLE_MYSQL
        value = self.query(statement, (schema, table, index))[0]["ignored"]
        return None if value is None else bool(int(value))


def _password_hint(profile: ConnectionProfile) -> str:
    """Where the password came from, to check after an access denied (never the password itself)."""
    if profile.password_env and os.environ.get(profile.password_env) is None:
        return (f"the password source, the environment variable {profile.password_env} (password_env), is not "
                "set in this session: export it, then try again")
    sources = []
    if profile.password_env:
        sources.append(f"the environment variable {profile.password_env} (password_env)")
    if profile.option_file:
        readable = os.access(profile.option_file, os.R_OK)
        sources.append(f"[{profile.option_group}] in {profile.option_file} (option_file"
                       + ("" if readable else ", which this user cannot read: the client skipped it") + ")")
    if not sources:
        return "the plan gives no password source: add password_env or option_file to the connection"
    return f"check the user and the password source: {' and '.join(sources)}"


def _connect_problem(profile: ConnectionProfile, exc: Exception) -> str:
    """What went wrong before the client reached the server, in words that cannot carry a secret:
    the option file's parser quotes the offending line (a password line, often), and a password the
    client cannot encode is quoted in part by the codec — neither message is passed on."""
    if isinstance(exc, configparser.Error):
        line = getattr(exc, "lineno", None) or next(iter(getattr(exc, "errors", [])), (None,))[0]
        at = f" (line {line})" if line else ""
        return (f"the option file {profile.option_file} cannot be read as a MySQL option file{at}: it needs a "
                f"[{profile.option_group}] group header and then key = value lines, each key once")
    if isinstance(exc, UnicodeDecodeError):
        return f"the option file {profile.option_file} is not UTF-8 text; rewrite it as a MySQL option file"
    if isinstance(exc, UnicodeEncodeError) and exc.encoding in ("latin-1", "latin1"):
        return ("the password has characters the MySQL client library cannot send (it sends Latin-1 only); "
                "give the account a password in Latin-1")
    if isinstance(exc, UnicodeError):
        return f"the host name {profile.host!r} cannot be looked up; check connection.host in the plan"
    if isinstance(exc, OSError):
        what = exc.strerror or exc.__class__.__name__
        missing = [p for p in (profile.tls.ca, profile.tls.cert, profile.tls.key) if p and not os.path.exists(p)
                   ] if profile.tls else []
        filename = exc.filename or (missing[0] if missing else None)
        where = f": {filename}" if filename else ""
        return f"{what}{where}; check the file paths of the connection profile (tls.ca, tls.cert, tls.key)"
    return f"{exc.__class__.__name__}; check the connection profile in the plan"


def _names_table(statement: str, table: str) -> bool:
    """Whether a statement names the table itself (``orders``, not ``orders_archive``)."""
    return re.search(rf"(?<![\w$]){re.escape(table)}(?![\w$])", statement, re.I) is not None


INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})  # an exact count in key ranges


class Target:
    """A connection profile, and the sessions opened on it."""

    def __init__(self, profile: ConnectionProfile):
        self.profile = profile

    def session(self, purpose: str = "main", read_timeout: float | None = 30) -> TargetSession:
        return TargetSession(self.profile, purpose, read_timeout=read_timeout)


@dataclass(frozen=True)
class AlterStage:
    stage: str
    done: int | None
    estimated: int | None

    @property
    def fraction(self) -> float | None:
        if not self.estimated or self.done is None:
            return None
        return max(0.0, min(1.0, self.done / self.estimated))


def alter_stage(session: TargetSession, thread_id: int) -> AlterStage | None:
    """The stage the ALTER's thread is in, with WORK_COMPLETED / WORK_ESTIMATED (None when the
    thread is in no instrumented stage)."""
    rows = session.query(sql.ALTER_STAGE, (int(thread_id),))
    if not rows:
        return None
    r = rows[0]
    return AlterStage(str(r["stage"]).removeprefix("stage/innodb/").removeprefix("stage/sql/"),
                      None if r["done"] is None else int(r["done"]),
                      None if r["estimated"] is None else int(r["estimated"]))
