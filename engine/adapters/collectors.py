"""Metric sources (docs/metrics.md; runbook section 4, appendix B): the ``Sample``, the ``Source``
protocol and the MySQL / MariaDB source. The replica's is engine/adapters/replica_source.py, the kill
switch's engine/adapters/killswitch_source.py; the loop that samples them all,
engine/adapters/collector_loop.py.

Each source's ``collect()`` makes a few round trips and returns ``Sample``s; per-interval values
(digest deltas, latency percentiles, status counters) come from the difference with the previous
call. A stale sample has no value: it never counts as OK.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.adapters.collector_needs import (
    PERFORMANCE_SCHEMA_ON,
    access_words,
    account_of,
    consumers_fix,
    ps_fix,
)
from engine.adapters.target import TargetError, TargetSession
from engine.domain.clock import Clock, SystemClock
from engine.domain.identifiers import check_identifier, quote
from engine.domain.plan import ConnectionProfile

# --- samples -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    metric: str
    value: float | None
    source: str
    error: str | None = None
    n: int | None = None  # statements (or points) behind the value
    how: str = ""  # how it was computed, shown next to percentiles
    meta: dict[str, Any] = field(default_factory=dict)


class SourceUnreadable(TargetError):
    """A source the collector reaches but may not or cannot read; the message says why, in words,
    and the fix (a GRANT, a my.cnf line)."""

    def __init__(self, message: str):
        super().__init__(message, "source_unreadable")


def failure_words(source: str, exc: BaseException) -> str:
    """A failing source's error as a person reads it: the target's own words (with the server's
    code), never an exception's class name and repr."""
    if isinstance(exc, TargetError) or type(exc).__module__.startswith("engine."):  # ours: already words
        return str(exc).splitlines()[0][:300] if str(exc) else f"the {source} source failed"
    text = str(exc).splitlines()[0][:200] if str(exc) else "no message"
    return f"the {source} collector failed unexpectedly ({text}); it retries"


class Source(Protocol):
    name: str
    metrics: tuple[str, ...]

    def collect(self) -> list[Sample]: ...

    def close(self) -> None: ...


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (q in 0…1)."""
    if not sorted_values:
        raise ValueError("no values")
    k = (len(sorted_values) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def percentiles_from_buckets(prev: dict[int, tuple[float, int]], cur: dict[int, tuple[float, int]],
                             qs: Sequence[float] = (0.5, 0.99)) -> tuple[list[float], int]:
    """Per-interval percentiles from two reads of a latency histogram (MySQL 8's
    ``events_statements_histogram_by_digest``): ``{bucket: (upper bound ms, count in the bucket)}``
    summed over the digests. The percentile is the upper bound of the bucket it falls in."""
    delta = sorted((cur[b][0], cur[b][1] - prev.get(b, (0.0, 0))[1]) for b in cur)
    total = sum(max(0, n) for _, n in delta)
    if total == 0:
        return [], 0
    out = []
    for q in qs:
        target, seen = q * total, 0
        for upper, n in delta:
            seen += max(0, n)
            if seen >= target:
                out.append(upper)
                break
    return out, total


# --- MySQL / MariaDB --------------------------------------------------------------------------

# One statement a tick on the primary (a statement's fixed cost on the server is a fair share of
# these small reads): the table's digests (k = 'd'), the number of sessions waiting for a metadata
# lock on the table ('m') and the foreground threads ('t': connected, not sleeping, and running a
# statement for a second or more), as rows of one shape. The status counters ('s') ride along every
# COUNTERS_EVERY_S only: MariaDB computes every one of its ~500 status variables to answer for
# five (~0.7 ms of server time, half the tick), and the counters are deltas, not gauges. The values
# come back as text (the UNION's common type) and are parsed by kind.
_TICK_DIGESTS = """
SELECT /* canary-console:monitor */ 'd' AS k, DIGEST AS name, COUNT_STAR AS a, SUM_TIMER_WAIT AS b,
       SUM_ROWS_EXAMINED AS c, SUM_NO_INDEX_USED AS d, SUM_ERRORS AS e
