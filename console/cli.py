"""``canary-console``: the command line.

Headless commands drive the same engine as the console: ``status``, ``kill`` / ``unkill``,
``self-test``, ``execute`` and ``audit verify``. No traceback reaches the user: known failures print
what went wrong and the way out; anything unexpected is written to ``cli.log`` in the state directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from console.api_cmd import add_api_parser
from engine.identity import current_identity, worker_id
from engine.paths import state_dir
from engine.plan import Plan, PlanError, load_plan
from engine.tenancy import GLOBAL_TENANT

# The store (sqlmodel, SQLAlchemy) is imported where it is used: ``run`` opens it on a thread while
# the console draws its first screen.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
UNKILL_ROLES = {"canary_lead", "dba"}
QUIET_EVENTS = {"alter_progress", "wait_tick", "baseline_tick"}  # many a second: not for a log


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _me() -> str:
    """How to call this command again (the venv's script when it is not on the PATH)."""
    import shutil

    return "canary-console" if shutil.which("canary-console") else os.path.abspath(sys.argv[0])


def _plan(path: str | None) -> Plan | None:
    return load_plan(path) if path else None


def _store_url(args: argparse.Namespace, plan: Plan | None) -> str | None:
    return getattr(args, "store", None) or (plan.store_url if plan else None)


def _store(args: argparse.Namespace, plan: Plan | None) -> Any:
    from engine.clock import clock_for
    from engine.store import Store

    return Store(_store_url(args, plan), clock=clock_for(plan) if plan is not None else None)


def _tenant(args: argparse.Namespace, plan: Plan | None, required: bool) -> str:
    tenant = getattr(args, "tenant", None) or (plan.tenant if plan else None)
    if tenant is None and required:
        raise CliError("which tenant? give --plan PLAN.toml or --tenant NAME")
    return tenant or GLOBAL_TENANT


def _backend(plan: Plan | None, store: Any) -> Any:
    from engine.killswitch import EmbeddedKillSwitch, backend_for

    return backend_for(plan, store) if plan else EmbeddedKillSwitch(store)


# --- commands -----------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from engine.store import redact_url

    plan = _plan(args.plan)
    store = _store(args, plan)
    tenant = _tenant(args, plan, required=False)
    conn = plan.connection.id if plan else (args.connection or "")
    reading = _backend(plan, store).read(tenant, conn)
    runs = store.find_runs(tenant, limit=5) if tenant != GLOBAL_TENANT else []
    tcs = store.latest_prechecks(tenant, "TC-") if tenant != GLOBAL_TENANT else {}
    if args.json:
        print(json.dumps({
            "store": redact_url(store.url), "tenant": tenant,
            "kill_switch": {"active": reading.active, "scopes": reading.active_scopes(), "error": reading.error,
                            "source": reading.source, "response_ms": round(reading.response_ms, 1)},
            "runs": [{"id": r.id, "status": r.status, "fail_reason": r.fail_reason, "table": r.table_name,
                      "index": r.index_name} for r in runs],
            "self_test": {k: v.status for k, v in sorted(tcs.items())},
        }, indent=2))
        return EXIT_OK
    print(f"store        {redact_url(store.url)}")
    print(f"tenant       {tenant}")
    print(f"kill switch  {reading.describe()}  [{reading.source}, {reading.response_ms:.0f} ms, {reading.latency_level}]")
    if not runs:
        print("runs         none")
    for r in runs:
        extra = f" ({r.fail_reason})" if r.fail_reason else ""
        print(f"run          {r.id}  {r.status}{extra}  {r.schema_name}.{r.table_name} +{r.index_name}")
    if tcs:
        print("self-test    " + "  ".join(f"{k}:{v.status}" for k, v in sorted(tcs.items())))
    return EXIT_OK


def cmd_kill(args: argparse.Namespace) -> int:
    """Activation: instant, no confirmation; then the ALTERs in flight are killed (SPEC §4)."""
    from engine.enforce import enforce_kill_switch

    plan = _plan(args.plan)
    store = _store(args, plan)
    tenant = _tenant(args, plan, required=args.scope != "global")
    conn = _connection(args, plan)
    ident = current_identity()
    backend = _backend(plan, store)
    backend.set(tenant, args.scope, True, ident.actor, args.reason or "", conn)
    print(f"kill switch ACTIVE ({args.scope}{' ' + conn if conn else ''}) by {ident.actor}")
    if tenant != GLOBAL_TENANT:
        for e in enforce_kill_switch(store, backend, tenant, ident.actor, worker_id(ident),
                                     take_over=not args.no_take_over):
            if e.killed_thread:
                print(f"killed the ALTER of run {e.run_id} (server thread {e.killed_thread})")
            if e.finished:
                print(f"run {e.run_id}: {e.finished}")
            for err in e.errors:
                print(f"warning: {err}", file=sys.stderr)
    return EXIT_OK


def cmd_unkill(args: argparse.Namespace) -> int:
    plan = _plan(args.plan)
    store = _store(args, plan)
    tenant = _tenant(args, plan, required=True)
    conn = _connection(args, plan)
    ident = current_identity()
    roles = plan.roles_of(ident.user) if plan else set()
    if not roles & UNKILL_ROLES:
        store.audit(tenant, ident.actor, "kill_switch_deactivation_refused", None,
                    {"scope": args.scope, "roles": sorted(roles), "why": "needs canary_lead or dba"})
        raise CliError(
            f"refused: deactivating the kill switch needs the canary_lead or dba role; {ident.user} has "
            f"{', '.join(sorted(roles)) or 'no role'} in {plan.source if plan else 'no plan (give --plan)'}. "
            "Ask the canary lead or the DBA.", EXIT_REFUSED)
    if not (args.reason or "").strip():
        raise CliError("a reason is required to deactivate the kill switch: --reason \"…\"")
    _backend(plan, store).set(tenant, args.scope, False, ident.actor, args.reason.strip(), conn)
    print(f"kill switch deactivated ({args.scope}{' ' + conn if conn else ''}) by {ident.actor}: {args.reason.strip()}")
    return EXIT_OK


def _connection(args: argparse.Namespace, plan: Plan | None) -> str:
    if args.scope != "connection":
        return ""
    conn = args.connection or (plan.connection.id if plan else None)
    if not conn:
        raise CliError("a connection kill switch needs --connection ID or --plan PLAN.toml")
    return conn


def cmd_self_test(args: argparse.Namespace) -> int:
    from engine import selftest
    from engine.store import redact_url

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
    from engine.executor import Executor
    from engine.monitor import Monitor, sources_for
    from engine.target import Target

    if not 1 <= args.interval <= 60:
        raise CliError("--interval must be between 1 and 60 seconds (the runbook samples every 5 s, 2.5 s "
                       "for a table the size gate warned about)")
    plan = load_plan(args.plan)
    store = _store(args, plan)
    ident = current_identity()
    backend = _backend(plan, store)
    ex = Executor(plan, store, backend, Target(plan.connection), ident.actor, worker_id(ident),
                  on_event=lambda name, data: None if name in QUIET_EVENTS | {"monitor_tick"} else
                  print(f"{name} {json.dumps(data, default=str)}", flush=True), clock=store.clock)
    run_id = args.run or ex.create_run().id
    print(f"run {run_id}", flush=True)
    # The same 60-minute window as the console's (a run taken over resumes it from the store).
    ex.monitor = Monitor(store, plan.tenant, run_id, sources_for(plan, backend, store.clock), plan.profile(),
                         ident.actor, store.clock, interval=args.interval)
    try:
        out = ex.take_over(run_id) if args.run else ex.execute(run_id)  # a given run may need taking over
    finally:
        ex.monitor.close()
    print(f"outcome {out.status}{' (' + out.fail_reason + ')' if out.fail_reason else ''}: {out.message}")
    return EXIT_OK if out.status == "completed" else EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    """Open the console on a plan."""
    from console.app import CanaryApp
    from engine.clock import clock_for
    from engine.opening import OpeningStore

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
        app = CanaryApp(plan, store, identity=identity, role=args.role, clock=clock)
    except ValueError as exc:
        raise CliError(f"{exc}. Leave --role out to act in all your roles.") from None
    app.run()
    if app.return_code:
        return EXIT_FAILED  # the console said why (e.g. the store cannot be opened)
    return EXIT_OK


def cmd_rehearse(args: argparse.Namespace) -> int:
    """The drill: private primary + replica, a loaded table, a workload, the runbook's engine."""
    from engine import rehearsal, selftest
    from engine.clock import clock_for
    from engine.executor import Executor
    from engine.monitor import Monitor, sources_for
    from engine.sizegate import gate, sampling_interval
    from engine.store import Store, redact_url
    from engine.target import Target

    ident = current_identity()
    say = lambda text: print(f"[rehearse] {text}", flush=True)  # noqa: E731
    if not 1_000 <= args.rows <= 20_000_000:
        raise CliError("--rows must be between 1000 and 20000000")
    if not 1 <= args.speed <= 600:
        raise CliError("--speed must be between 1 (real time) and 600")
    unknown = [c for c in (args.self_test_cases or "").upper().replace(" ", "").split(",") if c and c not in selftest.CASES]
    if unknown:
        raise CliError(f"unknown self-test case(s) {', '.join(unknown)}: choose from {', '.join(selftest.CASES)}")
    if not args.headless and not (sys.stdin.isatty() and sys.stdout.isatty()):
        say("not on a terminal: walking the runbook headless (--headless)")
        args.headless = True
    drill = rehearsal.start(args.rows, args.reset, ident.user, say, speed=args.speed)
    try:
        plan = load_plan(drill.plan_path)
        # One compressed clock for everything the drill records, so T+, the audit trail and the
        # samples agree (the store notes the compression with the monitoring window). The plan
        # anchors it: a second console, or this drill restarted, reads the same time.
        clock = clock_for(plan)
        speed = float(getattr(clock, "speed", 1.0))
        if drill.resumed_run and speed != args.speed:
            say(f"the resumed drill keeps its clock: TIME ×{speed:g} (--speed applies to a new drill)")
        store = Store(drill.store_url, clock=clock)
        say(f"plan written to {drill.plan_path}")
        say(f"store {redact_url(store.url)}; workload running (reads by customer_id, background writes)")
        say("kill switch from another terminal: canary-console kill --plan " + str(drill.plan_path))
        say(f"a teammate's console (to approve what you may not approve alone): {_me()} run "
            f"{drill.plan_path} --as teammate")
        if not args.skip_self_test and not drill.resumed_run:
            cases = [c.strip().upper() for c in args.self_test_cases.split(",")] if args.self_test_cases else None
            say(f"self-test {', '.join(cases) if cases else 'TC-01…TC-10'} against a second private sandbox "
                "(results stored for the prechecks)")
            def recorded(result: Any) -> None:  # each case as it finishes, not all at the end
                selftest.record(store, plan.tenant, result, ident.actor)
                say(f"  {result.case} [{selftest.PRIORITY[result.case]}] {'PASS' if result.passed else 'FAIL'} "
                    f"{selftest.NAMES[result.case]} ({result.duration_ms / 1000:.1f} s)")

            selftest.run_all(cases, report=recorded)
        if not args.headless:
            say(f"opening the console on {drill.plan_path} — TIME COMPRESSED {args.speed:g}× (rehearsal only). "
                "F9 is the kill switch; Ctrl+Q quits and stops the drill.")
            from console.app import CanaryApp

            CanaryApp(plan, store, clock=clock).run()
            return EXIT_OK

        def on_event(name: str, data: dict[str, Any]) -> None:
            if name == "monitor_tick":
                if int(data["elapsed_s"]) % 300 < 5:  # about every five (compressed) minutes
                    say(f"monitoring T+{15 + data['elapsed_s'] / 60:.0f} min, {data['concurrent']} concurrent warning(s)")
            elif name not in QUIET_EVENTS:
                say(f"{name} {json.dumps(data, default=str)}")

        with Target(plan.connection).session("size-gate") as s:
            info = s.table_info(plan.schema, plan.change.table)
            decision = gate(info.estimated_rows if info else 0)
            if decision.needs_exact_count:
                say(f"size gate: {decision.rule}")
                decision = gate(s.exact_count(plan.schema, plan.change.table) or 0, exact=True)
        say(f"size gate {decision.band}: {decision.rule}; sampling every {sampling_interval(decision.band, speed):g} s"
            + (f" (data {info.data_mb} MB, index {info.index_mb} MB)" if info else ""))
        if decision.band == "BLOCK":
            store.audit(plan.tenant, ident.actor, "size_gate_block", None, {"rule": decision.rule})
            say("BLOCK: no DDL on this table in this phase; the drill stops here")
            return EXIT_FAILED

        backend = _backend(plan, store)
        ex = Executor(plan, store, backend, Target(plan.connection), ident.actor, worker_id(ident),
                      on_event=on_event, clock=clock)
        run = store.get_run(plan.tenant, drill.resumed_run) if drill.resumed_run else ex.create_run()
        ex.monitor = Monitor(store, plan.tenant, run.id, sources_for(plan, backend, clock), plan.profile(),
                             ident.actor, clock,
                             interval=sampling_interval(decision.band, speed))
        say(f"run {run.id}: baseline {plan.executor.baseline_window_seconds / 60:g} min, ALTER, cool-down "
            f"{plan.executor.cooldown_seconds / 60:g} min, 60-minute monitoring window — TIME COMPRESSED "
            f"{speed:g}× (rehearsal only): about {(plan.executor.baseline_window_seconds + plan.executor.cooldown_seconds + 3600) / speed / 60:.1f} real minutes")
        out = ex.take_over(run.id) if drill.resumed_run else ex.execute(run.id)
        say(f"outcome: {out.status}{' (' + out.fail_reason + ')' if out.fail_reason else ''} — {out.message}")
        for d in store.decisions(plan.tenant, run.id):
            for c in (d.evidence or {}).get("criteria", []):
                mark = {True: "met", False: "NOT MET", None: "unknown"}[c["met"]] if c["applicable"] else "n/a"
                say(f"  [{mark:>7}] {c['name']}: {c['value']} (needs {c['threshold']}) {c.get('interval') or ''}")
        say(f"replay it: canary-console replay {run.id} --plan {drill.plan_path}")
        return EXIT_OK if out.status in ("completed", "cancelled") else EXIT_FAILED
    finally:
        say("stopping the workload and the sandbox servers")
        drill.stop()


def cmd_approve(args: argparse.Namespace) -> int:
    """Lift an AUTO-PAUSE (≥ 5 concurrent warnings): resume, or roll back. Canary lead only."""
    from engine.monitor import approve_pause

    plan = load_plan(args.plan)
    store = _store(args, plan)
    ident = current_identity()
    if store.get_run(plan.tenant, args.run) is None:
        raise CliError(f"run {args.run} not found for tenant {plan.tenant}", EXIT_FAILED)
    try:
        approve_pause(store, plan.tenant, args.run, args.decision, ident.actor, plan.roles_of(ident.user), args.note)
    except PermissionError as exc:
        raise CliError(f"refused: {exc}. Ask the canary lead.", EXIT_REFUSED) from None
    print(f"AUTO-PAUSE of run {args.run}: {args.decision} approved by {ident.actor}")
    return EXIT_OK


def _replay_samples(args: argparse.Namespace, profile: Any) -> int:
    """``replay --samples FILE``: judge exported samples, no store, no server."""
    from datetime import UTC, datetime

    from engine.samples_file import SamplesError, judge_samples, parse_samples
    from engine.text import for_terminal

    change_at = None
    if args.change_at:
        try:
            change_at = datetime.fromisoformat(args.change_at.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CliError(f"--change-at {args.change_at!r} is not an ISO-8601 time (e.g. 2026-12-03T08:30:00Z)") from None
        change_at = change_at if change_at.tzinfo else change_at.replace(tzinfo=UTC)
    try:
        with open(args.samples, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise CliError(f"samples file not found: {args.samples}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {args.samples}: {exc}") from None
    try:
        j = judge_samples(parse_samples(text, profile), profile, change_at)
    except SamplesError as exc:
        raise CliError(f"{args.samples}: {for_terminal(str(exc))}") from None
    v = j.verdict
    print(f"{args.samples} under profile {profile.name}: {v.verdict}")
    print(f"  baseline: {j.baseline_samples} samples before {j.change_at.isoformat()}; window: "
          f"{j.window_samples} samples" + (f"; stopped at {j.stopped_at.isoformat()}" if j.stopped_at else ""))
    for c in v.criteria:
        mark = {True: "met", False: "NOT MET", None: "unknown"}[c.met] if c.applicable else "n/a"
        print(f"  [{mark:>7}] {c.name}: {c.value} (needs {c.threshold}) — {c.rule}")
        if c.evidence:
            print(f"            evidence: {c.evidence}")
    for r in v.reasons:
        print(f"  reason: {r}")
    for w in v.warnings:
        print(f"  warning: {w}")
    for e in j.evaluator.state.of_kind("incident"):
        print(f"  incident at +{e.t_s / 60:.1f} min: {e.detail}")
    if args.json:
        print(json.dumps(j.as_json(), default=str))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-evaluate a finished run's stored samples under another threshold profile."""
    import tomllib

    from engine.monitor import replay
    from engine.thresholds import Profile, ProfileError, profile_from_overrides

    plan = _plan(args.plan)
    profile = Profile()
    if args.profile:
        try:
            data = tomllib.loads(open(args.profile, encoding="utf-8").read())
        except FileNotFoundError:
            raise CliError(f"profile file not found: {args.profile}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CliError(f"profile {args.profile} is not valid TOML: {exc}") from None
        try:
            profile = profile_from_overrides(data.get("thresholds", data), name=args.profile)
        except ProfileError as exc:
            raise CliError("the profile cannot be used:\n" + "\n".join(f"  - {p}" for p in exc.problems)) from None
    if args.samples:
        return _replay_samples(args, profile)
    if not args.run:
        raise CliError("replay needs a RUN id (with --plan or --store) or --samples FILE")
    store = _store(args, plan)
    tenant = _tenant(args, plan, required=True)
    try:
        verdict, ev = replay(store, tenant, args.run, profile)
    except LookupError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    if args.json:
        print(json.dumps(verdict.as_dict() | {"profile": profile.name}, indent=2, default=str))
        return EXIT_OK
    print(f"run {args.run} under profile {profile.name}: {verdict.verdict}")
    for c in verdict.criteria:
        mark = {True: "met", False: "NOT MET", None: "unknown"}[c.met] if c.applicable else "n/a"
        extra = f"  n={c.n}" if c.n is not None else ""
        extra += f"  {c.interval}" if c.interval else ""
        print(f"  [{mark:>7}] {c.name}: {c.value} (needs {c.threshold}) — {c.rule}{extra}")
    for r in verdict.reasons:
        print(f"  reason: {r}")
    print("  checkpoints: " + ", ".join(f"{cp.label} {'ok' if cp.metrics_ok else 'NOT ok'}" for cp in ev.checkpoints))
    print(f"  next step: {verdict.next_step}")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the audit trail's hash chain: 0 intact, 1 tampered, 2 when it cannot be checked."""
    import re

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from engine.audit_chain import render
    from engine.store import Store, StoreError, default_store_url, redact_url

    expect = (args.expect_head or "").strip().lower() or None
    if expect is not None and not re.fullmatch(r"[0-9a-f]{64}", expect):
        raise CliError(f"--expect-head takes the 64-hex-digit head hash a verify printed, not {args.expect_head!r}")
    url = _store_url(args, _plan(args.plan)) or default_store_url()
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - the store's own message below says what a URL looks like
        parsed = None
    sqlite_file = parsed.database if parsed is not None and parsed.get_backend_name() == "sqlite" else None
    if sqlite_file and sqlite_file != ":memory:" and not os.path.exists(sqlite_file):  # opening would create it
        raise CliError(f"no store at {redact_url(url)}: nothing to verify. Give --store URL (or --plan PLAN.toml).")
    try:
        store = Store(url)
        try:
            verdict = store.verify_audit_chain(expect)
        finally:
            store.close()
    except StoreError as exc:
        raise CliError(f"cannot verify the audit trail: {exc}") from None
    except SQLAlchemyError as exc:
        raise CliError(f"cannot read the audit trail at {redact_url(url)}: {exc.__class__.__name__}: "
                       f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}") from None
    if args.json:
        print(json.dumps({"store": redact_url(url), "intact": verdict.intact, "rows": verdict.rows,
                          "first_seq": verdict.first_seq, "last_seq": verdict.last_seq,
                          "head": verdict.head_hash, "expect_head_seq": verdict.expect_head_seq,
                          "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message}
                                       for p in verdict.problems]}, indent=2))
    else:
        print("\n".join(render(verdict, redact_url(url))))
    return EXIT_OK if verdict.intact else EXIT_FAILED


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="canary-console", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, plan_required: bool = False) -> None:
        if plan_required:
            sp.add_argument("plan", metavar="PLAN.toml", help="the canary plan")
        else:
            sp.add_argument("--plan", metavar="PLAN.toml", help="the canary plan (tenant, store, people)")
        sp.add_argument("--store", metavar="URL", help="store URL (default: the plan's, else a SQLite file "
                        f"under {state_dir()})")

    u = sub.add_parser("run", help="open the console on a plan (F9: kill switch, F2: audit log)")
    common(u, plan_required=True)
    u.add_argument("--role", choices=("canary_lead", "dba", "sre", "developer"),
                   help="act in this one of your roles (when the plan gives you more than one)")
    u.add_argument("--as", dest="as_user", metavar="USER",
                   help="rehearsal plans only: play another person of the plan (e.g. teammate)")
    u.set_defaults(func=cmd_run)

    s = sub.add_parser("status", help="kill-switch state, recent runs, self-test results")
    common(s)
    s.add_argument("--tenant")
    s.add_argument("--connection", help="connection id, for its kill switch")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    for name, helptext, func in (("kill", "activate the kill switch (instant) and kill any ALTER in flight", cmd_kill),
                                 ("unkill", "deactivate the kill switch (canary_lead or dba, with a reason)", cmd_unkill)):
        k = sub.add_parser(name, help=helptext)
        common(k)
        k.add_argument("--scope", choices=("global", "tenant", "connection"), default="global")
        k.add_argument("--tenant")
        k.add_argument("--connection", help="connection id (for --scope connection)")
        k.add_argument("--reason", default="")
        if name == "kill":
            k.add_argument("--no-take-over", action="store_true",
                           help="kill the ALTER but leave a dead owner's run for its next worker")
        k.set_defaults(func=func)

    t = sub.add_parser("self-test", help="run TC-01…TC-10 against a private sandbox MariaDB and store the results")
    common(t)
    t.add_argument("--tenant")
    t.add_argument("--cases", help="comma-separated subset, e.g. TC-02,TC-03")
    t.set_defaults(func=cmd_self_test)

    r = sub.add_parser("rehearse", help="drill against a private MariaDB primary + replica with a workload")
    r.add_argument("--rows", type=int, default=1_000_000, help="rows in shop.orders (default 1,000,000)")
    r.add_argument("--reset", action="store_true", help="wipe the previous rehearsal's servers and store")
    r.add_argument("--skip-self-test", action="store_true", help="do not run TC-01…TC-10 first")
    r.add_argument("--self-test-cases", metavar="TC-02,TC-03,…",
                   help="run only these cases first (the P0 ones gate the prechecks: TC-02,TC-03,TC-09)")
    r.add_argument("--headless", action="store_true",
                   help="walk the runbook without the console, printing each step (also when not on a terminal)")
    r.add_argument("--speed", type=float, default=30.0,
                   help="time compression of the drill (rehearsal only; default 30: the 60-minute window in 2 minutes)")
    r.set_defaults(func=cmd_rehearse)

    ap = sub.add_parser("approve", help="lift a run's AUTO-PAUSE: resume or roll back (canary lead)")
    ap.add_argument("run", metavar="RUN")
    ap.add_argument("--plan", metavar="PLAN.toml", required=True)
    ap.add_argument("--store", metavar="URL")
    ap.add_argument("--decision", choices=("resume", "rollback"), required=True)
    ap.add_argument("--note", default="")
    ap.set_defaults(func=cmd_approve)

    rp = sub.add_parser("replay", help="re-evaluate a finished run's stored samples under another profile, "
                                       "or judge exported samples (--samples FILE)")
    common(rp)
    rp.add_argument("run", metavar="RUN", nargs="?", help="the run id (not with --samples)")
    rp.add_argument("--samples", metavar="FILE", help="JSON Lines of {ts, metric, value, group}: judged without "
                    "a store or a server")
    rp.add_argument("--change-at", metavar="TS", help="with --samples: when the change began (ISO-8601); "
                    "default: the first sample + the profile's baseline_minutes")
    rp.add_argument("--profile", metavar="FILE", help="TOML threshold overrides (as the plan's [thresholds])")
    rp.add_argument("--tenant")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_replay)

    au = sub.add_parser("audit", help="the audit trail: verify its hash chain")
    au_sub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    av = au_sub.add_parser("verify", help="walk the hash chain: exit 0 intact, 1 tampered, 2 cannot check")
    common(av)
    av.add_argument("--expect-head", metavar="HASH",
                    help="a head hash recorded earlier: proves no row up to it was cut from the end")
    av.add_argument("--json", action="store_true")
    av.set_defaults(func=cmd_audit_verify)

    e = sub.add_parser("execute", help="run the executor headless on a plan")
    common(e, plan_required=True)
    e.add_argument("--run", help="execute this existing run (e.g. take over after a crash)")
    e.add_argument("--interval", type=float, default=5.0, help="monitoring sample interval in seconds (default 5)")
    e.set_defaults(func=cmd_execute)
    add_api_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PlanError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback on screen
        from engine.sandbox import SandboxUnavailable
        from engine.store import StoreError
        from engine.target import TargetError

        if isinstance(exc, (StoreError, TargetError, SandboxUnavailable)):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        log = state_dir() / "cli.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as fh:
                fh.write(traceback.format_exc() + "\n")
        except OSError:
            pass
        print(f"internal error: {exc.__class__.__name__}: {exc}. Details were written to {log}.", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
