"""The one way tests wait: on a condition, never for a fixed time.

``until`` polls a predicate between Textual Pilot pauses (the app keeps running while the test
waits); ``steady`` waits, the same way, until what the app draws stops changing (before a
snapshot); ``wait_for(predicate, timeout)`` polls it from a plain thread and returns its value (None
once the time is up); ``expect(what, predicate, timeout)`` is ``wait_for`` that fails the test,
naming what it waited for, when the time is up. They return as soon as the condition holds, so a
quiet machine is fast and a loaded one only slower; a fixed ``sleep`` is either too long or flaky.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["expect", "steady", "until", "wait_for"]


async def until(pilot: Any, predicate: Callable[[], Any], seconds: float = 20.0, step: float = 0.05) -> bool:
    """Let the app run until ``predicate()`` is true (True) or ``seconds`` of pauses have passed
    (False). The budget counts pauses, not the wall clock: a loaded machine stretches each pause,
    and the wait stretches with it instead of giving up early."""
    for _ in range(max(1, int(seconds / step))):
        await pilot.pause(step)
        if predicate():
            return True
    return False


async def steady(pilot: Any, seconds: float = 20.0, step: float = 0.02, times: int = 3) -> bool:
    """Let the app run until what it draws stops changing: the same picture ``times`` pauses
    running, the workers done (True), or ``seconds`` of pauses (False). For a snapshot: a screen
    settles over several turns of the loop after its data comes in (the footer recomposes, a
    table sizes its columns), and Textual's own idle wait compares the process's CPU time with
    the wall clock, so a starved process looks idle before it is — this wait does not."""
    app = pilot.app
    last, same = None, 0
    for _ in range(max(1, int(seconds / step))):
        await app.workers.wait_for_complete()
        await pilot.pause(step)
        shot = app.export_screenshot()
        same = same + 1 if shot == last else 0
        if same >= times - 1:
            return True
        last = shot
    return False


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.02) -> Any:
    """The drill's own poll (engine.drill.selftest.wait_for), imported when first used: a pure test file
    that imports this module does not pay for the engine's executor and store."""
    from engine.drill.selftest import wait_for as poll

    return poll(predicate, timeout, step)


def expect(what: str, predicate: Callable[[], Any], timeout: float = 20.0, step: float = 0.2) -> Any:
    """``wait_for``, or an AssertionError naming ``what`` once ``timeout`` seconds have passed."""
    got = wait_for(predicate, timeout, step)
    if not got:
        raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
    return got