FROM performance_schema.events_statements_summary_by_digest
WHERE SCHEMA_NAME = %s AND DIGEST_TEXT LIKE %s
  AND DIGEST_TEXT REGEXP '^(SELECT|INSERT|UPDATE|DELETE|REPLACE)'
"""
_TICK_MDL = """
UNION ALL
SELECT 'm', NULL, COUNT(*), NULL, NULL, NULL, NULL
FROM performance_schema.metadata_locks
WHERE OBJECT_TYPE = 'TABLE' AND OBJECT_SCHEMA = %s AND OBJECT_NAME = %s AND LOCK_STATUS = 'PENDING'
"""
_TICK_THREADS = """
UNION ALL
SELECT 't', NULL, COUNT(*), COALESCE(SUM(PROCESSLIST_COMMAND <> 'Sleep'), 0),
       COALESCE(SUM(PROCESSLIST_COMMAND IN ('Query', 'Execute') AND PROCESSLIST_TIME >= 1), 0), NULL, NULL
FROM performance_schema.threads
WHERE TYPE = 'FOREGROUND'
"""
_TICK_STATUS = """
UNION ALL
SELECT 's', UPPER(VARIABLE_NAME), VARIABLE_VALUE, NULL, NULL, NULL, NULL
FROM {table}
WHERE {name} IN ('INNODB_BUFFER_POOL_READS', 'INNODB_BUFFER_POOL_READ_REQUESTS', 'TABLE_LOCKS_WAITED',
  'INNODB_ROW_LOCK_TIME', 'INNODB_ROW_LOCK_WAITS')
"""
TICK = _TICK_DIGESTS + _TICK_MDL + _TICK_THREADS
# MariaDB fills information_schema.GLOBAL_STATUS with performance_schema off too; MySQL 8 has
# only performance_schema.global_status.
TICK_COUNTERS_MARIADB = TICK + _TICK_STATUS.format(table="information_schema.GLOBAL_STATUS", name="VARIABLE_NAME")
TICK_COUNTERS_MYSQL = TICK + _TICK_STATUS.format(table="performance_schema.global_status",
                                                 name="UPPER(VARIABLE_NAME)")
COUNTERS_EVERY_S = 5.0

HISTORY_LONG = """
SELECT /* canary-console:monitor */ TIMER_WAIT AS t, TIMER_END AS e, CURRENT_SCHEMA AS s, MYSQL_ERRNO AS err
FROM performance_schema.events_statements_history_long
WHERE CURRENT_SCHEMA IN ({schemas}) AND TIMER_END > %s AND DIGEST IN ({placeholders})
  AND (SQL_TEXT IS NULL OR SQL_TEXT NOT LIKE %s)
"""
# The control (docs/verdict.md#the-control): the same digests in other tenants' schemas, read in the
# same statement as the canary's, so both describe the same moments.
CONTROL = "control:"
# The console's own statements on the table (a drill's faults, the size gate's count) are not the
# application's: they carry /* canary-console:… */ and the percentiles leave them out.
OWN_STATEMENTS = "%/* canary-console:%"
# A query timeout (runbook "single query timeout"; docs/metrics.md#query-timeouts): a statement on the
# table that ended with MariaDB's ER_STATEMENT_TIMEOUT (max_statement_time) or MySQL's
# ER_QUERY_TIMEOUT (max_execution_time), counted from the same rows as the percentiles.
QUERY_TIMEOUT_ERRNOS = frozenset({1969, 3024})
QUERY_TIMEOUTS_HOW = ("statements on the table that ended with a query timeout (error 1969 max_statement_time / "
                      "3024 max_execution_time), from events_statements_history_long")

# MySQL ≥ 8.0.19: per-digest latency histograms; per-interval percentiles from bucket deltas.
HISTOGRAM_BY_DIGEST = """
SELECT /* canary-console:monitor */ SCHEMA_NAME = %s AS canary, BUCKET_NUMBER AS b, MAX(BUCKET_TIMER_HIGH) AS high_ps,
       SUM(COUNT_BUCKET) AS n
