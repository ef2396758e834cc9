"""The manual rollback (runbook section 6; docs/rollback.md): decision, approvals, the ladder, the record.

The rules are pure functions over frozen dataclasses: the approvals matrix of runbook 6.3 as data
(``TRIGGERS``), ``approval_state``, ``check_decision``, ``check_approval`` (approvals and refusals
alike), the flow's states and the way forward from each (``flow_phase``, ``next_steps``,
``next_line``; docs/rollback.md), and the diff of the table against its rollback point. The actions
sit at the edges and each is audited: ``decide_rollback`` (R1), ``approve_rollback``,
``refuse_rollback`` (with its reason), ``retrigger_rollback`` and ``keep_index`` (the canary lead's
steps after a refusal), ``inspect`` (pre-verify: is the index the run's,
what changed since the rollback point), ``execute_ignore`` / ``undo_ignore`` (rung 1, instant and
reversible), ``execute_drop`` (rung 2 through ``IndexRollback``: R2 verify, R3 ``rolled_back``, R4
the start of the 30-minute observation) and ``rollback_view`` (plain data for the screen).

An action never raises a refusal: it returns a ``FlowOutcome`` whose message names the problem and
the way out, and the refusal is in the audit trail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from engine.adapters import sql
from engine.adapters.retry import retrying
from engine.adapters.store import Approval, ExecutionRun, RollbackPoint, RollbackRecord, Store
from engine.adapters.target import IndexInfo, Target, TargetError
from engine.domain.clock import Clock, SystemClock, wall
from engine.domain.jsonable import jsonable
from engine.domain.plan import ROLES, Plan
from engine.domain.roles import may, needed, role_words
from engine.domain.rollback_eta import eta_for_run
from engine.domain.text import clean_text
from engine.flows.rollback import RETRYABLE, IndexRollback

DECISION_KIND = "rollback_decision"  # Approval.kind of the decision (R1)
APPROVAL_KIND = "rollback"  # Approval.kind of each approval (6.3)
EXECUTE_ROLES = tuple(r for r in ROLES if r in needed("rollback_drop"))  # runbook 6.1: "DBA executes DROP INDEX"
_DECISION_MARK = "decision_approval"  # the key that marks the decision's RollbackRecord

# The flow's records as events, for whoever listens (engine/flows/notify.py ``Notifier.on_rollback_event``
# pushes them to the plan's webhooks): ``decided`` (R1), ``dropped`` / ``drop_failed`` (R2–R3, L4) and
# ``completed`` (R5, after the post-rollback observation). Only the process that performs a step
# emits it, so a second console watching the same run never posts it again.
Listener = Callable[[str, Mapping[str, Any]], None]


def _emit(listeners: Iterable[Listener], name: str, data: Mapping[str, Any]) -> None:
    for listen in listeners:
        try:
            listen(name, data)
        except Exception:  # noqa: BLE001, S110 - a listener never stops the rollback; the audit has the step
            pass


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
            return "all roles agree · canary_lead records"
        if set(self.deciders) == set(self.approvers):
            return f"{' or '.join(self.deciders)} decides · the other approves"
        approvers = self.required(None)
        return f"{' or '.join(self.deciders)} decides · {' + '.join(approvers)} approve{'s' if len(approvers) == 1 else ''}"


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


def _held(actor: str, roles_held: Iterable[str]) -> str:
    held = sorted(roles_held)
    return f"{actor} holds {', '.join(held)}" if held else f"{actor} holds no role in this plan"


def check_decision(trigger: str, role: str, actor: str, roles_held: Iterable[str],
                   existing: tuple[str, str] | None) -> str | None:
    """Why this person may not decide this rollback, or None. Only a deciding role decides."""
    if trigger not in TRIGGER_BY_KEY:
        return f"unknown rollback trigger {trigger!r}: pick one of {', '.join(TRIGGER_BY_KEY)}"
    t = TRIGGER_BY_KEY[trigger]
    held = set(roles_held)
    if role not in t.deciders:
        return (f"a '{t.condition}' rollback is decided by the {' or the '.join(t.deciders)}, not the "
                f"{role or 'person without a role'} (runbook 6.3): ask them, or pick the trigger that fits")
    if role not in held:
        return (f"{_held(actor, held)}, not {role}: only a person the plan names as {role} decides "
                f"this rollback; ask them")
    if existing is not None:
        return (f"this rollback was already decided by {existing[1]} ({existing[0]}); nobody decides "
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
        return (f"{_held(actor, held)}: nobody approves for a role they do not hold — ask the plan's "
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
            return f"{actor} already refused (as {latest.role}); approve (a) to withdraw the refusal"
        if latest is not None and latest.role != role:
            return (f"{actor} already approved as {latest.role}: one word per person — a refusal for another "
                    "role would silently take that approval back; refuse for that role instead")
        given = existing.approver_of(role)
        if given is not None and person(given) != me:
            return (f"the {role} approval was already given by {given}: only someone who may still approve may "
                    "refuse — talk to them, or the canary lead makes a new trigger (n)")
        return None
    if latest is not None and latest.decision == "approve":
        return (f"{actor} already approved (as {latest.role}); nobody approves twice, for any role — "
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


def _cols(columns: Iterable[Sequence[Any]]) -> str:
    return ", ".join(f"{c[0]}({c[1]})" if len(c) > 1 and c[1] else str(c[0]) for c in columns)


def diff_against_point(point_create: str, point_indexes: Sequence[dict[str, Any]], current_create: str,
                       current_indexes: Sequence[dict[str, Any]], run_index: str) -> tuple[str, ...]:
    """What changed in the table since the rollback point, other than the run's own index, as
    sentences a DBA reads at 2 a.m. (AUTO_INCREMENT ignored: rows were written, nothing else)."""
    found: list[str] = []
    before = {i["name"]: i for i in point_indexes if i["name"] != run_index}
    now = {i["name"]: i for i in current_indexes if i["name"] != run_index}
    for name in now.keys() - before.keys():
        found.append(f"index {name} added since the rollback point ({_cols(now[name]['columns'])})")
    for name in before.keys() - now.keys():
        found.append(f"index {name} dropped since the rollback point")
    for name in before.keys() & now.keys():
        old, new = before[name], now[name]
        if [list(c) for c in old["columns"]] != [list(c) for c in new["columns"]] or \
                bool(old.get("unique")) != bool(new.get("unique")):
            found.append(f"index {name} changed since the rollback point: "
                         f"({_cols(old['columns'])}) → ({_cols(new['columns'])})")
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


def _expected_columns(run: ExecutionRun) -> tuple[tuple[str, int | None], ...]:
    return tuple((c[0], c[1]) if isinstance(c, (list, tuple)) else (c, None) for c in run.columns or [])


def inspect(target: Target, run: ExecutionRun, point: RollbackPoint | None,
            clock: Clock | None = None) -> Inspection:
    """Pre-verify against the server (docs/rollback.md): the index exists and is the one this run created
    (TC-05: never drop an index the run did not create), and the table's diff against its
    rollback point. A target that cannot be read is an ``error``, not a verdict."""
    now = (clock or SystemClock()).now()
    name = f"{run.schema_name}.{run.table_name}"
    try:
        with target.session("rollback-inspect") as s:
            server = s.server_info()
            if s.table_info(run.schema_name, run.table_name) is None:
                return Inspection(now, server.describe(), server.flavour, blockers=(
                    f"table {name} no longer exists: there is nothing to roll back; find out who removed it",))
            indexes = s.indexes(run.schema_name, run.table_name)
            create = s.show_create_table(run.schema_name, run.table_name)
            ignored = (s.index_ignored(run.schema_name, run.table_name, run.index_name, server.flavour)
                       if server.supports_ignored_index else None)
    except TargetError as exc:
        return Inspection(now, error=f"cannot inspect {name}: {exc}; nothing was sent — retry (r)")
    current: dict[str, IndexInfo] = {i.name: i for i in indexes}
    idx = current.get(run.index_name)
    expected = _expected_columns(run)
    before = {i["name"] for i in (point.indexes if point else None) or []}
    blockers: list[str] = []
    if not run.index_created_by_run:
        blockers.append(f"index {run.index_name} was not created by run {run.id[:8]}: a rollback never drops "
                        "an index the run did not create (TC-05); leave it, or remove it through a change "
                        "of its own")
    if run.index_name in before:
        blockers.append(f"index {run.index_name} already existed at the rollback point, before the ALTER: "
                        "not this run's, never dropped (TC-05)")
    if idx is not None and tuple(idx.columns) != expected:
        blockers.append(f"index {run.index_name} now has columns ({_cols(idx.columns)}), the run created "
                        f"({_cols(expected)}): someone replaced it; not this run's to drop")
    conflicts: list[str] = []
    if point is None:
        conflicts.append(f"no rollback point is stored for run {run.id[:8]}: the table cannot be compared "
                         "with its state before the ALTER — review SHOW CREATE TABLE by hand")
    else:
        conflicts += diff_against_point(point.show_create, point.indexes or [], create,
                                        [i.as_dict() for i in indexes], run.index_name)
    return Inspection(
        inspected_at=now, server=server.describe(), flavour=server.flavour, index_exists=idx is not None,
        index_columns=tuple(idx.columns) if idx else (), ours=not blockers and idx is not None,
        ignored=ignored, conflicts=tuple(conflicts), blockers=tuple(blockers))


# --- the store-backed actions --------------------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(json.dumps(jsonable(value), default=str))


def _people(plan: Plan, role: str) -> tuple[str, ...]:
    return tuple(p.name for p in plan.people if role in p.roles)


def _who(plan: Plan, roles: Iterable[str]) -> str:
    parts = []
    for role in roles:
        names = _people(plan, role)
        parts.append(f"{role} ({', '.join(names)})" if names else f"{role} (nobody in the plan holds it)")
    return ", ".join(parts)


def _decision_record(records: Sequence[RollbackRecord]) -> RollbackRecord | None:
    """The decision in force: the latest one a new trigger has not closed (a kept one included)."""
    decided = [r for r in records if _DECISION_MARK in (r.rollback_details or {})
               and not (r.rollback_details or {}).get("superseded_at")]
    return decided[-1] if decided else None


def _closed_votes(records: Sequence[RollbackRecord]) -> set[str]:
    """The approvals and refusals given to decisions a new trigger closed: they do not carry over."""
    closed: set[str] = set()
    for r in records:
        closed.update((r.rollback_details or {}).get("closed_votes") or ())
    return closed


def _kept(decision: RollbackRecord | None) -> dict[str, Any] | None:
    """The canary lead's "keep the index" on this decision (final), or None."""
    kept = (decision.rollback_details or {}).get("kept") if decision is not None else None
    return kept if isinstance(kept, dict) else None


