"""Verification of the table's digests after the ADD INDEX (docs/thresholds.md#verification-of-the-tables-digests; docs/thresholds.md): inclusive
boundaries, the sample minimum, and per-window deltas of cumulative counters.

The numbers are chosen so that the percentages come out exact in floating point: a baseline of
100 ms per statement and 110 ms after is +10.0 % exactly, so ``>=`` and ``>`` give different
answers and the test tells them apart."""

from __future__ import annotations

import math

import pytest

from engine.domain.verification import (
    LATENCY_LIMIT_PCT,
    MIN_SAMPLES,
    ROWS_EXAMINED_LIMIT_PCT,
    DigestStats,
    Totals,
    verify,
    window,
)

PS_PER_MS = 10**9


def stats(count: int = 10, latency_ms: float = 100.0, rows: float = 100.0, no_index: int = 0,
          digest: str = "d1", errors: int = 0) -> DigestStats:
    """One digest with ``count`` statements of ``latency_ms`` each, examining ``rows`` each."""
    return DigestStats(
        digest=digest, digest_text=f"statement text of {digest}", count=count,
        sum_timer_ps=round(count * latency_ms * PS_PER_MS), rows_examined=round(count * rows),
        no_index_used=no_index, errors=errors,
    )


BASE = [stats()]  # 10 statements, 100 ms and 100 rows each, none without an index


def test_the_limits_are_the_specs():
    assert (MIN_SAMPLES, LATENCY_LIMIT_PCT, ROWS_EXAMINED_LIMIT_PCT) == (10, 10.0, 20.0)


def test_no_change_is_success():
    r = verify(BASE, [stats()])
    assert (r.status, r.rule) == ("success", "all_within_limits")
    assert r.latency_change_pct == 0.0 and r.rows_examined_change_pct == 0.0
    assert r.no_index_used_increased is False
    assert r.sample_count == 10
    assert "n=10" in r.message


# --- latency: must not degrade by 10 % or more ----------------------------------------------


def test_latency_exactly_plus_10_percent_fails():
    r = verify(BASE, [stats(latency_ms=110.0)])
    assert r.latency_change_pct == 10.0  # exactly, so the boundary itself is what is tested
    assert (r.status, r.rule) == ("failed", "latency_degraded")
    assert "100.000 ms → 110.000 ms" in r.message and "+10.0 %" in r.message and "limit +10 %" in r.message


def test_latency_plus_9_99_percent_passes():
    r = verify(BASE, [stats(latency_ms=109.99)])
    assert 9.98 < r.latency_change_pct < 10.0
    assert (r.status, r.rule) == ("success", "all_within_limits")


def test_latency_well_over_fails_and_faster_passes():
    assert verify(BASE, [stats(latency_ms=150.0)]).rule == "latency_degraded"
    r = verify(BASE, [stats(latency_ms=50.0)])
    assert r.status == "success" and r.latency_change_pct == -50.0


def test_latency_limit_is_a_parameter():
    assert verify(BASE, [stats(latency_ms=105.0)], latency_limit_pct=5.0).rule == "latency_degraded"
    assert verify(BASE, [stats(latency_ms=104.0)], latency_limit_pct=5.0).status == "success"


# --- rows examined: must not rise by 20 % or more -------------------------------------------


def test_rows_examined_exactly_plus_20_percent_fails():
    r = verify(BASE, [stats(rows=120.0)])
    assert r.rows_examined_change_pct == 20.0
    assert (r.status, r.rule) == ("failed", "rows_examined_rose")
    assert "100.0 → 120.0" in r.message and "+20.0 %" in r.message


def test_rows_examined_just_under_20_percent_passes():
    r = verify(BASE, [stats(rows=119.9)])
    assert 19.8 < r.rows_examined_change_pct < 20.0
    assert r.status == "success"


def test_rows_examined_from_zero_to_some_fails():
    r = verify([stats(rows=0)], [stats(rows=1)])
    assert math.isinf(r.rows_examined_change_pct)
    assert r.rule == "rows_examined_rose"
    assert verify([stats(rows=0)], [stats(rows=0)]).status == "success"


# --- the share of statements that used no index must not rise -------------------------------


def test_no_index_share_rising_fails():
    r = verify(BASE, [stats(no_index=1)])
    assert (r.status, r.rule) == ("failed", "no_index_used_rose")
    assert r.no_index_used_increased is True
    assert "0.0% to 10.0%" in r.message


def test_no_index_share_is_a_share_not_a_count():
    # 2 of 10 before, 4 of 20 after: the same share, though the count doubled.
    r = verify([stats(no_index=2)], [stats(count=20, no_index=4)])
    assert r.status == "success" and r.no_index_used_increased is False
    # 5 of 10 before, 0 of 10 after: the index is being used. Good.
    assert verify([stats(no_index=5)], [stats(no_index=0)]).status == "success"
    # 2 of 10 before, 5 of 20 after: up from 20 % to 25 %.
    assert verify([stats(no_index=2)], [stats(count=20, no_index=5)]).rule == "no_index_used_rose"


def test_no_index_is_checked_first():
    r = verify(BASE, [stats(latency_ms=200.0, rows=200.0, no_index=3)])
    assert r.rule == "no_index_used_rose"
    assert r.latency_change_pct == 100.0 and r.rows_examined_change_pct == 100.0


# --- the sample minimum ---------------------------------------------------------------------


def test_nine_statements_after_is_inconclusive():
    r = verify(BASE, [stats(count=9, latency_ms=500.0)])  # terrible, but too few to judge
    assert (r.status, r.rule) == ("inconclusive", "min_samples")
    assert r.sample_count == 9
    assert r.latency_change_pct is None  # nothing was compared
    assert "only 9 statement(s)" in r.message and "no automatic rollback" in r.message


