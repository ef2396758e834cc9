"""Self-test results gate the run (runbook 2.1; docs/prechecks.md#self-test-gate).

P0 cases must pass: ``p0_missing`` names each without a stored passing result (not run counts,
the console's prechecks and the headless drill alike). A failed P1 case (TC-01, TC-06) blocks the prechecks until the canary lead
and the DBA have each acknowledged it with a reason: two approvals of kind ``selftest_ack:<case>``
on the run, each audited by the store. ``missing`` is the rule, pure; ``acknowledge`` is the one
engine function the App and the CLI call (role check, reason, record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.domain.cases import NAMES, PRIORITY
from engine.domain.roles import role_words
from engine.domain.text import clean_text
from engine.flows import guard

if TYPE_CHECKING:
    from engine.adapters.store import Approval, Store

ACK_ROLES = ("canary_lead", "dba")  # each acknowledges, from their own session
ACK_KIND = "selftest_ack:"
REASON_LIMIT = 500


def kind_of(case: str) -> str:
    return ACK_KIND + case


def p0_missing(self_test: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(case, "not run" or its stored status) for each P0 case without a stored passing result: the
    run does not reach execution until each has passed (runbook 2.1)."""
    return [(c, "not run" if c not in self_test else str(self_test[c].status))
            for c, p in sorted(PRIORITY.items()) if p == "P0" and (c not in self_test or self_test[c].status != "pass")]


P0_HOW = ("run the self-test: t on the prechecks screen, `canary-console self-test --plan PLAN.toml`, or a drill "
          "without --skip-self-test")


def failed_p1(self_test: Mapping[str, Any]) -> list[str]:
    """The P1 cases whose latest result is a failure."""
    return [c for c, p in sorted(PRIORITY.items()) if p == "P1" and c in self_test and self_test[c].status == "fail"]


def acknowledged_by(approvals: Sequence[Any], case: str) -> dict[str, Any]:
    """role → the approval that acknowledged ``case`` in that role."""
    return {a.role: a for a in approvals if a.kind == kind_of(case) and a.decision == "approve"}


def missing(self_test: Mapping[str, Any], approvals: Sequence[Any]) -> list[tuple[str, str]]:
    """(what, who) for each failed P1 case some acknowledging role has not acknowledged yet."""
    out = []
    for case in failed_p1(self_test):
        done = acknowledged_by(approvals, case)
        waiting = [r for r in ACK_ROLES if r not in done]
        if waiting:
            out.append((f"{case} (P1) failed — {NAMES[case]}: not acknowledged by the {role_words(waiting)}",
                        f"the {' and the '.join(role_words([r]) for r in waiting)} "
                        f"{'each acknowledge' if len(waiting) > 1 else 'acknowledges'} it with a "
                        "reason (a on the prechecks screen, or `canary-console acknowledge`)"))
    return out


def acknowledge(store: Store, tenant: str, run_id: str, case: str, reason: object, actor: str,
                roles: set[str] | frozenset[str]) -> Approval:
    """Acknowledge a failed P1 case in the first of the actor's acknowledging roles not used yet on
    it. Refusals (role, case, reason) raise PermissionError or ValueError; a role refusal is audited."""
    from engine.adapters.store import Approval

    case = str(case).strip().upper()
    guard.check(store, tenant, actor, roles, "acknowledge_self_test", run_id, case=case)
    if PRIORITY.get(case) != "P1":
        raise ValueError(f"{case or 'the case'} is not a P1 case: acknowledge one of "
                         f"{', '.join(c for c, p in sorted(PRIORITY.items()) if p == 'P1')} (P0 cases must pass)")
    latest = store.latest_prechecks(tenant, "TC-").get(case)
    if latest is None or latest.status != "fail":
        raise ValueError(f"{case} has not failed ({'not run' if latest is None else latest.status}): nothing to acknowledge")
    text = clean_text(reason, REASON_LIMIT).text
    if len(text) < 3:
        raise ValueError("give a reason (why the canary may go with this case failed)")
    done = acknowledged_by(store.approvals(tenant, run_id, kind_of(case)), case)
    mine = [r for r in ACK_ROLES if r in roles and r not in done]
    if not mine:
        raise ValueError(f"{case} is already acknowledged in your role(s): "
                         + ", ".join(f"{role_words([r])} by {done[r].actor}" for r in ACK_ROLES if r in done))
    return store.add_approval(Approval(tenant_id=tenant, execution_run_id=run_id, kind=kind_of(case), role=mine[0],
                                       actor=actor, note=f"{case} failed ({latest.detail[:200]}); acknowledged: {text}",
                                       created_at=store.now()))
