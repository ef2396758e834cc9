"""The canary plan (docs/product.md#the-plan-input): one TOML file describing one run.

``load_plan`` returns a frozen ``Plan`` or raises ``PlanError`` carrying one clear message per
problem: which key, what is wrong, what is allowed. The password is never in the file; it comes
from an environment variable the plan names, or from a MySQL option file.
"""

from __future__ import annotations

import configparser
import copy
import json
import os
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.domain.identifiers import IdentifierError, check_identifier, check_slug
from engine.domain.roles import (  # the plan's people hold these (one list: engine/domain/roles.py)
    ROLES,
    TITLES,
)
from engine.domain.thresholds import Profile, ProfileError, profile_from_overrides

# Runbook 2.5.1: the required personnel. A plan that names nobody in one of these roles loads, but
# the prechecks cannot be signed off until it does (engine.flows.runbook.sign_off names the role).
REQUIRED_PERSONNEL = ("canary_lead", "dba", "sre", "developer")
ROLE_WORDS = TITLES
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{2,39}")
DEFAULT_OFF_PEAK = "22:00-06:00"
DEFAULT_UTC_OFFSET = "+07:00"
_SECRET_KEYS = {"password", "passwd", "pass", "secret", "token"}
# A host name or an IP address (v4, v6 with an optional %zone): what pymysql can resolve.
_HOST = re.compile(r"[A-Za-z0-9._:%-]{1,255}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_OPTION_GROUP = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A login name as `id -un` prints it (local, LDAP or user@domain accounts).
_UNIX_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def printable(text: str) -> str:
    """``text`` with control and format characters (newlines, NUL, terminal escapes, bidi
    overrides) written as escapes: a message about hostile input stays one line of plain text."""
    if all(unicodedata.category(c)[0] != "C" for c in text):
        return text
    return "".join(c if unicodedata.category(c)[0] != "C" else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c)[0] == "C" for c in text)


