"""The arithmetic of the latency verdict's intervals (docs/verdict.md): quantiles, the variance of
a mean and of a median of correlated values, effective sample sizes and the group-sequential
boundary. Pure functions over numbers or numpy arrays; no state.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np

_N = NormalDist()
RHO_MAX = 0.99  # beyond this a series is a random walk for our purposes: n_eff collapses anyway
MEDIAN_EFFICIENCY = math.pi / 2  # Var(median) / Var(mean) of independent normal values


def z_quantile(p: float) -> float:
    return _N.inv_cdf(p)


def normal_cdf(x: float) -> float:
    return _N.cdf(x)


def t_quantile(p: float, df: Any) -> Any:
    """Student t quantile: a Cornish–Fisher expansion from 3 degrees of freedom (accurate to ~1 %
    there and better above); below 3, the exact quantiles of 1, 2 and 3 degrees, interpolated in
    log against 1/df (the t family is smooth in 1/df), df floored at 1. ``df`` may be an array
    (0 < p < 1)."""
    z = _N.inv_cdf(p)
    d = np.asarray(df, dtype=float)

    def cornish_fisher(v: Any) -> Any:
        g1 = (z ** 3 + z) / 4
        g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
        g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
        g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
        return z + g1 / v + g2 / v ** 2 + g3 / v ** 3 + g4 / v ** 4

    cf = cornish_fisher(np.maximum(d, 3.0))
    if bool(np.all(d >= 3.0)) or p <= 0.5:
        return cf
    t1 = math.tan(math.pi * (p - 0.5))  # Cauchy
    t2 = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    t3 = _t3_quantile(p)
    v = np.clip(d, 1.0, 3.0)
    lo = np.where(v < 2.0, t1, t2)
    hi = np.where(v < 2.0, t2, t3)
    a, b = np.where(v < 2.0, 1.0, 0.5), np.where(v < 2.0, 0.5, 1 / 3)  # 1/df at the two ends
    w = (a - 1 / v) / (a - b)
    small = np.exp(np.log(lo) * (1 - w) + np.log(hi) * w)
    out = np.where(d < 3.0, small, cf)
    return out if out.ndim else float(out)


@lru_cache(maxsize=64)
def _t3_quantile(p: float) -> float:
    """The exact quantile of Student t with 3 degrees of freedom (bisection on its closed-form CDF)."""
    def cdf(x: float) -> float:
        u = x / math.sqrt(3)
        return 0.5 + (math.atan(u) + u / (1 + u * u)) / math.pi
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def ar1_var_factor(n: Any, rho: Any) -> Any:
    """Var(mean of n consecutive AR(1) values) / σ², exactly (not the large-n approximation, which
    overstates the variance of a short span)."""
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    r = np.minimum(np.maximum(np.asarray(rho, dtype=float), 0.0), RHO_MAX)  # np.clip's numbers, less overhead
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ((1 + r) / (1 - r) - 2 * r * (1 - r ** n) / (n * (1 - r) ** 2)) / n
    return np.minimum(np.maximum(np.where(r <= 0, 1.0 / n, f), 1.0 / n), 1.0)


def effective_n(n: Any, rho: Any) -> Any:
    """The effective n of a MEAN: n(1−ρ)/(1+ρ) for long spans, exact for short ones; 0 for no value."""
    n = np.asarray(n, dtype=float)
    return np.where(n > 0, 1.0 / ar1_var_factor(n, rho), 0.0)


# --- the median of correlated values ------------------------------------------------------------------

_MED_RHOS = np.linspace(0.0, RHO_MAX, 100)
_MED_LAGS = 4000  # ρ_max^k is below 1e-17 beyond: the sums have converged


@lru_cache(maxsize=1)
def _median_table() -> tuple[np.ndarray, np.ndarray]:
    """ln n and, per (n, ρ), Var(median) / Var(mean) of n consecutive Gaussian AR(1) values.

    The sample median's Bahadur representation gives Var(median) ≈ σ²/n² Σᵢⱼ arcsin(ρ^|i−j|) (the
    covariance of two signs of a bivariate normal is (2/π) arcsin ρ), against σ²/n² Σᵢⱼ ρ^|i−j|
    for the mean: π/2 for independent values, falling to (π/2)·ln 2 ≈ 1.09 as ρ → 1 — under strong
    correlation the median wastes almost nothing."""
    k = np.arange(1, _MED_LAGS, dtype=float)
    p = _MED_RHOS[None, :] ** k[:, None]
    a = np.arcsin(p)
    cum_p, cum_kp = np.cumsum(p, axis=0), np.cumsum(k[:, None] * p, axis=0)
    cum_a, cum_ka = np.cumsum(a, axis=0), np.cumsum(k[:, None] * a, axis=0)
    ns = np.unique(np.round(np.logspace(0, math.log10(1 << 16), 120))).astype(float)
    out = np.empty((ns.size, _MED_RHOS.size))
    for i, n in enumerate(ns):
        if n < 2:
            out[i] = MEDIAN_EFFICIENCY
            continue
        j = int(min(n - 1, _MED_LAGS - 1)) - 1
        vmean = n + 2 * (n * cum_p[j] - cum_kp[j])
        vmed = n * MEDIAN_EFFICIENCY + 2 * (n * cum_a[j] - cum_ka[j])
        out[i] = vmed / vmean
    return np.log(ns), out


def median_ratio(n: Any, rho: Any) -> Any:
    """Var(median) / Var(mean) of n consecutive AR(1) values with lag-1 correlation ρ (bilinear in
    ln n and ρ on a precomputed table)."""
    ln, table = _median_table()
    n = np.asarray(n, dtype=float)
    r = np.minimum(np.maximum(np.asarray(rho, dtype=float), 0.0), RHO_MAX)
    if n.size and float(n.min()) == float(n.max()):  # one n for every window (the usual case): one row
        x = min(max(math.log(max(float(n.flat[0]), 1.0)), ln[0]), ln[-1])
        k = min(max(int(np.searchsorted(ln, x)) - 1, 0), ln.size - 2)
        f = (x - ln[k]) / (ln[k + 1] - ln[k])
        out = np.interp(r, _MED_RHOS, table[k] * (1 - f) + table[k + 1] * f)
        return out if n.ndim or r.ndim else float(out)
    x = np.clip(np.log(np.maximum(n, 1.0)), ln[0], ln[-1])
    i = np.clip(np.searchsorted(ln, x) - 1, 0, ln.size - 2)
    fx = (x - ln[i]) / (ln[i + 1] - ln[i])
    step = _MED_RHOS[1] - _MED_RHOS[0]
    j = np.clip((r / step).astype(int), 0, _MED_RHOS.size - 2)
    fy = (r - _MED_RHOS[j]) / step
    return (table[i, j] * (1 - fx) * (1 - fy) + table[i + 1, j] * fx * (1 - fy)
            + table[i, j + 1] * (1 - fx) * fy + table[i + 1, j + 1] * fx * fy)


def median_var_factor(n: Any, rho: Any) -> Any:
    """Var(median of n consecutive AR(1) values) / σ² (normal noise; conservative for heavier
    tails, whose median is relatively better)."""
    return median_ratio(n, rho) * ar1_var_factor(n, rho)


def median_effective_n(n: Any, rho: Any) -> Any:
    """The effective n of a MEDIAN: how many independent values' median is as precise. It is what
    ``min_samples`` is compared with, because the verdict's estimates are medians: 720 values at
    ρ 0.95 are worth 19 independent ones for their mean and 27 for their median."""
    n = np.asarray(n, dtype=float)
    return np.where(n > 0, MEDIAN_EFFICIENCY / median_var_factor(n, rho), 0.0)


# --- the group-sequential boundary --------------------------------------------------------------------


@lru_cache(maxsize=64)
def obf_boundaries(alpha: float, fractions: tuple[float, ...]) -> tuple[float, ...]:
    """One-sided group-sequential z boundaries with Lan–DeMets O'Brien–Fleming spending,
    α(t) = 2 − 2Φ(z₁₋α/₂ / √t), computed by numerical integration over the looks (the boundary at
    each look spends exactly the increment of α(t) not spent before)."""
    za = _N.inv_cdf(1 - alpha / 2)
    spend = [2 * (1 - _N.cdf(za / math.sqrt(t))) for t in fractions]
    h = 0.02
    grid = np.arange(-12.0, 12.0 + h, h)
    dens: np.ndarray | None = None
    prev_t = 0.0
    spent = 0.0
    out = []
    for t, total in zip(fractions, spend, strict=True):
        s = math.sqrt(t - prev_t)
        if dens is None:
            d = np.exp(-0.5 * (grid / s) ** 2) / (s * math.sqrt(2 * math.pi))
        else:
            diff = grid[:, None] - grid[None, :]
            d = (np.exp(-0.5 * (diff / s) ** 2) / (s * math.sqrt(2 * math.pi))) @ dens * h
        target = max(total - spent, 1e-12)
        tail = np.cumsum((d * h)[::-1])[::-1]  # P(S ≥ grid[i], no earlier crossing)
        i = int(np.searchsorted(-tail, -target))  # first index where tail ≤ target
        i = min(max(i, 1), len(grid) - 1)
        # interpolate between grid[i-1] (tail > target) and grid[i]
        t0, t1 = tail[i - 1], tail[i]
        c = grid[i - 1] + (grid[i] - grid[i - 1]) * ((t0 - target) / (t0 - t1) if t0 != t1 else 0.0)
        out.append(c / math.sqrt(t))
        dens = d * (grid < c)
        spent += float((d * (grid >= c)).sum() * h)
        prev_t = t
    return tuple(out)
