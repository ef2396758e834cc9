"""The console on a jump host's terminal (docs/runbook.md#small-terminals): at 80×24 every metric's
band is on the dashboard without scrolling, the footer never cuts a key off and says PgDn when the
body runs past the bottom; at 100×30 the kill-switch state, every band, the window's state and the
next key are on screen at once; the Plan screen's scope table fits 80 columns without cutting a
name. Pilot tests over the screens as the App hosts them (the dashboard's recorded drills)."""

from __future__ import annotations

import pytest
from dashboard_host import _dashboard, critical_view, green_view, paused_view
from textual.app import App
from textual.binding import Binding
from textual.widgets import DataTable, Static
from textual.widgets._footer import FooterKey

from screens.base import RunbookScreen, StepFooter
from screens.frame import RunFrame
from screens.monitoring_widgets import BandLine, TileWidget
from screens.plan import scope_widths


async def _settled(pilot) -> None:
    for _ in range(4):
        await pilot.pause(0.05)


def _visible(widget, screen) -> bool:
    """On screen whole, above the footer: no scrolling needed to read it."""
    footer = screen.query_one(StepFooter)
    r = widget.region
    return r.height > 0 and r.width > 0 and r.y >= 0 and r.bottom <= footer.region.y and r.right <= screen.size.width


def _footer_keys(screen) -> list[FooterKey]:
    return list(screen.query_one(StepFooter).query(FooterKey))


def _footer_fits(screen) -> None:
    """Every key of the footer whole inside the terminal, none over another."""
    keys = _footer_keys(screen)
    assert keys
    spans = sorted((k.region.y, k.region.x, k.region.right, k.key_display) for k in keys)
    for _y, x, right, key in spans:
        assert 0 <= x and right <= screen.size.width, f"{key} is cut off at the edge: {x}..{right}"
    for k in keys:
        words = f"{k.key_display} {k.description}".strip()
        assert k.region.width >= len(words), f"{words!r} is cut to {k.region.width} columns"
    for (y1, _, right1, k1), (y2, x2, _, k2) in zip(spans, spans[1:], strict=False):
        assert y1 != y2 or right1 <= x2, f"{k1} and {k2} overlap in the footer"


@pytest.mark.parametrize("built", [green_view, paused_view], ids=["green", "auto-paused"])
async def test_at_80x24_every_metric_band_is_on_the_dashboard_without_scrolling(built):
    app = _dashboard(built())
    async with app.run_test(size=(80, 24)) as pilot:
        await _settled(pilot)
        screen = app.screen
        bands = list(screen.query(BandLine))
        assert len(bands) == len(app.first.tiles) >= 8
        for band in bands:
            assert _visible(band, screen), f"{band.tile.name} is not on screen at 80×24"
        assert not any(t.display and t.region.height for t in screen.query(TileWidget)), "the tiles give way"
        names = {b.tile.key for b in bands}
        assert {"latency_p50", "latency_p99", "lock_wait", "replication_lag", "connections",
                "threads_running"} <= names
        _footer_fits(screen)


async def test_at_80x24_a_band_line_says_the_band_of_its_metric():
    app = _dashboard(paused_view())
    async with app.run_test(size=(80, 24)) as pilot:
        await _settled(pilot)
        lines = {b.tile.key: b for b in app.screen.query(BandLine)}
        lag = lines["replication_lag"]
        assert lag.has_class("-warning") and str(lag.render()).rstrip().endswith("WARN")
        assert str(lines["latency_p50"].render()).rstrip().endswith("OK")


async def test_at_100x30_the_kill_switch_every_band_the_window_and_the_next_key_are_visible():
    app = _dashboard(critical_view())  # 18 metrics (Prometheus too), an escalation, a critical
    async with app.run_test(size=(100, 30)) as pilot:
        await _settled(pilot)
        screen = app.screen
        frame = screen.query_one(RunFrame)
        assert "kill switch: off" in str(frame.render()) and frame.region.y == 0
        for band in screen.query(BandLine):
            assert _visible(band, screen), f"{band.tile.name} is not on screen at 100×30"
        crit = [b for b in screen.query(BandLine) if b.tile.level == "critical"]
        assert crit and all("CRIT" in str(b.render()) for b in crit)
        window = screen.query_one("#window-text", Static)
        assert _visible(window, screen) and "43.2 / 60 min" in str(window.render())
        keys = {k.key_display for k in _footer_keys(screen) if not k.has_class("-disabled")}
        assert "p" in keys, "the next key (a checkpoint note) is in the footer"
        _footer_fits(screen)


