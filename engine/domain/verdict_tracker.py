"""Following one latency metric through the window, a tick at a time (docs/verdict.md, "The
decisions"), for W windows at once: numpy arrays with a leading window axis. The monitor and the
replay run it with W = 1, the benchmark (bench/verdict_quality.py) with thousands — the same code.

It decides:

* harm limit (immediate): the lower bound of the last few minutes' shift past the critical line,
  held for the confirmation period and still past it at its end → FAIL now; one that ends sooner
  is an incident, not a verdict;
* warning: the one-sided lower bound of the window's shift so far past the warning line, once the
  window spans the rolling minutes, held for the confirmation period;
* FAIL at the looks (15/30/45/60 minutes into the window): a group-sequential test with
  O'Brien–Fleming spending of the profile's α, that the shift is past the pass line;
* a level change that appears well after the change (a later quarter of the window above the
  first) is an incident: it withholds FAIL and warnings, and the verdict says so;
* other explanations: a FAIL at a look or a warning also needs the shift past its line where the
  latency may be drifting through the baseline and the window along one line (the line carried
  across the gap, as far as the data pin its slope down); against the level since a rise within
  the baseline (a deploy, a batch job an hour before the ALTER); and, where the baseline's own
  trend is carried forward, on the baseline's level alone — which a PASS needs too. With a
  control all of them are read on the canary net of the control: what the server does cancels,
  and a drift or a rise left in the difference before the ALTER is the canary's own, not the
  change's (a control tenant's own batch ending within the baseline is such a rise).
  A rise another explanation accounts for is not blamed on the change (INCONCLUSIVE, and the
  verdict says so);
* a baseline whose values have two levels with the median between them, or a gap in the ranks
  the median may take (``median_spread``, ``median_gap``), is not judged by its median at all.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.domain.verdict_intervals import (
    ar1_var_factor,
    median_effective_n,
    median_var_factor,
    normal_cdf,
    obf_boundaries,
    t_quantile,
)
from engine.domain.verdict_noise import (
    GAP_GATE,
    SPREAD_GATE,
    Noise,
    WindowNoise,
    fit_noise,
    long_run,
    median_gap,
    median_spread,
    pooled_pair,
    rho_of,
    same_as,
    with_floor,
)
from engine.domain.verdict_outcome import Outcome, Settings, pick_rows

ALIKE_Z = 3.29  # the baseline's and the window's own slopes within this many joint SDs: one line
DRIFT_SD = math.log1p(0.15) / 3600  # log per second: how fast a drift plausibly is, before the data say
EXPLAIN_Z = 1.645  # an other explanation must leave the shift past its line by this many SDs (one-sided 95 %)
STEP_Z = 3.0  # a rise within the baseline this many SDs (its own noise) past its earlier level: a level change
STEP_MIN_S = 120.0  # … with at least this long before and after it
# An incident that ended (a harm-limit lower bound past the critical line that went back under it
# before the confirmation period ended, or a later level change that went away: a burst) is set aside where the window judged whole is INCONCLUSIVE:
# the span that can hold the burst (the rolling minutes before the crossing, to its end) is left
# out and the rest judged again; a PASS there stands, with a warning that names it. At most this
# fraction of the window's intervals: a window that is mostly incidents is judged as it is.
ASIDE_MAX_FRACTION = 1 / 4


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
                 control: bool = False, control_base: np.ndarray | None = None, history_ratio: Any = 1.0):
        self.s = s
        # How slowly the latency wanders on previous days (``history_noise``; a number, or one per
        # window): a floor under the long-run variance learnt today, never a ceiling.
        self.history_ratio = np.nan_to_num(np.asarray(history_ratio, dtype=float), nan=1.0, posinf=1.0)
        self.noise = self._floored(fit_noise(base, base_t))
        # A baseline whose values are sparse around their median (two modes, the median between
        # them: ``median_spread``) leaves the criterion unjudged, whatever the window does.
        w0 = self.noise.n.shape[0]
        ratio0 = (1 + self.noise.rho) / (1 - self.noise.rho)
        spread = median_spread([self.noise.resid], ratio0, raw=True) if self.noise.resid is not None else np.ones(w0)
        gap = median_gap([self.noise.resid], ratio0) if self.noise.resid is not None else np.ones(w0)
        self.two_level = (spread >= SPREAD_GATE) | (gap >= GAP_GATE)
        self.spread = np.maximum(spread, gap)  # the sparsest spacing read, for the reason
        self.base_t = np.asarray(base_t, dtype=float)  # the baseline as measured, for a drift's line (``_drift``)
        self.base_y = np.atleast_2d(np.asarray(base, dtype=float))
        # Without its trend, the baseline's course is a stretch of slow wandering: one that moved the
        # line's spread within the baseline moves as much again by the window (twice its variance),
        # which the shift against the level alone carries (``_level_shift``); 0 where no trend.
        self.level_ramp_var = 2 * self.noise.slope ** 2 * float(np.var(self.base_t)) if self.base_t.size else \
            np.zeros_like(self.noise.slope)
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
        # a harm-limit stop's evidence: the rolling span's estimate, variance, n, effective n and
        # the degrees of freedom of the noise it was judged on
        self.stop_span = tuple(np.full(w, np.nan) for _ in range(5))
        self.incidents = np.zeros(w, dtype=int)
        self.aside = np.zeros((w, capacity), dtype=bool)  # the intervals an incident may hold (``ASIDE_MAX_FRACTION``)
        self.warned_at = np.full(w, np.nan)
        self.warn_since = np.full(w, np.nan)
        self.late_at = np.full(w, np.nan)
        self.late_since = np.full(w, np.nan)  # the later level change seen now, since when (NaN: none now)
        self.late_peak = np.full(w, np.nan)  # … and the most it has been above the first look's span
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
        self.step_at, self.step_level, self.step_n, self.step_rise = self._base_step()
        self.judged_at = -math.inf  # the window so far is re-judged every ``judge_every_s``
        self.refreshed_at = -math.inf  # the noise is learnt again every ``refresh_every_s``

    # the reference: the baseline's level, carried forward along its trend where it has one
    def _detrend(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        if not self.any_trend:
            return y
        return y - self.noise.slope[:, None] * (t[None, :] - self.noise.t_ref[:, None])

    def _ref_var(self, tbar: float | np.ndarray, cur: Noise) -> np.ndarray:
        return cur.base_var + (tbar - cur.t_ref) ** 2 * cur.slope_var

    def _span(self, since: float, until: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        t = self.t[:self.k]
        lo = int(np.searchsorted(t, since, side="right"))
        hi = self.k if until is None else int(np.searchsorted(t, until, side="right"))
        return t[lo:hi], self.y[:, lo:hi]

    def _shift(self, since: float, until: float | None = None, noise: tuple[Noise, WindowNoise] | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Estimate, its variance, n and n_eff of the shift over (since, until], on ``noise``
        (the baseline's side, the window's; default the tracker's current pair)."""
        t, y = self._span(since, until)
        nz, win = noise if noise is not None else (self.cur, self.win)
        if t.size == 0:
            nan = np.full(self.w, np.nan)
            return nan, nan, np.zeros(self.w), np.zeros(self.w)
        d = self._detrend(y, t)
        n = _count(d)
        est = _med(d) - nz.level
        var_w = win.sigma2 * median_var_factor(n, win.rho)
        var = var_w + self._ref_var(float(t.mean()), nz)
        n_eff = median_effective_n(n, win.rho)
        return est, var, n, n_eff

    def add(self, t: float, y: np.ndarray) -> None:
        s = self.s
        if self.k == self.t.shape[0]:
            cap = self.t.shape[0] * 2
            self.t = np.resize(self.t, cap)
            self.y = _grown(self.y, self.k, cap, np.nan)
            self.aside = _grown(self.aside, self.k, cap, False)
        self.t[self.k] = t
        self.y[:, self.k] = y
        self.k += 1
        active = np.isnan(self.stopped_at)
        warn_line, crit_line, pass_line = self.lines
        # harm limit: the last rolling_s, its lower bound past the critical line, held
        h_cur, h_win, z_harm, harm_ok = self.harm
        r_est, r_var, r_n, r_neff = self._shift(t - s.rolling_s, noise=(h_cur, h_win))
        r_low = r_est - z_harm * np.sqrt(r_var)
        # The confirmation period runs from the first tick whose lower bound is past the line;
        # the stop also needs the effective n (min_samples) of the span that confirms it, and the
        # latency still past the line at the period's end (the median of its last half): a rolling
        # span that still holds a burst which has ended — early in the window the span is short,
        # and a 90-s burst fills most of it — confirms nothing.
        crit = harm_ok & (r_low >= crit_line) & active
        if self.any_trend and crit.any():
            # … and against the baseline's level alone: a trend learnt from half an hour and carried
            # an hour on is no measure of harm where the window does not follow it (``_still_past``)
            _, ry = self._span(t - s.rolling_s)
            l_est, l_var = self._level_shift(ry, _count(ry), (h_cur, h_win))
            crit &= ~self.noise.trend | (l_est - z_harm * np.sqrt(l_var) >= crit_line)
        starting = crit & np.isnan(self.crit_since)
        self.crit_since = np.where(starting, t, self.crit_since)
        ended = ~crit & ~np.isnan(self.crit_since)
        self.ended_incident = ended & active
        self.incidents += self.ended_incident
        if self.ended_incident.any():
            self._set_aside(np.flatnonzero(self.ended_incident), self.crit_since - s.rolling_s, t)
        self.crit_since = np.where(crit, self.crit_since, np.nan)
        confirmed = crit & (t - self.crit_since >= s.confirmation_s) & (r_neff >= s.min_samples)
        if confirmed.any():
            confirmed &= self._latest_past(t, crit_line)
        stops = confirmed & active
        self.stopped_at = np.where(stops, t, self.stopped_at)
        self.stop_kind = np.where(stops, 1, self.stop_kind)
        if stops.any():
            self.stop_span = tuple(np.where(stops, new, old) for new, old in
                                   zip((r_est, r_var, r_n, r_neff, h_win.df), self.stop_span, strict=True))
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
            dvar = nz.sigma2 * (median_var_factor(rn, nz.rho) + median_var_factor(self.first_n, nz.rho))
            late = self.base0_ok & (diff - self.z_late0 * np.sqrt(dvar) > 0) & \
                ((self.first_med - nz.level) < pass_line) & active
            self.new_late = late & np.isnan(self.late_at)
            self.late_at = np.where(self.new_late, t, self.late_at)
            # … and one that went away again was a burst too: an incident to set aside — gone where
            # the level fell back at least halfway from the episode's peak, not where the test merely
            # flickered off (a drift crossing its threshold stays as high as it was)
            self.late_since = np.where(late & np.isnan(self.late_since), t, self.late_since)
            self.late_peak = np.where(late, np.fmax(self.late_peak, diff), self.late_peak)
            over = ~late & ~np.isnan(self.late_since) & active & (diff <= 0.5 * self.late_peak)
            if over.any():
                self._set_aside(np.flatnonzero(over), self.late_since - s.rolling_s, t)
            self.late_since = np.where(late, self.late_since, np.nan)
            self.late_peak = np.where(late, self.late_peak, np.nan)
        # warning: the window so far, its one-sided lower bound past the warning line
        c_est, c_var, _, c_neff = self._shift(-math.inf)
        c_low = c_est - self.z_warn * np.sqrt(c_var)
        # … once the window so far spans the rolling minutes, and held for the confirmation period
        # as a harm limit is: a window of a minute or two is mostly a burst that falls in it.
        past = self.base_ok & (c_neff >= s.min_samples) & (c_low >= warn_line) & np.isnan(self.late_at) & \
            (t >= s.rolling_s)
        if past.any():  # … and past it still on every other explanation the data allow
            past &= self._still_past(None, warn_line, self.z_warn)
        self.warn_since = np.where(past, np.where(np.isnan(self.warn_since), t, self.warn_since), np.nan)
        warn = past & (t - self.warn_since >= s.confirmation_s)
        self.warned_at = np.where(warn & np.isnan(self.warned_at) & active, t, self.warned_at)
        self.level = np.where(confirmed | (self.stop_kind == 1) & ~active, 3, np.where(warn, 2, 0))
        self.cum_est, self.cum_low, self.cum_neff = c_est, c_low, c_neff
        # the looks: a group-sequential test that the shift is past the pass line
        while self.look_i < len(s.looks_s) and t >= s.looks_s[self.look_i]:
            self._look(self.look_i, s.looks_s[self.look_i])
            self.look_i += 1

    def _set_aside(self, rows: np.ndarray, since: np.ndarray, until: float) -> None:
        """Mark the intervals of ``rows`` in (``since``, ``until``] as an incident's: the span a
        burst that has ended can lie in (the rolling minutes before it was first seen, to its end)."""
        tt = self.t[:self.k]
        self.aside[rows, :self.k] |= (tt[None, :] > since[rows][:, None]) & (tt[None, :] <= until)

    def _latest_past(self, t: float, line: float) -> np.ndarray:
        """Whether the latest half of the confirmation period (its median) is past ``line`` — where
        the baseline's trend is carried forward, against the baseline's level too: a burst that has
        ended is not still past the line because a chance slope, carried 40 minutes on, puts the
        line that far below it (the harm limit's own check, ``_level_shift``, is on its span, which
        still holds the burst)."""
        lt, ly = self._span(t - self.s.confirmation_s / 2)
        past = _med(self._detrend(ly, lt)) - self.cur.level >= line
        if self.any_trend:
            past &= ~self.noise.trend | (_med(ly) - np.median(self.base_y, axis=1) >= line)
        return past

    def _refresh(self, until: float | None = None, baseline_veto: bool = False) -> None:
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
        n = np.maximum(cnt, 1)
        mean = np.where(ok, d, 0.0).sum(axis=1) / n
        resid = np.where(ok, d - mean[:, None], 0.0)
        # … and about the window's own straight line (over its usable values)
        tc = np.where(ok, t[None, :] - (np.where(ok, t[None, :], 0.0).sum(axis=1) / n)[:, None], 0.0)
        sxx = (tc * tc).sum(axis=1)
        slope = np.where(sxx > 0, (tc * resid).sum(axis=1) / np.where(sxx > 0, sxx, 1.0), 0.0)
        raw = None
        if self.any_trend:  # the window's own values about their own level, no baseline trend in them
            raw_mean = np.where(ok, y, 0.0).sum(axis=1) / n
            raw = np.where(ok, y - raw_mean[:, None], 0.0)
        plain, vetoed = pooled_pair(nz, resid, cnt, np.where(ok, resid - slope[:, None] * tc, 0.0), raw)
        # The looks and the warnings on the pooled noise; a PASS (``finish``) and the harm limits
        # with the baseline's veto on it (``pooled_pair``).
        if baseline_veto:
            self._use(*vetoed)
        else:
            self._use(*plain, harm=vetoed)

    def _floored(self, nz: Noise) -> Noise:
        """``nz`` with its long-run variance at least the previous days' (``history_ratio``)."""
        return with_floor(nz, self.history_ratio)

    def _use(self, cur: Noise, win: WindowNoise | None = None,
             harm: tuple[Noise, WindowNoise] | None = None) -> None:
        """Judge from now on with ``cur`` (the baseline's side: its level's variance, the gate on
        its effective n) and ``win`` (the window's values; None: the same noise as ``cur``); the
        harm limits with ``harm`` (default the same pair)."""
        s = self.s
        self.cur, self.win = self._prepared(cur, win)
        self.z_warn = t_quantile(s.warning_confidence, self.win.df)
        self.z_harm = t_quantile(s.harm_confidence, self.win.df)
        self.z_late = t_quantile(s.late_confidence, self.win.df)
        self.base_ok = self._base_ok(self.cur)
        if harm is None:
            self.harm = (self.cur, self.win, self.z_harm, self.base_ok)
        else:
            h_cur, h_win = self._prepared(*harm)
            self.harm = (h_cur, h_win, t_quantile(s.harm_confidence, h_win.df), self._base_ok(h_cur))

    def _prepared(self, cur: Noise, win: WindowNoise | None) -> tuple[Noise, WindowNoise]:
        cur = self._floored(cur)
        if win is None:
            win = same_as(cur)
        elif not win.apart.all():  # where pooled, the window's noise is cur's, floored with it
            win = WindowNoise(np.where(win.apart, win.sigma2, cur.sigma2), np.where(win.apart, win.rho, cur.rho),
                              np.where(win.apart, win.df, cur.df), win.apart, win.sd_ratio, win.drift)
        return cur, win

    def _base_ok(self, cur: Noise) -> np.ndarray:
        return (cur.n >= 3) & ~cur.constant & (cur.n_eff >= self.s.min_samples) & ~self.two_level

    def _base_step(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Whether the baseline's level rose within it and stayed up (a deploy, a batch that started,
        traffic that moved an hour before the ALTER): (when, the level since — the median of the
        values after it, their count, the rise), per window, NaN where it did not.

        Every minute of the baseline with at least STEP_MIN_S on each side is a candidate; the most
        likely split is the one whose mean after less mean before is largest on the per-interval
        spread. It is then weighed on the noise learnt from the two sides, each about its own level
        (long-run, each side's effective n): learnt across it, a rise is itself read as slow noise
        (a clean +35 % ten minutes before the ALTER gave long-run ρ 0.99) and would hide itself. It
        counts where it reaches STEP_Z. A fall is no other explanation of a rise after the change,
        and is not looked for."""
        nan = np.full(self.w, np.nan)
        t, y = self.base_t, self.base_y
        nb = t.size
        if nb < 6:
            return nan, nan, np.zeros(self.w), nan
        grid = np.arange(t[0] + STEP_MIN_S, t[-1] - STEP_MIN_S + 1e-9, 60.0)
        ks = np.unique(np.searchsorted(t, grid))
        ks = ks[(ks >= 2) & (ks <= nb - 2)]
        if ks.size == 0:
            return nan, nan, np.zeros(self.w), nan
        cs = np.cumsum(y, axis=1)
        rise_at = (cs[:, -1:] - cs[:, ks - 1]) / (nb - ks) - cs[:, ks - 1] / ks
        with np.errstate(divide="ignore", invalid="ignore"):
            z0 = np.nan_to_num(rise_at * np.sqrt(ks * (nb - ks) / nb)[None, :], nan=-np.inf)
        best = np.argmax(z0, axis=1)
        rows = np.arange(self.w)
        z = np.full(self.w, -np.inf)
        for kk in np.unique(ks[best]):
            r = rows[ks[best] == kk]
            head, tail = y[r, :kk], y[r, kk:]
            if np.isnan(head).any() or np.isnan(tail).any():
                continue
            s2, ratio, _ = long_run([head - head.mean(axis=1, keepdims=True), tail - tail.mean(axis=1, keepdims=True)])
            rho = rho_of(ratio)
            var = s2 * (ar1_var_factor(kk, rho) + ar1_var_factor(nb - kk, rho))
            with np.errstate(divide="ignore", invalid="ignore"):
                z[r] = np.nan_to_num((tail.mean(axis=1) - head.mean(axis=1)) / np.sqrt(var), nan=-np.inf)
        stepped = (z >= STEP_Z) & ~self.noise.constant
        if not stepped.any():
            return nan, nan, np.zeros(self.w), nan
        k = ks[best]
        idx = np.arange(nb)[None, :]
        level = _med(np.where(idx >= k[:, None], y, np.nan))
        rise = level - _med(np.where(idx < k[:, None], y, np.nan))
        return (np.where(stepped, t[k], np.nan), np.where(stepped, level, np.nan), np.where(stepped, nb - k, 0),
                np.where(stepped, rise, np.nan))

    def _step_shift(self, y: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The shift of the window's values ``y`` (as measured) against the baseline's level since its
        rise (``_base_step``), and its variance."""
        win, cur = self.win, self.cur
        est = _med(y) - self.step_level
        var = win.sigma2 * median_var_factor(n, win.rho) + cur.sigma2 * median_var_factor(
            np.maximum(self.step_n, 1), cur.rho)
        return est, var

    def _level_shift(self, y: np.ndarray, n: np.ndarray, noise: tuple[Noise, WindowNoise] | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The shift of the window's values ``y`` against the baseline's level alone (no trend carried
        forward), and its variance (on ``noise``, default the tracker's current pair)."""
        cur, win = noise if noise is not None else (self.cur, self.win)
        est = _med(y) - np.median(self.base_y, axis=1)
        var = (win.sigma2 * median_var_factor(n, win.rho) + cur.sigma2 * median_var_factor(self.base_t.size, cur.rho)
               + self.level_ramp_var)
        return est, var

    def _past_since_step(self, y: np.ndarray, n: np.ndarray, line: float, z: Any) -> np.ndarray:
        """Whether the shift against the level since the baseline's rise stays ``z`` SDs past ``line``."""
        s_est, s_var = self._step_shift(y, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (s_est - line) / np.sqrt(s_var) >= z

    def _still_past(self, until: float | None, line: float, z: Any) -> np.ndarray:
        """Whether the shift over (−∞, ``until``] stays ``z`` of its SDs past ``line`` on each other
        explanation of the data that they allow, per window (an intersection of tests: a FAIL or a
        warning needs them all, and each only takes decisions away):

        * where the baseline's trend is carried forward, the baseline's level alone (no trend): a
          trend learnt from half an hour that the window does not follow — wandering slower than the
          baseline is long looks like one — would otherwise pass its own extrapolation off as the
          change's effect;
        * where a drift through the baseline and the window is possible (``_drift``), the shift
          with the drift taken out;
        * where the baseline's level rose within it (``_base_step``), the shift against the level
          since.

        With a control the judged values are the canary's net of it: a drift or a rise of the
        server's cancels; one left in the difference that was there before the ALTER is not the
        change's either (the control tenant may drift apart on its own, or end a batch of its own
        within the baseline) and is weighed the same way."""
        ok = np.ones(self.w, dtype=bool)
        z = np.minimum(z, EXPLAIN_Z)
        t, y = self._span(-math.inf, until)
        if t.size == 0:
            return ok
        n = _count(y)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.any_trend:
                est, var = self._level_shift(y, n)
                ok &= ~self.noise.trend | ((est - line) / np.sqrt(var) >= z)
            drift, a_est, a_var, _ = self._drift(until)
            ok &= ~drift | ((a_est - line) / np.sqrt(a_var) >= z)
            stepped = ~np.isnan(self.step_at)
            if stepped.any():
                ok &= ~stepped | self._past_since_step(y, n, line, z)
        return ok

    def _drift(self, until: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Whether a drift could explain the window's shift over (−∞, ``until``], and the shift
        judged with it: (drift, estimate, variance, common slope), per window (NaN where no drift
        could). With a control, of the values as judged: the canary net of it (``_still_past``).

        The change's model is a step: the window's level apart from the baseline's, each segment
        flat (or along the baseline's own trend, where it has one). A drift is one line through
        both (a morning's traffic growing, a working set outgrowing its buffer pool): each segment
        climbs, by the same slope. The common slope is fitted to the values as measured (no trend
        taken out) within the segments, each about its own mean, so the step itself does not enter
        it; its variance comes from each segment's long-run variance. A drift is possible where
        that slope is up and the two segments' own slopes are within ALIKE_Z
        joint SDs of each other (a window that climbs steeply while the baseline was flat is a ramp
        after the change: the change's). The slope is then believed as far as the data pin it
        down — shrunk towards none by its variance against DRIFT_SD² (a normal prior on how fast
        latency drifts): on strongly correlated noise a 30-minute baseline's slope is known to
        ±50 %/h, and taken at face value a chance slope explained away a real 2× step in 1 window
        in 40 (bench/verdict_quality.py's AR(1) ρ 0.95). The shift with the drift taken out: the
        window's median less the baseline's, each along that line, its variance widened by the gap
        between the segments' middles squared times the slope's (shrunk) variance."""
        nan = np.full(self.w, np.nan)
        no = np.zeros(self.w, dtype=bool)
        t, y = self._span(-math.inf, until)
        tb = self.base_t
        if t.size < 3 or tb.size < 3:
            return no, nan, nan, nan
        ok = ~np.isnan(y)
        cnt = ok.sum(axis=1)
        n = np.maximum(cnt, 1)
        tw = np.where(ok, t[None, :], 0.0).sum(axis=1) / n
        tc = np.where(ok, t[None, :] - tw[:, None], 0.0)
        ym = np.where(ok, y, 0.0).sum(axis=1) / n
        sxy_w = (tc * np.where(ok, y - ym[:, None], 0.0)).sum(axis=1)
        sxx_w = (tc * tc).sum(axis=1)
        tbm = float(tb.mean())
        tbc = tb - tbm
        yb = self.base_y
        sxy_b = ((yb - yb.mean(axis=1, keepdims=True)) * tbc[None, :]).sum(axis=1)
        sxx_b = float((tbc * tbc).sum())
        cur, win = self.cur, self.win
        lrv_b = cur.sigma2 * (1 + cur.rho) / (1 - cur.rho)
        lrv_w = win.sigma2 * (1 + win.rho) / (1 - win.rho)
        with np.errstate(divide="ignore", invalid="ignore"):
            sxx = sxx_b + sxx_w
            slope = (sxy_b + sxy_w) / sxx
            slope_var = (lrv_b * sxx_b + lrv_w * sxx_w) / sxx ** 2
            alike = np.abs(sxy_w / sxx_w - sxy_b / sxx_b) / np.sqrt(lrv_w / sxx_w + lrv_b / sxx_b) < ALIKE_Z
            drift = (slope > 0) & alike & (cnt >= 3)
        drift = np.nan_to_num(drift, nan=0.0).astype(bool)
        if not drift.any():
            return no, nan, nan, nan
        gap = tw - tbm
        # The slope believed as far as the data pin it down: shrunk towards none by its own variance
        # against DRIFT_SD² (a normal prior) — a slope known to ±50 %/h explains little of a shift.
        k = DRIFT_SD ** 2 / (DRIFT_SD ** 2 + slope_var)
        b = np.where(drift, k * slope, 0.0)
        a_est = _med(y - b[:, None] * (t[None, :] - tbm)) - np.median(yb - b[:, None] * tbc[None, :], axis=1)
        a_var = (win.sigma2 * median_var_factor(cnt, win.rho) + cur.sigma2 * median_var_factor(tb.size, cur.rho)
                 + gap * gap * k * slope_var)
        return drift, np.where(drift, a_est, np.nan), np.where(drift, a_var, np.nan), np.where(drift, slope, np.nan)

    def _look(self, i: int, at: float) -> None:
        s = self.s
        self._refresh(at)
        est, var, _, n_eff = self._shift(-math.inf, at)
        pass_line = self.lines[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (est - pass_line) / np.sqrt(var)
        # z boundary → the nominal one-sided level of this look → a t quantile on the df
        p = 1 - normal_cdf(self.bounds[i])
        crit = t_quantile(1 - p, self.win.df)
        crossed = self.base_ok & (n_eff >= s.min_samples) & (z >= crit) & np.isnan(self.late_at) & \
            np.isnan(self.stopped_at)
        if crossed.any():  # … and past it still on every other explanation the data allow
            crossed &= self._still_past(at, pass_line, crit)
        self.look_z.append(np.where(np.isfinite(z), z, np.nan))
        self.stopped_at = np.where(crossed, self.t[self.k - 1], self.stopped_at)
        self.stop_kind = np.where(crossed, 2, self.stop_kind)
        self.looked.append((at, crossed))

    def finish(self, confidence: float = 0.98) -> Outcome:
        """The criterion over the whole window (or up to its stop).

        Judged on the noise of the baseline and the window together; where that leaves the window
        INCONCLUSIVE, judged again with the baseline's veto on that noise (``pooled_pair``) — a PASS on
        those terms stands (the estimate below the pass line, each side's effective n from the
        noise its own values show), nothing else is taken from it; then, where incidents that went
        away alone left it INCONCLUSIVE, without them (``_without_incidents``)."""
        judged = self._judge(confidence, False)
        again = (judged[0] == -1) & (self.noise.resid is not None)
        if again.any():
            veto = self._judge(confidence, True)
            judged = _taken(again & (veto[0] == 1), judged, veto)
        judged, aside_s, aside_from, aside_to = self._without_incidents(confidence, judged)
        met, reason, est, low, high, n, n_eff, cur, win, drift = judged
        warned_at = np.where(np.isfinite(aside_to) & np.isnan(self.warned_at), aside_to, self.warned_at)
        ctl = np.full(self.w, np.nan)
        return Outcome(met, reason, self.stopped_at.copy(), self.stop_kind.copy(), ~np.isnan(warned_at),
                       warned_at, est, low, high, n, n_eff, ctl, self.incidents.copy(),
                       self.late_at.copy(), drift, *self._step_fields(reason), list(self.look_z),
                       aside_s, aside_from, aside_to, cur, win)

    def _without_incidents(self, confidence: float, judged: tuple[Any, ...],
                           ) -> tuple[tuple[Any, ...], np.ndarray, np.ndarray, np.ndarray]:
        """``judged`` (a ``_judge`` tuple) with the incidents set aside where they alone left the
        window INCONCLUSIVE (``ASIDE_MAX_FRACTION``), and the seconds set aside with the span they
        cover, per window (NaN where none were)."""
        nan = np.full(self.w, np.nan)
        aside = self.aside[:, :self.k]
        n_aside = aside.sum(axis=1)
        # … where every incident went away again: none still on at the end (a later level change or
        # a harm-line crossing that lasts to the window's end is no burst, whatever came before it)
        gone = np.isnan(self.late_since) & np.isnan(self.crit_since)
        again = (judged[0] == -1) & (n_aside > 0) & (n_aside <= ASIDE_MAX_FRACTION * self.k) & \
            (self.stop_kind == 0) & gone & (self.noise.resid is not None)
        if not again.any():
            return judged, nan, nan, nan
        # The incidents set aside (their intervals unusable, as a missing one is), the rest judged
        # again on both noises, as ``finish`` does; only a PASS is taken from it, and only where the
        # rest of the window is no longer apart from the baseline's noise: the incidents were what
        # set it apart (a window the change made noisier stays apart).
        kept_y = self.y[:, :self.k].copy()
        self.y[:, :self.k] = np.where(aside & again[:, None], np.nan, kept_y)
        take = np.zeros(self.w, dtype=bool)
        try:
            for veto in (False, True):
                b = self._judge(confidence, veto)
                new = again & ~take & (b[0] == 1) & ~b[8].apart
                judged = _taken(new, judged, b)
                take |= new
        finally:
            self.y[:, :self.k] = kept_y
        if not take.any():
            return judged, nan, nan, nan
        tt = self.t[:self.k]
        dt = float(np.median(np.diff(tt))) if self.k > 1 else 0.0
        return (judged, np.where(take, n_aside * dt, np.nan),
                np.where(take, np.where(aside, tt[None, :], np.inf).min(axis=1), np.nan),
                np.where(take, np.where(aside, tt[None, :], -np.inf).max(axis=1), np.nan))

    def _judge(self, confidence: float, baseline_veto: bool) -> tuple[Any, ...]:
        s = self.s
        # Judged on the noise learnt from everything so far; the tracker's own state is left as it
        # was (a dashboard asks for the window so far at every poll, and the ticks after must go
        # on exactly as a replay's would).
        kept = (self.cur, self.win, self.z_warn, self.z_harm, self.z_late, self.base_ok, self.harm)
        self._refresh(baseline_veto=baseline_veto)
        est, var, n, n_eff = self._shift(-math.inf)
        cur, win = self.cur, self.win
        drifting, _, _, slope = self._drift(None)
        stepped = ~np.isnan(self.step_at)
        wt, wy = self._span(-math.inf)
        # Where the baseline's trend is carried forward, a PASS also needs the shift below the pass
        # line against the baseline's level alone: a trend learnt from half an hour (a level that
        # rose within it, a slow swing) and carried an hour on would otherwise pass a regression
        # off as the trend's continuation.
        level_est = self._level_shift(wy, _count(wy))[0] if self.any_trend and wt.size else np.full(self.w, np.nan)
        if stepped.any():
            stepped &= ~self._past_since_step(wy, _count(wy), self.lines[2], EXPLAIN_Z)
        self.cur, self.win, self.z_warn, self.z_harm, self.z_late, self.base_ok, self.harm = kept
        # A harm-limit stop is reported on the evidence that decided it: the rolling span at the stop
        # (a window stopped minutes in holds too little for the window so far to say much).
        harm = self.stop_kind == 1
        df = win.df
        if harm.any():
            est, var, n, n_eff, df = (np.where(harm, span, whole) for span, whole in
                                      zip(self.stop_span, (est, var, n, n_eff, df), strict=True))
        sd = np.sqrt(var)
        zc = t_quantile(1 - (1 - confidence) / 2, df)
        low, high = est - zc * sd, est + zc * sd
        pass_line = self.lines[2]
        met = np.full(self.w, 1, dtype=int)
        reason = np.zeros(self.w, dtype=int)
        failed = self.stop_kind > 0
        small_base = cur.n_eff < s.min_samples
        reason = np.where(~failed & (est >= pass_line), 5, reason)
        reason = np.where(~failed & drifting & (est >= pass_line), 7, reason)
        reason = np.where(~failed & stepped & (est >= pass_line), 10, reason)
        # A PASS says the change does no harm: an interval that reaches past the harm line (a trend
        # carried far forward, a window that wanders) cannot say that, whatever its middle.
        reason = np.where(~failed & (reason == 0) & (high >= self.lines[1]), 8, reason)
        reason = np.where(~failed & (reason == 0) & self.noise.trend & (level_est >= pass_line), 11, reason)
        reason = np.where(~failed & ~np.isnan(self.late_at) & (est >= self.lines[0]), 4, reason)
        # Few effective intervals (in the window or the baseline) make a wide interval; when even
        # that interval lies wholly below the pass line, the answer does not hang on them: PASS,
        # given the runbook's min_samples of actual intervals on both sides.
        decisive = (high < pass_line) & (n >= s.min_samples) & (self.noise.n >= s.min_samples)
        few = ~failed & (n_eff < s.min_samples) & ~decisive
        wild = win.apart & (win.sd_ratio > 1) & ~win.drift
        reason = np.where(few, np.where(wild, 6, 3), reason)
        reason = np.where(~failed & small_base & ~decisive, 1, reason)
        reason = np.where(~failed & ((self.noise.n < 3) | ~np.isfinite(self.noise.level)), 1, reason)
        reason = np.where(~failed & self.two_level, 9, reason)
        reason = np.where(~failed & self.noise.constant, 2, reason)
        met = np.where(reason > 0, -1, met)
        met = np.where(failed, 0, met)
        return met, reason, est, low, high, n, n_eff, cur, win, np.where(reason == 7, slope, np.nan)

    def _step_fields(self, reason: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The baseline's rise and when, where it withheld the verdict (reason 10), else NaN."""
        mine = reason == 10
        return np.where(mine, self.step_rise, np.nan), np.where(mine, self.step_at, np.nan)


def _taken(take: np.ndarray, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    """Per window, ``new``'s judgement (a ``_judge`` tuple: met, reason, est, low, high, n, n_eff,
    the two noises, drift) where ``take``, else ``old``'s."""
    arrays = [np.where(take, b, a) for a, b in zip(old[:7] + old[9:], new[:7] + new[9:], strict=True)]
    return (*arrays[:7], pick_rows(take, old[7], new[7]), pick_rows(take, old[8], new[8]), *arrays[7:])


def _grown(a: np.ndarray, k: int, cap: int, fill: Any) -> np.ndarray:
    """``a`` (W, ·) with room for ``cap`` columns, its first ``k`` kept."""
    out = np.full((a.shape[0], cap), fill, dtype=a.dtype)
    out[:, :k] = a[:, :k]
    return out