def index_kept(records: Sequence[RollbackRecord]) -> dict[str, Any] | None:
    """The canary lead's "keep the index" in force on a run's rollback records (who, role, when,
    reason), or None (pure). A kept index ends the rollback flow: the state ``kept`` is final."""
    return _kept(_decision_record(records))


def _prepared_record(records: Sequence[RollbackRecord]) -> RollbackRecord | None:
    """A record the executor left for people: 'would roll back', or pending after a kill switch."""
    prepared = [r for r in records if r.rollback_status in ("pending", "would_roll_back")
                and _DECISION_MARK not in (r.rollback_details or {})]
    return prepared[-1] if prepared else None


def _votes(store: Store, run: ExecutionRun, records: Sequence[RollbackRecord] = ()) -> list[Vote]:
    closed = _closed_votes(records)
    return [Vote(a.role, a.actor, a.decision, a.note, a.created_at)
            for a in store.approvals(run.tenant_id, run.id, APPROVAL_KIND) if a.id not in closed]


def _state_of(store: Store, run: ExecutionRun,
              records: Sequence[RollbackRecord]) -> tuple[RollbackRecord | None, ApprovalState | None]:
    decision = _decision_record(records)
    if decision is None:
        return None, None
    d = decision.rollback_details or {}
    return decision, approval_state(d["trigger"], (d["decided_role"], d["decided_by"]),
                                    _votes(store, run, records))


def _kept_message(run: ExecutionRun, kept: dict[str, Any]) -> str:
    return (f"final: {kept.get('by')} ({kept.get('role')}) kept index {run.index_name} — {kept.get('reason')}; "
            "the rollback flow of this run is closed (removing the index later is a change of its own)")


def _refuse(store: Store, run: ExecutionRun, actor: str, action: str, message: str,
            **details: Any) -> FlowOutcome:
    store.audit(run.tenant_id, actor, action, run.id, _json(dict(details, reason=message)))
    return FlowOutcome("refused", message)


def _fresh(store: Store, run: ExecutionRun) -> ExecutionRun:
    return store.get_run(run.tenant_id, run.id) or run


def decide_rollback(store: Store, plan: Plan, run: ExecutionRun, trigger: str, actor: str,
                    roles: Iterable[str], reason: str, metrics_at_decision: dict[str, Any] | None = None,
                    role: str | None = None, listeners: Iterable[Listener] = ()) -> FlowOutcome:
    """R1: record the decision (an Approval of kind ``rollback_decision``) and the rollback record in
    ``pending`` with the metrics at decision time — reusing the record the executor prepared
    ('would roll back', or pending after a kill switch) when there is one."""
    run = _fresh(store, run)
    held = set(roles)
    records = store.rollback_records(run.tenant_id, run.id)
    decision = _decision_record(records)
    t = TRIGGER_BY_KEY.get(trigger)
    if t is not None and role is None:
        role = next((r for r in t.deciders if r in held), t.deciders[0])
    refusal: str | None = None
    kept = _kept(decision)
    if run.status == "rolled_back":
        refusal = f"run {run.id[:8]} is already rolled back: there is nothing left to decide"
    elif kept is not None:
        refusal = _kept_message(run, kept)
    elif not run.index_created_by_run:
        refusal = (f"run {run.id[:8]} has not created index {run.index_name}: there is nothing it may roll "
                   "back (TC-05); to stop a run in progress press F9")
    else:
        existing = None
        if decision is not None:
            d = decision.rollback_details or {}
            existing = (d["decided_role"], d["decided_by"])
        refusal = check_decision(trigger, role or "", actor, held, existing)
        if refusal is not None and t is not None and not set(t.deciders) & held:
            refusal += f" — {_who(plan, t.deciders)}"
        if refusal is None and not reason.strip():
            refusal = "a reason is required (R1): say what was seen, e.g. 'lock wait 7 s on orders for 2 min'"
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_decision_refused", refusal, trigger=trigger, role=role,
                       roles=sorted(held))
    assert t is not None and role is not None
    now = store.now()
    approval = store.add_approval(Approval(
        tenant_id=run.tenant_id, execution_run_id=run.id, kind=DECISION_KIND, role=role, actor=actor,
        decision="rollback", note=reason, created_at=now))
    details = {"trigger": t.key, "condition": t.condition, "decided_by": actor, "decided_role": role,
               "decided_at": now.isoformat(), "reason": reason, _DECISION_MARK: approval.id,
               "required": list(t.required(role))}
    record = _prepared_record(records)
    if record is not None:
        old = dict(record.rollback_details or {})
        details["prepared_as"] = record.rollback_status
        details["prepared_reason"] = record.trigger_reason
        details["metrics_at_decision"] = _json(metrics_at_decision or old.get("metrics_at_decision") or {})
        record.rollback_details = {**old, **details}
        record.rollback_status = "pending"
        record.trigger_reason = reason
    else:
        details["metrics_at_decision"] = _json(metrics_at_decision or {})
        record = RollbackRecord(
            tenant_id=run.tenant_id, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
            rollback_status="pending", rollback_type="manual", trigger_reason=reason,
            rollback_sql=sql.drop_index(run.schema_name, run.table_name, run.index_name),
            rollback_details=details, created_by=actor, created_at=now)
    record = store.save_rollback_record(record, actor, "rollback_decided")
    _emit(listeners, "decided", {"trigger": t.key, "condition": t.condition, "decided_by": actor,
                                 "decided_role": role, "reason": reason, "record_id": record.id,
                                 "metrics_at_decision": dict(details["metrics_at_decision"])})
    return FlowOutcome("done", f"rollback decided ({t.condition}) by {actor} as {role}; approvals needed: "
                       f"{_who(plan, t.required(role))}", record.id)


