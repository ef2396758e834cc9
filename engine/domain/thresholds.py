"""The threshold profile (docs/thresholds.md; runbook sections 4–5), as data, and the band of one value.

Every boundary is inclusive: a value *at* a threshold is in that threshold's band (runbook
"Decision Rules" §2). For "lower is worse" metrics (buffer pool hit rate, throughput) "at or past"
means at or below. Change metrics are measured in percent against the baseline captured before
the ALTER; absolute metrics as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

LEVEL_RANK = {"stale": -1, "ok": 0, "note": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True)
class MetricRule:
    key: str
    label: str
    unit: str  # unit of the *measure* compared with the thresholds: "%", "s", "ms", "MB/s", ""
    mode: str  # "change_pct": (value − baseline) / baseline × 100; "absolute": the value itself
    warning: float
    critical: float
    note: float | None = None
    lower_is_worse: bool = False
    # Final matrix (runbook 5.1): PASS needs the measure strictly below this at the end.
    pass_below: float | None = None
    pass_mode: str = "measure"  # "measure", or "increase": value − baseline (error rate)
    # Severity routing (runbook 6.1): "critical" (lock, replication) → immediate manual rollback;
    # "major" (latency, errors) → rollback decision with ≥ 10 samples; "minor" → re-evaluate in 15 min.
    severity: str = "minor"
    source: str = "mysql"  # mysql | prometheus | killswitch
    # Runbook 5.3: reaching critical is a failure condition that stops the run now.
    stop_at_critical: bool = False
    latency: bool = False  # compared by a Hodges–Lehmann shift ratio with a confidence interval
    # The value with nothing wrong: a tightened profile measures its lines' distance from here
    # (0 for a change or a load; 100 % for a hit rate or an availability).
    best: float = 0.0

    def worse_or_equal(self, measure: float, limit: float) -> bool:
        return measure <= limit if self.lower_is_worse else measure >= limit

    def describe_threshold(self, level: str) -> str:
        limit = {"warning": self.warning, "critical": self.critical, "note": self.note}[level]
        if limit is not None and not math.isfinite(limit):
            return "none (a warning only)"
        sign = "≤" if self.lower_is_worse else "≥"
        plus = "+" if self.mode == "change_pct" and limit is not None and limit > 0 else ""
        return f"{sign} {plus}{limit:g}{self.unit}"


DEFAULT_RULES: tuple[MetricRule, ...] = (
    MetricRule("latency_p50", "Query latency p50 change", "%", "change_pct", 10, 50, note=5, pass_below=10,
               severity="major", stop_at_critical=True, latency=True),
    MetricRule("latency_p99", "Query latency p99 change", "%", "change_pct", 10, 100, pass_below=20,
               severity="major", stop_at_critical=True, latency=True),
    MetricRule("lock_wait", "Lock wait time", "s", "absolute", 1, 5, pass_below=1, severity="critical",
               stop_at_critical=True),
    MetricRule("replication_lag", "Replication lag", "s", "absolute", 30, 60, note=10, pass_below=30,
               severity="critical", stop_at_critical=True),
    MetricRule("error_rate", "Error rate (app)", "%", "absolute", 0.1, 1, pass_below=0.1, pass_mode="increase",
               severity="major", source="prometheus", stop_at_critical=True),
    MetricRule("connections", "Active connections / max_connections", "%", "absolute", 80, 90),
    MetricRule("threads_running", "Threads running", "", "absolute", 50, 100),
    MetricRule("buffer_pool_hit", "InnoDB buffer pool hit rate", "%", "absolute", 95, 90, lower_is_worse=True,
               best=100),
    MetricRule("cpu", "CPU", "%", "absolute", 70, 85, source="prometheus"),
    MetricRule("memory", "Memory", "%", "absolute", 80, 90, source="prometheus"),
    MetricRule("disk_read", "Disk read", "MB/s", "absolute", 100, 200, source="prometheus"),
    MetricRule("disk_write", "Disk write", "MB/s", "absolute", 50, 100, source="prometheus"),
    MetricRule("network_latency", "Network latency", "ms", "absolute", 50, 100, source="prometheus"),
    MetricRule("request_latency_p50", "Request latency p50 change", "%", "change_pct", 20, 50,
               source="prometheus", latency=True),
    MetricRule("request_latency_p99", "Request latency p99 change", "%", "change_pct", 30, 100,
               source="prometheus", latency=True),
    MetricRule("throughput", "Throughput change", "%", "change_pct", -10, -50, lower_is_worse=True,
               source="prometheus"),
    MetricRule("killswitch_response", "Kill-switch API response time", "ms", "absolute", 500, 2000,
               source="killswitch"),
    # Runbook 5.2 #4 "single query timeout: investigate, continue if isolated": a warning from the
    # first statement on the table that timed out in an interval, never an alert; timeouts that go
    # on through the 2× extended observation escalate like any warning zone (not isolated).
    MetricRule("query_timeouts", "Query timeouts on the table", "", "absolute", 1, math.inf),
    # Runbook 4.4: the share of the switch's reads that answered since the run's sampling began;
    # below 99 % the window stops (abort and investigate). A read that fails is also fail-closed:
    # the switch counts as active, which stops the run on its own (docs/kill-switch.md).
    MetricRule("killswitch_availability", "Kill-switch API availability", "%", "absolute", 99.9, 99,
               lower_is_worse=True, severity="major", source="killswitch", stop_at_critical=True, best=100),
)


@dataclass(frozen=True)
class Profile:
    rules: tuple[MetricRule, ...] = DEFAULT_RULES
    min_samples: int = 10  # below: INCONCLUSIVE, never an automatic rollback (docs/runbook.md#4-execution)
    low_confidence_below: int = 30
    window_minutes: float = 60.0  # runbook 5.4: cannot be shortened
    checkpoints: tuple[int, ...] = (15, 30, 45, 60, 75)  # minutes after T0 (T+15 opens the window)
    warning_observation_minutes: float = 15.0
    extension_factor: float = 2.0  # a metric in its warning zone is observed 2× longer
    concurrent_escalate: int = 3
    concurrent_autopause: int = 5
    post_rollback_minutes: float = 30.0
    post_success_minutes: float = 15.0
    end_window_minutes: float = 5.0  # "at the end" = the median of the last five minutes
    rolling_minutes: float = 5.0  # a latency's band: its shift over the last five minutes
    confidence: float = 0.98
    # The latency verdict under noise (docs/verdict.md): the false-FAIL rate of the sequential
    # looks, shared by the latency criteria; the one-sided confidence of a warning's and of a harm
    # limit's lower bound; how long a harm limit must hold before it stops the window.
    fail_alpha: float = 0.01
    warning_confidence: float = 0.995
    harm_confidence: float = 0.999
    confirmation_minutes: float = 2.0
    baseline_minutes: float = 30.0  # the baseline a file replay assumes; shorter ones are flagged on screen
    # The executor keeps sampling before the ALTER (up to the plan's baseline_extend_max_seconds)
    # until every latency's baseline holds this many effective intervals (docs/verdict.md,
    # "Baseline"): twice min_samples, so the learnt effective n, itself uncertain, stays above it.
    baseline_effective_n: float = 20.0
    name: str = "default"
    # Set on a tightened profile (a WARNING-band table, runbook 2.3): the rows the size gate counted.
    tightened_rows: int | None = None

    def rule(self, key: str) -> MetricRule:
        for r in self.rules:
            if r.key == key:
                return r
        raise KeyError(key)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(r.key for r in self.rules)


class ProfileError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


_RULE_FIELDS = {"warning", "critical", "note", "pass_below"}
_PROFILE_FIELDS = {
    "min_samples": int, "low_confidence_below": int, "warning_observation_minutes": float,
    "extension_factor": float, "concurrent_escalate": int, "concurrent_autopause": int,
    "post_rollback_minutes": float, "post_success_minutes": float, "end_window_minutes": float,
    "rolling_minutes": float,
    "window_minutes": float, "confirmation_minutes": float,
    "baseline_minutes": float, "baseline_effective_n": float,
}

# Upper bounds on the settings (the rest: 10,000): a day for anything in minutes, so a typo or an
# ``inf`` never makes a window that does not end.
_PROFILE_CAPS = {key: 1440.0 for key in _PROFILE_FIELDS if key.endswith("_minutes")} | {"extension_factor": 10.0}


def profile_from_overrides(overrides: dict[str, Any], base: Profile | None = None, name: str = "plan") -> Profile:
    """Apply ``[thresholds]`` from a plan or a profile file: ``[thresholds.latency_p50] warning = 8``
    and top-level settings such as ``min_samples``. One message per problem. The window can be
    lengthened, never shortened below 60 minutes (runbook 5.4)."""
    base = base or Profile()
    problems: list[str] = []
    rules = {r.key: r for r in base.rules}
    settings: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in rules:
            if not isinstance(value, dict):
                problems.append(f"'thresholds.{key}' must be a table such as {{warning = 8, critical = 40}}")
                continue
            changes = {}
            for f, v in value.items():
                if f not in _RULE_FIELDS:
                    problems.append(f"'thresholds.{key}.{f}' is not a threshold; allowed: {', '.join(sorted(_RULE_FIELDS))}")
                elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    problems.append(f"'thresholds.{key}.{f}' must be a number")
                else:
                    changes[f] = float(v)
            rule = replace(rules[key], **changes)
            if not rule.worse_or_equal(rule.critical, rule.warning):
                problems.append(f"'thresholds.{key}': critical ({rule.critical:g}) must be at or past warning "
                                f"({rule.warning:g}) for a metric where {'lower' if rule.lower_is_worse else 'higher'} is worse")
            if rule.note is not None and not rule.worse_or_equal(rule.warning, rule.note):
                problems.append(f"'thresholds.{key}': note ({rule.note:g}) must come before warning ({rule.warning:g})")
            rules[key] = rule
        elif key in _PROFILE_FIELDS:
            kind = _PROFILE_FIELDS[key]
            cap = _PROFILE_CAPS.get(key, 10_000.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                    value <= 0 or (kind is int and not float(value).is_integer())):
                problems.append(f"'thresholds.{key}' must be a positive {'whole number' if kind is int else 'number'}")
                continue
            if value > cap:  # nan, inf or 1e308 minutes: a window that never ends, a harm limit that never holds
                problems.append(f"'thresholds.{key}' must be at most {cap:g}{' (a day)' if key.endswith('_minutes') else ''}, not {value:g}")
                continue
            settings[key] = kind(value)
        else:
            problems.append(f"unknown key 'thresholds.{key}': metrics are {', '.join(rules)}; "
                            f"settings are {', '.join(sorted(_PROFILE_FIELDS))}")
    if settings.get("confirmation_minutes", base.confirmation_minutes) >= settings.get(
            "window_minutes", base.window_minutes):
        problems.append("'thresholds.confirmation_minutes' must be shorter than the window: a harm limit that must "
                        "hold longer than the window could never stop it")
    if settings.get("window_minutes", base.window_minutes) < 60:
        problems.append("'thresholds.window_minutes' cannot shorten the 60-minute monitoring window (runbook 5.4)")
    if settings.get("concurrent_autopause", base.concurrent_autopause) <= settings.get(
            "concurrent_escalate", base.concurrent_escalate):
        problems.append("'thresholds.concurrent_autopause' must be above concurrent_escalate")
    if settings.get("baseline_effective_n", base.baseline_effective_n) < settings.get("min_samples", base.min_samples):
        problems.append("'thresholds.baseline_effective_n' must be at least min_samples: a baseline the verdict "
                        "cannot judge would start the ALTER")
    if problems:
        raise ProfileError(problems)
    return replace(base, rules=tuple(rules[r.key] for r in base.rules), name=name, **settings)


# --- the tightened profile (a WARNING-band table) ----------------------------------------------

# Runbook 2.3: a table of 5M–10M rows gets extra monitoring. Its warning (and note) lines sit at
# three quarters of their distance from the metric's ``best`` value; the critical lines (the
# runbook's failure conditions and alerts) and the PASS-at-end limits stay as written.
TIGHTEN_FACTOR = 0.75


def tightened(profile: Profile, rows: int, factor: float = TIGHTEN_FACTOR) -> Profile:
    """``profile`` with every warning and note line moved to ``factor`` of its distance from the
    metric's best value: latency p50 warning +10 % → +7.5 %, lock wait 1 s → 0.75 s, buffer pool
    hit ≤ 95 % → ≤ 96.25 %. Pure; the same for the console, the CLI and a replay."""

    def closer(limit: float, best: float) -> float:
        return round(best + (limit - best) * factor, 6)

    rules = tuple(replace(r, warning=closer(r.warning, r.best),
                          note=None if r.note is None else closer(r.note, r.best)) for r in profile.rules)
    return replace(profile, rules=rules, name=f"{profile.name}, tightened ×{factor:g}", tightened_rows=rows)


def tightened_note(profile: Profile) -> str:
    """What the dashboard says about a tightened profile ("" for any other)."""
    if profile.tightened_rows is None:
        return ""
    return (f"tightened: the table has {profile.tightened_rows:,} rows (size gate WARNING) — warning lines at "
            f"{TIGHTEN_FACTOR:.0%} of their usual distance, critical lines as written")


# --- the band of one value ------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    metric: str
    level: str  # ok | note | warning | critical | stale
    measure: float | None  # what was compared: the change in % or the value
    value: float | None
    baseline: float | None
    threshold: str  # the boundary that decided, e.g. "≥ +10%"
    rule: str  # the sentence that decided
    error: str | None = None
    n: int | None = None

    @property
    def stale(self) -> bool:
        return self.level == "stale"


def measure_of(rule: MetricRule, value: float, baseline: float | None) -> float | None:
    if rule.mode == "absolute":
        return value
    if baseline is None or baseline == 0 or not math.isfinite(baseline):
        return None
    return (value - baseline) / abs(baseline) * 100.0


def evaluate_band(rule: MetricRule, value: float | None, baseline: float | None = None,
                  error: str | None = None, n: int | None = None) -> Band:
    """The band of one value. No value (a source down) is *stale* — never OK, never a failure."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Band(rule.key, "stale", None, None, baseline, "—",
                    f"{rule.label}: no value ({error or 'source unavailable'})", error or "no value", n)
    measure = measure_of(rule, value, baseline)
    if measure is None:
        return Band(rule.key, "stale", None, value, baseline, "—",
                    f"{rule.label}: no baseline to compare with", "no baseline", n)
    for level, limit in (("critical", rule.critical), ("warning", rule.warning), ("note", rule.note)):
        if limit is not None and rule.worse_or_equal(measure, limit):
            threshold = rule.describe_threshold(level)
            return Band(rule.key, level, measure, value, baseline, threshold,
                        f"{rule.label} {_fmt(rule, measure)} is {threshold}: {level}", None, n)
    return Band(rule.key, "ok", measure, value, baseline, rule.describe_threshold("warning"),
                f"{rule.label} {_fmt(rule, measure)} is short of the warning at {rule.describe_threshold('warning')}",
                None, n)


def _fmt(rule: MetricRule, measure: float) -> str:
    if rule.mode == "change_pct":
        return f"{measure:+.1f}%"
    return f"{num(measure)}{rule.unit}"


def num(value: float) -> str:
    """A measured value as a person reads it: three significant digits, no exponent below 1e-4
    ("5.02", "2.68", "0.0123", "1235"); a measurement's six digits say nothing more."""
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"
