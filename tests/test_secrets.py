"""The target's password never leaves the connection (docs/product.md#the-plan-input): not in the console's or the CLI's
log, the audit trail, the store, the reports and announcements, an error message, the plan's repr,
what the console draws, or a snapshot.

The sandbox gets an account with a real password; plans reach it through an environment variable
(password_env) and through a MySQL option file. The tests do real work with it — prechecks, a run
with its ALTER, the manual rollback, the report, ``canary-console execute`` and ``status``, the
console under Pilot — then grep everything that was written or shown for the password. Wrong
passwords, an unset variable, a password the client cannot encode, and an option file broken
after the plan loaded (whose parser would quote the password line) get messages without it.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from waits import until

from console import cli
from engine.adapters.identity import Identity
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import Store
from engine.adapters.target import Target, TargetError, TargetSession
from engine.domain.clock import FrozenClock, utcnow
from engine.domain.plan import PlanError, load_plan, toml_dump
from engine.drill import worker
from engine.flows import prechecks
from engine.flows.executor import DigestObserver, Executor
from engine.flows.rollback_flow import approve_rollback, decide_rollback
from engine.flows.rollback_rungs import execute_drop
from engine.views.report import announcements, render_report, report_facts

pytestmark = [pytest.mark.mariadb]

USER = "cc_secret"
SECRET = "Zq8-s3cr3t-Hx4vT9pL"  # latin-1, no quotes or backslashes: an option file holds it as is
WRONG = "Wr0ng-pw-Kd83jQ"
ENV = "CC_SECRET_PW"
DB = "cc_secrets"
ROOT = Path(__file__).resolve().parent.parent
PEOPLE = f"""
[[people]]
name = "Somchai"
role = "canary_lead"
unix_user = "somchai"

[[people]]
name = "Me"
role = "dba"
unix_user = "{getpass.getuser()}"

[[people]]
name = "Nok"
roles = ["dba", "sre", "developer"]
unix_user = "nok"
"""


@pytest.fixture(scope="module")
def account(lab):
    """A MariaDB account with a password, and a table to work on."""
    lab.database(DB)
    lab.load_orders(DB, 2000)
    with lab.admin() as c, c.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@'%%'", (USER,))
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (USER, SECRET))
        cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%'", (USER,))
    return lab


def plan_file(lab: Any, tmp: Path, source: str, index: str, option_file: Path | None = None) -> Path:
    """A plan on disk whose password comes from ``source``: 'env' or 'option_file'."""
    from engine.domain.plan import window_covering

    how = f'password_env = "{ENV}"' if source == "env" else f'option_file = "{option_file}"'
    window = window_covering(utcnow())
    text = f"""
