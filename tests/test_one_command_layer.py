"""One command layer (docs/architecture.md): each user action is one engine function that looks its
roles up in the one table (engine/domain/roles.py), acts and audits; the console, the CLI and the
HTTP API call it. Two checks:

- statically, over console/, screens/ and api/: no front end writes to the store itself (no
  ``store.audit``, ``update_run``, ``set_kill_switch`` …), holds a role set of its own, or names an
  action the table does not know;
- live: a person without the role is refused with the same words and the same audit action whether
  they ask from the console (the real App, driven by Pilot), the CLI (its main(), tests/cli_run.py) or the API (a
  real HTTP server).
"""

from __future__ import annotations

import ast
import getpass
import re
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from test_cli import cli
from waits import until

from engine.domain.roles import ACTION_ROLES, EVERYONE, ROLES

ROOT = Path(__file__).resolve().parent.parent
FRONT_ENDS = ("console", "screens", "api")
# The store's methods that write (engine/adapters/store): a front end reaches them through a flow.
STORE_WRITES = frozenset({
    "audit", "add_approval", "add_samples", "claim", "create_run", "ensure_tenant", "renew_lease",
    "save_checkpoint", "save_connection_profile", "save_decision", "save_precheck", "save_rollback_point",
    "save_rollback_record", "set_kill_switch", "transition", "update_run"})


def _sources() -> list[Path]:
    return sorted(p for d in FRONT_ENDS for p in (ROOT / d).rglob("*.py"))


def _store_like(node: ast.expr) -> bool:
    """``store``, ``self.store``, ``request.app.state.store``, ``state.store`` …"""
    if isinstance(node, ast.Name):
        return node.id == "store" or node.id.endswith("_store")
    return isinstance(node, ast.Attribute) and (node.attr == "store" or node.attr.endswith("_store"))


def test_no_front_end_writes_to_the_store_itself():
    offenders = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in STORE_WRITES and _store_like(node.func.value)):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node.func)}")
    assert offenders == [], "a front end writes to the store; call the action's flow function:\n" + "\n".join(offenders)


def test_the_static_check_finds_a_direct_write():
    """The check above can fail: the lines it must catch are caught."""
    for line in ("self.store.audit(t, a, 'x', None, {})", "request.app.state.store.update_run(t, r)",
                 "store.set_kill_switch(t, 'global', True)"):
        call = ast.parse(line).body[0].value  # type: ignore[attr-defined]
        assert call.func.attr in STORE_WRITES and _store_like(call.func.value), line


def test_no_front_end_holds_a_role_set_of_its_own():
    """Who may do what is read from engine/domain/roles.py; a literal set, tuple or list of role names
    in a front end is a second copy of the table."""
    offenders = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Set, ast.Tuple, ast.List)):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in ROLES]
                if len(names) >= 2 or (names and isinstance(node, ast.Set)):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)[:80]}")
    assert offenders == [], "\n".join(offenders)


def test_every_action_the_console_refuses_is_in_the_table():
    """``refuse("action", …)`` in the App (its parts, console/*.py): the action is a row of
    ACTION_ROLES (a typo would only fail when the key is pressed)."""
    source = "\n".join(p.read_text() for p in sorted((ROOT / "console").glob("*.py")))
    named = set(re.findall(r'self\.refuse\("([a-z_]+)"', source))
    assert named, "the App refuses nothing?"
    assert named <= set(ACTION_ROLES), named - set(ACTION_ROLES)


def test_every_action_has_the_words_its_refusal_says():
    from engine.flows.guard import WHAT

    assert set(WHAT) == set(ACTION_ROLES)


def test_every_action_in_the_table_is_checked_by_the_engine():
    """Each row of ACTION_ROLES is looked up by the engine (a flow, a view or the drill) — the front ends
    reach the action through it, never a check of their own."""
    engine_text = "\n".join(p.read_text() for p in (ROOT / "engine").rglob("*.py") if p.name != "roles.py")
    unchecked = [a for a in ACTION_ROLES if f'"{a}"' not in engine_text and a not in NOT_LOOKED_UP]
    assert unchecked == [], f"actions no engine function checks: {unchecked}"
    assert all(ACTION_ROLES[a] == EVERYONE for a in NOT_LOOKED_UP), "only a row open to everyone goes unasked"


# Rows open to everyone that no function asks about today (docs/architecture.md, "One command layer").
NOT_LOOKED_UP = {
    "kill_switch_global": "engine/flows/killswitch_actions.py asks kill_switch_activate for every scope",
    "audit_read": "reading the trail: GET /api/audit and the console's F2 ask nobody",
}


# --- the same refusal from the console, the CLI and the API --------------------------------------------

ME = getpass.getuser()


