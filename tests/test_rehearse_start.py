"""``canary-console rehearse`` opens the console before the drill is ready and shows its work; its
headless output is for people (a readable line per step and event) or for machines (``--json``);
and it keeps the console when only stdout is piped (``scripts/rehearse | tee log``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from console.headless import EVENT_LINES, Output, bar, console_possible, event_line
from engine.drill.rehearsal import STEP_TITLES, StepProgress

ROOT = Path(__file__).resolve().parent.parent


# --- the console first ------------------------------------------------------------------------------


@pytest.mark.mariadb
async def test_the_rehearse_console_is_on_screen_before_the_sandbox_is_ready(tmp_path, monkeypatch):
    """The real preparation (servers, data load) on a real sandbox; the test holds it at its first
    step to look at the screen then, before any server has started."""
    from console.rehearse_app import RehearsalApp
    from engine.adapters.opening import OpeningStore
    from engine.domain.clock import clock_for
    from engine.domain.plan import load_plan
    from engine.drill import rehearsal
    from screens.plan import PlanScreen
    from screens.preparing import PreparingScreen

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    prepared = rehearsal.prepare(2_000, False, "you", lambda line: None, speed=30)
    plan = load_plan(prepared.plan_path)
    clock = clock_for(plan)
    held, release = threading.Event(), threading.Event()

    class Held(RehearsalApp):
        def _step(self, progress: StepProgress) -> None:
            if not held.is_set():  # the first step: wait until the test has looked
                held.set()
                release.wait(30)
            super()._step(progress)

    app = Held(plan, OpeningStore(prepared.store_url, clock), prepared, clock=clock, self_test=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            while not held.is_set():
                await pilot.pause(0.02)
            await pilot.pause(0.1)
            assert isinstance(app.screen, PreparingScreen)
            assert not prepared.sandbox.primary.running, "the console must not wait for the servers"
            text = str(app.screen.query_one("#text-servers").render())
            assert "waiting" in text
            assert app.frame.target_health.startswith("◌ starting")
            await pilot.press("2")  # a step key while preparing: said, not silent
            assert any("still being prepared" in str(n.message) for n in app._notifications)
            release.set()
            # The steps move on screen: the servers' bar fills, then the data load's.
            seen_servers_running = False
            for _ in range(600):
                latest = app.preparing_screen.latest
                if "servers" in latest and latest["servers"].state == "running":
                    seen_servers_running = True
                if isinstance(app.screen, PlanScreen):
                    break
                await pilot.pause(0.1)
            assert isinstance(app.screen, PlanScreen), app.preparing_screen.latest
            assert seen_servers_running
            latest = app.preparing_screen.latest
            assert latest["servers"].state == "done" and latest["data"].state == "done"
            # Not run, and nothing stored in a new drill's store: the P0 gate will stop the run at the
            # prechecks, said at once with how to get the results (docs/rehearsal.md).
            assert latest["self_test"].state == "failed"
            assert "cannot reach execution until they pass" in latest["self_test"].text
            assert prepared.sandbox.primary.running and prepared.drill is not None
            assert any("loading shop.orders" in line for line in app.transcript)
            for _ in range(100):  # the target's health is checked again once the servers are up
                if app.frame.target_health == "● ok":
                    break
                await pilot.pause(0.1)
            assert app.frame.target_health == "● ok"
    finally:
        release.set()
        app.stop_preparation(30)
        prepared.stop()
    assert not prepared.sandbox.primary.running


@pytest.mark.mariadb
async def test_closing_the_console_while_preparing_stops_what_was_started(tmp_path, monkeypatch):
    from console.rehearse_app import RehearsalApp
    from engine.adapters.opening import OpeningStore
    from engine.domain.clock import clock_for
    from engine.domain.plan import load_plan
    from engine.drill import rehearsal

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    prepared = rehearsal.prepare(2_000, False, "you", lambda line: None, speed=30)
    plan = load_plan(prepared.plan_path)
    clock = clock_for(plan)
    app = RehearsalApp(plan, OpeningStore(prepared.store_url, clock), prepared, clock=clock, self_test=False)
    async with app.run_test(size=(100, 30)) as pilot:
        while "servers" not in app.preparing_screen.latest:
            await pilot.pause(0.02)
        await pilot.press("ctrl+q")
    assert app.stop_preparation(60), "the preparation ends at its next step"
    prepared.stop()
    assert not prepared.sandbox.primary.running
    assert prepared.sandbox.replica is not None and not prepared.sandbox.replica.running


def test_the_drill_console_shadows_none_of_the_consoles_actions(tmp_path):
    """RehearsalApp's own attributes never hide a CanaryApp method: a ``self_test`` flag once hid the
    Prechecks screen's self-test worker, and `t` in a drill ended the console with a traceback."""
    from types import SimpleNamespace

    from console.app import CanaryApp
    from console.rehearse_app import RehearsalApp
    from engine.adapters.store import Store
    from engine.domain.plan import plan_from_dict

    plan = plan_from_dict({
        "tenant": "t1", "rehearsal": True,
        "connection": {"id": "c1", "host": "127.0.0.1", "port": 9, "user": "u", "database": "shop"},
        "change": {"table": "orders", "index": "idx_a", "columns": ["customer_id"]},
    })
    app = RehearsalApp(plan, Store(f"sqlite:///{tmp_path / 'store.db'}"), SimpleNamespace(plan_path="x"),
                       clock=None, self_test=True)
    assert callable(app.self_test)
    assert [name for name in vars(app) if callable(getattr(CanaryApp, name, None))] == []


