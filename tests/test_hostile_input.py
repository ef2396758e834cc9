"""Hostile input (docs/product.md#the-plan-input, docs/product.md#what-bad-input-gets): plans and identifiers built to hurt.

Part one is pure and fast: hostile text and wrong types in every field of a plan, arbitrary
TOML-ish text, and the command line on bad plans. Whatever comes in, ``parse_plan`` /
``plan_from_dict`` raise nothing but ``PlanError``; one bad field gets exactly one message, on one
line, naming the field and what is allowed; the CLI prints the messages and exits 2, never with a
traceback.

Part two runs on the sandbox MariaDB: the engine's whole normal work for a plan (the prechecks,
the scratch-table rehearsal, the size gate's exact count, the executor's checks, rollback point,
ALTER and verification, the monitor's collector, the manual rollback's rung 1, its undo and rung 2)
under a user of its own, with the server's general log on. Every statement the server received is
read back from ``mysql.general_log`` and tokenised: no identifier of the plan ever appears bare.
The same is then proven for names the validator accepts but that would change a statement's
meaning unquoted (``1e5``, ``0x1F``, ``$``, 64 characters, reserved words).
"""

from __future__ import annotations

import copy
import re
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from plans import ACME

from console import cli
from engine.domain.identifiers import IdentifierError, check_identifier, qualified, quote
from engine.domain.plan import PlanError, parse_plan, plan_from_dict, printable, window_covering

# A plan with every section and every kind of value, as a dict to break one place at a time.
FULL = """
tenant = "acme"
store_url = "sqlite:////var/lib/canary/store.db"

[connection]
id = "orders-primary"
host = "db1.internal"
port = 3307
user = "canary"
database = "shop"
socket = "/run/mysqld/mysqld.sock"
password_env = "CANARY_DB_PASSWORD"
option_group = "client"

[connection.tls]
ca = "/etc/ssl/ca.pem"
cert = "/etc/ssl/client.pem"
key = "/etc/ssl/client.key"
verify_identity = true

[replica]
id = "orders-replica"
host = "db2.internal"
user = "canary"
database = "shop"
password_env = "CANARY_REPLICA_PASSWORD"

[change]
action = "ADD_INDEX"
table = "orders"
index = "idx_orders_customer_note"
columns = ["customer_id", {name = "note", prefix = 16}]
query_digests = ["5e1f00aabb"]

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

[window]
off_peak = "22:00-06:00"
utc_offset = "+07:00"

[integrations]
prometheus_url = "http://prometheus:9090/"
kill_switch_api_url = "https://ks.internal/"
kill_switch_api_token_env = "CANARY_API_TOKEN"
webhook_url = "https://hooks.example/T0/B0"

[thresholds.latency_p50]
warning = 8
critical = 40

[executor]
mode = "canary"
lock_wait_timeout = 3
lease_seconds = 20.0

[prometheus_queries]
cpu = "avg(rate(node_cpu_seconds_total[5m]))"
"""

HOSTILE = [
    "a`b", "`", "``", "'", '"', "\\", "x\x00y", "\x00", "x\ny", "\r\n", "\t", "\x1b[2J\x1b[31mred", "\x07",
    "\u202eevil", "\u200b", "оrders", "ｏrders", "Ωmega", "ä", "x" * 65, "x" * 300, "select", "DROP", "--",
    "/*", "*/", "; DROP TABLE orders; --", "orders; DROP TABLE x", "' OR '1'='1", "a b", " orders", "",
    " ", "%s", "%(x)s", "{x}", "${HOME}", "$(id)", "`id`", "../../etc/passwd", "http://x\n", "1e5", "0x1F",
]
NASTY_CHARS = "`'\"\\;-/*\x00\n\r\t\x1b\u202e\u200bоｏaZ09_$ .:@%{}#"


def _paths(node: Any, prefix: tuple = ()) -> Any:
    if prefix:
        yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def full() -> dict:
    return copy.deepcopy(tomllib.loads(FULL))


PLACES = [p for p, _ in _paths(full())]
STRING_PLACES = [p for p, v in _paths(full()) if isinstance(v, str)]
IDENTIFIER_PLACES = [p for p in STRING_PLACES if p in {
    ("connection", "database"), ("replica", "database"), ("change", "table"), ("change", "index"),
    ("change", "columns", 0), ("change", "columns", 1, "name")}]