async def test_at_160x50_the_tiles_stay():
    app = _dashboard(green_view())
    async with app.run_test(size=(160, 50)) as pilot:
        await _settled(pilot)
        assert all(not b.region.height for b in app.screen.query(BandLine))
        assert all(t.region.height == 3 for t in app.screen.query(TileWidget))


async def test_the_footer_says_pgdn_when_the_body_runs_past_the_bottom_and_pgdn_scrolls_it():
    app = _dashboard(green_view())
    async with app.run_test(size=(80, 24)) as pilot:
        await _settled(pilot)
        screen = app.screen
        assert screen.overflows
        more = [k for k in _footer_keys(screen) if k.action == "page(1)"]
        assert [k.key_display for k in more] == ["PgDn"] and more[0].description == "More"
        body = screen.query_one("#body")
        await pilot.press("pagedown")
        await pilot.pause()
        assert body.scroll_y > 0


class _ManyKeys(RunbookScreen):
    """A step with as many keys as the Prechecks screen has."""

    BINDINGS = [Binding(k, f"noop('{k}')", words) for k, words in (
        ("r", "Checks"), ("k", "KS test"), ("p", "Confirm rollback"), ("s", "Sign off"), ("t", "Self-test"),
        ("x", "Scratch test"), ("m", "Record TC"), ("a", "Ack P1"), ("e", "Export Markdown"),
        ("ctrl+q", "Quit"), ("f9", "KILL SWITCH"), ("f2", "Audit log"), ("f8", "Kill switch off"))]

    def compose_body(self):
        yield StepFooter()

    def action_noop(self, key: str) -> None:
        pass


class _FewKeys(RunbookScreen):
    BINDINGS = _ManyKeys.BINDINGS[:5]
    compose_body = _ManyKeys.compose_body
    action_noop = _ManyKeys.action_noop


class _Host(App):
    few = False

    def on_mount(self) -> None:
        self.push_screen(_FewKeys() if self.few else _ManyKeys())


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_a_footer_with_more_keys_than_a_line_takes_rows_and_cuts_none(size):
    app = _Host()
    async with app.run_test(size=size) as pilot:
        await _settled(pilot)
        footer = app.screen.query_one(StepFooter)
        assert footer.has_class("-rows") and footer.region.height in (2, 3)
        assert "Confirm rb" in {k.description for k in _footer_keys(app.screen)}, "the short words"
        _footer_fits(app.screen)
    async with _Host().run_test(size=(160, 50)) as pilot:
        await _settled(pilot)
        assert "Confirm rollback" in {k.description for k in _footer_keys(pilot.app.screen)}, "room: the words"
        _footer_fits(pilot.app.screen)
    app = _Host()
    app.few = True
    async with app.run_test(size=(160, 50)) as pilot:
        await _settled(pilot)
        footer = pilot.app.screen.query_one(StepFooter)
        assert not footer.has_class("-rows") and footer.region.height == 1, "five keys: one row"


def test_the_scope_table_fits_80_columns_and_keeps_the_index_name_whole():
    alter = "ADD INDEX idx_orders_customer_created (customer_id, created_at), INPLACE, LOCK=NONE"
    rows = [("Operation", "✓", "ADD_INDEX only", alter), ("Kill switch & rollback", "✗", "verified (TC P0)",
                                                           "not run yet: run canary-console self-test")]
    for room in (68, 88, 148):
        widths = scope_widths(rows, room)
        assert sum(widths) <= room
        assert widths[3] >= len("ADD INDEX idx_orders_customer_created")
        assert widths[0] >= len("rollback") and widths[2] >= len("ADD_INDEX only")
    assert scope_widths(rows, 148)[3] == len(alter), "room enough: nothing wraps"


async def test_the_plan_screens_scope_table_has_no_hidden_columns_at_80x24(tmp_path):
    from test_console_pilot import make_app

    app = make_app(tmp_path, steady=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settled(pilot)
        scope = app.screen.query_one("#scope", DataTable)
        assert scope.virtual_size.width <= scope.size.width, "no column runs past the edge"
        operation = next(i for i in range(scope.row_count) if str(scope.get_row_at(i)[0]) == "Operation")
        assert "idx_orders_customer_created" in str(scope.get_row_at(operation)[3])
        _footer_fits(app.screen)
