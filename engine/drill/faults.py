"""Fault injection for the rehearsal (docs/api.md; issue 6): what a drill switches on from a key to
see the dashboard react — lock contention, replication lag, a latency regression, an error burst,
and a long transaction that blocks the ALTER's metadata lock.

Only ever against the rehearsal's private sandbox: a ``FaultBox`` refuses to exist unless the plan
says ``rehearsal = true``, and audits the refusal. Each fault acts through connections of its own
(one per thread), named ``canary-console:fault-<name>`` in the processlist, its statements tagged
``/* canary-console:fault-<name> */``. ``start()`` and ``stop()`` are idempotent and thread-safe;
they block for a moment (connects, and joins on stop: call them from a thread worker, never the UI
thread); ``stop()`` closes everything ``start()`` opened and is safe at process exit.

Sessions that only add load connect without a default schema: their own statements stay out of
the table's digests (``SCHEMA_NAME``), so the dashboard keeps measuring the workload. The error
burst is the exception — its failures must count among the table's statements. Nothing here
changes a row: the lock holders read, the hot-row writer sets a key to itself, the duplicate insert
always fails. The latency regression changes two server settings and puts them back on stop.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from engine.adapters.target import TargetError, TargetSession
from engine.domain.clock import Clock, SystemClock
from engine.domain.identifiers import check_identifier, qualified, quote
from engine.domain.plan import ConnectionProfile

SYNTAX_ERROR = 1064  # the older spelling of a replication statement is tried next

# --- statements (identifiers are validated and quoted by the builders below) -----------------------

SET_READ_COMMITTED = "SET /* canary-console:fault */ SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
SET_ROW_LOCK_WAIT = "SET /* canary-console:fault */ SESSION innodb_lock_wait_timeout = %s"
SET_MDL_WAIT = "SET /* canary-console:fault */ SESSION lock_wait_timeout = %s"
SET_MAX_STATEMENT_TIME = "SET /* canary-console:fault */ SESSION max_statement_time = %s"  # MariaDB
BEGIN = "START /* canary-console:fault */ TRANSACTION"
ROLLBACK = "ROLLBACK /* canary-console:fault */"
KILL_QUERY = "KILL /* canary-console:fault-stop */ QUERY %s"

PK_RANGE = "SELECT /* canary-console:fault */ MIN({pk}) AS lo, MAX({pk}) AS hi FROM {table}"
# Lock contention: a range of hot rows locked (READ COMMITTED: exactly those rows, no gaps) …
LOCK_HOT_ROWS = "SELECT /* canary-console:fault-lock */ COUNT(*) AS n FROM {table} WHERE {pk} BETWEEN %s AND %s FOR UPDATE"
# … and a hot-row writer that queues behind it, as the application's would (a no-op update).
WRITE_HOT_ROW = "UPDATE /* canary-console:fault-lock */ {table} SET {pk} = {pk} WHERE {pk} = %s"
# A latency regression: full scans that burn CPU on every row of the table, and commits flushed to
# disk (redo log and binary log) — the settings read first and put back on stop.
HEAVY_SCAN = "SELECT /* canary-console:fault-latency */ COUNT(*) AS n FROM {table} WHERE MD5({pk}) LIKE %s"
READ_COMMIT_SETTINGS = ("SELECT /* canary-console:fault-latency */ @@GLOBAL.innodb_flush_log_at_trx_commit AS flush, "
                        "@@GLOBAL.sync_binlog AS sync")
SET_COMMIT_SETTINGS = ("SET /* canary-console:fault-latency */ GLOBAL innodb_flush_log_at_trx_commit = %s, "
                       "GLOBAL sync_binlog = %s")
# An error burst: a duplicate primary key (a copy of an existing row: never inserts anything) and
# a column that is not there (an application deployed ahead of its schema).
DUPLICATE_ROW = "INSERT /* canary-console:fault-errors */ INTO {table} SELECT * FROM {table} LIMIT 1"
MISSING_COLUMN = "SELECT /* canary-console:fault-errors */ {column} FROM {table} LIMIT 1"
MISSING_COLUMN_NAME = "canary_fault_missing_column"
# A long transaction: one read keeps the table's shared metadata lock until the transaction ends.
READ_TABLE = "SELECT /* canary-console:fault-mdl */ 1 AS one FROM {table} LIMIT 1"

# Replication: the current spelling first, then the older one (MariaDB < 10.5, MySQL < 8.0.22).
REPLICA_STATUS = ("SHOW /* canary-console:fault-lag */ REPLICA STATUS", "SHOW /* canary-console:fault-lag */ SLAVE STATUS")
STOP_SQL_THREAD = ("STOP /* canary-console:fault-lag */ REPLICA SQL_THREAD",
                   "STOP /* canary-console:fault-lag */ SLAVE SQL_THREAD")
START_SQL_THREAD = ("START /* canary-console:fault-lag */ REPLICA SQL_THREAD",
                    "START /* canary-console:fault-lag */ SLAVE SQL_THREAD")
STOP_REPLICA = ("STOP /* canary-console:fault-lag */ REPLICA", "STOP /* canary-console:fault-lag */ SLAVE")
START_REPLICA = ("START /* canary-console:fault-lag */ REPLICA", "START /* canary-console:fault-lag */ SLAVE")
SET_DELAY = ("CHANGE /* canary-console:fault-lag */ MASTER TO MASTER_DELAY = %s",
             "CHANGE /* canary-console:fault-lag */ REPLICATION SOURCE TO SOURCE_DELAY = %s")


def _build(template: str, schema: str, table: str, pk: str | None = None, column: str | None = None) -> str:
    return template.format(table=qualified(schema, table), pk=quote(pk, "column") if pk else "",
                           column=quote(column, "column") if column else "")


REFUSED = ("fault injection exists only in a rehearsal (a plan `canary-console rehearse` wrote, "
           "rehearsal = true); this plan is not one")


class FaultError(RuntimeError):
    """A fault that cannot start or stop; the message says why (never a credential)."""


class FaultsRefused(FaultError):
    """Fault injection asked for outside a rehearsal."""


@dataclass(frozen=True)
class FaultTarget:
    """Where the faults act: the drill's primary and replica, and the table under change."""

    primary: ConnectionProfile
    replica: ConnectionProfile | None
    schema: str
    table: str

    def __post_init__(self) -> None:
        check_identifier(self.schema, "schema")
        check_identifier(self.table, "table")

    @classmethod
    def of_plan(cls, plan: Any) -> FaultTarget:
        return cls(plan.connection, plan.replica, plan.schema, plan.change.table)

    @classmethod
    def of_sandbox(cls, sandbox: Any, schema: str, table: str) -> FaultTarget:
        replica = sandbox.replica.profile(schema) if sandbox.replica is not None else None
        return cls(sandbox.primary.profile(schema), replica, schema, table)

    @property
    def primary_without_schema(self) -> ConnectionProfile:
        """The primary with no default schema: statements from it stay out of the table's digests."""
        return replace(self.primary, database="")

    def where(self) -> str:
        return f"{self.schema}.{self.table}"


