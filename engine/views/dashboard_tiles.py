"""The dashboard's tiles and the words around them (docs/runbook.md#5-monitoring, docs/metrics.md,
docs/thresholds.md): one tile per metric (baseline, now, delta, band, the rule that decided it),
the window's progress line, the latency baseline in one line, and how a value, a unit and a
threshold are written — shared by the charts, the decision screen and the pushed announcements.
Pure functions over ``DashboardData`` (engine/views/dashboard_window.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.domain.clock import drill_mark, t_in_window
from engine.domain.stops import stop_words
from engine.domain.thresholds import Band, MetricRule, Profile, evaluate_band
from engine.views.dashboard_window import DashboardData, baseline_rows
from engine.views.report_model import cancel_words

# What the values of a change metric are measured in (a rule's unit is that of its *measure*, %).
VALUE_UNITS = {"latency_p50": "ms", "latency_p99": "ms", "request_latency_p50": "ms",
               "request_latency_p99": "ms", "throughput": "req/s"}
SHORT_NAMES = {"latency_p50": "p50", "latency_p99": "p99", "replication_lag": "lag", "lock_wait": "lock wait",
               "error_rate": "error rate"}


@dataclass(frozen=True)
class WindowProgress:
    phase: str  # waiting | running | paused | complete | stopped | observing (runbook 5.4, after the verdict)
    elapsed_min: float
    total_min: float
    text: str
    compression: float | None = None

    @property
    def fraction(self) -> float:
        return max(0.0, min(1.0, self.elapsed_min / self.total_min)) if self.total_min else 0.0


@dataclass(frozen=True)
class Tile:
    key: str
    name: str
    unit: str
    level: str  # ok | note | warning | critical | stale
    baseline: str
    now: str
    delta: str
    thresholds: str
    rule: str  # the sentence that decided the band
    error: str | None = None  # the source's error, when stale
    detail: str = ""  # n, how it was computed, since when (the whole sentence)
    short: str = ""  # the one fact that matters most now, in a few words (zone, outage, too few intervals)


def _baseline_words(profile: Profile, data: DashboardData) -> dict[str, Any]:
    """The latency baseline in one line (docs/verdict.md): how many minutes it spans (from the run's
    creation on, where a console sampled the prechecks), its n and — once the window judges it —
    its effective n; the control; and a warning when it is too short to judge the thresholds."""
    key = "latency_p50"
    if key not in data.configured or data.facts.alter_started_at is None:
        return {}
    times = [r.sampled_at for r in baseline_rows(data.pre_rows, data.facts.alter_started_at) if r.metric == key]
    n = len(times)
    span = (times[-1] - times[0]).total_seconds() / 60 if n > 1 else 0.0
    judge = data.window.ev.judges.get(key) if data.window is not None else None
    degenerate = judge.degenerate if judge is not None else None
    n_eff = ""
    if judge is not None and judge.tracker is not None and not degenerate:
        n_eff = f" (effective {float(judge.tracker.cur.n_eff[0]):.0f})"
    control = ("control: " + ", ".join(data.facts.control_schemas)) if data.facts.control_schemas else "no control"
    history = judge.history if judge is not None else None
    if history is not None and history.days:
        control += (f"; previous {history.days} day{'s' if history.days > 1 else ''} (Prometheus, n={history.n}): "
                    f"long-run ×{history.ratio:.0f}")
    # Once the window judges it, the effective n decides; before, the profile's baseline length.
    short = degenerate is not None if judge is not None else (n < 3 or span < profile.baseline_minutes)
    text = f"Baseline {span:.1f} min before the ALTER: p50 n={n}{n_eff}; {control}"
    if short:
        text = "⚠ " + text + (f" — too short: {degenerate}" if degenerate else
                              f" — under the profile's {profile.baseline_minutes:g} min: the latency verdict "
                              "may be INCONCLUSIVE")
    return {"baseline": text, "baseline_short": short}


def t_label(profile: Profile, t_s: float) -> str:
    """Seconds into the window as the run's one clock (engine.domain.clock): T+15:00 opens the window."""
    return t_in_window(profile.checkpoints[0], t_s)


