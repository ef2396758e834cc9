"""The post-canary report and the announcements (docs/runbook.md#8-report; runbook 8.2, 3.2, 6.4, 7.2, 7.4): pure
renderers on hand-built facts, ``report_facts`` on a real SQLite store, the webhook against a real
local HTTP server, the Markdown export, and the Report screen under Pilot and as SVG snapshots."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from plans import ACME, people
from textual.app import App

from engine.adapters.collectors import Sample
from engine.adapters.net import free_port
from engine.adapters.store import Checkpoint, Decision, ExecutionRun, RollbackRecord, Store
from engine.adapters.webhook import post_webhook, redact_webhook
from engine.domain.clock import FrozenClock
from engine.domain.decision_matrix import Criterion, Verdict
from engine.domain.jsonable import jsonable
from engine.domain.plan import parse_plan
from engine.views.report import (
    CheckpointFacts,
    CriterionFacts,
    ExportError,
    Issue,
    MetricComparison,
    PersonFacts,
    ReportFacts,
    RollbackFacts,
    announce_completion,
    announce_critical,
    announce_rollback_complete,
    announce_rollback_failed,
    announce_rollback_initiated,
    announce_start,
    announce_warning,
    announcements,
    copy_hint,
    escalation_for,
    escalation_level,
    export_markdown,
    in_tmux,
    osc52,
    render_report,
    report_facts,
)
from screens.frame import FrameState
from screens.report import ReportCopy, ReportExport, ReportPost, ReportScreen

T0 = datetime(2026, 11, 22, 16, 0, 0, tzinfo=UTC)  # 23:00 at UTC+7
ICT = timedelta(hours=7)
RUN_ID = "3f2a9c1e-7b44-4d2a-9c1e-0a1b2c3d4e5f"
SECRET_PATH = "/services/T000/B000/XXXXsecretXXXX"
PLACEHOLDER = re.compile(r"\{[A-Za-z_/ ]*\}")

PLAN = ACME + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok", "@nok"),
                     ("Ploy", "sre", "ploy"))


def _plan(webhook: str | None = None):
    text = PLAN + (f'[integrations]\nwebhook_url = "{webhook}"\n' if webhook else "")
    return parse_plan(text, "canary.toml")


# --- hand-built facts ---------------------------------------------------------------------------

PEOPLE = (PersonFacts("Somchai", ("canary_lead",), "@somchai"), PersonFacts("Nok", ("dba",), "@nok"),
          PersonFacts("Ploy", ("sre",), ""))


def pass_facts() -> ReportFacts:
    return ReportFacts(
        run_id=RUN_ID, tenant="acme", connection_id="orders-primary", schema="shop", table="orders",
        index="idx_orders_customer_created", columns=("customer_id", "created_at"), status="completed",
        message="PASS: document and close (15-minute post-success observation first)",
        created_at=T0 - timedelta(minutes=10), started_at=T0, completed_at=T0 + timedelta(minutes=82),
        alter_started_at=T0 + timedelta(minutes=5), alter_finished_at=T0 + timedelta(minutes=6, seconds=12),
        index_created=True, verdict="PASS", next_step="document and close (15-minute post-success observation first)",
        decided_by="engine (somchai@10.0.0.5)", decided_at=T0 + timedelta(minutes=82),
        criteria=(
            CriterionFacts("Index created successfully", True, "yes", "yes", "the index exists and this run created it"),
            CriterionFacts("No alerts fired during monitoring", True, "0 alert(s)", "0",
                           "no metric reached its critical threshold"),
            CriterionFacts("Query latency p50 change", True, "+4.2%", "< +10%",
                           "Hodges–Lehmann shift of per-interval query latency p50 < +10%", 144,
                           "98% CI +1.0%…+7.5%"),
            CriterionFacts("Replication lag", None, "no source", "< 30s", "not measured", applicable=False),
            CriterionFacts("Monitoring window completed", True, "60.0 min", "60 min",
                           "runbook 5.4: the window cannot be shortened"),
        ),
        metrics=(
            MetricComparison("latency_p50", "Latency P50", "ms", 1.2, 1.25, None, 60, 60, 0, "median of per-interval values"),
            MetricComparison("latency_p99", "Latency P99", "ms", 8.0, 8.4, None, 60, 60, 0, "median of per-interval values"),
            MetricComparison("error_rate", "Error Rate", "%", 0.02, 0.03, None, 60, 60, 0, "statements on the table"),
        ),
        checkpoints=tuple(CheckpointFacts(f"T+{m}", T0 + timedelta(minutes=m + 6), True, "0 warning(s), 0 alert(s)",
                                          "engine (somchai)") for m in (15, 30, 45, 60, 75)),
        people=PEOPLE, utc_offset=ICT, plan_source="canary.toml", generated_at=T0 + timedelta(minutes=90),
    )


def rolled_back_facts() -> ReportFacts:
    f = pass_facts()
    rb_start = T0 + timedelta(minutes=40)
    return replace(
        f, status="rolled_back", fail_reason="manual_rollback", verdict="FAIL",
        message="latency p99 +140% for 6 min", completed_at=rb_start + timedelta(seconds=4),
        verdict_reasons=("Query latency p99 change: +140.0% (needs < +20%) — shift separated from noise",),
        next_step="execute the rollback decision flow (runbook 6), pre-filled with these metrics",
        criteria=f.criteria[:1] + (CriterionFacts("No alerts fired during monitoring", False, "1 alert(s)", "0",
                                                  "Query latency p99 change ≥ +100% | median of 5 min"),) + f.criteria[2:],
        rollback=RollbackFacts("completed", "manual", "latency p99 +140% for 6 min",
                               "ALTER TABLE `shop`.`orders` DROP INDEX `idx_orders_customer_created`",
                               rb_start, rb_start + timedelta(seconds=3.4), 1, None, "nok@10.0.0.9"),
        metrics=(
            MetricComparison("latency_p50", "Latency P50", "ms", 1.2, 1.9, 1.22, 60, 30, 20),
            MetricComparison("latency_p99", "Latency P99", "ms", 8.0, 19.2, 8.1, 60, 30, 20),
            MetricComparison("error_rate", "Error Rate", "%", 0.02, 0.4, 0.02, 60, 30, 20),
        ),
        issues=(Issue(T0 + timedelta(minutes=31), "alert", "Query latency p99 change ≥ +100%"),
                Issue(T0 + timedelta(minutes=33), "kill_switch", "kill switch activated by nok — scope: global")),
    )


def _no_placeholder(text: str) -> None:
    assert "{" not in text and "}" not in text, text
    assert not PLACEHOLDER.search(text)


# --- pure renderers ------------------------------------------------------------------------------


def test_report_of_a_pass_fills_the_runbook_template_with_real_values():
    md = render_report(pass_facts())
    _no_placeholder(md)
    for heading in ("# Canary Run Report - shop.orders ADD INDEX (acme)", "## Summary", "## Metrics Comparison",
                    "## Issues Encountered", "## Recommendations", "## Next Steps"):
        assert heading in md
    assert "| Date | 2026-11-22 23:00:00 UTC+07:00 |" in md
    assert "| Result | PASS |" in md
    assert "| Duration | 1 h 22 min |" in md
    assert "| Index Created | idx_orders_customer_created (customer_id, created_at) |" in md
    assert "| Rolled Back | No |" in md
    assert "| Latency P50 | 1.20 ms | 1.25 ms | +4.2% | 60 / 60 |" in md
    assert "| Latency P99 | 8.00 ms | 8.40 ms | +5.0% | 60 / 60 |" in md
    assert "| Error Rate | 0.02% | 0.03% | +0.01 pp | 60 / 60 |" in md
    assert "| ALTER (INPLACE, LOCK=NONE) | 23:05:00 → 23:06:12 (1 min 12 s) |" in md
    assert "| Replication lag | no source | < 30s | — not measured |" in md
    assert "| T+75 | 00:21:00 | ✅ yes | 0 warning(s), 0 alert(s) | engine (somchai) |" in md
    assert "None recorded." in md  # no issue
    assert "Keep idx_orders_customer_created" in md
    assert "Escalation reached | none" in md


def test_report_of_a_rolled_back_run_shows_the_rollback_and_the_metrics_after_it():
    md = render_report(rolled_back_facts())
    _no_placeholder(md)
    assert "| Result | FAIL |" in md
    assert "| Rolled Back | Yes (2026-11-22 23:40:03 UTC+07:00) |" in md
    assert "then dropped by the rollback" in md
    assert "| Latency P99 | 8.00 ms | 19.2 ms | +140.0% | 8.10 ms | 60 / 30 / 20 |" in md
    assert "## Rollback" in md
    assert "| Statement | `` ALTER TABLE `shop`.`orders` DROP INDEX `idx_orders_customer_created` `` |" in md
    assert "| Duration | 3 s |" in md
    assert "| Triggered by | nok@10.0.0.9 |" in md
    assert "≥ +100% \\| median of 5 min" in md  # a pipe in a value cannot break the table
    assert "- 23:31:00 **alert**: Query latency p99 change ≥ +100%" in md
    assert "- 23:33:00 **kill switch**: kill switch activated by nok" in md
    assert "Escalation reached | L3 — Critical - Rollback needed" in md
    assert "schedule the post-mortem" in md


def test_report_of_a_run_still_in_progress_and_with_nothing_measured_says_so():
    f = replace(pass_facts(), status="running", verdict=None, next_step=None, criteria=(), completed_at=None,
                checkpoints=(), metrics=(MetricComparison("latency_p50", "Latency P50", "ms", None, None),),
                message=None)
    md = render_report(f)
    _no_placeholder(md)
    assert "| Result | IN PROGRESS |" in md
    assert "| Duration | 1 h 30 min |" in md  # up to the time the facts were read
    assert "| Latency P50 | — | — | — | 0 / 0 |" in md
    assert "No verdict recorded yet." in md
    assert "provisional" in md


def test_start_announcement():
    text = announce_start(pass_facts(), war_room="https://meet.example/canary")
    _no_placeholder(text)
    assert text.splitlines()[0] == "🚀 [CANARY START] shop.orders ADD INDEX Canary Run (acme)"
    assert "📋 Scope: ADD_INDEX on shop.orders — idx_orders_customer_created (customer_id, created_at)" in text
    assert "🎯 Tenant: acme" in text and "🔗 Connection: orders-primary" in text
    assert "👤 Lead: @somchai" in text
    assert "📊 Monitoring Dashboard: Canary Console (canary-console run canary.toml)" in text
    assert "📞 War Room: https://meet.example/canary" in text
    assert "👥 To confirm: DBA @nok, SRE Ploy, Developer —" in text
    assert text.endswith("All team members please confirm availability in thread.")


def test_completion_announcement_pass_and_fail():
    text = announce_completion(pass_facts())
    _no_placeholder(text)
    assert text.startswith("✅ [CANARY COMPLETE] shop.orders ADD INDEX Canary Run (acme)")
    assert "📋 Result: PASS" in text
    assert "🎯 Index Created: idx_orders_customer_created on shop.orders" in text
    assert "⏱️ Duration: 1 h 22 min" in text
    assert "- Latency P50: 1.20 ms → 1.25 ms (+4.2%)" in text
    assert "- Latency P99: 8.00 ms → 8.40 ms (+5.0%)" in text
    assert "- No alerts fired: ✅" in text
    assert "Thanks to the team: Somchai, Nok, Ploy" in text

    failed = announce_completion(rolled_back_facts(), report_link="/srv/reports/x.md")
    _no_placeholder(failed)
    assert failed.startswith("❌ [CANARY COMPLETE]")  # never a green tick on a FAIL
    assert "📋 Result: FAIL" in failed
    assert "(dropped again by the rollback)" in failed
    assert "- No alerts fired: ❌" in failed
    assert "📝 Full report: /srv/reports/x.md" in failed


def test_rollback_announcements():
    f = rolled_back_facts()
    started = announce_rollback_initiated(f, eta="5 minutes")
    _no_placeholder(started)
    assert started.startswith("🔴 [ROLLBACK INITIATED] shop.orders ADD INDEX Canary (acme)")
    assert "⚠️ Reason: latency p99 +140% for 6 min" in started
    assert "- Latency P99: 19.2 ms (+140.0% vs baseline 8.00 ms)" in started
    assert "- Error rate: 0.40% (+0.38 pp vs baseline 0.02%)" in started
    assert "👤 DBA: @nok" in started and "⏰ ETA: 5 minutes" in started
    given = announce_rollback_initiated(f, "p99 doubling", {"Latency P99": "21 ms"}, "Nok", None)
    assert "⚠️ Reason: p99 doubling" in given and "- Latency P99: 21 ms" in given
    assert "👤 DBA: Nok" in given and "⏰ ETA: —" in given

    done = announce_rollback_complete(f)
    _no_placeholder(done)
    assert done.startswith("✅ [ROLLBACK COMPLETE]")
    assert "📋 Index idx_orders_customer_created has been dropped from shop.orders" in done
    assert "⏱️ Rollback Duration: 3 s" in done
    assert "- Latency P50: 1.22 ms (baseline: 1.20 ms)" in done
    assert "- Error rate: 0.02% (baseline: 0.02%)" in done

    broken = replace(f, status="failed", fail_reason="verification_failed",
                     rollback=replace(f.rollback, status="failed", attempts=5, error="Lost connection"))
    for text in (announce_rollback_complete(broken), announce_rollback_failed(broken)):
        _no_placeholder(text)
        assert text.startswith("🚨 [ROLLBACK FAILED]")
        assert "📣 Escalation L4: On-call manager + Director — Immediate" in text
        assert "⚠️ Error: Lost connection" in text and "🔁 Attempts: 5" in text
    assert [a.key for a in announcements(broken)] == ["start", "completion", "rollback_initiated", "rollback_outcome"]
    assert announcements(broken)[-1].title == "Rollback FAILED (L4)"


def test_warning_and_critical_announcements():
    f = pass_facts()
    warn = announce_warning(f, "Query latency p50 change", "+12.5%", "+10%", "CONTINUE_MONITORING")
    _no_placeholder(warn)
    assert warn.startswith("⚠️ [WARNING] shop.orders ADD INDEX Canary (acme)")
    assert "- Query latency p50 change: +12.5% (threshold: +10%)" in warn
    assert "🎯 Action: CONTINUE MONITORING" in warn
    assert "👤 Monitoring: Ploy, @nok" in warn
    assert "Next update in 5 minutes." in warn
    crit = announce_critical(f, "Replication lag", 61.5, 60, "ROLLBACK")
    _no_placeholder(crit)
    assert crit.startswith("🚨 [CRITICAL] shop.orders ADD INDEX Canary (acme) - Immediate Action Required")
    assert "- Replication lag: 61.5 (threshold: 60)" in crit
    assert "👤 DBA: @nok - please confirm" in crit
    assert "👤 Canary Lead: @somchai - decision needed" in crit
    assert "📣 Escalation L3: all team (@somchai, @nok, Ploy) + on-call manager" in crit


def test_escalation_levels_follow_the_runbook_matrix():
    assert escalation_level() is None
    assert escalation_level(warnings=2).level == "L1"
    assert escalation_level(warnings=2).contact == "Canary Lead"
    assert escalation_level(warnings=3, major=True).level == "L2"
    assert escalation_level(major=True, rollback_needed=True).response == "Immediate"
    assert escalation_level(rollback_needed=True).level == "L3"
    assert escalation_level(rollback_needed=True, rollback_failed=True).level == "L4"

    f = pass_facts()
    assert escalation_for(f) is None
    assert escalation_for(replace(f, verdict="PASS WITH WARNING", verdict_warnings=("p50 +12%",))).level == "L1"
    assert escalation_for(replace(f, verdict="INCONCLUSIVE")).level == "L2"
    assert escalation_for(rolled_back_facts()).level == "L3"
    rb = rolled_back_facts()
    assert escalation_for(replace(rb, rollback=replace(rb.rollback, status="failed"))).level == "L4"


def test_which_announcements_apply():
    assert [a.key for a in announcements(replace(pass_facts(), status="running"))] == ["start"]
    assert [a.key for a in announcements(pass_facts())] == ["start", "completion"]
    assert [a.key for a in announcements(rolled_back_facts())] == [
        "start", "completion", "rollback_initiated", "rollback_outcome"]


def test_osc52_plain_and_through_tmux():
    text = "✅ PASS — shop.orders"
    import base64
    payload = base64.b64encode(text.encode()).decode()
    assert osc52(text, tmux=False) == f"\x1b]52;c;{payload}\x07"
    wrapped = osc52(text, tmux=True)
    assert wrapped == f"\x1bPtmux;\x1b\x1b]52;c;{payload}\x07\x1b\\"
    assert base64.b64decode(wrapped.split(";")[-1].split("\x07")[0]).decode() == text
    assert in_tmux({"TMUX": "/tmp/tmux-0/default,123,0"}) and not in_tmux({})
    assert "set-clipboard on" in copy_hint(True)


# --- report_facts on a real store ----------------------------------------------------------------


def _tick(store, run_id, at, p50, p99, count=100, errors=0, error_rate_from=None):
    extra = [] if error_rate_from is None else [Sample("error_rate", 100 * errors / count, error_rate_from, n=count)]
    store.add_samples("acme", run_id, at, [
        Sample("latency_p50", p50, "primary", n=count, how="history_long"),
        Sample("latency_p99", p99, "primary", n=count, how="history_long"),
        Sample("digest_count", count, "primary", n=count),
        Sample("digest_errors", errors, "primary", n=count),
        Sample("replication_lag", None, "replica", "replica unreachable"),
        *extra,
    ])


def _filled_store(tmp_path, rollback: bool):
    clock = FrozenClock(T0)
    store = Store(f"sqlite:///{tmp_path / 's.db'}", clock)
    run = store.create_run(ExecutionRun(
        tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None], ["created_at", None]]),
        "somchai@10.0.0.5")
    store.transition("acme", run.id, "running", "somchai@10.0.0.5")
    for i in range(10):  # baseline: five minutes, p50 1.0 ms, p99 8.0 ms, 1 error in 1000 statements
        _tick(store, run.id, T0 + timedelta(seconds=30 * i), 1.0, 8.0, errors=1 if i == 3 else 0)
    alter_at = T0 + timedelta(minutes=5)
    store.update_run("acme", run.id, alter_started_at=alter_at, alter_finished_at=alter_at + timedelta(seconds=70),
                     index_created_by_run=True, alter_sql="ALTER TABLE …")
    window = alter_at + timedelta(minutes=3)
    clock.current = window
    store.audit("acme", "somchai@10.0.0.5", "monitoring_started", run.id,
                {"at": window.isoformat(), "interval": 30, "time_compression": 30.0})
    for i in range(20):  # ten minutes of window; the last five: p50 1.1 ms, p99 12.0 ms
        late = i >= 10
        _tick(store, run.id, window + timedelta(seconds=30 * i), 1.1 if late else 1.05, 12.0 if late else 9.0,
              errors=2 if late else 0)
    clock.current = window + timedelta(minutes=10)
    store.save_checkpoint(Checkpoint(tenant_id="acme", execution_run_id=run.id, label="T+15", metrics_ok=True,
                                     notes="0 warning(s), 0 alert(s)", recorded_by="engine (somchai)"))
    verdict = Verdict("FAIL" if rollback else "PASS", (
        Criterion("Index created successfully", True, "yes", "yes", "the index exists and this run created it"),
        Criterion("Query latency p99 change", not rollback, "+50.0%", "< +20%", "Hodges–Lehmann shift", 20,
                  "98% CI +40.0%…+60.0%"),
    ), ("Query latency p99 change: +50.0% (needs < +20%)",) if rollback else (),
        "execute the rollback decision flow" if rollback else "document and close",
        ("Query latency p50 change ≥ +10%",))
    store.save_decision(Decision(tenant_id="acme", execution_run_id=run.id, verdict=verdict.verdict,
                                 evidence=jsonable(verdict.as_dict() | {"profile": "default", "stopped_early": False}),
                                 decided_by="engine (somchai@10.0.0.5)"))
    if rollback:
        store.set_kill_switch("acme", "global", True, "nok@10.0.0.9", "p99 climbing")
        store.transition("acme", run.id, "failed", "somchai@10.0.0.5", fail_reason="verification_failed",
                         message="FAIL: p99 +50%")
        clock.advance(60)
        start = clock.now()
        store.save_rollback_record(RollbackRecord(
            tenant_id="acme", execution_run_id=run.id, connection_profile_id="orders-primary",
            rollback_status="completed", rollback_type="manual", trigger_reason="p99 +50% for 6 min",
            rollback_sql="ALTER TABLE `shop`.`orders` DROP INDEX `idx_orders_customer_created`",
            attempts=[{"n": 1, "ok": True}, {"n": 2}], rollback_started_at=start,
            rollback_completed_at=start + timedelta(seconds=2.5),
            rollback_details={"triggered_by": "nok@10.0.0.9"}, created_by="nok@10.0.0.9"),
            "nok@10.0.0.9", "rollback_completed")
        for i in range(10):  # after the rollback: back to the baseline
            _tick(store, run.id, start + timedelta(seconds=10 + 30 * i), 1.0, 8.2)
        clock.advance(400)
        store.transition("acme", run.id, "rolled_back", "nok@10.0.0.9", fail_reason="manual_rollback",
                         message="p99 +50% for 6 min")
    else:
        store.transition("acme", run.id, "completed", "somchai@10.0.0.5", message="PASS: document and close")
    return store, run.id


def test_report_facts_from_a_real_store_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("CANARY_DB_PASSWORD", "hunter2-very-secret")
    store, run_id = _filled_store(tmp_path, rollback=False)
    plan = _plan("https://hooks.slack.com" + SECRET_PATH)
    f = report_facts(store, plan, run_id)
    assert f.status == "completed" and f.verdict == "PASS" and f.index_created and not f.rolled_back
    assert f.columns == ("customer_id", "created_at")
    assert f.time_compression == 30.0
    p50, p99, err = f.metric("latency_p50"), f.metric("latency_p99"), f.metric("error_rate")
    assert (p50.baseline, p50.after, p50.n_baseline, p50.n_after) == (1.0, 1.1, 10, 11)
    assert (p99.baseline, p99.after) == (8.0, 12.0)
    assert err.baseline == pytest.approx(0.1)  # 1 error in 1000 statements
    assert err.after == pytest.approx(100 * 20 / 1100)  # 2 errors a tick in 10 of the last 11 ticks
    assert [c.label for c in f.checkpoints] == ["T+15"]
    assert [c.name for c in f.criteria] == ["Index created successfully", "Query latency p99 change"]
    assert [p.name for p in f.people_with("dba")] == ["Nok"]
    md = render_report(f)
    _no_placeholder(md)
    assert "| Latency P50 | 1.00 ms | 1.10 ms | +10.0% | 10 / 11 |" in md
    assert "| Latency P99 | 8.00 ms | 12.0 ms | +50.0% | 10 / 11 |" in md
    assert "| Error Rate | 0.10% | 1.82% | +1.72 pp | 10 / 11 |" in md
    assert "| Clock | ⏩ drill clock ×30 (rehearsal): T+ and the times here are the drill's |" in md
    assert all(a.text.endswith("⏩ drill clock ×30 (rehearsal): its times and durations are the drill's")
               for a in announcements(f)), "a drill's clock is marked in every announcement"
    assert "**warning**: Query latency p50 change ≥ +10%" in md
    assert "| Date | 2026-11-22 23:00:00 UTC+07:00 |" in md
    for text in [md] + [a.text for a in announcements(f)]:
        assert "hunter2" not in text and "CANARY_DB_PASSWORD" not in text and SECRET_PATH not in text


def test_report_facts_from_a_real_store_rolled_back(tmp_path):
    store, run_id = _filled_store(tmp_path, rollback=True)
    f = report_facts(store, _plan(), run_id)
    assert f.status == "rolled_back" and f.rolled_back and f.verdict == "FAIL"
    assert f.rollback.attempts == 2 and f.rollback.duration_s == 2.5
    assert f.rollback.triggered_by == "nok@10.0.0.9"
    p99 = f.metric("latency_p99")
    assert (p99.baseline, p99.after, p99.post_rollback) == (8.0, 12.0, 8.2)
    kinds = [i.kind for i in f.issues]
    assert "kill_switch" in kinds and "failure" in kinds
    md = render_report(f)
    _no_placeholder(md)
    assert "| Latency P99 | 8.00 ms | 12.0 ms | +50.0% | 8.20 ms | 10 / 11 / 10 |" in md
    assert "kill switch activated by nok@10.0.0.9 — scope: global; reason: p99 climbing" in md
    assert "| Attempts | 2 |" in md
    done = announce_rollback_complete(f)
    assert "- Latency P99: 8.20 ms (baseline: 8.00 ms)" in done
    assert "⏱️ Rollback Duration: 2 s" in done


@pytest.mark.parametrize("source, credited", [
    ("mysql", "statements on the table (performance_schema digests)"),
    ("prometheus", "application (Prometheus)"),
])
def test_report_credits_only_the_source_that_measured_the_error_rate(tmp_path, source, credited):
    """Without Prometheus the primary stores its statement error rate as error_rate too: the report
    must not credit Prometheus for it."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}", FrozenClock(T0))
    run = store.create_run(ExecutionRun(
        tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop", table_name="orders",
        index_name="idx_orders_customer_created", columns=[["customer_id", None]]), "somchai@10.0.0.5")
    for i in range(4):
        _tick(store, run.id, T0 + timedelta(seconds=30 * i), 1.0, 8.0, errors=1, error_rate_from=source)
    f = report_facts(store, _plan(), run.id)
    err = f.metric("error_rate")
    assert err.source == credited and err.baseline == pytest.approx(1.0)
    md = render_report(f)
    assert f"Error Rate: {credited}" in md
    if source == "mysql":
        assert "Prometheus" not in md


