"""Who may do what: the one action → roles table (docs/roles.md).

Every front end (the console, the CLI, the HTTP API) asks ``may`` / ``needed`` here; nothing
else holds a copy of these sets. The rollback's per-trigger approval matrix lives with the
rollback flow (it depends on the trigger), and is the only other place roles decide anything.
"""

from __future__ import annotations

from collections.abc import Iterable

ROLES = ("canary_lead", "dba", "sre", "developer")
EVERYONE = frozenset(ROLES)

ACTION_ROLES: dict[str, frozenset[str]] = {
    "begin_prechecks": frozenset({"canary_lead"}),          # create the run
    "kill_switch_test": frozenset({"canary_lead", "dba"}),  # the test turns the switch off again
    "self_test": EVERYONE,
    "record_test": frozenset({"canary_lead", "dba"}),
    "acknowledge_self_test": frozenset({"canary_lead", "dba"}),  # a failed P1 case: each of them, with a reason
    "scratch_test": frozenset({"dba"}),
    "confirm_rollback": frozenset({"dba"}),                 # the prepared DROP INDEX
    "sign_off": frozenset({"canary_lead", "dba", "sre"}),   # each for their own role
    "size_gate_check": frozenset({"canary_lead", "dba"}),
    "size_gate_approval": frozenset({"dba"}),               # a WARNING-band table
    "execute": frozenset({"canary_lead", "dba"}),
    "auto_pause_approval": frozenset({"canary_lead"}),      # the tech lead reviews an AUTO-PAUSE
    "inconclusive_decision": frozenset({"canary_lead"}),    # keep or remove on INCONCLUSIVE
    "kill_switch_activate": EVERYONE,                       # anyone, no confirmation
    "kill_switch_deactivate": frozenset({"canary_lead", "dba"}),
    "kill_switch_global": EVERYONE,                         # activation of the global scope
    "execution_create": frozenset({"canary_lead", "dba"}),
    "execution_claim": frozenset({"canary_lead", "dba"}),
    "execution_status": frozenset({"canary_lead", "dba"}),  # a worker reports its run's progress
    "rollback_record": frozenset({"canary_lead", "dba"}),   # a worker records a rollback it ran
    "audit_read": EVERYONE,
    "dry_run": EVERYONE,                                    # read-only: anyone the plan names (docs/dry-run.md)
    # The rollback's way forward after a refusal (docs/rollback.md): the canary lead owns the run.
    "rollback_retrigger": frozenset({"canary_lead"}),       # close the decision; a new trigger is decided
    "rollback_keep_index": frozenset({"canary_lead"}),      # a refused rollback ends: the index stays
    "rollback_execution": frozenset({"dba"}),               # runbook 6.1: the DBA runs the ladder (and its undo)
    "audit_report": EVERYONE,                               # an external tool's entry, kept as reported.*
    "lesson_record": EVERYONE,                              # a row of the lessons-learned table (runbook 8.3)
}

# Actions nobody is refused, whatever roles they hold — a person the plan does not name included:
# activating the kill switch is the war room's stop button (docs/kill-switch.md).
OPEN_ACTIONS = frozenset({"kill_switch_activate", "kill_switch_global"})

AUTO_PAUSE = "auto_pause"  # the approval kind that lifts an AUTO-PAUSE ("auto_pause_approval" above)

_WORDS = {"canary_lead": "canary lead", "dba": "DBA", "sre": "SRE", "developer": "developer"}
TITLES = {"canary_lead": "Canary Lead", "dba": "DBA", "sre": "SRE", "developer": "Developer"}  # as a heading reads


def needed(action: str) -> frozenset[str]:
    """The roles that may do ``action`` (KeyError for an action the table does not name: a typo
    must not turn into "nobody may" or "everybody may")."""
    return ACTION_ROLES[action]


def may(action: str, roles: Iterable[str]) -> bool:
    allowed = needed(action)  # KeyError for an unknown action, open or not
    return action in OPEN_ACTIONS or bool(set(roles) & allowed)


def roles_and(roles: Iterable[str], none: str = "no role") -> str:
    """"canary lead, DBA and SRE": every one of these roles (the ones a person holds, the ones
    present), as a person reads them, in the table's order."""
    held = set(roles)
    ordered = [_WORDS.get(r, r) for r in ROLES if r in held] + sorted(r for r in held if r not in ROLES)
    if len(ordered) <= 1:
        return "".join(ordered) or none
    return ", ".join(ordered[:-1]) + " and " + ordered[-1]


def in_role(actor: str, role: str) -> str:
    """"somchai@jump (canary lead)": a person and the role they acted in, as a person reads it."""
    return f"{actor} ({_WORDS.get(role, role)})"


def role_words(roles: Iterable[str]) -> str:
    """"canary lead or DBA": roles as a person reads them, in the table's order."""
    ordered = [_WORDS.get(r, r) for r in ROLES if r in set(roles)]
    if len(ordered) <= 1:
        return "".join(ordered) or "nobody"
    return ", ".join(ordered[:-1]) + " or " + ordered[-1]
