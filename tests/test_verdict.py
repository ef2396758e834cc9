"""The latency verdict under noise (engine/domain/verdict.py, docs/verdict.md): intervals that cover on
correlated noise, degenerate inputs, the control's arithmetic, the sequential boundary, the harm
limits, and ``replay --samples``. The 1,000-window error rates live in bench/verdict_quality.py."""

from __future__ import annotations

import json
import math
import random
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.decision_evaluator import CONTROL, evaluate_window
from engine.domain.decision_matrix import FAIL, INCONCLUSIVE, PASS, PASS_WITH_WARNING
from engine.domain.thresholds import Profile
from engine.domain.verdict import (
    LatencyTracker,
    Settings,
    ar1_var_factor,
    effective_n,
    fit_noise,
    obf_boundaries,
    pct,
    t_quantile,
)
from engine.flows.samples_file import SamplesError, judge_samples, parse_samples

PROFILE = Profile()


def _ar1(rng: np.random.Generator, w: int, n: int, rho: float, sigma: float) -> np.ndarray:
    e = rng.standard_normal((w, n))
    out = np.empty((w, n))
    x = e[:, 0]
    for i in range(n):
        x = rho * x + math.sqrt(1 - rho * rho) * e[:, i] if i else e[:, 0]
        out[:, i] = x
    return sigma * out


# --- intervals that hold under dependence ----------------------------------------------------------


@settings(max_examples=6, deadline=None, derandomize=True)  # fixed draws: a statistical bound, not a flake
@given(st.integers(0, 2 ** 31), st.sampled_from([0.0, 0.5, 0.8, 0.9]), st.floats(0.05, 0.5))
def test_the_interval_covers_the_true_shift_on_ar1_noise(seed, rho, sigma):
    """No change, AR(1) noise: the 98 % interval of the window's shift holds 0 in ≥ 98 % of
    windows (allowing for the Monte-Carlo error of 300 windows: ≥ 95 %)."""
    rng = np.random.default_rng(seed)
    w, nb, nw = 300, 360, 240
    y = _ar1(rng, w, nb + nw, rho, sigma)
    tb = np.arange(-nb, 0) * 5.0
    s = Settings(10, 50, 10, window_s=nw * 5.0, looks_s=(nw * 5.0,))
    tr = LatencyTracker(y[:, :nb], tb, s, capacity=nw)
    for i in range(nw):
        tr.add(i * 5.0, y[:, nb + i])
    o = tr.finish(0.98)
    judged = tr.base_ok
    covered = (o.low <= 0) & (o.high >= 0)
    assert judged.mean() > 0.5
    assert covered[judged].mean() >= 0.95, (rho, sigma, covered[judged].mean())


def test_the_effective_n_of_correlated_noise():
    assert effective_n(720, 0.0) == pytest.approx(720)
    assert effective_n(720, 0.95) == pytest.approx(720 * 0.05 / 1.95, rel=0.05)
    # a short span of strongly correlated values is worth about one value, never less
    assert 1.0 <= effective_n(12, 0.95) < 2.0
    assert ar1_var_factor(1, 0.9) == pytest.approx(1.0)


def test_the_noise_model_learns_rho_and_a_trend():
    rng = np.random.default_rng(4)
    t = np.arange(-720, 0) * 5.0
    flat = fit_noise(_ar1(rng, 200, 720, 0.8, 0.2), t)
    assert abs(np.median(flat.rho) - 0.8) < 0.06
    assert flat.trend.mean() < 0.1  # a trend is modelled only when the baseline shows one
    sloped = fit_noise(_ar1(rng, 200, 720, 0.3, 0.05) + 0.3 * (t / 3600.0), t)
    assert sloped.trend.mean() > 0.9
    assert np.median(sloped.slope) * 3600 == pytest.approx(0.3, rel=0.1)


def test_t_quantile():
    assert t_quantile(0.975, 1e9) == pytest.approx(1.96, abs=1e-3)
    assert t_quantile(0.975, 10) == pytest.approx(2.228, abs=0.01)
    assert t_quantile(0.99, 5) == pytest.approx(3.365, abs=0.03)
    # below 3 degrees: exact at 1 and 2 (tables: 31.82, 6.965), in between never below the larger df's
    assert t_quantile(0.99, 1) == pytest.approx(31.82, abs=0.01)
    assert t_quantile(0.99, 2) == pytest.approx(6.965, abs=0.01)
    assert t_quantile(0.99, 1.5) > t_quantile(0.99, 2) > t_quantile(0.99, 2.5) > t_quantile(0.99, 3)
    assert t_quantile(0.99, 0.2) == t_quantile(0.99, 1)
    assert list(t_quantile(0.99, np.array([1.0, 2.0, 10.0]))) == pytest.approx([31.82, 6.965, 2.764], abs=0.01)


