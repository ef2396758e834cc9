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
    _plan,
    _store,
    _store_url,
    _tenant,
)
from engine.adapters.identity import current_identity, worker_id
from engine.domain.plan import load_plan
from engine.domain.tenancy import GLOBAL_TENANT
from engine.domain.text import for_terminal


def cmd_self_test(args: argparse.Namespace) -> int:
    from engine.adapters.store import redact_url
    from engine.drill import selftest

    plan = _plan(args.plan)
    store = _store(args, plan)
    tenant = _tenant(args, plan, required=False)
    tenant = "default" if tenant == GLOBAL_TENANT else tenant
    cases = [c.strip().upper() for c in args.cases.split(",")] if args.cases else None
    unknown = [c for c in cases or [] if c not in selftest.CASES]
    if unknown:
        raise CliError(f"unknown case(s) {', '.join(unknown)}: choose from {', '.join(selftest.CASES)}")
    ident = current_identity()
    print(f"self-test against a private sandbox MariaDB; results go to {redact_url(store.url)} (tenant {tenant})")

    def report(result: Any) -> None:
        selftest.record(store, tenant, result, ident.actor)
        mark = "PASS" if result.passed else "FAIL"
        print(f"  {result.case} [{selftest.PRIORITY[result.case]}] {mark}  {selftest.NAMES[result.case]}"
              f"  ({result.duration_ms / 1000:.1f} s) {'' if result.passed else result.summary()}", flush=True)

    results = selftest.run_all(cases, report)
    failed = [r.case for r in results if not r.passed]
    p0_failed = [c for c in failed if selftest.PRIORITY[c] == "P0"]
    print(f"{len(results) - len(failed)}/{len(results)} passed" + (f"; P0 failed: {', '.join(p0_failed)} — "
          "the canary cannot go" if p0_failed else ""))
    return EXIT_OK if not failed else EXIT_FAILED


def cmd_execute(args: argparse.Namespace) -> int:
    """Run the executor headless on a plan (a worker without the console)."""
    from engine.adapters.target import Target
    from engine.flows.executor import Executor
    from engine.flows.step_actions import executor_for

    if not 1 <= args.interval <= 60:
        raise CliError("--interval must be between 1 and 60 seconds (the runbook samples every 5 s, 2.5 s "
                       "for a table the size gate warned about)")
    plan = load_plan(args.plan)
    store = _store(args, plan)
    ident = current_identity()
    backend = _backend(plan, store)
    target = Target(plan.connection)
    run_id = args.run or Executor(plan, store, backend, target, ident.actor, worker_id(ident),
                                  clock=store.clock).create_run().id
    print(f"run {run_id}", flush=True)
    # The same 60-minute window as the console's (a run taken over resumes it from the store).
    ex = executor_for(plan, store, backend, target, run_id, ident.actor, worker_id(ident), store.clock, args.interval,
                      lambda name, data: None if name in QUIET_EVENTS | {"monitor_tick"} else
                      print(f"{name} {json.dumps(data, default=str)}", flush=True))
    try:
        out = ex.take_over(run_id) if args.run else ex.execute(run_id)  # a given run may need taking over
    finally:
        ex.monitor.close()
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
