"""Latency evidence that holds under real production noise (docs/verdict.md).

Every latency metric is judged on the log of its per-interval value, so a ratio is a difference
("+10 %" means the same at 1 ms and at 100 ms). With a control (the same query shapes on tenants
the change did not touch, sampled at the same moments) the series judged is the per-interval
difference ``log canary − log control``: a server-wide shift, drift or burst cancels.

By role:

* ``engine.domain.verdict_intervals`` — the arithmetic: t quantiles, the variance of a mean and of
  a median of correlated values, effective n, the O'Brien–Fleming boundary;
* ``engine.domain.verdict_noise`` — the noise learnt from the baseline (and the window, and
  previous days): spread, long-run variance on several time scales with its degrees of freedom,
  trend;
* ``engine.domain.verdict_tracker`` — ``LatencyTracker`` (its settings and outcome in
  ``verdict_outcome``): one metric through the window, a tick at
  a time, for W windows at once (harm limits, warnings, the looks, later level changes);
* this module — ``LatencyJudge``, one metric of one window with plain values in and plain answers
  out (the monitor, the dashboard and ``replay`` use it), and the names the rest of the engine
  imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.domain.verdict_intervals import (  # noqa: F401 - the engine's and the tests' names
    MEDIAN_EFFICIENCY,
    RHO_MAX,
    ar1_var_factor,
    effective_n,
    median_effective_n,
    median_var_factor,
    obf_boundaries,
    t_quantile,
    z_quantile,
)
from engine.domain.verdict_noise import (  # noqa: F401
    SIGMA_FLOOR,
    HistoryNoise,
    Noise,
    fit_noise,
    history_noise,
    long_run,
    usable,
)
from engine.domain.verdict_outcome import (  # noqa: F401
    REASONS,
    Outcome,
    Settings,
    settings_of,
    verdict_codes,
)
from engine.domain.verdict_tracker import LatencyTracker


def pct(log_shift: float) -> str:
    """A log shift as a percent a person reads: three significant digits, never 300 of them."""
    if not math.isfinite(log_shift):
        return "—"
    if log_shift > math.log(100):
        ratio = math.exp(min(log_shift, 700))
        return f"×{ratio:,.0f}" if ratio < 1e6 else f"×{ratio:.3g}"
    v = math.expm1(log_shift) * 100
    return f"{v:+.3g}%" if abs(v) < 1000 else f"{v:+.0f}%"


# --- one metric, one window: the facade the monitor, the dashboard and replay use ------------------


def judged_points(baseline: list[tuple[float, Any]], control_baseline: list[tuple[float, Any]] | None = None,
                  ) -> tuple[list[tuple[float, float]], list[float]]:
    """The series a latency is judged on, from ``[(t_s, value)]``: ``(t, log value)`` of the usable
    values, or with a control (non-empty ``control_baseline``, paired by time) ``(t, log canary −
    log control)`` where both are usable; sorted by time. Also the control's logs that were used."""
    control = bool(control_baseline)
    ctl = {t: usable(v) for t, v in (control_baseline or [])}
    pts: list[tuple[float, float]] = []
    ctl_logs: list[float] = []
    for t, v in baseline:
        u = usable(v)
        if u is None:
            continue
        if control:
            c = ctl.get(t)
            if c is None:
                continue
            pts.append((t, math.log(u) - math.log(c)))
            ctl_logs.append(math.log(c))
        else:
            pts.append((t, math.log(u)))
    pts.sort()
    return pts, ctl_logs


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
        pts, self.ctl_base_logs = judged_points(baseline, control_baseline)
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

    def _degenerate(self, nz: Noise | None, effective: bool = True) -> str | None:
        """Why the baseline cannot be judged (None: it can); ``effective=False`` leaves its
        effective n out (a PASS whose whole interval lies below the line does not hang on it)."""
        s = self.s
        if self.base_n == 0:
            what = f"none of the {self.base_raw_n} baseline values is usable ({self.base_bad})" if self.base_raw_n \
                else "no baseline interval"
            return what
        if self.base_n < 3:
            return (f"only {self.base_n} usable baseline interval{'s' if self.base_n > 1 else ''}"
                    + (f" ({self.base_bad})" if self.base_bad else "") + ": its noise cannot be estimated")
        assert nz is not None  # learnt from the baseline and, once it runs, the window too
        if bool(nz.constant[0]):
            return f"the baseline's {self.base_n} intervals are all the same value: its noise cannot be estimated"
        if self.tracker is not None and bool(self.tracker.two_level[0]):
            return (f"the baseline's latency jumps between two levels (where its median may fall, its values are "
                    f"{math.sqrt(float(self.tracker.spread[0])):.1f}× as sparse as normal noise's): its median "
                    "flips between them and is no measure of a shift")
        if effective and float(nz.n_eff[0]) < s.min_samples:
            own = self.tracker.noise if self.tracker is not None else None
            if own is not None and float(own.n_eff[0]) >= s.min_samples:
                # The baseline alone looked long enough: the slow wandering came with the window.
                return (f"the noise learnt from the baseline and the window together wanders slowly (long-run ρ "
                        f"{float(nz.rho[0]):.2f}; the baseline alone showed {float(own.rho[0]):.2f}): on it the "
                        f"baseline's {self.base_n} intervals are worth {float(nz.n_eff[0]):.1f}, below "
                        f"{s.min_samples} — too short to judge; a longer baseline or a control would")
            tr = self.tracker
            rose = ""
            if tr is not None and math.isfinite(float(tr.step_at[0])):
                # the rise is what made the baseline's noise look that slow: say so, not only "too short"
                rose = (f" — its level rose {_step_words(tr.step_rise, tr.step_at)} before "
                        "the window and stayed there, which that noise estimate takes for wandering"
                        + ("" if self.control else " (no control)"))
            return (f"the baseline's effective n is {float(nz.n_eff[0]):.1f} (n={self.base_n}, long-run ρ "
                    f"{float(nz.rho[0]):.2f}), below {s.min_samples}: too short to judge" + rose)
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
                             "an incident, not the change: no FAIL is drawn from it")
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
        passed = int(o.met[0]) == 1
        deg = self._degenerate(nz, effective=not passed)
        out.update(estimate=_finite(o.estimate[0]), low=_finite(o.low[0]), high=_finite(o.high[0]),
                   n_eff=round(float(o.n_eff[0]), 1), stopped_at=_finite(o.stopped_at[0]))
        trend = (f"baseline trend {math.expm1(float(nz.slope[0]) * 3600) * 100:+.1f}%/h carried forward"
                 if bool(nz.trend[0]) else "baseline level")
        wn = o.window_noise
        apart = wn is not None and bool(wn.apart[0])
        drift = apart and wn is not None and bool(wn.drift[0])
        if drift:
            noise = (f"noise: the baseline's (long-run ρ {float(nz.rho[0]):.2f}), about a line through the window "
                     "(the window climbs or sinks; its values about their level are not the baseline's noise)")
        elif apart and wn is not None:
            noise = (f"noise: baseline long-run ρ {float(nz.rho[0]):.2f}, window its own (long-run SD "
                     f"×{float(wn.sd_ratio[0]):.2g} the baseline's, ρ {float(wn.rho[0]):.2f})")
        else:
            noise = f"noise (baseline and window) long-run ρ {float(nz.rho[0]):.2f}"
        out["method"] = (f"median of per-interval log({'canary/control' if self.control else 'latency'}) vs "
                         f"{trend}; {noise}; baseline {self.base_span_s / 60:.0f} min, n={self.base_n} "
                         f"(effective {float(nz.n_eff[0]):.1f})")
        kind = int(o.stop_kind[0])
        if kind == 1:
            out["method"] += (f"; estimate, interval and n: the last {s.rolling_s / 60:g} min at the stop "
                              "(the harm limit's span)")
            out["n"] = int(o.n[0])
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
                6: (f"the window's latency wanders far more than the baseline's (long-run SD ×"
                    f"{float(wn.sd_ratio[0]) if wn is not None else math.nan:.2g}): effective n "
                    f"{float(o.n_eff[0]):.1f} in the window, below {s.min_samples} — the change altered how "
                    "the latency behaves, its shift cannot be judged"),
                8: (f"estimate below +{s.pass_pct:g}%, but its {100 * self.confidence:g}% interval reaches "
                    f"{pct(float(o.high[0]))}, past the +{s.critical_pct:g}% harm line: too uncertain to pass"),
                7: (f"the {'canary against the control' if self.control else 'latency'} climbs through the "
                    f"baseline and the window alike (a drift of {_per_hour(o.drift)} an hour"
                    f"{'' if self.control else ', no control'}): its rise cannot be told from the change"),
                10: (f"the baseline's level{' against the control' if self.control else ''} rose "
                     f"{_step_words(o.base_step, o.base_step_at)} before the window (not the change{'' if self.control else '; no control'}): "
                     f"against the level since, the shift is not past +{s.pass_pct:g}%"),
            }.get(int(o.reason[0]), REASONS[int(o.reason[0])])
        else:
            out["met"] = True
            few = min(float(o.n_eff[0]), float(nz.n_eff[0]))
            out["reason"] = (f"estimate below +{s.pass_pct:g}%" if few >= s.min_samples else
                             f"the whole interval below +{s.pass_pct:g}% (upper bound {pct(float(o.high[0]))}), "
                             f"on an effective n of {few:.1f}: few effective intervals, a wide interval, and still "
                             "below the line")
            aside = _aside_span(o)
            if aside:
                span, minutes = aside
                out["n"] = int(o.n[0])  # the intervals judged: the window less those set aside
                out["reason"] += f" on the window without {minutes} set aside ({span})"
                out["method"] += f"; without {minutes} set aside ({span})"
                out["warning"] = (f"an incident {span} — a rise that went away again, not the change's step — set "
                                  "aside: judged whole, the window was too uncertain to judge; without those "
                                  f"{minutes}, below +{s.pass_pct:g}%: a PASS with this warning (look at what ran then)")
        if self.window_bad:
            out["reason"] += f"; {len(self.window_bad)} window value(s) ignored ({_why_unusable(self.window_bad)})"
        return out


