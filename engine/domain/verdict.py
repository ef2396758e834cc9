"""Latency evidence that holds under real production noise (docs/verdict.md).

Every latency metric is judged on the log of its per-interval value, so a ratio is a difference
("+10 %" means the same at 1 ms and at 100 ms). With a control (the same query shapes on tenants
the change did not touch, sampled at the same moments) the series judged is the per-interval
difference ``log canary − log control``: a server-wide shift, drift or burst cancels.

The noise is learnt from the baseline: its spread, its autocorrelation (AR(1) ρ, bias-corrected,
checked against a batch-means estimate of the long-run variance — whichever is larger wins) and its
trend (modelled and carried forward with its uncertainty when the baseline shows one). Every
interval is computed on the effective sample size that correlation leaves, with a t quantile on
the baseline's effective degrees of freedom.

``LatencyTracker`` follows one metric through the window, a tick at a time, for W windows at once
(numpy arrays with a leading window axis): the monitor and the replay run it with W = 1, the
benchmark (bench/verdict_quality.py) with thousands — the same code. It decides:

* harm limit (immediate): the lower bound of the last few minutes' shift past the critical line,
  held for the confirmation period → FAIL now; one that ends sooner is an incident, not a verdict;
* warning: the one-sided lower bound of the window's shift so far past the warning line;
* FAIL at the looks (15/30/45/60 minutes into the window): a group-sequential test with
  O'Brien–Fleming spending of the profile's α, that the shift is past the pass line;
* a level change that appears well after the change (a later quarter of the window above the
  first) is an incident: it withholds FAIL and warnings, and the verdict says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np

_N = NormalDist()
RHO_MAX = 0.99  # beyond this a series is a random walk for our purposes: n_eff collapses anyway
SIGMA_FLOOR = 0.005  # 0.5 % in log terms: the resolution below which latency noise is not real
MEDIAN_EFFICIENCY = math.pi / 2  # Var(median) / Var(mean), normal noise (conservative under AR)

# reason codes (one per window) → the sentence the screen and the replay show
REASONS = {
    0: "",
    1: "baseline has fewer usable intervals than needed",
    2: "baseline does not vary: its noise cannot be estimated",
    3: "too few effective intervals in the window",
    4: "a level change appeared well after the change began (an incident, not the change)",
    5: "shift at or past the pass line, but the evidence does not exclude the line",
}


def z_quantile(p: float) -> float:
    return _N.inv_cdf(p)


def t_quantile(p: float, df: Any) -> Any:
    """Student t quantile (Cornish–Fisher expansion, df floored at 3: accurate to ~1 % there and
    better above). ``df`` may be an array."""
    z = _N.inv_cdf(p)
    v = np.maximum(np.asarray(df, dtype=float), 3.0)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / v + g2 / v ** 2 + g3 / v ** 3 + g4 / v ** 4


def ar1_var_factor(n: Any, rho: Any) -> Any:
    """Var(mean of n consecutive AR(1) values) / σ², exactly (not the large-n approximation, which
    overstates the variance of a short span)."""
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    r = np.minimum(np.maximum(np.asarray(rho, dtype=float), 0.0), RHO_MAX)  # np.clip's numbers, less overhead
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ((1 + r) / (1 - r) - 2 * r * (1 - r ** n) / (n * (1 - r) ** 2)) / n
    return np.minimum(np.maximum(np.where(r <= 0, 1.0 / n, f), 1.0 / n), 1.0)


def effective_n(n: Any, rho: Any) -> Any:
    """n(1−ρ)/(1+ρ) for long spans, exact for short ones; 0 for no value."""
    n = np.asarray(n, dtype=float)
    return np.where(n > 0, 1.0 / ar1_var_factor(n, rho), 0.0)


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


# --- the noise of a baseline ---------------------------------------------------------------------


@dataclass
class Noise:
    """What the baseline says about the noise, per window (arrays of shape (W,))."""

    n: np.ndarray  # usable baseline intervals
    level: np.ndarray  # median of the (detrended) baseline, log scale
    t_ref: np.ndarray  # the baseline's mean time (s): the trend's pivot
    slope: np.ndarray  # per second (0 where no trend is modelled)
    slope_var: np.ndarray
    sigma2: np.ndarray  # per-interval variance of the residuals
    rho: np.ndarray  # effective AR(1) ρ (the larger of AR(1) and batch means)
    n_eff: np.ndarray
    df: np.ndarray
    trend: np.ndarray  # bool
    constant: np.ndarray  # bool: the baseline does not vary
    base_var: np.ndarray  # Var(level) (the baseline's own uncertainty, median)
    resid: np.ndarray | None = None  # (W, n) the baseline's residuals (about its level or trend)


def _lag1(r: np.ndarray, upper: bool = True) -> np.ndarray:
    den = (r * r).sum(axis=1)
    num = (r[:, 1:] * r[:, :-1]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(den > 0, num / den, 0.0)
    n = r.shape[1]
    rho = np.clip(rho + (1 + 4 * rho) / max(n, 1), 0.0, RHO_MAX)  # Kendall's small-sample bias correction
    if not upper:
        return rho
    # ρ's one-sided 95 % upper bound, not its point estimate: a baseline that happens to look less
    # correlated than it is would otherwise be exactly the one whose intervals are too narrow.
    return np.clip(rho + 1.645 * np.sqrt((1 - rho * rho) / max(n, 1)), 0.0, RHO_MAX)


SCALES = (1, 6, 12, 36, 72)  # intervals aggregated: 5 s, 30 s, 1 min, 3 min, 6 min at a 5-s tick
MIN_BLOCKS = 16  # an AR(1) fitted on fewer aggregated values than this says too little to use


def _long_run_ratio(r: np.ndarray, sigma2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(long-run variance) / σ² — the largest of what several time scales say — and the degrees of
    freedom that estimate rests on.

    One lag at the sampling interval sees fast correlation only; a component that wanders over
    minutes (the whole server's load) looks like white noise plus a little ρ there, and an interval
    built on it is far too narrow. So the residuals are also averaged over blocks of 30 s, 1 min,
    3 min and 6 min (where at least MIN_BLOCKS blocks fit), an AR(1) is fitted at each scale (its ρ
    bias-corrected), and each scale's long-run variance ``block · Var(block means) · (1+ρ)/(1−ρ)``
    is compared; a batch-means estimate (10 batches) joins them. The largest wins, and its degrees
    of freedom are those of the scale that gave it (the effective number of blocks there): a
    baseline too short to show how slow its noise is gets wide intervals and a small df, not
    confident ones."""
    w, n = r.shape
    rho = _lag1(r)
    ratio = (1 + rho) / (1 - rho)
    df = n / ratio
    with np.errstate(divide="ignore", invalid="ignore"):
        for a in SCALES[1:]:
            m = n // a
            if m < MIN_BLOCKS:
                break
            bm = r[:, n - a * m:].reshape(w, m, a).mean(axis=2)
            bm = bm - bm.mean(axis=1, keepdims=True)
            rho_a = _lag1(bm, upper=False)
            lrv = a * bm.var(axis=1, ddof=1) * (1 + rho_a) / (1 - rho_a)
            cand = np.where(sigma2 > 0, lrv / sigma2, 1.0)
            wins = cand > ratio
            ratio = np.where(wins, cand, ratio)
            df = np.where(wins, m * (1 - rho_a) / (1 + rho_a), df)
        if n >= 20:
            b = 10
            m = n // b
            bm = r[:, n - b * m:].reshape(w, b, m).mean(axis=2)
            lrv = m * bm.var(axis=1, ddof=1)
            cand = np.where(sigma2 > 0, lrv / sigma2, 1.0)
            wins = cand > ratio
            ratio = np.where(wins, cand, ratio)
            df = np.where(wins, float(b - 1), df)
    top = (1 + RHO_MAX) / (1 - RHO_MAX)
    return np.clip(ratio, 1.0, top), np.maximum(df, 1.0)


