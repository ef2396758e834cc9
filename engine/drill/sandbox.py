"""A private MariaDB primary (and optionally a replica of it) on temporary datadirs.

Used by the test suite, ``canary-console self-test`` and the rehearsal. Each server gets its own
datadir, socket and free loopback port, with ``performance_schema`` on and the instruments and
consumers the console reads. ``stop()`` stops exactly the processes this object started and
removes exactly the directory it created.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from engine.adapters.net import free_port
from engine.domain.identifiers import qualified, quote
from engine.domain.plan import ConnectionProfile

INSTALL_HINT = (
    "MariaDB's server binaries (mariadbd, mariadb-install-db) are not installed. "
    "As root: apt-get update && apt-get install -y mariadb-server  "
    "(the sandbox never touches the system's own server; it only needs the binaries)."
)

PERFORMANCE_SCHEMA_FLAGS = [
    "--performance-schema=ON",
    "--performance-schema-instrument=wait/lock/metadata/sql/mdl=ON",
    "--performance-schema-instrument=stage/innodb/alter%=ON",
    "--performance-schema-consumer-events-stages-current=ON",
    "--performance-schema-consumer-events-stages-history=ON",
    "--performance-schema-consumer-events-statements-current=ON",
    "--performance-schema-consumer-events-statements-history=ON",
    "--performance-schema-consumer-events-statements-history-long=ON",
    "--performance-schema-events-statements-history-long-size=5000",
]


SOCKET_PATH_MAX = 100  # bytes; the kernel's limit is 107


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start here; the message says exactly what to do."""


def find_binary(*names: str) -> str | None:
    extra = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(extra)
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def binaries() -> tuple[str, str]:
    server = find_binary("mariadbd", "mysqld")
    install = find_binary("mariadb-install-db", "mysql_install_db")
    if not server or not install:
        raise SandboxUnavailable(INSTALL_HINT)
    return server, install


