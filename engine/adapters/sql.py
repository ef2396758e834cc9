"""Every statement the engine sends to a target server, as named constants in one place.

Each is tagged ``/* canary-console:<step> */`` so a DBA can find it in the processlist. Values go
through ``%s`` parameters; identifiers go through ``engine.domain.identifiers.quote`` and the builders
at the bottom, never through string formatting of raw input.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.domain.identifiers import check_identifier, qualified, quote

SERVER_VERSION = "SELECT /* canary-console:detect */ VERSION() AS version, @@version_comment AS comment"

CONNECTION_ID = "SELECT /* canary-console:session */ CONNECTION_ID() AS id"

HEALTH = "SELECT /* canary-console:health */ 1 AS ok"  # the frame's connection health

SET_LOCK_WAIT_TIMEOUT = "SET /* canary-console:alter */ SESSION lock_wait_timeout = %s"

TABLE_INFO = """
SELECT /* canary-console:precheck */ TABLE_NAME AS table_name, ENGINE AS engine,
       TABLE_ROWS AS table_rows, DATA_LENGTH AS data_length, INDEX_LENGTH AS index_length,
       TABLE_TYPE AS table_type
FROM information_schema.TABLES
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
"""

TABLE_COLUMNS = """
SELECT /* canary-console:precheck */ COLUMN_NAME AS name, DATA_TYPE AS data_type,
       COLUMN_KEY AS column_key
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY ORDINAL_POSITION
"""

TABLE_INDEXES = """
SELECT /* canary-console:precheck */ INDEX_NAME AS name, SEQ_IN_INDEX AS seq,
       COLUMN_NAME AS column_name, SUB_PART AS sub_part, NON_UNIQUE AS non_unique,
       INDEX_TYPE AS index_type
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY INDEX_NAME, SEQ_IN_INDEX
"""

INDEX_EXISTS = """
SELECT /* canary-console:verify */ COUNT(*) AS n
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = %s
"""

PROCESSLIST_ACTIVE = """
SELECT /* canary-console:processlist */ ID AS id, USER AS user, DB AS db, COMMAND AS command,
       TIME AS time, STATE AS state, INFO AS info
FROM information_schema.PROCESSLIST
WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump')
  AND INFO IS NOT NULL
"""

PROCESSLIST_THREAD = """
SELECT /* canary-console:processlist */ ID AS id, COMMAND AS command, TIME AS time,
       STATE AS state, INFO AS info
FROM information_schema.PROCESSLIST
WHERE ID = %s
"""

# Transactions open at least %s seconds (trx_started has whole seconds), with their session.
LONG_TRANSACTIONS = """
SELECT /* canary-console:precheck */ t.trx_mysql_thread_id AS thread_id,
       t.trx_started AS started, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) AS age_s,
       t.trx_state AS state, t.trx_query AS query, p.USER AS user, p.HOST AS host
FROM information_schema.INNODB_TRX t
LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
WHERE t.trx_started <= NOW() - INTERVAL %s SECOND
ORDER BY t.trx_started
"""

# Metadata locks on the table (performance_schema; needs the wait/lock/metadata/sql/mdl
# instrument, which ENABLE_MDL_INSTRUMENT turns on where the user may).
TABLE_METADATA_LOCKS = """
SELECT /* canary-console:mdl */ th.PROCESSLIST_ID AS thread_id, ml.LOCK_TYPE AS lock_type,
       ml.LOCK_DURATION AS lock_duration, ml.LOCK_STATUS AS lock_status,
       th.PROCESSLIST_TIME AS time, th.PROCESSLIST_INFO AS info