def approve_rollback(store: Store, plan: Plan, run: ExecutionRun, role: str, actor: str,
                     roles: Iterable[str], note: str = "", decision: str = "approve") -> FlowOutcome:
    """Record one approval by the matrix. ``decision="refuse"`` is ``refuse_rollback`` with the note
    as its reason (kept for the API's body: ``{"decision": "refuse", "note": …}``)."""
    if decision == "refuse":
        return refuse_rollback(store, plan, run, role, actor, roles, note)
    run = _fresh(store, run)
    held = set(roles)
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = _state_of(store, run, records)
    if run.status == "rolled_back":
        refusal: str | None = f"run {run.id[:8]} is already rolled back: there is nothing left to approve"
    elif _kept(record) is not None:
        refusal = _kept_message(run, _kept(record))  # type: ignore[arg-type]
    elif record is None or state is None:
        refusal = "no rollback has been decided yet: the deciding role decides first (d); approvals follow it"
    else:
        refusal = check_approval(state.trigger, role, actor, held, state, decision)
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_approval_refused", refusal, role=role, roles=sorted(held),
                       decision=decision)
    assert record is not None and state is not None
    cleaned = clean_text(note)
    store.add_approval(Approval(tenant_id=run.tenant_id, execution_run_id=run.id, kind=APPROVAL_KIND,
                                role=role, actor=actor, decision=decision, note=cleaned.text,
                                created_at=store.now()))
    if cleaned.changed:
        store.audit(run.tenant_id, actor, "rollback_note_cleaned", run.id, {"changes": list(cleaned.changes)})
    after = approval_state(state.trigger, state.decision_by, _votes(store, run, records))
    over = [f"{a}'s refusal ({r}) is overruled" for r, a, by in after.overruled if person(by) == person(actor)]
    also = f" ({'; '.join(over)})" if over else ""
    if after.complete:
        return FlowOutcome("done", f"{actor} approved as {role}{also}; all approvals are in — the DBA may "
                           "execute rung 1 (i) or rung 2 (x)", record.id)
    still = _who(plan, after.missing) if after.missing else "refused by " + ", ".join(a for _, a in after.refused)
    return FlowOutcome("done", f"{actor} approved as {role}{also}; still needed: {still}", record.id)


def refuse_rollback(store: Store, plan: Plan, run: ExecutionRun, role: str, actor: str,
                    roles: Iterable[str], reason: str) -> FlowOutcome:
    """Refuse the decided rollback for one role, with a reason (required, audited). The matrix
    applies as to an approval: only someone who may still give the role refuses, never the
    requester. What may follow is stated in the outcome (docs/rollback.md): another holder of the
    role approves, the refuser approves after all, the canary lead makes a new trigger
    (``retrigger_rollback``) or keeps the index (``keep_index``)."""
    run = _fresh(store, run)
    held = set(roles)
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = _state_of(store, run, records)
    cleaned = clean_text(reason)
    if run.status == "rolled_back":
        refusal: str | None = f"run {run.id[:8]} is already rolled back: there is nothing left to refuse"
    elif _kept(record) is not None:
        refusal = _kept_message(run, _kept(record))  # type: ignore[arg-type]
    elif record is None or state is None:
        refusal = "no rollback has been decided yet: there is nothing to refuse"
    else:
        refusal = check_approval(state.trigger, role, actor, held, state, "refuse")
        if refusal is None and not cleaned.text:
            refusal = ("a refusal needs its reason: say why the rollback must not go ahead — every console "
                       "shows it and the audit trail keeps it")
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_approval_refused", refusal, role=role, roles=sorted(held),
                       decision="refuse")
    assert record is not None and state is not None
    store.add_approval(Approval(tenant_id=run.tenant_id, execution_run_id=run.id, kind=APPROVAL_KIND,
                                role=role, actor=actor, decision="refuse", note=cleaned.text,
                                created_at=store.now()))
    if cleaned.changed:
        store.audit(run.tenant_id, actor, "rollback_note_cleaned", run.id, {"changes": list(cleaned.changes)})
    after = approval_state(state.trigger, state.decision_by, _votes(store, run, records))
    steps = next_steps("refused", state.trigger, after) if after.refused else ()
    then = "; ".join(step.text for step in steps) or "nothing blocks it: the role was given by another person"
    return FlowOutcome("done", f"{actor} refused as {role}: {cleaned.text}. Next: {then}", record.id)


def retrigger_rollback(store: Store, plan: Plan, run: ExecutionRun, actor: str, roles: Iterable[str],
                       reason: str) -> FlowOutcome:
    """The canary lead closes the decision in force (refused, or waiting for approvals that will
    not come) so a new trigger can be decided: the flow is back at AWAITING DECISION, and the
    approvals and refusals given so far stay on the record but do not count for the new decision.
    Nothing is sent to the server; a rung already applied must be undone (u) first."""
    run = _fresh(store, run)
    held = set(roles)
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = _state_of(store, run, records)
    cleaned = clean_text(reason)
    refusal: str | None = None
    if not may("rollback_retrigger", held):
        need = needed("rollback_retrigger")
        refusal = (f"a new trigger is the {role_words(need)}'s step (docs/rollback.md); {_held(actor, held)} — "
                   f"ask {_who(plan, sorted(need))}")
    elif run.status == "rolled_back":
        refusal = f"run {run.id[:8]} is already rolled back: there is nothing left to trigger"
    elif _kept(record) is not None:
        refusal = _kept_message(run, _kept(record))  # type: ignore[arg-type]
    elif record is None or state is None:
        refusal = "no rollback is decided: there is no trigger to replace — decide (d) with the trigger that fits"
    elif _active_ignore(records) is not None:
        refusal = "rung 1 is applied (the index is ignored): the DBA undoes it (u) before the trigger can change"
    elif any(_record_row(r).what == "drop" and r.rollback_status == "in_progress" for r in records):
        refusal = ("a DROP for this decision is in progress (or was cut off): the DBA retries it (x), which "
                   "finds out whether it went through, before the trigger can change")
    elif not cleaned.text:
        refusal = "a new trigger needs its reason: say why the decision in force is closed"
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_retrigger_refused", refusal, roles=sorted(held))
    assert record is not None and state is not None
    now = store.now()
    d = dict(record.rollback_details or {})
    closed = [v_id for v_id in _open_vote_ids(store, run, records)]
    record.rollback_details = {**d, "superseded_at": now.isoformat(), "superseded_by": actor,
                               "superseded_reason": cleaned.text, "closed_votes": closed}
    record.rollback_status = "superseded"
    store.save_rollback_record(record, actor, "rollback_decision_superseded")
    store.audit(run.tenant_id, actor, "rollback_retriggered", run.id, _json({
        "reason": cleaned.text, "previous_trigger": d.get("trigger"), "decided_by": d.get("decided_by"),
        "refused_by": [f"{a} ({r})" for r, a in state.refused], "votes_closed": len(closed),
        "cleaned": list(cleaned.changes)}))
    t = TRIGGER_BY_KEY[state.trigger]
    return FlowOutcome("done", f"{actor} closed the '{t.condition}' decision: {cleaned.text}. Next: pick the "
                       "trigger that fits (t) and its deciding role decides (d); earlier approvals do not carry "
                       "over", record.id)