def test_report_facts_for_an_unknown_run(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(LookupError, match="not found for tenant acme"):
        report_facts(store, _plan(), "nope")


# --- the webhook, against a real HTTP server ---------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []
    status = 200
    body = b"ok"

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", 0))
        type(self).received.append((self.path, json.loads(self.rfile.read(length))))
        self.send_response(type(self).status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *_args):
        pass


@pytest.fixture
def hook_server():
    class Handler(_Hook):
        received: list = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, Handler
    server.shutdown()
    server.server_close()


def test_webhook_posts_slack_json(hook_server):
    server, handler = hook_server
    url = f"http://127.0.0.1:{server.server_port}{SECRET_PATH}"
    text = announce_completion(pass_facts())
    result = post_webhook(url, text)
    assert result.ok and result.status == 200 and result.error is None
    assert handler.received == [(SECRET_PATH, {"text": text})]
    assert result.message == f"posted to http://127.0.0.1:{server.server_port} (HTTP 200)"
    assert SECRET_PATH not in result.message


def test_webhook_500_is_a_clean_error(hook_server):
    server, handler = hook_server
    handler.status, handler.body = 500, b"internal_error"
    result = post_webhook(f"http://127.0.0.1:{server.server_port}{SECRET_PATH}", "hello")
    assert not result.ok and result.status == 500
    assert "HTTP 500 internal_error" in result.error and "post it by hand" in result.error
    assert SECRET_PATH not in result.error and "XXXXsecret" not in result.error


def test_webhook_404_says_the_url_is_wrong(hook_server):
    server, handler = hook_server
    handler.status, handler.body = 404, b"no_service"
    result = post_webhook(f"http://127.0.0.1:{server.server_port}{SECRET_PATH}", "hello")
    assert not result.ok and result.status == 404
    assert "fix integrations.webhook_url in the plan" in result.error
    assert SECRET_PATH not in result.error


def test_webhook_unreachable_is_a_clean_error():
    port = free_port()  # nothing listens there
    result = post_webhook(f"http://127.0.0.1:{port}{SECRET_PATH}", "hello", timeout=2)
    assert not result.ok and result.status is None
    assert result.error.startswith(f"could not reach http://127.0.0.1:{port}")
    assert "nothing was posted" in result.error
    assert SECRET_PATH not in result.error and "XXXXsecret" not in result.error


def test_webhook_bad_url_never_raises():
    result = post_webhook("ftp://example.invalid/secret-path", "hello")
    assert not result.ok and "secret-path" not in result.error
    assert redact_webhook("https://hooks.slack.com" + SECRET_PATH) == "https://hooks.slack.com"
    assert redact_webhook("not a url") == "<webhook URL>"


# --- export ----------------------------------------------------------------------------------------


def test_export_writes_the_report_atomically(tmp_path):
    f = pass_facts()
    path = export_markdown(f, tmp_path / "reports", now=T0 + timedelta(minutes=90))
    assert path.name == "canary-report-3f2a9c1e-20261122T173000Z.md"
    assert path.read_text(encoding="utf-8") == render_report(f)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    other = export_markdown(f, tmp_path / "reports", text="just this", now=T0)
    assert other.read_text() == "just this"


def test_export_to_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ExportError) as info:
        export_markdown(pass_facts(), blocker / "reports", now=T0)
    message = str(info.value)
    assert str(blocker / "reports" / "canary-report-3f2a9c1e-20261122T160000Z.md") in message
    assert "Choose a directory you can write to" in message and "copy the report with c" in message


