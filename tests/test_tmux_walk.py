"""The console as a person sees it: ``tests/tmux_walk.py`` drives the real app in tmux (160x50, and
a jump host's 100x30; a private tmux socket and state dir) through the rehearsal against the sandbox MariaDB, from the
Plan screen to Ctrl+Q, reading the screen with ``tmux capture-pane``. About 1.5 minutes."""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.long, pytest.mark.mariadb, pytest.mark.slow]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed: the walk drives the console in tmux")
@pytest.mark.parametrize("size", ["160x50", "100x30"])
def test_the_console_walk_in_tmux(capsys, size):
    import tmux_walk

    rc = tmux_walk.main(["--size", size])
    out = capsys.readouterr().out
    assert rc == 0, out
    last = out.strip().splitlines()[-1]
    assert last.startswith('{"ok": true'), out
