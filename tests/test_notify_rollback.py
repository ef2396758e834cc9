"""The manual rollback pushed, not only shown (issue 16 item 3; docs/runbook.md#pushed-to-the-webhooks):
R1 "rollback initiated" with the trigger and who decided, the L4 "rollback failed", the
post-rollback observation's start and result, and R5 "rollback complete" reach the plan's webhooks
from the process that performed the step — against real local HTTP servers (tests/test_notify.py's
``Receiver``) and, for the DROP and the observation, the sandbox MariaDB."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from plans import ACME, people
from test_notify import SECRET, Receiver, _down_url
from test_rollback_partial import TableHolder

import engine.flows.notify as notify
from engine.adapters.killswitch import EmbeddedKillSwitch
from engine.adapters.store import ExecutionRun, Store
from engine.adapters.target import Target
from engine.domain.clock import CompressedClock
from engine.domain.plan import Person, parse_plan
from engine.flows.monitor import sources_for
from engine.flows.notify import Notifier
from engine.flows.rollback_flow import approve_rollback, decide_rollback
from engine.flows.rollback_rungs import execute_drop, observe_after_rollback
from engine.views.rollback import rollback_view

PEOPLE = (Person("Somchai", ("canary_lead",), "somchai", handle="@somchai"),
          Person("Nok", ("dba",), "nok", handle="@nok"))


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(notify, "FIRST_WAIT_S", 0.05)


def _plan(url: str):
    return parse_plan(ACME + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok", "@nok"))
                      + f'[integrations]\nwebhook_url = "{url}"\n', "canary.toml")


def _store_run(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    run = store.create_run(ExecutionRun(
        tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None], ["created_at", None]]), "test")
    store.transition("acme", run.id, "running", "test")
    store.update_run("acme", run.id, index_created_by_run=True)
    store.transition("acme", run.id, "completed", "test")
    return store, store.get_run("acme", run.id)


def _heads(texts):
    return [t.splitlines()[0] for t in texts]


# --- R1, by whoever decides ---------------------------------------------------------------------------


def test_the_decision_is_posted_once_with_the_trigger_who_decided_and_the_metrics(tmp_path):
    with Receiver() as hook:
        plan = _plan(hook.url)
        store, run = _store_run(tmp_path)
        # Two consoles watch the run; only the one whose person decides hears its own step.
        deciding = Notifier(store, plan, run.id, "nok@10.0.0.9")
        watching = Notifier(store, plan, run.id, "somchai@10.0.0.5")
        refused = decide_rollback(store, plan, run, "lock_wait", "somchai@10.0.0.5", {"canary_lead"}, "lock wait",
                                  listeners=(watching.on_rollback_event,))
        assert refused.status == "refused"
        out = decide_rollback(store, plan, run, "lock_wait", "nok@10.0.0.9", {"dba"}, "lock wait 7 s on orders",
                              {"lock_wait": 7.1, "latency_p99": 21.0}, listeners=(deciding.on_rollback_event,))
        assert out.ok, out.message
        assert deciding.flush(10) and watching.flush(1)
        texts = hook.texts()
    assert _heads(texts) == ["🔴 [ROLLBACK INITIATED] shop.orders ADD INDEX Canary (acme)"], "one post, none for a refusal"
    text = texts[0]
    assert ("⚠️ Reason: Lock wait time > 5 s (trigger lock_wait) — decided by nok@10.0.0.9 (DBA): "
            "lock wait 7 s on orders") in text
    assert "- Lock wait time: 7.10 s" in text and "- Latency P99: 21 ms\n" in text
    assert "Manual DROP INDEX idx_orders_customer_created on shop.orders" in text and "👤 DBA: @nok" in text
    [posted] = store.audit_entries("acme", run.id, "webhook_posted")
    assert posted.details["kind"] == "rollback_initiated" and posted.details["to"] == hook.url.removesuffix(SECRET)
    assert posted.actor == "nok@10.0.0.9"
    for e in store.audit_entries("acme", run.id, limit=1000):
        assert "very-secret" not in json.dumps(e.details)


def test_a_webhook_that_is_down_never_holds_the_decision(tmp_path):
    plan = _plan(_down_url())
    store, run = _store_run(tmp_path)
    failed: list = []
    n = Notifier(store, plan, run.id, "nok", on_result=failed.append)
    started = time.monotonic()
    assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s",
                           listeners=(n.on_rollback_event,)).ok
    assert time.monotonic() - started < 2, "the post is queued; the decision does not wait for it"
    assert n.flush(30)
    [e] = store.audit_entries("acme", run.id, "webhook_post_failed")
    assert e.details["kind"] == "rollback_initiated" and e.details["attempts"] == 3
    assert failed and not failed[0].ok and "very-secret" not in failed[0].message


# --- the sandbox: decide → approve → DROP → observation, and a DROP that fails (L4) ----------------------


def _real_run(lab, name, url, **executor):
    db = lab.database(name)
    lab.load_orders(db, 2000)
    plan = lab.plan(db, f"idx_{name}", ["customer_id", "created_at"], **executor)
    plan = replace(plan, people=PEOPLE)
    store = lab.store(name)
    ex = lab.executor(plan, store)
    run = ex.create_run()
    out = ex.execute(run.id)
    assert out.status == "completed", out.message
    plan = replace(plan, webhook_url=url)  # the run's own posts are tests/test_notify.py's
    return plan, store, store.get_run(plan.tenant, run.id), Target(plan.connection)


@pytest.mark.mariadb
def test_decide_approve_drop_and_the_observation_are_posted(lab):
    with Receiver() as hook:
        plan, store, run, target = _real_run(lab, "nrb_full", hook.url)
        n = Notifier(store, plan, run.id, "nok")
        told = (n.on_rollback_event,)
        assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s on orders",
                               {"lock_wait": 7.1}, listeners=told).ok
        assert approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}).ok
        drop = execute_drop(store, plan, target, run, "nok", {"dba"}, listeners=told)
        assert drop.ok, drop.message
        assert n.flush(10)
        assert len(hook.texts()) == 1, "the DROP itself is announced by R4's start and R5, not twice"
        clock = CompressedClock(600)  # 30 minutes in about 3 seconds
        result = observe_after_rollback(store, plan, run.id, sources_for(plan, EmbeddedKillSwitch(store), clock),
                                        "nok", clock, listeners=told, monitor_listeners=(n.on_monitor_event,))
        assert result is not None and result.kind == "post_rollback"
        assert n.flush(15)
        texts = hook.texts()
    heads = _heads(texts)
    ok = "OK" if result.ok else "NOT OK"
    assert [h.split("]")[0].split("[")[1] for h in heads] == [
        "ROLLBACK INITIATED", "OBSERVATION", f"OBSERVATION {ok}", "ROLLBACK COMPLETE"], heads
    assert "decided by nok (DBA)" in texts[0]
    assert "Post-rollback observation: 30 minutes" in texts[1]
    assert "Post-rollback observation of 30 minutes" in texts[2]
    assert f"📋 Index idx_nrb_full has been dropped from {plan.schema}.orders" in texts[3]
    kinds = [e.details["kind"] for e in store.audit_entries(plan.tenant, run.id, "webhook_posted")]
    assert kinds == ["rollback_initiated", "observation_started", "observation_completed", "rollback_complete"]
    view = rollback_view(store, plan, run.id)
    assert [s.done for s in view.steps] == [True, True, True, True, True], "R5: announced"
    # The approval and the other console's reading post nothing more; a second observation is not run.
    assert observe_after_rollback(store, replace(plan), "no-such-run", [], "nok", clock) is None


@pytest.mark.mariadb
def test_a_drop_that_fails_is_posted_as_the_l4_escalation(lab):
    with Receiver() as hook:
        plan, store, run, target = _real_run(lab, "nrb_l4", hook.url, lock_wait_timeout=1, rollback_attempts=2,
                                             rollback_backoff_seconds=0.1)
        n = Notifier(store, plan, run.id, "nok")
        told = (n.on_rollback_event,)
        assert decide_rollback(store, plan, run, "lock_wait", "nok", {"dba"}, "lock wait 7 s", listeners=told).ok
        assert approve_rollback(store, plan, run, "canary_lead", "somchai", {"canary_lead"}).ok
        holder = TableHolder(lab, plan.schema)
        try:
            out = execute_drop(store, plan, target, run, "nok", {"dba"}, listeners=told)
        finally:
            holder.release()
        assert out.status == "failed" and "escalation L4" in out.message
        assert n.flush(10)
        texts = hook.texts()
    assert _heads(texts)[-1].startswith("🚨 [ROLLBACK FAILED]")
    assert "📣 Escalation L4" in texts[-1] and "🔁 Attempts: 2" in texts[-1]
    assert n.level == 4
    assert not any("ROLLBACK COMPLETE" in h for h in _heads(texts))


def test_the_cli_s_decision_is_posted_by_the_cli(tmp_path):
    """``canary-console rollback decide`` is the process that decides: it posts R1 before it exits."""
    from test_cli import cli, write_plan

    store, run = _store_run(tmp_path)
    with Receiver() as hook:
        plan = write_plan(tmp_path, "dba")
        plan.write_text(plan.read_text().replace("[[people]]", f'[integrations]\nwebhook_url = "{hook.url}"\n\n[[people]]'))
        done = cli("rollback", "decide", run.id, "--plan", str(plan), "--store", f"sqlite:///{tmp_path / 'store.db'}",
                   "--trigger", "lock_wait", "--reason", "lock wait 7 s on orders")
        texts = hook.texts()
    assert done.returncode == 0, done.stderr
    assert _heads(texts) == ["🔴 [ROLLBACK INITIATED] shop.orders ADD INDEX Canary (acme)"]
    assert "(trigger lock_wait) — decided by" in texts[0] and "(DBA): lock wait 7 s on orders" in texts[0]
    [posted] = Store(f"sqlite:///{tmp_path / 'store.db'}").audit_entries("acme", run.id, "webhook_posted")
    assert posted.details["kind"] == "rollback_initiated"
