"""Walk the REAL console in tmux against the rehearsal's sandbox MariaDB and check what a person sees.

``canary-console rehearse --rows 20000 --speed 60`` runs in a detached tmux session of 160x50 (``--size
100x30``: a jump host's) on a
private tmux socket (``-L``, never the user's tmux server) with a private ``XDG_STATE_HOME`` (a temp
dir). The script presses the keys a person presses and reads the screen with ``tmux capture-pane``:

    Plan → b → Prechecks: r, k, p, s s s → "All prechecks done" → 3 → c (PASS) → 4 → g → the
    monitoring hand-off → 5, the dashboard → kill -9 of the console, the same command again: it
    takes the run over, opens on the dashboard with the gap shown, no error → 4 → F9 (frame red, banner, run cancelled) → F8 + reason + Enter → F2 (the
    audit log has the F9 activation; F9 again, as raw ``\\e[20~`` bytes, with the filter Input
    focused: the frame turns red and the typed letters stay) → F8 → Esc → 7 (decide — F9 in the
    decision dialog with its reason Input focused: the banner covers the dialog at once, the typed
    reason stays —; the approval by the same person is refused, and says so; a refused and then
    completed rollback with the teammate's console in a second session: refuse, new trigger,
    decide, approve, DROP) → 8 (the report names the run, rolled back; export, copy) →
    Ctrl+Q → the rehearsal says it stopped its servers, and no mariadbd it started is left.

Every check polls capture-pane up to N seconds; a failure prints the last capture and exits 1.
One line per step with the elapsed time; the last line is one JSON object of timings (and the
notes: things a person would find odd that do not stop the walk). The tmux session and the temp
dir are removed at the end, also on failure. ``--small`` also looks at 80x24 in a second session
(Plan, Prechecks, Execution) and prints what it sees.
tests/tmux_driver.py holds the tmux session, the reading of its screen, the waits and the clean-up.

    .venv/bin/python tests/tmux_walk.py [--size 100x30] [--small] [--keep-captures DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tmux_driver import (
    F9_BYTES,
    ROOT,
    Tmux,
    Walk,
    WalkFailure,
    background_at,
    cleanup,
    footer,
    is_red,
    leftover_servers,
    rehearsal_pid,
    toast_text,
)

# The P0 cases gate the prechecks; the whole suite runs them all elsewhere (tests/test_tc_cases.py).
SELF_TEST_CASES = ("TC-02", "TC-03", "TC-09")


def walk(keep_captures: Path | None = None, small: bool = False, speed: int = 60, rows: int = 20000,
         say: Callable[[str], None] = print, size: tuple[int, int] = (160, 50)) -> dict[str, object]:
    """The walk; returns the timings and notes; raises WalkFailure. Cleans up in every case."""
    if shutil.which("tmux") is None:
        raise WalkFailure("setup", "tmux is not installed")
    exe = ROOT / ".venv" / "bin" / "canary-console"
    cli = str(exe) if exe.exists() else (shutil.which("canary-console") or "")
    if not cli:
        raise WalkFailure("setup", "canary-console not found (.venv/bin or PATH)")
    tmp = Path(tempfile.mkdtemp(prefix="ccwalk-", dir="/tmp"))  # short: unix socket paths stay < 108 bytes
    tmux = Tmux(f"ccwalk-{os.getpid()}", "walk")
    w = Walk(tmux, tmp, say=say)
    w.size = size
    captures: dict[str, str] = {}
    try:
        command = (f"bash -c '{cli} rehearse --rows {rows} --speed {speed} "
                   f"--self-test-cases {','.join(SELF_TEST_CASES)}; "
                   "echo \"[tmux-walk] exit=$?\"'")
        tmux.start(*size, command, {"XDG_STATE_HOME": str(tmp)}, ROOT)
        w.command = command
        w.step("tmux session started", f"{size[0]}x{size[1]}, socket -L {tmux.socket}, XDG_STATE_HOME={tmp}")
        main_walk(w, captures)
        if small:
            small_look(w, cli, captures, rows, speed)
        w.step("done")
    except WalkFailure as exc:
        if keep_captures is not None:
            captures[f"failure-{exc.step}"] = exc.capture
        raise
    finally:
        if keep_captures is not None:
            keep_captures.mkdir(parents=True, exist_ok=True)
            for name, text in captures.items():
                (keep_captures / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.txt").write_text(text)
        cleanup(w)
    return {"timings": w.timings, "notes": w.notes}


def main_walk(w: Walk, captures: dict[str, str]) -> None:
    t = w.tmux

    # --- 1 Plan ------------------------------------------------------------------------------
    screen = w.wait("plan", "the Plan screen (self-test TC-01…TC-10 first)",
                    lambda s: "Scope lock (runbook 1.2–1.3)" in s and "Begin prechecks" in s, 240)
    w.wait_text("plan", r"Kill switch & rollback\s+✓\s+verified \(TC P0\)\s+TC-02 pass, TC-03 pass, TC-09 pass", 10)
    captures["1-plan"] = w.last
    if "⏩ drill clock ×" not in screen and "⏩×" not in screen:
        raise WalkFailure("plan", "the frame does not say the clock is compressed", screen)
    w.step("plan screen", "scope lock, P0 self-tests pass, frame marks the drill clock (⏩)")
    t_plan = time.monotonic()

    # --- 2 Prechecks ---------------------------------------------------------------------------
    t.keys("b")
    m = w.wait_text("b", r"run ([0-9a-f]{8}) scheduled", 20)
    short = m.group(1)
    w.wait_text("b", r"Before the size gate", 10)
    w.step("b: run created, prechecks screen", f"run {short}")
    t.keys("3")  # locked: a dialog lists what is missing and who provides it; Esc closes it
    w.wait_text("3 locked", r"3 Size gate is not open yet\. Missing:", 10)
    time.sleep(0.5)
    screen = w.grab()
    if "minimum 15 minutes of prechecks" not in screen or "Back (Esc)" not in screen:
        shown = len(re.findall(r"█  • ", screen))
        w.note(f"3 pressed right after b at {w.size[0]}x{w.size[1]}: the 'not open yet' dialog lists every unchecked check on "
               f"its own (2 lines each); only {shown} items fit, the rest — the sign-offs, the 15-minute "
               "minimum — and the 'Back (Esc)' button are cut off, without a scrollbar")
        captures["2a-locked-dialog-overflow"] = screen
    t.keys("Escape")
    w.wait_gone("3 locked", r"is not open yet\. Missing:", 5)
    w.wait_text("3 locked", r"Before the size gate", 5)
    w.step("3 while locked: a dialog says what is missing; Esc closes it")
    t.keys("r")
    w.wait_text("r", r"MySQL target reachable\s+✓ pass", 30)
    # Every check but the kill-switch test's has run and passed: what is still missing says so at the top
    # (the checks' table, its rows wrapped to the width, runs below the fold at 100×30 and 160×50).
    w.wait_text("r", r"4 check\(s\) not run yet: Can activate global, Can deactivate global", 30)
    w.step("r: checks pass")
    t.keys("k")
    # The kill-switch test passed: no check is left unrun in what is missing, at the top (its rows are
    # below the fold at 100×30 and 160×50).
    w.wait_gone("k", r"check\(s\) not run yet", 30)
    w.step("k: kill-switch test passes")
    t.keys("p")  # the statement it confirms is shown first: DROP INDEX and its verification query
    w.wait_text("p", r"DROP INDEX", 10)
    t.keys("BTab", "Enter")  # from Cancel (focused: a stray Enter confirms nothing) to Confirm
    w.wait_gone("p", r"prepared rollback statement not confirmed", 15)
    w.step("p: DBA confirmed the rollback statement")
    t.keys("3")  # still locked: the sign-offs and the 15-minute minimum, each with who provides it
    w.wait_text("3 locked", r"3 Size gate is not open yet\. Missing:", 10)
    w.wait_text("3 locked", r"sign-off by the SRE\s+█.*\n.*→ the SRE signs \(s\) in their console", 5)
    if not re.search(r"minimum 15 minutes of prechecks: \d+ min \d+ s left", w.last):
        # at ×60 the 15 minutes are 15 s: the checks (ten kill-switch reads, both switches tested) may
        # already have used them up — then the minimum is met and rightly not listed
        w.note("3 locked: the 15-minute minimum was already met when the size gate was tried")
    t.keys("Escape")
    w.wait_gone("3 locked", r"is not open yet\. Missing:", 5)
    w.step("3 while locked: sign-offs and the 15-minute minimum listed with who provides them; Esc closes")
    unsigned = re.compile(r"sign-off by the (canary lead|DBA|SRE)")
    presses = 0
    for _ in range(3):  # as a person does it: three quick presses
        t.keys("s")
        presses += 1
        time.sleep(0.15)
    try:
        screen = w.wait_gone("s", unsigned.pattern, 4)
    except WalkFailure:
        screen = w.last
    while unsigned.search(screen) and presses < 6:  # one more press at a time, as the footer suggests
        t.keys("s")
        presses += 1
        try:
            screen = w.wait_gone("s", unsigned.pattern, 2)
        except WalkFailure:
            screen = w.last
    if unsigned.search(screen):
        raise WalkFailure("s", f"still missing sign-offs after {presses} presses: {unsigned.findall(screen)}",
                          screen)
    if presses > 3:
        w.note(f"s pressed 3 times quickly signed fewer than 3 roles: {presses} presses were needed")
    w.step("s s s: canary lead, DBA and SRE signed", f"{presses} presses")
    if "f2 Audit" not in footer(screen):
        w.note(f"Prechecks at {w.size[0]}x{w.size[1]}: the footer is cut off before 'f8 Kill switch off'/'f2 Audit log': "
               + footer(screen).strip()[-60:])
    w.wait_text("prechecks", r"All prechecks done and signed: the size gate is open \(3\)", 60)
    captures["2-prechecks"] = w.last
    w.timings["prechecks_wait_s"] = round(time.monotonic() - t_plan, 1)
    w.step("prechecks done", "'All prechecks done and signed' after the compressed 15 minutes")

    # --- 3 Size gate ---------------------------------------------------------------------------
    t.keys("3")
    w.wait_text("3", r"Table-size gate — shop\.orders", 10)
    t.keys("c")
    w.wait_text("c", r"PASS: [\d,]+ rows \(estimated\) ≤ 5,000,000", 20)
    w.wait_text("c", r"No approval needed: execution \(4\) is open\.", 10)
    captures["3-size-gate"] = w.last
    w.step("3 c: size gate PASS")

    # --- 4 Execution ---------------------------------------------------------------------------
    t.keys("4")
    w.wait_text("4", r"Steps \(runbook 3\.2\)", 10)
    t.keys("g")
    t_exec = time.monotonic()
    w.wait_text("g", rf"run {short} running │ you drive", 20)
    w.step("g: executing", "baseline, ALTER, cool-down (compressed)")
    # 30 drill minutes of baseline, up to 60 more where the drill's latency is too correlated for
    # them (docs/verdict.md, "Baseline"), the ALTER and the cool-down: ~95 s at 60× on a quiet
    # machine, each extension minute a little more on a loaded one.
    screen = w.wait("g", "the monitoring hand-off",
                    lambda s: "→ The 60-minute monitoring window is running" in s or "■ cancelled" in s or "✗ failed" in s, 300)
    if "→ The 60-minute monitoring window is running" not in screen:
        raise WalkFailure("g", "the run ended before the monitoring window", screen)
    captures["4-execution-handoff"] = w.last
    w.timings["execute_to_handoff_s"] = round(time.monotonic() - t_exec, 1)
    w.step("monitoring hand-off", "'→ The 60-minute monitoring window is running'")
    if re.search(r"4\s+✓\s+ALTER", screen) and re.search(r"ALTER progress.*\n not started", screen):
        w.note("Execution: the steps say the ALTER is done (4 ✓) but 'ALTER progress' still says "
               "'not started' with a 0% bar")

    # --- 5 Monitoring; the console killed (-9) with the dashboard open, and started again ---------
    resume_with_the_dashboard_open(w, captures, short)

    # --- F9 ------------------------------------------------------------------------------------
    frame_before, _ = w.frame_bg()
    if is_red(frame_before):
        raise WalkFailure("F9", f"the frame is red before F9 (background {frame_before})", w.grab())
    t.keys("F9")
    t_kill = time.monotonic()
    w.wait_text("F9", r"KILL SWITCH", 5)
    w.timings["f9_to_frame_ms"] = round((time.monotonic() - t_kill) * 1000)
    w.wait_text("F9", r"KILL SWITCH: ACTIVE \(global\)", 10)
    w.wait_text("F9", r"KILL SWITCH ACTIVE — global by \S+ \(F9 in the console\)", 10)
    frame, banner = w.frame_bg()
    if not is_red(frame) or not is_red(banner):
        raise WalkFailure("F9", f"frame/banner not red: frame background {frame}, banner {banner}", w.grab())
    screen = w.wait_text("F9", rf"run {short} cancelled", 20).string
    w.wait_text("F9", r"■ cancelled \(kill_switch\): kill switch after the ALTER", 10)
    captures["5-kill-switch"] = w.last
    w.timings["f9_to_cancelled_s"] = round(time.monotonic() - t_kill, 2)
    w.step("F9: kill switch active, frame + banner red, run cancelled",
           f"{w.timings['f9_to_frame_ms']} ms to the frame, {w.timings['f9_to_cancelled_s']} s to 'cancelled'")
    first = next((ln for ln in w.last.splitlines()[:4] if "KILL SWITCH: ACTIVE" in ln), "")
    if first and "● ok" not in first:
        w.note(f"{w.size[0]}x{w.size[1]}, kill switch on: the frame's status text no longer fits on one line; '● ok' wraps "
               "under it, next to the button")

    # --- F8 ------------------------------------------------------------------------------------
    deactivate(w, "walk: kill switch drill")
    w.step("F8 + reason + Enter: kill switch off")

    # --- F2: the audit log, and F9 with its filter focused ---------------------------------------
    t.keys("F2")
    screen = w.wait("F2", "the audit log", lambda s: "filter: actor, action, run, text" in s, 10)
    w.wait_text("F2", r"kill_switch_activated", 10)
    if "F9 in the console" not in w.last:
        w.note("F2: the audit log opens oldest-first at the top; the F9 activation (newest) is below the "
               "fold until you scroll or filter")
    t.type("kill_switch_activated")
    w.wait_text("F2", r"kill_switch_activated\s+scope=global, reason=F9 in the console", 10)
    captures["6-audit"] = w.last
    w.step("F2: audit log shows kill_switch_activated (reason=F9 in the console)")
    t.type("qz")
    w.wait_text("F2", r"kill_switch_activatedqz", 5)
    t.raw(*F9_BYTES)  # \e[20~ while the filter Input has the focus
    t_kill = time.monotonic()
    w.wait_text("F9 in input", r"KILL SWITCH: ACTIVE \(global\)", 10)
    w.timings["f9_in_input_to_frame_ms"] = round((time.monotonic() - t_kill) * 1000)
    w.wait_text("F9 in input", r"KILL SWITCH ACTIVE — global", 5)
    frame, banner = w.frame_bg()
    screen = w.grab()
    if not is_red(frame) or not is_red(banner):
        raise WalkFailure("F9 in input", f"frame/banner not red: frame {frame}, banner {banner}", screen)
    if not re.search(r"kill_switch_activatedqz(?![\[~\w])", screen) or "[20~" in screen:
        raise WalkFailure("F9 in input", "the filter text changed (the typed letters should stay, no '[20~')",
                          screen)
    captures["7-f9-in-input"] = screen
    w.step("F9 (raw \\e[20~) with the filter Input focused", "frame red, letters kept")
    t.keys("BSpace", "BSpace")  # the filter back to kill_switch_activated: is the second F9 listed?
    try:
        w.wait("audit live", "two F9 activations in the audit log",
               lambda s: len(re.findall(r"kill_switch_activated\s+scope=global, reason=F9 in the console", s)) >= 2, 4)
    except WalkFailure:
        w.note("F2: the audit log is read once when it opens; the F9 activation made while it is open does not "
               "appear (waited 4 s; F2 again does nothing either); only Esc and F2 show it")
    t.keys("Escape")
    w.wait_text("Esc", r"Steps \(runbook 3\.2\)", 10)
    deactivate(w, "walk: second drill from the audit filter")
    w.step("Esc, F8: back on Execution, kill switch off")

    # --- 7 Rollback ----------------------------------------------------------------------------
    t.keys("7")
    w.wait_text("7", r"Decision flow: severity → trigger", 15)
    w.wait_text("7", rf"run {short} cancelled, kill_switch", 15)
    w.wait_text("7", r"AWAITING DECISION", 15)
    t.keys("d")
    w.wait_text("7 d", r"Decide: roll back — Kill switch after the ALTER", 10)
    t.type("walk: kill switch")
    w.wait_text("7 d", r"walk: kill switch", 5)
    # F9 in a dialog with its text Input focused: the banner covers the dialog at once — not
    # after Esc —, the dialog stays, and the typed reason is kept.
    if re.search(r"KILL SWITCH ACTIVE —", w.grab()):
        raise WalkFailure("F9 in a dialog", "the kill switch banner is up before F9", w.last)
    t.raw(*F9_BYTES)
    t_kill = time.monotonic()
    w.wait_text("F9 in a dialog", r"KILL SWITCH ACTIV(ATING|E) —", 5)  # at the key press, before the store
    w.timings["f9_in_dialog_to_banner_ms"] = round((time.monotonic() - t_kill) * 1000)
    w.wait_text("F9 in a dialog", r"KILL SWITCH ACTIVE — global by \S+ \(F9 in the console\)", 10)
    lines = t.capture(escapes=True).splitlines()
    banner = next((background_at(ln, "KILL SWITCH ACTIVE —") for ln in lines if "KILL SWITCH ACTIVE —" in ln), None)
    screen = w.grab()
    if not is_red(banner):
        raise WalkFailure("F9 in a dialog", f"the banner over the dialog is not red ({banner})", screen)
    if "Decide: roll back — Kill switch after the ALTER" not in screen or "[20~" in screen \
            or not re.search(r"walk: kill switch(?![\[~\w])", screen):
        raise WalkFailure("F9 in a dialog", "the dialog or its typed reason did not survive F9", screen)
    captures["8a-f9-in-dialog"] = screen
    w.step("F9 (raw \\e[20~) in the rollback decision dialog, its reason Input focused",
           f"banner over the dialog in {w.timings['f9_in_dialog_to_banner_ms']} ms, dialog and text kept")
    t.type(" drill")
    t.keys("Enter")
    w.wait_text("7 d", r"AWAITING APPROVALS — still needed: the DBA", 15)
    # (two checks: at 100x30 the sentence wraps in the right-hand column, beside the left one's lines)
    w.wait_text("7 d", r"Decided by \S+ \(canary\s+lead\) at [\d:]+", 10)
    w.wait_text("7 d", r"UTC[+\-\d:]*: walk: kill switch drill", 25)  # under the decision toast for a while
    w.step("7 d: rollback decided", "awaiting the DBA's approval")
    t.keys("a")
    w.wait_text("7 a", r"Approve the rollback", 10)
    t.keys("Enter")  # the dialog opens on Cancel: Enter alone does nothing
    w.wait_gone("7 a", r"Approve the rollback", 5)
    t.keys("a")
    w.wait_text("7 a", r"Approve the rollback", 10)
    t.keys("Tab", "Enter")  # Cancel → Approve
    w.wait_text("7 a", r"the\s+requester\s+cannot\s+be\s+the\s+only\s+approver\s+—\s+ask\s+another\s+person", 15,
                toast=True)
    captures["8-rollback"] = w.last
    if re.search(r"still needed: the DBA \(You\)", w.last):
        w.note("Rollback, single rehearsal user: the status says 'still needed: the DBA (You)' and the matrix "
               "'pending (You)' — reads as 'you can approve', yet your approval is refused")
    w.step("7 a: the dialog opens on Cancel; approval by the same person refused",
           "'the requester cannot be the only approver'")
    refused_then_completed(w, captures)

    # --- 8 Report ------------------------------------------------------------------------------
    t.keys("8")
    w.wait_text("8", rf"Report — run {short} · shop\.orders · ROLLED BACK \(manual_rollback\)", 20)
    t.keys("e")
    w.wait_text("8 e", r"✓ written to /", 15)
    reports = list((w.tmp / "canary-console" / "reports").glob(f"*{short}*.md"))
    if not reports:
        raise WalkFailure("8 e", f"no report file for run {short} under {w.tmp}/canary-console/reports", w.last)
    t.keys("c")
    w.wait_text("8 c", r"✓ copied \(report\)", 10)
    captures["9-report"] = w.last
    w.step("8: report of the run; exported and copied", reports[0].name)

    # --- Ctrl+Q --------------------------------------------------------------------------------
    t.keys("C-q")
    t_quit = time.monotonic()
    w.wait("Ctrl+Q", "the rehearsal to end", lambda s: "[tmux-walk] exit=" in s, 60)
    out = t.capture(history=400)
    captures["10-after-quit"] = out
    if "[rehearse] stopping the workload and the sandbox servers" not in out:
        raise WalkFailure("Ctrl+Q", "the rehearsal did not say it stopped its servers", out)
    if "[tmux-walk] exit=0" not in out:
        raise WalkFailure("Ctrl+Q", "the rehearsal exited non-zero", out)
    # The resumed drill did not run the self-test: its transcript names each stored result.
    passes = re.findall(r"\[rehearse\]\s+TC-\d\d \[P\d\] PASS .*stored result", w.history + out)
    if len(passes) != len(SELF_TEST_CASES):
        raise WalkFailure("Ctrl+Q", f"{len(passes)} of the {len(SELF_TEST_CASES)} self-test cases printed PASS", out)
    if "Traceback" in out:
        raise WalkFailure("Ctrl+Q", "a traceback after the console closed", out)
    left = leftover_servers(w)
    deadline = time.monotonic() + 20
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = leftover_servers(w)
    if left:
        raise WalkFailure("Ctrl+Q", f"mariadbd still running: {left}", out)
    w.timings["quit_s"] = round(time.monotonic() - t_quit, 1)
    w.step("Ctrl+Q: rehearsal stopped its servers", f"exit 0, no mariadbd left ({len(w.our_pids)} seen)")
    log = w.tmp / "canary-console" / "console.log"
    if log.exists():
        w.note(f"console.log has worker failures: {log.read_text(errors='replace')[:300]!r}")


def refused_then_completed(w: Walk, captures: dict[str, str]) -> None:
    """A refused and then completed rollback (docs/rollback.md), with the teammate in a console of
    their own (``run … --as teammate``, a second tmux session on the same socket and state dir):
    Tab, Tab, Enter in the teammate's approval dialog only opens the refusal's confirmation; the
    teammate refuses with a reason; the requester cannot refuse their own; the screen says the way
    forward; the canary lead makes a new trigger, decides again, the teammate approves this time,
    and the DBA's DROP rolls the run back."""
    you = w.tmux
    cli = ROOT / ".venv" / "bin" / "canary-console"
    plan = w.tmp / "canary-console" / "rehearsal" / "canary.toml"
    mate = Tmux(you.socket, "mate")
    mate.start(*w.size, f"bash -c '{cli} run {plan} --as teammate; echo \"[tmux-walk] exit=$?\"'",
               {"XDG_STATE_HOME": str(w.tmp)}, ROOT)
    try:
        w.tmux = mate
        # (under 110 columns the step bar names the current step only: "1" stands for "1 Plan")
        w.wait("mate", "the teammate's console",
               lambda s: "7 Rollback" in s and ("1 Plan" in s or w.size[0] < 110), 60)
        mate.keys("7")
        w.wait_text("mate 7", r"AWAITING APPROVALS — still needed: the DBA", 20)
        mate.keys("a")
        w.wait_text("mate a", r"Approve the rollback", 10)
        mate.keys("Tab", "Tab", "Enter")  # in a hurry: this only reaches Refuse…, which asks
        w.wait_text("mate a", r"Refuse the rollback", 10)
        w.wait_text("mate a", r"What may follow: another person holding the role approves", 5)
        mate.keys("Enter")  # no reason yet: nothing happens
        w.wait_text("mate a", r"A reason is required", 5)
        w.tmux = you
        w.wait_text("you", r"AWAITING APPROVALS — still needed: the DBA", 5)
        w.tmux = mate
        captures["8a-refuse-confirmation"] = w.last
        w.step("teammate: a, Tab, Tab, Enter only opens the refusal's confirmation; no reason, no refusal")
        mate.type("walk: not during the sale")
        mate.keys("Enter")
        w.wait_text("mate refuse", r"BLOCKED — refused by teammate[^:]*\(DBA\): walk: not during the sale", 15)
        w.step("teammate refused, with a reason")

        w.tmux = you
        w.wait_text("you", r"BLOCKED — refused by teammate[^:]*\(DBA\): walk: not during the sale", 10)
        w.wait_text("you", r"(?s)Next: another DBA approves \(a\).*new\s+trigger\s+\(n\).*keeps\s+the\s+index\s+\(k\)", 5)
        captures["8b-refused"] = w.last
        you.keys("a")
        w.wait_text("you a", r"Approve the rollback", 10)
        you.keys("Tab", "Tab", "Enter")
        w.wait_text("you a", r"Refuse the rollback", 10)
        you.type("walk: my own")
        you.keys("Enter")
        w.wait_text("you a", r"requester\s+cannot\s+refuse\s+their\s+own\s+rollback", 15, toast=True)
        w.wait_gone("you a", r"Refuse the rollback", 5)
        w.step("the screen says the ways forward; the requester cannot refuse their own")
        you.keys("n")
        w.wait_text("you n", r"New trigger: close the decision in force", 10)
        you.type("walk: the sale is over, decide again")
        you.keys("Enter")
        w.wait_gone("you n", r"New trigger: close the decision in force", 10)
        w.wait_text("you n", r"AWAITING DECISION — pick the trigger", 15)
        you.keys("d")
        w.wait_text("you d", r"Decide: roll back — Kill switch after the ALTER", 10)
        you.type("walk: the kill switch, decided again")
        you.keys("Enter")
        w.wait_gone("you d", r"Decide: roll back — Kill switch after the ALTER", 10)
        w.wait_text("you d", r"AWAITING APPROVALS — still needed: the DBA", 15)
        w.step("n: a new trigger closes the refused decision; d: decided again")

        w.tmux = mate
        w.wait_text("mate", r"AWAITING APPROVALS — still needed: the DBA", 10)
        mate.keys("a")
        w.wait_text("mate a", r"Approve the rollback", 10)
        mate.keys("Tab", "Enter")  # Cancel → Approve
        w.wait_text("mate a", r"APPROVED — the DBA may execute", 15)
        w.step("teammate approved the new decision")

        w.tmux = you
        w.wait_text("you", r"APPROVED — the DBA may execute", 10)
        you.keys("x")
        screen = w.wait_text("you x", r"Rung 2 — DROP INDEX", 10).string
        if "I have read these changes" in screen:
            w.note("rollback: the table changed since the rollback point in the drill; acknowledged")
            you.keys("BTab", "Space", "Tab")
        you.type("idx_orders_customer_created")
        you.keys("Enter")
        w.wait_text("you x", r"ROLLED BACK", 30)
        w.wait_text("you x", r"Final: the index is dropped and verified gone", 10)
        captures["8c-rolled-back"] = w.last
        w.step("x: the DROP ran; ROLLED BACK, and the screen says it is final")

        w.tmux = mate
        w.wait_text("mate", r"ROLLED BACK", 10)
        mate.keys("C-q")
        w.wait("mate quit", "the teammate's console to close",
               lambda s: "[tmux-walk] exit=" in s or "Pane is dead" in s, 20)
    finally:
        w.tmux = you
        mate.cmd("kill-session", "-t", "mate", check=False)


