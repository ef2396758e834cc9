"""How noisy a latency series is (docs/verdict.md, "The noise model"): its spread, how slowly it
wanders (the long-run variance, on several time scales) and its trend, learnt from the baseline
and, once the window runs, from the baseline and the window together; and how slowly it wandered
on previous days.

Everything works on residuals split into **segments** (the baseline, the window, a previous day):
each is taken about its own level, and nothing is computed across two segments — a step at the
change, or a day's different level, never looks like noise. Arrays carry a leading window axis
(W windows at once: the monitor runs W = 1, the benchmark thousands).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from engine.domain.verdict_intervals import (
    RHO_MAX,
    ar1_var_factor,
    median_effective_n,
    median_var_factor,
    t_quantile,
)

SIGMA_FLOOR = 0.005  # 0.5 % in log terms: the resolution below which latency noise is not real
SCALES = (1, 6, 12, 36, 72)  # intervals aggregated: 5 s, 30 s, 1 min, 3 min, 6 min at a 5-s tick
MIN_BLOCKS = 16  # an AR(1) fitted on fewer degrees of freedom (aggregated values less one a segment) says too little
SLOWER_Z = 3.0  # a slower scale counts when it shows this many of its SDs more than the AR(1) predicts
UPPER_Z = 1.645  # … and is then taken at its ρ's one-sided 95 % upper bound
TOP_RATIO = (1 + RHO_MAX) / (1 - RHO_MAX)
_N = NormalDist()
# The median's variance is taken from the normal's (π/2 × the mean's, ``median_var_factor``); where
# the values' density at their median is much lower than a normal's of the same variance — a p50
# that jumps between two levels, a fast and a slow plan — the median flips between them and is far
# less precise. The density is read from the quantile spacing around the median, Q(½ + δ) − Q(½ − δ),
# δ = SPREAD_WIDTH / √(effective n), at most SPREAD_CAP: about as narrow as the median's own
# wandering, so that a gap between two levels right at the median shows (a fixed δ of 0.1 averages
# it away: a 50/50 mix of two levels ×5 apart read ×9 where the median's true variance is about
# ×100 the normal formula's). Its squared ratio to a normal's (the median spread) is 1 on normal
# noise and past 2.4 in fewer than 1 % of normal baselines (AR(1) ρ 0.95, 30 minutes); from
# SPREAD_MIN the variance is scaled up by it. Never down: heavy tails make a median relatively
# better, kept as is.
SPREAD_WIDTH = 1.5
SPREAD_CAP = 0.1
SPREAD_MIN_NEFF = 20.0  # fewer effective values (a series that wanders) say too little about their density
SPREAD_MIN = 3.0
# From SPREAD_GATE in the baseline (the density at the median below half a normal's; 17–25 on 50/50
# and 45/55 mixes of two levels) no variance makes the median a measure: it sits in one level or
# the other as the mix tips, and the criterion is not judged (INCONCLUSIVE, with why).
SPREAD_GATE = 5.0
# A gap anywhere in the range the median may take as the mix between two levels tips (its rank
# ±1.41/√(effective n), at most ±0.3: two SDs of the difference of two samples' fractions below a
# level) makes the median jump across it, however dense the values are right at it: a p50 that
# spends minute-long spells at one level or the other has the median in one level in the baseline
# and the other in the window. Read as the largest squared ratio of the local spacing, Q(q + 0.02) −
# Q(q − 0.02), to a normal's over that range (``median_gap``): at most 14 in 1,000 normal baselines
# (AR(1) ρ 0.95, 30 minutes; 99th percentile 7) and 3–7 on the benchmark's other noise — a slow
# wander's path moves through the values between its levels and fills them in — but 25–150 on two
# levels, in spells or not. A p50 on a few discrete values (whole milliseconds) has gaps by
# construction, its steps the resolution: fewer distinct values than a tenth of them are not read.
GAP_EPS = 0.02
GAP_WIDTH = 1.41
GAP_CAP = 0.3
GAP_GATE = 20.0


def _about_medians(segments: Sequence[np.ndarray], least: float) -> np.ndarray | None:
    """The segments' values, each about its own median, side by side and sorted per window (W, n);
    None with fewer than ``least`` of them."""
    parts = [b - np.median(b, axis=1, keepdims=True) for b in segments if b.shape[1] >= 2]
    if not parts:
        return None
    x = np.sort(np.concatenate(parts, axis=1), axis=1)
    return x if x.shape[1] >= least else None


def median_gap(segments: Sequence[np.ndarray], ratio: Any = 1.0) -> np.ndarray:
    """The largest squared ratio of the values' local spacing to a normal's over the range of ranks
    their median may take (see GAP_GATE), per window; 1 where there is nothing to read."""
    w = segments[0].shape[0]
    x = _about_medians(segments, 1 / GAP_EPS)
    if x is None:
        return np.ones(w)
    n = x.shape[1]
    distinct = 1 + (np.diff(x, axis=1) > 0).sum(axis=1)
    sigma = np.sqrt((x * x).mean(axis=1))
    width = np.minimum(GAP_CAP, GAP_WIDTH / np.sqrt(n / np.maximum(np.asarray(ratio, dtype=float), 1.0)))
    out = np.ones(w)
    rows = np.arange(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in np.linspace(-1.0, 1.0, 21):
            q = 0.5 + j * width * np.ones(w)
            lo, hi = np.clip(q - GAP_EPS, 0.001, 0.999), np.clip(q + GAP_EPS, 0.001, 0.999)
            spacing = x[rows, np.round(hi * (n - 1)).astype(int)] - x[rows, np.round(lo * (n - 1)).astype(int)]
            normal = sigma * np.array([_N.inv_cdf(float(a)) - _N.inv_cdf(float(b)) for a, b in zip(hi, lo, strict=True)])
            out = np.maximum(out, np.nan_to_num((spacing / normal) ** 2, nan=1.0, posinf=1.0))
    return np.where(distinct >= n / 10, out, 1.0)


def usable(value: Any) -> float | None:
    """A latency value that can be logged: a finite positive number (not a bool); else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) and v > 0 else None