def test_ten_statements_after_is_evaluated():
    r = verify(BASE, [stats(count=10, latency_ms=500.0)])
    assert (r.status, r.rule, r.sample_count) == ("failed", "latency_degraded", 10)
    assert verify(BASE, [stats(count=10)]).status == "success"


def test_no_statements_after_is_inconclusive():
    r = verify(BASE, [])
    assert (r.status, r.rule, r.sample_count) == ("inconclusive", "min_samples", 0)
    assert r.after == Totals(0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("n", [0, 1, 9])
def test_a_baseline_under_ten_is_inconclusive(n):
    baseline = [stats(count=n)] if n else []
    r = verify(baseline, [stats(count=50, latency_ms=500.0)])
    assert (r.status, r.rule) == ("inconclusive", "min_baseline_samples")
    assert f"only {n} statement(s) in the baseline" in r.message


def test_a_baseline_of_ten_is_enough():
    assert verify([stats(count=10)], [stats(count=50)]).status == "success"


def test_min_samples_is_a_parameter():
    assert verify(BASE, [stats(count=10)], min_samples=11).rule == "min_samples"
    assert verify([stats(count=3)], [stats(count=3)], min_samples=3).status == "success"


# --- totals over several digests ------------------------------------------------------------


def test_totals_weigh_digests_by_their_statement_count():
    t = Totals.of([stats(count=10, latency_ms=100.0, rows=100.0, no_index=0, digest="a"),
                   stats(count=30, latency_ms=20.0, rows=4.0, no_index=10, digest="b")])
    assert t == Totals(count=40, mean_latency_ms=40.0, rows_examined_per_stmt=28.0, no_index_used_share=0.25)


def test_several_digests_are_judged_together():
    base = [stats(count=10, latency_ms=100.0, digest="a"), stats(count=10, latency_ms=100.0, digest="b")]
    # One digest 20 % slower, the other unchanged: +10 % on the whole → failed, at the boundary.
    after = [stats(count=10, latency_ms=120.0, digest="a"), stats(count=10, latency_ms=100.0, digest="b")]
    r = verify(base, after)
    assert r.latency_change_pct == 10.0 and r.rule == "latency_degraded"
    assert r.sample_count == 20


def test_the_result_serialises():
    d = verify(BASE, [stats(latency_ms=110.0)]).as_dict()
    assert d["status"] == "failed" and d["rule"] == "latency_degraded"
    assert d["baseline"] == {"count": 10, "mean_latency_ms": 100.0, "rows_examined_per_stmt": 100.0,
                             "no_index_used_share": 0.0}
    assert d["after"]["mean_latency_ms"] == 110.0


# --- window(): deltas between two cumulative snapshots --------------------------------------


def raw(digest: str, count: int, timer: int, rows: int, no_index: int, errors: int = 0) -> DigestStats:
    return DigestStats(digest, f"text of {digest}", count, timer, rows, no_index, errors)


def test_window_is_the_delta_per_digest():
    before = [raw("a", 100, 5_000, 1_000, 10, 1), raw("b", 50, 2_000, 500, 0)]
    after = [raw("a", 130, 8_000, 1_600, 12, 3), raw("b", 55, 2_600, 560, 1)]
    assert window(before, after) == [raw("a", 30, 3_000, 600, 2, 2), raw("b", 5, 600, 60, 1)]


def test_window_keeps_a_digest_first_seen_after_and_drops_idle_and_vanished_ones():
    before = [raw("idle", 10, 100, 10, 0), raw("gone", 7, 70, 7, 0)]
    after = [raw("idle", 10, 100, 10, 0), raw("new", 4, 400, 40, 1)]
    assert window(before, after) == [raw("new", 4, 400, 40, 1)]


def test_window_after_a_counter_reset_counts_from_zero():
    # The summary table was truncated between the snapshots: the count went down, so the whole
    # "after" value is the window (not a negative delta).
    before = [raw("a", 1_000, 90_000, 9_000, 100), raw("b", 10, 1_000, 100, 0)]
    after = [raw("a", 12, 1_200, 120, 1), raw("b", 25, 2_500, 250, 0)]
    got = window(before, after)
    assert got == [raw("a", 12, 1_200, 120, 1), raw("b", 15, 1_500, 150, 0)]
    assert all(d.count > 0 and d.sum_timer_ps >= 0 and d.rows_examined >= 0 for d in got)


def test_window_of_an_empty_before_is_the_after():
    after = [raw("a", 3, 30, 3, 0)]
    assert window([], after) == after
    assert window(after, []) == []


def test_window_feeds_verify():
    """Cumulative snapshots at the start of the baseline, at the ALTER and at the end."""
    t0 = [raw("a", 1_000, 1_000 * 100 * PS_PER_MS, 100_000, 0)]
    t1 = [raw("a", 1_010, 1_010 * 100 * PS_PER_MS, 101_000, 0)]  # 10 more at 100 ms, 100 rows
    t2 = [raw("a", 1_020, t1[0].sum_timer_ps + 10 * 110 * PS_PER_MS, 102_000, 0)]  # 10 more at 110 ms
    r = verify(window(t0, t1), window(t1, t2))
    assert r.latency_change_pct == 10.0 and r.rule == "latency_degraded"


def test_digest_stats_from_dict_ignores_extra_keys():
    d = {"digest": "a", "digest_text": "x", "count": 1, "sum_timer_ps": 2, "rows_examined": 3,
         "no_index_used": 0, "errors": 0, "schema_name": "shop"}
    assert DigestStats.from_dict(d) == DigestStats("a", "x", 1, 2, 3, 0, 0)