def keep_index(store: Store, plan: Plan, run: ExecutionRun, actor: str, roles: Iterable[str],
               reason: str) -> FlowOutcome:
    """The canary lead accepts a refusal and keeps the index: the rollback flow ends in its final
    state KEPT, with the reason on the record and in the audit trail. Only while a refusal stands
    (a rollback nobody refused is approved or decided again, not abandoned), before any rung."""
    run = _fresh(store, run)
    held = set(roles)
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = _state_of(store, run, records)
    cleaned = clean_text(reason)
    refusal: str | None = None
    if not may("rollback_keep_index", held):
        need = needed("rollback_keep_index")
        refusal = (f"keeping the index is the {role_words(need)}'s call (docs/rollback.md); {_held(actor, held)} "
                   f"— ask {_who(plan, sorted(need))}")
    elif run.status == "rolled_back":
        refusal = f"run {run.id[:8]} is already rolled back: the index is gone"
    elif _kept(record) is not None:
        refusal = _kept_message(run, _kept(record))  # type: ignore[arg-type]
    elif record is None or state is None or not state.refused:
        refusal = ("the index is kept only once a refusal stands: "
                   + ("decide the rollback first (d)" if state is None else
                      "nobody has refused this rollback — approve it (a), or make a new trigger (n)"))
    elif _active_ignore(records) is not None:
        refusal = "rung 1 is applied (the index is ignored): the DBA undoes it (u) before the index is kept"
    elif not cleaned.text:
        refusal = "keeping the index needs its reason: it ends the rollback flow, and the audit trail keeps why"
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_keep_refused", refusal, roles=sorted(held))
    assert record is not None and state is not None
    now = store.now()
    role = next((r for r in sorted(needed("rollback_keep_index")) if r in held), "")
    kept = {"by": actor, "role": role, "at": now.isoformat(), "reason": cleaned.text,
            "refused_by": [f"{a} ({r})" for r, a in state.refused]}
    record.rollback_details = {**(record.rollback_details or {}), "kept": kept}
    record.rollback_status = "not_needed"
    record.rollback_completed_at = now
    store.save_rollback_record(record, actor, "rollback_decision_closed")
    store.audit(run.tenant_id, actor, "rollback_index_kept", run.id, _json({
        **kept, "trigger": state.trigger, "index": run.index_name, "cleaned": list(cleaned.changes)}))
    return FlowOutcome("done", f"index {run.index_name} kept by {actor}: {cleaned.text}. Final: the rollback flow "
                       "of this run is closed", record.id)


def _open_vote_ids(store: Store, run: ExecutionRun, records: Sequence[RollbackRecord]) -> list[str]:
    closed = _closed_votes(records)
    return [a.id for a in store.approvals(run.tenant_id, run.id, APPROVAL_KIND) if a.id not in closed]


def _gate(store: Store, plan: Plan, run: ExecutionRun, actor: str, roles: set[str],
          rung: str) -> tuple[str | None, RollbackRecord | None, ApprovalState | None]:
    """What every rung needs before anything is sent: a decision, every approval, the DBA's hand."""
    records = store.rollback_records(run.tenant_id, run.id)
    record, state = _state_of(store, run, records)
    if run.status == "rolled_back":
        return f"run {run.id[:8]} is already rolled back: the index is gone", record, state
    if _kept(record) is not None:
        return _kept_message(run, _kept(record)), record, state  # type: ignore[arg-type]
    if record is None or state is None:
        return "no rollback has been decided yet: decide first (d), then collect the approvals", None, None
    if state.refused:
        return ("the rollback was refused by " + ", ".join(f"{a} ({r})" for r, a in state.refused)
                + ". Next: " + "; ".join(s.text for s in next_steps("refused", state.trigger, state))), record, state
    if not state.complete:
        missing = _who(plan, state.missing) if state.missing else "another person than the requester"
        return f"the rollback is not approved yet: still must approve: {missing}", record, state
    if not roles & set(EXECUTE_ROLES):
        return (f"executing {rung} is the DBA's step (runbook 6.1, R2); {_held(actor, roles)} — ask "
                f"{_who(plan, EXECUTE_ROLES)}"), record, state
    return None, record, state


def _preflight(insp: Inspection, acknowledged: Iterable[str]) -> tuple[str, str] | None:
    """(status, message) when the inspection stops the rung; conflicts need acknowledging."""
    if insp.error:
        return "failed", insp.error
    if insp.blockers:
        return "refused", "; ".join(insp.blockers)
    unacked = [c for c in insp.conflicts if c not in set(acknowledged)]
    if unacked:
        return "refused", ("the table changed since the rollback point — read and acknowledge first: "
                           + "; ".join(unacked))
    return None


def _rung(point: RollbackPoint | None, name: str) -> dict[str, Any] | None:
    return next((r for r in (point.ladder if point else None) or [] if r.get("rung") == name), None)


def _active_ignore(records: Sequence[RollbackRecord]) -> RollbackRecord | None:
    rung1 = [r for r in records if (r.rollback_details or {}).get("rung") == "ignore"
             and r.rollback_status == "completed"]
    if rung1 and not (rung1[-1].rollback_details or {}).get("undone_at") \
            and not (rung1[-1].rollback_details or {}).get("superseded_by"):
        return rung1[-1]
    return None


