"""The decision engine's cost and its error rates.

1. One tick of the window evaluator with a full window: 60 min × 1 s × 16 metrics (target ≤ 5 ms
   per tick, p99).
2. A/A: ≥ 200 synthetic windows with no change, drawn from the same noise model as their baseline:
   the false FAIL rate (target ≤ 1 %). And with a 1.5× p50 shift: the detection rate (target ≥ 95 %
   at ≥ 60 samples).

Prints its figures and ends with one JSON line.   python bench/evaluator.py [--windows 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.domain.decision_evaluator import WindowEvaluator  # noqa: E402
from engine.domain.decision_matrix import FAIL  # noqa: E402
from engine.domain.thresholds import Profile  # noqa: E402

PROFILE = Profile()
METRICS = [r.key for r in PROFILE.rules][:16]
# A noise model per metric: (median, log-sd) for latencies; (level, jitter) for the rest.
LAT = {"latency_p50": (2.0, 0.25), "latency_p99": (9.0, 0.35), "request_latency_p50": (20.0, 0.2),
       "request_latency_p99": (80.0, 0.3)}
LEVEL = {"lock_wait": (0.05, 0.05), "replication_lag": (1.0, 1.0), "error_rate": (0.01, 0.01),
         "connections": (20.0, 2.0), "threads_running": (6.0, 2.0), "buffer_pool_hit": (99.5, 0.2),
         "cpu": (30.0, 5.0), "memory": (55.0, 1.0), "disk_read": (10.0, 3.0), "disk_write": (5.0, 2.0),
         "network_latency": (2.0, 0.5), "throughput": (500.0, 20.0), "killswitch_response": (20.0, 5.0)}


def draw(rng: random.Random, metric: str, shift: float = 1.0) -> float:
    if metric in LAT:
        med, sd = LAT[metric]
        return med * rng.lognormvariate(0, sd) * (shift if metric == "latency_p50" else 1.0)
    level, jitter = LEVEL[metric]
    return max(0.0, rng.gauss(level, jitter))


def window(rng: random.Random, n_base: int, n_window: int, step_s: float, shift: float) -> str:
    baselines = {m: [draw(rng, m) for _ in range(n_base)] for m in METRICS}
    ev = WindowEvaluator(PROFILE, baselines, METRICS)
    for i in range(n_window + 1):
        ev.add(i * step_s, {m: (draw(rng, m, shift), None, 50) for m in METRICS})
    return ev.finish(index_created=True).verdict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=200)
    args = ap.parse_args()
    rng = random.Random(2026)

    # 1. per-tick cost with a full window at 1 s
    baselines = {m: [draw(rng, m) for _ in range(300)] for m in METRICS}
    ev = WindowEvaluator(PROFILE, baselines, METRICS)
    costs = []
    for t in range(3601):
        sample = {m: (draw(rng, m), None, 50) for m in METRICS}
        started = time.perf_counter()
        ev.add(float(t), sample)
        costs.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    verdict = ev.finish(True)
    finish_ms = (time.perf_counter() - started) * 1000
    costs.sort()
    tick_p50, tick_p99, tick_max = costs[len(costs) // 2], costs[int(len(costs) * 0.99)], costs[-1]
    print(f"window evaluator, 60 min × 1 s × {len(METRICS)} metrics: per tick p50 {tick_p50:.3f} ms, "
          f"p99 {tick_p99:.3f} ms, max {tick_max:.3f} ms; final matrix {finish_ms:.1f} ms ({verdict.verdict})")

    # 2. A/A and detection
    aa_5s = [window(rng, 60, 720, 5.0, 1.0) for _ in range(args.windows)]
    aa_60 = [window(rng, 60, 60, 60.0, 1.0) for _ in range(args.windows)]
    shifted = [window(rng, 60, 60, 60.0, 1.5) for _ in range(args.windows)]
    false_fail_5s = aa_5s.count(FAIL) / len(aa_5s)
    false_fail_60 = aa_60.count(FAIL) / len(aa_60)
    detection = shifted.count(FAIL) / len(shifted)
    print(f"A/A, {args.windows} no-change windows: false FAIL {false_fail_5s:.1%} (720 samples at 5 s), "
          f"{false_fail_60:.1%} (60 samples at 60 s)")
    print(f"1.5× p50 shift, {args.windows} windows of 60 samples: detected (FAIL) {detection:.1%}")
    print(json.dumps({
        "metrics": len(METRICS), "tick_p50_ms": round(tick_p50, 4), "tick_p99_ms": round(tick_p99, 4),
        "tick_max_ms": round(tick_max, 3), "final_matrix_ms": round(finish_ms, 2), "target_tick_p99_ms": 5,
        "aa_windows": args.windows, "aa_false_fail_rate_720": false_fail_5s, "aa_false_fail_rate_60": false_fail_60,
        "target_false_fail_rate": 0.01, "shift_1_5_detection_rate_60": detection, "target_detection_rate": 0.95,
    }))


if __name__ == "__main__":
    main()
