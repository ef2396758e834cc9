"""Shared fixtures. The MariaDB the integration tests use is a private sandbox the suite starts
itself (engine.drill.sandbox) on a temporary datadir, socket and free port — never the machine's server."""

from __future__ import annotations

import gc

import pytest

from engine.drill.sandbox import MariaDBSandbox, SandboxUnavailable

# The terminal sizes every screen's snapshot is taken at (docs/runbook.md#small-terminals): a jump
# host's 80×24 and 100×30, and a roomy 160×50.
SCREEN_SIZES = ((80, 24), (100, 30), (160, 50))


@pytest.fixture(params=SCREEN_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def term(request):
    """A snapshot's terminal size: each snapshot test runs at the three sizes."""
    return request.param


@pytest.fixture(scope="session")
def sandbox():
    try:
        sb = MariaDBSandbox(replica=False).start()
    except SandboxUnavailable as exc:
        pytest.fail(f"the sandbox MariaDB cannot start: {exc}")
    yield sb
    died = None
    if not sb.primary.running:  # under the tests: said with its error log, before stop() removes it
        try:
            died = "\n".join(sb.primary.error_log.read_text(errors="replace").splitlines()[-40:])
        except OSError as exc:
            died = f"(its error log cannot be read: {exc})"
    sb.stop()
    if died is not None:
        pytest.fail(f"the sandbox MariaDB died during this worker's tests; its error log ends:\n{died}",
                    pytrace=False)


@pytest.fixture(scope="session")
def lab(sandbox, tmp_path_factory):
    from engine.drill.selftest import Lab

    return Lab(sandbox, tmp_path_factory.mktemp("lab"))


# The files that take longest, first. `--dist loadfile` hands files to the workers in collection
# order (with `--no-loadscope-reorder`, in pyproject.toml: xdist otherwise reorders them by their
# number of tests, which sent 217 quick identifier tests first and a 90-s file of seven last); a
# slow file handed out last keeps one worker busy after the others are done. The default run's
# files of 10 s or more, slowest first, as measured on 2026-12-06 (per-file wall of each test,
# six workers on two cores: test_verdict_noise, 52 s, had been left out and started last), then
# the quicker ones named before, then the long ones.
SLOW_FILES_FIRST = (
    "test_console_screens_snapshots.py", "test_report.py", "test_faults_rehearsal.py",
    "test_dashboard_snapshots.py", "test_api_endpoints.py", "test_verdict_noise.py", "test_rollback_flow.py",
    "test_console_pilot.py", "test_store.py", "test_notify.py", "test_collectors_mariadb.py",
    "test_api_killswitch.py", "test_observation.py", "test_rollback_dialogs.py", "test_faults_store.py",
    "test_tc_cases.py", "test_keys_answer.py", "test_hostile_input.py", "test_dashboard_screens.py",
    "test_kill_switch_always.py", "test_roles_console.py", "test_real_verification.py", "test_kill_cli.py",
    "test_small_terminals.py", "test_prometheus_source.py", "test_audit_chain.py",
    "test_rollback_and_scope.py", "test_thresholds_decision.py", "test_verdict.py", "test_collector_needs.py",
    "test_dashboard_memory.py", "test_kill_during_alter.py", "test_api_isolation.py",
    "test_dashboard_window.py", "test_one_command_layer.py", "test_rollback_partial.py",
    "test_kill_banner_dialogs.py", "test_sandbox.py", "test_notify_rollback.py", "test_rehearse_start.py",
    "test_cli.py", "test_target.py", "test_resume_dashboard.py", "test_plan.py", "test_dashboard_decision.py",
    "test_history.py", "test_dashboard_charts.py", "test_selftest_gate.py", "test_dry_run.py",
    "test_faults_console.py", "test_secrets.py", "test_kill_repress.py", "test_api_hostile.py",
    "test_import_hygiene.py", "test_console_snapshots.py", "test_target_unavailable.py",
    "test_console_flow.py", "test_monitor_headless.py", "test_crash_resume.py", "test_tmux_walk.py",
    "test_rehearse_smoke.py", "test_faults_monitoring.py", "test_api_fuzz.py", "test_killswitch_load.py",
    "test_crash_resume_points.py",
)


def pytest_collection_finish(session):
    """The garbage collector, tuned for a test run: what is alive once the tests are collected (the
    engine, Textual, SQLAlchemy, numpy, every test module: ~200,000 objects) is frozen out of its
    scans, and it runs less often. A Textual test makes objects by the hundred thousand, and with
    the defaults a full collection ran every few seconds over a heap of ~400,000: a third of the
    CPU of the Pilot and snapshot tests (17.9 s of 55.6 s on two of their files, 4.3 s of 31 s
    tuned). Cycles are still collected, later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its order
