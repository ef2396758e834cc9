"""engine.adapters.target.TargetSession against the suite's sandbox MariaDB: version detection, catalogue
reads, the chunked exact count, pending DDL, long transactions and metadata-lock waiters, KILL QUERY,
error classes, and digest snapshots. Every test works in a database of its own."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from typing import Any

import pymysql
import pytest

from engine.adapters import digests
from engine.adapters.net import free_port
from engine.adapters.target import TargetError, TargetSession, classify, describe, parse_version
from engine.domain.identifiers import IdentifierError
from engine.domain.verification import Totals, window
from engine.drill.selftest import wait_for

pytestmark = pytest.mark.mariadb


def open_session(sandbox, db: str, purpose: str = "test") -> TargetSession:
    return TargetSession(sandbox.primary.profile(db), purpose)


def run_in_thread(sandbox, db: str, *statements: str) -> tuple[Any, threading.Thread, dict[str, Any]]:
    """Run ``statements`` on a separate pymysql connection in a daemon thread. The result dict gets
    ``rows`` (of the last statement), ``error`` (a pymysql error) and ``elapsed`` (seconds)."""
    conn = sandbox.primary.connect(db, read_timeout=60)
    result: dict[str, Any] = {}

    def work() -> None:
        started = time.monotonic()
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                result["rows"] = cur.fetchall()
        except pymysql.MySQLError as exc:
            result["error"] = exc
        finally:
            result["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return conn, thread, result


def record_sent(session: TargetSession) -> list[str]:
    """Every statement the session's connection sends from now on."""
    sent: list[str] = []
    original = session.conn.query

    def query(sql: str, unbuffered: bool = False) -> int:
        sent.append(sql)
        return original(sql, unbuffered)

    session.conn.query = query  # type: ignore[method-assign]
    return sent


# --- version -------------------------------------------------------------------------------------


def test_server_info_of_the_sandbox(sandbox, lab):
    db = lab.database("tt_server")
    with open_session(sandbox, db) as s:
        info = s.server_info()
    assert info.flavour == "mariadb"
    assert info.version >= (10, 0, 0)
    assert "mariadb" in info.version_string.lower()
    assert info.supports_ignored_index == (info.version >= (10, 6, 0))
    if info.version[:2] == (10, 11):
        assert info.supports_ignored_index is True
    assert info.describe() == "MariaDB " + ".".join(map(str, info.version))


@pytest.mark.parametrize(
    ("version", "comment", "flavour", "numbers", "ignored"),
    [
        ("8.0.36", "MySQL Community Server - GPL", "mysql", (8, 0, 36), True),
        ("5.7.44-log", "MySQL Community Server (GPL)", "mysql", (5, 7, 44), False),
        ("10.11.6-MariaDB-0+deb12u1-log", "Debian 12", "mariadb", (10, 11, 6), True),
        ("10.6.0-MariaDB", "", "mariadb", (10, 6, 0), True),
        ("10.5.23-MariaDB-log", "MariaDB Server", "mariadb", (10, 5, 23), False),
        ("5.5.5-10.4.32-MariaDB", "", "mariadb", (5, 5, 5), False),  # the old 5.5.5- prefix
        ("11.4.2", "mariadb.org binary distribution", "mariadb", (11, 4, 2), True),
        ("garbage", "", "mysql", (0, 0, 0), False),
    ],
)
def test_parse_version(version, comment, flavour, numbers, ignored):
    info = parse_version(version, comment)
    assert (info.flavour, info.version, info.supports_ignored_index) == (flavour, numbers, ignored)
    assert info.version_string == version


# --- catalogue -----------------------------------------------------------------------------------


def test_table_info_for_a_table_a_missing_table_and_a_view(sandbox, lab):
    db = lab.database("tt_tableinfo")
    lab.load_orders(db, 50_000)  # ends with ANALYZE TABLE
    with open_session(sandbox, db) as s:
        info = s.table_info(db, "orders")
        assert info is not None
        assert (info.schema, info.table, info.engine) == (db, "orders", "InnoDB")
        assert abs(info.estimated_rows - 50_000) <= 0.25 * 50_000, info.estimated_rows
        assert info.data_bytes > 0 and info.data_mb > 0
        assert info.index_bytes >= 0 and info.index_mb >= 0
        assert s.table_info(db, "no_such_table") is None
        s.execute("CREATE VIEW v_orders AS SELECT id, customer_id FROM orders")
        assert s.table_info(db, "v_orders") is None, "a view is not a table to index"
        with pytest.raises(IdentifierError):
            s.table_info(db, "orders' OR '1'='1")


