"""The CLI's commands (``canary-console …``), a module each, loaded only when that command runs
(console/cli.py builds the parser): what they share — the exit codes, the error a command raises
to say what went wrong and the way out, and opening the plan, the store and the kill switch."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from engine.adapters.identity import current_identity
from engine.domain.plan import Plan, load_plan
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


def _on_run(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """The plan, its store, who is at the keyboard and the run ``args.run`` names — its whole id or
    the start of it the screens show (``run 3f2a9c1e``), if only one of the tenant's runs has it
    (exit 1 when none or several do): what every command on one run starts with. ``args.run`` is
    set to the whole id."""
    plan = load_plan(args.plan)
    store = _store(args, plan)
    run = resolve_run(store, plan.tenant, args.run)
    args.run = run.id
    return plan, store, current_identity(), run


def resolve_run(store: Any, tenant: str, given: str) -> Any:
    """The tenant's run ``given`` names: its whole id, or a start of it only one run has."""
    run = store.get_run(tenant, given)
    if run is not None:
        return run
    said = for_terminal(given)
    matches = store.runs_by_prefix(tenant, given) if len(given) >= 4 else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        more = "at least " if len(matches) == 5 else ""
        raise CliError(f"run {said} is the start of {more}{len(matches)} runs of tenant {tenant} "
                       f"({', '.join(m.id for m in matches)}): give more of the id", EXIT_FAILED)
    hint = " (give at least 4 characters of the id, e.g. the 8 the screens show)" if len(given) < 4 else ""
    raise CliError(f"run {said} not found for tenant {tenant}{hint}; `canary-console status --plan PLAN` lists "
                   "the recent runs", EXIT_FAILED)
