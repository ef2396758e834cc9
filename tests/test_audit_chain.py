"""The audit trail's hash chain (issue 7 item 5): the pure chain logic, the store writing it on
SQLite, PostgreSQL and MySQL (one process and many), tampering by raw SQL found and named,
``audit verify``'s messages and exit codes, the schema stamp, and ``Store.samples(since=…)``.

PostgreSQL must be reachable on 127.0.0.1:5432 as ``postgres`` (a fresh database for the session);
CANARY_SKIP_POSTGRES=1 skips those cases. MySQL is the suite's sandbox MariaDB."""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import inspect, text

from console.cli import main as cli_main
from engine.adapters.store import SCHEMA_VERSION, ExecutionRun, Store, StoreError
from engine.domain import audit_chain
from engine.domain.audit_chain import GENESIS, ChainRow, verify
from engine.domain.clock import FrozenClock

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
T0 = datetime(2026, 11, 22, 16, 0, 0, tzinfo=UTC)


# --- the pure chain -------------------------------------------------------------------------


def chain(n: int) -> list[ChainRow]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        row = ChainRow(seq, f"id-{seq}", "acme", None, "lead", f"step_{seq}", None, None, {"i": seq},
                       T0 + timedelta(seconds=seq), prev, None)
        row = replace(row, row_hash=row.computed_hash())
        rows.append(row)
        prev = row.row_hash
    return rows


def kinds(verdict) -> list[tuple[int | None, str]]:
    return [(p.seq, p.kind) for p in verdict.problems]


def test_an_untouched_chain_verifies_and_gives_its_head():
    rows = chain(5)
    v = verify(rows, head=(5, rows[-1].row_hash))
    assert v.intact and (v.rows, v.first_seq, v.last_seq, v.head_hash) == (5, 1, 5, rows[-1].row_hash)
    empty = verify([], head=None)
    assert empty.intact and empty.rows == 0 and empty.head_hash == GENESIS


def test_the_hash_covers_every_content_field():
    row = chain(1)[0]
    for name, value in [("seq", 2), ("id", "x"), ("tenant_id", "globex"), ("execution_run_id", "r"),
                        ("actor", "mallory"), ("action", "other"), ("old_status", "running"),
                        ("new_status", "completed"), ("details", {"i": 2}), ("created_at", T0),
                        ("prev_hash", "1" * 64)]:
        assert replace(row, **{name: value}).computed_hash() != row.row_hash, name


def test_the_hash_is_the_same_for_the_same_instant_and_details_however_they_read_back():
    """SQLite and MySQL hand back naive UTC; a JSON column hands back lists for tuples."""
    row = chain(1)[0]
    naive = replace(row, created_at=row.created_at.replace(tzinfo=None))
    assert naive.computed_hash() == row.computed_hash()
    assert audit_chain.normalize_details({"cols": ("a", 1), 2: None}) == {"cols": ["a", 1], "2": None}
    assert audit_chain.normalize_details(None) == {}


def test_an_edited_row_is_named():
    rows = chain(6)
    rows[2] = replace(rows[2], details={"i": 99})
    v = verify(rows, head=(6, rows[-1].row_hash))
    assert kinds(v) == [(3, "changed")]
    assert v.problems[0].message.startswith("seq 3: changed after it was written")


def test_a_deleted_row_is_a_gap():
    rows = chain(6)
    del rows[3]
    v = verify(rows, head=(6, rows[-1].row_hash))
    assert kinds(v) == [(4, "missing")]
    assert v.problems[0].message == "seq 4: 1 row missing between seq 3 and seq 5 — deleted"
    del rows[0]
    assert kinds(verify(rows, head=(6, rows[-1].row_hash)))[0] == (1, "missing")


