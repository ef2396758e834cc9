"""The dashboard's checkpoint table changes with the next checkpoint's countdown and must not
keep every change's rendering (bench/dashboard_rss.py measures the console's RSS as a whole).

The cause: DataTable keys its render caches by an update counter that every ``update_cell`` bumps
without emptying them, so each tick left the table's worth of dead entries behind (up to 10,000
rendered cells). ``TickingTable`` drops them after an update."""

from __future__ import annotations

from datetime import UTC

from rich.text import Text
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from screens.monitoring import TickingTable

TICKS = 120


class Host(App):
    def __init__(self, table: DataTable):
        super().__init__()
        self.table = table

    def compose(self) -> ComposeResult:
        yield self.table

    def on_mount(self) -> None:
        self.table.add_columns("", "Due", "OK?", "By", "Notes")
        for n in range(5):
            self.table.add_row(f"T+{15 * (n + 1)}", "23:15:00", "", "", "")


async def tick(table: DataTable, pilot, n: int, ticking: bool) -> None:
    value = Text(f"next, in {59 - n % 60:02d}:{n % 60:02d}")
    if ticking:
        table.update_cells([(Coordinate(0, 2), value, False)])  # type: ignore[attr-defined]
    else:
        table.update_cell_at(Coordinate(0, 2), value)
    await pilot.pause()  # drawn, as once a second on the dashboard


async def test_a_ticking_cell_leaves_no_dead_render_entries_behind():
    table = TickingTable(id="checkpoints", cursor_type="none", show_cursor=False)
    async with Host(table).run_test(size=(100, 12)) as pilot:
        for n in range(TICKS):
            await tick(table, pilot, n, ticking=True)
        cells = len(table._cell_render_cache)
        assert cells <= 6 * 5, f"{cells} cached cells for a 6×5 table"
        assert len(table._row_render_cache) <= 6 and len(table._line_cache) <= 12


async def test_the_cause_a_plain_datatable_keeps_every_ticks_cells():
    """When this fails, DataTable empties its caches on update itself and TickingTable can go."""
    table = DataTable(cursor_type="none", show_cursor=False)
    async with Host(table).run_test(size=(100, 12)) as pilot:
        for n in range(TICKS):
            await tick(table, pilot, n, ticking=False)
        assert len(table._cell_render_cache) > TICKS, "each tick's cells stay in the cache"


# --- what grew with real time: Rich's cell-width cache ----------------------------------------------


async def test_a_ticking_clock_fills_the_cell_width_cache_and_trim_heap_empties_it():
    """Textual measures each text it draws through Rich's ``cached_cell_len`` (4,096 entries, any
    length): a clock that ticks adds new strings every second, ~0.2 MB a real minute until it is
    full — the console's growth with no data (bench/dashboard_rss.py). ``trim_heap`` (every 30 s)
    empties it, so what it holds stays what 30 s of drawing put there."""
    from datetime import datetime, timedelta

    from rich.cells import cached_cell_len

    from console.app import trim_heap
    from screens.frame import FrameState, RunFrame

    class Frame(App):
        def compose(self) -> ComposeResult:
            yield RunFrame()

    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with Frame().run_test(size=(100, 5)) as pilot:
        frame = pilot.app.query_one(RunFrame)
        cached_cell_len.cache_clear()
        for n in range(TICKS):
            frame.state = FrameState(user="somchai", t0=start, now=start + timedelta(seconds=n), speed=30)
            await pilot.pause()
        grown = cached_cell_len.cache_info().currsize
        assert grown >= TICKS, f"each tick's clock is a new entry ({grown} after {TICKS} ticks)"
        trim_heap()
        assert cached_cell_len.cache_info().currsize == 0