def _primary_key(target: FaultTarget, integer: bool) -> list[str]:
    with TargetSession(target.primary_without_schema, "fault-setup", read_timeout=10) as s:
        pk = s.primary_key(target.schema, target.table)
        if integer and len(pk) == 1:
            types = {c["name"]: str(c["data_type"]).lower() for c in s.columns(target.schema, target.table)}
            if types.get(pk[0]) not in ("tinyint", "smallint", "mediumint", "int", "bigint"):
                return []
        return pk


# --- faults -------------------------------------------------------------------------------------------


class Fault:
    """One fault: a key, a name, a line of description, ``start()`` and ``stop()``."""

    key = ""
    name = ""
    description = ""
    shows = ""  # what moves on the dashboard, and when

    def __init__(self, target: FaultTarget, clock: Clock | None = None):
        self.target = target
        self.clock = clock or SystemClock()
        self.since: datetime | None = None
        self.last_error: str | None = None
        self._lock = threading.RLock()

    @property
    def active(self) -> bool:
        return self.since is not None

    def start(self) -> bool:
        """Switch the fault on. False when it already was. Raises ``FaultError`` with nothing left
        open when it cannot."""
        with self._lock:
            if self.since is not None:
                return False
            self.last_error = None
            try:
                self._start()
            except TargetError as exc:
                raise FaultError(f"{self.name}: cannot start on {self.target.where()}: {exc}") from None
            self.since = self.clock.now()
            return True

    def stop(self) -> bool:
        """Switch the fault off, closing what it opened. False when it was not on. A fault whose
        undo could not reach the server (the replica's SQL thread) stays on and raises."""
        with self._lock:
            if self.since is None:
                return False
            try:
                self._stop()
            except TargetError as exc:
                self.last_error = str(exc)
                raise FaultError(f"{self.name}: could not undo on {self.target.where()}: {exc}; "
                                 "still on — stop it again") from None
            self.since = None
            return True

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError


