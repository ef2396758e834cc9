"""engine.flows.killswitch_actions without a terminal: the one function each for turning the kill switch
on and off (the console, the CLI and the API call them), and the id check."""

from __future__ import annotations

import socket

import pytest

from engine.adapters.killswitch import EmbeddedKillSwitch, RemoteKillSwitch
from engine.adapters.store import Store
from engine.flows.killswitch_actions import (
    KillTargetError,
    KnownIds,
    activate,
    check_target,
    deactivate,
    known_ids,
)


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 's.db'}")


def test_activate_cleans_any_reason_sets_the_switch_and_notes_the_cleaning(store):
    result = activate(store, EmbeddedKillSwitch(store), "acme", "tenant", "dev\x1b[2J@host", (),
                      "p99 \ud800\x00\x1b]0;x\x07" + "y" * 5000, via="api")
    assert result.ok and result.switch_set and result.actor == "dev[2J@host"
    assert result.reason.startswith("p99 ]0;x") and len(result.reason) <= 2001
    assert any("lone surrogate" in c for c in result.cleaned)
    [row] = store.kill_switch_rows("acme")
    assert row.is_active and row.reason == result.reason
    [noted] = store.audit_entries("acme", action="kill_switch_reason_cleaned")
    assert noted.details["via"] == "api" and noted.details["changes"] == list(result.cleaned)
    assert result.lines()[0] == "kill switch ACTIVE (tenant acme) by dev[2J@host"


def test_activation_is_open_to_a_person_without_a_role(store):
    assert activate(store, EmbeddedKillSwitch(store), "acme", "global", "visitor", (), "").ok


def test_deactivation_checks_the_role_and_the_reason_and_audits_a_refusal(store):
    ks = EmbeddedKillSwitch(store)
    activate(store, ks, "acme", "tenant", "dev", ("developer",), "stop")
    refused = deactivate(store, ks, "acme", ("tenant",), "dev", ("developer",), "fixed")
    assert refused.refused and not refused.refused_usage and not refused.switch_set
    assert store.audit_entries("acme", action="kill_switch_deactivation_refused")
    no_reason = deactivate(store, ks, "acme", ("tenant",), "nok", ("dba",), " \x1b ")
    assert no_reason.refused_usage and "reason is required" in no_reason.refused
    done = deactivate(store, ks, "acme", ("tenant",), "nok", ("dba",), "cause found")
    assert done.ok and not any(r.is_active for r in store.kill_switch_rows("acme"))


def test_with_the_remote_api_down_the_result_says_what_was_not_set_and_the_store_has_it(store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = RemoteKillSwitch(f"http://127.0.0.1:{port}", token="t", timeout=1.0)
    result = activate(store, remote, "acme", "tenant", "nok", ("dba",), "p99", via="console")
    assert not result.ok and not result.switch_set and result.remote
    assert "unreachable" in result.switch_error
    text = "\n".join(result.lines())
    assert "kill switch NOT set on the kill-switch API (tenant acme)" in text and "what to do:" in text
    [failed] = store.audit_entries("acme", action="kill_switch_activation_failed")
    assert failed.details["via"] == "console" and failed.details["reason"] == "p99"
    off = deactivate(store, remote, "acme", ("tenant",), "nok", ("dba",), "ok")
    assert not off.ok and "NOT turned off" in off.lines()[0]


def test_check_target_wants_a_slug_the_plan_or_the_store_knows():
    known = KnownIds(frozenset({"acme"}), frozenset({("acme", "orders-primary")}))
    assert check_target("tenant", "acme", "", known) == ("acme", "")
    assert check_target("global", None, None, known) == ("*", "")
    assert check_target("connection", "acme", "orders-primary", known) == ("acme", "orders-primary")
    for tenant, said in (("Acme", "did you mean acme?"), ("acme2", "did you mean acme?"),
                         ("../etc", "known: acme"), ("x'; DROP TABLE t;--", "known: acme"), ("", "not a tenant id")):
        with pytest.raises(KillTargetError, match=said.replace("?", r"\?")):
            check_target("tenant", tenant, "", known)
    with pytest.raises(KillTargetError, match="did you mean orders-primary"):
        check_target("connection", "acme", "orders_primary", known)


def test_known_ids_are_the_plans_and_the_stores(store):
    activate(store, EmbeddedKillSwitch(store), "globex", "tenant", "nok", (), "")
    assert known_ids(store).tenants == {"globex"}
    assert known_ids(None).tenants == frozenset()
