"""Why a monitoring window ended before its 60 minutes, in one place (pure): the run's
``fail_reason`` for each cause and the words every screen, the report and the audit use for it —
so a stop on a harm limit is never called a failed verification, and a checkpoint the window never
reached is never shown as evaluated. See docs/early-stops.md.

The monitor records the cause in the decision's evidence (``stop_cause``, ``stopped_at_s``,
``stop_reason``); a kill switch during the window leaves no verdict (the run is ``cancelled``,
``fail_reason = kill_switch``) and is told from the run itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FAILURE_CONDITION = "failure_condition"  # a metric crossed its harm limit (runbook 5.3): the window stops
AUTO_PAUSE_ROLLBACK = "auto_pause_rollback"  # the canary lead approved a rollback during an AUTO-PAUSE

# stop cause → (the run's fail_reason, what happened, in words)
CAUSES: Mapping[str, tuple[str, str]] = {
    FAILURE_CONDITION: ("harm_limit", "a metric crossed its harm limit (runbook 5.3 failure condition)"),
    AUTO_PAUSE_ROLLBACK: ("manual_rollback", "a rollback was approved during the AUTO-PAUSE"),
}
WINDOW_FAIL = "verification_failed"  # the full window's verdict was FAIL (no early stop)


def t_label(first_checkpoint_min: float, elapsed_s: float) -> str:
    """Seconds into the window as the run's one clock (engine.domain.clock; the window opens at T+15): "T+31:30"."""
    from engine.domain.clock import t_in_window

    return t_in_window(first_checkpoint_min, elapsed_s)


def fail_reason_for(evidence: Mapping[str, Any]) -> str:
    """The run's ``fail_reason`` for a FAIL verdict with this evidence."""
    return CAUSES.get(str(evidence.get("stop_cause")), (WINDOW_FAIL, ""))[0]


def stop_words(evidence: Mapping[str, Any], first_checkpoint_min: float) -> str:
    """"the window stopped early at T+21.5: Lock wait time 6.2 s ≥ 5 s — a metric crossed its harm
    limit (…)"; "" when the window ran its course."""
    if not evidence.get("stopped_early"):
        return ""
    at = evidence.get("stopped_at_s")
    where = f" at {t_label(first_checkpoint_min, float(at))}" if isinstance(at, (int, float)) else ""
    cause = CAUSES.get(str(evidence.get("stop_cause")))
    if cause is None:  # a decision stored before the cause was recorded
        return f"the window stopped early{where}"
    reason = str(evidence.get("stop_reason") or "")
    return f"the window stopped early{where}: " + (f"{reason} — " if reason else "") + cause[1]


def ended_without_verdict(status: str, fail_reason: str | None, stopped_at: str | None,
                          index_in_place: bool = True) -> str:
    """What a run that ended with no verdict says instead of one (the kill switch during the window,
    an execution error, a refused scope)."""
    where = f" at {stopped_at}" if stopped_at else ""
    if fail_reason == "kill_switch":
        after = ("the index is left in place and a manual rollback is prepared (7)" if index_in_place
                 else "no index of this run is in place")
        return (f"No verdict: the kill switch stopped the run{where} and it is {status}; {after}."
                + (" The checkpoints after the stop were not reached." if stopped_at else ""))
    return f"No verdict: the run ended {status}" + (f" ({fail_reason})" if fail_reason else "") + (
        f"{where} before the window's verdict." if stopped_at else " before the monitoring window ended.")


def judged_criteria(evidence: Mapping[str, Any], first_checkpoint_min: float) -> list[Mapping[str, Any]]:
    """The decision's criteria as a person reads them: the one whose metric stopped the window
    early is not met, with the value that stopped it — not "met" from the median of the minutes
    before the stop (a window stopped on replication lag at 65 s read "Replication lag met, 0 s").
    The stored evidence is left as it is; the criterion keeps its end value in its rule."""
    criteria = [c for c in evidence.get("criteria") or () if isinstance(c, Mapping)]
    reason = str(evidence.get("stop_reason") or "") if evidence.get("stopped_early") else ""
    if not reason:
        return criteria
    named = [c for c in criteria if c.get("applicable", True) is not False and _names(reason, str(c.get("name") or ""))]
    if not named:
        return criteria
    hit = max(named, key=lambda c: len(str(c.get("name"))))
    name = str(hit.get("name"))
    value = reason[len(name):].lstrip(" :")
    value = value.split(" is ", 1)[0] if " is " in value else str(hit.get("value", ""))
    at = evidence.get("stopped_at_s")
    where = f" at {t_label(first_checkpoint_min, float(at))}" if isinstance(at, (int, float)) else ""
    end = f"at the end: {hit.get('value', '')}" + (f", {hit.get('rule')}" if hit.get("rule") else "")
    changed = dict(hit, met=False, value=value, rule=f"stopped the window{where}: {reason} ({end})")
    return [changed if c is hit else c for c in criteria]


def _names(reason: str, name: str) -> bool:
    return bool(name) and reason.startswith(name) and reason[len(name):len(name) + 1] in (" ", ":")
