"""Fuzz the API from its own OpenAPI document (FastAPI's): schemathesis, in-process over ASGI,
against a real SQLite store, with a valid token of each role. Every answer must be as documented
(status, content type, schema), never a 5xx and never a traceback, every error a problem document;
half the generated run ids are replaced by real runs' so the handlers behind the 404 are reached
too. Kept under a minute (few examples per operation and role; FUZZ_EXAMPLES=N for a longer run)."""

from __future__ import annotations

import os
import re
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api import create_app
from api.auth import RUN_ID_PATTERN
from engine.adapters.store import ExecutionRun, Store
from engine.domain.plan import ROLES

pytestmark = pytest.mark.long  # minutes: CI's second step (scripts/test --long)

TENANT = "acme"
TOKENS = {f"fuzz-{role}-token-0123456789": (f"fuzz-{role}", role) for role in ROLES}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
TOKEN_OF = {role: token for token, (_, role) in TOKENS.items()}
# Schema-valid requests that a rule answers with 422 (documented in the operations' descriptions):
# the fuzzer's own positive-data check knows no rules, so ours accepts these and only these.
RULES_ON_VALID_DATA = ("deactivation needs a reason", '"tenant_id" ', '"schema_name" is required',
                      "action ", '"rollback_sql" must be', '"trigger" is required')
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "/', "sqlalchemy.exc", "site-packages")


def _run(table: str) -> ExecutionRun:
    return ExecutionRun(tenant_id=TENANT, connection_profile_id="orders-primary", schema_name="shop",
                        table_name=table, index_name="idx_fuzz", columns=[["customer_id", None]])


def valid_data_is_accepted(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 422):
        return None
    error = response.json().get("detail", "")
    assert error.startswith(RULES_ON_VALID_DATA), f"schema-valid request refused with {response.status_code}: {error}"
    return None


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/store.db")
    done = store.create_run(_run("orders"), "fixture")  # a finished run whose index a rollback may drop
    store.transition(TENANT, done.id, "running", "fixture")
    store.update_run(TENANT, done.id, index_created_by_run=True)
    store.transition(TENANT, done.id, "completed", "fixture")
    live = store.create_run(_run("payments"), "fixture")  # holds the scope lock
    yield store, (done.id, live.id)
    store.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_store):
    store, _ = fuzz_store
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(store, TENANT, TOKENS))


schema = schemathesis.pytest.from_fixture("api_schema")


def no_5xx_no_traceback(ctx, response, case):
    text = response.text
    assert response.status_code < 500, f"a {response.status_code} for a request: {text[:300]}"
    for mark in TRACEBACK_MARKS:
        assert mark not in text, f"the answer shows {mark!r}: {text[:300]}"
    if response.status_code >= 400:
        kind = response.headers.get("content-type") or response.headers.get("Content-Type")
        assert (kind[0] if isinstance(kind, list) else kind) == "application/problem+json", text[:300]
        problem = response.json()
        assert {"type", "title", "status", "detail"} <= set(problem) and problem["status"] == response.status_code


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_documented_api_survives_fuzzing(case, fuzz_store):
    _, run_ids = fuzz_store
    run_id = (case.path_parameters or {}).get("run_id")
    if isinstance(run_id, str) and re.fullmatch(RUN_ID_PATTERN, run_id):
        pick = zlib.crc32(run_id.encode()) % 3  # two in three: the finished run or the live one
        if pick < 2:
            case.path_parameters["run_id"] = run_ids[pick]
    checks = dict(additional_checks=[no_5xx_no_traceback, valid_data_is_accepted],
                  excluded_checks=[positive_data_acceptance])
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        case.call_and_validate(**checks)  # a case without its Authorization header: sent as generated
        return
    for role in ROLES:  # each generated request, with a token of every role
        try:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN_OF[role]}"}, **checks)
        except BaseException as exc:
            exc.add_note(f"with the {role} token")
            raise
