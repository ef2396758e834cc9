"""Pushed, not only shown (issue 16 item 3; docs/runbook.md#pushed-to-the-webhooks): the run's
events reach the plan's webhooks as they happen — against real local HTTP servers (http.server in a
thread, recording every post): one that takes every post, one that fails first then takes it, and
one that is down. Each post is audited without the webhook's secret path; a failed post is told to
the front end and never holds the runbook.

The window and the post-success observation run for real (``Monitor`` on a 600× clock) with a
scripted source, as in tests/test_early_stop.py: what is under test is what is pushed, when."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from plans import ACME, people
from scripted_window import ScriptedSource, world

import engine.flows.notify as notify
from engine.adapters.store import Store
from engine.domain.plan import parse_plan
from engine.flows.notify import Notifier, post_with_retry

SECRET = "/services/T000/B000/very-secret-token"


# --- a real webhook receiver ------------------------------------------------------------------------


class Receiver:
    """A Slack-compatible webhook on 127.0.0.1: records every post; answers ``statuses`` in turn,
    then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()):
        self.posts: list[tuple[str, dict]] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.posts.append((self.path, body, status))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"try later")

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET}"

    def texts(self) -> list[str]:
        return [body["text"] for _path, body, status in self.posts if status == 200]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _down_url() -> str:
    """A local port nobody listens on: every connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET}"


def _plan(*hooks: str):
    first, rest = hooks[0], hooks[1:]
    more = f"webhook_urls = {json.dumps(list(rest))}\n" if rest else ""
    return parse_plan(ACME + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok", "@nok"),
                                    ("Ploy", "sre", "ploy", "@ploy"))
                      + f'[integrations]\nwebhook_url = "{first}"\n{more}', "canary.toml")


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(notify, "FIRST_WAIT_S", 0.05)


# --- one post, retried with backoff -----------------------------------------------------------------


def test_a_post_that_fails_then_succeeds_is_retried_with_backoff():
    waits: list[float] = []
    with Receiver(statuses=(503, 500)) as hook:
        result, tries = post_with_retry(hook.url, "hello", attempts=3, first_wait_s=0.05, sleep=waits.append)
    assert result.ok and result.status == 200 and tries == 3
    assert [s for _p, _b, s in hook.posts] == [503, 500, 200]
    assert hook.posts[0][0] == SECRET and hook.posts[0][1] == {"text": "hello"}  # Slack-compatible JSON
    assert len(waits) == 2 and waits[1] > waits[0] > 0, "exponential backoff between the tries"


def test_a_refusal_is_not_retried_and_a_down_webhook_is_tried_three_times():
    with Receiver(statuses=(404,)) as hook:
        result, tries = post_with_retry(hook.url, "x", sleep=lambda _s: None)
    assert not result.ok and result.status == 404 and tries == 1, "a wrong webhook does not get better"
    result, tries = post_with_retry(_down_url(), "x", sleep=lambda _s: None)
    assert not result.ok and result.retryable and tries == 3
    assert SECRET not in result.message and "very-secret" not in result.message


# --- the run's events, pushed as they happen --------------------------------------------------------


def _drive(ex, run):
    ex._notifier_for(run.id)
    try:
        out = ex._monitoring_window(run)
    finally:
        ex.notifier.flush(30)
    return out


def test_warnings_escalation_checkpoints_verdict_observation_and_completion_are_pushed(tmp_path):
    events: list = []
    with Receiver() as hook, Receiver() as second:
        plan = _plan(hook.url, second.url)
        # Replication lag in its warning zone from T+20 to T+25: a warning, then back to calm.
        store, ex, run = world(tmp_path, plan, ScriptedSource({"replication_lag": 42.0}, 5, 10), events)
        out = _drive(ex, run)
        texts = hook.texts()
        assert second.texts() == texts, "every webhook of the plan gets every message"

    assert out.status == "completed", out.message
    heads = [t.splitlines()[0] for t in texts]
    kinds = [h.split("]")[0].split("[")[1] for h in heads]
    # Posts go out in order from one thread; a post retried on a loaded machine may land after the
    # next checkpoint's, so the order asked for is the events' own.
    assert kinds[0] == "CHECKPOINT T+15" and "WARNING" in kinds, heads
    assert "ESCALATION L1" in kinds and kinds.index("WARNING") < kinds.index("ESCALATION L1")
    assert [k for k in kinds if k.startswith("CHECKPOINT")] == [f"CHECKPOINT T+{m}" for m in (15, 30, 45, 60, 75)]
    assert kinds[-4:] == ["VERDICT", "OBSERVATION", "OBSERVATION OK", "CANARY COMPLETE"], heads

    warning = texts[kinds.index("WARNING")]
    # Runbook 7.4's warning template with real values: the metric, its value, the threshold, the people.
    assert "- Replication lag: 42 s (threshold: ≥ 30s)" in warning
    assert "👤 Monitoring: @ploy, @nok" in warning and "Escalation L1: Canary Lead @somchai" in warning
    checkpoint = texts[kinds.index("CHECKPOINT T+30")]
    assert "📊 Metrics OK:" in checkpoint and "Replication lag" in checkpoint and "Next update: T+45" in checkpoint
    assert "👤 Monitoring: @ploy, @nok\n" in checkpoint, "each person once"
    assert "PASS WITH WARNING" in texts[kinds.index("VERDICT")]
    assert "Post-success observation of 15 minutes: no alert fired" in texts[kinds.index("OBSERVATION OK")]
    assert "📋 Result: PASS WITH WARNING" in texts[-1]

    posted = store.audit_entries("acme", run.id, "webhook_posted")
    assert len(posted) == 2 * len(texts)
    assert {e.details["to"] for e in posted} == {hook.url.removesuffix(SECRET), second.url.removesuffix(SECRET)}
    for e in store.audit_entries("acme", run.id, limit=10000):
        assert "very-secret" not in json.dumps(e.details), f"{e.action} audited the webhook's secret path"
    assert ("webhook_posted", {"kind": "warning", "to": hook.url.removesuffix(SECRET), "attempts": 1,
                               "message": f"posted to {hook.url.removesuffix(SECRET)} (HTTP 200)"}) in events


def test_a_webhook_that_fails_then_succeeds_gets_every_message(tmp_path):
    events: list = []
    with Receiver(statuses=(500,)) as hook:
        store, ex, run = world(tmp_path, _plan(hook.url), ScriptedSource(), events)
        out = _drive(ex, run)
        texts = hook.texts()
    assert out.status == "completed"
    assert texts[0].startswith("🕒 [CHECKPOINT T+15]"), "the first message arrived on its second try"
    first = store.audit_entries("acme", run.id, "webhook_posted")[0]
    assert first.details["kind"] == "checkpoint" and first.details["attempts"] == 2
    assert not store.audit_entries("acme", run.id, "webhook_post_failed")


def test_a_webhook_that_is_down_is_shown_and_never_holds_the_runbook(tmp_path):
    events: list = []
    store, ex, run = world(tmp_path, _plan(_down_url()), ScriptedSource(), events)
    started = time.monotonic()
    out = _drive(ex, run)
    assert out.status == "completed" and store.get_run("acme", run.id).status == "completed"
    assert time.monotonic() - started < 60
    failed = store.audit_entries("acme", run.id, "webhook_post_failed")
    assert failed and {e.details["kind"] for e in failed} >= {"checkpoint", "verdict", "completion"}
    assert all(e.details["attempts"] == 3 and "could not reach" in e.details["error"] for e in failed)
    told = [d for name, d in events if name == "webhook_failed"]
    assert told and all("very-secret" not in d["message"] for d in told)


def test_auto_pause_is_pushed_at_l2_and_the_rollback_it_ends_in_at_l3(tmp_path):
    """Five warnings at once: AUTO-PAUSE, pushed with who lifts it and how (L2); the canary lead
    approves a rollback: the verdict FAIL (L3)."""
    from engine.flows.monitor import approve_pause

    events: list = []
    five = {"lock_wait": 2.0, "connections": 85.0, "threads_running": 60.0, "replication_lag": 35.0,
            "buffer_pool_hit": 93.0}
    with Receiver() as hook:
        plan = _plan(hook.url)
        store, ex, run = world(tmp_path, plan, ScriptedSource(five, 4), events)

        def on_event(name, data):
            events.append((name, dict(data)))
            if name == "monitor_tick" and store.audit_entries("acme", run.id, "auto_pause") and \
                    not store.approvals("acme", run.id, "auto_pause"):
                approve_pause(store, "acme", run.id, "rollback", "somchai@10.0.0.5", {"canary_lead"})

        ex.on_event = on_event
        out = _drive(ex, run)
        texts = hook.texts()
    assert (out.status, out.fail_reason) == ("failed", "manual_rollback")
    heads = [t.splitlines()[0] for t in texts]
    pause = next(t for t in texts if t.startswith("⏸️ [AUTO-PAUSE]"))
    assert "5 concurrent warnings" in pause and "@somchai - decision needed" in pause
    assert f"canary-console approve {run.id} --plan canary.toml --decision resume|rollback" in pause
    levels = [h.split("]")[0].split("[")[1] for h in heads if h.startswith("📣")]
    assert levels == ["ESCALATION L1", "ESCALATION L2", "ESCALATION L3"], heads
    assert heads.index(next(h for h in heads if "AUTO-PAUSE" in h)) < heads.index(next(h for h in heads if "L2" in h))
    assert any(h.startswith("❌ [VERDICT]") for h in heads), heads


def test_a_critical_is_pushed_with_the_critical_template(tmp_path):
    events: list = []
    with Receiver() as hook:
        store, ex, run = world(tmp_path, _plan(hook.url), ScriptedSource({"lock_wait": 6.5}, 4), events)
        out = _drive(ex, run)
        texts = hook.texts()
    assert (out.status, out.fail_reason) == ("failed", "harm_limit")
    critical = next(t for t in texts if t.startswith("🚨 [CRITICAL]"))
    assert "- Lock wait time: 6.50 s (threshold: ≥ 5s)" in critical
    assert "Action Required: ROLLBACK" in critical and "👤 DBA: @nok - please confirm" in critical
    assert any(t.startswith("📣 [ESCALATION L3]") for t in texts)
    assert texts[-1].startswith("❌ [VERDICT]") and "would roll back" in texts[-1]


def test_without_a_webhook_nothing_is_queued(tmp_path):
    plan = parse_plan(ACME, "canary.toml")
    n = Notifier(Store(f"sqlite:///{tmp_path / 'n.db'}"), plan, "r", "me")
    n.push("warning", lambda f: "x")
    assert not n.enabled and n.flush(0.1)


def test_more_webhooks_are_validated_like_the_first():
    from engine.domain.plan import PlanError

    plan = _plan("https://hooks.example/a", "https://hooks.example/b", "https://hooks.example/a")
    assert plan.webhooks == ("https://hooks.example/a", "https://hooks.example/b")
    with pytest.raises(PlanError, match=r"integrations\.webhook_urls\[0\]' must be an http"):
        parse_plan(ACME + '[integrations]\nwebhook_urls = ["ftp://x"]\n', "canary.toml")
    with pytest.raises(PlanError, match="must be a list"):
        parse_plan(ACME + '[integrations]\nwebhook_urls = "https://one"\n', "canary.toml")