def resume_with_the_dashboard_open(w: Walk, captures: dict[str, str], short: str) -> None:
    """Issue 14: the driving console dies (kill -9, as a dropped SSH session or an OOM kill) while
    the dashboard is open; the same command again takes the run over once the dead driver's lease
    runs out, lands on the Monitoring step (not the Plan screen), draws the dashboard with the gap
    nobody sampled, keeps the checkpoints, and shows no error. Then back to Execution."""
    t = w.tmux
    t.keys("5")
    w.wait_text("5", r"Window T\+15 → T\+75\s+\d+\.\d / 60 min", 15)
    w.wait_text("5", r"Window T\+15 → T\+75\s+([3-9]|[1-5]\d)\.\d / 60 min", 30)  # a few minutes in
    w.wait_text("5", r"▶ T\+15", 10)
    captures["4a-dashboard-before-kill"] = w.last
    pid = rehearsal_pid(w)
    if pid is None:
        raise WalkFailure("kill -9", "could not find the rehearsal's process under the tmux pane", w.last)
    w.track_servers(pid)  # its servers outlive it: the restarted drill takes them up, cleanup ends them
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    deadline = time.monotonic() + 10
    while "[tmux-walk] exit=" not in t.capture() and time.monotonic() < deadline:
        time.sleep(0.2)
    # What the drill printed before its console is on the pane's normal screen, kept behind the
    # console's alternate screen; a respawned pane starts afresh. (The self-test's lines are not
    # there: the console opens at once and prints its transcript when it closes, which a kill -9
    # never reaches; the resumed drill says the stored results instead, checked after Ctrl+Q.)
    w.history = t.cmd("capture-pane", "-p", "-a", "-t", t.session, check=False)
    w.step("kill -9 of the console with the dashboard open", f"pid {pid}")
    t.cmd("respawn-pane", "-k", "-t", t.session, w.command)
    deadline = time.monotonic() + 90
    while True:  # not Walk.wait: the killed drill's "[tmux-walk] exit=137" may linger until the console draws
        screen = w.grab()
        if "Traceback (most recent call last)" in screen:
            raise WalkFailure("resume", "a traceback is on screen", screen)
        if "Window T+15 → T+75" in screen:
            break
        if time.monotonic() > deadline:  # the first frame is the Plan screen; the run's step follows its read
            raise WalkFailure("resume", "waited 90 s for the console to open on the Monitoring step"
                              + (" (it stays on the Plan screen)" if "Scope lock (runbook 1.2–1.3)" in screen else ""),
                              screen if "Scope lock" in screen else t.capture(history=100))
        time.sleep(0.2)
    w.timings["restart_to_dashboard_s"] = round(time.monotonic() - t_kill, 1)
    w.wait_text("resume", rf"run {short} running │ you drive", 60)
    w.timings["kill_to_takeover_s"] = round(time.monotonic() - t_kill, 1)
    gap = w.wait_text("resume", r"no samples T\+[\d.:]+→T\+[\d.:]+", 30).group(0)
    w.wait_text("resume", r"the\s+driving\s+console\s+was\s+down", 5)
    w.wait_text("resume", r"kill switch: off │ \S+ \(lead/dba", 10)  # the frame whole: switch state, who you are
    w.wait_text("resume", r"T\+(15|30)\s+\S+\s+✓ yes", 15)  # the checkpoint recorded before the kill, kept (▶ moves on: the current one)
    toasts = toast_text(w.grab())
    if "failed" in toasts or "Error" in toasts:
        raise WalkFailure("resume", f"an error toast after the take-over: {toasts[:300]}", w.last)
    captures["4b-dashboard-after-resume"] = w.last
    w.step("resumed with the dashboard open", f"on Monitoring, 'you drive', gap '{gap}', checkpoint kept, no error "
           f"({w.timings['kill_to_takeover_s']} s from the kill to the take-over)")
    t.keys("4")
    w.wait_text("resume 4", r"Steps \(runbook 3\.2\)", 10)


