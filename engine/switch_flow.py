"""The kill switch as front ends other than the console set and read it (the HTTP API): one
function per action — role check (engine/roles.py), clean the reason (engine/text.py), set, audit.

An activation is never refused for what its reason contains: the reason is cleaned (lone
surrogates, control characters, 10 kB of text) and the switch goes on; the outcome says what the
cleaning changed. A deactivation needs the role and a reason (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from engine.roles import may, needed
from engine.store import KillSwitchState, Store
from engine.tenancy import GLOBAL_TENANT
from engine.text import clean_text

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


def switch_state(store: Store, tenant: str, connection_id: str = "") -> dict[str, Any]:
    """Every scope that counts for ``connection_id`` of ``tenant``: flags, who set them, why.

    One plain SELECT of five columns, no ORM objects: the executors' poll is the API's hottest
    read (bench/api_load.py), five times cheaper this way than through ``Store.kill_switch_rows``.
    """
    flags = {"global": False, "tenant": False, "connection": False}
    by: dict[str, str] = {}
    reasons: dict[str, str] = {}
    query = select(*_READ_COLUMNS).where(
        KillSwitchState.tenant_id.in_([GLOBAL_TENANT, tenant]))  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    for scope, conn_id, active, updated_by, reason in rows:
        if scope not in flags or (scope == "connection" and (not connection_id or conn_id != connection_id)):
            continue
        flags[scope] = bool(active)
        by[scope] = updated_by
        reasons[scope] = reason
    return {"global_active": flags["global"], "connection_active": flags["connection"],
            "tenant_active": flags["tenant"], "updated_by": by, "reasons": reasons}


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


def set_switch(store: Store, tenant: str, scope: str, active: bool, actor: str, roles: Iterable[str],
               reason: object = "", connection_id: str = "", via: str = "api") -> SwitchOutcome:
    """Turn one scope on or off for ``actor`` acting in ``roles``; audited either way."""
    held = sorted(set(roles))
    cleaned = clean_text(reason)
    conn = connection_id if scope == "connection" else ""
    base = dict(scope=scope, active=active, tenant=tenant, reason=cleaned.text, reason_changes=cleaned.changes)
    actions = ["kill_switch_activate" if active else "kill_switch_deactivate"]
    if scope == "global":
        actions.append("kill_switch_global")
    refusal = message = ""
    lacking = [a for a in actions if not may(a, held)]
    if lacking:
        refusal = "role"
        message = (f"{'' if active else 'de'}activation needs the {' or '.join(sorted(needed(lacking[0])))} role; "
                   f"{actor} is {' or '.join(held) or 'no role'}")
    elif not active and not cleaned.text:
        refusal, message = "reason", "deactivation needs a reason: give \"reason\" (why it is safe to go on)"
    if refusal:
        store.audit(tenant, actor, "kill_switch_deactivation_refused" if not active else "kill_switch_activation_refused",
                    None, {"scope": scope, "connection_id": conn or None, "role": held[0] if len(held) == 1 else held,
                           "why": message, "reason": cleaned.text, "via": via})
        return SwitchOutcome(False, refusal=refusal, message=message, **base)
    store.set_kill_switch(tenant, scope, active, actor, cleaned.text, conn)
    if cleaned.changed:
        store.audit(tenant, actor, "kill_switch_reason_cleaned", None,
                    {"scope": scope, "connection_id": conn or None, "changes": list(cleaned.changes), "via": via})
    return SwitchOutcome(True, message="done", **base)