class PlanError(ValueError):
    """A plan that cannot be used. ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str], source: str = "plan"):
        # Messages quote what the plan said; none of it may break a line or drive the terminal.
        self.problems = [printable(p) for p in problems]
        self.source = printable(str(source))
        problems = self.problems
        source = self.source
        super().__init__(f"{source}: " + "; ".join(problems))

    def render(self) -> str:
        lines = [f"The plan {self.source} cannot be used ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class TLS:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify_identity: bool = False


@dataclass(frozen=True)
class ConnectionProfile:
    id: str
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    database: str = ""
    socket: str | None = None
    password_env: str | None = None
    option_file: str | None = None
    option_group: str = "client"
    tls: TLS | None = None

    def password(self) -> str | None:
        """The password from the named environment variable, or None (option file / none)."""
        if self.password_env:
            return os.environ.get(self.password_env)
        return None

    def describe(self) -> str:
        """Where this profile points, with no secret in it."""
        where = self.socket or f"{self.host}:{self.port}"
        return f"{self.user}@{where}/{self.database}"


@dataclass(frozen=True)
class IndexColumn:
    name: str
    prefix: int | None = None


@dataclass(frozen=True)
class Change:
    table: str
    index: str
    columns: tuple[IndexColumn, ...]
    action: str = "ADD_INDEX"
    query_digests: tuple[str, ...] = ()
    # SELECTs the index is built for: EXPLAINed before and after (engine/flows/digest_check.py)
    sample_queries: tuple[str, ...] = ()
    # Other tenants' schemas with the same table, not altered: the same query shapes measured at the
    # same moments, the control the latency verdict is judged against (docs/verdict.md)
    control_schemas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Person:
    name: str
    roles: tuple[str, ...]
    unix_user: str | None = None
    contact: str = ""  # free text (older plans): a handle, an e-mail or a phone
    phone: str = ""
    handle: str = ""  # in the team's chat, e.g. "@somchai"
    backup: str = ""  # who stands in (runbook 2.5.1's Backup column)

    @property
    def reach(self) -> str:
        """How to reach them: handle, phone, then the free-text contact ("" when the plan says nothing)."""
        return ", ".join(dict.fromkeys(x for x in (self.handle, self.phone, self.contact) if x))


@dataclass(frozen=True)
class WarRoom:
    """Runbook 2.5.2 and step 0: where the team talks and looks (text or links, shown and announced)."""

    dashboard: str = ""  # the monitoring dashboard (Grafana …); the console itself when empty
    chat: str = ""  # the channel, e.g. "#canary-executor-v1" or its link
    room: str = ""  # the war room: a call link or a place
    pager: str = ""  # the alert escalation (PagerDuty service …)


@dataclass(frozen=True)
class OffPeakWindow:
    start: time
    end: time
    utc_offset: timedelta

    def contains(self, utc_now: datetime) -> bool:
        local = (utc_now + self.utc_offset).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def describe(self) -> str:
        sign = "+" if self.utc_offset >= timedelta(0) else "-"
        minutes = abs(int(self.utc_offset.total_seconds())) // 60
        return (
            f"{self.start:%H:%M}-{self.end:%H:%M} UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        )


@dataclass(frozen=True)
class ExecutorOptions:
    mode: str = "canary"  # canary: the executor never drops an index on its own
    auto_rollback: bool = False
    lock_wait_timeout: int = 5
    lease_seconds: float = 30.0
    baseline_window_seconds: float = 300.0  # runbook step 2: five minutes of baseline
    verify_window_seconds: float = 300.0
    kill_poll_seconds: float = 0.05
    rollback_attempts: int = 5
    rollback_backoff_seconds: float = 0.5
    cooldown_seconds: float = 120.0


@dataclass(frozen=True)
class Plan:
    tenant: str
    connection: ConnectionProfile
    change: Change
    people: tuple[Person, ...] = ()
    replica: ConnectionProfile | None = None
    war_room: WarRoom = field(default_factory=WarRoom)
    off_peak: OffPeakWindow = field(
        default_factory=lambda: _parse_window(DEFAULT_OFF_PEAK, DEFAULT_UTC_OFFSET, [])
    )
    prometheus_url: str | None = None
    # The same hours of this many previous days, read from Prometheus, teach the verdict how slowly
    # the latency wanders (docs/verdict.md#previous-days); 0: not read.
    prometheus_history_days: int = 3
    kill_switch_api_url: str | None = None
    kill_switch_api_token_env: str | None = None
    webhook_url: str | None = None
    # More Slack-compatible webhooks the run's events are pushed to as well (docs/runbook.md#pushed-to-the-webhooks)
    webhook_urls: tuple[str, ...] = ()
    store_url: str | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    prometheus_queries: dict[str, str] = field(default_factory=dict)
    source: str = "<memory>"
    # A drill's plan (written by `rehearse`, against a private sandbox): teammates may be played
    # from one terminal (`run --as`). Never in a real plan.
    rehearsal: bool = False
    # A drill's compressed clock (rehearsal plans only): ``speed`` × real time from ``origin``, the
    # same for every console and every restart on this plan (docs/api.md).
    time_speed: float = 1.0
    time_origin: datetime | None = None
    # The validated input, as given: written back as TOML for a worker in another process.
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def schema(self) -> str:
        return self.connection.database

    @property
    def webhooks(self) -> tuple[str, ...]:
        """Every webhook the run's events are pushed to: ``webhook_url`` first, then ``webhook_urls``."""
        out: list[str] = [self.webhook_url] if self.webhook_url else []
        return tuple(out + [u for u in self.webhook_urls if u not in out])

    def profile(self) -> Profile:
        """The threshold profile: docs/thresholds.md's, with this plan's [thresholds] applied (validated at load)."""
        return profile_from_overrides(self.thresholds, name=f"{self.source} [thresholds]") if self.thresholds else Profile()

    def people_for_user(self, unix_user: str) -> list[Person]:
        return [p for p in self.people if (p.unix_user or p.name) == unix_user]

    def roles_of(self, unix_user: str) -> set[str]:
        return {r for p in self.people_for_user(unix_user) for r in p.roles}

    def unstaffed(self) -> list[str]:
        """The required roles (runbook 2.5.1) nobody in the plan holds."""
        held = {r for p in self.people for r in p.roles}
        return [r for r in REQUIRED_PERSONNEL if r not in held]


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


