"""How often the latency verdict is wrong under realistic noise (docs/verdict.md).

For each noise model: N windows with no change, N with a 1.5× regression of p50 (and p99) and N
with a 2× one, each a 30-minute baseline, a 15-minute gap (the ALTER and the cool-down) and a
60-minute window, judged by the engine's own ``LatencyTracker`` (the code the monitor, the
dashboard and ``replay`` run, here with a leading window axis) and ``verdict_codes``.

The baseline is extended as the executor extends it (docs/verdict.md, "Baseline"): while a
latency's baseline holds fewer than the profile's ``baseline_effective_n`` effective intervals
(``engine.domain.baseline_ready.metric_ready``, the same function), one more minute, up to
``--extend-max`` minutes (60, the plan's default; 0: the planned 30 minutes only). Each window's
pre-period is simulated that long and the last L minutes before the gap taken; the windows are
judged in groups of equal L (the tracker needs equal lengths).

Prints a table per model — false FAIL, false warning (PASS WITH WARNING on no change), the
no-change INCONCLUSIVE rate, detection (1.5× judged anything but PASS), FAIL on 2×, median times,
the baseline length used (median / 95th percentile) — and ends with one JSON line.

    .venv/bin/python bench/verdict_quality.py [--windows 1000] [--seed 1] [--models a,b] [--extend-max 60]
                                              [--target 20]

bench/verdict_bound.py says what no before/after verdict could reach on the stationary models
(the noise known exactly); docs/verdict.md has the table and the models that miss, and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.domain.baseline_ready import metric_ready  # noqa: E402
from engine.domain.decision import checkpoint_offsets_s  # noqa: E402
from engine.domain.thresholds import Profile  # noqa: E402
from engine.domain.verdict import LatencyTracker, Outcome, settings_of, verdict_codes  # noqa: E402

BASE_MIN, GAP_MIN, WINDOW_MIN = 30.0, 15.0, 60.0
EXTEND_MIN = 60.0  # the plan's baseline_extend_max_seconds (3600) in minutes


@dataclass(frozen=True)
class Model:
    name: str
    dt: float = 5.0  # sampling interval, s
    sigma: float = 0.3  # per-interval spread of log p50 (the group's own noise)
    rho: float = 0.0  # AR(1) ρ per 5 s of the group's own noise
    slow_sigma: float = 0.0  # a slow component (correlation over minutes), shared by the server
    slow_tau_s: float = 600.0
    drift_per_h: float = 0.0  # the whole server, relative per hour
    shift_at_min: float | None = None  # the whole server steps up by shift_pct from this minute
    shift_pct: float = 35.0
    burst_s: float = 0.0  # one burst on the whole server, at a random time in the window
    burst_x: float = 3.0
    control: bool = False  # a control (other tenants, same shapes) is measured at the same moments
    heavy: float = 0.0  # Student-t degrees of freedom of the noise (0: normal)
    p99_sigma: float | None = None  # spread of log p99 (default 1.5 × sigma)
    base_min: float = BASE_MIN  # the baseline's length
    note: str = ""
    extra: dict = field(default_factory=dict)


MODELS = [
    Model("independent", note="independent intervals, 30 % spread"),
    Model("ar1_0.5", rho=0.5, note="AR(1) ρ 0.5 per 5 s"),
    Model("ar1_0.8", rho=0.8, note="AR(1) ρ 0.8 per 5 s"),
    Model("ar1_0.95", rho=0.95, note="AR(1) ρ 0.95 per 5 s"),
    Model("ar1_0.95_base60", rho=0.95, base_min=60.0, note="the same with a 60-min baseline (from the prechecks)"),
    Model("minutes", sigma=0.15, rho=0.3, slow_sigma=0.2, slow_tau_s=600,
          note="white noise + a server-wide component correlated over ~10 min"),
    Model("minutes_control", sigma=0.15, rho=0.3, slow_sigma=0.2, slow_tau_s=600, control=True,
          note="the same, with a control measured at the same moments"),
    Model("drift_up", sigma=0.2, rho=0.5, drift_per_h=10, note="+10 %/h drift, no control"),
    Model("drift_down", sigma=0.2, rho=0.5, drift_per_h=-10, note="−10 %/h drift, no control"),
    Model("shift_nocontrol", sigma=0.15, rho=0.5, shift_at_min=30, note="server +35 % from T+30 min, no control"),
    Model("shift_control", sigma=0.15, rho=0.5, shift_at_min=30, control=True,
          note="server +35 % from T+30 min, control shows it"),
    Model("burst_short", sigma=0.15, rho=0.5, burst_s=90, note="one 90-s 3× burst (< confirmation), no control"),
    Model("burst_long_control", sigma=0.15, rho=0.5, burst_s=300, control=True,
          note="one 5-min 3× burst the control shows"),
    Model("heavy_tails", sigma=0.2, rho=0.5, heavy=3, note="Student-t (3 df) noise, ρ 0.5"),
    Model("low_traffic", sigma=0.4, rho=0.3, p99_sigma=0.8, heavy=4,
          note="few statements an interval: p50 40 %, p99 80 % spread, t(4)"),
    Model("sampling_30s", dt=30.0, rho=0.8, note="sampled every 30 s (AR ρ 0.8 per 5 s)"),
]


def _ar(rng: np.random.Generator, w: int, n: int, rho: float, sigma: float, heavy: float) -> np.ndarray:
    """AR(1) with marginal sd ``sigma``; innovations normal or Student-t (scaled to unit sd)."""
    if heavy:
        e = rng.standard_t(heavy, size=(w, n)) / math.sqrt(heavy / (heavy - 2))
    else:
        e = rng.standard_normal((w, n))
    if rho <= 0:
        return sigma * e
    out = np.empty((w, n))
    x = e[:, 0]
    k = math.sqrt(1 - rho * rho)
    for i in range(n):
        x = rho * x + k * e[:, i] if i else e[:, 0]
        out[:, i] = x
    return sigma * out


def simulate(m: Model, w: int, change: float, rng: np.random.Generator, extend_min: float = 0.0,
             ) -> dict[str, np.ndarray]:
    """Log values over the baseline (and as long again as it may be extended) and the window:
    canary p50/p99 and (if any) control."""
    t = np.arange(-(m.base_min + extend_min + GAP_MIN) * 60, WINDOW_MIN * 60 + 1e-9, m.dt)
    n = t.size
    rho = m.rho ** (m.dt / 5.0)
    server = np.zeros((w, n))
    if m.slow_sigma:
        server += _ar(rng, w, n, math.exp(-m.dt / m.slow_tau_s), m.slow_sigma, 0)
    if m.drift_per_h:
        server += np.log1p(m.drift_per_h / 100) * (t / 3600.0)[None, :]
    if m.shift_at_min is not None:
        server += np.where(t >= m.shift_at_min * 60, math.log1p(m.shift_pct / 100), 0.0)[None, :]
    if m.burst_s:
        start = rng.uniform(0, WINDOW_MIN * 60 - m.burst_s, size=(w, 1))
        server += np.where((t[None, :] >= start) & (t[None, :] < start + m.burst_s), math.log(m.burst_x), 0.0)
    effect = np.where(t >= 0, math.log(change), 0.0)[None, :]
    s99 = m.p99_sigma if m.p99_sigma is not None else 1.5 * m.sigma
    out = {"t": t}
    for group in ("canary", "control") if m.control else ("canary",):
        base = math.log(0.004) + server
        p50 = base + _ar(rng, w, n, rho, m.sigma, m.heavy)
        p99 = base + math.log(4) + _ar(rng, w, n, rho, s99, m.heavy)
        if group == "canary":
            p50, p99 = p50 + effect, p99 + effect
        out[f"{group}_p50"], out[f"{group}_p99"] = p50, p99
    return out


METRICS = (("latency_p50", "p50"), ("latency_p99", "p99"))


def judged(m: Model, data: dict[str, np.ndarray], key: str) -> np.ndarray:
    y = data[f"canary_{key}"]
    return y - data[f"control_{key}"] if m.control else y


def baseline_minutes(m: Model, data: dict[str, np.ndarray], profile: Profile, extend_min: float,
                     history: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Each window's baseline length (minutes): the planned one, extended a minute at a time while
    any latency's baseline is not ready (``metric_ready``, as the executor asks, with the previous
    days' long-run ratio where ``history`` has one per window and latency), up to the cap."""
    t = data["t"]
    w = data["canary_p50"].shape[0]
    length = np.full(w, m.base_min)
    open_ = np.ones(w, bool)
    held = math.floor(round(-float(t[0]) / 60 - GAP_MIN - m.base_min, 6))  # minutes before the baseline the data hold
    for extra in range(int(max(0, min(extend_min, held))) + 1):
        ll = m.base_min + extra
        base = (t < -GAP_MIN * 60) & (t >= -(GAP_MIN + ll) * 60)
        ready = np.ones(int(open_.sum()), bool)
        for _, key in METRICS:
            ok, _, _, _ = metric_ready(judged(m, data, key)[open_][:, base], t[base], profile.baseline_effective_n,
                                       history[key][open_] if history else 1.0)
            ready &= ok
        idx = np.flatnonzero(open_)
        length[idx] = ll
        open_[idx[ready]] = False
        if not open_.any():
            break
    return length


