"""The kill switch (docs/kill-switch.md, docs/kill-switch.md, docs/kill-switch.md#fail-closed): global, tenant and connection scopes.

Fail-closed: when the state cannot be read — store error, HTTP error, timeout (5 s), malformed
answer — the reading says *active*. Every reading carries its response time; above 500 ms it is a
warning, above 2000 ms critical.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # httpx loads lazily: the console's first screen does not wait for it
    import httpx

from engine.domain.clock import utcnow

SCOPES = ("global", "tenant", "connection")
TIMEOUT_S = 5.0
WARN_MS = 500.0
CRITICAL_MS = 2000.0


# --- waking this process's ALTER watchers ---------------------------------------------------------
# An executor watching its ALTER reads the switch every kill_poll_seconds (50 ms). A switch set in
# the same process (F9 in the console that drives the run) wakes it at once: the executor's own
# KILL goes out on the connection it opened before the ALTER, with no poll interval and no connect
# time, and it publishes what the kill came to (the ALTER ended, the index read back) for the
# activation to report instead of opening a connection of its own. Other processes still see the
# switch at their next poll. The activation waits (briefly) for its woken watchers to have read the
# switch and sent their KILL before it does anything else: nothing of its own — looking for other
# ALTERs, audit rows — competes with the KILL for the store or the interpreter.


@dataclass(eq=False)  # hashed by identity: one per watch
class AlterWatch:
    """One executor watching its run's ALTER in this process."""

    run_id: str
    tenant_id: str = ""  # the run's tenant and connection profile: which switches cover it
    connection_id: str = ""
    wake: threading.Event = field(default_factory=threading.Event)  # read the switch now
    settled: threading.Event = field(default_factory=threading.Event)  # the ALTER ended (outcome set) or the watch ended
    outcome: Any = None  # engine.flows.enforce.AlterKill, once the ALTER ended and its index was read
    # The watcher read the switch after its last wake-up (and sent its KILL if the switch was on).
    answered: threading.Event = field(default_factory=threading.Event)
    killed_at: float | None = None  # time.monotonic() when this watcher's KILL QUERY went out

    def publish(self, outcome: Any) -> None:
        self.outcome = outcome
        self.settled.set()


_WATCHERS: set[AlterWatch] = set()
_WATCHERS_LOCK = threading.Lock()


@contextmanager
def watching(run_id: str, tenant_id: str = "", connection_id: str = "") -> Iterator[AlterWatch]:
    """Register an executor's watch of its ALTER for the length of the block."""
    watch = AlterWatch(run_id, tenant_id, connection_id)
    with _WATCHERS_LOCK:
        _WATCHERS.add(watch)
    try:
        yield watch
    finally:
        with _WATCHERS_LOCK:
            _WATCHERS.discard(watch)
        watch.answered.set()
        watch.settled.set()


def wake_watchers() -> list[AlterWatch]:
    """The switch was just set in this process: every watcher reads it now, not at its next poll.
    Returns the watches woken, for ``await_watchers``."""
    with _WATCHERS_LOCK:
        woken = list(_WATCHERS)
    for watch in woken:
        watch.answered.clear()
        watch.wake.set()
    return woken


ANSWER_WAIT_S = 0.5  # how long an activation lets its woken watchers go first (a hung store read: no longer)


def await_watchers(watches: list[AlterWatch], timeout: float = ANSWER_WAIT_S) -> None:
    """Wait until each woken watcher has read the switch (and sent its KILL), or its watch ended,
    for ``timeout`` seconds at most: the KILL goes out before the activation's other work."""
    deadline = time.monotonic() + timeout
    for watch in watches:
        while not watch.answered.is_set() and not watch.settled.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            watch.answered.wait(min(left, 0.05))  # settled (a watch that just ended) sets no answer


def watch_of(run_id: str) -> AlterWatch | None:
    """This process's executor watching the run's ALTER, if there is one."""
    with _WATCHERS_LOCK:
        return next((w for w in _WATCHERS if w.run_id == run_id), None)


@dataclass(frozen=True)
class ScopeState:
    active: bool
    set_by: str = ""
    reason: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class KillSwitchReading:
    active: bool
    scopes: dict[str, ScopeState]
    source: str  # embedded | remote
    response_ms: float
    error: str | None = None  # set when the reading is fail-closed
    checked_at: datetime = field(default_factory=utcnow)

    @property
    def fail_closed(self) -> bool:
        return self.error is not None

    @property
    def latency_level(self) -> str:
        if self.response_ms >= CRITICAL_MS:
            return "critical"
        if self.response_ms >= WARN_MS:
            return "warning"
        return "ok"

    def active_scopes(self) -> list[str]:
        return [s for s in SCOPES if self.scopes.get(s, ScopeState(False)).active]

    def describe(self) -> str:
        if self.error:
            return f"ACTIVE (fail-closed: {self.error})"
        if not self.active:
            return "off"
        parts = []
        for scope in self.active_scopes():
            st = self.scopes[scope]
            parts.append(f"{scope} by {st.set_by or '?'}" + (f" ({st.reason})" if st.reason else ""))
        return "ACTIVE: " + ", ".join(parts)


def fail_closed(source: str, error: str, started: float) -> KillSwitchReading:
    return KillSwitchReading(True, {}, source, (time.perf_counter() - started) * 1000, error)


class KillSwitchBackend(Protocol):
    source: str

    def read(self, tenant_id: str, connection_id: str) -> KillSwitchReading: ...

    def set(self, tenant_id: str, scope: str, active: bool, actor: str, reason: str = "",
            connection_id: str = "") -> None: ...