def fit_noise(y: np.ndarray, t: np.ndarray, trend_alpha: float = 0.01) -> Noise:
    """``y``: (W, n) log values of the baseline (no NaN), ``t``: (n,) seconds (window time, so
    negative). A trend is modelled where the baseline's slope is significant at ``trend_alpha``
    (two-sided, on the long-run variance), else the level alone."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    t = np.asarray(t, dtype=float)
    w, n = y.shape
    if n < 3:
        z = np.zeros(w)
        return Noise(np.full(w, n), np.median(y, axis=1) if n else z, z + (t.mean() if n else 0.0), z, z,
                     z, z, z + n, z, z.astype(bool), np.ones(w, bool), z + np.inf)
    tm = t.mean()
    tc = t - tm
    sxx = float((tc * tc).sum()) or 1.0
    ybar = y.mean(axis=1, keepdims=True)
    r0 = y - ybar
    slope = (r0 * tc).sum(axis=1) / sxx
    r1 = r0 - slope[:, None] * tc
    s2_0 = np.maximum((r0 * r0).sum(axis=1) / (n - 1), 0.0)
    s2_1 = np.maximum((r1 * r1).sum(axis=1) / max(n - 2, 1), 0.0)
    ratio1, lrv_df1 = _long_run_ratio(r1, s2_1)
    ratio0, lrv_df0 = _long_run_ratio(r0, s2_0)
    rho1 = (ratio1 - 1) / (ratio1 + 1)
    df1 = np.minimum(effective_n(n, rho1) - 2, lrv_df1)
    slope_var1 = s2_1 * ratio1 / sxx
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(slope_var1 > 0, np.abs(slope) / np.sqrt(slope_var1), 0.0)
    trend = zs > t_quantile(1 - trend_alpha / 2, df1)
    ratio = np.where(trend, ratio1, ratio0)
    sigma2 = np.where(trend, s2_1, s2_0)
    constant = sigma2 <= 1e-18  # identical values (up to float rounding)
    sigma2 = np.maximum(sigma2, SIGMA_FLOOR ** 2)
    rho = (ratio - 1) / (ratio + 1)
    n_eff = effective_n(n, rho)
    resid = np.where(trend[:, None], y - slope[:, None] * tc, y)
    level = np.median(resid, axis=1)
    base_var = MEDIAN_EFFICIENCY * sigma2 * ar1_var_factor(n, rho)
    return Noise(np.full(w, n), level, np.full(w, tm), np.where(trend, slope, 0.0),
                 np.where(trend, slope_var1, 0.0), sigma2, rho, n_eff,
                 np.maximum(np.minimum(n_eff - 1 - trend, np.where(trend, lrv_df1, lrv_df0)), 1.0), trend,
                 constant, base_var,
                 np.where(trend[:, None], r1, r0))


@dataclass(frozen=True)
class HistoryNoise:
    """What the same hours of previous days say about how slowly the latency wanders."""

    ratio: float  # long-run variance / per-interval variance (1: no slow component seen)
    days: int  # days with enough points to say anything
    n: int  # their points


MIN_DAY_POINTS = 60


def history_noise(points: list[tuple[float, Any]]) -> HistoryNoise:
    """``points``: ``[(t_s, value)]`` of previous days (t relative to today's window, so about −86,400 s
    per day back). Each day is taken on its own, about its own level (days differ in level; only
    their wandering is learnt), on the log scale; a day with fewer than MIN_DAY_POINTS usable
    points is left out. The answer is the long-run ratio of the days' residuals together."""
    by_day: dict[int, list[tuple[float, float]]] = {}
    for t, v in points:
        u = usable(v)
        if u is None or not math.isfinite(t):
            continue
        by_day.setdefault(round(t / 86400.0), []).append((t, math.log(u)))
    resid: list[np.ndarray] = []
    for day in by_day.values():
        if len(day) < MIN_DAY_POINTS:
            continue
        day.sort()
        y = np.array([v for _, v in day])
        resid.append(y - y.mean())
    if not resid:
        return HistoryNoise(1.0, 0, 0)
    r = np.concatenate(resid)[None, :]
    dof = max(r.shape[1] - len(resid), 1)
    s2 = np.array([max(float((r * r).sum()) / dof, SIGMA_FLOOR ** 2)])
    ratio, _ = _long_run_ratio(r, s2)
    return HistoryNoise(float(ratio[0]), len(resid), int(r.shape[1]))


