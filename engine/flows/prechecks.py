"""The prechecks of runbook 2.1–2.6 (docs/runbook.md#2-prechecks): the catalogue as data, and the checks the console
fills in itself, each with the query it ran and what it found.

Results are ``PrecheckResult`` rows tied to the run (``execution_run_id``); a re-run replaces the
earlier result on screen (the store keeps both). Rows a person fills (the DBA's confirmation of
the prepared rollback, sign-offs) are approvals; the self-test's TC rows are tenant-wide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.adapters import collector_needs, sql
from engine.domain.findings import Finding
from engine.domain.plan import Plan
from engine.domain.roles import roles_and

# the audit entry that carries the gate's band and rows, and the profile it picks (the CLI and the App
# import them from here)
from engine.views.profile import GATE_DECIDED, run_gate, run_profile  # noqa: F401

if TYPE_CHECKING:  # pymysql (via engine.adapters.target) loads when a check runs, not when a screen draws
    from engine.adapters.killswitch import KillSwitchBackend
    from engine.adapters.store import PrecheckResult, Store
    from engine.adapters.target import Target


@dataclass(frozen=True)
class Check:
    id: str
    section: str
    label: str
    expected: str
    blocking: bool = True  # must pass (or be skipped as not configured) before the size gate


SECTIONS = ("Environment (2.2.1)", "Database (2.2.2)", "Kill switch (2.3)", "Rollback (2.4)", "Team (2.5)",
            "Monitoring (4)")

CHECKS: tuple[Check, ...] = (
    Check("env.store", SECTIONS[0], "Store reachable", "read + write"),
    Check("env.kill_switch_api", SECTIONS[0], "Kill-switch backend healthy", "answers < 500 ms"),
    Check("env.target", SECTIONS[0], "MySQL target reachable", "connects"),
    Check("env.prometheus", SECTIONS[0], "Prometheus reachable", "healthy (if configured)"),
    Check("env.webhook", SECTIONS[0], "Alerting webhook reachable", "answers (if configured)", blocking=False),
    Check("db.table_exists", SECTIONS[1], "Target table exists", "a base table"),
    Check("db.row_count", SECTIONS[1], "Row count (estimate)", "the size gate decides"),
    Check("db.index_absent", SECTIONS[1], "Index does not exist", "empty result"),
    Check("db.engine_innodb", SECTIONS[1], "Engine is InnoDB", "InnoDB"),
    Check("db.no_pending_ddl", SECTIONS[1], "No pending DDL", "processlist empty"),
    Check("db.no_long_trx", SECTIONS[1], "No long transaction on the table", "none ≥ 10 s"),
    Check("db.lock_none", SECTIONS[1], "ADD INDEX … LOCK=NONE supported", "InnoDB, plain columns"),
    Check("ks.global_off", SECTIONS[2], "Global kill switch OFF", "is_active = false"),
    Check("ks.connection_off", SECTIONS[2], "Connection kill switch OFF", "is_active = false"),
    # Runbook 2.3.1 rows 3–4 (the global switch), and the same on this plan's connection (the
    # kill-switch test, `k`: it leaves every switch as it found it).
    Check("ks.global_activate", SECTIONS[2], "Can activate global", "active when read back"),
    Check("ks.global_deactivate", SECTIONS[2], "Can deactivate global", "off when read back"),
    Check("ks.activate", SECTIONS[2], "Can activate (connection scope)", "active when read back"),
    Check("ks.deactivate", SECTIONS[2], "Can deactivate (connection scope)", "off when read back"),
    Check("ks.response_time", SECTIONS[2], "Kill-switch response time", "< 500 ms (slowest of the reads)"),
    Check("ks.availability", SECTIONS[2], "Kill-switch API availability", "≥ 99.9 % of reads answered"),
    Check("rb.prepared", SECTIONS[3], "Rollback statement prepared, DBA confirmed", "the DBA confirms"),
    Check("rb.scratch", SECTIONS[3], "Create/verify/drop/verify on a scratch table", "optional", blocking=False),
    Check("team.present", SECTIONS[4], "Required people present", "canary lead, DBA, SRE joined"),
    Check("team.off_peak", SECTIONS[4], "Off-peak window", "now, and 2 h to spare"),
    # What the collectors read (engine/adapters/collector_needs.py): each failure names its fix.
    Check("mon.performance_schema", SECTIONS[5], "performance_schema ON", "ON (my.cnf)", blocking=False),
    Check("mon.consumers", SECTIONS[5], "Statement consumers enabled", "digest + history_long on", blocking=False),
    Check("mon.privileges", SECTIONS[5], "Monitoring user's privileges", "SELECT on performance_schema, PROCESS"),
    Check("mon.replica", SECTIONS[5], "Replica status readable", "SHOW SLAVE STATUS (if configured)"),
    Check("mon.latency_source", SECTIONS[5], "A latency source", "performance_schema or Prometheus"),
)
BY_ID = {c.id: c for c in CHECKS}
AUTO = tuple(c.id for c in CHECKS if c.id.split(".")[0] in ("env", "db", "mon") or c.id in
             ("ks.global_off", "ks.connection_off", "ks.response_time", "ks.availability"))
KILL_TEST = ("ks.global_activate", "ks.global_deactivate", "ks.activate", "ks.deactivate")
PROBE_READS = 10  # the reads the precheck times: the slowest decides the response time (runbook 2.3.1 #5)
REQUIRED_PRESENT = ("canary_lead", "dba", "sre")
EXPECTED_DURATION = timedelta(hours=2)  # runbook 2.5.3


def _timed(check_id: str, query: str | None, fn: Callable[[], tuple[str, str]]) -> Finding:
    from engine.adapters.target import TargetError

    started = time.perf_counter()
    try:
        status, detail = fn()
    except TargetError as exc:
        status, detail = "fail", str(exc)

    return Finding(check_id, status, detail, query, round((time.perf_counter() - started) * 1000, 1))


def one_line(statement: str) -> str:
    return " ".join(statement.split())


def off_peak_finding(plan: Plan, now: datetime) -> Finding:
    """Runbook 2.5.3: inside the window now, and the expected two hours fit before it closes."""
    if not plan.off_peak.contains(now):
        return Finding("team.off_peak", "fail", f"now is outside {plan.off_peak.describe()}: wait for the window")
    if not plan.off_peak.contains(now + EXPECTED_DURATION):
        return Finding("team.off_peak", "warn", f"inside {plan.off_peak.describe()}, but the window closes "
                       "before the expected 2 hours are over")
    local = now + plan.off_peak.utc_offset
    return Finding("team.off_peak", "pass", f"inside {plan.off_peak.describe()}; start {local:%H:%M}, "
                   f"expected end {local + EXPECTED_DURATION:%H:%M}")


def present_finding(present_roles: set[str]) -> Finding:
    missing = [r for r in REQUIRED_PRESENT if r not in present_roles]
    if missing:
        return Finding("team.present", "fail", "waiting for " + roles_and(missing) +
                       " to open the console on this plan")
    return Finding("team.present", "pass", "present: " + roles_and(present_roles))


def auto_checks(plan: Plan, store: Store, backend: KillSwitchBackend, target: Target,
                http_timeout: float = 5.0) -> Iterator[Finding]:
    """The checks the console runs itself, one finding at a time (so the screen fills as they come).

    Blocking I/O: call from a worker thread.
    """
    from engine.adapters.target import TargetError

    schema, table, index = plan.schema, plan.change.table, plan.change.index

    def store_ok() -> tuple[str, str]:
        from engine.adapters.store import PrecheckResult

        store.count_rows(PrecheckResult, plan.tenant)
        return "pass", f"{store.engine.dialect.name} store answers"
    yield _timed("env.store", None, store_ok)

    readings = probe(backend, plan.tenant, plan.connection.id)
    reading = readings[0]
    answered = [r for r in readings if not r.fail_closed]
    slowest = max(readings, key=lambda r: r.response_ms)
    level = {"ok": "pass", "warning": "warn", "critical": "fail"}[slowest.latency_level]
    if reading.fail_closed:
        yield Finding("env.kill_switch_api", "fail", f"{reading.source}: {reading.error}", None, reading.response_ms)
    else:
        yield Finding("env.kill_switch_api", level, f"{reading.source} answered in {reading.response_ms:.0f} ms",
                      None, round(reading.response_ms, 1))
    scopes = reading.scopes
    yield Finding("ks.global_off", "fail" if reading.fail_closed or scopes.get("global") and scopes["global"].active
                  else "pass", reading.describe() if "global" in reading.active_scopes() or reading.fail_closed
                  else "global: off")
    conn_active = bool(scopes.get("connection") and scopes["connection"].active)
    yield Finding("ks.connection_off", "fail" if reading.fail_closed or conn_active else "pass",
                  f"connection {plan.connection.id}: {'ACTIVE' if conn_active else 'off'}")
    times = sorted(r.response_ms for r in readings)
    yield Finding("ks.response_time", level, f"slowest of {len(readings)} reads {slowest.response_ms:.0f} ms "
                  f"({slowest.latency_level}), median {times[len(times) // 2]:.0f} ms", None,
                  round(slowest.response_ms, 1))
    yield availability_finding(len(answered), len(readings), next((r.error for r in readings if r.fail_closed), None))

    try:
        session = target.session("precheck")
    except TargetError as exc:
        yield Finding("env.target", "fail", f"{exc}")
        for cid in ("db.table_exists", "db.row_count", "db.index_absent", "db.engine_innodb",
                    "db.no_pending_ddl", "db.no_long_trx", "db.lock_none", *MONITORING_PRIMARY):
            yield Finding(cid, "fail", "the target is not reachable")
    else:
        with session as s:
            yield _timed("env.target", one_line(sql.SERVER_VERSION),
                         lambda: ("pass", f"{s.server_info().describe()} as {plan.connection.user}"))
            info = s.table_info(schema, table)
            yield Finding("db.table_exists", "pass" if info else "fail",
                          f"{schema}.{table}" + (f" ({info.engine})" if info else " is not a base table here"),
                          one_line(sql.TABLE_INFO))
            if info is not None:
                yield Finding("db.row_count", "pass", f"~{info.estimated_rows:,} rows (TABLE_ROWS estimate), "
                              f"data {info.data_mb} MB, indexes {info.index_mb} MB", one_line(sql.TABLE_INFO))
                yield _timed("db.index_absent", one_line(sql.INDEX_EXISTS), lambda: (
                    ("fail", f"{index} already exists on {table}: this run did not create it and will never "
                     "drop it; choose another index name") if s.index_exists(schema, table, index)
                    else ("pass", f"no index {index}")))
                yield Finding("db.engine_innodb", "pass" if info.engine.lower() == "innodb" else "fail",
                              info.engine, one_line(sql.TABLE_INFO))
                yield _timed("db.no_pending_ddl", one_line(sql.PROCESSLIST_ACTIVE), lambda: _pending(s, schema, table))
                yield _timed("db.no_long_trx", one_line(sql.LONG_TRANSACTIONS),
                             lambda: _long_trx(s, schema, table))
                yield _timed("db.lock_none", one_line(sql.TABLE_COLUMNS), lambda: _lock_none(s, plan, info.engine))
            else:
                for cid in ("db.row_count", "db.index_absent", "db.engine_innodb", "db.no_pending_ddl",
                            "db.no_long_trx", "db.lock_none"):
                    yield Finding(cid, "fail", f"{schema}.{table} does not exist")
            yield from _collector_needs(s, plan)
    if plan.replica is not None:
        yield collector_needs.replica_finding(plan.replica)
    else:
        yield Finding("mon.replica", "skip", "no [replica] in the plan: replication lag is not monitored")

    yield _http_check("env.prometheus", plan.prometheus_url, "/-/healthy", http_timeout)
    yield _http_check("env.webhook", plan.webhook_url, None, http_timeout)


MONITORING_PRIMARY = ("mon.performance_schema", "mon.consumers", "mon.privileges", "mon.latency_source")


def _collector_needs(s: Any, plan: Plan) -> Iterator[Finding]:
    from engine.adapters.target import TargetError

    started = time.perf_counter()
    try:
        facts = collector_needs.read_facts(s, s.server_info().flavour)
    except TargetError as exc:
        for cid in MONITORING_PRIMARY:
            yield Finding(cid, "fail", f"could not be checked: {exc}")
        return
    ms = round((time.perf_counter() - started) * 1000, 1)
    for finding in collector_needs.findings(facts, plan):
        yield replace(finding, duration_ms=ms)


def _pending(s: Any, schema: str, table: str) -> tuple[str, str]:
    rows = s.pending_ddl(schema, table)
    if not rows:
        return "pass", "no DDL on the table in the processlist"
    return "fail", "; ".join(f"thread {r['id']}: {one_line(r.get('info') or '')[:80]}" for r in rows[:3])


def _long_trx(s: Any, schema: str, table: str) -> tuple[str, str]:
    rows = s.long_transactions_on_table(schema, table, older_than_s=10)
    if not rows:
        return "pass", "none open ≥ 10 s holding the table"
    return "fail", "; ".join(f"thread {r['thread_id']} ({r.get('user') or '?'}) open {r.get('age_s')} s"
                             for r in rows[:3]) + ": they would block the ALTER's metadata lock"


FULLTEXT_TYPES = {"text", "tinytext", "mediumtext", "longtext", "blob", "tinyblob", "mediumblob", "longblob"}
UNINDEXABLE_INPLACE = {"geometry", "point", "linestring", "polygon", "json"}


def _lock_none(s: Any, plan: Plan, engine: str) -> tuple[str, str]:
    """What the server will say to LOCK=NONE, known before asking it: InnoDB builds a secondary index
    in place without a lock unless a column needs a spatial or full-text index; BLOB/TEXT need a
    prefix. The ALTER itself is still refused cleanly if the server disagrees (never a fallback)."""
    if engine.lower() != "innodb":
        return "fail", f"{engine} cannot add an index with LOCK=NONE"
    types = {c["name"].lower(): c["data_type"].lower() for c in s.columns(plan.schema, plan.change.table)}
    problems = []
    for col in plan.change.columns:
        t = types.get(col.name.lower())
        if t is None:
            problems.append(f"column {col.name} does not exist")
        elif t in UNINDEXABLE_INPLACE:
            problems.append(f"column {col.name} is {t}")
        elif t in FULLTEXT_TYPES and not col.prefix:
            problems.append(f"column {col.name} is {t} and needs a prefix length")
    if problems:
        return "fail", "; ".join(problems)
    return "pass", "InnoDB; " + ", ".join(f"{c.name} {types[c.name.lower()]}" for c in plan.change.columns)


def _http_check(check_id: str, url: str | None, path: str | None, timeout: float) -> Finding:
    if not url:
        return Finding(check_id, "skip", "not configured in the plan")
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc}"  # a webhook's path is its secret: never shown

    def probe() -> tuple[str, str]:
        import httpx

        target = url.rstrip("/") + path if path else url
        try:
            response = httpx.get(target, timeout=timeout) if path else httpx.head(target, timeout=timeout)
        except httpx.HTTPError as exc:
            return "fail", f"{shown}: unreachable ({exc.__class__.__name__})"
        if path and response.status_code != 200:
            return "fail", f"{shown} answered HTTP {response.status_code}"
        return "pass", f"{shown} answered HTTP {response.status_code}"
    return _timed(check_id, None, probe)


def probe(backend: KillSwitchBackend, tenant: str, connection_id: str, n: int = PROBE_READS) -> list[Any]:
    """``n`` reads of the switch, back to back: the response time and the availability of runbook
    2.3.1 #5 and 4.4 from more than one answer. Blocking I/O."""
    return [backend.read(tenant, connection_id) for _ in range(n)]


