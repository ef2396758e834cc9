"""The sections of a plan, each checked on its own (docs/product.md#the-plan-input): ``[connection]``
and ``[replica]``, ``[change]`` (with its sample queries and control schemas), ``[[people]]``,
``[war_room]``, ``[window]``, ``[integrations]``, ``[executor]`` and a drill's
``time_compression``. Each appends one message per problem and returns what it could read;
``plan_from_dict`` (engine/domain/plan.py) puts the plan together.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

from engine.domain.plan_fields import (
    _SECRET_KEYS,
    _env_name,
    _ident,
    _int,
    _num,
    _option_file_problem,
    _path,
    _slug,
    _table,
    _url,
)
from engine.domain.plan_model import (
    DEFAULT_OFF_PEAK,
    DEFAULT_UTC_OFFSET,
    TLS,
    Change,
    ConnectionProfile,
    ExecutorOptions,
    IndexColumn,
    OffPeakWindow,
    Person,
    WarRoom,
    _has_control,
    _parse_window,
)
from engine.domain.roles import ROLES

_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{2,39}")
# A host name or an IP address (v4, v6 with an optional %zone): what pymysql can resolve.
_HOST = re.compile(r"[A-Za-z0-9._:%-]{1,255}")
_OPTION_GROUP = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A login name as `id -un` prints it (local, LDAP or user@domain accounts).
_UNIX_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
DEFAULT_HISTORY_DAYS = 3


def _window(value: Any, problems: list[str]) -> OffPeakWindow:
    """``[window]``: the off-peak window and its UTC offset (the war room's time zone)."""
    window_tbl = _table(value, "window", problems)
    for key in window_tbl:
        if key not in ("off_peak", "utc_offset"):
            problems.append(f"unknown key 'window.{key}': allowed are off_peak, utc_offset")
    return _parse_window(
        str(window_tbl.get("off_peak", DEFAULT_OFF_PEAK)),
        str(window_tbl.get("utc_offset", DEFAULT_UTC_OFFSET)),
        problems,
    )


def _integrations(value: Any, problems: list[str]) -> dict[str, Any]:
    """``[integrations]``: Prometheus (and how many previous days of it the verdict reads), the
    remote kill-switch API and its token's environment variable, the webhooks. Returns the
    ``Plan`` fields they fill."""
    integ = _table(value, "integrations", problems)
    for key in integ:
        if key not in {"prometheus_url", "prometheus_history_days", "kill_switch_api_url",
                       "kill_switch_api_token_env", "webhook_url", "webhook_urls"}:
            problems.append(
                f"unknown key 'integrations.{key}': allowed are prometheus_url, prometheus_history_days, "
                "kill_switch_api_url, kill_switch_api_token_env, webhook_url, webhook_urls"
            )
    history_days = integ.get("prometheus_history_days", DEFAULT_HISTORY_DAYS)
    if isinstance(history_days, bool) or not isinstance(history_days, int) or not 0 <= history_days <= 14:
        problems.append("'integrations.prometheus_history_days' must be a whole number of days from 0 to 14 "
                        f"(the same hours of that many previous days, from Prometheus; default {DEFAULT_HISTORY_DAYS})")
        history_days = DEFAULT_HISTORY_DAYS
    urls = {k: _url(integ, k, problems) for k in ("prometheus_url", "kill_switch_api_url", "webhook_url")}
    more_hooks = integ.get("webhook_urls", [])
    webhook_urls: list[str] = []
    if not isinstance(more_hooks, list):
        problems.append("'integrations.webhook_urls' must be a list of http:// or https:// URLs, "
                        'e.g. ["https://hooks.slack.com/services/…"]')
    else:
        for i, hook in enumerate(more_hooks):
            url = _url({f"webhook_urls[{i}]": hook}, f"webhook_urls[{i}]", problems)
            if url is not None:
                webhook_urls.append(url)
    token_env = _env_name(integ, "kill_switch_api_token_env", "integrations", problems)
    return {"prometheus_url": urls["prometheus_url"], "prometheus_history_days": history_days,
            "kill_switch_api_url": urls["kill_switch_api_url"], "kill_switch_api_token_env": token_env,
            "webhook_url": urls["webhook_url"], "webhook_urls": tuple(webhook_urls)}


def _time_compression(node: Any, rehearsal: bool, problems: list[str]) -> tuple[float, datetime | None]:
    """``time_compression = { speed = 30, origin = "2026-11-23T08:00:00+00:00" }``: a drill's clock.
    Never available outside rehearsal."""
    if node is None:
        return 1.0, None
    if not rehearsal:
        problems.append("time_compression is for rehearsal plans only (`canary-console rehearse` writes it); "
                        "remove it: a real canary runs in real time")
        return 1.0, None
    tbl = _table(node, "time_compression", problems)
    for key in tbl:
        if key not in ("speed", "origin"):
            problems.append(f"unknown key 'time_compression.{key}': allowed are speed, origin")
    speed = tbl.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 1 <= speed <= 600:
        problems.append("time_compression.speed must be a number from 1 (real time) to 600")
        speed = 1.0
    origin: datetime | None = None
    raw = tbl.get("origin")
    if raw is not None:
        try:
            origin = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
        except ValueError:
            problems.append(f"time_compression.origin must be an ISO time with its offset, e.g. "
                            f"2026-11-23T08:00:00+00:00 (not {str(raw)[:40]!r})")
        if origin is not None and origin.tzinfo is None:
            problems.append("time_compression.origin needs its UTC offset, e.g. 2026-11-23T08:00:00+00:00")
            origin = None
    return float(speed), origin


def _connection(value: Any, where: str, problems: list[str], required: bool) -> ConnectionProfile | None:
    if value is None:
        if required:
            problems.append(f"'[{where}]' is missing: give host, port, user, database and password_env or option_file")
        return None
    if not isinstance(value, dict):  # one message for the section, not one more for each key in it
        _table(value, where, problems)
        return None
    tbl = value
    allowed = {"id", "host", "port", "user", "database", "socket", "password_env", "option_file", "option_group", "tls"}
    for key in tbl:
        if key not in allowed and key.lower() not in _SECRET_KEYS:
            problems.append(f"unknown key '{where}.{key}': allowed are {', '.join(sorted(allowed))}")
    conn_id = _slug(tbl, "id", f"{where}.id", problems, required=False) or where
    host = tbl.get("host", "127.0.0.1")
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        problems.append(f"'{where}.host' must be a host name or IP address (letters, digits, '.', '-', ':'), "
                        "at most 255 characters, e.g. db1.internal or 10.0.0.12")
        host = "127.0.0.1"
    port = _int(tbl, "port", where, 3306, 1, 65535, problems)
    user = tbl.get("user", "root")
    if not isinstance(user, str) or not user or len(user) > 80 or _has_control(user):
        problems.append(f"'{where}.user' must be a user name of 1-80 characters, without control characters")
        user = "root"
    database = _ident(tbl.get("database"), f"{where}.database", problems) or ""
    socket = _path(tbl, "socket", where, problems, "/run/mysqld/mysqld.sock")
    password_env = _env_name(tbl, "password_env", where, problems)
    option_group = tbl.get("option_group", "client")
    if not isinstance(option_group, str) or not _OPTION_GROUP.fullmatch(option_group):
        problems.append(f"'{where}.option_group' must be a group name such as 'client' (letters, digits, '_', "
                        "'.', '-')")
        option_group = None
    option_file = _path(tbl, "option_file", where, problems, "~/.my.cnf")
    if option_file is not None:
        option_file = os.path.expanduser(option_file)
        if not os.path.isfile(option_file):
            problems.append(f"'{where}.option_file' {option_file} does not exist: give the path of a MySQL "
                            "option file such as ~/.my.cnf")
        elif option_group is not None:
            trouble = _option_file_problem(option_file, option_group)
            if trouble:
                problems.append(f"'{where}.option_file' {option_file} {trouble}")
    option_group = option_group or "client"
    tls = None
    if "tls" in tbl:
        t = _table(tbl["tls"], f"{where}.tls", problems)
        for key in t:
            if key not in ("ca", "cert", "key", "verify_identity"):
                problems.append(f"unknown key '{where}.tls.{key}': allowed are ca, cert, key, verify_identity")
        verify_identity = t.get("verify_identity", False)
        if not isinstance(verify_identity, bool):
            problems.append(f"'{where}.tls.verify_identity' must be true or false")
            verify_identity = False
        tls = TLS(
            ca=_path(t, "ca", f"{where}.tls", problems, "/etc/ssl/ca.pem", 4096),
            cert=_path(t, "cert", f"{where}.tls", problems, "/etc/ssl/client.pem", 4096),
            key=_path(t, "key", f"{where}.tls", problems, "/etc/ssl/client.key", 4096),
            verify_identity=verify_identity,
        )
    return ConnectionProfile(
        id=conn_id, host=host, port=port, user=user, database=database, socket=socket,
        password_env=password_env, option_file=option_file, option_group=option_group, tls=tls,
    )


def _change(value: Any, problems: list[str]) -> Change | None:
    if value is None:
        problems.append("'[change]' is missing: give table, index and columns")
        return None
    if not isinstance(value, dict):  # one message for the section, not one more for each key in it
        _table(value, "change", problems)
        return None
    tbl = value
    for key in tbl:
        if key not in {"table", "index", "columns", "action", "query_digests", "sample_queries", "control_schemas"}:
            problems.append(f"unknown key 'change.{key}': allowed are action, columns, control_schemas, index, "
                            "query_digests, sample_queries, table")
    action = tbl.get("action", "ADD_INDEX")
    if action != "ADD_INDEX":
        problems.append(f"'change.action' {action!r} is out of scope: a canary does ADD_INDEX only")
    table = _ident(tbl.get("table"), "change.table", problems)
    index = _ident(tbl.get("index"), "change.index", problems)
    if isinstance(index, str) and index.upper() == "PRIMARY":
        problems.append("'change.index' cannot be PRIMARY: a canary adds a secondary index")
    raw_cols = tbl.get("columns")
    columns: list[IndexColumn] = []
    if not isinstance(raw_cols, list) or not raw_cols:
        problems.append("'change.columns' must be a non-empty list, e.g. [\"customer_id\", {name = \"note\", prefix = 16}]")
    else:
        for i, col in enumerate(raw_cols):
            where = f"change.columns[{i}]"
            if isinstance(col, str):
                name = _ident(col, where, problems)
                if name:
                    columns.append(IndexColumn(name))
            elif isinstance(col, dict):
                unknown = [str(key) for key in col if key not in ("name", "prefix")]
                for key in unknown:
                    problems.append(f"unknown key '{where}.{key}': allowed are name, prefix"
                                    + (f" (and '{where}.name' is missing)"
                                       if "name" not in col and key == unknown[-1] else ""))
                # A table with no name and a wrong key is one mistake (a misspelt name), said once above.
                name = None if unknown and "name" not in col else _ident(col.get("name"), f"{where}.name", problems)
                prefix = col.get("prefix")
                if prefix is not None and (isinstance(prefix, bool) or not isinstance(prefix, int) or not 1 <= prefix <= 3072):
                    problems.append(f"'{where}.prefix' must be a whole number from 1 to 3072")
                    prefix = None
                if name:
                    columns.append(IndexColumn(name, prefix))
            else:
                problems.append(f"'{where}' must be a column name or {{name = …, prefix = …}}")
        names = [c.name.lower() for c in columns]
        if len(set(names)) != len(names):
            problems.append("'change.columns' names a column twice")
        if len(columns) > 16:
            problems.append("'change.columns' has more than 16 columns (the server's limit)")
    digests = tbl.get("query_digests", [])
    if not isinstance(digests, list) or not all(
        isinstance(d, str) and d and all(c in "0123456789abcdefABCDEF" for c in d) and len(d) <= 64 for d in digests
    ):
        problems.append("'change.query_digests' must be a list of hexadecimal digests from performance_schema")
        digests = []
    samples = _sample_queries(tbl.get("sample_queries", []), problems)
    controls = _control_schemas(tbl.get("control_schemas", []), problems)
    if table is None or index is None or not columns:
        return None
    return Change(table=table, index=index, columns=tuple(columns), query_digests=tuple(d.lower() for d in digests),
                  sample_queries=samples, control_schemas=controls)


def _control_schemas(value: Any, problems: list[str]) -> tuple[str, ...]:
    """``change.control_schemas``: up to 16 schema names, each once (docs/verdict.md#the-control)."""
    example = 'e.g. control_schemas = ["shop_tenant_b", "shop_tenant_c"]'
    if not isinstance(value, list):
        problems.append(f"'change.control_schemas' must be a list of schema names, {example}")
        return ()
    if len(value) > 16:
        problems.append("'change.control_schemas' names more than 16 schemas: pick a few like the canary's")
        return ()
    names = [_ident(v, f"change.control_schemas[{i}]", problems) for i, v in enumerate(value)]
    names = [n for n in names if n]
    if len({n.lower() for n in names}) != len(names):
        problems.append("'change.control_schemas' names a schema twice")
    return tuple(names)


_SAMPLE_QUERY = re.compile(r"\s*SELECT\s", re.I)
_SAMPLE_FORBIDDEN = re.compile(r";|\bINTO\b|\bFOR\s+UPDATE\b|\bLOCK\s+IN\b|/\*|--|#", re.I)


def _sample_queries(value: Any, problems: list[str]) -> tuple[str, ...]:
    """``change.sample_queries``: up to 10 single SELECT statements with literal values, EXPLAINed
    (never run) before and after the change to see that the index is used."""
    example = "sample_queries = [\"SELECT id FROM orders WHERE customer_id = 42 AND created_at >= '2026-03-01'\"]"
    if not isinstance(value, list) or len(value) > 10:
        problems.append(f"'change.sample_queries' must be a list of at most 10 SELECT statements, e.g. {example}")
        return ()
    out = []
    for i, q in enumerate(value):
        if (not isinstance(q, str) or not _SAMPLE_QUERY.match(q) or len(q) > 2000 or _SAMPLE_FORBIDDEN.search(q)
                or _has_control(q.translate({9: None, 10: None, 13: None}))):
            problems.append(f"'change.sample_queries[{i}]' must be one SELECT with literal values (no ';', comments, "
                            f"INTO or locking clause; at most 2000 characters), e.g. {example}")
            continue
        out.append(" ".join(q.split()))
    return tuple(out)


def _war_room(value: Any, problems: list[str]) -> WarRoom:
    """``[war_room]``: dashboard, chat, room, pager — each a link or a short text."""
    tbl = _table(value, "war_room", problems)
    out = {}
    for key, v in tbl.items():
        if key not in ("dashboard", "chat", "room", "pager"):
            problems.append(f"unknown key 'war_room.{key}': allowed are chat, dashboard, pager, room")
        elif not isinstance(v, str) or len(v) > 300 or _has_control(v):
            problems.append(f"'war_room.{key}' must be text of at most 300 characters (a link, a channel or a place), "
                            "e.g. chat = \"#canary-executor-v1\"")
        else:
            out[key] = v.strip()
    return WarRoom(**out)


_PERSON_KEYS = ("backup", "contact", "handle", "name", "phone", "role", "roles", "unix_user")


def _people(value: Any, problems: list[str]) -> list[Person]:
    if not isinstance(value, list):
        problems.append("'people' must be a list of tables ([[people]] with name, role, unix_user, phone, handle)")
        return []
    people = []
    for i, row in enumerate(value):
        where = f"people[{i}]"
        if not isinstance(row, dict):
            problems.append(f"'{where}' must be a table with name, role, unix_user, contact")
            continue
        for key in row:
            if key not in _PERSON_KEYS:
                problems.append(f"unknown key '{where}.{key}': allowed are {', '.join(_PERSON_KEYS)}")
        name = row.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"'{where}.name' is missing")
            continue
        if _has_control(name) or len(name) > 200:
            problems.append(f"'{where}.name' must be a name of at most 200 characters, without control characters")
            continue
        raw_roles = row.get("roles", row.get("role"))
        roles = [raw_roles] if isinstance(raw_roles, str) else raw_roles
        if not isinstance(roles, list) or not roles:
            problems.append(f"'{where}' ({name}) needs role or roles: one or more of {', '.join(ROLES)}")
            continue
        bad = [r for r in roles if r not in ROLES]
        if bad:
            problems.append(f"'{where}' ({name}) has unknown role(s) {bad}: allowed are {', '.join(ROLES)}")
            continue
        unix_user = row.get("unix_user")
        if unix_user is not None and (not isinstance(unix_user, str) or not _UNIX_USER.fullmatch(unix_user)):
            problems.append(f"'{where}.unix_user' must be a login name as `id -un` prints it (letters, digits, "
                            "'_', '.', '-', '@'; at most 64)")
            continue
        contact = row.get("contact", "")
        if not isinstance(contact, str) or len(contact) > 200 or _has_control(contact):
            problems.append(f"'{where}.contact' must be text of at most 200 characters (a handle, e-mail or phone)")
            continue
        phone, handle, backup = row.get("phone", ""), row.get("handle", ""), row.get("backup", "")
        if not isinstance(phone, str) or (phone and not _PHONE.fullmatch(phone.strip())):
            problems.append(f"'{where}.phone' must be a phone number such as \"+66 81 234 5678\"")
            continue
        if not isinstance(handle, str) or len(handle) > 100 or _has_control(handle) or " " in handle.strip():
            problems.append(f"'{where}.handle' must be a chat handle without spaces, such as \"@somchai\"")
            continue
        if not isinstance(backup, str) or len(backup) > 200 or _has_control(backup):
            problems.append(f"'{where}.backup' must be a name of at most 200 characters")
            continue
        people.append(Person(name=name.strip(), roles=tuple(roles), unix_user=unix_user, contact=contact,
                             phone=phone.strip(), handle=handle.strip(), backup=backup.strip()))
    return people