# --- headless: lines for people, JSON Lines for machines --------------------------------------------


@pytest.mark.parametrize("name", sorted(EVENT_LINES))
def test_every_executor_event_has_a_readable_line(name):
    data = {"holder": "nok@10.0.0.5", "left_s": 4.5, "lease_s": 300.0, "seconds": 300, "thread_id": 42,
            "sql": "ALTER TABLE `shop`.`orders` ADD INDEX …", "where": "during", "window_minutes": 60,
            "alter_in_processlist": True, "index_exists": False, "error": "store locked",
            "fail_reason": "kill_switch", "message": "the kill switch is active"}
    line = event_line(name, data)
    assert line and "{" not in line and "\n" not in line
    assert len(line.split()) >= 3 and "_" not in line.split()[0], "a sentence, not the event's id"


def test_an_unknown_event_still_reads_as_words():
    line = event_line("something_new", {"rows_done": 5, "ratio": 0.5})
    assert line == "something new: rows done 5, ratio 0.5"


def test_a_step_is_one_line_with_a_bar_and_repeats_are_dropped():
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.extend(x for x in text.splitlines() if x)

        def flush(self) -> None:
            pass

    out = Output(stream=Sink())  # type: ignore[arg-type]
    step = StepProgress("data", STEP_TITLES["data"], 500, 1000, "loading shop.orders: 500/1,000 rows")
    out.step(step)
    out.step(step)
    out.step(StepProgress("data", STEP_TITLES["data"], 1, 1, "shop.orders: ~1,000 rows", "done"))
    out.event("monitoring", {"window_minutes": 60})
    assert lines == [
        f"[rehearse] Data load                  {bar(0.5)}  loading shop.orders: 500/1,000 rows",
        f"[rehearse] Data load                  {bar(1.0)}  done: shop.orders: ~1,000 rows",
        "[rehearse] monitoring window opens: 60 minutes, cannot be shortened",
    ]
    assert bar(0.5) == "[##########----------]  50%"


def test_json_lines_parse_and_carry_the_readable_text():
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.extend(x for x in text.splitlines() if x)

        def flush(self) -> None:
            pass

    out = Output(json_lines=True, stream=Sink())  # type: ignore[arg-type]
    out.say("plan written to /tmp/x.toml")
    out.step(StepProgress("servers", STEP_TITLES["servers"], 1, 5, "starting the primary on port 3307"))
    out.event("alter_started", {"thread_id": 7, "sql": "ALTER TABLE t ADD INDEX i (a)"})
    out.outcome("outcome: completed — PASS", run="r1", status="completed", fail_reason=None)
    records = [json.loads(line) for line in lines]
    assert [r["kind"] for r in records] == ["message", "step", "event", "outcome"]
    assert all({"ts", "kind", "text"} <= set(r) for r in records)
    assert records[1]["step"] == "servers" and records[1]["done"] == 1 and records[1]["total"] == 5
    assert records[2]["event"] == "alter_started" and records[2]["data"]["thread_id"] == 7
    assert records[2]["text"] == "ALTER started on server thread 7: ALTER TABLE t ADD INDEX i (a)"
    assert records[3]["status"] == "completed"


# --- the console or headless: decided by the terminal on stdin and stderr -----------------------------