SECTIONS = {"connection", "replica", "change", "window", "integrations", "executor", "people", "thresholds",
            "prometheus_queries"}
WAY_OUT = re.compile(r"must|allowed|use |give|e\.g\.|such as|add |needs|cannot be|never|out of scope|"
                     r"is missing|not allowed|export|choose|name |write it|make it|fix ", re.I)


def dotted(path: tuple) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def names_for(path: tuple) -> list[str]:
    """How a message may name the place: the place itself, or (for an item of a list the plan
    reads as a whole, like a role or a digest) the nearest place that is named — never just the
    section when the place is inside one of its entries."""
    floor = min(len(path), 2 if path[0] in SECTIONS else 1)
    return [dotted(path[:k]) for k in range(len(path), floor - 1, -1)]


def put(data: dict, path: tuple, value: Any) -> dict:
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


def assert_good_message(msg: str) -> None:
    assert isinstance(msg, str) and msg.strip()
    assert "\n" not in msg and "\r" not in msg
    assert printable(msg) == msg, f"a control or format character reached a message: {msg!r}"
    assert "Traceback" not in msg


def one_problem_about(data: dict, path: tuple) -> str:
    with pytest.raises(PlanError) as caught:
        plan_from_dict(data, "hostile.toml")
    problems = caught.value.problems
    assert len(problems) == 1, (path, problems)
    msg = problems[0]
    assert_good_message(msg)
    names = names_for(path)
    assert any(f"'{n}" in msg or f"[{n}]" in msg or msg.startswith(n) for n in names), (names, msg)
    assert WAY_OUT.search(msg), f"no way out in {msg!r}"
    return msg


def accepted_value_is_safe(path: tuple, value: str) -> None:
    if path in IDENTIFIER_PLACES:
        assert check_identifier(value) == value
    if path[0] == "prometheus_queries":  # PromQL may span lines
        value = value.translate({9: None, 10: None, 13: None})
    assert printable(value) == value, f"{dotted(path)} accepted a control character: {value!r}"


def _check_place(path: tuple, value: Any) -> None:
    data = put(full(), path, value)
    try:
        plan_from_dict(data, "hostile.toml")
    except PlanError:
        one_problem_about(data, path)
        return
    # Accepted: it was valid for that place, and it is there as given.
    if isinstance(value, str):
        accepted_value_is_safe(path, value)


# --- every string field, hostile text -----------------------------------------------------------


@pytest.mark.parametrize("path", STRING_PLACES, ids=dotted)
def test_every_hostile_string_in_every_field_is_one_clear_message_or_harmless(path):
    for value in HOSTILE:
        _check_place(path, value)


@settings(max_examples=600, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(STRING_PLACES), st.text(alphabet=NASTY_CHARS, max_size=70) | st.text(max_size=40))
def test_any_text_in_any_string_field_is_one_clear_message_or_harmless(path, value):
    _check_place(path, value)


def test_identifier_fields_refuse_every_hostile_identifier():
    """The fields that reach SQL accept only what the validator accepts — and refuse all of these."""
    for path in IDENTIFIER_PLACES:
        for value in HOSTILE:
            if value in ("select", "DROP", "1e5", "0x1F"):  # valid names: quoted, they are harmless
                continue
            msg = one_problem_about(put(full(), path, value), path)
            assert "letters, digits" in msg or "must be a string" in msg


# --- wrong types -------------------------------------------------------------------------------

WRONG = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=True), st.booleans(),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.sampled_from(["name", "x", "table", "password_env"]), st.integers() | st.text(max_size=5),
                    max_size=2),
    st.datetimes(), st.dates(), st.times(),
)


