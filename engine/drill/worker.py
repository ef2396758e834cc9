"""The self-test's crash worker (TC-10, engine/drill/selftest.py ``spawn_worker``) and the crash
tests' hung worker: a headless executor in a process of its own, on a sandbox run the harness
created a moment ago. It calls the ``execute`` action (engine/flows/step_actions.py: the role is
asked, a refusal audited) without the console's step-4 gate: the run is a fixture with no prechecks
to walk. A person's headless execution is ``canary-console execute``, which asks that gate.

    python -m engine.drill.worker PLAN.toml [STORE_URL] [RUN_ID] [INTERVAL]   ("" for the plan's store, a new run)

Prints ``run <id>``, then one line per event, then ``outcome <status>: <message>``; exit 0 when
the run completed, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

QUIET = {"alter_progress", "wait_tick", "baseline_tick", "observation_tick", "monitor_tick"}


def main(argv: Sequence[str] | None = None) -> int:
    from engine.adapters.identity import current_identity, worker_id
    from engine.adapters.killswitch import backend_for
    from engine.adapters.store import Store
    from engine.adapters.target import Target
    from engine.domain.clock import clock_for
    from engine.domain.plan import load_plan
    from engine.flows import step_actions

    args = list(sys.argv[1:] if argv is None else argv)
    plan_path, url = args[0], (args[1] if len(args) > 1 else "")
    run_id = args[2] if len(args) > 2 and args[2] else None
    interval = float(args[3]) if len(args) > 3 else 5.0
    plan = load_plan(plan_path)
    store = Store(url or plan.store_url, clock=clock_for(plan))
    ident = current_identity()
    if run_id:
        print(f"run {run_id}", flush=True)

    def on_event(name: str, data: dict[str, Any]) -> None:
        if name == "run_created":
            print(f"run {data['run_id']}", flush=True)
        elif name not in QUIET:
            print(f"{name} {json.dumps(data, default=str)}", flush=True)

    out = step_actions.execute(plan, store, backend_for(plan, store), Target(plan.connection), run_id, ident.actor,
                               sorted(plan.roles_of(ident.user)), worker_id(ident), store.clock, interval,
                               on_event, take_over=bool(run_id))
    print(f"outcome {out.status}{' (' + out.fail_reason + ')' if out.fail_reason else ''}: {out.message}", flush=True)
    return 0 if out.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
