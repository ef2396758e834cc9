"""Issue 14 (the kill switch always kills), a second activation: F9, ``kill`` or the API pressed
while the switch is already ON keeps the first reason and who set it; the press is audited as a
re-press, the switch stays on, and the person is told it was already on since HH:MM by whom. The
rule is in the one ``activate`` (engine/flows/killswitch_actions.py), so every front end says the same."""

from __future__ import annotations

import httpx
from test_api_killswitch import TOKENS, auth
from test_console_pilot import _wait_active, make_app
from test_kill_cli import cli, out, write_plan
from waits import until

from api import create_app, serve_in_thread
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import Store
from engine.flows.killswitch_actions import activate


def _row(store: Store, tenant: str, scope: str):
    [row] = [r for r in store.kill_switch_rows(tenant) if r.scope == scope]
    return row


def _chain_ok(store: Store) -> None:
    v = store.verify_audit_chain()
    assert v.intact, v.problems


def test_a_second_activation_keeps_the_first_reason_and_who_set_it(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    backend = EmbeddedKillSwitch(store)
    first = activate(store, backend, "acme", "global", "nok@10.0.0.9", (), "p99 doubling on orders", via="cli")
    assert first.ok and not first.already_on
    since = _row(store, "acme", "global").updated_at
    again = activate(store, backend, "acme", "global", "somchai@10.0.0.5", (), "F9 in the console", via="console")
    assert again.ok and again.switch_set and again.already_on, "the switch is on: a re-press is not a failure"
    row = _row(store, "acme", "global")
    assert (row.is_active, row.reason, row.updated_by) == (True, "p99 doubling on orders", "nok@10.0.0.9")
    assert row.updated_at == since
    [said] = again.lines()[:1]
    assert said.startswith(f"kill switch was already ON (global) since {since:%H:%M} UTC by nok@10.0.0.9 "
                           "(p99 doubling on orders)"), said
    assert "somchai@10.0.0.5" in said
    assert len(store.audit_entries("acme", action="kill_switch_activated")) == 1
    [re] = store.audit_entries("acme", action="kill_switch_repressed")
    assert re.actor == "somchai@10.0.0.5"
    assert re.details["kept_reason"] == "p99 doubling on orders" and re.details["set_by"] == "nok@10.0.0.9"
    assert re.details["reason"] == "F9 in the console" and re.details["via"] == "console"
    _chain_ok(store)


def test_another_scope_is_not_a_re_press_and_f7_still_adds_its_reason(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    backend = EmbeddedKillSwitch(store)
    activate(store, backend, "acme", "global", "nok", (), "first", via="cli")
    tenant = activate(store, backend, "acme", "tenant", "pim", (), "tenant too", via="cli")
    assert tenant.ok and not tenant.already_on and _row(store, "acme", "tenant").reason == "tenant too"
    added = activate(store, backend, "acme", "global", "pim", (), "p99 doubling", via="console", enforce=False,
                     add_reason=True)
    assert added.ok and not added.already_on
    assert _row(store, "acme", "global").reason == "p99 doubling", "F7 (why is it on) sets the reason"
    assert not store.audit_entries("acme", action="kill_switch_repressed")


def test_the_api_keeps_the_first_reason_on_a_second_put(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    server = serve_in_thread(create_app(store, "acme", TOKENS))
    try:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            assert c.put("/api/kill-switch/global", json={"is_active": True, "reason": "p99 doubling"},
                         headers=auth("t-dba")).status_code == 200
            second = c.put("/api/kill-switch/global", json={"is_active": True, "reason": "me too"},
                           headers=auth("t-sre"))
    finally:
        server.stop()
    assert second.status_code == 200 and second.json()["is_active"] is True
    assert second.json()["reason"] == "p99 doubling", "the answer says the reason as stored"
    row = _row(store, "acme", "global")
    assert (row.reason, row.updated_by) == ("p99 doubling", "nok")
    [re] = store.audit_entries("acme", action="kill_switch_repressed")
    assert (re.actor, re.details["reason"], re.details["via"]) == ("pim", "me too", "api")


def test_kill_twice_on_the_command_line_says_it_was_already_on(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    plan = write_plan(tmp_path)
    assert cli("kill", "--plan", str(plan), "--store", url, "--scope", "tenant", "--reason", "first").returncode == 0
    done = cli("kill", "--plan", str(plan), "--store", url, "--scope", "tenant", "--reason", "second")
    assert done.returncode == 0, out(done)
    assert "kill switch was already ON (tenant acme) since " in out(done) and "(first)" in out(done)
    store = Store(url)
    assert _row(store, "acme", "tenant").reason == "first"
    assert store.audit_entries("acme", action="kill_switch_repressed")[0].details["reason"] == "second"


async def test_f9_while_the_switch_is_on_keeps_the_reason_and_says_since_when_by_whom(tmp_path):
    app = make_app(tmp_path)
    app.store.set_kill_switch("acme", "global", True, "nok@10.0.0.9", "p99 doubling")
    since = _row(app.store, "acme", "global").updated_at
    async with app.run_test(size=(80, 24)) as pilot:
        app.read_kill_switch()
        assert await _wait_active(app, pilot)
        await pilot.press("f9")
        assert await until(pilot, lambda: app.store.audit_entries("acme", action="kill_switch_repressed"), 5, 0.02)
        assert await until(pilot, lambda: any("already ON" in n.message for n in app._notifications), 5, 0.02)
        assert app.frame.kill_active
        [note] = [n.message for n in app._notifications if "already ON" in n.message]
        assert f"since {since:%H:%M} UTC by nok@10.0.0.9 (p99 doubling)" in note
    row = _row(app.store, "acme", "global")
    assert (row.reason, row.updated_by) == ("p99 doubling", "nok@10.0.0.9")
    assert len(app.store.audit_entries("acme", action="kill_switch_activated")) == 1
    _chain_ok(app.store)
