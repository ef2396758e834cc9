"""A precheck's outcome as plain data (docs/prechecks.md): the checks in engine.flows.prechecks and
the collectors' needs in engine.adapters.collector_needs both return it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One check's outcome, before it is stored."""

    check_id: str
    status: str  # pass | fail | warn | skip
    detail: str
    query: str | None = None
    duration_ms: float | None = None