# --- following one metric through the window --------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The profile's numbers the tracker needs (engine.domain.thresholds.Profile → ``settings_of``)."""

    warning_pct: float
    critical_pct: float
    pass_pct: float
    min_samples: int = 10
    window_s: float = 3600.0
    looks_s: tuple[float, ...] = (900.0, 1800.0, 2700.0, 3600.0)
    fail_alpha: float = 0.005  # this criterion's share of the profile's α
    warning_confidence: float = 0.995
    harm_confidence: float = 0.999
    late_confidence: float = 0.999
    rolling_s: float = 300.0
    confirmation_s: float = 120.0
    judge_every_s: float = 30.0  # the window so far (warnings, a later level change) is re-judged this often
    refresh_every_s: float = 120.0  # the noise is learnt again from the baseline and the window this often


@dataclass
class Outcome:
    """One metric's result over the window (arrays of shape (W,))."""

    met: np.ndarray  # 1 met, 0 not met (FAIL), -1 inconclusive
    reason: np.ndarray  # REASONS code for the inconclusive / failed ones
    stopped_at: np.ndarray  # seconds into the window of a harm-limit or boundary stop (NaN: none)
    stop_kind: np.ndarray  # 0 none, 1 harm limit, 2 sequential boundary
    warned: np.ndarray  # bool: a warning was raised
    warned_at: np.ndarray
    estimate: np.ndarray  # log shift over the whole window
    low: np.ndarray  # two-sided interval at the profile's confidence, log
    high: np.ndarray
    n: np.ndarray
    n_eff: np.ndarray
    control_shift: np.ndarray  # log shift of the control itself (NaN without a control)
    incidents: np.ndarray  # count of incidents (short harm episodes, late level changes)
    late_at: np.ndarray  # first time a late level change was seen (NaN: never)
    look_z: list[np.ndarray] = field(default_factory=list)
    noise: Noise | None = None  # the noise the outcome was judged on (baseline and window)


def _med(a: np.ndarray) -> np.ndarray:
    """Each row's median, NaN (no usable value) left out; a row of NaN only has none (NaN).

    With NaN in the span: sort each row (NaN sorts last) and take the middle of its first n values,
    the same numbers as ``np.nanmedian`` (the mean of the two middle values for an even n) without
    its masked-array path, which cost milliseconds a call — most of an hour-long window's CPU."""
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    nan = np.isnan(a)
    if not nan.any():
        return np.median(a, axis=1)
    s = np.sort(a, axis=1)
    n = a.shape[1] - nan.sum(axis=1)
    rows = np.arange(a.shape[0])
    lo = np.maximum(n - 1, 0) // 2
    hi = n // 2
    with np.errstate(all="ignore"):
        med = (s[rows, lo] + s[rows, np.minimum(hi, a.shape[1] - 1)]) / 2
    return np.where(n > 0, med, np.nan)


def _count(a: np.ndarray) -> np.ndarray:
    return (~np.isnan(a)).sum(axis=1)


