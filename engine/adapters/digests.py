"""Statement digests of the target table, from performance_schema (docs/metrics.md#the-primary-mysqlmariadb).

The cumulative counters are read in one round trip; windows are the deltas between two reads
(``engine.domain.verification.window``).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.adapters.target import TargetSession
from engine.domain.identifiers import check_identifier
from engine.domain.verification import DigestStats

# Digests of data statements on the table: either the plan's digests, or those whose normalised
# text names the table (performance_schema writes identifiers back-quoted).
DIGESTS_FOR_TABLE = """
SELECT /* canary-console:digests */ DIGEST AS digest, LEFT(DIGEST_TEXT, 300) AS digest_text,
       COUNT_STAR AS count, SUM_TIMER_WAIT AS sum_timer_ps, SUM_ROWS_EXAMINED AS rows_examined,
       SUM_NO_INDEX_USED AS no_index_used, SUM_ERRORS AS errors
FROM performance_schema.events_statements_summary_by_digest
WHERE SCHEMA_NAME = %s AND DIGEST_TEXT LIKE %s
  AND DIGEST_TEXT REGEXP '^(SELECT|INSERT|UPDATE|DELETE|REPLACE)'
"""

DIGESTS_BY_ID = """
SELECT /* canary-console:digests */ DIGEST AS digest, LEFT(DIGEST_TEXT, 300) AS digest_text,
       COUNT_STAR AS count, SUM_TIMER_WAIT AS sum_timer_ps, SUM_ROWS_EXAMINED AS rows_examined,
       SUM_NO_INDEX_USED AS no_index_used, SUM_ERRORS AS errors
FROM performance_schema.events_statements_summary_by_digest
WHERE SCHEMA_NAME = %s AND DIGEST IN ({placeholders})
"""


def table_like(table: str) -> str:
    """The LIKE pattern of digest texts that name the table (back-quoted, wildcards escaped)."""
    return "%`" + table.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "`%"


def snapshot(session: TargetSession, schema: str, table: str,
             digests: Sequence[str] = ()) -> list[DigestStats]:
    check_identifier(schema, "schema")
    check_identifier(table, "table")
    if digests:
        statement = DIGESTS_BY_ID.format(placeholders=", ".join(["%s"] * len(digests)))
        rows = session.query(statement, (schema, *digests))
    else:
        rows = session.query(DIGESTS_FOR_TABLE, (schema, table_like(table)))
    return [
        DigestStats(str(r["digest"]), r["digest_text"] or "", int(r["count"]), int(r["sum_timer_ps"]),
                    int(r["rows_examined"]), int(r["no_index_used"]), int(r["errors"]))
        for r in rows
    ]