FROM performance_schema.events_statements_histogram_by_digest
WHERE SCHEMA_NAME IN ({schemas}) AND DIGEST IN ({placeholders})
GROUP BY SCHEMA_NAME = %s, BUCKET_NUMBER
"""

HISTORY_LONG_CONSUMER = """
SELECT /* canary-console:monitor */ ENABLED AS enabled FROM performance_schema.setup_consumers
WHERE NAME = 'events_statements_history_long'
"""

ENABLE_HISTORY_LONG = """
UPDATE /* canary-console:monitor */ performance_schema.setup_consumers SET ENABLED = 'YES'
WHERE NAME IN ('events_statements_current', 'events_statements_history_long')
"""

MAX_CONNECTIONS = "SELECT /* canary-console:monitor */ @@GLOBAL.max_connections AS value"
MAX_CONNECTIONS_EVERY_S = 60.0

# Sessions waiting for a lock on the table, now, and for how long: metadata locks, and InnoDB row
# locks. Asked only when the tick saw a metadata-lock waiter on the table (the metadata half), or
# a statement that has run for a second or more (both halves): a wait shorter than that is below
# lock_wait's warning (1 s) and is reported as none.
_MDL_WAITS = """
  SELECT th.PROCESSLIST_TIME AS w, 1 AS mdl
  FROM performance_schema.metadata_locks ml
  JOIN performance_schema.threads th ON th.THREAD_ID = ml.OWNER_THREAD_ID
  WHERE ml.OBJECT_TYPE = 'TABLE' AND ml.OBJECT_SCHEMA = %s AND ml.OBJECT_NAME = %s AND ml.LOCK_STATUS = 'PENDING'
"""
_LOCK_WAITS = """
SELECT /* canary-console:monitor */ COALESCE(MAX(w), 0) AS max_wait_s, COUNT(w) AS waiters,
       COALESCE(SUM(mdl), 0) AS mdl_waiters FROM ({parts}) x
"""
_ROW_WAITS_MARIADB = """
  UNION ALL
  SELECT TIMESTAMPDIFF(MICROSECOND, t.trx_wait_started, NOW(6)) / 1000000, 0
  FROM information_schema.INNODB_TRX t
  JOIN information_schema.INNODB_LOCK_WAITS lw ON lw.requesting_trx_id = t.trx_id
  JOIN information_schema.INNODB_LOCKS l ON l.lock_id = lw.requested_lock_id
  WHERE l.lock_table = %s
"""
_ROW_WAITS_MYSQL = """
  UNION ALL
  SELECT TIMESTAMPDIFF(MICROSECOND, t.trx_wait_started, NOW(6)) / 1000000, 0
  FROM performance_schema.data_locks dl
  JOIN information_schema.INNODB_TRX t ON t.trx_id = dl.ENGINE_TRANSACTION_ID
  WHERE dl.OBJECT_SCHEMA = %s AND dl.OBJECT_NAME = %s AND dl.LOCK_STATUS = 'WAITING'
