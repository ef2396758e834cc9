"""Whether the latency baseline is long enough for its own noise (docs/verdict.md, "Baseline").

A latency is judged only when its baseline holds ``min_samples`` effective intervals; under strongly
correlated noise a 30-minute baseline holds barely that many, and the number is itself learnt
(with an error of tens of percent), so about one window in ten would end INCONCLUSIVE on a real
regression. The executor therefore keeps sampling before the ALTER until every judged latency's
baseline holds ``baseline_effective_n`` effective intervals (the profile's; by default twice
``min_samples``), up to a cap (engine/flows/executor_baseline.py). The benchmark
(bench/verdict_quality.py) extends its baselines with the same function.

The series and the effective n are exactly the judge's: ``judged_points`` (log values, or log
canary − log control paired by time), ``fit_noise`` (the median's effective n on the long-run ρ)
and the previous days' floor under the long-run variance. A metric with fewer than three usable
values, or whose values never vary, is never a reason to wait: that is a source problem, which
other checks report; waiting would not cure it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.domain.thresholds import Profile
from engine.domain.verdict import judged_points
from engine.domain.verdict_noise import fit_noise, history_noise, with_floor

Points = Sequence[tuple[float, Any]]


@dataclass(frozen=True)
class MetricReadiness:
    """One latency metric's baseline against the target."""

    metric: str
    n: int  # usable intervals in the series judged
    n_eff: float | None  # None: the noise cannot be learnt (fewer than 3 values, or constant)
    rho: float | None  # the long-run ρ the effective n was computed on
    ready: bool
    reason: str = ""  # why it is not ready ("" when it is)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    target: float  # effective intervals needed
    metrics: tuple[MetricReadiness, ...] = ()

    @property
    def reasons(self) -> list[str]:
        return [m.reason for m in self.metrics if not m.ready]


def baseline_n_eff(y: np.ndarray, t: np.ndarray, history_ratio: float = 1.0) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray]:
    """(effective n, long-run ρ, constant) of W baselines at once: ``y`` (W, n) log values without
    NaN, ``t`` (n,) seconds — the noise the judge learns from its baseline (``fit_noise``), with the
    previous days' long-run ratio as a floor."""
    nz = with_floor(fit_noise(y, t), history_ratio)
    return nz.n_eff, nz.rho, nz.constant


def metric_ready(y: np.ndarray, t: np.ndarray, target: float, history_ratio: float = 1.0,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One metric's baseline in W windows at once (``y`` (W, n) log values, no NaN; ``t`` (n,)):
    (ready, effective n, long-run ρ, estimable). Not estimable — fewer than 3 values, or values
    that never vary — counts as ready: waiting cures neither."""
    w, n = np.atleast_2d(y).shape
    if n < 3:
        z = np.zeros(w)
        return np.ones(w, bool), z + n, z, np.zeros(w, bool)
    n_eff, rho, constant = baseline_n_eff(y, t, history_ratio)
    return (n_eff >= target) | constant, n_eff, rho, ~constant


def short_reason(metric: str, n_eff: float, target: float, n: int, rho: float) -> str:
    return f"{metric}: effective n {n_eff:.1f} of {target:g} needed (n={n}, long-run ρ {rho:.2f})"


def baseline_readiness(profile: Profile, baselines: Mapping[str, Points],
                       controls: Mapping[str, Points] | None = None,
                       histories: Mapping[str, Points] | None = None,
                       target: float | None = None) -> Readiness:
    """Whether every judged latency metric's baseline holds ``target`` effective intervals
    (default: the profile's ``baseline_effective_n``).

    ``baselines``: per metric ``[(t_s, value)]`` (any time origin, one clock); only the profile's
    latency metrics present here are judged. ``controls``: the control's values of a metric (paired
    by time), where one is measured; ``histories``: the same hours of previous days, where
    Prometheus has them (they can only lower the effective n, as in the judge)."""
    need = float(profile.baseline_effective_n if target is None else target)
    latency = {r.key for r in profile.rules if r.latency}
    out: list[MetricReadiness] = []
    for key in sorted(k for k in baselines if k in latency):
        control = list((controls or {}).get(key) or [])
        pts, _ = judged_points(list(baselines[key]), control or None)
        history = list((histories or {}).get(key) or [])
        ratio = history_noise(history).ratio if history and not control else 1.0
        ok, n_eff, rho, estimable = metric_ready(np.array([[y for _, y in pts]]).reshape(1, len(pts)),
                                                 np.array([t for t, _ in pts]), need, ratio)
        if not bool(estimable[0]):
            out.append(MetricReadiness(key, len(pts), None, None, True))
            continue
        ne, r = float(n_eff[0]), float(rho[0])
        out.append(MetricReadiness(key, len(pts), ne, r, bool(ok[0]),
                                   "" if bool(ok[0]) else short_reason(key, ne, need, len(pts), r)))
    return Readiness(all(m.ready for m in out), need, tuple(out))