def judge(m: Model, data: dict[str, np.ndarray], profile: Profile, extend_min: float = EXTEND_MIN,
          history: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, list, np.ndarray]:
    """Feed the engine's trackers, tick by tick, exactly as the live window does: per group of
    windows whose baselines are equally long. ``history``: per latency ("p50", "p99") the previous
    days' long-run ratio of each window (``history_ratio``), or None. ``extend_min``: how far the
    baseline may be extended (the plan's 60 minutes by default; never further back than ``data``
    reach). Returns the codes, the outcomes (their arrays in the windows' order) and each window's
    baseline minutes."""
    t = data["t"]
    in_window = t >= 0
    looks = tuple(at for _, at in checkpoint_offsets_s(profile)[1:])
    length = baseline_minutes(m, data, profile, extend_min, history)
    w = length.size
    groups = [(ll, np.flatnonzero(length == ll)) for ll in np.unique(length)]
    outcomes = []
    for metric, key in METRICS:
        y = judged(m, data, key)
        parts = []
        for ll, rows in groups:
            is_base = (t < -GAP_MIN * 60) & (t >= -(GAP_MIN + ll) * 60)
            tr = LatencyTracker(y[rows][:, is_base], t[is_base], settings_of(profile, profile.rule(metric), looks),
                                capacity=int(in_window.sum()) + 1, control=m.control,
                                history_ratio=history[key][rows] if history else 1.0)
            for i in np.flatnonzero(in_window):
                tr.add(float(t[i]), y[rows, i])
            parts.append((rows, tr.finish(profile.confidence)))
        outcomes.append(_merged(parts, w))
    return verdict_codes(outcomes), outcomes, length


