"""A run taken over after its driving console died, as the dashboard and the decision show it
(issue 14 item 1): the stored ``monitoring_resumed`` entry becomes a gap in the charts and the
window's line, and never breaks the dashboard; a verdict stored after the resume is read as the
verdict. Against a real SQLite store with a frozen clock (no database server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from plans import ACME, people
from waits import until

from engine.adapters.collectors import Sample
from engine.adapters.store import Decision, ExecutionRun, Store
from engine.domain.clock import FrozenClock
from engine.domain.plan import parse_plan
from engine.domain.thresholds import Profile
from engine.flows.monitor import replay
from engine.views.dashboard import dashboard_view, decision_view, load_dashboard

T0 = datetime(2026, 11, 22, 15, 40, tzinfo=UTC)
RUN = "3f2a9c1e-0000-4000-8000-0000000000aa"
PLAN = parse_plan(ACME + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok", "@nok")),
                  "canary.toml")
CALM = {"latency_p50": 1.20, "latency_p99": 6.0, "lock_wait": 0.0, "replication_lag": 1.0, "connections": 22.0,
        "threads_running": 4.0}
DRIVER = "engine (somchai@10.0.0.5)"


def _jitter(i: int, key: str) -> float:
    return 1 + 0.08 * (((i * 7919 + len(key) * 104729) % 997) / 997 - 0.5)


@pytest.fixture
def resumed(tmp_path):
    """Baseline, ALTER, a window of 10 minutes at 5 s, the driver killed, 7 minutes nobody sampled,
    a take-over (``monitoring_resumed`` as ``Monitor._resume`` writes it), 5 more minutes."""
    clock = FrozenClock(T0)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=clock)
    store.create_run(ExecutionRun(id=RUN, tenant_id="acme", connection_profile_id="orders-primary",
                                  schema_name="shop", table_name="orders", index_name="idx_orders_customer_created",
                                  columns=[["customer_id", None], ["created_at", None]]), "somchai@10.0.0.5")
    i = 0

    def tick() -> datetime:
        nonlocal i
        at = clock.now()
        store.add_samples("acme", RUN, at, [
            Sample(k, v * _jitter(i, k), "mysql", n=40 if k.startswith("latency") else None) for k, v in CALM.items()])
        clock.advance(5)
        i += 1
        return at

    for _ in range(60):
        tick()
    store.update_run("acme", RUN, alter_started_at=clock.now())
    for _ in range(6):
        tick()
    store.update_run("acme", RUN, alter_finished_at=clock.now(), index_created_by_run=True)
    clock.advance(60)
    window_start = clock.now()
    store.audit("acme", DRIVER, "monitoring_started", RUN, {"at": window_start.isoformat(), "interval": 5.0})
    for _ in range(120):
        last = tick()
    clock.advance(7 * 60)  # the driver is dead: nobody samples
    store.audit("acme", "engine (nok@10.0.0.9)", "monitoring_resumed", RUN, {
        "window_started_at": window_start.isoformat(), "ticks_restored": 120, "last_sample_at": last.isoformat(),
        "gap_s": round((clock.now() - last).total_seconds(), 1), "elapsed_s": 600.0})
    resumed_at = clock.now()
    for _ in range(60):
        tick()
    return clock, store, last, resumed_at


def test_a_resumed_window_loads_with_its_gap_and_no_verdict_yet(resumed):
    clock, store, last, resumed_at = resumed
    data = load_dashboard(store, PLAN, RUN, clock.now())
    assert data.facts.gaps == ((last, resumed_at),)
    assert data.facts.decision is None, "no verdict was stored: none is shown"
    view = dashboard_view(PLAN.profile(), data, clock.now())
    assert "no samples T+24:55→T+32:00" in view.progress.text and "gap in the charts" in view.progress.text
    chart = next(c for c in view.charts if c.key == "threads_running")
    assert len(chart.breaks) == 1, "the line is not drawn across the time nobody sampled"
    assert decision_view(data).action == "wait"


def test_a_resumed_window_shows_the_verdict_stored_after_the_resume(resumed):
    clock, store, last, resumed_at = resumed
    verdict, _ = replay(store, "acme", RUN, Profile())
    store.save_decision(Decision(tenant_id="acme", execution_run_id=RUN, verdict=verdict.verdict,
                                 evidence=verdict.as_dict() | {"profile": "default", "stopped_early": False},
                                 decided_by=DRIVER))
    store.audit("acme", DRIVER, "verdict", RUN, {"verdict": verdict.verdict})
    data = load_dashboard(store, PLAN, RUN, clock.now())
    assert data.facts.gaps == ((last, resumed_at),)
    assert data.facts.decision is not None and data.facts.decision.verdict == verdict.verdict
    dv = decision_view(data)
    assert dv.verdict == verdict.verdict and [r.name for r in dv.rows] == [c.name for c in verdict.criteria]
    # and incrementally, as a console that was already watching reads it
    before = load_dashboard(store, PLAN, RUN, clock.now() - timedelta(seconds=1))
    again = load_dashboard(store, PLAN, RUN, clock.now(), before)
    assert again.facts.decision.verdict == verdict.verdict and again.facts.gaps == data.facts.gaps


# --- the console that opens on it -------------------------------------------------------------------

JOINER_PLAN = parse_plan(ACME.replace('host = "10.0.0.12"', 'host = "127.0.0.1"\nport = 9')
                         + people(("Somchai", "canary_lead", "somchai", "@somchai"), ("Nok", "dba", "nok", "@nok")),
                         "canary.toml")


def _console(store, clock, user="nok"):
    from console.app import CanaryApp
    from engine.adapters.identity import Identity
    from engine.adapters.killswitch import EmbeddedKillSwitch

    app = CanaryApp(JOINER_PLAN, store, Identity(user, "10.0.0.9", "jump"), clock, EmbeddedKillSwitch(store))
    said: list[str] = []
    notify = app.notify

    def spy(message, *args, **kwargs):
        said.append(str(message))
        return notify(message, *args, **kwargs)

    app.notify = spy  # type: ignore[method-assign]
    return app, said


async def test_a_console_opened_on_a_resumed_window_lands_on_the_dashboard_with_the_gap(resumed, monkeypatch):
    """The run was taken over (``monitoring_resumed``) and is driven by another console: a console
    opened now shows the Monitoring step (not the Plan screen), the dashboard drawn with the gap,
    and no error; the decision screen shows the verdict once it is stored."""
    monkeypatch.setenv("CANARY_DB_PASSWORD", "unused")
    clock, store, last, resumed_at = resumed
    store.claim("acme", RUN, "somchai@jump:4242", 3600)
    store.transition("acme", RUN, "running", "somchai@10.0.0.5")
    app, said = _console(store, clock)
    async with app.run_test(size=(160, 50)) as pilot:
        assert await until(pilot, lambda: app.screen is app.steps.get("monitoring")), (
            f"the console stayed on {type(app.screen).__name__}")
        screen = app.steps["monitoring"]
        from screens.frame import KillBanner, RunFrame

        # The whole frame on the step it landed on (it was switched to before it was composed).
        assert await until(pilot, lambda: screen.query_one(RunFrame).state.user == app.actor
                            and screen.query_one(RunFrame).state.kill is not None
                            and screen.query_one(KillBanner).state.user == app.actor)
        assert await until(pilot, lambda: screen.view is not None and "no samples" in screen.view.progress.text)
        assert "no samples T+24:55→T+32:00" in screen.view.progress.text
        drawn = str(screen.query_one("#window-text").render())
        assert "the driving console was down" in drawn
        assert not [s for s in said if "failed" in s], said

        verdict, _ = replay(store, "acme", RUN, Profile())
        store.save_decision(Decision(tenant_id="acme", execution_run_id=RUN, verdict=verdict.verdict,
                                     evidence=verdict.as_dict() | {"profile": "default", "stopped_early": False},
                                     decided_by=DRIVER))
        await pilot.press("6")
        decision = app.steps["decision"]
        assert await until(pilot, lambda: app.screen is decision and decision.view is not None
                            and decision.view.verdict == verdict.verdict)
        assert not [s for s in said if "failed" in s], said


# --- which step a run is in (pure) -------------------------------------------------------------------


def _view(status, *, alter=False, window=False, verdicts=(), index=False, rollbacks=()):
    from engine.flows.runbook import RunView

    run = ExecutionRun(id=RUN, tenant_id="acme", connection_profile_id="orders-primary", schema_name="shop",
                       table_name="orders", index_name="idx_orders_customer_created", status=status,
                       alter_started_at=T0 if alter else None, index_created_by_run=index, created_at=T0)
    return RunView(run=run, verdicts=tuple(verdicts), rollback_statuses=tuple(rollbacks),
                   window_started_at=T0 + timedelta(minutes=8) if window else None)


@pytest.mark.parametrize(("view", "step"), [
    (_view("scheduled"), "prechecks"),
    (_view("running"), "execution"),  # the baseline, before the ALTER
    (_view("running", alter=True), "execution"),  # the ALTER or its cool-down
    (_view("running", alter=True, index=True, window=True), "monitoring"),
    (_view("running", alter=True, index=True, window=True, verdicts=["FAIL"]), "decision"),
    (_view("failed", alter=True, index=True, window=True, verdicts=["FAIL"], rollbacks=["would_roll_back"]),
     "rollback"),
    (_view("cancelled", alter=True, index=True, window=True, rollbacks=["pending"]), "rollback"),
    (_view("completed", alter=True, index=True, window=True, verdicts=["INCONCLUSIVE"]), "decision"),
    (_view("completed", alter=True, index=True, window=True, verdicts=["INCONCLUSIVE", "INCONCLUSIVE"],
           rollbacks=["pending"]), "rollback"),
    (_view("completed", alter=True, index=True, window=True, verdicts=["PASS"]), "report"),
    (_view("rolled_back", alter=True, window=True, verdicts=["FAIL"], rollbacks=["completed"]), "report"),
    (_view("failed"), "report"),  # the kill switch before the ALTER: nothing to roll back
])
def test_the_step_a_run_is_in(view, step):
    from engine.flows.runbook import step_of_run

    assert step_of_run(view, T0 + timedelta(hours=1)) == step