DEFAULT_HISTORY_DAYS = 3


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
    window_tbl = _table(data.get("window", {}), "window", problems)
    for key in window_tbl:
        if key not in ("off_peak", "utc_offset"):
            problems.append(f"unknown key 'window.{key}': allowed are off_peak, utc_offset")
    off_peak = _parse_window(
        str(window_tbl.get("off_peak", DEFAULT_OFF_PEAK)),
        str(window_tbl.get("utc_offset", DEFAULT_UTC_OFFSET)),
        problems,
    )
    integ = _table(data.get("integrations", {}), "integrations", problems)
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
        off_peak=off_peak, prometheus_url=urls["prometheus_url"], prometheus_history_days=history_days,
        kill_switch_api_url=urls["kill_switch_api_url"], kill_switch_api_token_env=token_env,
        webhook_url=urls["webhook_url"], webhook_urls=tuple(webhook_urls), store_url=store_url, thresholds=dict(thresholds),
        executor=executor, prometheus_queries=dict(prom_queries), source=source, raw=copy.deepcopy(data),
        rehearsal=rehearsal, time_speed=time_speed, time_origin=time_origin,
    )


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


def _reject_secrets(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).lower() in _SECRET_KEYS:
                problems.append(
                    f"'{where}': a password or secret never goes in the plan file; name an environment "
                    "variable with password_env, or use option_file (e.g. ~/.my.cnf)"
                )
            else:
                _reject_secrets(value, where, problems)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _reject_secrets(item, f"{path}[{i}]", problems)


def _without_secrets(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_secrets(v) for k, v in node.items() if str(k).lower() not in _SECRET_KEYS}
    if isinstance(node, list):
        return [_without_secrets(item) for item in node]
    return node


def _table(value: Any, where: str, problems: list[str]) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    problems.append(f"'{where}' must be a table ([{where}]), got {type(value).__name__}")
    return {}


