"""The kill-switch API (the api package) on a real uvicorn server on loopback, read and written
through ``RemoteKillSwitch`` and cross-checked with ``EmbeddedKillSwitch`` on the same store; and the
remote client's fail-closed behaviour against small real servers that are down, broken or slow."""

from __future__ import annotations

import asyncio
import shutil
import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from api import ApiServer, create_app, serve_in_thread
from engine.adapters.killswitch import EmbeddedKillSwitch, KillSwitchApiError, RemoteKillSwitch
from engine.adapters.store import Store

TENANT = "acme"
CONN = "orders-primary"
TOKENS = {
    # The lead's token acts on every tenant ("*"); the others are bound to TENANT, the API's default.
    "t-lead": ("somchai", "canary_lead", "*"),
    "t-dba": ("nok", "dba"),
    "t-sre": ("pim", "sre"),
    "t-dev": ("dev", "developer"),
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/s.db")
    yield s
    s.close()


@pytest.fixture
def api(store):
    server = serve_in_thread(create_app(store, TENANT, TOKENS))
    yield server
    server.stop()


@pytest.fixture
def client(api):
    with httpx.Client(base_url=api.url, timeout=5) as c:
        yield c


@pytest.fixture
def remote(api):
    r = RemoteKillSwitch(api.url, token="t-lead")
    yield r
    r.close()


def serve_handler(handler) -> ApiServer:
    """A tiny real server answering ``GET /api/kill-switch`` with ``handler``."""
    return serve_in_thread(Starlette(routes=[Route("/api/kill-switch", handler)]))


# --- the happy path: every scope, both ways, remote and embedded agree ---------------------


@pytest.mark.parametrize("scope", ["global", "tenant", "connection"])
def test_each_scope_activates_and_deactivates_through_the_api(store, remote, scope):
    embedded = EmbeddedKillSwitch(store)
    off = remote.read(TENANT, CONN)
    assert not off.active and off.error is None and off.source == "remote"
    assert off.response_ms > 0 and off.latency_level == "ok"

    remote.set(TENANT, scope, True, "body-actor-is-ignored", f"drill {scope}", CONN)
    on, emb = remote.read(TENANT, CONN), embedded.read(TENANT, CONN)
    assert on.active and on.error is None and on.response_ms > 0
    assert emb.active and emb.error is None
    assert on.active_scopes() == emb.active_scopes() == [scope]
    assert on.scopes[scope].set_by == emb.scopes[scope].set_by == "somchai", "the token's actor, not the body's"
    assert on.scopes[scope].reason == emb.scopes[scope].reason == f"drill {scope}"

    remote.set(TENANT, scope, False, "x", "drill over", CONN)
    after, emb_after = remote.read(TENANT, CONN), embedded.read(TENANT, CONN)
    assert not after.active and after.error is None and after.response_ms > 0
    assert not emb_after.active and emb_after.error is None

    entries = store.audit_entries(TENANT)
    acts = [(e.action, e.actor, (e.details or {}).get("scope")) for e in entries]
    assert acts == [("kill_switch_activated", "somchai", scope), ("kill_switch_deactivated", "somchai", scope)]


def test_scopes_are_isolated_by_tenant_and_connection(store, remote):
    remote.set(TENANT, "connection", True, "x", "only this one", CONN)
    assert remote.read(TENANT, CONN).active
    assert not remote.read(TENANT, "orders-replica").active, "another connection is not stopped"
    remote.set(TENANT, "tenant", True, "x", "tenant drill")
    assert remote.read(TENANT, "orders-replica").active
    assert not remote.read("globex", CONN).active, "another tenant is not stopped"
    emb = EmbeddedKillSwitch(store)
    remote.set("globex", "connection", True, "x", "globex conn", "globex-db")  # tenant from the body
    assert remote.read("globex", "globex-db").active and emb.read("globex", "globex-db").active
    assert remote.read(TENANT, "globex-db").active_scopes() == ["tenant"], "globex's connection switch is its own"
    remote.set("globex", "global", True, "x", "everyone")
    for tenant, conn in ((TENANT, CONN), ("globex", "x"), ("initech", "y")):
        assert remote.read(tenant, conn).active_scopes()[0] == "global"
        assert emb.read(tenant, conn).active


def test_any_role_may_activate_and_the_status_endpoints_agree(store, api, client):
    for token, scope, path in (("t-dev", "global", "/api/kill-switch/global"),
                               ("t-sre", "tenant", f"/api/kill-switch/tenant/{TENANT}"),
                               ("t-dev", "connection", f"/api/kill-switch/connection/{CONN}")):
        r = client.put(path, json={"is_active": True}, headers=auth(token))
        assert r.status_code == 200, r.text
        assert r.json()["is_active"] is True and r.json()["scope"] == scope
    status = client.get("/api/kill-switch/status", headers=auth("t-sre")).json()
    assert status["global_active"] is True and status["tenant_active"] is True
    assert status["connections"] == {CONN: True}
    assert client.get(f"/api/kill-switch/connection/{CONN}", headers=auth("t-dev")).json()["is_active"] is True
    assert client.get("/api/kill-switch/connection/other", headers=auth("t-dev")).json()["is_active"] is False
    assert client.get(f"/api/kill-switch/tenant/{TENANT}/status", headers=auth("t-dev")).json()["is_active"] is True
    # Another tenant's switch is not the developer's to read (403, audited in globex's trail).
    assert client.get("/api/kill-switch/tenant/globex/status", headers=auth("t-dev")).status_code == 403
    assert store.audit_entries("globex", action="tenant_access_refused")[0].actor == "dev"
    contract = client.get("/api/kill-switch", params={"connection_id": CONN}, headers=auth("t-dev")).json()
    assert contract == {
        "global_active": True, "connection_active": True, "tenant_active": True,
        "updated_by": {"global": "dev", "tenant": "pim", "connection": "dev"},
        "reasons": {"global": "", "tenant": "", "connection": ""},
    }
    assert {e.actor for e in store.audit_entries(TENANT, action="kill_switch_activated")} == {"dev", "pim"}


def test_a_dba_may_deactivate_with_a_reason(store, client):
    client.put("/api/kill-switch/global", json={"is_active": True}, headers=auth("t-dev"))
    r = client.put("/api/kill-switch/global", json={"is_active": False, "reason": "  false alarm  "},
                   headers=auth("t-dba"))
    assert r.status_code == 200 and r.json()["global_active"] is False
    [row] = [r for r in store.kill_switch_rows(TENANT) if r.scope == "global"]
    assert (row.is_active, row.updated_by, row.reason) == (False, "nok", "false alarm")


# --- refusals -------------------------------------------------------------------------------


def test_developer_deactivation_is_refused_with_403_and_audited(store, api, client):
    dev = RemoteKillSwitch(api.url, token="t-dev")
    try:
        dev.set(TENANT, "connection", True, "dev", "I saw something", CONN)
        with pytest.raises(KillSwitchApiError) as refused:
            dev.set(TENANT, "connection", False, "somchai", "let me through", CONN)
        assert "(403)" in str(refused.value) and "canary lead or DBA" in str(refused.value)
        raw = client.put("/api/kill-switch/global", json={"is_active": False, "reason": "x"}, headers=auth("t-sre"))
        assert raw.status_code == 403 and raw.json()["error"].startswith("deactivating the kill switch needs the canary lead or DBA role")
    finally:
        dev.close()
    assert EmbeddedKillSwitch(store).read(TENANT, CONN).active, "the refusal changed nothing"
    refusals = store.audit_entries(TENANT, action="kill_switch_deactivation_refused")
    assert [(e.actor, e.details["scope"], e.details["roles"]) for e in refusals] == [
        ("dev", "connection", ["developer"]), ("pim", "global", ["sre"])]
    assert refusals[0].details["connection_id"] == CONN
    assert not store.audit_entries(TENANT, action="kill_switch_deactivated")


def test_deactivation_without_a_reason_is_refused_with_422_and_audited(store, client):
    client.put("/api/kill-switch/global", json={"is_active": True}, headers=auth("t-lead"))
    for body in ({"is_active": False}, {"is_active": False, "reason": "   "}, {"is_active": False, "reason": None}):
        r = client.put("/api/kill-switch/global", json=body, headers=auth("t-lead"))
        problem = r.json()
        assert r.status_code == 422 and problem["field"] == "reason", r.text
        assert problem["detail"].startswith("deactivation needs a reason") and problem["status"] == 422
        assert r.headers["content-type"] == "application/problem+json"
    assert len(store.audit_entries(TENANT, action="kill_switch_deactivation_refused")) == 3
    assert EmbeddedKillSwitch(store).read(TENANT, CONN).active


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nope"},
    {"Authorization": "Bearer t-lead-extra"}, {"Authorization": "Bearer T-LEAD"},
    {"Authorization": "Basic t-lead"}, {"Authorization": "t-lead"},
])
def test_missing_or_wrong_token_is_401(store, client, headers):
    for method, path, body in (("GET", "/api/kill-switch", None), ("GET", "/api/kill-switch/status", None),
                               ("GET", f"/api/kill-switch/connection/{CONN}", None),
                               ("GET", f"/api/kill-switch/tenant/{TENANT}/status", None),
                               ("PUT", "/api/kill-switch/global", {"is_active": True}),
                               ("PUT", "/api/kill-switch/tenant/BAD SLUG", {"is_active": True}),
                               ("PUT", f"/api/kill-switch/connection/{CONN}", "not json")):
        r = client.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (method, path, r.text)
        assert "bearer token" in r.json()["detail"]
    assert not store.kill_switch_rows(TENANT, CONN)
    # 401s are audited (never the token), at most five rows a minute per client address.
    failures = store.audit_entries(TENANT)
    assert [e.action for e in failures] == ["auth_failed"] * 5
    assert all("t-lead" not in str(e.details) and "nope" not in str(e.details) for e in failures)


