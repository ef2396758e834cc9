"""The same hours of previous days, from Prometheus (docs/verdict.md#previous-days).

Before the ALTER, where the plan configures Prometheus, the latency's history over the hours the
run will span is read for each of the previous ``prometheus_history_days`` days (range queries,
one per day and metric) and stored with the run as ``history:latency_p50`` / ``history:latency_p99``
at the times they were measured. The verdict learns from them how slowly the latency wanders on a
normal day (engine/domain/verdict_noise.py): a short baseline taken on a calm half-hour cannot then make
a slow server's noise look fast. Their levels are never compared with today's (days differ); they
only widen intervals, never narrow them.

A Prometheus that is down, slow or has no such series costs the run nothing but this: the fetch is
audited with what it found and why not, and the baseline is today's alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.adapters.prometheus import PrometheusError
from engine.domain.decision_evaluator import HISTORY
from engine.domain.text import clean_text

# Which of the Prometheus queries (the plan's, or docs/metrics.md's defaults) is the history of
# which judged latency.
HISTORY_QUERIES = {"latency_p50": "query_latency_p50_prom", "latency_p99": "query_latency_p99_prom"}
MAX_POINTS = 10_000  # Prometheus answers at most 11,000 points a series
BUDGET_S = 20.0  # all the previous days' queries together (each has the source's own timeout)


@dataclass
class HistoryFetch:
    days: int
    points: dict[str, int] = field(default_factory=dict)  # per judged metric
    problems: list[str] = field(default_factory=list)
    already: bool = False

    def words(self) -> str:
        if self.already:
            return "previous days: already read for this run"
        got = ", ".join(f"{m} {n} points" for m, n in self.points.items() if n)
        if not got:
            return f"previous days: none usable ({'; '.join(self.problems[:2]) or 'no data'})"
        return f"previous {self.days} day(s) from Prometheus: {got}" + (
            f" ({len(self.problems)} quer{'y' if len(self.problems) == 1 else 'ies'} failed)" if self.problems else "")


def record_previous_days(store: Any, tenant_id: str, run_id: str, source: Any, actor: str, *,
                         before_s: float, after_s: float, step_s: float, now: datetime | None = None,
                         between: Callable[[], None] | None = None, budget_s: float = BUDGET_S) -> HistoryFetch:
    """Read and store the history of each judged latency for ``source.history_days`` previous days,
    from ``before_s`` before ``now`` (real wall time) to ``after_s`` after it, every ``step_s``.
    ``between`` runs after every query (the executor watches the kill switch and renews its lease
    there: a slow Prometheus must not let the run's claim lapse); the queries stop once
    ``budget_s`` has gone by. Audited (``baseline_history``); never raises for Prometheus's sake
    (``between`` may: a kill switch stops the run)."""
    days = int(getattr(source, "history_days", 0) or 0)
    out = HistoryFetch(days)
    if days <= 0:
        return out
    if store.audit_entries(tenant_id, run_id, "baseline_history", limit=1):  # read once per run
        out.already = True
        return out
    now = now or datetime.now(UTC)
    span = before_s + after_s
    step = max(step_s, span / MAX_POINTS, 1.0)
    points: list[tuple[datetime, str, float]] = []
    deadline = time.monotonic() + budget_s
    for metric, name in HISTORY_QUERIES.items():
        promql = source.queries.get(name)
        out.points[metric] = 0
        if not promql:
            out.problems.append(f"no query named {name}")
            continue
        for d in range(1, days + 1):
            if time.monotonic() >= deadline:
                out.problems.append(f"day -{d} {metric}: not asked, the {budget_s:g}-s budget for previous days ran out")
                continue
            centre = now.timestamp() - d * 86400
            try:
                got = source.query_range(promql, centre - before_s, centre + after_s, step)
            except PrometheusError as exc:
                out.problems.append(clean_text(f"day -{d} {metric}: {exc}", 300).text)
                continue
            except Exception as exc:  # noqa: BLE001 - the history is a help, never a reason to stop
                out.problems.append(clean_text(f"day -{d} {metric}: {exc.__class__.__name__}: {exc}", 300).text)
                continue
            finally:
                if between is not None:
                    between()
            usable = [(datetime.fromtimestamp(at, UTC), HISTORY + metric, v) for at, v in got if v > 0]
            points.extend(usable)
            out.points[metric] += len(usable)
    if points:
        store.add_points(tenant_id, run_id, "prometheus", points, meta={"history": True})
    store.audit(tenant_id, actor, "baseline_history", run_id,
                {"days": days, "points": out.points, "step_s": step, "queries": list(HISTORY_QUERIES.values()),
                 "problems": out.problems[:6]})
    return out
