"""Retries with exponential backoff, on the injected clock (tenacity).

One policy for the statements the rollback sends: a retryable failure (a lost connection, a lock
wait timeout) is tried again after ``backoff_s``, then twice that, and so on, up to ``attempts``
tries; anything else ends at once. The last error is raised to the caller, which records it.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential


def retrying(attempts: int, backoff_s: float, sleep: Callable[[float], None],
             retry_on: Callable[[BaseException], bool]) -> Retrying:
    """``retrying(...)(fn, *args)`` calls ``fn`` until it returns, or raises what made it stop."""
    return Retrying(stop=stop_after_attempt(max(1, attempts)), wait=wait_exponential(multiplier=backoff_s),
                    retry=retry_if_exception(retry_on), sleep=sleep, reraise=True)
