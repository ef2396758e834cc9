"""``canary-console``: the command line.

Headless commands drive the same engine as the console: ``status``, ``kill`` / ``unkill``,
``self-test``, ``execute`` and ``audit verify``. No traceback reaches the user: known failures print
what went wrong and the way out; anything unexpected is written to ``cli.log`` in the state directory.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from console.api_cmd import add_api_parser
from console.commands import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CliError
from engine.adapters.paths import state_dir
from engine.domain.plan import PlanError
from engine.domain.roles import ROLES
from engine.domain.text import for_terminal

# Each command is a module of console/commands, imported when it runs: the parser (and --help)
# loads no store, no console and no engine flow. The exit codes are console/commands' (README).
__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "build_parser", "main"]


def _command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """``name`` of ``console.commands.<module>``, imported when the command runs."""
    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(f"console.commands.{module}"), name)(args))

    run.__name__ = run.__qualname__ = name
    return run


# --- parser -------------------------------------------------------------------------------------

RUN_HELP = "the run's id, or its start as the screens show it (run 3f2a9c1e)"


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
    u.set_defaults(func=_command("runbook", "cmd_run"))

    dr = sub.add_parser("dry-run", help="walk the canary read-only against the target and print the SQL each "
                        "step would send (ALTER, KILL QUERY, rollback ladder, monitoring); nothing that writes")
    common(dr, plan_required=True)
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(func=_command("runbook", "cmd_dry_run"))

    s = sub.add_parser("status", help="kill-switch state, recent runs, self-test results")
    common(s)
    s.add_argument("--tenant")
    s.add_argument("--connection", help="connection id, for its kill switch")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_command("status", "cmd_status"))

    for name, helptext, func in (("kill", "activate the kill switch (instant) and kill any ALTER in flight", _command("killswitch", "cmd_kill")),
                                 ("unkill", "deactivate the kill switch (canary_lead or dba, with a reason)",
                                  _command("killswitch", "cmd_unkill"))):
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
    t.set_defaults(func=_command("runbook", "cmd_self_test"))

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
    r.set_defaults(func=_command("rehearse", "cmd_rehearse"))

    ap = sub.add_parser("approve", help="lift a run's AUTO-PAUSE: resume or roll back (canary lead)")
    ap.add_argument("run", metavar="RUN", help=RUN_HELP)
    ap.add_argument("--plan", metavar="PLAN.toml", required=True)
    ap.add_argument("--store", metavar="URL")
    ap.add_argument("--decision", choices=("resume", "rollback"), required=True)
    ap.add_argument("--note", default="")
    ap.set_defaults(func=_command("on_run", "cmd_approve"))

    rb = sub.add_parser("rollback", help="the manual rollback's people steps: status, decide, approve, refuse, "
                        "retrigger (a new trigger), keep (the index, after a refusal) — docs/rollback.md")
    rb.add_argument("action", choices=("status", "decide", "approve", "refuse", "retrigger", "keep"))
    rb.add_argument("run", metavar="RUN", help=RUN_HELP)
    rb.add_argument("--plan", metavar="PLAN.toml", required=True)
    rb.add_argument("--store", metavar="URL")
    rb.add_argument("--trigger", help="decide: the trigger (runbook 6.3), e.g. lock_wait, kill_switch")
    rb.add_argument("--role", choices=ROLES,
                    help="act in this one of your roles (approve/refuse: the role you give or hold back)")
    rb.add_argument("--reason", default="", help="why (required for decide, refuse, retrigger, keep; approve: a note)")
    rb.set_defaults(func=_command("on_run", "cmd_rollback"))

    ak = sub.add_parser("acknowledge", help="acknowledge a failed P1 self-test case with a reason (canary lead, DBA)")
    ak.add_argument("run", metavar="RUN", help=RUN_HELP)
    ak.add_argument("--plan", metavar="PLAN.toml", required=True)
    ak.add_argument("--store", metavar="URL")
    ak.add_argument("--case", required=True, help="the failed P1 case, e.g. TC-06")
    ak.add_argument("--reason", required=True, help="why the canary may go with it failed (audited)")
    ak.set_defaults(func=_command("on_run", "cmd_acknowledge"))

    ls = sub.add_parser("lesson", help="add a row to a run's lessons-learned table (runbook 8.3; in the report)")
    ls.add_argument("run", metavar="RUN", help=RUN_HELP)
    ls.add_argument("--plan", metavar="PLAN.toml", required=True)
    ls.add_argument("--store", metavar="URL")
    ls.add_argument("--what", required=True, help="what happened")
    ls.add_argument("--impact", default="", help="its impact")
    ls.add_argument("--cause", default="", help="the root cause")
    ls.add_argument("--action", default="", help="the action item")
    ls.set_defaults(func=_command("on_run", "cmd_lesson"))

    rp = sub.add_parser("replay", help="re-evaluate a finished run's stored samples under another profile, "
                                       "or judge exported samples (--samples FILE)")
    common(rp)
    rp.add_argument("run", metavar="RUN", nargs="?", help=RUN_HELP + "; not with --samples")
    rp.add_argument("--samples", metavar="FILE", help="JSON Lines of {ts, metric, value, group}: judged without "
                    "a store or a server")
    rp.add_argument("--change-at", metavar="TS", help="with --samples: when the change began (ISO-8601); "
                    "default: the first sample + the profile's baseline_minutes")
    rp.add_argument("--profile", metavar="FILE", help="TOML threshold overrides (as the plan's [thresholds])")
    rp.add_argument("--tenant")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=_command("replay", "cmd_replay"))

    au = sub.add_parser("audit", help="the audit trail: verify its hash chain")
    au_sub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    av = au_sub.add_parser("verify", help="walk the hash chain: exit 0 intact, 1 tampered, 2 cannot check")
    common(av)
    av.add_argument("--expect-head", metavar="HASH",
                    help="a head hash recorded earlier: proves no row up to it was cut from the end")
    av.add_argument("--json", action="store_true")
    av.set_defaults(func=_command("audit", "cmd_audit_verify"))

    e = sub.add_parser("execute", help="run the executor headless on a plan")
    common(e, plan_required=True)
    e.add_argument("--run", help="execute this existing run (e.g. take over after a crash): " + RUN_HELP)
    e.add_argument("--interval", type=float, default=5.0, help="monitoring sample interval in seconds (default 5)")
    e.set_defaults(func=_command("runbook", "cmd_execute"))
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
    from engine.drill.fault_base import FaultError
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


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: the command unwinds as after Ctrl+C, so what it started is stopped (a
    drill's servers, its workload, the self-test's sandbox) instead of left running by Python's
    default, which ends the process where it stands."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.name = signal.Signals(signum).name
        self.code = 128 + signum  # as a shell reports a process the signal ended


@contextmanager
def _unwinding_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Terminated`` while the command runs (main thread only; a
    handler the process set itself is kept). The console installs its own while it is open: there
    they close it as Ctrl+Q does."""
    before: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                before[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes (README "Exit codes"): 0 done, 1 error, 2 usage (bad input), 3 refused."""
    args = build_parser().parse_args(argv)
    with _unwinding_on_signals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
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
    except Terminated as exc:
        print(f"terminated ({exc.name}): what the command started was stopped", file=sys.stderr)
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
