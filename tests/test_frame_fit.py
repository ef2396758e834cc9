"""The frame's header at a jump host's widths (docs/runbook.md#small-terminals): its line breaks only
between two parts, never inside a name; the step bar drops the run and the driver whole when they
do not fit, rather than cutting them."""

from __future__ import annotations

from textual.app import App, ComposeResult

from screens.frame import FrameState, StepBar, fit_parts

PARTS = [("T+48:00 ⏩×30 drill", ""), ("kill switch: off", ""), ("somchai@10.0.0.5 (lead)", ""),
         ("shop.orders@10.0.0.12:3306 ● ok", "")]


def test_the_header_breaks_only_between_parts_at_every_width():
    names = [p for p, _ in PARTS]
    for width in (50, 64, 80, 84, 100, 140):
        lines = fit_parts(PARTS, width).plain.split("\n")
        assert all(len(line) <= width - 1 for line in lines), (width, lines)
        pieces = [piece.strip() for line in lines for piece in line.split(" │ ")]
        assert pieces == names, (width, lines)  # every part whole, in order
    assert len(fit_parts(PARTS, 140).plain.split("\n")) == 1


class Bar(App):
    def __init__(self, state: FrameState):
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        yield StepBar(id="step-bar")

    def on_mount(self) -> None:
        self.query_one(StepBar).state = self.state


async def test_the_step_bar_keeps_the_run_and_driver_whole_or_leaves_them_out():
    state = FrameState(step="monitoring", run="run 3f2a9c1e running", driver="joined: somchai@10.0.0.5 drives")
    for width, expect in ((160, ("run 3f2a9c1e running", "joined: somchai@10.0.0.5 drives")),
                          (80, ("run 3f2a9c1e running",))):
        app = Bar(state)
        async with app.run_test(size=(width, 3)) as pilot:
            await pilot.pause()
            text = str(app.query_one(StepBar).render())
            for part in expect:
                assert part in text, (width, text)
            if width == 80:
                assert "joined" not in text and "somchai" not in text
