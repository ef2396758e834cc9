"""The baseline from the run's creation on (docs/verdict.md#what-is-measured).

The execution's baseline samples the last minutes before the ALTER; a longer one learns the
metric's noise better (its variance, its correlation, its trend). From the moment a run is
created — while the prechecks, the sign-offs and the size gate take their time — one console
samples the same sources into the run, and every sample before the ALTER is the baseline.

Only while the run is ``scheduled``: the execution's own monitor takes over when it starts (the
presampler sees the run leave ``scheduled`` on its next tick and stops), so no moment is sampled
twice. The console that created the run presamples; ``rehearse --headless`` does while its
prechecks run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from engine.domain.clock import Clock, SystemClock


class PreSampler:
    """Samples the plan's sources into ``run_id`` every ``interval`` seconds until ``stop()`` or
    until the run is no longer ``scheduled``; on a thread of its own."""

    def __init__(self, plan: Any, store: Any, backend: Any, run_id: str, actor: str,
                 clock: Clock | None = None, interval: float = 5.0,
                 on_error: Callable[[str], None] | None = None):
        self.plan, self.store, self.backend, self.run_id = plan, store, backend, run_id
        self.actor = actor
        self.clock = clock or SystemClock()
        self.interval = interval
        self.on_error = on_error
        self.ticks = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"presample-{run_id[:8]}", daemon=True)

    def start(self) -> PreSampler:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask it to stop at its next tick, without waiting (a console closing)."""
        self._stop.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _scheduled(self) -> bool:
        run = self.store.get_run(self.plan.tenant, self.run_id)
        return run is not None and run.status == "scheduled"

    def _run(self) -> None:
        from engine.adapters.collector_loop import CollectorLoop
        from engine.flows.monitor import sources_for, warm_up

        sources = sources_for(self.plan, self.backend, self.clock)
        loop = CollectorLoop(sources, self.interval, self.clock, store=self.store, tenant_id=self.plan.tenant,
                             run_id=self.run_id)
        try:
            if not self._scheduled():
                return
            self.store.audit(self.plan.tenant, self.actor, "baseline_sampling", self.run_id,
                             {"from": "run creation", "interval": self.interval})
            warm_up(sources)
            while not self._stop.is_set():
                started = self.clock.monotonic()
                if not self._scheduled():  # the execution's monitor samples from here on
                    return
                loop.tick()
                self.ticks += 1
                left = started + self.interval - self.clock.monotonic()
                if left > 0:
                    self._wait(left)
        except Exception as exc:  # noqa: BLE001 - a presampler that fails costs baseline, never the run
            self.error = f"baseline sampling from the run's creation stopped: {exc}"
            try:
                self.store.audit(self.plan.tenant, self.actor, "baseline_sampling_failed", self.run_id,
                                 {"error": str(exc)[:500]})
            except Exception:  # noqa: BLE001, S110 - the store itself may be what failed
                pass
            if self.on_error:
                self.on_error(self.error)
        finally:
            for source in sources:
                try:
                    source.close()
                except Exception:  # noqa: BLE001, S110 - closing is best effort
                    pass

    def _wait(self, seconds: float) -> None:
        """Sleep on the injected clock (a drill's compressed one too), waking for ``stop()``."""
        speed = getattr(self.clock, "speed", 1.0) or 1.0
        self._stop.wait(seconds / speed)


@contextmanager
def presampling(plan: Any, store: Any, backend: Any, run_id: str, actor: str, clock: Clock | None = None,
                interval: float = 5.0) -> Iterator[PreSampler]:
    sampler = PreSampler(plan, store, backend, run_id, actor, clock, interval).start()
    try:
        yield sampler
    finally:
        sampler.stop()