FROM performance_schema.metadata_locks ml
JOIN performance_schema.threads th ON th.THREAD_ID = ml.OWNER_THREAD_ID
WHERE ml.OBJECT_TYPE = 'TABLE' AND ml.OBJECT_SCHEMA = %s AND ml.OBJECT_NAME = %s
"""

MDL_INSTRUMENT_ENABLED = """
SELECT /* canary-console:mdl */ ENABLED AS enabled FROM performance_schema.setup_instruments
WHERE NAME = 'wait/lock/metadata/sql/mdl'
"""

ENABLE_MDL_INSTRUMENT = """
UPDATE /* canary-console:mdl */ performance_schema.setup_instruments
SET ENABLED = 'YES', TIMED = 'YES' WHERE NAME = 'wait/lock/metadata/sql/mdl'
"""

# Fallback when performance_schema.metadata_locks cannot be read: sessions the processlist shows
# waiting for a metadata lock.
PROCESSLIST_MDL_WAITERS = """
SELECT /* canary-console:mdl */ ID AS thread_id, TIME AS time, STATE AS state, INFO AS info
FROM information_schema.PROCESSLIST
WHERE STATE LIKE 'Waiting for table metadata lock%%'
"""

KILL_QUERY = "KILL /* canary-console:kill-switch */ QUERY %s"

PK_RANGE = """
SELECT /* canary-console:size-gate */ MIN({pk}) AS lo, MAX({pk}) AS hi FROM {table}
"""

COUNT_ALL = "SELECT /* canary-console:size-gate */ COUNT(*) AS n FROM {table}"

COUNT_PK_RANGE = "SELECT /* canary-console:size-gate */ COUNT(*) AS n FROM {table} WHERE {pk} >= %s AND {pk} < %s"

SHOW_CREATE_TABLE = "SHOW /* canary-console:rollback-point */ CREATE TABLE {table}"


# --- builders: identifiers are validated and quoted here, and only here ----------------------


def count_all(schema: str, table: str) -> str:
    return COUNT_ALL.format(table=qualified(schema, table))


def pk_range(schema: str, table: str, pk: str) -> str:
    return PK_RANGE.format(table=qualified(schema, table), pk=quote(pk, "column"))


def count_pk_range(schema: str, table: str, pk: str) -> str:
    return COUNT_PK_RANGE.format(table=qualified(schema, table), pk=quote(pk, "column"))


def show_create_table(schema: str, table: str) -> str:
    return SHOW_CREATE_TABLE.format(table=qualified(schema, table))


def _run_tag(run_id: str) -> str:
    # A run id is a UUID; anything else never reaches a comment in SQL.
    if not run_id or not all(c in "0123456789abcdef-" for c in run_id) or len(run_id) > 36:
        raise ValueError(f"not a run id: {run_id!r}")
    return f"/* canary-console:alter run={run_id} */"


def alter_tag(run_id: str) -> str:
    """The marker the ALTER carries, by which any console finds it in the processlist."""
    return _run_tag(run_id)


def add_index(schema: str, table: str, index: str, columns: Sequence[tuple[str, int | None]],
              run_id: str) -> str:
    """``ALTER TABLE … ADD INDEX … ALGORITHM=INPLACE, LOCK=NONE`` — never a locking fallback."""
    if not columns:
        raise ValueError("an index needs at least one column")
    cols = []
    for name, prefix in columns:
        col = quote(name, "column")
        if prefix is not None:
            if isinstance(prefix, bool) or not isinstance(prefix, int) or prefix < 1:
                raise ValueError(f"bad prefix length {prefix!r} for column {name}")
            col += f"({prefix:d})"
        cols.append(col)
    return (
        f"ALTER {_run_tag(run_id)} TABLE {qualified(schema, table)} "
        f"ADD INDEX {quote(index, 'index')} ({', '.join(cols)}), ALGORITHM=INPLACE, LOCK=NONE"
    )


def drop_index(schema: str, table: str, index: str) -> str:
    return (
        f"ALTER /* canary-console:rollback */ TABLE {qualified(schema, table)} "
        f"DROP INDEX {quote(index, 'index')}, ALGORITHM=INPLACE, LOCK=NONE"
    )


def ignore_index(schema: str, table: str, index: str, flavour: str, undo: bool = False) -> str:
    """The ladder's first rung: instant and reversible (MariaDB ≥ 10.6 IGNORED, MySQL 8 INVISIBLE)."""
    check_identifier(index, "index")
    if flavour == "mariadb":
        word = "NOT IGNORED" if undo else "IGNORED"
    else:
        word = "VISIBLE" if undo else "INVISIBLE"
    return (
        f"ALTER /* canary-console:rollback */ TABLE {qualified(schema, table)} "
        f"ALTER INDEX {quote(index, 'index')} {word}"
    )


