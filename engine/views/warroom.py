"""The war room as the runbook staffs it (runbook 2.5.1–2.5.2, 7.2–7.3; docs/product.md#the-war-room):
the people by required role with their phone and handle, the links, the escalation matrix with
whom each level calls and how fast. Plain data from the plan, for the Plan screen and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from engine.domain.plan import REQUIRED_PERSONNEL, ROLE_WORDS, ROLES, Plan

MISSING = "MISSING"


@dataclass(frozen=True)
class PersonRow:
    role: str  # "Canary Lead" …
    name: str  # MISSING when the plan names nobody in a required role
    phone: str
    handle: str  # the chat handle, else the free-text contact
    backup: str
    unix_user: str
    required: bool


@dataclass(frozen=True)
class EscalationRow:
    level: str
    condition: str
    who: str  # the roles, with the plan's handles
    response: str


def people_rows(plan: Plan) -> tuple[PersonRow, ...]:
    """One row per person per role, required roles first (runbook 2.5.1's order); a required role
    nobody holds is a row of its own that says MISSING."""
    out = []
    for role in ROLES:
        held = [p for p in plan.people if role in p.roles]
        if not held and role in REQUIRED_PERSONNEL:
            out.append(PersonRow(ROLE_WORDS[role], MISSING, "", "", "", "", True))
        for p in held:
            out.append(PersonRow(ROLE_WORDS[role], p.name, p.phone or "—", p.handle or p.contact or "—",
                                 p.backup or "—", p.unix_user or "—", role in REQUIRED_PERSONNEL))
    return tuple(out)


def links(plan: Plan) -> tuple[tuple[str, str], ...]:
    """Runbook 2.5.2: the channels, each with what the plan gives ("not in the plan" otherwise)."""
    w = plan.war_room
    none = "not in the plan ([war_room])"
    return (("Dashboard", w.dashboard or "this console (5 Monitoring)"), ("Chat", w.chat or none),
            ("War room", w.room or none), ("Pager", w.pager or none))


def _handles(plan: Plan, role: str) -> str:
    found = [p.handle or p.phone or p.contact or p.name for p in plan.people if role in p.roles]
    return ", ".join(found) if found else MISSING


def escalation_rows(plan: Plan) -> tuple[EscalationRow, ...]:
    """Runbook 7.2 with the plan's people: L1 … L4, whom each calls and within what time."""
    from engine.views.report_model import ESCALATION_MATRIX

    lead, dba = _handles(plan, "canary_lead"), _handles(plan, "dba")
    team = ", ".join(p.handle or p.name for p in plan.people) or MISSING
    who = {"L1": f"Canary Lead {lead}", "L2": f"Canary Lead {lead} + DBA {dba}",
           "L3": f"all team ({team}) + on-call manager", "L4": "on-call manager + director"}
    return tuple(EscalationRow(e.level, e.condition, who[e.level], e.response) for e in ESCALATION_MATRIX.values())
