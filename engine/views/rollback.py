"""The Rollback screen's data (runbook section 6; docs/rollback.md): ``rollback_view`` reads a run's
rollback from the store into plain frozen data — the headline, the matrix's rows, the ladder, the
records and their attempts, R1–R5 — and ``rung_lines`` writes a running rung as the screen's lines.
The rules are engine/domain/rollback_rules.py; the actions engine/flows/rollback_flow.py
and engine/flows/rollback_rungs.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.adapters import sql
from engine.adapters.store import ExecutionRun, RollbackRecord, Store
from engine.domain.clock import wall
from engine.domain.plan import ROLES, Plan
from engine.domain.roles import in_role
from engine.domain.rollback_eta import eta_for_run
from engine.domain.rollback_rules import (
    APPROVAL_KIND,
    FINAL_PHASES,
    TRIGGER_BY_KEY,
    ApprovalState,
    NextStep,
    Vote,
    active_ignore,
    approval_state,
    closed_votes,
    columns_text,
    decision_record,
    expected_columns,
    flow_phase,
    kept_of,
    next_line,
    next_steps,
    people_holding,
    person,
    prepared_record,
    record_kind,
    suggest_trigger,
    who_holds,
)
from engine.domain.text import clean_text


def votes_of(store: Store, run: ExecutionRun, records: Sequence[RollbackRecord] = ()) -> list[Vote]:
    closed = closed_votes(records)
    return [Vote(a.role, a.actor, a.decision, a.note, a.created_at)
            for a in store.approvals(run.tenant_id, run.id, APPROVAL_KIND) if a.id not in closed]


def rollback_state(store: Store, run: ExecutionRun,
              records: Sequence[RollbackRecord]) -> tuple[RollbackRecord | None, ApprovalState | None]:
    decision = decision_record(records)
    if decision is None:
        return None, None
    d = decision.rollback_details or {}
    return decision, approval_state(d["trigger"], (d["decided_role"], d["decided_by"]),
                                    votes_of(store, run, records))


@dataclass(frozen=True)
class RoleRow:
    role: str
    part: str  # decides | approves | records | —
    status: str  # ✓ decided | ✓ approved | ✗ refused | pending | decides | not needed
    actor: str = ""
    at: datetime | None = None
    note: str = ""
    people: tuple[str, ...] = ()  # who in the plan holds the role


@dataclass(frozen=True)
class RungRow:
    rung: str  # ignore | drop
    title: str
    reversible: bool
    sql: str
    verify_sql: str
    undo_sql: str = ""
    state: str = "not applied"  # ignore: not applied | applied | superseded…; drop: not run | done | failed


@dataclass(frozen=True)
class AttemptRow:
    n: int
    at: str
    action: str = ""
    sent: bool = False
    ok: bool = False
    kind: str = ""
    error: str = ""
    note: str = ""  # e.g. "index gone" (found absent: a DROP whose answer was lost)


@dataclass(frozen=True)
class RecordRow:
    id: str
    what: str  # decision | ignore | drop | executor
    status: str
    type: str
    reason: str
    started_at: datetime | None
    completed_at: datetime | None
    error: str = ""
    attempts: tuple[AttemptRow, ...] = ()


@dataclass(frozen=True)
class Step:
    code: str  # R1 … R5
    label: str
    done: bool
    detail: str = ""


@dataclass(frozen=True)
class RollbackView:
    run_id: str
    table: str  # schema.table
    index: str
    columns: str
    run_status: str
    fail_reason: str | None
    index_created_by_run: bool
    as_of: datetime
    status: str  # the headline
    level: str  # ok | warning | error (the screen maps it to a CSS class)
    suggested_trigger: str | None = None
    trigger: str | None = None
    decided_by: tuple[str, str] | None = None  # (role, actor)
    decided_at: datetime | None = None
    reason: str = ""
    metrics: tuple[tuple[str, str], ...] = ()
    state: ApprovalState | None = None
    roles: tuple[RoleRow, ...] = ()
    unstaffed: tuple[str, ...] = ()  # required roles nobody in the plan holds
    ladder: tuple[RungRow, ...] = ()
    point_captured_at: datetime | None = None
    records: tuple[RecordRow, ...] = ()
    steps: tuple[Step, ...] = ()
    escalation: str | None = None
    observation_until: datetime | None = None
    ignored: bool = False
    drop_sql: str = ""
    phase: str = ""  # one of PHASES
    next_steps: tuple[NextStep, ...] = ()
    next_line: str = ""  # "Next: …" or "Final: …"
    kept: dict[str, Any] | None = None  # the canary lead's keep: by, role, at, reason
    eta: str = ""  # R1's ETA, computed from the index's size and the measured timings (engine/domain/rollback_eta.py)

    @property
    def final(self) -> bool:
        return self.phase in FINAL_PHASES


def role_rows(plan: Plan, trigger: str | None, state: ApprovalState | None) -> tuple[RoleRow, ...]:
    """The matrix's rows for one trigger: who decides, who approves, who did (pure)."""
    if trigger is None or trigger not in TRIGGER_BY_KEY:
        return ()
    t = TRIGGER_BY_KEY[trigger]
    decided_role = state.decision_by[0] if state and state.decision_by else None
    required = t.required(decided_role)
    latest: dict[str, Vote] = {}
    for v in state.votes if state else ():
        latest.pop(person(v.actor), None)
        latest[person(v.actor)] = v
    rows = []
    for role in ROLES:
        people = people_holding(plan, role)
        deciding = "records" if t.key == "consensus" else "decides"
        if state and state.decision_by and role == decided_role:
            rows.append(RoleRow(role, deciding, "✓ decided", state.decision_by[1], None, "", people))
            continue
        if role in required and (decided_role is not None or role not in t.deciders):
            refused = next((v for v in latest.values() if v.role == role and v.decision == "refuse"), None)
            who = state.approver_of(role) if state else None
            vote = next((v for v in latest.values() if v.actor == who and v.role == role), None)
            if refused is not None and who is None:
                rows.append(RoleRow(role, "approves", "✗ refused", refused.actor, refused.at, refused.note, people))
            elif vote is not None:
                over = [a for r, a, _ in (state.overruled if state else ()) if r == role]
                note = vote.note + (f" (overrules {', '.join(over)}'s refusal)" if over else "")
                rows.append(RoleRow(role, "approves", "✓ approved", vote.actor, vote.at, note.strip(), people))
            else:
                rows.append(RoleRow(role, "approves", "pending", "", None, "", people))
        elif role in t.deciders:
            part = "decides or approves" if role in t.approvers and len(t.deciders) > 1 else deciding
            rows.append(RoleRow(role, part, "decides" if decided_role is None else "—", "", None, "", people))
        else:
            rows.append(RoleRow(role, "—", "not needed", "", None, "", people))
    return tuple(rows)


