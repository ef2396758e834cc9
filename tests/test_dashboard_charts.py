"""The dashboard's charts (docs/runbook.md#5-monitoring): the window's span, the threshold lines and
markers, min/max downsampling, the gap nobody sampled; a chart widget redrawn only when a dot it
draws moves, and only each column's lowest and highest point drawn."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dashboard_drill import Drill
from textual.app import App

from engine.views.dashboard import CHART_BUCKETS
from screens.monitoring_widgets import MetricChart


def test_charts_span_the_window_with_thresholds_markers_and_min_max_downsampling():
    d = Drill(interval=1.0)
    d.minutes(30)
    spike_at = d.tick(lock_wait=4.2, threads_running=77.0)
    d.minutes(30)
    v = d.view()
    charts = {c.key: c for c in v.charts}
    assert list(charts) == ["latency_p50", "latency_p99", "replication_lag", "lock_wait", "threads_running"]
    for c in v.charts:
        assert len(c.x) <= 2 * CHART_BUCKETS and len(c.x) == len(c.y) and 0 < c.revision <= 2 * 3601
    lock = charts["lock_wait"]
    assert max(lock.y) == 4.2, "a one-second spike survives the downsampling"
    assert (spike_at - d.window_start).total_seconds() / 60 in lock.x
    assert [(ln.level, ln.y) for ln in lock.lines] == [("warning", 1), ("critical", 5)]
    assert lock.y_range[1] == pytest.approx(5.5), "past the warning: the critical line comes into view"
    assert charts["threads_running"].y_range[1] == pytest.approx(110.0)
    p50 = charts["latency_p50"]
    assert [ln.level for ln in p50.lines] == ["note", "warning", "critical"]
    assert p50.lines[1].y == pytest.approx(1.20 * 1.10, rel=0.02) and p50.median_y, "the judged median"
    kinds = [(m.kind, m.label) for m in p50.markers]
    assert kinds[0] == ("alter_end", "ALTER ended T+14:36") and p50.markers[0].x == -0.4  # the cool-down
    assert [lbl for k, lbl in kinds[1:]] == ["T+15", "T+30", "T+45", "T+60", "T+75"]
    assert p50.x_range == (-0.4, 60.0)


def test_a_gap_nobody_sampled_breaks_the_charts_lines_and_is_said():
    """A driving console killed at T+30 and taken over at T+38: the charts do not draw a line
    across the eight minutes nobody saw, and the window's line says when they were."""
    d = Drill()
    d.minutes(15)
    last = d.at - timedelta(seconds=d.interval)
    d.at += timedelta(minutes=8)  # nobody sampled
    resumed = d.at
    d.minutes(5)
    view = d.view(gaps=((last, resumed),))
    chart = next(c for c in view.charts if c.key == "threads_running")
    assert len(chart.breaks) == 1
    before, after = chart.x[chart.breaks[0] - 1], chart.x[chart.breaks[0]]
    assert after - before >= 7, (before, after)
    p50 = next(c for c in view.charts if c.key == "latency_p50")
    assert p50.breaks and p50.median_breaks
    assert "no samples T+29:55→T+38:00" in view.progress.text and "gap in the charts" in view.progress.text
    calm = Drill()
    calm.minutes(20)
    assert not any(c.breaks for c in calm.view().charts), "no gap, no break"


async def test_a_chart_is_redrawn_only_when_a_dot_it_draws_moves():
    """A bucket's new minimum a hair below the old one lands on the same braille dot: no redraw
    (a redraw costs ~15 ms, five charts a second at a 1 s interval); a point a dot away redraws."""
    from engine.views.dashboard import ChartSeries

    class One(App):
        def compose(self):
            yield MetricChart("threads_running")

    def series(y_last: float, revision: int) -> ChartSeries:
        xs = tuple(float(i) for i in range(30))
        return ChartSeries("threads_running", "Threads running", "", xs, (*([10.0] * 29), y_last), (), (),
                           (0.0, 60.0), (0.0, 100.0), revision=revision)

    app = One()
    async with app.run_test(size=(40, 14)) as pilot:
        chart = app.query_one(MetricChart)
        await pilot.pause()
        assert chart.show(series(20.0, 1)) and chart.draws == 1
        assert not chart.show(series(20.01, 2)) and chart.draws == 1, "the same dot: not redrawn"
        assert chart.series.revision == 2, "the newest series is kept for the next repaint"
        assert chart.show(series(40.0, 3)) and chart.draws == 2, "a dot away: redrawn"


def test_a_chart_draws_only_the_lowest_and_highest_point_of_each_column_of_dots():
    from screens.monitoring_widgets import thin

    xs = [0.0, 0.1, 0.2, 0.3, 1.0, 1.5, 2.2]
    ys = [5.0, 9.0, 1.0, 4.0, 3.0, 3.0, 7.0]
    # One dot a minute over 0-4: 0.0-0.3 are one column (its high 9 at 0.1 and its low 1 at 0.2),
    # 1.0 and 1.5 another (equal: one point), 2.2 alone.
    assert thin(xs, ys, (0.0, 4.0), 4) == ([0.1, 0.2, 1.0, 2.2], [9.0, 1.0, 3.0, 7.0])
    assert thin([], [], (0.0, 4.0), 4) == ([], [])
    assert thin(xs, ys, (0.0, 4.0), 1000) == (xs, ys), "every point its own column: all kept"
