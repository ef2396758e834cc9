"""The executors' kill-switch poll, made cheap enough for hundreds of pollers (bench/api_load.py).

Two parts, both answering exactly what the ``GET /api/kill-switch`` route answers:

- ``SwitchReader``: the store is read on one thread of its own, and every poll that arrives while
  a read is in flight waits for the *next* read, which then answers all of them with one SELECT
  (``engine.flows.switch_flow.switch_rows``). A poll is never answered by a read that began before the
  poll arrived, so a poll that starts after an activation has answered sees the switch ON. The
  reads never take a thread of the shared threadpool, and the kill switch's writes (their own
  threads, api/routers/killswitch.py) never queue behind them; the event loop, not forty threads
  fighting for the interpreter lock, is what a flood of polls costs.
- ``fast_read``: the poll in its ordinary form (a known token acting in its own tenant, at most
  ``tenant_id`` and ``connection_id``, each once and well-formed) is answered before FastAPI's
  routing and dependency solving, which cost several times the read itself. Anything else — a
  refusal, a bad or unknown parameter, a HEAD, a store that cannot be read — goes on to the
  route, which answers it (and audits it) as for any request: the fast path refuses nothing.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from api.models import SLUG_PATTERN, KillSwitchState
from api.problems import SafeJSONResponse
from engine.adapters.store import Store
from engine.flows.switch_flow import state_of, switch_rows

READ_PATH = "/api/kill-switch"
_SLUG = re.compile(SLUG_PATTERN)
_PARAMS = frozenset({"tenant_id", "connection_id"})


class SwitchReader:
    """Coalesced kill-switch reads on one thread (see the module's text)."""

    def __init__(self, store: Store, read: Callable[[Store, list[str]], list[tuple[Any, ...]]] = switch_rows):
        self.store = store
        self.read = read
        self._cond = threading.Condition()
        self._waiting: list[tuple[str, str, asyncio.Future[dict[str, Any]]]] = []
        self._closed = False
        self.reads = 0  # SELECTs made (a test sees the coalescing)
        self._thread: threading.Thread | None = None  # started by the first poll

    async def state(self, tenant: str, connection_id: str = "") -> dict[str, Any]:
        """``switch_state(store, tenant, connection_id)``, read after this call began."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the kill-switch reader is closed")
            self._waiting.append((tenant, connection_id, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kill-switch-read", daemon=True)
                self._thread.start()
            self._cond.notify()
        return await future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed and not self._waiting:
                    return
                batch, self._waiting = self._waiting, []
            rows: list[tuple[Any, ...]] = []
            error: BaseException | None = None
            try:
                rows = self.read(self.store, sorted({tenant for tenant, _, _ in batch}))
                self.reads += 1
            except Exception as exc:  # noqa: BLE001 - each poll of the batch raises it (a problem document)
                error = exc
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
            for tenant, connection_id, future in batch:
                answer = None if error else state_of(rows, tenant, connection_id)
                by_loop.setdefault(future.get_loop(), []).append((future, answer, error))
            for loop, settled in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass


def _settle(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, answer, error in settled:
        if future.done():  # the poll was cancelled (its client went away)
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(answer)


def _plain_poll(scope: dict[str, Any]) -> dict[str, str] | None:
    """The poll's parameters when it is in its ordinary form, else None (the route answers it)."""
    raw = scope.get("query_string", b"")
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        return None
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= _PARAMS:
        return None
    if any(len(v) > 63 or not _SLUG.match(v) for v in params.values()):
        return None
    return params


async def fast_read(scope: dict[str, Any], receive: Any, send: Any, principal: Any) -> bool:
    """Answer the poll if it is in its ordinary form; False to hand it to the route."""
    params = _plain_poll(scope)
    if params is None:
        return False
    state = scope["app"].state
    tenant = params.get("tenant_id") or principal.home or state.default_tenant
    if not principal.may_act_on(tenant):
        return False  # the route refuses it, audited
    try:
        answer = KillSwitchState(**await state.switch_reader.state(tenant, params.get("connection_id", "")))
    except Exception:  # noqa: BLE001 - the route reads again and answers the failure as a problem document
        return False
    await SafeJSONResponse(answer.model_dump(mode="json"))(scope, receive, send)
    return True
