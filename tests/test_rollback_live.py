"""The Rollback screen lives (docs/rollback.md): while a rung runs, the console reads its statement
and the table's metadata-lock queue — who holds, who waits, for how long — on a connection of its
own, with the execution step's MDL guard (``TargetSession.metadata_locks``). Against the sandbox
MariaDB: a long transaction holds the table, the rung's ALTER queues behind it."""

from __future__ import annotations

import threading

from waits import expect

from engine.adapters.target import Target
from engine.flows.rollback_rungs import ROLLBACK_STATEMENT_TAG, rung_progress
from engine.views.rollback import rung_lines


def test_a_running_rung_shows_its_statement_and_the_lock_queue(sandbox, lab):
    db = lab.database("rollback_live")
    lab.load_orders(db, 200)
    with lab.admin(db) as c, c.cursor() as cur:
        cur.execute("ALTER TABLE orders ADD INDEX idx_live (customer_id)")
    holder = lab.admin(db)
    rung = lab.admin(db)
    done = threading.Event()
    try:
        with holder.cursor() as cur:  # a long transaction: its read keeps the table's shared MDL
            cur.execute("BEGIN")
            cur.execute("SELECT /* app */ COUNT(*) FROM orders")

        def run_rung():
            with rung.cursor() as cur:
                cur.execute(f"ALTER {ROLLBACK_STATEMENT_TAG} TABLE orders ALTER INDEX idx_live IGNORED")
            done.set()

        threading.Thread(target=run_rung, daemon=True).start()
        with Target(sandbox.primary.profile(db)).session("rollback-progress") as s:
            p = expect("the rung queued behind the holder", lambda: (
                lambda r: r if r.thread_id is not None and r.waiters and r.holders else None)(
                rung_progress(s, db, "orders", "ignore", 3.0)))
            assert p.thread_id == rung.thread_id()
            assert [w["thread_id"] for w in p.waiters] == [rung.thread_id()]
            assert holder.thread_id() in [h["thread_id"] for h in p.holders]
            lines = rung_lines(p, db, "orders")
            assert lines[0].startswith("▶ rung 1: IGNORE the index — running 3 s; server thread")
            assert lines[1].startswith(f"metadata locks on {db}.orders: ") and "1 wait" in lines[1]
            assert any(line.strip().startswith(f"holds thread {holder.thread_id()}") for line in lines)
            assert any(line.strip().startswith(f"waits thread {rung.thread_id()}") for line in lines)
            assert not done.is_set(), "the rung waits for the holder"
            holder.commit()
            expect("the rung done once the holder commits", done.is_set)
            after = rung_progress(s, db, "orders", "ignore", 5.0)
            assert after.thread_id is None and not after.waiters
            assert "not in the processlist" in rung_lines(after, db, "orders")[0]
    finally:
        holder.close()
        rung.close()