# --- the screen ------------------------------------------------------------------------------------


FRAME = FrameState(user="somchai@10.0.0.5", roles=("canary_lead",), target="shop.orders@10.0.0.12:3306",
                   target_health="● ok", step="report", run="run 3f2a9c1e")


class ReportHost(App):
    """The screen alone, the way the App hosts it: data in through ``show``, messages out."""

    def __init__(self, facts: ReportFacts | None, webhook: str | None = None):
        super().__init__()
        self.facts = facts
        self.plan = _plan(webhook)
        self.seen: list = []

    async def on_mount(self) -> None:
        screen = ReportScreen(self.plan)
        await self.push_screen(screen)
        screen.apply_frame(FRAME)
        if self.facts is not None:
            screen.show(self.facts)

    def on_report_export(self, message: ReportExport) -> None:
        self.seen.append(message)

    def on_report_copy(self, message: ReportCopy) -> None:
        self.seen.append(message)

    def on_report_post(self, message: ReportPost) -> None:
        self.seen.append(message)

    def on_report_lesson(self, message) -> None:
        self.seen.append(message)


async def test_l_asks_for_a_lesson_learned_row_and_posts_it():
    """Runbook 8.3 prompted on the report screen: l opens the four fields; what happened is
    required; the row goes to the App (which records it with the same function as the CLI)."""
    from screens.note import LessonDialog
    from screens.report import ReportLesson

    app = ReportHost(pass_facts())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, LessonDialog)
        dialog.query_one("#record").press()
        await pilot.pause()
        assert app.screen is dialog and "required" in str(dialog.query_one("#why").render())
        await pilot.press(*"p99 rose for 8 min", "enter", *"none for users", "enter", *"cold index", "enter",
                          *"warm it first", "enter")
        await pilot.pause()
        assert app.seen[-1] == ReportLesson("p99 rose for 8 min", "none for users", "cold index", "warm it first")
        await pilot.press("l", "escape")
        await pilot.pause()
        assert sum(isinstance(m, ReportLesson) for m in app.seen) == 1, "Esc records nothing"


