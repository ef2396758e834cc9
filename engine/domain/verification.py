"""Verification of the target table's digests after the ADD INDEX (docs/thresholds.md#verification-of-the-tables-digests; docs/thresholds.md).

Pure functions over plain data. Latency per statement must not degrade by 10 % or more, rows
examined per statement not by 20 % or more, and the share of statements that used no index must
not rise. Fewer than 10 statements after the change: INCONCLUSIVE, which never rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

MIN_SAMPLES = 10
LATENCY_LIMIT_PCT = 10.0
ROWS_EXAMINED_LIMIT_PCT = 20.0


@dataclass(frozen=True)
class DigestStats:
    """Cumulative or per-window counters of one statement digest (performance_schema)."""

    digest: str
    digest_text: str
    count: int
    sum_timer_ps: int
    rows_examined: int
    no_index_used: int
    errors: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DigestStats:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def window(before: Iterable[DigestStats], after: Iterable[DigestStats]) -> list[DigestStats]:
    """Per-digest deltas between two cumulative snapshots. A digest that reset (counter went
    down, e.g. the summary table was truncated) counts from zero."""
    prior = {d.digest: d for d in before}
    out = []
    for a in after:
        b = prior.get(a.digest)
        if b is None or a.count < b.count:
            out.append(a)
            continue
        out.append(DigestStats(
            a.digest, a.digest_text, a.count - b.count, a.sum_timer_ps - b.sum_timer_ps,
            a.rows_examined - b.rows_examined, a.no_index_used - b.no_index_used, a.errors - b.errors,
        ))
    return [d for d in out if d.count > 0]


@dataclass(frozen=True)
class Totals:
    count: int
    mean_latency_ms: float
    rows_examined_per_stmt: float
    no_index_used_share: float

    @classmethod
    def of(cls, stats: Iterable[DigestStats]) -> Totals:
        stats = list(stats)
        n = sum(s.count for s in stats)
        if n == 0:
            return cls(0, 0.0, 0.0, 0.0)
        return cls(
            n,
            sum(s.sum_timer_ps for s in stats) / n / 1e9,
            sum(s.rows_examined for s in stats) / n,
            sum(s.no_index_used for s in stats) / n,
        )


@dataclass(frozen=True)
class VerificationResult:
    status: str  # success | failed | inconclusive
    rule: str
    message: str
    sample_count: int
    baseline: Totals
    after: Totals
    latency_change_pct: float | None = None
    rows_examined_change_pct: float | None = None
    no_index_used_increased: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _change_pct(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else float("inf")
    return (after - before) / before * 100.0


def verify(baseline: Iterable[DigestStats], after: Iterable[DigestStats],
           min_samples: int = MIN_SAMPLES, latency_limit_pct: float = LATENCY_LIMIT_PCT,
           rows_limit_pct: float = ROWS_EXAMINED_LIMIT_PCT) -> VerificationResult:
    """Compare the baseline window with the window after the change. Boundaries are inclusive."""
    base, post = Totals.of(baseline), Totals.of(after)
    if post.count < min_samples:
        return VerificationResult(
            "inconclusive", "min_samples",
            f"only {post.count} statement(s) on the table's digests after the change (< {min_samples}): "
            "the team decides keep or remove; no automatic rollback",
            post.count, base, post)
    if base.count < min_samples:
        return VerificationResult(
            "inconclusive", "min_baseline_samples",
            f"only {base.count} statement(s) in the baseline (< {min_samples}): nothing to compare against",
            post.count, base, post)
    lat = _change_pct(base.mean_latency_ms, post.mean_latency_ms)
    rows = _change_pct(base.rows_examined_per_stmt, post.rows_examined_per_stmt)
    no_index_up = post.no_index_used_share > base.no_index_used_share
    common = dict(sample_count=post.count, baseline=base, after=post, latency_change_pct=lat,
                  rows_examined_change_pct=rows, no_index_used_increased=no_index_up)
    if no_index_up:
        return VerificationResult(
            "failed", "no_index_used_rose",
            f"statements that used no index rose from {base.no_index_used_share:.1%} to "
            f"{post.no_index_used_share:.1%}", **common)
    if lat >= latency_limit_pct:
        return VerificationResult(
            "failed", "latency_degraded",
            f"mean latency per statement {base.mean_latency_ms:.3f} ms → {post.mean_latency_ms:.3f} ms "
            f"({lat:+.1f} %, limit +{latency_limit_pct:g} %)", **common)
    if rows >= rows_limit_pct:
        return VerificationResult(
            "failed", "rows_examined_rose",
            f"rows examined per statement {base.rows_examined_per_stmt:.1f} → {post.rows_examined_per_stmt:.1f} "
            f"({rows:+.1f} %, limit +{rows_limit_pct:g} %)", **common)
    return VerificationResult(
        "success", "all_within_limits",
        f"latency {lat:+.1f} % (limit +{latency_limit_pct:g} %), rows examined {rows:+.1f} % "
        f"(limit +{rows_limit_pct:g} %), no-index share not up, n={post.count}", **common)
