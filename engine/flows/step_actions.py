"""The runbook's people actions on steps 1–8 that are not a flow of their own (docs/runbook.md): one
function each — the role check from the one table (engine/flows/guard.py), the work, the audit
entry. The console's thread workers call them and show the result; the CLI and the HTTP API call the
same ones where they offer the action (docs/architecture.md lists who calls what).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.flows import guard, prechecks

if TYPE_CHECKING:
    from engine.adapters.store import ExecutionRun, Store
    from engine.adapters.webhook import WebhookResult
    from engine.domain.plan import Plan
    from engine.views.report_model import ReportFacts

# What a console writes to the audit trail that is neither a flow's work nor a refusal: a person
# looked at or copied something (docs/audit.md). ``note`` refuses any other name.
CONSOLE_NOTES = frozenset({"step_locked", "take_over", "run_announced", "announcement_copied", "report_copied"})


def note(store: Store, tenant: str, actor: str, action: str, run_id: str | None, details: dict[str, Any]) -> None:
    if action not in CONSOLE_NOTES:
        raise ValueError(f"{action!r} is not a console note; a user action has its own flow function")
    store.audit(tenant, actor, action, run_id, details)


# --- step 1: the plan --------------------------------------------------------------------------------

def mark_present(store: Store, tenant: str, run_id: str, actor: str, roles: Iterable[str], now: datetime) -> None:
    """Runbook 2.5.2: a console opened on the run says its person is there, in each of their roles."""
    from engine.adapters.store import Approval

    have = {(a.role, a.actor) for a in store.approvals(tenant, run_id, "presence")}
    for role in roles:
        if (role, actor) not in have:
            store.add_approval(Approval(tenant_id=tenant, execution_run_id=run_id, kind="presence", role=role,
                                        actor=actor, note="opened the console on this run", created_at=now))


def begin_prechecks(plan: Plan, store: Store, backend: Any, target: Any, actor: str, roles: Iterable[str],
                    worker: str, clock: Any) -> ExecutionRun:
    """Create the run (scheduled): the prechecks begin. ``ScopeLockError`` while another run holds
    the scope."""
    from engine.flows.executor import Executor

    roles = tuple(roles)
    guard.check(store, plan.tenant, actor, roles, "begin_prechecks")
    run = Executor(plan, store, backend, target, actor, worker, clock=clock).create_run()
    mark_present(store, plan.tenant, run.id, actor, roles, clock.now())
    return run


# --- step 2: the prechecks ---------------------------------------------------------------------------

def run_prechecks(plan: Plan, store: Store, backend: Any, target: Any, run_id: str, actor: str,
                  now: datetime) -> None:
    """The checks the console runs itself, recorded one by one, then the time and the team."""
    for finding in prechecks.auto_checks(plan, store, backend, target):
        prechecks.record(store, plan, run_id, finding, actor)
    present = {a.role for a in store.approvals(plan.tenant, run_id, "presence")}
    for finding in (prechecks.off_peak_finding(plan, now), prechecks.present_finding(present)):
        prechecks.record(store, plan, run_id, finding, actor)


def kill_switch_test(plan: Plan, store: Store, backend: Any, run_id: str, actor: str, roles: Iterable[str]) -> None:
    guard.check(store, plan.tenant, actor, roles, "kill_switch_test", run_id)
    for finding in prechecks.kill_switch_test(plan, backend, actor, store, run_id):
        prechecks.record(store, plan, run_id, finding, actor)


def scratch_test(plan: Plan, store: Store, target: Any, run_id: str, actor: str, roles: Iterable[str]) -> None:
    guard.check(store, plan.tenant, actor, roles, "scratch_test", run_id)
    prechecks.record(store, plan, run_id, prechecks.scratch_rollback_test(plan, target, run_id, store, actor), actor)


def record_test(store: Store, plan: Plan, case: str, status: str, reference: str, actor: str,
                roles: Iterable[str], now: datetime) -> None:
    """Runbook 2.1: a TC row filled by a person (a result from elsewhere, with its reference)."""
    from engine.adapters.store import PrecheckResult
    from engine.domain.cases import NAMES, PRIORITY

    guard.check(store, plan.tenant, actor, roles, "record_test")
    store.save_precheck(PrecheckResult(
        tenant_id=plan.tenant, check_id=case, priority=PRIORITY[case], status=status,
        detail=f"{NAMES[case]}: recorded by hand — {reference}"[:2000], source="person",
        recorded_by=actor, recorded_at=now))


def _approve(store: Store, tenant: str, run_id: str, kind: str, role: str, actor: str, note: str,
             now: datetime) -> None:
    from engine.adapters.store import Approval

    store.add_approval(Approval(tenant_id=tenant, execution_run_id=run_id, kind=kind, role=role, actor=actor,
                                note=note, created_at=now))


def confirm_rollback(store: Store, plan: Plan, run_id: str, actor: str, roles: Iterable[str], now: datetime) -> None:
    """Runbook 2.4.2: the DBA confirms the prepared DROP INDEX and its verification query."""
    guard.check(store, plan.tenant, actor, roles, "confirm_rollback", run_id)
    _approve(store, plan.tenant, run_id, "rollback_prepared", "dba", actor,
             "DROP INDEX and its verification query reviewed", now)


# --- step 3: the table-size gate ---------------------------------------------------------------------

def approve_gate(store: Store, plan: Plan, run_id: str, detail: str, actor: str, roles: Iterable[str],
                 now: datetime) -> None:
    """A WARNING-band table goes on with the DBA's approval (docs/runbook.md, step 3)."""
    guard.check(store, plan.tenant, actor, roles, "size_gate_approval", run_id)
    _approve(store, plan.tenant, run_id, "size_gate", "dba", actor, f"WARNING approved: {detail}", now)