def test_swapped_rows_are_named_with_the_seq_each_was_written_as():
    rows = chain(6)
    rows[2], rows[3] = replace(rows[3], seq=3), replace(rows[2], seq=4)
    v = verify(rows, head=(6, rows[-1].row_hash))
    assert kinds(v) == [(3, "reordered"), (4, "reordered")]
    assert "seq 3: was written as seq 4" in v.problems[0].message


def test_a_row_rewritten_with_a_fresh_hash_breaks_the_next_link():
    rows = chain(6)
    forged = replace(rows[2], details={"i": 99})
    rows[2] = replace(forged, row_hash=forged.computed_hash())
    v = verify(rows, head=(6, rows[-1].row_hash))
    assert kinds(v) == [(4, "unlinked")]
    assert "seq 4: not chained to seq 3" in v.problems[0].message


def test_the_tail_against_the_head_record_and_an_outside_anchor():
    rows = chain(6)
    cut = rows[:4]
    v = verify(cut, head=(6, rows[-1].row_hash))
    assert kinds(v) == [(5, "missing")] and "seq 5–6: missing at the end" in v.problems[0].message
    # Head rewritten to match: invisible from the store; the recorded head says so.
    assert verify(cut, head=(4, cut[-1].row_hash)).intact
    v = verify(cut, head=(4, cut[-1].row_hash), expect_head=rows[-1].row_hash)
    assert kinds(v) == [(None, "head")] and "is not in the chain" in v.problems[0].message
    grown = verify(rows, head=(6, rows[-1].row_hash), expect_head=rows[3].row_hash.upper())
    assert grown.intact and grown.expect_head_seq == 4
    assert kinds(verify(rows, head=None)) == [(None, "head")]
    assert kinds(verify(rows, head=(4, rows[3].row_hash))) == [(5, "unchained")]
    assert kinds(verify(rows, head=(6, "f" * 64))) == [(6, "head")]


def test_the_report_lists_problems_and_counts_the_rest():
    rows = [replace(r, details={"x": 1}) for r in chain(30)]
    lines = audit_chain.render(verify(rows, head=(30, rows[-1].row_hash)), "sqlite:///s.db")
    assert lines[0].startswith("audit chain TAMPERED: 30 problems in 30 rows (seq 1–30)")
    assert "  … and 10 more" in lines and lines[-1].startswith("head: seq 30 ")


# --- the store, on SQLite and PostgreSQL ----------------------------------------------------


@pytest.fixture(scope="session")
def postgresql_server():
    """A fresh database on the machine's PostgreSQL for this file's session, dropped at the end."""
    if os.environ.get("CANARY_SKIP_POSTGRES") == "1":
        pytest.skip("CANARY_SKIP_POSTGRES=1: the PostgreSQL cases are skipped")
    import psycopg

    name = f"cc_chain_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 (user postgres) is needed and is not usable: "
                    f"{exc.__class__.__name__}: {str(exc).strip()}. CANARY_SKIP_POSTGRES=1 skips it.", pytrace=False)
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mysql_server(sandbox):
    """A database on the suite's sandbox MariaDB (the store by a mysql:// URL)."""
    name = f"cc_chain_{uuid.uuid4().hex[:8]}"
    with sandbox.primary.connect() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    return f"mysql://root@127.0.0.1:{sandbox.primary.port}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mariadb)])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    shared = request.getfixturevalue(f"{request.param}_server")
    s = Store(shared)  # one database for the session: start each test from an empty trail
    with s.engine.begin() as conn:
        for table in ("audit_logs", "audit_chain_head", "run_locks"):
            conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - the names are the lines above
    s.close()
    return shared


@pytest.fixture
def store(url):
    s = Store(url, clock=FrozenClock(T0))
    yield s
    s.close()


def new_run(tenant: str = "acme") -> ExecutionRun:
    return ExecutionRun(tenant_id=tenant, connection_profile_id="orders-primary", schema_name="shop",
                        table_name="orders", index_name="idx_orders_customer", columns=[["customer_id", None]])


