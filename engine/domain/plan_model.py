"""The canary plan as frozen data (docs/product.md#the-plan-input): the connection, the change, the
people, the war room, the off-peak window, the executor's options and the plan itself, and the
``PlanError`` a plan that cannot be used raises. engine/domain/plan.py loads a plan (its names are
importable from there too); the sections are checked in engine/domain/plan_sections.py.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any

from engine.domain.roles import TITLES
from engine.domain.thresholds import Profile, profile_from_overrides

# Runbook 2.5.1: the required personnel. A plan that names nobody in one of these roles loads, but
# the prechecks cannot be signed off until it does (engine.flows.runbook.sign_off names the role).
REQUIRED_PERSONNEL = ("canary_lead", "dba", "sre", "developer")
ROLE_WORDS = TITLES
DEFAULT_OFF_PEAK = "22:00-06:00"
DEFAULT_UTC_OFFSET = "+07:00"


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
    # … kept sampling, up to this long, while a latency's baseline is too short for its own noise
    # (docs/verdict.md, "Baseline"); 0 turns the extension off (a fixed timeline)
    baseline_extend_max_seconds: float = 3600.0
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
