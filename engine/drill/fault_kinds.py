"""The drill's faults, one class each (docs/rehearsal.md, "Faults (F6)"): lock contention (and its
severe form), replication lag, a latency regression, an error burst, and a long transaction that
blocks the ALTER's metadata lock — and ``catalogue``, the ones a target allows, in the order of the
help line. What each acts through is in engine/drill/fault_base.py, their SQL in
engine/drill/fault_sql.py.

Sessions that only add load connect without a default schema: their own statements stay out of
the table's digests (``SCHEMA_NAME``), so the dashboard keeps measuring the workload. The error
burst is the exception — its failures must count among the table's statements. Nothing here
changes a row: the lock holders read, the hot-row writer sets a key to itself, the duplicate insert
always fails. The latency regression changes three server settings and puts them back on stop.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from engine.adapters.target import TargetError, TargetSession
from engine.domain.clock import Clock
from engine.drill.fault_base import (
    Fault,
    FaultError,
    FaultTarget,
    LoopSpec,
    ThreadedFault,
    optional_statement,
    primary_key_of,
)
from engine.drill.fault_sql import (
    BEGIN,
    DUPLICATE_ROW,
    HEAVY_SCAN,
    LOCK_HOT_ROWS,
    MISSING_COLUMN,
    MISSING_COLUMN_NAME,
    PK_RANGE,
    READ_COMMIT_SETTINGS,
    READ_POOL_SIZE,
    READ_TABLE,
    REPLICA_STATUS,
    ROLLBACK,
    SET_COMMIT_SETTINGS,
    SET_DELAY,
    SET_MAX_STATEMENT_TIME,
    SET_MDL_WAIT,
    SET_POOL_SIZE,
    SET_READ_COMMITTED,
    SET_ROW_LOCK_WAIT,
    START_REPLICA,
    START_SQL_THREAD,
    STOP_REPLICA,
    STOP_SQL_THREAD,
    SYNTAX_ERROR,
    WRITE_HOT_ROW,
    build_statement,
)


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

    def _specs(self) -> list[LoopSpec]:
        pk = primary_key_of(self.target, integer=True)
        if len(pk) != 1:
            raise FaultError(f"{self.name} needs a single integer primary key on {self.target.where()}")
        t = self.target
        with TargetSession(t.primary_without_schema, "fault-setup", read_timeout=10) as s:
            row = s.query(build_statement(PK_RANGE, t.schema, t.table, pk[0]))[0]
        if row["lo"] is None:
            raise FaultError(f"{self.name}: {t.where()} is empty — no rows to lock")
        lo, hi = int(row["lo"]), int(row["hi"])
        span = max(1, min(self.rows, (hi - lo + 1) // 3))
        # Two ranges with a gap between them, so the two holders never wait for each other.
        self.ranges = [(lo, lo + span - 1), (lo + 2 * span, lo + 3 * span - 1)]
        lock_rows = build_statement(LOCK_HOT_ROWS, t.schema, t.table, pk[0])
        write_row = build_statement(WRITE_HOT_ROW, t.schema, t.table, pk[0])
        wait = int(self.hold_s) + 10
        setup = [(SET_READ_COMMITTED, None), (SET_ROW_LOCK_WAIT, (wait,))]
        period, gap = self.hold_s, 0.05
        specs = []
        for i, (a, b) in enumerate(self.ranges):
            # The second holder's first hold is half a cycle: from then on they alternate.
            specs.append(LoopSpec(f"fault-lock-holder-{i + 1}", t.primary_without_schema, setup,
                                   self._holder(lock_rows, a, b, period * (1 - i / 2), period, gap)))
            specs.append(LoopSpec(f"fault-lock-writer-{i + 1}", t.primary_without_schema, setup,
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
                optional_statement(session, ROLLBACK, None)
            release_at[0] += period
            halt.wait(gap)

        return body


def _paced(statement: str, params: Any, pause_s: float) -> Callable[[TargetSession, threading.Event], None]:
    def body(session: TargetSession, halt: threading.Event) -> None:
        session.execute(statement, params)
        halt.wait(pause_s)

    return body


class LatencyRegression(ThreadedFault):
    """Three classic causes at once: full scans of the table that burn CPU on every row (three
    threads a core, at most 16), so reads wait for CPU; commits made durable (a flush of the redo
    log and the binary log at every commit), so point writes wait for the disk; and a buffer pool
    shrunk to a sixth of the table (as when a new index's pages crowd the working set out of
    memory), so the table's reads and writes wait for page reads. CPU alone slows only long
    statements — a short one is scheduled at once — and the dashboard's p50 is taken over reads and
    writes together: both kinds must slow for it to rise whatever the mix.

    Three threads a core, not one more than the cores: with one more, the scheduler still ran most
    short statements at once, and the workload's p99 (on the drill's clock, the slowest of a few
    statements an interval) jumped between its old value and several times it — a window whose
    shift could not be told (measured on two cores at 120×: FAIL in 2 of 4 drills, p99 +60–70 %).
    With three a core every interval has statements that waited: p99 +120–140 %, FAIL on p99 in 6
    drills of 6 (at the T+30 look in 4).

    The buffer pool: on the drill's default million rows the index makes the workload's reads 200
    times faster (a scan of the table before it, a few page reads after), and CPU and commits
    alone moved the window's p50 by +11…+17 % — past the pass line, not distinguishable from it:
    INCONCLUSIVE. With the pool at a sixth of the table every indexed read and every write waits
    for pages (reads ×4–8, writes ×3–8 on this machine's disk). A table that fits in the smallest
    pool (``MIN_POOL_BYTES``; 20,000 rows does) keeps the pool as it is."""

    key = "s"
    name = "Latency regression"
    description = ("a competing load of CPU-heavy full scans of the table, commits flushed to disk, and "
                   "the buffer pool shrunk below the table")
    shows = ("p50 ×4–7 and the buffer pool hit rate red on a table larger than the pool (1,000,000 rows: FAIL by "
             "the p50 harm limit); on a table that fits in 8 MB only the scans and the commits act: an uneven p99 rise")

    MIN_POOL_BYTES = 8 << 20  # below it a server has too few pages for its own work
    POOL_SHARE = 6  # the pool shrinks to 1/6 of the table's data and indexes

    def __init__(self, target: FaultTarget, clock: Clock | None = None, threads: int | None = None,
                 durable_commits: bool = True, shrink_pool: bool = True):
        super().__init__(target, clock)
        self.threads = threads or min(16, 3 * _cores())
        self.durable_commits = durable_commits
        self.shrink_pool = shrink_pool
        self._saved: dict[str, Any] | None = None  # the commit settings to put back on stop
        self._saved_pool: int | None = None  # the buffer pool's size to put back on stop

    def _specs(self) -> list[LoopSpec]:
        pk = primary_key_of(self.target, integer=False)
        if not pk:
            raise FaultError(f"{self.name} needs a primary key on {self.target.where()}")
        t = self.target
        scan = build_statement(HEAVY_SCAN, t.schema, t.table, pk[0])
        setup = [(SET_MAX_STATEMENT_TIME, (60,))]  # a scan never outlives a lost client for long
        return [LoopSpec(f"fault-latency-{i + 1}", t.primary_without_schema, setup,
                          _paced(scan, ("%c0ffee%",), 0.0), read_timeout=90)
                for i in range(self.threads)]

    def _start(self) -> None:
        try:
            with TargetSession(self.target.primary_without_schema, "fault-latency", read_timeout=10) as s:
                if self.durable_commits:
                    self._saved = s.query(READ_COMMIT_SETTINGS)[0]
                    s.execute(SET_COMMIT_SETTINGS, (1, 1))
                if self.shrink_pool:
                    self._shrink_pool(s)
            super()._start()
        except BaseException:
            self._restore()
            raise

    def _shrink_pool(self, s: TargetSession) -> None:
        pool = int(s.query(READ_POOL_SIZE)[0]["pool"])
        info = s.table_info(self.target.schema, self.target.table)
        table = info.data_bytes + info.index_bytes if info else 0
        want = max(self.MIN_POOL_BYTES, table // self.POOL_SHARE) >> 20 << 20  # whole megabytes
        if want >= pool or table <= self.MIN_POOL_BYTES:
            self.note = (f"buffer pool kept at {pool >> 20} MB (the table: {table >> 20} MB; a sixth of it, at "
                         f"least {self.MIN_POOL_BYTES >> 20} MB, is no smaller)")
            return
        try:
            s.execute(SET_POOL_SIZE, (want,))
        except TargetError as e:  # not resizable here: the scans and the commits still act
            self.note = f"buffer pool not resized ({e})"
            return
        self._saved_pool = pool
        got = int(s.query(READ_POOL_SIZE)[0]["pool"])  # the server rounds to its own granularity
        self.note = f"buffer pool {pool >> 20} MB → {got >> 20} MB (the table: {table >> 20} MB)"

    def _stop(self) -> None:
        super()._stop()
        self._restore()

    def _restore(self) -> None:
        if self._saved is None and self._saved_pool is None:
            return
        with TargetSession(self.target.primary_without_schema, "fault-latency", read_timeout=10) as s:
            if self._saved is not None:
                s.execute(SET_COMMIT_SETTINGS, (int(self._saved["flush"]), int(self._saved["sync"])))
                self._saved = None
            if self._saved_pool is not None:
                s.execute(SET_POOL_SIZE, (self._saved_pool,))
                self._saved_pool = None


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

    def _specs(self) -> list[LoopSpec]:
        t = self.target
        statements = [build_statement(MISSING_COLUMN, t.schema, t.table, column=MISSING_COLUMN_NAME)]
        if primary_key_of(t, integer=False):  # only with a key can the copy of a row never be inserted
            statements.insert(0, build_statement(DUPLICATE_ROW, t.schema, t.table))
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
        return [LoopSpec("fault-errors", t.primary, [(SET_READ_COMMITTED, None)], body)]


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
            s.query(build_statement(READ_TABLE, t.schema, t.table))
        except BaseException:
            s.close()
            raise
        self._session = s

    def _stop(self) -> None:
        s, self._session = self._session, None
        if s is not None:
            optional_statement(s, ROLLBACK, None)  # closing would end it too; this says so in the general log
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
