"""The kill switch as the HTTP API reads it: the executors' poll and a tenant's view, as plain
SELECTs. Setting it goes through ``engine.flows.killswitch_actions`` (the console's and the CLI's too)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import select

from engine.adapters.store import KillSwitchState, Store
from engine.domain.tenancy import GLOBAL_TENANT

SCOPES = ("global", "tenant", "connection")


@dataclass(frozen=True)
class SwitchOutcome:
    ok: bool
    scope: str
    active: bool
    tenant: str
    reason: str = ""
    reason_changes: tuple[str, ...] = ()  # what clean_text changed in the reason given
    refusal: str = ""  # "" | "role" | "reason"
    message: str = ""


_READ_COLUMNS = (KillSwitchState.scope, KillSwitchState.connection_profile_id, KillSwitchState.is_active,
                 KillSwitchState.updated_by, KillSwitchState.reason)
# Built once: building the statement cost as much as running it.
_READ_ROWS = select(KillSwitchState.tenant_id, *_READ_COLUMNS).where(
    KillSwitchState.tenant_id.in_(bindparam("tenants", expanding=True)))  # type: ignore[attr-defined]


def switch_rows(store: Store, tenants: Iterable[str]) -> list[tuple[Any, ...]]:
    """The kill-switch rows of ``tenants`` and the global row, in one plain SELECT of five columns
    (no ORM objects): the executors' poll is the API's hottest read (bench/api_load.py), and the
    API reads the switches of every poll waiting at one moment with one call (api/switch_reads.py).
    Each row: (tenant, scope, connection id, active, updated by, reason)."""
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(_READ_ROWS, {"tenants": sorted({GLOBAL_TENANT, *tenants})}).all()]


def state_of(rows: Iterable[tuple[Any, ...]], tenant: str, connection_id: str = "") -> dict[str, Any]:
    """``switch_state`` from rows ``switch_rows`` read (they may hold other tenants' rows too)."""
    flags = {"global": False, "tenant": False, "connection": False}
    by: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for row_tenant, scope, conn_id, active, updated_by, reason in rows:
        if scope not in flags or row_tenant != (GLOBAL_TENANT if scope == "global" else tenant):
            continue
        if scope == "connection" and (not connection_id or conn_id != connection_id):
            continue
        flags[scope] = bool(active)
        by[scope] = updated_by
        reasons[scope] = reason
    return {"global_active": flags["global"], "connection_active": flags["connection"],
            "tenant_active": flags["tenant"], "updated_by": by, "reasons": reasons}


def switch_state(store: Store, tenant: str, connection_id: str = "") -> dict[str, Any]:
    """Every scope that counts for ``connection_id`` of ``tenant``: flags, who set them, why."""
    return state_of(switch_rows(store, [tenant]), tenant, connection_id)


def tenant_switches(store: Store, tenant: str) -> dict[str, Any]:
    """The tenant's view: the global and tenant switches and every connection switch it has."""
    rows = store.kill_switch_rows(tenant, None)
    with store.session() as s:
        conns = s.exec(select(KillSwitchState).where(
            KillSwitchState.tenant_id == tenant, KillSwitchState.scope == "connection")).all()
    return {"tenant_id": tenant,
            "global_active": any(r.is_active for r in rows if r.scope == "global"),
            "tenant_active": any(r.is_active for r in rows if r.scope == "tenant"),
            "connections": {r.connection_profile_id: bool(r.is_active) for r in conns}}