def show_index_query(schema: str, table: str, index: str) -> str:
    """The runbook's human verification query (R2), for display and for the DBA's clipboard."""
    check_identifier(index, "index")
    return f"SHOW INDEX FROM {qualified(schema, table)} WHERE Key_name = '{index}'"


def rollback_ladder(schema: str, table: str, index: str, flavour: str, supports_ignored: bool) -> list[dict[str, object]]:
    """The rollback ladder the executor stores with the rollback point (and a dry run shows): rung 1
    IGNORED/INVISIBLE where the server has it (instant, reversible), then the DROP (docs/rollback.md)."""
    ladder: list[dict[str, object]] = []
    if supports_ignored:
        ladder.append({"rung": "ignore", "reversible": True,
                       "sql": ignore_index(schema, table, index, flavour),
                       "undo_sql": ignore_index(schema, table, index, flavour, undo=True)})
    ladder.append({"rung": "drop", "reversible": False, "sql": drop_index(schema, table, index),
                   "verify_sql": show_index_query(schema, table, index)})
    return ladder


def create_table_like(schema: str, scratch: str, table: str) -> str:
    """An empty copy of the table, for the rollback rehearsal of runbook 2.4.1."""
    return (f"CREATE /* canary-console:precheck */ TABLE {qualified(schema, scratch)} "
            f"LIKE {qualified(schema, table)}")


def drop_table(schema: str, scratch: str) -> str:
    if not scratch.startswith("_canary_scratch_"):
        raise ValueError(f"only a scratch copy is ever dropped, not {scratch!r}")
    return f"DROP /* canary-console:precheck */ TABLE IF EXISTS {qualified(schema, scratch)}"


# The ALTER's progress (docs/runbook.md#4-execution): the current stage of its thread, from performance_schema.
ALTER_STAGE = """
SELECT /* canary-console:progress */ s.EVENT_NAME AS stage, s.WORK_COMPLETED AS done,
       s.WORK_ESTIMATED AS estimated
FROM performance_schema.events_stages_current s
JOIN performance_schema.threads t ON t.THREAD_ID = s.THREAD_ID
WHERE t.PROCESSLIST_ID = %s
"""


# --- the rollback ladder's first rung, verified (docs/rollback.md) -------------------------------------

# 1 when the index is ignored by the optimiser, 0 when in use, NULL when there is no such index.
# MariaDB ≥ 10.6 has STATISTICS.IGNORED; MySQL 8 has STATISTICS.IS_VISIBLE.
INDEX_IGNORED_MARIADB = """
SELECT /* canary-console:rollback-verify */ MAX(IGNORED = 'YES') AS ignored
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = %s
"""

INDEX_INVISIBLE_MYSQL = """
SELECT /* canary-console:rollback-verify */ MAX(IS_VISIBLE = 'NO') AS ignored
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = %s
"""


def ignored_index_query(schema: str, table: str, index: str, flavour: str) -> str:
    """The rung-1 verification a DBA can paste (display only; the engine sends the %s form)."""
    for value, what in ((schema, "schema"), (table, "table"), (index, "index")):
        check_identifier(value, what)
    column = "IGNORED" if flavour == "mariadb" else "IS_VISIBLE"
    where = f"TABLE_SCHEMA = '{schema}' AND TABLE_NAME = '{table}' AND INDEX_NAME = '{index}'"
    return f"SELECT INDEX_NAME, {column} FROM information_schema.STATISTICS WHERE {where}"  # noqa: S608 - validated above