def test_indexes_primary_key_show_create_and_columns(sandbox, lab):
    db = lab.database("tt_catalog")
    with open_session(sandbox, db) as s:
        s.execute(
            "CREATE TABLE items (id INT PRIMARY KEY, sku VARCHAR(40) NOT NULL, cat INT, name VARCHAR(100), "
            "UNIQUE KEY uq_sku (sku), KEY idx_cat_name (cat, name(10))) ENGINE=InnoDB"
        )
        s.execute("CREATE TABLE pairs (a INT, b INT, v INT, PRIMARY KEY (a, b)) ENGINE=InnoDB")
        s.execute("CREATE TABLE heap (v INT) ENGINE=InnoDB")

        by_name = {i.name: i for i in s.indexes(db, "items")}
        assert set(by_name) == {"PRIMARY", "uq_sku", "idx_cat_name"}
        assert by_name["PRIMARY"].columns == (("id", None),) and by_name["PRIMARY"].unique
        assert by_name["uq_sku"].columns == (("sku", None),) and by_name["uq_sku"].unique
        assert by_name["idx_cat_name"].columns == (("cat", None), ("name", 10))
        assert not by_name["idx_cat_name"].unique and by_name["idx_cat_name"].index_type == "BTREE"
        assert by_name["idx_cat_name"].as_dict() == {
            "name": "idx_cat_name", "columns": [["cat", None], ["name", 10]], "unique": False, "type": "BTREE"}
        assert s.indexes(db, "heap") == [] and s.indexes(db, "no_such_table") == []

        assert s.index_exists(db, "items", "idx_cat_name") and s.index_exists(db, "items", "PRIMARY")
        assert not s.index_exists(db, "items", "idx_nope")
        assert not s.index_exists(db, "pairs", "idx_cat_name"), "an index name is per table"

        assert s.primary_key(db, "items") == ["id"]
        assert s.primary_key(db, "pairs") == ["a", "b"]
        assert s.primary_key(db, "heap") == []

        ddl = s.show_create_table(db, "items")
        assert ddl.startswith("CREATE TABLE `items`")
        assert "UNIQUE KEY `uq_sku` (`sku`)" in ddl and "KEY `idx_cat_name` (`cat`,`name`(10))" in ddl
        with pytest.raises(TargetError) as missing:
            s.show_create_table(db, "no_such_table")
        assert missing.value.kind == "no_such_table" and missing.value.code == 1146

        cols = s.columns(db, "items")
        assert [c["name"] for c in cols] == ["id", "sku", "cat", "name"]
        assert [c["data_type"] for c in cols] == ["int", "varchar", "int", "varchar"]
        assert [c["column_key"] for c in cols] == ["PRI", "UNI", "MUL", ""]
        assert s.columns(db, "no_such_table") == []


# --- exact count ---------------------------------------------------------------------------------


def test_exact_count_in_chunks_with_progress(sandbox, lab):
    db = lab.database("tt_count")
    lab.load_orders(db, 50_000)
    seen: list[float] = []
    with open_session(sandbox, db) as s:
        sent = record_sent(s)
        assert s.exact_count(db, "orders", chunk=7000, progress=seen.append) == 50_000
        assert len(seen) == 8, seen  # ceil(50_000 / 7000) chunks, one report each
        assert seen == sorted(seen) and 0 < seen[0] < 1 and seen[-1] == 1.0
        assert sum("COUNT(*)" in q and "WHERE `id` >=" in q for q in sent) == 8

        # rows deleted in the middle leave gaps in the key; the count is still exact
        s.execute("DELETE FROM orders WHERE id BETWEEN 10001 AND 20000")
        assert s.exact_count(db, "orders", chunk=7000) == 40_000
        # the default chunk: one range
        assert s.exact_count(db, "orders") == 40_000

        s.execute("CREATE TABLE empty_t (id INT PRIMARY KEY)")
        assert s.exact_count(db, "empty_t", chunk=10) == 0