def _merged(parts: list, w: int) -> Outcome:
    """Outcomes of groups of windows put back in the windows' order (their per-window arrays)."""
    if len(parts) == 1:
        return parts[0][1]
    first = parts[0][1]
    fields = {}
    for f in dataclasses.fields(first):
        v = getattr(first, f.name)
        if isinstance(v, np.ndarray) and v.ndim == 1:
            out = np.empty(w, dtype=v.dtype)
            for rows, o in parts:
                out[rows] = getattr(o, f.name)
            fields[f.name] = out
        else:
            fields[f.name] = None if f.name == "noise" else v if f.name != "look_z" else []
    return Outcome(**fields)


def first_signal(outcomes: list) -> np.ndarray:
    times = np.vstack([np.fmin(o.warned_at, o.stopped_at) for o in outcomes])
    return np.nanmin(np.where(np.isnan(times), np.inf, times), axis=0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", default="")
    ap.add_argument("--extend-max", type=float, default=EXTEND_MIN,
                    help="minutes a baseline may be extended while too short for its noise (0: never)")
    ap.add_argument("--target", type=float, default=None,
                    help="effective intervals a baseline must hold (default: the profile's baseline_effective_n)")
    args = ap.parse_args()
    profile = Profile() if args.target is None else dataclasses.replace(Profile(), baseline_effective_n=args.target)
    ext = args.extend_max
    chosen = [m for m in MODELS if not args.models or m.name in args.models.split(",")]
    rng = np.random.default_rng(args.seed)
    summary: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    print(f"{args.windows} windows per case; baseline {BASE_MIN:g} min, gap {GAP_MIN:g} min, window "
          f"{WINDOW_MIN:g} min; profile α {profile.fail_alpha:g}, warning {profile.warning_confidence:g}, "
          f"harm {profile.harm_confidence:g}, confirmation {profile.confirmation_minutes:g} min; baseline extended "
          f"up to {ext:g} min while below {profile.baseline_effective_n:g} effective intervals")
    header = (f"{'model':<20} {'falseFAIL':>9} {'falseWARN':>9} {'A/A inc.':>8} {'detect1.5':>9} "
              f"{'FAIL2x':>7} {'t_detect1.5':>11} {'t_FAIL2x':>9} {'base med/p95':>12}  note")
    print(header)
    print("-" * len(header))
    for m in chosen:
        t0 = time.perf_counter()
        codes0, out0, len0 = judge(m, simulate(m, args.windows, 1.0, rng, ext), profile, ext)
        codes15, out15, len15 = judge(m, simulate(m, args.windows, 1.5, rng, ext), profile, ext)
        codes2, out2, len2 = judge(m, simulate(m, args.windows, 2.0, rng, ext), profile, ext)
        lengths = np.concatenate([len0, len15, len2])
        base_med, base_p95 = float(np.median(lengths)), float(np.percentile(lengths, 95))
        ff = 100 * np.mean(codes0 == 3)
        kinds = np.max(np.vstack([o.stop_kind for o in out0]), axis=0)
        by_harm, by_look = int(np.sum(kinds == 1)), int(np.sum(kinds == 2))
        fw = 100 * np.mean(codes0 == 1)
        inc = 100 * np.mean(codes0 == 2)
        det = 100 * np.mean(codes15 != 0)
        f2 = 100 * np.mean(codes2 == 3)
        sig = first_signal(out15)
        sig = sig[np.isfinite(sig) & (codes15 != 0)]
        t_det = float(np.median(sig)) / 60 if sig.size else float("nan")
        stop2 = np.min(np.vstack([np.where(np.isnan(o.stopped_at), np.inf, o.stopped_at) for o in out2]), axis=0)
        stop2 = stop2[(codes2 == 3) & np.isfinite(stop2)]
        t_f2 = float(np.median(stop2)) / 60 if stop2.size else float("nan")
        summary[m.name] = {"false_fail_pct": round(ff, 2), "false_warn_pct": round(fw, 2),
                           "inconclusive_pct": round(inc, 2), "detect_pct": round(det, 2),
                           "fail_pct_2x": round(f2, 2), "median_detect_min": round(t_det, 1),
                           "median_fail_2x_min": round(t_f2, 1),
                           "baseline_median_min": base_med, "baseline_p95_min": base_p95,
                           "baseline_capped_pct": round(100 * float(np.mean(lengths >= m.base_min + ext)), 2)
                           if ext else 0.0,
                           "false_fail_by_harm_limit": by_harm, "false_fail_by_looks": by_look}
        miss = []
        if ff > 1:
            miss.append("falseFAIL")
        if fw > 5:
            miss.append("falseWARN")
        if det < 95:
            miss.append("detect")
        if f2 < 95:
            miss.append("FAIL2x")
        print(f"{m.name:<20} {ff:>8.1f}% {fw:>8.1f}% {inc:>7.1f}% {det:>8.1f}% {f2:>6.1f}% "
              f"{t_det:>9.1f}min {t_f2:>7.1f}min {base_med:>5.0f}/{base_p95:<3.0f}min  {m.note}{'  MISSES ' + ','.join(miss) if miss else ''}"
              f"  [{time.perf_counter() - t0:.0f}s]", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    print(json.dumps({"windows": args.windows, "models": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
