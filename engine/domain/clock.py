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


# --- the run's one clock (docs/runbook.md#the-t-clock) --------------------------------------------
#
# One T+, one origin: the runbook puts the monitoring window at T+15 → T+75 and its checkpoints at
# T+15, T+30, T+45, T+60 and T+75, counted from the window's opening — the moment the ALTER has
# ended, the index is verified and the cool-down is over. So T+15 is that moment, and T+ exists
# from then on: it never jumps (it is not shown before it has an origin) and never runs backwards.
# Every other time is wall time in the plan's time zone, said as such ("23:04:12 UTC+07:00"); a
# drill's compressed clock is marked wherever a time is shown. Every screen, the headless drill,
# the announcements and the report call these functions.

DRILL_MARK = "⏩ drill clock ×{speed:g}"


def t_plus(seconds: float) -> str:
    """Seconds since T+0 as the runbook's clock: ``T+15:00``, ``T+31:30``, ``T+75:00``."""
    s = int(seconds)
    sign = "+" if s >= 0 else "-"
    s = abs(s)
    return f"T{sign}{s // 60:02d}:{s % 60:02d}"


def t_in_window(window_opens_at_min: float, elapsed_s: float) -> str:
    """Seconds into the monitoring window as the run's clock (the window opens at T+15)."""
    return t_plus(window_opens_at_min * 60 + elapsed_s)


def window_origin(window_started_at: datetime | None, window_opens_at_min: float) -> datetime | None:
    """T+0 of the run's clock: the window's opening less the runbook's 15 minutes (None before the
    window has opened: there is no T+ yet)."""
    return None if window_started_at is None else window_started_at - timedelta(minutes=window_opens_at_min)


def zone_label(offset: timedelta) -> str:
    """``UTC+07:00``: the plan's time zone (its off-peak window's offset)."""
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


_display_offset = timedelta(0)


def set_display_zone(offset: timedelta) -> None:
    """The plan's time zone, for the wall times a console shows (the console sets it from its plan
    once: one plan a process)."""
    global _display_offset
    _display_offset = offset


def display_zone() -> timedelta:
    return _display_offset


def wall(at: datetime, offset: timedelta | None = None, *, date: bool = False, zone: bool = True) -> str:
    """Wall time in the plan's time zone, said as such: ``23:04:12 UTC+07:00`` (``date``: with the
    day first; ``zone=False`` where a heading says the zone). ``offset``: the plan's, or the one the
    console set. ``at`` is an aware UTC datetime (a naive one is taken as UTC, as SQLite gives it)."""
    offset = _display_offset if offset is None else offset
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(UTC) + offset
    text = f"{local:%Y-%m-%d %H:%M:%S}" if date else f"{local:%H:%M:%S}"
    return f"{text} {zone_label(offset)}" if zone else text


def drill_mark(speed: float) -> str:
    """What marks a compressed drill clock ("" on a real one)."""
    return DRILL_MARK.format(speed=speed) if speed > 1 else ""


def run_clock(origin: datetime | None, now: datetime, *, end: datetime | None = None, speed: float = 1.0,
              offset: timedelta | None = None, short: bool = False) -> str:
    """The run's clock as every screen's frame shows it: ``T+31:30`` once the window has opened
    (stopped at ``end`` when the run ended); before that the wall time, said as such — there is no
    T+ yet. A compressed drill clock is marked. ``short``: the mark in a narrow frame."""
    at = end or now
    text = t_plus((at - origin).total_seconds()) if origin is not None else f"{wall(at, offset)} (T+ at the window)"
    if speed > 1:
        text += f" ⏩×{speed:g} drill" if short else f" {drill_mark(speed)}"
    return text
