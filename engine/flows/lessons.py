"""Runbook 8.3, lessons learned: one row added to a run's table by anyone the plan names — the same
function for the console's Report step (l) and ``canary-console lesson``. Stored as an audit entry
(who, when, hash-chained); engine/views/report_facts.py reads them back into the report.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.adapters.store import Store
from engine.domain.plan import Plan
from engine.domain.roles import may
from engine.domain.text import clean_text
from engine.views.report_facts import LESSON, LESSON_FIELDS
from engine.views.report_model import LessonFacts


def record_lesson(store: Store, plan: Plan, run_id: str, actor: str, roles: Iterable[str], what: object,
                  impact: object = "", cause: object = "", action: object = "") -> LessonFacts:
    """Add one row to the run's lessons-learned table (runbook 8.3): what happened (required),
    its impact, the root cause and the action item, each one line of plain text. Anyone the plan
    names may add one; it is stored as an audit entry (who, when, hash-chained) and exported with
    the report. ``PermissionError`` for someone the plan does not name; ``ValueError`` for an
    empty "what happened" or a run of another tenant."""
    held = sorted(set(roles))
    if not may("lesson_record", held):
        store.audit(plan.tenant, actor, "lesson_record_refused", run_id, {"roles": held})
        raise PermissionError(f"recording a lesson needs a role in the plan; {actor} has none")
    if store.get_run(plan.tenant, run_id) is None:
        raise ValueError(f"run {run_id} not found for tenant {plan.tenant}; `canary-console status` lists the runs")
    values = {k: clean_text(v, 500).text for k, v in zip(LESSON_FIELDS, (what, impact, cause, action), strict=True)}
    if not values["what"]:
        raise ValueError("a lesson needs what happened (the first field); impact, root cause and action item may follow")
    store.audit(plan.tenant, actor, LESSON, run_id, values)
    return LessonFacts(**values, by=actor, at=store.now())
