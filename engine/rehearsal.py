"""The rehearsal (SPEC §10): a private primary and replica, a realistic table, a workload, a plan.

This is the engine half of ``canary-console rehearse``. State lives under the user's state
directory (``rehearsal/``): the datadirs are kept between runs and reused unless a reset is asked
for; the servers and the workload stop when the rehearsal ends.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.clock import utcnow
from engine.identifiers import qualified, quote
from engine.plan import toml_dump, window_covering
from engine.sandbox import MariaDBSandbox, load_orders
from engine.store import state_dir
from engine.workload import Workload

DB, TABLE, INDEX = "shop", "orders", "idx_orders_customer_created"


def rehearsal_dir() -> Path:
    return state_dir() / "rehearsal"


@dataclass
class Rehearsal:
    sandbox: MariaDBSandbox
    plan_path: Path
    store_url: str
    reads: Workload
    writes: Workload

    def stop(self) -> None:
        self.reads.stop()
        self.writes.stop()
        self.sandbox.stop()


def _table_rows(sandbox: MariaDBSandbox) -> int | None:
    with sandbox.primary.connect() as c, c.cursor() as cur:
        cur.execute("SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
                    (DB, TABLE))
        row = cur.fetchone()
        return None if row is None else int(row["n"] or 0)


def plan_data(sandbox: MariaDBSandbox, store_url: str, user: str) -> dict[str, Any]:
    assert sandbox.replica is not None

    def conn(server: Any, conn_id: str) -> dict[str, Any]:
        return {"id": conn_id, "host": "127.0.0.1", "port": server.port, "user": "root", "database": DB}

    return {
        "tenant": "rehearsal",
        "store_url": store_url,
        "connection": conn(sandbox.primary, "sandbox-primary"),
        "replica": conn(sandbox.replica, "sandbox-replica"),
        "change": {"table": TABLE, "index": INDEX, "columns": ["customer_id", "created_at"]},
        "people": [{"name": "You", "roles": ["canary_lead", "dba", "sre", "developer"], "unix_user": user},
                   # A second person for what one person may not do alone (approve their own
                   # rollback): `canary-console run canary.toml --as teammate` in another terminal.
                   {"name": "Teammate", "roles": ["canary_lead", "dba", "sre", "developer"],
                    "unix_user": "teammate"}],
        "rehearsal": True,
        # A rehearsal only: the off-peak window is set to cover the time of the drill.
        "window": window_covering(utcnow(), hours=23),  # a drill runs compressed: room for hours of it
        "executor": {"mode": "canary", "baseline_window_seconds": 300, "cooldown_seconds": 120},
    }


def start(rows: int, reset: bool, user: str, progress: Callable[[str], None]) -> Rehearsal:
    base = rehearsal_dir()
    if reset and base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    progress(f"starting a private MariaDB primary and replica under {base}")
    sandbox = MariaDBSandbox(base_dir=base / "servers", replica=True).start()
    try:
        have = _table_rows(sandbox)
        if have is None or abs(have - rows) > rows * 0.25:
            load_orders(sandbox.primary, DB, rows, table=TABLE,
                        progress=lambda d, n: progress(f"loading {DB}.{TABLE}: {d:,}/{n:,} rows"))
        else:
            progress(f"reusing {DB}.{TABLE} (~{have:,} rows); --reset to start over")
        with sandbox.primary.connect(DB) as c, c.cursor() as cur:
            cur.execute(f"ALTER TABLE {qualified(DB, TABLE)} DROP INDEX IF EXISTS {quote(INDEX, 'index')}")
        sandbox.wait_replica_caught_up(120)
        store_url = f"sqlite:///{base / 'store.db'}"
        plan_path = base / "canary.toml"
        plan_path.write_text("# Written by `canary-console rehearse` for the private sandbox (a rehearsal only).\n"
                             + toml_dump(plan_data(sandbox, store_url, user)))
        profile = sandbox.primary.profile(DB)
        t = qualified(DB, TABLE)
        reads = Workload(profile, f"SELECT /* rehearsal-read */ id, total FROM {t} WHERE customer_id = %s "  # noqa: S608
                         "AND created_at >= %s ORDER BY created_at LIMIT 20",
                         lambda r: (r.randint(0, 49_999), "2026-03-01"), rate_per_s=20, name="rehearsal-reads")
        writes = Workload(profile, f"UPDATE /* rehearsal-write */ {t} SET total = total + 0.01 WHERE id = %s",  # noqa: S608
                          lambda r: (r.randint(1, rows),), rate_per_s=20, name="rehearsal-writes")
        reads.start()
        writes.start()
        return Rehearsal(sandbox, plan_path, store_url, reads, writes)
    except BaseException:
        sandbox.stop()
        raise
