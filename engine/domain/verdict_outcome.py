"""What the latency verdict's tracker is given and what it returns (docs/verdict.md, "The
decisions"): its ``Settings`` (from a threshold profile: ``settings_of``), one metric's ``Outcome``
over W windows, the reasons' sentences, and the latency criteria together as a verdict code
(``verdict_codes``). ``engine.domain.verdict_tracker`` holds the tracker itself."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from engine.domain.verdict_noise import Noise, WindowNoise

# reason codes (one per window) → the sentence the screen and the replay show
REASONS = {
    0: "",
    1: "baseline has fewer usable intervals than needed",
    2: "baseline does not vary: its noise cannot be estimated",
    3: "too few effective intervals in the window",
    4: "a level change appeared well after the change began (an incident, not the change)",
    5: "shift at or past the pass line, but the evidence does not exclude the line",
    6: "the window's latency wanders far more than the baseline's: too few effective intervals to judge its shift",
    7: "the latency climbs through the baseline and the window alike (a drift): its rise cannot be told from the change",
    8: "estimate below the pass line, but its interval reaches past the harm line: too uncertain to pass",
    9: "the baseline's latency jumps between two levels: its median flips between them and is no measure of a shift",
    10: "the baseline's level rose before the ALTER (not the change): against the level since, the shift is not past the line",
    11: ("the baseline trends: carried forward, the shift is below the pass line, but against the baseline's level it "
         "is not — a PASS needs both"),
}


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
    estimate: np.ndarray  # log shift over the whole window (a harm-limit stop: over its rolling span at the stop)
    low: np.ndarray  # two-sided interval at the profile's confidence, log
    high: np.ndarray
    n: np.ndarray
    n_eff: np.ndarray
    control_shift: np.ndarray  # log shift of the control itself (NaN without a control)
    incidents: np.ndarray  # count of incidents (short harm episodes, late level changes)
    late_at: np.ndarray  # first time a late level change was seen (NaN: never)
    drift: np.ndarray | None = None  # log per second: the common slope where a drift withheld the verdict (NaN: none)
    base_step: np.ndarray | None = None  # log rise of the baseline's level before the ALTER where it withheld the verdict
    base_step_at: np.ndarray | None = None  # … and when (seconds, window time, negative; NaN: none)
    look_z: list[np.ndarray] = field(default_factory=list)
    # seconds of the window set aside as incidents where that turned an INCONCLUSIVE into a PASS
    # (with a warning), and the span they cover (seconds into the window); NaN: none set aside
    aside_s: np.ndarray | None = None
    aside_from: np.ndarray | None = None
    aside_to: np.ndarray | None = None
    noise: Noise | None = None  # the noise the outcome was judged on (baseline and window)
    window_noise: WindowNoise | None = None  # … and the window's own where it differs (``apart``)


def pick_rows(mask: np.ndarray, a: Any, b: Any) -> Any:
    """Per window, ``b``'s arrays where ``mask`` else ``a``'s (two Noise or two WindowNoise)."""
    out = {}
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape:
            out[f.name] = np.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), y, x)
    return replace(a, **out)


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
    0 PASS (the order ``engine.domain.decision_matrix.final_matrix`` applies to its criteria)."""
    w = outcomes[0].met.shape[0]
    code = np.zeros(w, dtype=int)
    code = np.where(np.any([o.warned for o in outcomes], axis=0), 1, code)
    code = np.where(np.any([o.met == -1 for o in outcomes], axis=0), 2, code)
    code = np.where(np.any([o.met == 0 for o in outcomes], axis=0), 3, code)
    return code
