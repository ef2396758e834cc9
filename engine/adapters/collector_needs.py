"""What the collectors need from the target, checked before the canary (docs/monitoring-sources.md).

A production MariaDB ships with ``performance_schema=OFF``, and a monitoring user is often given
less than the collectors read. Each need is checked by reading what the collector would read, and
a need that is not met names its fix: the my.cnf line and the restart, the exact UPDATE, the exact
GRANT. ``read_facts`` is the I/O (one session, a few small statements); ``findings`` and
``latency_problem`` are plain functions over the facts; ``access_words`` turns a refused read
into the sentence a collector shows instead of the server's error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.adapters.target import TargetSession
    from engine.domain.findings import Finding
    from engine.domain.plan import ConnectionProfile, Plan

PERFORMANCE_SCHEMA_ON = "SELECT /* canary-console:precheck */ @@GLOBAL.performance_schema AS ps, CURRENT_USER() AS account"
CONSUMERS = "SELECT /* canary-console:precheck */ NAME AS name, ENABLED AS enabled FROM performance_schema.setup_consumers"
READ_DIGESTS = ("SELECT /* canary-console:precheck */ COUNT(*) AS n FROM "
                "(SELECT 1 FROM performance_schema.events_statements_summary_by_digest LIMIT 1) x")
READ_TRX = "SELECT /* canary-console:precheck */ COUNT(*) AS n FROM information_schema.INNODB_TRX"
REPLICA_STATUS = "SHOW /* canary-console:precheck */ REPLICA STATUS"  # MariaDB ≥ 10.5, MySQL ≥ 8.0.22
SLAVE_STATUS = "SHOW /* canary-console:precheck */ SLAVE STATUS"  # older servers (MySQL 8.4 has only REPLICA)

# The consumers the collectors read through: digests (every tick, and the verification) need the
# first three; MariaDB's latency percentiles come from the history_long ring (MySQL 8 reads the
# digest histograms instead).
CONSUMERS_ALL = ("global_instrumentation", "thread_instrumentation", "statements_digest")
CONSUMERS_MARIADB = ("events_statements_current", "events_statements_history_long")
REPLICA_COLUMNS = (("Seconds_Behind_Master", "Seconds_Behind_Source"), ("Slave_SQL_Running", "Replica_SQL_Running"),
                   ("Slave_IO_Running", "Replica_IO_Running"))
MY_CNF_PS = "performance_schema=ON"
LATENCY_METRICS = ("latency_p50", "latency_p99")


@dataclass(frozen=True)
class CollectorFacts:
    """What the primary says about the collectors' sources, as read with the monitoring user."""

    flavour: str  # mariadb | mysql
    account: str  # the account as a GRANT names it: 'canary'@'10.0.0.%'
    performance_schema: bool
    consumers: Mapping[str, bool] | None  # None: setup_consumers could not be read
    select_denied: str | None = None  # the server's refusal of SELECT on performance_schema
    process_denied: str | None = None  # the server's refusal of information_schema.INNODB_TRX (PROCESS)


def account_of(current_user: str) -> str:
    """``CURRENT_USER()`` (user@host) as a GRANT writes it: 'user'@'host'."""
    user, _, host = str(current_user).rpartition("@")
    return f"'{user or current_user}'@'{host or '%'}'"


def prometheus_latency(plan: Plan) -> bool:
    """The plan names another latency source: Prometheus queries for the latency percentiles."""
    return bool(plan.prometheus_url) and all(m in plan.prometheus_queries for m in LATENCY_METRICS)


