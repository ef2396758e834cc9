"""The rehearsal (docs/api.md): a private primary and replica, a realistic table, a workload, a plan.

This is the engine half of ``canary-console rehearse``. State lives under the user's state
directory (``rehearsal/``): the datadirs are kept between runs and reused unless a reset is asked
for; the servers and the workload stop when the rehearsal ends.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.adapters.paths import state_dir
from engine.domain.clock import utcnow
from engine.domain.identifiers import qualified, quote
from engine.domain.plan import toml_dump, window_covering
from engine.domain.text import for_terminal
from engine.drill.sandbox import MariaDBSandbox, load_orders, pool_for_rows
from engine.drill.workload import Workload

DB, TABLE, INDEX = "shop", "orders", "idx_orders_customer_created"
# Another tenant's copy of the table, not altered: the control of the latency verdict (docs/verdict.md).
CONTROL_DB = "shop_tenant_b"
READ = ("SELECT /* rehearsal-read */ id, total FROM orders WHERE customer_id = %s AND created_at >= %s "
        "ORDER BY created_at LIMIT 20")  # unqualified: the same digest in both tenants' schemas
WRITE = "UPDATE /* rehearsal-write */ orders SET total = total + 0.01 WHERE id = %s"


CONTROL_READS_PER_S = 4  # the control's scans a second: a minority of its statements (the writes: 20)


def control_rows(rows: int) -> int:
    """The control tenant is smaller: its reads scan a fifth of the rows (the verdict compares
    changes, not levels)."""
    return max(1000, rows // 5)


def rehearsal_dir() -> Path:
    return state_dir() / "rehearsal"


class DrillBusy(RuntimeError):
    """Another drill is running on this sandbox: a second one would take its servers and reload its table."""


class DrillLock:
    """One drill at a time on a sandbox. An exclusive ``flock`` on ``rehearsal.lock`` (beside the
    sandbox's directory, so ``--reset`` never deletes it while held), taken before anything is
    touched and held until the drill stops. The kernel drops it when the process dies, so a killed
    drill never leaves a stale lock: the next one resumes it."""

    def __init__(self, base: Path) -> None:
        self._fd: int | None = None
        path = base.parent / "rehearsal.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip()
            os.close(fd)
            plan = base / "canary.toml"
            raise DrillBusy(
                f"another drill is running on this sandbox ({base}){': ' + for_terminal(holder) if holder else ''}. "
                f"Join it from this terminal as the teammate with `canary-console run {shlex.quote(str(plan))} --as teammate`, or "
                "close that drill (Ctrl+Q in its console) and start this one again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()}, started {utcnow():%Y-%m-%d %H:%M:%S} UTC\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock

    def __del__(self) -> None:
        self.release()


@dataclass
class Rehearsal:
    sandbox: MariaDBSandbox
    plan_path: Path
    store_url: str
    reads: Workload
    writes: Workload
    resumed_run: str | None = None  # the drill's run a killed rehearsal left unfinished
    control: tuple[Workload, ...] = ()  # the same reads and writes on the control tenant's schema
    lock: DrillLock | None = None  # held while the drill runs: one drill at a time on the sandbox

    def stop(self) -> None:
        self.reads.stop()
        self.writes.stop()
        for workload in self.control:
            workload.stop()
        self.sandbox.stop()
        if self.lock is not None:
            self.lock.release()


def _table_rows(sandbox: MariaDBSandbox, db: str = DB) -> int | None:
    with sandbox.primary.connect() as c, c.cursor() as cur:
        cur.execute("SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
                    (db, TABLE))
        row = cur.fetchone()
        return None if row is None else int(row["n"] or 0)


def plan_data(sandbox: MariaDBSandbox, store_url: str, user: str, speed: float = 1.0,
              origin: datetime | None = None, window: dict[str, Any] | None = None,
              control: bool = False, webhook: str | None = None) -> dict[str, Any]:
    assert sandbox.replica is not None

    def conn(server: Any, conn_id: str) -> dict[str, Any]:
        return {"id": conn_id, "host": "127.0.0.1", "port": server.port, "user": "root", "database": DB}

    return {
        "tenant": "rehearsal",
        "store_url": store_url,
        "connection": conn(sandbox.primary, "sandbox-primary"),
        "replica": conn(sandbox.replica, "sandbox-replica"),
        "change": {"table": TABLE, "index": INDEX, "columns": ["customer_id", "created_at"],
                   # the workload's read, with literal values: EXPLAINed before and after (never run)
                   "sample_queries": ["SELECT id, total FROM orders WHERE customer_id = 4242 AND created_at >= "
                                      "'2026-03-01' ORDER BY created_at LIMIT 20"],
                   # `--control`: another tenant's orders, same statements, not altered — the
                   # latency verdict's control (docs/verdict.md#the-control)
                   **({"control_schemas": [CONTROL_DB]} if control else {})},
        # Every required role of runbook 2.5.1 staffed, each with a way to reach them (a drill's
        # made-up numbers), so the war room, the sign-off and the announcements show what a real
        # plan gives them.
        "people": [{"name": "You", "roles": ["canary_lead", "dba", "sre", "developer"], "unix_user": user,
                    "handle": f"@{user}", "phone": "+66 2 000 0001", "backup": "Teammate"},
                   # A second person for what one person may not do alone (approve their own
                   # rollback): `canary-console run canary.toml --as teammate` in another terminal.
                   {"name": "Teammate", "roles": ["canary_lead", "dba", "sre", "developer"],
                    "unix_user": "teammate", "handle": "@teammate", "phone": "+66 2 000 0002", "backup": "You"}],
        "war_room": {"dashboard": "this console (5 Monitoring)", "chat": "#canary-rehearsal",
                     "room": "the terminal next to you (a drill)"},
        "rehearsal": True,
        # The drill's clock: every console on this plan, and a restarted one, reads the same time.
        **({"time_compression": {"speed": speed, "origin": (origin or utcnow()).isoformat()}} if speed > 1 else {}),
        # A rehearsal only: the off-peak window is set to cover the time of the drill.
        "window": window or window_covering(utcnow(), hours=23),  # compressed: room for hours of it
        # The lease in compressed seconds: at least ten real seconds, so a slow tick under a fast
        # clock never looks like a dead driver to a teammate's console.
        # The baseline may be extended (up to an hour of drill time, two real minutes at 30×) when
        # the drill's latency is too correlated for 30 minutes of it (docs/verdict.md, "Baseline").
        "executor": {"mode": "canary", "baseline_window_seconds": 1800, "baseline_extend_max_seconds": 3600,
                     "cooldown_seconds": 120,
                     "lease_seconds": min(600.0, max(30.0, 10.0 * speed))},
        # A drill may push to a test channel as a real run would (docs/runbook.md#pushed-to-the-webhooks).
        **({"integrations": {"webhook_url": webhook}} if webhook else {}),
    }


def _unfinished(plan_path: Path) -> tuple[Any, str, str] | None:
    """The plan of a drill that was killed before its run ended, that run's id and status; None when
    there is nothing to resume (no plan, or its run is over)."""
    if not plan_path.exists():
        return None  # a first drill: nothing to resume (and no store to import before the console)
    from engine.adapters.store import Store, StoreError
    from engine.domain.plan import PlanError, load_plan
    from engine.flows.runbook import open_run

    try:
        plan = load_plan(plan_path)
        store = Store(plan.store_url)
    except (PlanError, StoreError, OSError):
        return None  # a plan or store of an older version: a new drill (the old store is kept)
    try:
        run = open_run(store, plan)
    finally:
        store.close()
    return (plan, run.id, run.status) if run is not None else None


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


@dataclass(frozen=True)
class StepProgress:
    """Where one step of the drill's preparation stands: the console draws it as a progress bar,
    the headless drill as a line."""

    key: str  # "servers" | "data" | "self_test"
    title: str
    done: float
    total: float
    text: str  # what happens now, or what happened
    state: str = "running"  # waiting | running | done | skipped | failed

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else max(0.0, min(1.0, self.done / self.total))


STEP_TITLES = {"servers": "Sandbox primary + replica", "data": "Data load", "self_test": "Self-test"}


class PreparationCancelled(Exception):
    """The console closed while the drill was being prepared: what was started is stopped."""


@dataclass
class Prepared:
    """The quick half of the drill's start: the plan is written (the servers' ports are known
    before they start), nothing slow has run yet. ``bring_up`` does the slow half."""

    sandbox: MariaDBSandbox
    plan_path: Path
    store_url: str
    rows: int
    resumed_run: str | None
    adopted: tuple[str, ...]
    drill: Rehearsal | None = None
    control: bool = False  # a control tenant: its table loaded, its workload run (`--control`)
    resumed_status: str | None = None  # the resumed run's status when the drill started
    lock: DrillLock | None = field(default=None, repr=False)  # this sandbox's, from ``prepare`` to ``stop``

    @property
    def past_prechecks(self) -> bool:
        """The resumed run has left the prechecks (a scheduled one still has them, and the self-test, ahead)."""
        return self.resumed_run is not None and self.resumed_status != "scheduled"

    def bring_up(self, step: Callable[[StepProgress], None]) -> Rehearsal:
        """Start (or take up) the servers, load the table, start the workload; each step said
        through ``step`` as it goes (a ``step`` that raises stops the preparation: what was
        started is stopped)."""
        servers = [s for s in (self.sandbox.primary, self.sandbox.replica) if s is not None]
        total = 2 * len(servers) + 1
        done = 0

        def say(text: str, state: str = "running") -> None:
            step(StepProgress("servers", STEP_TITLES["servers"], done, total, text, state))

        try:
            say("starting the private primary and replica")
            for server in servers:
                if server.adopt():
                    done += 2
                    say(f"took up the {server.name} a previous drill left running (port {server.port})")
                    self.sandbox.note_adopted(server)
                    continue
                say(f"initialising the {server.name}'s datadir" if not (server.datadir / "mysql").is_dir()
                    else f"reusing the {server.name}'s datadir")
                server.install(self.sandbox.install_bin)
                done += 1
                say(f"starting the {server.name} on port {server.port}")
                self.sandbox.start_server(server)
                done += 1
            if self.sandbox.replica is not None and len(self.sandbox.adopted) < len(servers):
                say("attaching the replica to the primary")
                self.sandbox.attach_replica()
            done = total
            say(f"primary :{self.sandbox.primary.port}, replica :{servers[-1].port}", "done")
            self._load(step)
            return self._workload()
        except BaseException:
            self.stop()
            raise

    def _load(self, step: Callable[[StepProgress], None]) -> None:
        title = STEP_TITLES["data"]
        if self.resumed_run is not None:
            step(StepProgress("data", title, 1, 1, f"{DB}.{TABLE} as the resumed run left it", "skipped"))
            return
        have = _table_rows(self.sandbox)
        rows = self.rows
        whole = rows * 1.1  # the last tenth: the index dropped, the replica caught up
        if have is None or abs(have - rows) > rows * 0.25:
            step(StepProgress("data", title, 0, whole, f"loading {DB}.{TABLE}: 0/{rows:,} rows"))
            load_orders(self.sandbox.primary, DB, rows, table=TABLE,
                        progress=lambda d, n: step(StepProgress("data", title, d, whole,
                                                                f"loading {DB}.{TABLE}: {d:,}/{n:,} rows")))
            have = rows
        else:
            step(StepProgress("data", title, rows, whole,
                              f"reusing {DB}.{TABLE} (~{have:,} rows); --reset to start over"))
        want = control_rows(rows)
        have_control = _table_rows(self.sandbox, CONTROL_DB) if self.control else want
        if have_control is None or abs(have_control - want) > want * 0.25:
            step(StepProgress("data", title, rows, whole, f"loading the control tenant {CONTROL_DB}.{TABLE}"))
            load_orders(self.sandbox.primary, CONTROL_DB, want, table=TABLE)
        with self.sandbox.primary.connect(DB) as c, c.cursor() as cur:
            cur.execute(f"ALTER TABLE {qualified(DB, TABLE)} DROP INDEX IF EXISTS {quote(INDEX, 'index')}")
        step(StepProgress("data", title, rows * 1.05, whole, "waiting for the replica to catch up"))
        self.sandbox.wait_replica_caught_up(120)
        step(StepProgress("data", title, whole, whole, f"{DB}.{TABLE}: ~{have:,} rows, the replica caught up", "done"))

    def _workload(self) -> Rehearsal:
        profile = self.sandbox.primary.profile(DB)
        reads = Workload(profile, READ, lambda r: (r.randint(0, 49_999), "2026-03-01"), rate_per_s=20,
                         name="rehearsal-reads")
        # The control tenant's statement mix is the canary's before the index: writes the majority
        # (p50 is the writes'), its scans a minority. Its table is a fifth of the rows, so its scans
        # are about five times faster: at the canary's 20 a second they kept up with the writes, the
        # mix sat at half and half and its p50 jumped between a write's and a scan's from one interval
        # to the next (0.7 … 29 ms) — the no-fault drill with --control then FAILed on the ratio.
        control = (Workload(self.sandbox.primary.profile(CONTROL_DB), READ,
                            lambda r: (r.randint(0, 49_999), "2026-03-01"), rate_per_s=CONTROL_READS_PER_S,
                            name="rehearsal-control"),
                   Workload(self.sandbox.primary.profile(CONTROL_DB), WRITE,
                            lambda r: (r.randint(1, control_rows(self.rows)),), rate_per_s=20,
                            name="rehearsal-control-writes")) if self.control else ()
        writes = Workload(profile, WRITE, lambda r: (r.randint(1, self.rows),), rate_per_s=20, name="rehearsal-writes")
        reads.start()
        writes.start()
        for workload in control:
            workload.start()
        self.drill = Rehearsal(self.sandbox, self.plan_path, self.store_url, reads, writes, self.resumed_run,
                               control, self.lock)
        return self.drill

    def stop(self) -> None:
        """Stop what was started, whatever the preparation reached."""
        if self.drill is not None:
            self.drill.stop()
        else:
            self.sandbox.stop()
        if self.lock is not None:
            self.lock.release()


def self_test(store: Any, tenant: str, actor: str, roles: Iterable[str], cases: list[str] | None,
              step: Callable[[StepProgress], None]) -> list[Any]:
    """TC-01…TC-10 (or ``cases``) against a second private sandbox, each result stored for the
    prechecks as it finishes: the ``self_test`` action (``selftest.run_for_prechecks``, the role asked)."""
    from engine.drill import selftest

    chosen = cases or list(selftest.CASES)
    title = STEP_TITLES["self_test"]
    results: list[Any] = []
    step(StepProgress("self_test", title, 0, len(chosen) + 1, "starting a second private sandbox for the cases"))

    def recorded(result: Any) -> None:
        results.append(result)
        mark = "PASS" if result.passed else "FAIL"
        step(StepProgress("self_test", title, len(results) + 1, len(chosen) + 1,
                          f"{result.case} [{selftest.PRIORITY[result.case]}] {mark} {selftest.NAMES[result.case]} "
                          f"({result.duration_ms / 1000:.1f} s)"))

    selftest.run_for_prechecks(store, tenant, actor, roles, chosen, report=recorded)
    failed = [r.case for r in results if not r.passed]
    step(StepProgress("self_test", title, 1, 1, f"{len(results) - len(failed)}/{len(results)} passed"
                      + (f"; failed: {', '.join(failed)}" if failed else ""), "failed" if failed else "done"))
    return results


def stored_self_test(store: Any, tenant: str, why: str, step: Callable[[StepProgress], None],
                     plan_path: str | None = None) -> dict[str, Any]:
    """The self-test not run now (a resumed drill, ``--skip-self-test``): the stored result of
    each case — the ones the prechecks use — said a line each, like a case that just ran, so a
    person still sees which cases passed (a killed drill never printed its own lines).

    ``plan_path``: the run has still to pass the prechecks (``--skip-self-test``). A P0 case without
    a stored passing result blocks them (docs/rehearsal.md): said at once, with how to get one, and
    the step is ``failed``."""
    from engine.drill import selftest
    from engine.flows.selftest_gate import p0_missing

    title = STEP_TITLES["self_test"]
    stored = {c: r for c, r in store.latest_prechecks(tenant, "TC-").items() if c in selftest.CASES}
    for n, case in enumerate(sorted(stored), start=1):
        result = stored[case]
        mark = "PASS" if result.status == "pass" else str(result.status).upper()
        # No time of day: a drill's store keeps its compressed clock, which would read as a wrong hour.
        step(StepProgress("self_test", title, n, len(stored) + 1,
                          f"{case} [{selftest.PRIORITY[case]}] {mark} {selftest.NAMES[case]} (stored result: run "
                          f"earlier by {for_terminal(result.recorded_by) or 'an unnamed actor'})"))
    passed = sum(1 for r in stored.values() if r.status == "pass")
    summary = (f"{why}; stored results: {passed}/{len(stored)} passed" if stored
               else f"{why}; no stored results: the prechecks show the self-test as not run")
    missing = p0_missing(stored) if plan_path is not None else []
    if missing:
        cases = ",".join(c for c, _ in missing)
        summary += (f"; no stored passing result for {', '.join(f'{c} (P0, {s})' for c, s in missing)}: the run "
                    "stops at the prechecks and cannot reach execution until they pass — run the drill without "
                    f"--skip-self-test, or `canary-console self-test --plan {plan_path} --cases {cases}`")
    step(StepProgress("self_test", title, 1, 1, summary, "failed" if missing else "skipped"))
    return stored


def prepare(rows: int, reset: bool, user: str, progress: Callable[[str], None], speed: float = 1.0,
            performance_schema: bool = True, control: bool = False, webhook: str | None = None) -> Prepared:
    """The quick half of the start: a reset done, a killed drill's unfinished run found, the
    servers' ports chosen (or read off the servers a killed drill left running), the plan
    written. Nothing here waits for a server to start or a table to load. Another drill running
    on the same sandbox raises ``DrillBusy`` before anything is touched."""
    base = rehearsal_dir()
    lock = DrillLock(base)
    try:
        return _prepare(base, lock, rows, reset, user, progress, speed, performance_schema, control, webhook)
    except BaseException:
        lock.release()
        raise


def _prepare(base: Path, lock: DrillLock, rows: int, reset: bool, user: str, progress: Callable[[str], None],
             speed: float, performance_schema: bool, control: bool, webhook: str | None) -> Prepared:
    plan_path = base / "canary.toml"
    if reset and base.exists():
        leftovers = MariaDBSandbox(base_dir=base / "servers", replica=True)
        for server in filter(None, (leftovers.primary, leftovers.replica)):
            if server.adopt():  # a killed drill's servers still hold the datadirs
                server.stop()
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    unfinished = None if reset else _unfinished(plan_path)
    sandbox = MariaDBSandbox(base_dir=base / "servers", replica=True, performance_schema=performance_schema,
                             buffer_pool_mb=pool_for_rows(rows))
    adopted = tuple(s.name for s in filter(None, (sandbox.primary, sandbox.replica)) if s.adopt())
    store_url = f"sqlite:///{base / 'store.db'}"
    if unfinished is not None:
        old, run_id, status = unfinished
        progress(f"resuming run {run_id[:8]} of the previous drill (its console was closed or killed): same "
                 "table, same clock; the console takes the run over once its lease runs out (--reset starts over)")
        speed, origin, window = old.time_speed, old.time_origin, old.raw.get("window")
        control = bool(old.change.control_schemas)  # the resumed run keeps its control
    else:
        run_id, status, origin, window = None, None, None, None
        _archive_store(base, progress)
    plan_path.write_text("# Written by `canary-console rehearse` for the private sandbox (a rehearsal only).\n"
                         + toml_dump(plan_data(sandbox, store_url, user, speed, origin, window, control, webhook)))
    return Prepared(sandbox, plan_path, store_url, rows, run_id, adopted, control=control, resumed_status=status,
                    lock=lock)


def start(rows: int, reset: bool, user: str, progress: Callable[[str], None], speed: float = 1.0,
          performance_schema: bool = True, control: bool = False) -> Rehearsal:
    """Start (or, after a crash, resume) the drill. A drill whose run was left unfinished — the
    console killed mid-ALTER or mid-window — takes up the same servers if they are still up
    (an ALTER may still be running on them), the same table, the same clock and the same run."""
    prepared = prepare(rows, reset, user, progress, speed, performance_schema, control)
    return prepared.bring_up(lambda p: progress(p.text))
