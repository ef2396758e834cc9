"""Kill-switch backends against real servers: the engine's own API on uvicorn, and small real
servers that misbehave (HTTP 500, malformed JSON, too slow). Fail-closed in every failure."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from api import create_app, serve_in_thread
from engine.adapters.killswitch import EmbeddedKillSwitch, RemoteKillSwitch
from engine.adapters.store import Store

# The lead reads other tenants too (its token is bound to every tenant, "*"); dev only "acme".
TOKENS = {"lead": ("somchai", "canary_lead", "*"), "dev": ("dev", "developer")}


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 's.db'}")


@pytest.fixture
def api(store):
    server = serve_in_thread(create_app(store, "acme", TOKENS))
    yield server
    server.stop()


def test_remote_and_embedded_agree_on_every_scope(store, api):
    remote = RemoteKillSwitch(api.url, token="lead")
    embedded = EmbeddedKillSwitch(store)
    off = remote.read("acme", "orders-primary")
    assert not off.active and off.error is None and off.response_ms > 0
    for scope in ("global", "tenant", "connection"):
        remote.set("acme", scope, True, "ignored-body-actor", f"drill {scope}", "orders-primary")
        r, e = remote.read("acme", "orders-primary"), embedded.read("acme", "orders-primary")
        assert r.active and e.active and r.active_scopes() == e.active_scopes() == [scope]
        assert r.scopes[scope].set_by == "somchai", "the actor is the token's, not the body's"
        remote.set("acme", scope, False, "x", "drill over", "orders-primary")
        assert not remote.read("acme", "orders-primary").active
    assert not remote.read("other", "orders-primary").active
    actions = [e.action for e in store.audit_entries("acme")]
    assert actions.count("kill_switch_activated") == 3 and actions.count("kill_switch_deactivated") == 3


def test_deactivation_needs_a_lead_or_dba_and_a_reason(store, api):
    RemoteKillSwitch(api.url, token="dev").set("acme", "global", True, "dev", "anyone may stop it")
    with httpx.Client(base_url=api.url) as c:
        refused = c.put("/api/kill-switch/global", json={"is_active": False, "reason": "x"},
                        headers={"Authorization": "Bearer dev"})
        assert refused.status_code == 403 and "canary lead or DBA" in refused.json()["error"]
        no_reason = c.put("/api/kill-switch/global", json={"is_active": False},
                          headers={"Authorization": "Bearer lead"})
        assert no_reason.status_code == 422
        assert c.get("/api/kill-switch").status_code == 401
        bad = c.put("/api/kill-switch/global", json={"is_active": "yes"}, headers={"Authorization": "Bearer lead"})
        assert bad.status_code == 422 and "is_active" in bad.json()["error"]
        hostile = c.get("/api/kill-switch", params={"connection_id": "x'; DROP"}, headers={"Authorization": "Bearer lead"})
        assert hostile.status_code == 422
        assert c.get("/health").json() == {"status": "ok", "store": "ok"}
    assert EmbeddedKillSwitch(store).read("acme", "c").active
    assert len(store.audit_entries("acme", action="kill_switch_deactivation_refused")) == 2


def _serve(handler):
    return serve_in_thread(Starlette(routes=[Route("/api/kill-switch", handler)]))


def test_fail_closed_when_the_api_is_down(store):
    server = serve_in_thread(create_app(store, "acme", TOKENS))
    remote = RemoteKillSwitch(server.url, token="lead")
    assert not remote.read("acme", "c").active
    server.stop()
    down = remote.read("acme", "c")
    assert down.active and down.fail_closed and "unreachable" in down.error


@pytest.mark.parametrize("handler, expected", [
    (lambda r: JSONResponse({"error": "boom"}, 500), "HTTP 500"),
    (lambda r: PlainTextResponse("not json"), "malformed"),
    (lambda r: JSONResponse({"global_active": "false", "connection_active": False}), "malformed"),
    (lambda r: JSONResponse({"connection_active": False}), "malformed"),
])
def test_fail_closed_on_a_bad_answer(handler, expected):
    async def endpoint(request):
        return handler(request)
    server = _serve(endpoint)
    try:
        reading = RemoteKillSwitch(server.url).read("acme", "c")
    finally:
        server.stop()
    assert reading.active and expected in reading.error


def test_fail_closed_on_timeout_and_response_time_measured():
    async def slow(_request):
        await asyncio.sleep(2)
        return JSONResponse({"global_active": False, "connection_active": False})
    server = _serve(slow)
    try:
        reading = RemoteKillSwitch(server.url, timeout=0.5).read("acme", "c")
    finally:
        server.stop()
    assert reading.active and "timed out after 0.5 s" in reading.error
    assert 450 <= reading.response_ms < 1900


def test_embedded_fails_closed_when_the_store_is_unreadable(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.engine.dispose()
    (tmp_path / "s.db").unlink()
    (tmp_path / "s.db").mkdir()  # a directory where the database file was: every read fails
    reading = EmbeddedKillSwitch(store).read("acme", "c")
    assert reading.active and "store unreadable" in reading.error


def test_a_critically_slow_api_aborts_before_execution(store):
    """Runbook 4.4: API response ≥ 2000 ms is critical — abort if before execution."""
    from engine.adapters.target import Target
    from engine.domain.plan import plan_from_dict
    from engine.flows.executor import Executor

    async def slow_but_off(_request):
        await asyncio.sleep(2.05)
        return JSONResponse({"global_active": False, "connection_active": False})

    server = _serve(slow_but_off)
    plan = plan_from_dict({
        "tenant": "acme",
        "connection": {"id": "c", "host": "127.0.0.1", "port": 1, "database": "shop"},  # never contacted
        "change": {"table": "orders", "index": "idx_x", "columns": ["a"]},
        "window": {"off_peak": "00:00-23:59", "utc_offset": "+00:00"},
    })
    try:
        remote = RemoteKillSwitch(server.url)
        ex = Executor(plan, store, remote, Target(plan.connection), "tester", "w1")
        run = ex.create_run()
        out = ex.execute(run.id)
    finally:
        server.stop()
    assert (out.status, out.fail_reason) == ("failed", "kill_switch")
    assert "≥ 2000 ms is critical" in out.message
    [check] = store.audit_entries("acme", run.id, "kill_switch_checked")
    assert check.details["latency_level"] == "critical" and check.details["active"] is False
