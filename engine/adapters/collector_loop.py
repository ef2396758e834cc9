"""The loop that samples the metric sources (engine/adapters/collectors.py, replica_source.py,
killswitch_source.py, prometheus.py): ``CollectorLoop`` runs on its own thread — never a UI thread —
at a steady interval, stores every sample with its time and source, and marks a failing source
stale with its error, retrying it with backoff. A stale sample has no value: it never counts as OK."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.adapters.collectors import Sample, Source, failure_words
from engine.domain.clock import Clock, SystemClock

# --- the loop -------------------------------------------------------------------------------------


@dataclass
class SourceHealth:
    failures: int = 0
    next_try: float = 0.0
    last_error: str | None = None


class CollectorLoop:
    """Samples every source each ``interval`` seconds on its own thread; never overlaps two ticks.

    ``on_tick(at, samples)`` gets each tick's samples (stored first when a store is given). A
    source that raises is marked stale for all its metrics, with the error, and retried after
    1, 2, 4 … 30 s."""

    def __init__(self, sources: Sequence[Source], interval: float = 5.0, clock: Clock | None = None,
                 on_tick: Callable[[Any, list[Sample]], None] | None = None, store: Any = None,
                 tenant_id: str = "", run_id: str = "", max_backoff: float = 30.0):
        self.sources = list(sources)
        self.interval = interval
        self.clock = clock or SystemClock()
        self.on_tick = on_tick
        self.store, self.tenant_id, self.run_id = store, tenant_id, run_id
        self.max_backoff = max_backoff
        self.health = {s.name: SourceHealth() for s in self.sources}
        self.ticks = 0
        self.last_at: Any = None
        self.tick_seconds: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[Sample]:
        now = self.clock.monotonic()
        samples: list[Sample] = []
        started = time.perf_counter()
        for source in self.sources:
            h = self.health[source.name]
            if now < h.next_try:
                samples += [Sample(m, None, source.name, f"retrying: {h.last_error}") for m in source.metrics]
                continue
            try:
                samples += source.collect()
                h.failures, h.last_error = 0, None
            except Exception as exc:  # noqa: BLE001 - a failing source is stale, never fatal
                h.failures += 1
                h.last_error = failure_words(source.name, exc)
                h.next_try = now + min(self.max_backoff, 2 ** (h.failures - 1))
                samples += [Sample(m, None, source.name, h.last_error) for m in source.metrics]
        self.tick_seconds.append(time.perf_counter() - started)
        at = self.last_at = self.clock.now()
        if self.store is not None and self.run_id:
            self.store.add_samples(self.tenant_id, self.run_id, at, samples)
        self.ticks += 1
        if self.on_tick:
            self.on_tick(at, samples)
        return samples

    def start(self) -> CollectorLoop:
        self._thread = threading.Thread(target=self._loop, name="collector", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        speed = float(getattr(self.clock, "speed", 1.0))  # a compressed clock runs faster
        next_at = self.clock.monotonic()
        while not self._stop.is_set():
            self.tick()
            next_at += self.interval
            delay = next_at - self.clock.monotonic()
            if delay < 0:  # a slow tick: skip, do not pile up
                next_at = self.clock.monotonic()
                delay = 0
            self._stop.wait(delay / speed)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        for s in self.sources:
            s.close()
