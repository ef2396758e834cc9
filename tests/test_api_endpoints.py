"""The engine's HTTP API end to end: a real uvicorn server on loopback over a real SQLite store.

Every endpoint's happy path; every role gate (403, a message naming the role, an audit entry);
rollback approvals by the console's own rules (engine.flows.rollback_flow: the wrong role, twice, the
requester alone); executions create → claim → status; audit paging; the OpenAPI document against
the routes; the console's remote kill-switch backend against the served API, failing closed when
it is down; the token file and the ``api`` command.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import create_app, serve_in_thread
from console import api_cmd
from console.api_cmd import TokenFileError, load_tokens
from engine.adapters.collectors import Sample
from engine.adapters.killswitch import EmbeddedKillSwitch, KillSwitchApiError, RemoteKillSwitch
from engine.adapters.store import Store
from engine.domain.plan import ConnectionProfile
from engine.domain.roles import role_words
from engine.views import rollback as rollback_views

ROOT = Path(__file__).resolve().parent.parent
TENANT = "acme"
CONN = "orders-primary"
TOKENS = {
    "t-lead": ("somchai", "canary_lead"),
    "t-dba": ("nok", "dba"),
    "t-sre": ("pim", "sre"),
    "t-dev": ("dev", "developer"),
    "t-lead2": ("ann", "canary_lead"),
    "t-nok-lead": ("nok", "canary_lead"),  # nok holds two roles, one token each
}
RUN_BODY = {"tenant_id": TENANT, "connection_id": CONN, "action": "ADD_INDEX", "schema_name": "shop",
            "table_name": "orders", "index_name": "idx_orders_customer", "columns": ["customer_id"],
            "scheduled_at": "2025-01-31T22:00:00+07:00"}


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


def actions(store: Store, run_id: str | None = None) -> list[str]:
    return [e.action for e in store.audit_entries(TENANT, run_id)]


def create(client, body=None, token="t-lead"):
    return client.post("/api/executions", json=body or RUN_BODY, headers=auth(token))


def finished_run(client, store) -> str:
    """A run that created its index and completed: what a rollback is for. The ALTER itself is
    the executor's (it needs the target): here the store records that it happened."""
    run_id = create(client).json()["id"]
    assert client.post(f"/api/executions/{run_id}/claim", headers=auth("t-dba")).status_code == 200
    assert client.patch(f"/api/executions/{run_id}/status", json={"status": "running"},
                        headers=auth("t-dba")).status_code == 200
    store.update_run(TENANT, run_id, index_created_by_run=True)
    done = client.patch(f"/api/executions/{run_id}/status", json={"status": "completed", "message": "PASS"},
                        headers=auth("t-dba"))
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    return run_id


# --- executions: create → claim → status ---------------------------------------------------------


def test_create_claim_and_move_a_run_through_its_states(store, client):
    made = create(client)
    assert made.status_code == 201, made.text
    run = made.json()
    assert run["status"] == "scheduled" and run["created_by"] == "somchai"
    assert (run["schema_name"], run["table_name"], run["index_name"]) == ("shop", "orders", "idx_orders_customer")
    assert run["columns"] == [["customer_id", None]] and run["connection_profile_id"] == CONN
    assert made.headers["location"] == f"/api/executions/{run['id']}"
    rid = run["id"]
    assert client.get(f"/api/executions/{rid}", headers=auth("t-dev")).json()["status"] == "scheduled"
    listed = client.get("/api/executions", params={"status": "scheduled,running"}, headers=auth("t-sre")).json()
    assert [r["id"] for r in listed["runs"]] == [rid]
    assert client.get("/api/executions", params={"status": "running"}, headers=auth("t-sre")).json() == {"runs": []}

    claimed = client.post(f"/api/executions/{rid}/claim", json={"worker": "w1", "lease_seconds": 60},
                          headers=auth("t-dba"))
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "nok:w1"
    assert claimed.json()["status"] == "running", "a claimed run moves to running"
    # A second claim while the lease is held is 409 whoever asks, the holder's own token too.
    for token, body in (("t-dba", {"worker": "w1"}), ("t-lead", {}), ("t-dba", {"worker": "w2"})):
        second = client.post(f"/api/executions/{rid}/claim", json=body, headers=auth(token))
        assert second.status_code == 409, second.text
        assert "held by nok:w1" in second.json()["detail"]
    assert [e.actor for e in store.audit_entries(TENANT, rid, "claim_failed")] == ["nok:w1", "somchai", "nok:w2"]

    running = client.patch(f"/api/executions/{rid}/status", json={"status": "running"}, headers=auth("t-dba"))
    assert running.status_code == 200 and running.json()["started_at"], "the same status again is a no-op"
    done = client.patch(f"/api/executions/{rid}/status", json={"status": "completed", "message": "Canary run successful"},
                        headers=auth("t-lead"))
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert done.json()["error_message"] == "Canary run successful"
    back = client.patch(f"/api/executions/{rid}/status", json={"status": "running"}, headers=auth("t-dba"))
    assert back.status_code == 409 and "cannot become running" in back.json()["detail"]
    changes = [(e.old_status, e.new_status, e.actor) for e in store.audit_entries(TENANT, rid, "status_change")]
    assert changes == [("scheduled", "running", "nok"), ("running", "completed", "somchai")]
    assert "run_scheduled_at" in actions(store, rid)
    assert create(client).status_code == 201, "the finished run released the scope lock"


