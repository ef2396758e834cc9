"""The runbook's integration cases TC-01…TC-10 (runbook 2.1), run against a sandbox MariaDB.

``canary-console self-test`` runs them and stores each result as a precheck row for the prechecks
screen; the test suite runs the same cases and asserts more on what they leave behind. Each case
works in its own database and its own store, so cases never see each other's runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.adapters import sql
from engine.adapters.identity import current_identity
from engine.adapters.killswitch import EmbeddedKillSwitch, KillSwitchBackend, RemoteKillSwitch
from engine.adapters.store import ExecutionRun, PrecheckResult, Store
from engine.adapters.target import Target
from engine.domain.cases import NAMES, PRIORITY
from engine.domain.clock import utcnow
from engine.domain.identifiers import check_identifier, qualified, quote
from engine.domain.plan import Plan, plan_from_dict, toml_dump, window_covering
from engine.drill.sandbox import MariaDBSandbox, load_orders
from engine.drill.workload import Workload
from engine.flows import guard
from engine.flows.executor import DigestObserver, Executor, Outcome
from engine.flows.rollback import IndexRollback


@dataclass
class CaseResult:
    case: str
    checks: list[tuple[str, bool]] = field(default_factory=list)
    detail: str = ""
    duration_ms: float = 0.0
    run_id: str | None = None
    store: Store | None = None
    outcome: Outcome | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(ok for _, ok in self.checks)

    def check(self, what: str, ok: bool) -> bool:
        self.checks.append((what, bool(ok)))
        return bool(ok)

    def summary(self) -> str:
        failed = [w for w, ok in self.checks if not ok]
        if self.error:
            return f"error: {self.error}"
        if failed:
            return "failed: " + "; ".join(failed)
        return f"{len(self.checks)} checks passed" + (f" ({self.detail})" if self.detail else "")


class Lab:
    """What the cases share: the sandbox, a scratch directory, and builders for plans and stores."""

    def __init__(self, sandbox: MariaDBSandbox, workdir: str | os.PathLike[str] | None = None,
                 actor: str = "self-test"):
        self.sandbox = sandbox
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="cc-selftest-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.actor = actor
        self._big: dict[int, str] = {}

    def cleanup(self) -> None:
        """Remove the scratch directory if this lab made it (the stores of the cases)."""
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def admin(self, database: str | None = None) -> Any:
        return self.sandbox.primary.connect(database)

    def database(self, name: str) -> str:
        check_identifier(name, "schema")
        with self.admin() as c, c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(name, 'schema')}")
            cur.execute(f"CREATE DATABASE {quote(name, 'schema')}")
        return name

    def load_orders(self, db: str, rows: int, engine: str = "InnoDB", table: str = "orders") -> None:
        load_orders(self.sandbox.primary, db, rows, engine, table, chunk=500_000)

    def big_table(self, rows: int = 1_000_000) -> str:
        """A database with an ``orders`` table of ``rows`` rows, loaded once per lab."""
        if rows not in self._big:
            db = self.database(f"cc_big_{rows}")
            self.load_orders(db, rows)
            self._big[rows] = db
        return self._big[rows]

    def plan(self, db: str, index: str, columns: list[Any], table: str = "orders",
             **executor: Any) -> Plan:
        # A fixed timeline: the cases' baselines are seconds long, far too short for the noise, and
        # must not be extended (docs/verdict.md, "Baseline"); a case that wants it says so.
        opts = {"mode": "canary", "cooldown_seconds": 0, "baseline_window_seconds": 0,
                "baseline_extend_max_seconds": 0, "verify_window_seconds": 0, "lease_seconds": 10,
                "lock_wait_timeout": 2}
        opts.update(executor)
        data: dict[str, Any] = {
            "tenant": "selftest",
            "connection": {"id": f"sbx-{db}".replace("_", "-"), "host": "127.0.0.1",
                           "port": self.sandbox.primary.port, "user": "root", "database": db},
            "change": {"table": table, "index": index, "columns": columns},
            # The person running the cases is the plan's canary lead and DBA: the workers the cases
            # start (engine/drill/worker.py) run as them, and executing is theirs (docs/roles.md).
            "people": [{"name": "self-test", "role": ["canary_lead", "dba"], "unix_user": "self-test"},
                       {"name": "you", "role": ["canary_lead", "dba"], "unix_user": current_identity().user}],
            "window": window_covering(utcnow()),  # a sandbox: the drill is always "off-peak"
            "executor": opts,
        }
        return plan_from_dict(data, source=f"self-test:{db}")

    def prepare(self, case: str, rows: int, columns: list[Any], engine: str = "InnoDB",
                **executor: Any) -> tuple[CaseResult, str, Plan, Store]:
        """A case's own database with an ``orders`` table, its plan (index ``idx_<case>``) and store."""
        name = case.lower().replace("-", "")
        result = CaseResult(case)
        db = self.database(name)
        self.load_orders(db, rows, engine)
        plan = self.plan(db, f"idx_{name}", columns, **executor)
        result.store = self.store(name)
        return result, db, plan, result.store

    def store(self, name: str) -> Store:
        path = self.workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return Store(f"sqlite:///{path}")

    def executor(self, plan: Plan, store: Store, backend: KillSwitchBackend | None = None,
                 worker: str = "worker-a", observer: Any = None,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> Executor:
        target = Target(plan.connection)
        return Executor(plan, store, backend or EmbeddedKillSwitch(store), target, self.actor, worker,
                        observer=observer or DigestObserver(target, plan.executor.baseline_window_seconds,
                                                            plan.executor.verify_window_seconds),
                        on_event=on_event)

    def index_exists(self, plan: Plan) -> bool:
        with Target(plan.connection).session("verify") as s:
            return s.index_exists(plan.schema, plan.change.table, plan.change.index)

    def drop_index_if_present(self, db: str, table: str, index: str) -> None:
        with self.admin(db) as c, c.cursor() as cur:
            cur.execute(sql.INDEX_EXISTS, (db, table, index))
            if cur.fetchone()["n"]:
                cur.execute(f"ALTER TABLE {qualified(db, table)} DROP INDEX {quote(index, 'index')}")


# --- the cases ---------------------------------------------------------------------------------


def tc01_claim_conflict(lab: Lab) -> CaseResult:
    r, _db, plan, store = lab.prepare("TC-01", 2000, ["customer_id"])
    run = lab.executor(plan, store, worker="worker-a").create_run()
    r.run_id = run.id
    store.claim(plan.tenant, run.id, "worker-a", 60)
    out = r.outcome = lab.executor(plan, store, worker="worker-b").execute(run.id)
    after = store.get_run(plan.tenant, run.id)
    r.check("second worker refused with claim_failed", out.fail_reason == "claim_failed")
    r.check("run untouched: still scheduled and held by worker-a",
            after is not None and after.status == "scheduled" and after.claimed_by == "worker-a")
    r.check("refusal audited", bool(store.audit_entries(plan.tenant, run.id, "claim_failed")))
    r.check("no index created", not lab.index_exists(plan))
    store.transition(plan.tenant, run.id, "cancelled", lab.actor, message="self-test cleanup")
    return r


def tc02_kill_before_start(lab: Lab) -> CaseResult:
    r, _db, plan, store = lab.prepare("TC-02", 2000, ["customer_id"])
    ex = lab.executor(plan, store)
    run = ex.create_run()
    r.run_id = run.id
    store.set_kill_switch(plan.tenant, "global", True, lab.actor, "TC-02")
    out = r.outcome = ex.execute(run.id)
    after = store.get_run(plan.tenant, run.id)
    r.check("run failed with fail_reason kill_switch", out.status == "failed" and out.fail_reason == "kill_switch")
    r.check("the ALTER was never sent", after is not None and after.alter_started_at is None)
    r.check("no index created", not lab.index_exists(plan))
    r.check("audited", any(e.new_status == "failed" for e in store.audit_entries(plan.tenant, run.id)))
    return r


def tc03_kill_after_add_index(lab: Lab) -> CaseResult:
    r, _db, plan, store = lab.prepare("TC-03", 20000, ["customer_id", "created_at"])

    def on_event(name: str, _data: dict[str, Any]) -> None:
        if name == "index_added":
            store.set_kill_switch(plan.tenant, "connection", True, lab.actor, "TC-03",
                                  connection_id=plan.connection.id)

    ex = lab.executor(plan, store, on_event=on_event)
    run = ex.create_run()
    r.run_id = run.id
    out = r.outcome = ex.execute(run.id)
    records = store.rollback_records(plan.tenant, run.id)
    r.check("run cancelled with fail_reason kill_switch", out.status == "cancelled" and out.fail_reason == "kill_switch")
    r.check("index left in place for the manual rollback", lab.index_exists(plan))
    r.check("manual rollback prepared with its DROP statement",
            any(x.rollback_status == "pending" and x.rollback_type == "manual" and "DROP INDEX" in (x.rollback_sql or "")
                for x in records))
    r.check("the executor did not drop anything", not any(x.rollback_status == "completed" for x in records))
    return r


def tc04_lock_none_refused(lab: Lab) -> CaseResult:
    # Not InnoDB: the server cannot add an index in place.
    r, _db, plan, store = lab.prepare("TC-04", 2000, ["customer_id"], engine="Aria")
    ex = lab.executor(plan, store)
    run = ex.create_run()
    r.run_id = run.id
    out = r.outcome = ex.execute(run.id)
    alters = store.audit_entries(plan.tenant, run.id, "alter_started")
    r.check("run failed with execution_error", out.status == "failed" and out.fail_reason == "execution_error")
    r.check("the server's refusal is named", "LOCK=NONE" in out.message and "no locking fallback" in out.message)
    r.check("exactly one ALTER sent, with ALGORITHM=INPLACE, LOCK=NONE (no fallback)",
            len(alters) == 1 and "ALGORITHM=INPLACE, LOCK=NONE" in (alters[0].details or {}).get("sql", ""))
    r.check("no index created", not lab.index_exists(plan))
    return r


def tc05_index_already_exists(lab: Lab) -> CaseResult:
    r, db, plan, store = lab.prepare("TC-05", 2000, ["customer_id"])
    with lab.admin(db) as c, c.cursor() as cur:
        cur.execute("ALTER TABLE orders ADD INDEX idx_tc05 (customer_id)")
    ex = lab.executor(plan, store)
    run = ex.create_run()
    r.run_id = run.id
    out = r.outcome = ex.execute(run.id)
    r.check("run failed with execution_error naming the existing index",
            out.fail_reason == "execution_error" and "already exists" in out.message)
    refused = IndexRollback(store, Target(plan.connection), lab.actor).drop(
        store.get_run(plan.tenant, run.id), "TC-05: try to roll back an index we did not create")  # type: ignore[arg-type]
    r.check("a rollback of this run refuses to drop the index", refused.status == "refused")
    r.check("the pre-existing index is still there", lab.index_exists(plan))
    return r


def _regression_workload(lab: Lab, plan: Plan) -> Workload:
    """Range counts on the primary key: cheap before the change, 200× wider after it."""
    table = qualified(plan.schema, plan.change.table)
    statement = f"SELECT /* tc-workload */ COUNT(*) AS n FROM {table} WHERE id BETWEEN %s AND %s"  # noqa: S608
    return Workload(plan.connection, statement, lambda rng: (s := rng.randint(1, 10000), s + 100), rate_per_s=60,
                    name="tc-workload")


def _verification_case(lab: Lab, case: str, block_rollback: bool) -> CaseResult:
    r, db, plan, store = lab.prepare(case, 60000, ["status"], mode="standard", auto_rollback=True,
                                     baseline_window_seconds=1.5, verify_window_seconds=1.5, lock_wait_timeout=1,
                                     rollback_attempts=2, rollback_backoff_seconds=0.1)
    work = _regression_workload(lab, plan)
    blocker: Any = None

    def on_event(event: str, _data: dict[str, Any]) -> None:
        if event == "index_added":
            work.set_phase(work.statement, lambda rng: (s := rng.randint(1, 30000), s + 20000))

    class BlockingObserver(DigestObserver):
        def after(self, run: ExecutionRun, wait: Any) -> Any:
            nonlocal blocker
            result = super().after(run, wait)
            if block_rollback:
                # An open transaction that read the table holds its metadata lock: the DROP's
                # exclusive lock waits lock_wait_timeout and fails, on every attempt.
                blocker = lab.admin(db)
                with blocker.cursor() as cur:
                    cur.execute("START TRANSACTION")
                    cur.execute("SELECT id FROM orders LIMIT 1")
            return result

    target = Target(plan.connection)
    observer = BlockingObserver(target, 1.5, 1.5)
    with work:
        ex = lab.executor(plan, store, observer=observer, on_event=on_event)
        run = ex.create_run()
        r.run_id = run.id
        out = r.outcome = ex.execute(run.id)
    if blocker is not None:
        blocker.rollback()
        blocker.close()
    records = store.rollback_records(plan.tenant, run.id)
    r.check("verification failed on a measured regression",
            out.verification is not None and out.verification.status == "failed")
    r.detail = out.verification.message if out.verification else out.message
    if not block_rollback:
        r.check("run rolled_back with fail_reason verification_failed",
                out.status == "rolled_back" and out.fail_reason == "verification_failed")
        r.check("index dropped and verified absent", not lab.index_exists(plan))
        r.check("one DROP sent, recorded as completed",
                any(x.rollback_status == "completed" and sum(1 for a in x.attempts or [] if a.get("sent")) == 1
                    for x in records))
    else:
        r.check("run failed with fail_reason verification_failed",
                out.status == "failed" and out.fail_reason == "verification_failed")
        r.check("rollback recorded as failed with every attempt",
                any(x.rollback_status == "failed" and len(x.attempts or []) == 2 for x in records))
        r.check("escalated to L4", any((e.details or {}).get("level") == "L4"
                                       for e in store.audit_entries(plan.tenant, run.id, "escalation")))
        r.check("index still present (the DROP never went through)", lab.index_exists(plan))
        lab.drop_index_if_present(db, plan.change.table, plan.change.index)
    return r


def tc06_verification_fail_rollback_ok(lab: Lab) -> CaseResult:
    return _verification_case(lab, "TC-06", block_rollback=False)


def tc07_verification_fail_rollback_fail(lab: Lab) -> CaseResult:
    return _verification_case(lab, "TC-07", block_rollback=True)


def tc08_low_sample_inconclusive(lab: Lab) -> CaseResult:
    r, _db, plan, store = lab.prepare("TC-08", 2000, ["customer_id"], mode="standard", auto_rollback=True,
                                      baseline_window_seconds=0.5, verify_window_seconds=0.5)
    ex = lab.executor(plan, store)
    run = ex.create_run()
    r.run_id = run.id
    out = r.outcome = ex.execute(run.id)
    r.check("verification inconclusive (< 10 samples)",
            out.verification is not None and out.verification.status == "inconclusive")
    r.check("no rollback, even with auto-rollback on", not store.rollback_records(plan.tenant, run.id))
    r.check("index kept for the team's decision", lab.index_exists(plan))
    r.check("run completed and marked INCONCLUSIVE", out.status == "completed" and "INCONCLUSIVE" in out.message)
    return r


def spawn_api(lab: Lab, store_url: str, tenant: str, token: str) -> tuple[subprocess.Popen[str], str]:
    """``canary-console api`` in its own process on a free loopback port (the engine never imports
    the API's web stack): the process and its URL, once it serves."""
    tokens = lab.workdir / "tc09-tokens.toml"
    tokens.write_text(f'tenant = "{tenant}"\n[[token]]\nuser = "self-test"\nrole = "canary_lead"\n'
                      f'token = "{token}"\n')
    tokens.chmod(0o600)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "console.api_cmd", "--listen", "127.0.0.1:0",
                             "--store", store_url, "--tokens", str(tokens)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    found = re.search(r"canary API on (http://127\.0\.0\.1:\d+)", line)
    if not found:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"the API did not start: {(err or line).strip()[:300]}")
    return proc, found.group(1)