def availability_finding(answered: int, reads: int, error: str | None = None) -> Finding:
    """Runbook 4.4: availability < 99.9 % is a warning, < 99 % critical (abort before execution).
    The same lines as the dashboard's ``killswitch_availability`` (engine/domain/thresholds.py)."""
    from engine.domain.thresholds import DEFAULT_RULES, evaluate_band

    rule = next(r for r in DEFAULT_RULES if r.key == "killswitch_availability")
    pct = 100.0 * answered / reads if reads else 0.0
    band = evaluate_band(rule, pct)
    status = {"critical": "fail", "warning": "warn"}.get(band.level, "pass")
    detail = f"{answered}/{reads} reads answered ({pct:.1f} %)"
    if error:
        detail += f"; a failed read: {error}"
    return Finding("ks.availability", status, detail)


def kill_switch_test(plan: Plan, backend: KillSwitchBackend, actor: str, store: Store | None = None,
                     run_id: str | None = None) -> list[Finding]:
    """Runbook 2.3.1 rows 3–4: activate the **global** switch, read it back, deactivate it, read it
    back; then the same on this plan's connection scope — each timed (< 500 ms). Only before the
    ALTER (the caller checks the run is scheduled). Blocking I/O.

    It leaves every switch as it found it: a scope already active is not touched (its row says
    so), and whatever happens half-way, each scope the test turned on is turned off again. The
    global scope stops every run the switch reaches: with ``store``, it is tested only while this
    run holds the store's one canary lock (no other run can be stopped by it). With ``store`` the
    test is audited (``kill_switch_test``: each row, the states before and after)."""
    tenant, conn = plan.tenant, plan.connection.id
    before = backend.read(tenant, conn)
    was = {s: bool(before.scopes.get(s) and before.scopes[s].active) for s in ("global", "connection")}
    out: list[Finding] = []
    turned_on: list[str] = []

    def timed_set(scope: str, active: bool, check_id: str, word: str) -> None:
        started = time.perf_counter()
        try:
            if active:
                turned_on.append(scope)
            backend.set(tenant, scope, active, actor, f"precheck: can {word} {scope} (runbook 2.3.1)", conn)
            if not active:
                turned_on.remove(scope)
        except Exception as exc:  # noqa: BLE001 - a refusal or an outage is the finding
            ms = (time.perf_counter() - started) * 1000
            out.append(Finding(check_id, "fail", f"could not {word} {scope}: {str(exc).splitlines()[0][:200]}",
                               None, round(ms, 1)))
            return
        reading = backend.read(tenant, conn)
        ms = (time.perf_counter() - started) * 1000
        now_on = bool(reading.scopes.get(scope) and reading.scopes[scope].active)
        ok = not reading.fail_closed and now_on == active
        slow = ms >= 500
        status = "fail" if not ok else ("warn" if slow else "pass")
        shown = reading.describe() if active else f"{scope} {'ACTIVE' if now_on else 'off'}"
        out.append(Finding(check_id, status, f"set + read back in {ms:.0f} ms"
                           + (" (≥ 500 ms)" if slow else "") + f": {shown}", None, round(ms, 1)))

    for scope, on_id, off_id in (("global", "ks.global_activate", "ks.global_deactivate"),
                                 ("connection", "ks.activate", "ks.deactivate")):
        why_not = None
        if before.fail_closed:
            why_not = f"the switch cannot be read ({before.error}): nothing tested"
        elif was[scope]:
            st = before.scopes[scope]
            why_not = (f"{scope} is already ACTIVE (by {st.set_by or '?'}{': ' + st.reason if st.reason else ''}): "
                       "the test never turns off a switch it did not turn on — deactivate it (F8) first")
        elif scope == "global" and store is not None:
            holder = store.lock_holder()
            if holder is not None and holder.execution_run_id != run_id:
                why_not = (f"another run ({holder.execution_run_id[:8]} of tenant {holder.holder_tenant_id}) holds "
                           "the store's canary lock: the global switch would stop it")
        if why_not is not None:
            out += [Finding(on_id, "fail", why_not), Finding(off_id, "fail", why_not)]
            continue
        try:
            timed_set(scope, True, on_id, "activate")
        finally:
            if scope in turned_on:  # on, or perhaps on: put it back off, whatever happened
                timed_set(scope, False, off_id, "deactivate")
            elif not any(f.check_id == off_id for f in out):
                out.append(Finding(off_id, "fail", f"not tried: {scope} could not be activated"))
    after = backend.read(tenant, conn)
    left = {s: bool(after.scopes.get(s) and after.scopes[s].active) for s in ("global", "connection")}
    if store is not None:
        store.audit(tenant, actor, "kill_switch_test", run_id, {
            "before": was, "after": left, "source": before.source,
            "rows": {f.check_id: {"status": f.status, "ms": f.duration_ms, "detail": f.detail} for f in out}})
    changed = [s for s in left if left[s] != was[s]]
    if changed and not after.fail_closed:
        out.append(Finding("ks.global_deactivate" if "global" in changed else "ks.deactivate", "fail",
                           "the switches are not as the test found them: " + ", ".join(
                               f"{s} {'ACTIVE' if left[s] else 'off'} (was {'ACTIVE' if was[s] else 'off'})"
                               for s in changed) + " — check them (F8 / F9) now"))
    return out