def block_rho(rho: Any, b: float) -> Any:
    """The lag-1 correlation of adjacent means of ``b`` consecutive values of an AR(1) with ρ."""
    r = np.minimum(np.maximum(np.asarray(rho, dtype=float), 0.0), RHO_MAX)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = r * ((1 - r ** b) / (1 - r)) ** 2 / b ** 2 / ar1_var_factor(b, r)
    return np.clip(np.where(r > 0, c, 0.0), 0.0, RHO_MAX)


def lrv_cv2(ratio: Any, m: Any) -> Any:
    """Squared coefficient of variation of a long-run variance learnt by an AR(1) fit on m values
    whose long-run ratio is ``ratio``: 2/m for the innovations' variance and 4·ratio/m for
    1/(1−ρ)² (the two are independent; the marginal variance and ρ are not)."""
    return (2 + 4 * np.asarray(ratio, dtype=float)) / np.maximum(np.asarray(m, dtype=float), 1.0)


def _ar_fit(segments: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """An AR(1) over segments (each (W, m_s), about its own level): ρ (Kendall's small-sample bias
    −(1+4ρ)/m_s corrected per segment), the variance (its loss to each segment's own mean put
    back: a segment of m_s correlated values about its mean holds m_s(1 − f) of their variance),
    the number of values and of segments."""
    ss = sp = 0.0
    m = s = 0
    for b in segments:
        if b.shape[1] < 2:
            continue
        d = b - b.mean(axis=1, keepdims=True)
        ss = ss + (d * d).sum(axis=1)
        sp = sp + (d[:, 1:] * d[:, :-1]).sum(axis=1)
        m += b.shape[1]
        s += 1
    ss = np.asarray(ss, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ss > 0, sp / ss, 0.0)
    r = np.clip(r + s * (1 + 4 * r) / max(m, 1), 0.0, RHO_MAX)
    dof = sum(b.shape[1] * (1 - ar1_var_factor(b.shape[1], r)) for b in segments if b.shape[1] >= 2)
    return r, ss / np.maximum(dof, 1.0), m, s


def long_run(segments: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(σ², long-run ratio, degrees of freedom) of residual segments, each (W, n_s).

    σ² is the per-interval variance; the long-run ratio is (long-run variance) / σ² — how much
    more a long mean varies than correlation-free values would; the degrees of freedom are those
    of the long-run variance (Satterthwaite: 2 / its squared coefficient of variation).

    At the sampling interval an AR(1) is fitted (ρ bias-corrected, its point estimate). A
    component that wanders over minutes looks like white noise plus a little ρ there, so the
    residuals are also averaged over blocks of 30 s, 1, 3 and 6 minutes (within segments, where
    at least MIN_BLOCKS blocks fit) and an AR(1) fitted at each scale. A slower scale replaces the
    AR(1) only when it shows **significantly** more long-run variance than that AR(1) predicts for
    blocks of its size (SLOWER_Z of the scale's own sampling SDs, on the log scale): an AR(1)'s
    coarse scales are only noisier copies of its fine one and must not widen every interval by
    chance. When a slower scale does count, the noise is slow relative to the data, its long-run
    variance is taken at its ρ's one-sided 95 % upper bound, and its degrees of freedom (few
    blocks, few degrees) go with it."""
    w = segments[0].shape[0]
    r1, v1, n, s = _ar_fit(segments)
    sigma2 = np.maximum(v1, SIGMA_FLOOR ** 2)
    ratio1 = (1 + r1) / (1 - r1)
    cv2_1 = lrv_cv2(ratio1, n)
    ratio, cv2 = ratio1, cv2_1
    with np.errstate(divide="ignore", invalid="ignore"):
        for a in SCALES[1:]:
            blocks = [seg[:, seg.shape[1] - a * (seg.shape[1] // a):].reshape(w, seg.shape[1] // a, a).mean(axis=2)
                      for seg in segments if seg.shape[1] // a >= 2]
            if sum(b.shape[1] - 1 for b in blocks) < MIN_BLOCKS:  # each segment's own mean costs one
                break
            ra, va, m, _ = _ar_fit(blocks)
            cand = a * va * (1 + ra) / (1 - ra) / sigma2
            rp = block_rho(r1, a)
            spread = np.sqrt(lrv_cv2((1 + rp) / (1 - rp), m) + cv2_1)
            slower = np.log(np.maximum(cand, 1e-300) / ratio1) > SLOWER_Z * spread
            ru = np.clip(ra + UPPER_Z * np.sqrt((1 - ra * ra) / m), 0.0, RHO_MAX)
            value = a * va * (1 + ru) / (1 - ru) / sigma2
            wins = slower & (value > ratio)
            ratio = np.where(wins, value, ratio)
            cv2 = np.where(wins, lrv_cv2((1 + ra) / (1 - ra), m), cv2)
    df = np.clip(2.0 / cv2, 1.0, max(n - s, 1))
    ratio = np.clip(ratio, 1.0, TOP_RATIO)
    return sigma2 * median_spread(segments, ratio), ratio, df


def median_spread(segments: Sequence[np.ndarray], ratio: Any = 1.0, raw: bool = False) -> np.ndarray:
    """How much less precise the segments' medians are than normal noise of the same variance would
    make them (see SPREAD_MIN), per window: 1 where the values look normal enough, else the squared
    ratio of their spacing around the median to a normal's (``raw``: that ratio, whatever it is).
    Each segment about its own median; ``ratio``, their long-run ratio, makes the spacing's δ that
    of their effective n (a p50 that stays minutes in each mode tips its mix far more than
    independent values would)."""
    x = _about_medians(segments, 20)  # fewer say nothing about a density
    if x is None:
        return np.ones(segments[0].shape[0])
    n_eff = x.shape[1] / np.maximum(np.asarray(ratio, dtype=float), 1.0)
    delta = np.minimum(SPREAD_CAP, SPREAD_WIDTH / np.sqrt(n_eff)) * np.ones(x.shape[0])
    lo, hi = (np.take_along_axis(x, np.clip(np.round((0.5 + sign * delta) * (x.shape[1] - 1)), 0, x.shape[1] - 1)
                                 .astype(int)[:, None], axis=1)[:, 0] for sign in (-1, 1))
    var = (x * x).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = ((hi - lo) / (2 * np.array([_N.inv_cdf(0.5 + d) for d in delta]))) ** 2 / var
    k = np.where(n_eff >= SPREAD_MIN_NEFF, np.nan_to_num(k, nan=1.0, posinf=1.0), 1.0)
    return k if raw else np.where(k >= SPREAD_MIN, k, 1.0)


def rho_of(ratio: Any) -> Any:
    """The AR(1) ρ whose long-run ratio (1+ρ)/(1−ρ) is ``ratio``."""
    ratio = np.asarray(ratio, dtype=float)
    return (ratio - 1) / (ratio + 1)


# --- the noise of a baseline ---------------------------------------------------------------------


@dataclass
class Noise:
    """What the baseline (and, once learnt again, the window) says about the noise, per window
    (arrays of shape (W,))."""

    n: np.ndarray  # usable baseline intervals
    level: np.ndarray  # median of the (detrended) baseline, log scale
    t_ref: np.ndarray  # the baseline's mean time (s): the trend's pivot
    slope: np.ndarray  # per second (0 where no trend is modelled)
    slope_var: np.ndarray
    sigma2: np.ndarray  # per-interval variance of the residuals
    rho: np.ndarray  # the AR(1) ρ equivalent to the long-run variance
    n_eff: np.ndarray  # the baseline's effective n, for its median
    df: np.ndarray  # degrees of freedom of the long-run variance
    trend: np.ndarray  # bool
    constant: np.ndarray  # bool: the baseline does not vary
    base_var: np.ndarray  # Var(level) (the baseline's own uncertainty, median)
    resid: np.ndarray | None = None  # (W, n) the baseline's residuals (about its level or trend)


def fit_noise(y: np.ndarray, t: np.ndarray, trend_alpha: float = 0.01) -> Noise:
    """``y``: (W, n) log values of the baseline (no NaN), ``t``: (n,) seconds (window time, so
    negative). A trend is modelled where the baseline's slope is significant at ``trend_alpha``
    (two-sided, on the long-run variance and its degrees of freedom), else the level alone."""
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
    raw0 = (r0 * r0).sum(axis=1)  # exactly 0 when every value is the same
    s2_0, ratio0, df0 = long_run([r0])
    s2_1, ratio1, df1 = long_run([r1])
    slope_var1 = s2_1 * ratio1 / sxx
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(slope_var1 > 0, np.abs(slope) / np.sqrt(slope_var1), 0.0)
    trend = zs > t_quantile(1 - trend_alpha / 2, df1)
    # Carried forward, the line's uncertainty is taken on the larger of the two models' long-run
    # variances: a line fitted to 30 minutes of noise that wanders over ten absorbs the wandering,
    # its residuals look calm, and the slope would look certain exactly when it is noise. A real
    # trend then widens the intervals (INCONCLUSIVE rather than a FAIL blamed on a drift).
    slope_var1 = np.maximum(s2_1 * ratio1, s2_0 * ratio0) / sxx
    ratio = np.where(trend, ratio1, ratio0)
    sigma2 = np.where(trend, s2_1, s2_0)
    constant = raw0 <= 1e-18 * n  # identical values (up to float rounding)
    rho = rho_of(ratio)
    resid = np.where(trend[:, None], y - slope[:, None] * tc, y)
    level = np.median(resid, axis=1)
    return Noise(np.full(w, n), level, np.full(w, tm), np.where(trend, slope, 0.0),
                 np.where(trend, slope_var1, 0.0), sigma2, rho, median_effective_n(n, rho),
                 np.where(trend, df1, df0), trend, constant, sigma2 * median_var_factor(n, rho),
                 np.where(trend[:, None], r1, r0))


APART_Z = 3.29  # the window's long-run variance this many joint SDs from the baseline's: not the same noise
MIN_APART_N = 2 * MIN_BLOCKS  # usable window values before its noise is told from the baseline's


@dataclass
class WindowNoise:
    """The noise the window's own values are judged with, per window (arrays of shape (W,)): the
    pooled noise where the window's noise is the baseline's, its own where it is not (``apart``)."""

    sigma2: np.ndarray
    rho: np.ndarray
    df: np.ndarray  # degrees of freedom of the whole comparison (the fewer of the two where apart)
    apart: np.ndarray  # bool
    sd_ratio: np.ndarray  # the window's long-run SD / the baseline's (1 where not measured)
    drift: np.ndarray  # bool: apart, and a line through the window explains it (judged on the baseline's noise)


def same_as(nz: Noise) -> WindowNoise:
    """The window judged on the baseline's (or the pooled) noise."""
    w = nz.n.shape[0]
    return WindowNoise(nz.sigma2, nz.rho, nz.df, np.zeros(w, bool), np.ones(w), np.zeros(w, bool))


def pooled_pair(nz: Noise, window_resid: np.ndarray, usable_n: np.ndarray | None = None,
                window_line_resid: np.ndarray | None = None, window_raw_resid: np.ndarray | None = None,
                ) -> tuple[tuple[Noise, WindowNoise], tuple[Noise, WindowNoise]]:
    """The noise learnt again from the baseline's residuals and the window's (``window_resid``:
    (W, k), about the window's own level, 0 where a value was unusable) as two segments: under the
    change's model (a step at the change) the window's values about their level are noise as much
    as the baseline's are, and twice or three times the data pin the slow scales down better.

    That model is checked first: where the window's long-run variance is APART_Z joint SDs (on the
    log scale, each on its own degrees of freedom) from the baseline's, the change altered how the
    latency behaves, not only its level, and the two are not pooled: the baseline keeps its own
    noise. Where the window's values about its own straight line (``window_line_resid``) are no
    noisier than the baseline's (within APART_Z), the window climbs or sinks all hour on the baseline's
    noise (an index whose pages warm up, a load that grows): an effect that changes shape, not
    noise — taken as noise it stretched the interval of a latency halved by the change past ×10 —
    and the window is judged on the baseline's noise. Otherwise (a p99 that jumps between two
    modes, a window that wanders where the baseline was calm) a line does not explain it, and the
    window is judged on its own noise about its level (a Welch comparison), on the fewer of the
    two degrees of freedom — its own values about their own level (``window_raw_resid``), not
    about a baseline trend carried into it: a trend the window does not follow would otherwise
    pass for the window's own wandering.

    The second answer adds the **baseline's veto** (docs/verdict.md): the pooled noise must also be
    one the baseline's own values allow. A window that wanders where the baseline was calm makes the pair
    look slow, and on that noise the baseline's many calm intervals are worth two or three; where
    the baseline alone rejects it (its long-run variance APART_Z of its own SDs below the pooled
    one), the wandering is the window's, the baseline keeps its own noise and the window is judged
    on its own. The tracker judges a PASS and the harm limits with it; the looks and the warnings
    keep the pooled noise, the more cautious of the two. Only a window with MIN_APART_N
    usable values (``usable_n``, per window; default all) is told apart: a few values say little
    about their noise, and the unusable ones stand in as zeros."""
    if nz.resid is None or window_resid.shape[1] < 2:
        return (nz, same_as(nz)), (nz, same_as(nz))
    s2w, ratio_w, df_w = long_run([window_resid])
    s2p, ratio_p, df_p = long_run([nz.resid, window_resid])
    rho_p = rho_of(ratio_p)
    both = replace(nz, sigma2=s2p, rho=rho_p, n_eff=median_effective_n(nz.n, rho_p), df=df_p,
                   base_var=s2p * median_var_factor(nz.n, rho_p))
    lrv_b = nz.sigma2 * (1 + nz.rho) / (1 - nz.rho)

    def signed(s2: np.ndarray, ratio: np.ndarray, df: np.ndarray) -> np.ndarray:
        """How many joint SDs the long-run variance is above (+) or below (−) the baseline's."""
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log(s2 * ratio / lrv_b) / np.sqrt(2 / np.maximum(nz.df, 1.0) + 2 / np.maximum(df, 1.0))
        return np.nan_to_num(z, nan=0.0)

    enough = (window_resid.shape[1] if usable_n is None else np.asarray(usable_n)) >= MIN_APART_N
    sd_ratio0 = np.sqrt(s2w * ratio_w / lrv_b)
    apart0 = np.abs(signed(s2w, ratio_w, df_w)) > APART_Z
    with np.errstate(divide="ignore", invalid="ignore"):
        z_base = np.log(s2p * ratio_p / lrv_b) / np.sqrt(2 / np.maximum(nz.df, 1.0))
    vetoed = np.nan_to_num(z_base, nan=0.0) > APART_Z
    fits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # each learnt once, for both answers

    def fit(name: str, resid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if name not in fits:
            fits[name] = long_run([resid])
        return fits[name]

    def split(apart: np.ndarray) -> tuple[Noise, WindowNoise]:
        apart = apart & enough
        sd_ratio = sd_ratio0
        drift = np.zeros_like(apart)
        if window_line_resid is not None and apart.any():
            # About a line through the window, no noisier than the baseline (one-sided: a window the
            # change made calmer as well is judged on the baseline's noise, the more cautious of the two).
            drift = apart & (signed(*fit("line", window_line_resid)) <= APART_Z)
        if not apart.any():
            return both, WindowNoise(s2p, rho_p, df_p, apart, sd_ratio, drift)
        own = apart & ~drift
        s2o, ratio_o, df_o = s2w, ratio_w, df_w
        if window_raw_resid is not None and own.any():
            s2o, ratio_o, df_o = fit("raw", window_raw_resid)
            sd_ratio = np.where(own, np.sqrt(s2o * ratio_o / lrv_b), sd_ratio)
        base = replace(both, **{f: np.where(apart, getattr(nz, f), getattr(both, f))
                                for f in ("sigma2", "rho", "n_eff", "df", "base_var")})
        win = WindowNoise(np.where(own, s2o, np.where(drift, nz.sigma2, s2p)),
                          np.where(own, rho_of(ratio_o), np.where(drift, nz.rho, rho_p)),
                          np.where(own, np.minimum(df_o, nz.df), np.where(drift, nz.df, df_p)), apart, sd_ratio,
                          drift)
        return base, win

    first = split(apart0)
    return first, (first if not (vetoed & ~apart0).any() else split(apart0 | vetoed))


def with_floor(nz: Noise, floor_ratio: Any) -> Noise:
    """``nz`` with its long-run ratio at least ``floor_ratio`` (the previous days', a number or one
    per window), never less."""
    floor = np.minimum(np.nan_to_num(np.asarray(floor_ratio, dtype=float), nan=1.0, posinf=1.0), TOP_RATIO)
    if bool((floor <= 1.0).all()):
        return nz
    ratio = (1 + nz.rho) / (1 - nz.rho)
    if bool((ratio >= floor).all()):
        return nz
    rho = np.where(ratio >= floor, nz.rho, rho_of(floor))
    return replace(nz, rho=rho, n_eff=median_effective_n(nz.n, rho),
                   base_var=nz.sigma2 * median_var_factor(nz.n, rho))


# --- previous days ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryNoise:
    """What the same hours of previous days say about how slowly the latency wanders."""

    ratio: float  # long-run variance / per-interval variance (1: no slow component seen)
    days: int  # days with enough points to say anything
    n: int  # their points


MIN_DAY_POINTS = 60


def about_line(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``y`` (W, n) about each row's own least-squares line over ``t`` (n,): a previous day's values
    less that day's level and course (a day's traffic climbing through the hours is its drift,
    which the verdict weighs apart — docs/verdict.md, "Other explanations" — not noise)."""
    tc = np.asarray(t, dtype=float) - float(np.mean(t))
    sxx = float((tc * tc).sum()) or 1.0
    r = y - y.mean(axis=1, keepdims=True)
    return r - ((r * tc).sum(axis=1) / sxx)[:, None] * tc[None, :]


def history_noise(points: list[tuple[float, Any]]) -> HistoryNoise:
    """``points``: ``[(t_s, value)]`` of previous days (t relative to today's window, so about −86,400 s
    per day back). Each day is a segment of its own, about its own level and course (``about_line``:
    days differ in level, and a day's drift is not its noise; only their wandering is learnt), on
    the log scale; a day with fewer than MIN_DAY_POINTS usable points is left out. The answer is the
    long-run ratio of the days together."""
    by_day: dict[int, list[tuple[float, float]]] = {}
    for t, v in points:
        u = usable(v)
        if u is None or not math.isfinite(t):
            continue
        by_day.setdefault(round(t / 86400.0), []).append((t, math.log(u)))
    days: list[np.ndarray] = []
    for day in by_day.values():
        if len(day) < MIN_DAY_POINTS:
            continue
        day.sort()
        days.append(about_line(np.array([[v for _, v in day]]), np.array([t for t, _ in day])))
    if not days:
        return HistoryNoise(1.0, 0, 0)
    _, ratio, _ = long_run(days)
    return HistoryNoise(float(ratio[0]), len(days), int(sum(d.shape[1] for d in days)))
