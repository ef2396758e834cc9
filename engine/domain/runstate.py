"""The execution run's state machine (docs/states.md), as data and one pure function.

scheduled → running → completed | failed | cancelled | rolled_back, with ``observing`` between a
PASS (or PASS WITH WARNING) and ``completed``: the 15-minute post-success observation of runbook
5.4 runs before success is declared. A run that ended with the index still in place (completed,
failed after a verification, cancelled after the ALTER) can still be rolled back by hand, so those
three may move on to ``rolled_back``.
"""

from __future__ import annotations

TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"running", "failed", "cancelled"}),
    "running": frozenset({"observing", "completed", "failed", "cancelled", "rolled_back"}),
    "observing": frozenset({"completed", "failed", "cancelled", "rolled_back"}),
    "completed": frozenset({"rolled_back"}),
    "failed": frozenset({"rolled_back"}),
    "cancelled": frozenset({"rolled_back"}),
    "rolled_back": frozenset(),
}
ACTIVE = frozenset({"scheduled", "running", "observing"})
FAIL_REASONS = frozenset(
    {"out_of_scope", "kill_switch", "claim_failed", "execution_error", "verification_failed", "manual_rollback",
     "harm_limit", "observation_failed"}
)


class TransitionError(ValueError):
    pass


def check_transition(old: str, new: str, fail_reason: str | None = None) -> None:
    if old not in TRANSITIONS:
        raise TransitionError(f"unknown run status {old!r}")
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "nothing (it is final)"
        raise TransitionError(f"a run that is {old} cannot become {new}; it can become {allowed}")
    if fail_reason is not None and fail_reason not in FAIL_REASONS:
        raise TransitionError(f"unknown fail_reason {fail_reason!r}")
    if new == "failed" and fail_reason is None:
        raise TransitionError("a failed run needs a fail_reason")