def _slug(data: dict[str, Any], key: str, where: str, problems: list[str], required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            problems.append(f"'{where}' is missing")
        return None
    try:
        return check_slug(value, f"'{where}'")
    except IdentifierError as exc:
        problems.append(str(exc))
        return None


def _ident(value: Any, where: str, problems: list[str]) -> str | None:
    if value is None:
        problems.append(f"'{where}' is missing")
        return None
    try:
        return check_identifier(value, f"'{where}'")
    except IdentifierError as exc:
        problems.append(str(exc))
        return None


def _env_name(tbl: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = tbl.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        problems.append(f"'{where}.{key}' must name an environment variable: A-Z, a-z, digits and '_', "
                        "not starting with a digit, at most 128 characters (e.g. CANARY_DB_PASSWORD)")
        return None
    return value


def _url(tbl: dict[str, Any], key: str, problems: list[str]) -> str | None:
    value = tbl.get(key)
    if value is None:
        return None
    where = f"'integrations.{key}'"
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        problems.append(f"{where} must be an http:// or https:// URL")
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number from 0 to 65535
        password = parts.password
    except ValueError:
        problems.append(f"{where} must be an http:// or https:// URL with a host and, if any, a port number, "
                        "e.g. http://prometheus:9090")
        return None
    if _has_control(value) or " " in value or not parts.hostname:
        problems.append(f"{where} must be an http:// or https:// URL with a host and no spaces or control "
                        "characters, e.g. http://prometheus:9090")
        return None
    if password is not None:
        problems.append(f"{where} has a password in it: a password never goes in the plan file; use a URL "
                        "that needs none (e.g. through a local proxy)")
        return None
    return value.rstrip("/")


def _store_url(value: Any, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or _has_control(value):
        problems.append("store_url must be a string such as 'sqlite:////path/store.db' or 'postgresql://…'")
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None  # not a URL we can read: the store says what is wrong with it when it opens
    if password is not None:
        problems.append("store_url has a password in it: a password never goes in the plan file; use ~/.pgpass "
                        "or PGPASSWORD for PostgreSQL, or '?read_default_file=~/.my.cnf' for MySQL")
        return None
    return value


def _path(tbl: dict[str, Any], key: str, where: str, problems: list[str], example: str,
          limit: int = 255) -> str | None:
    """A file path from the plan: a string with no control characters (NUL included)."""
    value = tbl.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or _has_control(value) or len(value) > limit:
        problems.append(f"'{where}.{key}' must be a file path of at most {limit} characters, without "
                        f"control characters, e.g. {example}")
        return None
    return value


def _option_file_problem(path: str, group: str) -> str | None:
    """What pymysql would trip over in the option file, said without quoting the file (it holds
    the password): not an option file, or without the group the plan names."""
    parser = configparser.RawConfigParser(allow_no_value=True)
    parser.optionxform = lambda key: key.lower().replace("_", "-")  # type: ignore[method-assign] # as pymysql reads it
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except OSError:
        # Not readable by this user: a console that joins a run never connects, so that is no
        # problem here; the one that connects is told at its connect (engine.adapters.target).
        return None
    except UnicodeDecodeError:
        return "is not UTF-8 text: write it as a MySQL option file ([client] then key = value lines)"
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None) or next(iter(getattr(exc, "errors", [])), (None,))[0]
        at = f" (line {line})" if line else ""
        return (f"is not a MySQL option file{at}: it needs a [client] group header and then key = value lines, "
                "each key once")
    if not parser.has_section(group):
        return f"has no [{group}] group: add one with the password, or name the group with option_group"
    return None


def _int(tbl: dict[str, Any], key: str, where: str, default: int, lo: int, hi: int, problems: list[str]) -> int:
    value = tbl.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append(f"'{where}.{key}' must be a whole number from {lo} to {hi}, got {value!r}")
        return default
    return value


def _num(tbl: dict[str, Any], key: str, where: str, default: float, lo: float, hi: float, problems: list[str]) -> float:
    value = tbl.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        problems.append(f"'{where}.{key}' must be a number from {lo:g} to {hi:g}, got {value!r}")
        return default
    return float(value)


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


def _parse_window(spec: str, offset: str, problems: list[str]) -> OffPeakWindow:
    fallback = OffPeakWindow(time(22, 0), time(6, 0), timedelta(hours=7))
    try:
        start_s, end_s = spec.split("-")
        start = time.fromisoformat(start_s.strip())
        end = time.fromisoformat(end_s.strip())
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("the offset goes in window.utc_offset")
    except ValueError:
        problems.append(f"'window.off_peak' {spec!r} must look like '22:00-06:00'")
        return fallback
    if start == end:
        problems.append("'window.off_peak' start and end are equal: give a real window such as '22:00-06:00'")
        return fallback
    try:
        tz = datetime.strptime(offset.strip(), "%z").tzinfo
        assert isinstance(tz, timezone)
        delta = tz.utcoffset(None)
    except (ValueError, AssertionError):
        problems.append(f"'window.utc_offset' {offset!r} must look like '+07:00'")
        return fallback
    return OffPeakWindow(start, end, delta)


def _executor(value: Any, problems: list[str]) -> ExecutorOptions:
    tbl = _table(value, "executor", problems)
    allowed = {
        "mode", "auto_rollback", "lock_wait_timeout", "lease_seconds", "baseline_window_seconds", "verify_window_seconds",
        "kill_poll_seconds", "cooldown_seconds", "rollback_attempts", "rollback_backoff_seconds",
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
        kill_poll_seconds=_num(tbl, "kill_poll_seconds", "executor", 0.05, 0.01, 1.0, problems),
        cooldown_seconds=_num(tbl, "cooldown_seconds", "executor", 120.0, 0.0, 3600.0, problems),
        rollback_attempts=_int(tbl, "rollback_attempts", "executor", 5, 1, 20, problems),
        rollback_backoff_seconds=_num(tbl, "rollback_backoff_seconds", "executor", 0.5, 0.0, 60.0, problems),
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
