"""``canary-console self-test``, ``execute``, ``dry-run`` and ``run`` (the console)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from console.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    QUIET_EVENTS,
    CliError,
    _backend,
    _store,
    _store_url,
    resolve_run,
)
from engine.adapters.identity import current_identity, worker_id
from engine.domain.plan import load_plan
from engine.domain.text import for_terminal


def cmd_self_test(args: argparse.Namespace) -> int:
    from engine.adapters.store import redact_url
    from engine.drill import selftest
    from engine.flows import guard

    if not args.plan:  # the results gate a plan's prechecks: the plan says who may store them (docs/roles.md)
        raise CliError("self-test stores its results for a plan's prechecks, and the plan names who may run it "
                       "(everyone in its [[people]], docs/roles.md): give --plan PLAN.toml")
    plan = load_plan(args.plan)
    if args.tenant and args.tenant != plan.tenant:
        raise CliError(f"--tenant {for_terminal(args.tenant)} is not the plan's tenant ({plan.tenant}): the results "
                       "are stored for the plan's tenant; leave --tenant out")
    store = _store(args, plan)
    tenant = plan.tenant
    cases = [c.strip().upper() for c in args.cases.split(",")] if args.cases else None
    unknown = [c for c in cases or [] if c not in selftest.CASES]
    if unknown:
        raise CliError(f"unknown case(s) {', '.join(unknown)}: choose from {', '.join(selftest.CASES)}")
    ident = current_identity()
    roles = sorted(plan.roles_of(ident.user))
    if guard.refusal_text("self_test", ident.actor, roles) is None:  # the function below asks (and audits)
        print(f"self-test against a private sandbox MariaDB; results go to {redact_url(store.url)} (tenant {tenant})")

    def report(result: Any) -> None:
        mark = "PASS" if result.passed else "FAIL"
        print(f"  {result.case} [{selftest.PRIORITY[result.case]}] {mark}  {selftest.NAMES[result.case]}"
              f"  ({result.duration_ms / 1000:.1f} s) {'' if result.passed else result.summary()}", flush=True)

    # The role (everyone the plan names), then the cases, each stored as it finishes; a refusal is
    # audited and exits 3 before a sandbox starts.
    results = selftest.run_for_prechecks(store, tenant, ident.actor, roles, cases, report)
    failed = [r.case for r in results if not r.passed]
    p0_failed = [c for c in failed if selftest.PRIORITY[c] == "P0"]
    print(f"{len(results) - len(failed)}/{len(results)} passed" + (f"; P0 failed: {', '.join(p0_failed)} — "
          "the canary cannot go" if p0_failed else ""))
    return EXIT_OK if not failed else EXIT_FAILED


def cmd_execute(args: argparse.Namespace) -> int:
    """Run the executor headless on a plan (a worker without the console): the ``execute`` action,
    the canary lead or the DBA (``step_actions.execute`` asks; a refusal is audited, exit 3), on a
    run whose prechecks pass the console's step-4 gate (else refused, exit 3, naming what is missing)."""
    from engine.adapters.target import Target
    from engine.flows import step_actions

    if not 1 <= args.interval <= 60:
        raise CliError("--interval must be between 1 and 60 seconds (the runbook samples every 5 s, 2.5 s "
                       "for a table the size gate warned about)")
    plan = load_plan(args.plan)
    store = _store(args, plan)
    ident = current_identity()
    if args.run:
        args.run = resolve_run(store, plan.tenant, args.run).id  # the whole id, or the start the screens show
        print(f"run {args.run}", flush=True)

    def on_event(name: str, data: dict[str, Any]) -> None:
        if name == "run_created":  # the run this command created, once the role was granted
            print(f"run {data['run_id']}", flush=True)
        elif name not in QUIET_EVENTS | {"monitor_tick"}:
            print(f"{name} {json.dumps(data, default=str)}", flush=True)

    # The same 60-minute window as the console's (a given run may need taking over: it resumes from the store).
    # Step 4's gate, the console's rule (step_actions.execution_missing), asked after the role: a run
    # whose prechecks are not walked and signed off is refused (exit 3), saying what is missing.
    try:
        out = step_actions.execute(plan, store, _backend(plan, store), Target(plan.connection), args.run,
                                   ident.actor, sorted(plan.roles_of(ident.user)), worker_id(ident), store.clock,
                                   args.interval, on_event, take_over=bool(args.run), gated=True)
    except step_actions.PrechecksMissing as exc:
        then = (f"canary-console execute {args.plan} --run {args.run}" if args.run else
                f"canary-console execute {args.plan} --run RUN (the run the canary lead began)")
        lines = [for_terminal(f"  - {m}") for m in exc.missing]
        raise CliError("\n".join(["refused: step 4 (execute) is locked until the prechecks are done; still missing:",
                                   *lines, for_terminal(f"The prechecks are walked in the console (canary-console run "
                                                        f"{args.plan}); then {then}")]), EXIT_REFUSED) from None
    print(f"outcome {out.status}{' (' + out.fail_reason + ')' if out.fail_reason else ''}: {out.message}")
    return EXIT_OK if out.status == "completed" else EXIT_FAILED


def cmd_dry_run(args: argparse.Namespace) -> int:
    """Walk the canary read-only against the real target and print the SQL each step would send
    (docs/dry-run.md). Exit 0 when the walk was made (failed checks are printed, they are findings),
    1 when it could not be (the store), 2 for a bad plan, 3 for a person the plan does not name."""
    from engine.flows.dryrun import DryRunRefused, dry_run, lines

    plan = load_plan(args.plan)
    store = _store(args, plan)
    ident = current_identity()
    try:
        result = dry_run(plan, store, _backend(plan, store), ident.actor, sorted(plan.roles_of(ident.user)))
    except DryRunRefused as exc:
        raise CliError(f"refused: {exc}", EXIT_REFUSED) from None
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        for line in lines(result):
            print(for_terminal(line))
    unreachable = next((f for f in result.findings if f.check_id == "env.target" and f.status == "fail"), None)
    if unreachable is not None:  # nothing on the server was checked: an error, not a finding
        print(f"error: the target was not reached: {for_terminal(unreachable.detail)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Open the console on a plan (``--dry-run``: read-only, docs/dry-run.md)."""
    from console.app import CanaryApp
    from engine.adapters.opening import OpeningStore
    from engine.domain.clock import clock_for

    plan = load_plan(args.plan)
    identity = current_identity()
    if args.as_user:
        if not plan.rehearsal:
            raise CliError(f"--as is for rehearsal plans only: identity is the OS user ({identity.user}). Each "
                           "person runs the console in their own session.", EXIT_REFUSED)
        identity = replace(identity, user=args.as_user, played_by=identity.user)
    clock = clock_for(plan)  # a drill's compressed clock, the same in every console on it
    store = OpeningStore(_store_url(args, plan), clock)  # opens while the first screen is drawn
    try:
        app = CanaryApp(plan, store, identity=identity, role=args.role, clock=clock, dry_run=args.dry_run)
    except ValueError as exc:
        raise CliError(f"{exc}. Leave --role out to act in all your roles.") from None
    app.run()
    if app.return_code:
        return EXIT_FAILED  # the console said why (e.g. the store cannot be opened)
    return EXIT_OK