@dataclass(frozen=True)
class GateOutcome:
    """What the size gate found: ``decision`` None when there was none (no table, a cancelled count);
    ``said`` what the person is told; ``told`` how a BLOCK reached the canary lead and the DBA."""

    decision: Any = None
    said: str = ""
    told: str = ""


def check_size(plan: Plan, store: Store, target: Any, run_id: str, actor: str, roles: Iterable[str], *,
               on_size: Callable[[Any], None] = lambda info: None,
               on_count: Callable[[str, float | None], None] = lambda text, fraction: None,
               cancel: Any = None) -> GateOutcome:
    """Runbook step 3: the table's size from the catalogue, an exact count near a band's edge (with
    its progress, cancellable), the decision recorded on the run; a BLOCK cancels the run. Blocking
    I/O (``TargetError`` when the target cannot be read)."""
    from engine.domain.sizegate import gate

    guard.check(store, plan.tenant, actor, roles, "size_gate_check", run_id)
    schema, table = plan.schema, plan.change.table
    with target.session("size-gate") as s:
        info = s.table_info(schema, table)
        if info is None:
            return GateOutcome(said=f"{schema}.{table} does not exist")
        on_size(info)
        decision = gate(info.estimated_rows)
        if decision.needs_exact_count:
            on_count(f"{decision.rule}: counting…", 0.0)
            rows = s.exact_count(schema, table, progress=lambda f: on_count(f"counting exactly… {f:.0%}", f),
                                 cancel=cancel)
            if rows is None:
                store.audit(plan.tenant, actor, "size_gate_count_cancelled", run_id, {})
                on_count("exact count cancelled: no decision (c to count again)", None)
                return GateOutcome()
            decision = gate(rows, exact=True)
            on_count(f"exactly {rows:,} rows", None)
    prechecks.record_gate(store, plan, run_id, decision, actor)
    if decision.band != "BLOCK":
        return GateOutcome(decision)
    told = size_gate_blocked(store, plan, run_id, decision, actor)
    return GateOutcome(decision, f"BLOCK: {decision.rule}. The run is cancelled for this table; the canary lead "
                                 f"and the DBA are notified ({told}).", told)


