"""Target unavailable is a failure (docs/monitoring-sources.md; runbook 5.3 #8).

``engine.adapters.presence.PresenceSource`` samples whether the target answers and whether the
table and the index are there: ``target_reachable``, ``table_present``, ``index_present`` (1 or 0;
no value when it could not tell). ``AvailabilityWatch`` is the rule over those samples, pure: a table or an index that
was there in the window and is gone, or a target that does not answer for ``UNREACHABLE_TOLERANCE_S``
seconds of the window, stops it with that reason — a failure condition, so the verdict is FAIL.
A collector that cannot read its source (a refused privilege, performance_schema off) is not the
target going away: its samples are stale, an error state, never a FAIL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.domain.decision import WindowState

METRICS = ("target_reachable", "table_present", "index_present")
UNREACHABLE_TOLERANCE_S = 60.0  # seconds of the window the target may not answer before it is a FAIL

Tick = Mapping[str, tuple[float | None, str | None, int | None]]


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
    from engine.domain.decision import Event

    watch: AvailabilityWatch = ev.__dict__.setdefault("_availability", AvailabilityWatch())
    reason = watch.add(t_s, tick)
    state = ev.state
    if reason is None or state.stop_reason is not None:
        return state
    return replace(state, stop_reason=reason,
                   events=state.events + (Event(t_s, "stop", None, reason, "immediate_manual_rollback"),))
