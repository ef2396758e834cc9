"""The manual rollback's rules (runbook section 6; docs/rollback.md), pure: the approvals matrix of
runbook 6.3 as data (``TRIGGERS``), ``approval_state``, ``check_decision``, ``check_approval``
(approvals and refusals alike), the flow's states and the way forward from each (``flow_phase``,
``next_steps``, ``next_line``), the table's diff against its rollback point, and what a run's
rollback records say (the decision in force, a kept index, rung 1 applied).

Plain functions over frozen data and the store's records read as plain data; the actions that
write them are in engine/flows/rollback_flow.py and rollback_rungs.py, the screen's data in engine/views/rollback.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from engine.domain.plan import ROLES, Plan
from engine.domain.roles import in_role, needed, role_words, roles_and

DECISION_KIND = "rollback_decision"  # Approval.kind of the decision (R1)
APPROVAL_KIND = "rollback"  # Approval.kind of each approval (6.3)
EXECUTE_ROLES = tuple(r for r in ROLES if r in needed("rollback_execution"))  # runbook 6.1: "DBA executes DROP INDEX"
DECISION_MARK = "decision_approval"  # the key that marks the decision's RollbackRecord
# The metrics a rollback trigger names, recorded at decision time (runbook 6.5).
ROLLBACK_METRICS = ("latency_p50", "latency_p99", "error_rate", "lock_wait", "replication_lag")


# --- the approvals matrix (runbook 6.3, docs/rollback.md) -------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    key: str
    condition: str  # runbook 6.3's wording
    label: str  # the same, short enough for a list on an 80-column screen
    severity: str  # runbook 6.1: critical | major | kill switch | team
    route: str  # what 6.1 says to do at that severity
    deciders: tuple[str, ...]  # any one of these roles decides
    approvers: tuple[str, ...]  # these approve, except the role that decided

    def required(self, decided_role: str | None) -> tuple[str, ...]:
        """The approvals a decision needs: the deciding role's own word is the decision itself."""
        if decided_role is None and len(self.deciders) == 1:
            decided_role = self.deciders[0]
        return tuple(r for r in self.approvers if r != decided_role)

    def who(self) -> str:
        if self.key == "consensus":
            return "all roles agree · the canary lead records"
        if set(self.deciders) == set(self.approvers):
            return f"{role_words(self.deciders)} decides · the other approves"
        approvers = self.required(None)
        return (f"{role_words(self.deciders)} decides · "
                f"{' + '.join(role_words([r]) for r in approvers)} approve{'s' if len(approvers) == 1 else ''}")


TRIGGERS: tuple[Trigger, ...] = (
    Trigger("lock_wait", "Lock wait time > 5 s", "Lock wait > 5 s", "critical", "immediate manual rollback",
            ("dba",), ("canary_lead",)),
    Trigger("replication_lag", "Replication lag > 60 s", "Replication lag > 60 s", "critical", "immediate manual rollback",
            ("dba",), ("canary_lead", "sre")),
    Trigger("latency", "Latency degradation ≥ 50 % sustained 5+ min", "Latency ≥ +50 % for 5+ min", "major",
            "rollback decision (≥ 10 samples)", ("canary_lead",), ("dba", "sre")),
    Trigger("error_rate", "Error rate spike > 1 %", "Error rate > 1 %", "major", "rollback decision (≥ 10 samples)",
            ("sre",), ("canary_lead", "developer")),
    Trigger("consensus", "Team consensus (e.g. INCONCLUSIVE → remove)", "Team consensus", "team",
            "team decision, recorded by the canary lead", ("canary_lead",), ROLES),
    # After the ALTER the kill switch stopped the run and left the index in place (docs/kill-switch.md). Anyone
    # may press the switch, so who pressed it says nothing about whether the index must go: that is
    # a call for the two roles who may also turn the switch off — the canary lead (the run) or the
    # DBA (the database) decides, and the other approves, so two people always look at it.
    Trigger("kill_switch", "Kill switch after the ALTER: index left in place", "Kill switch after the ALTER",
            "kill switch",
            "manual rollback prepared", ("canary_lead", "dba"), ("canary_lead", "dba")),
)
TRIGGER_BY_KEY = {t.key: t for t in TRIGGERS}