tenant = "secrets"
[connection]
id = "sbx-secrets"
host = "127.0.0.1"
port = {lab.sandbox.primary.port}
user = "{USER}"
database = "{DB}"
{how}
[change]
table = "orders"
index = "{index}"
columns = ["customer_id", "created_at"]
[window]
off_peak = "{window['off_peak']}"
utc_offset = "{window['utc_offset']}"
[executor]
cooldown_seconds = 0
baseline_window_seconds = 0
verify_window_seconds = 0
lease_seconds = 10
lock_wait_timeout = 5
""" + PEOPLE
    path = tmp / f"plan-{source}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def option_file(tmp: Path, password: str = SECRET, text: str | None = None) -> Path:
    path = tmp / "my.cnf"
    path.write_text(text if text is not None else f"[client]\nuser = {USER}\npassword = {password}\n")
    path.chmod(0o600)
    return path


def everything_written(tmp: Path) -> dict[str, bytes]:
    """Every file under ``tmp`` (stores with their WAL, logs, exported reports, plans excluded:
    an option file is meant to hold the password)."""
    return {str(p): p.read_bytes() for p in tmp.rglob("*")
            if p.is_file() and p.name != "my.cnf" and p.suffix != ".cnf"}


def assert_nowhere(secret: str, places: dict[str, Any]) -> None:
    needles = (secret, secret.encode(), secret.encode("utf-16-le"))
    for where, value in places.items():
        text = value if isinstance(value, (str, bytes)) else repr(value)
        for needle in needles:
            if type(needle) is type(text) and needle in text:
                pytest.fail(f"the password is in {where}")


def audit_dump(store: Store, tenant: str) -> str:
    return "\n".join(f"{e.actor} {e.action} {e.old_status} {e.new_status} {e.details!r}"
                     for e in store.audit_entries(tenant, limit=100_000))


def drop_index(lab: Any, index: str) -> None:
    lab.drop_index_if_present(DB, "orders", index)


# --- the happy path, with the secret in use -----------------------------------------------------


@pytest.mark.parametrize("source", ["env", "option_file"])
def test_real_work_with_a_real_password_leaves_it_nowhere(account, source, tmp_path, monkeypatch, capsys):
    lab = account
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    if source == "env":
        monkeypatch.setenv(ENV, SECRET)
        plan_path = plan_file(lab, tmp_path, "env", f"idx_secret_{source}")
    else:
        monkeypatch.delenv(ENV, raising=False)
        plan_path = plan_file(lab, tmp_path, "option_file", f"idx_secret_{source}", option_file(tmp_path))
    index = f"idx_secret_{source}"
    drop_index(lab, index)
    plan = load_plan(plan_path)
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(store_url)
    backend = EmbeddedKillSwitch(store)
    target = Target(plan.connection)
    seen: dict[str, Any] = {"plan repr": repr(plan), "plan str": str(plan), "profile": repr(plan.connection),
                            "profile describe": plan.connection.describe(), "raw plan": toml_dump(plan.raw)}

    # The prechecks, recorded as the console records them; the password was really used.
    ex = Executor(plan, store, backend, target, "nok@10.0.0.9", "worker-s", observer=DigestObserver(target, 0, 0),
                  on_event=lambda name, data: seen.setdefault(f"event {name}", data))
    run = ex.create_run()
    findings = list(prechecks.auto_checks(plan, store, backend, target, http_timeout=1))
    findings.append(prechecks.scratch_rollback_test(plan, target, run.id))
    for f in findings:
        prechecks.record(store, plan, run.id, f, "nok@10.0.0.9")
    by_id = {f.check_id: f for f in findings}
    assert by_id["env.target"].status == "pass" and USER in by_id["env.target"].detail
    assert by_id["rb.scratch"].status == "pass", by_id["rb.scratch"].detail
    seen["findings"] = findings

    # A run: target checks, rollback point, ALTER, verification; then the manual rollback.
    out = ex.execute(run.id)
    assert out.status == "completed", out.message
    seen["outcome"] = out
    run = store.get_run(plan.tenant, run.id)
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "drill").ok
    assert approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}).ok
    drop = execute_drop(store, plan, target, run, "nok", {"dba"})
    assert drop.ok, drop.message

    # The report and the announcements.
    facts = report_facts(store, plan, run.id)
    seen["report"] = render_report(facts)
    seen["announcements"] = "\n".join(a.text for a in announcements(facts))
    seen["audit"] = audit_dump(store, plan.tenant)
    assert "alter_started" in seen["audit"] and "rollback_completed" in seen["audit"]

    # A headless worker (engine/drill/worker.py: ``canary-console execute`` stops at the step-4 gate
    # before it connects) that connects and stops at its target check (an index of that name is
    # there, put by someone else: never ours, never dropped), then the status.
    with lab.admin(DB) as c, c.cursor() as cur:
        cur.execute(f"ALTER TABLE orders ADD INDEX {index} (customer_id)")
    assert worker.main([str(plan_path), store_url]) == 1
    assert cli.main(["status", "--plan", str(plan_path), "--store", store_url]) == cli.EXIT_OK
    printed = capsys.readouterr()
    assert "already exists" in printed.out and "Traceback" not in printed.out + printed.err
    seen["cli stdout"], seen["cli stderr"] = printed.out, printed.err
    drop_index(lab, index)

    seen["audit after the cli"] = audit_dump(store, plan.tenant)
    seen.update(everything_written(tmp_path))
    assert any(k.endswith("store.db") or k.endswith("store.db-wal") for k in seen)
    assert_nowhere(SECRET, seen)


# --- the ways a connection fails ---------------------------------------------------------------


def test_a_wrong_password_is_reported_without_either_password(account, tmp_path, monkeypatch, capsys):
    lab = account
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv(ENV, WRONG)
    plan_path = plan_file(lab, tmp_path, "env", "idx_secret_wrong")
    plan = load_plan(plan_path)
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(store_url)
    target = Target(plan.connection)

    with pytest.raises(TargetError) as caught:
        target.session("precheck")
    msg = str(caught.value)
    assert caught.value.kind == "access_denied" and "(1045)" in msg
    assert f"the environment variable {ENV}" in msg  # where to look, never what was found there
    findings = list(prechecks.auto_checks(plan, store, EmbeddedKillSwitch(store), target, http_timeout=1))
    [target_check] = [f for f in findings if f.check_id == "env.target"]
    assert target_check.status == "fail" and "Access denied" in target_check.detail
    ex = Executor(plan, store, EmbeddedKillSwitch(store), target, "nok", "worker-w",
                  observer=DigestObserver(target, 0, 0))
    out = ex.execute(ex.create_run().id)
    assert out.status == "failed" and "Access denied" in out.message
    assert worker.main([str(plan_path), store_url]) == 1  # a headless worker that connects
    printed = capsys.readouterr()
    assert "Access denied" in printed.out + printed.err and "Traceback" not in printed.out + printed.err

    places = {"error": msg, "finding": target_check, "outcome": out, "cli": printed.out + printed.err,
              "audit": audit_dump(store, plan.tenant), **everything_written(tmp_path)}
    assert_nowhere(WRONG, places)
    assert_nowhere(SECRET, places)


def test_an_unset_password_variable_is_named_in_the_message(account, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    plan = load_plan(plan_file(account, tmp_path, "env", "idx_secret_unset"))
    with pytest.raises(TargetError) as caught:
        TargetSession(plan.connection)
    assert f"the environment variable {ENV} (password_env), is not set in this session" in str(caught.value)


def test_a_password_the_client_cannot_send_is_not_quoted(account, tmp_path, monkeypatch):
    """pymysql sends passwords in Latin-1; its codec error would quote the character it choked on."""
    thai = "pw-กขค-" + SECRET
    monkeypatch.setenv(ENV, thai)
    plan = load_plan(plan_file(account, tmp_path, "env", "idx_secret_thai"))
    with pytest.raises(TargetError) as caught:
        TargetSession(plan.connection)
    msg = str(caught.value)
    assert "cannot send (it sends Latin-1 only)" in msg
    for part in ("ก", "\\u0e01", SECRET):
        assert part not in msg


@pytest.mark.parametrize("broken, needle", [
    (f"password = {SECRET}\n", "(line 1)"),  # no group header: the parser quotes the line
    (f"[client]\npassword = x\npassword = {SECRET}\n", "(line 3)"),
    (f"[client]\npassword = \xff{SECRET}\n", "not UTF-8"),
])
def test_an_option_file_broken_after_the_plan_loaded_is_not_quoted(account, tmp_path, monkeypatch, capsys,
                                                                   broken, needle):
    """The plan checks the option file when it loads; the file can still change before a connect.
    Then the engine says which file and which line — never the line."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cnf = option_file(tmp_path)
    plan_path = plan_file(account, tmp_path, "option_file", "idx_secret_broken", cnf)
    plan = load_plan(plan_path)
    if "\xff" in broken:
        cnf.write_bytes(broken.replace("\xff", "").encode().replace(b"= ", b"= \xff", 1))
    else:
        cnf.write_text(broken)
    with pytest.raises(TargetError) as caught:
        TargetSession(plan.connection)
    msg = str(caught.value)
    assert SECRET not in msg
    assert str(cnf) in msg and needle in msg, msg
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    target = Target(plan.connection)
    findings = list(prechecks.auto_checks(plan, store, EmbeddedKillSwitch(store), target, http_timeout=1))
    ex = Executor(plan, store, EmbeddedKillSwitch(store), target, "nok", "worker-b",
                  observer=DigestObserver(target, 0, 0))
    out = ex.execute(ex.create_run().id)
    assert out.status == "failed" and str(cnf) in out.message
    # The CLI loads the plan again: now the plan itself is refused, with the same care.
    assert cli.main(["execute", str(plan_path), "--store", f"sqlite:///{tmp_path / 's2.db'}"]) == cli.EXIT_USAGE
    printed = capsys.readouterr()
    assert str(cnf) in printed.err and "Traceback" not in printed.err
    assert_nowhere(SECRET, {"error": msg, "findings": findings, "outcome": out, "cli": printed.out + printed.err,
                            "audit": audit_dump(store, plan.tenant), **everything_written(tmp_path)})


