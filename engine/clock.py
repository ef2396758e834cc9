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