def test_a_second_run_is_refused_by_the_scope_lock(store, client):
    assert create(client).status_code == 201
    second = create(client, dict(RUN_BODY, table_name="payments"))
    assert second.status_code == 409 and "another canary run is active" in second.json()["detail"]
    assert len(store.find_runs(TENANT)) == 1


def test_create_takes_the_schema_from_the_stored_connection_profile(store, client):
    no_profile = create(client, {k: v for k, v in RUN_BODY.items() if k != "schema_name"})
    assert no_profile.status_code == 422 and '"schema_name" is required' in no_profile.json()["detail"]
    store.save_connection_profile(TENANT, ConnectionProfile(id=CONN, host="10.0.0.12", database="shop"))
    made = create(client, {k: v for k, v in RUN_BODY.items() if k not in ("schema_name", "tenant_id")}
                  | {"columns": [{"name": "customer_id"}, {"name": "note", "prefix": 16}]})
    assert made.status_code == 201, made.text
    assert made.json()["schema_name"] == "shop" and made.json()["columns"] == [["customer_id", None], ["note", 16]]


def test_an_out_of_scope_action_is_refused_and_audited(store, client):
    r = create(client, dict(RUN_BODY, action="DROP_INDEX"))
    assert r.status_code == 422 and "out_of_scope" in r.json()["detail"]
    [entry] = store.audit_entries(TENANT, action="execution_refused")
    assert entry.details["fail_reason"] == "out_of_scope" and entry.actor == "somchai"
    assert not store.find_runs(TENANT)


@pytest.mark.parametrize("body, message", [
    (dict(RUN_BODY, table_name="orders; DROP TABLE x"), "table_name 'orders; DROP TABLE x' is not allowed"),
    (dict(RUN_BODY, columns=[]), '"columns": List should have at least 1 item'),
    (dict(RUN_BODY, columns=["ok", "no way"]), '"columns[1]": column \'no way\' is not allowed'),
    (dict(RUN_BODY, flavour="vanilla"), '"flavour" is not a field'),
    (dict(RUN_BODY, connection_id="Orders"), "connection_id 'Orders' is not allowed"),
    (dict(RUN_BODY, scheduled_at="tomorrow"), '"scheduled_at" must be an ISO 8601 date and time'),
    (dict(RUN_BODY, scheduled_at="2025-01-31T22:00:00"), "needs its UTC offset"),
    ({k: v for k, v in RUN_BODY.items() if k != "index_name"}, '"index_name" is required'),
])
def test_a_bad_run_is_422_and_nothing_is_written(store, client, body, message):
    r = create(client, body)
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert not store.find_runs(TENANT) and not store.audit_entries(TENANT)


def test_rolled_back_is_not_a_status_a_worker_sets(store, client):
    rid = finished_run(client, store)
    r = client.patch(f"/api/executions/{rid}/status", json={"status": "rolled_back", "fail_reason": "manual_rollback"},
                     headers=auth("t-dba"))
    assert r.status_code == 409 and "rollback flow" in r.json()["detail"]
    assert store.get_run(TENANT, rid).status == "completed"
    [refusal] = store.audit_entries(TENANT, rid, "execution_status_refused")
    assert refusal.details["status"] == "rolled_back"
    # Once the rollback flow has dropped the index and set rolled_back, the runbook's R3 call is a no-op.
    store.transition(TENANT, rid, "rolled_back", "nok", fail_reason="manual_rollback")
    again = client.patch(f"/api/executions/{rid}/status", json={"status": "rolled_back", "fail_reason": "manual_rollback",
                                                                "message": "p99 doubled"}, headers=auth("t-dba"))
    assert again.status_code == 200 and again.json()["status"] == "rolled_back"


def test_a_failed_status_needs_its_reason(store, client):
    rid = create(client).json()["id"]
    r = client.patch(f"/api/executions/{rid}/status", json={"status": "failed"}, headers=auth("t-lead"))
    assert r.status_code == 409 and "needs a fail_reason" in r.json()["detail"]
    ok = client.patch(f"/api/executions/{rid}/status", json={"status": "failed", "fail_reason": "execution_error",
                                                             "message": "target unreachable"}, headers=auth("t-lead"))
    assert ok.status_code == 200 and ok.json()["fail_reason"] == "execution_error"


def test_runs_are_read_by_tenant_and_unknown_ones_are_404(client):
    rid = create(client).json()["id"]
    other = client.get(f"/api/executions/{rid}", params={"tenant_id": "globex"}, headers=auth("t-dev"))
    assert other.status_code == 403 and "not tenant globex" in other.json()["detail"], "another tenant: 403"
    for method, path in (("GET", "/api/executions/no-such-run"), ("POST", "/api/executions/no-such-run/claim"),
                         ("GET", "/api/rollback/history/no-such-run")):
        r = client.request(method, path, headers=auth("t-dba"))
        assert r.status_code == 404 and "run no-such-run not found" in r.json()["detail"], (path, r.text)
    bad = client.get("/api/executions/not%20an%20id", headers=auth("t-dba"))
    assert bad.status_code == 422 and bad.json()["field"] == "run_id"


# --- role gates: 403, the role named, an audit entry ------------------------------------------------


