"""Tables that fit the terminal's width: a column too wide gives way and its cells wrap at their
spaces, a row as tall as it needs, rather than running off the right edge (the way the Plan
screen's scope table does it, screens/plan.py)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from textual.widgets import DataTable

from screens.base import plain

LEAST = 6  # below this a column is no longer read, wrapped or not
# A header wider than its column (a header does not wrap): its short form, else cut with "…" — never
# cut silently mid-word ("Priori").
SHORT_HEADERS = {"Priority": "Prio", "Handle / contact": "Handle", "Unix user": "Unix", "Response": "Resp."}


def header_in(label: str, width: int) -> str:
    if cell_len(label) <= width:
        return label
    short = SHORT_HEADERS.get(label, "")
    if short and cell_len(short) <= width:
        return short
    return label[: max(1, width - 1)] + "…"


def fit_widths(headers: Sequence[str], rows: Sequence[Sequence[str]], room: int) -> tuple[int, ...]:
    """Each column as wide as its longest cell while they all fit in ``room`` cells; when they do
    not, a column gives way a cell at a time — the one where the fewest cells would wrap (a long
    finding in one row, not a "by" in every row), the widest of those — down to its longest word
    (a word is not cut in two), and only when that is still too wide, further down to ``LEAST``."""
    n = len(headers)
    lengths = [[cell_len(r[i]) for r in rows] for i in range(n)]
    widths = [max([1, cell_len(headers[i]), *lengths[i]]) for i in range(n)]  # a 0-wide column renders no line
    words = [_words(headers, rows, i) for i in range(n)]
    for floor in (words, [LEAST] * n):
        while sum(widths) > room:
            slack = [i for i in range(n) if widths[i] > floor[i]]
            if not slack:
                break
            # The cells that would not fit on one line any more (or already do not).
            cost = {i: sum(1 for length in lengths[i] if length >= widths[i]) for i in slack}
            widths[min(slack, key=lambda i: (cost[i], -widths[i]))] -= 1
    return tuple(widths)


def _words(headers: Sequence[str], rows: Sequence[Sequence[str]], i: int) -> int:
    return max((cell_len(w) for c in [headers[i], *(r[i] for r in rows)] for w in c.split()), default=1)


def narrowed(headers: Sequence[str], rows: Sequence[Sequence[str]], room: int,
             optional: Sequence[str]) -> tuple[tuple[str, ...], list[tuple[str, ...]], int]:
    """Drop the ``optional`` columns, in that order, while the columns' longest words do not fit in
    ``room`` (a column cut inside its words reads worse than a column left out: an 80-column
    terminal shows the checks without their query). Each column dropped gives its padding (2 cells)
    back to the room. Returns the headers, rows and room kept."""
    keep = list(range(len(headers)))
    for name in optional:
        if sum(_words(headers, rows, i) for i in keep) <= room or name not in headers:
            continue
        keep.remove(headers.index(name))
        room += 2
    return (tuple(headers[i] for i in keep), [tuple(r[i] for i in keep) for r in rows], room)


def table_room(width: int, columns: int, outside: int = 4) -> int:
    """The cells' share of ``width`` columns: minus what lies outside the table (its margins and
    the scroll bar: 4 on a screen's body) and a cell's padding either side."""
    return max(columns * LEAST, width - outside - 2 * columns)


def fill_wrapped(table: DataTable, headers: Sequence[str], rows: Sequence[Sequence[str]], room: int,
                 drawn: tuple[int, ...] = (), widths: tuple[int, ...] | None = None,
                 optional: Sequence[str] = ()) -> tuple[int, ...]:
    """Refill ``table`` with ``rows`` in columns fitted to ``room`` (``fit_widths``, or ``widths``
    for a table with a rule of its own, the Plan's scope); the ``optional`` columns give way first
    on a narrow terminal (``narrowed``); the columns are re-added only when their widths change.
    Returns the widths drawn (pass them back as ``drawn`` next time)."""
    if optional and widths is None:
        headers, rows, room = narrowed(headers, rows, room, optional)
    widths = widths or fit_widths(headers, rows, room)
    if widths != drawn or len(table.columns) != len(headers):
        table.clear(columns=True)
        for label, width in zip(headers, widths, strict=True):
            table.add_column(header_in(label, width), width=width)
    else:
        table.clear()
    for row in rows:
        table.add_row(*plain(*row), height=None)
    return widths
