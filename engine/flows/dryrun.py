"""A dry run (docs/dry-run.md): every check against the real target, read-only, and the exact SQL
each step of the canary would send — the ALTER, the kill switch's KILL QUERY, the rollback ladder,
the monitoring and verification queries — with nothing that writes sent.

The statements shown are built here by the same builders the executor, the kill switch, the
collectors and the rollback use (``engine.adapters.sql``, ``engine.adapters.collectors``, ``engine.adapters.digests``,
``engine.adapters.collector_needs``), never copies. The checks that only read run for real, through the
prechecks' own code, on a target whose sessions refuse anything but SELECT/SHOW/EXPLAIN (and whose
transactions the server is told are read-only); a write a check would try (turning on the
metadata-lock instrument) is listed as withheld, not sent. ``dry_run`` returns plain data; the
CLI prints it (``lines``) and the console shows it.

Blocking I/O: call from a worker thread.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.adapters import collector_needs, collectors, digests, sql
from engine.adapters.target import INTEGER_TYPES, Target, TargetError, TargetSession
from engine.domain.plan import Plan
from engine.domain.roles import may, needed, role_words
from engine.domain.sizegate import GateDecision, gate
from engine.flows import prechecks

if TYPE_CHECKING:
    from engine.adapters.killswitch import KillSwitchBackend
    from engine.adapters.store import Store

READ_ONLY_START = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(SELECT|SHOW|EXPLAIN)\b", re.I | re.S)
SET_READ_ONLY = "SET /* canary-console:dry-run */ SESSION TRANSACTION READ ONLY"


class Placeholder(str):
    """A value the dry run cannot know (the ALTER's thread id): shown as it is, never quoted."""


ALTER_THREAD = Placeholder("<the ALTER's thread id>")
DIGESTS = Placeholder("<the table's digests>")


class DryRunRefused(PermissionError):
    """The person may not make a dry run of this plan (not named in it)."""


@dataclass(frozen=True)
class Statement:
    """One statement (or, with ``sql`` empty, one step that is not SQL) of the canary."""

    section: str  # Prechecks | Size gate | Execution | Kill switch | Monitoring | Verification | Rollback
    label: str
    sql: str
    writes: bool  # would change the server (or the kill switch): never sent by a dry run
    ran: bool  # sent now, read-only, and what it found is in ``result``
    result: str = ""
    note: str = ""


@dataclass(frozen=True)
class DryRun:
    id: str  # this dry run's id, in the ALTER's tag as a run's id would be
    target: str  # schema.table on user@host:port/db — never a password
    server: str
    findings: tuple[prechecks.Finding, ...]
    gate: GateDecision | None
    statements: tuple[Statement, ...]
    withheld: tuple[str, ...]  # writes a read-only check tried, refused here and never sent

    @property
    def blockers(self) -> list[prechecks.Finding]:
        """Failed checks that would stop the canary (as the prechecks screen blocks on them)."""
        return [f for f in self.findings if f.status == "fail" and prechecks.BY_ID[f.check_id].blocking]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "target": self.target, "server": self.server,
                "findings": [f.__dict__ for f in self.findings],
                "gate": None if self.gate is None else self.gate.__dict__,
                "statements": [s.__dict__ for s in self.statements], "withheld": list(self.withheld),
                "blockers": [f.check_id for f in self.blockers]}


def render(statement: str, params: Sequence[Any] | None = None) -> str:
    """The statement as the server receives it, on one line: parameters escaped as the client
    escapes them (a placeholder such as the ALTER's thread id is shown as is)."""
    if params is None:
        return prechecks.one_line(statement)
    from pymysql.converters import escape_item

    values = tuple(str(p) if isinstance(p, Placeholder) else escape_item(p, "utf8mb4") for p in params)
    return prechecks.one_line(statement % values)


