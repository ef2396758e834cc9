"""What every drill fault is made of (engine/drill/faults.py): where the faults act
(``FaultTarget``), the ``Fault`` with its idempotent, thread-safe ``start()`` and ``stop()``, and the
``ThreadedFault`` whose threads each hold a connection of their own (reconnecting after a lost one
until stopped) and are interrupted and joined on stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from engine.adapters.target import TargetError, TargetSession
from engine.domain.clock import Clock, SystemClock
from engine.domain.identifiers import check_identifier
from engine.domain.plan import ConnectionProfile
from engine.drill.fault_sql import KILL_QUERY, ROLLBACK


class FaultError(RuntimeError):
    """A fault that cannot start or stop; the message says why (never a credential)."""


@dataclass(frozen=True)
class FaultTarget:
    """Where the faults act: the drill's primary and replica, and the table under change."""

    primary: ConnectionProfile
    replica: ConnectionProfile | None
    schema: str
    table: str

    def __post_init__(self) -> None:
        check_identifier(self.schema, "schema")
        check_identifier(self.table, "table")

    @classmethod
    def of_plan(cls, plan: Any) -> FaultTarget:
        return cls(plan.connection, plan.replica, plan.schema, plan.change.table)

    @classmethod
    def of_sandbox(cls, sandbox: Any, schema: str, table: str) -> FaultTarget:
        replica = sandbox.replica.profile(schema) if sandbox.replica is not None else None
        return cls(sandbox.primary.profile(schema), replica, schema, table)

    @property
    def primary_without_schema(self) -> ConnectionProfile:
        """The primary with no default schema: statements from it stay out of the table's digests."""
        return replace(self.primary, database="")

    def where(self) -> str:
        return f"{self.schema}.{self.table}"


def primary_key_of(target: FaultTarget, integer: bool) -> list[str]:
    with TargetSession(target.primary_without_schema, "fault-setup", read_timeout=10) as s:
        pk = s.primary_key(target.schema, target.table)
        if integer and len(pk) == 1:
            types = {c["name"]: str(c["data_type"]).lower() for c in s.columns(target.schema, target.table)}
            if types.get(pk[0]) not in ("tinyint", "smallint", "mediumint", "int", "bigint"):
                return []
        return pk


class Fault:
    """One fault: a key, a name, a line of description, ``start()`` and ``stop()``."""

    key = ""
    name = ""
    description = ""
    shows = ""  # what moves on the dashboard, and when
    note = ""  # what a start did beyond its description (put in the fault_started audit entry)

    def __init__(self, target: FaultTarget, clock: Clock | None = None):
        self.target = target
        self.clock = clock or SystemClock()
        self.since: datetime | None = None
        self.last_error: str | None = None
        self._lock = threading.RLock()

    @property
    def active(self) -> bool:
        return self.since is not None

    def start(self) -> bool:
        """Switch the fault on. False when it already was. Raises ``FaultError`` with nothing left
        open when it cannot."""
        with self._lock:
            if self.since is not None:
                return False
            self.last_error = None
            try:
                self._start()
            except TargetError as exc:
                raise FaultError(f"{self.name}: cannot start on {self.target.where()}: {exc}") from None
            self.since = self.clock.now()
            return True

    def stop(self) -> bool:
        """Switch the fault off, closing what it opened. False when it was not on. A fault whose
        undo could not reach the server (the replica's SQL thread) stays on and raises."""
        with self._lock:
            if self.since is None:
                return False
            try:
                self._stop()
            except TargetError as exc:
                self.last_error = str(exc)
                raise FaultError(f"{self.name}: could not undo on {self.target.where()}: {exc}; "
                                 "still on — stop it again") from None
            self.since = None
            return True

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError


@dataclass
class LoopSpec:
    purpose: str  # the connection's name: canary-console:<purpose>
    profile: ConnectionProfile
    setup: Sequence[tuple[str, Any]]  # statements run once per connection
    body: Callable[[TargetSession, threading.Event], None]  # one round; paces itself on the event
    read_timeout: float = 30


class _Loop(threading.Thread):
    """One thread of a fault with its own connection, reconnecting after a lost one until stopped."""

    def __init__(self, fault: ThreadedFault, spec: LoopSpec, halt: threading.Event):
        super().__init__(name=f"canary-{spec.purpose}", daemon=True)
        self.fault, self.spec, self.halt = fault, spec, halt
        self.thread_id: int | None = None  # the server's id of the connection, for KILL QUERY on stop

    def run(self) -> None:
        session: TargetSession | None = None
        try:
            while not self.halt.is_set():
                try:
                    if session is None:
                        session = TargetSession(self.spec.profile, self.spec.purpose,
                                                read_timeout=self.spec.read_timeout)
                        self.thread_id = session.thread_id
                        for statement, params in self.spec.setup:
                            optional_statement(session, statement, params)
                    self.spec.body(session, self.halt)
                except Exception as exc:  # noqa: BLE001 - a fault's thread reports, never dies
                    if self.halt.is_set():
                        break
                    self.fault.last_error = f"{self.spec.purpose}: {exc}"
                    if session is not None and (not isinstance(exc, TargetError) or exc.kind == "lost_connection"):
                        session.close()
                        session = None
                    self.halt.wait(0.5)
        finally:
            if session is not None:
                optional_statement(session, ROLLBACK, None)
                session.close()


def optional_statement(session: TargetSession, statement: str, params: Any) -> None:
    """A statement whose failure changes nothing that matters (a session setting the server does
    not know, a rollback on a dead connection)."""
    try:
        session.execute(statement, params)
    except TargetError:
        pass


class ThreadedFault(Fault):
    """A fault made of threads with their own connections; stop interrupts and joins them."""

    def __init__(self, target: FaultTarget, clock: Clock | None = None):
        super().__init__(target, clock)
        self._halt = threading.Event()
        self._loops: list[_Loop] = []

    def _specs(self) -> list[LoopSpec]:
        raise NotImplementedError

    def _start(self) -> None:
        specs = self._specs()
        self._halt = threading.Event()
        self._loops = [_Loop(self, spec, self._halt) for spec in specs]
        for loop in self._loops:
            loop.start()

    def _stop(self) -> None:
        self._halt.set()
        deadline = time.monotonic() + 0.5  # most loops end at once: they pace themselves on the event
        for loop in self._loops:
            loop.join(max(0.0, deadline - time.monotonic()))
        busy = [loop for loop in self._loops if loop.is_alive() and loop.thread_id is not None]
        if busy:  # in a statement (a lock wait, a scan): interrupt it from another connection
            try:
                with TargetSession(busy[0].spec.profile, "fault-stop", read_timeout=10) as s:
                    for loop in busy:
                        optional_statement(s, KILL_QUERY, (loop.thread_id,))
            except TargetError:
                pass  # the server is gone: the threads' own timeouts end them
        for loop in self._loops:
            loop.join(15)
        self._loops = []

    @property
    def thread_ids(self) -> list[int]:
        return [loop.thread_id for loop in self._loops if loop.thread_id is not None]
