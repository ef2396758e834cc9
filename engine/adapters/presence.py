"""Whether the target answers and the table and the index are there (docs/monitoring-sources.md).

The source of the samples ``engine.domain.availability`` judges: a target that stops answering,
or a table or an index that goes away during the window, is a failure; a source that cannot be
read is only stale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.adapters.collectors import Sample, due
from engine.adapters.target import TargetError, TargetSession
from engine.domain.availability import METRICS
from engine.domain.clock import Clock, SystemClock
from engine.domain.identifiers import check_identifier

if TYPE_CHECKING:
    from engine.domain.plan import ConnectionProfile

PRESENCE_EVERY_S = 5.0

PRESENCE = """
SELECT /* canary-console:monitor */
  (SELECT COUNT(*) FROM information_schema.TABLES
   WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND TABLE_TYPE = 'BASE TABLE') AS t,
  (SELECT COUNT(*) FROM information_schema.STATISTICS
   WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = %s) AS i
"""


class PresenceSource:
    """Whether the target answers and the table and the index are there, every PRESENCE_EVERY_S."""

    name = "target"
    metrics = METRICS

    def __init__(self, profile: ConnectionProfile, schema: str, table: str, index: str, clock: Clock | None = None):
        self.profile = profile
        self.schema = check_identifier(schema, "schema")
        self.table = check_identifier(table, "table")
        self.index = check_identifier(index, "index")
        self.clock = clock or SystemClock()
        self.session: TargetSession | None = None
        self._read_at: float | None = None
        self.round_trips = 0

    def warm_up(self) -> None:
        try:
            if self.session is None:
                self.session = TargetSession(self.profile, "monitor-presence", read_timeout=5, connect_timeout=2)
        except TargetError:
            self.session = None

    def collect(self) -> list[Sample]:
        now = self.clock.monotonic()
        if not due(self._read_at, now, PRESENCE_EVERY_S):
            return []
        self._read_at = now
        try:
            if self.session is None:
                self.session = TargetSession(self.profile, "monitor-presence", read_timeout=5, connect_timeout=2)
            self.round_trips += 1
            row = self.session.query(PRESENCE, (self.schema, self.table, self.schema, self.table, self.index))[0]
        except TargetError as exc:
            self.close()
            if exc.kind != "lost_connection":
                raise  # the target answers, we cannot read it: an outage of this source, not of the target
            why = f"the target does not answer: {exc}"
            return [Sample("target_reachable", 0.0, self.name, why),
                    Sample("table_present", None, self.name, why), Sample("index_present", None, self.name, why)]
        table, index = int(row["t"] or 0), int(row["i"] or 0)
        where = f"{self.schema}.{self.table}"
        return [Sample("target_reachable", 1.0, self.name),
                Sample("table_present", float(table > 0), self.name, how=where),
                Sample("index_present", float(index > 0), self.name, how=f"{self.index} on {where}")]

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
