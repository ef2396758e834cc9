"""The same hours of previous days (engine/flows/history.py, docs/verdict.md#previous-days): read
from a Prometheus HTTP API, stored with the run, and used by the verdict only to widen a
canary-only judgement. The real Prometheus's range query is tested in test_prometheus_source.py;
here a small real HTTP server answers ``/api/v1/query_range`` with days that wander slowly, so the
whole path (the flow, the store, the evaluator) is exercised with histories no fresh Prometheus has."""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from engine.adapters.prometheus import PrometheusSource
from engine.adapters.store import Store
from engine.domain.decision_evaluator import HISTORY, WindowEvaluator
from engine.domain.thresholds import Profile
from engine.domain.verdict import LatencyTracker, history_noise, settings_of
from engine.flows.history import record_previous_days

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def slow_series(seed: int, n: int, tau_s: float = 600.0, step: float = 5.0) -> np.ndarray:
    """Log latency that wanders over ``tau_s`` (an AR(1) at the step with that correlation time)
    plus white noise."""
    rng = np.random.default_rng(seed)
    rho = math.exp(-step / tau_s)
    x = np.empty(n)
    x[0] = rng.normal(0, 0.2)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho * rho) * rng.normal(0, 0.2)
    return x + rng.normal(0, 0.05, n)