def _progress(profile: Profile, data: DashboardData, now: datetime) -> WindowProgress:
    f = data.facts
    total = profile.window_minutes
    speed = f.time_compression
    compressed = f" · {drill_mark(speed)} ({total:g} min in {total / speed:.1f} real min)" if speed and speed > 1 else ""
    start = data.window_started_at
    if start is None:
        why = ("the ALTER is running" if f.alter_started_at and not f.alter_finished_at
               else "after the ALTER and its cool-down" if f.alter_finished_at else "after the ALTER")
        return WindowProgress("waiting", 0.0, total, f"Window T+15 → T+75: not open yet ({why}){compressed}", speed)
    state = data.state
    obs = f.observation
    if obs is not None and obs.ok is None and f.status == "observing" and obs.started_at is not None:
        # Runbook 5.4: the verdict is in; 15 more minutes are watched before success is declared.
        took = max(0.0, (now - obs.started_at).total_seconds() / 60)
        shown_obs = min(took, obs.minutes)
        ends = "; the run completes when it ends" if took < obs.minutes else "; ending with the next tick"
        return WindowProgress("observing", shown_obs, obs.minutes,
                              f"Post-success observation  {shown_obs:.1f} / {obs.minutes:g} min — the verdict "
                              f"({f.decision.verdict if f.decision else '—'}) is observed before success is "
                              f"declared (runbook 5.4){ends}"
                              + (f" · TIME ×{speed:g}" if speed else ""), speed)
    decided = f.decision is not None and f.verdict_at is not None
    if decided or f.status not in ("scheduled", "running", "observing"):
        elapsed = state.elapsed_s / 60
        stopped = (f.decision is not None and bool(f.decision.evidence.get("stopped_early"))) or elapsed < total
        phase = "stopped" if stopped else "complete"
    else:
        elapsed = max(state.elapsed_s, (now - start).total_seconds()) / 60
        phase = "paused" if state.paused else "running"
    shown = min(elapsed, total) if phase != "paused" else elapsed
    words = {"running": "cannot be shortened (runbook 5.4)",
             "paused": "AUTO-PAUSE: the decision waits for an approval",
             "complete": "complete", "stopped": "stopped early"}[phase]
    if phase == "running" and elapsed >= total:
        words = "complete; the verdict follows the last tick"
    if phase == "stopped":  # where and why, in the words the decision and the report use
        evidence = f.decision.evidence if f.decision is not None else {}
        at = t_label(profile, state.elapsed_s)
        words = (stop_words(evidence, profile.checkpoints[0]).replace("the window ", "", 1)
                 or (f"stopped by the kill switch at {at}" if f.fail_reason == "kill_switch"
                     else f"stopped at {at} ({f.status})"))
    if data.catching_up:
        words += f"; catching up with the stored samples (evaluated to {t_label(profile, state.elapsed_s)})"
    if f.gaps:
        words += "; " + ", ".join(
            f"no samples {t_label(profile, (a - start).total_seconds())}→{t_label(profile, (b - start).total_seconds())}"
            for a, b in f.gaps) + " (the driving console was down: a gap in the charts)"
    if obs is not None and obs.ok is not None:
        words += f"; {obs.text}"
    if f.status == "cancelled" and (cancelled := cancel_words(f.status, f.fail_reason, obs)) \
            and "kill switch" not in words:  # a window the kill switch stopped says so already
        words += " · RUN CANCELLED" + cancelled.removeprefix("run cancelled")
    text = f"Window T+15 → T+75  {shown:.1f} / {total:g} min — {words}{compressed}"
    return WindowProgress(phase, shown, total, text, speed)


def value_unit(rule: MetricRule) -> str:
    return VALUE_UNITS.get(rule.key, rule.unit)


def fmt(value: float | None, unit: str) -> str:
    """A value for a tile: three significant digits or so, its unit after it."""
    if value is None:
        return "—"
    a = abs(value)
    if float(value).is_integer() and a < 1e6:
        text = f"{value:.0f}"
    else:
        text = (f"{value:.0f}" if a >= 100 else f"{value:.1f}" if a >= 10 or (unit == "%" and a >= 1) else
                f"{value:.2f}" if a >= 1 or unit == "%" else f"{value:.3g}")
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def thresholds_text(rule: MetricRule) -> str:
    parts = [f"warn {rule.describe_threshold('warning')}", f"crit {rule.describe_threshold('critical')}"]
    if rule.note is not None:
        parts.append(f"note {rule.describe_threshold('note')}")
    return " · ".join(parts)


def _tile(profile: Profile, data: DashboardData, rule: MetricRule) -> Tile:
    unit = value_unit(rule)
    base = data.base_medians.get(rule.key)
    window = data.window
    track = window.tracks.get(rule.key) if window else None
    band: Band | None = data.state.last_bands.get(rule.key) if window else None
    detail = short = ""
    if band is None:  # before the window (or no tick of it yet): the latest sample against the baseline
        row = data.pre_window.get(rule.key)
        value, error = (row.value, row.error) if row else (None, "no sample yet")
        band = evaluate_band(rule, value, base if rule.mode == "change_pct" else None, error)
        now_text = fmt(value, unit)
        if window is None:
            detail = short = "before the window"
    else:
        value, error = band.value, band.error
        now_text = fmt(value, unit)
        if rule.latency and band.measure is not None and base:
            now_text = fmt(base * (1 + band.measure / 100), unit)
            detail = f"5-min median; last interval {fmt(value, unit)}"
            if (band.n or 0) < profile.min_samples:
                detail += f"; {band.n or 0}/{profile.min_samples} intervals: not yet counted"
                short = f"too few intervals: {band.n or 0}/{profile.min_samples}"  # fits a tile (26 cells)
        if track is not None and track.last_how and not rule.latency:
            detail = track.last_how
        episode = data.state.episodes.get(rule.key)
        if episode is not None:
            detail = (detail + "; " if detail else "") + (
                f"in zone since {t_label(profile, episode.since_s)}, observed until "
                f"{t_label(profile, episode.extension_ends_s)}")
            short = f"zone {t_label(profile, episode.since_s)} → {t_label(profile, episode.extension_ends_s)}"
        if band.level == "stale" and track is not None and track.first_error_at is not None:
            detail = short = f"stale since {t_label(profile, track.first_error_at)}"
    if rule.mode == "change_pct":
        delta = f"{band.measure:+.1f}%" if band.measure is not None else "—"
    elif value is not None and base and base > 0 and value / base >= 10:
        delta = f"×{value / base:.0f}"  # +21567 % says less than ×217
    elif value is not None and base:
        delta = f"{(value - base) / abs(base) * 100:+.0f}%"
    elif value is not None and base is not None:
        delta = ("+" if value >= base else "") + fmt(value - base, unit)  # "+1.85 s", not "+1.8456 s"
    else:
        delta = "—"
    return Tile(rule.key, rule.label, unit, band.level, fmt(base, unit), now_text, delta, thresholds_text(rule),
                band.rule, band.error if band.level == "stale" else None, detail, short)
