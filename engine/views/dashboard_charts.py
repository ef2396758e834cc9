"""The dashboard's charts as data (docs/runbook.md#5-monitoring): p50/p99, lag, lock waits and
threads running over the window, with the thresholds as lines and the ALTER's end and the
checkpoints as markers. The points are the downsampled tracks of engine/views/dashboard_window.py;
the Monitoring screen draws them with plotext.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.domain.decision import checkpoint_offsets_s
from engine.domain.thresholds import Profile
from engine.views.dashboard_tiles import fmt, t_label, value_unit
from engine.views.dashboard_window import DashboardData

CHART_METRICS = ("latency_p50", "latency_p99", "replication_lag", "lock_wait", "threads_running")


@dataclass(frozen=True)
class ChartLine:
    y: float
    level: str  # note | warning | critical
    label: str


@dataclass(frozen=True)
class ChartMarker:
    x: float
    kind: str  # alter_end | checkpoint
    label: str


@dataclass(frozen=True)
class ChartSeries:
    key: str
    title: str
    unit: str
    x: tuple[float, ...]  # minutes from the window's start (T+15 = 0)
    y: tuple[float, ...]
    lines: tuple[ChartLine, ...]
    markers: tuple[ChartMarker, ...]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    level: str = "ok"
    median_x: tuple[float, ...] = ()  # latency: the 5-minute median the band is judged on
    median_y: tuple[float, ...] = ()
    revision: int = 0  # moves when a drawn point moved: the screen redraws a chart only then
    note: str = ""
    breaks: tuple[int, ...] = ()  # indices of x where the line starts again after a gap
    median_breaks: tuple[int, ...] = ()

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.key, self.revision, self.lines, self.markers, self.x_range, self.y_range, self.level, self.note)


def _chart(profile: Profile, data: DashboardData, key: str) -> ChartSeries:
    rule = profile.rule(key)
    unit = value_unit(rule)
    window = data.window
    track = window.tracks.get(key) if window else None
    xs, ys, breaks = track.segmented() if track else ((), (), ())
    mx, my, mbreaks = track.segmented(medians=True) if track and rule.latency else ((), (), ())
    xs = tuple(x / 60 for x in xs)
    mx = tuple(x / 60 for x in mx)
    base = data.base_medians.get(key)
    lines: list[ChartLine] = []
    for level, limit in (("note", rule.note), ("warning", rule.warning), ("critical", rule.critical)):
        if limit is None:
            continue
        if rule.mode == "change_pct":
            if not base:
                continue
            y = base * (1 + limit / 100)
            lines.append(ChartLine(y, level, f"{level} {rule.describe_threshold(level)} = {fmt(y, unit)}"))
        else:
            lines.append(ChartLine(limit, level, f"{level} {rule.describe_threshold(level)}"))
    markers = _markers(profile, data)
    total = profile.window_minutes
    lo_x = min([0.0] + [m.x for m in markers if m.kind == "alter_end"])
    hi_x = max([total] + list(xs[-1:]))
    data_hi = max(ys + my, default=0.0)
    data_lo = min(ys + my, default=0.0)
    warn = next((ln.y for ln in lines if ln.level == "warning"), None)
    crit = next((ln.y for ln in lines if ln.level == "critical"), None)
    hi = data_hi
    if warn is not None:  # the warning line is always in sight; the critical one once data reaches the warning
        hi = max(hi, warn)
        if crit is not None and data_hi >= warn:
            hi = max(hi, crit)
    if rule.mode == "change_pct" and ys:  # a latency: around its values, not from zero
        lo = max(0.0, min(data_lo, base or data_lo) - 0.1 * (hi - data_lo))
        hi = hi + 0.1 * (hi - lo) if hi > lo else hi * 1.1 or 1.0
    else:
        lo = min(0.0, data_lo)
        hi = hi * 1.1 if hi > 0 else 1.0
    band = data.state.last_bands.get(key)
    level = band.level if band else "ok"
    title = f"{rule.label.replace(' change', '').replace('Query latency', 'Latency')} ({unit})" if unit else rule.label
    note = "5-min median and each interval" if rule.latency else ""
    if track is None or not xs:
        note = "no sample in the window yet" if window else "the window is not open yet"
    return ChartSeries(key, title, unit, xs, ys, tuple(lines), markers, (lo_x, hi_x), (lo, hi), level, mx, my,
                       track.version if track else 0, note, breaks, mbreaks)


def _markers(profile: Profile, data: DashboardData) -> tuple[ChartMarker, ...]:
    out: list[ChartMarker] = []
    start = data.window_started_at
    end = data.facts.alter_finished_at
    if start is not None and end is not None:
        x = (end - start).total_seconds() / 60
        out.append(ChartMarker(round(x, 3), "alter_end", f"ALTER ended {t_label(profile, x * 60)}"))
    for label, at_s in checkpoint_offsets_s(profile):
        out.append(ChartMarker(at_s / 60, "checkpoint", label))
    return tuple(out)
