"""The post-canary report in Markdown, and its edges (docs/runbook.md#8-report; runbook 8.2).

``report_facts`` (engine/views/report_facts.py) reads a run from the store once (a blocking call:
run it off the UI thread) into the frozen ``ReportFacts`` (engine/views/report_model.py); the
renderers are pure functions over it: ``render_report`` here, the announcements in
engine/views/announcements.py (their names are importable from here too). The edges — the OSC 52
clipboard sequence, the Slack-compatible webhook, the Markdown file — never raise into a screen
and never show a secret: the plan holds no password (only where it comes from, which is not
rendered either) and a webhook URL is shown as ``scheme://host`` only, its path being the secret.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.domain.clock import drill_mark, utcnow
from engine.views.announcements import (
    announce_completion,
    announce_critical,
    announce_rollback_complete,
    announce_rollback_failed,
    announce_rollback_initiated,
    announce_start,
    announce_warning,
    announcements,
)
from engine.views.report_facts import report_facts
from engine.views.report_model import (
    ROLE_LABELS,
    UNKNOWN,
    CheckpointFacts,
    CriterionFacts,
    Issue,
    MetricComparison,
    PersonFacts,
    ReportFacts,
    RollbackFacts,
    escalation_for,
    escalation_level,
    fmt_clock,
    fmt_delta,
    fmt_duration,
    fmt_value,
    fmt_when,
)

# --- Markdown cells --------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """One Markdown table cell: no pipe, no line break."""
    s = UNKNOWN if text is None or text == "" else str(text)
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _met(c: CriterionFacts) -> str:
    if not c.applicable:
        return "— not measured"
    return {True: "✅ yes", False: "❌ no", None: "❔ inconclusive"}[c.met]


def _yes_no(flag: bool | None) -> str:
    return {True: "✅ yes", False: "❌ no", None: "—"}[flag]


# --- the report (runbook 8.2) -----------------------------------------------------------------


def _recommendations(f: ReportFacts) -> list[str]:
    out = []
    o = f.outcome
    if f.rollback_failed:
        out.append("The rollback FAILED: escalation L4 (on-call manager + director). Do not retry blindly: "
                   "check the index and the table by hand first; every attempt is in the rollback record.")
    if f.rolled_back:
        out.append(f"Keep {f.index} off {f.target} until the root cause is understood; rerun the canary only "
                   "with a fix for the issues above.")
    elif o == "PASS":
        out.append(f"Keep {f.index}. The change is ready for the next rollout step once the 15-minute "
                   "post-success observation stays clean.")
    elif o == "WARNING":
        out.append(f"Keep {f.index}, but follow up every warning above before widening the rollout.")
    elif o == "INCONCLUSIVE":
        out.append("The evidence is not enough to decide: the team decides keep or remove and records it "
                   "(never an automatic rollback). A longer window or more traffic on the table gives the "
                   "≥ 10 intervals the decision needs.")
    elif o == "CANCELLED":
        if f.rollback is not None and f.rollback.drops_index:
            out.append(f"The run was stopped after the ALTER: {f.index} is still in place; decide the manual "
                       "rollback (runbook 6) with the prepared statement.")
        else:
            out.append("The run was stopped before the index existed; nothing to roll back. Find why the kill "
                       "switch was pressed before scheduling again.")
    elif o == "FAIL":
        if f.index_created and not f.rolled_back:
            out.append(f"Do not widen the rollout. {f.index} is still in place: follow the rollback decision flow "
                       "(runbook 6) with the metrics above.")
        else:
            out.append("Do not widen the rollout; find the cause of the failure before scheduling again.")
    elif o == "IN PROGRESS":
        out.append("The run is still in progress: this report is provisional.")
    return out


def _next_steps(f: ReportFacts) -> list[str]:
    steps = []
    if f.next_step and not (f.rolled_back and "rollback" in f.next_step):  # done already
        steps.append(f.next_step[0].upper() + f.next_step[1:])
    if f.outcome in ("FAIL", "CANCELLED") or f.rolled_back or f.rollback_failed:
        steps.append("Canary Lead: schedule the post-mortem (runbook 8.1).")
        if f.rolled_back:
            steps.append("Root-cause analysis, then the lessons-learned table (runbook 8.3).")
    steps.append("SRE: archive the logs; Canary Lead: send this summary to the stakeholders (runbook 8.1).")
    return steps


def render_report(facts: ReportFacts) -> str:
    """The post-canary report (runbook 8.2) in Markdown, every value filled from the run."""
    f = facts
    off = f.utc_offset
    esc = escalation_for(f)
    idx = f"{f.index} ({', '.join(f.columns)})" if f.columns else f.index
    if not f.index_created:
        created = f"No — {idx}"
    elif f.rolled_back:
        created = f"{idx}, then dropped by the rollback"
    else:
        created = idx
    if f.rolled_back:
        rolled = f"Yes ({fmt_when(f.rollback.completed_at if f.rollback else None, off)})"
    elif f.rollback_failed:
        rolled = "Attempted — FAILED (L4)"
    elif f.rollback is not None and f.rollback.status == "not_needed" and f.rollback.reason.startswith("index kept"):
        rolled = f"No — {f.rollback.reason}"
    elif f.rollback is not None and f.rollback.drops_index:
        rolled = f"No — prepared, {f.rollback.status.replace('_', ' ')}"
    else:
        rolled = "No"
    alter = UNKNOWN
    if f.alter_started_at:
        alter = (f"{fmt_clock(f.alter_started_at, off)} → {fmt_clock(f.alter_finished_at, off)} "
                 f"({fmt_duration(f.alter_duration_s)})")
    summary = [  # the runbook's rows, in its order
        ("Date", fmt_when(f.started_at or f.created_at, off)),
        ("Result", f.result),
        ("Duration", fmt_duration(f.duration_s)),
        ("Index Created", created),
        ("Rolled Back", rolled),
    ]
    details = [
        ("Run", f.run_id),
        ("Tenant", f.tenant),
        ("Connection", f.connection_id),
        ("Table", f.target),
        ("Status", f.status + (f" ({f.fail_reason})" if f.fail_reason else "")),
        ("ALTER (INPLACE, LOCK=NONE)", alter),
        ("Escalation reached", f"{esc.level} — {esc.condition}" if esc else "none"),
    ]
    if f.time_compression:
        details.append(("Clock", f"{drill_mark(f.time_compression)} (rehearsal): T+ and the times here are the drill's"))
    for o in f.observations:  # runbook 5.4; one the run's end cut short is not "under way"
        cut = f.finished and o.ok is None and o.kind == "post_success"
        details.append(("Observation", o.text.replace("under way", f"not finished ({f.status})") if cut else o.text))
    out = [f"# Canary Run Report - {f.name} ({f.tenant})", "", "## Summary", "", "| Field | Value |",
           "|-------|-------|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in summary]
    if f.message:
        out += ["", f"> {_cell(f.message)}"]

    post = f.rolled_back and any(m.post_rollback is not None for m in f.metrics)
    out += ["", "## Metrics Comparison", ""]
    head = "| Metric | Baseline | After | Delta |" + (" After rollback |" if post else "") + " Intervals |"
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for m in f.metrics:
        n = f"{m.n_baseline} / {m.n_after}" + (f" / {m.n_post_rollback}" if post else "")
        row = f"| {m.label} | {fmt_value(m, m.baseline)} | {fmt_value(m, m.after)} | {fmt_delta(m)} |"
        if post:
            row += f" {fmt_value(m, m.post_rollback)} |"
        out.append(row + f" {n} |")
    sources = "; ".join(f"{m.label}: {m.source}" for m in f.metrics if m.source)
    out += ["", "Baseline: before the ALTER. After: the last 5 minutes of the monitoring window"
            + (" (before the rollback)" if f.rollback and f.rollback.drops_index else "") + "."
            + (f" {sources}." if sources else "")]

    out += ["", "## Run", "", "| Field | Value |", "|-------|-------|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in details]

    out += ["", "## Decision Matrix", ""]
    if f.verdict:
        by = f" — decided by {f.decided_by} at {fmt_when(f.decided_at, off)}" if f.decided_by else ""
        out += [f"Verdict: **{f.result}**{by}" + (f" — {f.stop_text}" if f.stop_text else
                                                   " (stopped early)" if f.stopped_early else ""), ""]
    elif f.stop_text:
        out += [f"{f.stop_text[0].upper()}{f.stop_text[1:]}.", ""]
    if f.criteria:
        out += ["| Criterion | Value | Needs | Met | Rule | n | Interval |",
                "|---|---|---|---|---|---|---|"]
        for c in f.criteria:
            out.append(f"| {_cell(c.name)} | {_cell(c.value)} | {_cell(c.threshold)} | {_met(c)} | "
                       f"{_cell(c.rule)} | {_cell(c.n)} | {_cell(c.interval)} |")
    else:
        out.append("No verdict recorded" + (" yet." if not f.finished else " for this run."))
    if f.verdict_reasons:
        out += ["", "Why:"] + [f"- {r}" for r in f.verdict_reasons]

    out += ["", "## Monitoring Checkpoints", ""]
    if f.checkpoints:
        out += ["| Checkpoint | Time | Metrics OK? | Notes | Recorded by |", "|---|---|---|---|---|"]
        out += [f"| {_cell(c.label)} | {fmt_clock(c.recorded_at, off)} | {_yes_no(c.metrics_ok)} | {_cell(c.notes)} | "
                f"{_cell(c.recorded_by)} |" for c in f.checkpoints]
    else:
        out.append("No checkpoint recorded.")
    if f.not_reached:
        out += ["", f"Not reached — the window stopped before them, so never evaluated: {', '.join(f.not_reached)}."]

    if f.rollback is not None:
        r = f.rollback
        out += ["", "## Rollback", "", "| Field | Value |", "|-------|-------|",
                f"| Status | {_cell(r.status.replace('_', ' '))} |",
                f"| Type | {_cell(r.type)} |",
                f"| Reason | {_cell(r.reason)} |",
                f"| Statement | {_code(r.sql) if r.sql else 'none (no index to drop)'} |",
                f"| Started | {fmt_when(r.started_at, off)} |",
                f"| Completed | {fmt_when(r.completed_at, off)} |",
                f"| Duration | {fmt_duration(r.duration_s)} |",
                f"| Attempts | {r.attempts} |",
                f"| Triggered by | {_cell(r.triggered_by)} |",
                f"| Error | {_cell(r.error)} |"]

    out += ["", "## Issues Encountered", ""]
    if f.issues:
        out += [f"- {fmt_clock(i.at, off)} **{i.kind.replace('_', ' ')}**: {i.text}" for i in f.issues]
    else:
        out.append("None recorded.")

    out += ["", "## Recommendations", ""] + [f"- {r}" for r in _recommendations(f)]
    out += ["", "## Next Steps", ""] + [f"- {s}" for s in _next_steps(f)]

    out += ["", "## Lessons Learned", ""]  # runbook 8.3
    if f.lessons:
        out += ["| # | What Happened | Impact | Root Cause | Action Item | By |", "|---|---|---|---|---|---|"]
        out += [f"| {n} | {_cell(x.what)} | {_cell(x.impact or UNKNOWN)} | {_cell(x.cause or UNKNOWN)} | "
                f"{_cell(x.action or UNKNOWN)} | {_cell(x.by)} {fmt_clock(x.at, off)} |"
                for n, x in enumerate(f.lessons, 1)]
    else:
        out.append("None recorded yet: press l on the console's Report step (or `canary-console lesson`) to add one.")

    out += ["", "## Team", ""]
    if f.people:
        out += ["| Name | Roles | Contact |", "|---|---|---|"]
        out += [f"| {_cell(p.name)} | {', '.join(ROLE_LABELS.get(r, r) for r in p.roles)} | {_cell(p.contact)} |"
                for p in f.people]
    else:
        out.append("No people in the plan.")
    if f.approvals:
        out += ["", "Sign-offs and approvals:", ""]
        out += [f"- {fmt_clock(a.at, off)} {a.kind.replace('_', ' ')}: {a.decision} by {a.actor} "
                f"({ROLE_LABELS.get(a.role, a.role)})" + (f" — {a.note}" if a.note else "") for a in f.approvals]
    if f.prechecks:
        counts: dict[str, int] = {}
        for p in f.prechecks:
            counts[p.status] = counts.get(p.status, 0) + 1
        out += ["", "Prechecks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                + "".join(f"; {p.check_id} {p.status}" for p in f.prechecks if p.status in ("fail", "warn"))
                + "."]
    out += ["", f"_Generated by Canary Console at {fmt_when(f.generated_at, off)} from the run's store records"
            + (f" (plan {f.plan_source})" if f.plan_source else "") + "._", ""]
    return "\n".join(out)


# --- the clipboard, over SSH and tmux -------------------------------------------------------------


def osc52(text: str, tmux: bool = False) -> str:
    """The OSC 52 "set clipboard" sequence for ``text``; inside tmux, wrapped in tmux's DCS
    passthrough (every ESC doubled) so it reaches the outer terminal (tmux ≥ 3.3 also needs
    ``set -g allow-passthrough on``; or ``set -g set-clipboard on`` and send it unwrapped)."""
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    seq = f"\x1b]52;c;{payload}\x07"
    if not tmux:
        return seq
    return "\x1bPtmux;" + seq.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def in_tmux(environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get("TMUX"))


def copy_hint(tmux: bool) -> str:
    """What to tell a person after a copy: OSC 52 has no acknowledgement."""
    if tmux:
        return ("sent to the clipboard with OSC 52 through tmux; if nothing arrives, "
                "`tmux set -g set-clipboard on` (and a terminal that accepts OSC 52)")
    return "sent to the clipboard with OSC 52; if nothing arrives, your terminal does not accept OSC 52: export with e"


# --- export -----------------------------------------------------------------------------------------


class ExportError(RuntimeError):
    """The report could not be written; the message names the path and the way out."""


def report_filename(facts: ReportFacts, now: datetime | None = None) -> str:
    at = now or utcnow()
    return f"canary-report-{facts.short_id}-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}.md"


def export_markdown(facts: ReportFacts, directory: str | os.PathLike[str], text: str | None = None,
                    now: datetime | None = None) -> Path:
    """Write the report (or ``text``, what the screen shows) to ``directory`` atomically: a
    temporary file in the same directory, then a rename. Returns the path; ``ExportError`` when
    the directory cannot be written."""
    folder = Path(directory).expanduser()
    path = folder / report_filename(facts, now)
    content = render_report(facts) if text is None else text
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".canary-report-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ExportError(
            f"cannot write the report to {path}: {exc.strerror or exc}. Choose a directory you can write to "
            "(e.g. your home directory), or copy the report with c instead."
        ) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


__all__ = [  # with what is defined here, the names callers import from this module
    "CheckpointFacts", "CriterionFacts", "Issue", "MetricComparison", "PersonFacts", "ReportFacts",
    "RollbackFacts", "announce_completion", "announce_critical", "announce_rollback_complete",
    "announce_rollback_failed", "announce_rollback_initiated", "announce_start", "announce_warning",
    "announcements", "escalation_for", "escalation_level", "report_facts",
    "ExportError", "copy_hint", "export_markdown", "in_tmux", "osc52", "render_report",
]
