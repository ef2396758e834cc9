"""Verification in real runs (docs/verification.md; docs/thresholds.md#verification-of-the-tables-digests, runbook 5.3).

The monitoring window decides the verdict; this adds what the digests say, in every monitored run
(the console, ``run``, ``execute``, the rehearsal): the table's digests over the baseline against
the same digests over the window — rows examined per statement (a warning at +20 %), and new
full scans (a digest with ``SUM_NO_INDEX_USED`` in the window that had none in the baseline, or a
higher share of statements using no index) — and the plan's sample queries EXPLAINed before the
ALTER and after the window: is the index used by the queries it was built for? Without sample
queries the verdict says that was not checked. These are warnings (PASS WITH WARNING), never a
FAIL on their own: the window's criteria carry the statistics that a FAIL needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from engine.domain.verification import (
    ROWS_EXAMINED_LIMIT_PCT,
    DigestStats,
    VerificationResult,
    verify,
    window,
)

if TYPE_CHECKING:
    from engine.adapters.target import TargetSession
    from engine.domain.decision_matrix import Verdict

EXPLAIN_PREFIX = "EXPLAIN /* canary-console:verify */ "
NOT_CHECKED = "not checked: the plan names no sample queries ([change] sample_queries)"


@dataclass(frozen=True)
class QueryPlan:
    """EXPLAIN of one sample query: the key the server chose for the table (None: no index)."""

    query: str
    key: str | None
    access: str | None  # the EXPLAIN type: ALL is a full scan
    rows: int | None
    error: str | None = None


@dataclass(frozen=True)
class DigestCheck:
    status: str  # ok | warn | inconclusive
    warnings: tuple[str, ...]
    summary: str
    verification: dict[str, Any] | None = None  # engine.domain.verification's result, as data
    new_full_scans: tuple[str, ...] = ()  # digest texts
    explain_before: tuple[QueryPlan, ...] = ()
    explain_after: tuple[QueryPlan, ...] = ()
    index_used: bool | None = None  # None: not checked
    index_note: str = NOT_CHECKED
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain(session: TargetSession, table: str, queries: Sequence[str]) -> list[QueryPlan]:
    """EXPLAIN each sample query (never runs it); the row of ``table`` says which key it uses."""
    from engine.adapters.target import TargetError

    out = []
    for q in queries:
        try:
            rows = session.query(EXPLAIN_PREFIX + q)
        except TargetError as exc:
            out.append(QueryPlan(q, None, None, None, str(exc)))
            continue
        row = next((r for r in rows if str(r.get("table") or "").lower() == table.lower()), rows[0] if rows else {})
        out.append(QueryPlan(q, row.get("key"), row.get("type"), None if row.get("rows") is None else int(row["rows"])))
    return out


def new_full_scans(baseline: Sequence[DigestStats], after: Sequence[DigestStats]) -> list[str]:
    """Digests that used no index in the window and never did in the baseline."""
    before = {d.digest: d for d in baseline}
    return [d.digest_text or d.digest for d in after
            if d.no_index_used > 0 and (d.digest not in before or before[d.digest].no_index_used == 0)]


def judge(baseline: Sequence[DigestStats], after: Sequence[DigestStats], index: str,
          sample_queries: Sequence[str] = (), explain_before: Sequence[QueryPlan] = (),
          explain_after: Sequence[QueryPlan] = ()) -> DigestCheck:
    """Pure: the digests and the EXPLAINs, judged (warnings only; see the module's note)."""
    result: VerificationResult = verify(baseline, after)
    warnings: list[str] = []
    full = new_full_scans(baseline, after)
    if result.status == "inconclusive":
        summary = f"digests: {result.message}"
    else:
        rows = result.rows_examined_change_pct or 0.0
        summary = (f"digests n={result.sample_count} (baseline n={result.baseline.count}): rows examined per "
                   f"statement {result.baseline.rows_examined_per_stmt:.1f} → {result.after.rows_examined_per_stmt:.1f} "
                   f"({rows:+.1f} %, warn at +{ROWS_EXAMINED_LIMIT_PCT:g} %); statements using no index "
                   f"{result.baseline.no_index_used_share:.1%} → {result.after.no_index_used_share:.1%}")
        if rows >= ROWS_EXAMINED_LIMIT_PCT:
            warnings.append(f"rows examined per statement rose {rows:+.1f} % (warn at +{ROWS_EXAMINED_LIMIT_PCT:g} %)")
        if result.no_index_used_increased:
            warnings.append(f"statements using no index rose from {result.baseline.no_index_used_share:.1%} to "
                            f"{result.after.no_index_used_share:.1%}")
    if full:
        warnings.append("new full scans: " + "; ".join(t[:120] for t in full[:3]) + (" …" if len(full) > 3 else ""))
    used: bool | None = None
    note = NOT_CHECKED
    if sample_queries:
        misses = [p for p in explain_after if p.error or (p.key or "").split(",").count(index) == 0]
        used = not misses and len(explain_after) == len(sample_queries)
        if used:
            note = f"{index} used by all {len(sample_queries)} sample queries (EXPLAIN after the window)"
        else:
            note = "; ".join(f"not used by `{p.query[:80]}` ({_why(p)})" for p in misses) \
                or "sample queries not EXPLAINed after the window"
            warnings.append(f"the index {index}: {note}")
    status = "warn" if warnings else ("inconclusive" if result.status == "inconclusive" else "ok")
    return DigestCheck(status, tuple(warnings), summary, result.as_dict(), tuple(full), tuple(explain_before),
                       tuple(explain_after), used, note)


def _why(p: QueryPlan) -> str:
    return p.error or f"EXPLAIN key: {p.key or 'none'}, type {p.access}"


def with_check(verdict: Verdict, check: DigestCheck | None) -> Verdict:
    """The window's verdict with the digest check's warnings: a PASS becomes PASS WITH WARNING; a
    FAIL or INCONCLUSIVE stays what it is (the warnings are listed with it)."""
    from engine.domain.decision_matrix import PASS, PASS_WITH_WARNING

    if check is None or not check.warnings:
        return verdict
    warnings = verdict.warnings + tuple(f"verification: {w}" for w in check.warnings)
    if verdict.verdict == PASS:
        return replace(verdict, verdict=PASS_WITH_WARNING, warnings=warnings,
                       next_step="document the warnings and plan a follow-up")
    return replace(verdict, warnings=warnings)


def baseline_deltas(first: Sequence[DigestStats], second: Sequence[DigestStats]) -> list[DigestStats]:
    return window(first, second)
