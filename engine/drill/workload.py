"""A steady statement load on the target table, from its own connection and thread.

Used by the self-test (TC-06/07/08) and the rehearsal, so that digests, latency and lag are real.
``statement`` and ``params`` can be swapped while it runs (a phase change: e.g. a regression).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.adapters.target import TargetError, TargetSession
from engine.domain.plan import ConnectionProfile


class Workload:
    def __init__(self, profile: ConnectionProfile, statement: str,
                 params: Callable[[random.Random], Any] | None = None, rate_per_s: float = 50.0,
                 name: str = "workload"):
        self.profile = profile
        self.statement = statement
        self.params = params or (lambda _r: None)
        self.rate_per_s = rate_per_s
        self.name = name
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_phase(self, statement: str, params: Callable[[random.Random], Any] | None = None) -> None:
        self.statement, self.params = statement, params or (lambda _r: None)

    def start(self) -> Workload:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        rng = random.Random(7)
        session: TargetSession | None = None
        interval = 1.0 / self.rate_per_s if self.rate_per_s > 0 else 0.0
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if session is None:
                    session = TargetSession(self.profile, self.name, read_timeout=30)
                session.query(self.statement, self.params(rng))
                self.sent += 1
            except TargetError as exc:
                self.errors += 1
                self.last_error = str(exc)
                if exc.kind == "lost_connection" and session is not None:
                    session.close()
                    session = None
                    self._stop.wait(0.2)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        if session is not None:
            session.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Workload:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
