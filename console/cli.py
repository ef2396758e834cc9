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
from engine.adapters.identity import current_identity, worker_id
from engine.adapters.paths import state_dir
from engine.domain.plan import Plan, PlanError, load_plan
from engine.domain.roles import ROLES
from engine.domain.tenancy import GLOBAL_TENANT
from engine.domain.text import for_terminal

# The store (sqlmodel, SQLAlchemy) is imported where it is used: ``run`` opens it on a thread while
# the console draws its first screen.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
QUIET_EVENTS = {"alter_progress", "wait_tick", "baseline_tick", "observation_tick"}  # many a second: not for a log


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
    from engine.adapters.store import Store
    from engine.domain.clock import clock_for

    return Store(_store_url(args, plan), clock=clock_for(plan) if plan is not None else None)


def _tenant(args: argparse.Namespace, plan: Plan | None, required: bool) -> str:
    tenant = getattr(args, "tenant", None) or (plan.tenant if plan else None)
    if tenant is None and required:
        raise CliError("which tenant? give --plan PLAN.toml or --tenant NAME")
    return tenant or GLOBAL_TENANT


def _backend(plan: Plan | None, store: Any) -> Any:
    from engine.adapters.killswitch import EmbeddedKillSwitch, backend_for

    return backend_for(plan, store) if plan else EmbeddedKillSwitch(store)


