"""The live monitoring dashboard and the decision screen, as data (docs/runbook.md#5-monitoring, docs/metrics.md, docs/thresholds.md; runbook
steps 5–7, section 4, 5.5, "Decision Rules", 7.2, 7.4).

``load_dashboard`` is the one reader: the run's stored samples, checkpoints, decisions and the audit
entries that matter, with the window's evaluation rebuilt from the stored samples tick by tick
exactly as ``engine.flows.monitor.replay`` does — so the console that drives the run and every console
that joined it show the same bands, and none of them polls the target a second time. It is
incremental: given the previous ``DashboardData`` it reads only the samples stored since, and
advances the same evaluator (the previous data is consumed: keep only the latest).

The rest is split by role, and its public names are importable from here too:
- engine/views/dashboard_window.py: the facts, the window rebuilt from the samples (``advance``);
- engine/views/dashboard_tiles.py: the tiles, the progress line, values and thresholds in words;
- engine/views/dashboard_charts.py: the charts as data;
- engine/views/dashboard_view.py: ``dashboard_view`` and its panels (pure, run on every update);
- engine/views/decision_view.py: ``decision_view``, the Decision step's final matrix.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.domain.roles import AUTO_PAUSE
from engine.views.dashboard_charts import ChartLine, ChartMarker, ChartSeries
from engine.views.dashboard_tiles import Tile, WindowProgress
from engine.views.dashboard_tiles import (
    _baseline_words as _baseline_words,  # tests read it from here
)
from engine.views.dashboard_view import (
    AnnouncementText,
    CheckItem,
    CheckpointRow,
    Concurrent,
    DashboardView,
    EscalationView,
    PauseView,
    dashboard_view,
)
from engine.views.dashboard_window import (
    CHART_BUCKETS,
    PAUSE_APPROVERS_DEFAULT,
    ApprovalFact,
    CheckpointFact,
    DashboardData,
    DecisionFact,
    RunFacts,
    SampleRow,
    advance,
)
from engine.views.decision_view import DecisionView, MatrixRow, decision_view
from engine.views.report_facts import observations_of
from engine.views.report_model import ESCALATION_MATRIX, PersonFacts

if TYPE_CHECKING:  # the store (SQLAlchemy) loads lazily: a screen can import this module cheaply
    from engine.adapters.store import Store
    from engine.domain.plan import Plan


# --- loading -----------------------------------------------------------------------------------------


def load_dashboard(store: Store, plan: Plan, run_id: str, now: datetime,
                   previous: DashboardData | None = None, max_ticks: int | None = None) -> DashboardData:
    """Read the run from the store and bring the window's evaluation up to date. Blocking (store
    queries): call it from a worker. With ``previous`` (the last result for the same run) only the
    samples stored since its last load are read. ``max_ticks`` bounds the ticks evaluated in one
    call (a late joiner catches up in steps: ``catching_up`` says there is more)."""
    tenant = plan.tenant
    if previous is not None and previous.facts.run_id != run_id:
        previous = None
    # Samples first, then the verdict: a sample stored after the verdict (the post-rollback
    # observation) is then always known to be outside the window.
    rows = read_samples(store, tenant, run_id, previous.last_sampled_at if previous else None)
    run = store.get_run(tenant, run_id)
    if run is None:
        raise LookupError(f"run {run_id} not found for tenant {tenant}")

    def entries(action: str) -> list[Any]:
        return store.audit_entries(tenant, run_id, action)

    started = entries("monitoring_started")
    details = (started[-1].details or {}) if started else {}
    monitoring_at = _parse_at(details.get("at")) if started else None
    speed = details.get("time_compression")
    verdicts = entries("verdict")
    alter_finished = run.alter_finished_at
    if alter_finished is None and run.alter_started_at is not None:
        added = entries("index_added")
        alter_finished = added[-1].created_at if added else None
    decisions = store.decisions(tenant, run_id)
    last = decisions[-1] if decisions else None
    facts = RunFacts(
        run_id=run.id, tenant=tenant, status=run.status, fail_reason=run.fail_reason, schema=run.schema_name,
        table=run.table_name, index=run.index_name, connection_id=run.connection_profile_id, alter_started_at=run.alter_started_at,
        alter_finished_at=alter_finished, index_created=bool(run.index_created_by_run),
        monitoring_started_at=monitoring_at,
        interval_s=float(details["interval"]) if isinstance(details.get("interval"), (int, float)) else None,
        time_compression=float(speed) if isinstance(speed, (int, float)) and speed != 1 else None,
        verdict_at=verdicts[0].created_at if verdicts else None,
        gaps=_gaps(entries("monitoring_resumed")),
        pauses=tuple((e.created_at, str((e.details or {}).get("reason", ""))) for e in entries("auto_pause")),
        lifts=tuple((e.created_at, str((e.details or {}).get("decision", "")),
                     str((e.details or {}).get("approved_by", ""))) for e in entries("auto_pause_lifted")),
        approvals=tuple(sorted((ApprovalFact(a.id, a.created_at, a.actor, a.role, a.decision)
                                for a in store.approvals(tenant, run_id, AUTO_PAUSE)), key=lambda a: a.created_at)),
        checkpoints=tuple(CheckpointFact(c.label, c.recorded_at, c.metrics_ok, c.recorded_by or "", c.notes or "")
                          for c in store.checkpoints(tenant, run_id)),
        decision=DecisionFact(last.verdict, dict(last.evidence or {}), last.decided_by, last.created_at) if last else None,
        rollback_failed=any(r.rollback_status == "failed" for r in store.rollback_records(tenant, run_id)),
        people=tuple(PersonFacts(p.name, tuple(p.roles), p.contact) for p in plan.people),
        pause_approvers=PAUSE_APPROVERS_DEFAULT,
        control_schemas=tuple(plan.change.control_schemas),
        observation=next(iter(observations_of(entries("post_success_observation_started")
                                            + entries("post_success_observation_completed"))), None),
    )
    # The profile the run is watched with: tightened after a WARNING size gate (docs/thresholds.md).
    from engine.views.profile import run_profile

    profile = previous.profile if previous is not None else run_profile(plan, store, run_id)
    return advance(previous, profile, facts, rows, now, max_ticks)


def _gaps(resumed: Iterable[Any]) -> tuple[tuple[datetime, datetime], ...]:
    """The time nobody sampled, from the ``monitoring_resumed`` entries: (the last sample before
    the take-over, the take-over). Its own function: an assignment expression in a comprehension
    binds in the enclosing function, and there it once overwrote ``load_dashboard``'s ``last``
    (the latest decision) with a datetime."""
    out = []
    for e in resumed:
        before = _parse_at((e.details or {}).get("last_sample_at"))
        if before is not None:
            out.append((before, e.created_at))
    return tuple(out)


def read_samples(store: Store, tenant: str, run_id: str, since: datetime | None = None) -> list[SampleRow]:
    """The run's samples stored after ``since``, oldest first (the columns the dashboard needs, not
    whole ORM objects: a full window is tens of thousands of rows). ``Store.samples`` has no
    ``since``; this is the same query with one."""
    from sqlmodel import select

    from engine.adapters.store.models import MetricSample

    cols = (MetricSample.sampled_at, MetricSample.metric, MetricSample.value, MetricSample.error,
            MetricSample.meta)
    with store.session() as s:
        q = select(*cols).where(MetricSample.tenant_id == tenant, MetricSample.execution_run_id == run_id)
        if since is not None:
            q = q.where(MetricSample.sampled_at > since)
        q = q.order_by(MetricSample.sampled_at, MetricSample.id)  # type: ignore[arg-type]
        return [SampleRow(*r) for r in s.exec(q).all()]


def _parse_at(raw: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(raw))
    except ValueError:
        return None


__all__ = [
    "AnnouncementText", "ChartLine", "ChartMarker", "ChartSeries", "CheckItem", "CheckpointRow", "Concurrent",
    "DashboardData", "DashboardView", "DecisionView", "EscalationView", "MatrixRow", "PauseView", "RunFacts",
    "SampleRow", "Tile", "WindowProgress", "advance", "dashboard_view", "decision_view", "load_dashboard",
    "read_samples", "ESCALATION_MATRIX", "CHART_BUCKETS", "ApprovalFact", "CheckpointFact", "DecisionFact",
]