def size_gate_blocked(store: Store, plan: Plan, run_id: str | None, decision: Any, actor: str) -> str:
    """A BLOCK-band table: audited, the run (if any) cancelled as out of scope, the canary lead and
    the DBA told through the plan's webhook. Returns how they were told."""
    store.audit(plan.tenant, actor, "size_gate_block", run_id, {"rule": decision.rule,
                                                                 "notify": ["canary_lead", "dba"]})
    told = "every console shows it"
    if run_id is None:
        return told
    store.transition(plan.tenant, run_id, "cancelled", actor, fail_reason="out_of_scope",
                     message=f"size gate BLOCK: {decision.rule}")
    if plan.webhook_url:
        from engine.adapters.webhook import post_webhook

        posted = post_webhook(plan.webhook_url, f"🛑 [SIZE GATE BLOCK] {plan.schema}.{plan.change.table}: "
                              f"{decision.rule}. No DDL; run {run_id[:8]} cancelled. @canary-lead @dba")
        told += f"; webhook: {posted.message}"
    return told


# --- step 4: execution ------------------------------------------------------------------------------

def executor_for(plan: Plan, store: Store, backend: Any, target: Any, run_id: str, actor: str, worker: str,
                 clock: Any, interval: float, on_event: Callable[[str, dict[str, Any]], None] | None = None,
                 base_profile: Any = None) -> Any:
    """The executor of ``run_id`` with the run's monitor — the same 60-minute window wherever it runs
    (the console, ``canary-console execute``): a WARNING-band table is watched with the tightened
    profile (docs/thresholds.md). The caller closes ``executor.monitor``."""
    from engine.flows.executor import Executor
    from engine.flows.monitor import Monitor, sources_for

    ex = Executor(plan, store, backend, target, actor, worker, clock=clock, on_event=on_event)
    ex.monitor = Monitor(store, plan.tenant, run_id, sources_for(plan, backend, clock),
                         prechecks.run_profile(plan, store, run_id, base_profile), actor, clock, interval=interval)
    return ex


class PrechecksMissing(PermissionError):
    """Step 4 is locked: what still stands before the ALTER (the CLI: exit 3), each ``Missing`` with
    how to provide it — the console's rule (``runbook.missing_for("execution", …)``), read from the store."""

    def __init__(self, missing: Iterable[Any]):
        self.missing = tuple(missing)
        super().__init__("step 4 (execute) is locked until the prechecks are done; still missing: "
                         + "; ".join(str(m) for m in self.missing))


def execution_missing(store: Store, plan: Plan, run_id: str | None, now: datetime) -> list[Any]:
    """What the console's step 4 still waits for (engine/flows/runbook.py ``missing_for("execution")``:
    the P0 self-test cases, the signed-off prechecks, the prepared rollback, the people present, the
    size gate), on the store's view of the run; [] when the ALTER may go. None: no run yet."""
    from engine.flows.runbook import load_view, missing_for

    return missing_for("execution", load_view(store, plan.tenant, run_id, unstaffed=plan.unstaffed()), now)