def _plan_file(tmp_path: Path, port: int, db: str) -> Path:
    """The current unix user is a developer (the CLI's person); ``lead`` the canary lead."""
    from engine.domain.clock import utcnow
    from engine.domain.plan import toml_dump, window_covering

    path = tmp_path / "canary.toml"
    path.write_text(toml_dump({
        "tenant": "console",
        "connection": {"id": "sbx-console", "host": "127.0.0.1", "port": port, "user": "root", "database": db},
        "change": {"table": "orders", "index": "idx_one_layer", "columns": ["customer_id", "created_at"]},
        "window": window_covering(utcnow()),
        "people": [{"name": "Lead", "roles": ["canary_lead"], "unix_user": "lead"},
                   {"name": "Me", "roles": ["developer"], "unix_user": ME}],
    }))
    return path


@pytest.fixture(scope="module")
def layer_db(lab):
    db = lab.database("cc_one_layer")
    lab.load_orders(db, 1_000)
    return db


@pytest.fixture
def setting(lab, layer_db, tmp_path):
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.adapters.store import Store
    from engine.adapters.target import Target
    from engine.domain.plan import load_plan
    from engine.flows.executor import Executor

    path = _plan_file(tmp_path, lab.sandbox.primary.port, layer_db)
    plan = load_plan(path)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    run = Executor(plan, store, EmbeddedKillSwitch(store), Target(plan.connection), "lead@jump", "w").create_run()
    yield SimpleNamespace(path=path, plan=plan, url=url, store=store, run=run)
    store.close()


def _said(text: str, actor: str) -> str:
    """The words, with the person's name (which differs by front end) and the front end's frame taken out."""
    text = text.replace(actor, "<actor>").strip()
    for frame in ("refused: ", "Refused: "):
        text = text.removeprefix(frame)
    return re.split(r"\. Ask ", text)[0].rstrip(".")


async def _from_console(setting, act, refused: str) -> tuple[str, dict]:
    from test_console_flow import make_app

    app = make_app(setting.plan, setting.store, user=ME)
    notes: list[str] = []
    async with app.run_test(size=(160, 50)) as pilot:
        assert await until(pilot, lambda: app.view.run is not None and app.view.run.id == setting.run.id)
        original = app.notify
        app.notify = lambda message, **kw: (notes.append(str(message)), original(message, **kw))  # type: ignore[method-assign]
        before = len(setting.store.audit_entries(setting.plan.tenant, action=refused))
        act(app)
        assert await until(pilot, lambda: len(setting.store.audit_entries(setting.plan.tenant, action=refused)) > before
                           and notes), f"the console: no {refused}"
    entry = setting.store.audit_entries(setting.plan.tenant, action=refused)[-1]
    return _said(notes[-1], app.actor), entry.details


def _from_cli(setting, *args: str, refused: str) -> tuple[str, dict]:
    from engine.adapters.identity import current_identity

    before = len(setting.store.audit_entries(setting.plan.tenant, action=refused))
    done = cli(*args, "--plan", str(setting.path), "--store", setting.url)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    entries = setting.store.audit_entries(setting.plan.tenant, action=refused)
    assert len(entries) == before + 1, f"the CLI: no {refused}"
    line = done.stderr.strip().splitlines()[-1].removeprefix("error: ")
    return _said(line, current_identity().actor), entries[-1].details


def _from_cli_positional(setting, command: str, *args: str, refused: str) -> tuple[str, dict]:
    """As ``_from_cli``, for a command that takes the plan as its first argument (``execute``)."""
    from engine.adapters.identity import current_identity

    before = len(setting.store.audit_entries(setting.plan.tenant, action=refused))
    done = cli(command, str(setting.path), *args, "--store", setting.url)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    entries = setting.store.audit_entries(setting.plan.tenant, action=refused)
    assert len(entries) == before + 1, f"the CLI: no {refused}"
    line = done.stderr.strip().splitlines()[-1].removeprefix("error: ")
    return _said(line, current_identity().actor), entries[-1].details


def _from_api(setting, method: str, path: str, body: dict, refused: str) -> tuple[str, dict]:
    from api import create_app, serve_in_thread

    server = serve_in_thread(create_app(setting.store, setting.plan.tenant, {"t-dev": ("api-person", "developer"),
                                                                             "t-lead": ("lead", "canary_lead")}))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            r = client.request(method, path.format(run=setting.run.id), json=body,
                               headers={"Authorization": "Bearer t-dev"})
    finally:
        server.stop()
    assert r.status_code == 403, r.text
    entry = setting.store.audit_entries(setting.plan.tenant, action=refused)[-1]
    assert entry.actor == "api-person"
    return _said(r.json()["detail"], "api-person"), entry.details


@pytest.mark.mariadb
async def test_lifting_an_auto_pause_is_refused_alike_by_the_console_and_the_cli(setting):
    console, c_details = await _from_console(
        setting, lambda app: app.on_pause_decision(SimpleNamespace(decision="resume", note="")),
        "auto_pause_approval_refused")
    command, k_details = _from_cli(setting, "approve", setting.run.id, "--decision", "resume",
                                   refused="auto_pause_approval_refused")
    assert console == command == "lifting the AUTO-PAUSE needs the canary lead role; <actor> is developer"
    assert c_details["roles"] == k_details["roles"] == ["developer"]
    assert c_details["needed"] == k_details["needed"] == ["canary_lead"]


