"""Values made fit for a JSON column: no NaN or infinity (PostgreSQL's JSON refuses them)."""

from __future__ import annotations

from typing import Any


def jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
