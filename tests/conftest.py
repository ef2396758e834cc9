"""Shared fixtures. The MariaDB the integration tests use is a private sandbox the suite starts
itself (engine.drill.sandbox) on a temporary datadir, socket and free port — never the machine's server."""

from __future__ import annotations

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
    sb.stop()


@pytest.fixture(scope="session")
def lab(sandbox, tmp_path_factory):
    from engine.drill.selftest import Lab

    return Lab(sandbox, tmp_path_factory.mktemp("lab"))


# The files that take longest, first. `--dist loadfile` hands files to the workers in collection
# order; a slow file handed out last keeps one worker busy for a minute after the others are done.
# The default run's, as measured (--durations, per-file totals), then the long ones'.
SLOW_FILES_FIRST = (
    "test_dashboard.py", "test_kill_cli.py", "test_store.py", "test_api_endpoints.py", "test_console_pilot.py",
    "test_api_killswitch.py", "test_report.py", "test_hostile_input.py", "test_faults_rehearsal.py",
    "test_console_screens_snapshots.py", "test_dry_run.py", "test_tc_cases.py", "test_thresholds_decision.py",
    "test_roles_console.py", "test_rollback_flow.py", "test_audit_chain.py", "test_kill_during_alter.py",
    "test_cli.py", "test_verdict.py", "test_kill_switch_always.py", "test_rollback_way_forward.py",
    "test_selftest_gate.py", "test_collectors_mariadb.py",
    "test_console_flow.py", "test_monitor_headless.py", "test_crash_resume.py", "test_tmux_walk.py",
    "test_rehearse_smoke.py", "test_faults_monitoring.py", "test_api_fuzz.py", "test_killswitch_load.py",
    "test_faults_store.py", "test_crash_resume_points.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its order