# --- the sequential boundary ----------------------------------------------------------------------


def test_obrien_fleming_boundaries_spend_alpha():
    one = obf_boundaries(0.01, (1.0,))
    assert one[0] == pytest.approx(2.326, abs=0.02)
    b = obf_boundaries(0.01, (0.25, 0.5, 0.75, 1.0))
    assert list(b) == sorted(b, reverse=True) and b[0] > 4.5 and 2.3 < b[-1] < 2.45
    # Monte Carlo: Brownian motion under H0 crosses somewhere with probability α
    rng = np.random.default_rng(7)
    steps = rng.standard_normal((200_000, 4)) * math.sqrt(0.25)
    s = np.cumsum(steps, axis=1)
    z = s / np.sqrt(np.array([0.25, 0.5, 0.75, 1.0]))
    crossed = (z >= np.array(b)).any(axis=1).mean()
    assert 0.008 < crossed < 0.012


def _window(change=1.0, control=False, server_shift_at=None, burst=None, seed=3, n_base=360, rho=0.3, minutes=60,
            sigma=0.15):
    rng = random.Random(seed)
    base_t = [-(n_base - i) * 5.0 - 900 for i in range(n_base)]
    x = {"c": 0.0, "k": 0.0}

    def value(group, t, extra=1.0):
        x[group] = rho * x[group] + math.sqrt(1 - rho * rho) * rng.gauss(0, 1)
        server = 1.0
        if server_shift_at is not None and t >= server_shift_at:
            server *= 1.35
        if burst is not None and burst[0] <= t < burst[0] + burst[1]:
            server *= 3.0
        return 0.004 * server * extra * math.exp(sigma * x[group])

    base = {"latency_p50": [value("c", t) for t in base_t]}
    if control:
        base[CONTROL + "latency_p50"] = [value("k", t) for t in base_t]
    times = {k: base_t for k in base}
    ticks = []
    for i in range(int(minutes * 12) + 1):
        t = i * 5.0
        tick = {"latency_p50": (value("c", t, change), None, 20)}
        if control:
            tick[CONTROL + "latency_p50"] = (value("k", t), None, 20)
        ticks.append((t, tick))
    from engine.domain.decision_evaluator import WindowEvaluator

    ev = WindowEvaluator(PROFILE, base, ["latency_p50"], times)
    for t, tick in ticks:
        ev.add(t, tick)
        if ev.state.stop_reason:
            break
    return ev, ev.finish(True)


def _p50(verdict):
    return next(c for c in verdict.criteria if c.name.startswith("Query latency p50"))


def test_no_change_passes_and_states_its_evidence():
    ev, v = _window()
    c = _p50(v)
    assert v.verdict == PASS and c.met is True
    assert c.n == 721 and c.n_eff is not None and 10 <= c.n_eff <= 721
    assert "98% CI" in c.interval and "effective" in c.evidence and "no control" in c.evidence


def test_a_2x_regression_fails_at_a_checkpoint_not_at_a_tick():
    ev, v = _window(change=2.0)
    assert v.verdict == FAIL and _p50(v).met is False
    stop = ev.state.of_kind("stop")[0]
    assert "look" in stop.detail or "critical" in stop.detail


def test_a_3x_regression_stops_the_window_within_3_minutes():
    ev, v = _window(change=3.0)
    [stop] = ev.state.of_kind("stop")
    assert v.verdict == FAIL and stop.t_s <= 180, stop


def test_a_short_burst_is_an_incident_not_a_verdict():
    ev, v = _window(burst=(1200.0, 90.0), sigma=0.1, rho=0.0)
    assert v.verdict == PASS, v.reasons
    assert not ev.state.of_kind("stop")


def test_an_unrelated_shift_mid_window_without_a_control_is_never_fail():
    ev, v = _window(server_shift_at=1800.0, sigma=0.08, rho=0.0)
    assert v.verdict in (INCONCLUSIVE, PASS), v.reasons
    assert ev.state.of_kind("incident"), "the level change is on the timeline"


def test_the_control_cancels_a_server_wide_shift_and_keeps_a_real_one():
    _, v = _window(server_shift_at=1800.0, control=True)
    assert v.verdict == PASS and "control +" in _p50(v).evidence
    _, v2 = _window(server_shift_at=1800.0, control=True, change=1.5)
    assert v2.verdict == FAIL
    c = _p50(v2)
    assert c.value.startswith("+4") or c.value.startswith("+5"), c.value  # ≈ +50 % relative to the control


