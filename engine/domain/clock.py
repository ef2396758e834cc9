"""Time, injectable. Every timestamp the engine handles is an aware UTC datetime."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class FrozenClock:
    """A clock for tests: time moves only when told to (``sleep`` advances it)."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 22, 16, 0, 0, tzinfo=UTC))
    _mono: float = 0.0

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self._mono += seconds


class CompressedClock:
    """Time that runs ``speed`` times faster than the wall clock (rehearsal drills and tests only:
    the 60-minute window passes in 60/speed minutes; the store records that it was compressed)."""

    def __init__(self, speed: float, start: datetime | None = None, origin: datetime | None = None):
        """``start``: the compressed time now. ``origin``: a drill's anchor instead — compressed
        time is ``origin + (real now - origin) × speed``, so every process on the drill (a second
        console, a restarted one) reads the same time."""
        if speed < 1:
            raise ValueError("speed must be at least 1")
        self.speed = speed
        self.origin = origin
        self._real0 = time.monotonic()
        real = utcnow()
        if origin is not None:
            start = origin + (real - origin) * speed
        self._start = start or real

    def _elapsed(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed())

    def monotonic(self) -> float:
        return self._elapsed()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / self.speed)


def clock_for(plan: object) -> SystemClock | CompressedClock:
    """The plan's clock: real time, or a drill's compressed clock (rehearsal plans only — the
    plan refuses ``time_compression`` otherwise), anchored so every process reads the same time."""
    speed = float(getattr(plan, "time_speed", 1.0))
    if getattr(plan, "rehearsal", False) and speed > 1:
        return CompressedClock(speed, origin=getattr(plan, "time_origin", None) or utcnow())
    return SystemClock()