# --- commands -----------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """The kill switch, the recent runs, the self-test. A store (or API) that cannot be read is
    FAIL-CLOSED — the switch counts as active — and said so, with why (exit 1); never "ok".
    Everything from the store is shown through ``for_terminal``: no escape sequence a user typed
    into a reason reaches this terminal."""
    from engine.adapters.killswitch import KillSwitchReading
    from engine.adapters.store import StoreError, redact_url

    plan = _plan(args.plan)
    tenant = _tenant(args, plan, required=False)
    conn = plan.connection.id if plan else (args.connection or "")
    url = _store_url(args, plan)
    store, store_error = None, None
    try:
        store = _store(args, plan)
        url = store.url
    except StoreError as exc:
        store_error = str(exc)
    if store is None and not (plan and plan.kill_switch_api_url):
        reading = KillSwitchReading(True, {}, "embedded", 0.0, f"store unreadable: {store_error}")
    else:
        reading = _backend(plan, store).read(tenant, conn)
    runs: list[Any] = []
    tcs: dict[str, Any] = {}
    if store is not None and tenant != GLOBAL_TENANT:
        try:
            runs = store.find_runs(tenant, limit=5)
            tcs = store.latest_prechecks(tenant, "TC-")
        except StoreError as exc:
            store_error = store_error or str(exc)
    shown_url = redact_url(url) if url else "(default)"
    t = for_terminal
    if args.json:
        print(json.dumps({
            "store": shown_url, "store_error": store_error, "tenant": tenant,
            "kill_switch": {"active": reading.active, "fail_closed": reading.fail_closed,
                            "scopes": reading.active_scopes(), "error": reading.error,
                            "source": reading.source, "response_ms": round(reading.response_ms, 1),
                            "set_by": {k: v.set_by for k, v in reading.scopes.items() if v.active},
                            "reasons": {k: v.reason for k, v in reading.scopes.items() if v.active}},
            "runs": [{"id": r.id, "status": r.status, "fail_reason": r.fail_reason, "table": r.table_name,
                      "index": r.index_name} for r in runs],
            "self_test": {k: v.status for k, v in sorted(tcs.items())},
        }, indent=2))  # JSON escapes every control character itself
        if store_error:
            print(f"error: {t(store_error)}", file=sys.stderr)
        return EXIT_FAILED if reading.fail_closed or store_error else EXIT_OK
    print(f"store        {t(shown_url)}" + (f"  UNREADABLE: {t(store_error)}" if store_error else ""))
    print(f"tenant       {t(tenant)}")
    if reading.fail_closed:
        print(f"kill switch  FAIL-CLOSED — counts as ACTIVE: {t(reading.error)}  [{reading.source}, "
              f"{reading.response_ms:.0f} ms]")
        print("             no run may start or go on until the switch can be read; fix the cause above")
    else:
        print(f"kill switch  {t(reading.describe())}  [{reading.source}, {reading.response_ms:.0f} ms, "
              f"{reading.latency_level}]")
    if store_error:
        print("runs         unknown (the store cannot be read)")
    elif not runs:
        print("runs         none")
    for r in runs:
        extra = f" ({r.fail_reason})" if r.fail_reason else ""
        print(t(f"run          {r.id}  {r.status}{extra}  {r.schema_name}.{r.table_name} +{r.index_name}"))
    if tcs:
        print("self-test    " + t("  ".join(f"{k}:{v.status}" for k, v in sorted(tcs.items()))))
    if store_error:
        print(f"error: {t(store_error)}", file=sys.stderr)
    return EXIT_FAILED if reading.fail_closed or store_error else EXIT_OK


KILL_WITHOUT_PLAN = ("to kill without the plan: canary-console kill --scope global [--store URL] --reason \"…\" "
                     "(or --scope tenant --tenant ID --store URL)")


def _kill_plan(path: str | None) -> tuple[Any, str | None]:
    """The plan for a kill, and what was wrong with it. A kill must not wait for an unrelated plan
    problem (a threshold, the change, a password in the file): when the plan does not validate,
    what a kill needs — the tenant, the connection id, the store and the kill-switch API — is
    read from its TOML and checked with the plan's own rules. A plan whose TOML cannot be read,
    or whose problem is in one of those, stops the kill with the command that does without."""
    import tomllib
    from types import SimpleNamespace

    from engine.domain.plan_fields import _env_name, _slug, _store_url, _url

    if not path:
        return None, None
    try:
        return load_plan(path), None
    except PlanError as exc:
        problems = list(exc.problems)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise PlanError([*problems, KILL_WITHOUT_PLAN], str(path)) from None
    essential: list[str] = []
    conn = data.get("connection") if isinstance(data.get("connection"), dict) else {}
    integ = data.get("integrations") if isinstance(data.get("integrations"), dict) else {}
    tenant = _slug(data, "tenant", "tenant", essential, required=True)
    conn_id = _slug(conn, "id", "connection.id", essential, required=False) or ""
    store_url = _store_url(data.get("store_url"), essential)
    api_url = _url(integ, "kill_switch_api_url", essential)
    token_env = _env_name(integ, "kill_switch_api_token_env", "integrations", essential)
    if essential:
        raise PlanError([*problems, KILL_WITHOUT_PLAN], str(path))
    plan = SimpleNamespace(tenant=tenant, connection=SimpleNamespace(id=conn_id), store_url=store_url,
                           kill_switch_api_url=api_url, kill_switch_api_token_env=token_env, source=path)
    return plan, "; ".join(problems)


def cmd_kill(args: argparse.Namespace) -> int:
    """Activation: instant, no confirmation; then the ALTERs in flight are killed (docs/kill-switch.md)."""
    from engine.flows.killswitch_actions import KillTargetError, activate, check_target, known_ids

    plan, plan_problem = _kill_plan(args.plan)
    if plan_problem:
        print(f"warning: the plan has a problem a kill does not need ({for_terminal(plan_problem)[:300]}); killing "
              f"with what it names: tenant {for_terminal(plan.tenant or '—')}, connection "
              f"{for_terminal(plan.connection.id or '—')}", file=sys.stderr)
    store = _store_for_kill(args, plan)
    tenant = args.tenant or (plan.tenant if plan else None)
    if tenant is None and args.scope != "global":
        raise CliError("which tenant? give --plan PLAN.toml or --tenant NAME")
    conn = args.connection or (plan.connection.id if plan else None) or ""
    try:
        if args.scope != "global" or args.tenant:
            tenant, conn_checked = check_target(args.scope, tenant, conn, known_ids(store, plan))
            conn = conn_checked if args.scope == "connection" else conn
    except KillTargetError as exc:
        raise CliError(f"no kill switch set: {exc}", EXIT_USAGE) from None
    ident = current_identity()
    roles = plan.roles_of(ident.user) if plan is not None and hasattr(plan, "roles_of") else ()
    backend = _backend(plan, store)
    result = activate(store, backend, tenant or GLOBAL_TENANT, args.scope, ident.actor, roles, args.reason,
                      conn if args.scope == "connection" else "", via="cli", worker=worker_id(ident),
                      take_over=not args.no_take_over, enforce=tenant is not None)
    out = sys.stdout if result.ok else sys.stderr
    for line in result.lines(plan=args.plan):
        print(for_terminal(line), file=out)
    if result.refused is not None:
        return EXIT_USAGE if result.refused_usage else EXIT_REFUSED
    return EXIT_OK if result.ok else EXIT_FAILED


def _store_for_kill(args: argparse.Namespace, plan: Any) -> Any:
    """The store; with a remote kill switch a kill goes on without it (it is only the local audit)."""
    from engine.adapters.store import Store, StoreError
    from engine.domain.clock import clock_for

    try:
        return Store(_store_url(args, plan), clock=clock_for(plan) if isinstance(plan, Plan) else None)
    except StoreError:
        if plan is not None and getattr(plan, "kill_switch_api_url", None):
            return None
        raise


def cmd_unkill(args: argparse.Namespace) -> int:
    from engine.flows.killswitch_actions import KillTargetError, check_target, deactivate, known_ids

    plan = _plan(args.plan)
    store = _store(args, plan)
    tenant = _tenant(args, plan, required=args.scope != "global")
    conn = args.connection or (plan.connection.id if plan else None) or ""
    try:
        if args.scope != "global" or args.tenant:
            tenant, conn = check_target(args.scope, tenant, conn, known_ids(store, plan))
    except KillTargetError as exc:
        raise CliError(f"nothing deactivated: {exc}", EXIT_USAGE) from None
    ident = current_identity()
    roles = plan.roles_of(ident.user) if plan else set()
    result = deactivate(store, _backend(plan, store), tenant, (args.scope,), ident.actor, roles, args.reason,
                        conn if args.scope == "connection" else "", via="cli")
    if result.refused is not None and not result.refused_usage and plan is None:
        result.refused += " (no plan was given: --plan PLAN.toml names your roles)"
    out = sys.stdout if result.ok else sys.stderr
    for line in result.lines():
        print(for_terminal(line), file=out)
    if result.refused is not None:
        return EXIT_USAGE if result.refused_usage else EXIT_REFUSED
    return EXIT_OK if result.ok else EXIT_FAILED


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
    prepared = rehearsal.prepare(args.rows, args.reset, ident.user, out.say, speed=args.speed,
                                 performance_schema=not args.performance_schema_off, control=args.control,
                                 webhook=webhook)
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
        if not app.stop_preparation(timeout=90):
            print("[rehearse] the preparation did not stop in 90 s: its servers are stopped as the process "
                  "exits", file=sys.stderr)
        for line in app.transcript:  # what the preparation did, kept on the terminal after the console
            out.say(line)
        out.say(f"the drill's plan: {prepared.plan_path}")
        out.say("stopping the workload and the sandbox servers")
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
    out.say(f"size gate {decision.band}: {decision.rule}; sampling every {sampling_interval(decision.band, speed):g} s"
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
            f"{speed:g}× (rehearsal only): about {(plan.executor.baseline_window_seconds + plan.executor.cooldown_seconds + 3600) / speed / 60:.1f} real minutes")
    if run.status == "scheduled":  # the checks the console runs, and what blocks the run (docs/prechecks.md)
        from engine.flows.prechecks import headless_gate
        from engine.flows.presample import presampling

        # The baseline from the run's creation on: sampled while the prechecks take their time.
        with presampling(plan, store, backend, run.id, ident.actor, clock, interval) as sampler:
            blockers = headless_gate(plan, store, backend, Target(plan.connection), run.id, ident.actor, out.say)
        out.say(f"baseline: sampled through the prechecks ({sampler.ticks} ticks)" if not sampler.error
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


def _on_run(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """The plan, its store, who is at the keyboard and the run ``args.run`` names (exit 1 when the
    store has no such run for the plan's tenant): what every command on one run starts with."""
    plan = load_plan(args.plan)
    store = _store(args, plan)
    run = store.get_run(plan.tenant, args.run)
    if run is None:
        raise CliError(f"run {args.run} not found for tenant {plan.tenant}", EXIT_FAILED)
    return plan, store, current_identity(), run


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
    print(f"{args.case.upper()} acknowledged as {ack.role} by {ident.actor}"
          + (f"; still to acknowledge: {', '.join(left)}" if left else "; acknowledged by the canary lead and the DBA"))
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


def _replay_samples(args: argparse.Namespace, profile: Any) -> int:
    """``replay --samples FILE``: judge exported samples, no store, no server."""
    from datetime import UTC, datetime

    from engine.domain.text import for_terminal
    from engine.flows.samples_file import SamplesError, judge_samples, parse_samples

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

    from engine.domain.thresholds import Profile, ProfileError, profile_from_overrides
    from engine.flows.monitor import replay

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
    if not args.profile:  # the run's own lines: tightened after a WARNING size gate (docs/thresholds.md)
        from engine.domain.sizegate import profile_for
        from engine.flows.prechecks import run_gate

        gate = run_gate(store, tenant, args.run)
        profile = profile_for(profile, *gate) if gate else profile
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

    from engine.adapters.store import Store, StoreError, default_store_url, redact_url
    from engine.domain.audit_chain import render

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
    _looks_like_a_store(url, sqlite_file)  # opening anything else would write a store into it
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


def _looks_like_a_store(url: str, sqlite_file: str | None) -> None:
    """A CliError unless ``url`` holds a canary store's audit trail — looked at read-only: an
    empty or foreign file (or database) is said to be one and left exactly as it was."""
    import sqlite3
    from pathlib import Path

    from engine.adapters.store import redact_url

    where = for_terminal(redact_url(url))
    if sqlite_file and sqlite_file != ":memory:":
        path = Path(sqlite_file)
        if path.is_dir():
            raise CliError(f"{where} is a directory, not a canary store: nothing verified.")
        if path.stat().st_size == 0:
            raise CliError(f"{where} is an empty file, not a canary store: nothing verified (and nothing written). "
                           "Give the store's URL: --store URL or --plan PLAN.toml.")
        try:
            con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                found = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_logs'").fetchone()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise CliError(f"{where} is not a canary store ({for_terminal(exc)}): nothing verified, nothing written.") from None
        if not found:
            raise CliError(f"{where} is a SQLite database without an audit trail (no audit_logs table): not a canary "
                           "store; nothing verified, nothing written.")
        return
    if sqlite_file == ":memory:":
        return
    try:
        from sqlalchemy import inspect

        from engine.adapters.store.store import make_engine

        engine = make_engine(url)
        try:
            found = inspect(engine).has_table("audit_logs")
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - the store's own open below says what is wrong
        return
    if not found:
        raise CliError(f"{where} has no audit trail (no audit_logs table): not a canary store; nothing verified, "
                       "nothing written.")


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
    u.add_argument("--role", choices=ROLES,
                   help="act in this one of your roles (when the plan gives you more than one)")
    u.add_argument("--as", dest="as_user", metavar="USER",
                   help="rehearsal plans only: play another person of the plan (e.g. teammate)")
    u.add_argument("--dry-run", action="store_true",
                   help="walk the canary read-only: the checks for real, the SQL of every step shown, nothing "
                        "that writes sent (docs/dry-run.md)")
    u.set_defaults(func=cmd_run)

    dr = sub.add_parser("dry-run", help="walk the canary read-only against the target and print the SQL each "
                        "step would send (ALTER, KILL QUERY, rollback ladder, monitoring); nothing that writes")
    common(dr, plan_required=True)
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(func=cmd_dry_run)

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

    t = sub.add_parser("self-test", help="run TC-01…TC-10 against a private sandbox MariaDB and store the results "
                       "for the plan's prechecks (--plan: everyone the plan names may)")
    common(t)
    t.add_argument("--tenant", help="the plan's tenant (the results are stored for it; optional)")
    t.add_argument("--cases", help="comma-separated subset, e.g. TC-02,TC-03")
    t.set_defaults(func=cmd_self_test)

    r = sub.add_parser("rehearse", help="drill against a private MariaDB primary + replica with a workload")
    r.add_argument("--rows", type=int, default=1_000_000, help="rows in shop.orders (default 1,000,000)")
    r.add_argument("--reset", action="store_true", help="wipe the previous rehearsal's servers and store")
    r.add_argument("--skip-self-test", action="store_true", help="do not run TC-01…TC-10 first")
    r.add_argument("--control", action="store_true",
                   help="add a control tenant (shop_tenant_b: the same table and statements, not altered) that the "
                        "latency verdict is judged against (docs/verdict.md#the-control)")
    r.add_argument("--performance-schema-off", action="store_true",
                   help="start the drill's servers as MariaDB ships them (performance_schema=OFF): the prechecks "
                        "name the fix and no canary starts (with --reset when servers are left running)")
    r.add_argument("--webhook", metavar="URL", help="a Slack-compatible webhook (a test channel) the drill "
                   "pushes its events to, as [integrations] webhook_url does for a real run")
    r.add_argument("--self-test-cases", metavar="TC-02,TC-03,…",
                   help="run only these cases first (the P0 ones gate the prechecks: TC-02,TC-03,TC-09)")
    r.add_argument("--headless", action="store_true",
                   help="walk the runbook without the console, a readable line per step and event (also when "
                   "stdin or stderr is not a terminal)")
    r.add_argument("--json", action="store_true",
                   help="headless, with JSON Lines on stdout for machines (the record shape is in the README)")
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

    rb = sub.add_parser("rollback", help="the manual rollback's people steps: status, decide, approve, refuse, "
                        "retrigger (a new trigger), keep (the index, after a refusal) — docs/rollback.md")
    rb.add_argument("action", choices=("status", "decide", "approve", "refuse", "retrigger", "keep"))
    rb.add_argument("run", metavar="RUN", help="the run id")
    rb.add_argument("--plan", metavar="PLAN.toml", required=True)
    rb.add_argument("--store", metavar="URL")
    rb.add_argument("--trigger", help="decide: the trigger (runbook 6.3), e.g. lock_wait, kill_switch")
    rb.add_argument("--role", choices=ROLES,
                    help="act in this one of your roles (approve/refuse: the role you give or hold back)")
    rb.add_argument("--reason", default="", help="why (required for decide, refuse, retrigger, keep; approve: a note)")
    rb.set_defaults(func=cmd_rollback)

    ak = sub.add_parser("acknowledge", help="acknowledge a failed P1 self-test case with a reason (canary lead, DBA)")
    ak.add_argument("run", metavar="RUN")
    ak.add_argument("--plan", metavar="PLAN.toml", required=True)
    ak.add_argument("--store", metavar="URL")
    ak.add_argument("--case", required=True, help="the failed P1 case, e.g. TC-06")
    ak.add_argument("--reason", required=True, help="why the canary may go with it failed (audited)")
    ak.set_defaults(func=cmd_acknowledge)

    ls = sub.add_parser("lesson", help="add a row to a run's lessons-learned table (runbook 8.3; in the report)")
    ls.add_argument("run", metavar="RUN")
    ls.add_argument("--plan", metavar="PLAN.toml", required=True)
    ls.add_argument("--store", metavar="URL")
    ls.add_argument("--what", required=True, help="what happened")
    ls.add_argument("--impact", default="", help="its impact")
    ls.add_argument("--cause", default="", help="the root cause")
    ls.add_argument("--action", default="", help="the action item")
    ls.set_defaults(func=cmd_lesson)

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


def _expected(exc: BaseException) -> tuple[str, int] | None:
    """An error the engine raises on purpose — a refusal, a state that does not allow the action,
    a target or store that is down — as the message a person reads and its exit code; None for a
    bug (written to cli.log)."""
    from engine.adapters.killswitch import KillSwitchApiError
    from engine.adapters.prometheus import PrometheusError
    from engine.adapters.store import ClaimConflict, ScopeLockError, StoreError
    from engine.adapters.target import TargetError
    from engine.domain.identifiers import IdentifierError
    from engine.domain.runstate import TransitionError
    from engine.drill.faults import FaultError
    from engine.drill.sandbox import SandboxUnavailable

    said = for_terminal(str(exc))
    if isinstance(exc, ScopeLockError):
        return f"refused: {said}", EXIT_REFUSED
    if isinstance(exc, ClaimConflict):
        return (f"refused: {said}. A live worker drives this run; wait for it, or for its lease to run out "
                "(then --run takes it over)."), EXIT_REFUSED
    if isinstance(exc, TransitionError):  # InvalidTransition included (a StoreError too)
        return f"refused: {said}", EXIT_REFUSED
    if isinstance(exc, PermissionError):
        return f"refused: {said}", EXIT_REFUSED
    if isinstance(exc, IdentifierError):
        return f"bad input: {said}", EXIT_USAGE
    if isinstance(exc, (StoreError, TargetError, SandboxUnavailable, KillSwitchApiError, FaultError,
                        PrometheusError)):
        return f"error: {said}", EXIT_FAILED
    return None


def _quiet_stdout() -> None:
    """The reader closed the pipe (``| head``): nothing more is written, nothing is said."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes (README "Exit codes"): 0 done, 1 error, 2 usage (bad input), 3 refused."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, not at exit: a closed pipe is handled below
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except PlanError as exc:
        print(exc.render(), file=sys.stderr)  # the plan's problems are made printable where they are found
        return EXIT_USAGE
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback on screen
        expected = _expected(exc)
        if expected is not None:
            print(expected[0], file=sys.stderr)
            return expected[1]
        log = state_dir() / "cli.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as fh:
                fh.write(traceback.format_exc() + "\n")
        except OSError:
            pass
        print(f"internal error: {exc.__class__.__name__}: {for_terminal(exc)}. Details were written to {log}.",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
