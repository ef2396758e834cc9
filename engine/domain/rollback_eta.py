"""The rollback's ETA (runbook R1 "⏰ ETA"; docs/rollback.md#the-eta), pure.

Computed from what was measured on this server and this run, never a fixed "—":

- the **index's size** (the table's index bytes after the ALTER less before it, recorded with
  ``index_added``);
- the **DROP** and **IGNORED** statements as the scratch-table test timed them on an empty copy of
  the table (runbook 2.4.1; ``rollback_timings`` in the audit trail): what a statement costs on this
  server, its metadata lock included;
- an allowance per gigabyte of index for InnoDB to free the index's pages (``DROP_S_PER_GB``), and
  the worst case when the metadata lock is held: every attempt waits ``lock_wait_timeout`` and the
  retries back off (engine/flows/rollback.py).

Where a timing was not measured, a stated default stands in, and the text says so.
"""

from __future__ import annotations

from dataclasses import dataclass

DROP_S_PER_GB = 2.0  # allowance for freeing a dropped index's pages, per GB of index
DEFAULT_DROP_MS = 500.0  # a DROP INDEX's statement cost when the scratch test was not run
DEFAULT_IGNORE_MS = 100.0  # the same for ALTER INDEX … IGNORED / INVISIBLE


@dataclass(frozen=True)
class RollbackEta:
    expected_s: float
    worst_s: float
    text: str  # one line: the figure, how it was computed, the worst case

    def short(self) -> str:
        return f"~{_dur(self.expected_s)} (at worst {_dur(self.worst_s)})"


def _dur(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def rollback_eta(index_mb: float | None, drop_ms: float | None, ignore_ms: float | None, *,
                 ignore_available: bool, lock_wait_timeout_s: float, attempts: int, backoff_s: float) -> RollbackEta:
    """R1's ETA for the ladder: rung 1 (IGNORED, where available) then rung 2 (the DROP)."""
    parts = []
    drop = (drop_ms if drop_ms is not None else DEFAULT_DROP_MS) / 1000
    parts.append(f"DROP {drop * 1000:.0f} ms " + ("measured on the scratch copy" if drop_ms is not None
                                                  else "assumed (scratch test not run)"))
    ignore = 0.0
    if ignore_available:
        ignore = (ignore_ms if ignore_ms is not None else DEFAULT_IGNORE_MS) / 1000
        parts.append(f"IGNORED {ignore * 1000:.0f} ms " + ("measured" if ignore_ms is not None else "assumed"))
    size_gb = (index_mb or 0.0) / 1024
    pages = size_gb * DROP_S_PER_GB
    parts.append(f"index {index_mb:,.1f} MB × {DROP_S_PER_GB:g} s/GB" if index_mb is not None
                 else "index size not recorded")
    expected = ignore + drop + pages
    waits = attempts * lock_wait_timeout_s + sum(backoff_s * 2 ** (n - 1) for n in range(1, attempts))
    worst = expected + waits
    text = (f"~{_dur(expected)} ({'; '.join(parts)}); at worst {_dur(worst)} if the metadata lock is held "
            f"({attempts} attempts × lock_wait_timeout {lock_wait_timeout_s:g} s + back-off)")
    return RollbackEta(expected, worst, text)


def eta_for_run(store: object, plan: object, run_id: str, flavour_ignores: bool | None = None) -> RollbackEta:
    """The ETA for ``run_id`` from what the store recorded (blocking: a few audit reads)."""
    tenant = plan.tenant  # type: ignore[attr-defined]
    # The API passes a roster (people, no executor options): the plan's defaults then.
    from engine.domain.plan import ExecutorOptions

    opts = getattr(plan, "executor", None) or ExecutorOptions()

    def latest(action: str) -> dict:
        rows = store.audit_entries(tenant, run_id, action, limit=1, latest=True)  # type: ignore[attr-defined]
        return dict(rows[-1].details or {}) if rows else {}

    added, timings = latest("index_added"), latest("rollback_timings")
    point = store.rollback_point(tenant, run_id)  # type: ignore[attr-defined]
    ignores = flavour_ignores if flavour_ignores is not None else any(
        (r or {}).get("rung") == "ignore" for r in ((point.ladder if point else None) or []))

    def num(d: dict, key: str) -> float | None:
        v = d.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    return rollback_eta(num(added, "index_mb"), num(timings, "drop_ms"), num(timings, "ignore_ms"),
                        ignore_available=ignores, lock_wait_timeout_s=float(opts.lock_wait_timeout),
                        attempts=opts.rollback_attempts, backoff_s=opts.rollback_backoff_seconds)