def _executor(value: Any, problems: list[str]) -> ExecutorOptions:
    tbl = _table(value, "executor", problems)
    allowed = {
        "mode", "auto_rollback", "lock_wait_timeout", "lease_seconds", "baseline_window_seconds", "verify_window_seconds",
        "baseline_extend_max_seconds", "kill_poll_seconds", "cooldown_seconds", "rollback_attempts", "rollback_backoff_seconds",
    }
    for key in tbl:
        if key not in allowed:
            problems.append(f"unknown key 'executor.{key}': allowed are {', '.join(sorted(allowed))}")
    mode = tbl.get("mode", "canary")
    if mode not in ("canary", "standard"):
        problems.append(f"'executor.mode' {mode!r}: allowed are 'canary' and 'standard'")
        mode = "canary"
    auto = tbl.get("auto_rollback", False)
    if not isinstance(auto, bool):
        problems.append("'executor.auto_rollback' must be true or false")
        auto = False
    return ExecutorOptions(
        mode=mode,
        auto_rollback=auto,
        lock_wait_timeout=_int(tbl, "lock_wait_timeout", "executor", 5, 1, 60, problems),
        lease_seconds=_num(tbl, "lease_seconds", "executor", 30.0, 1.0, 600.0, problems),
        baseline_window_seconds=_num(tbl, "baseline_window_seconds", "executor", 300.0, 0.0, 7200.0, problems),
        verify_window_seconds=_num(tbl, "verify_window_seconds", "executor", 300.0, 0.0, 7200.0, problems),
        baseline_extend_max_seconds=_num(tbl, "baseline_extend_max_seconds", "executor", 3600.0, 0.0, 7200.0,
                                         problems),
        kill_poll_seconds=_num(tbl, "kill_poll_seconds", "executor", 0.05, 0.01, 1.0, problems),
        cooldown_seconds=_num(tbl, "cooldown_seconds", "executor", 120.0, 0.0, 3600.0, problems),
        rollback_attempts=_int(tbl, "rollback_attempts", "executor", 5, 1, 20, problems),
        rollback_backoff_seconds=_num(tbl, "rollback_backoff_seconds", "executor", 0.5, 0.0, 60.0, problems),
    )