@pytest.mark.long
@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PLACES), WRONG)
@example(("change", "columns", 0), {"x": 0})  # a column table with one wrong key and no name: one message
def test_a_wrong_type_anywhere_is_one_clear_message(path, value):
    before = full()
    node = before
    for step in path:
        node = node[step]
    if type(node) is type(value) and not isinstance(node, (list, str)):
        assume(False)  # same type: another number or table is a question of values, tested elsewhere
    if isinstance(node, bool) and isinstance(value, bool):
        assume(False)
    if isinstance(node, (int, float)) and not isinstance(node, bool) and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        assume(False)
    data = put(full(), path, value)
    try:
        plan_from_dict(data, "hostile.toml")
    except PlanError as exc:
        if isinstance(value, (list, dict)) and len(exc.problems) > 1:
            # A list of wrong entries, or a table of wrong keys where a name or a table may stand
            # (a column is "name" or {name, prefix}): one message per entry, each naming the place.
            assert len(exc.problems) <= len(value), exc.problems
            for msg in exc.problems:
                assert_good_message(msg)
                assert any(f"'{n}" in msg for n in names_for(path)), (path, msg)
        else:
            one_problem_about(data, path)


@pytest.mark.parametrize("section", ["connection", "replica", "change", "window", "integrations", "executor",
                                     "thresholds", "people", "prometheus_queries"])
@pytest.mark.parametrize("value", ["oops", 5, ["a"], True])
def test_a_section_of_the_wrong_type_is_one_message_not_a_cascade(section, value):
    one_problem_about(put(full(), (section,), value), (section,))


# --- arbitrary text --------------------------------------------------------------------------

TOMLISH = "[]{}=\"'.,#\n\\ \tabcz_019-+:tenantchangeconnectiontableindexcolumnspeople\x00`;/*"


@st.composite
def mangled_full(draw: Any) -> str:
    """The full plan's text with a few slices replaced: close enough to reach deep checks."""
    text = FULL
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        text = text[:i] + draw(st.text(alphabet=TOMLISH, max_size=8) | st.sampled_from(HOSTILE)) + text[j:]
    return text


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=TOMLISH, max_size=300) | mangled_full() | st.text(max_size=100))
def test_arbitrary_text_is_a_plan_or_plan_errors_with_clean_messages(text):
    try:
        parse_plan(text, "fuzz.toml")
    except PlanError as exc:
        assert exc.problems
        for msg in exc.problems:
            assert_good_message(msg)
        rendered = exc.render()
        assert rendered.count("\n") == len(exc.problems)  # the header, then one line per problem


def test_a_toml_key_with_control_characters_is_shown_escaped():
    text = ACME + '"evil\\u001b[2J\\nkey" = 1\n'
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "keys.toml")
    [msg] = caught.value.problems
    assert_good_message(msg)
    assert "unknown key 'change.evil\\x1b[2J\\nkey'" in msg


def test_a_source_path_with_a_newline_stays_on_its_line():
    with pytest.raises(PlanError) as caught:
        parse_plan("tenant = [", "bad\nname\x1b.toml")
    assert caught.value.render().count("\n") == 1
    assert "bad\\nname\\x1b.toml" in caught.value.render()


# --- what the fixes in engine/domain/plan.py refuse, one by one ----------------------------------------


@pytest.mark.parametrize("edit, needle", [
    ((("connection", "host"), "db1\x00.internal"), "'connection.host' must be a host name or IP address"),
    ((("connection", "host"), "x" * 256), "'connection.host'"),
    ((("connection", "host"), "\x1b[2Jdb"), "'connection.host'"),
    ((("connection", "user"), "canary\x00root"), "'connection.user'"),
    ((("connection", "socket"), "/run/x\x00"), "'connection.socket' must be a file path"),
    ((("connection", "socket"), 5), "'connection.socket'"),
    ((("connection", "option_group"), "client]\n[evil"), "'connection.option_group'"),
    ((("connection", "password_env"), "CANARY_ΡW"), "'connection.password_env' must name an environment"),
    ((("connection", "tls", "ca"), 5), "'connection.tls.ca' must be a file path"),
    ((("connection", "tls", "verify_identity"), "no"), "'connection.tls.verify_identity' must be true or false"),
    ((("integrations", "prometheus_url"), "http://prom etheus:9090"), "'integrations.prometheus_url'"),
    ((("integrations", "prometheus_url"), "http://x:99999"), "'integrations.prometheus_url'"),
    ((("integrations", "prometheus_url"), "http://"), "'integrations.prometheus_url'"),
    ((("integrations", "webhook_url"), "https://hooks.example/T0\r\nX-Evil: 1"), "'integrations.webhook_url'"),
    ((("integrations", "kill_switch_api_url"), "https://admin:hunter2@ks.internal"), "has a password in it"),
    ((("store_url",), "postgresql://canary:hunter2@db/canary"), "store_url has a password in it"),
    ((("store_url",), ""), "store_url must be a string"),
    ((("people", 0, "name"), "Som\nchai"), "'people[0].name'"),
    ((("people", 0, "unix_user"), "som chai"), "'people[0].unix_user' must be a login name"),
    ((("people", 0, "unix_user"), "ѕomchai"), "'people[0].unix_user'"),  # Cyrillic ѕ: never matches a login
    ((("people", 0, "contact"), {"slack": "@x"}), "'people[0].contact' must be text"),
    ((("prometheus_queries", "cpu"), "x"), None),
])
def test_each_fix_refuses_its_case_with_one_message(edit, needle):
    path, value = edit
    data = put(full(), path, value)
    if needle is None:
        plan_from_dict(data)
        return
    msg = one_problem_about(data, path)
    assert needle in msg
    assert "hunter2" not in msg