def test_stdout_piped_keeps_the_console_when_stdin_and_stderr_are_a_terminal():
    master, slave = os.openpty()
    read_end, write_end = os.pipe()
    try:
        with open(slave, closefd=False) as tty_in, open(slave, "w", closefd=False) as tty_err:
            assert console_possible(stdin=tty_in, stderr=tty_err) is None
            with open(read_end, closefd=False) as piped_in:
                why = console_possible(stdin=piped_in, stderr=tty_err)
                assert why is not None and why.startswith("stdin is not a terminal")
            with open(write_end, "w", closefd=False) as piped_err:
                why = console_possible(stdin=tty_in, stderr=piped_err)
                assert why is not None and why.startswith("stderr is not a terminal")
    finally:
        for fd in (master, slave, read_end, write_end):
            os.close(fd)


@pytest.mark.mariadb
@pytest.mark.long
def test_rehearse_without_a_terminal_says_why_on_stderr_and_prints_json_lines_when_asked(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path))
    # The P0 cases, for real (a new drill's store has none, and a drill without them never executes).
    args = [sys.executable, "-m", "console.cli", "rehearse", "--rows", "2000", "--speed", "600",
            "--self-test-cases", "TC-02,TC-03,TC-09"]
    done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert "stdin and stderr are not a terminal" in done.stderr, done.stderr
    assert "walking the runbook headless" in done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines and all(line.startswith("[rehearse] ") for line in lines), done.stdout
    assert not [line for line in lines if "{" in line and "needs" not in line], "no raw JSON for people"
    assert any("ALTER started on server thread" in line for line in lines)
    assert any(line.startswith("[rehearse] outcome: ") for line in lines)

    done = subprocess.run([*args, "--json"], stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    kinds = {r["kind"] for r in records}
    assert {"message", "step", "event", "outcome"} <= kinds, kinds
    assert "not a terminal" not in done.stderr, "--json asked for headless: nothing to explain"
    outcome = [r for r in records if r["kind"] == "outcome"][0]
    assert outcome["status"] in ("completed", "failed", "cancelled")


# --- one drill at a time on a sandbox ----------------------------------------------------------------


@pytest.mark.mariadb
def test_a_second_drill_on_the_same_sandbox_is_refused_and_leaves_the_first_alone(tmp_path, monkeypatch):
    """Two `scripts/rehearse` in one state directory once took each other's servers: the second
    adopted the first's, reloaded its table under it, and both ended "could not be prepared". The
    second is now refused before it touches anything — even with --reset — and says how to join."""
    from engine.drill import rehearsal

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    first = rehearsal.prepare(2_000, False, "you", lambda line: None, speed=30)
    try:
        plan = first.plan_path.read_text()
        with pytest.raises(rehearsal.DrillBusy) as busy:
            rehearsal.prepare(2_000, True, "you", lambda line: None, speed=30)
        said = str(busy.value)
        assert "another drill is running on this sandbox" in said and f"process {os.getpid()}" in said
        assert f"canary-console run {first.plan_path} --as teammate" in said
        assert first.plan_path.read_text() == plan, "the refused --reset deleted nothing"

        from tests.cli_run import run_cli

        done = run_cli("rehearse", "--headless", "--reset")  # in this process: the lock is per open file
        assert done.returncode == 3, (done.stdout, done.stderr)
        assert "another drill is running on this sandbox" in done.stderr and "Traceback" not in done.stderr
        assert first.plan_path.read_text() == plan
    finally:
        first.stop()
    again = rehearsal.prepare(2_000, False, "you", lambda line: None, speed=30)  # the lock went with the stop
    again.stop()


# --- the preparation screen, as a person sees it -------------------------------------------------------


def _preparing_host():
    from textual.app import App

    from screens.frame import FrameState
    from screens.preparing import PreparingScreen

    class Host(App):
        def on_mount(self) -> None:
            screen = PreparingScreen("/home/you/.local/state/canary-console/rehearsal/canary.toml")
            self.push_screen(screen)
            frame = FrameState(user="you@10.0.0.5", roles=("canary_lead", "dba"), speed=30,
                               target="shop.orders@127.0.0.1:40123", target_health="◌ starting (drill)",
                               locked=frozenset({"prechecks", "size_gate", "execution", "monitoring", "decision",
                                                 "rollback", "report"}))
            self.call_after_refresh(screen.apply_frame, frame)
            screen.show_step(StepProgress("servers", STEP_TITLES["servers"], 5, 5,
                                          "primary :40123, replica :40125", "done"))
            screen.show_step(StepProgress("data", STEP_TITLES["data"], 500_000, 1_100_000,
                                          "loading shop.orders: 500,000/1,000,000 rows"))

    return Host()


def _settle():
    async def run_before(pilot):
        for _ in range(5):
            await pilot.pause(0.05)
    return run_before


def test_preparing_screen_snapshot(snap_compare, term):
    assert snap_compare(_preparing_host(), terminal_size=term, run_before=_settle())