def write_trail(store: Store, n: int = 10) -> None:
    """Audit rows through every kind of write: plain entries, a run's transitions, the kill switch."""
    run = store.create_run(new_run(), "somchai")
    store.claim("acme", run.id, "console-1", 30)
    store.transition("acme", run.id, "running", "console-1")
    store.set_kill_switch("acme", "tenant", True, "nok", reason="latency")
    store.transition("acme", run.id, "cancelled", "console-1", fail_reason="kill_switch", details={"why": ("a", 1)})
    for i in range(n - 5):
        store.audit("globex" if i % 2 else "acme", "lead", f"step_{i}", None, {"i": i, "f": 0.1 * i, "ü": "ñ"})


def raw(store: Store, *statements: str) -> None:
    with store.engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))


def test_a_written_trail_verifies_with_gapless_seqs(store):
    write_trail(store, 12)
    v = store.verify_audit_chain()
    assert v.intact, v.problems
    assert (v.rows, v.first_seq, v.last_seq) == (12, 1, 12)
    rows, head = store.audit_chain_rows()
    assert [r.seq for r in rows] == list(range(1, 13)) and head == (12, rows[-1].row_hash)
    assert rows[0].prev_hash == GENESIS and all(b.prev_hash == a.row_hash for a, b in pairwise(rows))
    # The audit reads are as before: a tenant's entries, oldest first.
    assert [e.action for e in store.audit_entries("globex")] == [f"step_{i}" for i in range(1, 6, 2)]


def test_an_edited_row_is_found_and_named(store):
    write_trail(store)
    raw(store, """UPDATE audit_logs SET details = '{"i": 99}' WHERE seq = 8""")
    v = store.verify_audit_chain()
    assert kinds(v) == [(8, "changed")]
    assert v.problems[0].message.startswith("seq 8: changed after it was written")
    if store.engine.dialect.name == "sqlite":  # values no typed column would take: reported, not raised
        raw(store, "UPDATE audit_logs SET details = '{not json' WHERE seq = 9",
            "UPDATE audit_logs SET created_at = 'yesterday' WHERE seq = 10")
        assert kinds(store.verify_audit_chain()) == [(8, "changed"), (9, "changed"), (10, "changed")]


def test_a_deleted_middle_row_is_found(store):
    write_trail(store)
    raw(store, "DELETE FROM audit_logs WHERE seq = 5")
    v = store.verify_audit_chain()
    assert kinds(v) == [(5, "missing")] and "between seq 4 and seq 6" in v.problems[0].message


def test_swapped_seqs_are_found(store):
    write_trail(store)
    raw(store, "UPDATE audit_logs SET seq = -1 WHERE seq = 6", "UPDATE audit_logs SET seq = 6 WHERE seq = 7",
        "UPDATE audit_logs SET seq = 7 WHERE seq = -1")
    v = store.verify_audit_chain()
    assert kinds(v) == [(6, "reordered"), (7, "reordered")]
    assert "seq 6: was written as seq 7" in v.problems[0].message


def test_a_cut_tail_is_found_unless_the_head_is_rewritten_too(store):
    write_trail(store)
    head = store.verify_audit_chain().head_hash
    raw(store, "DELETE FROM audit_logs WHERE seq > 8")
    assert kinds(store.verify_audit_chain()) == [(9, "missing")]
    raw(store, "UPDATE audit_chain_head SET seq = 8, row_hash = (SELECT row_hash FROM audit_logs WHERE seq = 8)")
    assert store.verify_audit_chain().intact  # honest: the store alone cannot tell
    assert kinds(store.verify_audit_chain(expect_head=head)) == [(None, "head")]


def test_the_chain_continues_after_its_head_was_wiped(store):
    """A wiped head (a test fixture emptying tables, say) restarts at the last row written."""
    write_trail(store)
    raw(store, "DELETE FROM audit_chain_head")
    store.audit("acme", "lead", "after")
    v = store.verify_audit_chain()
    assert v.intact and v.last_seq == 11


