"""What no before/after verdict can beat on a noise model (docs/verdict.md, "Missed, and why").

For the stationary noise models of bench/verdict_quality.py, with the noise KNOWN exactly (no
estimation, no min_samples, one look at the end of the window): the best linear unbiased estimate
of a step at the window's start (generalised least squares on the model's covariance, the
baseline and the window with the gap between), its standard deviation, and the probability that
a one-sided test at the criterion's α (0.5 %) — or at the whole profile's 1 % — calls a 2× p50
past the +10 % pass line. Also the baseline's true effective n, for its mean and its median
(min_samples applies to the median's).

    .venv/bin/python bench/verdict_bound.py [--models a,b] [--base-min 90]

``--base-min``: the baseline's length in minutes instead of the model's (the extension makes it
up to 90); ``--dt``: the sampling interval, coarser to keep the covariance matrix small.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from verdict_quality import GAP_MIN, MODELS, WINDOW_MIN, Model  # noqa: E402

_N = NormalDist()
STATIONARY = ("independent", "ar1_0.5", "ar1_0.8", "ar1_0.95", "ar1_0.95_base60", "minutes", "sampling_30s")


def covariance(m: Model, t: np.ndarray) -> np.ndarray:
    """The canary p50's covariance under the model: its own AR(1) plus the server's slow part."""
    lag = np.abs(t[:, None] - t[None, :])
    c = m.sigma ** 2 * m.rho ** (lag / 5.0) if m.rho > 0 else m.sigma ** 2 * (lag == 0)
    if m.slow_sigma:
        c = c + m.slow_sigma ** 2 * np.exp(-lag / m.slow_tau_s)
    return c


def effective_ns(c: np.ndarray) -> tuple[float, float]:
    """(mean's, median's) effective n of a series with covariance ``c`` (normal noise)."""
    n = c.shape[0]
    s2 = float(c[0, 0])
    r = np.clip(c / s2, -1.0, 1.0)
    var_mean = float(r.sum()) / n ** 2
    var_median = float(np.arcsin(r).sum()) / n ** 2
    return 1.0 / var_mean, (math.pi / 2) / var_median


def bound(m: Model) -> dict[str, float]:
    tb = np.arange(-(m.base_min + GAP_MIN) * 60, -GAP_MIN * 60, m.dt)
    tw = np.arange(0.0, WINDOW_MIN * 60 + 1e-9, m.dt)
    t = np.concatenate([tb, tw])
    c = covariance(m, t)
    x = np.column_stack([np.ones(t.size), (t >= 0).astype(float)])
    ci = np.linalg.inv(c)
    sd = math.sqrt(float(np.linalg.inv(x.T @ ci @ x)[1, 1]))
    margin = (math.log(2.0) - math.log(1.1)) / sd
    n_mean, n_median = effective_ns(covariance(m, tb))
    return {"sd": sd, "power_0.005": _N.cdf(margin - _N.inv_cdf(0.995)),
            "power_0.01": _N.cdf(margin - _N.inv_cdf(0.99)), "base_neff_mean": n_mean, "base_neff_median": n_median}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(STATIONARY))
    ap.add_argument("--base-min", type=float, default=None, help="the baseline's minutes (default: the model's)")
    ap.add_argument("--dt", type=float, default=None, help="seconds between samples (default: the model's)")
    args = ap.parse_args()
    print(f"{'model':<18} {'sd(step)':>8} {'2x FAIL α.5%':>12} {'α 1%':>6} {'baseline n_eff mean':>20} {'median':>7}")
    for m in MODELS:
        if m.name not in args.models.split(","):
            continue
        if args.base_min is not None:
            m = replace(m, base_min=args.base_min)
        if args.dt is not None:
            m = replace(m, dt=args.dt, rho=m.rho)  # ρ stays per 5 s: the covariance scales it
        b = bound(m)
        print(f"{m.name:<18} {b['sd']:>8.3f} {100 * b['power_0.005']:>11.1f}% {100 * b['power_0.01']:>5.1f}% "
              f"{b['base_neff_mean']:>20.1f} {b['base_neff_median']:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
