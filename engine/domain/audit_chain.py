"""The audit trail's hash chain (issue 7 item 5): pure functions over plain data, no database.

Every audit row carries ``prev_hash`` (the ``row_hash`` of the row written just before it, store-wide)
and ``row_hash = sha256(prev_hash + canonical JSON of its content)``. The content is the row's
``seq, id, tenant_id, execution_run_id, actor, action, old_status, new_status, details`` and
``created_at`` (ISO 8601, UTC, microseconds). Editing a row, deleting one, or reordering them breaks
the chain where it happened, and ``verify`` says which and where.

What a chain inside the store cannot show: rows cut off the *end* together with the chain head
(someone with write access to the store can do both). Only a head hash kept outside the store — a
person writes it down, or a ticket records it — proves that; ``verify(expect_head=…)`` checks one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64  # the prev_hash of seq 1
CONTENT_FIELDS = ("seq", "id", "tenant_id", "execution_run_id", "actor", "action", "old_status",
                  "new_status", "details", "created_at")
MAX_LISTED = 20  # problems named one by one; the rest are counted


def iso(value: datetime | str | None) -> str | None:
    """A timestamp as the chain hashes it: UTC, to the microsecond (a naive one is taken as UTC,
    which is how SQLite and MySQL hand them back)."""
    if value is None or isinstance(value, str):
        return value
    if value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def normalize_details(details: Any) -> Any:
    """``details`` as it will read back from a JSON column (tuples become lists, keys strings): the
    form that is hashed, and the one stored, so the writer and the verifier hash the same thing."""
    return json.loads(json.dumps(details if details is not None else {}, default=str))


def content(values: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a row's hash covers, as hashed (``created_at`` in ISO form)."""
    out = {name: values[name] for name in CONTENT_FIELDS}
    out["created_at"] = iso(out["created_at"])
    return out


def canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(content)).hexdigest()


@dataclass(frozen=True)
class ChainRow:
    """One audit row as stored (``created_at`` a datetime, or the raw text when it does not parse;
    ``details`` the parsed JSON, or the raw text when it does not parse)."""

    seq: int
    id: str
    tenant_id: str
    execution_run_id: str | None
    actor: str
    action: str
    old_status: str | None
    new_status: str | None
    details: Any
    created_at: datetime | str | None
    prev_hash: str | None
    row_hash: str | None

    def content(self) -> dict[str, Any]:
        return content({name: getattr(self, name) for name in CONTENT_FIELDS})

    def computed_hash(self) -> str:
        return row_hash(self.prev_hash or "", self.content())

    def describe(self) -> str:
        return f"{self.action} by {self.actor}, tenant {self.tenant_id}, {iso(self.created_at)}"


@dataclass(frozen=True)
class Problem:
    seq: int | None  # where it shows; None for the chain as a whole
    kind: str  # changed | missing | reordered | unlinked | unchained | head
    message: str


@dataclass(frozen=True)
class Verdict:
    rows: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str  # the last row's row_hash (GENESIS for an empty chain)
    problems: tuple[Problem, ...] = ()
    expect_head_seq: int | None = None  # where --expect-head was found in the chain

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass
class _Index:
    """row_hash → seq, built only when a broken link needs explaining."""

    rows: Sequence[ChainRow]
    _by_hash: dict[str, int] | None = field(default=None, repr=False)

    def seq_of(self, h: str | None) -> int | None:
        if self._by_hash is None:
            self._by_hash = {r.row_hash: r.seq for r in self.rows if r.row_hash}
        return self._by_hash.get(h or "")


def _written_as(row: ChainRow, index: _Index) -> int | None:
    """The seq the row's content was hashed with, if only its seq was changed: tried against the
    seq after the row its prev_hash names, and the seqs near its own."""
    holder = index.seq_of(row.prev_hash)
    candidates = ([holder + 1] if holder is not None else []) + [row.seq + d for d in (-3, -2, -1, 1, 2, 3)]
    if row.prev_hash == GENESIS:
        candidates.insert(0, 1)
    for seq in candidates:
        if seq != row.seq and replace(row, seq=seq).computed_hash() == row.row_hash:
            return seq
    return None


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}–{last}"


