"""The fault injection's SQL (engine/drill/faults.py): each statement a named constant, tagged
``/* canary-console:fault… */``, with ``%s`` parameters; the identifiers in a template are validated
and quoted by ``build_statement``. Nothing here changes a row.
"""

from __future__ import annotations

from engine.domain.identifiers import qualified, quote

SYNTAX_ERROR = 1064  # the older spelling of a replication statement is tried next

# --- statements (identifiers are validated and quoted by the builders below) -----------------------

SET_READ_COMMITTED = "SET /* canary-console:fault */ SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
SET_ROW_LOCK_WAIT = "SET /* canary-console:fault */ SESSION innodb_lock_wait_timeout = %s"
SET_MDL_WAIT = "SET /* canary-console:fault */ SESSION lock_wait_timeout = %s"
SET_MAX_STATEMENT_TIME = "SET /* canary-console:fault */ SESSION max_statement_time = %s"  # MariaDB
BEGIN = "START /* canary-console:fault */ TRANSACTION"
ROLLBACK = "ROLLBACK /* canary-console:fault */"
KILL_QUERY = "KILL /* canary-console:fault-stop */ QUERY %s"

PK_RANGE = "SELECT /* canary-console:fault */ MIN({pk}) AS lo, MAX({pk}) AS hi FROM {table}"
# Lock contention: a range of hot rows locked (READ COMMITTED: exactly those rows, no gaps) …
LOCK_HOT_ROWS = "SELECT /* canary-console:fault-lock */ COUNT(*) AS n FROM {table} WHERE {pk} BETWEEN %s AND %s FOR UPDATE"
# … and a hot-row writer that queues behind it, as the application's would (a no-op update).
WRITE_HOT_ROW = "UPDATE /* canary-console:fault-lock */ {table} SET {pk} = {pk} WHERE {pk} = %s"
# A latency regression: full scans that burn CPU on every row of the table, and commits flushed to
# disk (redo log and binary log) — the settings read first and put back on stop.
HEAVY_SCAN = "SELECT /* canary-console:fault-latency */ COUNT(*) AS n FROM {table} WHERE MD5({pk}) LIKE %s"
READ_COMMIT_SETTINGS = ("SELECT /* canary-console:fault-latency */ @@GLOBAL.innodb_flush_log_at_trx_commit AS flush, "
                        "@@GLOBAL.sync_binlog AS sync")
# ... and the buffer pool shrunk to a fraction of the table: the working set no longer fits in memory
# (as when a new index's pages crowd it out), so the table's reads and writes wait for the disk.
READ_POOL_SIZE = "SELECT /* canary-console:fault-latency */ @@GLOBAL.innodb_buffer_pool_size AS pool"
SET_POOL_SIZE = "SET /* canary-console:fault-latency */ GLOBAL innodb_buffer_pool_size = %s"
SET_COMMIT_SETTINGS = ("SET /* canary-console:fault-latency */ GLOBAL innodb_flush_log_at_trx_commit = %s, "
                       "GLOBAL sync_binlog = %s")
# An error burst: a duplicate primary key (a copy of an existing row: never inserts anything) and
# a column that is not there (an application deployed ahead of its schema).
DUPLICATE_ROW = "INSERT /* canary-console:fault-errors */ INTO {table} SELECT * FROM {table} LIMIT 1"
MISSING_COLUMN = "SELECT /* canary-console:fault-errors */ {column} FROM {table} LIMIT 1"
MISSING_COLUMN_NAME = "canary_fault_missing_column"
# A long transaction: one read keeps the table's shared metadata lock until the transaction ends.
READ_TABLE = "SELECT /* canary-console:fault-mdl */ 1 AS one FROM {table} LIMIT 1"

# Replication: the current spelling first, then the older one (MariaDB < 10.5, MySQL < 8.0.22).
REPLICA_STATUS = ("SHOW /* canary-console:fault-lag */ REPLICA STATUS", "SHOW /* canary-console:fault-lag */ SLAVE STATUS")
STOP_SQL_THREAD = ("STOP /* canary-console:fault-lag */ REPLICA SQL_THREAD",
                   "STOP /* canary-console:fault-lag */ SLAVE SQL_THREAD")
START_SQL_THREAD = ("START /* canary-console:fault-lag */ REPLICA SQL_THREAD",
                    "START /* canary-console:fault-lag */ SLAVE SQL_THREAD")
STOP_REPLICA = ("STOP /* canary-console:fault-lag */ REPLICA", "STOP /* canary-console:fault-lag */ SLAVE")
START_REPLICA = ("START /* canary-console:fault-lag */ REPLICA", "START /* canary-console:fault-lag */ SLAVE")
SET_DELAY = ("CHANGE /* canary-console:fault-lag */ MASTER TO MASTER_DELAY = %s",
             "CHANGE /* canary-console:fault-lag */ REPLICATION SOURCE TO SOURCE_DELAY = %s")


def build_statement(template: str, schema: str, table: str, pk: str | None = None, column: str | None = None) -> str:
    return template.format(table=qualified(schema, table), pk=quote(pk, "column") if pk else "",
                           column=quote(column, "column") if column else "")
