"""The canary plan (docs/product.md#the-plan-input): one TOML file describing one run.

``load_plan`` returns a frozen ``Plan`` or raises ``PlanError`` carrying one clear message per
problem: which key, what is wrong, what is allowed. The password is never in the file; it comes
from an environment variable the plan names, or from a MySQL option file.

Split by role, the plan's names importable from here: the frozen data in
engine/domain/plan_model.py, each section's checks in engine/domain/plan_sections.py, the checks of
one value (and no secret in the file) in engine/domain/plan_fields.py.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.domain.plan_fields import _reject_secrets, _slug, _store_url, _table, _without_secrets
from engine.domain.plan_model import (
    DEFAULT_UTC_OFFSET,
    REQUIRED_PERSONNEL,
    ROLE_WORDS,
    TLS,
    Change,
    ConnectionProfile,
    ExecutorOptions,
    IndexColumn,
    OffPeakWindow,
    Person,
    Plan,
    PlanError,
    WarRoom,
    _has_control,
    _parse_window,
    printable,
)
from engine.domain.plan_sections import (
    _change,
    _connection,
    _executor,
    _integrations,
    _people,
    _time_compression,
    _war_room,
    _window,
)

# The plan's people hold these roles (one list: engine/domain/roles.py).
from engine.domain.roles import ROLES
from engine.domain.thresholds import ProfileError, profile_from_overrides

_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


# --- loading --------------------------------------------------------------------------------


def load_plan(path: str | os.PathLike[str]) -> Plan:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError([f"file not found: {p}. Give the path of a canary plan (TOML)."], str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([f"cannot read {p}: {exc}"], str(p)) from None
    return parse_plan(text, source=str(p))


def parse_plan(text: str, source: str = "<memory>") -> Plan:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError([f"not valid TOML: {exc}"], source) from None
    return plan_from_dict(data, source)


def plan_from_dict(data: dict[str, Any], source: str = "<memory>") -> Plan:
    problems: list[str] = []
    _reject_secrets(data, "", problems)
    data = _without_secrets(data)  # each secret is reported once, above, not again as an unknown key
    known = {
        "tenant", "connection", "replica", "change", "people", "war_room", "window", "integrations",
        "store_url", "thresholds", "executor", "prometheus_queries", "rehearsal",
        "time_compression",
    }
    for key in data:
        if key not in known:
            problems.append(f"unknown key '{key}': allowed top-level keys are {', '.join(sorted(known))}")

    tenant = _slug(data, "tenant", "tenant", problems, required=True)
    connection = _connection(data.get("connection"), "connection", problems, required=True)
    replica = _connection(data.get("replica"), "replica", problems, required=False)
    change = _change(data.get("change"), problems)
    people = _people(data.get("people", []), problems)
    war_room = _war_room(data.get("war_room", {}), problems)
    off_peak = _window(data.get("window", {}), problems)
    integrations = _integrations(data.get("integrations", {}), problems)
    store_url = _store_url(data.get("store_url"), problems)
    thresholds = _table(data.get("thresholds", {}), "thresholds", problems)
    try:
        profile_from_overrides(thresholds)
    except ProfileError as exc:
        problems.extend(exc.problems)
    executor = _executor(data.get("executor", {}), problems)
    rehearsal = data.get("rehearsal", False)
    if not isinstance(rehearsal, bool):
        problems.append("rehearsal must be true or false (true only in a plan `canary-console rehearse` wrote)")
        rehearsal = False
    time_speed, time_origin = _time_compression(data.get("time_compression"), rehearsal, problems)
    prom_queries = _table(data.get("prometheus_queries", {}), "prometheus_queries", problems)
    for key, query in prom_queries.items():
        if (not isinstance(query, str) or not query.strip() or not _METRIC_NAME.fullmatch(key)
                or _has_control(query.translate({9: None, 10: None, 13: None}))):  # multi-line PromQL is fine
            problems.append(f"'prometheus_queries.{key}' must be a PromQL string under a metric name "
                            "(letters, digits, '_', at most 64), e.g. cpu = '100 - avg(irate(node_cpu_seconds_total{mode=\"idle\"}[5m])) * 100'")

    if change is not None and connection is not None and connection.database and any(
            c.lower() == connection.database.lower() for c in change.control_schemas):
        problems.append(f"'change.control_schemas' names the canary's own schema {connection.database!r}: a control "
                        "is another tenant's schema, not altered by this change")
    if problems:
        raise PlanError(problems, source)
    assert tenant and connection and change  # guaranteed when there are no problems
    return Plan(
        tenant=tenant, connection=connection, change=change, people=tuple(people), replica=replica, war_room=war_room,
        off_peak=off_peak, **integrations, store_url=store_url, thresholds=dict(thresholds),
        executor=executor, prometheus_queries=dict(prom_queries), source=source, raw=copy.deepcopy(data),
        rehearsal=rehearsal, time_speed=time_speed, time_origin=time_origin,
    )


# --- writing plans (the self-test's workers and the rehearsal) -------------------------------------


def window_covering(now: datetime, utc_offset: str = DEFAULT_UTC_OFFSET, hours: int = 2) -> dict[str, str]:
    """An off-peak window around ``now`` — for sandboxes only (self-test, rehearsal), never a real plan."""
    local = now + _parse_window("00:00-01:00", utc_offset, []).utc_offset
    return {"off_peak": f"{local.hour:02d}:00-{(local.hour + hours) % 24:02d}:00", "utc_offset": utc_offset}


def toml_dump(data: dict[str, Any]) -> str:
    """A plan dictionary as TOML (tables, arrays of tables, strings, numbers, booleans, lists)."""

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + "}"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    lines: list[str] = []

    def table(prefix: str, tbl: dict[str, Any]) -> None:
        plain = {k: v for k, v in tbl.items() if not isinstance(v, dict)
                 and not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))}
        for k, v in plain.items():
            lines.append(f"{k} = {scalar(v)}")
        for k, v in tbl.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                lines.append(f"\n[{name}]")
                table(name, v)
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                for item in v:
                    lines.append(f"\n[[{name}]]")
                    table(name, item)

    table("", data)
    return "\n".join(lines).lstrip() + "\n"


__all__ = [  # with what is defined here, the plan's names callers import from this module
    "REQUIRED_PERSONNEL", "ROLES", "ROLE_WORDS", "TLS", "Change", "ConnectionProfile", "ExecutorOptions",
    "IndexColumn", "OffPeakWindow", "Person", "Plan", "PlanError", "WarRoom", "printable",
    "load_plan", "parse_plan", "plan_from_dict", "window_covering", "toml_dump",
]
