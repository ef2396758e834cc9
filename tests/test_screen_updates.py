"""What a screen redraws, and what it leaves alone: a text that ticks every second keeps its
widget's size and asks for no layout of the screen; a text that wraps to another row does."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Static

from screens.base import update_text


class One(App):
    CSS = "#box { width: 20; height: auto; } #auto { width: auto; height: 1; }"

    def compose(self):
        yield Static("samples 8/10", id="box")
        yield Static("T+01:00", id="auto")


async def test_a_text_of_the_same_height_asks_for_no_layout_and_one_that_wraps_does():
    app = One()
    async with app.run_test(size=(40, 10)) as pilot:
        box = app.query_one("#box", Static)
        await pilot.pause()
        assert box.size.height == 1
        update_text(box, "samples 9/10 (≈ 3 s)")
        assert not box._layout_required, "same height: a repaint only"
        await pilot.pause()
        assert str(box.render()) == "samples 9/10 (≈ 3 s)"
        update_text(box, "samples 10/10 · p99 +1.2% < +20%")  # 32 columns in 20: two rows
        assert box._layout_required
        await pilot.pause()
        assert box.size.height == 2
        update_text(box, "ok")
        await pilot.pause()
        assert box.size.height == 1, "and back"

        auto = app.query_one("#auto", Static)
        update_text(auto, "T+02:00")  # the first: its shape is not known yet
        await pilot.pause()
        update_text(auto, "T+02:01")
        assert not auto._layout_required, "as wide as its text, and the text as wide as before"
        update_text(auto, "T+02:01 ⏩ TIME ×30")
        assert auto._layout_required
        await pilot.pause()
        assert auto.size.width == len("T+02:01 ⏩ TIME ×30") + 1  # ⏩ is two cells wide
