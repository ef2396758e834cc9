"""The threshold profile a run is watched with (docs/thresholds.md#the-5m10m-band): the plan's,
tightened after a WARNING size gate. The gate's decision is recorded on the run
(``size_gate_decided``), so every console, the CLI and a replay read the same profile."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.adapters.store import Store
    from engine.domain.plan import Plan

GATE_DECIDED = "size_gate_decided"


def run_gate(store: Store, tenant: str, run_id: str) -> tuple[str, int] | None:
    """The band and the rows of the run's latest size-gate decision (None before the gate)."""
    entries = store.audit_entries(tenant, run_id, GATE_DECIDED, limit=1, latest=True)
    if not entries:
        return None
    d = entries[-1].details or {}
    band, rows = d.get("band"), d.get("rows")
    return (band, rows) if isinstance(band, str) and isinstance(rows, int) else None


def run_profile(plan: Plan, store: Store, run_id: str | None, base: Any = None) -> Any:
    """The threshold profile the run is watched with: the plan's, tightened after a WARNING gate."""
    from engine.domain.sizegate import profile_for

    profile = base if base is not None else plan.profile()
    gate = run_gate(store, plan.tenant, run_id) if run_id else None
    return profile_for(profile, *gate) if gate else profile
