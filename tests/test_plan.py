"""The canary plan (docs/product.md#the-plan-input): a full plan parses; every kind of bad input gets a PlanError with one
clear message per problem naming the key; the off-peak window; roles; and no input whatsoever
makes plan_from_dict raise anything but PlanError."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.domain.plan import (
    ROLES,
    TLS,
    IndexColumn,
    OffPeakWindow,
    PlanError,
    load_plan,
    parse_plan,
    plan_from_dict,
)

FULL = """
tenant = "acme"
store_url = "sqlite:////var/lib/canary/store.db"

[connection]
id = "orders-primary"
host = "db1.internal"
port = 3307
user = "canary"
database = "shop"
password_env = "CANARY_DB_PASSWORD"

[connection.tls]
ca = "/etc/ssl/ca.pem"
verify_identity = true

[replica]
id = "orders-replica"
host = "db2.internal"
port = 3306
user = "canary"
database = "shop"
password_env = "CANARY_REPLICA_PASSWORD"

[change]
action = "ADD_INDEX"
table = "orders"
index = "idx_orders_customer_note"
columns = ["customer_id", {name = "note", prefix = 16}]
query_digests = ["5E1F00AABB"]

[[people]]
name = "Somchai"
role = "canary_lead"
unix_user = "somchai"
contact = "@somchai"

[[people]]
name = "Nok"
roles = ["dba", "sre"]
unix_user = "nok"
contact = "nok@example.com"

[[people]]
name = "dev1"
role = "developer"

[window]
off_peak = "22:00-06:00"
utc_offset = "+07:00"

[integrations]
prometheus_url = "http://prometheus:9090/"
kill_switch_api_url = "https://ks.internal/"
kill_switch_api_token_env = "CANARY_API_TOKEN"
webhook_url = "https://hooks.example/T0/B0"

[thresholds]
min_samples = 12

[thresholds.latency_p50]
warning = 8
critical = 40