def test_exact_count_cancelled_from_the_progress_callback(sandbox, lab):
    db = lab.database("tt_count_cancel")
    lab.load_orders(db, 50_000)
    stop = threading.Event()
    seen: list[float] = []

    def progress(p: float) -> None:
        seen.append(p)
        stop.set()

    with open_session(sandbox, db) as s:
        assert s.exact_count(db, "orders", chunk=7000, progress=progress, cancel=stop) is None
        assert len(seen) == 1 and seen[0] < 1.0, "stops before the next chunk"
        already = threading.Event()
        already.set()
        assert s.exact_count(db, "orders", chunk=7000, cancel=already) is None


def test_exact_count_without_an_integer_key(sandbox, lab):
    db = lab.database("tt_count_nopk")
    with open_session(sandbox, db) as s:
        s.execute("CREATE TABLE tags (name VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB")
        s.execute("INSERT INTO tags SELECT CONCAT('tag-', seq) FROM seq_1_to_1234")
        s.execute("CREATE TABLE pairs (a INT, b INT, PRIMARY KEY (a, b)) ENGINE=InnoDB")
        s.execute("INSERT INTO pairs SELECT seq % 7, seq FROM seq_1_to_500")
        s.execute("CREATE TABLE heap (v INT) ENGINE=InnoDB")
        s.execute("INSERT INTO heap SELECT seq FROM seq_1_to_77")
        for table, n in (("tags", 1234), ("pairs", 500), ("heap", 77)):
            seen: list[float] = []
            assert s.exact_count(db, table, chunk=100, progress=seen.append) == n, table
            assert seen == [1.0], table


def test_hostile_identifiers_are_refused_before_anything_is_sent(sandbox, lab):
    db = lab.database("tt_hostile")
    lab.load_orders(db, 100)
    with open_session(sandbox, db) as s:
        sent = record_sent(s)
        for table in ("orders`; DROP TABLE orders; --", "orders where 1", "orders\n", "", "o" * 65):
            with pytest.raises(IdentifierError):
                s.exact_count(db, table)
            with pytest.raises(IdentifierError):
                s.show_create_table(db, table)
        with pytest.raises(IdentifierError):
            s.exact_count("tt_hostile`.`x", "orders")
        assert sent == [], "a refused identifier must not reach the server in any form"
        assert s.exact_count(db, "orders") == 100, "the table is intact"


# --- pending DDL, long transactions, metadata locks ----------------------------------------------


def test_pending_ddl_sees_a_running_alter_and_nothing_when_idle(sandbox, lab):
    db = lab.database("tt_pending")
    lab.load_orders(db, 300_000)
    with open_session(sandbox, db) as s:
        assert s.pending_ddl(db, "orders") == []
        conn, thread, result = run_in_thread(
            sandbox, db, "ALTER TABLE orders ADD INDEX idx_note_status (note, status), ALGORITHM=INPLACE, LOCK=NONE")
        try:
            pending = wait_for(lambda: s.pending_ddl(db, "orders"), 10, step=0.01)
            assert pending, f"the ALTER was not seen running (it took {result.get('elapsed')} s)"
            assert [p["id"] for p in pending] == [conn.thread_id()]
            assert "ADD INDEX idx_note_status" in pending[0]["info"] and pending[0]["db"] == db
            assert s.pending_ddl(db, "customers") == [], "DDL on another table is not pending here"
            thread.join(30)
            assert not thread.is_alive() and "error" not in result, result
        finally:
            thread.join(30)
            conn.close()
        # The server may list the thread for a moment after the client has its answer.
        assert wait_for(lambda: s.pending_ddl(db, "orders") == [], 10, step=0.05)
        assert s.index_exists(db, "orders", "idx_note_status")