class Vote(NamedTuple):
    """One approval as the rules see it (``(role, actor, decision)`` tuples convert to it)."""

    role: str
    actor: str
    decision: str  # approve | refuse
    note: str = ""
    at: datetime | None = None


def person(actor: str) -> str:
    """Who an actor is, whatever the way in: ``nok@10.0.0.5`` in a console, ``nok`` through the
    API, ``nok@10.0.0.9`` from a second SSH session — one person. (A drill's played teammate,
    ``teammate@host (played by you)``, is the teammate.)"""
    return actor.split("@", 1)[0].split(" ", 1)[0].strip().lower()


@dataclass(frozen=True)
class ApprovalState:
    trigger: str
    decision_by: tuple[str, str] | None  # (role, actor)
    required: tuple[str, ...]
    approved: tuple[tuple[str, str], ...]  # (role, actor), each counted once
    missing: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]  # (role, actor): a refusal that stands (nobody gave the role since)
    votes: tuple[Vote, ...] = ()
    # (role, refuser, approver): a refusal another holder of the role overruled by approving
    overruled: tuple[tuple[str, str, str], ...] = ()

    @property
    def only_the_requester(self) -> bool:
        """Every approval so far came from the person who decided (never enough on its own)."""
        return bool(self.decision_by) and bool(self.approved) and all(
            person(a) == person(self.decision_by[1]) for _, a in self.approved)  # type: ignore[index]

    @property
    def complete(self) -> bool:
        return (self.decision_by is not None and not self.missing and not self.refused
                and not self.only_the_requester)

    def approver_of(self, role: str) -> str | None:
        return next((a for r, a in self.approved if r == role), None)


def trigger_of(key: str) -> Trigger:
    try:
        return TRIGGER_BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown rollback trigger {key!r}: one of {', '.join(TRIGGER_BY_KEY)}") from None


def approval_state(trigger: str, decision_by: tuple[str, str] | None,
                   approvals: Iterable[Sequence[Any]]) -> ApprovalState:
    """Who approved, who is missing, who refused. Each person's latest word counts, once.

    A refusal holds its role back until that role is given: by the refuser changing their word,
    or by another person who holds the role (the refusal is then ``overruled``, and stays on the
    record). A refusal nobody overruled blocks the rollback (docs/rollback.md)."""
    t = trigger_of(trigger)
    votes = tuple(v if isinstance(v, Vote) else Vote(*v) for v in approvals)
    required = t.required(decision_by[0] if decision_by else None)
    latest: dict[str, Vote] = {}
    for v in votes:
        latest.pop(person(v.actor), None)
        latest[person(v.actor)] = v  # re-inserted: dict order is the order of each person's latest word
    approved: list[tuple[str, str]] = []
    for role in required:
        who = next((v.actor for v in latest.values() if v.role == role and v.decision == "approve"), None)
        if who is not None:
            approved.append((role, who))
    given = dict(approved)
    refusals = [(v.role, v.actor) for v in latest.values() if v.decision == "refuse"]
    refused = tuple((r, a) for r, a in refusals if r not in given)
    overruled = tuple((r, a, given[r]) for r, a in refusals if r in given)
    missing = tuple(r for r in required if r not in given)
    return ApprovalState(t.key, decision_by, required, tuple(approved), missing, refused, votes, overruled)


def held_words(actor: str, roles_held: Iterable[str]) -> str:
    held = set(roles_held)
    return f"{actor} holds {roles_and(held)}" if held else f"{actor} holds no role in this plan"


def check_decision(trigger: str, role: str, actor: str, roles_held: Iterable[str],
                   existing: tuple[str, str] | None) -> str | None:
    """Why this person may not decide this rollback, or None. Only a deciding role decides."""
    if trigger not in TRIGGER_BY_KEY:
        return f"unknown rollback trigger {trigger!r}: pick one of {', '.join(TRIGGER_BY_KEY)}"
    t = TRIGGER_BY_KEY[trigger]
    held = set(roles_held)
    if role not in t.deciders:
        return (f"a '{t.condition}' rollback is decided by the {role_words(t.deciders)}, not the "
                f"{role_words([role]) if role else 'person without a role'} (runbook 6.3): ask them, or pick the trigger that fits")
    if role not in held:
        return (f"{held_words(actor, held)}, not {role_words([role])}: only a person the plan names as {role_words([role])} decides "
                f"this rollback; ask them")
    if existing is not None:
        return (f"this rollback was already decided by {in_role(existing[1], existing[0])}; nobody decides "
                "twice — approve it (a) or refuse it")
    return None