def test_remote_without_a_token_reads_fail_closed(api):
    anonymous = RemoteKillSwitch(api.url)
    try:
        reading = anonymous.read(TENANT, CONN)
        with pytest.raises(KillSwitchApiError, match=r"\(401\)"):
            anonymous.set(TENANT, "global", True, "x")
    finally:
        anonymous.close()
    assert reading.active and reading.fail_closed and "HTTP 401" in reading.error


# What is not JSON is 400 at the door; what is JSON but not the body is 422 naming the field. A
# reason (or the ignored actor) is never refused for what it is: it is cleaned (test_api_hostile.py).
@pytest.mark.parametrize("content, status, message", [
    (b"not json", 400, "the body is not JSON"),
    (b"", 422, "a JSON body is required"),
    (b"[true]", 422, '"body"'),
    (b'{"reason": "x"}', 422, '"is_active" is required'),
    (b'{"is_active": "yes"}', 422, '"is_active"'),
    (b'{"is_active": 1.5}', 422, '"is_active"'),
    (b'{"is_active": null}', 422, '"is_active"'),
    (b'{"is_active": true, "tenant_id": 7}', 422, '"tenant_id"'),
    (b'{"is_active": true, "tenant_id": "Bad Tenant"}', 422, "tenant_id 'Bad Tenant' is not allowed"),
    (b'{"is_active": true, "on": true}', 422, '"on" is not a field'),
])
def test_malformed_body_is_refused_with_a_message(store, client, content, status, message):
    r = client.put("/api/kill-switch/global", content=content,
                   headers={**auth("t-lead"), "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"] and r.headers["content-type"] == "application/problem+json"
    assert not store.kill_switch_rows(TENANT) and not store.audit_entries(TENANT)


def test_body_tenant_must_match_the_path_tenant(client):
    r = client.put("/api/kill-switch/tenant/acme", json={"is_active": True, "tenant_id": "globex"},
                   headers=auth("t-lead"))
    assert r.status_code == 422 and "differs" in r.json()["error"]


def test_bad_identifiers_and_unknown_routes_answer_json_errors(client):
    h = auth("t-lead")
    for path, params in (("/api/kill-switch", {"connection_id": "x'; DROP TABLE t;--"}),
                         ("/api/kill-switch", {"tenant_id": "../etc"}),
                         ("/api/kill-switch", {"tenant_id": ""}),  # empty is not "the default" (fuzzing)
                         ("/api/kill-switch", {"connection_id": ""}),
                         ("/api/kill-switch/status", {"tenant_id": "*"}),
                         ("/api/kill-switch/connection/UPPER", {}),
                         ("/api/kill-switch/tenant/a%20b/status", {})):
        r = client.get(path, params=params, headers=h)
        name = next(iter(params), None) or ("connection_id" if "connection" in path else "tenant_id")
        assert r.status_code == 422 and f'"{name}"' in r.json()["detail"], (path, r.text)
    r = client.put("/api/kill-switch/connection/Bad!", json={"is_active": True}, headers=h)
    assert r.status_code == 422 and "connection_id" in r.json()["error"]
    missing = client.get("/api/nothing-here", headers=h)
    assert missing.status_code == 404 and "error" in missing.json()
    wrong_method = client.post("/api/kill-switch/global", json={"is_active": True}, headers=h)
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    assert "PUT" in wrong_method.headers["allow"]


# --- health and a store that cannot be used ----------------------------------------------------


def test_health_needs_no_token_and_reports_the_store(tmp_path, client, api):
    assert client.get("/health").json() == {"status": "ok", "store": "ok"}
    db = tmp_path / "broken.db"
    broken_store = Store(f"sqlite:///{db}")
    server = serve_in_thread(create_app(broken_store, TENANT, TOKENS))
    try:
        broken_store.engine.dispose()
        db.unlink()
        for sidecar in (tmp_path / "broken.db-wal", tmp_path / "broken.db-shm"):
            sidecar.unlink(missing_ok=True)
        db.mkdir()  # a directory where the database file was: every read fails
        with httpx.Client(base_url=server.url, timeout=5) as c:
            health = c.get("/health")
            assert health.status_code == 503
            assert health.json()["status"] == "degraded" and health.json()["store"].startswith("unreadable: ")
            read = c.get("/api/kill-switch", params={"connection_id": CONN}, headers=auth("t-lead"))
            assert read.status_code == 503 and read.json()["error"].startswith("store unavailable")
            put = c.put("/api/kill-switch/global", json={"is_active": True}, headers=auth("t-lead"))
            assert put.status_code == 503 and "Traceback" not in put.text
        reading = RemoteKillSwitch(server.url, token="t-lead").read(TENANT, CONN)
        assert reading.active and "HTTP 503" in reading.error
    finally:
        server.stop()
        broken_store.close()
        shutil.rmtree(db, ignore_errors=True)


# --- fail-closed: the API down, broken, malformed or slow -----------------------------------


def test_fail_closed_when_the_server_is_stopped(store):
    server = serve_in_thread(create_app(store, TENANT, TOKENS))
    r = RemoteKillSwitch(server.url, token="t-lead")
    try:
        assert not r.read(TENANT, CONN).active
        server.stop()
        assert not server.thread.is_alive()
        down = r.read(TENANT, CONN)
        with pytest.raises(KillSwitchApiError, match="unreachable"):
            r.set(TENANT, "global", True, "x")
    finally:
        server.stop()
        r.close()
    assert down.active and down.fail_closed and "API unreachable: ConnectError" in down.error
    assert down.describe().startswith("ACTIVE (fail-closed: ")
    assert down.response_ms > 0


def test_fail_closed_on_http_500():
    async def boom(_request):
        return JSONResponse({"error": "database on fire"}, 500)

    server = serve_handler(boom)
    try:
        reading = RemoteKillSwitch(server.url).read(TENANT, CONN)
    finally:
        server.stop()
    assert reading.active and reading.fail_closed and reading.error == "API answered HTTP 500"
    assert reading.response_ms > 0


@pytest.mark.parametrize("response", [
    PlainTextResponse("<html>gateway</html>"),
    PlainTextResponse('{"global_active": false, "connection_active": fal'),
    JSONResponse([False, False]),
    JSONResponse({"connection_active": False}),
    JSONResponse({"global_active": "false", "connection_active": False}),
    JSONResponse({"global_active": False, "connection_active": 0}),
    JSONResponse({"global_active": False, "connection_active": False, "tenant_active": None}),
], ids=["html", "truncated", "list", "missing-key", "string-flag", "int-flag", "null-tenant"])
def test_fail_closed_on_a_malformed_answer(response):
    async def handler(_request):
        return response

    server = serve_handler(handler)
    try:
        reading = RemoteKillSwitch(server.url).read(TENANT, CONN)
    finally:
        server.stop()
    assert reading.active and reading.fail_closed and "malformed" in reading.error


def test_fail_closed_on_a_slow_server_past_the_client_timeout():
    async def slow(_request):
        await asyncio.sleep(2)
        return JSONResponse({"global_active": False, "connection_active": False, "tenant_active": False})

    server = serve_handler(slow)
    client = RemoteKillSwitch(server.url, timeout=0.5)
    try:
        reading = client.read(TENANT, CONN)
    finally:
        client.close()
        server.stop()
    assert reading.active and reading.fail_closed
    assert reading.error == "API timed out after 0.5 s"
    assert 450 <= reading.response_ms < 1900
    assert reading.latency_level == "warning"


def test_a_slow_but_valid_answer_within_the_timeout_is_believed_and_timed():
    async def slowish(_request):
        await asyncio.sleep(0.6)
        return JSONResponse({"global_active": False, "connection_active": False, "tenant_active": False})

    server = serve_handler(slowish)
    client = RemoteKillSwitch(server.url, timeout=3)
    try:
        reading = client.read(TENANT, CONN)
    finally:
        client.close()
        server.stop()
    assert not reading.active and reading.error is None
    assert reading.response_ms >= 550 and reading.latency_level == "warning"


# --- serve_in_thread ---------------------------------------------------------------------------


def test_serve_in_thread_picks_a_port_and_stops_cleanly(store):
    a = serve_in_thread(create_app(store, TENANT, TOKENS))
    b = serve_in_thread(create_app(store, TENANT, TOKENS))
    try:
        assert a.port != b.port and a.port > 0
        assert a.url == f"http://127.0.0.1:{a.port}"
        assert httpx.get(f"{b.url}/health", timeout=5).json()["status"] == "ok"
    finally:
        a.stop()
        b.stop()
    a.stop()  # idempotent
    assert not a.thread.is_alive() and not b.thread.is_alive()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", a.port)) != 0, "nothing listens after stop()"


def test_serve_in_thread_on_an_explicit_port_and_a_taken_one(store):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve_in_thread(create_app(store, TENANT, TOKENS), port=port)
    try:
        assert server.port == port
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve_in_thread(create_app(store, TENANT, TOKENS), port=port)
    finally:
        server.stop()


def test_create_app_refuses_bad_configuration(store):
    with pytest.raises(ValueError, match="role"):
        create_app(store, TENANT, {"t": ("someone", "admin")})
    with pytest.raises(ValueError, match="non-empty string"):
        create_app(store, TENANT, {"": ("someone", "dba")})
    with pytest.raises(ValueError, match="tenant_id"):
        create_app(store, "Not A Slug", TOKENS)


# --- the executors' poll: the fast path answers as the route does; concurrent polls coalesce ----


def test_the_fast_poll_answers_exactly_what_the_route_answers(store, api, client, monkeypatch):
    import api.guard as guard

    EmbeddedKillSwitch(store).set("other", "tenant", True, "x", "not acme's", "")
    EmbeddedKillSwitch(store).set(TENANT, "connection", True, "nok", "slow ALTER", CONN)
    asks = [{"connection_id": CONN}, {}, {"tenant_id": TENANT, "connection_id": "other-conn"},
            {"connection_id": CONN, "tenant_id": "other"}]
    taken: list[bool] = []
    original = guard.fast_read

    async def counted(*args):
        taken.append(await original(*args))
        return taken[-1]

    monkeypatch.setattr(guard, "fast_read", counted)
    fast = [client.get("/api/kill-switch", params=p, headers=auth("t-lead")) for p in asks]
    assert taken == [True] * len(asks)
    monkeypatch.setattr(guard, "READ_PATH", "/no-fast-path")  # every poll through FastAPI's route
    routed = [client.get("/api/kill-switch", params=p, headers=auth("t-lead")) for p in asks]
    for f, r in zip(fast, routed, strict=True):
        assert f.status_code == r.status_code == 200
        assert f.content == r.content and f.headers["content-type"] == r.headers["content-type"]
    assert fast[0].json()["connection_active"] and not fast[2].json()["connection_active"]
    assert fast[3].json()["tenant_active"] and not fast[0].json()["tenant_active"]


def test_polls_the_fast_path_does_not_take_go_to_the_route(store, client):
    # Each of these is the route's to answer: a refusal (audited), an unknown or repeated
    # parameter, a malformed one.
    dev_other = client.get("/api/kill-switch", params={"tenant_id": "other"}, headers=auth("t-dev"))
    assert dev_other.status_code == 403
    assert any(e.action == "tenant_access_refused" for e in store.audit_entries("other", None, None, limit=10))
    typo = client.get("/api/kill-switch?conection_id=orders-primary", headers=auth("t-dev"))
    assert typo.status_code == 422 and typo.json()["field"] == "conection_id"
    twice = client.get(f"/api/kill-switch?connection_id={CONN}&connection_id=x", headers=auth("t-dev"))
    assert twice.status_code == 422
    bad = client.get("/api/kill-switch?connection_id=Orders%20Primary", headers=auth("t-dev"))
    assert bad.status_code == 422 and "application/problem+json" in bad.headers["content-type"]


def test_concurrent_polls_share_reads_and_none_misses_an_activation(store, api):
    reader = api.server.config.app.state.switch_reader
    before = reader.reads

    async def poll_many(n: int) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(base_url=api.url, timeout=20, limits=limits, headers=auth("t-dev")) as c:
            return await asyncio.gather(*[c.get("/api/kill-switch", params={"connection_id": CONN})
                                          for _ in range(n)])

    answers = asyncio.run(poll_many(60))
    assert all(r.status_code == 200 and r.json()["global_active"] is False for r in answers)
    assert 1 <= reader.reads - before <= 60
    with httpx.Client(base_url=api.url, timeout=10, headers=auth("t-lead")) as lead:
        assert lead.put("/api/kill-switch/global", json={"is_active": True, "reason": "drill"}).status_code == 200
    # Every poll that starts after the activation answered sees it (none is answered by a read
    # that began before it arrived).
    answers = asyncio.run(poll_many(60))
    assert all(r.status_code == 200 and r.json()["global_active"] is True for r in answers)


def test_a_poll_waits_for_a_read_that_began_after_it_arrived(store):
    import threading

    from api.switch_reads import SwitchReader
    from engine.flows.switch_flow import switch_rows

    gate, started = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def gated(st, tenants):
        calls.append(tenants)
        rows = switch_rows(st, tenants)  # the real read, on the real store
        if len(calls) == 1:
            started.set()
            assert gate.wait(10)
        return rows

    reader = SwitchReader(store, read=gated)

    async def scenario():
        first = asyncio.ensure_future(reader.state(TENANT, CONN))
        assert await asyncio.to_thread(started.wait, 10)
        # The first read is in flight; the switch goes on; the polls that arrive now must see it.
        EmbeddedKillSwitch(store).set(TENANT, "global", True, "nok", "drill", "")
        later = [asyncio.ensure_future(reader.state(t, CONN)) for t in (TENANT, "other", TENANT)]
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await asyncio.gather(*later)

    first, later = asyncio.run(scenario())
    reader.close()
    assert first["global_active"] is False  # read before the activation
    assert all(s["global_active"] for s in later)
    assert calls == [[TENANT], [TENANT, "other"]]  # the three later polls shared one read
