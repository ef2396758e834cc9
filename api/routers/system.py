"""Health: no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.models import Health
from api.problems import SafeJSONResponse

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health, summary="store reachable?",
            responses={503: {"model": Health, "description": "the store cannot be read"}})
def health(request: Request) -> SafeJSONResponse:
    try:
        request.app.state.store.kill_switch_rows(request.app.state.default_tenant, None)
    except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
        # No token is needed here: name the kind of failure, not the store's own words.
        return SafeJSONResponse({"status": "degraded", "store": f"unreadable: {exc.__class__.__name__}"}, 503)
    return SafeJSONResponse({"status": "ok", "store": "ok"})