def check_approval(trigger: str, role: str, actor: str, roles_held: Iterable[str],
                   existing: ApprovalState, decision: str = "approve") -> str | None:
    """Why this approval (or refusal) may not be recorded, or None."""
    t = trigger_of(trigger)
    held = set(roles_held)
    if decision not in ("approve", "refuse"):
        return f"an approval is 'approve' or 'refuse', not {decision!r}"
    if existing.decision_by is None:
        return (f"no rollback has been decided yet: the {' or the '.join(t.deciders)} decides first "
                "(d); approvals follow a decision")
    if role not in held:
        return (f"{held_words(actor, held)}: nobody approves for a role they do not hold — ask the plan's "
                f"{role or 'approvers'}")
    if role not in existing.required:
        if role == existing.decision_by[0]:
            return (f"the {role} decided this rollback: that decision is its word; the approvals "
                    f"needed are {', '.join(existing.required)}")
        return (f"the {role} approval is not needed for a '{t.condition}' rollback (runbook 6.3 "
                f"needs {', '.join(existing.required)})")
    me = person(actor)
    mine = [v for v in existing.votes if person(v.actor) == me]
    latest = mine[-1] if mine else None
    if decision == "refuse":
        # The matrix applies to a refusal as to an approval: only a person who may still give the
        # role may hold it back, and never the person who asked for the rollback.
        if me == person(existing.decision_by[1]):
            return (f"{actor} decided this rollback: the requester cannot refuse their own rollback — to "
                    "withdraw it, the canary lead makes a new trigger (n) with a reason")
        if latest is not None and latest.decision == "refuse":
            return f"{actor} already refused (as {role_words([latest.role])}); approve (a) to withdraw the refusal"
        if latest is not None and latest.role != role:
            return (f"{actor} already approved as {latest.role}: one word per person — a refusal for another "
                    "role would silently take that approval back; refuse for that role instead")
        given = existing.approver_of(role)
        if given is not None and person(given) != me:
            return (f"the {role} approval was already given by {given}: only someone who may still approve may "
                    "refuse — talk to them, or the canary lead makes a new trigger (n)")
        return None
    if latest is not None and latest.decision == "approve":
        return (f"{actor} already approved (as {role_words([latest.role])}); nobody approves twice, for any role — "
                f"ask another person for {', '.join(existing.missing) or 'the remaining roles'}")
    given = existing.approver_of(role)
    if given is not None and person(given) != me:
        return (f"the {role} approval was already given by {given}; "
                + (f"still needed: {', '.join(existing.missing)}" if existing.missing else "none is missing"))
    if me == person(existing.decision_by[1]):
        others = [a for _, a in existing.approved if person(a) != me]
        left = [r for r in existing.missing if r != role]
        if not others and not left:
            return (f"{actor} decided this rollback and would be its only approver: the requester "
                    f"cannot be the only approver — ask another person holding {role}")
    return None


# --- the flow's states and the way forward from each (docs/rollback.md) --------------------------

PHASES: dict[str, str] = {  # every state of one run's rollback flow, in the order it is walked
    "nothing_to_roll_back": "the run did not create the index (TC-05)",
    "awaiting_decision": "no decision in force: the trigger's deciding role decides",
    "awaiting_approvals": "decided: the approvals the trigger needs are not all in",
    "refused": "decided, and a refusal stands: nothing is executed",
    "approved": "every approval is in: the DBA may execute a rung",
    "ignored": "rung 1 applied: the index is ignored, reversible",
    "drop_failed": "the DROP failed (escalation L4): the index is still there",
    "rolled_back": "the index is dropped and verified gone",
    "kept": "the canary lead kept the index after a refusal",
}
FINAL_PHASES: dict[str, str] = {  # final by design, and what the screen says about it
    "nothing_to_roll_back": "this run did not create the index, so there is nothing of its own to roll back "
                            "(TC-05)",
    "rolled_back": "the index is dropped and verified gone; the post-rollback observation (R4) runs on its own",
    "kept": "the index stays by the canary lead's call after a refusal; removing it later is a change of its own",
}