def deactivate(w: Walk, reason: str) -> None:
    w.tmux.keys("F8")
    w.wait_text("F8", r"Deactivate the kill switch", 10)
    w.wait_text("F8", r"reason \(required\)", 5)
    w.tmux.type(reason)
    w.tmux.keys("Enter")
    w.wait_text("F8", r"kill switch: off", 15)
    w.wait_gone("F8", r"KILL SWITCH ACTIVE —", 10)


def small_look(w: Walk, cli: str, captures: dict[str, str], rows: int, speed: int) -> None:
    """80x24 (an SSH session on a laptop): the same state dir, servers reused, self-test results
    stored. Plan, Prechecks, Execution: printed, with notes on what is cut off. Never fails on looks."""
    small = Tmux(w.tmux.socket, "small")
    command = (f"bash -c '{cli} rehearse --rows {rows} --speed {speed} --skip-self-test; "
               "echo \"[tmux-walk] exit=$?\"'")
    small.start(80, 24, command, {"XDG_STATE_HOME": str(w.tmp)}, ROOT)
    big, w.tmux = w.tmux, small
    try:
        w.step("80x24 session started")
        plan = w.wait("80x24 plan", "the Plan screen", lambda s: "Scope lock" in s and "Begin prechecks" in s
                      and "reading…" not in s and "● ok" in s, 90)
        captures["small-1-plan"] = plan
        w.say(indent(plan))
        look_notes(w, "Plan", plan)
        small.keys("b")
        w.wait_text("80x24 b", r"Before the size gate", 20)
        for key in ("r", "k", "p"):
            small.keys(key)
            time.sleep(2.5)
        small.keys("BTab", "Enter")  # p showed the statement: confirm it
        for _ in range(3):
            small.keys("s")
            time.sleep(1.0)
        pre = w.wait_text("80x24 prechecks", r"All prechecks done", 60).string
        captures["small-2-prechecks"] = pre
        w.say(indent(pre))
        look_notes(w, "Prechecks", pre)
        small.keys("3")
        time.sleep(0.7)
        small.keys("c")
        w.wait_text("80x24 c", r"PASS:", 20)
        small.keys("4")
        w.wait_text("80x24 4", r"Steps \(runbook 3\.2\)", 10)
        small.keys("g")
        w.wait_text("80x24 g", r"5\s+✓\s+Cool-down", 120)
        time.sleep(2.0)
        ex = w.grab()
        captures["small-3-execution"] = ex
        w.say(indent(ex))
        look_notes(w, "Execution", ex)
        small.keys("F9")
        killed = w.wait_text("80x24 F9", r"KILL SWITCH ACTIVE —", 10).string
        captures["small-4-kill"] = killed
        w.say(indent(killed))
        if "■ cancelled" not in killed:
            w.note("80x24 Execution: after F9 the outcome line ('■ cancelled …') is below the fold; only a "
                   "toast says the run was cancelled")
        deactivate(w, "80x24 look done")
        small.keys("C-q")
        w.wait("80x24 quit", "the rehearsal to end", lambda s: "[tmux-walk] exit=" in s, 60)
        w.step("80x24 look done")
    finally:
        w.tmux = big


