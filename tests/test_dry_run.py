"""The dry run (docs/dry-run.md): `canary-console dry-run PLAN` walks the canary read-only against
the sandbox MariaDB and prints the SQL each step would send; nothing is written to the target."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path

import pytest
from cli_run import run_cli

from engine.adapters.net import free_port
from engine.adapters.store import Store

pytestmark = [pytest.mark.mariadb]
ROOT = Path(__file__).resolve().parent.parent
SECRET = "dry-Run-pw-7731"
SAMPLE_QUERIES = 'sample_queries = ["SELECT id FROM orders WHERE customer_id = 42"]'


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def write_plan(tmp_path: Path, port: int, db: str, user: str = "root", extra: str = "", index: str = "idx_dry") -> Path:
    plan = tmp_path / "canary.toml"
    password = 'password_env = "CC_DRY_PASSWORD"\n' if user != "root" else ""
    plan.write_text(f"""
tenant = "acme"
[connection]
id = "orders-primary"
host = "127.0.0.1"
port = {port}
user = "{user}"
database = "{db}"
{password}[change]
table = "orders"
index = "{index}"
columns = ["customer_id", "created_at"]
{SAMPLE_QUERIES}
{extra}
[[people]]
name = "Me"
role = "dba"
unix_user = "{getpass.getuser()}"
""")
    return plan


def show_create(sandbox, db: str) -> tuple[str, list[str]]:
    with sandbox.primary.connect(db) as c, c.cursor() as cur:
        cur.execute("SHOW CREATE TABLE orders")
        create = cur.fetchone()["Create Table"]
        cur.execute("SHOW INDEX FROM orders")
        return create, sorted({r["Key_name"] for r in cur.fetchall()})


def test_dry_run_prints_the_sql_and_writes_nothing(sandbox, lab, tmp_path):
    db = lab.database("dryrun")
    lab.load_orders(db, 2000)
    sandbox.primary.create_user("cc_dry", SECRET, (f"ALL ON `{db}`.*", "SELECT ON performance_schema.*",
                                                    "PROCESS ON *.*"))
    plan = write_plan(tmp_path, sandbox.primary.port, db, user="cc_dry")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    before = show_create(sandbox, db)

    done = cli("dry-run", str(plan), "--store", url, env={"CC_DRY_PASSWORD": SECRET})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    t = f"`{db}`.`orders`"
    assert f"TABLE {t} ADD INDEX `idx_dry` (`customer_id`, `created_at`), ALGORITHM=INPLACE, LOCK=NONE" in out
    assert "ALTER /* canary-console:alter run=" in out
    assert f"ALTER /* canary-console:rollback */ TABLE {t} DROP INDEX `idx_dry`, ALGORITHM=INPLACE, LOCK=NONE" in out
    assert f"ALTER /* canary-console:rollback */ TABLE {t} ALTER INDEX `idx_dry` IGNORED" in out
    assert "ALTER INDEX `idx_dry` NOT IGNORED" in out
    assert "KILL /* canary-console:kill-switch */ QUERY <the ALTER's thread id>" in out
    assert f"SHOW INDEX FROM {t} WHERE Key_name = 'idx_dry'" in out  # the DROP's verification
    assert "EXPLAIN /* canary-console:verify */ SELECT id FROM orders WHERE customer_id = 42" in out
    assert "performance_schema.events_statements_summary_by_digest" in out  # the monitoring tick
    assert "PASS  db.index_absent" in out and "PASS  db.table_exists" in out  # the checks ran for real
    assert "size gate: PASS" in out
    assert SECRET not in out + done.stderr

    assert show_create(sandbox, db) == before  # same SHOW CREATE TABLE, no new index
    assert "idx_dry" not in before[1]
    with sandbox.primary.connect(db) as c, c.cursor() as cur:
        cur.execute("SHOW TABLES LIKE '\\_canary\\_scratch\\_%'")
        assert cur.fetchall() == ()  # the scratch-table test was listed, not run

    store = Store(url)
    rows = store.audit_entries("acme", action="dry_run")
    assert len(rows) == 1
    details = rows[0].details
    assert details["target"] == f"{db}.orders on cc_dry@127.0.0.1:{sandbox.primary.port}/{db}"
    assert details["written"] == "nothing"
    assert SECRET not in str(details)
    assert store.find_runs("acme") == []  # a dry run creates no run


def test_dry_run_of_a_plan_whose_index_exists_says_so(sandbox, lab, tmp_path):
    db = lab.database("dryrun_exists")
    lab.load_orders(db, 500)
    with sandbox.primary.connect(db) as c, c.cursor() as cur:
        cur.execute("ALTER TABLE orders ADD INDEX idx_there (customer_id)")
    plan = write_plan(tmp_path, sandbox.primary.port, db, index="idx_there")
    done = cli("dry-run", str(plan), "--store", f"sqlite:///{tmp_path / 'store.db'}")
    assert done.returncode == 0, done.stderr
    assert "FAIL  db.index_absent: idx_there already exists" in done.stdout
    assert done.stdout.splitlines()[-1] == "1 check(s) would block the canary: db.index_absent"
    assert show_create(sandbox, db)[1] == ["PRIMARY", "idx_there"]


def test_a_bad_plan_gets_its_messages_and_exit_2(tmp_path):
    plan = write_plan(tmp_path, free_port(), "shop", index="idx-bad", extra="[bogus]\nx = 1\n")
    done = cli("dry-run", str(plan), "--store", f"sqlite:///{tmp_path / 'store.db'}")
    assert done.returncode == 2
    assert "idx-bad" in done.stderr and "bogus" in done.stderr
    assert "Traceback" not in done.stderr
    usual = cli("execute", str(plan), "--store", f"sqlite:///{tmp_path / 'store.db'}")
    assert usual.returncode == 2 and usual.stderr == done.stderr


def test_a_person_the_plan_does_not_name_is_refused(tmp_path):
    plan = write_plan(tmp_path, free_port(), "shop")
    plan.write_text(plan.read_text().replace(f'unix_user = "{getpass.getuser()}"', 'unix_user = "somebody-else"'))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    done = cli("dry-run", str(plan), "--store", url)
    assert done.returncode == 3, done.stderr
    assert "refused" in done.stderr and "[[people]]" in done.stderr
    assert Store(url).audit_entries("acme", action="dry_run_refused")


async def test_console_dry_run_says_so_and_refuses_to_execute(sandbox, lab, tmp_path):
    from console.app import CanaryApp
    from engine.adapters.identity import Identity
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.domain.plan import load_plan
    from screens.dryrun import DryRunScreen
    from screens.frame import RunFrame

    db = lab.database("dryrun_console")
    lab.load_orders(db, 500)
    plan = load_plan(write_plan(tmp_path, sandbox.primary.port, db))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    app = CanaryApp(plan, store, Identity(getpass.getuser(), "10.0.0.5", "jump"), backend=EmbeddedKillSwitch(store),
                    poll=False, dry_run=True)
    said: list[str] = []
    app.notify = lambda message, **kw: said.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, DryRunScreen)
        assert "DRY RUN" in str(app.screen.query_one(RunFrame).render())
        await app.workers.wait_for_complete()
        await pilot.pause()
        body = str(app.screen.query_one("#dry-run-body").render())
        assert f"TABLE `{db}`.`orders` ADD INDEX `idx_dry`" in body
        assert "KILL /* canary-console:kill-switch */ QUERY" in body and "DROP INDEX `idx_dry`" in body

        await pilot.press("g")
        await pilot.pause()
        assert said and said[-1].startswith("DRY RUN: executing the ALTER is not done in a dry run")
        assert "\n" not in said[-1]
        await pilot.press("escape")  # the Plan screen: `b` would create a run
        await pilot.pause()
        await pilot.press("b")
        await pilot.pause()
        assert said[-1].startswith("DRY RUN: beginning the prechecks")
        assert "DRY RUN" in str(app.screen.query_one(RunFrame).render())
    assert store.find_runs("acme") == []
    assert store.audit_entries("acme", action="dry_run")
    assert not lab.index_exists(plan)


def test_a_write_a_check_would_try_is_withheld_not_sent(sandbox, lab, tmp_path):
    """The prechecks turn on the metadata-lock instrument when it is off; a dry run lists that
    UPDATE as withheld and the instrument stays off. The read-only session refuses any write."""
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.adapters.target import TargetError
    from engine.domain.plan import load_plan
    from engine.flows.dryrun import ReadOnlyTarget, dry_run

    db = lab.database("dryrun_withheld")
    lab.load_orders(db, 300)
    plan = load_plan(write_plan(tmp_path, sandbox.primary.port, db))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    off = "UPDATE performance_schema.setup_instruments SET ENABLED = 'NO' WHERE NAME = 'wait/lock/metadata/sql/mdl'"
    on = off.replace("'NO'", "'YES'")
    read = "SELECT ENABLED FROM performance_schema.setup_instruments WHERE NAME = 'wait/lock/metadata/sql/mdl'"
    with sandbox.primary.connect() as c, c.cursor() as cur:
        cur.execute(off)
        try:
            result = dry_run(plan, store, EmbeddedKillSwitch(store), "me@test", ["dba"])
            cur.execute(read)
            assert cur.fetchone()["ENABLED"] == "NO"
        finally:
            cur.execute(on)
    assert any(w.startswith("UPDATE /* canary-console:mdl */ performance_schema.setup_instruments")
               for w in result.withheld), result.withheld
    assert {f.check_id: f.status for f in result.findings}["db.no_long_trx"] == "pass"  # its fallback ran

    ro = ReadOnlyTarget(plan.connection)
    with ro.session() as s:
        with pytest.raises(TargetError, match="not sent in a dry run"):
            s.execute("ALTER TABLE orders ADD INDEX idx_never (status)")
        with pytest.raises(TargetError, match="not sent in a dry run"):
            s.query("DELETE FROM orders")
        assert s.query("SELECT COUNT(*) AS n FROM orders")[0]["n"] == 300
    assert show_create(sandbox, db)[1] == ["PRIMARY"]


def test_an_unreachable_target_is_an_error_with_the_sql_still_shown(tmp_path):
    plan = write_plan(tmp_path, free_port(), "shop")
    done = cli("dry-run", str(plan), "--store", f"sqlite:///{tmp_path / 'store.db'}", "--json")
    assert done.returncode == 1, done.stderr
    assert "the target was not reached" in done.stderr and "Traceback" not in done.stderr
    import json

    data = json.loads(done.stdout)
    assert any("ADD INDEX `idx_dry`" in s["sql"] for s in data["statements"])
    assert "env.target" in data["blockers"]


def test_the_statements_are_the_builders_own_for_each_server():
    """Pure: the ladder follows the server (MySQL: INVISIBLE; no rung 1 where the server has no
    IGNORED), and every statement is one the shared builders make."""
    from engine.adapters import sql
    from engine.domain.plan import plan_from_dict
    from engine.flows.dryrun import statements

    plan = plan_from_dict({"tenant": "t", "connection": {"id": "c", "host": "h", "user": "u", "database": "shop"},
                           "change": {"table": "orders", "index": "idx_a", "columns": ["a", {"name": "b", "prefix": 8}]}})
    run_id = "0f0e0d0c-0000-4000-8000-000000000001"
    mysql = [s.sql for s in statements(plan, run_id, {"flavour": "mysql", "ignored": True})]
    assert sql.add_index("shop", "orders", "idx_a", [("a", None), ("b", 8)], run_id) in mysql
    assert sql.ignore_index("shop", "orders", "idx_a", "mysql") in mysql  # ... ALTER INDEX `idx_a` INVISIBLE
    assert sql.ignore_index("shop", "orders", "idx_a", "mysql", undo=True) in mysql
    assert sql.drop_index("shop", "orders", "idx_a") in mysql
    assert any("IS_VISIBLE = 'NO'" in s for s in mysql)
    old = [s for s in statements(plan, run_id, {"flavour": "mariadb", "ignored": False})]
    assert not any("IGNORED" in s.sql and s.section == "Rollback" for s in old)
    assert all(s.writes for s in old if s.sql.startswith(("ALTER", "KILL", "CREATE", "DROP", "UPDATE")))


async def test_a_dry_run_console_never_takes_a_run_over(tmp_path):
    """A run whose driver is gone is taken over by a lead's or DBA's console — never by a dry run,
    which would then drive the ALTER and the window."""
    import time

    from console.app import CanaryApp
    from engine.adapters.identity import Identity
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.adapters.target import Target
    from engine.domain.plan import load_plan
    from engine.flows.executor import Executor

    plan = load_plan(write_plan(tmp_path, free_port(), "shop"))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    backend = EmbeddedKillSwitch(store)
    run = Executor(plan, store, backend, Target(plan.connection), "gone@jump", "worker-gone").create_run()
    store.claim(plan.tenant, run.id, "worker-gone", lease_seconds=0.01)
    store.transition(plan.tenant, run.id, "running", "gone@jump")
    time.sleep(0.05)  # the lease runs out (store time: no event to wait on)
    app = CanaryApp(plan, store, Identity(getpass.getuser(), "10.0.0.5", "jump"), backend=backend, poll=False,
                    dry_run=True)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if app.frame.driver:
                break
        assert "is gone (lease expired)" in app.frame.driver and "not a dry run" in app.frame.driver
        assert not app.driving
        app._take_over(store.get_run(plan.tenant, run.id))  # even when asked directly
        assert not app.driving
    assert store.audit_entries(plan.tenant, run.id, "take_over") == []
    assert store.get_run(plan.tenant, run.id).claimed_by == "worker-gone"


DRY_LINES = [
    "DRY RUN 5e1f0c2a — shop.orders@10.0.0.12:3306 (orders-primary)", "server: MariaDB 10.11.6",
    "nothing that writes is sent; ✓ ran now (read-only), → would run", "",
    "Checks (read-only, run now)",
    "  PASS  db.reachable: connected in 4 ms",
    "  PASS  db.row_count: ~1,204,311 rows (TABLE_ROWS estimate), data 182.4 MB, indexes 61.0 MB",
    "      SELECT TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'",
    "  WARN  db.long_transactions: 1 transaction open for 42 s (trx 4711, user report)",
    "  size gate: PASS — under 5,000,000 rows and 1 GB", "",
    "Execution",
    "  → the ALTER [writes: not sent]",
    "      ALTER TABLE `shop`.`orders` ADD INDEX `idx_orders_customer_created` (`customer_id`, `created_at`), "
    "ALGORITHM=INPLACE, LOCK=NONE",
    "  → the kill switch's KILL",
    "      KILL /* canary-console:kill-switch */ QUERY <the ALTER's thread id>", "",
    "Rollback",
    "  → drop the index [writes: not sent]",
    "      ALTER TABLE `shop`.`orders` DROP INDEX `idx_orders_customer_created`, ALGORITHM=INPLACE, LOCK=NONE", "",
    "0 check(s) would block the canary",
]


def test_dry_run_screen_snapshot(snap_compare, term):
    """What `run --dry-run` shows, at each terminal size (the SQL wraps, the frame says DRY RUN)."""
    from dataclasses import replace

    from dashboard_host import FRAME, Host

    from screens.dryrun import DryRunScreen

    screen = DryRunScreen()

    async def run_before(pilot):
        screen.show_lines(DRY_LINES)
        for _ in range(3):
            await pilot.pause(0.05)

    app = Host(screen, replace(FRAME, step="plan", dry_run=True, run="", driver="", t0=None))
    assert snap_compare(app, terminal_size=term, run_before=run_before)