@dataclass(frozen=True)
class NextStep:
    """One way forward from a state: who may take it, with which key of the Rollback screen, and
    the engine function the console, the CLI and the API call for it."""

    key: str  # the Rollback screen's key
    action: str  # decide_rollback | approve_rollback | refuse_rollback | retrigger_rollback | keep_index | …
    roles: tuple[str, ...]
    text: str  # one line, as the screen says it


def flow_phase(*, index_created_by_run: bool, run_status: str, state: ApprovalState | None,
               kept: bool = False, rung1_applied: bool = False, drop_failed: bool = False) -> str:
    """The state of a run's rollback flow (pure): one of ``PHASES``."""
    if run_status == "rolled_back":
        return "rolled_back"
    if kept:
        return "kept"
    if not index_created_by_run:
        return "nothing_to_roll_back"
    if state is not None and state.refused:
        return "refused"
    if drop_failed:
        return "drop_failed"
    if state is None:
        return "awaiting_decision"
    if not state.complete:
        return "awaiting_approvals"
    return "ignored" if rung1_applied else "approved"


def _deciders(trigger: str | None) -> tuple[str, ...]:
    t = TRIGGER_BY_KEY.get(trigger or "")
    if t is not None:
        return t.deciders
    return tuple(r for r in ROLES if any(r in t.deciders for t in TRIGGERS))


def next_steps(phase: str, trigger: str | None, state: ApprovalState | None) -> tuple[NextStep, ...]:
    """The ways forward from ``phase`` (pure). Empty exactly for the ``FINAL_PHASES``."""
    lead = tuple(sorted(needed("rollback_retrigger")))
    keep = tuple(sorted(needed("rollback_keep_index")))
    new_trigger = NextStep("n", "retrigger_rollback", lead,
                           f"the {role_words(lead)} closes this decision for a new trigger (n)")
    dba = EXECUTE_ROLES
    decide = NextStep("d", "decide_rollback", _deciders(trigger),
                      f"the {role_words(_deciders(trigger))} decides (d) with a reason — pick the trigger (t)")
    if phase == "awaiting_decision":
        return (decide,)
    if phase == "awaiting_approvals":
        missing = state.missing if state is not None and state.missing else \
            (state.required if state is not None else ())
        who = role_words(missing) if state is None or state.missing else \
            f"another {role_words(missing)} than the requester"
        return (NextStep("a", "approve_rollback", missing, f"the {who} approves (a)"),
                NextStep("a", "refuse_rollback", missing, "or refuses, with a reason (a, then Refuse…)"),
                new_trigger)
    if phase == "refused":
        refused = state.refused if state is not None else ()
        roles = tuple(dict.fromkeys(r for r, _ in refused))
        refusers = ", ".join(a.split("@")[0] for _, a in refused)
        return (NextStep("a", "approve_rollback", roles,
                         f"another {role_words(roles)} approves (a) — or {refusers} after all"),
                new_trigger,
                NextStep("k", "keep_index", keep, f"the {role_words(keep)} keeps the index (k), with a reason: final"))
    if phase == "approved":
        return (NextStep("i", "execute_ignore", dba, "the DBA applies rung 1, ignore (i)"),
                NextStep("x", "execute_drop", dba, "the DBA runs rung 2, DROP INDEX (x)"),
                new_trigger)
    if phase == "ignored":
        return (NextStep("x", "execute_drop", dba, "the DBA drops the index (x)"),
                NextStep("u", "undo_ignore", dba, "the DBA undoes rung 1 (u)"))
    if phase == "drop_failed":
        steps = (NextStep("x", "execute_drop", dba, "the DBA retries the DROP (x) once the cause is found, "
                          "or intervenes by hand"),)
        return steps + ((decide,) if state is None else ())
    if phase in FINAL_PHASES:
        return ()
    raise ValueError(f"unknown rollback phase {phase!r}: one of {', '.join(PHASES)}")