@dataclass
class _LoopSpec:
    purpose: str  # the connection's name: canary-console:<purpose>
    profile: ConnectionProfile
    setup: Sequence[tuple[str, Any]]  # statements run once per connection
    body: Callable[[TargetSession, threading.Event], None]  # one round; paces itself on the event
    read_timeout: float = 30


class _Loop(threading.Thread):
    """One thread of a fault with its own connection, reconnecting after a lost one until stopped."""

    def __init__(self, fault: ThreadedFault, spec: _LoopSpec, halt: threading.Event):
        super().__init__(name=f"canary-{spec.purpose}", daemon=True)
        self.fault, self.spec, self.halt = fault, spec, halt
        self.thread_id: int | None = None  # the server's id of the connection, for KILL QUERY on stop

    def run(self) -> None:
        session: TargetSession | None = None
        try:
            while not self.halt.is_set():
                try:
                    if session is None:
                        session = TargetSession(self.spec.profile, self.spec.purpose,
                                                read_timeout=self.spec.read_timeout)
                        self.thread_id = session.thread_id
                        for statement, params in self.spec.setup:
                            _optional(session, statement, params)
                    self.spec.body(session, self.halt)
                except Exception as exc:  # noqa: BLE001 - a fault's thread reports, never dies
                    if self.halt.is_set():
                        break
                    self.fault.last_error = f"{self.spec.purpose}: {exc}"
                    if session is not None and (not isinstance(exc, TargetError) or exc.kind == "lost_connection"):
                        session.close()
                        session = None
                    self.halt.wait(0.5)
        finally:
            if session is not None:
                _optional(session, ROLLBACK, None)
                session.close()


def _optional(session: TargetSession, statement: str, params: Any) -> None:
    """A statement whose failure changes nothing that matters (a session setting the server does
    not know, a rollback on a dead connection)."""
    try:
        session.execute(statement, params)
    except TargetError:
        pass


class ThreadedFault(Fault):
    """A fault made of threads with their own connections; stop interrupts and joins them."""

    def __init__(self, target: FaultTarget, clock: Clock | None = None):
        super().__init__(target, clock)
        self._halt = threading.Event()
        self._loops: list[_Loop] = []

    def _specs(self) -> list[_LoopSpec]:
        raise NotImplementedError

    def _start(self) -> None:
        specs = self._specs()
        self._halt = threading.Event()
        self._loops = [_Loop(self, spec, self._halt) for spec in specs]
        for loop in self._loops:
            loop.start()

    def _stop(self) -> None:
        self._halt.set()
        deadline = time.monotonic() + 0.5  # most loops end at once: they pace themselves on the event
        for loop in self._loops:
            loop.join(max(0.0, deadline - time.monotonic()))
        busy = [loop for loop in self._loops if loop.is_alive() and loop.thread_id is not None]
        if busy:  # in a statement (a lock wait, a scan): interrupt it from another connection
            try:
                with TargetSession(busy[0].spec.profile, "fault-stop", read_timeout=10) as s:
                    for loop in busy:
                        _optional(s, KILL_QUERY, (loop.thread_id,))
            except TargetError:
                pass  # the server is gone: the threads' own timeouts end them
        for loop in self._loops:
            loop.join(15)
        self._loops = []

    @property
    def thread_ids(self) -> list[int]:
        return [loop.thread_id for loop in self._loops if loop.thread_id is not None]