@pytest.mark.parametrize("method, path, body, token, needed, action", [
    # engine/domain/roles.py: execution_create is the canary lead's or the DBA's
    ("POST", "/api/executions", RUN_BODY, "t-sre", "canary_lead or dba", "execution_create_refused"),
    ("POST", "/api/executions", RUN_BODY, "t-dev", "canary_lead or dba", "execution_create_refused"),
    ("POST", "/api/executions/{rid}/claim", {}, "t-sre", "canary_lead or dba", "execution_claim_refused"),
    ("POST", "/api/executions/{rid}/claim", {}, "t-dev", "canary_lead or dba", "execution_claim_refused"),
    ("PATCH", "/api/executions/{rid}/status", {"status": "running"}, "t-sre", "canary_lead or dba",
     "execution_status_refused"),
    ("PATCH", "/api/executions/{rid}/status", {"status": "cancelled"}, "t-dev", "canary_lead or dba",
     "execution_status_refused"),
    ("PUT", "/api/kill-switch/global", {"is_active": False, "reason": "x"}, "t-sre", "canary_lead or dba",
     "kill_switch_deactivation_refused"),
    ("PUT", f"/api/kill-switch/tenant/{TENANT}", {"is_active": False, "reason": "x"}, "t-dev",
     "canary_lead or dba", "kill_switch_deactivation_refused"),
    ("PUT", f"/api/kill-switch/connection/{CONN}", {"is_active": False, "reason": "x"}, "t-dev",
     "canary_lead or dba", "kill_switch_deactivation_refused"),
])
def test_each_gate_refuses_other_roles_with_403_and_an_audit_entry(store, client, method, path, body, token,
                                                                    needed, action):
    rid = create(client, dict(RUN_BODY, table_name="gate")).json()["id"]
    before = store.get_run(TENANT, rid)
    r = client.request(method, path.format(rid=rid), json=body, headers=auth(token))
    assert r.status_code == 403, r.text
    actor, role = TOKENS[token]
    detail = r.json()["detail"]
    if action == "kill_switch_deactivation_refused":  # engine.flows.killswitch_actions' words, as the CLI's unkill
        assert "needs the canary lead or DBA role" in detail and f"{actor} holds {role_words([role])}" in detail, detail
    else:
        # engine/flows/guard.py's words, the same from the console and the CLI
        assert detail.endswith(f"needs the {role_words(needed.split(' or '))} role; {actor} is {role_words([role])}")
    [entry] = store.audit_entries(TENANT, action=action)
    assert entry.actor == actor
    assert role in (entry.details.get("roles") or [entry.details.get("role")])
    after = store.get_run(TENANT, rid)
    assert (after.status, after.claimed_by) == (before.status, before.claimed_by), "the refusal changed nothing"
    assert len(store.find_runs(TENANT)) == 1