def test_a_kill_switch_activation_on_a_chained_trail_commits_and_is_chained(store):
    """The behaviour under the latency target below, for the default run: each switch write on a
    trail commits, reads back, and keeps the chain intact."""
    write_trail(store)
    for i in range(4):
        store.set_kill_switch("acme", "global", i % 2 == 0, "nok", reason="drill")
        [row] = [r for r in store.kill_switch_rows("acme") if r.scope == "global"]
        assert row.is_active == (i % 2 == 0)
    assert store.verify_audit_chain().intact


@pytest.mark.long  # a latency target: a loaded machine stretches it (the default run checks the behaviour above)
def test_a_kill_switch_activation_still_commits_in_milliseconds(store):
    write_trail(store)
    took = []
    for i in range(30):
        started = time.perf_counter()
        store.set_kill_switch("acme", "global", i % 2 == 0, "nok", reason="drill")
        took.append((time.perf_counter() - started) * 1000)
    assert statistics.median(took) < 30, took


def _write_from_another_process(url: str, worker: int, count: int, ready, go) -> None:
    store = Store(url)
    ready.put(worker)
    go.wait(30)
    for i in range(count):
        if i % 10 == 0:
            store.set_kill_switch(f"t{worker}", "tenant", i % 20 == 0, f"w{worker}", reason=str(i))
        else:
            store.audit(f"t{worker}", f"w{worker}", "step", None, {"i": i})
    store.close()


def test_processes_writing_one_sqlite_store_at_once_make_one_chain(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    Store(url).close()  # the schema exists before the writers race
    ctx = multiprocessing.get_context("fork")  # the children start with the modules already imported
    ready, go = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_write_from_another_process, args=(url, w, 50, ready, go)) for w in range(4)]
    [p.start() for p in procs]
    [ready.get(timeout=60) for _ in procs]  # all four open before any writes: they race
    go.set()
    [p.join(60) for p in procs]
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = Store(url)
    v = store.verify_audit_chain()
    assert v.intact, v.problems
    assert (v.rows, v.last_seq) == (200, 200)
    assert sorted(r.tenant_id for r in store.audit_chain_rows()[0]) == sorted(f"t{w}" for w in range(4) for _ in range(50))


@pytest.mark.postgres
def test_connections_writing_one_postgres_store_at_once_make_one_chain(request):
    url = request.getfixturevalue("postgresql_server")
    stores = [Store(url) for _ in range(4)]  # each its own engine: separate connections
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    before = stores[0].verify_audit_chain().rows

    def write(w: int) -> None:
        try:
            barrier.wait(10)
            for i in range(50):
                if i % 10 == 0:
                    stores[w].set_kill_switch(f"p{w}", "tenant", i % 20 == 0, f"w{w}", reason=str(i))
                else:
                    stores[w].audit(f"p{w}", f"w{w}", "step", None, {"i": i})
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert errors == []
    v = stores[0].verify_audit_chain()
    assert v.intact, v.problems
    assert v.rows == before + 200 and v.last_seq == v.rows
    [s.close() for s in stores]


# --- the schema stamp -----------------------------------------------------------------------


def test_a_fresh_store_is_stamped_and_an_older_or_newer_one_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM store_meta WHERE name = 'schema_version'")).scalar() == str(
            SCHEMA_VERSION)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE store_meta SET value = :v"), {"v": str(SCHEMA_VERSION + 1)})
    with pytest.raises(StoreError, match="newer version of canary-console"):
        Store(url)
    raw(store, "DROP TABLE store_meta", "ALTER TABLE audit_logs DROP COLUMN row_hash")
    store.close()
    with pytest.raises(StoreError) as caught:
        Store(url)
    msg = str(caught.value)
    assert "older version of canary-console" in msg and "audit_logs lacks row_hash" in msg
    assert "point --store at a new one" in msg and "rehearse --reset" in msg
    assert "store_meta" not in inspect(store.engine).get_table_names()  # refused as it was, not stamped


