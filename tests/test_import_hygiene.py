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
    assert "engine.flows.executor" in modules
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
        "import console.cli, console.app, engine.adapters.opening, engine.domain.clock\n"
        "heavy = ('sqlalchemy', 'sqlmodel', 'pymysql', 'httpx', 'plotext')\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"the first screen's path imports {out.stdout.strip()}"


LAYERS = ("domain", "adapters", "flows", "views", "drill")
# What each folder of the engine may import of ours (docs/architecture.md): domain nothing outside
# itself; adapters the domain; views the domain and the adapters (they read the store); flows all
# three (a flow pushes the announcements the views render); the drill everything.
MAY_IMPORT = {
    "domain": {"domain"},
    "adapters": {"domain", "adapters"},
    "flows": {"domain", "adapters", "flows", "views"},
    "views": {"domain", "adapters", "views"},
    "drill": set(LAYERS),
}


def _engine_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``engine.…`` module a source file imports, at any depth (inside functions and
    ``TYPE_CHECKING`` blocks too)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "engine"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "engine":
            if node.module == "engine":
                found += [(node.lineno, f"engine.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def test_every_engine_module_lives_in_a_layer():
    flat = sorted(p.name for p in (ROOT / "engine").glob("*.py") if p.name != "__init__.py")
    assert flat == [], f"modules outside engine/domain, adapters, flows, views, drill: {flat}"
    assert sorted(p.name for p in (ROOT / "engine").iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


def test_each_engine_layer_imports_only_what_it_may():
    """The domain imports no adapter, flow, view or drill module; adapters no flow; and so on."""
    offenders = []
    for layer in LAYERS:
        for path in sorted((ROOT / "engine" / layer).rglob("*.py")):
            for line, module in _engine_imports(path):
                parts = module.split(".")
                target = parts[1] if len(parts) > 1 else ""
                if target not in MAY_IMPORT[layer]:
                    offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offenders == []
