"""Judge exported metrics from a file, without a store or a server (``canary-console replay
--samples FILE``; docs/verdict.md).

The file is JSON Lines, one sample a line::

    {"ts": "2026-12-03T08:00:05Z", "metric": "latency_p50", "value": 0.0042, "group": "canary"}

``group`` is ``canary`` (the default), ``control`` (the same metric on tenants the change did
not touch, measured at the same moments) or ``history`` (the same metric on previous days, before
the baseline: the verdict learns from it how slowly the latency wanders, docs/verdict.md#previous-days). Metric names are the threshold profile's
(``latency_p50``, ``latency_p99``, ``lock_wait``, ``replication_lag``, ``error_rate``, …). Samples
before the change are the baseline; the rest is the window, judged by the same evaluator as a live
run (``engine.domain.decision_evaluator.WindowEvaluator``).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.domain.decision_evaluator import CONTROL, HISTORY, WindowEvaluator
from engine.domain.decision_matrix import Verdict
from engine.domain.thresholds import Profile


class SamplesError(ValueError):
    """A file that cannot be judged: the message names the line and the way out."""


@dataclass(frozen=True)
class FileSample:
    at: datetime
    metric: str
    value: float | None
    group: str  # canary | control | history
    line: int


def _parse_ts(raw: Any, line: int) -> datetime:
    if not isinstance(raw, str):
        raise SamplesError(f"line {line}: 'ts' must be an ISO-8601 time such as \"2026-12-03T08:00:05Z\"")
    try:
        at = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SamplesError(f"line {line}: 'ts' {raw[:40]!r} is not an ISO-8601 time "
                           "(e.g. \"2026-12-03T08:00:05Z\")") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _finite_number(value: Any) -> bool:
    """A JSON number a latency can be (not a bool; an integer too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _shown(value: Any, limit: int = 40) -> str:
    """A field's value as a message quotes it: short, and never an error of its own."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {len(str(abs(value))) if value.bit_length() < 14000 else 'thousands of'} digits"
    return repr(str(value)[:limit])


def parse_samples(text: str, profile: Profile) -> list[FileSample]:
    """Every sample of a JSON Lines text; the first bad line raises ``SamplesError`` naming it.
    Blank lines are skipped."""
    keys = set(profile.keys)
    out: list[FileSample] = []
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # bad JSON; an integer of thousands of digits; deep nesting
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else (
                "nested too deeply" if isinstance(exc, RecursionError) else "a number too long to read")
            raise SamplesError(f"line {i}: not JSON ({why}); one object a line, e.g. "
                               '{"ts": "…", "metric": "latency_p50", "value": 0.004}') from None
        if not isinstance(obj, dict):
            raise SamplesError(f"line {i}: a sample is a JSON object with ts, metric and value")
        for field in ("ts", "metric", "value"):
            if field not in obj:
                raise SamplesError(f"line {i}: no '{field}' (a sample has ts, metric, value and optionally group)")
        metric = obj["metric"]
        if not isinstance(metric, str) or metric not in keys:
            raise SamplesError(f"line {i}: unknown metric {_shown(metric)}; the profile's metrics are "
                               f"{', '.join(sorted(keys))}")
        value = obj["value"]
        if value is not None and not _finite_number(value):
            raise SamplesError(f"line {i}: 'value' must be a finite number or null (a source down), not "
                               f"{_shown(value)}")
        group = obj.get("group", "canary")
        if group not in ("canary", "control", "history"):
            raise SamplesError(f"line {i}: 'group' is \"canary\", \"control\" or \"history\", "
                               f"not {_shown(group, 20)}")
        out.append(FileSample(_parse_ts(obj["ts"], i), metric, None if value is None else float(value), group, i))
    if not out:
        raise SamplesError("the file has no sample: one JSON object a line with ts, metric and value")
    return out


@dataclass
class FileJudgement:
    verdict: Verdict
    evaluator: WindowEvaluator
    change_at: datetime
    baseline_samples: int
    window_samples: int
    stopped_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        bands = self.evaluator.state.last_bands
        by_label = {self.evaluator.profile.rule(k).label: k for k in self.evaluator.configured}
        criteria = []
        for c in self.verdict.criteria:
            key = by_label.get(c.name)
            band = bands.get(key) if key else None
            criteria.append({
                "name": c.name, "met": c.met, "value": c.value, "interval": c.interval, "n": c.n,
                "n_eff": c.n_eff, "band": band.level if band else None, "rule": c.rule,
                "applicable": c.applicable, "evidence": c.evidence, "warning": c.warning})
        out: dict[str, Any] = {
            "verdict": self.verdict.verdict.replace(" ", "_"), "criteria": criteria,
            "reasons": list(self.verdict.reasons), "warnings": list(self.verdict.warnings),
            "change_at": self.change_at.isoformat(), "baseline_samples": self.baseline_samples,
            "window_samples": self.window_samples}
        if self.stopped_at is not None:
            out["stopped_at"] = self.stopped_at.isoformat()
        return out


def judge_samples(samples: list[FileSample], profile: Profile, change_at: datetime | None = None) -> FileJudgement:
    """The verdict of a file's samples: before ``change_at`` the baseline (default: the first
    sample's time + the profile's ``baseline_minutes``), from it the window, a tick per
    timestamp, stopped where a live window would have stopped."""
    first = min((s.at for s in samples if s.group != "history"), default=min(s.at for s in samples))
    change = change_at or first + timedelta(minutes=profile.baseline_minutes)
    if change.tzinfo is None:
        change = change.replace(tzinfo=UTC)
    baselines: dict[str, list[float | None]] = defaultdict(list)
    times: dict[str, list[float]] = defaultdict(list)
    ticks: dict[datetime, dict[str, tuple[float | None, str | None, int | None]]] = defaultdict(dict)
    nb = nw = 0
    for s in sorted(samples, key=lambda x: (x.at, x.line)):
        key = {"canary": s.metric, "control": CONTROL + s.metric, "history": HISTORY + s.metric}[s.group]
        if s.group == "history" and s.at >= change:
            raise SamplesError(f"line {s.line}: a history sample at {s.at.isoformat()} is not before the change "
                               f"({change.isoformat()}): previous days' samples come before the baseline")
        if s.at < change:
            nb += 1
            baselines[key].append(s.value)
            times[key].append((s.at - change).total_seconds())
        else:
            nw += 1
            ticks[s.at][key] = (s.value, None if s.value is not None else "no value in the file", None)
    configured = {s.metric for s in samples if s.group == "canary"}
    if not ticks:
        raise SamplesError(f"no sample at or after the change ({change.isoformat()}): nothing to judge; "
                           "pass --change-at inside the file's time span")
    ev = WindowEvaluator(profile, baselines, configured, times)
    stopped: datetime | None = None
    times = sorted(ticks)
    for at in times:
        ev.add((at - change).total_seconds(), ticks[at])
        if ev.state.stop_reason:
            stopped = at
            break
    # The samples cover the window up to the last one plus its interval (a 5-s series from 08:30 to
    # 09:29:55 is the hour); a file that ends sooner holds less than the window, it was not stopped.
    steps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    step = statistics.median(steps) if steps else 0.0
    verdict = ev.finish(index_created=True, covered_s=ev.state.elapsed_s + step)
    # A file says nothing about the index: that criterion is shown, not counted.
    criteria = tuple(replace(c, met=None, value="not in the file", applicable=False,
                             rule="a samples file does not say; not counted")
                     if c.name == "Index created successfully" else c for c in verdict.criteria)
    verdict = replace(verdict, criteria=criteria)
    return FileJudgement(verdict, ev, change, nb, nw, stopped)
