"""Object-level authorisation: every route × the token's own tenant, another tenant, the global
switch. A token bound to acme that reads or writes globex's switch, runs, rollbacks or audit gets
403, the refusal is in globex's audit trail, and nothing of globex changed; its own tenant's
requests are never refused for the tenant; a "*" token may act on both; the global switch goes by
the role table (engine/domain/roles.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api import create_app, serve_in_thread
from engine.adapters.store import ExecutionRun, Store
from engine.domain.roles import may

TOKENS = {
    "dev-acme-token-0123456789": ("dev", "developer", ("acme",)),
    "lead-acme-token-0123456789": ("somchai", "canary_lead", ("acme",)),
    "dba-globex-token-0123456789": ("gina", "dba", ("globex",)),
    "lead-all-token-0123456789": ("root", "canary_lead", ("*",)),
}
TOKEN_OF = {actor: token for token, (actor, *_rest) in TOKENS.items()}


def _run(tenant: str) -> ExecutionRun:
    return ExecutionRun(tenant_id=tenant, connection_profile_id=f"{tenant}-db", schema_name="shop",
                        table_name="orders", index_name="idx_iso", columns=[["customer_id", None]])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('iso')}/s.db")
    runs = {}
    for tenant in ("acme", "globex"):  # one canary at a time: the first one ends before the next
        run = store.create_run(_run(tenant), "fixture")
        store.transition(tenant, run.id, "running", "fixture")
        store.update_run(tenant, run.id, index_created_by_run=True)
        store.transition(tenant, run.id, "completed", "fixture")
        runs[tenant] = run.id
    server = serve_in_thread(create_app(store, "acme", TOKENS))
    yield store, server, runs
    server.stop()
    store.close()


def _routes(runs: dict[str, str]) -> dict[str, Callable[[str], tuple[str, str, dict[str, Any]]]]:
    """Route name → (tenant → method, path, request kwargs)."""
    def conn(t: str) -> str:
        return f"{t}-db"
    return {
        "read switch": lambda t: ("GET", "/api/kill-switch", {"params": {"tenant_id": t, "connection_id": conn(t)}}),
        "switch status": lambda t: ("GET", "/api/kill-switch/status", {"params": {"tenant_id": t}}),
        "read connection switch": lambda t: ("GET", f"/api/kill-switch/connection/{conn(t)}", {"params": {"tenant_id": t}}),
        "set connection switch": lambda t: ("PUT", f"/api/kill-switch/connection/{conn(t)}",
                                            {"params": {"tenant_id": t}, "json": {"is_active": True, "reason": "x"}}),
        "set connection switch (body tenant)": lambda t: ("PUT", f"/api/kill-switch/connection/{conn(t)}",
                                                          {"json": {"is_active": True, "tenant_id": t}}),
        "read tenant switch": lambda t: ("GET", f"/api/kill-switch/tenant/{t}/status", {}),
        "set tenant switch": lambda t: ("PUT", f"/api/kill-switch/tenant/{t}", {"json": {"is_active": True}}),
        "set global (tenant in query)": lambda t: ("PUT", "/api/kill-switch/global",
                                                   {"params": {"tenant_id": t}, "json": {"is_active": True}}),
        "list runs": lambda t: ("GET", "/api/executions", {"params": {"tenant_id": t}}),
        "create run": lambda t: ("POST", "/api/executions", {"json": {
            "tenant_id": t, "connection_id": conn(t), "schema_name": "shop", "table_name": "payments",
            "index_name": "idx_x", "columns": ["a"]}}),
        "read run": lambda t: ("GET", f"/api/executions/{runs[t]}", {}),
        "read run (tenant in query)": lambda t: ("GET", f"/api/executions/{runs[t]}", {"params": {"tenant_id": t}}),
        "claim run": lambda t: ("POST", f"/api/executions/{runs[t]}/claim", {}),
        "run status": lambda t: ("PATCH", f"/api/executions/{runs[t]}/status", {"json": {"status": "cancelled"}}),
        "execute run": lambda t: ("POST", f"/api/executions/{runs[t]}/execute", {}),
        "rollback trigger": lambda t: ("POST", f"/api/rollback/{runs[t]}/trigger",
                                       {"json": {"trigger": "latency", "reason": "p99 doubled"}}),
        "rollback approve": lambda t: ("POST", f"/api/rollback/{runs[t]}/approve", {}),
        "rollback refuse": lambda t: ("POST", f"/api/rollback/{runs[t]}/refuse",
                                      {"json": {"reason": "the latency is the batch job's"}}),
        "rollback retrigger": lambda t: ("POST", f"/api/rollback/{runs[t]}/retrigger",
                                         {"json": {"reason": "the trigger was wrong"}}),
        "rollback keep index": lambda t: ("POST", f"/api/rollback/{runs[t]}/keep-index",
                                          {"json": {"reason": "the refusal stands"}}),
        "rollback history": lambda t: ("GET", f"/api/rollback/history/{runs[t]}", {}),
        "record rollback": lambda t: ("POST", "/api/rollbacks", {"json": {"execution_run_id": runs[t], "status": "failed"}}),
        "read audit": lambda t: ("GET", "/api/audit", {"params": {"tenant_id": t}}),
        "read audit of a run": lambda t: ("GET", "/api/audit", {"params": {"tenant_id": t, "run_id": runs[t]}}),
        "report audit": lambda t: ("POST", "/api/audit", {"json": {"execution_run_id": runs[t], "action": "probe"}}),
    }


ROUTES = sorted(_routes({"acme": "a", "globex": "g"}))


def _snapshot(store: Store, tenant: str) -> tuple[Any, ...]:
    run = store.find_runs(tenant)
    switches = sorted((r.scope, r.connection_profile_id, r.is_active) for r in store.kill_switch_rows(tenant, f"{tenant}-db")
                      if r.scope != "global")
    return (tuple((r.id, r.status, r.claimed_by) for r in run), tuple(switches),
            len(store.rollback_records(tenant, run[-1].id)) if run else 0,
            [e.action for e in store.audit_entries(tenant) if e.action != "tenant_access_refused"])


@pytest.mark.parametrize("route", ROUTES)
def test_another_tenants_objects_are_403_audited_and_untouched(world, route):
    store, server, runs = world
    method, path, kwargs = _routes(runs)[route]("globex")
    before = _snapshot(store, "globex")
    refusals = len(store.audit_entries("globex", action="tenant_access_refused"))
    tenant_refusals = []
    for actor in ("dev", "somchai"):
        with httpx.Client(base_url=server.url, timeout=10) as c:
            r = c.request(method, path, headers={"Authorization": f"Bearer {TOKEN_OF[actor]}"}, **kwargs)
        assert r.status_code == 403, (route, actor, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        detail = r.json()["detail"]
        # The lead may do every action here: only the tenant refuses it. The developer may be refused
        # for the role first where the tenant is only known from the body (audited in acme's trail).
        assert "not tenant globex" in detail or (actor == "dev" and "role; dev is developer" in detail), detail
        tenant_refusals += [actor] if "not tenant globex" in detail else []
    assert _snapshot(store, "globex") == before, "a refused request changed globex"
    entries = store.audit_entries("globex", action="tenant_access_refused")
    assert len(entries) == refusals + len(tenant_refusals) and "somchai" in tenant_refusals
    assert [e.actor for e in entries[refusals:]] == tenant_refusals
    assert "-token-" not in str([e.details for e in entries])


@pytest.mark.parametrize("route", ROUTES)
def test_the_own_tenant_is_never_refused_for_its_tenant(world, route):
    store, server, runs = world
    method, path, kwargs = _routes(runs)[route]("acme")
    for token in (TOKEN_OF["somchai"], TOKEN_OF["root"]):
        with httpx.Client(base_url=server.url, timeout=10) as c:
            r = c.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        assert r.status_code < 500 and "not tenant" not in r.text, (route, r.status_code, r.text)
        assert r.status_code != 403 or "role" in r.json()["detail"], (route, r.text)


@pytest.mark.parametrize("route", ROUTES)
def test_a_token_for_every_tenant_reaches_both(world, route):
    store, server, runs = world
    method, path, kwargs = _routes(runs)[route]("globex")
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.request(method, path, headers={"Authorization": f"Bearer {TOKEN_OF['root']}"}, **kwargs)
    assert r.status_code < 500 and "not tenant" not in r.text, (route, r.status_code, r.text)


@pytest.mark.parametrize("actor", ["dev", "somchai", "gina", "root"])
def test_the_global_switch_goes_by_the_role_table(world, actor):
    store, server, _ = world
    token, (_, role, _tenants) = TOKEN_OF[actor], TOKENS[TOKEN_OF[actor]]
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as c:
        on = c.put("/api/kill-switch/global", json={"is_active": True, "reason": f"{actor} stops all"})
        assert (on.status_code == 200) == may("kill_switch_global", {role}), on.text
        off = c.put("/api/kill-switch/global", json={"is_active": False, "reason": "all clear"})
        allowed = may("kill_switch_deactivate", {role}) and may("kill_switch_global", {role})
        assert off.status_code == (200 if allowed else 403), off.text
        if not allowed:
            assert "needs the canary lead or DBA role" in off.json()["detail"]
            c.put("/api/kill-switch/global", json={"is_active": False, "reason": "cleanup"},
                  headers={"Authorization": f"Bearer {TOKEN_OF['root']}"})
    assert not any(r.is_active for r in store.kill_switch_rows("acme") if r.scope == "global")