def _dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def record_row(r: RollbackRecord) -> RecordRow:
    d = r.rollback_details or {}
    what = record_kind(r)
    attempts = tuple(AttemptRow(int(a.get("n", i + 1)), str(a.get("at", ""))[11:19], a.get("action", ""),
                                bool(a.get("sent")), bool(a.get("ok")), a.get("kind", "") or "",
                                a.get("error", "") or a.get("conflict", "") or "",
                                "index gone" if a.get("index_present") is False else "")
                     for i, a in enumerate(r.attempts or []))
    status = r.rollback_status
    if what == "ignore" and d.get("undone_at"):
        status = "undone"
    return RecordRow(r.id, what, status, r.rollback_type, r.trigger_reason or "", r.rollback_started_at,
                     r.rollback_completed_at, r.rollback_error or "", attempts)


def decision_metrics(metrics: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The metrics recorded at a rollback decision as (label, value) a person reads: the Decision
    step's record (label, value, unit per metric: engine/views/dashboard.py ``_metrics_at_decision``)
    or a bare value per metric. The value is the metric's last level, so a criterion's label loses
    its "change" ("Query latency p50 0.381 ms", not "… change 0.3814 ms"); a record of the Decision
    step was shown as "none recorded" once decided."""
    from engine.views.dashboard_tiles import fmt

    out = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            value = v.get("value")
            label = str(v.get("label") or k).removesuffix(" change")
            out.append((label, fmt(float(value), str(v.get("unit") or "")) if isinstance(value, (int, float))
                        else "—" if value is None else str(value)))
        elif isinstance(v, float):
            out.append((k, f"{v:.4g}"))
        elif isinstance(v, (int, str, bool)) or v is None:
            out.append((k, str(v)))
    return tuple(out[:8])


def rollback_view(store: Store, plan: Plan, run_id: str) -> RollbackView:
    """Everything the Rollback screen shows, read from the store (no target I/O)."""
    run = store.get_run(plan.tenant, run_id)
    if run is None:
        raise LookupError(f"run {run_id} not found for tenant {plan.tenant}")
    now = store.now()
    records = store.rollback_records(run.tenant_id, run.id)
    decision, state = rollback_state(store, run, records)
    d = (decision.rollback_details or {}) if decision else {}
    prepared = prepared_record(records)
    suggested = None
    if decision is None and prepared is not None:
        suggested = suggest_trigger(prepared.trigger_reason or "")
    trigger = d.get("trigger")
    point = store.rollback_point(run.tenant_id, run.id)
    rung1 = active_ignore(records)
    drops = [r for r in records if record_row(r).what == "drop"]
    done = next((r for r in reversed(drops) if r.rollback_status == "completed"), None)
    failed = drops[-1] if drops and drops[-1].rollback_status == "failed" and done is None else None
    ladder = []
    for r in (point.ladder if point else None) or []:
        if r.get("rung") == "ignore":
            flavour = "mariadb" if "IGNORED" in r.get("sql", "") else "mysql"
            ladder.append(RungRow("ignore", "1 · ignore (instant, reversible)", True, r["sql"],
                                  sql.ignored_index_query(run.schema_name, run.table_name, run.index_name, flavour),
                                  r.get("undo_sql", ""),
                                  "applied" if rung1 else ("superseded by the DROP" if done else "not applied")))
        elif r.get("rung") == "drop":
            ladder.append(RungRow("drop", f"{len(ladder) + 1} · DROP INDEX (not reversible)", False, r["sql"],
                                  r.get("verify_sql", ""), "", "done" if done else "failed" if failed else "not run"))
    if not ladder:  # no rollback point: the drop is still the runbook's R2
        ladder.append(RungRow("drop", "1 · DROP INDEX (not reversible)", False,
                              sql.drop_index(run.schema_name, run.table_name, run.index_name),
                              sql.show_index_query(run.schema_name, run.table_name, run.index_name), "",
                              "done" if done else "failed" if failed else "not run"))
    obs = (done.rollback_details or {}).get("observation", {}) if done else {}
    until = _dt(obs.get("until"))
    observed = store.audit_entries(run.tenant_id, run.id, "post_rollback_observation_completed")
    announced = store.audit_entries(run.tenant_id, run.id, "rollback_announced") + [
        e for e in store.audit_entries(run.tenant_id, run.id, "webhook_posted")
        if (e.details or {}).get("kind") == "rollback_complete"]  # R5 pushed (engine/flows/notify.py)
    escalation = (f"L4 — rollback failed: {failed.rollback_error or 'see the attempts'}; the index is still "
                  "there" if failed else None)
    t = TRIGGER_BY_KEY.get(trigger or suggested or "")
    unstaffed = tuple(r for r in (state.required if state else (t.required(None) if t else ()))
                      if not people_holding(plan, r))

    kept = kept_of(decision)
    phase = flow_phase(index_created_by_run=run.index_created_by_run, run_status=run.status, state=state,
                       kept=kept is not None, rung1_applied=rung1 is not None, drop_failed=failed is not None)
    steps_forward = next_steps(phase, trigger or suggested, state)
    if run.status == "rolled_back":
        if observed:
            ok = (observed[-1].details or {}).get("ok")
            status, level = (f"ROLLED BACK — post-rollback observation {'OK' if ok else 'raised alerts'}",
                             "ok" if ok else "error")
        else:
            status, level = (f"ROLLED BACK — index dropped; observing until {wall(until, plan.off_peak.utc_offset)} (R4)" if until
                             else "ROLLED BACK — index dropped", "ok")
    elif kept is not None:
        status, level = (f"KEPT — index {run.index_name} kept by {kept.get('by')}: {kept.get('reason')}", "warning")
    elif phase == "refused" and state is not None:
        notes = {v.actor: v.note for v in state.votes if v.decision == "refuse"}
        status, level = ("BLOCKED — refused by " + "; ".join(f"{in_role(a, r)}: {notes.get(a) or 'no reason given'}"
                                                     for r, a in state.refused), "error")
    elif escalation:
        status, level = f"ROLLBACK FAILED — escalation {escalation}; retry (x) or intervene by hand", "error"
    elif not run.index_created_by_run:
        status, level = (f"NOTHING TO ROLL BACK — run {run.id[:8]} did not create index {run.index_name} "
                         "(TC-05)", "warning")
    elif state is None:
        hint = f"; suggested trigger: {suggested} ({prepared.trigger_reason[:60]})" if suggested and prepared else ""
        status, level = f"AWAITING DECISION — pick the trigger and decide (d){hint}", "warning"
    elif not state.complete:
        missing = who_holds(plan, state.missing) if state.missing else "a person other than the requester"
        status, level = f"AWAITING APPROVALS — still needed: {missing}", "warning"
        requester = state.decision_by[1].split("@")[0] if state.decision_by else None
        alone = [r for r in state.missing if people_holding(plan, r)
                 and all((p.unix_user or p.name) == requester for p in plan.people if r in p.roles)]
        if alone:  # e.g. a one-person drill: say it now, not when the approval is refused
            status += (f" — only the requester ({requester}) holds {', '.join(alone)}, and the requester cannot "
                       "approve their own rollback: add another person to the plan's [[people]]")
    elif rung1 is not None:
        status, level = ("RUNG 1 APPLIED — index ignored; observe, then drop (x) or undo (u)", "warning")
    else:
        status, level = ("APPROVED — the DBA may execute rung 1 ignore (i) or rung 2 DROP INDEX (x)", "ok")

    decided_at = _dt(d.get("decided_at"))
    steps = (
        Step("R1", "decided", decision is not None,
             f"{trigger} · {in_role(str(d.get('decided_by')), str(d.get('decided_role')))} {wall(decided_at, plan.off_peak.utc_offset, zone=False)[:5]}"
             if decision is not None and decided_at else "awaiting the decision"),
        Step("R2", "DROP + verify", done is not None,
             f"{wall(done.rollback_completed_at, plan.off_peak.utc_offset, zone=False)}" if done and done.rollback_completed_at else
             ("approved" if state and state.complete else "awaiting approvals")),
        Step("R3", "rolled_back", run.status == "rolled_back",
             "" if run.status == "rolled_back" else f"run is {run.status}"),
        Step("R4", f"{plan.profile().post_rollback_minutes:.0f}-min observation", bool(observed),
             ("ok" if (observed[-1].details or {}).get("ok") else "alerts") if observed else
             (f"until {wall(until, plan.off_peak.utc_offset, zone=False)[:5]}" if until else "after R3")),
        Step("R5", "announced", bool(announced), "" if announced else "after R4"),
    )
    return RollbackView(
        run_id=run.id, table=f"{run.schema_name}.{run.table_name}", index=run.index_name,
        columns=columns_text(expected_columns(run)), run_status=run.status, fail_reason=run.fail_reason,
        index_created_by_run=run.index_created_by_run, as_of=now, status=status, level=level,
        suggested_trigger=suggested, trigger=trigger,
        decided_by=state.decision_by if state else None, decided_at=decided_at, reason=d.get("reason", ""),
        metrics=decision_metrics(d.get("metrics_at_decision") or {}), state=state,
        roles=role_rows(plan, trigger or suggested, state), unstaffed=unstaffed, ladder=tuple(ladder),
        point_captured_at=point.captured_at if point else None,
        records=tuple(record_row(r) for r in records), steps=steps, escalation=escalation,
        observation_until=until, ignored=rung1 is not None,
        drop_sql=next((r.sql for r in ladder if r.rung == "drop"), ""),
        phase=phase, next_steps=steps_forward, next_line=next_line(phase, steps_forward), kept=kept,
        eta=eta_for_run(store, plan, run.id).text)


# --- a rung while it runs, as the screen's lines ---------------------------------------------------

RUNG_WORDS = {"ignore": "rung 1: IGNORE the index", "undo": "rung 1 undone: the index back in use",
              "drop": "rung 2: DROP INDEX"}


@dataclass(frozen=True)
class RungProgress:
    """One look at a running rung (the Rollback screen shows it once a second): its statement on the
    server, and the metadata-lock queue on the table — who holds, who waits, for how long — from
    the same guard the execution step uses (``TargetSession.metadata_locks``)."""

    rung: str
    elapsed_s: float
    thread_id: int | None = None  # the rung's statement in the processlist (None: not seen there)
    statement_s: float | None = None
    stage: str = ""
    fraction: float | None = None
    holders: tuple[dict[str, Any], ...] = ()
    waiters: tuple[dict[str, Any], ...] = ()
    note: str = ""


def _lock_row(kind: str, r: dict[str, Any]) -> str:
    what = " ".join(str(r.get(k) or "") for k in ("lock_type", "lock_duration")).strip()
    info = clean_text(r.get("info") or r.get("state") or "", 60).text
    return (f"  {kind:<5} thread {r.get('thread_id')}" + (f"  {what}" if what else "")
            + f"  {int(r.get('time') or 0)} s" + (f"  {info}" if info else ""))


def rung_lines(p: RungProgress, schema: str, table: str, most: int = 4) -> list[str]:
    """The running rung as lines for the screen: what runs, for how long, how far; then the queue."""
    head = f"▶ {RUNG_WORDS.get(p.rung, p.rung)} — running {p.elapsed_s:.0f} s"
    if p.thread_id is not None:
        head += f"; server thread {p.thread_id}, {p.statement_s or 0:.0f} s"
        if p.stage:
            head += f", {p.stage}" + (f" {p.fraction:.0%}" if p.fraction is not None else "")
    elif p.elapsed_s >= 1:
        head += "; its statement is not in the processlist (done, or verifying)"
    lines = [head]
    queue = f"metadata locks on {schema}.{table}: {len(p.holders)} hold, {len(p.waiters)} wait"
    if p.waiters:
        longest = max(int(w.get("time") or 0) for w in p.waiters)
        queue += f" (longest {longest} s)"
    lines.append(queue + (f" — {p.note}" if p.note else ""))
    lines += [_lock_row("holds", r) for r in p.holders[:most]]
    lines += [_lock_row("waits", r) for r in p.waiters[:most]]
    hidden = max(0, len(p.holders) - most) + max(0, len(p.waiters) - most)
    if hidden:
        lines.append(f"  … {hidden} more")
    return lines
