"""The replica's lag (docs/metrics.md, runbook 4.3): ``ReplicaSource`` reads ``SHOW REPLICA STATUS`` on
the plan's replica connection; the other sources are engine/adapters/collectors.py (MySQL),
engine/adapters/killswitch_source.py and engine/adapters/prometheus.py, sampled by
engine/adapters/collector_loop.py."""

from __future__ import annotations

from typing import Any

from engine.adapters.collector_needs import access_words, account_of
from engine.adapters.collectors import Sample, SourceUnreadable
from engine.adapters.target import TargetError, TargetSession
from engine.domain.clock import Clock, SystemClock
from engine.domain.plan import ConnectionProfile

# --- replica ------------------------------------------------------------------------------------


def replica_lag(status: dict[str, Any] | None) -> tuple[float | None, str | None, dict[str, Any]]:
    """Lag from a ``SHOW REPLICA STATUS`` / ``SHOW SLAVE STATUS`` row, read by column name:
    MariaDB keeps ``Seconds_Behind_Master``, MySQL 8 says ``Seconds_Behind_Source``."""
    if not status:
        return None, "not a replica (SHOW REPLICA STATUS is empty)", {}
    def col(*names: str) -> Any:
        for n in names:
            if n in status:
                return status[n]
        return None
    io = col("Replica_IO_Running", "Slave_IO_Running")
    sql_running = col("Replica_SQL_Running", "Slave_SQL_Running")
    lag = col("Seconds_Behind_Source", "Seconds_Behind_Master")
    meta = {"io_running": io, "sql_running": sql_running,
            "sql_delay": col("SQL_Delay"), "last_error": col("Last_SQL_Error", "Last_Error") or ""}
    if sql_running != "Yes":
        return None, f"replication SQL thread is not running ({meta['last_error'] or sql_running})", meta
    if lag is None:
        return None, f"replica IO thread is {io}: lag unknown", meta
    return float(lag), None, meta


class ReplicaSource:
    name = "replica"
    metrics = ("replication_lag",)

    def __init__(self, profile: ConnectionProfile, clock: Clock | None = None):
        self.profile = profile
        self.session: TargetSession | None = None
        self.clock = clock or SystemClock()
        self._stopped_since: float | None = None
        self._last_lag = 0.0
        self.round_trips = 0

    def warm_up(self) -> None:
        try:
            if self.session is None:
                self.session = TargetSession(self.profile, "monitor-replica", read_timeout=10)
        except TargetError:
            self.session = None

    def collect(self) -> list[Sample]:
        try:
            if self.session is None:
                self.session = TargetSession(self.profile, "monitor-replica", read_timeout=10)
            self.round_trips += 1
            try:
                rows = self.session.query("SHOW /* canary-console:monitor */ REPLICA STATUS")
            except TargetError as exc:
                if exc.kind in ("lost_connection", "access_denied"):
                    raise
                rows = self.session.query("SHOW /* canary-console:monitor */ SLAVE STATUS")
        except TargetError as exc:
            session, self.session = self.session, None
            if exc.kind == "access_denied" and session is not None:
                try:
                    account = account_of(session.query("SELECT CURRENT_USER() AS u")[0]["u"])
                except TargetError:
                    account = f"'{self.profile.user}'"
                session.close()
                raise SourceUnreadable(access_words(exc, account, "the replica's status")) from None
            if session is not None:
                session.close()
            raise
        lag, error, meta = replica_lag(rows[0] if rows else None)
        if lag is not None:
            self._stopped_since, self._last_lag = None, lag
            how = f"SQL_Delay {meta['sql_delay']} s" if meta.get("sql_delay") else ""
            return [Sample("replication_lag", lag, self.name, how=how, meta=meta)]
        if meta.get("sql_running") is not None and meta["sql_running"] != "Yes":
            # A stopped SQL thread is lag that grows, not a missing value: report a lower bound.
            now = self.clock.monotonic()
            self._stopped_since = self._stopped_since or now
            bound = self._last_lag + (now - self._stopped_since)
            return [Sample("replication_lag", bound, self.name, how=f"lower bound: {error}", meta=meta)]
        return [Sample("replication_lag", None, self.name, error, meta=meta)]

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
