"""``canary-console kill`` and ``unkill``: the kill switch from a shell (docs/kill-switch.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from console.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    _backend,
    _plan,
    _store,
    _store_url,
    _tenant,
)
from engine.adapters.identity import current_identity, worker_id
from engine.domain.plan import Plan, PlanError, load_plan
from engine.domain.tenancy import GLOBAL_TENANT
from engine.domain.text import for_terminal

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
    plan, plan_problem = _kill_plan(args.plan)  # a plan it cannot use is said before the store loads
    from engine.flows.killswitch_actions import KillTargetError, activate, check_target, known_ids

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
    plan = _plan(args.plan)
    from engine.flows.killswitch_actions import KillTargetError, check_target, deactivate, known_ids

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