def execute_ignore(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                   roles: Iterable[str], acknowledged: Iterable[str] = (),
                   clock: Clock | None = None) -> FlowOutcome:
    """Rung 1: ``ALTER INDEX … IGNORED`` (MariaDB ≥ 10.6) / ``INVISIBLE`` (MySQL 8) — instant and
    reversible. Recorded as a ``partial`` rollback with every attempt; verified from the catalogue."""
    clock = clock or SystemClock()
    run = _fresh(store, run)
    held = set(roles)
    refusal, decision, _state = _gate(store, plan, run, actor, held, "rung 1 (ignore)")
    point = store.rollback_point(run.tenant_id, run.id)
    rung = _rung(point, "ignore")
    if refusal is None and rung is None:
        refusal = ("rung 1 is not available for this run: the server did not support ALTER INDEX … "
                   "IGNORED / INVISIBLE when the rollback point was captured (MariaDB ≥ 10.6, MySQL 8) — "
                   "use rung 2 (x)")
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_execution_refused", refusal, rung="ignore")
    assert decision is not None and rung is not None
    insp = inspect(target, run, point, clock)
    stop = _preflight(insp, acknowledged)
    if stop is None and not insp.index_exists:
        stop = ("refused", f"index {run.index_name} is not there: nothing to ignore — if it is really gone, "
                "rung 2 (x) records the rollback")
    if stop is None and insp.ignored and _active_ignore(store.rollback_records(run.tenant_id, run.id)):
        stop = ("refused", "rung 1 is already applied: observe, then drop (x) or undo (u)")
    if stop is not None:
        if stop[0] == "failed":
            store.audit(run.tenant_id, actor, "rollback_execution_failed", run.id, {"rung": "ignore", "error": stop[1]})
            return FlowOutcome("failed", stop[1])
        return _refuse(store, run, actor, "rollback_execution_refused", stop[1], rung="ignore")
    if insp.conflicts:
        store.audit(run.tenant_id, actor, "rollback_conflicts_acknowledged", run.id,
                    {"rung": "ignore", "conflicts": list(insp.conflicts)})
    verify_sql = sql.ignored_index_query(run.schema_name, run.table_name, run.index_name, insp.flavour)
    record = store.save_rollback_record(RollbackRecord(
        tenant_id=run.tenant_id, execution_run_id=run.id, connection_profile_id=run.connection_profile_id,
        rollback_status="in_progress", rollback_type="partial", trigger_reason=decision.trigger_reason,
        # rollback_sql stays empty: it names the DROP of a full rollback (IndexRollback's guard).
        attempts=[], rollback_started_at=clock.now(), created_by=actor, created_at=clock.now(),
        rollback_details={"rung": "ignore", "sql": rung["sql"], "undo_sql": rung.get("undo_sql"),
                          "verify_sql": verify_sql, "decision_record": decision.id,
                          "index_name": run.index_name, "table_name": run.table_name}),
        actor, "rollback_ignore_started")
    ok, note = _alter_index(store, plan, target, run, actor, record, rung["sql"], True, insp.flavour, clock)
    record.rollback_completed_at = clock.now()
    record.rollback_status = "completed" if ok else "failed"
    if ok:
        record.rollback_details = dict(record.rollback_details or {}, verified_ignored_at=clock.now().isoformat(),
                                       note=note)
        record = store.save_rollback_record(record, actor, "rollback_ignore_completed")
        return FlowOutcome("done", f"index {run.index_name} is ignored by the optimiser ({note}); observe, then "
                           "drop it (x) or undo (u)", record.id)
    record.rollback_error = note
    record = store.save_rollback_record(record, actor, "rollback_ignore_failed")
    return FlowOutcome("failed", f"rung 1 failed: {note}; the index is unchanged — retry (i) or go to rung 2 (x)",
                       record.id)


def undo_ignore(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                roles: Iterable[str], clock: Clock | None = None) -> FlowOutcome:
    """Put rung 1 back (``NOT IGNORED`` / ``VISIBLE``). It only returns the table to where it was
    before the rollback began, so it needs the DBA's hand but no new approvals."""
    clock = clock or SystemClock()
    run = _fresh(store, run)
    held = set(roles)
    record = _active_ignore(store.rollback_records(run.tenant_id, run.id))
    refusal = None
    if run.status == "rolled_back":
        refusal = "the index was dropped (rung 2): there is nothing to undo"
    elif record is None:
        refusal = "rung 1 is not applied: there is nothing to undo"
    elif not held & set(EXECUTE_ROLES):
        refusal = f"undoing rung 1 is the DBA's step; {_held(actor, held)} — ask {_who(plan, EXECUTE_ROLES)}"
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_execution_refused", refusal, rung="undo_ignore")
    assert record is not None
    details = record.rollback_details or {}
    flavour = "mariadb" if "IGNORED" in details.get("sql", "") else "mysql"
    ok, note = _alter_index(store, plan, target, run, actor, record, details["undo_sql"], False, flavour, clock)
    if not ok:
        store.audit(run.tenant_id, actor, "rollback_ignore_undo_failed", run.id, {"error": note})
        return FlowOutcome("failed", f"undo failed: {note}; the index is still ignored — retry (u)", record.id)
    record.rollback_details = dict(details, undone_at=clock.now().isoformat(), undone_by=actor, undo_note=note)
    record = store.save_rollback_record(record, actor, "rollback_ignore_undone")
    return FlowOutcome("done", f"index {run.index_name} is in use again ({note})", record.id)


def _alter_index(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                 record: RollbackRecord, statement: str, want_ignored: bool, flavour: str,
                 clock: Clock) -> tuple[bool, str]:
    """Send rung 1 (or its undo) with retry and backoff. Every attempt is recorded before it is
    sent; the statement is idempotent, and each attempt first reads the state, so an answer lost
    on the way back is recognised rather than sent again."""
    opts = plan.executor
    attempts = list(record.attempts or [])
    first = len(attempts)
    action = "ignore" if want_ignored else "undo"

    def attempt_once() -> tuple[bool, str]:
        attempt: dict[str, Any] = {"n": len(attempts) + 1, "at": clock.now().isoformat(), "action": action}
        attempts.append(attempt)
        try:
            with target.session("rollback") as s:
                s.execute(sql.SET_LOCK_WAIT_TIMEOUT, (opts.lock_wait_timeout,))
                state = s.index_ignored(run.schema_name, run.table_name, run.index_name, flavour)
                if state is None:
                    attempt["error"] = f"index {run.index_name} is not there"
                    return False, attempt["error"]
                if state == want_ignored:
                    attempt["ok"] = True
                    return True, "already so: nothing sent" if len(attempts) == first + 1 else "done by an earlier attempt"
                attempt["sent"] = True
                record.attempts = list(attempts)
                store.save_rollback_record(record, actor, "rollback_attempt")
                s.execute(statement)
                if s.index_ignored(run.schema_name, run.table_name, run.index_name, flavour) != want_ignored:
                    attempt["error"] = "the ALTER returned but the catalogue does not show the change"
                    return False, attempt["error"]
                attempt["ok"] = True
                return True, "verified in information_schema.STATISTICS"
        except TargetError as exc:
            attempt.update(error=str(exc), kind=exc.kind)
            record.attempts = list(attempts)
            store.save_rollback_record(record, actor, "rollback_attempt_failed")
            raise

    send = retrying(opts.rollback_attempts, opts.rollback_backoff_seconds, clock.sleep,
                    lambda exc: isinstance(exc, TargetError) and exc.kind in RETRYABLE)
    try:
        ok, note = send(attempt_once)
    except TargetError as exc:
        ok, note = False, str(exc)
    record.attempts = attempts
    return ok, note