# --- degenerate inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("baseline, words", [
    ([], "no baseline interval"),
    ([0.004], "only 1 usable baseline interval"),
    ([0.0] * 50, "zero or negative"),
    (["fast", None, float("nan")] * 10, "not a finite number"),
    ([0.004] * 50, "all the same value"),
])
def test_degenerate_baselines_are_inconclusive_with_the_true_reason(baseline, words):
    ticks = [(i * 5.0, {"latency_p50": (0.004 * (3 if i > 10 else 1), None, 20)}) for i in range(800)]
    _, _, v = evaluate_window(PROFILE, ticks, {"latency_p50": baseline}, ["latency_p50"], True)
    c = _p50(v)
    assert c.met is None and v.verdict == INCONCLUSIVE and words in c.rule, c.rule


def test_huge_and_odd_window_values_never_raise_nor_print_300_digits():
    base = {"latency_p50": [0.004 * (1 + 0.01 * (i % 7)) for i in range(400)]}
    ticks = [(i * 5.0, {"latency_p50": (v, None, 20)})
             for i, v in enumerate([1e300, "slow", True, -1.0, 0.0, float("inf")] * 130)]
    state, _, v = evaluate_window(PROFILE, ticks, base, ["latency_p50"], True)
    c = _p50(v)
    assert len(c.value) < 12, c.value
    assert v.verdict in (FAIL, INCONCLUSIVE)
    assert pct(1e6) .startswith("×") and len(pct(1e6)) < 12 and pct(math.log(1.1)) == "+10%"


@pytest.mark.parametrize("seed", range(8))
def test_min_samples_applies_to_the_effective_n(seed):
    """Strongly correlated noise and no change: 120 baseline intervals are far fewer than 10
    effective ones — never a FAIL, however the series wanders."""
    rng = np.random.default_rng(seed)
    y = np.exp(_ar1(rng, 1, 120 + 721, 0.995, 0.3))[0] * 0.004
    base = {"latency_p50": list(y[:120])}
    ticks = [(i * 5.0, {"latency_p50": (float(v), None, 20)}) for i, v in enumerate(y[120:])]
    _, _, v = evaluate_window(PROFILE, ticks, base, ["latency_p50"], True)
    c = _p50(v)
    assert c.met is not False and v.verdict != FAIL, c.rule


# --- the runbook's harm limits still fire -----------------------------------------------------------


def test_lock_wait_at_5s_still_stops_the_window_at_once():
    ticks = [(i * 5.0, {"lock_wait": (6.0 if i >= 3 else 0.1, None, None)}) for i in range(20)]
    state, _, v = evaluate_window(PROFILE, ticks, {}, ["lock_wait"], True)
    assert state.stop_reason and state.of_kind("stop")[0].t_s == 15.0 and v.verdict == FAIL


@pytest.mark.parametrize("step_min", [0, 20])
def test_a_harm_limit_stop_reports_the_span_that_decided_it(step_min):
    """A 4× p50 from the change on, or from 20 minutes into the window: the harm limit stops the
    window minutes after it, and the criterion shows the rolling span's estimate, interval and n at
    the stop, on the noise it was judged on there (what decided it) — not the window so far, whose
    noise, learnt again with the step in it, gave the drill's `s` pressed mid-window an interval of
    −81 % … ×144 next to "harm limit"."""
    rng = random.Random(5)
    t0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    lines = []
    for i in range(91 * 12):
        shift = 4.0 if i * 5 >= (30 + step_min) * 60 else 1.0
        ts = (t0 + timedelta(seconds=5 * i)).isoformat().replace("+00:00", "Z")
        lines.append(json.dumps({"ts": ts, "metric": "latency_p50",
                                 "value": 0.004 * shift * math.exp(rng.gauss(0, 0.15))}))
    bad = judge_samples(parse_samples("\n".join(lines) + "\n", PROFILE), PROFILE)
    assert bad.verdict.verdict == FAIL and bad.stopped_at is not None
    p50 = next(c for c in bad.verdict.criteria if c.name.startswith("Query latency p50"))
    assert "harm limit" in p50.rule and "the harm limit's span" in (p50.evidence or "")
    span = int(PROFILE.rolling_minutes * 60 / 5) + 1  # the rolling span's ticks at 5 s
    assert 10 <= p50.n <= span and p50.n_eff is not None and p50.n_eff <= span
    low, high = (float(x.rstrip("%")) for x in p50.interval.split("CI ")[1].split("…"))
    assert PROFILE.rule("latency_p50").critical < low < high < 400, p50.interval  # past the line, and narrow


