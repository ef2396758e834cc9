"""The threshold profile and the decision rules (docs/thresholds.md), pure: every boundary of every metric in
both directions, the window rules, and properties that must hold for any input."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.decision import WindowState, resume, step
from engine.domain.decision_evaluator import WindowEvaluator, evaluate_window
from engine.domain.decision_matrix import FAIL, INCONCLUSIVE, PASS, PASS_WITH_WARNING
from engine.domain.decision_series import Points, RollingMedian
from engine.domain.evidence import hodges_lehmann
from engine.domain.thresholds import (
    DEFAULT_RULES,
    LEVEL_RANK,
    Profile,
    ProfileError,
    evaluate_band,
    profile_from_overrides,
)

PROFILE = Profile()
EPS = 1e-6


def _value_for(rule, measure):
    """A (value, baseline) pair whose measure is exactly ``measure``."""
    if rule.mode == "change_pct":
        return 100.0 * (1 + measure / 100.0), 100.0
    return measure, None


BOUNDARIES = [(rule, level, limit) for rule in DEFAULT_RULES
              for level, limit in (("critical", rule.critical), ("warning", rule.warning), ("note", rule.note))
              if limit is not None and math.isfinite(limit)]  # an infinite critical: a warning-only metric


@pytest.mark.parametrize("rule, level, limit", BOUNDARIES, ids=[f"{r.key}-{lv}" for r, lv, _ in BOUNDARIES])
def test_every_boundary_is_inclusive_in_its_direction(rule, level, limit):
    worse = -1 if rule.lower_is_worse else 1
    at = evaluate_band(rule, *_value_for(rule, limit))
    assert at.level == level, at.rule
    beyond = evaluate_band(rule, *_value_for(rule, limit + worse * 0.01))
    assert LEVEL_RANK[beyond.level] >= LEVEL_RANK[level]
    short = evaluate_band(rule, *_value_for(rule, limit - worse * 0.01))
    assert LEVEL_RANK[short.level] < LEVEL_RANK[level]
    assert str(abs(limit)).rstrip("0").rstrip(".") in at.threshold


def test_lower_is_worse_metrics():
    hit = PROFILE.rule("buffer_pool_hit")
    assert evaluate_band(hit, 99.0).level == "ok"
    assert evaluate_band(hit, 95.0).level == "warning"
    assert evaluate_band(hit, 90.0).level == "critical"
    thr = PROFILE.rule("throughput")
    assert evaluate_band(thr, 95.0, 100.0).level == "ok"  # −5 %
    assert evaluate_band(thr, 90.0, 100.0).level == "warning"  # −10 %
    assert evaluate_band(thr, 50.0, 100.0).level == "critical"  # −50 %
    assert evaluate_band(thr, 150.0, 100.0).level == "ok"  # more throughput is never worse


def test_no_value_is_stale_not_ok_and_not_a_failure():
    band = evaluate_band(PROFILE.rule("replication_lag"), None, error="replica unreachable: (2003)")
    assert band.level == "stale" and "replica unreachable" in band.rule
    state = step(PROFILE, WindowState(), 5, {"replication_lag": band})
    assert not state.alerts and not state.warnings and state.stop_reason is None
    assert [e.kind for e in state.events] == ["stale"]
    assert evaluate_band(PROFILE.rule("latency_p50"), 5.0, None).level == "stale"  # no baseline


rules_st = st.sampled_from(DEFAULT_RULES)


@settings(max_examples=500)
@given(rules_st, st.floats(-200, 400, allow_nan=False), st.floats(0, 50))
def test_a_worse_value_never_gets_a_better_band(rule, measure, delta):
    worse = -1 if rule.lower_is_worse else 1
    a = evaluate_band(rule, *_value_for(rule, measure))
    b = evaluate_band(rule, *_value_for(rule, measure + worse * delta))
    assert LEVEL_RANK[b.level] >= LEVEL_RANK[a.level]


def test_profile_overrides_are_validated():
    p = profile_from_overrides({"latency_p50": {"warning": 8, "critical": 40}, "min_samples": 20})
    assert p.rule("latency_p50").warning == 8 and p.min_samples == 20
    with pytest.raises(ProfileError) as caught:
        profile_from_overrides({"latency_p50": {"warning": 60}, "window_minutes": 30, "nope": 1,
                                "cpu": {"colour": 1}, "throughput": {"critical": -5}})
    text = "\n".join(caught.value.problems)
    for expected in ("'thresholds.latency_p50'", "cannot shorten the 60-minute", "unknown key 'thresholds.nope'",
                     "'thresholds.cpu.colour'", "'thresholds.throughput'"):
        assert expected in text
    assert len(caught.value.problems) == 5


@pytest.mark.parametrize(("setting", "value", "said"), [
    ("window_minutes", float("inf"), "must be a positive number"),
    ("confirmation_minutes", float("nan"), "must be a positive number"),
    ("window_minutes", 1e308, "must be at most 1440 (a day)"),
    ("confirmation_minutes", 60, "must be shorter than the window"),
    ("extension_factor", 1e9, "must be at most 10"),
    ("min_samples", 10**12, "must be at most 10000"),
])
def test_a_setting_that_would_never_end_or_never_hold_is_refused_with_its_limit(setting, value, said):
    """A profile is a TOML file a person edits: ``inf``, ``nan`` and 1e308 are valid TOML. A window of
    1e308 minutes never ended (the run stranded in monitoring); a confirmation period of the whole
    window made the harm limits never stop it."""
    with pytest.raises(ProfileError) as caught:
        profile_from_overrides({setting: value})
    assert any(said in p and f"'thresholds.{setting}'" in p for p in caught.value.problems), caught.value.problems


def _band(key, measure, n=None):
    rule = PROFILE.rule(key)
    band = evaluate_band(rule, *_value_for(rule, measure))
    return band if n is None else band.__class__(**{**band.__dict__, "n": n})


def test_warning_zone_extends_2x_then_escalates_to_fail():
    state = WindowState()
    extension = PROFILE.warning_observation_minutes * 60 * PROFILE.extension_factor
    for t in range(0, int(extension) + 10, 5):
        state = step(PROFILE, state, t, {"replication_lag": _band("replication_lag", 35)})
    assert len(state.warnings) == 1 and len(state.escalations) == 1
    assert state.escalations[0].t_s >= extension


def test_leaving_the_warning_zone_ends_the_episode():
    state = step(PROFILE, WindowState(), 0, {"replication_lag": _band("replication_lag", 35)})
    state = step(PROFILE, state, 600, {"replication_lag": _band("replication_lag", 5)})
    state = step(PROFILE, state, 4000, {"replication_lag": _band("replication_lag", 5)})
    assert not state.escalations and not state.episodes


def test_a_metric_missing_from_a_tick_still_counts_as_concurrent_with_its_last_band():
    """The latency percentiles are read one tick in five at a 1 s interval: between their reads
    their last band stands, so the concurrent count does not flicker (nor re-escalate) each tick."""
    warn = {"connections": 80, "threads_running": 50, "cpu": 70}
    state = step(PROFILE, WindowState(), 0, {k: _band(k, v) for k, v in warn.items()})
    assert state.concurrent == 3 and len(state.of_kind("concurrent_escalate")) == 1
    for t in range(1, 5):  # cpu is not sampled on these ticks
        state = step(PROFILE, state, t, {k: _band(k, warn[k]) for k in ("connections", "threads_running")})
        assert state.concurrent == 3
    assert len(state.of_kind("concurrent_escalate")) == 1
    state = step(PROFILE, state, 5, {"cpu": _band("cpu", 0)})
    assert state.concurrent == 2


def test_concurrent_warnings_escalate_at_3_and_auto_pause_at_5():
    keys = ["connections", "threads_running", "cpu", "memory", "disk_read"]
    warn = {"connections": 80, "threads_running": 50, "cpu": 70, "memory": 80, "disk_read": 100}
    state = step(PROFILE, WindowState(), 0, {k: _band(k, warn[k]) for k in keys[:2]})
    assert not state.of_kind("concurrent_escalate")
    state = step(PROFILE, state, 5, {k: _band(k, warn[k]) for k in keys[:3]})
    assert len(state.of_kind("concurrent_escalate")) == 1 and state.can_advance
    state = step(PROFILE, state, 10, {k: _band(k, warn[k]) for k in keys[:4]})
    assert state.can_advance
    state = step(PROFILE, state, 15, {k: _band(k, warn[k]) for k in keys})
    assert state.paused and not state.can_advance and "AUTO-PAUSE" in state.pause_reason
    state = step(PROFILE, state, 20, {k: _band(k, 0) for k in keys})
    assert state.paused, "an auto-pause lasts until someone approves, not until the metrics calm down"
    state = resume(state, "somchai (canary_lead)", "resume")
    assert state.can_advance and "resume approved by somchai" in state.of_kind("resumed")[0].detail
    with pytest.raises(ValueError):
        resume(state, "x", "ignore")


@pytest.mark.parametrize("key, measure, route", [
    ("lock_wait", 5, "immediate_manual_rollback"),
    ("replication_lag", 60, "immediate_manual_rollback"),
    ("error_rate", 1, "rollback_decision"),
])
def test_failure_conditions_stop_now_with_their_route(key, measure, route):
    state = step(PROFILE, WindowState(), 30, {key: _band(key, measure)})
    assert state.stop_reason and [e.route for e in state.of_kind("stop")] == [route]


def test_latency_alert_needs_10_samples_to_stop_and_routes_to_the_team_otherwise():
    few = step(PROFILE, WindowState(), 30, {"latency_p50": _band("latency_p50", 60, n=9)})
    assert few.stop_reason is None and not few.alerts
    many = step(PROFILE, WindowState(), 30, {"latency_p50": _band("latency_p50", 60, n=10)})
    assert many.stop_reason and many.of_kind("stop")[0].route == "rollback_decision"


def _window(shift=1.0, lag=0.0, minutes=60, seed=1, stale_lag_after=None, n_base=120):
    rng = random.Random(seed)
    base = {"latency_p50": [rng.lognormvariate(0, 0.2) for _ in range(n_base)],
            "latency_p99": [rng.lognormvariate(1, 0.3) for _ in range(n_base)],
            "error_rate": [0.01] * 10}

    def ticks():
        for i in range(int(minutes * 12) + 1):
            t = i * 5.0
            lag_value = None if stale_lag_after is not None and t >= stale_lag_after else lag
            yield t, {"latency_p50": (rng.lognormvariate(0, 0.2) * shift, None, 20),
                      "latency_p99": (rng.lognormvariate(1, 0.3) * shift, None, 20),
                      "replication_lag": (lag_value, None if lag_value is not None else "replica down", None),
                      "lock_wait": (0.0, None, None), "error_rate": (0.01, None, None)}

    return evaluate_window(PROFILE, ticks(), base, ["latency_p50", "latency_p99", "replication_lag", "lock_wait",
                                                     "error_rate"], index_created=True)


def test_final_matrix_pass_and_its_evidence():
    _, checkpoints, verdict = _window(seed=3)
    assert verdict.verdict in (PASS, PASS_WITH_WARNING)
    p50 = next(c for c in verdict.criteria if c.name.startswith("Query latency p50"))
    assert p50.met is True and p50.n >= 600 and "98% CI" in p50.interval
    assert [c.label for c in checkpoints] == ["T+15", "T+30", "T+45", "T+60", "T+75"]
    assert next(c for c in verdict.criteria if c.name == "Monitoring window completed").met


def test_final_matrix_fails_on_a_latency_shift_and_names_the_rule():
    _, _, verdict = _window(shift=1.3)
    assert verdict.verdict == FAIL
    assert any("Query latency p50" in r and "needs < +10%" in r for r in verdict.reasons)


def test_final_matrix_fails_on_lag_and_on_a_short_window():
    assert _window(lag=61)[2].verdict == FAIL
    short = _window(minutes=30)[2]
    assert short.verdict == FAIL and any("Monitoring window completed" in r for r in short.reasons)


def test_a_collector_outage_is_inconclusive_never_fail():
    _, _, verdict = _window(stale_lag_after=1800)
    lag = next(c for c in verdict.criteria if c.name == "Replication lag")
    assert lag.met is None and verdict.verdict == INCONCLUSIVE
    assert "team decides" in verdict.next_step


def test_too_few_baseline_intervals_is_inconclusive():
    assert _window(n_base=9)[2].verdict == INCONCLUSIVE


def test_hodges_lehmann_finds_a_known_shift_and_flags_low_confidence():
    rng = random.Random(5)
    base = [rng.lognormvariate(0, 0.1) for _ in range(200)]
    est = hodges_lehmann(base, [rng.lognormvariate(0, 0.1) * 1.5 for _ in range(200)])
    assert 1.45 < est.ratio < 1.55 and est.low < est.ratio < est.high and not est.low_confidence
    few = hodges_lehmann(base, [rng.lognormvariate(0, 0.1) for _ in range(15)])
    assert few.low_confidence and few.min_detectable_ratio > 1.0
    assert hodges_lehmann([], [1.0]) is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 3.0), st.integers(1, 12), st.booleans())
def test_inconclusive_evidence_never_turns_into_pass(seed, shift, n_window, lag_down):
    """Whatever the values: with fewer than 10 intervals, or a criterion's source down at the end,
    the verdict is never PASS (nor PASS WITH WARNING)."""
    rng = random.Random(seed)
    base = {"latency_p50": [rng.lognormvariate(0, 0.2) for _ in range(40)],
            "latency_p99": [rng.lognormvariate(1, 0.3) for _ in range(40)]}
    ticks = [(i * 3600 / n_window, {"latency_p50": (rng.lognormvariate(0, 0.2) * shift, None, 5),
                                    "latency_p99": (rng.lognormvariate(1, 0.3) * shift, None, 5),
                                    "replication_lag": (None if lag_down else 1.0, "down" if lag_down else None, None)})
             for i in range(1, n_window + 1)]
    _, _, verdict = evaluate_window(PROFILE, ticks, base, ["latency_p50", "latency_p99", "replication_lag"], True)
    if n_window < PROFILE.min_samples or lag_down:
        assert verdict.verdict in (INCONCLUSIVE, FAIL)



# --- the rolling latency band, incremental and by its definition ----------------------------------

# Steps that land on the rolling span's edge exactly (300 s), just inside and just outside it; values
# with ties, gaps (a source down), an int among floats, and a NaN and an infinity now and then.
STEP_S = st.sampled_from([0.0, 0.5, 1.0, 5.0, 60.0, 150.0, 299.0, 300.0, 301.0])
LATENCY = st.one_of(st.none(), st.floats(0.01, 500.0), st.sampled_from([1.0, 2.0, 2, 0.0, float("nan"), float("inf")]))


def _latency_bands_are_sane(profile, baseline, ticks):
    """Feed (t, value) ticks to the evaluator: whatever the values (NaN, infinity, zero, an int,
    a gap, time going backwards), every band is a band, never an exception, and a latency band
    below the profile's effective n never decides anything."""
    ev = WindowEvaluator(profile, {"latency_p50": baseline}, ["latency_p50"])
    for t, v in ticks:
        ev.add(t, {"latency_p50": (v, None if v is not None else "down", 40)})
        band = ev.state.last_bands["latency_p50"]
        assert band.level in ("ok", "warning", "critical", "stale")
        if band.level == "critical":
            assert (band.n or 0) >= profile.min_samples
    assert ev.state.stop_reason is None or ev.judges["latency_p50"].tracker is not None
    return ev


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(STEP_S, LATENCY), max_size=250), st.lists(st.floats(0.01, 100.0), max_size=15),
       st.sampled_from([0.05, 1.0, 5.0]))