def scratch_table(run_id: str) -> str:
    """The empty copy the scratch-table test works on (engine.adapters.sql.drop_table drops only these)."""
    return f"_canary_scratch_{run_id.replace('-', '')[:8]}"


def scratch_rollback_test(plan: Plan, target: Target, run_id: str, store: Store | None = None,
                          actor: str = "") -> Finding:
    """Runbook 2.4.1 on an empty copy of the table (``CREATE TABLE … LIKE``): add the index with
    LOCK=NONE, see it, set it IGNORED / INVISIBLE and back (where the server has it), drop it, see it
    gone, drop the copy. Proves the statements on this server and times the rollback's two rungs:
    with ``store`` the timings are audited (``rollback_timings``), for the rollback's ETA
    (engine/domain/rollback_eta.py)."""
    scratch = scratch_table(run_id)
    schema, index = plan.schema, plan.change.index
    cols = [(c.name, c.prefix) for c in plan.change.columns]
    timings: dict[str, float] = {}

    def timed(key: str, statement: str, s: Any) -> None:
        started = time.perf_counter()
        s.execute(statement)
        timings[key] = round((time.perf_counter() - started) * 1000, 1)

    def run() -> tuple[str, str]:
        with target.session("precheck") as s:
            server = s.server_info()
            s.execute(sql.create_table_like(schema, scratch, plan.change.table))
            try:
                timed("add_ms", sql.add_index(schema, scratch, index, cols, run_id), s)
                added = s.index_exists(schema, scratch, index)
                if server.supports_ignored_index:
                    timed("ignore_ms", sql.ignore_index(schema, scratch, index, server.flavour), s)
                    s.execute(sql.ignore_index(schema, scratch, index, server.flavour, undo=True))
                timed("drop_ms", sql.drop_index(schema, scratch, index), s)
                gone = not s.index_exists(schema, scratch, index)
            finally:
                s.execute(sql.drop_table(schema, scratch))
        took = ", ".join(f"{k[:-3].upper()} {v:.0f} ms" for k, v in timings.items())
        if added and gone:
            return "pass", (f"on {schema}.{scratch}: ADD INDEX … LOCK=NONE ok, 1 row, DROP ok, 0 rows; copy dropped "
                            f"({took})")
        return "fail", f"on {schema}.{scratch}: added={added} gone={gone}"
    finding = _timed("rb.scratch", "CREATE TABLE … LIKE; ALTER … ADD INDEX; SHOW INDEX; ALTER INDEX … IGNORED "
                     "(and back); ALTER … DROP INDEX; SHOW INDEX; DROP TABLE", run)
    if store is not None and finding.status == "pass":
        store.audit(plan.tenant, actor, "rollback_timings", run_id, {"scratch": scratch, **timings})
    return finding


