"""Shared fixtures. The MariaDB the integration tests use is a private sandbox the suite starts
itself (engine.sandbox) on a temporary datadir, socket and free port — never the machine's server."""

from __future__ import annotations

import pytest

from engine.sandbox import MariaDBSandbox, SandboxUnavailable


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
    from engine.selftest import Lab

    return Lab(sandbox, tmp_path_factory.mktemp("lab"))