@pytest.mark.mariadb
async def test_acknowledging_a_failed_case_is_refused_alike_by_the_console_and_the_cli(setting):
    console, c_details = await _from_console(setting, lambda app: app.action_acknowledge_case(),
                                             "acknowledge_self_test_refused")
    command, k_details = _from_cli(setting, "acknowledge", setting.run.id, "--case", "TC-06", "--reason", "why",
                                   refused="acknowledge_self_test_refused")
    assert console == command == ("acknowledging a failed P1 self-test case needs the canary lead or DBA role; "
                                  "<actor> is developer")
    assert c_details["needed"] == k_details["needed"] == ["canary_lead", "dba"]


@pytest.mark.mariadb
async def test_executing_is_refused_alike_by_the_console_the_cli_and_the_api(setting):
    """``execute``: the console's g, ``canary-console execute`` (a new run or ``--run``) and the API's
    manual trigger — one row of the table, asked through the guard before anything is claimed."""
    console, c_details = await _from_console(setting, lambda app: app.action_execute(), "execute_refused")
    command, k_details = _from_cli_positional(setting, "execute", "--run", setting.run.id, refused="execute_refused")
    api, a_details = _from_api(setting, "POST", "/api/executions/{run}/execute", {}, "execute_refused")
    assert console == command == api == ("executing the run (its ALTER) needs the canary lead or DBA role; "
                                         "<actor> is developer")
    assert c_details["needed"] == k_details["needed"] == a_details["needed"] == sorted(ACTION_ROLES["execute"])
    assert c_details["roles"] == k_details["roles"] == a_details["roles"] == ["developer"]
    run = setting.store.get_run(setting.plan.tenant, setting.run.id)
    assert (run.status, run.claimed_by) == ("scheduled", None), "a refused execute claims nothing"
    # Without --run the CLI would create a run: refused before it does.
    runs = len(setting.store.find_runs(setting.plan.tenant))
    _from_cli_positional(setting, "execute", refused="execute_refused")
    assert len(setting.store.find_runs(setting.plan.tenant)) == runs


@pytest.mark.mariadb
async def test_the_self_test_is_refused_alike_by_the_console_and_the_cli_to_a_person_the_plan_does_not_name(
        setting):
    """``self_test`` is everyone's the plan names (docs/roles.md): its results gate the plan's
    prechecks. A person the plan does not name is refused — said alike and audited — before a
    sandbox starts; the CLI wants the plan (no plan, nobody to ask). The API has no self-test."""
    from engine.domain.plan import load_plan
    from engine.flows.guard import refusal_text

    stranger = setting.path.with_name("stranger.toml")
    stranger.write_text(setting.path.read_text().replace(f'unix_user = "{ME}"', 'unix_user = "somebody-else"'))
    setting.path, setting.plan = stranger, load_plan(stranger)
    console, c_details = await _from_console(setting, lambda app: app.action_self_test(), "self_test_refused")
    command, k_details = _from_cli(setting, "self-test", "--cases", "TC-02", refused="self_test_refused")
    assert console == command == ("the self-test needs the canary lead, DBA, SRE or developer role; <actor> is "
                                  "without a role in this plan")
    assert c_details["roles"] == k_details["roles"] == []
    assert c_details["needed"] == k_details["needed"] == sorted(ACTION_ROLES["self_test"])
    assert setting.store.latest_prechecks(setting.plan.tenant, "TC-") == {}, "nothing ran, nothing stored"
    assert refusal_text("self_test", "me", ["developer"]) is None  # everyone the plan names may
    no_plan = cli("self-test", "--store", setting.url, "--tenant", setting.plan.tenant)
    assert no_plan.returncode == 2 and "give --plan PLAN.toml" in no_plan.stderr, no_plan.stderr


@pytest.mark.mariadb
async def test_a_new_rollback_trigger_is_refused_alike_by_the_console_the_cli_and_the_api(setting):
    """rollback_retrigger from all three front ends: one flow function, one audit action, one rule."""
    refused = "rollback_retrigger_refused"
    console, _ = await _from_console(setting, lambda app: app.on_rollback_retrigger(SimpleNamespace(reason="x")),
                                     refused)
    command, _ = _from_cli(setting, "rollback", "retrigger", setting.run.id, "--reason", "x", refused=refused)
    api, _ = _from_api(setting, "POST", "/api/rollback/{run}/retrigger", {"reason": "x"}, refused)
    # "… ask <who>": the console and the CLI name the plan's people, the API the token holders.
    heads = {said.split(" — ask")[0] for said in (console, command, api)}
    assert heads == {"a new trigger is the canary lead's step (docs/rollback.md); <actor> is developer"} or \
        len(heads) == 1, heads
    assert len(setting.store.audit_entries(setting.plan.tenant, action=refused)) == 3