def test_prometheus_query_names_are_ascii_metric_names():
    data = full()
    data["prometheus_queries"] = {"cpu_ünïcode": "up"}
    msg = one_problem_about(data, ("prometheus_queries",))
    assert "'prometheus_queries.cpu_ünïcode'" in msg


def test_the_option_file_is_checked_at_load_without_quoting_it(tmp_path):
    """A malformed option file is found when the plan loads — and the message never quotes its
    lines: the parser's own message would print the password line."""
    bad = tmp_path / "my.cnf"
    for content, needle in [
        ("password=hunter2\n", "is not a MySQL option file (line 1)"),
        ("[client]\npassword=hunter1\npassword=hunter2\n", "is not a MySQL option file (line 3)"),
        ("[client]\nuser=canary\n  hunter2 = = [\n[client]\n", "is not a MySQL option file"),
        ("[mysqldump]\npassword=hunter2\n", "has no [client] group"),
    ]:
        bad.write_text(content)
        data = full()
        data["connection"]["option_file"] = str(bad)
        msg = one_problem_about(data, ("connection", "option_file"))
        assert needle in msg and "hunter" not in msg, msg
    bad.write_bytes(b"[client]\npassword=\xff\xfehunter2\n")
    data = full()
    data["connection"]["option_file"] = str(bad)
    assert "is not UTF-8" in one_problem_about(data, ("connection", "option_file"))
    bad.write_text("[client]\nuser = canary\npassword = hunter2\n")
    assert plan_from_dict(data).connection.option_file == str(bad)
    bad.chmod(0)
    try:
        if not _readable(bad):  # (root reads it anyway) a joining console never connects: no problem
            assert plan_from_dict(data).connection.option_file == str(bad)
    finally:
        bad.chmod(0o600)


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


# --- the command line on bad plans ------------------------------------------------------------

BAD_PLANS = {
    "hostile_identifiers": ACME.replace('table = "orders"', 'table = "orders`; DROP TABLE x; --"')
    .replace('index = "idx_orders_customer_created"', 'index = "idx\\u0000x"'),
    "wrong_types": ACME.replace('database = "shop"', "database = 5").replace('tenant = "acme"', "tenant = [1]"),
    "terminal_escape": ACME.replace('host = "10.0.0.12"', 'host = "\\u001b[2J\\u001b]0;owned\\u0007"'),
    "not_toml": "tenant = \"acme\n[connection\x00",
    "secret_in_file": ACME.replace('password_env = "CANARY_DB_PASSWORD"', 'password = "hunter2"'),
    "store_password": 'store_url = "mysql+pymysql://u:hunter2@db/s"\n' + ACME,
}
# Bad plans whose problem is not in what a kill needs (tenant, connection id, store, API): the
# kill goes on with a warning. The others stop it with "to kill without the plan: …".
KILLS_ANYWAY = {"hostile_identifiers", "terminal_escape", "secret_in_file"}
COMMANDS = [
    ["run"], ["execute"], ["status", "--plan"], ["kill", "--plan"], ["unkill", "--plan"],
    ["self-test", "--plan"], ["replay", "00000000-0000-0000-0000-000000000000", "--plan"],
    ["approve", "00000000-0000-0000-0000-000000000000", "--decision", "resume", "--plan"],
]


