"""Target access against the sandbox MariaDB: flavour and version, catalogue checks, sessions and
locks, error classes. Each test works in its own database."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pymysql
import pytest

from engine import digests
from engine.identifiers import IdentifierError
from engine.net import free_port
from engine.selftest import wait_for
from engine.target import TargetError, TargetSession, parse_version
from engine.verification import Totals, window

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def shop(lab):
    db = lab.database("tt_shop")
    lab.load_orders(db, 50_000)
    return db


def session(sandbox, db):
    return TargetSession(sandbox.primary.profile(db), "test")


def test_flavour_and_version(sandbox, shop):
    with session(sandbox, shop) as s:
        info = s.server_info()
    assert info.flavour == "mariadb" and info.version >= (10, 11, 0) and info.supports_ignored_index
    mysql = parse_version("8.0.36", "MySQL Community Server - GPL")
    assert mysql.flavour == "mysql" and mysql.version == (8, 0, 36) and mysql.supports_ignored_index
    assert parse_version("10.5.2-MariaDB-log").supports_ignored_index is False


def test_table_size_and_indexes(sandbox, lab, shop):
    with session(sandbox, shop) as s:
        info = s.table_info(shop, "orders")
        assert info.engine == "InnoDB" and abs(info.estimated_rows - 50_000) <= 12_500
        assert info.data_mb > 1 and info.index_mb >= 0
        assert s.table_info(shop, "missing") is None
        s.execute("CREATE OR REPLACE VIEW v_orders AS SELECT id FROM orders")
        assert s.table_info(shop, "v_orders") is None, "a view is not a table to index"
        assert s.primary_key(shop, "orders") == ["id"]
        assert [i.name for i in s.indexes(shop, "orders")] == ["PRIMARY"]
        assert not s.index_exists(shop, "orders", "idx_nope")
        assert "CREATE TABLE `orders`" in s.show_create_table(shop, "orders")
        assert {c["name"] for c in s.columns(shop, "orders")} >= {"id", "customer_id", "note"}


def test_exact_count_in_chunks_with_progress_and_cancel(sandbox, lab, shop):
    seen: list[float] = []
    with session(sandbox, shop) as s:
        assert s.exact_count(shop, "orders", chunk=7000, progress=seen.append) == 50_000
        assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 7
        stop = threading.Event()
        assert s.exact_count(shop, "orders", chunk=7000, progress=lambda _p: stop.set(), cancel=stop) is None
        s.execute("CREATE TABLE tags (name VARCHAR(20) PRIMARY KEY)")
        s.execute("INSERT INTO tags VALUES ('a'), ('b'), ('c')")
        assert s.exact_count(shop, "tags") == 3
        with pytest.raises(IdentifierError):
            s.exact_count(shop, "orders`; DROP TABLE orders; --")
        with pytest.raises(IdentifierError):
            s.show_create_table(shop, "orders where 1")


def _in_thread(sandbox, db, *statements):
    conn = sandbox.primary.connect(db)
    result: dict = {}

    def work():
        try:
            with conn.cursor() as cur:
                for st in statements:
                    cur.execute(st)
            result["ok"] = True
        except pymysql.MySQLError as exc:
            result["error"] = exc

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return conn, t, result


def test_pending_ddl_long_transactions_and_metadata_lock_waiters(sandbox, lab):
    db = lab.database("tt_locks")
    lab.load_orders(db, 20_000)
    blocker = sandbox.primary.connect(db)
    with blocker.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute("SELECT id FROM orders LIMIT 1")
    time.sleep(2.1)  # trx_started has whole seconds
    with session(sandbox, db) as s:
        assert s.pending_ddl(db, "orders") == []
        long_trx = s.long_transactions_on_table(db, "orders", older_than_s=1)
        assert blocker.thread_id() in {t["thread_id"] for t in long_trx}
        alter_conn, t, result = _in_thread(
            sandbox, db, "SET SESSION lock_wait_timeout = 5",
            "ALTER TABLE orders ADD INDEX idx_lockwait (customer_id), ALGORITHM=INPLACE, LOCK=NONE")
        waiting = wait_for(lambda: s.metadata_locks(db, "orders").waiters, 4)
        assert waiting and alter_conn.thread_id() in {w["thread_id"] for w in waiting}
        report = s.metadata_locks(db, "orders")
        assert report.source == "performance_schema"
        assert blocker.thread_id() in {h["thread_id"] for h in report.holders}
        assert [d["id"] for d in s.pending_ddl(db, "orders")] == [alter_conn.thread_id()]
        blocker.rollback()
        t.join(10)
        assert result.get("ok"), result
        assert s.index_exists(db, "orders", "idx_lockwait")
    blocker.close()
    alter_conn.close()


def test_kill_query_ends_a_running_statement(sandbox, shop):
    conn, t, result = _in_thread(sandbox, shop, "SELECT SLEEP(30)")
    with session(sandbox, shop) as s:
        assert wait_for(lambda: s.thread(conn.thread_id()) and s.thread(conn.thread_id())["info"], 5)
        started = time.monotonic()
        s.kill_query(conn.thread_id())
        t.join(5)
    assert time.monotonic() - started < 2
    conn.close()


def test_errors_are_classified_with_a_way_out(sandbox, shop, monkeypatch):
    monkeypatch.setenv("CC_TEST_PW", "nope")
    profile = replace(sandbox.primary.profile(shop), password_env="CC_TEST_PW")
    with pytest.raises(TargetError) as denied:
        TargetSession(profile)
    assert denied.value.kind == "access_denied" and "password source" in str(denied.value)
    assert "nope" not in str(denied.value)
    with pytest.raises(TargetError) as down:
        TargetSession(replace(sandbox.primary.profile(shop), port=free_port()))
    assert down.value.kind == "lost_connection" and "server is up" in str(down.value)
    with session(sandbox, shop) as s:
        with pytest.raises(TargetError) as missing:
            s.query("SELECT * FROM no_such_table")
        assert missing.value.kind == "no_such_table"
        s.execute("CREATE TABLE IF NOT EXISTS locked (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        s.execute("REPLACE INTO locked VALUES (1, 0)")
    holder = sandbox.primary.connect(shop)
    with holder.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute("UPDATE locked SET v = 1 WHERE id = 1")
    try:
        with session(sandbox, shop) as s:
            s.execute("SET SESSION innodb_lock_wait_timeout = 1")
            with pytest.raises(TargetError) as waited:
                s.execute("UPDATE locked SET v = 2 WHERE id = 1")
            assert waited.value.kind == "lock_wait_timeout"
    finally:
        holder.rollback()
        holder.close()


def test_digest_windows_show_the_index_lowering_rows_examined(sandbox, lab):
    db = lab.database("tt_digests")
    lab.load_orders(db, 30_000)
    query = "SELECT id, total FROM orders WHERE customer_id = %s"
    conn = sandbox.primary.connect(db)

    def burst():
        with conn.cursor() as cur:
            for i in range(30):
                cur.execute(query, (i,))
                cur.fetchall()

    with session(sandbox, db) as s:
        t0 = digests.snapshot(s, db, "orders")
        burst()
        t1 = digests.snapshot(s, db, "orders")
        s.execute("ALTER TABLE orders ADD INDEX idx_cust (customer_id), ALGORITHM=INPLACE, LOCK=NONE")
        t2 = digests.snapshot(s, db, "orders")
        burst()
        t3 = digests.snapshot(s, db, "orders")
    conn.close()
    before, after = window(t0, t1), window(t2, t3)
    assert sum(d.count for d in before) == 30 and "`orders`" in before[0].digest_text
    assert Totals.of(after).rows_examined_per_stmt < Totals.of(before).rows_examined_per_stmt / 10
    assert Totals.of(before).no_index_used_share == 1.0 and Totals.of(after).no_index_used_share == 0.0