def execute_drop(store: Store, plan: Plan, target: Target, run: ExecutionRun, actor: str,
                 roles: Iterable[str], acknowledged: Iterable[str] = (),
                 clock: Clock | None = None, listeners: Iterable[Listener] = ()) -> FlowOutcome:
    """Rung 2: ``DROP INDEX`` through ``IndexRollback`` (guarded, retried, never twice), then R2 the
    verification, R3 ``rolled_back`` (IndexRollback's transition), R4 the 30-minute observation's
    start and end recorded on the record (the App runs the observation itself)."""
    clock = clock or SystemClock()
    run = _fresh(store, run)
    held = set(roles)
    refusal, decision, state = _gate(store, plan, run, actor, held, "rung 2 (DROP INDEX)")
    if refusal is not None:
        return _refuse(store, run, actor, "rollback_execution_refused", refusal, rung="drop")
    assert decision is not None and state is not None
    point = store.rollback_point(run.tenant_id, run.id)
    insp = inspect(target, run, point, clock)
    stop = _preflight(insp, acknowledged)
    if stop is not None:
        if stop[0] == "failed":
            store.audit(run.tenant_id, actor, "rollback_execution_failed", run.id, {"rung": "drop", "error": stop[1]})
            return FlowOutcome("failed", stop[1])
        return _refuse(store, run, actor, "rollback_execution_refused", stop[1], rung="drop")
    if insp.conflicts:
        store.audit(run.tenant_id, actor, "rollback_conflicts_acknowledged", run.id,
                    {"rung": "drop", "conflicts": list(insp.conflicts)})
    d = decision.rollback_details or {}
    records = store.rollback_records(run.tenant_id, run.id)
    rung1 = _active_ignore(records)
    opts = plan.executor
    out = IndexRollback(store, target, actor, clock, max_attempts=opts.rollback_attempts,
                        backoff_s=opts.rollback_backoff_seconds, lock_wait_timeout=opts.lock_wait_timeout).drop(
        run, decision.trigger_reason, rollback_type="full", fail_reason="manual_rollback",
        details={"rung": "drop", "trigger": d.get("trigger"), "decision_record": decision.id,
                 "decided": f"{d.get('decided_by')} ({d.get('decided_role')})",
                 "approvals": [f"{a} ({r})" for r, a in state.approved],
                 "metrics_at_decision": d.get("metrics_at_decision") or {},
                 "ignored_first": rung1 is not None, "conflicts_acknowledged": list(insp.conflicts)})
    if out.status == "refused":
        return FlowOutcome("refused", out.message, out.record_id)
    if out.status == "failed":
        _emit(listeners, "drop_failed", {"message": out.message, "record_id": out.record_id})
        return FlowOutcome("failed", f"ROLLBACK FAILED — escalation L4: {out.message}. The index is still there; "
                           "retry (x) once the cause is found, or the DBA intervenes by hand", out.record_id)
    # R2: the verification query, on a connection of its own.
    try:
        with target.session("verify") as s:
            gone: bool | None = not s.index_exists(run.schema_name, run.table_name, run.index_name)
    except TargetError:
        gone = None  # IndexRollback verified it on its own connection; say we could not re-read it
    started = clock.now()
    minutes = plan.profile().post_rollback_minutes
    until = started + timedelta(minutes=minutes)
    drop_record = next(r for r in store.rollback_records(run.tenant_id, run.id) if r.id == out.record_id)
    drop_record.rollback_details = dict(
        drop_record.rollback_details or {}, verified_absent=gone,
        verify_sql=sql.show_index_query(run.schema_name, run.table_name, run.index_name),
        observation={"kind": "post_rollback", "minutes": minutes, "started_at": started.isoformat(),
                     "until": until.isoformat()})
    store.save_rollback_record(drop_record, actor, "rollback_verified")
    decision.rollback_status = "completed"
    decision.rollback_completed_at = started
    decision.rollback_details = dict(d, rollback_record=out.record_id)
    store.save_rollback_record(decision, actor, "rollback_decision_completed")
    if rung1 is not None:
        rung1.rollback_details = dict(rung1.rollback_details or {}, superseded_by=out.record_id)
        store.save_rollback_record(rung1, actor, "rollback_ignore_superseded")
    _emit(listeners, "dropped", {"record_id": out.record_id, "minutes": minutes, "until": until.isoformat(),
                                 "verified_absent": gone})
    return FlowOutcome("done", f"index {run.index_name} dropped and verified gone ({out.message}); run "
                       f"rolled_back; post-rollback observation until {wall(until, plan.off_peak.utc_offset)}", out.record_id)


def observe_after_rollback(store: Store, plan: Plan, run_id: str, sources: Sequence[Any], actor: str,
                           clock: Clock, profile: Any = None, listeners: Iterable[Listener] = (),
                           monitor_listeners: Iterable[Callable[[str, dict[str, Any]], None]] = ()) -> Any:
    """R4 and R5: the post-rollback observation (``engine.flows.monitor.observe``, 30 minutes under
    its own profile) on the process that dropped the index, then ``completed`` for the rollback's
    closing announcement. ``monitor_listeners`` hear the observation's start and end (the notifier
    posts them); None when the run is not rolled back. A stopped clock's exception passes through."""
    from engine.flows.monitor import Monitor, observe

    run = store.get_run(plan.tenant, run_id)
    if run is None or run.alter_started_at is None or run.status != "rolled_back":
        return None
    monitor = Monitor(store, plan.tenant, run_id, sources, profile or plan.profile(), actor, clock)
    monitor.listeners.extend(monitor_listeners)
    try:
        result = observe(monitor, "post_rollback", run.alter_started_at)
    finally:
        monitor.close()
    _emit(listeners, "completed", {"ok": result.ok, "alerts": list(result.alerts),
                                   "warnings": len(result.warnings), "ticks": result.ticks})
    return result


# --- the view the screen draws -------------------------------------------------------------------


@dataclass(frozen=True)
class RoleRow:
    role: str
    part: str  # decides | approves | records | —
    status: str  # ✓ decided | ✓ approved | ✗ refused | pending | decides | not needed
    actor: str = ""
    at: datetime | None = None
    note: str = ""
    people: tuple[str, ...] = ()  # who in the plan holds the role


@dataclass(frozen=True)
class RungRow:
    rung: str  # ignore | drop
    title: str
    reversible: bool
    sql: str
    verify_sql: str
    undo_sql: str = ""
    state: str = "not applied"  # ignore: not applied | applied | superseded…; drop: not run | done | failed


@dataclass(frozen=True)
class AttemptRow:
    n: int
    at: str
    action: str = ""
    sent: bool = False
    ok: bool = False
    kind: str = ""
    error: str = ""
    note: str = ""  # e.g. "index gone" (found absent: a DROP whose answer was lost)


@dataclass(frozen=True)
class RecordRow:
    id: str
    what: str  # decision | ignore | drop | executor
    status: str
    type: str
    reason: str
    started_at: datetime | None
    completed_at: datetime | None
    error: str = ""
    attempts: tuple[AttemptRow, ...] = ()


@dataclass(frozen=True)
class Step:
    code: str  # R1 … R5
    label: str
    done: bool
    detail: str = ""


@dataclass(frozen=True)
class RollbackView:
    run_id: str
    table: str  # schema.table
    index: str
    columns: str
    run_status: str
    fail_reason: str | None
    index_created_by_run: bool
    as_of: datetime
    status: str  # the headline
    level: str  # ok | warning | error (the screen maps it to a CSS class)
    suggested_trigger: str | None = None
    trigger: str | None = None
    decided_by: tuple[str, str] | None = None  # (role, actor)
    decided_at: datetime | None = None
    reason: str = ""
    metrics: tuple[tuple[str, str], ...] = ()
    state: ApprovalState | None = None
    roles: tuple[RoleRow, ...] = ()
    unstaffed: tuple[str, ...] = ()  # required roles nobody in the plan holds
    ladder: tuple[RungRow, ...] = ()
    point_captured_at: datetime | None = None
    records: tuple[RecordRow, ...] = ()
    steps: tuple[Step, ...] = ()
    escalation: str | None = None
    observation_until: datetime | None = None
    ignored: bool = False
    drop_sql: str = ""
    phase: str = ""  # one of PHASES
    next_steps: tuple[NextStep, ...] = ()
    next_line: str = ""  # "Next: …" or "Final: …"
    kept: dict[str, Any] | None = None  # the canary lead's keep: by, role, at, reason
    eta: str = ""  # R1's ETA, computed from the index's size and the measured timings (engine/domain/rollback_eta.py)

    @property
    def final(self) -> bool:
        return self.phase in FINAL_PHASES


def suggest_trigger(reason: str) -> str | None:
    """The trigger a prepared record points at, from the words of its reason."""
    text = reason.lower()
    for key, words in (("kill_switch", ("kill switch",)), ("lock_wait", ("lock wait", "lock_wait")),
                       ("replication_lag", ("replication", " lag")), ("error_rate", ("error rate", "error_rate")),
                       ("latency", ("latency", "p50", "p99")), ("consensus", ("inconclusive",))):
        if any(w in text for w in words):
            return key
    return None


