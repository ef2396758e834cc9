"""The table-size gate (runbook 2.3; docs/runbook.md#3-size-gate), pure.

≤ 5,000,000 rows PASS; > 5M and ≤ 10M WARNING (the DBA approves; sampling twice as often, thresholds
shown tighter); > 10M BLOCK (no DDL). ``TABLE_ROWS`` is an estimate: within 25 % of a boundary the
rows are counted exactly before deciding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.domain.thresholds import Profile

WARN_ABOVE = 5_000_000
BLOCK_ABOVE = 10_000_000
NEAR = 0.25
DEFAULT_INTERVAL_S = 5.0


@dataclass(frozen=True)
class GateDecision:
    band: str  # PASS | WARNING | BLOCK
    rows: int
    exact: bool
    needs_exact_count: bool
    rule: str

    @property
    def sampling_interval_s(self) -> float:
        return sampling_interval(self.band)


def near_boundary(estimated_rows: int) -> bool:
    return any(abs(estimated_rows - b) <= b * NEAR for b in (WARN_ABOVE, BLOCK_ABOVE))


def gate(rows: int, exact: bool = False) -> GateDecision:
    needs = not exact and near_boundary(rows)
    kind = "exactly" if exact else "estimated"
    if rows > BLOCK_ABOVE:
        band, rule = "BLOCK", f"{rows:,} rows ({kind}) > 10,000,000: no DDL in this phase; run cancelled for this table"
    elif rows > WARN_ABOVE:
        band, rule = "WARNING", f"{rows:,} rows ({kind}) > 5,000,000: the DBA must approve; monitoring doubled"
    else:
        band, rule = "PASS", f"{rows:,} rows ({kind}) ≤ 5,000,000"
    if needs:
        rule += f"; within {NEAR:.0%} of a boundary: count exactly before deciding"
    return GateDecision(band, rows, exact, needs, rule)


def profile_for(profile: Profile, band: str | None, rows: int | None) -> Profile:
    """The threshold profile a run is watched with: ``profile`` (the plan's), tightened for a
    WARNING-band table (docs/thresholds.md#a-warning-band-table)."""
    from engine.domain.thresholds import tightened

    return tightened(profile, rows or 0) if band == "WARNING" else profile


def sampling_interval(band: str, speed: float = 1.0) -> float:
    """docs/metrics.md: every 5 s; every 2.5 s when the size gate warned. On a drill's compressed clock
    (``speed`` > 1), never more than about seven polls a real second: faster, the monitoring would
    disturb the latency it measures."""
    base = DEFAULT_INTERVAL_S / 2 if band == "WARNING" else DEFAULT_INTERVAL_S
    return max(base, 0.15 * speed)