def verify(rows: Iterable[ChainRow], head: tuple[int, str] | None = None,
           expect_head: str | None = None) -> Verdict:
    """Walk the chain in seq order. ``head``: the store's chain-head record (seq, hash), or None
    when it has none; ``expect_head``: a head hash recorded earlier, outside the store."""
    rows = sorted(rows, key=lambda r: r.seq)
    index = _Index(rows)
    problems: list[Problem] = []
    flagged: set[int] = set()  # rows already explained: a broken link next to one is no news

    def flag(row: ChainRow, kind: str, message: str) -> None:
        flagged.add(row.seq)
        problems.append(Problem(row.seq, kind, message))

    prev: ChainRow | None = None
    for row in rows:
        expected_seq = 1 if prev is None else prev.seq + 1
        expected_prev = GENESIS if prev is None else prev.row_hash
        gap = row.seq > expected_seq
        if gap:
            where = "at the start" if prev is None else f"between seq {prev.seq} and seq {row.seq}"
            count = row.seq - expected_seq
            problems.append(Problem(expected_seq, "missing",
                                    f"{_span(expected_seq, row.seq - 1)}: {count} row{'s' if count > 1 else ''} "
                                    f"missing {where} — deleted"))
        if not row.row_hash or not row.prev_hash:
            flag(row, "unchained", f"seq {row.seq}: has no hash — written outside the chain ({row.describe()})")
        elif row.computed_hash() != row.row_hash:
            was = _written_as(row, index)
            if was is not None:
                flag(row, "reordered", f"seq {row.seq}: was written as seq {was} — its seq was changed, "
                                       f"rows reordered ({row.describe()})")
            else:
                flag(row, "changed", f"seq {row.seq}: changed after it was written — its content no longer "
                                     f"matches its hash ({row.describe()}; which field changed cannot be told "
                                     "from the hash)")
        elif row.prev_hash != expected_prev and not gap and (prev is None or prev.seq not in flagged):
            holder = index.seq_of(row.prev_hash)
            after = (f"it was chained to seq {holder}" if holder is not None
                     else "the row it was chained to is no longer in the chain")
            before = "the start of the chain" if prev is None else f"seq {prev.seq}"
            flag(row, "unlinked", f"seq {row.seq}: not chained to {before}: {after} — "
                                  f"{'rows reordered' if holder is not None else 'the row before it was rewritten or replaced'}")
        prev = row

    last = rows[-1] if rows else None
    head_hash = (last.row_hash or "") if last else GENESIS
    if head is None:
        if rows:
            problems.append(Problem(None, "head", "the chain head record is missing from the store — deleted"))
    else:
        head_seq, recorded = head
        last_seq = last.seq if last else 0
        if head_seq > last_seq:
            problems.append(Problem(last_seq + 1, "missing",
                                    f"{_span(last_seq + 1, head_seq)}: missing at the end — the chain head "
                                    f"records seq {head_seq}: rows were deleted from the end"))
        elif head_seq < last_seq:
            problems.append(Problem(head_seq + 1, "unchained",
                                    f"{_span(head_seq + 1, last_seq)}: after the chain head (seq {head_seq}) — "
                                    "added without going through the chain"))
        elif recorded != head_hash:
            problems.append(Problem(head_seq, "head",
                                    f"the chain head's hash does not match seq {head_seq}'s — the last row "
                                    "or the head record was rewritten"))

    found: int | None = None
    if expect_head:
        wanted = expect_head.strip().lower()
        found = 0 if wanted == GENESIS else index.seq_of(wanted)
        if found is None:
            problems.append(Problem(None, "head", f"the head you recorded ({expect_head}) is not in the chain "
                                                  "— rows were cut from the end, or the chain was rewritten"))
    return Verdict(rows=len(rows), first_seq=rows[0].seq if rows else None, last_seq=last.seq if last else None,
                   head_hash=head_hash, problems=tuple(problems), expect_head_seq=found)


def render(verdict: Verdict, store: str) -> list[str]:
    """What ``canary-console audit verify`` prints."""
    span = f"seq {verdict.first_seq}–{verdict.last_seq}" if verdict.rows else "empty"
    if verdict.intact:
        lines = [f"audit chain OK: {verdict.rows} row{'s' if verdict.rows != 1 else ''} ({span}) in {store}"]
    else:
        n = len(verdict.problems)
        lines = [f"audit chain TAMPERED: {n} problem{'s' if n > 1 else ''} in {verdict.rows} rows ({span}) in {store}"]
        lines += [f"  {p.message}" for p in verdict.problems[:MAX_LISTED]]
        if n > MAX_LISTED:
            lines.append(f"  … and {n - MAX_LISTED} more")
    if verdict.expect_head_seq is not None:
        lines.append(f"the head you recorded is seq {verdict.expect_head_seq} of the chain: nothing before it "
                     "was cut off")
    lines.append(f"head: seq {verdict.last_seq or 0} {verdict.head_hash}")
    if verdict.intact:
        lines.append("Rows cut from the end together with the chain head cannot be detected from the store "
                     "alone: record this head hash elsewhere, and check it later with --expect-head HASH.")
    return lines