"""
LOCK_WAITS_MDL = _LOCK_WAITS.format(parts=_MDL_WAITS)
LOCK_WAITS_MARIADB = _LOCK_WAITS.format(parts=_MDL_WAITS + _ROW_WAITS_MARIADB)  # noqa: S608 - constant fragments
LOCK_WAITS_MYSQL = _LOCK_WAITS.format(parts=_MDL_WAITS + _ROW_WAITS_MYSQL)  # noqa: S608 - constant fragments

MYSQL_METRICS = ("latency_p50", "latency_p99", "digest_count", "digest_mean_latency_ms", "rows_examined_per_stmt",
                 "no_index_used", "digest_errors", "connections", "threads_running", "buffer_pool_hit",
                 "table_locks_waited", "row_lock_time_ms", "row_lock_waits", "lock_wait", "mdl_waiters",
                 "query_timeouts")


STATEMENT_ERROR_RATE = "statements on the table that failed (performance_schema digests; no Prometheus)"

# MariaDB materialises every row of events_statements_history_long to answer the percentile query
# (it computes each row's digest text: 6-16 ms of server time for a ring of 5,000 on a busy
# two-core machine, more than all the other statements of a tick together). So the percentiles are
# read at most every PERCENTILE_EVERY_S, and each read then waits long enough to pay for itself:
# its own cost over PERCENTILE_BUDGET seconds of statement time a second (the ring grows, and a
# read on a loaded machine may cost twice the last; a moving average lagged behind and overspent).
# But a read comes at least every PERCENTILE_MOST_S: the harm limit judges the last five minutes and
# needs an effective n of 10 (min_samples) in them, so they must hold well over ten intervals — at
# 30 s they held ten, an effective 9 once the latency was a little correlated, and a 6× p50 on the
# default drill (pressed mid-window, the server loaded, so every read cost the most) never stopped
# the window. Every 15 s they hold twenty. Each read covers every statement since the last.
PERCENTILE_EVERY_S = 5.0
PERCENTILE_BUDGET = 0.0005
PERCENTILE_MOST_S = 15.0


def tick_params(schema: str, table: str) -> tuple[str, str, str, str]:
    """The tick's parameters: the table's digests (by the back-quoted name in their text), its
    metadata-lock waiters."""
    return schema, "%`" + table.replace("_", "\\_") + "`%", schema, table


def due(last: float | None, now: float, every_s: float) -> bool:
    """A periodic read is due: never made, or ``every_s`` has passed — with 10 % slack, so that
    ticks a hair early do not push every read one interval later."""
    return last is None or now - last >= 0.9 * every_s


def percentile_spacing(every_s: float, cost_s: float, budget: float, most_s: float = PERCENTILE_MOST_S) -> float:
    """Seconds between two percentile reads: at least ``every_s``, long enough that a read costing
    ``cost_s`` spends at most ``budget`` seconds a second, and never more than ``most_s``."""
    return max(every_s, min(most_s, cost_s / budget if budget > 0 else 0.0))


class MySQLSource:
    """The target primary: digests of the table, metadata-lock waiters and threads in one statement
    a tick, with the status counters every COUNTERS_EVERY_S; the latency percentiles when due
    (``percentile_spacing``); how long the lock waits have lasted only while a session waits for a
    metadata lock or a statement has run a second; max_connections once a minute."""

    name = "mysql"
    metrics = MYSQL_METRICS

    def __init__(self, profile: ConnectionProfile, schema: str, table: str, digests: Sequence[str] = (),
                 statement_error_rate: bool = False, clock: Clock | None = None,
                 percentile_every: float = PERCENTILE_EVERY_S, percentile_budget: float = PERCENTILE_BUDGET,
                 control_schemas: Sequence[str] = ()):
        """``statement_error_rate``: with no Prometheus for the application's error rate, stand in
        for it with the share of the table's statements that failed (said on the tile).
        ``percentile_every`` (seconds of ``clock``) and ``percentile_budget`` (seconds of statement
        time a second, 0 for none): how often the latency percentiles are read (``percentile_spacing``
        of the last read's measured cost); the ticks in between carry no latency sample, and the tile
        keeps its last band. ``control_schemas``: other tenants' schemas with the same table, not
        altered; the same digests there give ``control:latency_p50`` and ``control:latency_p99``."""
        self.profile = profile
        self.clock = clock or SystemClock()
        self.percentile_every = percentile_every
        self.percentile_budget = percentile_budget
        self.percentile_spacing_s = percentile_every
        self.percentile_cost_s: float | None = None  # the last read's wall time
        self._percentiles_read_at: float | None = None
        self._max_connections: tuple[float, float] | None = None  # (value, read at)
        self._counters_read_at: float | None = None
        self.statement_error_rate = statement_error_rate
        if statement_error_rate:
            self.metrics = (*MYSQL_METRICS, "error_rate")
        self.schema = check_identifier(schema, "schema")
        self.table = check_identifier(table, "table")
        self.control_schemas = tuple(check_identifier(s, "control schema") for s in control_schemas)
        if self.control_schemas:
            self.metrics = (*self.metrics, CONTROL + "latency_p50", CONTROL + "latency_p99")
        self.digests = tuple(digests)
        self._prev_control_buckets: dict[int, tuple[float, int]] | None = None
        self.session: TargetSession | None = None
        self.flavour = "mariadb"
        self.percentile_note = ""
        self._prev_digests: dict[str, tuple[int, int, int, int, int]] | None = None
        self._prev_status: dict[str, float] | None = None
        self._history_end = 0
        self._prev_buckets: dict[int, tuple[float, int]] | None = None
        self.round_trips = 0
        self.account = f"'{profile.user}'"  # as a GRANT names it, once connected: 'user'@'host'

    def _connect(self) -> TargetSession:
        if self.session is None:
            self.session = TargetSession(self.profile, "monitor", read_timeout=10)
            self.flavour = self.session.server_info().flavour
            row = self.session.query(PERFORMANCE_SCHEMA_ON)[0]
            self.account = account_of(row["account"])
            if not int(row["ps"] or 0):
                raise SourceUnreadable(f"performance_schema is OFF on {self.profile.describe()}: nothing to "
                                       f"read the table's statements from; {ps_fix()}")
            self.percentile_note = self._ensure_history_long() if self.flavour == "mariadb" else ""
        return self.session

    def warm_up(self) -> None:
        """Connect now, not on the first tick (a source that cannot be read says so on that tick)."""
        try:
            self._connect()
        except TargetError:
            self.close()

    def _ensure_history_long(self) -> str:
        assert self.session is not None
        try:
            rows = self.session.query(HISTORY_LONG_CONSUMER)
            if not rows:
                return "performance_schema has no events_statements_history_long consumer on this server"
            if rows[0]["enabled"] != "YES":
                self.session.execute(ENABLE_HISTORY_LONG)
            return ""
        except TargetError as exc:
            return (f"events_statements_history_long is off and could not be enabled ({exc}); "
                    f"{consumers_fix(['events_statements_history_long'])}")

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
            self._prev_digests = None
            self._prev_status = None
            self._prev_control_buckets = None
            self._percentiles_read_at = None
            self._counters_read_at = None
            self._max_connections = None

    def _q(self, statement: str, params: Any = None) -> list[dict[str, Any]]:
        assert self.session is not None
        self.round_trips += 1
        return self.session.query(statement, params)

    def collect(self) -> list[Sample]:
        try:
            self._connect()
            return self._collect()
        except TargetError as exc:
            self.close()  # reconnect next time
            if exc.kind == "access_denied" and not isinstance(exc, SourceUnreadable):
                raise SourceUnreadable(access_words(exc, self.account, "what the collector reads")) from None
            raise

    def _collect(self) -> list[Sample]:
        out: list[Sample] = []
        now = self.clock.monotonic()
        counters = due(self._counters_read_at, now, COUNTERS_EVERY_S)
        tick = (TICK_COUNTERS_MARIADB if self.flavour == "mariadb" else TICK_COUNTERS_MYSQL) if counters else TICK
        rows = self._q(tick, tick_params(self.schema, self.table))
        if counters:
            self._counters_read_at = now
        digests = [r for r in rows if r["k"] == "d" and (not self.digests or r["name"] in self.digests)]
        status = {r["name"]: float(r["a"]) for r in rows if r["k"] == "s"}
        mdl_waiters = sum(int(r["a"]) for r in rows if r["k"] == "m")
        threads = next(r for r in rows if r["k"] == "t")
        connected, running, long_running = (int(float(threads[c] or 0)) for c in ("a", "b", "c"))  # text: the UNION's type
        cur = {r["name"]: (int(r["a"]), int(r["b"]), int(r["c"]), int(r["d"]), int(r["e"])) for r in digests}
        if self._prev_digests is not None:
            d = [tuple(c - p for c, p in zip(v, self._prev_digests.get(k, (0, 0, 0, 0, 0)), strict=True))
                 for k, v in cur.items()]
            d = [x for x in d if x[0] > 0]
            n = sum(x[0] for x in d)
            if n:
                out += [
                    Sample("digest_count", n, self.name, n=n),
                    Sample("digest_mean_latency_ms", sum(x[1] for x in d) / n / 1e9, self.name, n=n),
                    Sample("rows_examined_per_stmt", sum(x[2] for x in d) / n, self.name, n=n),
                    Sample("no_index_used", sum(x[3] for x in d), self.name, n=n),
                    Sample("digest_errors", sum(x[4] for x in d), self.name, n=n),
                ]
                if self.statement_error_rate:
                    out.append(Sample("error_rate", 100 * sum(x[4] for x in d) / n, self.name, n=n,
                                      how=STATEMENT_ERROR_RATE))
            else:
                out.append(Sample("digest_count", 0, self.name, n=0))
                if self.statement_error_rate:
                    out.append(Sample("error_rate", None, self.name, "no statement on the table in this interval",
                                      n=0, how=STATEMENT_ERROR_RATE))
        self._prev_digests = cur
        out += self._percentiles(list(cur))
        out += self._threads(connected, running)
        if counters:
            out += self._counters(status)
        out += self._lock_waits(mdl_waiters, long_running)
        return out

    def _latency_metrics(self) -> tuple[str, ...]:
        return ("latency_p50", "latency_p99") + ((CONTROL + "latency_p50", CONTROL + "latency_p99")
                                                  if self.control_schemas else ())

    def _percentiles(self, digests: list[str]) -> list[Sample]:
        if self.flavour == "mariadb" and self.percentile_note:
            return [Sample(m, None, self.name, self.percentile_note) for m in self._latency_metrics()]
        if not digests:
            return [Sample(m, None, self.name, "no statement on the table yet") for m in self._latency_metrics()]
        now = self.clock.monotonic()
        last = self._percentiles_read_at
        if not due(last, now, self.percentile_spacing_s):
            return []
        self._percentiles_read_at = now
        started = time.perf_counter()
        try:
            if self.flavour != "mariadb":
                return self._histogram_percentiles(digests)
            return self._history_long_percentiles(digests, None if last is None else now - last)
        finally:
            self.percentile_cost_s = cost = time.perf_counter() - started
            self.percentile_spacing_s = percentile_spacing(self.percentile_every, cost, self.percentile_budget)

    def _history_long_percentiles(self, digests: list[str], span_s: float | None) -> list[Sample]:
        schemas = (self.schema, *self.control_schemas)
        rows = self._q(HISTORY_LONG.format(schemas=", ".join(["%s"] * len(schemas)),
                                           placeholders=", ".join(["%s"] * len(digests))),
                       (*schemas, self._history_end, *digests, OWN_STATEMENTS))
        first = self._history_end == 0
        if rows:
            self._history_end = max(int(r["e"]) for r in rows)
        if first:
            return []  # the first read only sets where the next interval starts
        during = f" in the last {span_s:.0f} s" if span_s is not None else ""
        mine = [r for r in rows if r["s"] == self.schema]
        canary = sorted(int(r["t"]) / 1e9 for r in mine)
        timeouts = sum(1 for r in mine if r.get("err") is not None and int(r["err"]) in QUERY_TIMEOUT_ERRNOS)
        out = self._pair("", canary, f"from events_statements_history_long, {len(canary)} statements{during}")
        out.append(Sample("query_timeouts", timeouts, self.name, n=len(mine), how=QUERY_TIMEOUTS_HOW))
        if self.control_schemas:
            control = sorted(int(r["t"]) / 1e9 for r in rows if r["s"] != self.schema)
            out += self._pair(CONTROL, control, f"the same digests in {', '.join(self.control_schemas)} (the "
                                                f"control), {len(control)} statements{during}")
        return out

    def _pair(self, prefix: str, waits: list[float], how: str) -> list[Sample]:
        """p50 and p99 of one interval's statement latencies (sorted, seconds)."""
        if not waits:
            why = "no statement in this interval" + (
                f" in the control schemas ({', '.join(self.control_schemas)}) with the canary's digests"
                if prefix else "")
            return [Sample(prefix + m, None, self.name, why, n=0) for m in ("latency_p50", "latency_p99")]
        return [Sample(prefix + "latency_p50", percentile(waits, 0.5), self.name, n=len(waits), how=how),
                Sample(prefix + "latency_p99", percentile(waits, 0.99), self.name, n=len(waits), how=how)]

    def _histogram_percentiles(self, digests: list[str]) -> list[Sample]:
        """MySQL 8: bucket deltas of events_statements_histogram_by_digest (not exercised here: the
        test machine has MariaDB only; ``percentiles_from_buckets`` is tested on its own)."""
        if not digests:
            return [Sample(m, None, self.name, "no statement on the table yet") for m in self._latency_metrics()]
        schemas = (self.schema, *self.control_schemas)
        rows = self._q(HISTOGRAM_BY_DIGEST.format(schemas=", ".join(["%s"] * len(schemas)),
                                                  placeholders=", ".join(["%s"] * len(digests))),
                       (self.schema, *schemas, *digests, self.schema))
        out: list[Sample] = []
        for prefix, canary in (("", 1), (CONTROL, 0)) if self.control_schemas else (("", 1),):
            cur = {int(r["b"]): (int(r["high_ps"]) / 1e9, int(r["n"])) for r in rows if int(r["canary"] or 0) == canary}
            attr = "_prev_buckets" if canary else "_prev_control_buckets"
            prev = getattr(self, attr)
            setattr(self, attr, cur)
            if prev is None:
                continue
            values, n = percentiles_from_buckets(prev, cur)
            if not values:
                out += [Sample(prefix + m, None, self.name, "no statement in this interval", n=0)
                        for m in ("latency_p50", "latency_p99")]
                continue
            how = f"from events_statements_histogram_by_digest bucket deltas (upper bucket bounds), {n} statements" + (
                f" in {', '.join(self.control_schemas)} (the control)" if prefix else "")
            out += [Sample(prefix + "latency_p50", values[0], self.name, n=n, how=how),
                    Sample(prefix + "latency_p99", values[1], self.name, n=n, how=how)]
        return out

    def _threads(self, connected: int, running: int) -> list[Sample]:
        limit = self._max_connections_now()
        return [Sample("connections", 100.0 * connected / max(1.0, limit), self.name,
                       how=f"{connected} connections of max_connections {limit:.0f}"),
                Sample("threads_running", running, self.name,
                       how="connections not in Sleep (performance_schema.threads), this one included")]

    def _counters(self, s: dict[str, float]) -> list[Sample]:
        """Deltas of the status counters since their last read (every COUNTERS_EVERY_S)."""
        prev, self._prev_status = self._prev_status, s
        if prev is None:
            return []
        out = []
        requests = s["INNODB_BUFFER_POOL_READ_REQUESTS"] - prev["INNODB_BUFFER_POOL_READ_REQUESTS"]
        reads = s["INNODB_BUFFER_POOL_READS"] - prev["INNODB_BUFFER_POOL_READS"]
        if requests > 0:
            out.append(Sample("buffer_pool_hit", 100.0 * (1 - reads / requests), self.name, n=int(requests)))
        return out + [Sample("table_locks_waited", s["TABLE_LOCKS_WAITED"] - prev["TABLE_LOCKS_WAITED"], self.name),
                      Sample("row_lock_time_ms", s["INNODB_ROW_LOCK_TIME"] - prev["INNODB_ROW_LOCK_TIME"], self.name),
                      Sample("row_lock_waits", s["INNODB_ROW_LOCK_WAITS"] - prev["INNODB_ROW_LOCK_WAITS"], self.name)]

    def _max_connections_now(self) -> float:
        now = self.clock.monotonic()
        if self._max_connections is None or now - self._max_connections[1] >= MAX_CONNECTIONS_EVERY_S:
            self._max_connections = (float(self._q(MAX_CONNECTIONS)[0]["value"]), now)
        return self._max_connections[0]

    def _lock_waits(self, mdl_waiters: int, long_running: int) -> list[Sample]:
        if not mdl_waiters and not long_running:
            row: dict[str, Any] = {"max_wait_s": 0, "waiters": 0, "mdl_waiters": 0}
        elif not long_running:
            row = self._q(LOCK_WAITS_MDL, (self.schema, self.table))[0]
        elif self.flavour == "mariadb":
            row = self._q(LOCK_WAITS_MARIADB, (self.schema, self.table,
                                                f"{quote(self.schema)}.{quote(self.table)}"))[0]
        else:
            row = self._q(LOCK_WAITS_MYSQL, (self.schema, self.table, self.schema, self.table))[0]
        waiters = int(row["waiters"] or 0)
        return [Sample("lock_wait", float(row["max_wait_s"] or 0), self.name, n=waiters,
                       how="longest current wait for a lock on the table (metadata or row)"),
                Sample("mdl_waiters", float(row["mdl_waiters"] or 0), self.name)]
