"""``canary-console rehearse``: the drill against a private primary + replica (docs/rehearsal.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from console.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    QUIET_EVENTS,
    CliError,
    _backend,
    _me,
)
from engine.adapters.identity import current_identity, worker_id
from engine.domain.plan import load_plan


def cmd_rehearse(args: argparse.Namespace) -> int:
    """The drill: private primary + replica, a loaded table, a workload, the runbook's engine.

    The console opens first (the plan is written before anything slow starts) and brings the
    sandbox up behind a screen of progress bars; headless, each step and event is a line."""
    from console.headless import Output, console_possible
    from engine.drill import rehearsal, selftest

    ident = current_identity()
    if not 1_000 <= args.rows <= 20_000_000:
        raise CliError("--rows must be between 1000 and 20000000")
    if not 1 <= args.speed <= 600:
        raise CliError("--speed must be between 1 (real time) and 600")
    unknown = [c for c in (args.self_test_cases or "").upper().replace(" ", "").split(",") if c and c not in selftest.CASES]
    if unknown:
        raise CliError(f"unknown self-test case(s) {', '.join(unknown)}: choose from {', '.join(selftest.CASES)}")
    if args.json:
        args.headless = True
    if not args.headless:
        why = console_possible()
        if why is not None:
            print(f"[rehearse] {why}: walking the runbook headless (as --headless); give the drill a terminal "
                  "for the console", file=sys.stderr, flush=True)
            args.headless = True
    out = Output(json_lines=args.json)
    webhook = args.webhook
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise CliError("--webhook must be an http:// or https:// URL (a Slack-compatible test channel)")
    try:
        prepared = rehearsal.prepare(args.rows, args.reset, ident.user, out.say, speed=args.speed,
                                     performance_schema=not args.performance_schema_off, control=args.control,
                                     webhook=webhook)
    except rehearsal.DrillBusy as busy:
        raise CliError(str(busy), EXIT_REFUSED) from None
    cases = [c.strip().upper() for c in args.self_test_cases.split(",")] if args.self_test_cases else None
    self_test = not args.skip_self_test and not prepared.past_prechecks
    if not args.headless:
        return _rehearse_console(args, prepared, cases, self_test, out)
    try:
        prepared.bring_up(out.step)
        return _rehearse_headless(args, prepared, cases, self_test, out, ident)
    finally:
        out.say("stopping the workload and the sandbox servers")
        prepared.stop()


def _rehearse_console(args: argparse.Namespace, prepared: Any, cases: list[str] | None, self_test: bool,
                      out: Any) -> int:
    """The console at once, the drill prepared behind it (console/rehearse_app.py)."""
    from console.rehearse_app import RehearsalApp
    from engine.adapters.opening import OpeningStore
    from engine.domain.clock import clock_for

    plan = load_plan(prepared.plan_path)
    clock = clock_for(plan)
    speed = float(getattr(clock, "speed", 1.0))
    if prepared.resumed_run and speed != args.speed:
        out.say(f"the resumed drill keeps its clock: TIME ×{speed:g} (--speed applies to a new drill)")
    app = RehearsalApp(plan, OpeningStore(prepared.store_url, clock), prepared, clock=clock, self_test=self_test,
                       cases=cases)
    try:
        app.run()
    finally:
        # The servers are stopped whatever the printing meets: after SIGHUP the terminal is gone
        # and a line written to it raises (EIO), which must not leave the sandbox running.
        try:
            if not app.stop_preparation(timeout=90):
                print("[rehearse] the preparation did not stop in 90 s: its servers are stopped as the process "
                      "exits", file=sys.stderr)
            for line in app.transcript:  # what the preparation did, kept on the terminal after the console
                out.say(line)
            out.say(f"the drill's plan: {prepared.plan_path}")
            out.say("stopping the workload and the sandbox servers")
        finally:
            prepared.stop()
    if app.failed:
        print(f"[rehearse] {app.failed}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if app.return_code else EXIT_OK


def _rehearse_headless(args: argparse.Namespace, prepared: Any, cases: list[str] | None, self_test: bool,
                       out: Any, ident: Any) -> int:
    from engine.adapters.store import Store, redact_url
    from engine.adapters.target import Target
    from engine.domain.clock import clock_for, drill_mark, t_in_window
    from engine.domain.sizegate import gate, sampling_interval
    from engine.domain.thresholds import tightened_note
    from engine.drill import rehearsal
    from engine.flows import step_actions
    from engine.flows.executor import Executor
    from engine.flows.prechecks import record_gate, run_profile

    drill = prepared.drill
    plan = load_plan(drill.plan_path)
    # One compressed clock for everything the drill records, so T+, the audit trail and the
    # samples agree (the store notes the compression with the monitoring window). The plan
    # anchors it: a second console, or this drill restarted, reads the same time.
    clock = clock_for(plan)
    speed = float(getattr(clock, "speed", 1.0))
    if drill.resumed_run and speed != args.speed:
        out.say(f"the resumed drill keeps its clock: TIME ×{speed:g} (--speed applies to a new drill)")
    store = Store(drill.store_url, clock=clock)
    out.say(f"plan written to {drill.plan_path}")
    out.say(f"store {redact_url(store.url)}; workload running (reads by customer_id, background writes)")
    out.say("kill switch from another terminal: canary-console kill --plan " + str(drill.plan_path))
    out.say(f"a teammate's console (to approve what you may not approve alone): {_me()} run "
            f"{drill.plan_path} --as teammate")
    if self_test:
        rehearsal.self_test(store, plan.tenant, ident.actor, plan.roles_of(ident.user), cases, out.step)
    else:  # the stored results, the ones the prechecks use, a line each (a missing P0 pass said at once)
        past = prepared.past_prechecks
        rehearsal.stored_self_test(store, plan.tenant, "the resumed run is past the prechecks" if past
                                   else "--skip-self-test: the stored results are used", out.step,
                                   None if past else str(drill.plan_path))

    said: set[Any] = set()  # the five-minute marks of the window (and the observation) already said
    first = plan.profile().checkpoints[0]

    def on_event(name: str, data: dict[str, Any]) -> None:
        if name == "monitor_tick":
            mark = int(data["elapsed_s"] // 300)  # once per five (drill-clock) minutes, however fast the ticks
            if mark not in said:
                said.add(mark)
                # The run's one clock (engine.domain.clock): the window opens at T+15, checkpoints T+15…T+75.
                out.tick(f"monitoring {t_in_window(first, 300 * mark)} (window {5 * mark}/60 min"
                         f"{', ' + drill_mark(speed) if speed > 1 else ''}), "
                         f"{data['concurrent']} concurrent warning(s)", elapsed_s=data["elapsed_s"],
                         concurrent=data["concurrent"])
        elif name == "observation_tick":
            mark = int(data["elapsed_s"] // 300)
            if ("observation", mark) not in said:
                said.add(("observation", mark))
                out.tick(f"post-success observation {5 * mark} min (drill clock ×{speed:g})",
                         elapsed_s=data["elapsed_s"], phase="observation")
        elif name not in QUIET_EVENTS:
            out.event(name, data)

    with Target(plan.connection).session("size-gate") as s:
        info = s.table_info(plan.schema, plan.change.table)
        decision = gate(info.estimated_rows if info else 0)
        if decision.needs_exact_count:
            out.say(f"size gate: {decision.rule}")
            decision = gate(s.exact_count(plan.schema, plan.change.table) or 0, exact=True)
    every, real = sampling_interval(decision.band, speed), sampling_interval(decision.band)
    out.say(f"size gate {decision.band}: {decision.rule}; sampling every {every:g} s"
            + (f" ({real:g} s on a real clock; the drill's {speed:g}× clock allows no faster)" if every > real else "")
            + (f" (data {info.data_mb} MB, index {info.index_mb} MB)" if info else ""))
    if decision.band == "BLOCK":
        from engine.flows.step_actions import size_gate_blocked

        size_gate_blocked(store, plan, None, decision, ident.actor)
        out.say("BLOCK: no DDL on this table in this phase; the drill stops here")
        return EXIT_FAILED

    backend = _backend(plan, store)
    run = (store.get_run(plan.tenant, drill.resumed_run) if drill.resumed_run else
           Executor(plan, store, backend, Target(plan.connection), ident.actor, worker_id(ident), clock=clock).create_run())
    record_gate(store, plan, run.id, decision, ident.actor, source="headless")
    profile = run_profile(plan, store, run.id)
    if profile.tightened_rows is not None:
        out.say(tightened_note(profile))
    interval = sampling_interval(decision.band, speed)
    out.say(f"run {run.id}: baseline {plan.executor.baseline_window_seconds / 60:g} min, ALTER, cool-down "
            f"{plan.executor.cooldown_seconds / 60:g} min, 60-minute monitoring window — TIME COMPRESSED "
            f"{speed:g}× (rehearsal only): about {(plan.executor.baseline_window_seconds + plan.executor.cooldown_seconds + 3600) / speed / 60:.1f} real minutes"
            + (f" (up to {plan.executor.baseline_extend_max_seconds / speed / 60:.1f} more if the baseline is too short "
               "for its noise)" if plan.executor.baseline_extend_max_seconds else ""))
    if run.status == "scheduled":  # the checks the console runs, and what blocks the run (docs/prechecks.md)
        from engine.flows.prechecks import headless_gate
        from engine.flows.presample import presampling

        # The baseline from the run's creation on: sampled while the prechecks take their time.
        with presampling(plan, store, backend, run.id, ident.actor, clock, interval) as sampler:
            blockers = headless_gate(plan, store, backend, Target(plan.connection), run.id, ident.actor, out.say)
        out.say(f"baseline: sampled through the prechecks ({sampler.ticks} tick{'' if sampler.ticks == 1 else 's'})" if not sampler.error
                else sampler.error)
        if blockers:
            for b in blockers:
                out.say(f"BLOCKED: {b}")
            ack = (f"acknowledge a failed P1 case with `canary-console acknowledge {run.id} --plan "
                   f"{drill.plan_path} --case TC-.. --reason …` (as the canary lead, then as the DBA); "
                   if any("(P1)" in b for b in blockers) else "")
            out.say(f"run {run.id} stays scheduled: {ack}fix what is named above, then run the drill again "
                    "(without --reset: it takes this run up)")
            return EXIT_FAILED
    # The execute action (the drill's person is its canary lead and DBA), as the console's g runs it.
    result = step_actions.execute(plan, store, backend, Target(plan.connection), run.id, ident.actor,
                                  plan.roles_of(ident.user), worker_id(ident), clock, interval, on_event,
                                  take_over=bool(drill.resumed_run))
    out.outcome(f"outcome: {result.status}{' (' + result.fail_reason + ')' if result.fail_reason else ''} — "
                f"{result.message}", run=run.id, status=result.status, fail_reason=result.fail_reason)
    for d in store.decisions(plan.tenant, run.id):
        for c in (d.evidence or {}).get("criteria", []):
            mark = {True: "met", False: "NOT MET", None: "unknown"}[c["met"]] if c["applicable"] else "n/a"
            out.criterion(f"  [{mark:>7}] {c['name']}: {c['value']} (needs {c['threshold']}) {c.get('interval') or ''}",
                          c)
    for d in store.decisions(plan.tenant, run.id)[-1:]:
        check = (d.evidence or {}).get("verification") or {}
        if check:  # engine/flows/digest_check.py: the digests and the sample queries
            out.say(f"  verification: {check.get('summary')}; {check.get('index_note')}")
            for w in check.get("warnings") or []:
                out.say(f"  verification warning: {w}")
    out.say(f"replay it: canary-console replay {run.id} --plan {drill.plan_path}")
    return EXIT_OK if result.status in ("completed", "cancelled") else EXIT_FAILED