# --- replay --samples ---------------------------------------------------------------------------------


def _lines(change=1.0, minutes_after=61, control=False, seed=2):
    rng = random.Random(seed)
    t0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    out = []
    for i in range(int((30 + minutes_after) * 12)):
        at = t0 + timedelta(seconds=5 * i)
        shift = change if i * 5 >= 30 * 60 else 1.0
        ts = at.isoformat().replace("+00:00", "Z")
        out.append({"ts": ts, "metric": "latency_p50", "value": 0.004 * shift * math.exp(rng.gauss(0, 0.15))})
        out.append({"ts": ts, "metric": "lock_wait", "value": 0.0})
        if control:
            out.append({"ts": ts, "metric": "latency_p50", "value": 0.004 * math.exp(rng.gauss(0, 0.15)),
                        "group": "control"})
    return "\n".join(json.dumps(o) for o in out) + "\n"


def test_judge_samples_pass_and_fail():
    ok = judge_samples(parse_samples(_lines(), PROFILE), PROFILE)
    assert ok.verdict.verdict in (PASS, PASS_WITH_WARNING) and ok.stopped_at is None
    bad = judge_samples(parse_samples(_lines(change=2.5, control=True), PROFILE), PROFILE)
    assert bad.verdict.verdict == FAIL and bad.stopped_at is not None
    js = bad.as_json()
    assert js["verdict"] == "FAIL" and "stopped_at" in js
    p50 = next(c for c in js["criteria"] if c["name"].startswith("Query latency p50"))
    assert {"value", "interval", "n", "n_eff", "band"} <= set(p50)


def test_a_file_that_covers_the_hour_is_a_whole_window_and_a_shorter_one_is_not_a_fail():
    """An hour at 5 s exported with its end excluded (07:30:00 … 08:29:55, 720 samples) is the
    whole window — it was FAIL, "59.9 min (needs 60 min): the window cannot be shortened", on a file
    with no change in it. A file that ends half-way was not stopped, it holds less: INCONCLUSIVE,
    and the reason says the file is short."""
    hour = judge_samples(parse_samples(_lines(minutes_after=60), PROFILE), PROFILE)
    assert hour.verdict.verdict in (PASS, PASS_WITH_WARNING), hour.verdict.reasons
    window = next(c for c in hour.verdict.criteria if c.name == "Monitoring window completed")
    assert window.met is True and window.value == "60.0 min"
    half = judge_samples(parse_samples(_lines(minutes_after=30), PROFILE), PROFILE)
    assert half.verdict.verdict == INCONCLUSIVE and half.stopped_at is None
    assert any("the file's samples end 30.0 min into the window" in r for r in half.verdict.reasons)
    stopped = judge_samples(parse_samples(_lines(change=3.0, minutes_after=30), PROFILE), PROFILE)
    assert stopped.verdict.verdict == FAIL and stopped.stopped_at is not None  # a stop still decides


@pytest.mark.parametrize("text, words", [
    ('{"ts": "2026-12-03T07:00:00Z", "metric": "latency_p50", "value": 1}\nnot json\n', "line 2: not JSON"),
    ('{"ts": "soon", "metric": "latency_p50", "value": 1}\n', "line 1: 'ts'"),
    ('{"ts": "2026-12-03T07:00:00Z", "metric": "p50", "value": 1}\n', "unknown metric 'p50'"),
    ('{"ts": "2026-12-03T07:00:00Z", "metric": "latency_p50", "value": "fast"}\n', "line 1: 'value'"),
    ('{"ts": "2026-12-03T07:00:00Z", "metric": "latency_p50", "value": 1, "group": "b"}\n', "'group'"),
    ("\n\n", "no sample"),
    ('{"ts": "2026-12-03T07:00:00Z", "metric": "latency_p50", "value": 1' + "9" * 5000 + "}\n",
     "line 1: not JSON (a number too long to read)"),
    ("[" * 100000 + "]" * 100000 + "\n", "line 1: not JSON (nested too deeply)"),
    ('{"ts": "2026-12-03T07:00:00Z", "metric": "latency_p50", "value": 1' + "0" * 400 + "}\n",
     "'value' must be a finite number or null (a source down), not an integer of 401 digits"),
    ('{"ts": "2026-12-03T07:00:00Z", "metric": 1' + "0" * 400 + ', "value": 1}\n', "unknown metric an integer of"),
])
def test_bad_sample_files_name_the_line(text, words):
    with pytest.raises(SamplesError, match=re.escape(words)):
        parse_samples(text, PROFILE)


