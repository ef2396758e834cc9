"""The kill-switch backend as a metric source (runbook 4.4): its response time and availability,
sampled by engine/adapters/collector_loop.py with the other sources."""

from __future__ import annotations

from typing import Any

from engine.adapters.collectors import Sample

# --- the kill-switch backend ------------------------------------------------------------------


class KillSwitchSource:
    """The switch's response time, whether this read answered, and its availability (runbook 4.4):
    the share of the reads since this source started (the baseline's first tick) that answered."""

    name = "killswitch"
    metrics = ("killswitch_response", "killswitch_available", "killswitch_availability")

    def __init__(self, backend: Any, tenant_id: str, connection_id: str):
        self.backend, self.tenant_id, self.connection_id = backend, tenant_id, connection_id
        self.reads = 0
        self.answered = 0

    def collect(self) -> list[Sample]:
        reading = self.backend.read(self.tenant_id, self.connection_id)
        self.reads += 1
        self.answered += 0 if reading.fail_closed else 1
        return [Sample("killswitch_response", reading.response_ms, self.name, reading.error,
                       how=f"{reading.source} backend"),
                Sample("killswitch_available", 0.0 if reading.fail_closed else 1.0, self.name, reading.error),
                Sample("killswitch_availability", 100.0 * self.answered / self.reads, self.name, None,
                       n=self.reads, how=f"{self.answered}/{self.reads} reads answered")]

    def close(self) -> None:
        pass
