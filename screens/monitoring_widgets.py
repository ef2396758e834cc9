"""The Monitoring dashboard's widgets (screens/monitoring.py): a metric as a tile, as one line on a
short terminal, and as a chart over the whole window with its threshold lines, the ALTER's end and
the checkpoints. Each draws the ``Tile`` or ``ChartSeries`` it is given (engine/views/dashboard.py)."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget
from textual_plotext import PlotextPlot

from engine.views.dashboard import ChartSeries, Tile

LEVEL_TAG = {"ok": "OK", "note": "NOTE", "warning": "WARN", "critical": "CRIT", "stale": "STALE"}
# Plotext colours (RGB: the same on every terminal that shows truecolour; the names are ANSI).
LINE_COLOUR = {"note": (90, 150, 230), "warning": (230, 180, 30), "critical": (230, 60, 60)}
MARKER_COLOUR = {"alter_end": (200, 90, 220), "checkpoint": (110, 110, 110)}
DATA_COLOUR = (80, 200, 220)
DOTS_COLOUR = (120, 140, 150)
LEGEND = Text.assemble(
    ("── ", "rgb(90,150,230)"), "note  ", ("── ", "rgb(230,180,30)"), "warning  ", ("── ", "rgb(230,60,60)"),
    "critical  ", ("│ ", "rgb(200,90,220)"), "ALTER ended  ", ("│ ", "rgb(110,110,110)"), "checkpoints  ",
    ("⣀⣀ ", "rgb(80,200,220)"), "latency: the 5-minute median the band judges, ", ("⣀⣀ ", "rgb(120,140,150)"),
    "each interval")
# A metric's name where a line has no room for the whole of it (the tile and the tooltip keep it).
SHORT_NAMES = {"connections": "Connections / max", "buffer_pool_hit": "Buffer pool hit rate",
               "killswitch_response": "Kill-switch API time", "killswitch_availability": "Kill-switch API avail.",
               "request_latency_p50": "Request p50", "request_latency_p99": "Request p99",
               "query_timeouts": "Query timeouts"}
# Shorter still, for the two columns of an 80-column terminal (19 cells for a name): never "Kill-switch API t…".
NARROW_NAMES = {"buffer_pool_hit": "Buffer pool hit %", "killswitch_response": "Kill-switch time",
                "killswitch_availability": "Kill-switch avail."}


def band_tag(level: str, width: int = 0) -> Text:
    """A metric's band as its tile and its line both end on it ("OK", "WARN", "CRIT" …), right-aligned
    in ``width`` columns; reversed when warning or critical."""
    tag = LEVEL_TAG.get(level, level.upper())
    return Text(tag.rjust(width), style="bold reverse" if level in ("warning", "critical") else "bold")


class MetricWidget(Widget):
    """A metric drawn from its ``Tile`` (engine/views/dashboard.py), with a class for its band
    (``-note`` … ``-stale``, none when ok) that colours it; the whole rule is the tooltip."""

    def __init__(self, tile: Tile, classes: str):
        super().__init__(classes=classes)  # no id: a rebuilt grid may briefly hold both
        self.tile = tile
        self._classes_for(tile)

    def show(self, tile: Tile) -> bool:
        """Draw ``tile``; False when it is what is drawn already."""
        if tile == self.tile:
            return False
        old, self.tile = self.tile, tile
        if old.level != tile.level:
            self._classes_for(tile)
        self.refresh()
        return True

    def _classes_for(self, tile: Tile) -> None:
        for level in LEVEL_TAG:
            self.set_class(tile.level == level and level != "ok", f"-{level}")

    def _tip(self) -> None:
        t = self.tile
        self.tooltip = f"{t.rule}\n{t.detail}" if t.detail else t.rule

    def on_enter(self) -> None:
        self._tip()


class TileWidget(MetricWidget):
    """One metric in three lines: its name and band; the value now, its change, the baseline; the
    one fact that matters most (the source's error when stale, the warning zone, too few
    intervals — else the thresholds). The whole rule is the tooltip."""

    DEFAULT_CSS = """
    TileWidget { height: 3; padding: 0 1; border-left: thick $success; background: $success 12%; }
    TileWidget.-note { border-left: thick $primary; background: $primary 25%; }
    TileWidget.-warning { border-left: thick $warning; background: $warning 35%; }
    TileWidget.-critical { border-left: thick $error; background: $error 60%; }
    TileWidget.-stale { border-left: thick $panel-lighten-3; background: $panel; color: $text-muted; }
    """

    def __init__(self, tile: Tile):
        super().__init__(tile, f"tile-{tile.key}")

    def show(self, tile: Tile) -> bool:
        # The tooltip follows while the mouse is over the tile: the rule's sentence moves with every sample.
        if not super().show(tile):
            return False
        if self.mouse_hover:
            self._tip()
        return True

    def render(self) -> Text:
        t = self.tile
        width = max(8, self.content_size.width)
        tag = band_tag(t.level)
        # A name, a baseline, a fact cut to "…" at 160 columns ("InnoDB buffer pool hit r…", "base 0.…"):
        # the shorter forms first, the cut last.
        room = max(1, width - tag.cell_len - 1)
        full = t.name.replace(" change", "")
        name = Text(next((n for n in (full, SHORT_NAMES.get(t.key, full), NARROW_NAMES.get(t.key, full))
                          if cell_len(n) <= room), full), style="bold")
        name.truncate(room, overflow="ellipsis")
        head = name + Text(" " * max(1, width - name.cell_len - tag.cell_len)) + tag
        base = t.baseline.removesuffix(f" {t.unit}") if t.unit and t.unit != "%" else t.baseline
        if t.level == "stale":
            body = Text(f"{t.short or 'no value'} · base {base}")
            last = Text(short_error(t.error or "no value"))
        else:
            tail = next((x for x in (f" Δ {t.delta}  base {base}", f" Δ{t.delta} base {base}")
                         if cell_len(t.now + x) <= width), f" Δ{t.delta}")
            body = Text(t.now, style="bold") + Text(tail)
            last = Text(t.short, style="bold") if t.short else Text(fit_thresholds(t.thresholds, width), style="dim")
        for line in (body, last):
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join((head, body, last))


class BandLine(MetricWidget):
    """One metric on one line — its name, the value now and its change, its band — for a short
    terminal (80×24, 100×30): every metric's band on screen at once, where the tiles would scroll.
    Coloured by its band as a tile is (screens/monitoring.tcss); the whole rule is the tooltip."""

    COMPONENT_CLASSES = {"band-line--mark"}
    VALUE_WIDTH = 17  # "7.80 ms Δ+29.9%", "1217 req/s Δ+1.9%": the value's share of the line
    NAME_WIDTH = 26  # at most: the value follows the name closely on a wide line

    def __init__(self, tile: Tile):
        super().__init__(tile, f"band-{tile.key}")

    def render(self) -> Text:
        t = self.tile
        width = max(20, self.content_size.width)
        # Narrow (two columns at 80): the value now without its change, which the tiles show.
        value_width = self.VALUE_WIDTH if width >= 2 + 18 + 1 + self.VALUE_WIDTH + 1 + 5 else 10
        room = max(8, min(self.NAME_WIDTH, width - 2 - 1 - value_width - 1 - 5))
        if t.level == "stale":
            value = Text(t.short or short_error(t.error or "no value"))
        else:
            value = Text(t.now, style="bold")
            if value_width == self.VALUE_WIDTH:
                value += Text(f" Δ{t.delta}")
        value.truncate(max(4, width - 2 - room - 1 - 1 - 5), overflow="ellipsis")
        name = Text(SHORT_NAMES.get(t.key, t.name.replace(" change", "")), style="bold")
        if name.cell_len > room and t.key in NARROW_NAMES:
            name = Text(NARROW_NAMES[t.key], style="bold")
        name.truncate(room, overflow="ellipsis")
        line = Text("█ ", style=self.get_component_rich_style("band-line--mark"))
        line += name + Text(" " * (room - name.cell_len + 1)) + value
        line.append(" " * max(1, 2 + room + 1 + value_width + 1 - line.cell_len))
        return line + band_tag(t.level, 5)


def short_error(error: str) -> str:
    """The error without its exception class ("OperationalError: (2003, …)" → "(2003, …)"): the
    tile has a line for it; the events and the tooltip keep it whole."""
    head, sep, rest = error.partition(": ")
    return rest if sep and head.isidentifier() and head[:1].isupper() else error


def fit_thresholds(text: str, width: int) -> str:
    """"warn ≥ +10% · crit ≥ +50% · note ≥ +5%" in ``width`` columns: tighter, and the note goes
    first when it does not fit (warning and critical matter most)."""
    parts = [p.replace("≥ ", "≥").replace("≤ ", "≤") for p in text.split(" · ")]
    out = parts[0]
    for p in parts[1:]:
        if len(out) + 3 + len(p) > width:
            break
        out += " · " + p
    return out


class MetricChart(PlotextPlot):
    """A metric over the whole window, its threshold lines, the ALTER's end and the checkpoints.
    Redrawn only when its series changed."""

    DEFAULT_CSS = """
    MetricChart { height: 12; min-width: 28; }
    """

    def __init__(self, key: str):
        super().__init__(classes=f"chart-{key}")
        self.key = key
        self.signature: tuple | None = None
        self.drawn: tuple | None = None
        self.series: ChartSeries | None = None
        self.draws = 0

    def show(self, series: ChartSeries) -> bool:
        if series.signature == self.signature:
            return False
        self.signature = series.signature
        self.series = series
        drawn = self._drawn_key(series)
        if drawn == self.drawn:
            return False  # what moved stays within the dots already drawn
        self.drawn = drawn
        self.draws += 1
        self.refresh()
        return True

    def _drawn_key(self, series: ChartSeries) -> tuple:
        """The series as the chart can show it: each point on the braille dot it falls on (two
        across and four down a cell; a bucket's new minimum a hair below the old one is not drawn
        differently, and a redraw costs ~15 ms), with everything else the chart draws."""
        width, height = self.size
        x0, x1 = series.x_range
        y0, y1 = series.y_range
        sx = max(1, width * 2) / ((x1 - x0) or 1.0)
        sy = max(1, height * 4) / ((y1 - y0) or 1.0)

        def dots(xs: tuple[float, ...], ys: tuple[float, ...]) -> tuple[tuple[int, int], ...]:
            return tuple((int((x - x0) * sx), int((y - y0) * sy)) for x, y in zip(xs, ys, strict=True))

        return (series.key, series.title, series.lines, series.markers, series.x_range, series.y_range, series.level,
                series.note, series.breaks, series.median_breaks, (width, height),
                dots(series.x, series.y), dots(series.median_x, series.median_y))

    def render(self) -> RenderResult:
        # The figure is set up again on every build: plotext drops overlapping tick labels from its
        # own state while building, so a second build of the same figure would differ.
        if self.series is not None:
            self._plot_series(self.series)
        return super().render()

    def _plot_series(self, series: ChartSeries) -> None:
        plt = self.plt
        plt.clear_data()  # lines and markers too; cheaper than clear_figure, which deep-copies the figure
        plt.title(series.title)
        lo, hi = series.y_range
        for marker in series.markers:
            plt.vline(marker.x, MARKER_COLOUR.get(marker.kind, (110, 110, 110)))
        for line in series.lines:
            if lo <= line.y <= hi:  # a line past the scale would be drawn on the edge, as if reached
                plt.hline(line.y, LINE_COLOUR.get(line.level, (200, 200, 200)))
        # Each run of points on its own: no line is drawn across a gap (time nobody sampled). Only
        # the lowest and highest point of each column of dots is drawn: the rest would land on
        # the line between them, and plotext's cost is per point.
        dots = max(1, self.size.width * 2)
        for xs, ys in runs(series.x, series.y, series.breaks):
            plt.plot(*thin(xs, ys, series.x_range, dots), marker="braille",
                     color=DOTS_COLOUR if series.median_x else DATA_COLOUR)
        for xs, ys in runs(series.median_x, series.median_y, series.median_breaks):
            plt.plot(*thin(xs, ys, series.x_range, dots), marker="braille", color=DATA_COLOUR)
        plt.xlim(*series.x_range)
        plt.ylim(lo, hi)
        checkpoints = [m for m in series.markers if m.kind == "checkpoint"]
        plt.xticks([m.x for m in checkpoints], [m.label for m in checkpoints])


def thin(xs: list[float], ys: list[float], x_range: tuple[float, float], columns: int) -> tuple[list[float], list[float]]:
    """The points as a chart ``columns`` dots wide can show them: in each column, its lowest and
    highest point, in time order (a spike is kept; the points between lie on the line drawn)."""
    x0, x1 = x_range
    scale = columns / ((x1 - x0) or 1.0)
    out_x: list[float] = []
    out_y: list[float] = []
    i, n = 0, len(xs)
    while i < n:
        column = int((xs[i] - x0) * scale)
        lo = hi = i
        j = i + 1
        while j < n and int((xs[j] - x0) * scale) == column:
            if ys[j] < ys[lo]:
                lo = j
            if ys[j] > ys[hi]:
                hi = j
            j += 1
        for k in sorted({lo, hi}):
            out_x.append(xs[k])
            out_y.append(ys[k])
        i = j
    return out_x, out_y


def runs(x: tuple[float, ...], y: tuple[float, ...], breaks: tuple[int, ...]) -> list[tuple[list[float], list[float]]]:
    """The points cut where the line starts again after a gap."""
    cuts = [0, *breaks, len(x)]
    return [(list(x[a:b]), list(y[a:b])) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