[executor]
mode = "canary"
auto_rollback = false
lock_wait_timeout = 3
lease_seconds = 20.0
baseline_window_seconds = 120
verify_window_seconds = 60
kill_poll_seconds = 0.1
cooldown_seconds = 30
rollback_attempts = 3
rollback_backoff_seconds = 1.5
"""


def full() -> dict:
    """The full plan as the dict tomllib gives, to edit one key at a time."""
    return copy.deepcopy(tomllib.loads(FULL))


def problems_of(data: dict) -> list[str]:
    with pytest.raises(PlanError) as caught:
        plan_from_dict(data, "test.toml")
    problems = caught.value.problems
    assert problems and all(isinstance(p, str) and p.strip() for p in problems)
    return problems


def one_problem(data: dict) -> str:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


# --- a good plan ----------------------------------------------------------------------------


def test_the_full_plan_parses_into_every_section(monkeypatch, tmp_path):
    monkeypatch.setenv("CANARY_DB_PASSWORD", "pw-primary")
    path = tmp_path / "canary.toml"
    path.write_text(FULL, encoding="utf-8")
    plan = load_plan(path)

    assert plan.source == str(path)
    assert plan.tenant == "acme"
    assert plan.store_url == "sqlite:////var/lib/canary/store.db"

    c = plan.connection
    assert (c.id, c.host, c.port, c.user, c.database) == ("orders-primary", "db1.internal", 3307, "canary", "shop")
    assert c.password_env == "CANARY_DB_PASSWORD" and c.password() == "pw-primary"
    assert c.tls == TLS(ca="/etc/ssl/ca.pem", verify_identity=True)
    assert c.describe() == "canary@db1.internal:3307/shop"
    assert plan.schema == "shop"

    r = plan.replica
    assert r is not None
    assert (r.id, r.host, r.port, r.database, r.password_env) == (
        "orders-replica", "db2.internal", 3306, "shop", "CANARY_REPLICA_PASSWORD")
    assert r.password() is None  # the variable is not set here

    ch = plan.change
    assert (ch.action, ch.table, ch.index) == ("ADD_INDEX", "orders", "idx_orders_customer_note")
    assert ch.columns == (IndexColumn("customer_id"), IndexColumn("note", 16))
    assert ch.query_digests == ("5e1f00aabb",)

    assert [(p.name, p.roles, p.unix_user, p.contact) for p in plan.people] == [
        ("Somchai", ("canary_lead",), "somchai", "@somchai"),
        ("Nok", ("dba", "sre"), "nok", "nok@example.com"),
        ("dev1", ("developer",), None, ""),
    ]

    assert plan.off_peak == OffPeakWindow(time(22, 0), time(6, 0), timedelta(hours=7))
    assert plan.off_peak.describe() == "22:00-06:00 UTC+07:00"

    # URLs lose their trailing slash; the token is the *name* of a variable.
    assert plan.prometheus_url == "http://prometheus:9090"
    assert plan.kill_switch_api_url == "https://ks.internal"
    assert plan.kill_switch_api_token_env == "CANARY_API_TOKEN"
    assert plan.webhook_url == "https://hooks.example/T0/B0"

    assert plan.thresholds == {"min_samples": 12, "latency_p50": {"warning": 8, "critical": 40}}
    profile = plan.profile()
    assert profile.min_samples == 12
    p50 = next(r for r in profile.rules if r.key == "latency_p50")
    assert (p50.warning, p50.critical) == (8.0, 40.0)

    e = plan.executor
    assert (e.mode, e.auto_rollback, e.lock_wait_timeout, e.rollback_attempts) == ("canary", False, 3, 3)
    assert (e.lease_seconds, e.baseline_window_seconds, e.verify_window_seconds) == (20.0, 120.0, 60.0)
    assert (e.kill_poll_seconds, e.cooldown_seconds, e.rollback_backoff_seconds) == (0.1, 30.0, 1.5)

    # The password never shows up anywhere in the plan.
    assert "pw-primary" not in repr(plan)


def test_a_minimal_plan_gets_the_documented_defaults():
    plan = plan_from_dict({
        "tenant": "acme",
        "connection": {"database": "shop", "password_env": "PW"},
        "change": {"table": "orders", "index": "idx_c", "columns": ["customer_id"]},
    })
    assert plan.connection.id == "connection"
    assert (plan.connection.host, plan.connection.port, plan.connection.user) == ("127.0.0.1", 3306, "root")
    assert plan.replica is None and plan.people == ()
    assert plan.change.action == "ADD_INDEX" and plan.change.query_digests == ()
    assert plan.off_peak.describe() == "22:00-06:00 UTC+07:00"
    assert plan.store_url is None and plan.prometheus_url is None and plan.webhook_url is None
    assert plan.executor.mode == "canary" and plan.executor.auto_rollback is False


def test_roles_of_maps_unix_users_to_their_roles():
    plan = plan_from_dict(full())
    assert plan.roles_of("somchai") == {"canary_lead"}
    assert plan.roles_of("nok") == {"dba", "sre"}
    assert plan.roles_of("dev1") == {"developer"}  # no unix_user: the person's name is the user
    assert plan.roles_of("Nok") == set()  # the unix user, not the display name, when one is given
    assert plan.roles_of("mallory") == set()
    assert [p.name for p in plan.people_for_user("nok")] == ["Nok"]


def test_one_unix_user_listed_twice_gets_the_union_of_roles():
    data = full()
    data["people"].append({"name": "Nok again", "role": "developer", "unix_user": "nok"})
    assert plan_from_dict(data).roles_of("nok") == {"dba", "sre", "developer"}


# --- the off-peak window --------------------------------------------------------------------

DAY = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.mark.parametrize("utc, inside", [
    (timedelta(hours=15, minutes=30), True),   # 22:30 local
    (timedelta(hours=15), True),               # 22:00 local: the start is inclusive
    (timedelta(hours=14, minutes=59), False),  # 21:59 local
    (timedelta(hours=17), True),               # 00:00 local, past midnight
    (timedelta(hours=22, minutes=59), True),   # 05:59 local
    (timedelta(hours=23), False),              # 06:00 local: the end is exclusive
    (timedelta(hours=12), False),              # 19:00 local
    (timedelta(hours=5), False),               # 12:00 local
])
def test_off_peak_window_across_midnight_in_utc_plus_7(utc, inside):
    window = plan_from_dict(full()).off_peak
    assert window.contains(DAY + utc) is inside


def test_a_daytime_window_and_another_offset():
    data = full()
    data["window"] = {"off_peak": "01:00-05:30", "utc_offset": "-03:30"}
    window = plan_from_dict(data).off_peak
    assert window.describe() == "01:00-05:30 UTC-03:30"
    assert window.contains(DAY + timedelta(hours=4, minutes=30))  # 01:00 local
    assert window.contains(DAY + timedelta(hours=8, minutes=59))  # 05:29 local
    assert not window.contains(DAY + timedelta(hours=9))  # 05:30 local
    assert not window.contains(DAY + timedelta(hours=4, minutes=29))  # 00:59 local


# --- bad input: one message per problem, naming the key -------------------------------------


def test_missing_tenant():
    data = full()
    del data["tenant"]
    assert one_problem(data) == "'tenant' is missing"


@pytest.mark.parametrize("tenant", ["Acme Corp", "acme; drop", "", "-acme", 5])
def test_bad_tenant(tenant):
    data = full()
    data["tenant"] = tenant
    assert one_problem(data).startswith("'tenant' ")


@pytest.mark.parametrize("section, key, value", [
    ("change", "table", "orders; DROP TABLE x"),
    ("change", "table", "a`b"),
    ("change", "index", "a`b"),
    ("change", "index", "idx' OR '1'='1"),
    ("change", "table", "x" * 65),
    ("change", "index", "12345"),
    ("change", "table", ""),
    ("change", "index", 42),
    ("connection", "database", "shop db"),
    ("connection", "database", 'shop"'),
    ("replica", "database", "shop`; --"),
])
def test_hostile_identifiers_are_refused(section, key, value):
    data = full()
    data[section][key] = value
    msg = one_problem(data)
    assert msg.startswith(f"'{section}.{key}' ")
    assert "is not allowed" in msg or "must be a string" in msg
    assert "letters, digits" in msg or "must be a string" in msg  # says what is allowed


def test_hostile_column_names_are_refused_with_their_position():
    data = full()
    data["change"]["columns"] = ["customer_id", "a`b", {"name": "note; DROP TABLE x", "prefix": 16}]
    problems = problems_of(data)
    assert len(problems) == 2, problems
    assert problems[0].startswith("'change.columns[1]' ")
    assert problems[1].startswith("'change.columns[2].name' ")


@pytest.mark.parametrize("columns, needle", [
    ([], "'change.columns' must be a non-empty list"),
    ("customer_id", "'change.columns' must be a non-empty list"),
    (["customer_id", "CUSTOMER_ID"], "'change.columns' names a column twice"),
    ([{"name": "note", "prefix": 0}], "'change.columns[0].prefix'"),
    ([{"name": "note", "prefix": 3073}], "'change.columns[0].prefix'"),
    ([{"name": "note", "prefix": True}], "'change.columns[0].prefix'"),
    ([{"name": "note", "prefix": "16"}], "'change.columns[0].prefix'"),
    ([{"prefix": 16}], "'change.columns[0].name' is missing"),
    ([7], "'change.columns[0]' must be a column name"),
    ([f"c{i}" for i in range(17)], "more than 16 columns"),
])
def test_bad_columns(columns, needle):
    data = full()
    data["change"]["columns"] = columns
    assert needle in one_problem(data)


def test_the_index_cannot_be_primary():
    data = full()
    data["change"]["index"] = "PRIMARY"
    assert "'change.index' cannot be PRIMARY" in one_problem(data)


@pytest.mark.parametrize("where, key", [
    ((), "colour"),
    (("connection",), "pasword_env"),
    (("replica",), "hots"),
    (("change",), "algorithm"),
    (("integrations",), "slack"),
    (("executor",), "lock_wait_timeout_s"),
    (("window",), "offpeak"),
    (("people", 0), "unix_usr"),
    (("connection", "tls"), "capath"),
])
def test_unknown_keys_are_named_with_what_is_allowed(where, key):
    data = full()
    node = data
    for step in where:
        node = node[step]
    node[key] = "x"
    msg = one_problem(data)
    dotted = ".".join(str(s) for s in where).replace(".0", "[0]")
    assert f"unknown key '{dotted + '.' if dotted else ''}{key}'" in msg
    assert "allowed" in msg


@pytest.mark.parametrize("action", ["DROP_INDEX", "add_index", "MODIFY_COLUMN", "ADD_INDEX; DROP TABLE x", 1])
def test_any_action_but_add_index_is_out_of_scope(action):
    data = full()
    data["change"]["action"] = action
    msg = one_problem(data)
    assert msg.startswith("'change.action' ") and "out of scope" in msg and "ADD_INDEX" in msg


@pytest.mark.parametrize("where", [
    (),
    ("connection",),
    ("replica",),
    ("change",),
    ("integrations",),
    ("executor",),
    ("window",),
    ("people", 1),
    ("connection", "tls"),
])
@pytest.mark.parametrize("key", ["password", "PASSWORD", "passwd", "secret", "token"])
def test_a_password_anywhere_is_refused_and_points_to_password_env(where, key):
    data = full()
    node = data
    for step in where:
        node = node[step]
    node[key] = "hunter2"
    msg = one_problem(data)  # one problem, one message: not also an "unknown key"
    dotted = ".".join(str(s) for s in where).replace(".1", "[1]")
    assert f"'{dotted + '.' if dotted else ''}{key}'" in msg
    assert "password_env" in msg and "option_file" in msg
    assert "hunter2" not in msg


def test_a_password_in_a_toml_file_is_refused():
    text = FULL.replace('password_env = "CANARY_DB_PASSWORD"', 'password = "hunter2"')
    with pytest.raises(PlanError) as caught:
        parse_plan(text)
    assert len(caught.value.problems) == 1
    assert "'connection.password'" in caught.value.problems[0]
    assert "password_env" in caught.value.problems[0]
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.render()


@pytest.mark.parametrize("port", [0, -1, 65536, 99999, "3306", 3306.0, True])
def test_bad_port(port):
    data = full()
    data["connection"]["port"] = port
    msg = one_problem(data)
    assert msg.startswith("'connection.port' must be a whole number from 1 to 65535")


@pytest.mark.parametrize("port", [1, 65535])
def test_port_bounds_are_inclusive(port):
    data = full()
    data["connection"]["port"] = port
    assert plan_from_dict(data).connection.port == port


@pytest.mark.parametrize("off_peak", ["late", "22:00", "22:00-06:00-08:00", "25:00-06:00", "22:00-22:00",
                                      "22h-6h", "", "22:00+01:00-06:00", "22:00-06:00Z"])
def test_bad_off_peak(off_peak):
    data = full()
    data["window"]["off_peak"] = off_peak
    msg = one_problem(data)
    assert msg.startswith("'window.off_peak' ")
    assert "22:00-06:00" in msg  # shows what is allowed


@pytest.mark.parametrize("offset", ["Bangkok", "7", "+25:00", "", "UTC+7"])
def test_bad_utc_offset(offset):
    data = full()
    data["window"]["utc_offset"] = offset
    msg = one_problem(data)
    assert msg.startswith("'window.utc_offset' ") and "+07:00" in msg


@pytest.mark.parametrize("person, needle", [
    ({"name": "Boss", "role": "boss"}, "unknown role(s) ['boss']"),
    ({"name": "Boss", "roles": ["dba", "root"]}, "unknown role(s) ['root']"),
    ({"name": "Boss", "role": "DBA"}, "unknown role(s) ['DBA']"),
    ({"name": "Boss"}, "needs role or roles"),
    ({"name": "Boss", "roles": []}, "needs role or roles"),
    ({"role": "dba"}, "'people[3].name' is missing"),
    ({"name": "Boss", "role": "dba", "unix_user": ""}, "'people[3].unix_user'"),
])
def test_bad_people(person, needle):
    data = full()
    data["people"].append(person)
    msg = one_problem(data)
    assert msg.startswith("'people[3]")
    assert needle in msg
    if "role" in needle:
        assert all(r in msg for r in ROLES)  # says what is allowed


@pytest.mark.parametrize("edit, needle", [
    (("integrations", "prometheus_url", "prometheus:9090"), "'integrations.prometheus_url'"),
    (("integrations", "webhook_url", "ftp://x"), "'integrations.webhook_url'"),
    (("integrations", "kill_switch_api_token_env", "1TOKEN"), "'integrations.kill_switch_api_token_env'"),
    (("connection", "password_env", "MY PASSWORD"), "'connection.password_env'"),
    (("connection", "host", "db 1"), "'connection.host'"),
    (("connection", "user", ""), "'connection.user'"),
    (("connection", "option_file", "/nonexistent/.my.cnf"), "'connection.option_file'"),
    (("executor", "mode", "yolo"), "'executor.mode'"),
    (("executor", "auto_rollback", "yes"), "'executor.auto_rollback'"),
    (("executor", "lease_seconds", 0), "'executor.lease_seconds'"),
    (("executor", "lock_wait_timeout", 61), "'executor.lock_wait_timeout'"),
    (("change", "query_digests", ["not hex!"]), "'change.query_digests'"),
])
def test_other_bad_values_name_their_key(edit, needle):
    section, key, value = edit
    data = full()
    data[section][key] = value
    assert needle in one_problem(data)


@pytest.mark.parametrize("key", ["connection", "change", "window", "integrations", "executor", "thresholds"])
def test_a_section_that_is_not_a_table(key):
    data = full()
    data[key] = "oops"
    problems = problems_of(data)
    assert any(f"'{key}'" in p or f"'[{key}]'" in p for p in problems), problems


def test_store_url_must_be_a_string():
    data = full()
    data["store_url"] = 5
    assert one_problem(data).startswith("store_url must be a string")


def test_missing_sections():
    problems = problems_of({"tenant": "acme"})
    assert len(problems) == 2, problems
    assert problems[0].startswith("'[connection]' is missing") and "password_env" in problems[0]
    assert problems[1].startswith("'[change]' is missing")


def test_several_problems_give_several_messages():
    data = full()
    del data["tenant"]
    data["colour"] = "red"
    data["connection"]["port"] = 0
    data["connection"]["password"] = "hunter2"
    data["change"]["table"] = "orders; DROP TABLE x"
    data["change"]["action"] = "DROP_INDEX"
    data["window"]["off_peak"] = "late"
    data["people"][0]["role"] = "boss"
    problems = problems_of(data)
    assert len(problems) == 8, problems
    for needle in ("unknown key 'colour'", "'tenant' is missing", "'connection.port'",
                   "'connection.password'", "'change.table'", "'change.action'", "'window.off_peak'",
                   "'people[0]'"):
        assert sum(needle in p for p in problems) == 1, (needle, problems)
    err = PlanError(problems, "canary.toml")
    rendered = err.render()
    assert rendered.startswith("The plan canary.toml cannot be used (8 problem(s)):")
    assert rendered.count("\n  - ") == 8


def test_invalid_toml():
    with pytest.raises(PlanError) as caught:
        parse_plan('tenant = "acme\n[connection', "bad.toml")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("not valid TOML")
    assert caught.value.source == "bad.toml"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.problems == [f"file not found: {path}. Give the path of a canary plan (TOML)."]


def test_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00tenant")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.problems[0].startswith("cannot read")


def test_a_nul_in_the_option_file_path_is_a_problem_not_a_crash():
    data = full()
    data["connection"]["option_file"] = "~\x00/.my.cnf"
    assert one_problem(data).startswith("'connection.option_file'")


# --- nothing but PlanError, whatever the input ----------------------------------------------

KEYS = [
    "tenant", "connection", "replica", "change", "people", "window", "integrations", "store_url",
    "thresholds", "executor", "prometheus_queries", "id", "host", "port", "user", "database", "socket",
    "password_env", "option_file", "option_group", "tls", "ca", "verify_identity", "table", "index",
    "columns", "action", "query_digests", "name", "prefix", "role", "roles", "unix_user", "contact",
    "off_peak", "utc_offset", "prometheus_url", "kill_switch_api_url", "kill_switch_api_token_env",
    "webhook_url", "mode", "auto_rollback", "lock_wait_timeout", "lease_seconds", "password",
]
keys = st.sampled_from(KEYS) | st.text(max_size=10)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=24)
    | st.sampled_from(["ADD_INDEX", "dba", "22:00-06:00", "22:00+01:00-06:00", "+07:00", "~\x00",
                       "orders", "a`b", "http://x", "canary", "PW", "PRIMARY"])
    | st.datetimes() | st.times()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=30,
)


def _check(data: dict) -> None:
    try:
        plan = plan_from_dict(data)
    except PlanError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    # A plan that parses is usable: its window can be asked about any moment.
    plan.off_peak.contains(DAY)
    plan.off_peak.describe()


@pytest.mark.long
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=10))
def test_arbitrary_nested_input_raises_nothing_but_plan_error(data):
    _check(data)


def _paths(node, prefix=()):
    """Every place in a plan: each table, each value, each list item."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(tomllib.loads(FULL)) if p]


