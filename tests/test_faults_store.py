"""Store faults (issue 7, item 2), against real processes and files — no mock of the store.

- Locked: another PROCESS holds the SQLite store's write lock (``BEGIN EXCLUSIVE``). A write waits
  the busy timeout (5 s) and commits when the lock goes; past it, the caller gets ``StoreLocked``
  naming the cause and nothing is half-written; WAL readers are not blocked, so the kill switch
  still reads; a store nobody can read (the other process in exclusive locking mode) reads as
  active. The console's F9 retries a locked store until the activation lands.
- Full: the store's database cannot grow (SQLite's ``max_page_count``, and, as root, a real tmpfs
  filled to the last byte). The write fails with ``StoreFull`` and the way out, nothing is
  half-written, reads keep working, the chain verifies, and writes work again once space is back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, text
from test_console_pilot import make_app

from console.cli import main as cli_main
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import ExecutionRun, Store, StoreError
from engine.adapters.store.store import StoreFull, StoreLocked

HOLDER = r"""
import select, sqlite3, sys
path, mode = sys.argv[1], sys.argv[2]
c = sqlite3.connect(path, isolation_level=None, timeout=10)
if mode == "nobody-reads":  # an exclusive lock on the file itself: readers are shut out too
    c.execute("PRAGMA locking_mode=EXCLUSIVE")
c.execute("BEGIN EXCLUSIVE")
if mode == "nobody-reads":
    c.execute("UPDATE store_meta SET value = value")
print("locked", flush=True)
select.select([sys.stdin], [], [], 60)  # until the test says so (or a minute, if it died)
c.execute("COMMIT")
c.close()
"""


class LockHolder:
    """Another process holding the store's lock until ``release`` (or ``release_after`` seconds)."""

    def __init__(self, db: Path, mode: str = "writes"):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), mode], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"
        self.locked_at = time.monotonic()
        self.released_at: float | None = None
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self.released_at is not None:
                return
            self.released_at = time.monotonic()
            self.proc.stdin.write("go\n")
            self.proc.stdin.close()
            assert self.proc.wait(10) == 0

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.release)
        timer.start()
        return timer

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def new_run() -> ExecutionRun:
    return ExecutionRun(tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop",
                        table_name="orders", index_name="idx_orders_customer", columns=[["customer_id", None]])


def running_run(store: Store) -> ExecutionRun:
    run = store.create_run(new_run(), "somchai")
    store.claim("acme", run.id, "console-1", 60)
    return store.transition("acme", run.id, "running", "console-1")


def chain_ok(store: Store) -> int:
    v = store.verify_audit_chain()
    assert v.intact, v.problems
    rows, _ = store.audit_chain_rows()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), "the seqs have no gap"
    return v.rows


@pytest.fixture
def db(tmp_path):
    return tmp_path / "store.db"


@pytest.fixture
def store(db):
    s = Store(f"sqlite:///{db}")
    yield s
    s.close()


# --- locked by another process --------------------------------------------------------------


def test_an_activation_waits_out_a_short_lock_and_commits_when_it_goes(store, db):
    rows = chain_ok(store)
    with LockHolder(db) as holder:
        holder.release_after(1.5)
        started = time.monotonic()
        store.set_kill_switch("acme", "global", True, "nok", "p99 doubling")
        done = time.monotonic()
    assert holder.released_at is not None and done >= holder.released_at, "it committed after the lock went"
    assert 1.3 <= done - started < 4.0, f"waited {done - started:.2f} s for a 1.5 s lock"
    assert done - holder.released_at < 0.5, "and at once after it went"
    assert EmbeddedKillSwitch(store).read("acme", "c1").active
    assert [e.action for e in store.audit_entries("acme")][-1] == "kill_switch_activated"
    assert chain_ok(store) == rows + 1