def _cli(capsys: Any, argv: list[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("name", sorted(BAD_PLANS))
def test_the_cli_prints_the_messages_and_exits_2_without_a_traceback(command, name, tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / f"{name}.toml"
    path.write_text(BAD_PLANS[name], encoding="utf-8")
    code, out, err = _cli(capsys, [*command, str(path), "--store", f"sqlite:///{tmp_path / 's.db'}"]
                          if command[0] not in ("approve",) else [*command, str(path)])
    if command[0] == "kill" and name in KILLS_ANYWAY:
        # A kill does not wait for a plan problem it does not need (issue 14 item 4): it kills,
        # after a warning that is as clean as the messages below.
        assert code == cli.EXIT_OK, (out, err)
        assert "kill switch ACTIVE (global)" in out and "a problem a kill does not need" in err
        assert "Traceback" not in out + err and "hunter2" not in out + err
        assert "\x1b" not in out + err and "\x00" not in out + err and "\x07" not in out + err
        return
    assert code == cli.EXIT_USAGE, (out, err)
    assert f"The plan {path} cannot be used" in err
    assert "Traceback" not in out + err and "internal error" not in err
    assert "\x1b" not in out + err and "\x00" not in out + err and "\x07" not in out + err
    assert "hunter2" not in out + err
    problems = err.strip().splitlines()[1:]
    assert problems and all(p.startswith("  - ") for p in problems)
    assert not (tmp_path / "state" / "canary-console" / "cli.log").exists()


@pytest.mark.parametrize("make", [
    lambda d: d / "missing.toml",
    lambda d: d,  # a directory
    lambda d: (d / "binary.toml", (d / "binary.toml").write_bytes(b"\xff\xfe\x00\x01tenant"))[0],
    lambda d: (d / "line\nbreak\x1b.toml", (d / "line\nbreak\x1b.toml").write_text("tenant = ["))[0],
], ids=["missing", "directory", "binary", "odd_name"])
def test_the_cli_on_a_plan_path_that_is_not_a_plan(make, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = make(tmp_path)
    code, out, err = _cli(capsys, ["execute", str(path), "--store", f"sqlite:///{tmp_path / 's.db'}"])
    assert code == cli.EXIT_USAGE, err
    assert "cannot be used" in err and "Traceback" not in err and "\x1b" not in err
    assert err.count("\n") == 2  # the header and one problem


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=mangled_full(), command=st.sampled_from(COMMANDS[:6]))
def test_the_cli_on_fuzzed_plans_never_shows_a_traceback(text, command, tmp_path, capsys):
    try:
        parse_plan(text)
        assume(False)  # a plan that still parses would really run: not this test's business
    except PlanError:
        pass
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if "\ud800" not in text else None
    if not path.exists():
        return
    code, out, err = _cli(capsys, [*command, str(path), "--store", f"sqlite:///{tmp_path / 's.db'}"])
    assert code == cli.EXIT_USAGE
    assert "Traceback" not in out + err and "internal error" not in err
    assert all(printable(line) == line for line in err.splitlines())


def test_a_real_process_on_a_bad_plan_exits_2_with_no_traceback(tmp_path):
    import os
    import subprocess

    path = tmp_path / "bad.toml"
    path.write_text(BAD_PLANS["hostile_identifiers"], encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "console.cli", "execute", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=root,
                          env=dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), PYTHONPATH=str(root)))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "'change.table'" in done.stderr and "'change.index'" in done.stderr


# --- part two: every statement the engine sends, read back from the server's general log --------

PROBE_USER = "cc_probe"  # the engine's own account: its statements are the log's rows with this user
PEOPLE = [{"name": "Somchai", "role": "canary_lead", "unix_user": "somchai"},
          {"name": "Nok", "role": "dba", "unix_user": "nok"}]
ROWS = 40

# Words that are reserved in MariaDB: unquoted in a table, column, index or schema position they
# are a syntax error, so a run that succeeds with them as names proves they were quoted.
RESERVED = ["select", "from", "where", "table", "index", "order", "group", "key", "drop", "alter", "limit",
            "desc", "like", "and", "or", "not", "in", "on", "by", "set", "to", "interval", "database",
            "create", "update", "delete", "insert", "union", "join", "having", "case", "when", "then",
            "else", "null", "default", "check", "column", "constraint", "references", "unique",
            "distinct", "all", "as", "is", "exists", "if", "lock", "read", "write", "force", "ignore",
            "use", "show", "primary", "fulltext", "spatial", "with", "values", "into"]
TOKEN = re.compile(r"""
    (?P<comment>/\*.*?\*/|--[^\n]*|\#[^\n]*)
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<word>[A-Za-z0-9_$]+)
  | (?P<other>.)
""", re.S | re.X)


def bare_words(statement: str) -> list[str]:
    """The words of a statement outside comments, backtick-quoted identifiers and string literals."""
    return [m.group("word") for m in TOKEN.finditer(statement) if m.group("word")]


def quoted_names(statement: str) -> set[str]:
    return {m.group("quoted")[1:-1].replace("``", "`") for m in TOKEN.finditer(statement) if m.group("quoted")}


@dataclass
class Names:
    schema: str
    table: str
    index: str
    pk: str
    c1: str
    c2: str

    def all(self) -> list[str]:
        return [self.schema, self.table, self.index, self.pk, self.c1, self.c2]


@pytest.fixture(scope="module")
def general_log(lab):
    """The engine's account, and the sandbox's general log into mysql.general_log for this module."""
    with lab.admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{PROBE_USER}'@'%'")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{PROBE_USER}'@'%'")
        cur.execute("SELECT @@global.general_log AS on_, @@global.log_output AS output")
        before = cur.fetchone()
        cur.execute("SET GLOBAL log_output = 'TABLE'")
        cur.execute("SET GLOBAL general_log = ON")
    yield lab
    with lab.admin() as c, c.cursor() as cur:
        cur.execute("SET GLOBAL general_log = %s", (before["on_"],))
        cur.execute("SET GLOBAL log_output = %s", (before["output"],))
        cur.execute("TRUNCATE TABLE mysql.general_log")


def _statements(lab: Any) -> list[str]:
    with lab.admin() as c, c.cursor() as cur:
        cur.execute("SELECT argument FROM mysql.general_log WHERE command_type = 'Query' AND user_host LIKE %s "
                    "ORDER BY event_time", (f"{PROBE_USER}[{PROBE_USER}]%",))
        rows = cur.fetchall()
    return [r["argument"].decode("utf-8") if isinstance(r["argument"], bytes) else r["argument"] for r in rows]


def _setup(lab: Any, n: Names) -> None:
    t = qualified(n.schema, n.table)
    with lab.admin() as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote(n.schema)}")
        cur.execute(f"CREATE DATABASE {quote(n.schema)}")
    with lab.admin(n.schema) as c, c.cursor() as cur:  # seq_1_to_N lives in the current database
        cur.execute(f"CREATE TABLE {t} ({quote(n.pk)} BIGINT PRIMARY KEY AUTO_INCREMENT, {quote(n.c1)} INT NOT NULL, "
                    f"{quote(n.c2)} VARCHAR(32) NOT NULL) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO {t} ({quote(n.c1)}, {quote(n.c2)}) SELECT seq % 7, MD5(seq) "  # noqa: S608
                    f"FROM seq_1_to_{ROWS}")
        cur.execute(f"ANALYZE TABLE {t}")
        cur.fetchall()
        cur.execute("TRUNCATE TABLE mysql.general_log")


