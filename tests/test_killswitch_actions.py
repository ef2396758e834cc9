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


# --- what a kill came to: the index decides, not the KILL QUERY (pure) ----------------------------

@pytest.mark.parametrize("thread, ended, index_present, outcome", [
    (812, True, False, "killed"),  # KILL QUERY, the ALTER rolled back: the index is absent
    (812, True, True, "finished_before"),  # the KILL met the commit phase: the ALTER finished anyway
    (None, True, True, "finished_before"),  # committed an instant before: nothing left to kill
    (None, True, False, "no_alter"),  # nothing in flight (its own console stopped it first)
    (812, False, None, "still_running"),  # the server has not let go within the wait
    (812, True, None, "unconfirmed"),  # ended, but the index could not be read
])
def test_the_outcome_of_a_kill_is_what_the_server_shows_after_it(thread, ended, index_present, outcome):
    from engine.flows.enforce import kill_outcome

    assert kill_outcome(thread, ended, index_present) == outcome


def test_an_alter_that_finished_before_the_kill_is_said_plainly_and_is_not_ok():
    from engine.flows.killswitch_actions import KillResult

    result = KillResult("activate", ("tenant",), "acme", "", "nok", "cli", switch_set=True,
                        finished_before=[("r-1", "idx_x on shop.orders")])
    assert not result.ok  # the kill did not stop the change: never a success (exit 1)
    text = "\n".join(result.lines(plan="canary.toml"))
    assert "killed the ALTER" not in text
    assert ("the ALTER of run r-1 had finished before the kill: index idx_x on shop.orders is on the table; "
            "the switch is ON; remove it with the rollback: canary-console rollback decide r-1 --plan canary.toml "
            "--trigger kill_switch") in text
    stopped = KillResult("activate", ("tenant",), "acme", "", "nok", "cli", switch_set=True, killed=[("r-1", 812)])
    assert stopped.ok and "killed the ALTER of run r-1 (server thread 812); its index is verified absent" in stopped.lines()
    api_down = KillResult("activate", ("tenant",), "acme", "", "nok", "cli", switch_error="connection refused",
                          remote=True, finished_before=[("r-1", "idx_x on shop.orders")])
    text = "\n".join(api_down.lines())
    assert "the switch is NOT set (see above)" in text and "--plan PLAN.toml" in text
    assert "the ALTER had finished (its index is on the table, see above)" in text
    assert "stopped on the target" not in text


def test_a_switch_set_in_this_process_wakes_its_alter_watchers_at_once(store):
    """The executor watching its ALTER waits on ``watching()`` between polls: an activation in the
    same process (F9 in the driving console) wakes it, so its KILL needs no poll interval."""
    from engine.adapters.killswitch import _WATCHERS, watch_of, watching

    with watching("r-1") as first, watching("r-2") as second:
        assert watch_of("r-1") is first and watch_of("r-3") is None
        assert not first.wake.is_set() and not second.wake.is_set()
        assert activate(store, EmbeddedKillSwitch(store), "acme", "tenant", "nok", (), "").ok
        assert first.wake.is_set() and second.wake.is_set()
        first.wake.clear()
        refused = deactivate(store, EmbeddedKillSwitch(store), "acme", ("tenant",), "dev", ("developer",), "x")
        assert refused.refused and not first.wake.is_set()  # nothing was set: nobody is woken
    assert first not in _WATCHERS and second not in _WATCHERS and first.settled.is_set()


def test_an_activation_lets_its_woken_watchers_send_their_kill_first_and_waits_no_longer():
    """``await_watchers``: back as soon as each woken watcher has read the switch (and sent its KILL),
    or its watch ended; a watcher that does not answer holds the activation ``timeout`` at most."""
    import threading
    import time

    from engine.adapters.killswitch import await_watchers, wake_watchers, watching

    with watching("r-1") as quick, watching("r-2") as ended_early:
        quick.answered.set()
        woken = wake_watchers()
        assert set(woken) == {quick, ended_early} and not quick.answered.is_set() and quick.wake.is_set()
        threading.Timer(0.05, quick.answered.set).start()
        threading.Timer(0.05, ended_early.settled.set).start()
        started = time.monotonic()
        await_watchers(woken, timeout=5)
        assert time.monotonic() - started < 2
    with watching("r-3") as silent:
        started = time.monotonic()
        await_watchers(wake_watchers(), timeout=0.2)
        assert 0.15 < time.monotonic() - started < 2 and not silent.answered.is_set()


def test_the_kill_of_an_alter_this_process_drives_awaits_its_executor_s_reading():
    """No second connection and no second KILL for the ALTER this process's executor watches: it is
    woken, kills on its own connection, and what it reads back (the index) is the outcome."""
    import threading
    from types import SimpleNamespace

    from engine.adapters.killswitch import watching
    from engine.flows.enforce import AlterKill, stop_run_alter

    def no_connection(_run):
        raise AssertionError("a second connection was opened")

    run = SimpleNamespace(id="r-1")
    for present, outcome in ((False, "killed"), (True, "finished_before")):
        with watching("r-1") as watch:
            def executor(watch=watch, present=present):
                assert watch.wake.wait(5)
                watch.publish(AlterKill("r-1", 812, True, present, "idx_x on shop.orders"))

            t = threading.Thread(target=executor)
            t.start()
            kill = stop_run_alter(no_connection, run)
            t.join(5)
        assert kill.outcome == outcome and kill.thread == 812
        assert not kill.audited_by_owner  # the executor published it as a kill it did not send
    # No executor of this process watches it (another process's ALTER): the kill goes to the server.
    with pytest.raises(AssertionError, match="second connection"):
        stop_run_alter(no_connection, run, confirm_s=0.1)


def test_a_woken_executor_s_kill_is_reported_only_by_a_switch_that_covers_its_run():
    """The activation lists the kill its woken executor sent when the enforcement did not (the run
    already cancelled) — but only for a switch whose scope covers that run: another tenant's
    executor, or another connection's, killed under its own switch, not this one."""
    import time

    from engine.adapters.killswitch import AlterWatch
    from engine.flows.enforce import AlterKill
    from engine.flows.killswitch_actions import KillResult, _credit_watchers

    since = time.monotonic()

    def watch(run: str, tenant: str, conn: str) -> AlterWatch:
        w = AlterWatch(run, tenant, conn)
        w.killed_at = time.monotonic()
        w.publish(AlterKill(run, 42, True, False, "idx on shop.orders"))
        return w

    woken = [watch("r-acme", "acme", "c1"), watch("r-other", "other", "c1"), watch("r-acme-c2", "acme", "c2")]
    cases = {("tenant", "acme", ""): ["r-acme", "r-acme-c2"], ("connection", "acme", "c1"): ["r-acme"],
             ("global", "", ""): ["r-acme", "r-other", "r-acme-c2"]}
    for (scope, tenant, conn), runs in cases.items():
        result = KillResult("activate", (scope,), tenant, conn, "nok", "console")
        _credit_watchers(result, woken, since)
        assert [r for r, _ in result.killed] == runs, scope
    late = KillResult("activate", ("tenant",), "acme", "", "nok", "console")
    _credit_watchers(late, woken, time.monotonic())  # killed before this activation: not its doing
    assert late.killed == []
