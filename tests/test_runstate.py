"""The execution run's state machine (docs/states.md): every allowed move passes, every other is refused
with a message; a failed run needs a known fail_reason."""

from __future__ import annotations

import itertools

import pytest

from engine.adapters.store.models import FAIL_REASONS as MODEL_FAIL_REASONS
from engine.adapters.store.models import RUN_STATUSES
from engine.domain.runstate import (
    ACTIVE,
    FAIL_REASONS,
    TRANSITIONS,
    TransitionError,
    check_transition,
)

STATUSES = sorted(TRANSITIONS)
ALLOWED = [(old, new) for old in STATUSES for new in sorted(TRANSITIONS[old])]
FORBIDDEN = [(old, new) for old, new in itertools.product(STATUSES, STATUSES) if new not in TRANSITIONS[old]]


def _reason(new: str) -> str | None:
    return "execution_error" if new == "failed" else None


def test_the_state_machine_is_the_specs():
    """scheduled → running → (observing →) completed | failed | cancelled | rolled_back
    (docs/states.md): a PASS is observed 15 minutes before it is declared complete; a run that
    ended with the index in place may still be rolled back by hand; rolled_back is final."""
    assert set(STATUSES) == set(RUN_STATUSES)
    assert TRANSITIONS["scheduled"] == {"running", "failed", "cancelled"}
    assert TRANSITIONS["running"] == {"observing", "completed", "failed", "cancelled", "rolled_back"}
    assert TRANSITIONS["observing"] == {"completed", "failed", "cancelled", "rolled_back"}
    assert TRANSITIONS["completed"] == TRANSITIONS["failed"] == TRANSITIONS["cancelled"] == {"rolled_back"}
    assert TRANSITIONS["rolled_back"] == set()
    assert ACTIVE == {"scheduled", "running", "observing"}
    assert FAIL_REASONS == {"out_of_scope", "kill_switch", "claim_failed", "execution_error",
                            "verification_failed", "manual_rollback", "harm_limit", "observation_failed"}
    assert set(MODEL_FAIL_REASONS) == FAIL_REASONS
    assert len(ALLOWED) == 15 and len(ALLOWED) + len(FORBIDDEN) == 49


@pytest.mark.parametrize("old, new", ALLOWED)
def test_every_allowed_transition_passes(old, new):
    assert check_transition(old, new, _reason(new)) is None


@pytest.mark.parametrize("old, new", ALLOWED)
@pytest.mark.parametrize("reason", sorted(FAIL_REASONS))
def test_an_allowed_transition_takes_any_known_fail_reason(old, new, reason):
    check_transition(old, new, reason)


@pytest.mark.parametrize("old, new", FORBIDDEN)
def test_every_other_pair_is_refused_with_a_message(old, new):
    with pytest.raises(TransitionError) as caught:
        check_transition(old, new, _reason(new))
    msg = str(caught.value)
    assert f"a run that is {old} cannot become {new}" in msg
    allowed = sorted(TRANSITIONS[old])
    if allowed:
        assert f"it can become {', '.join(allowed)}" in msg
    else:
        assert "nothing (it is final)" in msg


@pytest.mark.parametrize("old", STATUSES)
def test_no_status_moves_to_itself(old):
    with pytest.raises(TransitionError):
        check_transition(old, old, _reason(old))


@pytest.mark.parametrize("old", sorted(s for s in STATUSES if "failed" in TRANSITIONS[s]))
def test_failed_needs_a_fail_reason(old):
    with pytest.raises(TransitionError, match="a failed run needs a fail_reason"):
        check_transition(old, "failed")
    with pytest.raises(TransitionError, match="a failed run needs a fail_reason"):
        check_transition(old, "failed", None)


@pytest.mark.parametrize("reason", ["", "oops", "KILL_SWITCH", "kill switch", "timeout"])
@pytest.mark.parametrize("old, new", [("running", "failed"), ("running", "cancelled"), ("scheduled", "failed"),
                                      ("running", "rolled_back")])
def test_an_unknown_fail_reason_is_refused(old, new, reason):
    with pytest.raises(TransitionError, match="unknown fail_reason"):
        check_transition(old, new, reason)


@pytest.mark.parametrize("old", ["", "done", "RUNNING", "pending"])
def test_an_unknown_old_status_is_refused(old):
    with pytest.raises(TransitionError, match="unknown run status"):
        check_transition(old, "running")


@pytest.mark.parametrize("new", ["", "done", "RUNNING", "paused"])
def test_an_unknown_new_status_is_refused(new):
    with pytest.raises(TransitionError, match="cannot become"):
        check_transition("running", new)


def test_transition_error_is_a_value_error():
    assert issubclass(TransitionError, ValueError)