def next_line(phase: str, steps: Sequence[NextStep]) -> str:
    """What the screen says under the headline: the way forward, or that the state is final."""
    if phase in FINAL_PHASES:
        return f"Final: {FINAL_PHASES[phase]}."
    return "Next: " + "; ".join(s.text for s in steps) + "."


# --- outcomes and the table's diff against its rollback point ------------------------------------


@dataclass(frozen=True)
class FlowOutcome:
    status: str  # done | refused | failed
    message: str
    record_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"


@dataclass(frozen=True)
class Inspection:
    """The target as the rollback finds it (docs/rollback.md pre-verify), read by ``inspect``."""

    inspected_at: datetime
    server: str = ""  # e.g. "MariaDB 10.11.6"
    flavour: str = ""  # mariadb | mysql
    index_exists: bool = False
    index_columns: tuple[tuple[str, int | None], ...] = ()
    ours: bool = False  # created by this run and still the index it created (TC-05)
    ignored: bool | None = None  # rung 1 applied (None: unknown or unsupported)
    conflicts: tuple[str, ...] = ()  # shown, acknowledged, never silently blocking
    blockers: tuple[str, ...] = ()  # nothing is executed while there is one
    error: str | None = None  # the target could not be read


_KEY_LINE = re.compile(r"^(PRIMARY KEY|UNIQUE KEY|UNIQUE INDEX|KEY|INDEX|FULLTEXT|SPATIAL|VECTOR)\b", re.I)
_AUTO_INCREMENT = re.compile(r"\s*AUTO_INCREMENT=\d+", re.I)


def _create_parts(text: str) -> tuple[dict[str, str], list[str], set[str], str]:
    """``SHOW CREATE TABLE`` as columns (name → definition, and their order), other definitions
    (constraints, checks) and the table options — keys are left to the catalogue comparison."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    columns: dict[str, str] = {}
    order: list[str] = []
    others: set[str] = set()
    options: list[str] = []
    in_body = False
    for ln in lines:
        if not in_body:
            in_body = ln.endswith("(")
            continue
        if ln.startswith(")") or options:
            options.append(ln.lstrip(") ").strip())
            continue
        item = ln.rstrip(",")
        if item.startswith("`"):
            name = item[1:item.index("`", 1)]
            columns[name] = item[item.index("`", 1) + 1:].strip()
            order.append(name)
        elif not _KEY_LINE.match(item) and item:
            others.add(item)
    return columns, order, others, _AUTO_INCREMENT.sub("", " ".join(options)).strip()


def columns_text(columns: Iterable[Sequence[Any]]) -> str:
    return ", ".join(f"{c[0]}({c[1]})" if len(c) > 1 and c[1] else str(c[0]) for c in columns)


def diff_against_point(point_create: str, point_indexes: Sequence[dict[str, Any]], current_create: str,
                       current_indexes: Sequence[dict[str, Any]], run_index: str) -> tuple[str, ...]:
    """What changed in the table since the rollback point, other than the run's own index, as
    sentences a DBA reads at 2 a.m. (AUTO_INCREMENT ignored: rows were written, nothing else)."""
    found: list[str] = []
    before = {i["name"]: i for i in point_indexes if i["name"] != run_index}
    now = {i["name"]: i for i in current_indexes if i["name"] != run_index}
    for name in now.keys() - before.keys():
        found.append(f"index {name} added since the rollback point ({columns_text(now[name]['columns'])})")
    for name in before.keys() - now.keys():
        found.append(f"index {name} dropped since the rollback point")
    for name in before.keys() & now.keys():
        old, new = before[name], now[name]
        if [list(c) for c in old["columns"]] != [list(c) for c in new["columns"]] or \
                bool(old.get("unique")) != bool(new.get("unique")):
            found.append(f"index {name} changed since the rollback point: "
                         f"({columns_text(old['columns'])}) → ({columns_text(new['columns'])})")
    old_cols, old_order, old_other, old_opts = _create_parts(point_create)
    new_cols, new_order, new_other, new_opts = _create_parts(current_create)
    for name in new_order:
        if name not in old_cols:
            found.append(f"column {name} added since the rollback point: {new_cols[name]}")
        elif old_cols[name] != new_cols[name]:
            found.append(f"column {name} changed: {old_cols[name]} → {new_cols[name]}")
    for name in old_order:
        if name not in new_cols:
            found.append(f"column {name} dropped since the rollback point (was {old_cols[name]})")
    kept_old = [c for c in old_order if c in new_cols]
    kept_new = [c for c in new_order if c in old_cols]
    if kept_old != kept_new:
        found.append(f"columns reordered: {', '.join(kept_old)} → {', '.join(kept_new)}")
    found += [f"definition added since the rollback point: {d}" for d in sorted(new_other - old_other)]
    found += [f"definition removed since the rollback point: {d}" for d in sorted(old_other - new_other)]
    if old_opts != new_opts:
        found.append(f"table options changed: {old_opts} → {new_opts}")
    return tuple(found)


def expected_columns(run: Any) -> tuple[tuple[str, int | None], ...]:
    return tuple((c[0], c[1]) if isinstance(c, (list, tuple)) else (c, None) for c in run.columns or [])


# --- the plan's people, and what a run's rollback records say -------------------------------------


def people_holding(plan: Plan, role: str) -> tuple[str, ...]:
    return tuple(p.name for p in plan.people if role in p.roles)


def who_holds(plan: Plan, roles: Iterable[str]) -> str:
    parts = []
    for role in roles:
        names = people_holding(plan, role)
        word = role_words([role])
        parts.append(f"the {word} ({', '.join(names)})" if names else f"the {word} (nobody in the plan holds it)")
    return ", ".join(parts)


def record_kind(r: Any) -> str:
    """What a rollback record is (pure): the decision, rung 1 (``ignore``), the DROP, or the
    executor's own record (a prepared 'would roll back', an automatic rollback)."""
    d = r.rollback_details or {}
    if DECISION_MARK in d:
        return "decision"
    if d.get("rung") in ("ignore", "drop"):
        return d["rung"]
    if r.rollback_type in ("full", "auto", "manual") and r.attempts:
        return "drop"
    return "executor"