@st.composite
def _mutated_plan(draw):
    """The full plan with one place replaced: by anything, or by an edit of the text that was there
    (so '22:00-06:00' becomes things like '22:00-06:00Z'). Starting from a good plan reaches the
    deeper checks that a random dict rarely gets to."""
    plan = full()
    path = draw(st.sampled_from(PATHS))
    parent = plan
    for step in path[:-1]:
        parent = parent[step]
    old = parent[path[-1]]
    if isinstance(old, str) and draw(st.booleans()):
        # an edit of the old text: a few characters of it, or of the usual suspects, put somewhere
        i = draw(st.integers(0, len(old)))
        j = draw(st.integers(i, len(old)))
        alphabet = sorted(set(old) | set("+-:Z~\x00`;' .T0123456789"))
        new = old[:i] + draw(st.text(alphabet=alphabet, max_size=8)) + old[j:]
    elif isinstance(old, dict) and draw(st.booleans()):
        new = dict(old)
        new[draw(keys)] = draw(values)
    else:
        new = draw(values)
    parent[path[-1]] = new
    return plan


@pytest.mark.long
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_plan())
def test_one_place_of_a_good_plan_replaced_by_anything(plan):
    _check(plan)


offsets = st.none() | st.just(UTC) | st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))


@settings(max_examples=500, deadline=None)
@given(st.times(timezones=offsets), st.times(timezones=offsets),
       st.sampled_from(["+07:00", "-03:30", "Z", "+00:00"]) | st.text(max_size=12),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_any_window_spec_gives_a_problem_or_a_window_that_works(start, end, offset, moment):
    data = full()
    data["window"] = {"off_peak": f"{start.isoformat()}-{end.isoformat()}", "utc_offset": offset}
    try:
        window = plan_from_dict(data).off_peak
    except PlanError as exc:
        assert all(p.startswith("'window.") for p in exc.problems), exc.problems
        return
    assert isinstance(window.contains(moment), bool)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["id", "host", "user", "database", "socket", "password_env", "option_file",
                        "option_group"]),
       st.sampled_from(["~\x00", "~root\x00/x", "a`b", "x; DROP TABLE y", "orders\n", " ", "", "~", "é"])
       | st.text(max_size=30) | st.text(max_size=30).map(lambda t: "~" + t))