class ReadOnlySession(TargetSession):
    """A target session that sends only SELECT, SHOW and EXPLAIN; anything else is recorded in
    ``withheld`` and refused with a TargetError (the callers' own error path)."""

    def __init__(self, profile: Any, purpose: str, withheld: list[str], read_timeout: float | None = 30):
        super().__init__(profile, purpose, read_timeout=read_timeout)
        self.withheld = withheld
        try:  # the server's own guard for data statements, on top of ours
            super().execute(SET_READ_ONLY)
        except TargetError:
            pass

    def _refuse(self, statement: str, params: Any) -> None:
        shown = render(statement, params) if params is not None else prechecks.one_line(statement)
        if shown not in self.withheld:
            self.withheld.append(shown)
        raise TargetError(f"not sent in a dry run: {shown}", "dry_run")

    def query(self, statement: str, params: Any = None) -> list[dict[str, Any]]:
        if not READ_ONLY_START.match(statement):
            self._refuse(statement, params)
        return super().query(statement, params)

    def execute(self, statement: str, params: Any = None) -> int:
        self._refuse(statement, params)
        return 0


class ReadOnlyTarget(Target):
    def __init__(self, profile: Any):
        super().__init__(profile)
        self.withheld: list[str] = []

    def session(self, purpose: str = "main", read_timeout: float | None = 30) -> TargetSession:
        return ReadOnlySession(self.profile, f"dry-run-{purpose}", self.withheld, read_timeout=read_timeout)


def describe_target(plan: Plan) -> str:
    return f"{plan.schema}.{plan.change.table} on {plan.connection.describe()}"


def dry_run(plan: Plan, store: Store, backend: KillSwitchBackend, actor: str, roles: Sequence[str],
            target: Target | None = None, say: Callable[[str], None] | None = None) -> DryRun:
    """Walk the canary read-only (the one engine function the CLI and the console call): the
    checks for real, every statement listed; audited as ``dry_run``."""
    if not may("dry_run", roles):
        store.audit(plan.tenant, actor, "dry_run_refused", None, {"target": describe_target(plan),
                                                                  "roles": list(roles)})
        raise DryRunRefused(f"a dry run needs a role in the plan ({role_words(needed('dry_run'))}); "
                            f"{actor} has none in {plan.source}: add them to [[people]]")
    ro = ReadOnlyTarget(target.profile if target is not None else plan.connection)
    run_id = str(uuid.uuid4())
    findings = []
    for finding in prechecks.auto_checks(plan, store, backend, ro):
        findings.append(finding)
        if say is not None:
            say(f"{finding.check_id} {finding.status}")
    facts = _facts(plan, ro, run_id)
    result = DryRun(run_id, describe_target(plan), facts.get("server", "not reachable"), tuple(findings),
                    facts.get("gate"), tuple(statements(plan, run_id, facts, backend)), tuple(ro.withheld))
    store.audit(plan.tenant, actor, "dry_run", None, {
        "dry_run_id": run_id, "target": result.target, "connection": plan.connection.id,
        "index": plan.change.index, "server": result.server,
        "checks": {s: sum(1 for f in findings if f.status == s) for s in ("pass", "warn", "fail", "skip")},
        "blockers": [f.check_id for f in result.blockers], "gate": result.gate.band if result.gate else None,
        "statements": len(result.statements), "withheld": list(ro.withheld), "written": "nothing"})
    return result