def test_latency_bands_on_any_values_are_bands(steps, baseline, rolling_minutes):
    profile = replace(PROFILE, rolling_minutes=rolling_minutes)
    t, ticks = 0.0, []
    for dt, v in steps:
        t += dt
        ticks.append((t, v))
    _latency_bands_are_sane(profile, baseline, ticks)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-400.0, 4000.0), LATENCY), max_size=80), st.lists(st.floats(0.01, 100.0),
                                                                                       min_size=1, max_size=5))
def test_latency_bands_out_of_time_order_never_raise(ticks, baseline):
    _latency_bands_are_sane(PROFILE, baseline, ticks)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.one_of(st.floats(-5, 5), st.integers(-3, 3))), max_size=200),
       st.integers(1, 40))
def test_rolling_median_is_the_median_of_its_span(steps, span):
    roll, t, kept = RollingMedian(), 0, []
    for dt, v in steps:
        t += dt
        assert roll.add(t, v)
        kept.append((t, v))
        roll.trim(t - span)
        recent = [x for s, x in kept if s > t - span]
        assert roll.n == len(recent) and roll.last == recent[-1]
        assert repr(roll.median()) == repr(statistics.median(recent))
    if steps:
        assert not roll.add(t - 1, 1.0), "a value before the last one's time is refused"


