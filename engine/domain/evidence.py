"""Evidence for latency: a Hodges–Lehmann shift with a distribution-free confidence interval.

Latencies are compared as ratios (window / baseline) on the log scale, so that "+10 %" means the
same thing at 1 ms and at 100 ms. The estimate is the median of all pairwise log differences
(window − baseline); the interval is the Mann–Whitney (Moses) interval: order the n·m pairwise
differences and take the k-th from each end, k from the null distribution of U (normal
approximation, which is fine from n, m ≥ 10; below that the verdict is INCONCLUSIVE anyway).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

_Z = {0.90: 1.6449, 0.95: 1.9600, 0.98: 2.3263, 0.99: 2.5758}


def z_for(confidence: float) -> float:
    if confidence in _Z:
        return _Z[confidence]
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class ShiftEstimate:
    ratio: float  # window / baseline, Hodges–Lehmann
    low: float  # confidence interval of the ratio
    high: float
    confidence: float
    n_baseline: int
    n_window: int
    low_confidence: bool = False
    min_detectable_ratio: float | None = None  # the smallest shift n could detect (low confidence)

    @property
    def change_pct(self) -> float:
        return (self.ratio - 1) * 100

    def describe(self) -> str:
        text = (f"×{self.ratio:.3f} ({self.change_pct:+.1f}%), {self.confidence:.0%} CI "
                f"×{self.low:.3f}…×{self.high:.3f}, n={self.n_window} vs {self.n_baseline} baseline")
        if self.low_confidence and self.min_detectable_ratio:
            text += f"; low confidence: shifts below ×{self.min_detectable_ratio:.2f} cannot be seen"
        return text


def _logs(values: Sequence[float]) -> list[float]:
    return [math.log(v) for v in values if v is not None and v > 0 and math.isfinite(v)]


def hodges_lehmann(baseline: Sequence[float], window: Sequence[float], confidence: float = 0.98,
                   low_confidence_below: int = 30) -> ShiftEstimate | None:
    """The shift of ``window`` against ``baseline`` (both: per-interval latencies). None when
    either side has no usable value."""
    b, w = _logs(baseline), _logs(window)
    n, m = len(b), len(w)
    if n == 0 or m == 0:
        return None
    diffs = sorted(x - y for x in w for y in b)
    hl = statistics.median(diffs)
    total = n * m
    z = z_for(confidence)
    k = math.floor(total / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    k = max(0, min(k, (total - 1) // 2))
    low, high = diffs[k], diffs[total - 1 - k]
    low_conf = min(n, m) < low_confidence_below
    mde = min_detectable_ratio(b, n, m, confidence) if low_conf else None
    return ShiftEstimate(math.exp(hl), math.exp(low), math.exp(high), confidence, n, m, low_conf, mde)


def min_detectable_ratio(log_baseline: Sequence[float], n: int, m: int, confidence: float = 0.98,
                         power: float = 0.8) -> float | None:
    """The smallest ratio a rank test at this confidence would detect with 80 % power, from the
    spread of the baseline (a robust σ: 1.4826 × MAD) and the asymptotic efficiency of the
    Wilcoxon test against the t test (3/π)."""
    if len(log_baseline) < 2 or n == 0 or m == 0:
        return None
    med = statistics.median(log_baseline)
    sigma = 1.4826 * statistics.median(abs(x - med) for x in log_baseline)
    if sigma == 0:
        sigma = statistics.pstdev(log_baseline)
    if sigma == 0:
        return 1.0
    z_a = z_for(confidence)
    z_b = statistics.NormalDist().inv_cdf(power)
    delta = (z_a + z_b) * sigma * math.sqrt(1 / n + 1 / m) / math.sqrt(3 / math.pi)
    return math.exp(delta)