@dataclass
class SandboxServer:
    name: str
    base: Path
    server_id: int
    primary: bool
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    socket_dir: Path | None = None  # where the socket goes when ``base`` is too deep for one
    adopted_pid: int | None = None  # a server an earlier process started and left running
    adopted_socket: str | None = None
    performance_schema: bool = True  # False: as MariaDB ships it (performance_schema=OFF)
    buffer_pool_mb: int = 256  # as production sizes it: the drill's table fits (``pool_for_rows``)

    @property
    def datadir(self) -> Path:
        return self.base / f"{self.name}-data"

    @property
    def socket(self) -> str:
        return self.adopted_socket or str((self.socket_dir or self.base) / f"{self.name}.sock")

    @property
    def pid_file(self) -> Path:
        return self.base / f"{self.name}.pid"

    def adopt(self) -> bool:
        """Take over a server of this datadir that an earlier process started and left running
        (a drill killed with SIGKILL leaves its servers up, an ALTER perhaps still in flight). True
        when there was one and it answers; its port and socket are read off its command line."""
        found = self.left_running()
        if found is None:
            return False
        pid, argv = found
        opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        try:
            port, sock = int(opts["port"]), opts["socket"]
            pymysql.connect(unix_socket=sock, user="root", connect_timeout=2).close()
        except (KeyError, ValueError, pymysql.err.MySQLError):
            return False
        self.port, self.adopted_pid, self.adopted_socket = port, pid, sock
        return True

    def left_running(self) -> tuple[int, list[str]] | None:
        """The pid and command line of a server of this datadir still running (its pid file read,
        the process's command line naming this datadir); None: none, or a stale pid file whose
        pid is someone else now."""
        try:
            pid = int(self.pid_file.read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError):
            return None
        return (pid, argv) if f"--datadir={self.datadir}" in argv else None

    @property
    def error_log(self) -> Path:
        return self.base / f"{self.name}.err"

    def install(self, install_bin: str) -> None:
        if (self.datadir / "mysql").is_dir():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        # Its own temporary directory: the bootstrap server's temporary tables otherwise go to the
        # shared /tmp, where a concurrent install or clean-up can remove them under it.
        tmp = self.base / f"{self.name}-tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [install_bin, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp)},
        )
        if result.returncode != 0:
            raise SandboxUnavailable(
                f"mariadb-install-db failed for the {self.name} sandbox ({result.returncode}): "
                + (result.stderr or result.stdout).strip()[-800:]
            )

    def start(self, server_bin: str, timeout: float = 30.0) -> None:
        args = [
            server_bin, "--no-defaults", "--user=root", f"--datadir={self.datadir}",
            f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
            f"--pid-file={self.base / (self.name + '.pid')}", f"--log-error={self.error_log}",
            f"--server-id={self.server_id}", "--skip-name-resolve", "--max-connections=300",
            f"--innodb-buffer-pool-size={self.buffer_pool_mb}M", "--innodb-log-file-size=256M",
            "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
            *([f"--log-bin={self.name}-bin", "--binlog-format=ROW"] if self.primary else ["--skip-log-bin"]),
            *(PERFORMANCE_SCHEMA_FLAGS if self.performance_schema else ["--performance-schema=OFF"]),
        ]
        # start_new_session: a Ctrl-C in the terminal reaches us, not the server; we stop it.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SandboxUnavailable(f"the {self.name} sandbox mariadbd exited at start: {self._log_tail()}")
            try:
                pymysql.connect(unix_socket=self.socket, user="root", connect_timeout=1).close()
                return
            except pymysql.err.MySQLError:
                time.sleep(0.05)
        self.stop()
        raise SandboxUnavailable(f"the {self.name} sandbox mariadbd did not answer in {timeout:.0f} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.error_log.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return "(no error log)"

    def connect(self, database: str | None = None, **kwargs: object) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=self.socket, user="root", database=database, autocommit=True,
                               connect_timeout=5, cursorclass=pymysql.cursors.DictCursor, **kwargs)

    def profile(self, database: str, conn_id: str | None = None, user: str = "root",
                password_env: str | None = None) -> ConnectionProfile:
        return ConnectionProfile(id=conn_id or f"sandbox-{self.name}", host="127.0.0.1", port=self.port,
                                 user=user, database=database, password_env=password_env)

    def create_user(self, user: str, password: str, grants: tuple[str, ...] = ()) -> None:
        """A monitoring user as production gives one: ``grants`` are privilege clauses, e.g.
        ``"SELECT ON shop.*"`` (``user``@127.0.0.1, replaced if it exists)."""
        account = f"{quote(user, 'user')}@'127.0.0.1'"
        with self.connect() as c, c.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS {account}")
            cur.execute(f"CREATE USER {account} IDENTIFIED BY %s", (password,))
            for grant in grants:
                cur.execute(f"GRANT {grant} TO {account}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.adopted_pid is not None:
            pid, self.adopted_pid = self.adopted_pid, None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                if Path(f"/proc/{pid}").exists():
                    os.kill(pid, signal.SIGKILL)
            return
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    @property
    def running(self) -> bool:
        if self.adopted_pid is not None:
            return Path(f"/proc/{self.adopted_pid}").exists()
        return self.process is not None and self.process.poll() is None


ORDERS_COLUMNS = (
    "id BIGINT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, status VARCHAR(16) NOT NULL, "
    "total DECIMAL(10,2) NOT NULL, created_at DATETIME NOT NULL, note VARCHAR(64)"
)


def load_orders(server: SandboxServer, db: str, rows: int, engine: str = "InnoDB", table: str = "orders",
                chunk: int = 250_000, progress: Callable[[int, int], None] | None = None) -> None:
    """An ``orders``-like table of ``rows`` rows in ``db`` (created if missing; the table is
    replaced), filled server-side from MariaDB's sequence engine, then analysed."""
    if engine not in ("InnoDB", "Aria", "MyISAM"):
        raise ValueError(f"engine {engine!r}: InnoDB, Aria or MyISAM")
    t = qualified(db, table)  # validated and quoted: every statement below is built from constants
    with server.connect() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(db, 'schema')}")
        cur.execute(f"USE {quote(db, 'schema')}")  # seq_1_to_N lives in the current database
        cur.execute(f"DROP TABLE IF EXISTS {t}")
        cur.execute(f"CREATE TABLE {t} ({ORDERS_COLUMNS}) ENGINE={engine}")
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            cur.execute(
                f"INSERT INTO {t} (customer_id, status, total, created_at, note) "  # noqa: S608 - quoted above
                "SELECT seq % 50000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'void'), (seq % 10000) / 100, "
                f"'2026-01-01' + INTERVAL (seq % 300000) MINUTE, MD5(seq) FROM seq_{done + 1:d}_to_{done + n:d}"
            )
            done += n
            if progress:
                progress(done, rows)
        cur.execute(f"ANALYZE TABLE {t}")