def test_a_lock_past_the_busy_timeout_is_a_clear_error_and_nothing_is_half_written(store, db):
    run = running_run(store)
    rows = chain_ok(store)
    outcomes: dict[str, object] = {}

    def attempt(name, fn):
        started = time.monotonic()
        try:
            fn()
            outcomes[name] = ("committed", time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - what each writer got is the finding
            outcomes[name] = (exc, time.monotonic() - started)

    writes = {
        "transition": lambda: store.transition("acme", run.id, "cancelled", "console-1", fail_reason="kill_switch"),
        "audit": lambda: store.audit("acme", "nok", "checkpoint_note", run.id, {"note": "p99 fine"}),
        "kill switch": lambda: store.set_kill_switch("acme", "global", True, "nok", "F9"),
    }
    with LockHolder(db) as holder:
        threads = [threading.Thread(target=attempt, args=item) for item in writes.items()]
        [t.start() for t in threads]
        # Meanwhile the store still reads: WAL readers are not blocked by a writer.
        reading = EmbeddedKillSwitch(store).read("acme", "c1")
        assert not reading.fail_closed and not reading.active and reading.response_ms < 1000
        assert store.get_run("acme", run.id).status == "running"
        assert store.verify_audit_chain().intact
        [t.join(15) for t in threads]
        holder.release()
    for name, (got, waited) in outcomes.items():
        assert isinstance(got, StoreLocked) and isinstance(got, StoreError), f"{name}: {got!r}"
        assert 4.5 <= waited < 8, f"{name} waited {waited:.1f} s (the busy timeout is 5 s)"
        said = str(got)
        assert said.startswith("the store is locked by another process (database is locked: "), said
        assert str(db) in said and "more than 5 s" in said and "nothing was written" in said
        assert "Retry when that process finishes" in said and "[SQL:" not in said
    # Nothing half-written: no transition without its audit row, no audit row, no switch.
    assert store.get_run("acme", run.id).status == "running"
    assert chain_ok(store) == rows
    assert not EmbeddedKillSwitch(store).read("acme", "c1").active
    # The lock gone, the same writes go through, and the chain is one chain.
    for fn in writes.values():
        fn()
    assert store.get_run("acme", run.id).status == "cancelled"
    assert chain_ok(store) == rows + 3
    assert [e.action for e in store.audit_entries("acme")][-3:] == [
        "status_change", "checkpoint_note", "kill_switch_activated"]
    code = cli_main(["audit", "verify", "--store", store.url])
    assert code == 0


def test_a_store_nobody_can_read_makes_the_kill_switch_read_fail_closed(store, db):
    store.set_kill_switch("acme", "global", False, "nok", "all clear")
    store.engine.dispose()  # no pooled connection keeps a snapshot open: this is a fresh read
    with LockHolder(db, "nobody-reads"):
        reading = EmbeddedKillSwitch(store).read("acme", "c1")
    assert reading.active and reading.fail_closed, "unreadable must never read as off"
    assert reading.error.startswith("store unreadable: the store is locked by another process (database is "
                                    f"locked: another canary-console, CLI or sqlite3 shell has held its lock on {db} ")
    assert reading.error.endswith("lists the processes that have it open).")
    assert reading.describe().startswith("ACTIVE (fail-closed: ")
    assert reading.response_ms >= 4500 and reading.latency_level == "critical"
    after = EmbeddedKillSwitch(store).read("acme", "c1")
    assert not after.active and not after.fail_closed


async def test_f9_against_a_store_locked_past_the_busy_timeout_is_retried_until_it_lands(tmp_path):
    app = make_app(tmp_path)
    notes: list[tuple[str, str]] = []
    notify = app.notify
    app.notify = lambda message, **kw: (notes.append((str(message), kw.get("severity", "information"))),  # type: ignore[method-assign]
                                        notify(message, **kw))
    db = tmp_path / "store.db"
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()  # the console's first reads are done
        with LockHolder(db) as holder:
            holder.release_after(7.0)  # longer than one busy timeout: the first try is refused
            await pilot.press("f9")
            pressed = time.monotonic()
            assert app.frame.kill_active, "the frame turns red at the key press"
            for _ in range(400):
                await pilot.pause(0.05)
                if app.frame.kill and app.frame.kill.active:
                    break
            landed = time.monotonic()
            assert app.frame.kill and app.frame.kill.active, notes
            assert app.frame.kill_active, "red all along"
    # Not before the lock went (the press itself may take a second on a loaded machine, so the
    # time since the press is no measure of that), and soon after it.
    assert holder.released_at is not None and landed >= holder.released_at
    delay = landed - pressed
    assert delay < 9.5, f"the activation landed {delay:.1f} s after F9 (lock held 7 s)"
    warning = [m for m, sev in notes if sev == "warning" and m.startswith("kill switch not recorded yet, retrying")]
    assert len(warning) == 1, notes
    assert "retrying for up to 60 s: the store is locked by another process (database is locked: " in warning[0]
    assert warning[0].endswith("The frame stays red until it lands.")
    assert any(m.startswith("kill switch recorded after ") for m, _ in notes), notes
    assert not [m for m, sev in notes if sev == "error"], notes
    store = app.store
    assert len(store.audit_entries("acme", action="kill_switch_activated")) == 1, "recorded once, not lost"
    chain_ok(store)


# --- disk full ------------------------------------------------------------------------------


@contextmanager
def capped(store: Store):
    """The store's database may not grow past the pages it has now (SQLite's max_page_count on
    every connection the store opens): a write that needs a new page gets SQLITE_FULL."""
    with store.engine.connect() as conn:
        pages = conn.execute(text("PRAGMA page_count")).scalar()
    limit = {"pages": pages}

    def cap(dbapi_conn, _record):
        dbapi_conn.execute(f"PRAGMA max_page_count = {limit['pages']}")

    event.listen(store.engine, "connect", cap)
    store.engine.dispose()
    try:
        yield limit
    finally:
        event.remove(store.engine, "connect", cap)
        store.engine.dispose()


def test_a_write_that_does_not_fit_is_refused_whole_and_reads_go_on(store, db, capsys):
    run = running_run(store)
    store.set_kill_switch("acme", "tenant", True, "nok", "lag")
    rows = chain_ok(store)
    big = {"stack": "x" * 200_000}  # only the audit row is big: the run's own UPDATE fits
    with capped(store) as limit:
        with pytest.raises(StoreFull) as refused:
            store.transition("acme", run.id, "failed", "console-1", fail_reason="execution_error", details=big)
        said = str(refused.value)
        assert said.startswith("the store's disk is full: database or disk is full writing sqlite:///"), said
        assert "nothing was written" in said and said.endswith("Free space or move the store with --store.")
        # The run's UPDATE ran inside the transaction; it went with the audit row that did not fit.
        assert store.get_run("acme", run.id).status == "running"
        assert chain_ok(store) == rows
        # Reads go on: the run, the trail, the kill switch, the chain.
        assert [e.action for e in store.audit_entries("acme")][-1] == "kill_switch_activated"
        assert EmbeddedKillSwitch(store).read("acme", "c1").active
        assert cli_main(["audit", "verify", "--store", store.url]) == 0
        assert capsys.readouterr().out.startswith(f"audit chain OK: {rows} rows")
        limit["pages"] = 1_000_000  # space is back
        store.engine.dispose()
        store.transition("acme", run.id, "failed", "console-1", fail_reason="execution_error", details=big)
    assert store.get_run("acme", run.id).status == "failed"
    assert chain_ok(store) == rows + 1


@contextmanager
def tiny_tmpfs(size: str = "2m"):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the max_page_count case covers a full store without it")
    where = tempfile.mkdtemp(prefix="cc-full-")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where], capture_output=True,
                          text=True)
    if done.returncode != 0:
        os.rmdir(where)
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield Path(where)
    finally:
        if subprocess.run(["umount", where]).returncode != 0:
            subprocess.run(["umount", "-l", where])
        os.rmdir(where)


