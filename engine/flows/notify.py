"""Pushed, not only shown (docs/runbook.md#pushed-to-the-webhooks; runbook 3.3, 7.1, 7.2, 7.4).

The run's events go to the plan's Slack-compatible webhook(s) as they happen: the start
announcement, every warning, AUTO-PAUSE and critical alert, each escalation level reached, each
checkpoint's status update, the verdict, the post-success observation and the completion
announcement. A ``Notifier`` is subscribed to the monitor's events by the executor, so the console,
``run --headless`` and the rehearsal all push alike. The manual rollback's records (R1 initiated,
L4 failed, the post-rollback observation, R5 complete) reach it the same way from
engine/flows/rollback_flow.py and rollback_rungs.py, in the process that performed the step.

Posting never blocks the runbook: messages queue for one thread of their own, each post retried with
backoff (tenacity) when nothing was delivered or the receiver said "later", and audited
(``webhook_posted`` / ``webhook_post_failed``) with the webhook's ``scheme://host`` only — its path
is its secret. A failed post is handed to ``on_result`` for the screen or the headless output.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.adapters.webhook import WebhookResult, post_webhook, redact_webhook
from engine.domain.roles import in_role
from engine.domain.thresholds import Band, MetricRule, Profile
from engine.views.announcements import (
    DECISION_LABELS,
    announce_completion,
    announce_critical,
    announce_rollback_complete,
    announce_rollback_failed,
    announce_rollback_initiated,
    announce_start,
    announce_warning,
)
from engine.views.report_facts import report_facts
from engine.views.report_model import ESCALATION_MATRIX, RULE, UNKNOWN, escalation_contacts
from engine.views.report_model import ReportFacts as Facts

ATTEMPTS = 3  # one post and two retries
FIRST_WAIT_S = 1.0  # then 2 s, 4 s … (exponential), at most MAX_WAIT_S
MAX_WAIT_S = 8.0
FLUSH_S = 15.0  # at the run's end, how long the driver waits for the last posts before it goes

# Runbook 7.2: which escalation level a window event reaches.
LEVEL_OF_EVENT = {"warning": "L1", "concurrent_escalate": "L2", "auto_pause": "L2", "alert": "L3",
                  "stop": "L3", "escalated": "L3"}
SUMMARY_METRICS = ("latency_p50", "latency_p99", "replication_lag", "lock_wait", "error_rate")


# --- one post, retried ---------------------------------------------------------------------------


def post_with_retry(url: str, text: str, attempts: int = ATTEMPTS, first_wait_s: float = FIRST_WAIT_S,
                    max_wait_s: float = MAX_WAIT_S, timeout: float = 5.0,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[WebhookResult, int]:
    """POST ``{"text": text}``; again, after 1 s, 2 s, 4 s …, while the result is retryable
    (``WebhookResult.retryable``). Returns the last result and the number of tries. Never raises."""
    from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

    tries = 0

    def once() -> WebhookResult:
        nonlocal tries
        tries += 1
        return post_webhook(url, text, timeout)

    retrying = Retrying(stop=stop_after_attempt(max(1, attempts)),
                        wait=wait_exponential(multiplier=first_wait_s, min=first_wait_s, max=max_wait_s),
                        retry=retry_if_result(lambda r: r.retryable), sleep=sleep,
                        retry_error_callback=lambda state: state.outcome.result())
    return retrying(once), tries


# --- the messages (runbook 7.4's templates, and a quick status for a checkpoint) -----------------


def band_value(rule: MetricRule | None, band: Band | None) -> str:
    """A band's value as the announcements show it: a change with the value and its baseline."""
    if band is None or band.value is None:
        return UNKNOWN
    from engine.views.dashboard_tiles import fmt, value_unit

    unit = value_unit(rule) if rule is not None else ""
    if rule is not None and rule.mode == "change_pct" and band.measure is not None:
        return f"{band.measure:+.1f}% ({fmt(band.value, unit)} vs baseline {fmt(band.baseline, unit)})"
    return fmt(band.value, unit)


def metrics_now(profile: Profile, bands: Mapping[str, Band]) -> list[str]:
    lines = []
    for key in SUMMARY_METRICS:
        band = bands.get(key)
        if band is None:
            continue
        rule = profile.rule(key)
        lines.append(f"- {rule.label}: {band_value(rule, band) if not band.stale else 'no value (source down)'}"
                     f" — {band.level}")
    return lines


