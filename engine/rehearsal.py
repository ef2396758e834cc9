"""The rehearsal (SPEC §10): a private primary and replica, a realistic table, a workload, a plan.

This is the engine half of ``canary-console rehearse``. State lives under the user's state
directory (``rehearsal/``): the datadirs are kept between runs and reused unless a reset is asked
for; the servers and the workload stop when the rehearsal ends.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
    resumed_run: str | None = None  # the drill's run a killed rehearsal left unfinished

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


def plan_data(sandbox: MariaDBSandbox, store_url: str, user: str, speed: float = 1.0,
              origin: datetime | None = None, window: dict[str, Any] | None = None) -> dict[str, Any]:
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
        # The drill's clock: every console on this plan, and a restarted one, reads the same time.
        **({"time_compression": {"speed": speed, "origin": (origin or utcnow()).isoformat()}} if speed > 1 else {}),
        # A rehearsal only: the off-peak window is set to cover the time of the drill.
        "window": window or window_covering(utcnow(), hours=23),  # compressed: room for hours of it
        # The lease in compressed seconds: at least ten real seconds, so a slow tick under a fast
        # clock never looks like a dead driver to a teammate's console.
        "executor": {"mode": "canary", "baseline_window_seconds": 1200, "cooldown_seconds": 120,
                     "lease_seconds": min(600.0, max(30.0, 10.0 * speed))},
    }


def _unfinished(plan_path: Path) -> tuple[Any, str] | None:
    """The plan of a drill that was killed before its run ended, and that run's id; None when
    there is nothing to resume (no plan, or its run is over)."""
    from engine.plan import PlanError, load_plan
    from engine.runbook import open_run
    from engine.store import Store, StoreError

    if not plan_path.exists():
        return None
    try:
        plan = load_plan(plan_path)
        store = Store(plan.store_url)
    except (PlanError, StoreError, OSError):
        return None  # a plan or store of an older version: a new drill (the old store is kept)
    try:
        run = open_run(store, plan)
    finally:
        store.close()
    return (plan, run.id) if run is not None else None


def _archive_store(base: Path, progress: Callable[[str], None]) -> None:
    """A new drill starts with a new store; the previous drills' stay, moved to ``history/``."""
    db = base / "store.db"
    if not db.exists():
        return
    history = base / "history"
    history.mkdir(exist_ok=True)
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(db) + suffix)
        if part.exists():
            part.rename(history / f"store-{stamp}.db{suffix}")
    progress(f"the previous drills' store is kept as {history / f'store-{stamp}.db'}")


def start(rows: int, reset: bool, user: str, progress: Callable[[str], None], speed: float = 1.0) -> Rehearsal:
    """Start (or, after a crash, resume) the drill. A drill whose run was left unfinished — the
    console killed mid-ALTER or mid-window — takes up the same servers if they are still up
    (an ALTER may still be running on them), the same table, the same clock and the same run."""
    base = rehearsal_dir()
    plan_path = base / "canary.toml"
    if reset and base.exists():
        leftovers = MariaDBSandbox(base_dir=base / "servers", replica=True)
        for server in filter(None, (leftovers.primary, leftovers.replica)):
            if server.adopt():  # a killed drill's servers still hold the datadirs
                server.stop()
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    unfinished = None if reset else _unfinished(plan_path)
    progress(f"starting a private MariaDB primary and replica under {base}")
    sandbox = MariaDBSandbox(base_dir=base / "servers", replica=True).start(adopt=True)
    if sandbox.adopted:
        progress(f"took up the {' and '.join(sandbox.adopted)} a previous drill left running")
    try:
        store_url = f"sqlite:///{base / 'store.db'}"
        if unfinished is not None:
            old, run_id = unfinished
            progress(f"resuming run {run_id[:8]} of the previous drill (its console was closed or killed): same "
                     "table, same clock; the console takes the run over once its lease runs out (--reset starts over)")
            speed, origin, window = old.time_speed, old.time_origin, old.raw.get("window")
        else:
            run_id, origin, window = None, None, None
            _archive_store(base, progress)
            have = _table_rows(sandbox)
            if have is None or abs(have - rows) > rows * 0.25:
                load_orders(sandbox.primary, DB, rows, table=TABLE,
                            progress=lambda d, n: progress(f"loading {DB}.{TABLE}: {d:,}/{n:,} rows"))
            else:
                progress(f"reusing {DB}.{TABLE} (~{have:,} rows); --reset to start over")
            with sandbox.primary.connect(DB) as c, c.cursor() as cur:
                cur.execute(f"ALTER TABLE {qualified(DB, TABLE)} DROP INDEX IF EXISTS {quote(INDEX, 'index')}")
            sandbox.wait_replica_caught_up(120)
        plan_path.write_text("# Written by `canary-console rehearse` for the private sandbox (a rehearsal only).\n"
                             + toml_dump(plan_data(sandbox, store_url, user, speed, origin, window)))
        profile = sandbox.primary.profile(DB)
        t = qualified(DB, TABLE)
        reads = Workload(profile, f"SELECT /* rehearsal-read */ id, total FROM {t} WHERE customer_id = %s "  # noqa: S608
                         "AND created_at >= %s ORDER BY created_at LIMIT 20",
                         lambda r: (r.randint(0, 49_999), "2026-03-01"), rate_per_s=20, name="rehearsal-reads")
        writes = Workload(profile, f"UPDATE /* rehearsal-write */ {t} SET total = total + 0.01 WHERE id = %s",  # noqa: S608
                          lambda r: (r.randint(1, rows),), rate_per_s=20, name="rehearsal-writes")
        reads.start()
        writes.start()
        return Rehearsal(sandbox, plan_path, store_url, reads, writes, run_id)
    except BaseException:
        sandbox.stop()
        raise
