"""The commands on one run: ``approve`` (an AUTO-PAUSE), ``rollback`` (its people steps),
``acknowledge`` (a failed P1 self-test case) and ``lesson`` (runbook 8.3)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from console.commands import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, CliError, _on_run
from engine.domain.roles import role_words
from engine.domain.text import for_terminal


def cmd_approve(args: argparse.Namespace) -> int:
    """Lift an AUTO-PAUSE (≥ 5 concurrent warnings): resume, or roll back. Canary lead only."""
    from engine.flows.monitor import approve_pause

    plan, store, ident, _run = _on_run(args)
    try:
        approve_pause(store, plan.tenant, args.run, args.decision, ident.actor, plan.roles_of(ident.user), args.note)
    except PermissionError as exc:
        raise CliError(f"refused: {exc}. Ask the canary lead.", EXIT_REFUSED) from None
    print(f"AUTO-PAUSE of run {args.run}: {args.decision} approved by {ident.actor}")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    """The manual rollback's people steps (docs/rollback.md), by the same engine functions as the
    console and the API: where the flow is and what may follow, decide, approve, refuse, a new
    trigger, keep the index. The rungs (ignore, DROP) are the DBA's, in the console."""
    from engine.domain import rollback_rules as rules
    from engine.domain.text import for_terminal
    from engine.flows import rollback_flow as flow
    from engine.views import rollback as rollback_views

    plan, store, ident, run = _on_run(args)
    roles = set(plan.roles_of(ident.user))
    if args.role:
        if args.role not in roles:
            raise CliError(f"you ({ident.user}) do not hold {args.role} in this plan; you hold "
                           f"{', '.join(sorted(roles)) or 'no role'}", EXIT_REFUSED)
        roles = {args.role}
    needs_reason = {"decide", "refuse", "retrigger", "keep"}
    if args.action in needs_reason and not args.reason.strip():
        raise CliError(f"rollback {args.action} needs --reason: it goes into the record and the audit trail")
    if args.action in ("approve", "refuse") and not args.role and len(roles) != 1:
        raise CliError(f"say which of your roles you {args.action} for: --role "
                       f"{'|'.join(sorted(roles)) or 'ROLE'}")
    if args.action == "decide" and not args.trigger:
        raise CliError(f"rollback decide needs --trigger: one of {', '.join(rules.TRIGGER_BY_KEY)}")
    if args.action == "status":
        view = rollback_views.rollback_view(store, plan, run.id)
        print(for_terminal(view.status))
        print(for_terminal(view.next_line))
        for step in view.steps:
            print(f"  {step.code} {'✓' if step.done else '·'} {step.label}"
                  + (f": {for_terminal(step.detail)}" if step.detail else ""))
        return EXIT_OK
    role = next(iter(roles), "")
    if args.action == "decide":
        # R1 is pushed to the plan's webhooks by the process that decides (engine/flows/notify.py).
        from engine.flows.notify import Notifier

        def told(o: Any) -> None:
            if not o.ok:
                print(f"WEBHOOK: {o.kind} not posted after {o.attempts} attempt(s): {for_terminal(o.message)}",
                      file=sys.stderr)

        notifier = Notifier(store, plan, run.id, ident.actor, on_result=told)
        out = flow.decide_rollback(store, plan, run, args.trigger, ident.actor, roles, args.reason,
                                   role=args.role, listeners=(notifier.on_rollback_event,))
        if notifier.enabled and not notifier.flush():
            print("WEBHOOK: the rollback announcement is still being posted; see the audit trail", file=sys.stderr)
    elif args.action == "approve":
        out = flow.approve_rollback(store, plan, run, role, ident.actor, roles, args.reason)
    elif args.action == "refuse":
        out = flow.refuse_rollback(store, plan, run, role, ident.actor, roles, args.reason)
    elif args.action == "retrigger":
        out = flow.retrigger_rollback(store, plan, run, ident.actor, roles, args.reason)
    else:
        out = flow.keep_index(store, plan, run, ident.actor, roles, args.reason)
    if out.status == "refused":
        raise CliError(f"refused: {for_terminal(out.message)}", EXIT_REFUSED)
    print(for_terminal(out.message))
    return EXIT_OK if out.ok else EXIT_FAILED


def cmd_acknowledge(args: argparse.Namespace) -> int:
    """Runbook 2.1: acknowledge a failed P1 self-test case with a reason (canary lead and DBA, each)."""
    from engine.flows import selftest_gate

    plan, store, ident, _run = _on_run(args)
    try:
        ack = selftest_gate.acknowledge(store, plan.tenant, args.run, args.case, args.reason, ident.actor,
                                        plan.roles_of(ident.user))
    except PermissionError as exc:
        raise CliError(f"refused: {exc}", EXIT_REFUSED) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    left = [r for r in selftest_gate.ACK_ROLES
            if r not in selftest_gate.acknowledged_by(store.approvals(plan.tenant, args.run, ack.kind), args.case.upper())]
    print(f"{args.case.upper()} acknowledged as {role_words([ack.role])} by {ident.actor}"
          + (f"; still to acknowledge: the {role_words(left)}" if left else "; acknowledged by the canary lead and the DBA"))
    return EXIT_OK


def cmd_lesson(args: argparse.Namespace) -> int:
    """Runbook 8.3: add a row to the run's lessons-learned table (exported with the report)."""
    from engine.flows.step_actions import record_lesson

    plan, store, ident, _run = _on_run(args)
    try:
        lesson = record_lesson(store, plan, args.run, ident.actor, plan.roles_of(ident.user), args.what,
                               args.impact, args.cause, args.action)
    except PermissionError as exc:
        raise CliError(f"refused: {exc}", EXIT_REFUSED) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(for_terminal(f"lesson recorded by {ident.actor}: {lesson.what}"))
    return EXIT_OK