def test_lessons_are_stored_and_exported_with_the_report(tmp_path):
    from engine.flows.lessons import record_lesson

    store, run_id = _filled_store(tmp_path, rollback=False)
    plan = _plan()
    assert "None recorded yet: press l" in render_report(report_facts(store, plan, run_id))
    record_lesson(store, plan, run_id, "nok@10.0.0.9", {"dba"}, "p99 +12% for 8 min\x1b[31m", "none for users",
                  "cold index pages", "warm the index before the next canary")
    with pytest.raises(ValueError, match="what happened"):
        record_lesson(store, plan, run_id, "nok@10.0.0.9", {"dba"}, "  ")
    with pytest.raises(PermissionError):
        record_lesson(store, plan, run_id, "stranger", set(), "x")
    assert store.audit_entries("acme", run_id, "lesson_record_refused")
    f = report_facts(store, plan, run_id)
    [lesson] = f.lessons
    assert lesson.what == "p99 +12% for 8 min[31m" and lesson.by == "nok@10.0.0.9"
    path = export_markdown(f, tmp_path / "out")
    md = path.read_text()
    assert "## Lessons Learned" in md
    assert ("| 1 | p99 +12% for 8 min[31m | none for users | cold index pages | warm the index before the next "
            "canary | nok@10.0.0.9") in md
    assert "\x1b" not in md