def fill(directory: Path) -> Path:
    """Take every free byte of the filesystem."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


async def test_a_real_full_disk_refuses_every_write_whole_and_f9_says_so(monkeypatch):
    with tiny_tmpfs() as where:
        monkeypatch.setenv("XDG_STATE_HOME", str(where / "state"))
        app = make_app(where)
        store = app.store
        notes: list[tuple[str, str]] = []
        notify = app.notify
        app.notify = lambda message, **kw: (notes.append((str(message), kw.get("severity", "information"))),  # type: ignore[method-assign]
                                            notify(message, **kw))
        try:
            run = running_run(store)
            rows = chain_ok(store)
            filler = fill(where)
            assert os.statvfs(where).f_bavail == 0
            with pytest.raises(StoreFull) as refused:
                store.transition("acme", run.id, "cancelled", "console-1", fail_reason="kill_switch")
            assert str(refused.value).startswith("the store's disk is full: database or disk is full")
            with pytest.raises(StoreFull):
                store.audit("acme", "nok", "checkpoint_note", run.id, {"note": "tiny"})
            assert store.get_run("acme", run.id).status == "running"
            assert chain_ok(store) == rows
            assert not EmbeddedKillSwitch(store).read("acme", "c1").fail_closed
            # The console: F9 on a full disk is reported, and the frame stays red.
            async with app.run_test(size=(140, 40)) as pilot:
                await pilot.pause()
                await pilot.press("f9")
                for _ in range(200):
                    await pilot.pause(0.05)
                    if any(sev == "error" for _, sev in notes):
                        break
                assert app.frame.kill_active and not (app.frame.kill and app.frame.kill.active)
            errors = [m for m, sev in notes if sev == "error"]
            assert errors and errors[0].startswith("kill switch NOT set in the store (global): the store's disk is full: "), notes
            assert "what to do:" in errors[0]
            assert "move the store with --store" in errors[0]
            # Space back: the same writes go through.
            filler.unlink()
            store.set_kill_switch("acme", "global", True, "lead", "F9 again")
            store.transition("acme", run.id, "cancelled", "console-1", fail_reason="kill_switch")
            assert chain_ok(store) == rows + 2
        finally:
            store.close()


@pytest.mark.mariadb
async def test_f9_with_the_store_locked_kills_the_alter_at_once_and_the_run_ends_the_kill_switchs(lab, tmp_path):
    """The store locked past its busy timeout must not hold an ALTER in flight: the console that
    cannot record F9 yet kills the ALTER on the target itself; the worker that drives the run
    waits for the switch to land and records the run as the kill switch's (not as an error)."""
    from test_console_flow import make_app as console_app
    from test_console_flow import make_plan
    from waits import until

    from engine.adapters.target import Target
    from engine.flows.executor import Executor

    db = lab.database("cc_f9_locked")
    lab.load_orders(db, 5_000)
    plan = make_plan(lab, db, "idx_f9_locked", baseline_window_seconds=0, cooldown_seconds=0, lock_wait_timeout=30)
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    worker = Executor(plan, store, EmbeddedKillSwitch(store), Target(plan.connection), "lead@10.0.0.5", "worker")
    run = worker.create_run()
    # A transaction that read the table holds the ALTER on its metadata lock: it stays in flight.
    blocker = lab.sandbox.primary.connect(db)
    blocker.autocommit(False)
    with blocker.cursor() as cur:
        cur.execute("SELECT id FROM orders LIMIT 1")
    outcome: dict[str, object] = {}
    driving = threading.Thread(target=lambda: outcome.update(out=worker.execute(run.id)), daemon=True)
    driving.start()
    app = console_app(plan, store, user="lead")
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            assert await until(pilot, lambda: app.view.run is not None and app.view.run.alter_started_at is not None, 30)
            with Target(plan.connection).session("observer") as s:
                assert s.find_alter(run.id) is not None
                with LockHolder(path) as holder:
                    holder.release_after(9.0)
                    await pilot.press("f9")
                    pressed = time.monotonic()
                    for _ in range(200):  # the first write waits the busy timeout (5 s), then the kill
                        await pilot.pause(0.05)
                        if s.find_alter(run.id) is None:
                            break
                    gone = time.monotonic()
                    assert s.find_alter(run.id) is None, "the ALTER is killed while the store is still locked"
                    assert holder.released_at is None and gone - pressed < 8.0
            driving.join(40)  # blocks the event loop on purpose: the switch must land without the screen
    finally:
        blocker.close()
    out = outcome["out"]
    assert (out.status, out.fail_reason) == ("cancelled", "kill_switch"), out.message
    assert not lab.index_exists(plan)
    chain_ok(store)