def test_long_transaction_and_the_alter_waiting_behind_it(sandbox, lab):
    db = lab.database("tt_mdl")
    lab.load_orders(db, 5_000)
    blocker = sandbox.primary.connect(db)
    alter_conn = None
    thread = None
    try:
        with blocker.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT id, total FROM orders WHERE id <= 10")
            cur.fetchall()
        time.sleep(1.5)
        with open_session(sandbox, db) as s:
            long_trx = s.long_transactions_on_table(db, "orders", older_than_s=1)
            assert blocker.thread_id() in {t["thread_id"] for t in long_trx}, long_trx
            mine = next(t for t in long_trx if t["thread_id"] == blocker.thread_id())
            assert mine["age_s"] >= 1 and mine["user"] == "root"
            assert s.long_transactions_on_table(db, "orders", older_than_s=3600) == []
            assert s.long_transactions_on_table(db, "other_table", older_than_s=1) == [], \
                "a transaction that never touched the table does not block its ALTER"

            report = s.metadata_locks(db, "orders")
            assert report.source == "performance_schema" and report.waiters == []
            assert blocker.thread_id() in {h["thread_id"] for h in report.holders}

            alter_conn, thread, result = run_in_thread(
                sandbox, db, "SET SESSION lock_wait_timeout = 5",
                "ALTER TABLE orders ADD INDEX idx_mdl (customer_id), ALGORITHM=INPLACE, LOCK=NONE")
            started = time.monotonic()
            waiters = wait_for(lambda: s.metadata_locks(db, "orders").waiters, 1.5, step=0.02)
            assert waiters, "the ALTER did not show up as a metadata-lock waiter"
            assert time.monotonic() - started < 1.5
            waiting = {w["thread_id"]: w for w in waiters}
            assert alter_conn.thread_id() in waiting
            assert waiting[alter_conn.thread_id()]["lock_status"] == "PENDING"
            assert "ALTER TABLE orders" in (waiting[alter_conn.thread_id()]["info"] or "")
            assert s.thread(alter_conn.thread_id())["state"].startswith("Waiting for table metadata lock")

            blocker.rollback()
            thread.join(10)
            assert not thread.is_alive() and "error" not in result, result
            assert result["elapsed"] < 5, "the ALTER finished once the blocker let go, not by timeout"
            assert s.index_exists(db, "orders", "idx_mdl")
            assert s.metadata_locks(db, "orders").waiters == []
            assert s.long_transactions_on_table(db, "orders", older_than_s=1) == []
    finally:
        blocker.rollback()
        blocker.close()
        if thread is not None:
            thread.join(10)
        if alter_conn is not None:
            alter_conn.close()


# --- KILL QUERY ----------------------------------------------------------------------------------


def test_kill_query_ends_a_running_sleep(sandbox, lab):
    db = lab.database("tt_kill")
    conn, thread, result = run_in_thread(sandbox, db, "SELECT SLEEP(30) AS slept")
    try:
        with open_session(sandbox, db) as s:
            running = wait_for(lambda: (s.thread(conn.thread_id()) or {}).get("info"), 5)
            assert running and "SLEEP(30)" in running
            killed_at = time.monotonic()
            s.kill_query(conn.thread_id())
            thread.join(5)
            took = time.monotonic() - killed_at
            assert not thread.is_alive() and took < 2, took
            assert result["elapsed"] < 10
            if "error" in result:
                assert classify(result["error"]) == "interrupted", describe(result["error"])
            else:  # MariaDB ends an interrupted SLEEP() with 1
                assert result["rows"] == [{"slept": 1}]
            # KILL QUERY ends the statement, not the connection
            with conn.cursor() as cur:
                cur.execute("SELECT 1 AS one")
                assert cur.fetchone() == {"one": 1}
            with pytest.raises(TargetError) as gone:
                s.kill_query(2_000_000_000)
            assert gone.value.code == 1094  # unknown thread id
    finally:
        thread.join(5)
        conn.close()


# --- errors --------------------------------------------------------------------------------------


def test_wrong_password_is_access_denied_with_the_password_hint(sandbox, lab, monkeypatch):
    db = lab.database("tt_err_auth")
    monkeypatch.setenv("CC_TEST_TARGET_PASSWORD", "nope")
    profile = replace(sandbox.primary.profile(db), user="root", password_env="CC_TEST_TARGET_PASSWORD")
    assert profile.password() == "nope"
    with pytest.raises(TargetError) as denied:
        TargetSession(profile)
    err = denied.value
    assert err.kind == "access_denied" and err.code == 1045
    assert "password source" in str(err) and "password_env" in str(err)
    assert profile.describe() in str(err)
    assert "nope" not in str(err), "the password itself is never shown"


def test_closed_port_is_lost_connection(sandbox, lab):
    db = lab.database("tt_err_port")
    started = time.monotonic()
    with pytest.raises(TargetError) as down:
        TargetSession(replace(sandbox.primary.profile(db), port=free_port()))
    assert down.value.kind == "lost_connection" and down.value.code == 2003
    assert "server is up" in str(down.value)
    assert time.monotonic() - started < 3


