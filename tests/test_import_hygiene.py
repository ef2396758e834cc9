"""Arrows point down only: engine/ never imports Textual, Rich, screens, console, the HTTP API (api/)
or FastAPI (docs/api.md)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parent.parent


def test_engine_imports_no_ui():
    modules = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "engine."))
    assert "engine.executor" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        # Not rich: httpx imports it for its own command line whenever it is installed.
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'screens', 'console', 'api', 'fastapi'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"engine pulled in UI modules: {out.stdout.strip()}"


def test_no_ui_import_statement_in_engine_sources():
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py")
        for line in p.read_text().splitlines()
        if line.lstrip().startswith(("import textual", "from textual", "import rich", "from rich",
                                     "from screens", "import screens", "from console", "import console",
                                     "import fastapi", "from fastapi", "import api", "from api"))
    ]
    assert offenders == []


def test_the_first_screen_path_imports_no_heavy_library():
    """``canary-console run PLAN`` draws the Plan screen before the store (SQLAlchemy, sqlmodel), the
    target's driver (pymysql), HTTP (httpx) or the charts (plotext) are loaded: they come on a worker
    after the first frame (bench/console_start.py measures the time)."""
    code = (
        "import sys\n"
        "import console.cli, console.app, engine.opening, engine.clock\n"
        "heavy = ('sqlalchemy', 'sqlmodel', 'pymysql', 'httpx', 'plotext')\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"the first screen's path imports {out.stdout.strip()}"