async def test_keys_post_the_messages_with_the_text_on_screen():
    facts = rolled_back_facts()
    app = ReportHost(facts, webhook="https://hooks.slack.com" + SECRET_PATH)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReportScreen)
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.seen[-1], ReportExport)
        assert app.seen[-1].text == render_report(facts) and app.seen[-1].view == "report"
        await pilot.press("v", "c")
        await pilot.pause()
        assert isinstance(app.seen[-1], ReportCopy) and app.seen[-1].text == announce_start(facts)
        await pilot.press("v", "v", "w")
        await pilot.pause()
        assert isinstance(app.seen[-1], ReportPost) and app.seen[-1].view == "rollback_initiated"
        assert app.seen[-1].text.startswith("🔴 [ROLLBACK INITIATED]")
        status = str(screen.query_one("#report-status").render())
        assert "Posting to https://hooks.slack.com…" in status and SECRET_PATH not in status
        await pilot.press("w")  # no second post while the first has no answer
        await pilot.pause()
        assert sum(isinstance(m, ReportPost) for m in app.seen) == 1
        screen.show_result("posted to https://hooks.slack.com (HTTP 200)", True, "post")
        await pilot.pause()
        assert "✓ posted" in str(screen.query_one("#report-status").render())
        await pilot.press("w")
        await pilot.pause()
        assert sum(isinstance(m, ReportPost) for m in app.seen) == 2
        screen.show_result("cannot write the report to /x: Permission denied", False)
        await pilot.pause()
        assert screen.query_one("#report-status").has_class("-error")


