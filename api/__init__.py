"""The HTTP API (FastAPI on uvicorn): the kill switch, executions, rollbacks and the audit trail,
for workers, chat bots, pagers and the runbook's ``curl`` lines (docs/api.md). It calls the engine's
functions, as the console and the CLI do; the engine never imports it."""

from api.app import create_app
from api.server import ApiServer, serve_in_thread

__all__ = ["ApiServer", "create_app", "serve_in_thread"]
