"""The private sandbox: a primary and a replica that replicates, started and stopped cleanly,
never touching the machine's own server."""

from __future__ import annotations

import socket

import pymysql
import pytest

from engine import sandbox as sandbox_mod
from engine.sandbox import MariaDBSandbox, SandboxUnavailable

pytestmark = pytest.mark.mariadb


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _system_server_answers() -> bool:
    try:
        pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=1).close()
        return True
    except pymysql.MySQLError:
        return False


def test_primary_and_replica_start_replicate_and_stop_without_a_trace():
    system_before = _system_server_answers()
    with MariaDBSandbox(replica=True) as sb:
        servers = [sb.primary, sb.replica]
        ports = [s.port for s in servers]
        base = sb.base
        assert len(set(ports)) == 2 and 3306 not in ports
        with sb.primary.connect() as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE repl_check")
            cur.execute("CREATE TABLE repl_check.t (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO repl_check.t VALUES (1), (2), (3)")
            cur.execute("SELECT @@performance_schema AS ps")
            assert cur.fetchone()["ps"] == 1
            cur.execute("SELECT ENABLED FROM performance_schema.setup_instruments "
                        "WHERE NAME = 'wait/lock/metadata/sql/mdl'")
            assert cur.fetchone()["ENABLED"] == "YES"
        sb.wait_replica_caught_up()
        with sb.replica.connect() as r, r.cursor() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM repl_check.t")
            assert cur.fetchone()["n"] == 3
            cur.execute("SHOW SLAVE STATUS")
            status = cur.fetchone()  # by column name
            assert status["Slave_SQL_Running"] == "Yes" and status["Seconds_Behind_Master"] == 0
    assert all(not s.running for s in servers)
    assert not base.exists()
    assert all(_port_free(p) for p in ports)
    if system_before:
        assert _system_server_answers(), "the machine's own server must be untouched"


def test_two_sandboxes_side_by_side():
    with MariaDBSandbox() as a, MariaDBSandbox() as b:
        assert a.primary.port != b.primary.port and a.primary.socket != b.primary.socket
        with a.primary.connect() as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE only_in_a")
        with b.primary.connect() as c, c.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'only_in_a'")
            assert cur.fetchall() == ()


def test_missing_binaries_say_exactly_what_to_run(monkeypatch):
    monkeypatch.setattr(sandbox_mod, "find_binary", lambda *names: None)
    with pytest.raises(SandboxUnavailable) as caught:
        MariaDBSandbox()
    assert "apt-get install -y mariadb-server" in str(caught.value)