class LatencyTracker:
    """One latency metric through the window, for W windows at once (see the module's text).

    ``base``: (W, nb) log baseline values (canary, or canary − control), ``base_t``: (nb,) seconds
    relative to the window's start (negative). ``add(t, y)`` one tick: ``y`` (W,) log values (NaN:
    no usable value). ``ctl_shift`` is only for display."""

    def __init__(self, base: np.ndarray, base_t: np.ndarray, s: Settings, capacity: int = 1024,
                 control: bool = False, control_base: np.ndarray | None = None, history_ratio: float = 1.0):
        self.s = s
        # How slowly the latency wanders on previous days (``history_noise``): a floor under the
        # long-run variance learnt today, never a ceiling.
        self.history_ratio = float(history_ratio) if math.isfinite(history_ratio) else 1.0
        self.noise = self._floored(fit_noise(base, base_t))
        w = self.noise.n.shape[0]
        self.w = w
        self.control = control
        self.lines = (math.log1p(s.warning_pct / 100), math.log1p(s.critical_pct / 100), math.log1p(s.pass_pct / 100))
        self.t = np.empty(capacity)
        self.y = np.empty((w, capacity))
        self.k = 0
        fr = tuple(min(1.0, x / s.window_s) for x in s.looks_s)
        self.bounds = obf_boundaries(s.fail_alpha, fr)
        self.look_i = 0
        self.first_end = s.looks_s[0]
        self.first_med: np.ndarray | None = None
        self.first_n: np.ndarray | None = None
        # harm limits
        self.crit_since = np.full(w, np.nan)
        self.stopped_at = np.full(w, np.nan)
        self.stop_kind = np.zeros(w, dtype=int)
        self.incidents = np.zeros(w, dtype=int)
        self.warned_at = np.full(w, np.nan)
        self.late_at = np.full(w, np.nan)
        self.look_z: list[np.ndarray] = []
        # the latest tick's evidence, for the band (W,)
        self.level = np.zeros(w, dtype=int)  # 0 ok, 2 warning, 3 critical (confirmed)
        self.roll_est = np.full(w, np.nan)
        self.roll_low = np.full(w, np.nan)
        self.roll_neff = np.zeros(w)
        self.cum_est = np.full(w, np.nan)
        self.cum_low = np.full(w, np.nan)
        self.cum_neff = np.zeros(w)
        self.pending_critical = np.zeros(w, dtype=bool)
        self.ended_incident = np.zeros(w, dtype=bool)  # this tick: a short harm episode ended
        self.new_late = np.zeros(w, dtype=bool)  # this tick: a late level change first seen
        self.looked: list[tuple[float, np.ndarray]] = []  # (look time, crossed)
        self._use(self.noise)
        self.base0_ok, self.z_late0 = self.base_ok, self.z_late
        self.control_base = control_base
        self.any_trend = bool(self.noise.trend.any())
        self.judged_at = -math.inf  # the window so far is re-judged every ``judge_every_s``
        self.refreshed_at = -math.inf  # the noise is learnt again every ``refresh_every_s``

    # the reference: the baseline's level, carried forward along its trend where it has one
    def _detrend(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        if not self.any_trend:
            return y
        return y - self.noise.slope[:, None] * (t[None, :] - self.noise.t_ref[:, None])

    def _ref_var(self, tbar: float | np.ndarray) -> np.ndarray:
        return self.cur.base_var + (tbar - self.cur.t_ref) ** 2 * self.cur.slope_var

    def _span(self, since: float, until: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        t = self.t[:self.k]
        lo = int(np.searchsorted(t, since, side="right"))
        hi = self.k if until is None else int(np.searchsorted(t, until, side="right"))
        return t[lo:hi], self.y[:, lo:hi]

    def _shift(self, since: float, until: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Estimate, its variance, n and n_eff of the shift over (since, until]."""
        t, y = self._span(since, until)
        nz = self.cur
        if t.size == 0:
            nan = np.full(self.w, np.nan)
            return nan, nan, np.zeros(self.w), np.zeros(self.w)
        d = self._detrend(y, t)
        n = _count(d)
        est = _med(d) - nz.level
        var_w = MEDIAN_EFFICIENCY * nz.sigma2 * ar1_var_factor(n, nz.rho)
        var = var_w + self._ref_var(float(t.mean()))
        n_eff = np.where(n > 0, effective_n(n, nz.rho), 0.0)
        return est, var, n, n_eff

    def add(self, t: float, y: np.ndarray) -> None:
        s = self.s
        if self.k == self.t.shape[0]:
            cap = self.t.shape[0] * 2
            self.t = np.resize(self.t, cap)
            ny = np.empty((self.w, cap))
            ny[:, :self.k] = self.y[:, :self.k]
            self.y = ny
        self.t[self.k] = t
        self.y[:, self.k] = y
        self.k += 1
        active = np.isnan(self.stopped_at)
        warn_line, crit_line, pass_line = self.lines
        # harm limit: the last rolling_s, its lower bound past the critical line, held
        r_est, r_var, _, r_neff = self._shift(t - s.rolling_s)
        r_low = r_est - self.z_harm * np.sqrt(r_var)
        # The confirmation period runs from the first tick whose lower bound is past the line;
        # the stop also needs the effective n (min_samples) of the span that confirms it.
        crit = self.base_ok & (r_low >= crit_line) & active
        starting = crit & np.isnan(self.crit_since)
        self.crit_since = np.where(starting, t, self.crit_since)
        ended = ~crit & ~np.isnan(self.crit_since)
        self.ended_incident = ended & active
        self.incidents += self.ended_incident
        self.crit_since = np.where(crit, self.crit_since, np.nan)
        confirmed = crit & (t - self.crit_since >= s.confirmation_s) & (r_neff >= s.min_samples)
        self.stopped_at = np.where(confirmed & active, t, self.stopped_at)
        self.stop_kind = np.where(confirmed & active, 1, self.stop_kind)
        self.pending_critical = crit & ~confirmed
        # a later level change: the last rolling_s against the first look's span
        self.new_late = np.zeros(self.w, dtype=bool)
        due = t - self.judged_at >= s.judge_every_s or (
            self.look_i < len(s.looks_s) and t >= s.looks_s[self.look_i])
        self.roll_est, self.roll_low, self.roll_neff = r_est, r_low, r_neff
        if not due:
            self.level = np.where(confirmed | (self.stop_kind == 1) & ~active, 3, np.where(self.level == 2, 2, 0))
            return
        self.judged_at = t
        if t - self.refreshed_at >= s.refresh_every_s:
            # Not from the span the harm limit is judging now: a regression that starts mid-window
            # would otherwise widen its own interval before it could be confirmed.
            self._refresh(t - s.rolling_s - s.confirmation_s)
            self.refreshed_at = t
        # A level change within the window is judged on the baseline's noise alone: the pooled
        # noise has that very change in it.
        nz = self.noise
        if t > self.first_end + s.rolling_s:
            if self.first_med is None:
                ft, fy = self._span(-math.inf, self.first_end)
                fd = self._detrend(fy, ft)
                self.first_med, self.first_n = _med(fd), _count(fd)
            rt, ry = self._span(t - s.rolling_s)
            rn = _count(ry)
            diff = _med(self._detrend(ry, rt)) - self.first_med
            dvar = MEDIAN_EFFICIENCY * nz.sigma2 * (ar1_var_factor(rn, nz.rho) + ar1_var_factor(self.first_n, nz.rho))
            late = self.base0_ok & (diff - self.z_late0 * np.sqrt(dvar) > 0) & \
                ((self.first_med - nz.level) < pass_line) & active
            self.new_late = late & np.isnan(self.late_at)
            self.late_at = np.where(self.new_late, t, self.late_at)
        # warning: the window so far, its one-sided lower bound past the warning line
        c_est, c_var, _, c_neff = self._shift(-math.inf)
        c_low = c_est - self.z_warn * np.sqrt(c_var)
        warn = self.base_ok & (c_neff >= s.min_samples) & (c_low >= warn_line) & np.isnan(self.late_at)
        self.warned_at = np.where(warn & np.isnan(self.warned_at) & active, t, self.warned_at)
        self.level = np.where(confirmed | (self.stop_kind == 1) & ~active, 3, np.where(warn, 2, 0))
        self.cum_est, self.cum_low, self.cum_neff = c_est, c_low, c_neff
        # the looks: a group-sequential test that the shift is past the pass line
        while self.look_i < len(s.looks_s) and t >= s.looks_s[self.look_i]:
            self._look(self.look_i, s.looks_s[self.look_i])
            self.look_i += 1

    def _refresh(self, until: float | None = None) -> None:
        """Learn the noise again from the baseline AND the window so far.

        Under the change's model (a step at the change), the window's values about their own level
        are noise as much as the baseline's are: pooling them doubles or triples what the
        correlation is learnt from, which matters most for slow noise (a 30-minute baseline cannot
        tell a component that wanders over ten minutes from a level). A change that is not a step
        (a ramp, a burst) only widens the intervals. Done at every re-judgement (``judge_every_s``),
        at each look and at the end; the ticks in between use the latest."""
        nz = self.noise
        if nz.resid is None:
            return
        t, y = self._span(-math.inf, until)
        if t.size < 2:
            return
        d = self._detrend(y, t)
        ok = ~np.isnan(d)
        cnt = ok.sum(axis=1)
        mean = np.where(ok, d, 0.0).sum(axis=1) / np.maximum(cnt, 1)
        rw = np.where(ok, d - mean[:, None], 0.0)
        r = np.concatenate([nz.resid, rw], axis=1)
        dof = np.maximum((nz.n - 1 - nz.trend) + np.maximum(cnt - 1, 0), 1)
        s2 = np.maximum((r * r).sum(axis=1) / dof, SIGMA_FLOOR ** 2)
        ratio, lrv_df = _long_run_ratio(r, s2)
        rho = (ratio - 1) / (ratio + 1)
        df = np.maximum(np.minimum(effective_n(nz.n + cnt, rho) - 2 - nz.trend, lrv_df), 1.0)
        self._use(replace(nz, sigma2=s2, rho=rho, n_eff=effective_n(nz.n, rho), df=df,
                          base_var=MEDIAN_EFFICIENCY * s2 * ar1_var_factor(nz.n, rho)))

    def _floored(self, nz: Noise) -> Noise:
        """``nz`` with its long-run variance at least the previous days' (``history_ratio``)."""
        if self.history_ratio <= 1.0:
            return nz
        ratio = (1 + nz.rho) / (1 - nz.rho)
        floor = min(self.history_ratio, (1 + RHO_MAX) / (1 - RHO_MAX))
        if bool((ratio >= floor).all()):
            return nz
        rho = np.where(ratio >= floor, nz.rho, (floor - 1) / (floor + 1))
        n_eff = effective_n(nz.n, rho)
        return replace(nz, rho=rho, n_eff=n_eff, df=np.minimum(nz.df, np.maximum(n_eff - 1 - nz.trend, 1.0)),
                       base_var=MEDIAN_EFFICIENCY * nz.sigma2 * ar1_var_factor(nz.n, rho))

    def _use(self, cur: Noise) -> None:
        s = self.s
        cur = self._floored(cur)
        self.cur = cur
        self.z_warn = t_quantile(s.warning_confidence, cur.df)
        self.z_harm = t_quantile(s.harm_confidence, cur.df)
        self.z_late = t_quantile(s.late_confidence, cur.df)
        self.base_ok = (cur.n >= 3) & ~cur.constant & (cur.n_eff >= s.min_samples)

    def _look(self, i: int, at: float) -> None:
        s = self.s
        self._refresh(at)
        est, var, _, n_eff = self._shift(-math.inf, at)
        pass_line = self.lines[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (est - pass_line) / np.sqrt(var)
        # z boundary → the nominal one-sided level of this look → a t quantile on the df
        p = 1 - _N.cdf(self.bounds[i])
        crit = t_quantile(1 - p, self.cur.df)
        crossed = self.base_ok & (n_eff >= s.min_samples) & (z >= crit) & np.isnan(self.late_at) & \
            np.isnan(self.stopped_at)
        self.look_z.append(np.where(np.isfinite(z), z, np.nan))
        self.stopped_at = np.where(crossed, self.t[self.k - 1], self.stopped_at)
        self.stop_kind = np.where(crossed, 2, self.stop_kind)
        self.looked.append((at, crossed))

    def finish(self, confidence: float = 0.98) -> Outcome:
        """The criterion over the whole window (or up to its stop)."""
        s = self.s
        # Judged on the noise learnt from everything so far; the tracker's own state is left as it
        # was (a dashboard asks for the window so far at every poll, and the ticks after must go
        # on exactly as a replay's would).
        kept = (self.cur, self.z_warn, self.z_harm, self.z_late, self.base_ok)
        self._refresh()
        est, var, n, n_eff = self._shift(-math.inf)
        cur = self.cur
        self.cur, self.z_warn, self.z_harm, self.z_late, self.base_ok = kept
        sd = np.sqrt(var)
        zc = t_quantile(1 - (1 - confidence) / 2, cur.df)
        low, high = est - zc * sd, est + zc * sd
        pass_line = self.lines[2]
        met = np.full(self.w, 1, dtype=int)
        reason = np.zeros(self.w, dtype=int)
        failed = self.stop_kind > 0
        small_base = cur.n_eff < s.min_samples
        reason = np.where(~failed & (est >= pass_line), 5, reason)
        reason = np.where(~failed & ~np.isnan(self.late_at) & (est >= self.lines[0]), 4, reason)
        reason = np.where(~failed & (n_eff < s.min_samples), 3, reason)
        reason = np.where(~failed & small_base, 1, reason)
        reason = np.where(~failed & (self.noise.n < 3), 1, reason)
        reason = np.where(~failed & self.noise.constant, 2, reason)
        met = np.where(reason > 0, -1, met)
        met = np.where(failed, 0, met)
        ctl = np.full(self.w, np.nan)
        return Outcome(met, reason, self.stopped_at.copy(), self.stop_kind.copy(), ~np.isnan(self.warned_at),
                       self.warned_at.copy(), est, low, high, n, n_eff, ctl, self.incidents.copy(),
                       self.late_at.copy(), list(self.look_z), cur)


def settings_of(profile: Any, rule: Any, looks_s: tuple[float, ...]) -> Settings:
    """A tracker's settings from a threshold profile and one latency rule."""
    k = max(1, sum(1 for r in profile.rules if r.latency and r.pass_below is not None))
    return Settings(
        warning_pct=rule.warning, critical_pct=rule.critical, pass_pct=rule.pass_below or rule.warning,
        min_samples=profile.min_samples, window_s=profile.window_minutes * 60, looks_s=looks_s,
        fail_alpha=profile.fail_alpha / k, warning_confidence=profile.warning_confidence,
        harm_confidence=profile.harm_confidence, late_confidence=profile.harm_confidence,
        rolling_s=profile.rolling_minutes * 60, confirmation_s=profile.confirmation_minutes * 60)


def verdict_codes(outcomes: list[Outcome]) -> np.ndarray:
    """The latency criteria together, per window: 3 FAIL, 2 INCONCLUSIVE, 1 PASS WITH WARNING,
    0 PASS (the order ``engine.domain.decision.final_matrix`` applies to its criteria)."""
    w = outcomes[0].met.shape[0]
    code = np.zeros(w, dtype=int)
    code = np.where(np.any([o.warned for o in outcomes], axis=0), 1, code)
    code = np.where(np.any([o.met == -1 for o in outcomes], axis=0), 2, code)
    code = np.where(np.any([o.met == 0 for o in outcomes], axis=0), 3, code)
    return code


def pct(log_shift: float) -> str:
    """A log shift as a percent a person reads: three significant digits, never 300 of them."""
    if not math.isfinite(log_shift):
        return "—"
    if log_shift > math.log(100):
        return f"×{math.exp(min(log_shift, 700)):.3g}"
    v = math.expm1(log_shift) * 100
    return f"{v:+.3g}%" if abs(v) < 1000 else f"{v:+.0f}%"


# --- one metric, one window: the facade the monitor, the dashboard and replay use ------------------


def usable(value: Any) -> float | None:
    """A latency value that can be logged: a finite positive number (not a bool); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) and v > 0 else None


def _why_unusable(values: list[Any]) -> str:
    zero = sum(1 for v in values if not isinstance(v, bool) and isinstance(v, (int, float))
               and math.isfinite(float(v)) and float(v) <= 0)
    other = sum(1 for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
                or not math.isfinite(float(v)))
    parts = []
    if zero:
        parts.append(f"{zero} zero or negative (a ratio to them is undefined)")
    if other:
        parts.append(f"{other} not a finite number")
    return ", ".join(parts)


@dataclass
class TickNews:
    """What one tick changed for one latency metric (W = 1)."""

    level: str  # ok | warning | critical
    estimate_pct: float | None  # the last rolling minutes' shift, percent
    low_pct: float | None  # its lower bound (the harm limit's)
    n_eff: float
    warn_low_pct: float | None
    stop: str | None = None  # a sequential-boundary FAIL this tick
    incident: str | None = None  # a short harm episode ended, or a later level change appeared
    pending: bool = False  # past the critical line, not yet confirmed


class LatencyJudge:
    """One latency metric of one window (W = 1): plain values in, plain answers out.

    ``baseline``: ``[(t_s, value)]`` before the ALTER (seconds relative to the window's start,
    negative); ``control_baseline`` likewise for the control (paired by time), or None."""

    def __init__(self, settings: Settings, baseline: list[tuple[float, Any]],
                 control_baseline: list[tuple[float, Any]] | None = None, confidence: float = 0.98,
                 history: list[tuple[float, Any]] | None = None):
        self.s = settings
        self.confidence = confidence
        self.control = bool(control_baseline)
        raw = [v for _, v in baseline]
        self.base_raw_n = len(raw)
        self.base_bad = _why_unusable(raw)
        ctl = {t: usable(v) for t, v in (control_baseline or [])}
        pts: list[tuple[float, float]] = []
        self.ctl_base_logs: list[float] = []
        for t, v in baseline:
            u = usable(v)
            if u is None:
                continue
            if self.control:
                c = ctl.get(t)
                if c is None:
                    continue
                pts.append((t, math.log(u) - math.log(c)))
                self.ctl_base_logs.append(math.log(c))
            else:
                pts.append((t, math.log(u)))
        pts.sort()
        self.base_span_s = (pts[-1][0] - pts[0][0]) if len(pts) > 1 else 0.0
        self.base_n = len(pts)
        self.base_logs = [y for _, y in pts]
        # Previous days' wandering widens a canary-only judgement; with a control the server-wide
        # part cancels, so the raw latency's history says nothing about the difference judged.
        self.history = history_noise(history) if history and not self.control else None
        self.tracker: LatencyTracker | None = None
        if len(pts) >= 3:
            self.tracker = LatencyTracker(np.array([[y for _, y in pts]]), np.array([t for t, _ in pts]), settings,
                                          capacity=256, control=self.control,
                                          history_ratio=self.history.ratio if self.history else 1.0)
        self.window_n = 0
        self.window_bad: list[Any] = []
        self.ctl_window_logs: list[float] = []
        self._crossed = 0

    @property
    def degenerate(self) -> str | None:
        """Why this metric cannot be judged at all (None: it can)."""
        return self._degenerate(self.tracker.cur if self.tracker is not None else None)

    def _degenerate(self, nz: Noise | None) -> str | None:
        s = self.s
        if self.base_n == 0:
            what = f"none of the {self.base_raw_n} baseline values is usable ({self.base_bad})" if self.base_raw_n \
                else "no baseline interval"
            return f"{what}: INCONCLUSIVE"
        if self.base_n < 3:
            return (f"only {self.base_n} usable baseline interval{'s' if self.base_n > 1 else ''}"
                    + (f" ({self.base_bad})" if self.base_bad else "") + ": its noise cannot be estimated")
        assert nz is not None  # learnt from the baseline and, once it runs, the window too
        if bool(nz.constant[0]):
            return f"the baseline's {self.base_n} intervals are all the same value: its noise cannot be estimated"
        if float(nz.n_eff[0]) < s.min_samples:
            return (f"the baseline's effective n is {float(nz.n_eff[0]):.1f} (n={self.base_n}, long-run ρ "
                    f"{float(nz.rho[0]):.2f}), below {s.min_samples}: too short to judge")
        return None

    def add(self, t: float, value: Any, control_value: Any = None) -> TickNews | None:
        u = usable(value)
        if u is None and value is not None:
            self.window_bad.append(value)
        y = math.nan
        if u is not None:
            if self.control:
                c = usable(control_value)
                if c is not None:
                    y = math.log(u) - math.log(c)
                    self.ctl_window_logs.append(math.log(c))
            else:
                y = math.log(u)
        tr = self.tracker
        if tr is not None and tr.k and t < tr.t[tr.k - 1]:
            y = math.nan  # out of time order (never from a clock): kept out of the evidence
            t = float(tr.t[tr.k - 1])
        if not math.isnan(y):
            self.window_n += 1
        if tr is None:
            return None
        looks_before = len(tr.looked)
        tr.add(t, np.array([y]))
        news = TickNews(
            level={3: "critical", 2: "warning"}.get(int(tr.level[0]), "ok"),
            estimate_pct=_pct_or_none(tr.roll_est[0]), low_pct=_pct_or_none(tr.roll_low[0]),
            n_eff=float(tr.cum_neff[0]) if tr.level[0] != 3 else float(tr.roll_neff[0]),
            warn_low_pct=_pct_or_none(tr.cum_low[0]), pending=bool(tr.pending_critical[0]))
        if len(tr.looked) > looks_before and bool(tr.looked[-1][1][0]):
            at = tr.looked[-1][0]
            news.stop = (f"shift past the pass line +{self.s.pass_pct:g}% at the T+{at / 60:.0f} min look "
                         f"(group-sequential boundary, α {self.s.fail_alpha:g}, O'Brien–Fleming)")
        if bool(tr.ended_incident[0]):
            news.incident = (f"past the critical line +{self.s.critical_pct:g}% for less than the "
                             f"{self.s.confirmation_s / 60:g}-min confirmation period, then back: an incident, not a verdict")
        if bool(tr.new_late[0]):
            news.incident = ("a level change appeared well after the change began (the last "
                             f"{self.s.rolling_s / 60:g} min above the first {self.s.looks_s[0] / 60:g} min): "
                             "an incident, not the change; no FAIL or warning is drawn from it")
        return news

    def finish(self) -> dict[str, Any]:
        """The criterion's facts: met (True/False/None), the reason, and the evidence."""
        s = self.s
        out: dict[str, Any] = {"met": None, "reason": "", "estimate": None, "low": None, "high": None,
                               "n": self.window_n, "n_eff": None, "control_pct": None, "method": "",
                               "stopped_at": None}
        if self.control and self.ctl_base_logs and self.ctl_window_logs:
            out["control_pct"] = (float(np.median(self.ctl_window_logs)) - float(np.median(self.ctl_base_logs)))
        tr = self.tracker
        if tr is None:
            out["reason"] = self.degenerate or "no baseline"
            out["method"] = "not judged"
            return out
        o = tr.finish(self.confidence)
        nz = o.noise if o.noise is not None else tr.cur
        deg = self._degenerate(nz)
        out.update(estimate=_finite(o.estimate[0]), low=_finite(o.low[0]), high=_finite(o.high[0]),
                   n_eff=round(float(o.n_eff[0]), 1), stopped_at=_finite(o.stopped_at[0]))
        trend = (f"baseline trend {math.expm1(float(nz.slope[0]) * 3600) * 100:+.1f}%/h carried forward"
                 if bool(nz.trend[0]) else "baseline level")
        out["method"] = (f"median of per-interval log({'canary/control' if self.control else 'latency'}) vs "
                         f"{trend}; noise (baseline and window) long-run ρ {float(nz.rho[0]):.2f}; baseline {self.base_span_s / 60:.0f} min, n={self.base_n} "
                         f"(effective {float(nz.n_eff[0]):.1f})")
        kind = int(o.stop_kind[0])
        if kind == 1:
            out["met"], out["reason"] = False, (f"harm limit: lower bound past +{s.critical_pct:g}% for "
                                                f"{s.confirmation_s / 60:g} min")
        elif kind == 2:
            out["met"], out["reason"] = False, (f"past +{s.pass_pct:g}% at a sequential look "
                                                f"(O'Brien–Fleming, α {s.fail_alpha:g})")
        elif deg:
            out["reason"] = deg
        elif int(o.reason[0]):
            out["reason"] = {
                3: f"effective n {float(o.n_eff[0]):.1f} in the window, below {s.min_samples}",
                4: REASONS[4],
                5: f"estimate at or past +{s.pass_pct:g}% but not distinguishable from it at α {s.fail_alpha:g}",
            }.get(int(o.reason[0]), REASONS[int(o.reason[0])])
        else:
            out["met"] = True
            out["reason"] = f"estimate below +{s.pass_pct:g}%"
        if self.window_bad:
            out["reason"] += f"; {len(self.window_bad)} window value(s) ignored ({_why_unusable(self.window_bad)})"
        return out


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _pct_or_none(x: Any) -> float | None:
    x = float(x)
    if not math.isfinite(x):
        return None
    return math.expm1(min(x, 700.0)) * 100
