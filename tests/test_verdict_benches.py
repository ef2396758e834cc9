"""The verdict's benchmarks still run and end with their one JSON line (docs/verdict.md): a few
windows of a few models each, as a newcomer would run them (marked long) — the figures themselves
are the benchmarks' business, at 400–1,000 windows; and the stress bench's statement-built
percentiles are those of real draws."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _last_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.long  # two benchmark processes (~20 s of CPU): CI's long step runs them
@pytest.mark.parametrize("args, models", [
    (("bench/verdict_quality.py", "--windows", "12", "--models", "independent,minutes_control"),
     {"independent", "minutes_control"}),
    (("bench/verdict_stress.py", "--windows", "12", "--models", "control_batch,mix_drifts"),
     {"control_batch", "mix_drifts"}),  # one with a control, one built from statements
])
def test_a_verdict_benchmark_ends_with_its_json_line(args, models):
    got = _last_json(*args)
    assert set(got["models"]) == models
    for row in got["models"].values():
        assert {"false_fail_pct", "false_warn_pct", "fail_pct_2x"} <= set(row)
        assert all(0.0 <= row[k] <= 100.0 for k in ("false_fail_pct", "false_warn_pct", "fail_pct_2x"))


def test_the_statement_built_percentiles_are_percentiles_of_their_statements():
    """The stress bench's p50 and p99 drawn from the order statistics match those of real draws of
    the statements (same mixture, same count): the p99 between two modes is not an artefact of the
    shortcut."""
    sys.path.insert(0, str(ROOT / "bench"))
    import verdict_stress as vs

    rng = np.random.default_rng(3)
    kinds = [(0.988, np.log(0.0035), 0.45), (0.012, np.log(0.028), 0.5)]
    p50, p99 = vs._percentiles(rng, np.full((1, 4000), 150), kinds)
    slow = rng.random((4000, 150)) < 0.012
    x = np.where(slow, rng.normal(np.log(0.028), 0.5, (4000, 150)), rng.normal(np.log(0.0035), 0.45, (4000, 150)))
    x.sort(axis=1)
    for ours, real in ((p50[0], x[:, 74]), (p99[0], x[:, 148])):  # nearest rank: the 75th and 149th of 150
        assert np.allclose(np.percentile(ours, [10, 50, 90]), np.percentile(real, [10, 50, 90]), atol=0.06)