def _workload(lab: Any, n: Names) -> None:
    """A few statements on the table from someone else, so the collectors have digests to read."""
    with lab.admin(n.schema) as c, c.cursor() as cur:
        for v in range(3):
            cur.execute(f"SELECT COUNT(*) FROM {quote(n.table)} WHERE {quote(n.c1)} = %s", (v,))  # noqa: S608
            cur.fetchall()


def _drive(lab: Any, n: Names, tmp: Path) -> list[str]:
    """The engine's whole normal work on the plan, as the console and the CLI do it; returns the
    statements the server received from the engine's account."""
    from engine.adapters.collectors import MySQLSource
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.adapters.store import Store
    from engine.adapters.target import Target
    from engine.domain.clock import utcnow
    from engine.flows import prechecks
    from engine.flows.executor import DigestObserver, Executor
    from engine.flows.rollback_flow import approve_rollback, decide_rollback
    from engine.flows.rollback_rungs import execute_drop, execute_ignore, inspect, undo_ignore

    _setup(lab, n)
    plan = plan_from_dict({
        "tenant": "hostile",
        "connection": {"id": "sbx-hostile", "host": "127.0.0.1", "port": lab.sandbox.primary.port,
                       "user": PROBE_USER, "database": n.schema},
        "change": {"table": n.table, "index": n.index, "columns": [n.c1, {"name": n.c2, "prefix": 8}]},
        "people": PEOPLE,
        "window": window_covering(utcnow()),
        "executor": {"cooldown_seconds": 0, "baseline_window_seconds": 0, "verify_window_seconds": 0,
                     "lease_seconds": 10, "lock_wait_timeout": 5},
    }, source="hostile-identifiers")
    store = Store(f"sqlite:///{tmp / 'store.db'}")
    backend = EmbeddedKillSwitch(store)
    target = Target(plan.connection)

    # Prechecks (runbook 2.1-2.6) and the scratch-table rehearsal.
    findings = {f.check_id: f for f in prechecks.auto_checks(plan, store, backend, target, http_timeout=1)}
    failed = {k: f.detail for k, f in findings.items() if f.status == "fail"}
    assert not failed, failed
    ex = Executor(plan, store, backend, target, "tester", "worker-h", observer=DigestObserver(target, 0, 0))
    run = ex.create_run()
    scratch = prechecks.scratch_rollback_test(plan, target, run.id)
    assert scratch.status == "pass", scratch.detail
    # The size gate's exact count, in primary-key ranges.
    with target.session("size-gate") as s:
        assert s.exact_count(plan.schema, plan.change.table, chunk=15) == ROWS
    # The executor: target checks, rollback point, ALTER, verification.
    out = ex.execute(run.id)
    assert out.status == "completed", out.message
    # The monitor's collector, twice (the second read computes the interval), with statements between.
    source = MySQLSource(plan.connection, plan.schema, plan.change.table)
    try:
        source.collect()
        _workload(lab, n)
        source.collect()
        _workload(lab, n)
        assert any(x.metric == "digest_count" for x in source.collect())
    finally:
        source.close()
    # The manual rollback: decide, approve, rung 1, its undo, rung 2.
    run = store.get_run(plan.tenant, run.id)
    insp = inspect(target, run, store.rollback_point(plan.tenant, run.id))
    assert insp.index_exists and insp.ours and not insp.blockers, insp
    assert not insp.conflicts, insp.conflicts
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "drill").ok
    assert approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}).ok
    rung1 = execute_ignore(store, plan, target, run, "nok", {"dba"})
    assert rung1.ok, rung1.message
    assert undo_ignore(store, plan, target, run, "nok", {"dba"}).ok
    drop = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert drop.ok, drop.message
    with target.session("verify") as s:
        assert not s.index_exists(plan.schema, plan.change.table, plan.change.index)
    statements = _statements(lab)
    with lab.admin() as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote(n.schema)}")
    return statements