def role_rows(plan: Plan, trigger: str | None, state: ApprovalState | None) -> tuple[RoleRow, ...]:
    """The matrix's rows for one trigger: who decides, who approves, who did (pure)."""
    if trigger is None or trigger not in TRIGGER_BY_KEY:
        return ()
    t = TRIGGER_BY_KEY[trigger]
    decided_role = state.decision_by[0] if state and state.decision_by else None
    required = t.required(decided_role)
    latest: dict[str, Vote] = {}
    for v in state.votes if state else ():
        latest.pop(person(v.actor), None)
        latest[person(v.actor)] = v
    rows = []
    for role in ROLES:
        people = _people(plan, role)
        deciding = "records" if t.key == "consensus" else "decides"
        if state and state.decision_by and role == decided_role:
            rows.append(RoleRow(role, deciding, "✓ decided", state.decision_by[1], None, "", people))
            continue
        if role in required and (decided_role is not None or role not in t.deciders):
            refused = next((v for v in latest.values() if v.role == role and v.decision == "refuse"), None)
            who = state.approver_of(role) if state else None
            vote = next((v for v in latest.values() if v.actor == who and v.role == role), None)
            if refused is not None and who is None:
                rows.append(RoleRow(role, "approves", "✗ refused", refused.actor, refused.at, refused.note, people))
            elif vote is not None:
                over = [a for r, a, _ in (state.overruled if state else ()) if r == role]
                note = vote.note + (f" (overrules {', '.join(over)}'s refusal)" if over else "")
                rows.append(RoleRow(role, "approves", "✓ approved", vote.actor, vote.at, note.strip(), people))
            else:
                rows.append(RoleRow(role, "approves", "pending", "", None, "", people))
        elif role in t.deciders:
            part = "decides or approves" if role in t.approvers and len(t.deciders) > 1 else deciding
            rows.append(RoleRow(role, part, "decides" if decided_role is None else "—", "", None, "", people))
        else:
            rows.append(RoleRow(role, "—", "not needed", "", None, "", people))
    return tuple(rows)


def _dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def _record_row(r: RollbackRecord) -> RecordRow:
    d = r.rollback_details or {}
    if _DECISION_MARK in d:
        what = "decision"
    elif d.get("rung") in ("ignore", "drop"):
        what = d["rung"]
    elif r.rollback_type in ("full", "auto", "manual") and r.attempts:
        what = "drop"
    else:
        what = "executor"
    attempts = tuple(AttemptRow(int(a.get("n", i + 1)), str(a.get("at", ""))[11:19], a.get("action", ""),
                                bool(a.get("sent")), bool(a.get("ok")), a.get("kind", "") or "",
                                a.get("error", "") or a.get("conflict", "") or "",
                                "index gone" if a.get("index_present") is False else "")
                     for i, a in enumerate(r.attempts or []))
    status = r.rollback_status
    if what == "ignore" and d.get("undone_at"):
        status = "undone"
    return RecordRow(r.id, what, status, r.rollback_type, r.trigger_reason or "", r.rollback_started_at,
                     r.rollback_completed_at, r.rollback_error or "", attempts)