# --- samples since --------------------------------------------------------------------------


def test_samples_since_returns_only_newer_ones_and_has_its_index(store):
    run = store.create_run(new_run(), "somchai")
    for k in range(3):
        store.add_samples("acme", run.id, T0 + timedelta(seconds=k), [
            SimpleNamespace(source="mysql", metric=m, value=float(k), error=None, n=None, how=None, meta=None)
            for m in ("lock_wait", "threads_running")])
    assert len(store.samples("acme", run.id)) == 6
    newer = store.samples("acme", run.id, since=T0)
    assert [(r.sampled_at.replace(tzinfo=UTC), r.metric) for r in newer] == [
        (T0 + timedelta(seconds=k), m) for k in (1, 2) for m in ("lock_wait", "threads_running")]
    assert [r.value for r in store.samples("acme", run.id, "lock_wait", since=T0 + timedelta(seconds=1))] == [2.0]
    indexes = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("metric_samples")}
    assert indexes["ix_samples_run_time"] == ["tenant_id", "execution_run_id", "sampled_at"]


# --- canary-console audit verify ------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli_main(["audit", "verify", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_verify_says_ok_with_the_count_and_the_head(store, url, capsys):
    write_trail(store)
    code, out, err = run_cli(capsys, "--store", url)
    assert code == 0, err
    head = store.verify_audit_chain().head_hash
    assert out.startswith("audit chain OK: 10 rows (seq 1–10) in ")
    assert f"head: seq 10 {head}" in out and "--expect-head HASH" in out
    code, out, _ = run_cli(capsys, "--store", url, "--expect-head", head)
    assert code == 0 and "the head you recorded is seq 10" in out


def test_verify_names_the_tampering_and_exits_1(store, url, capsys):
    write_trail(store)
    raw(store, """UPDATE audit_logs SET details = '{"i": 99}' WHERE seq = 8""", "DELETE FROM audit_logs WHERE seq = 3")
    code, out, err = run_cli(capsys, "--store", url)
    assert code == 1 and err == ""
    assert out.startswith("audit chain TAMPERED: 2 problems in 9 rows")
    assert "  seq 3: 1 row missing between seq 2 and seq 4 — deleted" in out
    assert "  seq 8: changed after it was written" in out
    code, out, _ = run_cli(capsys, "--store", url, "--json")
    report = json.loads(out)
    assert code == 1 and report["intact"] is False and report["rows"] == 9
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [(3, "missing"), (8, "changed")]


def test_verify_usage_and_store_errors_exit_2(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--store", f"sqlite:///{tmp_path / 'nowhere.db'}")
    assert code == 2 and "no store at" in err and not (tmp_path / "nowhere.db").exists()
    code, _, err = run_cli(capsys, "--store", f"sqlite:///{tmp_path / 's.db'}", "--expect-head", "abc")
    assert code == 2 and "64-hex-digit" in err
    code, _, err = run_cli(capsys, "--store", "postgresql://postgres@127.0.0.1:1/none")
    assert code == 2 and "cannot verify the audit trail: cannot open the store" in err
    old = Store(f"sqlite:///{tmp_path / 'old.db'}")
    raw(old, "ALTER TABLE audit_logs DROP COLUMN prev_hash")
    old.close()
    code, _, err = run_cli(capsys, "--store", f"sqlite:///{tmp_path / 'old.db'}")
    assert code == 2 and "older version of canary-console" in err


def test_verify_as_a_user_runs_it_prints_no_traceback(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    write_trail(store)
    raw(store, "UPDATE audit_logs SET actor = 'mallory' WHERE seq = 4")
    store.close()
    done = subprocess.run([sys.executable, "-m", "console.cli", "audit", "verify", "--store", url],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert "seq 4: changed after it was written" in done.stdout and "by mallory" in done.stdout