def test_missing_table_and_lock_wait_timeout(sandbox, lab):
    db = lab.database("tt_err_sql")
    with open_session(sandbox, db) as s:
        with pytest.raises(TargetError) as missing:
            s.query("SELECT * FROM no_such_table")
        assert missing.value.kind == "no_such_table" and missing.value.code == 1146
        assert str(missing.value).startswith("(1146) ") and "no_such_table" in str(missing.value)
        s.execute("CREATE TABLE locked (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        s.execute("INSERT INTO locked VALUES (1, 0)")

    # the same classes straight from pymysql's exceptions
    raw = sandbox.primary.connect(db)
    try:
        with raw.cursor() as cur, pytest.raises(pymysql.MySQLError) as exc:
            cur.execute("SELECT * FROM no_such_table")
        assert classify(exc.value) == "no_such_table"
        assert describe(exc.value) == f"(1146) Table '{db}.no_such_table' doesn't exist"
    finally:
        raw.close()
    assert classify(OSError("boom")) == "lost_connection" and describe(OSError("boom")) == "OSError: boom"
    assert classify(ValueError("x")) == "error"

    holder = sandbox.primary.connect(db)
    try:
        with holder.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("UPDATE locked SET v = 1 WHERE id = 1")
        with open_session(sandbox, db) as s:
            s.execute("SET SESSION innodb_lock_wait_timeout = 1")
            started = time.monotonic()
            with pytest.raises(TargetError) as waited:
                s.execute("UPDATE locked SET v = 2 WHERE id = 1")
            assert time.monotonic() - started < 3
            assert waited.value.kind == "lock_wait_timeout" and waited.value.code == 1205
    finally:
        holder.rollback()
        holder.close()


# --- digests -------------------------------------------------------------------------------------


def test_digest_snapshots_and_windows_around_an_index(sandbox, lab):
    db = lab.database("tt_digest")
    lab.load_orders(db, 30_000)
    query = "SELECT id, total FROM orders WHERE customer_id = %s"
    conn = sandbox.primary.connect(db)

    def burst(offset: int) -> None:
        with conn.cursor() as cur:
            for i in range(30):
                cur.execute(query, (offset + i,))
                cur.fetchall()

    try:
        with open_session(sandbox, db) as s:
            t0 = digests.snapshot(s, db, "orders")
            burst(0)

            def mine_of(snap: list) -> list:
                return [d for d in snap if d.digest_text.startswith("SELECT") and "`customer_id` = ?" in d.digest_text]

            # the server counts a statement in its digest a moment after the client has its rows: on a
            # loaded machine the 30th may not be counted yet (seen: 29)
            wait_for(lambda: sum(d.count for d in mine_of(digests.snapshot(s, db, "orders"))) >= 30, 5, step=0.05)
            t1 = digests.snapshot(s, db, "orders")
            mine = mine_of(t1)
            assert len(mine) == 1, t1
            assert mine[0].count >= 30 and "`orders`" in mine[0].digest_text
            assert digests.snapshot(s, db, "orders", digests=[mine[0].digest])[0].digest == mine[0].digest
            assert digests.snapshot(s, db, "customers") == []

            s.execute("ALTER TABLE orders ADD INDEX idx_cust (customer_id), ALGORITHM=INPLACE, LOCK=NONE")
            t2 = digests.snapshot(s, db, "orders")
            burst(100)
            t3 = digests.snapshot(s, db, "orders")
    finally:
        conn.close()
    before = [d for d in window(t0, t1) if d.digest == mine[0].digest]
    after = [d for d in window(t2, t3) if d.digest == mine[0].digest]
    assert sum(d.count for d in before) == 30 and sum(d.count for d in after) == 30
    b, a = Totals.of(before), Totals.of(after)
    assert b.rows_examined_per_stmt >= 30_000 * 0.9, "without the index every statement scans the table"
    assert a.rows_examined_per_stmt < b.rows_examined_per_stmt / 10
    assert b.no_index_used_share == 1.0 and a.no_index_used_share == 0.0


def test_no_test_here_touches_the_machine_server(sandbox):
    assert sandbox.primary.port != 3306 and os.path.dirname(sandbox.primary.socket) == str(sandbox.base)