def decision_record(records: Sequence[Any]) -> Any:
    """The decision in force: the latest one a new trigger has not closed (a kept one included)."""
    decided = [r for r in records if DECISION_MARK in (r.rollback_details or {})
               and not (r.rollback_details or {}).get("superseded_at")]
    return decided[-1] if decided else None


def closed_votes(records: Sequence[Any]) -> set[str]:
    """The approvals and refusals given to decisions a new trigger closed: they do not carry over."""
    closed: set[str] = set()
    for r in records:
        closed.update((r.rollback_details or {}).get("closed_votes") or ())
    return closed


def kept_of(decision: Any) -> dict[str, Any] | None:
    """The canary lead's "keep the index" on this decision (final), or None."""
    kept = (decision.rollback_details or {}).get("kept") if decision is not None else None
    return kept if isinstance(kept, dict) else None


def index_kept(records: Sequence[Any]) -> dict[str, Any] | None:
    """The canary lead's "keep the index" in force on a run's rollback records (who, role, when,
    reason), or None (pure). A kept index ends the rollback flow: the state ``kept`` is final."""
    return kept_of(decision_record(records))


def prepared_record(records: Sequence[Any]) -> Any:
    """A record the executor left for people: 'would roll back', or pending after a kill switch."""
    prepared = [r for r in records if r.rollback_status in ("pending", "would_roll_back")
                and DECISION_MARK not in (r.rollback_details or {})]
    return prepared[-1] if prepared else None


def active_ignore(records: Sequence[Any]) -> Any:
    rung1 = [r for r in records if (r.rollback_details or {}).get("rung") == "ignore"
             and r.rollback_status == "completed"]
    if rung1 and not (rung1[-1].rollback_details or {}).get("undone_at") \
            and not (rung1[-1].rollback_details or {}).get("superseded_by"):
        return rung1[-1]
    return None


def suggest_trigger(reason: str) -> str | None:
    """The trigger a prepared record points at, from the words of its reason."""
    text = reason.lower()
    for key, words in (("kill_switch", ("kill switch",)), ("lock_wait", ("lock wait", "lock_wait")),
                       ("replication_lag", ("replication", " lag")), ("error_rate", ("error rate", "error_rate")),
                       ("latency", ("latency", "p50", "p99")), ("consensus", ("inconclusive",))):
        if any(w in text for w in words):
            return key
    return None
