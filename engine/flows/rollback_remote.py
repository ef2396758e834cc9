"""What the rollback flow (engine/flows/rollback_flow.py) needs when it is driven without a plan — from
the HTTP API, whose people are its token holders — and how its refusals are classed.

The flow decides *whether*; ``refusal_kind`` only says whether a refusal is about the person
(forbidden: a role they lack, a role not needed, the requester alone) or about the state (conflict:
nothing decided, approved twice, the role already given), read from the same state the flow read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from engine.adapters.store import ExecutionRun, Store
from engine.domain import rollback_rules as rules
from engine.domain.plan import OffPeakWindow, Person
from engine.domain.thresholds import Profile
from engine.views import rollback as rollback_views


@dataclass(frozen=True)
class Roster:
    """What the rollback flow reads of a plan: the tenant, the people and their roles, the
    threshold profile. Without a plan, the people are the token holders."""

    tenant: str
    people: tuple[Person, ...]
    # Without a plan there is no time zone to show: times read in UTC, and say so.
    off_peak: OffPeakWindow = OffPeakWindow(time(22), time(6), timedelta(0))

    def profile(self) -> Profile:
        return Profile()


def roster_of(tenant: str, holders: Iterable[tuple[str, str]]) -> Roster:
    """``holders``: (actor, role) pairs; one person per actor with every role they hold."""
    roles: dict[str, list[str]] = {}
    for actor, role in holders:
        roles.setdefault(actor, [])
        if role not in roles[actor]:
            roles[actor].append(role)
    return Roster(tenant, tuple(Person(name=a, roles=tuple(r), unix_user=a) for a, r in roles.items()))


def latest_metrics(store: Store, run: ExecutionRun) -> dict[str, Any]:
    """The last stored value of each rollback metric: what the decision records."""
    latest: dict[str, Any] = {}
    for row in store.samples(run.tenant_id, run.id):
        if row.metric in rules.ROLLBACK_METRICS and row.value is not None:
            latest[row.metric] = row.value
    return latest


def state_json(state: rules.ApprovalState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "trigger": state.trigger,
        "decided_by": {"role": state.decision_by[0], "actor": state.decision_by[1]} if state.decision_by else None,
        "required": list(state.required),
        "approved": [{"role": r, "actor": a} for r, a in state.approved],
        "missing": list(state.missing),
        "refused": [{"role": r, "actor": a} for r, a in state.refused],
        "complete": state.complete,
    }


def decision_refusal_kind(trigger: str, role: str, own_role: str) -> str:
    t = rules.trigger_of(trigger)
    return "forbidden" if role != own_role or role not in t.deciders else "conflict"


def approval_refusal_kind(state: rules.ApprovalState | None, run: ExecutionRun, role: str, actor: str,
                          held: set[str], decision: str) -> str:
    if state is None or run.status == "rolled_back":
        return "conflict"
    if role not in held or role not in state.required:
        return "forbidden"
    mine = [v for v in state.votes if v.actor == actor]
    if mine and mine[-1].decision == decision:
        return "conflict"
    given = state.approver_of(role)
    if given is not None and given != actor:
        return "conflict"
    return "forbidden"


def history_json(store: Store, plan: Any, run: ExecutionRun, dump: Any) -> dict[str, Any]:
    """The rollback view of a run, as plain data (``dump`` turns a stored row into JSON)."""
    view = rollback_views.rollback_view(store, plan, run.id)
    return {
        "run_id": run.id, "tenant_id": run.tenant_id, "run_status": run.status, "fail_reason": run.fail_reason,
        "index_created_by_run": run.index_created_by_run, "headline": view.status, "level": view.level,
        "trigger": view.trigger, "suggested_trigger": view.suggested_trigger, "reason": view.reason,
        "approvals": state_json(view.state),
        "records": [dump(r) for r in store.rollback_records(run.tenant_id, run.id)],
        "steps": [{"code": s.code, "label": s.label, "done": s.done, "detail": s.detail} for s in view.steps],
        "escalation": view.escalation, "drop_sql": view.drop_sql,
    }
