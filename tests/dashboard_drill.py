"""A recorded drill for the dashboard tests (docs/runbook.md#5-monitoring): the plan and its people, the
calm values the sandbox's sources give, ``Drill`` — a run's samples tick by tick through the baseline,
the ALTER, the cool-down and the window — and the decided windows (PASS, PASS WITH WARNING, FAIL,
INCONCLUSIVE) through the engine's own verdict, each built once per test process. Deterministic:
fixed datetimes, a fixed pseudo-random jitter."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from plans import ACME, people

from engine.domain.plan import parse_plan
from engine.domain.thresholds import Profile
from engine.views.dashboard import (
    CheckpointFact,
    DashboardData,
    DecisionFact,
    RunFacts,
    SampleRow,
    advance,
    dashboard_view,
)
from engine.views.report import PersonFacts

T0 = datetime(2026, 11, 22, 15, 40, tzinfo=UTC)  # 22:40 at UTC+7: off-peak
RUN = "3f2a9c1e-0000-4000-8000-000000000001"
PROFILE = Profile()
PLAN = parse_plan(ACME + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok", "@nok"),
                                ("Arun", "sre", "arun", "@arun")), "canary.toml")
PEOPLE = tuple(PersonFacts(p.name, tuple(p.roles), p.contact) for p in PLAN.people)

# What the sandbox's sources give (MySQL, replica, kill-switch API), and Prometheus on top.
CALM = {"latency_p50": 1.20, "latency_p99": 6.0, "lock_wait": 0.0, "replication_lag": 1.0, "connections": 22.0,
        "threads_running": 4.0, "buffer_pool_hit": 99.6, "killswitch_response": 3.0, "killswitch_availability": 100.0,
        "digest_count": 240.0}
PROMETHEUS = {"error_rate": 0.02, "cpu": 35.0, "memory": 55.0, "disk_read": 12.0, "disk_write": 6.0,
              "network_latency": 2.0, "request_latency_p50": 40.0, "request_latency_p99": 180.0,
              "throughput": 1200.0}
WARN = {"connections": 81.0, "threads_running": 55.0, "replication_lag": 35.0, "lock_wait": 1.5,
        "killswitch_response": 650.0}
REPLICA_DOWN = ("OperationalError: (2003, \"Can't connect to MySQL server on '10.0.0.13' "
                "([Errno 111] Connection refused)\")")


def jitter(i: int, key: str) -> float:
    """±4 %, drawn the same way before and after the ALTER: a window with no change in it (a fixed
    pseudo-random sequence, so every run of the tests sees the same numbers). Latencies step by
    the golden ratio of the cycle: no slow sawtooth, which the verdict would rightly read as
    correlated noise that five minutes of baseline cannot judge (docs/verdict.md)."""
    if key == "killswitch_availability":
        return 1.0  # a share of reads that answered: 100 % while every read answers
    step = 616 if key.startswith("latency") else 7919
    return 1 + 0.08 * (((i * step + len(key) * 104729) % 997) / 997 - 0.5)


class Drill:
    """A run's samples, tick by tick: 5 minutes of baseline, a 30-second ALTER, the 2-minute
    cool-down, then the window from ``window_start``."""

    def __init__(self, interval: float = 5.0, prometheus: bool = False, speed: float | None = None,
                 baseline_ticks: int = 60):
        self.interval = interval
        self.calm = {**CALM, **(PROMETHEUS if prometheus else {})}
        self.speed = speed
        self.at = T0
        self.i = 0
        self.rows: list[SampleRow] = []
        self.given = 0
        self.checkpoints: list[CheckpointFact] = []
        for _ in range(baseline_ticks):
            self.tick()
        self.alter_started = self.at
        for _ in range(6):
            self.tick()
        self.alter_finished = self.at
        for _ in range(24):
            self.tick()
        self.window_start = self.at

    def tick(self, **values: float | str | None) -> datetime:
        at = self.at
        for key, calm in self.calm.items():
            v = values.get(key, calm * jitter(self.i, key))
            if key == "buffer_pool_hit" and isinstance(v, float):
                v = min(v, 99.9)  # a hit rate stays a rate
            error = None
            if isinstance(v, str):
                error, v = v, None
            meta = {"n": 40, "how": "from events_statements_history_long, 40 statements"} if key.startswith(
                "latency") and v is not None else None
            self.rows.append(SampleRow(at, key, v, error, meta))
        self.at += timedelta(seconds=self.interval)
        self.i += 1
        return at

    def ticks(self, n: int, **values: float | str | None) -> None:
        for _ in range(n):
            self.tick(**values)

    def minutes(self, m: float, **values: float | str | None) -> None:
        self.ticks(round(m * 60 / self.interval), **values)

    def facts(self, **changes) -> RunFacts:
        base = RunFacts(run_id=RUN, tenant="acme", status="running", schema="shop", table="orders",
                        index="idx_orders_customer_created", connection_id="orders-primary",
                        alter_started_at=self.alter_started, alter_finished_at=self.alter_finished,
                        index_created=True, monitoring_started_at=self.window_start, interval_s=self.interval,
                        time_compression=self.speed, people=PEOPLE, checkpoints=tuple(self.checkpoints))
        return replace(base, **changes)

    def data(self, previous: DashboardData | None = None, **changes) -> DashboardData:
        """Everything stored so far (or, with ``previous``, only what came since)."""
        rows = self.rows[self.given:] if previous is not None else self.rows
        self.given = len(self.rows)
        return advance(previous, PROFILE, self.facts(**changes), rows, self.at)

    def view(self, **changes):
        return dashboard_view(PROFILE, self.data(**changes), self.at)


def tiles(view):
    return {t.key: t for t in view.tiles}


def checks(view):
    return {c.name: c for c in view.checklist}


# --- the decided windows, from the engine's own verdicts -----------------------------------------


def decided(d: Drill, stopped_early: bool = False, team: dict | None = None) -> DashboardData:
    data = d.data()
    verdict = data.window.ev.finish(True)
    evidence = verdict.as_dict() | {"profile": "default", "stopped_early": stopped_early} | (team or {})
    if stopped_early:  # as engine.flows.monitor records a stop on a harm limit
        state = data.window.ev.state
        evidence |= {"stop_cause": "failure_condition", "stopped_at_s": state.elapsed_s,
                     "stop_reason": state.stop_reason}
    at = d.at
    return d.data(decision=DecisionFact(verdict.verdict, evidence, "engine (somchai@10.0.0.5)", at), verdict_at=at,
                  status="completed" if verdict.verdict != "FAIL" else "failed",
                  fail_reason="harm_limit" if stopped_early else None)


# The decided windows are an hour of ticks each, through the engine's verdict: seconds of CPU to
# build. Each is built once per test process and shared (DashboardData is frozen; a test that
# changed one would change the snapshots built after it).


@functools.cache
def pass_data():
    d = Drill()
    d.minutes(60.1)
    return decided(d)


@functools.cache
def warning_data():
    d = Drill()
    d.minutes(20)
    d.minutes(4, threads_running=55.0)
    d.minutes(36.1)
    return decided(d)


@functools.cache
def fail_data():
    d = Drill()
    d.minutes(22)
    d.minutes(1, latency_p99=6.0 * 1.35)
    d.ticks(2, lock_wait=6.2, latency_p99=6.0 * 1.35)
    return decided(d, stopped_early=True)


def inconclusive_data(team: dict | None = None):
    return _inconclusive(tuple(sorted((team or {}).items())))


@functools.cache
def _inconclusive(team: tuple) -> DashboardData:
    d = Drill()
    d.minutes(60.1, latency_p50="no statement in this interval", latency_p99="no statement in this interval")
    return decided(d, team=dict(team))
