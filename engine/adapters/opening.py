"""A store opened on a thread, so the console can draw its first screen meanwhile.

Importing sqlmodel and SQLAlchemy and opening the store take longer (about 0.6 s here) than the
whole budget for the first screen. ``OpeningStore`` starts that on a thread at once and stands in
for the ``Store``: every use waits until it is open (workers only — the UI thread never touches
the store), and an error opening it is raised to whoever asks, with the store's own message.
"""

from __future__ import annotations

import threading
from typing import Any

from engine.domain.clock import Clock


class OpeningStore:
    """``start()`` begins opening (the console calls it once its first frame is on screen, so the
    import does not compete with the drawing); any use before that starts it too."""

    def __init__(self, url: str | None = None, clock: Clock | None = None):
        self._ready = threading.Event()
        self._store: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, args=(url, clock), name="store-open", daemon=True)
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:
            if not self._thread.is_alive() and not self._ready.is_set():
                self._thread.start()

    def _open(self, url: str | None, clock: Clock | None) -> None:
        try:
            from engine.adapters.store import Store

            self._store = Store(url, clock)
        except BaseException as exc:  # noqa: BLE001 - handed to the first caller
            self._error = exc
        finally:
            self._ready.set()

    def wait_open(self, timeout: float | None = None) -> Any:
        """The Store, once open (raises what opening it raised)."""
        self.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the store is still opening")
        if self._error is not None:
            raise self._error
        return self._store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wait_open(), name)