def _facts(plan: Plan, target: ReadOnlyTarget, run_id: str) -> dict[str, Any]:
    """What the statements need from the server, read (read-only) once: the flavour, the size
    estimate, the primary key, the rollback point's SHOW CREATE TABLE, the digests, the EXPLAINs,
    one monitoring tick."""
    from engine.flows.digest_check import explain

    schema, table = plan.schema, plan.change.table
    out: dict[str, Any] = {}
    try:
        with target.session("facts") as s:
            server = s.server_info()
            out.update(server=server.describe(), flavour=server.flavour, ignored=server.supports_ignored_index)
            info = s.table_info(schema, table)
            if info is None:
                return out
            out["gate"] = gate(info.estimated_rows)
            out["pk"] = s.primary_key(schema, table)
            out["pk_types"] = {c["name"]: str(c["data_type"]).lower() for c in s.columns(schema, table)}
            out["show_create"] = _try(lambda: s.show_create_table(schema, table).splitlines()[0] + " …")
            out["indexes"] = _try(lambda: ", ".join(i.name for i in s.indexes(schema, table)) or "none")
            out["digests"] = _try(lambda: f"{len(digests.snapshot(s, schema, table, plan.change.query_digests))} "
                                  "digest(s) of the table")
            out["explain"] = _try(lambda: "; ".join(
                f"key {p.key or 'none'} ({p.access or '?'})" if p.error is None else f"error: {p.error}"
                for p in explain(s, table, plan.change.sample_queries)) or "no sample queries")
            out["tick"] = _try(lambda: f"{len(s.query(collectors.TICK, collectors.tick_params(schema, table)))} row(s)")
            out["alter_now"] = _try(lambda: "none of this dry run's (as expected)" if s.find_alter(run_id) is None
                                    else "found")
    except TargetError as exc:
        out.setdefault("server", f"not reachable: {exc}")
    return out


def _try(read: Callable[[], str]) -> str:
    try:
        return read()
    except TargetError as exc:
        return f"could not be read: {exc}"


