"""The baseline extended while it is too short for its own noise (docs/verdict.md, "Baseline").

After the planned baseline (``baseline_window_seconds``) the executor asks the monitor whether
every judged latency's baseline holds the profile's ``baseline_effective_n`` effective intervals
(engine/domain/baseline_ready.py). If not, it keeps sampling — the same ticks, the kill switch
watched and the lease renewed on each — checking again once a minute, until the baseline is ready
or ``baseline_extend_max_seconds`` (the plan's ``[executor]``; 0: never) have been added, and
never past the end of the off-peak window (the ALTER must still start inside it). Audited
once as ``baseline_extended`` (the reasons, the cap) and once as ``baseline_ready`` or
``baseline_extension_capped``; each is also an executor event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from engine.adapters.store import ExecutionRun
from engine.flows.executor_base import ExecutorBase

CHECK_EVERY_S = 60.0  # how often the readiness is asked while the baseline is extended


class BaselineSteps(ExecutorBase):
    """Mixed into ``Executor``: the extension of the monitored baseline."""

    def _extend_baseline(self, run: ExecutionRun, on_tick: Callable[[], None]) -> float:
        """Sample on until the baseline is ready or the cap; the seconds added (0: none)."""
        cap = float(self.opts.baseline_extend_max_seconds)
        if cap <= 0 or self.monitor is None:
            return 0.0
        ready = self.monitor.readiness()
        if ready.ready:
            return 0.0
        self._audit(run, "baseline_extended", {"reasons": ready.reasons, "cap_s": cap,
                                               "effective_n_needed": ready.target})
        self._event("baseline_extended", reasons=ready.reasons, cap_s=cap)
        added, stopped = 0.0, ""
        while added < cap and not ready.ready:
            step = min(CHECK_EVERY_S, cap - added)
            if not self.plan.off_peak.contains(self.clock.now() + timedelta(seconds=step)):
                stopped = (f"the off-peak window {self.plan.off_peak.describe()} ends: the ALTER starts inside it, "
                           "on the baseline there is")
                break
            self.monitor.sample(step, on_tick)
            added += step  # counted as asked, so a clock that does not move cannot hold the run here
            ready = self.monitor.readiness()
        n_eff = {m.metric: round(m.n_eff, 1) for m in ready.metrics if m.n_eff is not None}
        if ready.ready:
            self._audit(run, "baseline_ready", {"extended_s": added, "effective_n": n_eff,
                                                "effective_n_needed": ready.target})
            self._event("baseline_ready", extended_s=added, effective_n=n_eff)
        else:
            self._audit(run, "baseline_extension_capped", {"extended_s": added, "cap_s": cap,
                                                           "reasons": ready.reasons, "stopped": stopped or None})
            self._event("baseline_extension_capped", extended_s=added, reasons=ready.reasons, stopped=stopped or None)
        return added