class FakeRange(BaseHTTPRequestHandler):
    """Answers /api/v1/query_range with a slowly wandering latency in ms; ``down`` answers 503."""

    down = False
    asked: list[dict[str, str]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        FakeRange.asked.append(q)
        if FakeRange.down or url.path != "/api/v1/query_range":
            self.send_response(503)
            self.end_headers()
            return
        start, end, step = float(q["start"]), float(q["end"]), float(q["step"].rstrip("s"))
        n = int((end - start) // step) + 1
        ys = slow_series(int(start) % 1000, n)
        values = [[start + i * step, f"{20 * math.exp(y):.4f}"] for i, y in enumerate(ys)]
        body = json.dumps({"status": "success", "data": {"resultType": "matrix",
                                                          "result": [{"metric": {}, "values": values}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def fake_prom():
    FakeRange.down, FakeRange.asked = False, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRange)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_previous_days_are_read_per_day_and_metric_stored_and_audited(fake_prom, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    source = PrometheusSource(fake_prom, history_days=3)
    got = record_previous_days(store, "acme", "r1", source, "lead", before_s=3600, after_s=5400, step_s=5, now=NOW)
    assert got.problems == [] and got.points["latency_p50"] > 3 * 1000 and got.points["latency_p99"] > 3 * 1000
    assert len(FakeRange.asked) == 6  # 3 days × 2 metrics
    starts = sorted(float(q["start"]) for q in FakeRange.asked if "0.5" in q["query"])
    assert [round((NOW.timestamp() - 3600 - s) / 86400) for s in starts] == [3, 2, 1]
    rows = store.samples("acme", "r1", HISTORY + "latency_p50")
    assert rows and all(r.sampled_at < NOW - timedelta(hours=20) for r in rows)
    [audit] = store.audit_entries("acme", "r1", "baseline_history")
    assert audit.details["days"] == 3 and audit.details["points"]["latency_p50"] == len(rows)
    assert fake_prom not in json.dumps(audit.details)  # the URL is not in the audit trail
    again = record_previous_days(store, "acme", "r1", source, "lead", before_s=3600, after_s=5400, step_s=5, now=NOW)
    assert again.already and len(FakeRange.asked) == 6  # read once per run
    source.close()


def test_a_prometheus_that_is_down_costs_nothing_but_the_history(fake_prom, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    FakeRange.down = True
    source = PrometheusSource(fake_prom, history_days=2)
    got = record_previous_days(store, "acme", "r1", source, "lead", before_s=600, after_s=600, step_s=5, now=NOW)
    assert sum(got.points.values()) == 0 and len(got.problems) == 4
    assert "previous days: none usable" in got.words()
    assert store.samples("acme", "r1") == []
    [audit] = store.audit_entries("acme", "r1", "baseline_history")
    assert audit.details["problems"]
    nothing = record_previous_days(store, "acme", "r2", PrometheusSource(fake_prom), "lead", before_s=600,
                                   after_s=600, step_s=5, now=NOW)
    assert nothing.days == 0 and store.audit_entries("acme", "r2") == []  # not configured: not asked
    source.close()


def test_history_noise_learns_slow_wandering_and_ignores_day_levels():
    day = 86400.0
    slow = [(-d * day + i * 5.0, 20 * math.exp(y + d)) for d in (1, 2, 3)  # levels differ by e per day
            for i, y in enumerate(slow_series(d, 1080))]
    fast = [(-d * day + i * 5.0, 20 * math.exp(v)) for d in (1, 2, 3)
            for i, v in enumerate(np.random.default_rng(d).normal(0, 0.2, 1080))]
    h_slow, h_fast = history_noise(slow), history_noise(fast)
    assert h_slow.days == 3 and h_slow.n == 3240
    assert h_slow.ratio > 30 and h_fast.ratio < 3  # slow wandering seen; a day's level is not noise
    assert history_noise([(-day, 5.0)] * 10).days == 0  # too few points a day: nothing learnt
    assert history_noise([(-day + i, v) for i, v in enumerate([0, -1, float("nan"), "x", None] * 20)]).days == 0


def test_a_day_s_drift_is_not_its_noise():
    """Previous days whose latency climbed +30 % an hour through the run's hours (a morning's
    traffic), on fast noise: about each day's level that climb looked like slow wandering (long-run
    ratio at its ceiling) and every interval today would have been as wide as a random walk's (a 2×
    regression never FAILed with such days, bench/verdict_stress.py). About each day's own course,
    the ratio is the fast noise's; a day that wanders slowly still shows it."""
    day = 86400.0
    rng = np.random.default_rng(4)
    climbing = [(-d * day + i * 5.0, 20 * math.exp(math.log(1.3) * i * 5.0 / 3600 + v)) for d in (1, 2, 3)
                for i, v in enumerate(rng.normal(0, 0.2, 1980))]
    assert history_noise(climbing).ratio < 3
    slow = [(-d * day + i * 5.0, 20 * math.exp(math.log(1.3) * i * 5.0 / 3600 + y)) for d in (1, 2, 3)
            for i, y in enumerate(slow_series(d, 1980))]
    assert history_noise(slow).ratio > 30


def test_a_history_only_ever_widens_the_interval():
    profile = Profile()
    s = settings_of(profile, profile.rule("latency_p50"), (900.0, 1800.0, 2700.0, 3600.0))
    rng = np.random.default_rng(5)
    base = rng.normal(0, 0.1, (1, 360))
    t = np.arange(-2700.0, -900.0, 5.0)
    plain = LatencyTracker(base, t, s)
    wide = LatencyTracker(base, t, s, history_ratio=80.0)
    narrow = LatencyTracker(base, t, s, history_ratio=1.0)
    assert wide.cur.n_eff[0] < plain.cur.n_eff[0] and wide.cur.base_var[0] > plain.cur.base_var[0]
    assert narrow.cur.n_eff[0] == plain.cur.n_eff[0]
    for i in range(720):
        y = rng.normal(0.3, 0.1, 1)  # +35 %
        for tr in (plain, wide):
            tr.add(i * 5.0, y)
    a, b = plain.finish(), wide.finish()
    assert (b.high[0] - b.low[0]) > (a.high[0] - a.low[0])
    # one ratio per window (the benchmark's thousands at once): each window floored by its own
    both = LatencyTracker(np.vstack([base, base]), t, s, history_ratio=np.array([1.0, 80.0]))
    assert both.cur.n_eff[0] == narrow.cur.n_eff[0] and both.cur.n_eff[1] < both.cur.n_eff[0]
    assert both.cur.n_eff[1] == LatencyTracker(base, t, s, history_ratio=80.0).cur.n_eff[0]


def test_the_evaluator_takes_history_rows_and_says_so_without_a_control():
    day = 86400.0
    hist = [(-d * day + i * 5.0, 20 * math.exp(y)) for d in (1, 2) for i, y in enumerate(slow_series(d, 1080))]
    base_t = [float(x) for x in np.arange(-2700.0, -900.0, 5.0)]
    base_v = [20 * math.exp(v) for v in np.random.default_rng(1).normal(0, 0.05, len(base_t))]
    baselines = {"latency_p50": base_v, HISTORY + "latency_p50": [v for _, v in hist]}
    times = {"latency_p50": base_t, HISTORY + "latency_p50": [t for t, _ in hist]}
    with_h = WindowEvaluator(Profile(), baselines, {"latency_p50"}, times)
    without = WindowEvaluator(Profile(), {"latency_p50": base_v}, {"latency_p50"}, {"latency_p50": base_t})
    jh, j0 = with_h.judges["latency_p50"], without.judges["latency_p50"]
    assert jh.history is not None and jh.history.days == 2 and j0.history is None
    assert jh.tracker.cur.n_eff[0] < j0.tracker.cur.n_eff[0]


def test_the_plan_names_how_many_previous_days():
    from engine.domain.plan import PlanError, plan_from_dict

    base = {"tenant": "acme", "connection": {"database": "shop"},
            "change": {"table": "orders", "index": "idx_x", "columns": ["a"]}}
    assert plan_from_dict(base).prometheus_history_days == 3
    assert plan_from_dict(dict(base, integrations={"prometheus_history_days": 0})).prometheus_history_days == 0
    for bad in (-1, 15, "3", True, 2.5):
        with pytest.raises(PlanError, match="prometheus_history_days"):
            plan_from_dict(dict(base, integrations={"prometheus_history_days": bad}))


def test_the_executor_is_heard_between_queries_and_a_budget_bounds_them(fake_prom, tmp_path):
    """The executor watches the kill switch and renews its claim between the queries; a slow or
    hanging Prometheus cannot hold the run past the budget."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    source = PrometheusSource(fake_prom, history_days=2)
    ticks: list[int] = []
    got = record_previous_days(store, "acme", "r1", source, "lead", before_s=600, after_s=600, step_s=5, now=NOW,
                               between=lambda: ticks.append(1))
    assert len(ticks) == 4 and got.problems == []

    class Stop(Exception):
        pass

    def kill_switch_on() -> None:
        raise Stop("kill switch before the ALTER")

    with pytest.raises(Stop):
        record_previous_days(store, "acme", "r2", source, "lead", before_s=600, after_s=600, step_s=5, now=NOW,
                             between=kill_switch_on)
    none = record_previous_days(store, "acme", "r3", source, "lead", before_s=600, after_s=600, step_s=5, now=NOW,
                                budget_s=0)
    assert sum(none.points.values()) == 0 and all("budget" in p for p in none.problems) and len(none.problems) == 4
    source.close()