def statements(plan: Plan, run_id: str, facts: dict[str, Any], backend: Any = None) -> list[Statement]:
    """Every statement of the canary, in runbook order (pure, over what ``_facts`` read)."""
    schema, table, index = plan.schema, plan.change.table, plan.change.index
    cols = [(c.name, c.prefix) for c in plan.change.columns]
    flavour = facts.get("flavour", "mariadb")
    lwt = plan.executor.lock_wait_timeout
    conn = plan.connection.id
    out: list[Statement] = []

    def add(section: str, label: str, statement: str, writes: bool, ran: bool = False, result: str = "",
            note: str = "") -> None:
        out.append(Statement(section, label, statement, writes, ran, result, note))

    # --- prechecks that write: listed, never run --------------------------------------------------
    add("Prechecks", "kill-switch test (k): activate the connection scope, read it back", "", True,
        note=f"connection {conn} on {getattr(backend, 'source', 'the kill-switch backend')}; not run")
    add("Prechecks", "kill-switch test (k): deactivate it, read it back", "", True, note="not run")
    scratch = prechecks.scratch_table(run_id)
    add("Prechecks", "scratch-table test (x): an empty copy", render(sql.create_table_like(schema, scratch, table)), True)
    add("Prechecks", "scratch-table test (x): the index on the copy", sql.add_index(schema, scratch, index, cols, run_id),
        True)
    add("Prechecks", "scratch-table test (x): see it", render(sql.INDEX_EXISTS, (schema, scratch, index)), False)
    add("Prechecks", "scratch-table test (x): drop it", sql.drop_index(schema, scratch, index), True)
    add("Prechecks", "scratch-table test (x): drop the copy", sql.drop_table(schema, scratch), True)

    # --- size gate --------------------------------------------------------------------------------
    g: GateDecision | None = facts.get("gate")
    add("Size gate", "the estimate", render(sql.TABLE_INFO, (schema, table)), False, ran=g is not None,
        result=g.rule if g else "table not found")
    pk = facts.get("pk") or []
    integer_pk = len(pk) == 1 and facts.get("pk_types", {}).get(pk[0]) in INTEGER_TYPES
    when = ("needed: the estimate is near a boundary" if g and g.needs_exact_count
            else "only when the estimate is within 25 % of a boundary")
    if integer_pk:
        add("Size gate", "exact count: the key's range", render(sql.pk_range(schema, table, pk[0])), False,
            note=f"{when}; a heavy read, not run in a dry run")
        add("Size gate", "exact count: one chunk (repeated)", render(sql.count_pk_range(schema, table, pk[0]),
                                                                     (Placeholder("<from>"), Placeholder("<to>"))),
            False, note=when)
    else:
        add("Size gate", "exact count", render(sql.count_all(schema, table)), False,
            note=f"{when}; a heavy read, not run in a dry run")

    # --- execution --------------------------------------------------------------------------------
    reached = "flavour" in facts  # the server answered the dry run
    add("Execution", "target check: the index is not there", render(sql.INDEX_EXISTS, (schema, table, index)), False,
        ran=g is not None, note="db.index_absent above")
    add("Execution", "latency source", prechecks.one_line(collector_needs.PERFORMANCE_SCHEMA_ON), False, ran=reached,
        note="mon.* above")
    add("Execution", "rollback point", render(sql.show_create_table(schema, table)), False, ran="show_create" in facts,
        result=facts.get("show_create", ""))
    add("Execution", "rollback point: the indexes", render(sql.TABLE_INDEXES, (schema, table)), False,
        ran="indexes" in facts, result=facts.get("indexes", ""))
    digest_sql = (render(digests.DIGESTS_BY_ID.format(placeholders=", ".join(["%s"] * len(plan.change.query_digests))),
                         (schema, *plan.change.query_digests)) if plan.change.query_digests else
                  render(digests.DIGESTS_FOR_TABLE, (schema, digests.table_like(table))))
    add("Execution", "baseline: the table's digests", digest_sql, False, ran="digests" in facts,
        result=facts.get("digests", ""))
    for q in plan.change.sample_queries:
        from engine.flows.digest_check import EXPLAIN_PREFIX

        add("Execution", "baseline: EXPLAIN a sample query", prechecks.one_line(EXPLAIN_PREFIX + q), False,
            ran="explain" in facts, result=facts.get("explain", ""))
    add("Execution", "the ALTER's session: metadata-lock wait", render(sql.SET_LOCK_WAIT_TIMEOUT, (lwt,)), False,
        note="a session setting on the ALTER's own connection")
    add("Execution", "the ALTER", sql.add_index(schema, table, index, cols, run_id), True,
        note=f"run={run_id} is this dry run's id; a run carries its own")
    add("Execution", "progress (while it runs)", render(sql.ALTER_STAGE, (ALTER_THREAD,)), False)
    add("Execution", "metadata-lock guard (while it runs)", render(sql.TABLE_METADATA_LOCKS, (schema, table)), False)
    add("Execution", "turn on the metadata-lock instrument (if off and allowed)",
        prechecks.one_line(sql.ENABLE_MDL_INSTRUMENT), True)
    add("Execution", "verify: the index is there", render(sql.INDEX_EXISTS, (schema, table, index)), False)

    # --- kill switch ------------------------------------------------------------------------------
    add("Kill switch", "find the ALTER by its tag " + sql.alter_tag(run_id), render(sql.PROCESSLIST_ACTIVE), False,
        ran="alter_now" in facts, result=facts.get("alter_now", ""))
    add("Kill switch", "kill it (F9, `canary-console kill`)", render(sql.KILL_QUERY, (ALTER_THREAD,)), True)
    add("Kill switch", "verify: the index is absent", render(sql.INDEX_EXISTS, (schema, table, index)), False)

    # --- monitoring -------------------------------------------------------------------------------
    tick = collectors.TICK_COUNTERS_MARIADB if flavour == "mariadb" else collectors.TICK_COUNTERS_MYSQL
    add("Monitoring", "each tick (the status counters every 5 s)", render(tick, collectors.tick_params(schema, table)),
        False, ran="tick" in facts, result=facts.get("tick", ""), note="run once now without the counters")
    if flavour == "mariadb":
        schemas = (schema, *plan.change.control_schemas)  # the control's read rides along (docs/verdict.md)
        add("Monitoring", "latency percentiles (every 5-30 s)" + (", the control's too" if len(schemas) > 1 else ""),
            render(collectors.HISTORY_LONG.format(schemas=", ".join(["%s"] * len(schemas)), placeholders="%s"),
                   (*schemas, Placeholder("<end of the last read>"), DIGESTS, collectors.OWN_STATEMENTS)), False)
        add("Monitoring", "the history_long consumer", prechecks.one_line(collectors.HISTORY_LONG_CONSUMER), False)
        add("Monitoring", "turn the consumer on (if off)", prechecks.one_line(collectors.ENABLE_HISTORY_LONG), True)
        lock_waits = render(collectors.LOCK_WAITS_MARIADB, (schema, table, sql.qualified(schema, table)))
    else:
        schemas = (schema, *plan.change.control_schemas)
        add("Monitoring", "latency percentiles", render(
            collectors.HISTOGRAM_BY_DIGEST.format(schemas=", ".join(["%s"] * len(schemas)), placeholders="%s"),
            (schema, *schemas, DIGESTS, schema)), False)
        lock_waits = render(collectors.LOCK_WAITS_MYSQL, (schema, table, schema, table))
    add("Monitoring", "lock waits (when a session waits or runs ≥ 1 s)", lock_waits, False)
    add("Monitoring", "max connections (every 60 s)", prechecks.one_line(collectors.MAX_CONNECTIONS), False)
    if plan.replica is not None:
        add("Monitoring", "replication lag (the replica)", prechecks.one_line(collector_needs.REPLICA_STATUS), False,
            ran=True, note="mon.replica above")

    # --- verification -----------------------------------------------------------------------------
    add("Verification", "the table's digests at the window's start and end", digest_sql, False)
    for q in plan.change.sample_queries:
        from engine.flows.digest_check import EXPLAIN_PREFIX

        add("Verification", "EXPLAIN after: is the index used", prechecks.one_line(EXPLAIN_PREFIX + q), False)

    # --- rollback ladder --------------------------------------------------------------------------
    ladder = sql.rollback_ladder(schema, table, index, flavour, bool(facts.get("ignored", True)))
    for rung in ladder:
        if rung["rung"] == "ignore":
            verify = sql.INDEX_IGNORED_MARIADB if flavour == "mariadb" else sql.INDEX_INVISIBLE_MYSQL
            add("Rollback", "rung 1: ignore (instant, reversible)", str(rung["sql"]), True)
            add("Rollback", "rung 1: verify", render(verify, (schema, table, index)), False,
                note="for the DBA: " + sql.ignored_index_query(schema, table, index, flavour))
            add("Rollback", "rung 1: undo", str(rung["undo_sql"]), True)
        else:
            add("Rollback", "rung 2: the session's metadata-lock wait", render(sql.SET_LOCK_WAIT_TIMEOUT, (lwt,)), False)
            add("Rollback", "rung 2: DROP INDEX (not reversible)", str(rung["sql"]), True)
            add("Rollback", "rung 2: verify", render(sql.INDEX_EXISTS, (schema, table, index)), False,
                note="for the DBA: " + str(rung["verify_sql"]))
    return out


