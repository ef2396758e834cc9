"""Plan loading and validation (SPEC §2): one clear message per problem, never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.plan import PlanError, load_plan, parse_plan, plan_from_dict

GOOD = """
tenant = "acme"
store_url = "sqlite:////tmp/x.db"

[connection]
id = "orders-primary"
host = "10.0.0.12"
port = 3307
user = "canary"
database = "shop"
password_env = "CANARY_DB_PASSWORD"

[replica]
host = "10.0.0.13"
database = "shop"
password_env = "CANARY_DB_PASSWORD"

[change]
table = "orders"
index = "idx_orders_customer_created"
columns = ["customer_id", {name = "note", prefix = 16}]
query_digests = ["5E1F00AA"]

[[people]]
name = "Somchai"
role = "canary_lead"
unix_user = "somchai"
contact = "@somchai"

[[people]]
name = "Nok"
roles = ["dba", "sre"]
unix_user = "nok"

[window]
off_peak = "22:00-06:00"
utc_offset = "+07:00"

[integrations]
prometheus_url = "http://prom:9090/"
kill_switch_api_url = "https://ks.internal"
kill_switch_api_token_env = "CANARY_API_TOKEN"
webhook_url = "https://hooks.example/x"

[thresholds.latency_p50]
warning = 8

[executor]
lock_wait_timeout = 3
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(text)
    return caught.value.problems


def test_a_full_plan_parses(monkeypatch):
    monkeypatch.setenv("CANARY_DB_PASSWORD", "s3cret")
    plan = parse_plan(GOOD, "good.toml")
    assert plan.tenant == "acme" and plan.schema == "shop"
    assert plan.connection.port == 3307 and plan.connection.password() == "s3cret"
    assert "s3cret" not in plan.connection.describe() and "s3cret" not in repr(plan)
    assert plan.replica is not None and plan.replica.host == "10.0.0.13"
    assert [(c.name, c.prefix) for c in plan.change.columns] == [("customer_id", None), ("note", 16)]
    assert plan.change.query_digests == ("5e1f00aa",)
    assert plan.roles_of("nok") == {"dba", "sre"} and plan.roles_of("somchai") == {"canary_lead"}
    assert plan.roles_of("mallory") == set()
    assert plan.prometheus_url == "http://prom:9090"
    assert plan.thresholds == {"latency_p50": {"warning": 8}}
    assert plan.executor.lock_wait_timeout == 3 and plan.executor.mode == "canary"


def test_a_password_in_the_file_is_refused_wherever_it_is():
    problems = problems_of(GOOD.replace('password_env = "CANARY_DB_PASSWORD"\n\n[replica]',
                                        'password = "hunter2"\n\n[replica]'))
    assert len(problems) == 1
    assert "'connection.password'" in problems[0] and "password_env" in problems[0]
    assert "hunter2" not in problems[0]
    nested = problems_of(GOOD + '\n[connection.tls]\nsecret = "x"\n')
    assert any("connection.tls.secret" in p for p in nested)


@pytest.mark.parametrize("edit, key", [
    (('tenant = "acme"', 'tenant = "Acme Corp"'), "'tenant'"),
    (('table = "orders"', 'table = "orders; DROP TABLE users"'), "'change.table'"),
    (('index = "idx_orders_customer_created"', 'index = "a`b"'), "'change.index'"),
    (('"customer_id"', '"customer id"'), "'change.columns[0]'"),
    (("port = 3307", "port = 99999"), "'connection.port'"),
    (('off_peak = "22:00-06:00"', 'off_peak = "late"'), "'window.off_peak'"),
    (('utc_offset = "+07:00"', 'utc_offset = "Bangkok"'), "'window.utc_offset'"),
    (('role = "canary_lead"', 'role = "boss"'), "unknown role"),
    (('prometheus_url = "http://prom:9090/"', 'prometheus_url = "prom:9090"'), "'integrations.prometheus_url'"),
    (('[executor]', '[executor]\nmode = "yolo"'), "'executor.mode'"),
    (('[executor]', '[executor]\nlock_wait_timeout_s = 3'), "unknown key 'executor.lock_wait_timeout_s'"),
    (('store_url = "sqlite:////tmp/x.db"', 'store_url = 5'), "store_url"),
    (('query_digests = ["5E1F00AA"]', 'query_digests = ["not hex!"]'), "'change.query_digests'"),
    (('{name = "note", prefix = 16}', '{name = "note", prefix = 0}'), "prefix"),
])
def test_each_problem_names_its_key(edit, key):
    problems = problems_of(GOOD.replace(*edit))
    assert len(problems) == 1, problems
    assert key in problems[0]


def test_out_of_scope_actions_are_refused():
    problems = problems_of(GOOD.replace('table = "orders"', 'table = "orders"\naction = "DROP_INDEX"'))
    assert problems == ["'change.action' 'DROP_INDEX' is out of scope: a canary does ADD_INDEX only"]


def test_several_problems_several_messages():
    problems = problems_of('tenant = "BAD TENANT"\nsurprise = 1\n[connection]\nport = "x"\n')
    assert len(problems) >= 4
    joined = "\n".join(problems)
    for key in ("'tenant'", "unknown key 'surprise'", "'connection.port'", "'connection.database'", "'[change]'"):
        assert key in joined


def test_not_toml_and_missing_file(tmp_path):
    assert problems_of("tenant = [unclosed")[0].startswith("not valid TOML")
    with pytest.raises(PlanError) as caught:
        load_plan(tmp_path / "nope.toml")
    assert "file not found" in caught.value.render()


def test_off_peak_window_across_midnight_in_utc_plus_7():
    window = parse_plan(GOOD).off_peak
    day = datetime(2026, 11, 22, tzinfo=UTC)
    assert window.contains(day + timedelta(hours=15, minutes=30))  # 22:30 local
    assert window.contains(day + timedelta(hours=22, minutes=59))  # 05:59 local
    assert not window.contains(day + timedelta(hours=23))  # 06:00 local: the end is exclusive
    assert not window.contains(day + timedelta(hours=5))  # 12:00 local
    assert window.describe() == "22:00-06:00 UTC+07:00"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["tenant", "connection", "change", "people", "window", "executor",
                                        "integrations", "thresholds", "replica", "store_url", "x"]),
                       json_values, max_size=8))
def test_any_input_gives_a_plan_or_plan_errors_never_a_crash(data):
    try:
        plan_from_dict(data)
    except PlanError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


def test_threshold_overrides_are_validated_with_the_plan_and_applied():
    plan = parse_plan(GOOD)
    assert plan.profile().rule("latency_p50").warning == 8
    problems = problems_of(GOOD.replace("[thresholds.latency_p50]\nwarning = 8",
                                        "[thresholds.latency_p50]\nwarning = 80\n[thresholds.lag]\nwarning = 1"))
    assert any("'thresholds.latency_p50'" in p and "critical" in p for p in problems)
    assert any("unknown key 'thresholds.lag'" in p for p in problems)