def test_a_plan_with_the_password_in_it_is_refused_without_repeating_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for text in (f'tenant = "t"\n[connection]\ndatabase = "d"\npassword = "{SECRET}"\n',
                 f'tenant = "t"\nstore_url = "postgresql://u:{SECRET}@db/s"\n',
                 f'tenant = "t"\n[integrations]\nprometheus_url = "http://u:{SECRET}@prom:9090"\n'):
        (tmp_path / "in").mkdir(exist_ok=True)
        path = tmp_path / "in" / "p.toml"  # holds the password on purpose: not among what is scanned
        path.write_text(text)
        with pytest.raises(PlanError) as caught:
            load_plan(path)
        assert "never goes in the plan file" in caught.value.render()
        assert cli.main(["status", "--plan", str(path)]) == cli.EXIT_USAGE
        printed = capsys.readouterr()
        assert_nowhere(SECRET, {"error": caught.value.render(), "repr": repr(caught.value), "cli": printed.err,
                                **everything_written(tmp_path / "state")})


# --- the console, under Pilot ------------------------------------------------------------------


async def test_the_console_draws_and_logs_no_password(account, tmp_path, monkeypatch):
    """The console connects with the password (its checks pass), then the option file breaks under
    it: the screen, the notifications, console.log and the store say so without the password."""
    from console.app import CanaryApp

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv(ENV, raising=False)
    cnf = option_file(tmp_path)
    plan = load_plan(plan_file(account, tmp_path, "option_file", "idx_secret_console", cnf))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    app = CanaryApp(plan, store, Identity("somchai", "10.0.0.5", "jump"), FrozenClock(utcnow().replace(microsecond=0)),
                    EmbeddedKillSwitch(store), poll=True)
    told: list[str] = []
    notify = app.notify

    def record(message: str, *args: Any, **kwargs: Any) -> None:
        told.append(str(message))
        notify(message, *args, **kwargs)

    app.notify = record  # type: ignore[method-assign]
    screens: list[str] = []
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("b")
        from screens.prechecks import PrechecksScreen

        # the run, then its step: `r` belongs to the Prechecks screen
        assert await until(pilot, lambda: app.view.run is not None and isinstance(app.screen, PrechecksScreen)), (told, app.screen_stack, app.view.run)
        await pilot.press("r")
        assert await until(pilot, lambda: "env.target" in app.view.prechecks
                            and "db.lock_none" in app.view.prechecks, 60), told
        assert app.view.prechecks["env.target"].status == "pass", app.view.prechecks["env.target"].detail
        screens.append(app.export_screenshot())
        cnf.write_text(f"password = {SECRET}\n")  # the group header lost in an edit
        await pilot.press("r")
        assert await until(pilot, lambda: app.view.prechecks["env.target"].status == "fail")
        assert SECRET not in app.view.prechecks["env.target"].detail
        assert "cannot be read as a MySQL option file (line 1)" in app.view.prechecks["env.target"].detail
        await pilot.pause(0.2)
        screens.append(app.export_screenshot())
    assert_nowhere(SECRET, {"screens": "\n".join(screens), "notifications": "\n".join(told),
                            "audit": audit_dump(store, plan.tenant), **everything_written(tmp_path)})