def _metrics(metrics: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for k, v in metrics.items():
        if isinstance(v, float):
            out.append((k, f"{v:.4g}"))
        elif isinstance(v, (int, str, bool)) or v is None:
            out.append((k, str(v)))
    return tuple(out[:8])


def rollback_view(store: Store, plan: Plan, run_id: str) -> RollbackView:
    """Everything the Rollback screen shows, read from the store (no target I/O)."""
    run = store.get_run(plan.tenant, run_id)
    if run is None:
        raise LookupError(f"run {run_id} not found for tenant {plan.tenant}")
    now = store.now()
    records = store.rollback_records(run.tenant_id, run.id)
    decision, state = _state_of(store, run, records)
    d = (decision.rollback_details or {}) if decision else {}
    prepared = _prepared_record(records)
    suggested = None
    if decision is None and prepared is not None:
        suggested = suggest_trigger(prepared.trigger_reason or "")
    trigger = d.get("trigger")
    point = store.rollback_point(run.tenant_id, run.id)
    rung1 = _active_ignore(records)
    drops = [r for r in records if _record_row(r).what == "drop"]
    done = next((r for r in reversed(drops) if r.rollback_status == "completed"), None)
    failed = drops[-1] if drops and drops[-1].rollback_status == "failed" and done is None else None
    ladder = []
    for r in (point.ladder if point else None) or []:
        if r.get("rung") == "ignore":
            flavour = "mariadb" if "IGNORED" in r.get("sql", "") else "mysql"
            ladder.append(RungRow("ignore", "1 · ignore (instant, reversible)", True, r["sql"],
                                  sql.ignored_index_query(run.schema_name, run.table_name, run.index_name, flavour),
                                  r.get("undo_sql", ""),
                                  "applied" if rung1 else ("superseded by the DROP" if done else "not applied")))
        elif r.get("rung") == "drop":
            ladder.append(RungRow("drop", f"{len(ladder) + 1} · DROP INDEX (not reversible)", False, r["sql"],
                                  r.get("verify_sql", ""), "", "done" if done else "failed" if failed else "not run"))
    if not ladder:  # no rollback point: the drop is still the runbook's R2
        ladder.append(RungRow("drop", "1 · DROP INDEX (not reversible)", False,
                              sql.drop_index(run.schema_name, run.table_name, run.index_name),
                              sql.show_index_query(run.schema_name, run.table_name, run.index_name), "",
                              "done" if done else "failed" if failed else "not run"))
    obs = (done.rollback_details or {}).get("observation", {}) if done else {}
    until = _dt(obs.get("until"))
    observed = store.audit_entries(run.tenant_id, run.id, "post_rollback_observation_completed")
    announced = store.audit_entries(run.tenant_id, run.id, "rollback_announced") + [
        e for e in store.audit_entries(run.tenant_id, run.id, "webhook_posted")
        if (e.details or {}).get("kind") == "rollback_complete"]  # R5 pushed (engine/flows/notify.py)
    escalation = (f"L4 — rollback failed: {failed.rollback_error or 'see the attempts'}; the index is still "
                  "there" if failed else None)
    t = TRIGGER_BY_KEY.get(trigger or suggested or "")
    unstaffed = tuple(r for r in (state.required if state else (t.required(None) if t else ()))
                      if not _people(plan, r))

    kept = _kept(decision)
    phase = flow_phase(index_created_by_run=run.index_created_by_run, run_status=run.status, state=state,
                       kept=kept is not None, rung1_applied=rung1 is not None, drop_failed=failed is not None)
    steps_forward = next_steps(phase, trigger or suggested, state)
    if run.status == "rolled_back":
        if observed:
            ok = (observed[-1].details or {}).get("ok")
            status, level = (f"ROLLED BACK — post-rollback observation {'OK' if ok else 'raised alerts'}",
                             "ok" if ok else "error")
        else:
            status, level = (f"ROLLED BACK — index dropped; observing until {wall(until, plan.off_peak.utc_offset)} (R4)" if until
                             else "ROLLED BACK — index dropped", "ok")
    elif kept is not None:
        status, level = (f"KEPT — index {run.index_name} kept by {kept.get('by')}: {kept.get('reason')}", "warning")
    elif phase == "refused" and state is not None:
        notes = {v.actor: v.note for v in state.votes if v.decision == "refuse"}
        status, level = ("BLOCKED — refused by " + "; ".join(f"{a} ({r}): {notes.get(a) or 'no reason given'}"
                                                     for r, a in state.refused), "error")
    elif escalation:
        status, level = f"ROLLBACK FAILED — escalation {escalation}; retry (x) or intervene by hand", "error"
    elif not run.index_created_by_run:
        status, level = (f"NOTHING TO ROLL BACK — run {run.id[:8]} did not create index {run.index_name} "
                         "(TC-05)", "warning")
    elif state is None:
        hint = f"; suggested trigger: {suggested} ({prepared.trigger_reason[:60]})" if suggested and prepared else ""
        status, level = f"AWAITING DECISION — pick the trigger and decide (d){hint}", "warning"
    elif not state.complete:
        missing = _who(plan, state.missing) if state.missing else "a person other than the requester"
        status, level = f"AWAITING APPROVALS — still needed: {missing}", "warning"
        requester = state.decision_by[1].split("@")[0] if state.decision_by else None
        alone = [r for r in state.missing if _people(plan, r)
                 and all((p.unix_user or p.name) == requester for p in plan.people if r in p.roles)]
        if alone:  # e.g. a one-person drill: say it now, not when the approval is refused
            status += (f" — only the requester ({requester}) holds {', '.join(alone)}, and the requester cannot "
                       "approve their own rollback: add another person to the plan's [[people]]")
    elif rung1 is not None:
        status, level = ("RUNG 1 APPLIED — index ignored; observe, then drop (x) or undo (u)", "warning")
    else:
        status, level = ("APPROVED — the DBA may execute rung 1 ignore (i) or rung 2 DROP INDEX (x)", "ok")

    decided_at = _dt(d.get("decided_at"))
    steps = (
        Step("R1", "decided", decision is not None,
             f"{trigger} · {d.get('decided_by')} ({d.get('decided_role')}) {wall(decided_at, plan.off_peak.utc_offset, zone=False)[:5]}"
             if decision is not None and decided_at else "awaiting the decision"),
        Step("R2", "DROP + verify", done is not None,
             f"{wall(done.rollback_completed_at, plan.off_peak.utc_offset, zone=False)}" if done and done.rollback_completed_at else
             ("approved" if state and state.complete else "awaiting approvals")),
        Step("R3", "rolled_back", run.status == "rolled_back",
             "" if run.status == "rolled_back" else f"run is {run.status}"),
        Step("R4", f"{plan.profile().post_rollback_minutes:.0f}-min observation", bool(observed),
             ("ok" if (observed[-1].details or {}).get("ok") else "alerts") if observed else
             (f"until {wall(until, plan.off_peak.utc_offset, zone=False)[:5]}" if until else "after R3")),
        Step("R5", "announced", bool(announced), "" if announced else "after R4"),
    )
    return RollbackView(
        run_id=run.id, table=f"{run.schema_name}.{run.table_name}", index=run.index_name,
        columns=_cols(_expected_columns(run)), run_status=run.status, fail_reason=run.fail_reason,
        index_created_by_run=run.index_created_by_run, as_of=now, status=status, level=level,
        suggested_trigger=suggested, trigger=trigger,
        decided_by=state.decision_by if state else None, decided_at=decided_at, reason=d.get("reason", ""),
        metrics=_metrics(d.get("metrics_at_decision") or {}), state=state,
        roles=role_rows(plan, trigger or suggested, state), unstaffed=unstaffed, ladder=tuple(ladder),
        point_captured_at=point.captured_at if point else None,
        records=tuple(_record_row(r) for r in records), steps=steps, escalation=escalation,
        observation_until=until, ignored=rung1 is not None,
        drop_sql=next((r.sql for r in ladder if r.rung == "drop"), ""),
        phase=phase, next_steps=steps_forward, next_line=next_line(phase, steps_forward), kept=kept,
        eta=eta_for_run(store, plan, run.id).text)


def rollback_candidate(store: Store, plan: Plan) -> ExecutionRun | None:
    """The run the Rollback screen opens on: the latest whose own index may still be in place."""
    for run in store.find_runs(plan.tenant, ("running", "completed", "failed", "cancelled"), limit=20):
        if run.index_created_by_run:
            return run
    return None


def refresh(store: Store, plan: Plan, target: Target | None, run_id: str,
            clock: Clock | None = None) -> tuple[RollbackView, Inspection | None]:
    """The view and, when a target is given (the driving console), a fresh inspection: one call
    for the App's worker. A joined console passes no target and does not poll the server."""
    view = rollback_view(store, plan, run_id)
    if target is None:
        return view, None
    run = store.get_run(plan.tenant, run_id)
    assert run is not None
    return view, inspect(target, run, store.rollback_point(plan.tenant, run_id), clock)


# --- a rung while it runs: its statement and the table's metadata-lock queue ------------------------

ROLLBACK_STATEMENT_TAG = "/* canary-console:rollback */"  # what the rungs' ALTERs carry (engine.adapters.sql)
RUNG_WORDS = {"ignore": "rung 1: IGNORE the index", "undo": "rung 1 undone: the index back in use",
              "drop": "rung 2: DROP INDEX"}


@dataclass(frozen=True)
class RungProgress:
    """One look at a running rung (the Rollback screen shows it once a second): its statement on the
    server, and the metadata-lock queue on the table — who holds, who waits, for how long — from
    the same guard the execution step uses (``TargetSession.metadata_locks``)."""

    rung: str
    elapsed_s: float
    thread_id: int | None = None  # the rung's statement in the processlist (None: not seen there)
    statement_s: float | None = None
    stage: str = ""
    fraction: float | None = None
    holders: tuple[dict[str, Any], ...] = ()
    waiters: tuple[dict[str, Any], ...] = ()
    note: str = ""


def rung_progress(session: Any, schema: str, table: str, rung: str, elapsed_s: float) -> RungProgress:
    """Read the running rung's statement, its stage and the table's metadata locks (on a session of
    the caller's own: a worker's, never the rung's)."""
    from engine.adapters.target import alter_stage

    mine = next((r for r in session.active_statements() if ROLLBACK_STATEMENT_TAG in (r.get("info") or "")), None)
    thread_id = int(mine["id"]) if mine else None
    stage = alter_stage(session, thread_id) if thread_id is not None else None
    mdl = session.metadata_locks(schema, table)
    return RungProgress(rung, elapsed_s, thread_id, float(mine["time"] or 0) if mine else None,
                        stage.stage if stage else "", stage.fraction if stage else None,
                        tuple(mdl.holders), tuple(mdl.waiters), mdl.note)


def _lock_row(kind: str, r: dict[str, Any]) -> str:
    what = " ".join(str(r.get(k) or "") for k in ("lock_type", "lock_duration")).strip()
    info = clean_text(r.get("info") or r.get("state") or "", 60).text
    return (f"  {kind:<5} thread {r.get('thread_id')}" + (f"  {what}" if what else "")
            + f"  {int(r.get('time') or 0)} s" + (f"  {info}" if info else ""))


def rung_lines(p: RungProgress, schema: str, table: str, most: int = 4) -> list[str]:
    """The running rung as lines for the screen: what runs, for how long, how far; then the queue."""
    head = f"▶ {RUNG_WORDS.get(p.rung, p.rung)} — running {p.elapsed_s:.0f} s"
    if p.thread_id is not None:
        head += f"; server thread {p.thread_id}, {p.statement_s or 0:.0f} s"
        if p.stage:
            head += f", {p.stage}" + (f" {p.fraction:.0%}" if p.fraction is not None else "")
    elif p.elapsed_s >= 1:
        head += "; its statement is not in the processlist (done, or verifying)"
    lines = [head]
    queue = f"metadata locks on {schema}.{table}: {len(p.holders)} hold, {len(p.waiters)} wait"
    if p.waiters:
        longest = max(int(w.get("time") or 0) for w in p.waiters)
        queue += f" (longest {longest} s)"
    lines.append(queue + (f" — {p.note}" if p.note else ""))
    lines += [_lock_row("holds", r) for r in p.holders[:most]]
    lines += [_lock_row("waits", r) for r in p.waiters[:most]]
    hidden = max(0, len(p.holders) - most) + max(0, len(p.waiters) - most)
    if hidden:
        lines.append(f"  … {hidden} more")
    return lines