def look_notes(w: Walk, name: str, screen: str) -> None:
    lines = screen.splitlines()
    bar = next((ln for ln in lines[:6] if "1 Plan" in ln), "")
    if "8 Report" not in bar:
        w.note(f"80x24 {name}: the step bar ends at '{bar.strip()[-24:]}' — 7 Rollback and 8 Report (and the "
               "run id) are cut off")
    foot = footer(screen)
    if "f9" not in foot.lower() or "f2 Audit log" not in foot:
        w.note(f"80x24 {name}: footer cut: '{foot.strip()}'")
    frame = [ln for ln in lines[:3]]
    if frame and "● ok" not in frame[0]:
        w.note(f"80x24 {name}: the frame's status wraps over 3 lines: " + " / ".join(ln.strip()[:50] for ln in frame))
    if name == "Prechecks" and not re.search(r"Check\s+Expected\s+Status", screen):
        w.note("80x24 Prechecks: the checks table's Status/Found columns are off screen to the right")
    if name == "Execution" and "monitoring window is running" not in screen and "running — driven" not in screen:
        w.note("80x24 Execution: the outcome line, ALTER progress and the log are below the fold; the first "
               "screen shows only the steps and the announcement")


def indent(text: str) -> str:
    return "\n".join("         | " + ln.rstrip() for ln in text.rstrip().splitlines())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="also look at 80x24 (Plan, Prechecks, Execution)")
    ap.add_argument("--keep-captures", type=Path, metavar="DIR", help="write every checked screen to DIR")
    ap.add_argument("--speed", type=int, default=60)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--size", default="160x50", metavar="WxH",
                    help="the terminal the walk runs in (160x50; 100x30 is a jump host's)")
    args = ap.parse_args(argv)
    width, height = (int(n) for n in args.size.lower().split("x"))
    t0 = time.monotonic()
    try:
        result = walk(args.keep_captures, args.small, args.speed, args.rows,
                      say=lambda s: print(s, flush=True), size=(width, height))
    except WalkFailure as exc:
        print(f"FAILED at {exc.step}: {exc.message}", flush=True)
        if exc.capture:
            print("--- last capture " + "-" * 60)
            print(exc.capture.rstrip())
            print("-" * 77, flush=True)
        print(json.dumps({"ok": False, "step": exc.step, "error": exc.message,
                          "total_s": round(time.monotonic() - t0, 1)}), flush=True)
        return 1
    print(json.dumps({"ok": True, "total_s": round(time.monotonic() - t0, 1), **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
