"""Hostile bodies and clients never cost more than they are allowed (docs/api.md): the body limit
holds while reading (413 before more than the limit is read, declared or chunked), nesting is
limited (400), a key given twice is 400 naming it, an unknown field is 422 naming it, every error is
a problem document without a traceback; a kill-switch activation goes through whatever its reason
holds (stored cleaned, the answer says so); failed authentication is audited without the token, at
a rate per client address."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from api import create_app, serve_in_thread
from api.auth import Authenticator
from api.guard import MAX_BODY, MAX_DEPTH, check_json, nesting_depth
from engine.adapters.store import Store

TENANT = "acme"
TOKEN = "lead-token-0123456789abcdef"
H = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/s.db")
    yield s
    s.close()


@pytest.fixture
def api(store):
    server = serve_in_thread(create_app(store, TENANT, {TOKEN: ("somchai", "canary_lead")}))
    yield server
    server.stop()


@pytest.fixture
def client(api):
    with httpx.Client(base_url=api.url, timeout=10) as c:
        yield c


def _raw(api, head: bytes, body_parts: list[bytes]) -> tuple[bytes, int]:
    """Send ``head`` then the parts one by one until the server answers: (answer, bytes of body sent)."""
    sent = 0
    with socket.create_connection((api.host, api.port), timeout=10) as s:
        s.sendall(head)
        s.settimeout(0.05)
        for part in body_parts:
            try:
                answer = s.recv(65536)
                if answer:
                    return answer, sent
            except TimeoutError:
                pass
            try:
                s.sendall(part)
            except OSError:
                break
            sent += len(part)
        s.settimeout(10)
        return s.recv(65536), sent


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_sent(api, store):
    head = (f"PUT /api/kill-switch/global HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n").encode()
    answer, sent = _raw(api, head, [b" " * 65536] * 1600)
    assert answer.startswith(b"HTTP/1.1 413") and b"application/problem+json" in answer
    assert sent <= 2 * MAX_BODY, f"the server let {sent} bytes of a 100 MB body be sent before answering"
    assert not store.kill_switch_rows(TENANT)


def test_a_chunked_body_is_counted_while_read_and_refused_past_the_limit(api, store):
    head = (f"PUT /api/kill-switch/global HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
    answer, sent = _raw(api, head, [chunk] * 6400)  # 100 MB if nobody stops it
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent <= 4 * MAX_BODY, f"{sent} bytes were sent before the 413"


def test_deep_nesting_duplicate_keys_and_unknown_fields(client, store):
    deep = client.put("/api/kill-switch/global", content=b"[" * 10_000 + b"]" * 10_000, headers=H)
    assert deep.status_code == 400 and f"deeper than {MAX_DEPTH}" in deep.json()["detail"]
    dup = client.put("/api/kill-switch/global", content=b'{"is_active": false, "is_active": true}', headers=H)
    assert dup.status_code == 400 and dup.json()["field"] == "is_active" and "twice" in dup.json()["detail"]
    unknown = client.put("/api/kill-switch/global", json={"is_active": True, "reasn": "typo"}, headers=H)
    assert unknown.status_code == 422 and unknown.json()["field"] == "reasn"
    assert '"reasn"' in unknown.json()["detail"]
    for r in (deep, dup, unknown):
        assert r.headers["content-type"] == "application/problem+json"
        assert {"type", "title", "status", "detail"} <= set(r.json()) and "Traceback" not in r.text
    assert not store.kill_switch_rows(TENANT), "nothing was set by a refused body"


def test_the_depth_scan_ignores_brackets_in_strings():
    assert nesting_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', MAX_DEPTH) == 1
    assert nesting_depth(b'{"a": "\\"[[["}', MAX_DEPTH) == 1
    assert check_json(b'{"a": [1, {"b": []}]}') == {"a": [1, {"b": []}]}


@pytest.mark.parametrize("reason, changes", [
    ("p99 doubled \\ud800 after the index", "lone surrogates"),
    ("stop \\u001b[2J\\u001b]0;pwned\\u0007 now\\r\\nfake line", "control"),
    ("x" * 10_000, "cut from 10000 to 2000"),
    ("\\udfff\\ud800" + "\\u202e" * 50 + "y" * 9000, "lone surrogates"),
], ids=["lone-surrogate", "terminal-escapes", "10kB", "all-of-it"])
def test_an_activation_goes_on_whatever_its_reason_holds(client, store, reason, changes):
    body = ('{"is_active": true, "reason": "' + reason + '"}').encode()
    r = client.put("/api/kill-switch/global", content=body, headers=H)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["is_active"] is True and answer["global_active"] is True
    assert answer["reason_cleaned"] is True and any(changes in c for c in answer["reason_changes"])
    [row] = [x for x in store.kill_switch_rows(TENANT) if x.scope == "global"]
    assert row.is_active and row.reason == answer["reason"] and len(row.reason) <= 2001
    assert not any(0xD800 <= ord(c) <= 0xDFFF or ord(c) < 32 for c in row.reason)
    assert store.audit_entries(TENANT, action="kill_switch_reason_cleaned")
    assert store.verify_audit_chain().intact, "the audit chain hashes what was stored"


@pytest.mark.parametrize("raw", [
    b'{"is_active": true, "reason": "raw\nnewline and \x1b[31mESC\x07"}',  # control characters not escaped
    b'{"is_active": true, "reason": "not UTF-8: \xff\xfe\xc3"}',
    b'\xef\xbb\xbf{"is_active": true, "reason": "a BOM first"}',
], ids=["raw-controls", "bad-utf8", "bom"])
def test_an_activation_goes_on_even_when_its_text_is_not_strict_json(client, store, raw):
    r = client.put("/api/kill-switch/global", content=raw, headers=H)
    assert r.status_code == 200 and r.json()["global_active"] is True, r.text
    [row] = [x for x in store.kill_switch_rows(TENANT) if x.scope == "global"]
    assert row.is_active and not any(ord(c) < 32 for c in row.reason)
    assert store.verify_audit_chain().intact


def test_a_lone_surrogate_elsewhere_is_a_422_not_a_500(client, store):
    body = b'{"connection_id": "c", "schema_name": "shop", "table_name": "\\ud800", "index_name": "i", "columns": ["a"]}'
    r = client.post("/api/executions", content=body, headers=H)
    assert r.status_code == 422 and r.json()["field"] == "table_name", r.text
    reported = client.post("/api/audit", content=b'{"action": "probe", "details": {"\\udc00k": "v\\ud800"}}',
                           headers=H)
    assert reported.status_code == 201, reported.text
    assert store.verify_audit_chain().intact


def test_an_unexpected_error_is_a_500_problem_without_a_traceback(store, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("secret internals /srv/app.py line 3")
    server = serve_in_thread(create_app(store, TENANT, {TOKEN: ("somchai", "canary_lead")}))
    monkeypatch.setattr(store, "kill_switch_rows", boom)
    try:
        r = httpx.get(f"{server.url}/api/kill-switch/status", headers=H, timeout=10)
    finally:
        server.stop()
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "internal error: RuntimeError" and "secret" not in r.text and "Traceback" not in r.text


def test_failed_authentication_is_audited_without_the_token_and_rate_limited(client, store):
    for n in range(20):
        r = client.get("/api/kill-switch", headers={"Authorization": f"Bearer guess-{n}-supersecret"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    rows = store.audit_entries(TENANT, action="auth_failed")
    assert len(rows) == 5, "five rows a minute per client address, not one per attempt"
    assert rows[0].details["client"] == "127.0.0.1" and rows[0].details["why"] == "unknown bearer token"
    assert "supersecret" not in json.dumps([r.details for r in rows])


def test_the_rate_limit_window_counts_what_it_left_out(store):
    now = [0.0]
    auth = Authenticator(store, TENANT, {}, clock=lambda: now[0], per_minute=2)
    written = [auth.audit_failure("10.0.0.9", "GET", "/api/x", True) for _ in range(5)]
    assert written == [True, True, False, False, False]
    assert auth.audit_failure("10.0.0.10", "GET", "/api/x", False), "another address has its own budget"
    now[0] = 61.0
    assert auth.audit_failure("10.0.0.9", "GET", "/api/x", True)
    rows = [r for r in store.audit_entries(TENANT, action="auth_failed") if r.details["client"] == "10.0.0.9"]
    assert len(rows) == 3 and rows[-1].details["left_out_before"] == 3