def execute(plan: Plan, store: Store, backend: Any, target: Any, run_id: str | None, actor: str,
            roles: Iterable[str], worker: str, clock: Any, interval: float,
            on_event: Callable[[str, dict[str, Any]], None] | None = None, base_profile: Any = None, *,
            take_over: bool = False,
            gated: bool = False) -> Any:
    """Step 4, ``execute`` (the canary lead or the DBA, docs/roles.md): the run's executor and its
    monitor, from the claim through the window — ``take_over``: a run whose driver's lease ran out
    (the target looked at first). The role is asked first, before anything is claimed or created:
    a refusal is audited as ``execute_refused`` and raises ``RoleRefused``. ``run_id`` None (the
    CLI's ``execute`` without ``--run``): the run is created once the role is granted, and said
    through ``on_event("run_created", {"run_id": …})``. Blocking: the console calls it on a worker,
    ``canary-console execute`` in the foreground. ``gated``: step 4's gate is asked after the role
    (``execution_missing``; audited as ``step_locked``, raises ``PrechecksMissing``) — the CLI's
    execute; the console asks it on its own view before, the headless drill walks ``headless_gate``.
    Returns the executor's ``Outcome``."""
    from engine.flows.executor import Executor

    guard.check(store, plan.tenant, actor, tuple(roles), "execute", run_id, take_over=take_over)
    if gated:  # a front end without the console's step gate (the CLI): the same rule, asked here
        missing = execution_missing(store, plan, run_id, clock.now())
        if missing:
            store.audit(plan.tenant, actor, "step_locked", run_id,
                        {"step": "execution", "missing": [str(m) for m in missing][:10], "via": "execute"})
            raise PrechecksMissing(missing)
    if run_id is None:
        run_id = Executor(plan, store, backend, target, actor, worker, clock=clock).create_run().id
        if on_event is not None:
            on_event("run_created", {"run_id": run_id})
    ex = executor_for(plan, store, backend, target, run_id, actor, worker, clock, interval, on_event, base_profile)
    try:
        return ex.take_over(run_id) if take_over else ex.execute(run_id)
    finally:
        ex.monitor.close()


# --- steps 4–8: announcements, checkpoints, the report -----------------------------------------------

def post_text(store: Store, plan: Plan, run_id: str | None, actor: str, text: str, action: str,
              **details: Any) -> WebhookResult:
    """Post to the plan's webhook and audit it (``action``, or ``<action>_failed``)."""
    from engine.adapters.webhook import post_webhook

    result = post_webhook(plan.webhook_url or "", text)
    store.audit(plan.tenant, actor, action if result.ok else f"{action}_failed", run_id,
                dict(details, webhook=result.message))
    return result


def record_checkpoint(store: Store, plan: Plan, run_id: str, label: str, notes: str, ok: bool, actor: str,
                      now: datetime) -> None:
    from engine.adapters.store import Checkpoint

    store.save_checkpoint(Checkpoint(tenant_id=plan.tenant, execution_run_id=run_id, label=label, metrics_ok=ok,
                                     notes=notes, recorded_by=actor, recorded_at=now))


def export_report(store: Store, plan: Plan, run_id: str | None, actor: str, facts: ReportFacts, text: str,
                  view: str, directory: Path, now: datetime) -> Path:
    """Write the report as Markdown and audit it; ``ExportError`` when it cannot be written."""
    from engine.views.report import export_markdown

    path = export_markdown(facts, directory, text=text, now=now)
    store.audit(plan.tenant, actor, "report_exported", run_id, {"view": view, "path": str(path)})
    return path


def post_report(store: Store, plan: Plan, run_id: str | None, actor: str, text: str, view: str) -> WebhookResult:
    from engine.adapters.webhook import post_webhook

    result = post_webhook(plan.webhook_url or "", text)
    store.audit(plan.tenant, actor, "report_posted" if result.ok else "report_post_failed", run_id,
                {"view": view, "webhook": result.message})
    return result


def record_lesson(store: Store, plan: Plan, run_id: str, actor: str, roles: Iterable[str], what: object,
                  impact: object = "", cause: object = "", action: object = "") -> Any:
    """Runbook 8.3: a row of the run's lessons-learned table (``engine.flows.lessons.record_lesson``
    stores it), for anyone the plan names."""
    from engine.flows.lessons import record_lesson as store_lesson

    roles = tuple(roles)
    guard.check(store, plan.tenant, actor, roles, "lesson_record", run_id)
    return store_lesson(store, plan, run_id, actor, roles, what, impact, cause, action)