def test_the_gate_comes_before_the_body_and_after_the_token(store, client):
    """A wrong role is told so (and audited) even with a body that is not a run; what is not JSON is
    400 at the door; no token is 401 before the body is read (audited, without a token)."""
    r = client.post("/api/executions", json={"table_name": 5}, headers=auth("t-dev"))
    assert r.status_code == 403 and store.audit_entries(TENANT, action="execution_create_refused")
    assert client.post("/api/executions", content=b"not json", headers=auth("t-dev")).status_code == 400
    anonymous = client.post("/api/executions", content=b"not json", headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401
    assert [e.action for e in store.audit_entries(TENANT)] == ["execution_create_refused", "auth_failed"]


# --- rollback: the console's rules (engine.flows.rollback_flow) ----------------------------------------------


def test_rollback_decided_by_its_role_and_approved_once_by_the_other(store, client):
    rid = finished_run(client, store)
    store.add_samples(TENANT, rid, store.now(), [Sample("lock_wait", 7.2, "mariadb")])

    for token, body in (("t-dev", {}), ("t-sre", {}), ("t-lead", {}), ("t-dba", {"role": "canary_lead"})):
        r = client.post(f"/api/rollback/{rid}/trigger",
                        json={"trigger": "lock_wait", "reason": "lock wait 7 s on orders", **body}, headers=auth(token))
        assert r.status_code == 403, (token, r.text)
        assert "the DBA" in r.json()["detail"]
    assert len(store.audit_entries(TENANT, rid, "rollback_decision_refused")) == 4

    decided = client.post(f"/api/rollback/{rid}/trigger", json={"trigger": "lock_wait", "reason": "lock wait 7 s",
                                                              "rollback_type": "full"}, headers=auth("t-dba"))
    assert decided.status_code == 201, decided.text
    state = decided.json()["approvals"]
    assert state["decided_by"] == {"role": "dba", "actor": "nok"} and state["missing"] == ["canary_lead"]
    assert not state["complete"] and decided.json()["record_id"]
    twice = client.post(f"/api/rollback/{rid}/trigger", json={"trigger": "lock_wait", "reason": "again"},
                        headers=auth("t-dba"))
    assert twice.status_code == 409 and "already decided by nok" in twice.json()["detail"]

    for token, body, why in (("t-dev", {}, "not needed"), ("t-sre", {"role": "canary_lead"}, "do not hold"),
                             ("t-dba", {}, "decided this rollback")):
        r = client.post(f"/api/rollback/{rid}/approve", json=body, headers=auth(token))
        assert r.status_code == 403 and why in r.json()["detail"], (token, r.text)
    approved = client.post(f"/api/rollback/{rid}/approve", json={"note": "seen it"}, headers=auth("t-lead"))
    assert approved.status_code == 200 and approved.json()["approvals"]["complete"] is True, approved.text
    again = client.post(f"/api/rollback/{rid}/approve", json={"note": "me again"}, headers=auth("t-lead"))
    assert again.status_code == 409 and "nobody approves twice" in again.json()["detail"]
    other = client.post(f"/api/rollback/{rid}/approve", headers=auth("t-lead2"))
    assert other.status_code == 409 and "already given by somchai" in other.json()["detail"]
    assert len(store.audit_entries(TENANT, rid, "rollback_approval_refused")) == 5

    history = client.get(f"/api/rollback/history/{rid}", headers=auth("t-dev")).json()
    assert history["run_status"] == "completed" and history["trigger"] == "lock_wait"
    assert history["approvals"]["approved"] == [{"role": "canary_lead", "actor": "somchai"}]
    assert history["headline"].startswith("APPROVED") and history["level"] == "ok"
    [record] = history["records"]
    assert record["rollback_status"] == "pending" and "DROP INDEX" in record["rollback_sql"]
    assert record["rollback_details"]["metrics_at_decision"] == {"lock_wait": 7.2}
    assert [s["code"] for s in history["steps"]] == ["R1", "R2", "R3", "R4", "R5"]
    assert history["steps"][0]["done"] and not history["steps"][1]["done"]


def test_the_console_and_the_api_read_the_same_approval_state(store, client):
    """What the API recorded is what the console's own view of the store says."""
    rid = finished_run(client, store)
    client.post(f"/api/rollback/{rid}/trigger", json={"trigger": "replication_lag", "reason": "lag 75 s"},
                headers=auth("t-dba"))
    client.post(f"/api/rollback/{rid}/approve", headers=auth("t-sre"))
    view = rollback_views.rollback_view(store, _plan_like(), rid)
    assert view.state.decision_by == ("dba", "nok")
    assert view.state.approved == (("sre", "pim"),) and view.state.missing == ("canary_lead",)
    api_state = client.get(f"/api/rollback/history/{rid}", headers=auth("t-sre")).json()["approvals"]
    assert api_state["missing"] == ["canary_lead"] and api_state["complete"] is False


def _plan_like():
    from engine.domain.plan import plan_from_dict

    return plan_from_dict({"tenant": TENANT, "connection": {"id": CONN, "host": "127.0.0.1", "database": "shop"},
                           "change": {"table": "orders", "index": "idx_orders_customer", "columns": ["customer_id"]}})


def test_the_requester_cannot_be_the_only_approver_of_their_rollback(store, client):
    rid = finished_run(client, store)
    assert client.post(f"/api/rollback/{rid}/trigger", json={"trigger": "lock_wait", "reason": "7 s lock waits"},
                       headers=auth("t-dba")).status_code == 201
    alone = client.post(f"/api/rollback/{rid}/approve", headers=auth("t-nok-lead"))
    assert alone.status_code == 403 and "requester cannot be the only approver" in alone.json()["detail"]
    [refusal] = store.audit_entries(TENANT, rid, "rollback_approval_refused")
    assert refusal.actor == "nok" and refusal.details["role"] == "canary_lead"
    assert client.post(f"/api/rollback/{rid}/approve", headers=auth("t-lead")).json()["approvals"]["complete"]


def test_a_refusal_blocks_until_that_person_approves(store, client):
    rid = finished_run(client, store)
    client.post(f"/api/rollback/{rid}/trigger", json={"trigger": "lock_wait", "reason": "7 s"}, headers=auth("t-dba"))
    refused = client.post(f"/api/rollback/{rid}/approve", json={"decision": "refuse", "note": "not yet"},
                          headers=auth("t-lead"))
    assert refused.status_code == 200 and refused.json()["approvals"]["refused"] == [
        {"role": "canary_lead", "actor": "somchai"}]
    assert client.get(f"/api/rollback/history/{rid}", headers=auth("t-dev")).json()["headline"].startswith("BLOCKED")
    assert client.post(f"/api/rollback/{rid}/approve", json={"decision": "refuse"},
                       headers=auth("t-lead")).status_code == 409
    assert client.post(f"/api/rollback/{rid}/approve", headers=auth("t-lead")).json()["approvals"]["complete"]


def test_nothing_to_roll_back_or_approve(store, client):
    rid = create(client).json()["id"]  # scheduled: its index was never created
    r = client.post(f"/api/rollback/{rid}/trigger", json={"trigger": "lock_wait", "reason": "x"}, headers=auth("t-dba"))
    assert r.status_code == 409 and "nothing it may roll back" in r.json()["detail"]
    a = client.post(f"/api/rollback/{rid}/approve", headers=auth("t-lead"))
    assert a.status_code == 409 and "no rollback has been decided" in a.json()["detail"]
    h = client.get(f"/api/rollback/history/{rid}", headers=auth("t-lead")).json()
    assert h["approvals"] is None and h["records"] == [] and h["headline"].startswith("NOTHING TO ROLL BACK")
    for body, message in (({"trigger": "nope", "reason": "x"}, '"trigger": Input should be \'lock_wait\''),
                          ({"trigger": "lock_wait", "reason": "   "}, '"reason" must not be blank'),
                          ({"trigger": "lock_wait"}, '"reason" is required'),
                          ({"trigger": "lock_wait", "reason": "x", "rollback_type": "partial"},
                           '"rollback_type": Input should be \'full\'')):
        bad = client.post(f"/api/rollback/{rid}/trigger", json=body, headers=auth("t-dba"))
        assert bad.status_code == 422 and message in bad.json()["detail"], bad.text


# --- audit: filtered and paged ----------------------------------------------------------------------


def test_audit_is_filtered_by_run_and_action_and_paged(store, client):
    for n in range(7):
        client.put("/api/kill-switch/global", json={"is_active": n % 2 == 0, "reason": f"drill {n}"},
                   headers=auth("t-lead"))
    rid = create(client).json()["id"]
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"after": after} if after is not None else {})
        page = client.get("/api/audit", params=params, headers=auth("t-dev")).json()
        pages += 1
        seen += page["entries"]
        after = page["next_after"]
        assert page["limit"] == 3 and len(page["entries"]) <= 3
        if after is None:
            break
    assert pages == 3 and [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    assert [e["action"] for e in seen] == [e.action for e in store.audit_entries(TENANT)]
    assert len(seen) == 9  # seven switches, the run, its scheduled time
    only = client.get("/api/audit", params={"action": "kill_switch_deactivated"}, headers=auth("t-sre")).json()
    assert [e["details"]["reason"] for e in only["entries"]] == ["drill 1", "drill 3", "drill 5"]
    mine = client.get("/api/audit", params={"run_id": rid}, headers=auth("t-sre")).json()["entries"]
    assert [e["action"] for e in mine] == ["run_created", "run_scheduled_at"]
    assert mine[0]["execution_run_id"] == rid and mine[0]["created_at"].startswith("20")
    other = client.get("/api/audit", params={"tenant_id": "globex"}, headers=auth("t-sre"))
    assert other.status_code == 403, "another tenant's audit is not the SRE's to read"
    for params, message in (({"limit": 0}, '"limit": Input should be greater than or equal to 1'),
                            ({"limit": "ten"}, '"limit": Input should be a valid integer'), ({"after": -1}, '"after"'),
                            ({"action": "DROP TABLE"}, '"action"'), ({"run": rid}, "unknown query parameter 'run'")):
        r = client.get("/api/audit", params=params, headers=auth("t-sre"))
        assert r.status_code == 422 and message in r.json()["detail"], (params, r.text)


# --- health, the document, the errors -------------------------------------------------------------


def test_health_and_the_openapi_document_match_the_routes(api, client):
    assert client.get("/health").json() == {"status": "ok", "store": "ok"}
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    documented = {(path, m.upper()) for path, item in doc["paths"].items() for m in item}
    for path, method in documented:  # every documented operation is served (no 404/405 for its path)
        r = client.request(method, path.replace("{", "").replace("}", ""), headers=auth("t-lead"))
        assert r.status_code != 405 and "no endpoint" not in r.text, (method, path, r.text)
    assert {("POST", "/api/rollback/{run_id}/trigger"), ("GET", "/api/audit"), ("POST", "/api/rollbacks"),
            ("POST", "/api/executions/{run_id}/execute"), ("POST", "/api/audit")} <= {(m, p) for p, m in documented}
    create_op = doc["paths"]["/api/executions"]["post"]
    assert "execution_create" in create_op["description"] and "403" in create_op["responses"]
    assert create_op["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    assert create_op["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/health"]["get"]
    text = client.get("/openapi.json").text
    assert "t-lead" not in text


def test_errors_are_problem_documents_with_the_right_4xx(client):
    h = auth("t-lead")
    assert client.get("/api/nothing", headers=h).json()["detail"].startswith("no endpoint at /api/nothing")
    wrong = client.delete("/api/kill-switch/connection/x", headers=h)
    assert wrong.status_code == 405 and set(wrong.headers["allow"].split(", ")) >= {"GET", "PUT"}
    assert "DELETE is not allowed" in wrong.json()["detail"]
    big = client.post("/api/executions", content=b"{" + b" " * 70_000 + b"}", headers=h)
    assert big.status_code == 413 and big.json()["detail"].startswith("the body is larger")
    # A raw control character inside a string is taken (docs/api.md): that body is JSON, missing its fields.
    for content, status in ((b"[]", 422), (b"nul", 400), ("{\"table_name\": \"\u0000\"}".encode(), 422)):
        r = client.post("/api/executions", content=content, headers={**h, "Content-Type": "application/json"})
        assert r.status_code == status and r.headers["content-type"] == "application/problem+json", r.text
        assert {"type", "title", "status", "detail"} <= set(r.json()) and r.json()["status"] == status
    dup = client.get("/api/kill-switch", params=[("tenant_id", "acme"), ("tenant_id", "globex")], headers=h)
    assert dup.status_code == 422 and "more than once" in dup.json()["detail"]
    typo = client.get("/api/kill-switch", params={"conection_id": CONN}, headers=h)
    assert typo.status_code == 422 and "unknown query parameter 'conection_id'" in typo.json()["detail"]


# --- the console's remote kill-switch backend against the served API ---------------------------------


def test_the_remote_backend_drives_the_served_api_and_fails_closed_when_it_is_down(store):
    server = serve_in_thread(create_app(store, TENANT, TOKENS))
    lead, dev = RemoteKillSwitch(server.url, token="t-lead"), RemoteKillSwitch(server.url, token="t-dev")
    try:
        off = lead.read(TENANT, CONN)
        assert not off.active and off.error is None and off.describe() == "off"
        dev.set(TENANT, "connection", True, "dev", "latency spike", CONN)
        on = lead.read(TENANT, CONN)
        assert on.active and on.active_scopes() == ["connection"] and on.scopes["connection"].set_by == "dev"
        assert EmbeddedKillSwitch(store).read(TENANT, CONN).active_scopes() == ["connection"]
        with pytest.raises(KillSwitchApiError, match=r"\(403\).*canary lead or DBA"):
            dev.set(TENANT, "connection", False, "dev", "all clear", CONN)
        lead.set(TENANT, "connection", False, "somchai", "false alarm", CONN)
        assert not lead.read(TENANT, CONN).active
        lead.set(TENANT, "global", True, "somchai", "stop everything")
        server.stop()
        down = lead.read(TENANT, CONN)
    finally:
        server.stop()
        lead.close()
        dev.close()
    assert down.active and down.fail_closed and down.describe().startswith("ACTIVE (fail-closed: API unreachable")
    assert down.describe() != "off"
    assert EmbeddedKillSwitch(store).read(TENANT, CONN).active, "the switch set through the API is in the store"


def test_the_remote_backend_fails_closed_on_a_token_the_api_does_not_know(api):
    stranger = RemoteKillSwitch(api.url, token="not-a-token")
    try:
        reading = stranger.read(TENANT, CONN)
    finally:
        stranger.close()
    assert reading.active and "HTTP 401" in reading.error


# --- the token file -----------------------------------------------------------------------------------


SECRET = "s3cr3t-token-for-somchai-0123456789"


def _token_file(tmp_path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "tokens.toml"
    p.write_text(text)
    p.chmod(mode)
    return p


GOOD = f'''tenant = "acme"
[[token]]
user = "somchai"
role = "canary_lead"
token = "{SECRET}"
[[token]]
user = "nok"
role = "dba"
token = "another-long-token-0123456789"
'''


def test_a_token_file_is_read(tmp_path):
    tf = load_tokens(_token_file(tmp_path, GOOD))
    assert tf.tenant == "acme" and tf.tokens[SECRET] == ("somchai", "canary_lead") and tf.warnings == ()
    assert tf.describe() == "nok (dba), somchai (canary_lead)"


@pytest.mark.parametrize("mode, message", [(0o644, "readable by every user"), (0o606, "readable by every user"),
                                           (0o602, "usable by every user"), (0o620, "writable by its group")])
def test_a_token_file_others_can_use_is_refused(tmp_path, mode, message):
    with pytest.raises(TokenFileError, match=message) as refused:
        load_tokens(_token_file(tmp_path, GOOD, mode))
    assert "chmod 600" in str(refused.value) and SECRET not in str(refused.value)


def test_a_group_readable_token_file_is_a_warning(tmp_path):
    tf = load_tokens(_token_file(tmp_path, GOOD, 0o640))
    assert len(tf.tokens) == 2 and "readable by its group" in tf.warnings[0]


@pytest.mark.parametrize("text, message", [
    ("tenant = 'acme'\n", "no [[token]] entries"),
    (f'[[token]]\nuser = "a"\nrole = "admin"\ntoken = "{SECRET}"\n', "'role' must be one of"),
    ('[[token]]\nuser = "a"\nrole = "dba"\ntoken = "short"\n', "at least 16 characters"),
    (f'[[token]]\nuser = "a"\nrole = "dba"\ntoken = "{SECRET}"\n[[token]]\nuser = "b"\nrole = "sre"\n'
     f'token = "{SECRET}"\n', "the same token as [[token]] #1"),
    (f'[[token]]\nuser = "a b"\nrole = "dba"\ntoken = "{SECRET}"\n', "'user' must be a name"),
    (f'[[token]]\nuser = "a"\nrole = "dba"\ntoken = "{SECRET}"\nsecret = 1\n', "unknown key(s) secret"),
    (f'token = "{SECRET}"\n[oops\n', "not valid TOML"),
    (f'tenant = "Not A Slug"\n[[token]]\nuser = "a"\nrole = "dba"\ntoken = "{SECRET}"\n', "tenant 'Not A Slug'"),
])
def test_a_bad_token_file_says_what_is_wrong_and_never_shows_a_token(tmp_path, text, message):
    with pytest.raises(TokenFileError) as refused:
        load_tokens(_token_file(tmp_path, text))
    assert message in str(refused.value) and SECRET not in str(refused.value)


def test_a_missing_token_file_shows_the_format(tmp_path):
    with pytest.raises(TokenFileError, match=r"(?s)not found.*\[\[token\]\]"):
        load_tokens(tmp_path / "nope.toml")


# --- the command ----------------------------------------------------------------------------------------


def _api_command(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "console.api_cmd", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def test_the_api_command_serves_until_sigterm_and_never_prints_a_token(tmp_path):
    tokens = _token_file(tmp_path, GOOD, 0o640)
    proc = _api_command("--listen", "127.0.0.1:0", "--store", f"sqlite:///{tmp_path}/s.db", "--tokens", str(tokens))
    try:
        line = proc.stdout.readline()
        url = re.search(r"canary API on (http://127\.0\.0\.1:\d+)", line)
        assert url, f"no start-up line: {line!r}"
        assert "somchai (canary_lead)" in line and "tenant acme" in line
        with httpx.Client(base_url=url.group(1), timeout=5) as c:
            assert c.get("/health").json()["status"] == "ok"
            put = c.put("/api/kill-switch/global", json={"is_active": True, "reason": "drill"}, headers=auth(SECRET))
            assert put.status_code == 200 and put.json()["actor"] == "somchai"
            assert c.get("/api/kill-switch/status", headers=auth("nope-nope-nope-nope")).status_code == 401
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "canary API stopped" in out and "readable by its group" in err
    assert SECRET not in line + out + err and "another-long-token" not in line + out + err


@pytest.mark.parametrize("args, message", [
    (["--listen", "nowhere"], "give HOST:PORT"),
    (["--listen", "127.0.0.1:99999"], "give HOST:PORT"),
    (["--tenant", "Bad"], "which tenant"),
])
def test_the_api_command_refuses_bad_arguments(tmp_path, capsys, args, message):
    tokens = _token_file(tmp_path, GOOD)
    assert api_cmd.main(["--store", f"sqlite:///{tmp_path}/s.db", "--tokens", str(tokens), *args]) == 2
    out, err = capsys.readouterr()
    assert message in err and SECRET not in out + err


def test_the_api_command_refuses_a_world_readable_token_file(tmp_path, capsys):
    tokens = _token_file(tmp_path, GOOD, 0o644)
    assert api_cmd.main(["--store", f"sqlite:///{tmp_path}/s.db", "--tokens", str(tokens)]) == 2
    out, err = capsys.readouterr()
    assert "readable by every user" in err and f"chmod 600 {tokens}" in err and SECRET not in out + err
    assert not (tmp_path / "s.db").exists(), "refused before the store was opened"


def test_the_api_command_on_a_taken_port_says_so(tmp_path, capsys, api):
    tokens = _token_file(tmp_path, GOOD)
    assert api_cmd.main(["--listen", f"127.0.0.1:{api.port}", "--store", f"sqlite:///{tmp_path}/s.db",
                         "--tokens", str(tokens)]) == 1
    assert f"cannot listen on 127.0.0.1:{api.port}" in capsys.readouterr().err


# --- transport: TLS, or an explicit --insecure off loopback ----------------------------------------------


def test_a_non_loopback_address_needs_tls_or_insecure(tmp_path, capsys):
    tokens = _token_file(tmp_path, GOOD)
    assert api_cmd.main(["--listen", "0.0.0.0:0", "--store", f"sqlite:///{tmp_path}/s.db", "--tokens", str(tokens)]) == 2
    err = capsys.readouterr().err
    assert "--tls-cert FILE --tls-key FILE" in err and "--insecure" in err and SECRET not in err
    assert not (tmp_path / "s.db").exists(), "refused before the store was opened"
    assert api_cmd.main(["--listen", "0.0.0.0:0", "--store", f"sqlite:///{tmp_path}/s.db", "--tokens", str(tokens),
                         "--tls-cert", str(tmp_path / "c.pem")]) == 2
    assert "give both --tls-cert and --tls-key" in capsys.readouterr().err


def test_insecure_is_said_in_the_banner(tmp_path):
    tokens = _token_file(tmp_path, GOOD)
    proc = _api_command("--listen", "0.0.0.0:0", "--insecure", "--store", f"sqlite:///{tmp_path}/s.db",
                        "--tokens", str(tokens))
    try:
        line = proc.stdout.readline()
        assert "INSECURE (no TLS)" in line and "canary API on http://0.0.0.0:" in line, line
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "INSECURE" in err and SECRET not in line + err


def test_tls_serves_https(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                           str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                          capture_output=True, timeout=60)
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr[:200]!r}")
    tokens = _token_file(tmp_path, GOOD)
    proc = _api_command("--listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key),
                        "--store", f"sqlite:///{tmp_path}/s.db", "--tokens", str(tokens))
    try:
        line = proc.stdout.readline()
        url = re.search(r"canary API on (https://127\.0\.0\.1:\d+)", line)
        assert url and "INSECURE" not in line, line
        with httpx.Client(base_url=url.group(1), verify=str(cert), timeout=10) as c:
            assert c.get("/health").json()["status"] == "ok"
            assert c.get("/api/kill-switch/status", headers=auth(SECRET)).status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_refuse_then_retrigger_then_refuse_and_keep_the_index(store, client):
    """The rollback flow's later steps over the API, by the flow's own functions and rules."""
    rid = finished_run(client, store)
    early = client.post(f"/api/rollback/{rid}/refuse", json={"reason": "not yet"}, headers=auth("t-lead"))
    assert early.status_code == 409 and "no rollback has been decided" in early.json()["detail"]
    assert client.post(f"/api/rollback/{rid}/trigger", json={"trigger": "lock_wait", "reason": "7 s"},
                       headers=auth("t-dba")).status_code == 201
    blank = client.post(f"/api/rollback/{rid}/refuse", json={"reason": "  "}, headers=auth("t-lead"))
    assert blank.status_code == 422 and blank.json()["field"] == "reason"
    assert client.post(f"/api/rollback/{rid}/refuse", json={}, headers=auth("t-lead")).json()["field"] == "reason"
    dev = client.post(f"/api/rollback/{rid}/refuse", json={"reason": "no"}, headers=auth("t-dev"))
    requester = client.post(f"/api/rollback/{rid}/refuse", json={"reason": "no"}, headers=auth("t-dba"))
    assert dev.status_code == 403 and requester.status_code == 403, (dev.text, requester.text)
    refused = client.post(f"/api/rollback/{rid}/refuse", json={"reason": "the waits are the batch job's"},
                          headers=auth("t-lead"))
    assert refused.status_code == 200 and refused.json()["result"] == "done", refused.text
    assert refused.json()["approvals"]["refused"] == [{"role": "canary_lead", "actor": "somchai"}]
    # The way forward is the canary lead's: a DBA may neither retrigger nor keep the index.
    for step in ("retrigger", "keep-index"):
        r = client.post(f"/api/rollback/{rid}/{step}", json={"reason": "x"}, headers=auth("t-dba"))
        assert r.status_code == 403 and "canary lead" in r.json()["detail"], (step, r.text)
    assert len(store.audit_entries(TENANT, rid, "rollback_retrigger_refused")) == 1
    assert len(store.audit_entries(TENANT, rid, "rollback_keep_index_refused")) == 1
    again = client.post(f"/api/rollback/{rid}/retrigger", json={"reason": "the trigger was the wrong one"},
                        headers=auth("t-lead"))
    assert again.status_code == 200 and "closed" in again.json()["message"], again.text
    assert store.audit_entries(TENANT, rid, "rollback_retriggered")[-1].actor == "somchai"
    nothing = client.post(f"/api/rollback/{rid}/keep-index", json={"reason": "x"}, headers=auth("t-lead"))
    assert nothing.status_code == 409, nothing.text  # nothing is decided any more
    assert client.post(f"/api/rollback/{rid}/trigger", json={"trigger": "lock_wait", "reason": "8 s"},
                       headers=auth("t-dba")).status_code == 201
    assert client.post(f"/api/rollback/{rid}/refuse", json={"reason": "still the batch job"},
                       headers=auth("t-lead2")).status_code == 200
    kept = client.post(f"/api/rollback/{rid}/keep-index", json={"reason": "the refusal stands"},
                       headers=auth("t-lead"))
    assert kept.status_code == 200 and "kept by somchai" in kept.json()["message"], kept.text
    [entry] = store.audit_entries(TENANT, rid, "rollback_index_kept")
    assert entry.details["reason"] == "the refusal stands"
    view = rollback_views.rollback_view(store, _plan_like(), rid)  # the console's view of the same store
    assert "KEPT" in view.status
    twice = client.post(f"/api/rollback/{rid}/keep-index", json={"reason": "again"}, headers=auth("t-lead"))
    assert twice.status_code == 409


# --- the role table decides the API's refusals: every (role, action) pair the API exposes ---------


def _api_actions(rid: str, sched: str) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    """engine/domain/roles.py action → the API call that does it."""
    return {
        "execution_create": ("POST", "/api/executions", dict(RUN_BODY, table_name="matrix")),
        "execution_claim": ("POST", f"/api/executions/{sched}/claim", {}),
        "execution_status": ("PATCH", f"/api/executions/{sched}/status", {"status": "scheduled"}),
        "execute": ("POST", f"/api/executions/{sched}/execute", None),
        "rollback_record": ("POST", "/api/rollbacks", {"execution_run_id": rid, "status": "failed"}),
        "rollback_retrigger": ("POST", f"/api/rollback/{rid}/retrigger", {"reason": "wrong trigger"}),
        "rollback_keep_index": ("POST", f"/api/rollback/{rid}/keep-index", {"reason": "refusal stands"}),
        "kill_switch_activate": ("PUT", f"/api/kill-switch/connection/{CONN}", {"is_active": True, "reason": "x"}),
        "kill_switch_global": ("PUT", "/api/kill-switch/global", {"is_active": True, "reason": "x"}),
        "kill_switch_deactivate": ("PUT", f"/api/kill-switch/connection/{CONN}",
                                   {"is_active": False, "reason": "safe again"}),
        "audit_read": ("GET", "/api/audit", None),
        "audit_report": ("POST", "/api/audit", {"action": "probe"}),
    }


def test_the_api_refuses_exactly_the_role_action_pairs_the_role_table_refuses(store, client):
    from engine.domain.roles import ACTION_ROLES, ROLES, may

    rid = finished_run(client, store)
    sched = create(client, dict(RUN_BODY, table_name="sched")).json()["id"]
    calls = _api_actions(rid, sched)
    assert set(calls) <= set(ACTION_ROLES), "an action the role table does not name"
    token_of = {role: next(t for t, (_a, r) in TOKENS.items() if r == role) for role in ROLES}
    wrong = []
    for action, (method, path, body) in calls.items():
        for role in ROLES:
            r = client.request(method, path, json=body, headers=auth(token_of[role]))
            assert r.status_code < 500, (action, role, r.text)
            refused_for_role = r.status_code == 403
            if refused_for_role == may(action, {role}):
                wrong.append(f"{action} by {role}: {r.status_code} {r.text[:120]}")
            if refused_for_role:  # said so and audited, as every refusal
                assert TOKENS[token_of[role]][0] in r.json()["detail"], (action, role, r.text)
    assert not wrong, "\n".join(wrong)
    refused = {e.action for e in store.audit_entries(TENANT) if e.action.endswith("_refused")}
    assert {"execution_create_refused", "rollback_retrigger_refused", "rollback_keep_index_refused",
            "kill_switch_deactivation_refused"} <= refused
