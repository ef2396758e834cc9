"""SVG snapshots of what a person sees (pytest-textual-snapshot). Deterministic: a frozen clock,
an injected identity, a store the test fills. Update with --snapshot-update, and look at the SVG."""

from __future__ import annotations

from test_console_pilot import make_app


def _settle(app):
    async def run_before(pilot):
        for _ in range(50):
            await pilot.pause(0.02)
            if app.frame.kill is not None and app.screen.facts is not None and "report" in app.steps:
                break
    return run_before


def test_plan_screen(snap_compare, term, tmp_path):
    app = make_app(tmp_path, steady=True)
    assert snap_compare(app, terminal_size=term, run_before=_settle(app))


def test_plan_screen_with_the_kill_switch_active(snap_compare, term, tmp_path):
    app = make_app(tmp_path, steady=True)
    app.store.set_kill_switch("acme", "global", True, "nok@10.0.0.9", "p99 doubling")
    assert snap_compare(app, terminal_size=term, run_before=_settle(app))

