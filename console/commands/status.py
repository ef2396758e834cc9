"""``canary-console status``: the kill switch, the recent runs, the self-test."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from console.commands import EXIT_FAILED, EXIT_OK, _backend, _plan, _store, _store_url, _tenant
from engine.domain.tenancy import GLOBAL_TENANT
from engine.domain.text import for_terminal


def cmd_status(args: argparse.Namespace) -> int:
    """The kill switch, the recent runs, the self-test. A store (or API) that cannot be read is
    FAIL-CLOSED — the switch counts as active — and said so, with why (exit 1); never "ok".
    Everything from the store is shown through ``for_terminal``: no escape sequence a user typed
    into a reason reaches this terminal."""
    plan = _plan(args.plan)  # a bad plan is said before the store (SQLAlchemy) is even loaded
    from engine.adapters.killswitch import KillSwitchReading
    from engine.adapters.store import StoreError, redact_url

    tenant = _tenant(args, plan, required=False)
    conn = plan.connection.id if plan else (args.connection or "")
    url = _store_url(args, plan)
    store, store_error = None, None
    try:
        store = _store(args, plan)
        url = store.url
    except StoreError as exc:
        store_error = str(exc)
    if store is None and not (plan and plan.kill_switch_api_url):
        reading = KillSwitchReading(True, {}, "embedded", 0.0, f"store unreadable: {store_error}")
    else:
        reading = _backend(plan, store).read(tenant, conn)
    runs: list[Any] = []
    tcs: dict[str, Any] = {}
    if store is not None and tenant != GLOBAL_TENANT:
        try:
            runs = store.find_runs(tenant, limit=5)
            tcs = store.latest_prechecks(tenant, "TC-")
        except StoreError as exc:
            store_error = store_error or str(exc)
    shown_url = redact_url(url) if url else "(default)"
    t = for_terminal
    if args.json:
        print(json.dumps({
            "store": shown_url, "store_error": store_error, "tenant": tenant,
            "kill_switch": {"active": reading.active, "fail_closed": reading.fail_closed,
                            "scopes": reading.active_scopes(), "error": reading.error,
                            "source": reading.source, "response_ms": round(reading.response_ms, 1),
                            "set_by": {k: v.set_by for k, v in reading.scopes.items() if v.active},
                            "reasons": {k: v.reason for k, v in reading.scopes.items() if v.active}},
            "runs": [{"id": r.id, "status": r.status, "fail_reason": r.fail_reason, "table": r.table_name,
                      "index": r.index_name} for r in runs],
            "self_test": {k: v.status for k, v in sorted(tcs.items())},
        }, indent=2))  # JSON escapes every control character itself
        if store_error:
            print(f"error: {t(store_error)}", file=sys.stderr)
        return EXIT_FAILED if reading.fail_closed or store_error else EXIT_OK
    print(f"store        {t(shown_url)}" + (f"  UNREADABLE: {t(store_error)}" if store_error else ""))
    print(f"tenant       {t(tenant)}")
    if reading.fail_closed:
        print(f"kill switch  FAIL-CLOSED — counts as ACTIVE: {t(reading.error)}  [{reading.source}, "
              f"{reading.response_ms:.0f} ms]")
        print("             no run may start or go on until the switch can be read; fix the cause above")
    else:
        print(f"kill switch  {t(reading.describe())}  [{reading.source}, {reading.response_ms:.0f} ms, "
              f"{reading.latency_level}]")
    if store_error:
        print("runs         unknown (the store cannot be read)")
    elif not runs:
        print("runs         none")
    for r in runs:
        extra = f" ({r.fail_reason})" if r.fail_reason else ""
        print(t(f"run          {r.id}  {r.status}{extra}  {r.schema_name}.{r.table_name} +{r.index_name}"))
    if tcs:
        print("self-test    " + t("  ".join(f"{k}:{v.status}" for k, v in sorted(tcs.items()))))
    if store_error:
        print(f"error: {t(store_error)}", file=sys.stderr)
    return EXIT_FAILED if reading.fail_closed or store_error else EXIT_OK