def announce_checkpoint(f: Facts, label: str, metrics_ok: bool, notes: str, elapsed_min: float,
                        window_min: float, next_label: str | None, lines: list[str]) -> str:
    """Runbook 7.1: the every-15-minutes status update in the thread, with the checkpoint's record."""
    return "\n".join([
        f"🕒 [CHECKPOINT {label}] {f.name} Canary ({f.tenant})",
        RULE,
        f"📊 Metrics OK: {'✅ Yes' if metrics_ok else '❌ No'} — {notes}",
        "📈 Current Metrics:",
        *(lines or [f"- {UNKNOWN}"]),
        "",
        f"⏱️ Monitoring window: {elapsed_min:.0f} / {window_min:g} min",
        f"👤 Monitoring: {_people(f, 'sre', 'dba')}",
        f"Next update: {next_label} checkpoint." if next_label else "Next update: the verdict.",
    ])


def _people(f: Facts, *roles: str) -> str:
    """The handles of the plan's people in ``roles``, each once (one person may hold several)."""
    seen: list[str] = []
    for role in roles:
        for p in f.people_with(role):
            if p.handle not in seen:
                seen.append(p.handle)
    return ", ".join(seen) or UNKNOWN


def announce_auto_pause(f: Facts, reason: str, plan_source: str) -> str:
    """Runbook "Decision Rules" §3: ≥ 5 concurrent warnings hold the run for the tech lead."""
    esc = ESCALATION_MATRIX["L2"]
    approve = (f"canary-console approve {f.run_id} --plan {plan_source} --decision resume|rollback"
               if plan_source else "the console's Monitoring step")
    return "\n".join([
        f"⏸️ [AUTO-PAUSE] {f.name} Canary ({f.tenant}) - Tech Lead review required",
        RULE,
        f"📊 Reason: {reason}",
        "🎯 Action: the run holds until the Canary Lead approves a resume or a rollback",
        f"👤 Canary Lead: {f.handles_with('canary_lead')} - decision needed",
        f"👤 DBA: {f.handles_with('dba')}",
        f"📣 Escalation {esc.level}: {escalation_contacts(esc, f)} — within {esc.response}",
        f"✍️ Approve with: {approve}",
    ])


def announce_escalation(f: Facts, level: str, why: str) -> str:
    esc = ESCALATION_MATRIX[level]
    return "\n".join([
        f"📣 [ESCALATION {esc.level}] {f.name} Canary ({f.tenant})",
        RULE,
        f"📊 Condition: {esc.condition} — {why}",
        f"👤 Contact: {escalation_contacts(esc, f)}",
        f"⏰ Response: {esc.response}",
    ])


def announce_verdict(f: Facts, verdict: str, reasons: list[str], warnings: list[str], next_step: str) -> str:
    """Runbook step 7: the final decision, with the rule that decided it."""
    emoji = {"PASS": "✅", "PASS WITH WARNING": "⚠️", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}.get(verdict, "⚖️")
    out = [f"{emoji} [VERDICT] {f.name} Canary ({f.tenant}): {verdict}", RULE]
    out += [f"❗ {r}" for r in reasons[:5]]
    out += [f"⚠️ {w}" for w in warnings[:5]]
    out += [f"🎯 Next step: {next_step or UNKNOWN}"]
    if verdict == "FAIL":
        out += [f"👤 DBA: {f.handles_with('dba')} / Canary Lead: {f.handles_with('canary_lead')} - the manual "
                "rollback is prepared (would roll back: nothing was dropped)"]
    return "\n".join(out)


def announce_observation(f: Facts, kind: str, minutes: float, ok: bool | None, alerts: list[str],
                         warnings: int, started: bool) -> str:
    """Runbook 5.4: the post-success (15 min) or post-rollback (30 min) observation."""
    what = "Post-success observation" if kind == "post_success" else "Post-rollback observation"
    if started:
        return "\n".join([f"🔭 [OBSERVATION] {f.name} Canary ({f.tenant})", RULE,
                          f"{what}: {minutes:g} minutes before the run is declared complete (runbook 5.4)"])
    return "\n".join([
        f"{'✅' if ok else '❌'} [OBSERVATION {'OK' if ok else 'NOT OK'}] {f.name} Canary ({f.tenant})",
        RULE,
        f"{what} of {minutes:g} minutes: {'no alert fired' if ok else 'alerts fired'}; {warnings} warning(s)",
        *[f"❗ {a}" for a in alerts[:5]],
    ])