def pool_for_rows(rows: int) -> int:
    """A buffer pool (MB) that holds a drill's ``shop.orders`` of ``rows`` rows and its new index,
    as a production server is sized for its working set: about 160 bytes a row with the index,
    never under 256 MB. A pool smaller than the table makes every read a disk read, and the
    monitoring rightly calls a buffer-pool hit rate of 35 % critical — a drill of 6 M rows in 256 MB
    FAILed on that, not on the change."""
    return max(256, -(-rows * 160 // (1 << 20)))


OWNER_FILE = "owner"  # in a temporary sandbox's directory: "<pid> <start>" of the process that made it


def _process_start(pid: int) -> str | None:
    """When the process started (clock ticks since boot, /proc/PID/stat field 22): with its pid
    it names one process, even once pids wrap. None: no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def reap_orphans(tmp: Path = Path("/tmp")) -> list[Path]:
    """Stop and remove the temporary sandboxes whose owner is gone. A process killed with SIGKILL
    (a drill killed during its self-test, a test run cut off) runs no ``atexit``: its servers would
    run on for ever and its datadir stay behind. A sandbox whose owner lives, with no owner file, or
    made by another user is left alone; a server is stopped only if its command line names that sandbox's datadir."""
    reaped = []
    for base in tmp.glob("cc-sbx-*"):
        try:
            if base.stat().st_uid != os.getuid():
                continue  # another user's (a shared jump host): theirs to clean, and not ours to signal
            pid, start = (base / OWNER_FILE).read_text().split()
            if _process_start(int(pid)) == start:
                continue
        except (OSError, ValueError):
            continue
        for name in ("primary", "replica"):
            server = SandboxServer(name, base, server_id=0, primary=name == "primary", port=0)
            found = server.left_running()
            if found is not None:
                server.adopted_pid = found[0]
                with contextlib.suppress(OSError):
                    server.stop()
        shutil.rmtree(base, ignore_errors=True)
        reaped.append(base)
    return reaped


class MariaDBSandbox:
    """A primary and, if asked, a replica of it. Use as a context manager or call ``stop()``.
    A temporary one (no ``base_dir``) records its owner; the next one made after that owner was
    killed stops its servers and removes it (``reap_orphans``)."""

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, replica: bool = False,
                 performance_schema: bool = True, buffer_pool_mb: int = 256):
        """``performance_schema=False`` starts the servers as MariaDB ships by default (OFF), to
        see what the console makes of a target set up that way. ``buffer_pool_mb``: InnoDB's
        buffer pool (``pool_for_rows`` for a drill's table)."""
        self.server_bin, self.install_bin = binaries()
        self._owns_dir = base_dir is None
        if self._owns_dir:
            reap_orphans()
        # Short path under /tmp: a unix socket path must stay under 108 bytes.
        self.base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="cc-sbx-", dir="/tmp"))
        self.base.mkdir(parents=True, exist_ok=True)
        if self._owns_dir:
            (self.base / OWNER_FILE).write_text(f"{os.getpid()} {_process_start(os.getpid())}\n")
        # A unix socket path must stay under 108 bytes; a deep base directory (a long home, a
        # test's tmp_path) gets its sockets in a short directory of its own under /tmp.
        self._socket_dir: Path | None = None
        if len(str(self.base / "replica.sock").encode()) > SOCKET_PATH_MAX:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="cc-sock-", dir="/tmp"))
        self.primary = SandboxServer("primary", self.base, server_id=1, primary=True, socket_dir=self._socket_dir,
                                     performance_schema=performance_schema, buffer_pool_mb=buffer_pool_mb)
        self.replica: SandboxServer | None = (
            SandboxServer("replica", self.base, server_id=2, primary=False, socket_dir=self._socket_dir,
                          performance_schema=performance_schema, buffer_pool_mb=buffer_pool_mb)
            if replica else None
        )
        self._started: list[SandboxServer] = []
        self.adopted: list[str] = []
        atexit.register(self.stop)

    def start(self, adopt: bool = False) -> MariaDBSandbox:
        """Start the servers; with ``adopt``, take over those an earlier process left running on
        these datadirs instead (``self.adopted`` says which)."""
        self.adopted: list[str] = []
        try:
            for server in filter(None, (self.primary, self.replica)):
                if adopt and server.adopt():
                    self.adopted.append(server.name)
                else:
                    server.install(self.install_bin)
                    server.start(self.server_bin)
                self._started.append(server)
            if self.replica is not None and len(self.adopted) < 2:
                self._attach_replica()
        except BaseException:
            self.stop()
            raise
        return self

    def start_server(self, server: SandboxServer) -> None:
        """Start one of this sandbox's servers (installed first); ``stop()`` stops it. For a caller
        that shows each server's start as a step (the rehearsal); ``start()`` does them all."""
        server.start(self.server_bin)
        self._started.append(server)

    def note_adopted(self, server: SandboxServer) -> None:
        """``server.adopt()`` took up a server an earlier process left running: ``stop()`` stops it."""
        self.adopted.append(server.name)
        self._started.append(server)

    def attach_replica(self) -> None:
        self._attach_replica()

    def _attach_replica(self) -> None:
        assert self.replica is not None
        with self.primary.connect() as p, p.cursor() as cur:
            cur.execute("CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'")
            cur.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
        with self.replica.connect() as r, r.cursor() as cur:
            cur.execute("STOP SLAVE")
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='repl', "
                "MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                (self.primary.port,),
            )
            cur.execute("START SLAVE")

    def wait_replica_caught_up(self, timeout: float = 30.0) -> None:
        """Block until the replica has applied everything the primary has written."""
        assert self.replica is not None
        with self.primary.connect() as p, p.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos AS pos")
            pos = cur.fetchone()["pos"]
        with self.replica.connect() as r, r.cursor() as cur:
            cur.execute("SELECT MASTER_GTID_WAIT(%s, %s) AS rc", (pos, timeout))
            if cur.fetchone()["rc"] != 0:
                raise TimeoutError(f"the replica did not reach {pos} in {timeout} s")

    def stop(self) -> None:
        for server in reversed(self._started):
            server.stop()
        self._started.clear()
        if self._owns_dir and self.base.exists():
            shutil.rmtree(self.base, ignore_errors=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> MariaDBSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