class EmbeddedKillSwitch:
    """The store is the switch: every console and worker on the same store sees the same rows."""

    source = "embedded"

    def __init__(self, store: Any):
        self.store = store

    def read(self, tenant_id: str, connection_id: str) -> KillSwitchReading:
        started = time.perf_counter()
        try:
            rows = self.store.kill_switch_rows(tenant_id, connection_id)
        except Exception as exc:  # noqa: BLE001 - any failure to read means "active"
            # Loaded already: the store is open.
            from engine.adapters.store.backend import StoreError

            said = (str(exc).splitlines() or [""])[0]
            # A StoreError is written for the reader (the cause and the way out): said whole.
            why = said if isinstance(exc, StoreError) else f"{exc.__class__.__name__}: {said[:200]}"
            return fail_closed(self.source, f"store unreadable: {why}", started)
        scopes = {
            r.scope: ScopeState(bool(r.is_active), r.updated_by, r.reason, r.updated_at) for r in rows
        }
        active = any(s.active for s in scopes.values())
        return KillSwitchReading(active, scopes, self.source, (time.perf_counter() - started) * 1000)

    def set(self, tenant_id: str, scope: str, active: bool, actor: str, reason: str = "",
            connection_id: str = "") -> None:
        self.store.set_kill_switch(tenant_id, scope, active, actor, reason, connection_id)

    def commit_probe(self) -> Any:
        """``Store.commit_probe``: a cheap "did anyone commit" for the ALTER's watcher (a context)."""
        return self.store.commit_probe()


class KillSwitchApiError(RuntimeError):
    pass


class RemoteKillSwitch:
    """The docs/api.md API over httpx: ``GET /api/kill-switch?connection_id=…`` and the PUTs."""

    source = "remote"

    def __init__(self, base_url: str, token: str | None = None, timeout: float = TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None):
        import httpx

        headers = {"Accept": "application/json"}
        token = (token or "").strip()
        self._token = token
        # A token that cannot go in a header is a configuration error, said without quoting it
        # (httpx would quote the header in its exception, and that text reaches the audit trail).
        self.config_error = ("the API token is not printable ASCII (check the variable the plan's "
                             "kill_switch_api_token_env names)" if token and not (token.isascii() and token.isprintable())
                             else None)
        if token and self.config_error is None:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                   transport=transport)

    @classmethod
    def from_env(cls, base_url: str, token_env: str | None) -> RemoteKillSwitch:
        return cls(base_url, os.environ.get(token_env) if token_env else None)

    def close(self) -> None:
        self.client.close()

    def _said(self, exc: BaseException) -> str:
        """An exception as text, never with the token in it."""
        text = f"{exc.__class__.__name__}: {exc}"
        return text.replace(self._token, "…") if self._token else text

    def read(self, tenant_id: str, connection_id: str) -> KillSwitchReading:
        import httpx

        started = time.perf_counter()
        if self.config_error:
            return fail_closed(self.source, self.config_error, started)
        try:
            resp = self.client.get("/api/kill-switch", params={"connection_id": connection_id,
                                                                "tenant_id": tenant_id})
        except httpx.TimeoutException:
            return fail_closed(self.source, f"API timed out after {self.timeout:g} s", started)
        except httpx.HTTPError as exc:
            return fail_closed(self.source, f"API unreachable: {self._said(exc)}", started)
        elapsed = (time.perf_counter() - started) * 1000
        if resp.status_code != 200:
            return fail_closed(self.source, f"API answered HTTP {resp.status_code}", started)
        try:
            data = resp.json()
            flags = {
                "global": data["global_active"],
                "connection": data["connection_active"],
                "tenant": data.get("tenant_active", False),
            }
            if not all(isinstance(v, bool) for v in flags.values()):
                raise ValueError("flags are not booleans")
        except (ValueError, KeyError, TypeError) as exc:
            return fail_closed(self.source, f"API answer is malformed ({exc})", started)
        set_by = data.get("updated_by") or {}
        reasons = data.get("reasons") or {}
        scopes = {
            s: ScopeState(v, str(set_by.get(s, "")) if isinstance(set_by, dict) else "",
                          str(reasons.get(s, "")) if isinstance(reasons, dict) else "")
            for s, v in flags.items()
        }
        return KillSwitchReading(any(flags.values()), scopes, self.source, elapsed)

    def set(self, tenant_id: str, scope: str, active: bool, actor: str, reason: str = "",
            connection_id: str = "") -> None:
        path = {
            "global": "/api/kill-switch/global",
            "tenant": f"/api/kill-switch/tenant/{tenant_id}",
            "connection": f"/api/kill-switch/connection/{connection_id}",
        }[scope]
        import httpx

        if self.config_error:
            raise KillSwitchApiError(self.config_error)
        try:
            resp = self.client.put(path, json={"is_active": active, "reason": reason, "actor": actor,
                                               "tenant_id": tenant_id})
        except httpx.HTTPError as exc:
            raise KillSwitchApiError(f"kill-switch API unreachable: {self._said(exc)}") from None
        if resp.status_code != 200:
            try:
                detail = resp.json().get("error", resp.text)
            except ValueError:
                detail = resp.text[:200]
            raise KillSwitchApiError(f"kill-switch API refused ({resp.status_code}): {detail}")


def backend_for(plan: Any, store: Any) -> KillSwitchBackend:
    if getattr(plan, "kill_switch_api_url", None):
        return RemoteKillSwitch.from_env(plan.kill_switch_api_url, plan.kill_switch_api_token_env)
    return EmbeddedKillSwitch(store)