async def test_without_a_webhook_w_is_disabled_and_says_why():
    app = ReportHost(pass_facts())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert "add webhook_url under [integrations]" in str(screen.query_one("#report-status").render())
        # Without a webhook in the plan, w can never act here: not shown (the status line says why).
        assert screen.check_action("post", ()) is False
        await pilot.press("w")
        await pilot.pause()
        assert not any(isinstance(m, ReportPost) for m in app.seen)
        assert screen.views == ["report", "start", "completion"]  # no rollback on a PASS
        await pilot.press("shift+v")
        assert screen.view == "completion"
        await pilot.press("e")
        await pilot.pause()
        assert app.seen[-1].text == announce_completion(pass_facts())
        await pilot.press("v")
        assert screen.view == "report"
        await pilot.press("v")
        screen.show(pass_facts())  # the same facts again (the App's poll): nothing moves
        assert screen.view == "start"


async def test_before_the_facts_arrive_nothing_can_be_sent():
    app = ReportHost(None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("e", "c")
        await pilot.pause()
        assert app.seen == []
        app.screen.show(pass_facts())
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.seen[-1], ReportCopy)


def _settle():
    async def run_before(pilot):
        for _ in range(5):
            await pilot.pause(0.05)
    return run_before


def test_report_screen_pass(snap_compare, term):
    assert snap_compare(ReportHost(pass_facts()), terminal_size=term, run_before=_settle())