# --- what is committed ------------------------------------------------------------------------


def test_no_snapshot_or_test_artefact_holds_the_password():
    snapshots = ROOT / "tests" / "__snapshots__"
    files = [p for p in snapshots.rglob("*") if p.is_file()] if snapshots.exists() else []
    assert_nowhere(SECRET, {str(p): p.read_bytes() for p in files})
    assert_nowhere(SECRET, {"snapshot report": (ROOT / "snapshot_report.html").read_bytes()
                            if (ROOT / "snapshot_report.html").exists() else b""})


def test_the_profile_holds_where_the_password_comes_from_never_the_password(monkeypatch):
    from engine.domain.plan import ConnectionProfile

    monkeypatch.setenv(ENV, SECRET)
    profile = ConnectionProfile(id="x", user=USER, database=DB, password_env=ENV)
    assert profile.password() == SECRET  # read when a connection is made, kept nowhere
    assert_nowhere(SECRET, {"repr": repr(profile), "describe": profile.describe(),
                            "fields": repr(replace(profile).__dict__), "env name": os.environ.get("NOPE", "")})


@pytest.mark.parametrize("token", ["s3cret-token-0123456789\n", "s3cret-tøken-0123456789", "s3cret\x00token-0123456789"])
def test_a_kill_switch_api_token_that_cannot_be_sent_is_never_quoted(token):
    from engine.adapters.killswitch import KillSwitchApiError, RemoteKillSwitch

    backend = RemoteKillSwitch("http://127.0.0.1:9", token)  # nothing listens on port 9
    reading = backend.read("acme", "orders-primary")
    assert reading.active, "fails closed"
    secret = token.strip()
    assert secret not in (reading.error or "") and "s3cret" not in (reading.error or "")
    try:
        backend.set("acme", "global", True, "me", "why")
    except KillSwitchApiError as exc:
        assert "s3cret" not in str(exc)
