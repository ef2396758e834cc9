"""The README's main command, run as a user runs it (time-compressed, small table), in a private
state directory: it reaches a verdict and stops everything it started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


def test_rehearse_reaches_a_verdict_and_cleans_up(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "console.cli", "rehearse", "--rows", "20000", "--speed", "600",
                           "--skip-self-test", "--headless"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr
    assert "size gate PASS" in out and "TIME COMPRESSED 600×" in out
    assert "outcome: completed — PASS" in out or "outcome: completed — PASS WITH WARNING" in out, out
    assert "[    met] Monitoring window completed" in out
    assert "stopping the workload and the sandbox servers" in out
    base = tmp_path / "canary-console" / "rehearsal"
    assert (base / "canary.toml").is_file() and (base / "store.db").is_file()
    leftovers = subprocess.run(["pgrep", "-f", str(base)], capture_output=True, text=True).stdout.strip()
    assert leftovers == "", f"processes still running under {base}: {leftovers}"