def record(store: Store, plan: Plan, run_id: str, finding: Finding, actor: str, source: str = "console") -> PrecheckResult:
    from engine.adapters.store import PrecheckResult

    return store.save_precheck(PrecheckResult(
        tenant_id=plan.tenant, execution_run_id=run_id, check_id=finding.check_id, status=finding.status,
        detail=finding.detail[:2000], query=finding.query, duration_ms=finding.duration_ms, source=source,
        recorded_by=actor, recorded_at=store.now(),
    ))




def record_gate(store: Store, plan: Plan, run_id: str, decision: Any, actor: str, source: str = "console") -> None:
    """The size gate's decision on the run (``engine.domain.sizegate.GateDecision``): its precheck row and
    an audit entry with the band and the rows, which pick the run's sampling interval and threshold
    profile for every console, the CLI and a replay (``run_profile``)."""
    status = {"PASS": "pass", "WARNING": "warn", "BLOCK": "fail"}[decision.band]
    record(store, plan, run_id, Finding("gate.size", status, decision.rule, one_line(sql.TABLE_INFO)), actor, source)
    store.audit(plan.tenant, actor, GATE_DECIDED, run_id,
                {"band": decision.band, "rows": decision.rows, "exact": decision.exact, "rule": decision.rule})


def headless_gate(plan: Plan, store: Store, backend: KillSwitchBackend, target: Target, run_id: str, actor: str,
                  say: Callable[[str], None]) -> list[str]:
    """The prechecks a headless drill walks before it executes (no person at a console): the checks
    the console runs and the kill-switch test, recorded and printed, and what blocks the run — a
    failed monitoring-source or kill-switch check, a P0 case without a stored passing result (failed or not
    run), a failed P1 case not acknowledged by the canary lead and the DBA.
    Blocking I/O."""
    from engine.flows import selftest_gate

    blockers = []
    # The checks the console runs, and the kill-switch test of runbook 2.3.1 (global and connection).
    # A drill also walks the scratch-table rollback test (runbook 2.4.1): it proves the rungs on the
    # sandbox and times them for the rollback's ETA (docs/rollback.md#the-eta).
    extra = [scratch_rollback_test(plan, target, run_id, store, actor)] if plan.rehearsal else []
    for finding in [*auto_checks(plan, store, backend, target), *kill_switch_test(plan, backend, actor, store, run_id),
                    *extra]:
        record(store, plan, run_id, finding, actor, source="headless")
        if finding.status != "pass":
            say(f"  precheck {finding.check_id} {finding.status}: {finding.detail}")
        if finding.check_id.split(".")[0] in ("mon", "ks") and BY_ID[finding.check_id].blocking \
                and finding.status == "fail":
            blockers.append(f"{BY_ID[finding.check_id].label}: {finding.detail}")
    tests = store.latest_prechecks(plan.tenant, "TC-")
    # A P0 case not run blocks as one that failed (the console's rule: engine/flows/runbook.py).
    blockers += [f"{c} (P0) failed: {tests[c].detail}" if status == "fail" else
                 f"{c} (P0) {status}: no stored passing result — {selftest_gate.P0_HOW}"
                 for c, status in selftest_gate.p0_missing(tests)]
    blockers += [f"{what} — {who}" for what, who in
                 selftest_gate.missing(tests, store.run_approvals(plan.tenant, run_id))]
    return blockers