def _assert_quoted(statements: list[str], names: Names, vocabulary: set[str]) -> None:
    plan_words = {x.lower() for x in names.all()}
    assert statements, "the general log has nothing from the engine's account"
    for statement in statements:
        for word in bare_words(statement):
            w = word.lower()
            if w in plan_words and w not in vocabulary:
                pytest.fail(f"identifier {word!r} appears unquoted in: {statement}")
    sent = set().union(*(quoted_names(s) for s in statements))
    for name in names.all():  # and each did reach the server, quoted
        assert name in sent, f"{name!r} was never sent quoted"


INNOCUOUS = Names("cc_q_schema", "cc_q_table", "cc_q_index", "cc_q_pk", "cc_q_col1", "cc_q_col2")


@pytest.fixture(scope="module")
def vocabulary(general_log, tmp_path_factory):
    """The bare words of the engine's own SQL (keywords, catalogue columns, aliases), from a run on
    names that appear nowhere else — and that run's own proof that those names were all quoted."""
    statements = _drive(general_log, INNOCUOUS, tmp_path_factory.mktemp("innocuous"))
    _assert_quoted(statements, INNOCUOUS, set())
    kinds = {re.sub(r"\s+", " ", re.sub(r"/\*.*?\*/", "", s)).strip().split(" ")[0].upper() for s in statements}
    assert {"SELECT", "ALTER", "SHOW", "CREATE", "DROP", "SET"} <= kinds, kinds
    return {w.lower() for s in statements for w in bare_words(s)}


