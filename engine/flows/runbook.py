"""The runbook's steps and what each needs before a person may enter it (docs/runbook.md: steps cannot
be skipped). Pure: a ``RunView`` (what the store says about the run, read in one go) in, a list of
what is missing and who can provide it out. ``load_view`` is the one store read every console
repeats twice a second, so a second console sees sign-offs, approvals and the run's state within
one second (docs/kill-switch.md, docs/roles.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.domain.roles import ROLES, needed, role_words, roles_and
from engine.domain.runstate import ACTIVE
from engine.flows import guard, selftest_gate
from engine.flows.prechecks import BY_ID, KILL_TEST, REQUIRED_PRESENT

if TYPE_CHECKING:  # the store's models: not imported to draw the first screen (SQLAlchemy is slow to load)
    from engine.adapters.store import Approval, ExecutionRun, PrecheckResult, Store

STEPS = ("plan", "prechecks", "size_gate", "execution", "monitoring", "decision", "rollback", "report")
TITLES = {"plan": "1 Plan", "prechecks": "2 Prechecks", "size_gate": "3 Size gate", "execution": "4 Execution",
          "monitoring": "5 Monitoring", "decision": "6 Decision", "rollback": "7 Rollback", "report": "8 Report"}
# From the one action → roles table (engine/domain/roles.py), never a copy of it.
SIGNOFF_ROLES = tuple(r for r in ROLES if r in needed("sign_off"))  # in the table's order
MIN_PRECHECK = timedelta(minutes=15)  # runbook 5.4: at least 15 minutes of pre-execution checks
EXECUTE_ROLES = needed("execute")  # who presses "execute" (runbook step 4)


@dataclass(frozen=True)
class Missing:
    what: str
    who: str

    def __str__(self) -> str:
        return f"{self.what} — {self.who}"


@dataclass(frozen=True)
class RunView:
    """Everything the screens need to know about one run, as the store has it now."""

    run: ExecutionRun | None = None
    prechecks: Mapping[str, PrecheckResult] = field(default_factory=dict)  # this run's checks
    self_test: Mapping[str, PrecheckResult] = field(default_factory=dict)  # TC-01…TC-10, tenant-wide
    approvals: Sequence[Approval] = ()
    verdicts: Sequence[str] = ()
    rollback_statuses: Sequence[str] = ()
    window_started_at: datetime | None = None  # when the monitoring window began (its T+15)
    ended_at: datetime | None = None  # when the run first ended (left scheduled/running/observing): the clock stops there
    unstaffed: tuple[str, ...] = ()  # required roles (runbook 2.5.1) nobody in the plan holds

    def signature(self) -> tuple[Any, ...]:
        """Changes when anything shown changes (consoles redraw only then)."""
        r = self.run
        return (r and (r.id, r.status, r.updated_at, r.alter_thread_id, r.claimed_by),
                tuple((k, v.status, v.recorded_at) for k, v in sorted(self.prechecks.items())),
                tuple((k, v.status, v.recorded_at) for k, v in sorted(self.self_test.items())),
                tuple((a.kind, a.role, a.actor, a.decision) for a in self.approvals),
                tuple(self.verdicts), tuple(self.rollback_statuses), self.window_started_at)

    def approvals_of(self, kind: str) -> list[Approval]:
        return [a for a in self.approvals if a.kind == kind and a.decision == "approve"]

    def signoffs(self) -> dict[str, str]:
        return {a.role: a.actor for a in self.approvals_of("signoff")}

    def present_roles(self) -> set[str]:
        return {a.role for a in self.approvals_of("presence")}

    def gate(self) -> PrecheckResult | None:
        return self.prechecks.get("gate.size")


def load_view(store: Store, tenant: str, run_id: str | None, known: RunView | None = None,
              unstaffed: Sequence[str] = ()) -> RunView:
    """``known``: the view this console read last; its window start, once known, is not read again."""
    self_test = store.latest_prechecks(tenant, "TC-")
    if run_id is None:
        return RunView(self_test=self_test, unstaffed=tuple(unstaffed))
    run = store.get_run(tenant, run_id)
    window = known.window_started_at if known is not None and known.run is not None and known.run.id == run_id else None
    if window is None and run is not None and run.alter_started_at is not None:
        started = store.audit_entries(tenant, run_id, "monitoring_started", limit=1)
        window = _at((started[0].details or {}).get("at")) if started else None
    ended = known.ended_at if known is not None and known.run is not None and known.run.id == run_id else None
    if ended is None and run is not None and run.status not in ACTIVE:
        ended = _ended_at(store, tenant, run_id) or run.completed_at
    return RunView(
        run=run, prechecks=store.run_prechecks(tenant, run_id), self_test=self_test,
        approvals=tuple(store.run_approvals(tenant, run_id)),
        verdicts=tuple(d.verdict for d in store.decisions(tenant, run_id)),
        rollback_statuses=tuple(r.rollback_status for r in store.rollback_records(tenant, run_id)),
        window_started_at=window, ended_at=ended, unstaffed=tuple(unstaffed),
    )


def _ended_at(store: Store, tenant: str, run_id: str) -> datetime | None:
    """When the run first left the active statuses. Not ``completed_at``: a rollback after the
    verdict (failed → rolled_back) moves that to the rollback's time, and the run's clock, anchored
    to the window (docs/runbook.md#the-t-clock), would jump from T+75 to the rollback."""
    for e in store.audit_entries(tenant, run_id, "status_change", limit=50):
        if e.new_status is not None and e.new_status not in ACTIVE:
            return e.created_at
    return None


def _at(raw: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None


def clock_origin(view: RunView, window_opens_at_min: int) -> datetime | None:
    """T+0 of the run's one clock (engine.domain.clock, docs/runbook.md#the-t-clock): the window's opening
    is T+15, so the clock, the checkpoints and the charts' axis agree however long the baseline, the
    ALTER and the cool-down took. None before the window opens: there is no T+ yet (the frame shows
    the wall time), so the clock never jumps."""
    from engine.domain.clock import window_origin

    if view.run is None:
        return None
    return window_origin(view.window_started_at, window_opens_at_min)


def precheck_missing(view: RunView, now: datetime) -> list[Missing]:
    """Runbook 2.1–2.6: what still stands between the prechecks and the size gate."""
    out: list[Missing] = []
    for case, status in selftest_gate.p0_missing(view.self_test):
        out.append(Missing(f"{case} (P0) {status}", "run the self-test (t), or a DBA records it"))
    out += [Missing(what, who) for what, who in selftest_gate.missing(view.self_test, view.approvals)]
    for cid, check in BY_ID.items():
        if not check.blocking or cid == "rb.prepared" or cid.startswith("team."):
            continue
        r = view.prechecks.get(cid)
        if r is None:
            out.append(Missing(f"{check.label}: not checked", "run the checks (r)" if cid not in KILL_TEST
                               else "the kill-switch test (k): canary lead or DBA"))
        elif r.status not in ("pass", "skip"):
            out.append(Missing(f"{check.label}: {r.status} — {r.detail}", "fix it, then re-run the checks"))
    if not view.approvals_of("rollback_prepared"):
        out.append(Missing("prepared rollback statement not confirmed", "the DBA confirms it (p)"))
    out += [Missing(what, how) for what, how in staffing_missing(view.unstaffed)]
    present = view.present_roles()
    absent = [r for r in REQUIRED_PRESENT if r not in present]
    if absent:
        out.append(Missing(f"not present: {roles_and(absent)}", "they open the console on this plan"))
    off_peak = view.prechecks.get("team.off_peak")
    if off_peak is None or off_peak.status == "fail":
        out.append(Missing("off-peak window: " + (off_peak.detail if off_peak else "not checked"),
                           "wait for the window (re-run the checks)"))
    signed = view.signoffs()
    for role in SIGNOFF_ROLES:
        if role not in signed:
            out.append(Missing(f"sign-off by the {role_words([role])}", f"the {role_words([role])} signs (s) in their console"))
    if view.run is not None and view.run.created_at is not None:
        left = MIN_PRECHECK - (now - view.run.created_at)
        if left > timedelta(0):
            out.append(Missing(f"minimum 15 minutes of prechecks: {int(left.total_seconds() // 60)} min "
                               f"{int(left.total_seconds() % 60)} s left", "wait (runbook 5.4)"))
    return out


def staffing_missing(unstaffed: Iterable[str]) -> list[tuple[str, str]]:
    """Runbook 2.5.1: each required role nobody in the plan holds, with the way out."""
    from engine.domain.plan import ROLE_WORDS

    return [(f"the plan names no {ROLE_WORDS[r]} (required personnel, runbook 2.5.1)",
             f"add a [[people]] entry with role = \"{r}\", a name, and a phone or handle; then reopen the plan")
            for r in unstaffed]


def sign_off(store: Store, plan: Any, run_id: str, actor: str, roles: Iterable[str], now: datetime) -> tuple[bool, str]:
    """Runbook 2.6: sign the prechecks off for the first of your roles not signed yet. Refused —
    and audited (``sign_off_refused``) — while a required role (2.5.1) has nobody in the plan, naming
    the role. Blocking (store)."""
    from engine.adapters.store import Approval
    from engine.domain.plan import ROLE_WORDS

    held = set(roles)
    refused = guard.refusal(store, plan.tenant, actor, held, "sign_off", run_id)
    if refused is not None:
        return False, f"Refused: {refused}"
    unstaffed = plan.unstaffed()
    if unstaffed:
        words = ", ".join(ROLE_WORDS[r] for r in unstaffed)
        store.audit(plan.tenant, actor, "sign_off_refused", run_id, {"reason": "required personnel missing",
                                                                      "roles": unstaffed})
        return False, (f"sign-off refused: the plan names no {words} (required personnel, runbook 2.5.1). Add "
                       f"them to the plan's [[people]] with a phone or handle, then reopen the plan.")
    signed = {a.role: a.actor for a in store.approvals(plan.tenant, run_id, "signoff")}
    mine = [r for r in SIGNOFF_ROLES if r in held and r not in signed]
    if not mine:
        return False, "Your sign-off roles are already signed: " + ", ".join(
            f"{r} by {signed[r]}" for r in SIGNOFF_ROLES if r in held)
    store.add_approval(Approval(tenant_id=plan.tenant, execution_run_id=run_id, kind="signoff", role=mine[0],
                                actor=actor, created_at=now, note="pre-checks reviewed (runbook 2.6)"))
    return True, f"signed off as {role_words([mine[0]])} by {actor}"


def gate_missing(view: RunView) -> list[Missing]:
    gate = view.gate()
    if gate is None:
        return [Missing("the table-size gate has not decided", "check the size on the gate screen (c)")]
    if gate.status == "fail":
        return [Missing(f"size gate BLOCK: {gate.detail}", "no DDL on this table in this phase")]
    if gate.status == "warn" and not view.approvals_of("size_gate"):
        return [Missing(f"size gate WARNING: {gate.detail}", "the DBA approves (a) on the gate screen")]
    return []


def missing_for(step: str, view: RunView, now: datetime) -> list[Missing]:
    """What must happen before ``step`` may be entered ([] when it may)."""
    run = view.run
    if step == "plan":
        return []
    if run is None:
        return [Missing("no run for this plan yet", "the canary lead begins the prechecks (b) on the Plan screen")]
    if step == "prechecks":
        return []
    if step == "report":
        return []
    if step == "size_gate":
        return [] if run.status not in ("scheduled",) or view.gate() else precheck_missing(view, now)
    if step == "execution":
        if run.status != "scheduled":
            return []
        return precheck_missing(view, now) + gate_missing(view)
    if step in ("monitoring", "decision"):
        if run.alter_started_at is None:
            return [Missing("the ALTER has not run", "execute it on the Execution screen")]
        return []
    if step == "rollback":
        if run.index_created_by_run or view.rollback_statuses:
            return []
        return [Missing("there is no index of this run to roll back", "rollback opens once the ALTER added it")]
    raise ValueError(f"unknown step {step!r}")


def is_plan_run(plan: Any, run: Any) -> bool:
    """The run is this plan's change (same connection, table and index)."""
    return (run.connection_profile_id == plan.connection.id and run.table_name == plan.change.table
            and run.index_name == plan.change.index)


def is_open(run: Any, index_kept: bool = False) -> bool:
    """Whether a run is still the war room's to act on (pure): in progress; or failed or cancelled
    with its index in place, a manual rollback possibly due — unless the canary lead kept the index
    after a refusal (``index_kept``): that ends the rollback flow, final by design (docs/rollback.md)."""
    from engine.domain.runstate import ACTIVE

    if run.status in ACTIVE:
        return True
    return bool(run.index_created_by_run) and run.status in ("failed", "cancelled") and not index_kept


def open_run(store: Any, plan: Any) -> Any | None:
    """The run a console (or a restarted drill) attaches to: the one ``is_open``. Anything else —
    a run that ended, rolled back, or whose index was kept after a refusal — is history: the
    runbook begins anew (a console opened within hours still shows it: ``attach_run``)."""
    from engine.domain.rollback_rules import index_kept

    for run in store.find_runs(plan.tenant, limit=20):
        if not is_plan_run(plan, run):
            continue
        kept = (bool(run.index_created_by_run) and run.status in ("failed", "cancelled")
                and index_kept(store.rollback_records(run.tenant_id, run.id)) is not None)
        if is_open(run, kept):
            return run
    return None


RECENT_HOURS = 12.0  # a run that ended this recently is still the war room's: its decision, its report


def attach_run(store: Any, plan: Any, now: datetime) -> Any | None:
    """The run a console shows when it opens: the open one (``open_run``); else this plan's latest
    run if it ended in the last twelve (real) hours — a console restarted after the verdict shows that
    verdict, the team's decision still to record, the report (``b`` on the Plan screen begins a
    new run all the same)."""
    found = open_run(store, plan)
    if found is not None:
        return found
    for run in store.find_runs(plan.tenant, limit=20):
        if is_plan_run(plan, run):
            ended = run.completed_at or run.updated_at
            # Twelve real hours: a drill's compressed clock counts them at its speed (at 30× its
            # run would otherwise be history 24 minutes after it ended, its report out of reach).
            recent = timedelta(hours=RECENT_HOURS) * max(1.0, float(getattr(plan, "time_speed", 1.0)))
            return run if ended is not None and now - ended <= recent else None
    return None


def step_of_run(view: RunView, now: datetime) -> str:
    """The step a run is in, for a console that opens on it (a restart after a crash, a take-over,
    a teammate joining late): where the run's next action is, never a step it may not enter yet.

    Scheduled: the prechecks, the size gate once they are done, execution once the gate is passed.
    Running: execution (baseline, ALTER, cool-down), the monitoring dashboard once the window has
    started, the decision once a verdict is stored. Ended: the rollback while the run's index is
    in place after a FAIL or a kill switch (or a rollback has begun and not finished), the decision
    while an INCONCLUSIVE waits for the team, else the report."""
    run = view.run
    if run is None:
        return "plan"
    if run.status == "scheduled":
        if precheck_missing(view, now):
            return "prechecks"
        return "execution" if view.gate() is not None and not gate_missing(view) else "size_gate"
    if run.status == "observing":  # the post-success observation: the verdict stands, the dashboard watches
        step = "monitoring"
    elif run.status == "running":
        if view.verdicts:
            step = "decision"
        elif view.window_started_at is not None:
            step = "monitoring"
        else:
            step = "execution"
    elif run.status == "rolled_back":
        step = "report"
    elif run.index_created_by_run and (run.status in ("failed", "cancelled")
                                       or any(s in ("pending", "in_progress") for s in view.rollback_statuses)):
        step = "rollback"
    elif view.verdicts and view.verdicts[-1] == "INCONCLUSIVE" and not _team_decided(view):
        step = "decision"
    else:
        step = "report"
    while step != "plan" and missing_for(step, view, now):  # never a step it may not enter
        step = STEPS[STEPS.index(step) - 1]
    return step


def _team_decided(view: RunView) -> bool:
    """An INCONCLUSIVE verdict the team has settled is stored again, with the team's choice."""
    return len(view.verdicts) > 1
