"""Target unavailable is a failure (docs/monitoring-sources.md; runbook 5.3 #8).

``PresenceSource`` samples whether the target answers and whether the table and the index are
there: ``target_reachable``, ``table_present``, ``index_present`` (1 or 0; no value when it could
not tell). ``AvailabilityWatch`` is the rule over those samples, pure: a table or an index that
was there in the window and is gone, or a target that does not answer for ``UNREACHABLE_TOLERANCE_S``
seconds of the window, stops it with that reason — a failure condition, so the verdict is FAIL.
A collector that cannot read its source (a refused privilege, performance_schema off) is not the
target going away: its samples are stale, an error state, never a FAIL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from engine.clock import Clock, SystemClock

if TYPE_CHECKING:
    from engine.collectors import Sample
    from engine.decision import WindowState
    from engine.plan import ConnectionProfile
    from engine.target import TargetSession

METRICS = ("target_reachable", "table_present", "index_present")
UNREACHABLE_TOLERANCE_S = 60.0  # seconds of the window the target may not answer before it is a FAIL
PRESENCE_EVERY_S = 5.0

PRESENCE = """
SELECT /* canary-console:monitor */
  (SELECT COUNT(*) FROM information_schema.TABLES
   WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND TABLE_TYPE = 'BASE TABLE') AS t,
  (SELECT COUNT(*) FROM information_schema.STATISTICS
   WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = %s) AS i
"""

Tick = Mapping[str, tuple[float | None, str | None, int | None]]


class PresenceSource:
    """Whether the target answers and the table and the index are there, every PRESENCE_EVERY_S."""

    name = "target"
    metrics = METRICS

    def __init__(self, profile: ConnectionProfile, schema: str, table: str, index: str, clock: Clock | None = None):
        from engine.identifiers import check_identifier

        self.profile = profile
        self.schema = check_identifier(schema, "schema")
        self.table = check_identifier(table, "table")
        self.index = check_identifier(index, "index")
        self.clock = clock or SystemClock()
        self.session: TargetSession | None = None
        self._read_at: float | None = None
        self.round_trips = 0

    def warm_up(self) -> None:
        from engine.target import TargetError, TargetSession

        try:
            if self.session is None:
                self.session = TargetSession(self.profile, "monitor-presence", read_timeout=5, connect_timeout=2)
        except TargetError:
            self.session = None

    def collect(self) -> list[Sample]:
        from engine.collectors import Sample, due
        from engine.target import TargetError, TargetSession

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


@dataclass
class AvailabilityWatch:
    """The rule, one tick at a time. The table and the index count as gone only after they were
    seen in this window (a window after a rollback starts without the index)."""

    tolerance_s: float = UNREACHABLE_TOLERANCE_S
    seen_table: bool = False
    seen_index: bool = False
    unreachable_since: float | None = None

    def add(self, t_s: float, tick: Tick) -> str | None:
        reach = tick.get("target_reachable")
        if reach is not None and reach[0] is not None:
            if reach[0] >= 1:
                self.unreachable_since = None
            else:
                if self.unreachable_since is None:
                    self.unreachable_since = t_s
                down = t_s - self.unreachable_since
                if down >= self.tolerance_s:
                    return (f"target unavailable: it has not answered for {down:.0f} s of the window "
                            f"(tolerance {self.tolerance_s:g} s): {reach[1] or 'no answer'}")
        for key, what in (("table_present", "table"), ("index_present", "index")):
            value = tick.get(key)
            if value is None or value[0] is None:
                continue  # not read this tick, or could not tell
            attr = f"seen_{what}"
            if value[0] >= 1:
                setattr(self, attr, True)
            elif getattr(self, attr):
                return f"target unavailable: the {what} is gone (dropped or renamed during the window)"
        return None


def judge(ev: Any, t_s: float, tick: Tick) -> WindowState:
    """The window's state after this tick with the availability rule applied: a stop with the
    reason (and a "stop" event routed to an immediate manual rollback) the first time it fires.
    ``ev`` is the window's evaluator; the watch lives with it."""
    from engine.decision import Event

    watch: AvailabilityWatch = ev.__dict__.setdefault("_availability", AvailabilityWatch())
    reason = watch.add(t_s, tick)
    state = ev.state
    if reason is None or state.stop_reason is not None:
        return state
    return replace(state, stop_reason=reason,
                   events=state.events + (Event(t_s, "stop", None, reason, "immediate_manual_rollback"),))