def test_any_text_in_any_connection_field_gives_a_problem_or_a_profile(key, text):
    data = full()
    data["connection"][key] = text
    try:
        plan_from_dict(data)
    except PlanError as exc:
        assert all(f"'connection.{key}'" in p for p in exc.problems), exc.problems


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_to_a_plan_or_a_plan_error(text):
    try:
        parse_plan(text)
    except PlanError as exc:
        assert exc.problems


def test_bad_threshold_overrides_are_plan_problems():
    problems = problems_of_thresholds("[thresholds.latency_p50]\nwarning = 80\n[thresholds.lag]\nwarning = 1\n")
    assert any("'thresholds.latency_p50'" in p and "critical" in p for p in problems)
    assert any("unknown key 'thresholds.lag'" in p for p in problems)


def problems_of_thresholds(extra: str) -> list[str]:
    text = """
tenant = "acme"
[connection]
database = "shop"
[change]
table = "orders"
index = "idx_x"
columns = ["a"]
""" + extra
    with pytest.raises(PlanError) as caught:
        parse_plan(text)
    return caught.value.problems


def test_control_schemas_name_other_tenants_schemas_once_and_never_the_canarys_own():
    from tests.plans import ACME

    plan = parse_plan(ACME + 'control_schemas = ["shop_b", "shop_c"]\n')
    assert plan.change.control_schemas == ("shop_b", "shop_c")
    assert parse_plan(ACME).change.control_schemas == ()
    for bad, words in (('"shop_b"', "must be a list of schema names"),
                       ('["shop`; DROP"]', "change.control_schemas[0]"),
                       ('["shop_b", "SHOP_B"]', "names a schema twice"),
                       ('["shop"]', "the canary's own schema 'shop'"),
                       (str([f"t{i}" for i in range(17)]).replace("'", '"'), "more than 16")):
        with pytest.raises(PlanError) as caught:
            parse_plan(ACME + f"control_schemas = {bad}\n")
        assert words in str(caught.value), (bad, str(caught.value))
