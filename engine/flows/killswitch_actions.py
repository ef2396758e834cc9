"""Turning the kill switch on and off: the one engine function for each, that the console (F9,
F8, F7), the CLI (``kill`` / ``unkill``) and the HTTP API call (docs/kill-switch.md).

``activate`` never fails because of its input: the reason (and the actor) are cleaned with
``engine.domain.text.clean_text`` and the cleaning is noted in the result and the audit trail. When the
switch cannot be set (the remote API down, the store locked or unreadable) it still stops the
ALTER in flight on the target, audits what it could in the local store, and its result says
plainly which part was not done and what to do. ``deactivate`` checks the role first (a refusal is
audited) and wants a reason.

Tenant and connection ids are checked as the API checks them (``engine.domain.identifiers.check_slug``)
and, by ``check_target``, against the ids the plan and the store know: a switch that covers
nothing real is refused ("did you mean acme?"), never reported as a success.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_fixed

from engine.adapters.killswitch import SCOPES, KillSwitchBackend, await_watchers, wake_watchers
from engine.domain.identifiers import IdentifierError, check_slug
from engine.domain.roles import may, needed, role_words, roles_and
from engine.domain.tenancy import GLOBAL_TENANT
from engine.domain.text import clean_text

ACTOR_LIMIT = 200  # the store's updated_by column


class KillTargetError(ValueError):
    """A tenant or connection id that is malformed or names nothing the plan or the store knows."""


@dataclass
class KillResult:
    """What ``activate`` / ``deactivate`` did, for the caller to show and to choose an exit code.

    Every text in it is cleaned (no control character, no terminal escape): a front end can show
    ``lines()`` as they are."""

    action: str  # activate | deactivate
    scopes: tuple[str, ...]
    tenant_id: str
    connection_id: str
    actor: str
    via: str
    reason: str = ""  # as recorded (cleaned)
    cleaned: tuple[str, ...] = ()  # what the cleaning of the reason changed
    refused: str | None = None  # the role check (or a missing reason) said no: nothing was set
    refused_usage: bool = False  # the refusal is bad input (exit 2), not a role (exit 3)
    switch_set: bool = False  # every scope asked for is recorded in the backend
    switch_error: str | None = None  # why the switch could not be set
    killed: list[tuple[str, int]] = field(default_factory=list)  # (run id, server thread): ALTERs stopped, index absent
    # (run id, "idx on schema.table"): the ALTER had committed before the kill took — the index is on the table
    finished_before: list[tuple[str, str]] = field(default_factory=list)
    finished: list[tuple[str, str]] = field(default_factory=list)  # (run id, how the enforcer finished it)
    alter_errors: list[str] = field(default_factory=list)  # an ALTER that could not be killed
    audit_error: str | None = None  # the local audit could not be written
    remote: bool = False  # the switch lives behind the kill-switch API
    # A re-press: the scope was already on. Its row is left as it was (the first reason, who set it,
    # since when); this press is audited as ``kill_switch_repressed``.
    already_on: bool = False
    on_by: str = ""  # who turned it on (cleaned)
    on_reason: str = ""  # why, as first recorded (cleaned)
    on_since: datetime | None = None  # when (None: the backend does not say)
    # (tenant, run id, action, details): the direct kills, audited once the switch is settled
    _killed_directly: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """Everything asked was done: the switch is set and no ALTER was left running or let its
        index in (an ALTER that committed before the kill took is not a kill)."""
        return self.refused is None and self.switch_set and not self.alter_errors and not self.finished_before

    def where(self) -> str:
        """"global", "tenant acme", "connection orders-primary of acme"."""
        parts = []
        for scope in self.scopes:
            if scope == "tenant":
                parts.append(f"tenant {self.tenant_id}")
            elif scope == "connection":
                parts.append(f"connection {self.connection_id} of {self.tenant_id}")
            else:
                parts.append(scope)
        return ", ".join(parts)

    def already_line(self) -> str:
        return (f"kill switch was already ON ({self.where()}) {already_words(self.on_by, self.on_since, self.on_reason)}; "
                f"it stays on with that reason, and this press by {self.actor} is in the audit trail")

    def lines(self, plan: str | None = None) -> list[str]:
        """The outcome as a person reads it: first what was done, then what was not and what to do.
        ``plan``: the plan file, for the rollback command a finished ALTER calls for."""
        out: list[str] = []
        if self.refused is not None:
            return [f"refused: {self.refused}"]
        what = "ACTIVE" if self.action == "activate" else "deactivated"
        if self.already_on:
            out.append(self.already_line())
        elif self.switch_set:
            out.append(f"kill switch {what} ({self.where()}) by {self.actor}"
                       + (f": {self.reason}" if self.reason and self.action == "deactivate" else ""))
        else:
            where = "on the kill-switch API" if self.remote else "in the store"
            out.append(f"kill switch NOT {'set' if self.action == 'activate' else 'turned off'} {where} "
                       f"({self.where()}): {self.switch_error}")
        if self.cleaned:
            out.append("the reason was cleaned before it was recorded: " + "; ".join(self.cleaned))
        for run_id, thread in self.killed:
            out.append(f"killed the ALTER of run {run_id} (server thread {thread}); its index is verified absent")
        for run_id, index in self.finished_before:
            out.append(finished_before_line(run_id, index, self.switch_set, plan))
        for run_id, how in self.finished:
            out.append(f"run {run_id}: {how}")
        for err in self.alter_errors:
            out.append(f"ALTER NOT killed: {err}")
        if self.audit_error:
            out.append(f"not in the audit trail: {self.audit_error}")
        if not self.switch_set and self.action == "activate":
            stopped = ("the ALTER in flight was stopped on the target; " if self.killed else
                       "the ALTER had finished (its index is on the table, see above); " if self.finished_before else
                       "no ALTER of this tenant was in flight on the target; " if not self.alter_errors else "")
            out.append(f"what to do: {stopped}nothing else stops a run from starting until the switch is set — "
                       + ("press F9 again once the API answers (or ask whoever runs it), or stop the "
                          "executor's console" if self.via == "console" and self.remote else
                          "press F9 again" if self.via == "console" else
                          "run the same kill command again once the API answers, or ask whoever runs the "
                          "kill-switch API" if self.remote else "run the same kill command again"))
        elif not self.switch_set:
            out.append("what to do: the switch is still on; try again" + (" once the API answers" if self.remote else ""))
        return out


def already_words(by: str, since: datetime | None, reason: str) -> str:
    """"since 14:05 UTC by nok@10.0.0.9 (p99 doubling)": who turned the switch on, when and why."""
    when = f"since {since.astimezone(UTC):%H:%M} UTC " if since is not None else ""
    return f"{when}by {by or '?'}" + (f" ({reason})" if reason else "")


def finished_before_line(run_id: str, index: str, switch_set: bool, plan: str | None = None) -> str:
    """What a person hears when the ALTER committed before the kill took: the index is there, and
    removing it is the manual rollback (docs/kill-switch.md, docs/rollback.md)."""
    plan_arg = clean_text(plan, 200).text if plan else "PLAN.toml"
    return (f"the ALTER of run {run_id} had finished before the kill: index {index} is on the table; the switch is "
            f"{'ON' if switch_set else 'NOT set (see above)'}; remove it with the rollback: canary-console rollback "
            f"decide {run_id} --plan {plan_arg} --trigger kill_switch --reason \"…\" (the canary lead or the DBA "
            "decides, the other approves; the console's Rollback screen does the same)")


def _first_line(exc: BaseException) -> str:
    text = (str(exc).splitlines() or [""])[0]
    return clean_text(text or exc.__class__.__name__, 300).text


def _said(exc: BaseException) -> str:
    from engine.adapters.killswitch import KillSwitchApiError

    try:
        from engine.adapters.store.backend import StoreError
    except Exception:  # noqa: BLE001 - the store's modules failed to import: said as the exception
        StoreError = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(exc, KillSwitchApiError) or (StoreError and isinstance(exc, StoreError)):
        return _first_line(exc)
    return f"{exc.__class__.__name__}: {_first_line(exc)}"


def _audit(store: Any, result: KillResult, tenant: str, action: str, details: dict[str, Any],
           run_id: str | None = None) -> None:
    if store is None:
        return
    try:
        store.audit(tenant, result.actor, action, run_id, details)
    except Exception as exc:  # noqa: BLE001 - the kill goes on; the result says what is missing
        result.audit_error = f"{action}: {_said(exc)}"


def _audit_tenant(tenant_id: str) -> str:
    return tenant_id if tenant_id and tenant_id != GLOBAL_TENANT else GLOBAL_TENANT


# --- ids -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownIds:
    """The tenants and connections a switch can cover: the plan's and the store's."""

    tenants: frozenset[str] = frozenset()
    connections: frozenset[tuple[str, str]] = frozenset()  # (tenant, connection id)

    def connections_of(self, tenant: str) -> list[str]:
        return sorted(c for t, c in self.connections if t == tenant)


def known_ids(store: Any | None, plan: Any | None = None) -> KnownIds:
    """Every tenant and connection the plan names or the store has a row for. A store that cannot
    be read adds nothing (the plan's ids still count)."""
    tenants: set[str] = set()
    conns: set[tuple[str, str]] = set()
    if plan is not None:
        tenants.add(plan.tenant)
        conns.add((plan.tenant, plan.connection.id))
    if store is not None:
        try:
            from sqlmodel import select

            from engine.adapters.store import ConnectionProfileRow, ExecutionRun, KillSwitchState
            from engine.adapters.store.models import Tenant

            with store.session() as s:
                tenants.update(t for t in s.exec(select(Tenant.id)).all())
                for t, c in s.exec(select(ConnectionProfileRow.tenant_id, ConnectionProfileRow.id)).all():
                    tenants.add(t)
                    conns.add((t, c))
                for t, c in s.exec(select(ExecutionRun.tenant_id, ExecutionRun.connection_profile_id).distinct()).all():
                    tenants.add(t)
                    conns.add((t, c))
                for t, sc, c in s.exec(select(KillSwitchState.tenant_id, KillSwitchState.scope,
                                              KillSwitchState.connection_profile_id)).all():
                    if t != GLOBAL_TENANT:
                        tenants.add(t)
                        if sc == "connection" and c:
                            conns.add((t, c))
        except Exception:  # noqa: BLE001 - an unreadable store knows nothing; the plan still does
            pass
    tenants.discard(GLOBAL_TENANT)
    return KnownIds(frozenset(tenants), frozenset(conns))


def _suggest(value: str, known: Iterable[str]) -> str:
    known = sorted(set(known))
    if not known:
        return "no tenant or connection is known to the plan or the store yet"
    by_lower = {k.lower(): k for k in known}
    close = [by_lower[value.lower()]] if value.lower() in by_lower else \
        [by_lower[m] for m in difflib.get_close_matches(value.lower(), list(by_lower), n=3, cutoff=0.6)]
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{hint}known: {', '.join(known[:12])}{', …' if len(known) > 12 else ''}"


def check_target(scope: str, tenant_id: str | None, connection_id: str | None, known: KnownIds) -> tuple[str, str]:
    """(tenant, connection) for a switch of ``scope``, checked: well-formed (a slug, as the API
    wants) and naming a tenant (and connection) the plan or the store knows. ``KillTargetError``
    otherwise, naming the known ids. The global scope needs no tenant."""
    if scope not in SCOPES:
        raise KillTargetError(f"unknown scope {scope!r}: use {', '.join(SCOPES)}")
    tenant = tenant_id or ""
    conn = connection_id or ""
    if scope == "global" and not tenant:
        return GLOBAL_TENANT, ""
    safe = clean_text(tenant, 80).text
    try:
        check_slug(tenant, "tenant")
    except IdentifierError:
        raise KillTargetError(f"tenant {safe!r} is not a tenant id (lower-case letters, digits, '.', '_' or '-'); "
                              + _suggest(tenant, known.tenants)) from None
    if tenant not in known.tenants:
        raise KillTargetError(f"unknown tenant {safe!r}: " + _suggest(tenant, known.tenants))
    if scope == "connection":
        if not conn:
            raise KillTargetError("a connection kill switch needs the connection id (--connection ID or --plan)")
        safe_c = clean_text(conn, 80).text
        try:
            check_slug(conn, "connection")
        except IdentifierError:
            raise KillTargetError(f"connection {safe_c!r} is not a connection id; "
                                  + _suggest(conn, known.connections_of(tenant))) from None
        if conn not in known.connections_of(tenant):
            raise KillTargetError(f"unknown connection {safe_c!r} of tenant {tenant}: "
                                  + _suggest(conn, known.connections_of(tenant)))
    else:
        conn = ""
    return tenant, conn


# --- activate ------------------------------------------------------------------------------------


def activate(store: Any, backend: KillSwitchBackend, tenant_id: str, scope: str, actor: str,
             roles: Iterable[str] = (), reason: str | object = "", connection_id: str = "", *,
             via: str = "cli", worker: str = "", target_for: Callable[[Any], Any] | None = None,
             runs: Sequence[Any] | None = None, take_over: bool = False, clock: Any = None,
             retry_for: float = 0.0, on_progress: Callable[[str, str], None] | None = None,
             enforce: bool = True, add_reason: bool = False) -> KillResult:
    """Turn the kill switch on for ``scope`` and stop the ALTER in flight.

    ``tenant_id`` / ``connection_id`` are those of the switch (``check_target`` them first when
    they come from a person). ``target_for(run)`` gives the run's target (default: the stored
    connection profile); ``runs`` the runs to look at when the store cannot be read (the console
    passes the one it shows). ``retry_for``: seconds to keep retrying a store that another
    process holds locked (the ALTER is killed directly at the first failure, without waiting);
    ``on_progress(severity, text)`` hears of the retries. Never raises.

    A scope already on is a re-press: its row keeps the first reason and who set it (the switch is
    not set again), the press is audited as ``kill_switch_repressed``, and the ALTER in flight is
    still stopped. ``add_reason`` (F7: "why is it on") sets the row's reason instead. A remote
    backend is not read first (an API that hangs must not delay the kill): the API's own
    ``activate`` decides on its store.
    """
    from engine.adapters.killswitch import RemoteKillSwitch

    who = clean_text(actor, ACTOR_LIMIT)
    why = clean_text(reason)
    conn = connection_id if scope == "connection" else ""
    result = KillResult("activate", (scope,), tenant_id, conn, who.text or "unknown", via, why.text, why.changes,
                        remote=isinstance(backend, RemoteKillSwitch))
    audit_tenant = _audit_tenant(tenant_id)
    if not may("kill_switch_activate", roles):  # the table opens it to everyone; kept for the day it does not
        result.refused = f"activating the kill switch needs the {role_words(needed('kill_switch_activate'))} role"
        _audit(store, result, audit_tenant, "kill_switch_activation_refused",
               {"scope": scope, "roles": sorted(roles), "via": via})
        return result
    if scope not in SCOPES or (scope != "global" and not tenant_id) or (scope == "connection" and not conn):
        result.refused, result.refused_usage = (f"scope {clean_text(scope, 40).text!r} needs "
                                                f"{'a connection id' if scope == 'connection' else 'a tenant'}"
                                                if scope in SCOPES else f"unknown scope: use {', '.join(SCOPES)}"), True
        return result

    earlier = None if add_reason or result.remote else _already_on(backend, tenant_id, scope, conn)
    if earlier is not None:
        result.switch_set = result.already_on = True
        result.on_by = clean_text(earlier.set_by, ACTOR_LIMIT).text
        result.on_reason, result.on_since = clean_text(earlier.reason).text, earlier.updated_at
        woken_at = time.monotonic()
        woken = wake_watchers()
        await_watchers(woken)  # the ALTER in flight is stopped all the same, before any audit
        _audit(store, result, audit_tenant, "kill_switch_repressed",
               {"scope": scope, "connection_id": conn or None, "reason": result.reason, "via": via,
                "set_by": earlier.set_by, "on_since": earlier.updated_at.isoformat() if earlier.updated_at else None,
                "kept_reason": earlier.reason})
        if result.cleaned:
            _audit(store, result, audit_tenant, "kill_switch_reason_cleaned",
                   {"scope": scope, "connection_id": conn or None, "changes": list(result.cleaned), "via": via})
        if enforce and tenant_id and tenant_id != GLOBAL_TENANT:
            _enforce(store, backend, result, tenant_id, worker, target_for, take_over, clock)
        _credit_watchers(result, woken, woken_at)
        return result

    started = time.monotonic()
    woken: list[Any] = []
    told = False

    def set_switch() -> None:
        try:
            backend.set(tenant_id if scope != "global" else (tenant_id or GLOBAL_TENANT), scope, True, result.actor,
                        result.reason, conn)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the ALTER is stopped below
            result.switch_error = _said(exc)
            if not told:
                _kill_directly(store, result, tenant_id, conn, worker, target_for, runs)  # no waiting for the switch
            raise

    def retrying_says(_state: RetryCallState) -> None:
        nonlocal told
        if not told and on_progress is not None:
            on_progress("warning", f"kill switch not recorded yet, retrying for up to {retry_for:.0f} s: "
                                   f"{result.switch_error}")
        told = True

    # A store another process holds locked is tried again every 0.1 s for ``retry_for`` seconds;
    # any other failure ends at once. The ALTER was killed directly at the first failure.
    try:
        Retrying(stop=stop_after_delay(retry_for), wait=wait_fixed(0.1), retry=retry_if_exception(_is_store_locked),
                 before_sleep=retrying_says, reraise=True)(set_switch)
        result.switch_set, result.switch_error = True, None
        # This process's own executor kills its ALTER now, not at its next poll; the rest of the
        # activation (audit rows, looking for other ALTERs) waits for its KILL to be out.
        woken = wake_watchers()
        await_watchers(woken)
    except Exception as exc:  # noqa: BLE001 - said in the result; the kill went out directly
        if _is_store_locked(exc):
            result.switch_error = f"{result.switch_error} (retried for {time.monotonic() - started:.0f} s)"
    for run_tenant, run_id, action, details in result._killed_directly:
        _audit(store, result, run_tenant, action,
               dict(details, enforcer=worker or result.actor, via=via,
                    switch=f"not recorded when killed: {details.pop('switch_error', None)}"), run_id)
    if told and result.switch_set and on_progress is not None:
        on_progress("information", f"kill switch recorded after {time.monotonic() - started:.1f} s "
                                   "(the store was locked by another process)")
    if result.switch_set:
        if result.cleaned:
            _audit(store, result, audit_tenant, "kill_switch_reason_cleaned",
                   {"scope": scope, "connection_id": conn or None, "changes": list(result.cleaned), "via": via})
        if enforce and tenant_id and tenant_id != GLOBAL_TENANT:
            _enforce(store, backend, result, tenant_id, worker, target_for, take_over, clock)
        _credit_watchers(result, woken, started)
    else:
        _audit(store, result, audit_tenant, "kill_switch_activation_failed",
               {"scope": scope, "connection_id": conn or None, "reason": result.reason,
                "cleaned": list(result.cleaned) or None, "error": result.switch_error, "via": via,
                "remote": result.remote, "alters_killed": [r for r, _ in result.killed] or None,
                "alters_finished_before": [r for r, _ in result.finished_before] or None,
                "alter_errors": result.alter_errors or None})
    return result


def _already_on(backend: KillSwitchBackend, tenant_id: str, scope: str, conn: str) -> Any:
    """The scope's state when the backend reads it ON (a ``ScopeState``); None when it is off or
    cannot be read (a fail-closed reading says nothing about who set it: the switch is set)."""
    try:
        reading = backend.read(tenant_id or GLOBAL_TENANT, conn)
    except Exception:  # noqa: BLE001 - unknown: set it
        return None
    if reading.error is not None:
        return None
    state = reading.scopes.get(scope)
    return state if state is not None and state.active else None


def _is_store_locked(exc: BaseException) -> bool:
    try:
        from engine.adapters.store.backend import StoreLocked
    except Exception:  # noqa: BLE001
        return False
    return isinstance(exc, StoreLocked)


def _enforce(store: Any, backend: KillSwitchBackend, result: KillResult, tenant_id: str, worker: str,
             target_for: Callable[[Any], Any] | None, take_over: bool, clock: Any) -> None:
    from engine.flows.enforce import FINISHED_BEFORE, enforce_kill_switch

    try:
        for e in enforce_kill_switch(store, backend, tenant_id, result.actor, worker or result.actor,
                                     target_for=target_for, clock=clock, take_over=take_over):
            if e.killed_thread:
                result.killed.append((e.run_id, e.killed_thread))
            if e.kill is not None and e.kill.outcome == FINISHED_BEFORE:
                result.finished_before.append((e.run_id, e.kill.index))
            if e.finished:
                result.finished.append((e.run_id, e.finished))
            result.alter_errors.extend(clean_text(err, 400).text for err in e.errors)
    except Exception as exc:  # noqa: BLE001 - the switch is on; the executor stops on its next read
        result.alter_errors.append(f"could not look for the ALTER in flight: {_said(exc)}; the switch is on, so "
                                   "the run's executor stops at its next read of it")


def _credit_watchers(result: KillResult, woken: list[Any], since: float) -> None:
    """What this process's own executors, woken by the activation, killed (their KILL out after
    ``since``) under the switch set (its scope covers their run) and the enforcement did not list:
    on a loaded machine the executor may have settled its run (cancelled) before the enforcement
    looked for running ones, and the activation must still say what it stopped. Waits for each such
    ALTER's end as the enforcement would."""
    from engine.flows.enforce import FINISHED_BEFORE, KILL_CONFIRM_S, KILLED

    scope = result.scopes[0] if result.scopes else ""
    listed = {run_id for run_id, _ in result.killed} | {run_id for run_id, _ in result.finished_before}
    for watch in woken:
        if watch.run_id in listed or watch.killed_at is None or watch.killed_at < since:
            continue
        if scope != "global" and (watch.tenant_id != result.tenant_id
                                  or (scope == "connection" and watch.connection_id != result.connection_id)):
            continue
        if not watch.settled.wait(KILL_CONFIRM_S) or watch.outcome is None:
            continue
        kill = watch.outcome
        if kill.outcome == KILLED and kill.thread is not None:
            result.killed.append((watch.run_id, kill.thread))
        elif kill.outcome == FINISHED_BEFORE:
            result.finished_before.append((watch.run_id, kill.index))


def _kill_directly(store: Any, result: KillResult, tenant_id: str, conn: str, worker: str,
                   target_for: Callable[[Any], Any] | None, runs: Sequence[Any] | None) -> None:
    """The switch is not set (yet): stop the ALTERs in flight that it would cover, on the target,
    found by the tag they carry — the executor then sees its ALTER killed and stops."""
    from engine.flows.enforce import FINISHED_BEFORE, KILLED, kill_run_alter, stored_target

    if runs is not None or not tenant_id or tenant_id == GLOBAL_TENANT or store is None:
        candidates: list[Any] = list(runs or [])  # the caller's: the store may be what is failing
    else:
        try:
            candidates = list(store.find_runs(tenant_id, ["running"]))
        except Exception:  # noqa: BLE001 - the store is what failed: nothing more to look at
            candidates = []
    target_for = target_for or stored_target(store)
    for run in candidates:
        if getattr(run, "status", None) != "running" or run.alter_started_at is None or run.alter_finished_at:
            continue
        if conn and run.connection_profile_id != conn:
            continue
        try:
            # Directly on the target: the switch is not set, so no executor would kill on reading it.
            kill = kill_run_alter(target_for(run), run)
        except Exception as exc:  # noqa: BLE001 - said in the result
            result.alter_errors.append(f"could not kill the ALTER of run {run.id}: {_said(exc)}")
            continue
        # Audited once the switch is settled: the store may be what is failing.
        details = dict(kill.details(), switch_error=result.switch_error)
        if kill.outcome == KILLED and kill.thread is not None:
            result.killed.append((run.id, kill.thread))
            result._killed_directly.append((run.tenant_id, run.id, "alter_killed", details))
        elif kill.outcome == FINISHED_BEFORE:
            result.finished_before.append((run.id, kill.index))
            result._killed_directly.append((run.tenant_id, run.id, "alter_finished_before_kill", details))
        elif kill.problem() is not None:
            result.alter_errors.append(clean_text(kill.problem() or "", 400).text)
            result._killed_directly.append((run.tenant_id, run.id, "alter_kill_failed", details))


# --- deactivate ----------------------------------------------------------------------------------


def deactivate(store: Any, backend: KillSwitchBackend, tenant_id: str, scopes: Sequence[str], actor: str,
               roles: Iterable[str], reason: str | object, connection_id: str = "", *, via: str = "cli") -> KillResult:
    """Turn the kill switch off for ``scopes``: the canary lead or the DBA, with a reason. A refusal
    (role, or no reason) is audited and nothing is changed. Never raises."""
    from engine.adapters.killswitch import RemoteKillSwitch

    roles = sorted(set(roles))
    who = clean_text(actor, ACTOR_LIMIT)
    why = clean_text(reason)
    scopes = tuple(scopes)
    conn = connection_id if "connection" in scopes else ""
    result = KillResult("deactivate", scopes, tenant_id, conn, who.text or "unknown", via, why.text, why.changes,
                        remote=isinstance(backend, RemoteKillSwitch))
    audit_tenant = _audit_tenant(tenant_id)
    if not may("kill_switch_deactivate", roles):
        result.refused = (f"deactivating the kill switch needs the {role_words(needed('kill_switch_deactivate'))} "
                          f"role; {result.actor} holds {roles_and(roles)}. Ask the canary lead or the "
                          "DBA; this attempt is in the audit log.")
        _audit(store, result, audit_tenant, "kill_switch_deactivation_refused",
               {"scope": ", ".join(scopes), "connection_id": conn or None, "roles": roles,
                "why": "needs canary_lead or dba", "via": via, "reason": result.reason})
        return result
    if not result.reason:
        result.refused, result.refused_usage = ("a reason is required to deactivate the kill switch (why it "
                                                "is safe to go on)"), True
        _audit(store, result, audit_tenant, "kill_switch_deactivation_refused",
               {"scope": ", ".join(scopes), "connection_id": conn or None, "roles": roles,
                "why": "no reason given", "via": via})
        return result
    if not scopes or any(s not in SCOPES for s in scopes):
        result.refused, result.refused_usage = "nothing to deactivate: no active scope was named", True
        return result
    done: list[str] = []
    for scope in scopes:
        try:
            backend.set(tenant_id if scope != "global" else (tenant_id or GLOBAL_TENANT), scope, False,
                        result.actor, result.reason, conn)
            done.append(scope)
        except Exception as exc:  # noqa: BLE001 - said in the result; the switch stays on
            result.switch_error = f"{scope}: {_said(exc)}"
            break
    result.switch_set = len(done) == len(scopes)
    if done and not result.switch_set:
        result.switch_error = f"{result.switch_error} (turned off: {', '.join(done)}; the rest stays on)"
    if result.cleaned and done:
        _audit(store, result, audit_tenant, "kill_switch_reason_cleaned",
               {"scope": ", ".join(done), "changes": list(result.cleaned), "via": via})
    return result
