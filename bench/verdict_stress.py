"""The latency verdict on noise that bench/verdict_quality.py does not model (docs/verdict.md,
"Beyond the benchmark's models").

verdict_quality.py holds the models the verdict's targets are set on. A production server has
others: a cron job every five minutes, two load regimes, a morning's traffic climbing faster than
10 % an hour, noise slower than the baseline is long, single slow statements, a p50 that moves in
whole milliseconds, a window whose noise the change tripled, missing intervals, and a regression
that ramps up after the change instead of stepping; and a control that is a tenant with a life of
its own (it feels half the server's drift; it runs its own batch; it feels only part of the server's
wandering); and percentiles built from the statements themselves, where a traffic or a mix that
moves shifts the weights of two statement kinds. Each is judged here exactly as there (the
same ``judge``: the engine's ``LatencyTracker``, the baseline extended as the executor extends it)
with no change, with a 1.5× and with a 2× step, and the table says how often the verdict is wrong:
a FAIL or a warning with no change, and a 2× step judged PASS — the verdict the war room would
act on wrongly. The same targets apply (false FAIL ≤ 1 %, false warning ≤ 5 %); a model that
misses says so. Ends with one JSON line.

    .venv/bin/python bench/verdict_stress.py [--windows 400] [--seed 1] [--models a,b] [--history-days 3]

``--history-days N``: each window's verdict also learns from N previous days of the same model over
the same hours (no change on them), as the engine does from Prometheus where the plan configures
it (docs/verdict.md, "Previous days"): their long-run ratio is a floor under the one learnt today.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from verdict_quality import EXTEND_MIN, GAP_MIN, WINDOW_MIN, Model, _ar, judge  # noqa: E402

from engine.domain.thresholds import Profile  # noqa: E402
from engine.domain.verdict_noise import about_line, long_run  # noqa: E402

DT = 5.0
BASE_MIN = 30.0

# Each model adds to the canary's log p50 and log p99 (W, n) arrays, given the times t; the noise
# under it is AR(1) (p50 20 %, p99 30 %, ρ 0.5 per 5 s) unless the model replaces it.
Shape = Callable[[np.random.Generator, np.ndarray, int], np.ndarray]


def _sine(period_s: float, amp: float) -> Shape:
    def f(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
        return amp * np.sin(2 * np.pi * t[None, :] / period_s + rng.uniform(0, 2 * np.pi, (w, 1)))
    return f


def _switching(rng: np.random.Generator, t: np.ndarray, w: int, dwell_s: float) -> np.ndarray:
    """A state, 0 or 1, that flips at random (mean dwell ``dwell_s``), per window and tick."""
    state = rng.integers(0, 2, w)
    out = np.empty((w, t.size))
    flips = rng.random((w, t.size)) < DT / dwell_s
    for i in range(t.size):
        state = np.where(flips[:, i], 1 - state, state)
        out[:, i] = state
    return out


def _regimes(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
    """Two load regimes 25 % apart, switching at random (mean dwell 3 minutes)."""
    return 0.25 * _switching(rng, t, w, 180.0)


def _spikes(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
    """One interval in 50 twenty times slower (a single statement's outlier that the percentile caught)."""
    return np.where(rng.random((w, t.size)) < 0.02, math.log(20), 0.0)


def _drift(per_hour: float) -> Shape:
    def f(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
        return np.broadcast_to(math.log1p(per_hour) * t[None, :] / 3600.0, (w, t.size))
    return f


def _long_memory(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
    """Wandering on every scale at once (30 s, 2, 10 and 40 minutes, 8 % each): the slowest is
    slower than the baseline is long."""
    return sum(_ar(rng, w, t.size, math.exp(-DT / tau), 0.08, 0) for tau in (30, 120, 600, 2400))


def _ramp(to: float) -> Shape:
    """No step at the change: the latency climbs from it, reaching ``to`` by the window's end (on
    top of the step the case adds: judged with no step this is a regression that ramps)."""
    def f(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
        return np.broadcast_to(np.where(t >= 0, math.log(to) * t / 3600.0, 0.0)[None, :], (w, t.size))
    return f


def _rose_before(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
    """The whole server +35 % from a random moment in the hour before the ALTER (at least 3 minutes
    before it) on: a deploy, a batch job that started. Closer to the ALTER it is the change's own
    signature as far as a before/after comparison can tell (a rise during the ALTER is FAILed)."""
    at = rng.uniform(-(GAP_MIN + 60) * 60, -(GAP_MIN + 3) * 60, (w, 1))
    return np.where(t[None, :] >= at, math.log(1.35), 0.0)


def _burst(minutes: float, x: float) -> Shape:
    """One burst on the whole server, ``x`` for ``minutes``, at a random moment 10–57 minutes into
    the window (a backup, a batch job), no control: an incident that goes away again."""
    def f(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
        start = rng.uniform(600.0, 3420.0 - minutes * 60, (w, 1))
        return np.where((t[None, :] >= start) & (t[None, :] < start + minutes * 60), math.log(x), 0.0)
    return f


def _two_levels(p: float, x: float, dwell_s: float) -> Shape:
    """A p50 that is ``x`` times slower in a fraction ``p`` of the intervals (two statement kinds, two
    plans), independently each interval (``dwell_s`` 0) or in spells of ~``dwell_s``."""
    def f(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
        if not dwell_s:
            return np.where(rng.random((w, t.size)) < p, math.log(x), 0.0)
        state = rng.random(w) < p
        out = np.empty((w, t.size))
        for i in range(t.size):
            flip = rng.random(w) < DT / dwell_s
            state = np.where(flip, rng.random(w) < p, state)
            out[:, i] = state
        return math.log(x) * out
    return f


def _volatility(rng: np.random.Generator, t: np.ndarray, w: int) -> np.ndarray:
    """Calm and turbulent spells (the noise ×1 or ×3, ~5 minutes each), on top of the AR(1)."""
    return 2 * _switching(rng, t, w, 300.0) * _ar(rng, w, t.size, 0.5, 0.2, 0)


def _drifts_apart(rng: np.random.Generator, t: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The server's morning drift, +25 %/h, which the control tenant (its working set in memory)
    feels only half of: (canary's, control's)."""
    d = np.broadcast_to(math.log1p(0.25) * t[None, :] / 3600.0, (w, t.size))
    return d, 0.5 * d


def _control_batch(rng: np.random.Generator, t: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The control tenant's own batch job (+40 %) for 20–50 minutes, ending within the baseline (at
    least 3 minutes before its end): (canary's, control's)."""
    end = rng.uniform(-(GAP_MIN + BASE_MIN) * 60, -(GAP_MIN + 3) * 60, (w, 1))
    start = end - rng.uniform(20 * 60, 50 * 60, (w, 1))
    on = (t[None, :] >= start) & (t[None, :] < end)
    return np.zeros((w, t.size)), np.where(on, math.log(1.4), 0.0)


def _control_partial(rng: np.random.Generator, t: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The server wanders 20 % over ~10 minutes; the control tenant (another working set) feels 60 %
    of it and wanders 8 % on its own: canary − control keeps a slow wander of ~11 % — a fifth of
    its variance, nearly all of its long-run variance."""
    wander = _ar(rng, w, t.size, math.exp(-DT / 600.0), 0.20, 0)
    return wander, 0.6 * wander + _ar(rng, w, t.size, math.exp(-DT / 600.0), 0.08, 0)


# Models with a control (other tenants' same statements, measured at the same moments, not altered):
# what each adds to the canary's and to the control's log latencies, on a shared 10-minute wander
# of the server (10 %) and each group's own AR(1) (p50 15 %, p99 25 %, ρ 0.5).
ControlShape = Callable[[np.random.Generator, np.ndarray, int], tuple[np.ndarray, np.ndarray]]
CONTROLLED: dict[str, ControlShape] = {"control_drifts_apart": _drifts_apart, "control_batch": _control_batch,
                                       "control_partial": _control_partial}


# --- percentiles of the statements themselves -------------------------------------------------------
# The models above add to a p50 and a p99 series. These build each interval's p50 and p99 from its
# statements: N per interval (Poisson), each from a mixture of log-normal statement kinds; the
# nearest-rank p50 and p99 of the N drawn jointly from the order statistics' Beta laws and mapped
# through the mixture's quantile function.


def _ncdf(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, vectorised (erfc by Numerical Recipes' Chebyshev fit, error < 1.2e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    k = 1.0 / (1.0 + 0.5 * z)
    poly = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
            -0.82215223, 0.17087277)
    acc = np.zeros_like(k)
    for c in reversed(poly[1:]):
        acc = k * (c + acc)
    erfc = k * np.exp(-z * z + poly[0] + acc)
    return np.where(x >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


def _percentiles(rng: np.random.Generator, n_q: np.ndarray, kinds: list[tuple[Any, float, float]],
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each interval's nearest-rank p50 and p99 (log) of ``n_q`` statements drawn from ``kinds``:
    ``[(share, log median, log sd)]`` (shares arrays or numbers, summing to 1)."""
    n_q = np.maximum(n_q, 2)
    k50, k99 = np.ceil(0.5 * n_q).astype(int), np.ceil(0.99 * n_q).astype(int)
    u50 = rng.beta(k50, n_q - k50 + 1)
    u99 = np.where(k99 > k50, u50 + (1 - u50) * rng.beta(np.maximum(k99 - k50, 1), n_q - k99 + 1), u50)

    def quantile(u: np.ndarray) -> np.ndarray:
        lo, hi = np.full(u.shape, -12.0), np.full(u.shape, 3.0)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            below = sum(p * _ncdf((mid - mu) / sd) for p, mu, sd in kinds) < u
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    return quantile(u50), quantile(u99)


def _traffic_modes(rng: np.random.Generator, t: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """~150 statements an interval, their rate wandering ±15 % over ~15 minutes; 1.2 % of them miss
    the buffer pool and are 8× slower. The interval's p99 is its 2nd–3rd slowest statement: in the
    miss mode when two misses fell in it, in the hit tail otherwise — two overlapping modes whose
    weights move with the traffic (busier, more intervals in the slow one)."""
    traffic = _ar(rng, w, t.size, math.exp(-DT / 900.0), 0.15, 0)
    server = _ar(rng, w, t.size, 0.9, 0.08, 0) + 0.3 * traffic
    p50, p99 = _percentiles(rng, rng.poisson(150.0 * np.exp(traffic)),
                            [(0.988, math.log(0.0035), 0.45), (0.012, math.log(0.028), 0.5)])
    return p50 + server, p99 + server


def _mix_drifts(rng: np.random.Generator, t: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Two statement kinds (2.5 ms and 8 ms) in one digest; the slow kind's share grows 9 points an
    hour (the evening's reads fade), crossing half at a random moment from 2.5 h before the window
    to 1.5 h into it: the p50 sits in one kind, then climbs to the other."""
    cross = rng.uniform(-150 * 60, 90 * 60, (w, 1))
    share = np.clip(0.5 + 0.09 * (t[None, :] - cross) / 3600.0, 0.02, 0.98)
    p50, p99 = _percentiles(rng, rng.poisson(125.0, (w, t.size)),
                            [(1 - share, math.log(0.0025), 0.35), (share, math.log(0.008), 0.4)])
    server = _ar(rng, w, t.size, 0.8, 0.05, 0)
    return p50 + server, p99 + server


BUILT: dict[str, Callable[[np.random.Generator, np.ndarray, int], tuple[np.ndarray, np.ndarray]]] = {
    "traffic_modes": _traffic_modes, "mix_drifts": _mix_drifts}

STRESS: dict[str, tuple[str, Shape | None]] = {
    "cron_5min": ("a ±30 % swing every 5 minutes (a cron job)", _sine(300, 0.3)),
    "cycle_20min": ("a ±20 % swing every 20 minutes", _sine(1200, 0.2)),
    "regimes": ("two load regimes 25 % apart, switching every ~3 min", _regimes),
    "spikes": ("1 interval in 50 twenty times slower", _spikes),
    "drift_up_20": ("+20 %/h drift through baseline and window, no control", _drift(0.20)),
    "drift_up_30": ("+30 %/h drift (a morning's traffic), no control", _drift(0.30)),
    "long_memory": ("wandering on 30 s … 40 min scales, the slowest longer than the baseline", _long_memory),
    "quantized": ("p50 and p99 in whole milliseconds (p50 ≈ 4 ms)", None),
    "noisier_window": ("the window's noise 2.5× the baseline's, no level change", None),
    "missing": ("30 % of intervals missing, and 10 minutes of the window", None),
    "ramp_to_1.5x": ("a regression that climbs to 1.5× over the hour (every case: its 'no change' is the ramp)",
                     _ramp(1.5)),
    "rose_before": ("the server +35 % from a moment in the hour before the ALTER (≥ 3 min before it)", _rose_before),
    "two_levels": ("p50 ×5 in half the intervals (two statement kinds at one rate)", _two_levels(0.5, 5.0, 0)),
    "two_levels_30": ("p50 ×5 in 30 % of the intervals", _two_levels(0.3, 5.0, 0)),
    "two_level_spells": ("p50 ×3 in spells of ~1 min, half the time", _two_levels(0.5, 3.0, 60.0)),
    "volatility": ("calm and turbulent spells (noise ×1 / ×3, ~5 min each)", _volatility),
    "cycle_2h": ("a ±20 % swing every 2 hours, no control", _sine(7200, 0.2)),
    "control_drifts_apart": ("control: the server drifts +25 %/h, the control tenant feels half of it", None),
    "control_batch": ("control: the control tenant's own +40 % batch, 20–50 min, ends within the baseline", None),
    "control_partial": ("control: it feels 60 % of the server's 10-min 20 % wander, and 8 % of its own", None),
    "traffic_modes": ("p99 of ~150 statements, 1.2 % 8× slower: two modes weighted by a wandering traffic", None),
    "mix_drifts": ("p50 of two statement kinds, the slow one's share +9 points an hour, crossing half", None),
    "burst_3min": ("one 3-min 3× burst mid-window, no control (a warning is the answer)", _burst(3, 3.0)),
    "burst_10min": ("one 10-min 1.5× burst mid-window, no control (a warning is the answer)", _burst(10, 1.5)),
}
REGRESSIONS = {"ramp_to_1.5x"}  # no case is a no-change window: a FAIL is right, only a PASS is wrong
# an incident that went away is set aside with a warning (docs/verdict.md, "An incident set aside"):
# there a warning is the right answer, and an INCONCLUSIVE the one counted against the verdict
INCIDENTS = {"burst_3min", "burst_10min"}


def simulate(name: str, w: int, change: float, rng: np.random.Generator, day: bool = False,
             ) -> dict[str, np.ndarray]:
    """The model's canary p50 and p99 (log) over the baseline (with its possible extension), the gap
    and the window; ``day``: the same hours of a previous day, with no change (no step, no ramp, no
    window noisier than the baseline)."""
    t = np.arange(-(BASE_MIN + EXTEND_MIN + GAP_MIN) * 60, WINDOW_MIN * 60 + 1e-9, DT)
    n = t.size
    if name in CONTROLLED:
        return _with_control(name, t, w, 1.0 if day else change, rng)
    if name in BUILT:
        p50, p99 = BUILT[name](rng, t, w)
    else:
        p50 = math.log(0.004) + _ar(rng, w, n, 0.5, 0.2, 0)
        p99 = math.log(0.016) + _ar(rng, w, n, 0.5, 0.3, 0)
    if day:
        change = 1.0
    if name == "noisier_window" and not day:
        p50 = np.where(t >= 0, math.log(0.004) + 2.5 * (p50 - math.log(0.004)), p50)
        p99 = np.where(t >= 0, math.log(0.016) + 2.5 * (p99 - math.log(0.016)), p99)
    shape = STRESS[name][1] if not (day and name in REGRESSIONS) else None
    if shape is not None:
        extra = shape(rng, t, w)
        p50, p99 = p50 + extra, p99 + extra
    step = np.where(t >= 0, math.log(change), 0.0)[None, :]
    p50, p99 = p50 + step, p99 + step
    if name == "quantized":
        p50, p99 = (np.log(np.maximum(np.round(np.exp(p) * 1000), 1) / 1000) for p in (p50, p99))
    if name == "missing":
        # the window's holes per window (NaN: no usable value that tick); the baseline's are simply
        # not there, as the engine keeps only a baseline's usable values (the same holes in every
        # window's baseline: one time axis)
        gone = ((rng.random((w, n)) < 0.3) | ((t >= 1200) & (t < 1800))[None, :]) & (t >= 0)[None, :]
        p50, p99 = np.where(gone, np.nan, p50), np.where(gone, np.nan, p99)
        keep = (t >= 0) | (rng.random(n) >= 0.3)
        t, p50, p99 = t[keep], p50[:, keep], p99[:, keep]
    return {"t": t, "canary_p50": p50, "canary_p99": p99}


def _with_control(name: str, t: np.ndarray, w: int, change: float, rng: np.random.Generator,
                  ) -> dict[str, np.ndarray]:
    """A CONTROLLED model: the canary's and the control's p50 and p99 (log)."""
    n = t.size
    server = _ar(rng, w, n, math.exp(-DT / 600.0), 0.10, 0)
    canary, control = CONTROLLED[name](rng, t, w)
    step = np.where(t >= 0, math.log(change), 0.0)[None, :]
    out = {"t": t}
    for group, extra in (("canary", canary + step), ("control", control)):
        out[f"{group}_p50"] = math.log(0.004) + server + extra + _ar(rng, w, n, 0.5, 0.15, 0)
        out[f"{group}_p99"] = math.log(0.016) + server + extra + _ar(rng, w, n, 0.5, 0.25, 0)
    return out


def previous_days(name: str, w: int, days: int, rng: np.random.Generator) -> dict[str, np.ndarray] | None:
    """Each window's previous days' long-run ratio per latency, as the engine learns it from
    Prometheus (``history_noise``: ``long_run`` over the days, each a segment about its own level and
    course): ``days`` no-change days of the same model over the same hours. None for no days."""
    if days <= 0:
        return None
    segs: dict[str, list[np.ndarray]] = {"p50": [], "p99": []}
    for _ in range(days):
        d = simulate(name, w, 1.0, rng, day=True)
        for key in segs:
            y = d[f"canary_{key}"]
            y = np.where(np.isnan(y), np.nanmean(y, axis=1, keepdims=True), y)
            segs[key].append(about_line(y, d["t"]))
    return {key: long_run(s)[1] for key, s in segs.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", default="")
    ap.add_argument("--history-days", type=int, default=0,
                    help="previous days each window's verdict learns from (as from Prometheus; 0: none)")
    args = ap.parse_args()
    profile = Profile()
    chosen = [k for k in STRESS if not args.models or k in args.models.split(",")]
    rng = np.random.default_rng(args.seed)
    models = {False: Model("stress", base_min=BASE_MIN), True: Model("stress", base_min=BASE_MIN, control=True)}
    summary: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    print(f"{args.windows} windows per case; baseline {BASE_MIN:g} min (extended up to {EXTEND_MIN:g} more), "
          f"gap {GAP_MIN:g} min, window {WINDOW_MIN:g} min; the verdict of bench/verdict_quality.py; "
          f"{args.history_days} previous day(s)")
    header = (f"{'model':<20} {'falseFAIL':>9} {'falseWARN':>9} {'A/A inc.':>8} {'1.5x notPASS':>12} "
              f"{'2x FAIL':>7} {'2x PASS':>7}  note")
    print(header)
    print("-" * len(header))
    for name in chosen:
        t0 = time.perf_counter()
        model = models[name in CONTROLLED]
        days = args.history_days if name not in CONTROLLED else 0  # with a control previous days are not used
        c0, c15, c2 = (judge(model, simulate(name, args.windows, x, rng), profile, EXTEND_MIN,
                             previous_days(name, args.windows, days, rng))[0] for x in (1.0, 1.5, 2.0))
        row = {"false_fail_pct": round(100 * float(np.mean(c0 == 3)), 2),
               "false_warn_pct": round(100 * float(np.mean(c0 == 1)), 2),
               "inconclusive_pct": round(100 * float(np.mean(c0 == 2)), 2),
               "detect_pct": round(100 * float(np.mean(c15 != 0)), 2),
               "fail_pct_2x": round(100 * float(np.mean(c2 == 3)), 2),
               "pass_pct_2x": round(100 * float(np.mean(c2 == 0)), 2)}
        summary[name] = row
        if name in REGRESSIONS:
            miss = ["PASS"] if row["inconclusive_pct"] + row["false_fail_pct"] + row["false_warn_pct"] < 99.5 else []
        else:
            miss = [k for k, bad in (("falseFAIL", row["false_fail_pct"] > 1),
                                     ("falseWARN", row["false_warn_pct"] > 5 and name not in INCIDENTS),
                                     ("2x PASS", row["pass_pct_2x"] > 0.5)) if bad]
        print(f"{name:<20} {row['false_fail_pct']:>8.1f}% {row['false_warn_pct']:>8.1f}% "
              f"{row['inconclusive_pct']:>7.1f}% {row['detect_pct']:>11.1f}% {row['fail_pct_2x']:>6.1f}% "
              f"{row['pass_pct_2x']:>6.1f}%  {STRESS[name][0]}{'  MISSES ' + ','.join(miss) if miss else ''}"
              f"  [{time.perf_counter() - t0:.0f}s]", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    print(json.dumps({"windows": args.windows, "history_days": args.history_days, "models": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
