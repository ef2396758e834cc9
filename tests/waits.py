"""The one way tests wait: on a condition, never for a fixed time.

``until`` polls a predicate between Textual Pilot pauses (the app keeps running while the test
waits); ``wait_for(predicate, timeout)`` polls it from a plain thread and returns its value (None
once the time is up). Both return as soon as the predicate holds, so a
quiet machine is fast and a loaded one only slower; a fixed ``sleep`` is either too long or flaky.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["until", "wait_for"]


async def until(pilot: Any, predicate: Callable[[], Any], seconds: float = 20.0, step: float = 0.05) -> bool:
    """Let the app run until ``predicate()`` is true (True) or ``seconds`` of pauses have passed
    (False). The budget counts pauses, not the wall clock: a loaded machine stretches each pause,
    and the wait stretches with it instead of giving up early."""
    for _ in range(max(1, int(seconds / step))):
        await pilot.pause(step)
        if predicate():
            return True
    return False



def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.02) -> Any:
    """The drill's own poll (engine.drill.selftest.wait_for), imported when first used: a pure test file
    that imports this module does not pay for the engine's executor and store."""
    from engine.drill.selftest import wait_for as poll

    return poll(predicate, timeout, step)
