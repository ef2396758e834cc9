"""Tables that fit the terminal (screens/tables.py): columns give way a cell at a time down to
their longest word, and the optional ones are left out before any column is cut inside a word."""

from screens.tables import fit_widths, narrowed

HEADERS = ("Section", "Check", "Status", "Found", "By", "Query")
ROWS = [("Environment", "MySQL target reachable", "✓ pass", "MariaDB 10.11.19 as root", "root 23:03:10",
         "SELECT /* canary-console:detect */ VERSION() AS version")]


def test_a_wide_terminal_keeps_every_column():
    headers, rows, room = narrowed(HEADERS, ROWS, 150, ("Query", "Section"))
    assert headers == HEADERS and rows == ROWS and room == 150


def test_a_narrow_terminal_drops_the_optional_columns_in_order_and_gives_their_padding_back():
    headers, rows, room = narrowed(HEADERS, ROWS, 36, ("Query", "Section"))
    assert headers == ("Check", "Status", "Found", "By")
    assert rows == [("MySQL target reachable", "✓ pass", "MariaDB 10.11.19 as root", "root 23:03:10")]
    assert room == 40
    widths = fit_widths(headers, rows, room)
    assert sum(widths) <= room and widths[3] >= len("23:03:10")  # the time is not cut in two


def test_only_what_is_needed_is_dropped():
    headers, _rows, _room = narrowed(HEADERS, ROWS, 45, ("Query", "Section"))
    assert headers == ("Section", "Check", "Status", "Found", "By")


def test_a_column_not_in_the_table_is_ignored():
    headers, _rows, _room = narrowed(HEADERS[:5], [r[:5] for r in ROWS], 10, ("Query",))
    assert headers == HEADERS[:5]
