"""The one role check every flow function makes (docs/roles.md, docs/architecture.md): the roles come
from the one action → roles table (engine/domain/roles.py), never from the caller; a refusal is
written to the audit trail as ``<action>_refused`` and said in the same words whichever front end
asked — the console, the CLI or the HTTP API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.domain.roles import ROLES, may, needed, role_words

# What each action is, as a refusal says it ("<what> needs the DBA role; …"): one sentence whichever
# front end asked. A row for every action of the table (tests/test_one_command_layer.py).
WHAT = {
    "begin_prechecks": "beginning the prechecks (creating the run)",
    "kill_switch_test": "the kill-switch test (it turns the switch off again)",
    "self_test": "the self-test",
    "record_test": "recording a test result by hand",
    "acknowledge_self_test": "acknowledging a failed P1 self-test case",
    "scratch_test": "the scratch-table rollback test",
    "confirm_rollback": "confirming the prepared rollback statement",
    "sign_off": "a pre-check sign-off",
    "size_gate_check": "the size gate",
    "size_gate_approval": "approving a WARNING-band table",
    "execute": "executing the run (its ALTER)",
    "auto_pause_approval": "lifting the AUTO-PAUSE",
    "inconclusive_decision": "recording the team's decision",
    "kill_switch_activate": "activating the kill switch",
    "kill_switch_deactivate": "deactivating the kill switch",
    "kill_switch_global": "activating the global kill switch",
    "execution_create": "creating an execution run",
    "execution_claim": "claiming a run",
    "execution_status": "changing a run's status",
    "rollback_record": "recording a rollback",
    "audit_read": "reading the audit trail",
    "dry_run": "a dry run",
    "rollback_retrigger": "a new rollback trigger",
    "rollback_keep_index": "keeping the index after a refused rollback",
    "rollback_execution": "the rollback's rungs",
    "audit_report": "reporting an audit entry",
    "lesson_record": "recording a lesson",
}


# The rollback's steps after a refusal say whose step it is, as the rollback's own refusals do
# (docs/rollback.md): "<SAID> ; <actor> is …" instead of "<WHAT> needs the … role; <actor> is …".
SAID = {
    "rollback_retrigger": "a new trigger is the {roles}'s step (docs/rollback.md)",
    "rollback_keep_index": "keeping the index is the {roles}'s call (docs/rollback.md)",
    "rollback_execution": "the rollback's rungs (ignore, its undo, DROP INDEX) are the {roles}'s step (runbook 6.1, R2)",
}


class RoleRefused(PermissionError):
    """A person whose roles the table does not give the action (the CLI: exit 3; the API: 403)."""

    def __init__(self, action: str, message: str):
        super().__init__(message)
        self.action = action


def refusal_text(action: str, actor: str, roles: Iterable[str], ask: str | None = None) -> str | None:
    """None when ``roles`` may do ``action``; else the sentence every front end says (pure: the
    console says it at once, before the audit entry is written on a worker). ``ask``: who holds the
    role, when the caller knows the plan's people ("— ask the canary lead (Somchai)")."""
    held = sorted(set(roles))
    if may(action, held):
        return None
    mine = " and ".join(role_words([r]) for r in ROLES if r in held) or "without a role in this plan"
    head = (SAID[action].format(roles=role_words(needed(action))) if action in SAID
            else f"{WHAT[action]} needs the {role_words(needed(action))} role")
    return f"{head}; {actor} is {mine}" + (f" — ask {ask}" if ask else "")


def refused_as(action: str) -> str:
    """The audit action of a refusal."""
    needed(action)  # KeyError for an action the table does not name
    return f"{action}_refused"


def refusal(store: Any, tenant: str, actor: str, roles: Iterable[str], action: str,
            run_id: str | None = None, ask: str | None = None, **details: Any) -> str | None:
    """None when ``roles`` may do ``action``; else the refusal, audited as ``<action>_refused`` (with
    the roles needed and held, and the sentence as its ``reason``), and its sentence."""
    held = sorted(set(roles))
    text = refusal_text(action, actor, held, ask)
    if text is not None:
        store.audit(tenant, actor, refused_as(action), run_id,
                    dict(details, needed=sorted(needed(action)), roles=held, reason=text))
    return text


def check(store: Any, tenant: str, actor: str, roles: Iterable[str], action: str,
          run_id: str | None = None, **details: Any) -> None:
    """``refusal`` that raises ``RoleRefused`` (a PermissionError)."""
    text = refusal(store, tenant, actor, roles, action, run_id, **details)
    if text is not None:
        raise RoleRefused(action, text)


# --- the HTTP API's access refusals (docs/api.md): who the caller is, which tenant it may see ------------

def auth_failed(store: Any, tenant: str, details: dict[str, Any]) -> None:
    """A request without a known token: audited as ``auth_failed`` (the token itself never stored)."""
    store.audit(tenant, "anonymous", "auth_failed", None, details)


def tenant_refused(store: Any, tenant: str, actor: str, run_id: str | None, details: dict[str, Any]) -> None:
    """Another tenant's object asked for: audited as ``tenant_access_refused`` in **that** tenant's trail
    (its people see the attempt)."""
    store.audit(tenant, actor, "tenant_access_refused", run_id, details)
