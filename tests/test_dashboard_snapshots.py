"""SVG snapshots of the monitoring dashboard (green, warnings, critical, a stale source, AUTO-PAUSE)
and of the decision screen (each verdict), at the three terminal sizes (tests/conftest.py).
Deterministic: fixed datetimes, fixed data."""

from __future__ import annotations

from dataclasses import replace

from dashboard_drill import PLAN, fail_data, inconclusive_data, pass_data, warning_data
from dashboard_host import (
    FRAME,
    Host,
    _dashboard,
    _settle,
    critical_view,
    green_view,
    paused_view,
    stale_view,
    warnings_view,
)

from engine.views.dashboard import decision_view
from screens.decision import DecisionScreen


def test_snapshot_dashboard_green(snap_compare, term):
    assert snap_compare(_dashboard(green_view()), terminal_size=term, run_before=_settle())


def test_snapshot_dashboard_with_warnings(snap_compare, term):
    assert snap_compare(_dashboard(warnings_view()), terminal_size=term, run_before=_settle())


def test_snapshot_dashboard_critical(snap_compare, term):
    assert snap_compare(_dashboard(critical_view()), terminal_size=term, run_before=_settle())


def test_snapshot_dashboard_with_a_stale_source(snap_compare, term):
    assert snap_compare(_dashboard(stale_view()), terminal_size=term, run_before=_settle())


def test_snapshot_dashboard_auto_paused(snap_compare, term):
    assert snap_compare(_dashboard(paused_view()), terminal_size=term, run_before=_settle())


def _decision(view):
    return Host(DecisionScreen(PLAN), replace(FRAME, step="decision", run="run 3f2a9c1e completed"), view)


def test_snapshot_decision_pass(snap_compare, term):
    assert snap_compare(_decision(decision_view(pass_data())), terminal_size=term, run_before=_settle())


def test_snapshot_decision_pass_with_warning(snap_compare, term):
    assert snap_compare(_decision(decision_view(warning_data())), terminal_size=term, run_before=_settle())


def test_snapshot_decision_fail(snap_compare, term):
    assert snap_compare(_decision(decision_view(fail_data())), terminal_size=term, run_before=_settle())


def test_snapshot_decision_inconclusive(snap_compare, term):
    assert snap_compare(_decision(decision_view(inconclusive_data())), terminal_size=term,
                        run_before=_settle())