def lines(result: DryRun) -> list[str]:
    """The dry run as text (the CLI prints it; the console shows it)."""
    out = [f"DRY RUN {result.id} — {result.target}", f"server: {result.server}",
           "nothing that writes is sent; ✓ ran now (read-only), → would run", ""]
    out.append("Checks (read-only, run now)")
    for f in result.findings:
        out.append(f"  {f.status.upper():5} {f.check_id}: {f.detail}")
        if f.query:
            out.append(f"      {f.query}")
    if result.gate is not None:
        out.append(f"  size gate: {result.gate.band} — {result.gate.rule}")
    section = None
    for s in result.statements:
        if s.section != section:
            section = s.section
            out += ["", section]
        mark = "✓" if s.ran else "→"
        tag = " [writes: not sent]" if s.writes else ""
        out.append(f"  {mark} {s.label}{tag}")
        if s.sql:
            out.append(f"      {s.sql}")
        for extra in (s.result, s.note):
            if extra:
                out.append(f"      ({extra})")
    if result.withheld:
        out += ["", "Withheld (a check would have written; not sent)"] + [f"  {w}" for w in result.withheld]
    blockers = result.blockers
    out += ["", f"{len(blockers)} check(s) would block the canary" + (": " + ", ".join(f.check_id for f in blockers)
                                                                    if blockers else "")]
    return out