# --- the notifier --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostOutcome:
    kind: str
    where: str  # scheme://host
    ok: bool
    attempts: int
    message: str


class Notifier:
    """Turns the monitor's and the executor's events into posts on the plan's webhooks."""

    def __init__(self, store: Any, plan: Any, run_id: str, actor: str, profile: Profile | None = None,
                 on_result: Callable[[PostOutcome], None] | None = None, attempts: int | None = None,
                 first_wait_s: float | None = None, timeout: float = 5.0):
        self.store, self.plan, self.run_id, self.actor = store, plan, run_id, actor
        self.urls = tuple(plan.webhooks)
        self.profile = profile or plan.profile()
        self.on_result = on_result
        self.attempts = attempts if attempts is not None else ATTEMPTS
        self.first_wait_s = first_wait_s if first_wait_s is not None else FIRST_WAIT_S
        self.timeout = timeout
        self.level = 0  # the highest escalation level posted (1 … 4)
        self._queue: queue.Queue[tuple[str, Callable[[Facts], str]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    # --- what to post ----------------------------------------------------------------------------

    def push(self, kind: str, render: Callable[[Facts], str]) -> None:
        """Queue one message; ``render`` builds its text from the run's facts when it is posted."""
        if not self.enabled:
            return
        with self._lock:
            self._idle.clear()
            self._queue.put((kind, render))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=f"webhook-{self.run_id[:8]}", daemon=True)
                self._thread.start()

    def escalate(self, level: str, why: str) -> None:
        rank = int(level[1:])
        if rank <= self.level:
            return
        self.level = rank
        self.push(f"escalation_{level}", lambda f: announce_escalation(f, level, why))

    def on_executor_event(self, name: str, data: Mapping[str, Any]) -> None:
        if name == "running":
            self.push("start", announce_start)
        elif name == "completed":
            self.push("completion", announce_completion)

    def on_monitor_event(self, name: str, data: Mapping[str, Any]) -> None:
        """The monitor's events (engine/flows/monitor.py ``Monitor.listeners``)."""
        if name == "window_event":
            self._window_event(data)
        elif name == "checkpoint":
            lines = metrics_now(self.profile, data.get("bands") or {})
            self.push("checkpoint", lambda f: announce_checkpoint(
                f, data["label"], bool(data["metrics_ok"]), str(data.get("notes") or ""),
                float(data.get("elapsed_min") or 0), float(data.get("window_min") or 60), data.get("next"), lines))
        elif name == "verdict":
            verdict = str(data["verdict"])
            self.push("verdict", lambda f: announce_verdict(f, verdict, list(data.get("reasons") or []),
                                                            list(data.get("warnings") or []),
                                                            str(data.get("next_step") or "")))
            if verdict == "FAIL":
                self.escalate("L3", "the verdict is FAIL: rollback decision")
        elif name in ("observation_started", "observation_completed"):
            started = name == "observation_started"
            self.push(name, lambda f: announce_observation(
                f, str(data["kind"]), float(data["minutes"]), data.get("ok"), list(data.get("alerts") or []),
                int(data.get("warnings") or 0), started))

    def on_rollback_event(self, name: str, data: Mapping[str, Any]) -> None:
        """The manual rollback's records (engine/flows/rollback_flow.py ``Listener``), posted with the
        runbook's templates (6.4 R1 and R5; 7.2 L4). Only the process that performed the step hears
        it: a console watching the same run does not post it again."""
        if name == "decided":
            why = (f"{data.get('condition') or data.get('trigger')} (trigger {data.get('trigger')}) — decided by "
                   f"{in_role(str(data.get('decided_by')), str(data.get('decided_role')))}: {data.get('reason') or UNKNOWN}")
            shown = self._decision_metrics(data.get("metrics_at_decision") or {})
            self.push("rollback_initiated", lambda f: announce_rollback_initiated(f, why, shown or None))
        elif name == "drop_failed":
            self.level = max(self.level, 4)  # L4 is the rollback-failed announcement itself
            self.push("rollback_failed", announce_rollback_failed)
        elif name == "completed":
            self.push("rollback_complete", announce_rollback_complete)

    def _decision_metrics(self, metrics: Mapping[str, Any]) -> dict[str, str]:
        """label → value, as the dashboard writes it, for the metrics recorded at decision time. R1's
        template names three of them by its own labels (DECISION_LABELS): these values take their
        place rather than adding a second line."""
        from engine.views.dashboard_tiles import fmt, value_unit

        shown: dict[str, str] = {}
        for key, value in metrics.items():
            if isinstance(value, Mapping):  # the Decision step's record: label, value, unit, baseline …
                if value.get("value") is None:
                    continue
                label = DECISION_LABELS.get(key, str(value.get("label") or key))
                shown[label] = fmt(float(value["value"]), str(value.get("unit") or "")) \
                    if isinstance(value["value"], (int, float)) else str(value["value"])
                continue
            try:
                rule: MetricRule | None = self.profile.rule(key)
            except KeyError:
                rule = None
            if rule is not None and isinstance(value, (int, float)):
                shown[DECISION_LABELS.get(key, rule.label)] = fmt(float(value), value_unit(rule))
            else:
                shown[key] = str(value)
        return shown

    def _window_event(self, data: Mapping[str, Any]) -> None:
        event = data["event"]
        band: Band | None = data.get("band")
        rule: MetricRule | None = data.get("rule")
        metric = rule.label if rule is not None else (event.metric or "metrics")
        value = band_value(rule, band)
        if event.kind == "warning":
            threshold = rule.describe_threshold("warning") if rule is not None else UNKNOWN
            action = "PREPARE ROLLBACK" if rule is not None and rule.severity in ("critical", "major") \
                else "CONTINUE MONITORING"
            if rule is not None and rule.key == "query_timeouts":
                action = "INVESTIGATE, CONTINUE IF ISOLATED"
            self.push("warning", lambda f: announce_warning(f, metric, value, threshold, action,
                                                            observation=f"{event.detail} ({data.get('at', '')})"))
        elif event.kind in ("alert", "escalated"):
            threshold = rule.describe_threshold("critical") if rule is not None else UNKNOWN
            action = "ROLLBACK" if rule is not None and (rule.stop_at_critical or event.kind == "escalated") \
                else "INVESTIGATE"
            self.push("critical", lambda f: announce_critical(f, metric, value, threshold, action,
                                                              issue=f"{event.detail} ({data.get('at', '')})"))
        elif event.kind == "auto_pause":
            self.push("auto_pause", lambda f: announce_auto_pause(f, event.detail, self.plan.source))
        elif event.kind == "resumed":
            self.push("resumed", lambda f: f"▶️ [AUTO-PAUSE LIFTED] {f.name} Canary ({f.tenant})\n{RULE}\n"
                                           f"{event.detail}")
        level = LEVEL_OF_EVENT.get(event.kind)
        if level is not None:
            self.escalate(level, event.detail)

    # --- posting ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._idle.set()
                        self._thread = None
                        return
                continue
            if item is None:
                continue
            kind, render = item
            try:
                self._post(kind, render)
            except Exception as exc:  # noqa: BLE001 - a message that cannot be built must not stop the others
                self._audit("webhook_post_failed", {"kind": kind, "error": f"the message could not be built "
                                                    f"({exc.__class__.__name__})"})

    def _post(self, kind: str, render: Callable[[Facts], str]) -> None:
        text = render(report_facts(self.store, self.plan, self.run_id))
        for url in self.urls:
            result, tries = post_with_retry(url, text, self.attempts, self.first_wait_s, timeout=self.timeout)
            where = redact_webhook(url)
            self._audit("webhook_posted" if result.ok else "webhook_post_failed",
                        {"kind": kind, "to": where, "status": result.status, "attempts": tries,
                         **({} if result.ok else {"error": result.message})})
            if self.on_result is not None:
                try:
                    self.on_result(PostOutcome(kind, where, result.ok, tries, result.message))
                except Exception:  # noqa: BLE001, S110 - the screen may be gone; the audit has it
                    pass

    def _audit(self, action: str, details: dict[str, Any]) -> None:
        try:
            self.store.audit(self.plan.tenant, self.actor, action, self.run_id, details)
        except Exception:  # noqa: BLE001, S110 - a store hiccup must not stop the posts
            pass

    def flush(self, timeout: float = FLUSH_S) -> bool:
        """Wait up to ``timeout`` seconds for the queued posts; True when all were made."""
        return self._idle.wait(timeout)