class LockContention(ThreadedFault):
    """Two ranges of hot rows, each locked ``FOR UPDATE`` for ``hold_s`` seconds and retaken at once,
    half a cycle apart; a hot-row writer queues behind each. At any moment some session has waited
    at least half a cycle. The ranges are a few rows each: the workload's writes seldom land there,
    so the lock wait shows on its own (the fault's statements are the console's, which the latency
    percentiles leave out); a wide range would queue the workload's writes too, and their p99
    would pass its critical line within seconds."""

    key = "l"
    name = "Lock contention"
    description = "sessions hold row locks on hot rows of the table (FOR UPDATE, seconds at a time)"
    # What each did when measured (README, "Faults"): the F6 list says it in a line.
    shows = "lock wait 1–3 s, yellow, from the second sample; latency as before; left on: FAIL at the end"

    def __init__(self, target: FaultTarget, clock: Clock | None = None, hold_s: float = 3.0, rows: int = 10):
        super().__init__(target, clock)
        self.hold_s, self.rows = hold_s, rows
        self.ranges: list[tuple[int, int]] = []

    def _specs(self) -> list[_LoopSpec]:
        pk = _primary_key(self.target, integer=True)
        if len(pk) != 1:
            raise FaultError(f"{self.name} needs a single integer primary key on {self.target.where()}")
        t = self.target
        with TargetSession(t.primary_without_schema, "fault-setup", read_timeout=10) as s:
            row = s.query(_build(PK_RANGE, t.schema, t.table, pk[0]))[0]
        if row["lo"] is None:
            raise FaultError(f"{self.name}: {t.where()} is empty — no rows to lock")
        lo, hi = int(row["lo"]), int(row["hi"])
        span = max(1, min(self.rows, (hi - lo + 1) // 3))
        # Two ranges with a gap between them, so the two holders never wait for each other.
        self.ranges = [(lo, lo + span - 1), (lo + 2 * span, lo + 3 * span - 1)]
        lock_rows = _build(LOCK_HOT_ROWS, t.schema, t.table, pk[0])
        write_row = _build(WRITE_HOT_ROW, t.schema, t.table, pk[0])
        wait = int(self.hold_s) + 10
        setup = [(SET_READ_COMMITTED, None), (SET_ROW_LOCK_WAIT, (wait,))]
        period, gap = self.hold_s, 0.05
        specs = []
        for i, (a, b) in enumerate(self.ranges):
            # The second holder's first hold is half a cycle: from then on they alternate.
            specs.append(_LoopSpec(f"fault-lock-holder-{i + 1}", t.primary_without_schema, setup,
                                   self._holder(lock_rows, a, b, period * (1 - i / 2), period, gap)))
            specs.append(_LoopSpec(f"fault-lock-writer-{i + 1}", t.primary_without_schema, setup,
                                   _paced(write_row, (a,), 0.02), read_timeout=wait + 5))
        return specs

    def _holder(self, statement: str, a: int, b: int, first_hold: float, period: float,
                gap: float) -> Callable[[TargetSession, threading.Event], None]:
        release_at: list[float] = []

        def body(session: TargetSession, halt: threading.Event) -> None:
            now = time.monotonic()  # real seconds, not the drill's clock: the server's waits are real
            if not release_at:
                release_at.append(now + first_hold)
            while release_at[0] <= now:  # behind schedule (a slow round): keep the phase, skip a hold
                release_at[0] += period
            session.execute(BEGIN)
            try:
                session.query(statement, (a, b))
                halt.wait(max(0.0, release_at[0] - time.monotonic()))
            finally:
                _optional(session, ROLLBACK, None)
            release_at[0] += period
            halt.wait(gap)

        return body


def _paced(statement: str, params: Any, pause_s: float) -> Callable[[TargetSession, threading.Event], None]:
    def body(session: TargetSession, halt: threading.Event) -> None:
        session.execute(statement, params)
        halt.wait(pause_s)

    return body


class LatencyRegression(ThreadedFault):
    """The two classic causes at once: full scans of the table that burn CPU on every row (one more
    thread than there are cores), so reads wait for CPU; and commits made durable (a flush of the
    redo log and the binary log at every commit), so point writes wait for the disk. CPU alone
    slows only long statements — a short write is scheduled at once — and the dashboard's p50 is
    taken over reads and writes together: both kinds must slow for it to rise whatever the mix."""

    key = "s"
    name = "Latency regression"
    description = "a competing load of CPU-heavy full scans of the table, and commits flushed to disk"
    shows = "p50 +80…+190 % from the second sample (yellow within minutes), p99 ×25–50: FAIL at the T+30 look"

    def __init__(self, target: FaultTarget, clock: Clock | None = None, threads: int | None = None,
                 durable_commits: bool = True):
        super().__init__(target, clock)
        self.threads = threads or min(16, _cores() + 1)
        self.durable_commits = durable_commits
        self._saved: dict[str, Any] | None = None  # the settings to put back on stop

    def _specs(self) -> list[_LoopSpec]:
        pk = _primary_key(self.target, integer=False)
        if not pk:
            raise FaultError(f"{self.name} needs a primary key on {self.target.where()}")
        t = self.target
        scan = _build(HEAVY_SCAN, t.schema, t.table, pk[0])
        setup = [(SET_MAX_STATEMENT_TIME, (60,))]  # a scan never outlives a lost client for long
        return [_LoopSpec(f"fault-latency-{i + 1}", t.primary_without_schema, setup,
                          _paced(scan, ("%c0ffee%",), 0.0), read_timeout=90)
                for i in range(self.threads)]

    def _start(self) -> None:
        if self.durable_commits:
            with TargetSession(self.target.primary_without_schema, "fault-latency", read_timeout=10) as s:
                self._saved = s.query(READ_COMMIT_SETTINGS)[0]
                s.execute(SET_COMMIT_SETTINGS, (1, 1))
        try:
            super()._start()
        except BaseException:
            self._restore()
            raise

    def _stop(self) -> None:
        super()._stop()
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            with TargetSession(self.target.primary_without_schema, "fault-latency", read_timeout=10) as s:
                s.execute(SET_COMMIT_SETTINGS, (int(self._saved["flush"]), int(self._saved["sync"])))
            self._saved = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 2


class ErrorBurst(ThreadedFault):
    """Statements on the table that fail — duplicate primary keys and a missing column — from a
    session on the table's schema, so they count among the table's statements."""

    key = "e"
    name = "Error burst"
    description = "failing statements on the table: duplicate-key inserts, a missing column"
    shows = "error rate (the table's failing statements) ~20 %, red at once: the window stops, FAIL"

    def __init__(self, target: FaultTarget, clock: Clock | None = None, rate_per_s: float = 10.0):
        super().__init__(target, clock)
        self.rate_per_s = rate_per_s
        self.sent = 0
        self.failed = 0

    def _specs(self) -> list[_LoopSpec]:
        t = self.target
        statements = [_build(MISSING_COLUMN, t.schema, t.table, column=MISSING_COLUMN_NAME)]
        if _primary_key(t, integer=False):  # only with a key can the copy of a row never be inserted
            statements.insert(0, _build(DUPLICATE_ROW, t.schema, t.table))
        pause = 1.0 / self.rate_per_s if self.rate_per_s > 0 else 1.0
        turn = [0]

        def body(session: TargetSession, halt: threading.Event) -> None:
            statement = statements[turn[0] % len(statements)]
            turn[0] += 1
            self.sent += 1
            try:
                session.execute(statement)
            except TargetError as exc:
                if exc.kind == "lost_connection":
                    raise
                self.failed += 1  # the point of it
            halt.wait(pause)

        # The primary's own profile: its default schema is the table's, as the application's is.
        return [_LoopSpec("fault-errors", t.primary, [(SET_READ_COMMITTED, None)], body)]


class ReplicationLag(Fault):
    """The replica stops applying: ``STOP REPLICA SQL_THREAD`` (the IO thread keeps fetching), or
    with ``delay_s`` a ``MASTER_DELAY``. Stop starts it again (and sets the delay back to 0)."""

    key = "g"
    name = "Replication lag"
    description = "the replica's SQL thread stops applying (or a MASTER_DELAY holds it back)"
    shows = ("lag grows on the monitor's clock (a drill's too): yellow at 30 s, red at 60 s — the window "
             "stops, FAIL")

    def __init__(self, target: FaultTarget, clock: Clock | None = None, delay_s: int | None = None):
        super().__init__(target, clock)
        if target.replica is None:
            raise FaultError("replication lag needs the plan's replica")
        if delay_s is not None and not (isinstance(delay_s, int) and 1 <= delay_s <= 86_400):
            raise ValueError("delay_s: whole seconds, 1 to 86400")
        self.replica = target.replica
        self.delay_s = delay_s

    def _session(self) -> TargetSession:
        return TargetSession(replace(self.replica, database=""), "fault-lag", read_timeout=30)

    def _start(self) -> None:
        with self._session() as s:
            if not _first(s, REPLICA_STATUS, None, query=True):
                raise FaultError(f"{self.name}: {self.replica.describe()} is not a replica")
            if self.delay_s is None:
                _first(s, STOP_SQL_THREAD, None)
                return
            _first(s, STOP_REPLICA, None)
            try:
                _first(s, SET_DELAY, (self.delay_s,))
            finally:
                _first(s, START_REPLICA, None)

    def _stop(self) -> None:
        with self._session() as s:
            if self.delay_s is None:
                _first(s, START_SQL_THREAD, None)
                return
            _first(s, STOP_REPLICA, None)
            try:
                _first(s, SET_DELAY, (0,))
            finally:
                _first(s, START_REPLICA, None)


def _first(session: TargetSession, variants: Sequence[str], params: Any, query: bool = False) -> list[dict[str, Any]]:
    """The first spelling the server understands (a syntax error tries the next)."""
    for i, statement in enumerate(variants):
        try:
            if query:
                return session.query(statement, params)
            session.execute(statement, params)
            return []
        except TargetError as exc:
            if exc.code != SYNTAX_ERROR or i == len(variants) - 1:
                raise
    return []


class LongTransaction(Fault):
    """A session opens a transaction, reads the table and stays idle: it holds the table's shared
    metadata lock, so an ALTER queues for its exclusive one (and everything after queues behind the
    ALTER) until the executor's lock_wait_timeout gives up."""

    key = "m"
    name = "Long transaction (MDL)"
    description = "an idle open transaction that read the table: the ALTER's metadata lock waits"
    shows = ("on before the ALTER: the ALTER waits 5 s for its metadata lock and gives up — the run fails "
             "(execution_error), the Execution screen names the holder")

    def __init__(self, target: FaultTarget, clock: Clock | None = None):
        super().__init__(target, clock)
        self._session: TargetSession | None = None

    @property
    def thread_id(self) -> int | None:
        """The holding session's id (the one a DBA would KILL)."""
        return self._session.thread_id if self._session is not None else None

    def _start(self) -> None:
        t = self.target
        s = TargetSession(t.primary_without_schema, "fault-mdl", read_timeout=30)
        try:
            s.execute(SET_MDL_WAIT, (10,))  # its own read waits at most this for a table being altered
            s.execute(BEGIN)
            s.query(_build(READ_TABLE, t.schema, t.table))
        except BaseException:
            s.close()
            raise
        self._session = s

    def _stop(self) -> None:
        s, self._session = self._session, None
        if s is not None:
            _optional(s, ROLLBACK, None)  # closing would end it too; this says so in the general log
            s.close()


class SevereLockContention(LockContention):
    """The same, held four times as long: the waits pass the critical line (lock wait ≥ 5 s), the
    runbook's "immediate manual rollback" trigger."""

    key = "L"
    name = "Lock contention, severe"
    description = "row locks on hot rows held 12 s at a time: waits pass 5 s"
    shows = "lock wait red (≥ 5 s) once a waiter has waited 5 real seconds: the window stops, FAIL"

    def __init__(self, target: FaultTarget, clock: Clock | None = None):
        super().__init__(target, clock, hold_s=12.0)


def catalogue(target: FaultTarget, clock: Clock | None = None) -> list[Fault]:
    """Every fault the target allows, in key order of the help line (no replica: no lag)."""
    faults: list[Fault] = [LockContention(target, clock), SevereLockContention(target, clock)]
    if target.replica is not None:
        faults.append(ReplicationLag(target, clock))
    faults += [LatencyRegression(target, clock), ErrorBurst(target, clock), LongTransaction(target, clock)]
    return faults


# --- the box the console holds ------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveFault:
    key: str
    name: str
    since: datetime


class FaultBox:
    """The rehearsal's faults, by key. Exists only for a rehearsal (``rehearsal=True``: the plan's
    flag); audits every start and stop when given a store; stops them all on ``close()`` — and at
    process exit, before the sandbox (created earlier) is stopped."""

    def __init__(self, target: FaultTarget, *, rehearsal: bool, store: Any = None, tenant_id: str = "",
                 run_id: str | None = None, actor: str = "", clock: Clock | None = None,
                 faults: Sequence[Fault] | None = None):
        self.target = target
        self.store, self.tenant_id, self.run_id, self.actor = store, tenant_id, run_id, actor
        if rehearsal is not True:
            self._audit("fault_injection_refused", {"reason": REFUSED, "table": target.where()})
            raise FaultsRefused(REFUSED)
        self._faults = {f.key: f for f in (faults if faults is not None else catalogue(target, clock))}
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    @classmethod
    def from_plan(cls, plan: Any, store: Any = None, run_id: str | None = None, actor: str = "",
                  clock: Clock | None = None) -> FaultBox:
        return cls(FaultTarget.of_plan(plan), rehearsal=plan.rehearsal, store=store, tenant_id=plan.tenant,
                   run_id=run_id, actor=actor, clock=clock)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return tuple(self._faults.values())

    def fault(self, key: str) -> Fault:
        try:
            return self._faults[key]
        except KeyError:
            raise FaultError(f"no fault on key {key!r}: {', '.join(self._faults)}") from None

    def start(self, key: str) -> bool:
        """Start the fault on ``key``; False when it was on already. A start that cannot be audited
        is undone: no fault runs without its entry in the trail."""
        fault = self.fault(key)
        with self._lock:  # held through the start: close() never misses a fault starting
            if self._closed:
                raise FaultError("the fault box is closed (the rehearsal is ending)")
            if not fault.start():
                return False
            try:
                self._audit("fault_started", {"key": fault.key, "fault": fault.name,
                                              "description": fault.description, "table": self.target.where()})
            except Exception:
                fault.stop()
                raise
            return True

    def stop(self, key: str) -> bool:
        fault = self.fault(key)
        since = fault.since
        if not fault.stop():
            return False
        self._audit("fault_stopped", self._stopped(fault, since))
        return True

    def toggle(self, key: str) -> bool:
        """Start the fault if it is off, stop it if it is on; True when it is on afterwards."""
        if self.fault(key).active:
            self.stop(key)
            return False
        self.start(key)
        return True

    def active(self) -> list[ActiveFault]:
        return [ActiveFault(f.key, f.name, f.since) for f in self._faults.values() if f.since is not None]

    def close(self) -> None:
        """Stop every fault (idempotent; safe at process exit: failures are recorded, not raised)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for fault in self._faults.values():
            since = fault.since
            try:
                if fault.stop():
                    self._audit("fault_stopped", self._stopped(fault, since), quiet=True)
            except FaultError as exc:
                fault.last_error = str(exc)
                self._audit("fault_stop_failed", {"key": fault.key, "fault": fault.name, "error": str(exc)},
                            quiet=True)
        atexit.unregister(self.close)

    def __enter__(self) -> FaultBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stopped(self, fault: Fault, since: datetime | None) -> dict[str, Any]:
        details: dict[str, Any] = {"key": fault.key, "fault": fault.name, "table": self.target.where()}
        if since is not None:
            details["seconds"] = round((fault.clock.now() - since).total_seconds(), 1)
        if fault.last_error:
            details["last_error"] = fault.last_error[:300]
        return details

    def _audit(self, action: str, details: dict[str, Any], quiet: bool = False) -> None:
        if self.store is None or not self.actor:
            return
        try:
            self.store.audit(self.tenant_id, self.actor, action, self.run_id, details)
        except Exception:  # noqa: BLE001
            if not quiet:
                raise
