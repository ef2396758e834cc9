"""The runbook's own calls (tests/fixtures/runbook_calls.txt: every ``curl`` line of the canary
runbook, and the calls the executor's and the kill-switch designs describe) replayed against a real
``canary-console api`` server with only an ``Authorization`` header added: each answers with the
status and the fields the documents show, and each documented refusal names its field."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api import create_app, serve_in_thread
from engine.adapters.store import Store
from engine.domain.plan import ConnectionProfile

FIXTURE = Path(__file__).parent / "fixtures" / "runbook_calls.txt"
TENANT, CONN = "acme", "orders-primary"
TOKEN = "runbook-lead-token-0123456789"
VALUES = {"TENANT_ID": TENANT, "CONNECTION_ID": CONN, "TARGET_TABLE": "orders", "INDEX_NAME": "idx_orders_customer",
          "COLUMN_NAME": "customer_id", "ISO_DATETIME": "2026-12-03T22:00:00+07:00",
          "ROLLBACK_REASON": "p99 doubled after the index"}


@dataclass
class Call:
    line: int
    note: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    status: int = 0
    expect: list[str] = field(default_factory=list)


def parse(text: str) -> list[Call]:
    calls: list[Call] = []
    note, command, start = "", "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.startswith("#") and not command:
            note = raw.lstrip("# ")
        elif raw.startswith("curl"):
            command, start = raw, n
        elif raw.startswith("=>") and command:
            calls.append(_curl(command, start, note, raw[2:].split()))
            command = ""
        elif command:
            command += "\n" + raw
    return calls


def _curl(command: str, line: int, note: str, expect: list[str]) -> Call:
    command = command.split(" | ")[0].replace("\\\n", " ")
    words = shlex.split(command)[1:]
    call = Call(line, note, "GET", "", status=int(expect[0]), expect=expect[1:])
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-X":
            call.method, i = words[i + 1], i + 2
        elif word == "-H":
            name, _, value = words[i + 1].partition(":")
            call.headers[name.strip()] = value.strip()
            i += 2
        elif word == "-d":
            call.body, i = words[i + 1], i + 2
            call.method = call.method if call.method != "GET" else "POST"
        elif word.startswith("-"):
            i += 1
        else:
            call.url, i = word, i + 1
    return call


CALLS = parse(FIXTURE.read_text())


def test_the_fixture_holds_every_documented_call():
    """Every ``curl`` line of the runbook (12), and the designs' calls (claim, status, rollbacks,
    audit, trigger, history, tenant status), are in the fixture."""
    curl_lines = [c for c in CALLS if "runbook" in c.note]
    assert len(curl_lines) >= 12
    routes = {(c.method, c.url.split("3000")[1].split("?")[0]) for c in CALLS}
    for route in (("POST", "/api/rollbacks"), ("POST", "/api/audit"), ("POST", "/api/executions/{EXECUTION_RUN_ID}/execute"),
                  ("POST", "/api/executions/{EXECUTION_RUN_ID}/claim"), ("GET", "/api/kill-switch"),
                  ("POST", "/api/rollback/{EXECUTION_RUN_ID}/trigger"), ("GET", "/api/rollback/history/{EXECUTION_RUN_ID}"),
                  ("GET", "/api/kill-switch/tenant/{TENANT_ID}/status"), ("PUT", "/api/kill-switch/connection/{CONNECTION_ID}")):
        assert route in routes, route


@pytest.fixture
def served(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    # The console stores the plan's connection profile when it opens the plan: the runbook's create
    # call names no schema, the profile's database is the run's.
    store.save_connection_profile(TENANT, ConnectionProfile(id=CONN, host="10.0.0.12", database="shop"))
    server = serve_in_thread(create_app(store, TENANT, {TOKEN: ("somchai", "canary_lead")}))
    yield store, server
    server.stop()
    store.close()


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def test_the_runbook_calls_work_as_written(served):
    store, server = served
    values = dict(VALUES)
    with httpx.Client(timeout=10) as client:
        for call in CALLS:
            url = _fill(call.url, values).replace("http://localhost:3000", server.url)
            body = _fill(call.body, values).encode() if call.body is not None else None
            r = client.request(call.method, url, content=body,
                               headers={**call.headers, "Authorization": f"Bearer {TOKEN}"})
            where = f"fixture line {call.line} ({call.note}): {call.method} {url} -> {r.status_code} {r.text[:300]}"
            assert r.status_code == call.status, where
            answer = r.json()
            for want in call.expect:
                if want.startswith("problem:"):
                    assert r.headers["content-type"] == "application/problem+json", where
                    assert answer["field"] == want.split(":", 1)[1], where
                    assert f'"{answer["field"]}"' in answer["detail"], "the refusal names the field: " + where
                    continue
                name, eq, value = want.partition("=")
                assert name in answer, where
                if eq:
                    assert json.dumps(answer[name]).strip('"') == value, where
            if call.method == "POST" and url.endswith("/api/executions"):
                values["EXECUTION_RUN_ID"] = answer["id"]
            if url.endswith("/claim") and r.status_code == 200:
                # The worker's ALTER creates the index (it needs the target): the store records it.
                store.update_run(TENANT, answer["id"], index_created_by_run=True)
    actions = [e.action for e in store.audit_entries(TENANT)]
    assert actions.count("kill_switch_deactivation_refused") == 3 and "execution_requested" in actions
    assert "reported.claim_failed" in actions and "rollback_reported" in actions
