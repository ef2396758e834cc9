"""The CLI, run in the test's own process: ``console.cli.main`` with the arguments, the environment,
an empty non-terminal stdin and captured stdout/stderr, as a ``subprocess.run`` would give them.

Why not a subprocess each time: a ``canary-console`` process spends about a second of CPU importing
the store's models before it does anything, and the suite runs some sixty of them — a minute of
the two cores' time for what the import tells no test. The tests that are about the process itself
(the entry point, a closed pipe, argv bytes that are not UTF-8, a console that died) still start
one (``cli_process``)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from console.cli import main

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def _environment(env: dict[str, str] | None) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _stream(raw: io.BytesIO) -> io.TextIOWrapper:
    # What a process's stdout is when it is a pipe under a UTF-8 locale: UTF-8 text over bytes, with a
    # .buffer, strict (a lone surrogate printed is the UnicodeEncodeError a real process would raise).
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)


def run_cli(*args: str | bytes, env: dict[str, str] | None = None,
            text: bool = True) -> subprocess.CompletedProcess:
    """``canary-console ARGS`` in this process; ``text=False`` gives bytes, as ``capture_output`` does."""
    argv = [os.fsdecode(a) for a in args]
    raw_out, raw_err = io.BytesIO(), io.BytesIO()
    out, err = _stream(raw_out), _stream(raw_err)
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err
    try:
        with _environment(env):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: a usage error (2), --help (0)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    said, erred = raw_out.getvalue(), raw_err.getvalue()
    if text:
        return subprocess.CompletedProcess(argv, code, said.decode("utf-8"), erred.decode("utf-8"))
    return subprocess.CompletedProcess(argv, code, said, erred)


def cli_process(*args: str | bytes, env: dict[str, str] | None = None, text: bool = True,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """``canary-console ARGS`` as a user runs it: a process of its own."""
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=text,
                          cwd=ROOT, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))