@pytest.mark.mariadb
def test_the_engine_quotes_every_identifier_of_the_plan(vocabulary):
    """(The work is done by the fixture; this names what it proved.) Every statement of the
    prechecks, size gate, executor, collector and rollback was logged, and none names the plan's
    schema, table, index or columns unquoted."""
    for word in ("select", "alter", "information_schema", "table_name"):
        assert word in vocabulary
    assert not {x.lower() for x in INNOCUOUS.all()} & vocabulary


def _valid(name: str) -> bool:
    try:
        check_identifier(name)
    except IdentifierError:
        return False
    return name.count("$") <= 40  # '$' is 5 bytes of a file name on disk: 64 of them exceed 255


NASTY = st.one_of(
    st.sampled_from(["$", "$$", "1e5", "0x1F", "0b1", "1_", "9$", "e1", "x" * 64, "1" + "a" * 63,
                     "$" + "z" * 63, "a$b", "N", "_1"]),
    st.sampled_from(RESERVED).flatmap(lambda w: st.sampled_from([w, w.upper(), w.title()])),
    st.from_regex(r"[A-Za-z0-9_$]{1,64}", fullmatch=True),
).filter(_valid)


@pytest.mark.mariadb
@pytest.mark.long
@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(names=st.lists(NASTY, min_size=6, max_size=6, unique_by=str.lower).map(lambda xs: Names(*xs)))
def test_names_the_validator_accepts_are_quoted_in_every_statement(names, vocabulary, general_log,
                                                                   tmp_path_factory):
    assume(names.index.lower() != "primary")
    plan_words = {x.lower() for x in names.all()}
    # A plan word the engine also uses as a bare word (an alias, a keyword) is checked by the
    # server instead: only reserved words may be such, and they cannot run unquoted.
    assume(all(w in RESERVED for w in plan_words & vocabulary))
    statements = _drive(general_log, names, tmp_path_factory.mktemp("nasty"))
    _assert_quoted(statements, names, vocabulary)


@pytest.mark.mariadb
def test_reserved_words_and_number_like_names_run_end_to_end(vocabulary, general_log, tmp_path_factory):
    names = Names("select", "1e5", "index", "0x1F", "from", "$")
    statements = _drive(general_log, names, tmp_path_factory.mktemp("reserved"))
    _assert_quoted(statements, names, vocabulary)


# --- a profile that pymysql chokes on before it reaches a server ----------------------------------


@pytest.mark.parametrize("profile, needle", [
    (dict(tls_ca="/nonexistent/ca.pem"), "No such file or directory: /nonexistent/ca.pem"),
    (dict(host="a" * 300), "cannot be looked up"),
    (dict(host="db\x00x"), "(2003)"),
    (dict(socket="/nonexistent/dir/mysqld.sock"), "(2003)"),
])
def test_a_profile_the_client_cannot_use_is_a_target_error_not_a_crash(profile, needle):
    """Plans refuse these; a profile built another way (the store's copy, a test) still gets a
    TargetError saying what to fix — never the client library's own exception."""
    from engine.adapters.target import TargetError, TargetSession
    from engine.domain.plan import TLS, ConnectionProfile

    tls = TLS(ca=profile.pop("tls_ca")) if "tls_ca" in profile else None
    with pytest.raises(TargetError) as caught:
        TargetSession(ConnectionProfile(id="x", port=1, tls=tls, **profile), connect_timeout=1)
    assert needle in str(caught.value) and str(caught.value).startswith("cannot connect to ")