def read_facts(session: TargetSession, flavour: str) -> CollectorFacts:
    """Blocking I/O: read what the collectors would read, as the plan's user."""
    from engine.adapters.target import TargetError

    row = session.query(PERFORMANCE_SCHEMA_ON)[0]
    account = account_of(row["account"])
    select_denied = process_denied = None
    consumers: dict[str, bool] | None = None
    try:
        consumers = {str(r["name"]): r["enabled"] == "YES" for r in session.query(CONSUMERS)}
        session.query(READ_DIGESTS)
    except TargetError as exc:
        if exc.kind != "access_denied":
            raise
        select_denied, consumers = str(exc), None
    try:
        session.query(READ_TRX)
    except TargetError as exc:
        if exc.kind != "access_denied":
            raise
        process_denied = str(exc)
    return CollectorFacts(flavour, account, bool(int(row["ps"] or 0)), consumers, select_denied, process_denied)


def needed_consumers(flavour: str) -> tuple[str, ...]:
    return CONSUMERS_ALL + (CONSUMERS_MARIADB if flavour == "mariadb" else ())


def ps_fix() -> str:
    return (f"add `{MY_CNF_PS}` under [mysqld] in my.cnf and restart the server "
            "(performance_schema cannot be switched on while the server runs)")


def consumers_fix(off: list[str]) -> str:
    names = ", ".join(f"'{n}'" for n in off)
    lines = "; ".join(f"`performance-schema-consumer-{n.replace('_', '-')}=ON`" for n in off)
    return (f"run `UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME IN ({names});` "  # noqa: S608
            f"now, and add {lines} under [mysqld] in my.cnf so a restart keeps them")


def findings(facts: CollectorFacts, plan: Plan) -> list[Finding]:
    """mon.performance_schema, mon.consumers, mon.privileges and mon.latency_source (pure)."""
    from engine.domain.findings import Finding

    out: list[Finding] = []
    other = prometheus_latency(plan)
    if facts.performance_schema:
        out.append(Finding("mon.performance_schema", "pass", "performance_schema is ON", PERFORMANCE_SCHEMA_ON))
    else:
        out.append(Finding("mon.performance_schema", "warn" if other else "fail",
                           f"performance_schema is OFF: digests, latency percentiles, lock waits and threads "
                           f"cannot be read; {ps_fix()}", PERFORMANCE_SCHEMA_ON))
    off: list[str] = []
    if not facts.performance_schema:
        out.append(Finding("mon.consumers", "fail", "performance_schema is OFF (see above)", CONSUMERS))
    elif facts.consumers is None:
        out.append(Finding("mon.consumers", "fail", "setup_consumers cannot be read by this user (see privileges)",
                           CONSUMERS))
    else:
        off = [n for n in needed_consumers(facts.flavour) if not facts.consumers.get(n, False)]
        out.append(Finding("mon.consumers", "fail" if off else "pass",
                           (f"off: {', '.join(off)}; {consumers_fix(off)}" if off
                            else "on: " + ", ".join(needed_consumers(facts.flavour))), CONSUMERS))
    missing = []
    if facts.select_denied:
        missing.append(f"SELECT on performance_schema is refused ({facts.select_denied}): "
                       f"GRANT SELECT ON performance_schema.* TO {facts.account};")
    if facts.process_denied:
        missing.append(f"PROCESS is missing (row-lock waits in information_schema.INNODB_TRX, other sessions in "
                       f"the processlist; {facts.process_denied}): GRANT PROCESS ON *.* TO {facts.account};")
    out.append(Finding("mon.privileges", "fail" if missing else "pass",
                       f"{facts.account}: " + (" ".join(missing) if missing else
                                                "reads performance_schema and information_schema.INNODB_TRX"),
                       f"{READ_DIGESTS}; {READ_TRX}"))
    problem = latency_problem(facts, plan, off)
    if problem is None:
        out.append(Finding("mon.latency_source", "pass",
                           "Prometheus (the plan's latency_p50/latency_p99 queries)" if other and not
                           _ps_latency_ok(facts, off) else _ps_latency_source(facts)))
    else:
        out.append(Finding("mon.latency_source", "fail", problem))
    return out


def _ps_latency_ok(facts: CollectorFacts, off: list[str]) -> bool:
    return facts.performance_schema and facts.consumers is not None and not facts.select_denied and not off


