"""engine.drill.sandbox.MariaDBSandbox: a primary and a replica that replicates, performance_schema as the
console needs it, a clean stop (processes gone, directory removed, ports free), two sandboxes side
by side, the machine's own server untouched, and the install hint when the binaries are missing."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from engine.drill import sandbox as sandbox_mod
from engine.drill.sandbox import INSTALL_HINT, MariaDBSandbox, SandboxUnavailable
from engine.drill.selftest import wait_for

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.mariadb


def port_free(port: int) -> bool:
    """A new server could listen on ``port`` (SO_REUSEADDR, as mariadbd itself binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
            return True
        except OSError:
            return False


def system_server_answers() -> bool:
    """Whether a MySQL/MariaDB server answers on 127.0.0.1:3306. A made-up user with no password:
    any server-side answer (even access denied) counts; no credentials are tried."""
    try:
        pymysql.connect(host="127.0.0.1", port=3306, user="canary_probe_nobody", password="",
                        connect_timeout=2).close()
        return True
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code is not None and code < 2000  # a server error code, not a client one (2003 ...)
    except pymysql.MySQLError:
        return False


def slave_status(server) -> dict:
    with server.connect() as c, c.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        return cur.fetchone() or {}


def test_primary_and_replica_replicate_and_stop_without_a_trace():
    system_before = system_server_answers()
    with MariaDBSandbox(replica=True) as sb:
        assert sb.replica is not None
        servers = [sb.primary, sb.replica]
        ports = [s.port for s in servers]
        sockets = [s.socket for s in servers]
        base = sb.base
        assert len(set(ports)) == 2 and 3306 not in ports
        assert all(sock.startswith(str(base) + "/") for sock in sockets)
        assert all(s.running for s in servers)

        with sb.primary.connect() as c, c.cursor() as cur:
            cur.execute("SELECT @@performance_schema AS ps, @@server_id AS sid, @@log_bin AS log_bin")
            assert cur.fetchone() == {"ps": 1, "sid": 1, "log_bin": 1}
            cur.execute("SHOW GLOBAL VARIABLES LIKE 'performance_schema'")
            assert cur.fetchone()["Value"] == "ON"
            cur.execute("SELECT ENABLED, TIMED FROM performance_schema.setup_instruments "
                        "WHERE NAME = 'wait/lock/metadata/sql/mdl'")
            assert cur.fetchone() == {"ENABLED": "YES", "TIMED": "YES"}
            cur.execute("SELECT ENABLED FROM performance_schema.setup_consumers "
                        "WHERE NAME = 'events_statements_history_long'")
            assert cur.fetchone()["ENABLED"] == "YES"
            cur.execute("CREATE DATABASE repl_check")
            cur.execute("CREATE TABLE repl_check.t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB")
            cur.execute("INSERT INTO repl_check.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            cur.execute("UPDATE repl_check.t SET v = 'z' WHERE id = 2")

        sb.wait_replica_caught_up(20)
        with sb.replica.connect() as r, r.cursor() as cur:
            cur.execute("SELECT id, v FROM repl_check.t ORDER BY id")
            assert cur.fetchall() == [{"id": 1, "v": "a"}, {"id": 2, "v": "z"}, {"id": 3, "v": "c"}]
            cur.execute("SELECT @@server_id AS sid")
            assert cur.fetchone()["sid"] == 2

        # SHOW SLAVE STATUS, read by column name (its column order differs between versions)
        def caught_up() -> dict | None:
            st = slave_status(sb.replica)
            return st if st.get("Seconds_Behind_Master") == 0 else None

        status = wait_for(caught_up, 5)
        assert status, slave_status(sb.replica)
        assert status["Slave_SQL_Running"] == "Yes" and status["Slave_IO_Running"] == "Yes"
        assert status["Seconds_Behind_Master"] == 0
        assert status["Master_Port"] == sb.primary.port and status["Last_SQL_Errno"] == 0

        processes = [s.process for s in servers]  # stop() forgets them; keep them to check after
        assert all(p is not None and p.poll() is None for p in processes)

    assert all(p.poll() is not None for p in processes), "both mariadbd processes have exited"
    assert all(not s.running and s.process is None for s in servers)
    assert not base.exists(), "the sandbox directory is removed"
    assert all(port_free(p) for p in ports), "the ports are free again"
    sb.stop()  # a second stop is harmless
    if system_before:
        assert system_server_answers(), "the machine's own server on 3306 must be untouched"


def test_two_sandboxes_at_once_do_not_interfere():
    with MariaDBSandbox() as a, MariaDBSandbox() as b:
        assert a.base != b.base
        assert a.primary.port != b.primary.port and a.primary.socket != b.primary.socket
        assert 3306 not in (a.primary.port, b.primary.port)
        with a.primary.connect() as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE only_in_a")
        with b.primary.connect() as c, c.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'only_in_a'")
            assert cur.fetchall() == ()
            cur.execute("CREATE DATABASE only_in_b")
        with a.primary.connect() as c, c.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'only_in_b'")
            assert cur.fetchall() == ()

        a_proc, a_base, a_port = a.primary.process, a.base, a.primary.port
        a.stop()
        assert a_proc.poll() is not None and not a_base.exists() and port_free(a_port)
        assert b.primary.running, "stopping one sandbox leaves the other running"
        with b.primary.connect() as c, c.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'only_in_b'")
            assert len(cur.fetchall()) == 1
    assert not b.primary.running and not b.base.exists()


def test_a_killed_owners_sandbox_is_stopped_and_removed_by_the_next_one():
    """A drill killed with SIGKILL during its self-test left the self-test's mariadbd running for
    ever on a temporary datadir. The next temporary sandbox stops it and removes the directory; a
    live owner's sandbox is left alone."""
    code = ("import signal; from engine.drill.sandbox import MariaDBSandbox; sb = MariaDBSandbox().start(); "
            "print(sb.base, sb.primary.process.pid, flush=True); signal.pause()")  # alive until killed
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        base, server_pid = owner.stdout.readline().split()
        base, server_pid = Path(base), int(server_pid)
        assert base not in sandbox_mod.reap_orphans()
        assert base.exists() and Path(f"/proc/{server_pid}").exists(), "its owner lives: left alone"
        owner.kill()
        owner.wait(10)
        assert Path(f"/proc/{server_pid}").exists(), "SIGKILL leaves the server running"
        sandbox_mod.reap_orphans()  # (another worker's new sandbox may be reaping it too)
        assert wait_for(lambda: not base.exists(), 30), "the orphan's directory is removed"
        assert wait_for(lambda: not Path(f"/proc/{server_pid}").exists() or _zombie(server_pid), 30), \
            "the orphan's server is stopped"
    finally:
        owner.kill()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_machine_server_is_untouched_by_a_sandbox():
    if not system_server_answers():
        pytest.skip("nothing answers on 127.0.0.1:3306 here")
    with MariaDBSandbox() as sb:
        assert sb.primary.port != 3306
        assert system_server_answers()
    assert system_server_answers(), "the machine's own server on 3306 must be untouched"


def test_missing_binaries_give_the_apt_hint(monkeypatch):
    monkeypatch.setattr(sandbox_mod, "find_binary", lambda *names: None)
    with pytest.raises(SandboxUnavailable) as caught:
        MariaDBSandbox()
    assert "apt-get install -y mariadb-server" in str(caught.value)
    assert str(caught.value) == INSTALL_HINT
    with pytest.raises(SandboxUnavailable, match="apt-get install -y mariadb-server"):
        sandbox_mod.binaries()


def test_only_the_install_binary_missing_is_also_unavailable(monkeypatch):
    real = sandbox_mod.find_binary
    monkeypatch.setattr(sandbox_mod, "find_binary",
                        lambda *names: None if "mariadb-install-db" in names else real(*names))
    with pytest.raises(SandboxUnavailable, match="apt-get install -y mariadb-server"):
        MariaDBSandbox()


def test_a_deep_base_directory_gets_its_sockets_somewhere_short(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with MariaDBSandbox(base_dir=deep) as sb:
        assert len(sb.primary.socket.encode()) < 108
        with sb.primary.connect() as c, c.cursor() as cur:
            cur.execute("SELECT 1 AS one")
            assert cur.fetchone()["one"] == 1
        socket_dir = Path(sb.primary.socket).parent
    assert not socket_dir.exists()
    assert deep.exists(), "a base directory the caller gave is theirs to keep"


def test_a_drills_buffer_pool_holds_its_table():
    """A pool smaller than the drill's table turns the workload's reads into disk reads and the
    buffer-pool hit rate into a critical alert that has nothing to do with the change."""
    from engine.drill.sandbox import pool_for_rows

    assert pool_for_rows(20_000) == 256 and pool_for_rows(1_000_000) == 256
    assert pool_for_rows(6_000_000) >= 900  # 6 M rows: ~495 MB of data and the new index
    assert pool_for_rows(9_999_999) >= pool_for_rows(6_000_000)
