"""What the Rollback screen writes (screens/rollback.py): the lines and cells drawn from the
rollback's view (engine/views/rollback.py) and the driving console's inspection of the target.
Plain functions of plain data: the screen only puts them in its widgets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine.domain.clock import wall
from engine.domain.roles import in_role, role_words
from engine.domain.rollback_rules import Inspection
from engine.domain.text import for_terminal
from engine.views.rollback import RollbackView, decision_metrics

APPROVAL_COLUMNS = ("Role", "Part", "Status", "Who", "At")
UNDECIDED = "No decision yet: pick the trigger (t, or arrows) and decide (d)."


def at(value: datetime | None, offset: timedelta = timedelta(0), zone: bool = False) -> str:
    """Wall time in the plan's time zone (engine.domain.clock.wall); ``zone``: said with it."""
    return wall(value, offset, zone=zone) if value is not None else ""


def preset_words(metrics: dict[str, Any]) -> str:
    """The Decision step's metrics (engine/views/dashboard.py: label, value, unit per metric) in a line."""
    return ", ".join(f"{label} {value}" for label, value in decision_metrics(metrics)) or "none"


def title_line(v: RollbackView) -> str:
    return (f"{v.table} · {v.index} ({v.columns}) · run {v.run_id[:8]} "
            f"{v.run_status}{f', {v.fail_reason}' if v.fail_reason else ''}")


def status_line(v: RollbackView, inspection: Inspection | None) -> str:
    conflicts = len(inspection.conflicts) if inspection is not None else 0
    return for_terminal(v.status) + (f"  ⚠ {conflicts} change(s) since the rollback point (below)" if conflicts
                                     and v.run_status != "rolled_back" else "")


def steps_line(v: RollbackView) -> str:
    """R1 … R5, each done (✓) or not (·), with its detail."""
    return "  ".join(
        f"{s.code} {'✓' if s.done else '·'} {s.label}{': ' + for_terminal(s.detail) if s.detail else ''}" for s in v.steps)


def approval_cells(rows: Any, offset: timedelta) -> list[tuple[str, ...]]:
    """The approvals matrix (engine.views.rollback ``role_rows``), a row of ``APPROVAL_COLUMNS`` each."""
    cells = []
    for r in rows:
        if r.actor:
            who = r.actor
        elif r.part == "—":
            who = ""
        else:
            who = f"({', '.join(r.people)})" if r.people else "nobody in the plan"
        cells.append((role_words([r.role]), r.part, r.status, who, at(r.at, offset)))
    return cells


def without_hosts(cells: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The approvers named without their host (short of room; the decision's line and the audit
    trail keep it)."""
    return [(*c[:3], c[3].split("@")[0], c[4]) for c in cells]


def unstaffed_line(rows: Any) -> str:
    """The roles the rollback needs that nobody in the plan holds ("" when every one is held)."""
    unstaffed = [r.role for r in rows if r.part != "—" and not r.people]
    return (f"Nobody in the plan holds {', '.join(unstaffed)}: add them to the plan's [[people]], "
            "or the rollback cannot be approved." if unstaffed else "")


def decision_text(v: RollbackView | None, preset_metrics: dict[str, Any], offset: timedelta) -> str:
    """Who decided, when, why and on which metrics — or that nobody has yet (with the metrics the
    Decision step handed over, which the decision will record)."""
    if v is not None and v.decided_by:
        metrics = ", ".join(f"{k} {val}" for k, val in v.metrics) or "none recorded"
        return (for_terminal(f"Decided by {in_role(v.decided_by[1], v.decided_by[0])} at {at(v.decided_at, offset, True)}: "
                             f"{v.reason}") + f"\nMetrics at decision: {for_terminal(metrics)}")
    if preset_metrics:
        return (f"{UNDECIDED}\nMetrics at decision "
                f"(from the Decision step): {for_terminal(preset_words(preset_metrics))}")
    return UNDECIDED


RUNG_KEYS = {"ignore": "i", "drop": "x"}


def ladder_lines(v: RollbackView, n: int) -> dict[str, str]:
    """The ladder's rung ``n`` (0: ignore, 1: drop): its title, statement, undo and verification
    ("" for a line it does not have, or a rung the ladder does not hold)."""
    rung = v.ladder[n] if n < len(v.ladder) else None
    if rung is None:
        return {"title": "", "sql": "", "undo": "", "verify": ""}
    expected = "empty" if rung.rung == "drop" else "YES" if "IGNORED" in rung.verify_sql else "NO"
    return {"title": f"{rung.title} — {rung.state}  [{RUNG_KEYS[rung.rung]}]", "sql": rung.sql,
            "undo": f"undo [u]: {rung.undo_sql}" if rung.undo_sql else "",
            "verify": f"verify (expected {expected}): {rung.verify_sql}"}


def inspection_text(v: RollbackView, i: Inspection | None, offset: timedelta) -> str:
    """The target against the rollback point, as this console last inspected it."""
    point = f"the rollback point ({at(v.point_captured_at, offset, True)})" if v.point_captured_at else \
        "the rollback point (none stored)"
    if i is None:
        return ("Not inspected from this console (the driving console reads the target); executing "
                "inspects it again.")
    if i.error:
        return f"✗ {i.error}"
    cols = ", ".join(c + (f"({p})" if p else "") for c, p in i.index_columns)
    ignored = {True: "yes", False: "no", None: "n/a"}[i.ignored]
    lines = [f"{i.server}, inspected {at(i.inspected_at, offset, True)}"]
    if i.index_exists:
        lines += [f"index present ({cols})", f"this run's: {'✓' if i.ours else '✗'} · ignored: {ignored}"]
    else:
        lines.append(f"index {v.index} absent")
    lines += [f"✗ {b}" for b in i.blockers]
    if i.conflicts:
        lines.append(f"⚠ {len(i.conflicts)} change(s) since {point}, to acknowledge:")
        lines += [f"• {c}" for c in i.conflicts]
    else:
        lines.append(f"✓ no change since {point}")
    return "\n".join(lines)


def record_rows(v: RollbackView, offset: timedelta) -> list[tuple[str, str, str, str]]:
    """The rollback's records, each with its attempts (✓ done, ✗ failed, · not finished)."""
    rows = []
    for r in v.records:
        attempts = " ".join(
            f"{a.n}{'✓' if a.ok else '✗' if a.error else '·'} {a.kind or a.note or ('sent' if a.sent else '')}"
            for a in r.attempts)
        if r.error:
            attempts = f"{attempts} {r.error[:40]}".strip()
        rows.append((r.what, r.status, at(r.completed_at, offset), attempts))
    return rows