def stop_api(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def tc09_api_down_fail_closed(lab: Lab) -> CaseResult:
    r, _db, plan, store = lab.prepare("TC-09", 2000, ["customer_id"])
    token = "tc09-token-" + os.urandom(8).hex()
    proc, url = spawn_api(lab, store.url, plan.tenant, token)
    remote = RemoteKillSwitch(url, token=token)
    try:
        up = remote.read(plan.tenant, plan.connection.id)
        r.check("API up: kill switch reads off", not up.active and up.error is None)
        stop_api(proc)
        down = remote.read(plan.tenant, plan.connection.id)
        r.check("API down: the reading is fail-closed (active, with the error)", down.active and down.fail_closed)
        ex = lab.executor(plan, store, backend=remote)
        run = ex.create_run()
        r.run_id = run.id
        out = r.outcome = ex.execute(run.id)
        r.check("run aborted with fail_reason kill_switch", out.status == "failed" and out.fail_reason == "kill_switch")
        checks = store.audit_entries(plan.tenant, run.id, "kill_switch_checked")
        r.check("the API error is in the audit trail", any((e.details or {}).get("error") for e in checks))
        r.check("no index created", not lab.index_exists(plan))
    finally:
        stop_api(proc)
        remote.close()
    return r


def spawn_worker(plan_path: Path, store_url: str, run_id: str | None = None) -> subprocess.Popen[str]:
    """A headless worker in its own process (for crash tests): engine/drill/worker.py, the ``execute``
    action on the harness's sandbox run without the console's step-4 gate (``canary-console
    execute`` asks it: a fixture run has no prechecks walked)."""
    args = [sys.executable, "-m", "engine.drill.worker", str(plan_path), store_url, run_id or ""]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def write_plan(lab: Lab, plan: Plan, name: str) -> Path:
    """The plan as TOML, for a worker in another process."""
    path = lab.workdir / f"{name}.toml"
    path.write_text(toml_dump(plan.raw))
    return path


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def tc10_worker_crash_lease_expiry(lab: Lab, rows: int = 2_000_000) -> CaseResult:
    r = CaseResult("TC-10")
    db = lab.big_table(rows)
    index = "idx_tc10"
    lab.drop_index_if_present(db, "orders", index)
    # The lease has to outlast the gap between the crash and the second worker's first try (the
    # crashed worker renewed it at most a third of it, 1 s, before it died, which leaves 2 s;
    # 1 s was not enough there), and the ALTER has to outlast the lease so that the new owner finds
    # it still running: 2M rows take ~5 s to index here.
    plan = lab.plan(db, index, ["note", "status", "total"], lease_seconds=3.0)
    store = r.store = lab.store("tc10")
    plan_path = write_plan(lab, plan, "tc10")
    first = lab.executor(plan, store, worker="worker-a")
    run = first.create_run()
    r.run_id = run.id
    second = lab.executor(plan, store, worker="worker-b")
    proc = spawn_worker(plan_path, store.url, run.id)
    with Target(plan.connection).session("observer") as s:
        started = wait_for(lambda: s.find_alter(run.id), 30)
    proc.kill()  # the worker crashes mid-ALTER; the server goes on building the index
    proc.wait(10)
    r.check("the crashed worker had started the ALTER", bool(started))
    early = second.execute(run.id)
    r.check("while the lease holds, a new worker is refused", early.fail_reason == "claim_failed")
    wait_for(lambda: (x := store.get_run(plan.tenant, run.id)) and x.lease_expires_at
             and x.lease_expires_at < utcnow(), 15)
    out = r.outcome = second.execute(run.id)
    inspected = store.audit_entries(plan.tenant, run.id, "recovery_inspected")
    r.check("the new owner inspected processlist and index before acting", len(inspected) == 1)
    r.detail = str(inspected[0].details if inspected else {})
    r.check("the run finished under the new owner", out.status == "completed")
    final = store.get_run(plan.tenant, run.id)
    r.check("held by worker-b", final is not None and final.claimed_by == "worker-b")
    r.check("the index exists, created by this run", lab.index_exists(plan) and bool(final and final.index_created_by_run))
    lab.drop_index_if_present(db, "orders", index)
    return r


CASES: dict[str, Callable[[Lab], CaseResult]] = {
    "TC-01": tc01_claim_conflict, "TC-02": tc02_kill_before_start, "TC-03": tc03_kill_after_add_index,
    "TC-04": tc04_lock_none_refused, "TC-05": tc05_index_already_exists,
    "TC-06": tc06_verification_fail_rollback_ok, "TC-07": tc07_verification_fail_rollback_fail,
    "TC-08": tc08_low_sample_inconclusive, "TC-09": tc09_api_down_fail_closed,
    "TC-10": tc10_worker_crash_lease_expiry,
}


def run_case(lab: Lab, case: str) -> CaseResult:
    started = time.perf_counter()
    try:
        result = CASES[case](lab)
    except Exception as exc:  # noqa: BLE001 - a case that crashes is a failed case, reported as such
        result = CaseResult(case, error=f"{exc.__class__.__name__}: {exc}")
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result


def record(store: Store, tenant: str, result: CaseResult, actor: str) -> PrecheckResult:
    return store.save_precheck(PrecheckResult(
        tenant_id=tenant, check_id=result.case, priority=PRIORITY[result.case],
        status="pass" if result.passed else "fail", detail=f"{NAMES[result.case]}: {result.summary()}",
        duration_ms=round(result.duration_ms, 1), source="self-test", recorded_by=actor,
        recorded_at=store.now(),  # the store's clock, like its audit entry (a drill's may be compressed)
    ))


def run_for_prechecks(store: Store, tenant: str, actor: str, roles: Iterable[str], cases: list[str] | None = None,
                      report: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    """The ``self_test`` action (docs/roles.md: everyone the plan names): the role from the one table
    (engine/flows/guard.py; a refusal is audited as ``self_test_refused`` and raises ``RoleRefused``
    before a sandbox starts), then the cases against a private sandbox, each stored for the tenant's
    prechecks as it finishes (then ``report(result)``). The console's ``t``, ``canary-console
    self-test`` and the rehearsal call it."""
    guard.check(store, tenant, actor, roles, "self_test", cases=cases or list(CASES))

    def recorded(result: CaseResult) -> None:
        record(store, tenant, result, actor)
        if report is not None:
            report(result)

    return run_all(cases, recorded)


def run_all(cases: list[str] | None = None, report: Callable[[CaseResult], None] | None = None,
            lab: Lab | None = None) -> list[CaseResult]:
    """Start a sandbox (unless given a lab), run the cases in order, stop what was started."""
    own = lab is None
    sandbox = MariaDBSandbox().start() if own else lab.sandbox  # type: ignore[union-attr]
    lab = lab or Lab(sandbox)
    results = []
    try:
        for case in cases or list(CASES):
            result = run_case(lab, case)
            results.append(result)
            if report:
                report(result)
    finally:
        if own:
            lab.cleanup()
            sandbox.stop()
    return results