def _aside_span(o: Any) -> tuple[str, str] | None:
    """The incidents a PASS was judged without (``Outcome.aside_s``): (when, how long) in words;
    None where none were set aside."""
    secs = float(o.aside_s[0]) if o.aside_s is not None else math.nan
    if not math.isfinite(secs):
        return None
    lo, hi = float(o.aside_from[0]), float(o.aside_to[0])
    return f"{max(lo, 0.0) / 60:.0f}–{hi / 60:.0f} min into the window", f"{secs / 60:.1f} min"


def _per_hour(slope: np.ndarray | None) -> str:
    """A drift's slope (log per second) as a signed percentage an hour."""
    x = float(slope[0]) if slope is not None else math.nan
    return pct(x * 3600.0) if math.isfinite(x) else "an unknown rate"


def _step_words(rise_of: np.ndarray | None, at_of: np.ndarray | None) -> str:
    """How much the baseline's level rose and how long before the window (``_base_step``'s rise and
    when, per window: the first)."""
    rise = float(rise_of[0]) if rise_of is not None else math.nan
    at = float(at_of[0]) if at_of is not None else math.nan
    if not (math.isfinite(rise) and math.isfinite(at)):
        return "within it"
    return f"{pct(rise)} {-at / 60:.0f} min"


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _pct_or_none(x: Any) -> float | None:
    x = float(x)
    if not math.isfinite(x):
        return None
    return math.expm1(min(x, 700.0)) * 100