POINT = st.tuples(st.one_of(st.floats(allow_nan=True), st.just(-0.0)),
                  st.one_of(st.none(), st.floats(allow_nan=True), st.just(-0.0)),
                  st.one_of(st.none(), st.integers(-(2 ** 63), 2 ** 63 - 1)))
ODD_POINT = st.one_of(st.tuples(st.integers(0, 10), st.integers(0, 5), st.none()),  # ints where floats go
                      st.tuples(st.floats(0, 10), st.floats(0, 5), st.integers(2 ** 63, 2 ** 64)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(POINT, POINT, POINT, ODD_POINT), max_size=60))
def test_points_read_back_exactly_what_was_appended(given_points):
    """The window's points are kept in typed arrays; they read back as the very tuples given
    (NaN, −0.0, None, huge n, ints where floats go: all of it), by index, slice, iteration and
    reversed."""
    pts = Points()
    for p in given_points:
        pts.append(p)
    assert len(pts) == len(given_points)
    assert repr(list(pts)) == repr(given_points)
    assert repr(list(reversed(pts))) == repr(given_points[::-1])
    assert repr(pts[1:-1:2]) == repr(given_points[1:-1:2])
    if given_points:
        assert repr(pts[-1]) == repr(given_points[-1]) and repr(pts[0]) == repr(given_points[0])
    with pytest.raises(IndexError):
        pts[len(given_points)]

@pytest.mark.parametrize("rows, exact, band, needs", [
    (1_000_000, False, "PASS", False),
    (3_749_999, False, "PASS", False),
    (3_750_000, False, "PASS", True),  # within 25 % of 5M: count exactly
    (5_000_000, True, "PASS", False),
    (5_000_001, True, "WARNING", False),
    (10_000_000, True, "WARNING", False),
    (10_000_001, True, "BLOCK", False),
    (12_500_000, False, "BLOCK", True),
    (12_500_001, False, "BLOCK", False),
])
def test_size_gate(rows, exact, band, needs):
    from engine.domain.sizegate import gate

    g = gate(rows, exact)
    assert (g.band, g.needs_exact_count) == (band, needs), g.rule
    assert g.sampling_interval_s == (2.5 if band == "WARNING" else 5.0)