def test_report_screen_rolled_back(snap_compare, term):
    app = ReportHost(rolled_back_facts(), webhook="https://hooks.slack.com" + SECRET_PATH)
    assert snap_compare(app, terminal_size=term, run_before=_settle())


def test_report_screen_rollback_announcement(snap_compare, term):
    app = ReportHost(rolled_back_facts(), webhook="https://hooks.slack.com" + SECRET_PATH)
    assert snap_compare(app, press=["v", "v", "v"], terminal_size=term, run_before=_settle())


async def test_the_first_frame_says_what_is_known_while_the_report_is_built():
    """The report is built on a worker (it reads the whole run); the screen's first frame is not
    blank meanwhile: the run's row says the run, the table, the status and the verdict so far."""
    from engine.adapters.store import ExecutionRun
    from engine.flows.runbook import RunView

    run = ExecutionRun(id=RUN_ID, tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop",
                       table_name="orders", index_name="idx_orders_customer_created", status="completed",
                       columns=[["customer_id", None]], alter_started_at=T0 + timedelta(minutes=5),
                       alter_finished_at=T0 + timedelta(minutes=6), completed_at=T0 + timedelta(minutes=82))
    app = ReportHost(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.show_view(RunView(run=run, verdicts=("PASS",)), T0)
        await pilot.pause()
        title = str(screen.query_one("#report-title").render())
        assert "run 3f2a9c1e" in title and "shop.orders" in title and "PASS" in title
        assert "building the report" in title
        body = screen.query_one("#report-md").source
        assert "Building the report from the store" in body and "2026-11-22 23:05:00 UTC+07:00" in body
        screen.show(pass_facts())  # the built report replaces the first frame
        await pilot.pause()
        assert "building" not in str(screen.query_one("#report-title").render())
        screen.show_view(RunView(run=run, verdicts=("PASS",)), T0)  # a later poll leaves the report alone
        await pilot.pause()
        assert "building" not in str(screen.query_one("#report-title").render())