def test_cli_replay_samples(tmp_path, capsys):
    from console.cli import main

    good = tmp_path / "good.jsonl"
    good.write_text(_lines())
    assert main(["replay", "--samples", str(good), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    last = json.loads(out[-1])
    assert last["verdict"] in ("PASS", "PASS_WITH_WARNING") and "evidence:" in "\n".join(out)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_lines()[:200] + "\n{oops\n")
    assert main(["replay", "--samples", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "line" in err and "not JSON" in err and "Traceback" not in err
    assert main(["replay", "--samples", str(good), "--change-at", "2026-12-03T07:45:00Z", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["change_at"].startswith("2026-12-03T07:45")
    # a byte-order mark (a Windows export) is read past; bytes that are not UTF-8 say so, no traceback
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + _lines().encode())
    assert main(["replay", "--samples", str(bom), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["verdict"] in ("PASS", "PASS_WITH_WARNING")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xa1\xff\x00garbage")
    assert main(["replay", "--samples", str(binary)]) != 0
    err = capsys.readouterr().err
    assert "not UTF-8 text (byte 0xa1 at offset 0)" in err and "Traceback" not in err


def test_replay_takes_previous_days_as_history():
    """``group: history`` samples (previous days, before the baseline) are learnt from, not judged,
    and never move the default change time; one after the change is named by its line."""
    rng = random.Random(7)
    hist = []
    for day in (1, 2):
        level = 0.0
        for i in range(1080):
            level = 0.99 * level + rng.gauss(0, 0.03)  # wanders over minutes
            at = datetime(2026, 12, 3, 7, 0, tzinfo=UTC) - timedelta(days=day) + timedelta(seconds=5 * i)
            hist.append(json.dumps({"ts": at.isoformat(), "metric": "latency_p50", "group": "history",
                                    "value": 0.004 * math.exp(level)}))
    text = "\n".join(hist) + "\n" + _lines()
    with_history = judge_samples(parse_samples(text, PROFILE), PROFILE)
    plain = judge_samples(parse_samples(_lines(), PROFILE), PROFILE)
    assert with_history.change_at == plain.change_at == datetime(2026, 12, 3, 7, 30, tzinfo=UTC)
    assert with_history.window_samples == plain.window_samples
    judge = with_history.evaluator.judges["latency_p50"]
    assert judge.history is not None and judge.history.days == 2
    width = {}
    for name, j in (("with", with_history), ("plain", plain)):
        c = next(c for c in j.as_json()["criteria"] if c["name"].startswith("Query latency p50"))
        width[name] = c["n_eff"]
    assert width["with"] < width["plain"]  # the days' wandering leaves fewer effective intervals
    late = _lines() + json.dumps({"ts": "2026-12-03T08:00:00Z", "metric": "latency_p50", "value": 0.004,
                                  "group": "history"}) + "\n"
    with pytest.raises(SamplesError, match=r"line \d+: a history sample"):
        judge_samples(parse_samples(late, PROFILE), PROFILE)


def test_cli_replay_of_a_window_with_a_burst_that_went_away_passes_with_its_warning(tmp_path, capsys):
    """A file as an exporter would write it: a 5-minute baseline and an hour's window of p50 at 5 s,
    independent 12 % noise, one 3-minute 3× burst 25 minutes in. Judged whole the window was
    INCONCLUSIVE ("wanders far more than the baseline"); ``replay`` now says PASS WITH WARNING, and
    the JSON's criterion carries the warning and counts only the intervals judged."""
    from console.cli import main

    rng = random.Random(4)
    t0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    lines = []
    for i in range(65 * 12):
        burst = 3.0 if (5 + 25) * 60 <= i * 5 < (5 + 28) * 60 else 1.0
        ts = (t0 + timedelta(seconds=5 * i)).isoformat().replace("+00:00", "Z")
        lines.append(json.dumps({"ts": ts, "metric": "latency_p50", "value": 2.0 * burst * math.exp(rng.gauss(0, 0.12))}))
    f = tmp_path / "burst.jsonl"
    f.write_text("\n".join(lines) + "\n")
    assert main(["replay", "--samples", str(f), "--change-at", "2026-12-03T07:05:00Z", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    last = json.loads(out[-1])
    assert last["verdict"] == "PASS_WITH_WARNING", last["reasons"]
    p50 = next(c for c in last["criteria"] if c["name"].startswith("Query latency p50"))
    assert p50["met"] is True and "set aside" in p50["warning"] and p50["n"] < 720
    assert any("25–" in w or "set aside" in w for w in last["warnings"])