def _ps_latency_source(facts: CollectorFacts) -> str:
    return ("performance_schema.events_statements_history_long" if facts.flavour == "mariadb"
            else "performance_schema.events_statements_histogram_by_digest")


def latency_problem(facts: CollectorFacts, plan: Plan, off: list[str] | None = None) -> str | None:
    """Why the canary would have no latency source, with the fix; None when it has one."""
    if off is None:
        off = ([n for n in needed_consumers(facts.flavour) if not facts.consumers.get(n, False)]
               if facts.consumers is not None else [])
    if _ps_latency_ok(facts, off) or prometheus_latency(plan):
        return None
    if not facts.performance_schema:
        why = f"performance_schema is OFF: {ps_fix()}"
    elif facts.select_denied:
        why = f"{facts.account} may not read performance_schema: GRANT SELECT ON performance_schema.* TO {facts.account};"
    else:
        why = f"consumers off: {', '.join(off)}; {consumers_fix(off)}"
    return (f"no latency source: {why} — or name Prometheus queries for latency_p50 and latency_p99 under "
            "[prometheus_queries] (with integrations.prometheus_url)")


def access_words(exc: Any, account: str, what: str) -> str:
    """A refused read, as the sentence a collector shows (never the raw exception)."""
    code = getattr(exc, "code", None)
    if code == 1227:
        if "MONITOR" in str(exc).upper():
            grant = f"GRANT SLAVE MONITOR ON *.* TO {account};"  # MariaDB ≥ 10.5 (MySQL: REPLICATION CLIENT)
        else:
            grant = f"GRANT PROCESS ON *.* TO {account};"
    else:
        grant = f"GRANT SELECT ON performance_schema.* TO {account};"
    return f"{account} may not read {what} ({exc}): {grant}"


def replica_finding(profile: ConnectionProfile) -> Finding:
    """mon.replica: the replica answers SHOW SLAVE STATUS with the columns the lag is read from."""
    from engine.adapters.target import TargetError, TargetSession
    from engine.domain.findings import Finding

    try:
        with TargetSession(profile, "precheck-replica", read_timeout=10) as s:
            account = account_of(s.query("SELECT /* canary-console:precheck */ CURRENT_USER() AS u")[0]["u"])
            flavour = s.server_info().flavour
            try:
                try:
                    rows = s.query(REPLICA_STATUS)
                except TargetError as exc:
                    if exc.kind in ("access_denied", "lost_connection"):
                        raise
                    rows = s.query(SLAVE_STATUS)
            except TargetError as exc:
                if exc.kind != "access_denied":
                    raise
                grant = "SLAVE MONITOR" if flavour == "mariadb" else "REPLICATION CLIENT"
                return Finding("mon.replica", "fail", f"{account} may not read the replica's status ({exc}): "
                               f"GRANT {grant} ON *.* TO {account};", REPLICA_STATUS)
    except TargetError as exc:
        return Finding("mon.replica", "fail", f"the replica is not reachable: {exc}", REPLICA_STATUS)
    if not rows:
        return Finding("mon.replica", "fail", f"{profile.describe()} is not a replica (SHOW REPLICA STATUS is empty): "
                       "point [replica] at the replica, or leave [replica] out", REPLICA_STATUS)
    absent = [names[0] for names in REPLICA_COLUMNS if not any(n in rows[0] for n in names)]
    if absent:
        return Finding("mon.replica", "fail", f"SHOW REPLICA STATUS has no {', '.join(absent)}: replication lag "
                       "cannot be read from this server", REPLICA_STATUS)
    row = rows[0]
    lag = row.get("Seconds_Behind_Master", row.get("Seconds_Behind_Source"))
    sql_running = row.get("Slave_SQL_Running", row.get("Replica_SQL_Running"))
    return Finding("mon.replica", "pass" if sql_running == "Yes" else "warn",
                   f"SQL thread {sql_running}, {lag if lag is not None else '?'} s behind", REPLICA_STATUS)
